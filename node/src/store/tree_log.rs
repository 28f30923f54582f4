//! The latest values of the state's Merkle buckets and nodes, in a log of segment files
//! that the store compacts itself; sled holds only where each value is.
//!
//! Why: a block under load rewrites a few hundred 1 KB buckets and 512-byte inner nodes at
//! random. Kept as sled values, that was ~0.5 MB of random page rewrites a block, which
//! sled's segment cleaner never caught up with: with 1,000,000 accounts the data grew 0.46
//! MiB a block for as long as we ran it (25 minutes, 3.2 GiB). The same key count with
//! only small values stays flat in sled (measured with sled alone: accounts plus 730
//! 32-byte writes a block levelled off; accounts plus the buckets and nodes did not).
//!
//! So a block appends the tree values it writes to the current [`TREE`] segment as one
//! record of entries (`u16` key length, key, `u32` value length, value), syncs it, and
//! its batch sets each key's `L key` to a [`RecordAt`] of its value. A compaction keeps
//! the files at about twice the live bytes: while they exceed `2 × live + 16 MiB`, each
//! block also reads the next piece of the oldest segment from a cursor (`M tree_tail`),
//! as many bytes as it wrote and at least 1 MiB, and copies that piece's still-live
//! entries into its own record (a value is live when its key's location still points at
//! it). The work
//! is spread over blocks: copying a whole 8 MiB segment in one block put ~8,000 extra
//! random writes in one sled batch. Once the cursor passes a segment's end, the file is
//! deleted after the batch is durable (the next flush), or at the next start. A crash
//! anywhere leaves either the old locations, whose file is still there, or the new ones,
//! already synced.
//!
//! Undo records keep the values themselves, not their locations: a compaction never
//! changes what an old height reads.

use super::seglog::{RecordAt, TREE};
use super::state::LATEST;
use super::{enc, prefixed, KvBatch, Store, StoreError, META};
use borsh::{BorshDeserialize, BorshSerialize};
use std::collections::BTreeSet;

const LIVE: &[u8] = b"tree_live";
const TAIL: &[u8] = b"tree_tail";

/// A tree value to write: key, new value (`None` deletes), the length of the value it
/// replaces (`Some(None)`: none; `None`: not known).
pub(super) type TreeWrite<'a> = (&'a [u8], Option<&'a [u8]>, Option<Option<usize>>);

/// Slack above twice the live bytes before a segment is compacted.
const SLACK: u64 = 16 * 1024 * 1024;

/// Whether `key`'s latest value lives in the tree log (the tree's internal keys).
pub(super) fn is_logged(key: &[u8]) -> bool {
    key.first() == Some(&basalt_runtime::state::keys::INTERNAL)
}

fn entry_bytes(key_len: usize, value_len: u64) -> u64 {
    6 + key_len as u64 + value_len
}

/// Appends one entry to `record`; returns where its value starts within the record.
fn push_entry(record: &mut Vec<u8>, key: &[u8], value: &[u8]) -> Result<u64, StoreError> {
    let too_long = || StoreError::Corrupt {
        key: hex::encode(key),
        reason: "a Merkle tree key or value too long for the tree log".into(),
    };
    let key_len = u16::try_from(key.len()).map_err(|_| too_long())?;
    let value_len = u32::try_from(value.len()).map_err(|_| too_long())?;
    record.extend_from_slice(&key_len.to_le_bytes());
    record.extend_from_slice(key);
    record.extend_from_slice(&value_len.to_le_bytes());
    let at = record.len() as u64;
    record.extend_from_slice(value);
    Ok(at)
}

/// An entry of a segment piece: key, offset of the value in the piece, value length.
type Entry<'a> = (&'a [u8], u64, u32);

/// The whole entries at the start of `bytes` (a piece of a segment): (key, offset of the
/// value in `bytes`, value length), and how many bytes they take. An entry cut off by the
/// end of `bytes` is left out.
fn entries(bytes: &[u8]) -> (Vec<Entry<'_>>, usize) {
    let mut out = Vec::new();
    let mut at = 0usize;
    loop {
        let take = |from: usize, n: usize| bytes.get(from..from.checked_add(n)?);
        let Some(key_len) = take(at, 2).map(|b| u16::from_le_bytes([b[0], b[1]])) else {
            break;
        };
        let len_at = at + 2 + usize::from(key_len);
        let (Some(key), Some(len)) = (take(at + 2, usize::from(key_len)), take(len_at, 4)) else {
            break;
        };
        let value_len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]);
        let value_at = len_at + 4;
        if take(value_at, value_len as usize).is_none() {
            break;
        }
        out.push((key, value_at as u64, value_len));
        at = value_at + value_len as usize;
    }
    (out, at)
}

/// How far the compaction has got: the oldest segment still referenced and the offset in
/// it below which every entry was copied forward or dead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
struct Cursor {
    segment: u64,
    offset: u64,
}

impl Store {
    /// Where `key`'s latest tree value is (none: absent).
    fn tree_location(&self, key: &[u8]) -> Result<Option<RecordAt>, StoreError> {
        self.get(&prefixed(LATEST, key))
    }

    /// `key`'s latest value from the tree log. A compaction may move it and delete its old
    /// file during the read: then the location is read again.
    pub(super) fn tree_value(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let mut at = self.tree_location(key)?;
        loop {
            let Some(loc) = at else { return Ok(None) };
            match TREE.read(self, &loc, 0, loc.len) {
                Ok(v) => return Ok(Some(v)),
                Err(e) => {
                    let again = self.tree_location(key)?;
                    if again == at {
                        return Err(e);
                    }
                    at = again;
                }
            }
        }
    }

    /// Writes the tree values of `height` (`None` deletes) given with the length of the
    /// value each replaces (`Some(None)`: none; `None`: not known, read its location):
    /// appends them, with the live entries of a compacted piece if one is due, and adds
    /// their locations, the live byte count and the cursor to `batch`. Returns the segment
    /// a compaction emptied: the caller hands it to [`Store::tree_segment_emptied`] once
    /// the batch is applied.
    pub(super) fn put_tree_values(
        &self,
        batch: &mut KvBatch,
        height: u64,
        values: &[TreeWrite<'_>],
    ) -> Result<Option<u64>, StoreError> {
        if values.is_empty() {
            return Ok(None);
        }
        let mut live: u64 = self.get(&prefixed(META, LIVE))?.unwrap_or(0);
        let mut record = Vec::new();
        let mut placed: Vec<(Vec<u8>, u64, u32)> = Vec::new();
        for (key, value, old_len) in values {
            let old_len = match old_len {
                Some(len) => len.map(|l| l as u64),
                None => self.tree_location(key)?.map(|at| u64::from(at.len)),
            };
            if let Some(len) = old_len {
                live = live.saturating_sub(entry_bytes(key.len(), len));
            }
            match value {
                Some(v) => {
                    let at = push_entry(&mut record, key, v)?;
                    placed.push((key.to_vec(), at, v.len() as u32));
                    live += entry_bytes(key.len(), v.len() as u64);
                }
                None => batch.remove(prefixed(LATEST, key)),
            }
        }
        let emptied = self.compact_into(batch, &mut record, &mut placed, values, live)?;
        let at = TREE.append(self, batch, height, &record)?;
        for (key, offset, len) in placed {
            let loc = RecordAt {
                segment: at.segment,
                offset: at.offset + offset,
                len,
            };
            batch.insert(prefixed(LATEST, &key), enc(&loc));
        }
        batch.insert(prefixed(META, LIVE), enc(&live));
        Ok(emptied)
    }

    /// A batch that emptied `segment` was applied: its file goes at the next flush.
    pub(super) fn tree_segment_emptied(&self, segment: Option<u64>) {
        if let Some(segment) = segment {
            self.tree_garbage
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(segment);
        }
    }

    /// While the files hold more than `2 × live + SLACK` bytes, copies into `record` the
    /// live entries of the next piece of the oldest segment (as much as `record` holds
    /// and at least 1 MiB), except those this block rewrites, and adds the new cursor to
    /// `batch`. Returns the segment the cursor left behind, if it passed one's end.
    fn compact_into(
        &self,
        batch: &mut KvBatch,
        record: &mut Vec<u8>,
        placed: &mut Vec<(Vec<u8>, u64, u32)>,
        values: &[TreeWrite<'_>],
        live: u64,
    ) -> Result<Option<u64>, StoreError> {
        let mut cursor: Cursor = self.get(&prefixed(META, TAIL))?.unwrap_or_default();
        // Segments below the cursor are emptied already, waiting for a flush to go.
        let mut segments = TREE.segments(self)?;
        segments.retain(|(segment, _)| *segment >= cursor.segment);
        let [(oldest, len), (next, _), ..] = segments[..] else {
            return Ok(None);
        };
        if oldest != cursor.segment {
            cursor = Cursor {
                segment: oldest,
                offset: 0,
            };
        }
        let total: u64 = segments.iter().map(|(_, len)| len).sum::<u64>() - cursor.offset;
        if total <= 2 * live + SLACK {
            return Ok(None);
        }
        let budget = (record.len() as u64).max(1024 * 1024);
        let mut piece =
            TREE.read_segment(self, oldest, cursor.offset, budget.min(len - cursor.offset))?;
        let (mut found, mut used) = entries(&piece);
        if found.is_empty() && cursor.offset + (piece.len() as u64) < len {
            // One entry larger than the budget: read the rest of the segment.
            piece = TREE.read_segment(self, oldest, cursor.offset, len - cursor.offset)?;
            (found, used) = entries(&piece);
        }
        if found.is_empty() {
            return Err(StoreError::Corrupt {
                key: format!("tree segment {oldest}"),
                reason: format!("an entry cut short at byte {}", cursor.offset),
            });
        }
        let rewritten: BTreeSet<&[u8]> = values.iter().map(|(k, _, _)| *k).collect();
        for (key, offset, value_len) in found {
            if rewritten.contains(key) {
                continue;
            }
            let here = RecordAt {
                segment: oldest,
                offset: cursor.offset + offset,
                len: value_len,
            };
            if self.tree_location(key)? != Some(here) {
                continue;
            }
            let value = &piece[offset as usize..offset as usize + value_len as usize];
            let at = push_entry(record, key, value)?;
            placed.push((key.to_vec(), at, value_len));
        }
        cursor.offset += used as u64;
        let emptied = if cursor.offset >= len {
            cursor = Cursor {
                segment: next,
                offset: 0,
            };
            Some(oldest)
        } else {
            None
        };
        batch.insert(prefixed(META, TAIL), enc(&cursor));
        Ok(emptied)
    }

    /// The tree segments emptied by batches applied so far. Taken before a flush and
    /// handed to [`Store::drop_tree_garbage`] after it, so a batch applied during the
    /// flush (from another thread) never has its segment deleted before it is durable.
    pub(super) fn take_tree_garbage(&self) -> Vec<u64> {
        std::mem::take(&mut *self.tree_garbage.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Deletes `garbage` (from [`Store::take_tree_garbage`]) once a flush that began after
    /// it was taken has completed.
    pub(super) fn drop_tree_garbage(&self, garbage: Vec<u64>) -> Result<(), StoreError> {
        if let Some(last) = garbage.iter().max() {
            TREE.remove_below(self, last + 1)?;
        }
        Ok(())
    }

    /// At a start: deletes the tree segments below the recorded tail (emptied by a
    /// compaction whose file deletion a crash or a stop cut short).
    pub(super) fn recover_tree(&self) -> Result<(), StoreError> {
        TREE.recover(self)?;
        let tail: Cursor = self.get(&prefixed(META, TAIL))?.unwrap_or_default();
        TREE.remove_below(self, tail.segment)
    }

    /// Forgets the whole tree log (a genesis state that never completed).
    pub(super) fn clear_tree(&self, batch: &mut KvBatch) -> Result<(), StoreError> {
        TREE.clear(self, batch)?;
        batch.remove(prefixed(META, LIVE));
        batch.remove(prefixed(META, TAIL));
        Ok(())
    }

    /// Bytes of live tree values (as recorded) and of the tree log's files.
    pub fn tree_log_bytes(&self) -> Result<(u64, u64), StoreError> {
        let live = self.get(&prefixed(META, LIVE))?.unwrap_or(0);
        Ok((live, TREE.bytes(self)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_a_cut_entry_is_left_out() {
        let mut record = Vec::new();
        let a = push_entry(&mut record, b"\xffb\x00\x01", b"bucket").unwrap();
        let b = push_entry(&mut record, b"\xffn\x01\x00\x02", b"").unwrap();
        let (parsed, used) = entries(&record);
        assert_eq!(
            parsed,
            vec![
                (&b"\xffb\x00\x01"[..], a, 6),
                (&b"\xffn\x01\x00\x02"[..], b, 0)
            ]
        );
        assert_eq!(used, record.len());
        assert_eq!(&record[a as usize..a as usize + 6], b"bucket");
        let (parsed, used) = entries(&record[..record.len() - 3]);
        assert_eq!((parsed.len(), used), (1, a as usize + 6));
        assert_eq!(entries(&record[..5]), (vec![], 0));
    }
}
