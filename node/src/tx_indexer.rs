//! The transaction indexer (`[tx_index] indexer = "kv"`): indexes committed blocks off the
//! commit path, on a blocking thread, in batches of up to [`BATCH`] blocks written as one
//! sorted run with its own progress height (`store::index_runs`), so it catches up after a
//! restart (or after falling behind a saturated chain) from where it stopped. A second
//! thread merges runs and drops pruned heights, so a long merge never holds up new blocks.

use crate::store::{Store, StoreError};
use std::time::Duration;

/// Blocks indexed per batch.
pub const BATCH: u64 = 64;
/// How often it looks for new blocks when it has caught up.
const POLL: Duration = Duration::from_millis(20);
/// How often the upkeep looks for work when there was none.
const UPKEEP_POLL: Duration = Duration::from_millis(200);

/// Indexes until the runtime shuts down; `height` reports progress (for metrics).
pub async fn run(store: Store, height: prometheus_client::metrics::gauge::Gauge) {
    let upkeep = tokio::spawn(repeat(store.clone(), UPKEEP_POLL, |s| {
        Ok(s.maintain_index()?.then_some(()))
    }));
    repeat(store, POLL, move |s| {
        Ok(s.index_new_blocks(BATCH)?.map(|h| {
            height.set(h as i64);
        }))
    })
    .await;
    upkeep.abort();
}

/// Runs `step` on a blocking thread again and again, pausing `idle` after a step with
/// nothing to do (or a failure, logged), until the runtime shuts down.
async fn repeat(
    store: Store,
    idle: Duration,
    step: impl Fn(&Store) -> Result<Option<()>, StoreError> + Clone + Send + 'static,
) {
    loop {
        let (s, f) = (store.clone(), step.clone());
        match tokio::task::spawn_blocking(move || f(&s)).await {
            Ok(Ok(Some(()))) => continue,
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!("transaction indexing failed (will retry): {e}"),
            Err(_) => return,
        }
        tokio::time::sleep(idle).await;
    }
}

/// Waits (polling, at most `wait`) until the index covers `height`. Reads of the index use
/// it so that a transaction committed a moment ago is found; returns the indexed height.
pub fn wait_for(
    store: &Store,
    height: u64,
    wait: Duration,
) -> Result<u64, crate::store::StoreError> {
    let started = std::time::Instant::now();
    loop {
        let indexed = store.indexed_height()?;
        if indexed >= height || started.elapsed() >= wait {
            return Ok(indexed);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
