//! Light blocks from a node's JSON-RPC (`/commit`, `/validators`), read into Basalt's types.
//! Nothing here is trusted: [`super::verify`] checks what these functions return.

use super::verify::LightBlock;
use crate::client::Client;
use anyhow::{anyhow, Context, Result};
use basalt_rpc::shapes::parse_rfc3339;
use basalt_staking::{Validator, ValidatorSet};
use basalt_types::{
    Address, BlockId, Commit, CommitSig, Hash, Header, Height, PublicKey, Round, Signature,
};
use base64::Engine;
use serde_json::{json, Value};

pub fn text<'a>(v: &'a Value, what: &str) -> Result<&'a str> {
    v.as_str().ok_or_else(|| anyhow!("{what} is missing"))
}

pub fn number(v: &Value, what: &str) -> Result<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| anyhow!("{what} is not a number"))
}

fn hash(v: &Value, what: &str) -> Result<Hash> {
    Hash::from_hex(text(v, what)?).map_err(|e| anyhow!("{what}: {e}"))
}

pub fn b64(v: &Value, what: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text(v, what)?)
        .with_context(|| format!("{what} is not base64"))
}

fn address(v: &Value, what: &str) -> Result<Address> {
    Address::from_hex(text(v, what)?).map_err(|e| anyhow!("{what}: {e}"))
}

fn block_id(v: &Value, what: &str) -> Result<Option<BlockId>> {
    basalt_rpc::shapes::parse_block_id(v).map_err(|e| anyhow!("{what}: {e}"))
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

pub fn commit_from_json(c: &Value) -> Result<Commit> {
    let signatures = c["signatures"]
        .as_array()
        .ok_or_else(|| anyhow!("the commit has no signatures"))?
        .iter()
        .map(|s| {
            // Only flag 2 (a precommit for the block) carries a signature that counts.
            if number(&s["block_id_flag"], "block_id_flag")? != 2 {
                return Ok(None);
            }
            let sig: [u8; 64] = b64(&s["signature"], "signature")?
                .try_into()
                .map_err(|_| anyhow!("a signature is not 64 bytes"))?;
            Ok(Some(CommitSig {
                validator: address(&s["validator_address"], "validator_address")?,
                timestamp: parse_rfc3339(text(&s["timestamp"], "timestamp")?)
                    .ok_or_else(|| anyhow!("bad signature timestamp"))?,
                signature: Signature(sig),
            }))
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
pub fn validator_set(client: &Client, height: u64) -> Result<ValidatorSet> {
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

/// The latest height `client`'s node has committed.
pub fn latest_height(client: &Client) -> Result<u64> {
    let status = client.call("status", json!({}))?;
    number(
        &status["sync_info"]["latest_block_height"],
        "latest_block_height",
    )
}

/// The header and commit of `height` (`/commit`).
pub fn signed_header(client: &Client, height: u64) -> Result<(Header, Commit)> {
    let r = client.call("commit", json!({"height": height.to_string()}))?;
    let header = header_from_json(&r["signed_header"]["header"])
        .with_context(|| format!("the header of {height}"))?;
    let commit = commit_from_json(&r["signed_header"]["commit"])
        .with_context(|| format!("the commit of {height}"))?;
    Ok((header, commit))
}

/// Everything a light client needs about `height`: header, commit, its set and the next.
pub fn light_block(client: &Client, height: u64) -> Result<LightBlock> {
    let (header, commit) = signed_header(client, height)?;
    Ok(LightBlock {
        header,
        commit,
        validators: validator_set(client, height)?,
        next_validators: validator_set(client, height + 1)?,
    })
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
            last_block_id: Some(BlockId(Hash::digest(b"prev"), Default::default())),
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
        assert_eq!(back.hash(), header.hash());
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
