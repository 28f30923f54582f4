//! One record per height in a series of [`Segments`](crate::segments): how records are
//! appended and found, where a series ends, what a crash leaves to cut off, and which
//! segments pruning frees.
//!
//! A record is appended to the series' current segment and synced before the block's
//! batch records where it is (`M <end key>`: the current segment and its length after the
//! record), so sled never points past what is on disk. A segment takes heights until it
//! holds `max_bytes` or spans `max_heights` heights; it is deleted whole once every
//! height in it is pruned, which is why it is kept small next to a retained window.

use super::{enc, prefixed, KvBatch, Store, StoreError, META};
use crate::segments::SegKind;
use borsh::{BorshDeserialize, BorshSerialize};

/// Where a record is: `len` bytes of segment `segment` from `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub(super) struct RecordAt {
    pub segment: u64,
    pub offset: u64,
    pub len: u32,
}

/// `M <end key>`: the series' last segment and its recorded length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
struct SeriesEnd {
    segment: u64,
    len: u64,
}

pub(super) struct SegLog {
    pub kind: SegKind,
    end_key: &'static [u8],
    max_bytes: u64,
    max_heights: u64,
    /// Segments numbered 1, 2, 3... instead of by their first height (a series with
    /// several records per height, or none pruned by height; `max_heights` is then
    /// `u64::MAX`).
    sequential: bool,
}

/// Undo records: ~700 KB a block with 1,000,000 accounts under load, kept for
/// `state_versions` (100) heights: segments of ~20 such heights.
pub(super) const HISTORY: SegLog = SegLog {
    kind: SegKind::History,
    end_key: b"history",
    max_bytes: 16 * 1024 * 1024,
    max_heights: 1_000,
    sequential: false,
};

/// Blocks with their results, kept for `retain_blocks` heights (or for ever).
pub(super) const BLOCKS: SegLog = SegLog {
    kind: SegKind::Blocks,
    end_key: b"blocks",
    max_bytes: 32 * 1024 * 1024,
    max_heights: 10_000,
    sequential: false,
};

/// The latest values of the Merkle tree's buckets and nodes (~66 MB live with 1,000,000
/// accounts), rewritten ~0.5 MB a block under load: small segments, so a compaction
/// (`tree_log`) copies little to free one.
pub(super) const TREE: SegLog = SegLog {
    kind: SegKind::Tree,
    end_key: b"tree",
    max_bytes: 8 * 1024 * 1024,
    max_heights: u64::MAX,
    sequential: true,
};

impl SegLog {
    fn end(&self, store: &Store) -> Result<Option<SeriesEnd>, StoreError> {
        store.get(&prefixed(META, self.end_key))
    }

    /// Appends `height`'s record and syncs it; adds the series' new end to `batch`.
    pub fn append(
        &self,
        store: &Store,
        batch: &mut KvBatch,
        height: u64,
        record: &[u8],
    ) -> Result<RecordAt, StoreError> {
        let segment = match self.end(store)? {
            Some(e)
                if e.len < self.max_bytes
                    && height.saturating_sub(e.segment) < self.max_heights =>
            {
                e.segment
            }
            Some(e) if self.sequential => e.segment + 1,
            None if self.sequential => 1,
            _ => height,
        };
        let offset = store.db.seg_append(self.kind, segment, record)?;
        store.db.seg_sync(self.kind, segment)?;
        let len = u32::try_from(record.len()).map_err(|_| StoreError::Corrupt {
            key: format!("{} record of height {height}", self.kind.name()),
            reason: format!("{} bytes, more than a record holds", record.len()),
        })?;
        let end = SeriesEnd {
            segment,
            len: offset + u64::from(len),
        };
        batch.insert(prefixed(META, self.end_key), enc(&end));
        Ok(RecordAt {
            segment,
            offset,
            len,
        })
    }

    /// `len` bytes of the record at `at`, from `from` within it.
    pub fn read(
        &self,
        store: &Store,
        at: &RecordAt,
        from: u32,
        len: u32,
    ) -> Result<Vec<u8>, StoreError> {
        if u64::from(from) + u64::from(len) > u64::from(at.len) {
            return Err(StoreError::Corrupt {
                key: format!("{} segment {}", self.kind.name(), at.segment),
                reason: format!("a read of {from}+{len} in a record of {}", at.len),
            });
        }
        Ok(store.db.seg_read(
            self.kind,
            at.segment,
            at.offset + u64::from(from),
            u64::from(len),
        )?)
    }

    /// Makes the series agree with the key space after a crash: bytes past the recorded end
    /// are cut off and segments after it deleted; a series shorter than recorded is
    /// corrupt.
    pub fn recover(&self, store: &Store) -> Result<(), StoreError> {
        let end = self.end(store)?;
        for (segment, len) in store.db.seg_list(self.kind)? {
            match end {
                Some(e) if segment < e.segment => {}
                Some(e) if segment == e.segment && len >= e.len => {
                    if len > e.len {
                        store.db.seg_truncate(self.kind, segment, e.len)?;
                    }
                }
                Some(e) if segment == e.segment => {
                    return Err(StoreError::Corrupt {
                        key: format!("{} segment {segment}", self.kind.name()),
                        reason: format!("{len} bytes where {} were recorded", e.len),
                    })
                }
                _ => store.db.seg_remove(self.kind, segment)?,
            }
        }
        Ok(())
    }

    /// Deletes the segments every height of which is at most `pruned` (a segment ends where
    /// the next begins; the last one is never deleted).
    pub fn remove_through(&self, store: &Store, pruned: u64) -> Result<(), StoreError> {
        let segments = store.db.seg_list(self.kind)?;
        for pair in segments.windows(2) {
            if pair[1].0 <= pruned.saturating_add(1) {
                store.db.seg_remove(self.kind, pair[0].0)?;
            }
        }
        Ok(())
    }

    /// Deletes the segments numbered below `first_kept`.
    pub fn remove_below(&self, store: &Store, first_kept: u64) -> Result<(), StoreError> {
        for (segment, _) in store.db.seg_list(self.kind)? {
            if segment < first_kept {
                store.db.seg_remove(self.kind, segment)?;
            }
        }
        Ok(())
    }

    /// Deletes every segment and the recorded end (a genesis state that never completed).
    pub fn clear(&self, store: &Store, batch: &mut KvBatch) -> Result<(), StoreError> {
        self.remove_below(store, u64::MAX)?;
        batch.remove(prefixed(META, self.end_key));
        Ok(())
    }

    /// The segments with their lengths, in order.
    pub fn segments(&self, store: &Store) -> Result<Vec<(u64, u64)>, StoreError> {
        Ok(store.db.seg_list(self.kind)?)
    }

    /// `len` bytes of `segment` from `offset`, across records.
    pub fn read_segment(
        &self,
        store: &Store,
        segment: u64,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, StoreError> {
        Ok(store.db.seg_read(self.kind, segment, offset, len)?)
    }

    /// Bytes in the series' files.
    pub fn bytes(&self, store: &Store) -> Result<u64, StoreError> {
        Ok(store.db.seg_list(self.kind)?.iter().map(|(_, l)| l).sum())
    }
}
