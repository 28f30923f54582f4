//! Equivocation across real processes (built with `--features byzantine`): honest nodes turn
//! conflicting votes into evidence, a proposer puts it in a block, the runtime slashes, jails
//! and tombstones, and the validator leaves the set two heights later; the chain goes on.

#![cfg(feature = "byzantine")]

mod common;

use basalt_node::home::Home;
use basalt_types::Address;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);
/// Testnet self-bond: 10 units of voting power.
const STAKE: u128 = 10_000_000;
/// DESIGN.md §4: 5 % of the stake bonded at the infraction.
const SLASHED: u128 = STAKE / 20;

struct Culprit {
    operator: Address,
    consensus: Address,
}

fn culprit(net: &Net, k: usize) -> Culprit {
    let home = Home::new(net.home(k));
    Culprit {
        operator: net.account_key(k).public_key().address(),
        consensus: basalt_node::keys::load(&home.validator_key_file())
            .unwrap()
            .public_key()
            .address(),
    }
}

/// (evidence block height, infraction height) for the evidence against `who`, once a block
/// holds it.
fn find_evidence(net: &Net, k: usize, who: &Address, upto: u64) -> Option<(u64, u64)> {
    for h in 1..=upto {
        let b = net.block(k, h);
        for ev in b["block"]["evidence"]["evidence"].as_array().unwrap() {
            let vote = &ev["value"]["vote_a"];
            if vote["validator_address"].as_str() == Some(&who.to_hex()) {
                let at = vote["height"].as_str().unwrap().parse().unwrap();
                return Some((h, at));
            }
        }
    }
    None
}

fn validator_addresses(net: &Net, k: usize, height: u64) -> Vec<String> {
    let v = net
        .client(k)
        .call("validators", json!({"height": height.to_string()}))
        .unwrap();
    v["validators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["address"].as_str().unwrap().to_string())
        .collect()
}

/// Waits for the evidence against `c`, then checks the punishment and the H+2 removal on
/// every honest node.
fn assert_punished(net: &Net, honest: &[usize], c: &Culprit) -> u64 {
    let mut found = None;
    wait_for("evidence in a block", Duration::from_secs(90), || {
        let tip = net.height(honest[0]).unwrap_or(0);
        found = find_evidence(net, honest[0], &c.consensus, tip);
        found.is_some()
    });
    let (evidence_height, infraction) = found.unwrap();
    assert!(
        evidence_height <= infraction + 10,
        "evidence committed at {evidence_height}, more than 10 heights after the infraction at {infraction}"
    );
    let tip = net.wait_height(honest[0], evidence_height + 3, MINUTE);
    for &k in honest {
        net.wait_height(k, tip, MINUTE);
        let v: Value = net
            .client(k)
            .query(&format!("/validator/{}", c.operator))
            .unwrap();
        assert_eq!(v["tokens"], (STAKE - SLASHED).to_string(), "node{k}: {v}");
        assert_eq!(v["jailed"], true);
        assert_eq!(v["tombstoned"], true);
        let me = c.consensus.to_hex();
        assert!(
            validator_addresses(net, k, evidence_height + 1).contains(&me),
            "still in the set at E+1"
        );
        assert!(
            !validator_addresses(net, k, evidence_height + 2).contains(&me),
            "gone at E+2"
        );
        assert!(!validator_addresses(net, k, tip).contains(&me));
        // The evidence block reports the slash in its own events, and block_search finds it.
        let r = net
            .client(k)
            .call(
                "block_results",
                json!({"height": evidence_height.to_string()}),
            )
            .unwrap();
        let slash = (r["finalize_block_events"].as_array().unwrap().iter())
            .find(|e| {
                e["type"] == "slash"
                    && e["attributes"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|a| a["key"] == "address" && a["value"] == me.as_str())
            })
            .unwrap_or_else(|| {
                panic!("node{k}: no slash event for {me} at {evidence_height}: {r}")
            });
        let attr = |key: &str| {
            (slash["attributes"].as_array().unwrap().iter())
                .find(|a| a["key"] == key)
                .map(|a| a["value"].clone())
        };
        assert_eq!(attr("reason"), Some(json!("double_sign")));
        assert_eq!(attr("operator"), Some(json!(c.operator.to_hex())));
        assert_eq!(attr("burned"), Some(json!(SLASHED.to_string())));
        let found = net
            .client(k)
            .call(
                "block_search",
                json!({"query": format!("slash.address='{me}'")}),
            )
            .unwrap();
        let heights: Vec<&str> = (found["blocks"].as_array().unwrap().iter())
            .map(|b| b["block"]["header"]["height"].as_str().unwrap())
            .collect();
        assert_eq!(heights, [evidence_height.to_string()], "node{k}");
    }
    assert!(
        net.log_text(honest[0]).contains("committed evidence"),
        "the commit of evidence is logged"
    );
    net.assert_same_chain(honest, tip);
    tip
}

#[test]
fn a_double_prevoting_validator_is_slashed_jailed_and_removed_at_h_plus_2() {
    let mut net = Net::new(4, 0, 27900);
    for k in 0..3 {
        net.start(k);
    }
    net.start_with(3, &["--misbehave", "double-prevote@3"]);
    let c = culprit(&net, 3);
    let tip = assert_punished(&net, &[0, 1, 2], &c);
    // The chain never stopped and keeps going without it.
    net.wait_height(0, tip + 3, MINUTE);
}

#[test]
fn two_of_seven_equivocate_in_different_steps_and_both_are_punished() {
    let mut net = Net::new(7, 0, 27920);
    for k in 0..5 {
        net.start(k);
    }
    net.start_with(5, &["--misbehave", "double-prevote@2"]);
    net.start_with(6, &["--misbehave", "double-precommit@2"]);
    let honest = [0, 1, 2, 3, 4];
    assert_punished(&net, &honest, &culprit(&net, 5));
    let tip = assert_punished(&net, &honest, &culprit(&net, 6));
    net.wait_height(0, tip + 3, MINUTE);
}

#[test]
fn one_validator_key_run_by_two_processes_is_caught() {
    // node4 is a full node given validator 3's key: the operator's classic mistake.
    let mut net = Net::new(4, 1, 27940);
    let key = Home::new(net.home(3)).validator_key_file();
    let copy = Home::new(net.home(4)).validator_key_file();
    std::fs::copy(&key, &copy).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    net.start_all();
    let c = culprit(&net, 3);
    let tip = assert_punished(&net, &[0, 1, 2], &c);
    net.wait_height(0, tip + 3, MINUTE);
}
