//! `basalt query account ADDR --prove`: an account's state, checked rather than trusted.
//!
//! The client asks for the account at the height before the latest, with a Merkle proof;
//! fetches the latest header and its commit; checks that the commit signs that header with
//! more than 2/3 of the power of the validator set whose hash the header names; and checks
//! the proof against the header's app hash (the state after height H is committed in the
//! header of H+1). What it still takes on the node's word is the validator set itself; a
//! light client is what verifies a set from a trusted height.

use crate::client::Client;
use crate::rpc_backend::state_query::{StateQueryProof, PROOF_OP};
use anyhow::{anyhow, bail, Context, Result};
use basalt_rpc::shapes::parse_rfc3339;
use basalt_runtime::{state::keys, Account};
use basalt_staking::{Validator, ValidatorSet};
use basalt_types::{
    Address, BlockId, Commit, CommitSig, Hash, Header, Height, PublicKey, Round, Signature,
};
use base64::Engine;
use serde_json::{json, Value};

fn text<'a>(v: &'a Value, what: &str) -> Result<&'a str> {
    v.as_str().ok_or_else(|| anyhow!("{what} is missing"))
}

fn number(v: &Value, what: &str) -> Result<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| anyhow!("{what} is not a number"))
}

fn hash(v: &Value, what: &str) -> Result<Hash> {
    let bytes = hex::decode(text(v, what)?).with_context(|| format!("{what} is not hex"))?;
    Ok(Hash(
        bytes
            .try_into()
            .map_err(|_| anyhow!("{what} is not 32 bytes"))?,
    ))
}

fn b64(v: &Value, what: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text(v, what)?)
        .with_context(|| format!("{what} is not base64"))
}

fn address(v: &Value, what: &str) -> Result<Address> {
    Address::from_hex(text(v, what)?).map_err(|e| anyhow!("{what}: {e}"))
}

fn block_id(v: &Value, what: &str) -> Result<Option<BlockId>> {
    match text(&v["hash"], what)? {
        "" => Ok(None),
        _ => Ok(Some(BlockId(hash(&v["hash"], what)?))),
    }
}

/// A header from its JSON (`/commit`'s `signed_header.header`).
pub fn header_from_json(h: &Value) -> Result<Header> {
    Ok(Header {
        chain_id: text(&h["chain_id"], "chain_id")?.to_string(),
        height: Height(number(&h["height"], "height")?),
        time: parse_rfc3339(text(&h["time"], "time")?).ok_or_else(|| anyhow!("bad header time"))?,
        last_block_id: block_id(&h["last_block_id"], "last_block_id")?,
        last_commit_hash: hash(&h["last_commit_hash"], "last_commit_hash")?,
        data_hash: hash(&h["data_hash"], "data_hash")?,
        validators_hash: hash(&h["validators_hash"], "validators_hash")?,
        next_validators_hash: hash(&h["next_validators_hash"], "next_validators_hash")?,
        consensus_hash: hash(&h["consensus_hash"], "consensus_hash")?,
        app_hash: hash(&h["app_hash"], "app_hash")?,
        last_results_hash: hash(&h["last_results_hash"], "last_results_hash")?,
        evidence_hash: hash(&h["evidence_hash"], "evidence_hash")?,
        proposer_address: address(&h["proposer_address"], "proposer_address")?,
    })
}

fn commit_from_json(c: &Value) -> Result<Commit> {
    let signatures = c["signatures"]
        .as_array()
        .ok_or_else(|| anyhow!("the commit has no signatures"))?
        .iter()
        .map(|s| {
            let sig: [u8; 64] = b64(&s["signature"], "signature")?
                .try_into()
                .map_err(|_| anyhow!("a signature is not 64 bytes"))?;
            Ok(CommitSig {
                validator: address(&s["validator_address"], "validator_address")?,
                signature: Signature(sig),
            })
        })
        .collect::<Result<_>>()?;
    Ok(Commit {
        height: Height(number(&c["height"], "commit height")?),
        round: Round(number(&c["round"], "commit round")? as u32),
        block_id: block_id(&c["block_id"], "commit block_id")?
            .ok_or_else(|| anyhow!("the commit names no block"))?,
        signatures,
    })
}

/// The validator set of `height`, every page of `/validators`.
fn validator_set(client: &Client, height: u64) -> Result<ValidatorSet> {
    let mut validators = Vec::new();
    for page in 1.. {
        let r = client.call(
            "validators",
            json!({"height": height.to_string(), "page": page.to_string(), "per_page": "100"}),
        )?;
        let list = r["validators"].as_array().cloned().unwrap_or_default();
        for v in &list {
            let key: [u8; 32] = b64(&v["pub_key"]["value"], "pub_key")?
                .try_into()
                .map_err(|_| anyhow!("a public key is not 32 bytes"))?;
            let key = PublicKey::from_bytes(&key).map_err(|e| anyhow!("public key: {e}"))?;
            validators.push(Validator::new(
                key,
                number(&v["voting_power"], "voting_power")?,
            ));
        }
        if list.is_empty() || validators.len() as u64 >= number(&r["total"], "total")? {
            break;
        }
    }
    ValidatorSet::new(validators).map_err(|e| anyhow!("validator set of {height}: {e}"))
}

/// Queries `addr` with a proof and verifies it as the module doc says; returns the account
/// and what was checked, as JSON.
pub fn prove_account(client: &Client, addr: Address) -> Result<Value> {
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

    let signed = client.call("commit", json!({"height": latest.to_string()}))?;
    let header = header_from_json(&signed["signed_header"]["header"])?;
    let commit = commit_from_json(&signed["signed_header"]["commit"])?;
    let id = header.id();
    if header.height.0 != latest || commit.block_id != id {
        bail!("the commit does not sign the header of height {latest}");
    }
    let set = validator_set(client, latest)?;
    if set.hash() != header.validators_hash {
        bail!("the validator set served for {latest} is not the one its header names");
    }
    set.verify_commit(&header.chain_id, header.height, &id, &commit)
        .map_err(|e| anyhow!("the commit of {latest} does not verify: {e}"))?;
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
        .signatures
        .iter()
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
            "trusted": "the validator set of that height as the node served it (not verified from a trusted height)",
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_types::Timestamp;

    #[test]
    fn a_header_read_back_from_its_json_has_the_same_id() {
        let header = Header {
            chain_id: "c".into(),
            height: Height(7),
            time: Timestamp {
                seconds: 1_795_581_151,
                nanos: 123_456_789,
            },
            last_block_id: Some(BlockId(Hash::digest(b"prev"))),
            last_commit_hash: Hash::digest(b"lc"),
            data_hash: Hash::digest(b"d"),
            validators_hash: Hash::digest(b"v"),
            next_validators_hash: Hash::digest(b"nv"),
            consensus_hash: Hash::digest(b"c"),
            app_hash: Hash::digest(b"a"),
            last_results_hash: Hash::digest(b"r"),
            evidence_hash: Hash::default(),
            proposer_address: Address([9; 20]),
        };
        let json = basalt_rpc::shapes::header(&header);
        let back = header_from_json(&json).unwrap();
        assert_eq!(back, header);
        assert_eq!(back.id(), header.id());
        let mut first = header.clone();
        first.last_block_id = None;
        assert_eq!(
            header_from_json(&basalt_rpc::shapes::header(&first)).unwrap(),
            first
        );
        let mut bad = json.clone();
        bad["app_hash"] = json!("zz");
        assert!(header_from_json(&bad).is_err());
    }
}
