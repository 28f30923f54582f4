//! The transaction indexer (`[tx_index] indexer = "kv"`): indexes committed blocks off the
//! commit path, on a blocking thread, in batches of up to [`BATCH`] blocks with its own
//! progress height in the same batch, so it catches up after a restart (or after falling
//! behind a saturated chain) from where it stopped.

use crate::store::Store;
use std::time::Duration;

/// Blocks indexed per batch.
pub const BATCH: u64 = 64;
/// How often it looks for new blocks when it has caught up.
const POLL: Duration = Duration::from_millis(20);

/// Indexes until the runtime shuts down; `height` reports progress (for metrics).
pub async fn run(store: Store, height: prometheus_client::metrics::gauge::Gauge) {
    loop {
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.index_next(BATCH)).await {
            Ok(Ok(Some(h))) => {
                height.set(h as i64);
                continue;
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!("transaction indexing failed (will retry): {e}"),
            Err(_) => return,
        }
        tokio::time::sleep(POLL).await;
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
