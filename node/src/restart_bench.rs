//! `basalt bench-restart`: how long a validator takes to come back after a clean stop, for
//! a short chain and a long one. Each chain is generated straight into a single
//! validator's store (executed and committed like any block, see `bench-sync`), the
//! validator is started and stopped with SIGTERM, then started again and timed from spawn
//! until its RPC answers `status` at its old height. The node loads its last committed state
//! version and replays nothing, so both times should be about the same; the report prints
//! them, their ratio, and the fsync latency measured beside them (the one disk cost a
//! start pays).

use crate::bench::{height, print_report};
use crate::client::Client;
use crate::home::Home;
use crate::localnet::Children;
use crate::sync_bench::generated_chain;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct RestartBenchSpec {
    /// Heights of the short and the long chain.
    pub short: u64,
    pub long: u64,
    pub txs_per_block: usize,
    pub base_port: u16,
    pub json: Option<std::path::PathBuf>,
}

/// One chain: generated, started, stopped, restarted. Returns the restart's seconds, the
/// data directory's MiB on disk and the store's MiB by kind of record.
fn measure(spec: &RestartBenchSpec, blocks: u64, port: u16) -> Result<(f64, f64, Value)> {
    let dir = tempfile::tempdir().context("creating a work folder")?;
    // No indexer competes for the disk while the restart is measured.
    let homes = generated_chain(dir.path(), port, 0, blocks, spec.txs_per_block, |c| {
        c.tx_index.indexer = crate::config::Indexer::Null
    })?;
    let client = Client::new(&format!("127.0.0.1:{}", port as usize + 1));
    let mut nodes = Children(Vec::new());
    let first = start_and_wait(&homes[0], &client, blocks, &mut nodes)?;
    eprintln!("first start: {first:.3} s at height {blocks}; SIGTERM…");
    stop(&mut nodes)?;
    let again = start_and_wait(&homes[0], &client, blocks, &mut nodes)?;
    stop(&mut nodes)?;
    let mib = dir_bytes(&homes[0].data_dir()) as f64 / (1024.0 * 1024.0);
    let store = crate::store::Store::open(&homes[0].data_dir().join("blockstore.db"))?;
    let kinds = json!(store.usage_mib()?);
    eprintln!("restart: {again:.3} s at height {blocks} (data {mib:.0} MiB on disk; {kinds})");
    Ok((again, mib, kinds))
}

/// Spawns the node and waits until its RPC reports `target`; returns the seconds taken.
fn start_and_wait(home: &Home, client: &Client, target: u64, nodes: &mut Children) -> Result<f64> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.root().join("node.log"))?;
    let began = Instant::now();
    nodes.0.push(
        Command::new(std::env::current_exe()?)
            .args(["start", "--home"])
            .arg(home.root())
            .env("RUST_LOG", "warn,basalt_node::start=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?,
    );
    while height(client) < target {
        if let Some(status) = nodes.0[0].try_wait()? {
            let log = std::fs::read_to_string(home.root().join("node.log")).unwrap_or_default();
            bail!("the node exited ({status}):\n{log}");
        }
        if began.elapsed() > Duration::from_secs(600) {
            bail!("the node did not reach height {target} within 600 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(began.elapsed().as_secs_f64())
}

fn stop(nodes: &mut Children) -> Result<()> {
    for mut child in nodes.0.drain(..) {
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()?;
        child.wait()?;
    }
    Ok(())
}

/// Bytes of every file under `dir`.
pub(crate) fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Median latency of a 4 KiB write + fsync in `dir`, in milliseconds.
pub fn fsync_ms(dir: &std::path::Path) -> Result<f64> {
    use std::io::Write;
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path)?;
    let mut samples = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        f.write_all(&[7u8; 4096])?;
        f.sync_data()?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    std::fs::remove_file(&path)?;
    samples.sort_by(f64::total_cmp);
    Ok(samples[samples.len() / 2])
}

pub fn run(spec: RestartBenchSpec) -> Result<()> {
    if spec.short == 0 || spec.long < spec.short || spec.txs_per_block == 0 {
        bail!("need 0 < --short ≤ --long and --txs ≥ 1");
    }
    let fsync = fsync_ms(&std::env::temp_dir())?;
    let (short_s, short_mib, _) = measure(&spec, spec.short, spec.base_port)?;
    let (long_s, long_mib, long_kinds) = measure(&spec, spec.long, spec.base_port + 10)?;
    let report = json!({
        "short_chain_heights": spec.short,
        "long_chain_heights": spec.long,
        "long_chain_txs": spec.long * spec.txs_per_block as u64,
        "restart_short_s": short_s,
        "restart_long_s": long_s,
        "long_over_short": long_s / short_s,
        "data_short_mib": short_mib,
        "data_long_mib": long_mib,
        "store_long_mib_by_kind": long_kinds,
        "fsync_ms_p50": fsync,
        "restart_long_in_fsyncs": long_s * 1e3 / fsync,
    });
    print_report(&report, spec.json.as_deref())
}
