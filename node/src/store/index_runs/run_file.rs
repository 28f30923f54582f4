//! A run of the transaction index in its segment file: blocks of about [`BLOCK_BYTES`] of
//! entries `[u16 key length][key][u32 value length][value]` in key order, then its
//! [`Directory`] (each block's first key and offset, and a Bloom filter over the entries'
//! lookup keys); written once by [`RunWriter`], read by point lookup, prefix scan or, for
//! merges, in order by [`RunReader`].

use crate::kv::{Entries, Entry};
use crate::segments::SegKind;
use crate::store::{enc, index_key_height, Store, StoreError, TxLocation, INDEX, TX};
use basalt_types::Hash;
use borsh::{BorshDeserialize, BorshSerialize};

/// Bytes of entries per block of a run: what a lookup reads per run its filter lets through.
const BLOCK_BYTES: usize = 16 * 1024;
const BLOOM_BITS_PER_KEY: u64 = 10;
const BLOOM_PROBES: u64 = 7;

#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub(super) struct RunMeta {
    pub(super) level: u8,
    /// Every entry's height is in `from..=to`.
    pub(super) from: u64,
    pub(super) to: u64,
    pub(super) entries: u64,
    /// Where the [`Directory`] starts; it ends at `len`, the file's length.
    pub(super) dir_at: u64,
    pub(super) len: u64,
}

#[derive(Debug, BorshSerialize, BorshDeserialize)]
pub(super) struct Directory {
    /// Each block's first key and offset; a block ends where the next starts.
    blocks: Vec<(Vec<u8>, u64)>,
    /// Bloom filter bits over [`lookup_key`]s.
    bloom: Vec<u64>,
}

pub(super) struct Run {
    pub(super) id: u64,
    pub(super) meta: RunMeta,
    pub(super) dir: Directory,
}

/// The height an index entry belongs to.
pub(super) fn entry_height(key: &[u8], value: &[u8]) -> u64 {
    match key.first() {
        Some(&TX) => borsh::from_slice::<TxLocation>(value)
            .map(|at| at.height)
            .unwrap_or(0),
        _ => index_key_height(key).unwrap_or(0),
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
    pub(super) fn may_hold(&self, lookup: &[u8]) -> bool {
        let bits = self.bloom.len() as u64 * 64;
        bits == 0
            || probes(lookup, bits).all(|p| self.bloom[(p / 64) as usize] & (1 << (p % 64)) != 0)
    }
}

pub(super) fn corrupt(id: u64, reason: &str) -> StoreError {
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

    pub(super) fn get(&self, store: &Store, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
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
    pub(super) fn scan(
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
pub(super) struct RunReader<'a> {
    store: &'a Store,
    run: &'a Run,
    next_block: usize,
    entries: std::vec::IntoIter<(Vec<u8>, Vec<u8>)>,
}

impl<'a> RunReader<'a> {
    pub(super) fn new(store: &'a Store, run: &'a Run) -> Self {
        RunReader {
            store,
            run,
            next_block: 0,
            entries: Vec::new().into_iter(),
        }
    }

    pub(super) fn next(&mut self) -> Result<Option<Entry>, StoreError> {
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
pub(super) struct RunWriter<'a> {
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
    pub(super) fn new(
        store: &'a Store,
        id: u64,
        level: u8,
        expected: u64,
    ) -> Result<Self, StoreError> {
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

    pub(super) fn add(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
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
    pub(super) fn finish(mut self) -> Result<Option<Run>, StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_parse_back_and_a_truncated_one_is_an_error() {
        let store = Store::in_memory(&crate::kv::MemKv::default());
        let mut w = RunWriter::new(&store, 1, 0, 3).unwrap();
        let mut key = vec![TX];
        key.extend_from_slice(&[7; 32]);
        let loc = enc(&TxLocation {
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
