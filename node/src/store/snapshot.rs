//! What state sync needs of the store: reading the state of one past height whole (to take
//! a snapshot while blocks keep coming), and storing a restored one with the block it
//! belongs to, as the base of a chain that starts there.

use super::state::{ChainMeta, LATEST};
use super::{enc, key, prefixed, BlockResults, KvBatch, Store, StoreError, META, VALSET};
use basalt_runtime::state::keys::INTERNAL;
use basalt_runtime::StateChanges;
use basalt_types::{Block, Commit};

/// A page of the latest committed state: (key, value) without the tree's own keys.
pub type StatePage = Vec<(Vec<u8>, Vec<u8>)>;

/// Everything stored for the block a restored state belongs to.
pub struct RestoredBase<'a> {
    pub block: &'a Block,
    pub commit: &'a Commit,
    pub results: &'a BlockResults,
    pub meta: &'a ChainMeta,
}

impl Store {
    /// Up to `limit` committed entries of the latest state after `after` (from the start
    /// with `None`), in key order. The pages are read while blocks are stored: a page may
    /// mix heights, which `Store::state_overrides` then corrects.
    pub fn latest_state_page(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<StatePage, StoreError> {
        let from = match after {
            Some(k) => {
                let mut f = prefixed(LATEST, k);
                f.push(0);
                f
            }
            None => vec![LATEST],
        };
        let page = self.db.scan_page(&[LATEST], &from, limit)?;
        Ok(page
            .into_iter()
            .map(|(mut k, v)| (k.split_off(1), v))
            .take_while(|(k, _)| k.first() != Some(&INTERNAL))
            .collect())
    }

    /// Stores the last piece of a restored state as version `height` with its block, commit
    /// and results and the validator sets of `height ..= height + 2`, and records `height`
    /// as the earliest block and state this store has; flushed. The pieces before it went
    /// through [`Store::save_genesis_piece`].
    pub fn save_restored(
        &self,
        height: u64,
        last_piece: &StateChanges,
        base: &RestoredBase,
    ) -> Result<(), StoreError> {
        let mut batch = KvBatch::default();
        let emptied = self.put_state(&mut batch, height, last_piece, base.meta, true)?;
        if let Some(set) = &base.meta.last_set {
            batch.insert(key(VALSET, height), enc(set));
        }
        batch.insert(key(VALSET, height + 1), enc(&base.meta.schedule.current));
        batch.insert(key(VALSET, height + 2), enc(&base.meta.schedule.next));
        self.put_block(&mut batch, base.block, base.commit, base.results)?;
        batch.insert(prefixed(META, b"earliest"), enc(&height));
        // Queries below the snapshot's height read as pruned.
        batch.insert(prefixed(META, b"state_pruned"), enc(&(height + 1)));
        self.db.apply(batch)?;
        self.tree_segment_emptied(emptied);
        self.cache.write_through(last_piece);
        self.flush()
    }
}
