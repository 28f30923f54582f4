//! What state sync needs of the store: reading the state of one past height whole (to take
//! a snapshot while blocks keep coming), and storing a restored one with the block it
//! belongs to, as the base of a chain that starts there.

use super::seglog::HISTORY;
use super::state::{ChainMeta, LATEST, UNDO};
use super::{enc, key, prefixed, BlockAt, BlockResults, KvBatch, Store, StoreError};
use super::{BLOCK, BLOCK_BY_ID, COMMIT, META, VALSET};
use basalt_runtime::state::keys::INTERNAL;
use basalt_runtime::StateChanges;
use basalt_types::{Block, Commit};
use std::collections::BTreeMap;

/// A page of the latest committed state: (key, value) without the tree's own keys.
pub type StatePage = Vec<(Vec<u8>, Vec<u8>)>;

/// A committed key as it was before a later height changed it (`None`: absent then).
pub type Overrides = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

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
    /// mix heights, which [`Store::state_overrides`] then corrects.
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

    /// The committed keys that heights `height + 1 ..= top` changed, each with its value as
    /// of `height`: latest values read after `top` was stored, corrected by these, are the
    /// state of `height`. Fails when a needed undo record was pruned meanwhile.
    pub fn state_overrides(&self, height: u64, top: u64) -> Result<Overrides, StoreError> {
        let mut out = Overrides::new();
        for h in height.saturating_add(1)..=top {
            let Some(at) = self.get::<super::state::UndoAt>(&key(UNDO, h))? else {
                continue;
            };
            let name = format!("state history of height {h}").into_bytes();
            let body_len = at.at.len.saturating_sub(at.directory);
            let body = HISTORY.read(self, &at.at, 0, body_len)?;
            let dir = HISTORY.read(self, &at.at, body_len, at.directory)?;
            let dir: super::state::UndoDirectory = super::decode(&name, &dir)?;
            for (_, offset, len) in dir {
                let piece = body
                    .get(offset as usize..(offset as usize).saturating_add(len as usize))
                    .ok_or_else(|| StoreError::Corrupt {
                        key: hex::encode(&name),
                        reason: "an undo piece beyond its record".into(),
                    })?;
                let entries: super::state::UndoPiece = super::decode(&name, piece)?;
                for (k, old) in entries {
                    if k.first() == Some(&INTERNAL) || out.contains_key(&k) {
                        continue;
                    }
                    out.insert(k.clone(), super::state::untagged(&k, old)?);
                }
            }
        }
        let earliest = self.earliest_state()?;
        if height < earliest {
            return Err(StoreError::Pruned { height, earliest });
        }
        Ok(out)
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
        let mut record = enc(base.block);
        let block_len = record.len() as u32;
        record.extend_from_slice(&enc(base.results));
        let at = super::seglog::BLOCKS.append(self, &mut batch, height, &record)?;
        batch.insert(key(BLOCK, height), enc(&BlockAt { at, block_len }));
        batch.insert(
            prefixed(BLOCK_BY_ID, base.block.header.hash().as_bytes()),
            enc(&height),
        );
        batch.insert(key(COMMIT, height), enc(base.commit));
        batch.insert(prefixed(META, b"earliest"), enc(&height));
        // Queries below the snapshot's height read as pruned.
        batch.insert(prefixed(META, b"state_pruned"), enc(&(height + 1)));
        self.db.apply(batch)?;
        self.tree_segment_emptied(emptied);
        self.cache.write_through(last_piece);
        self.flush()
    }
}
