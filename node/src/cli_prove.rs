//! `basalt query account ADDR --prove`: an account's state, checked rather than trusted.
//!
//! The client asks for the account at the height before the latest, with a Merkle proof;
//! fetches the latest header and its commit; checks that the commit signs that header with
//! more than 2/3 of the power of the validator set whose hash the header names; and checks
//! the proof against the header's app hash (the state after height H is committed in the
//! header of H+1). Without a light client it takes the validator set itself on the node's
//! word; with one (`--light-home`), the header, its commit and its set are verified from the
//! light client's trusted header ([`crate::light`]).

use crate::client::Client;
use crate::light::fetch::{b64, number, signed_header, validator_set};
use crate::light::LightClient;
use crate::rpc_backend::state_query::{StateQueryProof, PROOF_OP};
use anyhow::{anyhow, bail, Context, Result};
use basalt_runtime::{state::keys, Account};
use basalt_types::Address;
use serde_json::{json, Value};

/// Queries `addr` with a proof and verifies it as the module doc says; returns the account
/// and what was checked, as JSON.
pub fn prove_account(client: &Client, addr: Address, light: Option<LightClient>) -> Result<Value> {
    let status = client.call("status", json!({}))?;
    let latest = number(&status["sync_info"]["latest_block_height"], "latest height")?;
    if latest == 0 {
        bail!("the chain has no block yet");
    }
    let at = latest - 1;
    let q = client.call(
        "abci_query",
        json!({"path": format!("/account/{}", addr.to_hex()), "height": at.to_string(), "prove": true}),
    )?;
    let resp = &q["response"];
    if resp["code"].as_u64() != Some(0) {
        bail!("query: {}", resp["log"].as_str().unwrap_or("failed"));
    }
    let op = &resp["proofOps"]["ops"][0];
    if op["type"] != PROOF_OP {
        bail!("the node sent no {PROOF_OP} proof");
    }
    let key = keys::account(&addr);
    if b64(&op["key"], "proof key")? != key {
        bail!("the proof is for another key");
    }
    let proof: StateQueryProof =
        borsh::from_slice(&b64(&op["data"], "proof data")?).context("the proof does not decode")?;

    let (header, commit, set, trusted) = match light {
        Some(mut light) => {
            let root = light.latest()?.height();
            let (lb, _) = light.verify_to(latest)?;
            let trusted = format!("verified by the light client from its trusted header {root}");
            (lb.header, lb.commit, lb.validators, trusted)
        }
        None => {
            let (header, commit) = signed_header(client, latest)?;
            let set = validator_set(client, latest)?;
            if header.height.0 != latest || commit.block_id.hash() != header.hash() {
                bail!("the commit does not sign the header of height {latest}");
            }
            if set.hash() != header.validators_hash {
                bail!("the validator set served for {latest} is not the one its header names");
            }
            set.verify_commit(&header.chain_id, header.height, &commit.block_id, &commit)
                .map_err(|e| anyhow!("the commit of {latest} does not verify: {e}"))?;
            let trusted = "the validator set of that height as the node served it (not verified from a trusted height; see --light-home)".to_string();
            (header, commit, set, trusted)
        }
    };
    let id = commit.block_id;
    proof
        .proof
        .verify(&header.app_hash, &key, proof.value.as_deref())
        .map_err(|e| {
            anyhow!("the proof does not verify against header {latest}'s app hash: {e}")
        })?;
    let account: Account = match &proof.value {
        Some(v) => borsh::from_slice(v).context("the proven account does not decode")?,
        None => Account::default(),
    };
    let signed_power: u64 = commit
        .signed()
        .filter_map(|s| set.get(&s.validator).map(|v| v.voting_power))
        .sum();
    Ok(json!({
        "address": addr,
        "account": account,
        "exists": proof.value.is_some(),
        "height": at.to_string(),
        "verified": {
            "against_header": latest.to_string(),
            "block_id": id.0.to_hex(),
            "app_hash": header.app_hash.to_hex(),
            "validators_hash": header.validators_hash.to_hex(),
            "signed_power": signed_power.to_string(),
            "total_power": set.total_power().to_string(),
            "trusted": trusted,
        },
    }))
}
