//! Pruning: blocks below the retained window go with everything stored for them (location,
//! commit, id, validator set, block events), in bounded batches, and the store
//! records the earliest height it still has; the blocks' segments go once all of a
//! segment's heights are pruned.

use super::{
    key, prefixed, seglog, KvBatch, Store, StoreError, BLOCK, BLOCK_BY_ID, BLOCK_EVENTS, COMMIT,
    META, VALSET,
};

impl Store {
    /// The lowest height whose block is stored (after pruning), `None` with no block.
    pub fn earliest_height(&self) -> Result<Option<u64>, StoreError> {
        match self.get::<u64>(&prefixed(META, b"earliest"))? {
            Some(h) => Ok(Some(h)),
            None => Ok(self.db.scan_prefix_first(&[BLOCK])?.map(|k| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&k[1..9]);
                u64::from_be_bytes(b)
            })),
        }
    }

    /// Deletes the blocks below `keep_from` (at most `max_blocks` of them, oldest first)
    /// and all that was stored for them. Returns how many were deleted.
    pub fn prune_blocks(&self, keep_from: u64, max_blocks: u64) -> Result<u64, StoreError> {
        let Some(from) = self.earliest_height()? else {
            return Ok(0);
        };
        let to = keep_from.min(from.saturating_add(max_blocks));
        if from >= to {
            return Ok(0);
        }
        let mut batch = KvBatch::default();
        for h in from..to {
            // The transaction index drops pruned heights itself (`index_runs`).
            if let Some(block) = self.block(h)? {
                batch.remove(prefixed(BLOCK_BY_ID, block.header.hash().as_bytes()));
            }
            batch.remove(key(BLOCK, h));
            batch.remove(key(COMMIT, h));
            batch.remove(key(VALSET, h));
            batch.remove(key(BLOCK_EVENTS, h));
        }
        batch.insert(prefixed(META, b"earliest"), super::enc(&to));
        self.db.apply(batch)?;
        // Durable before the files go (see `Store::prune_state`).
        self.db.flush()?;
        seglog::BLOCKS.remove_through(self, to - 1)?;
        Ok(to - from)
    }
}
