//! `basalt bench`: starts an N-validator localnet tuned for throughput (its indexer chosen
//! by `--indexer`), funds K sender accounts in its genesis, signs the run's transfers up
//! front, sends them through JSON-RPC batches (at a fixed offered rate, or as fast as the
//! nodes take them), and measures from the client side: committed tx/s, submit→commit
//! latency, block interval, txs per block, rejections, empty blocks per second, and each
//! node's CPU time and peak RSS. Prints a markdown table; `--json` writes
//! the figures for tooling.

use crate::client::Client;
use crate::config::{Config, Indexer};
use crate::localnet::Children;
use crate::testnet::{self, TestnetSpec};
use anyhow::{bail, Context, Result};
use basalt_runtime::{Msg, TxBody};
use basalt_types::{Address, Hash, PrivateKey};
use base64::Engine;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct BenchSpec {
    pub validators: usize,
    pub duration: Duration,
    pub rate: Option<u64>,
    pub accounts: usize,
    pub json: Option<std::path::PathBuf>,
    pub base_port: u16,
    /// Pause after each block while under load (batches transactions into larger blocks).
    pub timeout_commit_ms: u64,
    /// The validators' transaction indexer.
    pub indexer: Indexer,
    /// The validators' `[storage] retain_blocks`.
    pub retain_blocks: u64,
    /// Adds a kv-indexing full node (not sent to) whose index lag is sampled.
    pub full_node: bool,
    /// Time between progress samples.
    pub sample_every: Duration,
}

pub(crate) const CHAIN: &str = "basalt-bench";
/// Transfers per JSON-RPC batch (CometBFT's batch limit).
const BATCH: usize = 10;
/// Client threads sending transactions.
const SENDERS: usize = 8;
/// Transfers per second a saturation run signs in advance for each second of load (more
/// than the nodes take; a sender that runs out signs the rest as it goes).
const SATURATION_PRESIGN: u64 = 15_000;

/// One sender thread's accounts and their next nonces: makes JSON-RPC batch bodies of
/// signed transfers.
pub(crate) struct Signer {
    keys: Vec<PrivateKey>,
    nonces: Vec<u64>,
    next: usize,
}

impl Signer {
    pub(crate) fn new(keys: Vec<PrivateKey>) -> Signer {
        let nonces = vec![0; keys.len()];
        Signer {
            keys,
            nonces,
            next: 0,
        }
    }

    /// The body of one `broadcast_tx_sync` batch and the hashes of its transfers.
    pub(crate) fn batch(&mut self) -> (String, Vec<Hash>) {
        let mut calls = Vec::with_capacity(BATCH);
        let mut hashes = Vec::with_capacity(BATCH);
        for id in 0..BATCH {
            let k = self.next % self.keys.len();
            self.next += 1;
            let tx = transfer(&self.keys[k], self.nonces[k]);
            self.nonces[k] += 1;
            hashes.push(basalt_runtime::tx_hash(&tx));
            let b64 = base64::engine::general_purpose::STANDARD.encode(&tx);
            calls.push(format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"broadcast_tx_sync","params":{{"tx":"{b64}"}}}}"#
            ));
        }
        (format!("[{}]", calls.join(",")), hashes)
    }
}

/// The benchmark's signed transfer: one unit to a fixed account.
fn transfer(key: &PrivateKey, nonce: u64) -> Vec<u8> {
    TxBody {
        chain_id: CHAIN.into(),
        nonce,
        fee: 1,
        msg: Msg::Transfer {
            to: Address([0xBE; 20]),
            amount: 1,
        },
    }
    .sign(key)
    .to_bytes()
}

pub(crate) fn sender_key(i: usize) -> PrivateKey {
    PrivateKey::from_seed(Hash::digest(format!("bench-sender-{i}").as_bytes()).0)
}

/// A `/proc/PID/status` size field (`VmHWM`, `VmRSS`) in MiB (0 when unreadable).
fn status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// CPU seconds (user + system) and peak RSS in MiB of a process, from /proc.
pub(crate) fn usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // After the command name: state is field 3, utime 14 and stime 15 (1-based).
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let cpu = (ticks(14) + ticks(15)) / 100.0;
    (cpu, status_mib(pid, "VmHWM"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// The node's latest height (0 while it does not answer).
pub(crate) fn height(c: &Client) -> u64 {
    c.call("status", json!({}))
        .ok()
        .and_then(|s| s["sync_info"]["latest_block_height"].as_str()?.parse().ok())
        .unwrap_or(0)
}

/// Prints the figures as a markdown table and, with `json`, writes them to that file.
pub(crate) fn print_report(report: &Value, json: Option<&std::path::Path>) -> Result<()> {
    println!("| figure | value |\n|---|---|");
    for (k, v) in report.as_object().into_iter().flatten() {
        println!("| {k} | {v} |");
    }
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Waits until the node behind `c` reports `target`. Fails at once with the node's log when
/// one of `nodes` (node k's home is `dir/node<k>`) exits, and after `within` saying `what`
/// did not happen.
pub(crate) fn wait_height(
    c: &Client,
    target: u64,
    within: Duration,
    nodes: &mut Children,
    dir: &std::path::Path,
    what: &str,
) -> Result<()> {
    let began = Instant::now();
    while height(c) < target {
        for (k, child) in nodes.0.iter_mut().enumerate() {
            if let Some(status) = child.try_wait()? {
                let log = std::fs::read_to_string(dir.join(format!("node{k}/node.log")))
                    .unwrap_or_default();
                bail!("node{k} exited ({status}):\n{log}");
            }
        }
        if began.elapsed() > within {
            bail!(
                "{what} within {within:?}; see the logs in {}",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Applies `edit` to every node's config file.
/// Starts `basalt start` (this executable) for every home, its log appended to
/// `node.log` in the home, warnings only.
pub(crate) fn spawn_nodes(homes: &[crate::home::Home], nodes: &mut Children) -> Result<()> {
    let exe = std::env::current_exe()?;
    for h in homes {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(h.root().join("node.log"))?;
        nodes.0.push(
            Command::new(&exe)
                .args(["start", "--home"])
                .arg(h.root())
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()?,
        );
    }
    Ok(())
}

pub(crate) fn edit_configs(homes: &[crate::home::Home], edit: impl Fn(&mut Config)) -> Result<()> {
    for h in homes {
        let mut config = Config::load(&h.config_file())?;
        edit(&mut config);
        std::fs::write(h.config_file(), config.render())
            .with_context(|| format!("writing {}", h.config_file().display()))?;
    }
    Ok(())
}

pub fn run(spec: BenchSpec) -> Result<()> {
    if spec.validators == 0 || spec.accounts == 0 {
        bail!("--validators and --accounts must be at least 1");
    }
    let dir = tempfile::tempdir().context("creating a work folder")?;
    let bounds = crate::bench_bounds::Bounds::measure(dir.path())?;
    eprintln!("generating {} sender keys…", spec.accounts);
    let keys: Vec<PrivateKey> = (0..spec.accounts).map(sender_key).collect();
    let homes = testnet::testnet(&TestnetSpec {
        validators: spec.validators,
        full_nodes: usize::from(spec.full_node),
        output: dir.path(),
        base_port: spec.base_port,
        stakes: None,
        chain_id: CHAIN,
        timeout_propose_ms: Some(1000),
        timeout_commit_ms: Some(0),
        extra_accounts: keys
            .iter()
            .map(|k| (k.public_key().address(), 1_000_000_000_000))
            .collect(),
    })?;
    edit_configs(&homes[..spec.validators], |c| {
        c.tx_index.indexer = spec.indexer;
        c.storage.retain_blocks = spec.retain_blocks;
    })?;
    let spawn = |nodes: &mut Children| spawn_nodes(&homes, nodes);
    let mut nodes = Children(Vec::new());
    spawn(&mut nodes)?;
    let rpc_of = |k: usize| format!("127.0.0.1:{}", spec.base_port as usize + 2 * k + 1);
    // Transactions go to the validators only.
    let rpcs: Vec<String> = (0..spec.validators).map(rpc_of).collect();
    let watch = Client::new(&rpcs[0]);
    let minute = Duration::from_secs(60);
    // Each node reads the genesis and stores its state on first start: a minute, and a
    // second more per 5,000 funded accounts.
    let first_start = minute + Duration::from_secs(spec.accounts as u64 / 5_000);
    let started = Instant::now();
    wait_height(
        &watch,
        2,
        first_start,
        &mut nodes,
        dir.path(),
        "the localnet did not start",
    )?;
    eprintln!(
        "the localnet reached height 2 in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Empty blocks per second with timeout_commit = 0.
    let (h0, t0) = (height(&watch), Instant::now());
    std::thread::sleep(Duration::from_secs(5));
    let empty_bps = (height(&watch) - h0) as f64 / t0.elapsed().as_secs_f64();
    eprintln!("empty blocks: {empty_bps:.1}/s with timeout_commit = 0");
    // The first start's peak: each node built its genesis state (the restart below would
    // reset it).
    let first_start_rss: Vec<f64> = nodes.0.iter().map(|c| usage(c.id()).1.round()).collect();
    eprintln!("peak RSS of the first start (genesis state built), MiB: {first_start_rss:?}");
    if spec.timeout_commit_ms > 0 {
        // Restart with the load's timeout_commit (the chain carries on from its data).
        let h = height(&watch);
        drop(std::mem::replace(&mut nodes, Children(Vec::new())));
        edit_configs(&homes, |c| {
            c.consensus.timeout_commit_ms = spec.timeout_commit_ms
        })?;
        spawn(&mut nodes)?;
        // Past the first heights after the restart (WAL replay, a node syncing the height
        // it missed, a round lost to a proposer still starting): the load measures the
        // running chain, and those seconds went into the first transactions' latency.
        let what = "the localnet did not restart";
        wait_height(&watch, h + 5, minute, &mut nodes, dir.path(), what)?;
    }
    // Load: SENDERS threads, each with its share of the accounts and one node (as a wallet
    // uses one endpoint: an account's next nonce then never reaches a node before the one
    // before it). Wallets sign on their own machines, not on the validators': each thread
    // signs its share of the run before the clock starts, so the two cores measure the nodes.
    let presign = spec.rate.unwrap_or(SATURATION_PRESIGN) * spec.duration.as_secs();
    let presign_batches = (presign as usize).div_ceil(BATCH * SENDERS);
    eprintln!("signing {} transfers…", presign_batches * BATCH * SENDERS);
    let submitted: Arc<Mutex<HashMap<Hash, Instant>>> = Arc::default();
    let rejected = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(std::sync::Barrier::new(SENDERS + 1));
    let mut threads = Vec::new();
    for t in 0..SENDERS {
        let mut signer = Signer::new(keys.iter().skip(t).step_by(SENDERS).cloned().collect());
        let (submitted, rejected, stop, rpcs, ready) = (
            submitted.clone(),
            rejected.clone(),
            stop.clone(),
            rpcs.clone(),
            ready.clone(),
        );
        let per_thread_rate = spec.rate.map(|r| r as f64 / SENDERS as f64);
        threads.push(std::thread::spawn(move || {
            let mut signed: std::collections::VecDeque<(String, Vec<Hash>)> =
                (0..presign_batches).map(|_| signer.batch()).collect();
            ready.wait();
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(10))
                .build();
            let node = &rpcs[t % rpcs.len()];
            let mut sent = 0u64;
            let began = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                if let Some(r) = per_thread_rate {
                    let due = began + Duration::from_secs_f64(sent as f64 / r);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
                let (body, hashes) = signed.pop_front().unwrap_or_else(|| signer.batch());
                // Recorded before sending: the block may commit before the reply is read.
                let now = Instant::now();
                let mut map = submitted.lock().expect("not poisoned");
                map.extend(hashes.iter().map(|h| (*h, now)));
                drop(map);
                let reply: Option<Value> = agent
                    .post(&format!("http://{node}/"))
                    .set("content-type", "application/json")
                    .send_string(&body)
                    .ok()
                    .and_then(|r| r.into_json().ok());
                let codes: Vec<u64> = reply
                    .as_ref()
                    .and_then(Value::as_array)
                    .filter(|a| a.len() == hashes.len())
                    .map(|a| {
                        a.iter()
                            .map(|r| r["result"]["code"].as_u64().unwrap_or(u64::MAX))
                            .collect()
                    })
                    .unwrap_or_else(|| vec![u64::MAX; hashes.len()]);
                let mut map = submitted.lock().expect("not poisoned");
                for (h, code) in hashes.iter().zip(codes) {
                    if code != 0 {
                        map.remove(h);
                        rejected.fetch_add(1, Ordering::Relaxed);
                    }
                }
                drop(map);
                sent += BATCH as u64;
            }
        }));
    }
    ready.wait();
    eprintln!(
        "sending for {:?} (timeout_commit {} ms, indexer {})…",
        spec.duration,
        spec.timeout_commit_ms,
        spec.indexer.name()
    );
    let load_start = Instant::now();
    // Watch blocks as they commit and match their transactions.
    let mut latencies = Vec::new();
    let mut intervals = Vec::new();
    let mut per_block = Vec::new();
    let mut next = height(&watch) + 1;
    let mut last_time: Option<f64> = None;
    let mut committed_in_window = 0u64;
    let mut samples = Vec::new();
    let mut last_sample = Instant::now();
    let deadline = load_start + spec.duration;
    let drain_until = deadline + Duration::from_secs(10);
    loop {
        let now = Instant::now();
        if now >= deadline && !stop.load(Ordering::Relaxed) {
            // Senders finish the request they are in; after that nothing more is
            // submitted, so an empty map below means everything accepted has committed.
            stop.store(true, Ordering::Relaxed);
            for t in std::mem::take(&mut threads) {
                let _ = t.join();
            }
        }
        if now >= drain_until
            || (now >= deadline && submitted.lock().expect("not poisoned").is_empty())
        {
            break;
        }
        if last_sample.elapsed() >= spec.sample_every {
            last_sample = Instant::now();
            let s = sample(
                &homes,
                &nodes,
                &watch,
                spec.full_node.then(|| rpc_of(spec.validators)),
            );
            eprintln!("{:>5.0} s: {s}", load_start.elapsed().as_secs_f64());
            samples.push(s);
        }
        let Ok(b) = watch.call("block", json!({"height": next.to_string()})) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let seen = Instant::now();
        let txs = b["block"]["data"]["txs"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let time = b["block"]["header"]["time"].as_str().and_then(parse_time);
        if let (Some(t), Some(l)) = (time, last_time) {
            intervals.push((t - l) * 1000.0);
        }
        last_time = time;
        per_block.push(txs.len() as f64);
        let mut map = submitted.lock().expect("not poisoned");
        for tx in txs {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(tx.as_str().unwrap_or_default())
                .unwrap_or_default();
            if let Some(at) = map.remove(&basalt_runtime::tx_hash(&bytes)) {
                latencies.push(seen.duration_since(at).as_secs_f64() * 1000.0);
                if seen <= deadline {
                    committed_in_window += 1;
                }
            }
        }
        drop(map);
        next += 1;
    }
    let window = spec.duration.as_secs_f64();
    let usage: Vec<(f64, f64)> = nodes.0.iter().map(|c| usage(c.id())).collect();
    latencies.sort_by(f64::total_cmp);
    intervals.sort_by(f64::total_cmp);
    let tps = committed_in_window as f64 / window;
    let gossip = gossip_cost(&rpcs, latencies.len());
    let report = json!({
        "validators": spec.validators,
        "timeout_commit_ms": spec.timeout_commit_ms,
        "indexer": spec.indexer.name(),
        "duration_s": window,
        "offered_rate": spec.rate,
        "accounts": spec.accounts,
        "tps": tps,
        "committed": latencies.len(),
        "rejected": rejected.load(Ordering::Relaxed),
        // Accepted by a node but not seen in a block by the end of the drain (10 s).
        "uncommitted": submitted.lock().expect("not poisoned").len(),
        "latency_ms_p50": percentile(&latencies, 0.5),
        "latency_ms_p95": percentile(&latencies, 0.95),
        "latency_ms_p99": percentile(&latencies, 0.99),
        "block_interval_ms_p50": percentile(&intervals, 0.5),
        "txs_per_block_mean": per_block.iter().sum::<f64>() / per_block.len().max(1) as f64,
        "empty_blocks_per_s": empty_bps,
        // #16's target: an empty height in at most 10 fsync latencies of wall time.
        "empty_height_ms": 1000.0 / empty_bps.max(1e-9),
        "empty_height_in_fsyncs": 1000.0 / empty_bps.max(1e-9) / bounds.fsync_ms,
        "cpu_s": usage.iter().map(|u| u.0).collect::<Vec<_>>(),
        "rss_mb": usage.iter().map(|u| u.1).collect::<Vec<_>>(),
        "rss_mb_max": usage.iter().map(|u| u.1).fold(0.0, f64::max),
        "first_start_rss_mb": first_start_rss,
        "retain_blocks": spec.retain_blocks,
        "samples": samples,
        "tx_gossip": gossip,
        // Every node (validators and a full node) verifies every transaction once.
        "bounds": bounds.report(spec.validators + usize::from(spec.full_node), tps),
    });
    print_report(&report, spec.json.as_deref())
}

/// Progress now: the chain's height, each node's data directory and resident memory in
/// MiB, and with a full node at `full_rpc`, the height its transaction index covers and its
/// lag behind the chain.
fn sample(
    homes: &[crate::home::Home],
    nodes: &Children,
    watch: &Client,
    full_rpc: Option<String>,
) -> Value {
    let h = height(watch);
    let disk: Vec<f64> = homes
        .iter()
        .map(|home| (crate::restart_bench::dir_bytes(&home.data_dir()) as f64 / 1048576.0).round())
        .collect();
    let rss: Vec<f64> = nodes
        .0
        .iter()
        .map(|c| status_mib(c.id(), "VmRSS").round())
        .collect();
    let mut out = json!({"height": h, "disk_mib": disk, "rss_mib": rss});
    if let Some(rpc) = full_rpc {
        let indexed = metric(&rpc, "basalt_tx_index_height").unwrap_or(0.0) as u64;
        out["full_node_indexed"] = json!(indexed);
        out["full_node_index_lag"] = json!(h.saturating_sub(indexed));
    }
    out
}

/// What gossiping the run's transactions cost, from every validator's gossipsub counters:
/// copies of a message a node received for each one it kept (1.0: no duplicates), and
/// bytes on the transaction topic per committed transaction, in all and per link of the
/// full mesh (a transaction has to cross `n - 1` of its `n (n - 1) / 2` links once).
fn gossip_cost(rpcs: &[String], committed: usize) -> serde_json::Value {
    let topic = format!("hash=\"{}\"", basalt_p2p::Topic::Txs.name(CHAIN));
    let mut received = 0.0;
    let mut kept = 0.0;
    let mut bytes = 0.0;
    for rpc in rpcs {
        let text = metrics_text(rpc).unwrap_or_default();
        let counter = |name: &str| labelled_metric(&text, name, &topic).unwrap_or(0.0);
        received += counter("basalt_p2p_topic_msg_recv_counts_unfiltered_total");
        kept += counter("basalt_p2p_topic_msg_recv_counts_total");
        bytes += counter("basalt_p2p_topic_msg_recv_bytes_total");
    }
    let n = rpcs.len() as f64;
    let links = n * (n - 1.0) / 2.0;
    let per_tx = bytes / committed.max(1) as f64;
    let one = transfer(&sender_key(0), 1).len() as f64;
    json!({
        "tx_bytes": one,
        // 1.0: each receiving node got each transfer's bytes exactly once, with no envelope.
        "received_per_tx_bytes_per_receiving_node": per_tx / (n - 1.0).max(1.0) / one,
        "copies_received_per_message": received / kept.max(1.0),
        "duplicate_messages": received - kept,
        "bytes_per_tx": per_tx,
        "bytes_per_tx_per_link": per_tx / links.max(1.0),
    })
}

/// A node's `/metrics` text.
fn metrics_text(rpc: &str) -> Option<String> {
    ureq::get(&format!("http://{rpc}/metrics"))
        .timeout(Duration::from_secs(5))
        .call()
        .ok()?
        .into_string()
        .ok()
}

/// One counter of a `/metrics` text whose labels contain `label`.
fn labelled_metric(text: &str, name: &str, label: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix('{')?;
        let (labels, value) = rest.split_once("} ")?;
        labels.contains(label).then(|| value.trim().parse().ok())?
    })
}

/// One gauge from a node's `/metrics`.
fn metric(rpc: &str, name: &str) -> Option<f64> {
    metrics_text(rpc)?
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Seconds since the epoch of an RFC 3339 UTC time with nanoseconds.
fn parse_time(s: &str) -> Option<f64> {
    let t = basalt_rpc::shapes::parse_rfc3339(s)?;
    Some(t.seconds as f64 + f64::from(t.nanos) / 1e9)
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_parse_back() {
        let t = basalt_types::Timestamp {
            seconds: 1_795_581_151,
            nanos: 250_000_000,
        };
        let s = basalt_rpc::shapes::rfc3339(t);
        assert_eq!(super::parse_time(&s), Some(1_795_581_151.25));
        assert_eq!(super::percentile(&[1.0, 2.0, 3.0], 0.5), 2.0);
    }
}
