//! State sync across real processes: validators take snapshots; a fresh full node with
//! `[statesync] enable` verifies the header after a snapshot with the light client, fetches
//! the chunks from the validators (refusing a peer's bad chunks and fetching them
//! elsewhere, in builds with the `byzantine` feature), rebuilds the state, block-syncs the
//! rest and then serves queries, proofs and blocks from its snapshot height on. In builds
//! with the `failpoints` feature a second node dies half-way through its restore and
//! resumes from its last stored chunk.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);
const INTERVAL: u64 = 30;

fn snapshot_height(log: &str) -> Option<u64> {
    let line = log
        .lines()
        .find(|l| l.contains("state restored and verified"))?;
    let at = line.find("height=")? + "height=".len();
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The height of node k's latest complete snapshot.
fn latest_snapshot(net: &Net, k: usize) -> Option<u64> {
    std::fs::read_dir(net.home(k).join("data/snapshots"))
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
}

fn enable_state_sync(net: &Net, k: usize, trust_height: u64, trust_hash: &str) {
    net.edit_config(k, "enable = false", "enable = true");
    let servers = format!(
        "rpc_servers = [\"{}\", \"{}\"]",
        net.rpc_addr(0),
        net.rpc_addr(2)
    );
    net.edit_config(k, "rpc_servers = []", &servers);
    net.edit_config(
        k,
        "trust_height = 0",
        &format!("trust_height = {trust_height}"),
    );
    net.edit_config(
        k,
        "trust_hash = \"\"",
        &format!("trust_hash = \"{trust_hash}\""),
    );
}

#[test]
fn a_fresh_node_joins_by_state_sync_and_serves_from_its_snapshot_height() {
    // 60,000 funded accounts: a state of several chunks.
    let mut net = Net::with_args(4, 2, 28900, 1000, 100, &["--funded-accounts", "60000"]);
    for k in 0..4 {
        net.edit_config(
            k,
            "snapshot_interval = 1000",
            &format!("snapshot_interval = {INTERVAL}"),
        );
    }
    for k in 0..4 {
        if k == 1 && cfg!(feature = "byzantine") {
            net.start_env(k, &[], &[("BASALT_BAD_CHUNKS", "1")]);
        } else {
            net.start(k);
        }
    }
    net.wait_height(0, 3, MINUTE);
    let to = basalt_types::Address([0x5a; 20]);
    let r = net
        .client(0)
        .broadcast_tx_sync(&transfer(&net.account_key(0), 0, to, 4242))
        .unwrap();
    assert_eq!(r["code"], 0, "{r}");
    net.wait_height(0, INTERVAL + 2, MINUTE);
    // Every validator holds the same latest snapshot (node1's bad copy among them).
    wait_for("the validators' snapshots", MINUTE, || {
        let latest: Vec<Option<u64>> = (0..4).map(|k| latest_snapshot(&net, k)).collect();
        latest[0].is_some_and(|h| h >= INTERVAL) && latest.iter().all(|h| *h == latest[0])
    });
    let trust_hash = net.block_hash(0, 2);

    // Node 4 joins from a snapshot. It dials the validators only, so that it looks for
    // snapshots as soon as they are connected (not after waiting for node 5).
    enable_state_sync(&net, 4, 2, &trust_hash);
    let node5 = format!(", \"127.0.0.1:{}\"", 28900 + 2 * 5);
    net.edit_config(4, &node5, "");
    net.start(4);
    wait_for("node4 to restore a snapshot", MINUTE, || {
        snapshot_height(&net.log_text(4)).is_some() || !net.is_running(4)
    });
    let log = net.log_text(4);
    let base = snapshot_height(&log).unwrap_or_else(|| panic!("node4 stopped:\n{log}"));
    assert!(
        base >= INTERVAL && base.is_multiple_of(INTERVAL),
        "snapshot height {base}"
    );
    assert!(
        log.contains("state sync: chunks restored"),
        "progress lines:\n{log}"
    );
    for l in log.lines().filter(|l| l.contains("state sync")) {
        eprintln!("node4: {l}");
    }
    if cfg!(feature = "byzantine") {
        assert!(
            log.contains("fetching it elsewhere"),
            "node1's bad chunks were not refused:\n{log}"
        );
    }

    // It block-syncs to the tip and follows the chain.
    let tip = net.wait_height(0, base + 5, MINUTE);
    net.wait_height(4, tip, MINUTE);
    for h in base..=tip {
        assert_eq!(net.block_hash(4, h), net.block_hash(0, h), "block {h}");
    }
    let status = net.client(4).call("status", json!({})).unwrap();
    assert_eq!(
        status["sync_info"]["earliest_block_height"],
        base.to_string(),
        "{status}"
    );
    assert!(
        net.client(4)
            .call("block", json!({"height": (base - 1).to_string()}))
            .is_err(),
        "a block below the snapshot"
    );
    // Queries and proofs from the restored state.
    assert_eq!(net.balance(4, &to), 4242);
    assert_eq!(net.balance(4, &to), net.balance(0, &to));
    let o = basalt(&[
        "query",
        "account",
        &to.to_hex(),
        "--prove",
        "--node",
        &net.rpc_addr(4),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["account"]["balance"], "4242", "{v}");

    // Node 5 dies half-way through its restore, then resumes where it stopped.
    #[cfg(feature = "failpoints")]
    {
        enable_state_sync(&net, 5, 2, &trust_hash);
        net.start_env(5, &[], &[("BASALT_DIE_AT_WRITE", "14")]);
        wait_for("node5 to die in its restore", MINUTE, || !net.is_running(5));
        assert!(
            net.log_text(5).contains("dying inside a store write"),
            "{}",
            net.log_text(5)
        );
        assert!(
            net.home(5).join("data/statesync.progress").exists(),
            "no chunk was stored before the crash:\n{}",
            net.log_text(5)
        );
        net.kill(5);
        net.start(5);
        wait_for("node5 to finish its restore", MINUTE, || {
            snapshot_height(&net.log_text(5)).is_some() || !net.is_running(5)
        });
        let log = net.log_text(5);
        let resumed = log
            .lines()
            .rev()
            .find(|l| l.contains("restoring a snapshot"))
            .unwrap_or_else(|| panic!("{log}"));
        eprintln!("node5's second start: {resumed}");
        assert!(
            !resumed.contains("resumed_at=0"),
            "the second start began again from chunk 0: {resumed}"
        );
        let tip = net.wait_height(0, net.height(0).unwrap() + 2, MINUTE);
        net.wait_height(5, tip, MINUTE);
        assert_eq!(net.block_hash(5, tip), net.block_hash(0, tip));
        assert_eq!(net.balance(5, &to), 4242);
    }
}
