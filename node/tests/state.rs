//! State on disk with real processes: `abci_query` at a height with a Merkle proof that
//! verifies against the next header's app hash (and fails against another), pruning of old
//! blocks and state versions with CometBFT's error for a pruned height, a restart that
//! comes back at its height without replaying, and data directories in another layout
//! refused with one line.

mod common;

use basalt_node::rpc_backend::state_query::{StateQueryProof, PROOF_OP};
use basalt_runtime::{state::keys, Account};
use basalt_types::{Address, Hash};
use base64::Engine;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const MINUTE: Duration = Duration::from_secs(60);

fn b64(s: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s.as_str().unwrap_or_default())
        .unwrap()
}

fn app_hash_of_header(net: &Net, h: u64) -> Hash {
    let b = net.block(0, h);
    let hex = b["block"]["header"]["app_hash"]
        .as_str()
        .unwrap()
        .to_string();
    Hash(hex::decode(hex).unwrap().try_into().unwrap())
}

fn edit_config(net: &Net, k: usize, edit: impl Fn(String) -> String) {
    let path = net.home(k).join("config/config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(text)).unwrap();
}

#[test]
fn queries_at_a_height_prove_pruning_frees_old_heights_and_a_restart_replays_nothing() {
    let mut net = Net::with_timeouts(1, 0, 28500, 1000, 30);
    edit_config(&net, 0, |t| {
        t.replace("retain_blocks = 0", "retain_blocks = 20")
            .replace("state_versions = 100", "state_versions = 5")
    });
    net.start(0);
    net.wait_height(0, 2, MINUTE);
    let to = Address([0x77; 20]);
    let r = net
        .client(0)
        .broadcast_tx_sync(&transfer(&net.account_key(0), 0, to, 4242))
        .unwrap();
    assert_eq!(r["code"], 0, "{r}");
    let hash = r["hash"].as_str().unwrap().to_string();
    let mut tx_height = 0;
    wait_for("the transfer to commit", MINUTE, || {
        net.client(0)
            .call("tx", json!({"hash": hash}))
            .map(|t| tx_height = t["height"].as_str().unwrap().parse().unwrap())
            .is_ok()
    });
    net.wait_height(0, tx_height + 3, MINUTE);

    // The account at the transfer's height, proven against the app hash of the next header.
    let path = format!("/account/{}", to.to_hex());
    let q = net
        .client(0)
        .call(
            "abci_query",
            json!({"path": path, "height": tx_height.to_string(), "prove": true}),
        )
        .unwrap();
    let resp = &q["response"];
    assert_eq!(resp["code"], 0, "{q}");
    assert_eq!(resp["height"], tx_height.to_string());
    let op = &resp["proofOps"]["ops"][0];
    assert_eq!(op["type"], PROOF_OP);
    let key = keys::account(&to);
    assert_eq!(b64(&op["key"]), key.to_vec());
    let data = b64(&op["data"]);
    let proof: StateQueryProof = borsh::from_slice(&data).unwrap();
    let raw = proof.value.clone().expect("the account exists");
    let account: Account = borsh::from_slice(&raw).unwrap();
    assert_eq!(account.balance, 4242);
    let json_value: Value = serde_json::from_slice(&b64(&resp["value"])).unwrap();
    assert_eq!(json_value["balance"], "4242");
    let next = app_hash_of_header(&net, tx_height + 1);
    proof.proof.verify(&next, &key, Some(&raw)).unwrap();
    // Not against another height's app hash, not for another value, not tampered.
    let later = app_hash_of_header(&net, tx_height + 2);
    assert!(proof.proof.verify(&later, &key, Some(&raw)).is_err());
    let mut more = account;
    more.balance += 1;
    let forged = borsh::to_vec(&more).unwrap();
    assert!(proof.proof.verify(&next, &key, Some(&forged)).is_err());
    let mut tampered = proof.proof.clone();
    tampered.path[0][0].0[5] ^= 1;
    assert!(tampered.verify(&next, &key, Some(&raw)).is_err());
    // The account before the transfer did not exist: its absence proves too.
    let before = net
        .client(0)
        .call(
            "abci_query",
            json!({"path": path, "height": (tx_height - 1).to_string(), "prove": true}),
        )
        .unwrap();
    let data = b64(&before["response"]["proofOps"]["ops"][0]["data"]);
    let absent: StateQueryProof = borsh::from_slice(&data).unwrap();
    assert_eq!(absent.value, None);
    absent
        .proof
        .verify(&app_hash_of_header(&net, tx_height), &key, None)
        .unwrap();

    // The CLI checks the same against the latest header and its commit.
    let out = basalt(&[
        "query",
        "account",
        &to.to_hex(),
        "--prove",
        "--node",
        &net.rpc_addr(0),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["account"]["balance"], "4242", "{v}");
    assert_eq!(v["exists"], true, "{v}");
    assert!(
        v["verified"]["signed_power"].as_str().unwrap() != "0",
        "{v}"
    );

    // Pruning: after 20 more blocks the oldest are gone with a clear error, and so are
    // state versions older than 5.
    let tip = net.wait_height(0, tx_height + 30, MINUTE);
    wait_for("old blocks to be pruned", MINUTE, || {
        net.client(0).call("status", json!({})).is_ok_and(|s| {
            let e: u64 = s["sync_info"]["earliest_block_height"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            e + 25 >= tip && e > 1
        })
    });
    let err = net
        .client(0)
        .call("block", json!({"height": "1"}))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("height 1 is not available, lowest height is"),
        "{err}"
    );
    let err = net
        .client(0)
        .call(
            "abci_query",
            json!({"path": path, "height": tx_height.to_string()}),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("is not available, lowest height is"),
        "{err}"
    );
    let status = net.client(0).call("status", json!({})).unwrap();
    let earliest = status["sync_info"]["earliest_block_height"]
        .as_str()
        .unwrap()
        .to_string();
    net.client(0)
        .call("block", json!({"height": earliest}))
        .unwrap();

    // A restart loads the last state version: back at its height, same state, no replay.
    let (_, clean) = net.terminate(0);
    assert!(clean, "exit status 0 on SIGTERM");
    let stopped_at = net.height(0).unwrap_or(0).max(tip);
    let account_then = net.client(0).query(&path).ok();
    assert!(account_then.is_none(), "the node is down");
    let began = Instant::now();
    net.start(0);
    net.wait_height(0, stopped_at, MINUTE);
    eprintln!("restart at height {stopped_at}: {:?}", began.elapsed());
    assert!(net.log_text(0).contains("state loaded"));
    assert_eq!(net.client(0).query(&path).unwrap()["balance"], "4242");
    let h = net.wait_height(0, stopped_at + 2, MINUTE);
    assert!(h > stopped_at, "the chain goes on after the restart");
}

fn start_fails(home: &std::path::Path, expect: &[&str]) {
    let o = basalt(&["start", "--home", home.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "start should fail");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line: {err}");
    for e in expect {
        assert!(errors[0].contains(e), "{e:?} not in {err}");
    }
}

#[test]
fn a_data_directory_in_another_layout_is_refused_with_one_line() {
    let net = Net::new(1, 0, 28520);
    let home = net.home(0);
    let db = home.join("data/blockstore.db");
    // What the previous layout left: blocks and the chain binding, no format record.
    std::fs::create_dir_all(&db).unwrap();
    {
        let old = sled::open(&db).unwrap();
        old.insert(b"Mchain", b"old".to_vec()).unwrap();
        old.insert(
            [b'B', 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
            b"block".to_vec(),
        )
        .unwrap();
        old.flush().unwrap();
    }
    let ours = basalt_node::store::FORMAT_VERSION;
    let reads = format!("reads format {ours}");
    start_fails(&home, &["store format 1", &reads, "older basalt"]);
    // One written by the layout before this one (the state history inside sled).
    let format = |v: u32| {
        let db = sled::open(&db).unwrap();
        db.insert(b"Mformat", v.to_le_bytes().to_vec()).unwrap();
        db.flush().unwrap();
    };
    format(ours - 1);
    let previous = format!("store format {}", ours - 1);
    start_fails(&home, &[&previous, &reads, "older basalt"]);
    // One written by a newer node.
    format(ours + 1);
    let newer = format!("store format {}", ours + 1);
    start_fails(&home, &[&newer, &reads, "newer basalt"]);
    // Nothing was changed by the refusals.
    let db = sled::open(&db).unwrap();
    assert_eq!(db.len(), 3);
}
