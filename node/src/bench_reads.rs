//! `basalt bench-reads`: how much heavy RPC reads slow consensus. Starts a 4-validator
//! localnet with the kv indexer, commits a load of transfers, then measures the block rate
//! twice for the same time: idle, and while one client per validator runs heavy reads back
//! to back (a range `tx_search`, a range `block_search`, `blockchain` over the whole chain
//! in windows, `block_results` of old heights). Prints both rates and their ratio (1.0:
//! reads cost consensus nothing), the reads done and the slowest.

use crate::bench::{edit_configs, height, print_report, sender_key, Signer, CHAIN};
use crate::client::Client;
use crate::config::Indexer;
use crate::localnet::Children;
use crate::testnet::{self, TestnetSpec};
use anyhow::{Context, Result};
use basalt_types::PrivateKey;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct ReadBenchSpec {
    pub transfers: usize,
    pub duration: Duration,
    pub base_port: u16,
    pub json: Option<std::path::PathBuf>,
}

const VALIDATORS: usize = 4;
const ACCOUNTS: usize = 1000;

/// One JSON-RPC call; its answer, or `None` on any failure.
fn call(agent: &ureq::Agent, node: &str, method: &str, params: Value) -> Option<Value> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    agent
        .post(&format!("http://{node}/"))
        .send_json(body)
        .ok()?
        .into_json()
        .ok()
}

/// Blocks per second at `watch` over `d`.
fn block_rate(watch: &Client, d: Duration) -> f64 {
    let (h0, t0) = (height(watch), Instant::now());
    std::thread::sleep(d);
    (height(watch) - h0) as f64 / t0.elapsed().as_secs_f64()
}

pub fn run(spec: ReadBenchSpec) -> Result<()> {
    let dir = tempfile::tempdir().context("creating a work folder")?;
    let keys: Vec<PrivateKey> = (0..ACCOUNTS).map(sender_key).collect();
    let homes = testnet::testnet(&TestnetSpec {
        validators: VALIDATORS,
        full_nodes: 0,
        output: dir.path(),
        base_port: spec.base_port,
        stakes: None,
        chain_id: CHAIN,
        timeout_propose_ms: Some(1000),
        timeout_commit_ms: Some(100),
        extra_accounts: keys
            .iter()
            .map(|k| (k.public_key().address(), 1_000_000_000_000))
            .collect(),
    })?;
    edit_configs(&homes, |c| c.tx_index.indexer = Indexer::Kv)?;
    let mut nodes = Children(Vec::new());
    crate::bench::spawn_nodes(&homes, &mut nodes)?;
    let rpcs: Vec<String> = (0..VALIDATORS)
        .map(|k| format!("127.0.0.1:{}", spec.base_port as usize + 2 * k + 1))
        .collect();
    let watch = Client::new(&rpcs[0]);
    let what = "the localnet did not start";
    crate::bench::wait_height(
        &watch,
        2,
        Duration::from_secs(60),
        &mut nodes,
        dir.path(),
        what,
    )?;

    eprintln!("committing {} transfers…", spec.transfers);
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let mut signer = Signer::new(keys);
    let mut sent = 0;
    while sent < spec.transfers {
        let (body, hashes) = signer.batch();
        let node = &rpcs[0];
        let ok = agent
            .post(&format!("http://{node}/"))
            .set("content-type", "application/json")
            .send_string(&body)
            .is_ok();
        if ok {
            sent += hashes.len();
        }
    }
    let loaded = Instant::now();
    while loaded.elapsed() < Duration::from_secs(120) {
        let pending = call(&agent, &rpcs[0], "num_unconfirmed_txs", json!({}))
            .and_then(|v| v["result"]["n_txs"].as_str()?.parse::<u64>().ok());
        if pending == Some(0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let last = height(&watch);
    eprintln!("loaded: height {last}; measuring the idle block rate…");
    let idle = block_rate(&watch, spec.duration);

    eprintln!("measuring the block rate under heavy reads…");
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let slowest_ms = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = rpcs
        .iter()
        .cloned()
        .map(|node| {
            let (stop, reads, errors, slowest_ms) =
                (stop.clone(), reads.clone(), errors.clone(), slowest_ms.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(30))
                    .build();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let old = 1 + i % last.max(1);
                    let (method, params) = match i % 4 {
                        0 => ("tx_search", json!({"query": format!("tx.height > {}", old / 2), "per_page": "100"})),
                        1 => ("block_search", json!({"query": "block.height > 1", "per_page": "100"})),
                        2 => ("blockchain", json!({"minHeight": old.to_string(), "maxHeight": (old + 19).to_string()})),
                        _ => ("block_results", json!({"height": old.to_string()})),
                    };
                    let started = Instant::now();
                    let answer = call(&agent, &node, method, params);
                    let ms = started.elapsed().as_millis() as u64;
                    slowest_ms.fetch_max(ms, Ordering::Relaxed);
                    reads.fetch_add(1, Ordering::Relaxed);
                    if answer.is_none_or(|a| a.get("error").is_some()) {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let loaded_rate = block_rate(&watch, spec.duration);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let reads = reads.load(Ordering::Relaxed);
    let report = json!({
        "validators": VALIDATORS,
        "transfers_committed_before": spec.transfers,
        "chain_height": last,
        "seconds_each": spec.duration.as_secs(),
        "idle_blocks_per_s": idle,
        "blocks_per_s_under_heavy_reads": loaded_rate,
        "ratio": if idle > 0.0 { loaded_rate / idle } else { 0.0 },
        "reads": reads,
        "reads_per_s": reads as f64 / spec.duration.as_secs_f64(),
        "read_errors": errors.load(Ordering::Relaxed),
        "slowest_read_ms": slowest_ms.load(Ordering::Relaxed),
    });
    print_report(&report, spec.json.as_deref())
}
