//! Real `basalt` processes on loopback: agreement, transactions through JSON-RPC, block
//! sync of a late full node, halting and resuming with validators down, crash recovery.

mod common;

use basalt_types::{Hash, PrivateKey};
use common::*;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn four_validators_agree_and_200_transfers_through_rpc_commit_exactly_once() {
    let mut net = Net::new(4, 0, 27100);
    net.start_all();
    net.wait_height(0, 3, MINUTE);

    // 200 transfers: each node's account sends 50, each to its own node, to 40 recipients.
    let recipients: Vec<_> = (0..40u8)
        .map(|i| PrivateKey::from_seed([i + 1; 32]).public_key().address())
        .collect();
    let mut expected: HashMap<_, u128> = HashMap::new();
    let mut hashes = Vec::new();
    for k in 0..4 {
        let key = net.account_key(k);
        let client = net.client(k);
        for n in 0..50u64 {
            let to = recipients[(k * 50 + n as usize) % recipients.len()];
            let amount = 1000 + u128::from(n);
            let tx = transfer(&key, n, to, amount);
            let r = client.broadcast_tx_sync(&tx).unwrap();
            assert_eq!(r["code"], 0, "{r}");
            *expected.entry(to).or_default() += amount;
            hashes.push(r["hash"].as_str().unwrap().to_string());
        }
    }
    // Every transaction commits, on every node's index, with code 0.
    wait_for("all 200 transfers to commit", MINUTE, || {
        hashes.iter().all(|h| {
            net.client(3)
                .call("tx", json!({"hash": h}))
                .is_ok_and(|r| r["tx_result"]["code"] == 0)
        })
    });
    let tip = net.wait_height(0, 20, MINUTE);
    for k in 0..4 {
        net.wait_height(k, tip, MINUTE);
    }
    net.assert_same_chain(&[0, 1, 2, 3], tip);
    // Exactly once: each hash appears in exactly one block.
    let mut seen: HashMap<String, u32> = HashMap::new();
    for h in 1..=tip {
        for tx in net.block(0, h)["block"]["data"]["txs"].as_array().unwrap() {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(tx.as_str().unwrap())
                .unwrap();
            *seen.entry(Hash::digest(&bytes).to_hex()).or_default() += 1;
        }
    }
    for h in &hashes {
        assert_eq!(
            seen.get(h),
            Some(&1),
            "tx {h} committed {:?} times",
            seen.get(h)
        );
    }
    // The balances add up, on every node.
    for k in 0..4 {
        for (a, amount) in &expected {
            assert_eq!(net.balance(k, a), *amount, "node{k} balance of {a}");
        }
    }
    // One account's next four transactions sent to four different nodes, latest nonce
    // first: each waits for its predecessors where it lands, and all commit in nonce order.
    let key = net.account_key(0);
    let mut late = Vec::new();
    for (k, nonce) in [(3usize, 53u64), (2, 52), (1, 51), (0, 50)] {
        let r = net
            .client(k)
            .broadcast_tx_sync(&transfer(&key, nonce, recipients[1], 7))
            .unwrap();
        assert_eq!(r["code"], 0, "nonce {nonce} at node{k}: {r}");
        late.push((nonce, r["hash"].as_str().unwrap().to_string()));
    }
    let mut placed = Vec::new();
    wait_for("the out-of-order transfers to commit", MINUTE, || {
        placed = late
            .iter()
            .filter_map(|(nonce, h)| {
                let r = net.client(3).call("tx", json!({"hash": h})).ok()?;
                let height: u64 = r["height"].as_str()?.parse().ok()?;
                Some((*nonce, height, r["index"].as_u64()?))
            })
            .collect();
        placed.len() == late.len()
    });
    placed.sort();
    assert!(
        placed
            .windows(2)
            .all(|w| (w[0].1, w[0].2) < (w[1].1, w[1].2)),
        "committed in nonce order: {placed:?}"
    );

    // The CLI: back-to-back transfers from one key both succeed and commit.
    let home = net.home(0);
    let to = recipients[0].to_hex();
    for _ in 0..2 {
        let o = basalt(&[
            "tx",
            "transfer",
            "--to",
            &to,
            "--amount",
            "7",
            "--home",
            home.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let hash = String::from_utf8_lossy(&o.stdout).trim().to_string();
        assert_eq!(hash.len(), 64);
    }
    let want = expected[&recipients[0]] + 14;
    wait_for("CLI transfers to commit", MINUTE, || {
        net.balance(1, &recipients[0]) == want
    });
    let o = basalt(&["query", "account", &to, "--node", &net.rpc_addr(2)]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["balance"], want.to_string());
    // Staking through the CLI: node0's account delegates to validator node1, and the
    // validator's tokens grow by exactly that.
    let operator = net.account_key(1).public_key().address().to_hex();
    let before: serde_json::Value = net
        .client(0)
        .query(&format!("/validator/{operator}"))
        .unwrap();
    let tokens = |v: &serde_json::Value| v["tokens"].as_str().unwrap().parse::<u128>().unwrap();
    let o = basalt(&[
        "tx",
        "delegate",
        "--validator",
        &operator,
        "--amount",
        "3000000",
        "--home",
        home.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_for("the delegation to commit", MINUTE, || {
        net.client(2)
            .query(&format!("/validator/{operator}"))
            .is_ok_and(|v| tokens(&v) == tokens(&before) + 3_000_000)
    });
    let o = basalt(&["query", "validator", &operator, "--node", &net.rpc_addr(3)]);
    assert!(o.status.success());
    // A refused transaction is reported readably, with its code.
    let o = basalt(&[
        "tx",
        "delegate",
        "--validator",
        &to,
        "--amount",
        "5",
        "--home",
        home.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("refused (code 8)"), "{err}");
    // Offline signing prints the transaction and sends nothing.
    let o = basalt(&[
        "tx",
        "transfer",
        "--to",
        &to,
        "--amount",
        "1",
        "--nonce",
        "77",
        "--offline",
        "--home",
        home.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let bytes = hex::decode(String::from_utf8_lossy(&o.stdout).trim()).unwrap();
    let tx = basalt_runtime::SignedTx::decode(&bytes).unwrap();
    assert_eq!(tx.body.nonce, 77);
    assert!(tx.verify_signature());
    assert_eq!(tx.body.chain_id, CHAIN);
    net.assert_no_evidence();
}

#[test]
fn a_full_node_started_30s_late_syncs_and_follows_the_tip() {
    let mut net = Net::new(4, 1, 27200);
    for k in 0..4 {
        net.start(k);
    }
    std::thread::sleep(Duration::from_secs(30));
    let ahead = net.wait_height(0, 20, MINUTE);
    net.start(4);
    net.wait_height(4, ahead, MINUTE);
    let log = net.log_text(4);
    assert!(log.contains("block sync"), "sync progress is logged");
    // It follows: it keeps up with new blocks after catching up.
    let later = net.wait_height(0, ahead + 5, MINUTE);
    net.wait_height(4, later, MINUTE);
    net.assert_same_chain(&[0, 4], later);
    let s = net.client(4).call("status", json!({})).unwrap();
    assert_eq!(s["validator_info"]["voting_power"], "0", "a full node");
}

#[test]
fn one_validator_down_continues_two_down_halts_and_both_back_resume() {
    let mut net = Net::new(4, 0, 27300);
    net.start_all();
    net.wait_height(0, 3, MINUTE);
    net.kill(3);
    let h = net.height(0).unwrap();
    net.wait_height(0, h + 5, MINUTE);
    net.kill(2);
    // Let anything in flight land, then watch the height stand still.
    std::thread::sleep(Duration::from_secs(2));
    let halted = net.height(0).unwrap();
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(net.height(0).unwrap(), halted, "two of four down must halt");
    assert_eq!(net.height(1).unwrap(), halted);
    net.start(2);
    net.start(3);
    let tip = net.wait_height(0, halted + 5, MINUTE);
    for k in 0..4 {
        net.wait_height(k, tip, MINUTE);
    }
    net.assert_same_chain(&[0, 1, 2, 3], tip);
    net.assert_no_evidence();
    // With all four up, a block's last commit holds (nearly) every validator's precommit:
    // those that arrive during `timeout_commit` join it, so a validator a moment late is not
    // counted as missing the block. (Built at the decision, a commit lacked the slowest of
    // the four at most heights: 25 % of the slots.)
    let from = net.wait_height(0, tip + 3, MINUTE);
    let to = net.wait_height(0, from + 20, MINUTE);
    let mut absent = 0;
    for h in from + 1..=to {
        let b = net.block(0, h);
        let sigs = b["block"]["last_commit"]["signatures"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(sigs.len(), 4);
        absent += sigs.iter().filter(|s| s["block_id_flag"] == 1).count();
    }
    let slots = 4 * (to - from) as usize;
    assert!(
        absent * 10 <= slots,
        "{absent} of {slots} precommits missing from commits"
    );
}

#[test]
fn a_validator_killed_again_and_again_recovers_without_double_signing() {
    let mut net = Net::new(4, 0, 27400);
    net.start_all();
    net.wait_height(0, 3, MINUTE);
    // SIGKILL node 1 at varied moments of its rounds, restarting it each time.
    for (i, pause_ms) in [150u64, 700, 320, 1100, 40, 560].into_iter().enumerate() {
        std::thread::sleep(Duration::from_millis(pause_ms));
        net.kill(1);
        if i % 2 == 0 {
            // Also stop a second validator so that heights stall mid-round and node 1's
            // WAL holds votes of an undecided height when it dies.
            net.kill(2);
            std::thread::sleep(Duration::from_millis(1500));
            net.start(2);
        }
        net.start(1);
        let h = net.height(0).unwrap_or(0);
        net.wait_height(1, h, MINUTE);
    }
    let tip = net.wait_height(0, net.height(0).unwrap() + 5, MINUTE);
    for k in 0..4 {
        net.wait_height(k, tip, MINUTE);
    }
    net.assert_same_chain(&[0, 1, 2, 3], tip);
    net.assert_no_evidence();
    assert!(
        net.log_text(1).contains("replaying the consensus WAL"),
        "at least one kill landed mid-height, with votes in the WAL"
    );
}

#[test]
fn without_create_empty_blocks_the_chain_waits_for_transactions() {
    let mut net = Net::new(4, 0, 27450);
    for k in 0..4 {
        let path = net.home(k).join("config/config.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replace("create_empty_blocks = true", "create_empty_blocks = false");
        std::fs::write(&path, text).unwrap();
    }
    net.start_all();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(net.height(0), Some(0), "no transactions, no blocks");
    let key = net.account_key(2);
    let to = PrivateKey::from_seed([9; 32]).public_key().address();
    let r = net
        .client(2)
        .broadcast_tx_sync(&transfer(&key, 0, to, 11))
        .unwrap();
    assert_eq!(r["code"], 0);
    wait_for("the transfer to commit", MINUTE, || {
        net.client(0)
            .query(&format!("/account/{to}"))
            .is_ok_and(|v| v["balance"] == "11")
    });
    // Then it idles again.
    let h = net.height(0).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(net.height(0).unwrap() <= h + 1, "idle without transactions");
    net.assert_same_chain(&[0, 1, 2, 3], h);
}
