//! `basalt bench-statesync`: joining a long chain with a large state by state sync and by
//! block sync.
//!
//! Generates a chain of `--blocks` blocks (one signed transfer each) over a genesis of
//! `--accounts` funded accounts into a validator's store, taking two snapshots on the way:
//! one early (a tenth of the way) and one ten blocks before the tip. A fresh node restores
//! the early one, another the late one (then catches up to the tip), and a third block-syncs
//! the whole chain from genesis. The two restore times differ only by the chain's length
//! below the snapshot: equal times show that state sync does not grow with it.

use crate::bench::{height, print_report, wait_height};
use crate::client::Client;
use crate::home::Home;
use crate::localnet::Children;
use crate::statesync::files::SnapshotDir;
use crate::statesync::take::take_snapshot;
use crate::sync_bench::{generated_chain_with, spawn_node as spawn, GeneratedChain};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

pub struct StateSyncBenchSpec {
    pub blocks: u64,
    pub accounts: u32,
    pub base_port: u16,
    pub json: Option<std::path::PathBuf>,
}

const RESTORED: &str = "state restored and verified";

/// Seconds until `home`'s log shows `line` (polling), failing if the node exits.
fn wait_log(home: &Home, child: &mut std::process::Child, line: &str) -> Result<f64> {
    let began = Instant::now();
    loop {
        let log = std::fs::read_to_string(home.root().join("node.log")).unwrap_or_default();
        if log.contains(line) {
            return Ok(began.elapsed().as_secs_f64());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{} exited ({status}):\n{log}", home.root().display());
        }
        if began.elapsed() > Duration::from_secs(3600) {
            bail!("no {line:?} in {} within an hour", home.root().display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn move_snapshot(from: &Path, height: u64, validator: &Home) -> Result<()> {
    let to = validator.data_dir().join("snapshots");
    std::fs::create_dir_all(&to)?;
    std::fs::rename(from.join(height.to_string()), to.join(height.to_string()))
        .with_context(|| format!("moving the snapshot of height {height}"))
}

pub fn run(spec: StateSyncBenchSpec) -> Result<()> {
    if spec.blocks < 100 {
        bail!("--blocks must be at least 100");
    }
    let early = spec.blocks / 10;
    let late = spec.blocks - 10;
    let dir = tempfile::tempdir().context("creating a work folder")?;
    let bounds = crate::bench_bounds::Bounds::measure(dir.path())?;
    let (early_dir, late_dir) = (dir.path().join("snap-early"), dir.path().join("snap-late"));
    let mut taken = Vec::new();
    let gen_started = Instant::now();
    let homes = generated_chain_with(
        &dir.path().join("net"),
        spec.base_port,
        &GeneratedChain {
            full_nodes: 3,
            blocks: spec.blocks,
            txs_per_block: 1,
            funded: spec.accounts,
        },
        |c| c.statesync.snapshot_interval = 0,
        |store, h| {
            for (at, to) in [(early, &early_dir), (late, &late_dir)] {
                if h == at + 10 {
                    let t = Instant::now();
                    let meta = take_snapshot(store, at, &SnapshotDir::new(to, 1))?;
                    let secs = t.elapsed().as_secs_f64();
                    eprintln!(
                        "snapshot of height {at}: {} chunks, {:.1} MiB, taken in {secs:.1} s",
                        meta.chunks.len(),
                        meta.bytes as f64 / 1048576.0
                    );
                    taken.push((meta, secs));
                }
            }
            Ok(())
        },
    )?;
    let generate_s = gen_started.elapsed().as_secs_f64();
    let [(early_meta, take_early_s), (_, take_late_s)] =
        <[_; 2]>::try_from(taken).map_err(|_| anyhow!("the two snapshots were not taken"))?;
    let net = dir.path().join("net");
    let rpc = |k: usize| format!("127.0.0.1:{}", spec.base_port as usize + 2 * k + 1);

    move_snapshot(&early_dir, early, &homes[0])?;
    let mut nodes = Children(vec![spawn(&homes[0], "warn")?]);
    let source = Client::new(&rpc(0));
    let loading = Duration::from_secs(600);
    wait_height(
        &source,
        spec.blocks,
        loading,
        &mut nodes,
        &net,
        "no validator",
    )?;
    // The generated blocks are 1 ms apart from the genesis time: wait until the tip is not
    // in the future, or the light client rightly refuses it.
    let tip = source.call("block", json!({"height": spec.blocks.to_string()}))?;
    let tip_time = basalt_rpc::shapes::parse_rfc3339(
        tip["block"]["header"]["time"].as_str().unwrap_or_default(),
    )
    .ok_or_else(|| anyhow!("the tip's time does not parse: {tip}"))?;
    let now = crate::node::now();
    if tip_time.seconds > now.seconds {
        let wait = (tip_time.seconds - now.seconds) as u64 + 1;
        eprintln!("waiting {wait} s for the generated tip's time to pass");
        std::thread::sleep(Duration::from_secs(wait));
    }
    let trust_hash = source.call("block", json!({"height": "1"}))?["block_id"]["hash"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // The joining nodes know only the validator (the others are not running: waiting for
    // them would only add discovery time).
    let validator_p2p = format!("127.0.0.1:{}", spec.base_port);
    crate::bench::edit_configs(&homes[1..], |c| {
        c.p2p.persistent_peers = vec![validator_p2p.clone()];
    })?;
    crate::bench::edit_configs(&homes[1..3], |c| {
        c.statesync.enable = true;
        c.statesync.rpc_servers = vec![format!("http://{}", rpc(0))];
        c.statesync.trust_height = 1;
        c.statesync.trust_hash = trust_hash.clone();
    })?;
    let filter = "warn,basalt_node::statesync=info";

    eprintln!("a fresh node restores the snapshot of height {early}…");
    nodes.0.push(spawn(&homes[1], filter)?);
    let restore_early_s = wait_log(&homes[1], &mut nodes.0[1], RESTORED)?;
    let _ = nodes.0[1].kill();

    move_snapshot(&late_dir, late, &homes[0])?;
    eprintln!("a fresh node restores the snapshot of height {late} and catches up…");
    let started = Instant::now();
    nodes.0.push(spawn(&homes[2], filter)?);
    let restore_late_s = wait_log(&homes[2], &mut nodes.0[2], RESTORED)?;
    let (_, restore_rss_mb) = crate::bench::usage(nodes.0[2].id());
    wait_height(
        &Client::new(&rpc(2)),
        spec.blocks,
        loading,
        &mut Children(vec![]),
        &net,
        "",
    )?;
    let statesync_join_s = started.elapsed().as_secs_f64();

    eprintln!(
        "a fresh node block-syncs {} blocks from genesis…",
        spec.blocks
    );
    let started = Instant::now();
    nodes.0.push(spawn(&homes[3], "warn")?);
    let syncer = Client::new(&rpc(3));
    let mut last_print = Instant::now();
    while height(&syncer) < spec.blocks {
        if let Some(status) = nodes.0[3].try_wait()? {
            bail!("the block-syncing node exited ({status})");
        }
        if last_print.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "  block sync at {}/{} after {:.0} s",
                height(&syncer),
                spec.blocks,
                started.elapsed().as_secs_f64()
            );
            last_print = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let blocksync_join_s = started.elapsed().as_secs_f64();
    let mib = early_meta.bytes as f64 / 1048576.0;
    let report = json!({
        // The block-syncing node's transactions per second against the signature bound.
        "bounds": bounds.report(1, spec.blocks as f64 / blocksync_join_s),
        "blocks": spec.blocks,
        "funded_accounts": spec.accounts,
        "snapshot_entries": early_meta.entries,
        "snapshot_chunks": early_meta.chunks.len(),
        "snapshot_mib": mib,
        "take_snapshot_s": [take_early_s, take_late_s],
        "restore_at_height": [early, late],
        "restore_s": [restore_early_s, restore_late_s],
        "restore_late_over_early": restore_late_s / restore_early_s,
        "restore_mib_per_s": mib / restore_late_s,
        "restoring_node_peak_rss_mb": restore_rss_mb,
        "join_by_state_sync_s": statesync_join_s,
        "join_by_block_sync_s": blocksync_join_s,
        "block_sync_over_state_sync": blocksync_join_s / statesync_join_s,
        "generate_s": generate_s,
    });
    print_report(&report, spec.json.as_deref())
}
