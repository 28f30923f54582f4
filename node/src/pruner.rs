//! The background pruner: every second, blocks below `[storage] retain_blocks` and state
//! versions below `[storage] state_versions` are deleted from the store in bounded batches
//! on a blocking thread, off the consensus path. sled reuses the freed space and rewrites
//! its segments in the background, so the files stop growing once the window is full.

use crate::config::StorageConfig;
use crate::store::Store;
use std::time::Duration;

/// Heights handled per batch: a batch stays small enough not to stall commits.
const STEP: u64 = 100;

/// What to keep given the last stored height: (first block kept, first state kept).
pub fn windows(config: &StorageConfig, last: u64) -> (Option<u64>, u64) {
    let blocks = (config.retain_blocks > 0).then(|| last.saturating_sub(config.retain_blocks - 1));
    let state = last.saturating_sub(config.state_versions.max(1) - 1);
    (blocks, state)
}

/// One pass: prunes up to the windows, a step at a time. Returns blocks and state heights
/// pruned.
pub fn prune_once(
    store: &Store,
    config: &StorageConfig,
) -> Result<(u64, u64), crate::store::StoreError> {
    let Some(last) = store.last_height()? else {
        return Ok((0, 0));
    };
    let (blocks, state) = windows(config, last);
    let mut pruned = (0, 0);
    if let Some(keep) = blocks {
        loop {
            let n = store.prune_blocks(keep, STEP)?;
            if n == 0 {
                break;
            }
            pruned.0 += n;
        }
    }
    let before = store.earliest_state()?;
    while let Some(h) = store.prune_state(state, STEP)? {
        pruned.1 = h.saturating_sub(before);
    }
    Ok(pruned)
}

/// Runs [`prune_once`] every second until the runtime shuts down.
pub async fn run(store: Store, config: StorageConfig) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let (s, c) = (store.clone(), config.clone());
        match tokio::task::spawn_blocking(move || prune_once(&s, &c)).await {
            Ok(Ok((0, 0))) => {}
            Ok(Ok((blocks, states))) => {
                tracing::debug!(blocks, states, "pruned");
            }
            Ok(Err(e)) => tracing::warn!("pruning failed (will retry): {e}"),
            Err(_) => return,
        }
    }
}
