//! Basalt's types in CometBFT v0.38's JSON: int64 as decimal strings, hashes and addresses
//! upper-case hex, byte blobs base64, times RFC 3339 with nanoseconds, ed25519 keys as
//! `{"type":"tendermint/PubKeyEd25519","value":base64}`.

use basalt_types::{
    Block, BlockId, Commit, DuplicateVoteEvidence, Evidence, Header, PublicKey, SignedVote,
    Timestamp, Vote, VoteType,
};
use base64::Engine;
use serde_json::{json, Value};

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub use basalt_types::time::{parse_rfc3339, rfc3339};

pub fn pub_key(k: &PublicKey) -> Value {
    json!({"type": "tendermint/PubKeyEd25519", "value": b64(&k.to_bytes())})
}

/// CometBFT's BlockID: the hash plus its part-set header ([`BlockId::parts`], which
/// [`basalt_types::Header::id`] hashes too).
pub fn block_id(id: Option<BlockId>) -> Value {
    match id {
        Some(id) => {
            let parts = id.parts();
            json!({"hash": id.0.to_hex(), "parts": {"total": parts.total, "hash": parts.hash.to_hex()}})
        }
        None => json!({"hash": "", "parts": {"total": 0, "hash": ""}}),
    }
}

/// The inverse of [`block_id`]: `None` for a nil vote's empty id.
pub fn parse_block_id(v: &Value) -> Result<Option<BlockId>, String> {
    let hex32 = |v: &Value, what: &str| -> Result<basalt_types::Hash, String> {
        let s = v.as_str().ok_or(format!("block_id: {what} is missing"))?;
        basalt_types::Hash::from_hex(s).map_err(|e| format!("block_id: {what}: {e}"))
    };
    if v["hash"].as_str().unwrap_or("").is_empty() {
        return Ok(None);
    }
    let total = v["parts"]["total"]
        .as_u64()
        .and_then(|t| u32::try_from(t).ok())
        .ok_or("block_id: parts.total is missing")?;
    Ok(Some(BlockId(
        hex32(&v["hash"], "hash")?,
        basalt_types::PartSetHeader {
            total,
            hash: hex32(&v["parts"]["hash"], "parts.hash")?,
        },
    )))
}

pub fn header(h: &Header) -> Value {
    json!({
        "version": {
            "block": basalt_types::block::VERSION_BLOCK.to_string(),
            "app": basalt_types::block::VERSION_APP.to_string(),
        },
        "chain_id": h.chain_id,
        "height": h.height.0.to_string(),
        "time": rfc3339(h.time),
        "last_block_id": block_id(h.last_block_id),
        "last_commit_hash": h.last_commit_hash.to_hex(),
        "data_hash": h.data_hash.to_hex(),
        "validators_hash": h.validators_hash.to_hex(),
        "next_validators_hash": h.next_validators_hash.to_hex(),
        "consensus_hash": h.consensus_hash.to_hex(),
        "app_hash": h.app_hash.to_hex(),
        "last_results_hash": h.last_results_hash.to_hex(),
        "evidence_hash": h.evidence_hash.to_hex(),
        "proposer_address": h.proposer_address.to_hex(),
    })
}

/// A commit: one signature per validator of the set, in set order, each with its own
/// timestamp (flag 2); an absent one as CometBFT writes it (flag 1, no address, Go's zero
/// time, no signature).
pub fn commit(c: &Commit) -> Value {
    json!({
        "height": c.height.0.to_string(),
        "round": c.round.0,
        "block_id": block_id(Some(c.block_id)),
        "signatures": c.signatures.iter().map(|s| match s {
            Some(s) => json!({
                "block_id_flag": 2,
                "validator_address": s.validator.to_hex(),
                "timestamp": rfc3339(s.timestamp),
                "signature": b64(&s.signature.0),
            }),
            None => json!({
                "block_id_flag": 1,
                "validator_address": "",
                "timestamp": "0001-01-01T00:00:00Z",
                "signature": null,
            }),
        }).collect::<Vec<_>>(),
    })
}

/// A vote in CometBFT's JSON (type 1 prevote, 2 precommit).
pub fn vote(v: &SignedVote, index: i64) -> Value {
    json!({
        "type": match v.vote.vote_type { VoteType::Prevote => 1, VoteType::Precommit => 2 },
        "height": v.vote.height.0.to_string(),
        "round": v.vote.round.0,
        "block_id": block_id(v.vote.block_id),
        "timestamp": rfc3339(v.timestamp),
        "validator_address": v.vote.validator.to_hex(),
        "validator_index": index,
        "signature": b64(&v.signature.0),
    })
}

/// Duplicate-vote evidence as CometBFT shows it in blocks.
pub fn evidence(e: &Evidence, time: Timestamp) -> Value {
    let Evidence::DuplicateVote(d) = e;
    json!({"type": "tendermint/DuplicateVoteEvidence", "value": {
        "vote_a": vote(&d.vote_a, 0),
        "vote_b": vote(&d.vote_b, 0),
        "TotalVotingPower": d.total_power.to_string(),
        "ValidatorPower": d.validator_power.to_string(),
        "Timestamp": rfc3339(time),
    }})
}

pub fn evidence_list(b: &Block) -> Value {
    Value::Array(
        b.evidence
            .iter()
            .map(|e| evidence(e, b.header.time))
            .collect(),
    )
}

fn parse_vote(v: &Value) -> Result<SignedVote, String> {
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .ok_or(format!("vote: {k} is missing"))
    };
    let vote_type = match v.get("type").and_then(Value::as_u64) {
        Some(1) => VoteType::Prevote,
        Some(2) => VoteType::Precommit,
        _ => return Err("vote: type must be 1 (prevote) or 2 (precommit)".into()),
    };
    let height = s("height")?.parse().map_err(|_| "vote: bad height")?;
    let round = v
        .get("round")
        .and_then(Value::as_u64)
        .ok_or("vote: bad round")?;
    let block_id = match v.get("block_id") {
        Some(b) => parse_block_id(b).map_err(|e| format!("vote: {e}"))?,
        None => None,
    };
    let validator = basalt_types::Address::from_hex(s("validator_address")?)?;
    let timestamp = parse_rfc3339(s("timestamp")?).ok_or("vote: bad timestamp")?;
    let sig: [u8; 64] = base64::engine::general_purpose::STANDARD
        .decode(s("signature")?)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("vote: bad signature")?;
    Ok(SignedVote {
        vote: Vote {
            vote_type,
            height: basalt_types::Height(height),
            round: basalt_types::Round(u32::try_from(round).map_err(|_| "vote: bad round")?),
            block_id,
            validator,
        },
        timestamp,
        signature: basalt_types::Signature(sig),
    })
}

/// Reads duplicate-vote evidence in the shape [`evidence`] writes (the `value` object, or
/// the whole `{type, value}`).
pub fn parse_evidence(v: &Value) -> Result<Evidence, String> {
    let v = v.get("value").unwrap_or(v);
    let num = |k: &str| {
        v.get(k)
            .and_then(|x| {
                x.as_str()
                    .map(String::from)
                    .or_else(|| x.as_u64().map(|n| n.to_string()))
            })
            .and_then(|x| x.parse::<u64>().ok())
            .ok_or(format!("evidence: {k} is missing"))
    };
    let a = parse_vote(v.get("vote_a").ok_or("evidence: vote_a is missing")?)?;
    let b = parse_vote(v.get("vote_b").ok_or("evidence: vote_b is missing")?)?;
    Ok(Evidence::DuplicateVote(DuplicateVoteEvidence::new(
        a,
        b,
        num("ValidatorPower")?,
        num("TotalVotingPower")?,
    )))
}

pub fn block(b: &Block) -> Value {
    let last_commit = match &b.last_commit {
        Some(c) => commit(c),
        None => json!({"height": "0", "round": 0, "block_id": block_id(None), "signatures": []}),
    };
    json!({
        "header": header(&b.header),
        "data": {"txs": b.txs.iter().map(|t| b64(t)).collect::<Vec<_>>()},
        "evidence": {"evidence": evidence_list(b)},
        "last_commit": last_commit,
    })
}

/// The `block` method's result.
pub fn block_response(b: &Block) -> Value {
    json!({"block_id": block_id(Some(b.id())), "block": block(b)})
}

pub fn validator(k: &PublicKey, power: u64, priority: i64) -> Value {
    json!({
        "address": k.address().to_hex(),
        "pub_key": pub_key(k),
        "voting_power": power.to_string(),
        "proposer_priority": priority.to_string(),
    })
}

/// An ABCI event: `{type, attributes: [{key, value, index}]}`.
pub fn event(kind: &str, attributes: &[(String, String)]) -> Value {
    json!({
        "type": kind,
        "attributes": attributes.iter().map(|(k, v)| json!({"key": k, "value": v, "index": true})).collect::<Vec<_>>(),
    })
}

/// `ExecTxResult` / `ResponseCheckTx` fields.
pub fn tx_result(code: u32, log: &str, events: Value) -> Value {
    json!({
        "code": code,
        "data": null,
        "log": log,
        "info": "",
        "gas_wanted": "0",
        "gas_used": "0",
        "events": events,
        "codespace": "",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_round_trips_through_cometbft_json() {
        let key = basalt_types::PrivateKey::from_seed([3; 32]);
        let v = |b: Option<BlockId>| {
            Vote {
                vote_type: VoteType::Precommit,
                height: basalt_types::Height(9),
                round: basalt_types::Round(2),
                block_id: b,
                validator: key.public_key().address(),
            }
            .sign("c", basalt_types::Timestamp::default(), &key)
        };
        let ev = Evidence::DuplicateVote(DuplicateVoteEvidence::new(
            v(Some(BlockId(
                basalt_types::Hash::digest(b"x"),
                Default::default(),
            ))),
            v(None),
            10,
            40,
        ));
        let json = evidence(&ev, Timestamp::default());
        assert_eq!(json["value"]["vote_a"]["type"], 2);
        assert_eq!(parse_evidence(&json).unwrap(), ev);
        assert!(parse_evidence(&json!({"value": {}})).is_err());
    }
}
