//! Duplicate-vote evidence waiting for a block: verified against the staking state (the
//! accused was in the set of that height with the claimed power, both signatures hold, not
//! too old, not already punished), deduplicated by hash, bounded in bytes, persisted so that
//! a restart does not forget it, and dropped once committed or expired.

use crate::store::{Store, StoreError};
use basalt_staking::EvidenceRejection;
use basalt_types::{Evidence, Hash};
use std::collections::BTreeMap;

pub struct EvidencePool {
    pending: BTreeMap<Hash, Evidence>,
    bytes: usize,
    max_bytes: usize,
}

/// Why a piece of evidence was not taken.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error(transparent)]
    Rejected(#[from] EvidenceRejection),
    #[error("the evidence pool is full")]
    Full,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn size(ev: &Evidence) -> usize {
    borsh::to_vec(ev).map_or(0, |v| v.len())
}

impl EvidencePool {
    /// The pool with what the store kept from before a restart.
    pub fn load(store: &Store, max_bytes: usize) -> Result<Self, StoreError> {
        let mut pool = EvidencePool {
            pending: BTreeMap::new(),
            bytes: 0,
            max_bytes,
        };
        for ev in store.evidence()? {
            pool.bytes += size(&ev);
            pool.pending.insert(Hash::of(&ev), ev);
        }
        Ok(pool)
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn contains(&self, hash: &Hash) -> bool {
        self.pending.contains_key(hash)
    }

    /// Adds verified evidence; `Ok(false)` when it was already pending.
    pub fn add(
        &mut self,
        store: &Store,
        ev: Evidence,
        check: impl Fn(&Evidence) -> Result<(), EvidenceRejection>,
    ) -> Result<bool, PoolError> {
        let hash = Hash::of(&ev);
        if self.pending.contains_key(&hash) {
            return Ok(false);
        }
        check(&ev)?;
        let n = size(&ev);
        if self.bytes + n > self.max_bytes {
            return Err(PoolError::Full);
        }
        store.save_evidence(&ev)?;
        self.bytes += n;
        self.pending.insert(hash, ev);
        Ok(true)
    }

    /// Pending evidence that still passes `check`, up to `max_bytes`, for a proposal.
    pub fn for_block(
        &self,
        max_bytes: usize,
        check: impl Fn(&Evidence) -> Result<(), EvidenceRejection>,
    ) -> Vec<Evidence> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for ev in self.pending.values() {
            let n = size(ev);
            if bytes + n > max_bytes {
                break;
            }
            if check(ev).is_ok() {
                bytes += n;
                out.push(ev.clone());
            }
        }
        out
    }

    pub fn all(&self) -> impl Iterator<Item = &Evidence> {
        self.pending.values()
    }

    /// After a block: drops what it committed and whatever no longer passes `check`
    /// (expired, or the validator already punished).
    pub fn update(
        &mut self,
        store: &Store,
        committed: &[Evidence],
        check: impl Fn(&Evidence) -> Result<(), EvidenceRejection>,
    ) -> Result<(), StoreError> {
        let mut gone: Vec<Hash> = committed.iter().map(Hash::of).collect();
        gone.extend(
            self.pending
                .iter()
                .filter(|(_, ev)| check(ev).is_err())
                .map(|(h, _)| *h),
        );
        for h in gone {
            if let Some(ev) = self.pending.remove(&h) {
                self.bytes -= size(&ev);
                store.remove_evidence(&h)?;
            }
        }
        Ok(())
    }
}
