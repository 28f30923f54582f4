//! The chain state in the block store's key space: the latest values, and for each retained
//! height what it overwrote.
//!
//! `L key` holds a key's latest value: the runtime's reads are one lookup in a compact part
//! of the tree (and usually a hit in the [`super::cache::StateCache`] in front of it). The
//! undo record of a height says what each key it wrote was before (a one-byte tag, then
//! the bytes; tag 0: absent), sorted by key and cut into pieces of about [`UNDO_PIECE`]
//! bytes followed by a directory of the pieces' first keys. Records are appended to the
//! state history's segments ([`HISTORY`]; not sled: see [`crate::segments`] why), synced,
//! and found through `U height` → [`UndoAt`]; pruning deletes a segment whole once every
//! height in it is pruned. The state as of height h answers a key with the first undo
//! entry above h (per height walked: its directory, then one piece and a binary search), or
//! with its latest value when no later height changed it. A block's state writes go into the
//! same atomic batch as the block, with `M state` (the height the state is at), `M
//! history` (where the history's last record ends) and `M chainmeta` (the validator
//! schedule of the next two heights and the last height's set), so a crash leaves the state
//! and the chain at the same height; history bytes past `M history` (a crash between the
//! append and the batch) are cut off at the next start ([`Store::recover_segments`]).

use super::seglog::{RecordAt, HISTORY};
use super::{enc, prefixed, KvBatch, Store, StoreError, META};
use basalt_runtime::{StateChanges, StateError, StateStore};
use basalt_staking::{ValidatorSchedule, ValidatorSet};
use borsh::{BorshDeserialize, BorshSerialize};

pub(super) const LATEST: u8 = b'L';
pub(super) const UNDO: u8 = b'U';

/// The node's chain beyond the runtime's state, stored with every block.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ChainMeta {
    /// Sets of the next height and the one after.
    pub schedule: ValidatorSchedule,
    /// Set of the last decided height (none before the first block).
    pub last_set: Option<ValidatorSet>,
}

fn undo_key(height: u64) -> [u8; 9] {
    super::key(UNDO, height)
}

/// How errors name the undo record of `height`.
fn undo_name(height: u64) -> Vec<u8> {
    format!("state history of height {height}").into_bytes()
}

/// A committed key as it was before a later height changed it (`None`: absent then).
pub type Overrides = std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Bytes of undo entries per piece: a read at an old height decodes one piece per height
/// it walks.
const UNDO_PIECE: usize = 8 * 1024;

/// One piece of a height's undo record: (key, tagged previous value), sorted by key.
type UndoPiece = Vec<(Vec<u8>, Vec<u8>)>;

/// The record's directory: each piece's first key, offset in the record and length.
type UndoDirectory = Vec<(Vec<u8>, u32, u32)>;

/// Where a height's undo record is, and how many of its last bytes are its
/// [`UndoDirectory`].
#[derive(Clone, Copy, Debug, BorshSerialize, BorshDeserialize)]
struct UndoAt {
    at: RecordAt,
    directory: u32,
}

/// A height's undo entries as a record: the pieces, then their directory.
fn undo_record(entries: Vec<(Vec<u8>, Vec<u8>)>) -> (Vec<u8>, u32) {
    let mut record = Vec::new();
    let mut directory: UndoDirectory = Vec::new();
    let mut piece: UndoPiece = Vec::new();
    let mut piece_bytes = 0;
    let mut close = |piece: &mut UndoPiece, record: &mut Vec<u8>| {
        let bytes = enc(&*piece);
        directory.push((piece[0].0.clone(), record.len() as u32, bytes.len() as u32));
        record.extend_from_slice(&bytes);
        piece.clear();
    };
    for (key, old) in entries {
        piece_bytes += key.len() + old.len() + 8;
        piece.push((key, old));
        if piece_bytes >= UNDO_PIECE {
            close(&mut piece, &mut record);
            piece_bytes = 0;
        }
    }
    if !piece.is_empty() {
        close(&mut piece, &mut record);
    }
    let directory = enc(&directory);
    record.extend_from_slice(&directory);
    (record, directory.len() as u32)
}

fn tagged(value: Option<&[u8]>) -> Vec<u8> {
    match value {
        Some(v) => {
            let mut t = Vec::with_capacity(v.len() + 1);
            t.push(1);
            t.extend_from_slice(v);
            t
        }
        None => vec![0],
    }
}

fn untagged(k: &[u8], mut v: Vec<u8>) -> Result<Option<Vec<u8>>, StoreError> {
    match v.first() {
        Some(1) => Ok(Some(v.split_off(1))),
        Some(0) => Ok(None),
        _ => Err(StoreError::Corrupt {
            key: hex::encode(k),
            reason: "an undo record with no tag".into(),
        }),
    }
}

/// Sets (or, for `None`, deletes) `key`'s latest value in `batch`, for keys outside the
/// tree log ([`super::tree_log`]).
fn put_latest(batch: &mut KvBatch, key: &[u8], value: &Option<Vec<u8>>) {
    match value {
        Some(v) => batch.insert(prefixed(LATEST, key), v.clone()),
        None => batch.remove(prefixed(LATEST, key)),
    }
}

/// Puts `changes` in `batch`, each with the length of the value it replaces when known
/// (see [`super::tree_log::TreeWrite`]): the tree's values through the tree log, the others
/// in sled. Returns the tree segment a compaction emptied (see
/// [`Store::tree_segment_emptied`]).
fn put_all_latest<'a>(
    store: &Store,
    batch: &mut KvBatch,
    height: u64,
    changes: impl Iterator<Item = (&'a (Vec<u8>, Option<Vec<u8>>), Option<Option<usize>>)>,
) -> Result<Option<u64>, StoreError> {
    let mut tree = Vec::new();
    for ((key, value), old_len) in changes {
        if super::tree_log::is_logged(key) {
            tree.push((key.as_slice(), value.as_deref(), old_len));
        } else {
            put_latest(batch, key, value);
        }
    }
    store.put_tree_values(batch, height, &tree)
}

/// The runtime's view of the stored state as of one height (`u64::MAX`: the latest, read
/// through the store's cache).
#[derive(Clone)]
pub struct StoredState {
    store: Store,
    height: u64,
}

impl StoredState {
    fn latest(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.store.cache.get(key) {
            return Ok(v);
        }
        let v = if super::tree_log::is_logged(key) {
            self.store.tree_value(key)?
        } else {
            self.store.db.get(&prefixed(LATEST, key))?
        };
        self.store.cache.insert(key.to_vec(), v.clone());
        Ok(v)
    }

    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if self.height == u64::MAX {
            return self.latest(key);
        }
        loop {
            let top = self.store.state_height()?.unwrap_or(0);
            let value = match self.undone(key, top) {
                Ok(Some(v)) => Ok(v),
                Ok(None) => self.latest(key),
                Err(e) => Err(e),
            };
            // Pruned under this read: what it found may be another height's, and a
            // segment deleted under it is no disk error.
            let earliest = self.store.earliest_state()?;
            if self.height < earliest {
                return Err(StoreError::Pruned {
                    height: self.height,
                    earliest,
                });
            }
            let value = value?;
            // A block stored during the read may have changed the latest value: read again.
            if self.store.state_height()?.unwrap_or(0) != top {
                continue;
            }
            return Ok(value);
        }
    }

    /// What `key` was at this view's height according to the first undo record above it
    /// (up to `top`); `None` when no later height changed it.
    fn undone(&self, key: &[u8], top: u64) -> Result<Option<Option<Vec<u8>>>, StoreError> {
        let store = &self.store;
        for h in self.height.saturating_add(1)..=top {
            let Some((undo, dir)) = store.undo_directory(h)? else {
                continue;
            };
            let name = || undo_name(h);
            // The last piece whose first key is not above `key`.
            let i = dir.partition_point(|(first, _, _)| first.as_slice() <= key);
            let Some((_, offset, len)) = i.checked_sub(1).and_then(|i| dir.get(i)) else {
                continue;
            };
            let piece = HISTORY.read(store, &undo.at, *offset, *len)?;
            let mut entries: UndoPiece = super::decode(&name(), &piece)?;
            if let Ok(at) = entries.binary_search_by(|(e, _)| e.as_slice().cmp(key)) {
                let (_, old) = entries.swap_remove(at);
                return untagged(&name(), old).map(Some);
            }
        }
        Ok(None)
    }
}

impl StateStore for StoredState {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.read(key).map_err(|e| StateError(e.to_string()))
    }
}

impl Store {
    /// Adds the state writes of `height` to `batch`: the latest values, and unless `first`
    /// (the genesis state overwrites nothing) what each one overwrote. Returns the tree
    /// segment a compaction emptied, for [`Store::tree_segment_emptied`] once the batch is
    /// applied.
    pub(super) fn put_state(
        &self,
        batch: &mut KvBatch,
        height: u64,
        changes: &StateChanges,
        meta: &ChainMeta,
        first: bool,
    ) -> Result<Option<u64>, StoreError> {
        let latest = self.latest_state();
        let mut undo = Vec::new();
        // Pieces are found by their first key: the entries go in key order.
        let mut sorted: Vec<&(Vec<u8>, Option<Vec<u8>>)> = changes.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut old_lens = Vec::with_capacity(sorted.len());
        for (key, _) in &sorted {
            if first {
                // The genesis state overwrites only the tree values of its own pieces.
                old_lens.push(None);
                continue;
            }
            let old = latest.latest(key)?;
            old_lens.push(Some(old.as_ref().map(Vec::len)));
            undo.push((key.clone(), tagged(old.as_deref())));
        }
        let emptied = put_all_latest(self, batch, height, sorted.into_iter().zip(old_lens))?;
        if !undo.is_empty() {
            self.append_history(batch, height, undo)?;
        }
        batch.insert(prefixed(META, b"state"), enc(&height));
        batch.insert(prefixed(META, b"chainmeta"), enc(meta));
        Ok(emptied)
    }

    /// Appends `height`'s undo record to the history and syncs it, and adds to `batch`
    /// where it is (`U height`) and the history's new end.
    fn append_history(
        &self,
        batch: &mut KvBatch,
        height: u64,
        undo: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        let (record, directory) = undo_record(undo);
        let at = HISTORY.append(self, batch, height, &record)?;
        batch.insert(undo_key(height), enc(&UndoAt { at, directory }));
        Ok(())
    }

    /// Where the undo record of height `h` is and its directory (`None`: no record).
    fn undo_directory(&self, h: u64) -> Result<Option<(UndoAt, UndoDirectory)>, StoreError> {
        let Some(undo) = self.get::<UndoAt>(&undo_key(h))? else {
            return Ok(None);
        };
        let dir_from = undo.at.len.saturating_sub(undo.directory);
        let dir = HISTORY.read(self, &undo.at, dir_from, undo.directory)?;
        Ok(Some((undo, super::decode(&undo_name(h), &dir)?)))
    }

    /// The committed keys that heights `height + 1 ..= top` changed, each with its value as
    /// of `height`: latest values read after `top` was stored, corrected by these, are the
    /// state of `height` (a snapshot's read). Fails when a needed undo record was pruned
    /// meanwhile.
    pub fn state_overrides(&self, height: u64, top: u64) -> Result<Overrides, StoreError> {
        let mut out = Overrides::new();
        for h in height.saturating_add(1)..=top {
            let Some((undo, dir)) = self.undo_directory(h)? else {
                continue;
            };
            let name = undo_name(h);
            let body = HISTORY.read(
                self,
                &undo.at,
                0,
                undo.at.len.saturating_sub(undo.directory),
            )?;
            for (_, offset, len) in dir {
                let piece = body
                    .get(offset as usize..(offset as usize).saturating_add(len as usize))
                    .ok_or_else(|| StoreError::Corrupt {
                        key: hex::encode(&name),
                        reason: "an undo piece beyond its record".into(),
                    })?;
                let entries: UndoPiece = super::decode(&name, piece)?;
                for (k, old) in entries {
                    if super::tree_log::is_logged(&k) || out.contains_key(&k) {
                        continue;
                    }
                    let old = untagged(&k, old)?;
                    out.insert(k, old);
                }
            }
        }
        let earliest = self.earliest_state()?;
        if height < earliest {
            return Err(StoreError::Pruned { height, earliest });
        }
        Ok(out)
    }

    /// The state as of `height` (for queries and proofs; a height below
    /// [`Store::earliest_state`] reads as an error).
    pub fn state_at(&self, height: u64) -> StoredState {
        StoredState {
            store: self.clone(),
            height,
        }
    }

    /// The latest stored state, what the node's runtime reads (through the cache).
    pub fn latest_state(&self) -> StoredState {
        self.state_at(u64::MAX)
    }

    /// The height the stored state is at (none before the genesis state was stored).
    pub fn state_height(&self) -> Result<Option<u64>, StoreError> {
        self.get(&prefixed(META, b"state"))
    }

    pub fn chain_meta(&self) -> Result<Option<ChainMeta>, StoreError> {
        self.get(&prefixed(META, b"chainmeta"))
    }

    /// Stores the genesis state as version `height` (the initial height − 1), flushed.
    pub fn save_genesis_state(
        &self,
        height: u64,
        changes: &StateChanges,
        meta: &ChainMeta,
    ) -> Result<(), StoreError> {
        let mut batch = KvBatch::default();
        let emptied = self.put_state(&mut batch, height, changes, meta, true)?;
        batch.insert(
            super::key(super::VALSET, height + 1),
            enc(&meta.schedule.current),
        );
        batch.insert(
            super::key(super::VALSET, height + 2),
            enc(&meta.schedule.next),
        );
        self.db.apply(batch)?;
        self.tree_segment_emptied(emptied);
        self.cache.write_through(changes);
        self.flush()
    }

    /// One piece of the genesis state, written but not marked as a version:
    /// until [`Store::save_genesis_state`] records the version, a restart discards it
    /// ([`Store::clear_partial_state`]).
    pub fn save_genesis_piece(&self, changes: &StateChanges) -> Result<(), StoreError> {
        let mut batch = KvBatch::default();
        // The genesis height is not known yet; numbering the tree log does not need it.
        let emptied = put_all_latest(
            self,
            &mut batch,
            0,
            changes.iter().zip(std::iter::repeat(None)),
        )?;
        // One write at a time: a piece is not a version, and sled holds what a batch
        // replaced until the batch ends (4 GiB for a million accounts in pieces).
        self.db.apply_unbatched(batch)?;
        self.tree_segment_emptied(emptied);
        // Not cached: a large genesis would fill the cache with accounts nobody asked for.
        self.cache.forget(changes);
        Ok(())
    }

    /// Deletes the pieces of a genesis state whose version was never recorded (a first
    /// start that stopped half-way). A store with a recorded state is left alone.
    pub fn clear_partial_state(&self) -> Result<(), StoreError> {
        if self.state_height()?.is_some() {
            return Ok(());
        }
        let mut batch = KvBatch::default();
        for (k, _) in self.db.scan_prefix(&[LATEST])? {
            batch.remove(k);
        }
        self.clear_tree(&mut batch)?;
        self.db.apply_unbatched(batch)?;
        self.cache.clear();
        Ok(())
    }

    /// Deletes the undo records no query at `keep_from` or above needs (those of heights up
    /// to `keep_from`), at most `max_heights` heights of them, and the segments that held
    /// only those. Returns the last height pruned, if any.
    pub fn prune_state(&self, keep_from: u64, max_heights: u64) -> Result<Option<u64>, StoreError> {
        let mark = prefixed(META, b"state_pruned");
        let from: u64 = self.get(&mark)?.unwrap_or(0);
        let to = keep_from.min(from.saturating_add(max_heights.max(1) - 1));
        if from > to {
            return Ok(None);
        }
        let mut batch = KvBatch::default();
        for h in from..=to {
            batch.remove(undo_key(h));
        }
        batch.insert(mark, enc(&(to + 1)));
        self.db.apply(batch)?;
        // Durable before the files go: a crash must not leave a record pointing at a
        // deleted segment for a height that still reads as retained.
        self.db.flush()?;
        HISTORY.remove_through(self, to)?;
        Ok(Some(to))
    }

    /// The oldest height whose state can be queried (0: nothing was pruned).
    pub fn earliest_state(&self) -> Result<u64, StoreError> {
        let next: u64 = self.get(&prefixed(META, b"state_pruned"))?.unwrap_or(0);
        Ok(next.saturating_sub(1))
    }
}
