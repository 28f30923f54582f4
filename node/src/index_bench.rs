//! `basalt bench-index`: how fast the kv transaction indexer indexes committed blocks, and
//! how fast the same entries go into sled one insert each (how the index was written
//! before it moved to sorted runs), measured in the same run on the same generated chain.
//! A full node keeps up with a chain while its indexer's rate exceeds the chain's; the
//! sled figure beside it is the bound the runs are judged against.

use crate::bench::print_report;
use crate::store::Store;
use crate::sync_bench::generated_chain;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::time::Instant;

pub struct IndexBenchSpec {
    pub blocks: u64,
    pub txs_per_block: usize,
    pub base_port: u16,
    pub json: Option<std::path::PathBuf>,
}

/// Entries per sled batch in the baseline: what the sled-backed indexer ended a batch at.
const SLED_BATCH: usize = 8_192;

pub fn run(spec: IndexBenchSpec) -> Result<()> {
    if spec.blocks == 0 || spec.txs_per_block == 0 {
        bail!("need --blocks ≥ 1 and --txs ≥ 1");
    }
    let dir = tempfile::tempdir().context("creating a work folder")?;
    let homes = generated_chain(
        dir.path(),
        spec.base_port,
        0,
        spec.blocks,
        spec.txs_per_block,
        |c| c.tx_index.indexer = crate::config::Indexer::Null,
    )?;
    let store = Store::open(&homes[0].data_dir().join("blockstore.db"))?;
    let txs = spec.blocks * spec.txs_per_block as u64;

    eprintln!("indexing {txs} transactions into sorted runs…");
    let t = Instant::now();
    while store.index_next(crate::tx_indexer::BATCH)?.is_some() {}
    let runs_s = t.elapsed().as_secs_f64();
    let runs_mib = store.usage_mib()?.get("tx index").copied().unwrap_or(0.0);

    eprintln!("the same entries into sled, one insert each…");
    let sled_dir = dir.path().join("sled-index");
    let db = sled::Config::new()
        .path(&sled_dir)
        .cache_capacity(16 * 1024 * 1024)
        .open()
        .context("opening the baseline's sled")?;
    let t = Instant::now();
    let mut batch = sled::Batch::default();
    let mut pending = 0usize;
    let mut entries = 0u64;
    for h in 1..=spec.blocks {
        for (k, v) in store.index_entries(h)? {
            batch.insert(k, v);
            pending += 1;
            entries += 1;
        }
        if pending >= SLED_BATCH || h == spec.blocks {
            db.apply_batch(std::mem::take(&mut batch))?;
            pending = 0;
        }
    }
    db.flush()?;
    let sled_s = t.elapsed().as_secs_f64();
    let sled_mib = crate::restart_bench::dir_bytes(&sled_dir) as f64 / 1048576.0;

    let report = json!({
        "blocks": spec.blocks,
        "txs": txs,
        "index_entries": entries,
        "runs_s": runs_s,
        "runs_tx_per_s": txs as f64 / runs_s,
        "runs_mib": runs_mib,
        "sled_inserts_s": sled_s,
        "sled_inserts_tx_per_s": txs as f64 / sled_s,
        "sled_mib": sled_mib,
        "runs_over_sled": sled_s / runs_s,
    });
    print_report(&report, spec.json.as_deref())
}
