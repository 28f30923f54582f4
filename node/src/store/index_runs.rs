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
//! A run's file (`run_file`): 16 KiB blocks of entries in key order, then a directory of the
//! blocks' first keys and a Bloom filter. A run exists once sled holds its [`RunMeta`]
//! (`X id`), written after the file is synced; a file without one (a crash
//! in between, or after a merge's batch) is deleted when the store opens. The keys are the
//! ones the index had in sled: `T hash` → [`super::TxLocation`], `I key 0 value 0 height`
//! → the block's matching transaction hashes.

mod run_file;

use super::{decode, enc, Store, StoreError};
use crate::kv::{Entries, KvBatch};
use crate::segments::SegKind;
use run_file::{corrupt, entry_height, Directory, Run, RunMeta, RunReader, RunWriter};
use std::sync::{Arc, Mutex, RwLock};

/// `X id` → [`RunMeta`].
pub(super) const RUN: u8 = b'X';
/// Runs of one level merged into one of the next.
const FANOUT: usize = 8;
/// Entries that end a new run (at least one block goes in whatever its size): ~6 MiB
/// sorted in memory.
pub(super) const NEW_RUN_ENTRIES: usize = 65_536;

/// The runs in id (age) order, loaded once and replaced after each change.
#[derive(Default)]
pub(super) struct RunSet {
    runs: RwLock<Option<Arc<Vec<Arc<Run>>>>>,
    /// Held to change the recorded runs; holds the next run id (0: not known yet).
    writer: Mutex<u64>,
    /// Held through an upkeep step, which may run beside the writing of a new run.
    upkeep: Mutex<()>,
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
        let mut readers: Vec<RunReader> =
            inputs.iter().map(|run| RunReader::new(self, run)).collect();
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
