//! The transaction index as sorted runs in segment files: a log-structured merge tree
//! without a memtable, written only by the indexer's thread.
//!
//! Why not sled: every indexed transfer cost three random sled inserts (its location by
//! hash, its sender's and its recipient's entries), each rewriting a different leaf page,
//! and a kv-indexing full node fell further behind a saturated chain every second
//! (docs/performance.md). Here the indexer sorts a batch of blocks' entries in memory and
//! writes them once, sequentially, as a run; runs of one level are merged [`FANOUT`] at a
//! time into one of the next level (a streaming merge), so an entry is rewritten about
//! once per level, always sequentially. Pruned heights are dropped by merges, a run wholly
//! below the earliest kept height is deleted, and a mostly pruned one is rewritten alone:
//! the space comes back.
//!
//! A run file is blocks of about [`BLOCK_BYTES`] of entries `[u16 key length][key][u32
//! value length][value]` in key order, then its [`Directory`] (each block's first key and
//! offset, and a Bloom filter over the entries' lookup keys). A run exists once sled holds
//! its [`RunMeta`] (`X id`), written after the file is synced; a file without one (a crash
//! in between, or after a merge's batch) is deleted when the store opens. The keys are the
//! ones the index had in sled: `T hash` → [`super::TxLocation`], `I key 0 value 0 height`
//! → the block's matching transaction hashes.

use super::{decode, enc, Store, StoreError, INDEX, TX};
use crate::kv::{Entries, Entry, KvBatch};
use crate::segments::SegKind;
use basalt_types::Hash;
use borsh::{BorshDeserialize, BorshSerialize};
use std::sync::{Arc, Mutex, RwLock};

/// `X id` → [`RunMeta`].
pub(super) const RUN: u8 = b'X';
/// Bytes of entries per block of a run: what a lookup reads per run its filter lets through.
const BLOCK_BYTES: usize = 16 * 1024;
/// Runs of one level merged into one of the next.
const FANOUT: usize = 8;
/// Entries that end a new run (at least one block goes in whatever its size): ~6 MiB
/// sorted in memory.
pub(super) const NEW_RUN_ENTRIES: usize = 65_536;
const BLOOM_BITS_PER_KEY: u64 = 10;
const BLOOM_PROBES: u64 = 7;

#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub(super) struct RunMeta {
    level: u8,
    /// Every entry's height is in `from..=to`.
    from: u64,
    to: u64,
    entries: u64,
    /// Where the [`Directory`] starts; it ends at `len`, the file's length.
    dir_at: u64,
    len: u64,
}

#[derive(Debug, BorshSerialize, BorshDeserialize)]
struct Directory {
    /// Each block's first key and offset; a block ends where the next starts.
    blocks: Vec<(Vec<u8>, u64)>,
    /// Bloom filter bits over [`lookup_key`]s.
    bloom: Vec<u64>,
}

pub(super) struct Run {
    id: u64,
    meta: RunMeta,
    dir: Directory,
}

/// The runs in id (age) order, loaded once and replaced after each change.
#[derive(Default)]
pub(super) struct RunSet {
    runs: RwLock<Option<Arc<Vec<Arc<Run>>>>>,
    /// Held to change the recorded runs; holds the next run id (0: not known yet).
    writer: Mutex<u64>,
    /// Held through an upkeep step, which may run beside the writing of a new run.
    upkeep: Mutex<()>,
}

/// The height an index entry belongs to.
fn entry_height(key: &[u8], value: &[u8]) -> u64 {
    match key.first() {
        Some(&TX) => borsh::from_slice::<super::TxLocation>(value)
            .map(|at| at.height)
            .unwrap_or(0),
        _ => key
            .len()
            .checked_sub(8)
            .and_then(|at| key[at..].try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0),
    }
}

/// What the Bloom filter holds for an entry: a location's whole key (looked up by hash), an
/// attribute entry's key without its height (looked up by prefix).
fn lookup_key(key: &[u8]) -> &[u8] {
    match key.first() {
        Some(&INDEX) if key.len() >= 9 => &key[..key.len() - 8],
        _ => key,
    }
}

fn probes(key: &[u8], bits: u64) -> impl Iterator<Item = u64> {
    let d = Hash::digest(key);
    let b = d.as_bytes();
    let h1 = u64::from_le_bytes(b[0..8].try_into().unwrap_or_default());
    let h2 = u64::from_le_bytes(b[8..16].try_into().unwrap_or_default()) | 1;
    (0..BLOOM_PROBES).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % bits)
}

impl Directory {
    fn may_hold(&self, lookup: &[u8]) -> bool {
        let bits = self.bloom.len() as u64 * 64;
        bits == 0
            || probes(lookup, bits).all(|p| self.bloom[(p / 64) as usize] & (1 << (p % 64)) != 0)
    }
}

fn corrupt(id: u64, reason: &str) -> StoreError {
    StoreError::Corrupt {
        key: format!("tx index run {id}"),
        reason: reason.into(),
    }
}

/// Splits a block's bytes into its entries.
fn parse_block(id: u64, bytes: &[u8]) -> Result<Entries, StoreError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    let take = |at: &mut usize, n: usize| -> Result<&[u8], StoreError> {
        let s = bytes
            .get(*at..*at + n)
            .ok_or_else(|| corrupt(id, "an entry runs past its block"))?;
        *at += n;
        Ok(s)
    };
    while at < bytes.len() {
        let klen = u16::from_le_bytes(take(&mut at, 2)?.try_into().unwrap_or_default()) as usize;
        let key = take(&mut at, klen)?.to_vec();
        let vlen = u32::from_le_bytes(take(&mut at, 4)?.try_into().unwrap_or_default()) as usize;
        let value = take(&mut at, vlen)?.to_vec();
        out.push((key, value));
    }
    Ok(out)
}

impl Run {
    fn block_span(&self, i: usize) -> (u64, u64) {
        let start = self.dir.blocks[i].1;
        let end = self
            .dir
            .blocks
            .get(i + 1)
            .map(|b| b.1)
            .unwrap_or(self.meta.dir_at);
        (start, end)
    }

    fn block(&self, store: &Store, i: usize) -> Result<Entries, StoreError> {
        let (start, end) = self.block_span(i);
        let bytes = store
            .db
            .seg_read(SegKind::Index, self.id, start, end.saturating_sub(start))?;
        parse_block(self.id, &bytes)
    }

    fn get(&self, store: &Store, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if !self.dir.may_hold(lookup_key(key)) {
            return Ok(None);
        }
        let i = self
            .dir
            .blocks
            .partition_point(|(first, _)| first.as_slice() <= key);
        if i == 0 {
            return Ok(None);
        }
        Ok(self
            .block(store, i - 1)?
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v))
    }

    /// Entries whose key starts with `prefix`, in key order.
    fn scan(
        &self,
        store: &Store,
        prefix: &[u8],
        out: &mut Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        let first = self
            .dir
            .blocks
            .partition_point(|(k, _)| k.as_slice() < prefix)
            .saturating_sub(1);
        for i in first..self.dir.blocks.len() {
            // Blocks after `first` start at or above `prefix`: one that does not start with
            // it starts past every key that does.
            if i > first && !self.dir.blocks[i].0.starts_with(prefix) {
                break;
            }
            for (k, v) in self.block(store, i)? {
                if k.starts_with(prefix) {
                    out.push((k, v));
                } else if k.as_slice() > prefix {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// Reads a run's entries in key order, one block at a time (merges).
struct RunReader<'a> {
    store: &'a Store,
    run: &'a Run,
    next_block: usize,
    entries: std::vec::IntoIter<(Vec<u8>, Vec<u8>)>,
}

impl RunReader<'_> {
    fn next(&mut self) -> Result<Option<Entry>, StoreError> {
        loop {
            if let Some(e) = self.entries.next() {
                return Ok(Some(e));
            }
            if self.next_block >= self.run.dir.blocks.len() {
                return Ok(None);
            }
            self.entries = self.run.block(self.store, self.next_block)?.into_iter();
            self.next_block += 1;
        }
    }
}

/// Writes a run's file: entries in key order, then the directory; synced at [`finish`].
struct RunWriter<'a> {
    store: &'a Store,
    id: u64,
    level: u8,
    block: Vec<u8>,
    written: u64,
    blocks: Vec<(Vec<u8>, u64)>,
    bloom: Vec<u64>,
    entries: u64,
    from: u64,
    to: u64,
}

impl<'a> RunWriter<'a> {
    fn new(store: &'a Store, id: u64, level: u8, expected: u64) -> Result<Self, StoreError> {
        // A file left by a crash under this id holds nothing that is recorded.
        store.db.seg_remove(SegKind::Index, id)?;
        let words = (expected.max(1) * BLOOM_BITS_PER_KEY).div_ceil(64) as usize;
        Ok(RunWriter {
            store,
            id,
            level,
            block: Vec::with_capacity(BLOCK_BYTES + 1024),
            written: 0,
            blocks: Vec::new(),
            bloom: vec![0; words],
            entries: 0,
            from: u64::MAX,
            to: 0,
        })
    }

    fn add(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        if self.block.is_empty() {
            self.blocks.push((key.to_vec(), self.written));
        }
        self.block
            .extend_from_slice(&(key.len() as u16).to_le_bytes());
        self.block.extend_from_slice(key);
        self.block
            .extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.block.extend_from_slice(value);
        let bits = self.bloom.len() as u64 * 64;
        for p in probes(lookup_key(key), bits) {
            self.bloom[(p / 64) as usize] |= 1 << (p % 64);
        }
        let h = entry_height(key, value);
        self.from = self.from.min(h);
        self.to = self.to.max(h);
        self.entries += 1;
        if self.block.len() >= BLOCK_BYTES {
            self.flush_block()?;
        }
        Ok(())
    }

    fn flush_block(&mut self) -> Result<(), StoreError> {
        if !self.block.is_empty() {
            self.store
                .db
                .seg_append(SegKind::Index, self.id, &self.block)?;
            self.written += self.block.len() as u64;
            self.block.clear();
        }
        Ok(())
    }

    /// Writes the directory and syncs; `None` for a run without entries (no file kept).
    fn finish(mut self) -> Result<Option<Run>, StoreError> {
        self.flush_block()?;
        if self.entries == 0 {
            self.store.db.seg_remove(SegKind::Index, self.id)?;
            return Ok(None);
        }
        let dir = Directory {
            blocks: self.blocks,
            bloom: self.bloom,
        };
        let bytes = enc(&dir);
        self.store.db.seg_append(SegKind::Index, self.id, &bytes)?;
        self.store.db.seg_sync(SegKind::Index, self.id)?;
        let meta = RunMeta {
            level: self.level,
            from: self.from,
            to: self.to,
            entries: self.entries,
            dir_at: self.written,
            len: self.written + bytes.len() as u64,
        };
        Ok(Some(Run {
            id: self.id,
            meta,
            dir,
        }))
    }
}

fn run_key(id: u64) -> [u8; 9] {
    super::key(RUN, id)
}

impl Store {
    /// The index's runs, oldest first.
    fn runs(&self) -> Result<Arc<Vec<Arc<Run>>>, StoreError> {
        if let Some(runs) = self.index_runs.runs.read().map_err(|_| poisoned())?.clone() {
            return Ok(runs);
        }
        // Loaded under the writer's lock: a list read from sled just before a writer's
        // batch must not replace the list that writer sets after it.
        let _writer = self.index_runs.writer.lock().map_err(|_| poisoned())?;
        self.runs_under_lock()
    }

    /// [`Store::runs`] for a caller that holds the writer's lock.
    fn runs_under_lock(&self) -> Result<Arc<Vec<Arc<Run>>>, StoreError> {
        if let Some(runs) = self.index_runs.runs.read().map_err(|_| poisoned())?.clone() {
            return Ok(runs);
        }
        let mut runs = Vec::new();
        for (k, v) in self.db.scan_prefix(&[RUN])? {
            let meta: RunMeta = decode(&k, &v)?;
            let id = u64::from_be_bytes(k[1..9].try_into().map_err(|_| corrupt(0, "bad key"))?);
            let bytes = self.db.seg_read(
                SegKind::Index,
                id,
                meta.dir_at,
                meta.len.saturating_sub(meta.dir_at),
            )?;
            let dir: Directory =
                borsh::from_slice(&bytes).map_err(|e| corrupt(id, &format!("directory: {e}")))?;
            runs.push(Arc::new(Run { id, meta, dir }));
        }
        let runs = Arc::new(runs);
        *self.index_runs.runs.write().map_err(|_| poisoned())? = Some(runs.clone());
        Ok(runs)
    }

    fn set_runs(&self, runs: Vec<Arc<Run>>) -> Result<(), StoreError> {
        *self.index_runs.runs.write().map_err(|_| poisoned())? = Some(Arc::new(runs));
        Ok(())
    }

    /// Runs `read` over the runs; a run merged away under it (its file deleted) makes it
    /// retry once over the new set.
    fn with_runs<T>(
        &self,
        read: impl Fn(&[Arc<Run>]) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match read(&self.runs()?) {
            Ok(t) => Ok(t),
            Err(_) => {
                *self.index_runs.runs.write().map_err(|_| poisoned())? = None;
                read(&self.runs()?)
            }
        }
    }

    /// The value of index key `key`, the newest run's if several hold it.
    pub(super) fn index_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_runs(|runs| {
            for run in runs.iter().rev() {
                if let Some(v) = run.get(self, key)? {
                    return Ok(Some(v));
                }
            }
            Ok(None)
        })
    }

    /// Index entries whose key starts with `prefix`, in key order. `filtered`: the prefix is
    /// a whole lookup key (skip runs whose filter says they lack it).
    pub(super) fn index_scan(&self, prefix: &[u8], filtered: bool) -> Result<Entries, StoreError> {
        self.with_runs(|runs| {
            let mut out = Vec::new();
            for run in runs.iter() {
                if !filtered || run.dir.may_hold(prefix) {
                    run.scan(self, prefix, &mut out)?;
                }
            }
            out.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(out)
        })
    }

    /// Bytes of the index's files.
    pub(super) fn index_bytes(&self) -> Result<u64, StoreError> {
        Ok(self.runs()?.iter().map(|r| r.meta.len).sum())
    }

    /// Deletes run files that sled does not record (a crash between a file and its
    /// batch). When a recorded run's file is missing or short (sled lost the tail of its
    /// log and went back to before a merge whose inputs are gone), the index is rebuilt
    /// from the stored blocks: it holds nothing else. Run at start, before the indexer.
    pub(super) fn recover_index(&self) -> Result<(), StoreError> {
        *self.index_runs.runs.write().map_err(|_| poisoned())? = None;
        let files = self.db.seg_list(SegKind::Index)?;
        let mut metas = Vec::new();
        for (k, v) in self.db.scan_prefix(&[RUN])? {
            let id = k
                .get(1..9)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes);
            metas.push((k.clone(), id, decode::<RunMeta>(&k, &v).ok()));
        }
        let intact = metas.iter().all(|(_, id, meta)| {
            let len = files.iter().find(|f| Some(f.0) == *id).map(|f| f.1);
            matches!((len, meta), (Some(len), Some(m)) if len >= m.len)
        }) && self.runs().is_ok();
        if !intact {
            tracing::warn!(
                runs = metas.len(),
                "the transaction index does not match its files: rebuilding it from the blocks"
            );
            let mut batch = KvBatch::default();
            for (k, _, _) in &metas {
                batch.remove(k);
            }
            batch.remove(super::prefixed(super::META, b"indexed"));
            self.db.apply(batch)?;
            self.db.flush()?;
            *self.index_runs.runs.write().map_err(|_| poisoned())? = None;
        }
        let runs = self.runs()?;
        for (id, _) in files {
            if !runs.iter().any(|r| r.id == id) {
                self.db.seg_remove(SegKind::Index, id)?;
            }
        }
        Ok(())
    }

    /// A fresh run id (above every recorded one and every one handed out).
    fn alloc_run_id(&self) -> Result<u64, StoreError> {
        let floor = self.runs()?.iter().map(|r| r.id + 1).max().unwrap_or(1);
        let mut next = self.index_runs.writer.lock().map_err(|_| poisoned())?;
        let id = (*next).max(floor);
        *next = id + 1;
        Ok(id)
    }

    /// Writes `entries` (any order) as a new run and records it with the index's progress
    /// height `indexed` in one batch.
    pub(super) fn write_new_run(
        &self,
        mut entries: Vec<(Vec<u8>, Vec<u8>)>,
        indexed: u64,
    ) -> Result<(), StoreError> {
        // Stable: of two entries with one key (a transaction included twice) the later wins.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut w = RunWriter::new(self, self.alloc_run_id()?, 0, entries.len() as u64)?;
        for (i, (k, v)) in entries.iter().enumerate() {
            if entries.get(i + 1).is_some_and(|next| &next.0 == k) {
                continue;
            }
            w.add(k, v)?;
        }
        let run = w.finish()?;
        let mut batch = KvBatch::default();
        batch.insert(super::prefixed(super::META, b"indexed"), enc(&indexed));
        if let Some(run) = &run {
            batch.insert(run_key(run.id), enc(&run.meta));
        }
        let _writer = self.index_runs.writer.lock().map_err(|_| poisoned())?;
        self.db.apply(batch)?;
        if let Some(run) = run {
            let mut runs: Vec<Arc<Run>> = self.runs_under_lock()?.as_ref().clone();
            runs.push(Arc::new(run));
            runs.sort_by_key(|r| r.id);
            self.set_runs(runs)?;
        }
        Ok(())
    }

    /// One step of the index's upkeep, if one is due: deletes the runs wholly below the
    /// earliest kept height, or rewrites one mostly below it, or merges the oldest
    /// [`FANOUT`] runs of the lowest full level. Returns whether it did anything.
    pub fn maintain_index(&self) -> Result<bool, StoreError> {
        let _upkeep = self.index_runs.upkeep.lock().map_err(|_| poisoned())?;
        let runs = self.runs()?;
        let earliest = self.earliest_height()?.unwrap_or(0);
        let pruned: Vec<Arc<Run>> = runs
            .iter()
            .filter(|r| r.meta.to < earliest)
            .cloned()
            .collect();
        if !pruned.is_empty() {
            self.replace_runs(&pruned, None)?;
            return Ok(true);
        }
        if let Some(run) = runs.iter().find(|r| {
            r.meta.from < earliest && earliest - r.meta.from > (r.meta.to - r.meta.from) / 2
        }) {
            let merged = self.merge(std::slice::from_ref(run), run.meta.level, earliest)?;
            self.replace_runs(std::slice::from_ref(run), merged)?;
            return Ok(true);
        }
        for level in 0..=u8::MAX {
            let of_level: Vec<Arc<Run>> = runs
                .iter()
                .filter(|r| r.meta.level == level)
                .take(FANOUT)
                .cloned()
                .collect();
            if of_level.is_empty() && !runs.iter().any(|r| r.meta.level > level) {
                break;
            }
            if of_level.len() == FANOUT {
                let merged = self.merge(&of_level, level.saturating_add(1), earliest)?;
                self.replace_runs(&of_level, merged)?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Streams `inputs` into one new run at `level`, dropping entries below `earliest`.
    fn merge(
        &self,
        inputs: &[Arc<Run>],
        level: u8,
        earliest: u64,
    ) -> Result<Option<Run>, StoreError> {
        let expected = inputs.iter().map(|r| r.meta.entries).sum();
        let mut w = RunWriter::new(self, self.alloc_run_id()?, level, expected)?;
        let mut readers: Vec<RunReader> = inputs
            .iter()
            .map(|run| RunReader {
                store: self,
                run,
                next_block: 0,
                entries: Vec::new().into_iter(),
            })
            .collect();
        let mut heads = Vec::with_capacity(readers.len());
        for r in readers.iter_mut() {
            heads.push(r.next()?);
        }
        loop {
            // The smallest key; on a tie the newest input's entry wins and the others go.
            let mut best: Option<usize> = None;
            for (i, head) in heads.iter().enumerate() {
                if let Some((k, _)) = head {
                    match best.and_then(|b| heads[b].as_ref()) {
                        Some((bk, _)) if bk < k => {}
                        _ => best = Some(i),
                    }
                }
            }
            let Some(b) = best else { break };
            let Some((key, value)) = heads[b].take() else {
                break;
            };
            for (i, head) in heads.iter_mut().enumerate() {
                if i == b || head.as_ref().is_some_and(|(k, _)| *k == key) {
                    *head = readers[i].next()?;
                }
            }
            if entry_height(&key, &value) >= earliest {
                w.add(&key, &value)?;
            }
        }
        w.finish()
    }

    /// Records `added` in place of `removed` in one batch, makes it durable, then deletes
    /// the removed runs' files (a crash before the flush leaves the old runs recorded and
    /// their files in place).
    fn replace_runs(&self, removed: &[Arc<Run>], added: Option<Run>) -> Result<(), StoreError> {
        let mut batch = KvBatch::default();
        for r in removed {
            batch.remove(run_key(r.id));
        }
        if let Some(run) = &added {
            batch.insert(run_key(run.id), enc(&run.meta));
        }
        {
            let _writer = self.index_runs.writer.lock().map_err(|_| poisoned())?;
            self.db.apply(batch)?;
            self.db.flush()?;
            let mut next: Vec<Arc<Run>> = self
                .runs_under_lock()?
                .iter()
                .filter(|r| !removed.iter().any(|x| x.id == r.id))
                .cloned()
                .collect();
            if let Some(run) = added {
                next.push(Arc::new(run));
            }
            next.sort_by_key(|r| r.id);
            self.set_runs(next)?;
        }
        for r in removed {
            self.db.seg_remove(SegKind::Index, r.id)?;
        }
        Ok(())
    }

    /// The index's runs as (level, from, to, entries), oldest first (tests, benchmarks).
    #[cfg(test)]
    pub(super) fn index_run_shapes(&self) -> Vec<(u8, u64, u64, u64)> {
        self.runs()
            .map(|runs| {
                runs.iter()
                    .map(|r| (r.meta.level, r.meta.from, r.meta.to, r.meta.entries))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn poisoned() -> StoreError {
    StoreError::Corrupt {
        key: "tx index runs".into(),
        reason: "a thread panicked while holding the run set".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_parse_back_and_a_truncated_one_is_an_error() {
        let store = Store::in_memory(&crate::kv::MemKv::default());
        let mut w = RunWriter::new(&store, 1, 0, 3).unwrap();
        let mut key = vec![TX];
        key.extend_from_slice(&[7; 32]);
        let loc = enc(&super::super::TxLocation {
            height: 5,
            index: 2,
        });
        w.add(&key, &loc).unwrap();
        let run = w.finish().unwrap().unwrap();
        assert_eq!((run.meta.from, run.meta.to, run.meta.entries), (5, 5, 1));
        assert_eq!(run.get(&store, &key).unwrap(), Some(loc.clone()));
        let mut other = key.clone();
        other[5] = 8;
        assert_eq!(run.get(&store, &other).unwrap(), None);
        let bytes = store
            .db
            .seg_read(SegKind::Index, 1, 0, run.meta.dir_at)
            .unwrap();
        assert_eq!(parse_block(1, &bytes).unwrap(), vec![(key, loc)]);
        assert!(parse_block(1, &bytes[..bytes.len() - 1]).is_err());
    }
}
