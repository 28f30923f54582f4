//! The key-value space under the block store: sled on disk, or memory in the simulator.
//!
//! The store's layout, encodings and batching live once in [`crate::store`]; only these
//! few operations differ. [`MemKv`] keeps what was flushed apart from what was not, so a
//! simulated crash ([`MemKv::crash`]) loses exactly the unflushed batches, as a power cut
//! loses what sled had not yet written.

use crate::segments::{FileSegments, MemSegment, SegKind, Segments};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KvError(pub String);

impl From<sled::Error> for KvError {
    fn from(e: sled::Error) -> Self {
        KvError(e.to_string())
    }
}

/// Key-value pairs, in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// One key-value pair.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Writes applied together: all of them or none survive a crash.
#[derive(Default, Debug, Clone)]
pub struct KvBatch {
    pub(crate) ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl KvBatch {
    pub fn insert(&mut self, key: impl AsRef<[u8]>, value: impl Into<Vec<u8>>) {
        self.ops.push((key.as_ref().to_vec(), Some(value.into())));
    }
    pub fn remove(&mut self, key: impl AsRef<[u8]>) {
        self.ops.push((key.as_ref().to_vec(), None));
    }
}

/// What the block store needs of a key-value space (and of the [`Segments`] beside it).
/// Reads see every applied batch, flushed or not; `flush` makes them durable.
pub trait Kv: Segments + Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;
    /// Every entry whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, KvError>;
    /// At most `limit` entries whose key starts with `prefix`, from `from` on, in key order
    /// (a long scan in pages, so that it never holds the whole space in memory).
    fn scan_page(&self, prefix: &[u8], from: &[u8], limit: usize) -> Result<Entries, KvError>;
    /// The greatest key starting with `prefix`.
    fn last_key(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>, KvError>;
    /// The smallest key starting with `prefix`.
    fn scan_prefix_first(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>, KvError>;
    /// The entry with the greatest key in `from..=to`.
    fn last_in(&self, from: &[u8], to: &[u8]) -> Result<Option<Entry>, KvError>;
    fn apply(&self, batch: KvBatch) -> Result<(), KvError>;
    /// Applies `batch` one write at a time: not atomic, for writes made safe by a marker
    /// written after them (the pieces of the genesis state).
    fn apply_unbatched(&self, batch: KvBatch) -> Result<(), KvError> {
        self.apply(batch)
    }
    fn flush(&self) -> Result<(), KvError>;
    /// Entries and bytes (keys and values) per first key byte: what the space holds, by kind.
    fn usage(&self) -> Result<BTreeMap<u8, (u64, u64)>, KvError>;
}

fn tally(out: &mut BTreeMap<u8, (u64, u64)>, k: &[u8], v: &[u8]) {
    let e = out.entry(k.first().copied().unwrap_or(0)).or_default();
    e.0 += 1;
    e.1 += (k.len() + v.len()) as u64;
}

pub struct SledKv {
    db: sled::Db,
    files: FileSegments,
    /// Test builds only: the process dies at this store write (see [`failpoint`]).
    #[cfg(feature = "failpoints")]
    die_at_write: Option<std::sync::atomic::AtomicU64>,
}

impl SledKv {
    /// sled's database, with the segment files (one directory per [`SegKind`]) under
    /// `segments`.
    pub fn new(db: sled::Db, segments: std::path::PathBuf) -> Result<SledKv, KvError> {
        Ok(SledKv {
            db,
            files: FileSegments::new(segments)?,
            #[cfg(feature = "failpoints")]
            die_at_write: failpoint::die_at_write(),
        })
    }

    /// Counts one write (an applied batch, a flush, a segment append or sync) and, in a build
    /// with the `failpoints` feature whose `BASALT_DIE_AT_WRITE` reached zero, ends the
    /// process there as a power cut would: after a batch was applied and before it was
    /// flushed, before a flush, or after a segment append that no batch records yet.
    fn write_done(&self) {
        #[cfg(feature = "failpoints")]
        if let Some(left) = &self.die_at_write {
            if left.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
                eprintln!("failpoint: dying inside a store write (BASALT_DIE_AT_WRITE)");
                std::process::abort();
            }
        }
    }
}

/// Crash tests of real processes: `BASALT_DIE_AT_WRITE=N` makes a node built with the
/// `failpoints` feature abort at its N-th store write, a kill point inside a commit that a
/// timed SIGKILL rarely hits. A default build has no such switch.
#[cfg(feature = "failpoints")]
mod failpoint {
    pub fn die_at_write() -> Option<std::sync::atomic::AtomicU64> {
        let n: u64 = std::env::var("BASALT_DIE_AT_WRITE").ok()?.parse().ok()?;
        (n > 0).then(|| std::sync::atomic::AtomicU64::new(n))
    }
}

/// Lets sled's epoch collector free what a batch of `writes` writes replaced.
///
/// sled applies a batch under one epoch guard, so every page version the batch replaces
/// (a few KiB per write) is only handed to crossbeam's collector at the end, and the
/// collector frees at most 512 of them per 128 pins: after a batch of thousands of writes
/// garbage piled up faster than it was freed (a million keys written in batches of 8,192
/// held 3.8 GiB; one at a time, 0.2 GiB). Pinning and flushing crossbeam's default
/// collector, the one sled uses, here frees them now: 0.3 GiB for the same batches.
fn reclaim_garbage(writes: usize) {
    for _ in 0..writes / 32 + 16 {
        crossbeam_epoch::pin().flush();
    }
}

impl Segments for SledKv {
    fn seg_append(&self, kind: SegKind, seg: u64, bytes: &[u8]) -> Result<u64, KvError> {
        let at = self.files.seg_append(kind, seg, bytes)?;
        self.write_done();
        Ok(at)
    }
    fn seg_sync(&self, kind: SegKind, seg: u64) -> Result<(), KvError> {
        self.write_done();
        self.files.seg_sync(kind, seg)
    }
    fn seg_read(&self, kind: SegKind, seg: u64, offset: u64, len: u64) -> Result<Vec<u8>, KvError> {
        self.files.seg_read(kind, seg, offset, len)
    }
    fn seg_truncate(&self, kind: SegKind, seg: u64, len: u64) -> Result<(), KvError> {
        self.files.seg_truncate(kind, seg, len)
    }
    fn seg_remove(&self, kind: SegKind, seg: u64) -> Result<(), KvError> {
        self.files.seg_remove(kind, seg)
    }
    fn seg_list(&self, kind: SegKind) -> Result<Vec<(u64, u64)>, KvError> {
        self.files.seg_list(kind)
    }
}

impl Kv for SledKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.db.get(key)?.map(|v| v.to_vec()))
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, KvError> {
        self.db
            .scan_prefix(prefix)
            .map(|r| {
                r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(KvError::from)
            })
            .collect()
    }
    fn scan_page(&self, prefix: &[u8], from: &[u8], limit: usize) -> Result<Entries, KvError> {
        self.db
            .range(from..)
            .take_while(|r| r.as_ref().map_or(true, |(k, _)| k.starts_with(prefix)))
            .take(limit)
            .map(|r| {
                r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(KvError::from)
            })
            .collect()
    }
    fn last_key(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self
            .db
            .scan_prefix(prefix)
            .keys()
            .next_back()
            .transpose()?
            .map(|k| k.to_vec()))
    }
    fn scan_prefix_first(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self
            .db
            .scan_prefix(prefix)
            .keys()
            .next()
            .transpose()?
            .map(|k| k.to_vec()))
    }
    fn last_in(&self, from: &[u8], to: &[u8]) -> Result<Option<Entry>, KvError> {
        Ok(self
            .db
            .range(from..=to)
            .next_back()
            .transpose()?
            .map(|(k, v)| (k.to_vec(), v.to_vec())))
    }
    fn apply(&self, batch: KvBatch) -> Result<(), KvError> {
        let writes = batch.ops.len();
        let mut b = sled::Batch::default();
        for (k, v) in batch.ops {
            match v {
                Some(v) => b.insert(k, v),
                None => b.remove(k),
            }
        }
        self.db.apply_batch(b)?;
        self.write_done();
        reclaim_garbage(writes);
        Ok(())
    }
    fn apply_unbatched(&self, batch: KvBatch) -> Result<(), KvError> {
        for (k, v) in batch.ops {
            match v {
                Some(v) => self.db.insert(k, v)?,
                None => self.db.remove(k)?,
            };
        }
        Ok(())
    }
    fn flush(&self) -> Result<(), KvError> {
        self.write_done();
        self.db.flush()?;
        Ok(())
    }
    fn usage(&self) -> Result<BTreeMap<u8, (u64, u64)>, KvError> {
        let mut out = BTreeMap::new();
        for r in self.db.iter() {
            let (k, v) = r?;
            tally(&mut out, &k, &v);
        }
        Ok(out)
    }
}

#[derive(Default)]
struct MemState {
    live: BTreeMap<Vec<u8>, Vec<u8>>,
    durable: BTreeMap<Vec<u8>, Vec<u8>>,
    unflushed: Vec<KvBatch>,
    /// The segment files ([`Segments`]), with what of each was synced.
    segs: BTreeMap<(SegKind, u64), MemSegment>,
    /// When set, every read fails (a simulated disk error).
    failing: bool,
    /// Writes (applies and flushes) still to go before an armed power cut.
    cut_after: Option<u32>,
    /// The power went out: every operation fails until [`MemKv::crash`].
    dark: bool,
}

/// An in-memory key space for the simulator and unit tests. Clones share the same space
/// (like clones of a sled handle).
#[derive(Clone, Default)]
pub struct MemKv(Arc<Mutex<MemState>>);

impl MemKv {
    fn state(&self) -> std::sync::MutexGuard<'_, MemState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A crash: every batch applied since the last flush is lost.
    pub fn crash(&self) {
        let mut s = self.state();
        Self::lose_unflushed(&mut s);
        s.cut_after = None;
        s.dark = false;
    }

    /// What a power cut takes: every batch applied since the last flush, and what was
    /// appended to a segment since its last sync.
    fn lose_unflushed(s: &mut MemState) {
        s.unflushed.clear();
        s.live = s.durable.clone();
        for seg in s.segs.values_mut() {
            seg.bytes.truncate(seg.synced);
        }
    }

    /// Arms a power cut at the `writes`-th write from now (0: the next one): the writes
    /// before it complete, that one and all after fail, and what was not flushed is gone.
    /// The simulator uses it to stop a node inside its commit (between the block's batch and
    /// its flush, or before either), where a timed crash never lands.
    pub fn cut_power_at_write(&self, writes: u32) {
        self.state().cut_after = Some(writes);
    }

    /// Whether an armed power cut happened (the node is dark until [`MemKv::crash`]).
    pub fn power_cut(&self) -> bool {
        self.state().dark
    }

    /// Counts one write against an armed power cut; fails once the power is out.
    fn write_allowed(s: &mut MemState) -> Result<(), KvError> {
        match s.cut_after {
            Some(0) => {
                s.dark = true;
                s.cut_after = None;
                Self::lose_unflushed(s);
            }
            Some(n) => s.cut_after = Some(n - 1),
            None => {}
        }
        Self::check_power(s)
    }

    fn check_power(s: &MemState) -> Result<(), KvError> {
        if s.dark {
            Err(KvError("simulated power cut".into()))
        } else {
            Ok(())
        }
    }

    /// How many applied batches a crash now would lose.
    pub fn unflushed_batches(&self) -> usize {
        self.state().unflushed.len()
    }

    /// Makes every read fail (or work again): a disk error under a running node.
    pub fn set_failing(&self, failing: bool) {
        self.state().failing = failing;
    }

    fn check(s: &MemState) -> Result<(), KvError> {
        Self::check_power(s)?;
        if s.failing {
            Err(KvError("simulated read error".into()))
        } else {
            Ok(())
        }
    }
}

impl Segments for MemKv {
    fn seg_append(&self, kind: SegKind, seg: u64, bytes: &[u8]) -> Result<u64, KvError> {
        let mut s = self.state();
        Self::write_allowed(&mut s)?;
        let seg = s.segs.entry((kind, seg)).or_default();
        let at = seg.bytes.len() as u64;
        seg.bytes.extend_from_slice(bytes);
        Ok(at)
    }
    fn seg_sync(&self, kind: SegKind, seg: u64) -> Result<(), KvError> {
        let mut s = self.state();
        Self::write_allowed(&mut s)?;
        let g = s
            .segs
            .get_mut(&(kind, seg))
            .ok_or_else(|| KvError(format!("{} segment {seg}: missing", kind.name())))?;
        g.synced = g.bytes.len();
        Ok(())
    }
    fn seg_read(&self, kind: SegKind, seg: u64, offset: u64, len: u64) -> Result<Vec<u8>, KvError> {
        let s = self.state();
        Self::check(&s)?;
        let bytes = s
            .segs
            .get(&(kind, seg))
            .map(|g| g.bytes.as_slice())
            .unwrap_or(&[]);
        usize::try_from(offset)
            .ok()
            .zip(usize::try_from(offset.saturating_add(len)).ok())
            .and_then(|(from, to)| bytes.get(from..to))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| KvError(format!("{} segment {seg}: read past its end", kind.name())))
    }
    fn seg_truncate(&self, kind: SegKind, seg: u64, len: u64) -> Result<(), KvError> {
        let mut s = self.state();
        Self::check_power(&s)?;
        if let Some(g) = s.segs.get_mut(&(kind, seg)) {
            g.bytes.truncate(len as usize);
            g.synced = g.synced.min(g.bytes.len());
        }
        Ok(())
    }
    fn seg_remove(&self, kind: SegKind, seg: u64) -> Result<(), KvError> {
        let mut s = self.state();
        Self::check_power(&s)?;
        s.segs.remove(&(kind, seg));
        Ok(())
    }
    fn seg_list(&self, kind: SegKind) -> Result<Vec<(u64, u64)>, KvError> {
        let s = self.state();
        Self::check(&s)?;
        Ok(s.segs
            .range((kind, 0)..=(kind, u64::MAX))
            .map(|((_, n), g)| (*n, g.bytes.len() as u64))
            .collect())
    }
}

impl Kv for MemKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let s = self.state();
        Self::check(&s)?;
        Ok(s.live.get(key).cloned())
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, KvError> {
        let s = self.state();
        Self::check(&s)?;
        Ok(s.live
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
    fn scan_page(&self, prefix: &[u8], from: &[u8], limit: usize) -> Result<Entries, KvError> {
        let s = self.state();
        Self::check(&s)?;
        Ok(s.live
            .range(from.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
    fn last_key(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let s = self.state();
        Self::check(&s)?;
        Ok(s.live
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .last()
            .map(|(k, _)| k.clone()))
    }
    fn scan_prefix_first(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let s = self.state();
        Self::check(&s)?;
        Ok(s.live
            .range(prefix.to_vec()..)
            .next()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone()))
    }
    fn last_in(&self, from: &[u8], to: &[u8]) -> Result<Option<Entry>, KvError> {
        let s = self.state();
        Self::check(&s)?;
        Ok(s.live
            .range(from.to_vec()..=to.to_vec())
            .next_back()
            .map(|(k, v)| (k.clone(), v.clone())))
    }
    fn apply(&self, batch: KvBatch) -> Result<(), KvError> {
        let mut s = self.state();
        Self::write_allowed(&mut s)?;
        for (k, v) in &batch.ops {
            match v {
                Some(v) => s.live.insert(k.clone(), v.clone()),
                None => s.live.remove(k),
            };
        }
        s.unflushed.push(batch);
        Ok(())
    }
    fn usage(&self) -> Result<BTreeMap<u8, (u64, u64)>, KvError> {
        let s = self.state();
        Self::check(&s)?;
        let mut out = BTreeMap::new();
        for (k, v) in &s.live {
            tally(&mut out, k, v);
        }
        Ok(out)
    }
    fn flush(&self) -> Result<(), KvError> {
        let mut s = self.state();
        Self::write_allowed(&mut s)?;
        let batches = std::mem::take(&mut s.unflushed);
        for batch in batches {
            for (k, v) in batch.ops {
                match v {
                    Some(v) => s.durable.insert(k, v),
                    None => s.durable.remove(&k),
                };
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_loses_exactly_the_unflushed_batches() {
        let kv = MemKv::default();
        let mut a = KvBatch::default();
        a.insert(b"a1", b"1".to_vec());
        a.insert(b"a2", b"2".to_vec());
        kv.apply(a).unwrap();
        kv.flush().unwrap();
        let mut b = KvBatch::default();
        b.insert(b"b1", b"3".to_vec());
        b.remove(b"a1");
        kv.apply(b).unwrap();
        assert_eq!(kv.get(b"a1").unwrap(), None, "reads see unflushed writes");
        assert_eq!(kv.scan_prefix(b"b").unwrap().len(), 1);
        assert_eq!(kv.unflushed_batches(), 1);
        kv.crash();
        assert_eq!(kv.get(b"a1").unwrap(), Some(b"1".to_vec()));
        assert_eq!(kv.get(b"b1").unwrap(), None);
        assert_eq!(kv.last_key(b"a").unwrap(), Some(b"a2".to_vec()));
        assert_eq!(
            kv.last_in(b"a0", b"a1z").unwrap(),
            Some((b"a1".to_vec(), b"1".to_vec()))
        );
        assert_eq!(kv.last_in(b"a3", b"a9").unwrap(), None);
        kv.set_failing(true);
        assert!(kv.get(b"a1").is_err());
    }

    #[test]
    fn a_power_cut_at_a_write_keeps_only_what_was_flushed_before_it() {
        let kv = MemKv::default();
        let batch = |k: &[u8]| {
            let mut b = KvBatch::default();
            b.insert(k, b"v".to_vec());
            b
        };
        kv.apply(batch(b"durable")).unwrap();
        // Cut at the second write from now: the apply goes through, its flush does not.
        kv.cut_power_at_write(1);
        kv.apply(batch(b"applied")).unwrap();
        assert!(!kv.power_cut());
        assert!(kv.flush().is_err());
        assert!(kv.power_cut());
        assert!(kv.get(b"durable").is_err(), "nothing answers in the dark");
        assert!(kv.apply(batch(b"later")).is_err());
        kv.crash();
        assert!(!kv.power_cut());
        assert_eq!(kv.get(b"durable").unwrap(), None, "never flushed");
        assert_eq!(kv.get(b"applied").unwrap(), None);
        assert_eq!(kv.get(b"later").unwrap(), None);
        // Cut at the next write: that batch never lands.
        kv.apply(batch(b"kept")).unwrap();
        kv.flush().unwrap();
        kv.cut_power_at_write(0);
        assert!(kv.apply(batch(b"lost")).is_err());
        kv.crash();
        assert_eq!(kv.get(b"kept").unwrap(), Some(b"v".to_vec()));
        assert_eq!(kv.get(b"lost").unwrap(), None);
    }
}
