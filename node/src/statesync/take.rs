//! Taking a snapshot of the state at a past height while the chain moves on.
//!
//! The latest committed entries are read in pages and spread over 256 part files by the
//! first byte of their key's hash (an external sort: memory holds one part, not the
//! state). Blocks stored during the scan may have changed some entries; once the scan is
//! done, every key that a height above the snapshot's changed takes its value as of the
//! snapshot's height from the state history ([`Store::state_overrides`]), which is then
//! exact. Each part is sorted by key hash and cut into chunks.

use super::files::{FilesError, SnapshotDir};
use super::{Chunk, SnapshotMeta, CHUNK_BYTES, FORMAT};
use crate::store::{ChainMeta, Store, StoreError};
use basalt_staking::ValidatorSchedule;
use basalt_types::Hash;
use borsh::BorshDeserialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum TakeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Files(#[from] FilesError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("height {0} is not stored (block, results, validator sets, or the next block)")]
    Missing(u64),
}

/// A key and its value as of the snapshot's height (`None`: absent then).
type Override = (Vec<u8>, Option<Vec<u8>>);

/// Entries read per page of the latest state.
const PAGE: usize = 8_192;

fn part_of(key: &[u8]) -> usize {
    Hash::digest(key).0[0] as usize
}

/// Takes the snapshot of the state after `height` into `dir`, then prunes old ones.
pub fn take_snapshot(
    store: &Store,
    height: u64,
    dir: &SnapshotDir,
) -> Result<SnapshotMeta, TakeError> {
    let missing = || TakeError::Missing(height);
    let (block, results) = store.block_with_results(height)?.ok_or_else(missing)?;
    // The canonical commit, the one the next block carries (and its header hashes): the
    // commit this node stored is the one it decided with, which may hold other precommits.
    let commit = store
        .block(height + 1)?
        .and_then(|b| b.last_commit)
        .ok_or_else(missing)?;
    let set = |h| store.validator_set(h)?.ok_or_else(missing);
    let chain_meta = ChainMeta {
        schedule: ValidatorSchedule {
            current: set(height + 1)?,
            next: set(height + 2)?,
        },
        last_set: Some(set(height)?),
    };
    let writer = dir.writer(height)?;
    let parts_dir = writer.scratch()?;
    let mut parts = Vec::with_capacity(256);
    for p in 0..256 {
        let f = std::fs::File::create(parts_dir.join(format!("part-{p}")))?;
        parts.push(std::io::BufWriter::new(f));
    }
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = store.latest_state_page(after.as_deref(), PAGE)?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for entry in &page {
            borsh::to_writer(&mut parts[part_of(&entry.0)], entry)?;
        }
    }
    for p in &mut parts {
        p.flush()?;
    }
    drop(parts);
    let top = store.state_height()?.ok_or_else(missing)?;
    let mut overrides: BTreeMap<usize, Vec<Override>> = BTreeMap::new();
    for (k, v) in store.state_overrides(height, top)? {
        overrides.entry(part_of(&k)).or_default().push((k, v));
    }

    let mut chunker = Chunker::new(&writer);
    for p in 0..256 {
        let path = parts_dir.join(format!("part-{p}"));
        let bytes = std::fs::read(&path)?;
        std::fs::remove_file(&path)?;
        let mut rest = bytes.as_slice();
        let mut part: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        while !rest.is_empty() {
            let (k, v) = <(Vec<u8>, Vec<u8>)>::deserialize(&mut rest)?;
            part.insert(k, v);
        }
        for (k, v) in overrides.remove(&p).unwrap_or_default() {
            match v {
                Some(v) => part.insert(k, v),
                None => part.remove(&k),
            };
        }
        let mut sorted: Vec<(Hash, Vec<u8>, Vec<u8>)> = part
            .into_iter()
            .map(|(k, v)| (Hash::digest(&k), k, v))
            .collect();
        sorted.sort_unstable_by_key(|e| e.0);
        for (_, k, v) in sorted {
            chunker.push(k, v)?;
        }
    }
    let (chunks, entries, bytes) = chunker.finish()?;
    let meta = SnapshotMeta {
        format: FORMAT,
        height,
        chunks,
        entries,
        bytes,
        chain_meta,
        block,
        commit,
        results,
    };
    std::fs::remove_dir(&parts_dir)?;
    writer.finish(&meta)?;
    dir.prune()?;
    Ok(meta)
}

/// Cuts entries into chunks of about [`CHUNK_BYTES`], writing each as it fills.
struct Chunker<'a> {
    writer: &'a super::files::SnapshotWriter,
    current: Chunk,
    current_bytes: usize,
    hashes: Vec<Hash>,
    entries: u64,
    bytes: u64,
}

impl<'a> Chunker<'a> {
    fn new(writer: &'a super::files::SnapshotWriter) -> Self {
        Chunker {
            writer,
            current: Vec::new(),
            current_bytes: 0,
            hashes: Vec::new(),
            entries: 0,
            bytes: 0,
        }
    }

    fn push(&mut self, k: Vec<u8>, v: Vec<u8>) -> Result<(), TakeError> {
        self.current_bytes += k.len() + v.len() + 8;
        self.current.push((k, v));
        if self.current_bytes >= CHUNK_BYTES {
            self.close()?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), TakeError> {
        let bytes = crate::wire::encode(&self.current);
        self.writer.chunk(self.hashes.len() as u32, &bytes)?;
        self.hashes.push(Hash::digest(&bytes));
        self.entries += self.current.len() as u64;
        self.bytes += bytes.len() as u64;
        self.current.clear();
        self.current_bytes = 0;
        Ok(())
    }

    fn finish(mut self) -> Result<(Vec<Hash>, u64, u64), TakeError> {
        if !self.current.is_empty() || self.hashes.is_empty() {
            self.close()?;
        }
        Ok((self.hashes, self.entries, self.bytes))
    }
}

/// Takes a snapshot at every `interval`-th height the store reaches, on a blocking thread,
/// until the runtime shuts down. A snapshot that fails (its height pruned meanwhile, a
/// disk error) is reported and the next interval tried.
pub async fn run(store: Store, dir: SnapshotDir, interval: u64) {
    if interval == 0 {
        return;
    }
    let mut done = dir
        .heights()
        .ok()
        .and_then(|h| h.last().copied())
        .unwrap_or(0);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Ok(Some(last)) = store.last_height() else {
            continue;
        };
        let target = last - last % interval;
        // The next block must be stored: it holds the snapshot height's canonical commit.
        if target <= done || target == 0 || last <= target {
            continue;
        }
        let (s, d) = (store.clone(), dir.clone());
        let started = std::time::Instant::now();
        match tokio::task::spawn_blocking(move || take_snapshot(&s, target, &d)).await {
            Ok(Ok(meta)) => {
                tracing::info!(
                    height = target,
                    chunks = meta.chunks.len(),
                    entries = meta.entries,
                    mib = format!("{:.1}", meta.bytes as f64 / 1048576.0),
                    ms = started.elapsed().as_millis() as u64,
                    "state snapshot taken"
                );
            }
            Ok(Err(e)) => tracing::warn!(height = target, "state snapshot failed: {e}"),
            Err(_) => return,
        }
        done = target;
    }
}
