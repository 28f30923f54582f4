//! Crashes and damaged disks with real processes: 20 SIGKILLs of random validators at random
//! moments while transfers flow; torn tails of the WAL and of the block store; a graceful
//! SIGTERM. After every restart the node must hold every transaction committed so far, the
//! nodes must agree on one chain, and no honest validator may be accused of double-signing.
//!
//! The storm is seeded: `BASALT_STORM_SEED=N cargo test -p basalt-node --test crash_storm`
//! replays one (the seed is printed).

mod common;

use common::*;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

/// Transfers sent so far: (hash, account) in sending order, and each account's next nonce.
struct Load {
    sent: Vec<String>,
    nonces: [u64; 4],
}

impl Load {
    fn new() -> Load {
        Load {
            sent: Vec::new(),
            nonces: [0; 4],
        }
    }

    /// One transfer from each account, each through node `via`.
    fn send(&mut self, net: &Net, via: usize) {
        let to = net.account_key(0).public_key().address();
        for k in 0..4 {
            let key = net.account_key(k);
            let r = net
                .client(via)
                .broadcast_tx_sync(&transfer(&key, self.nonces[k], to, 1))
                .unwrap_or_else(|e| panic!("broadcast through node{via}: {e}"));
            assert_eq!(r["code"], 0, "{r}");
            self.nonces[k] += 1;
            self.sent.push(r["hash"].as_str().unwrap().to_string());
        }
    }

    /// Waits until node `k` holds every transfer sent so far, committed with code 0.
    fn wait_all_on(&self, net: &Net, k: usize) {
        wait_for(
            &format!("node{k} to hold all {} transfers", self.sent.len()),
            MINUTE,
            || {
                self.sent.iter().all(|h| {
                    net.client(k)
                        .call("tx", json!({"hash": h}))
                        .is_ok_and(|r| r["tx_result"]["code"] == 0)
                })
            },
        );
    }
}

/// Four validators on `base_port`, past height 2, and no transfers sent yet.
fn running(base_port: u16) -> (Net, Load) {
    let mut net = Net::new(4, 0, base_port);
    net.start_all();
    net.wait_height(0, 2, MINUTE);
    (net, Load::new())
}

/// The highest height any running node but `k` reports.
fn tip_without(net: &Net, k: usize) -> u64 {
    (0..4)
        .filter(|j| *j != k)
        .filter_map(|j| net.height(j))
        .max()
        .unwrap_or(0)
}

/// No block up to `tip` carries evidence (node 0's copy; the chains are compared apart).
fn assert_no_evidence_in_blocks(net: &Net, tip: u64) {
    for h in 1..=tip {
        let b = net.block(0, h);
        let ev = &b["block"]["evidence"]["evidence"];
        assert!(
            ev.as_array().is_none_or(|a| a.is_empty()),
            "evidence at height {h}: {ev}"
        );
    }
}

/// Starts the stopped `victim` and waits until it reaches the others' tip and holds every
/// transfer committed so far, those sent while it was down included. Returns the tip.
fn restart_and_catch_up(net: &mut Net, load: &Load, victim: usize) -> u64 {
    net.start(victim);
    let tip = tip_without(net, victim);
    net.wait_height(victim, tip, MINUTE);
    load.wait_all_on(net, victim);
    tip
}

/// The storm's random source: `BASALT_STORM_SEED` or `default`, printed for replay.
fn storm_rng(what: &str, default: u64) -> rand::rngs::StdRng {
    let seed: u64 = std::env::var("BASALT_STORM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    eprintln!("{what} seed {seed} (replay: BASALT_STORM_SEED={seed})");
    rand::rngs::StdRng::seed_from_u64(seed)
}

#[test]
fn twenty_sigkills_of_random_validators_at_random_moments_lose_nothing() {
    let mut rng = storm_rng("crash storm", 7);
    let (mut net, mut load) = running(27950);
    for round in 0..20 {
        let victim = rng.gen_range(0..4usize);
        let via = (victim + rng.gen_range(1..4usize)) % 4;
        load.send(&net, via);
        // Die at a random moment: mid-height, mid-commit, or between heights.
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..1200)));
        net.kill(victim);
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..800)));
        let tip = restart_and_catch_up(&mut net, &load, victim);
        eprintln!("kill {round}: node{victim} back at height {tip}+");
    }
    settled_and_whole(&net, &load);
}

/// Kills inside the commit: each round restarts a validator armed to abort at its N-th store
/// write (N chosen by the seed): after a block's batch and before its flush, before a flush,
/// or after an index or pruning batch, points a timed SIGKILL rarely hits. The node comes
/// back with every committed transfer, on the one chain the others hold, with their app
/// hashes.
#[cfg(feature = "failpoints")]
#[test]
fn kills_inside_store_writes_at_seeded_points_lose_nothing() {
    let mut rng = storm_rng("write-kill storm", 11);
    let (mut net, mut load) = running(28600);
    for round in 0..8 {
        let victim = rng.gen_range(0..4usize);
        let via = (victim + rng.gen_range(1..4usize)) % 4;
        // Opening the store writes a few times; each block then writes its batch, flushes
        // it, and indexes: a point within the first few blocks after the restart.
        let at = rng.gen_range(1..40u64).to_string();
        net.kill(victim);
        net.start_env(victim, &[], &[("BASALT_DIE_AT_WRITE", &at)]);
        load.send(&net, via);
        wait_for(
            &format!("node{victim} to die at write {at}"),
            MINUTE,
            || !net.is_running(victim),
        );
        assert!(
            net.log_text(victim).contains("dying inside a store write"),
            "node{victim} stopped for another reason"
        );
        net.kill(victim);
        let tip = restart_and_catch_up(&mut net, &load, victim);
        eprintln!("round {round}: node{victim} died at store write {at}, back at {tip}+");
    }
    // One chain (its headers carry the app hashes), which every node kept executing: a node
    // whose state came back different stops at the next block's app hash check.
    settled_and_whole(&net, &load);
    for k in 0..4 {
        assert!(net.is_running(k), "node{k} stopped");
    }
}

/// The end of every storm: three more blocks, every node holds every transfer, one chain,
/// no evidence anywhere.
fn settled_and_whole(net: &Net, load: &Load) {
    let tip = net.wait_height(0, net.height(0).unwrap() + 3, MINUTE);
    for k in 0..4 {
        net.wait_height(k, tip, MINUTE);
        load.wait_all_on(net, k);
    }
    net.assert_same_chain(&[0, 1, 2, 3], tip);
    net.assert_no_evidence();
    assert_no_evidence_in_blocks(net, tip);
}

/// Cuts `cut` bytes off the end of `path`.
fn truncate_tail(path: &std::path::Path, cut: u64) -> u64 {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let len = f.metadata().unwrap().len();
    let new_len = len.saturating_sub(cut);
    f.set_len(new_len).unwrap();
    f.sync_all().unwrap();
    len - new_len
}

#[test]
fn a_torn_wal_tail_or_store_tail_is_recovered_without_double_signing() {
    let (mut net, mut load) = running(28000);
    let wal = net.home(1).join("data/cs.wal");
    let mut torn = 0;
    for cut in [1u64, 7, 40, 150, 1000] {
        load.send(&net, 0);
        // Stop validator 2 as well, so that heights stall mid-round and node 1's WAL holds
        // votes of an undecided height when it dies: the cut lands in real records.
        net.kill(2);
        std::thread::sleep(Duration::from_millis(1500));
        net.kill(1);
        let len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        if len > 0 {
            truncate_tail(&wal, cut.min(len - 1).max(1));
            torn += 1;
        }
        net.start(1);
        net.start(2);
        let tip = tip_without(&net, 1);
        net.wait_height(1, tip + 1, MINUTE);
        load.wait_all_on(&net, 1);
    }
    assert!(
        torn >= 3,
        "the WAL held records to tear at most kills ({torn})"
    );
    assert!(
        net.log_text(1).contains("torn"),
        "the WAL reported a torn tail"
    );

    // The block store: cut the tail of sled's log after a kill. The node either recovers
    // what the cut left (re-syncing the rest from peers) or refuses to start with one clear
    // line; it never panics, never diverges and never signs twice.
    let db = net.home(3).join("data/blockstore.db/db");
    let mut lost_blocks = 0;
    // sled reuses freed segments of its file, so its last bytes are not always its latest
    // writes: a cut may lose nothing. More cuts of 64 KiB follow until one has hit
    // committed blocks (at most five more).
    let cuts = [512u64, 4096, 65536].into_iter().chain([65536; 5]);
    for (i, cut) in cuts.enumerate() {
        if i >= 3 && lost_blocks > 0 {
            break;
        }
        load.send(&net, 0);
        std::thread::sleep(Duration::from_millis(300));
        let before = net.height(3).unwrap();
        net.kill(3);
        truncate_tail(&db, cut);
        let loads_before = net.log_text(3).matches("state loaded").count();
        net.start(3);
        wait_for("node3 to load its state", MINUTE, || {
            net.log_text(3).matches("state loaded").count() > loads_before || !net.is_running(3)
        });
        let tip = tip_without(&net, 3);
        std::thread::sleep(Duration::from_secs(2));
        if !net.is_running(3) {
            let log = net.log_text(3);
            assert!(!log.contains("panicked"), "{log}");
            let last = log.lines().last().unwrap_or_default();
            assert!(last.starts_with("error:"), "one clear last line: {last}");
            panic!("sled could not reopen after a {cut}-byte cut: {last}");
        }
        let log = net.log_text(3);
        let loaded: u64 = log
            .lines()
            .rfind(|l| l.contains("state loaded"))
            .and_then(|l| l.split("height=").nth(1))
            .and_then(|h| h.split_whitespace().next()?.parse().ok())
            .expect("a height in the state-loaded line");
        lost_blocks += before.saturating_sub(loaded);
        net.wait_height(3, tip + 1, MINUTE);
        load.wait_all_on(&net, 3);
    }
    assert!(
        lost_blocks > 0,
        "the cuts hit committed blocks, which came back from peers"
    );

    settled_and_whole(&net, &load);
    let log = net.log_text(1) + &net.log_text(3);
    assert!(!log.contains("panicked"), "no panic in the logs");
}

#[test]
fn sigterm_flushes_and_exits_within_two_seconds_and_loses_nothing() {
    let (mut net, mut load) = running(28050);
    for k in 0..4 {
        load.send(&net, 2);
        load.wait_all_on(&net, k);
        let before = net.height(k).unwrap();
        let (took, ok) = net.terminate(k);
        assert!(ok, "node{k} exits with status 0 on SIGTERM");
        assert!(
            took < Duration::from_secs(2),
            "node{k} took {took:?} to stop"
        );
        assert!(net.log_text(k).contains("shut down cleanly"));
        net.start(k);
        // Nothing it had committed is gone: it reports at least the same height at once.
        wait_for("the restarted node's RPC", MINUTE, || {
            net.height(k).is_some()
        });
        assert!(net.height(k).unwrap() >= before);
        load.wait_all_on(&net, k);
    }
    let tip = net.wait_height(0, net.height(0).unwrap() + 2, MINUTE);
    net.assert_same_chain(&[0, 1, 2, 3], tip);
    net.assert_no_evidence();
}
