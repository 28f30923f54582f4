//! The chain state in the block store's key space, versioned by height.
//!
//! `S len key height` holds the value `key` took at `height` (a one-byte tag, then the
//! bytes; tag 0 is a deletion); the state as of height h answers each key with its newest
//! version at or below h, one reverse range read. A block's state writes go into the same
//! atomic batch as the block, with `W height` listing the keys it wrote (what pruning needs)
//! and `M state` the version the state is at, so a crash leaves the state and the chain at
//! the same height. `M chainmeta` holds what the node's chain needs beyond the runtime's
//! state: the validator schedule of the next two heights and the last height's set.

use super::{enc, prefixed, KvBatch, Store, StoreError, META};
use crate::kv::Kv;
use basalt_runtime::{StateChanges, StateError, StateStore};
use basalt_staking::{ValidatorSchedule, ValidatorSet};
use borsh::{BorshDeserialize, BorshSerialize};
use std::sync::Arc;

pub(super) const STATE: u8 = b'S';
pub(super) const WRITES: u8 = b'W';

/// The node's chain beyond the runtime's state, stored with every block.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ChainMeta {
    /// Sets of the next height and the one after.
    pub schedule: ValidatorSchedule,
    /// Set of the last decided height (none before the first block).
    pub last_set: Option<ValidatorSet>,
}

/// `S len key`: the prefix of every version of `key`.
fn versions_prefix(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 10);
    k.push(STATE);
    k.push(key.len() as u8);
    k.extend_from_slice(key);
    k
}

fn version_key(key: &[u8], height: u64) -> Vec<u8> {
    let mut k = versions_prefix(key);
    k.extend_from_slice(&height.to_be_bytes());
    k
}

/// The runtime's view of the stored state as of one height (`u64::MAX`: the latest).
#[derive(Clone)]
pub struct StoredState {
    db: Arc<dyn Kv>,
    height: u64,
}

impl StoredState {
    /// The newest version of `key` at or below this view's height, with its height.
    pub fn versioned(&self, key: &[u8]) -> Result<Option<(u64, Option<Vec<u8>>)>, StoreError> {
        let found = self
            .db
            .last_in(&version_key(key, 0), &version_key(key, self.height))?;
        let Some((k, mut v)) = found else {
            return Ok(None);
        };
        let mut h = [0u8; 8];
        h.copy_from_slice(&k[k.len() - 8..]);
        let value = match v.first() {
            Some(1) => Some(v.split_off(1)),
            Some(0) => None,
            _ => {
                return Err(StoreError::Corrupt {
                    key: hex::encode(&k),
                    reason: "a state version with no tag".into(),
                })
            }
        };
        Ok(Some((u64::from_be_bytes(h), value)))
    }
}

impl StateStore for StoredState {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.versioned(key)
            .map(|v| v.and_then(|(_, value)| value))
            .map_err(|e| StateError(e.to_string()))
    }
}

/// Adds the state writes of `height` to `batch`, with the list of keys written (`W`, in
/// pieces) unless `first` (the genesis state supersedes nothing).
pub(super) fn put_state(
    batch: &mut KvBatch,
    height: u64,
    changes: &StateChanges,
    meta: &ChainMeta,
    first: bool,
) {
    let mut written = Vec::with_capacity(changes.len());
    for (key, value) in changes {
        let v = match value {
            Some(v) => {
                let mut tagged = Vec::with_capacity(v.len() + 1);
                tagged.push(1);
                tagged.extend_from_slice(v);
                tagged
            }
            None => vec![0],
        };
        batch.insert(version_key(key, height), v);
        written.push(key.clone());
    }
    if !first {
        super::put_pieces(batch, WRITES, height, &enc(&written));
    }
    batch.insert(prefixed(META, b"state"), height.to_be_bytes());
    batch.insert(prefixed(META, b"chainmeta"), enc(meta));
}

impl Store {
    /// The state as of `height` (for queries and proofs; pruned versions read as absent,
    /// see [`Store::earliest_state`]).
    pub fn state_at(&self, height: u64) -> StoredState {
        StoredState {
            db: self.db.clone(),
            height,
        }
    }

    /// The latest stored state, what the node's runtime reads.
    pub fn latest_state(&self) -> StoredState {
        self.state_at(u64::MAX)
    }

    /// The height the stored state is at (none before the genesis state was stored).
    pub fn state_height(&self) -> Result<Option<u64>, StoreError> {
        let k = prefixed(META, b"state");
        match self.db.get(&k)? {
            None => Ok(None),
            Some(v) => {
                let b: [u8; 8] = v.as_slice().try_into().map_err(|_| StoreError::Corrupt {
                    key: "state height".into(),
                    reason: format!("{} bytes", v.len()),
                })?;
                Ok(Some(u64::from_be_bytes(b)))
            }
        }
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
        put_state(&mut batch, height, changes, meta, true);
        batch.insert(
            super::key(super::VALSET, height + 1),
            enc(&meta.schedule.current),
        );
        batch.insert(
            super::key(super::VALSET, height + 2),
            enc(&meta.schedule.next),
        );
        self.db.apply(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// Deletes the state versions that no query at `keep_from` or above can need: for each
    /// height h ≤ `keep_from` not yet pruned (at most `max_heights` of them), the versions
    /// that the keys written at h superseded. Returns the last height pruned, if any.
    pub fn prune_state(&self, keep_from: u64, max_heights: u64) -> Result<Option<u64>, StoreError> {
        let mark = prefixed(META, b"state_pruned");
        let from: u64 = self.get(&mark)?.unwrap_or(0);
        let to = keep_from.min(from.saturating_add(max_heights.max(1) - 1));
        if from > to {
            return Ok(None);
        }
        let mut batch = KvBatch::default();
        for h in from.max(1)..=to {
            let written: Vec<Vec<u8>> = self.get_pieces(WRITES, h)?.unwrap_or_default();
            for key in written {
                let older = self
                    .db
                    .last_in(&version_key(&key, 0), &version_key(&key, h - 1))?;
                if let Some((old, _)) = older {
                    batch.remove(old);
                }
            }
            super::remove_pieces(&*self.db, &mut batch, WRITES, h)?;
        }
        batch.insert(mark, enc(&(to + 1)));
        self.db.apply(batch)?;
        Ok(Some(to))
    }

    /// The oldest height whose state can be queried (0: nothing was pruned).
    pub fn earliest_state(&self) -> Result<u64, StoreError> {
        let next: u64 = self.get(&prefixed(META, b"state_pruned"))?.unwrap_or(0);
        Ok(next.saturating_sub(1))
    }
}
