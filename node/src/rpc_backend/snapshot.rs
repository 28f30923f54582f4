//! What the node publishes for the RPC after each event that changed it: the latest
//! height and header, app hash, validator set, round state, peers and mempool size. Reads
//! take the latest snapshot from a `watch` channel and never wait for the node.

use crate::driver::Driver;
use crate::node::PeerInfo;
use basalt_p2p::PeerId;
use basalt_rpc::shapes;
use basalt_staking::ValidatorSet;
use basalt_types::{Hash, Header, PublicKey};
use serde_json::{json, Value};
use std::sync::Arc;

/// What does not change while the node runs.
pub struct NodeInfo {
    pub moniker: String,
    pub node_id: String,
    pub node_key: PublicKey,
    pub rpc_listen: String,
    pub p2p_listen: String,
}

#[derive(Clone, Default)]
pub struct Snapshot {
    pub last_height: u64,
    pub last_header: Option<Header>,
    pub app_hash: Hash,
    /// The set of the next height.
    pub validators: Option<Arc<ValidatorSet>>,
    pub validator_key: Option<PublicKey>,
    pub catching_up: bool,
    /// Connected peers: id, last reported height, connection.
    pub peers: Vec<(PeerId, u64, Arc<PeerInfo>)>,
    pub mempool_txs: usize,
    pub mempool_bytes: usize,
    pub round_state: Value,
    pub round_state_full: Value,
}

impl Snapshot {
    pub fn of(
        d: &Driver,
        peer_info: &std::collections::HashMap<PeerId, Arc<PeerInfo>>,
    ) -> Snapshot {
        let round_state = round_state(d);
        Snapshot {
            last_height: d.last_height(),
            last_header: d.chain.last_header.clone(),
            app_hash: d.chain.runtime.app_hash(),
            validators: Some(Arc::new(d.chain.validators().clone())),
            validator_key: d.validator_key,
            catching_up: d.catching_up,
            peers: d
                .peers
                .iter()
                .filter_map(|(p, h)| peer_info.get(p).map(|i| (*p, *h, i.clone())))
                .collect(),
            mempool_txs: d.mempool.len(),
            mempool_bytes: d.mempool.size_bytes(),
            round_state_full: round_state_full(d, &round_state),
            round_state,
        }
    }

    /// What a change worth a new snapshot is measured by: the chain and the round moving,
    /// or peers coming and going (mempool counts follow on the node's tick).
    pub fn key(d: &Driver) -> (u64, u64, u32, u8, usize) {
        let e = &d.engine;
        (
            d.last_height(),
            e.height().0,
            e.round().0,
            step_code(e.step()),
            d.peers.len(),
        )
    }
}

/// CometBFT's step numbers for `consensus_state`.
fn step_code(s: basalt_consensus::Step) -> u8 {
    match s {
        basalt_consensus::Step::Propose => 3,
        basalt_consensus::Step::Prevote => 4,
        basalt_consensus::Step::Precommit => 6,
        basalt_consensus::Step::Commit => 8,
    }
}

/// The first six bytes in upper-case hex, as CometBFT's `Fingerprint` prints them (zeros
/// for nil).
fn fingerprint(bytes: &[u8]) -> String {
    let mut six = [0u8; 6];
    let n = bytes.len().min(6);
    six[..n].copy_from_slice(&bytes[..n]);
    hex::encode_upper(six)
}

/// One validator's vote as CometBFT's `Vote.String()`:
/// `Vote{index:ADDR h/rr/t(Type) BLOCK SIG @ time}`.
fn vote_string(index: usize, v: &basalt_types::SignedVote) -> String {
    let (code, name) = match v.vote.vote_type {
        basalt_types::VoteType::Prevote => (1, "Prevote"),
        basalt_types::VoteType::Precommit => (2, "Precommit"),
    };
    format!(
        "Vote{{{index}:{} {}/{:02}/{code}({name}) {} {} @ {}}}",
        fingerprint(&v.vote.validator.0),
        v.vote.height.0,
        v.vote.round.0,
        fingerprint(v.vote.block_id.map(|b| b.0).unwrap_or_default().as_bytes()),
        fingerprint(&v.signature.0),
        shapes::rfc3339(v.timestamp),
    )
}

/// One round's votes of one type in CometBFT's shape: a string per validator of the set
/// (in the set's order; `nil-Vote` where none arrived) and the bit array with the power
/// that voted, `BA{4:xx_x} 30/40 = 0.75`.
fn round_votes(
    d: &Driver,
    set: &ValidatorSet,
    round: basalt_types::Round,
    t: basalt_types::VoteType,
) -> (Vec<String>, String) {
    let votes = d.engine.votes();
    let mut bits = String::with_capacity(set.len());
    let mut power = 0u64;
    let list = (set.validators().iter().enumerate())
        .map(|(i, val)| match votes.get(round, t, &val.address).first() {
            Some(v) => {
                bits.push('x');
                power += val.voting_power;
                vote_string(i, v)
            }
            None => {
                bits.push('_');
                "nil-Vote".to_string()
            }
        })
        .collect();
    let total = set.total_power();
    let frac = if total == 0 {
        0.0
    } else {
        power as f64 / total as f64
    };
    let bit_array = format!("BA{{{}:{bits}}} {power}/{total} = {frac:.2}", set.len());
    (list, bit_array)
}

/// `consensus_state`'s round state.
fn round_state(d: &Driver) -> Value {
    let e = &d.engine;
    let h = e.height().0;
    let proposer = e.validators().map(|s| {
        let a = s.proposer_for_round(e.round().0);
        json!({"address": a.to_hex(), "index": s.index_of(&a).unwrap_or(0)})
    });
    let hash_of = |v: Option<(basalt_types::BlockId, basalt_types::Round)>| {
        v.map(|(b, _)| b.0.to_hex()).unwrap_or_default()
    };
    let proposal = e
        .proposals()
        .find(|p| p.proposal.round == e.round())
        .map(|p| p.proposal.block_id.0.to_hex())
        .unwrap_or_default();
    let votes: Vec<Value> = match e.validators() {
        None => Vec::new(),
        Some(set) => (0..=e.round().0)
            .map(|r| {
                let r = basalt_types::Round(r);
                let (prevotes, pv_bits) = round_votes(d, set, r, basalt_types::VoteType::Prevote);
                let (precommits, pc_bits) =
                    round_votes(d, set, r, basalt_types::VoteType::Precommit);
                json!({"round": r.0, "prevotes": prevotes, "prevotes_bit_array": pv_bits,
                    "precommits": precommits, "precommits_bit_array": pc_bits})
            })
            .collect(),
    };
    let start = d
        .chain
        .last_header
        .as_ref()
        .map(|h| h.time)
        .unwrap_or_default();
    json!({
        "height/round/step": format!("{h}/{}/{}", e.round().0, step_code(e.step())),
        "start_time": shapes::rfc3339(start),
        "proposal_block_hash": proposal,
        "locked_block_hash": hash_of(e.locked()),
        "valid_block_hash": hash_of(e.valid()),
        "height_vote_set": votes,
        "proposer": proposer,
    })
}

/// `dump_consensus_state`'s: `short` (the vote lists are not built twice) with the height,
/// round, step, locked and valid rounds as fields, the set and the votes again as `votes`.
fn round_state_full(d: &Driver, short: &Value) -> Value {
    let e = &d.engine;
    let mut rs = short.clone();
    rs["height"] = json!(e.height().0.to_string());
    rs["round"] = json!(e.round().0);
    rs["step"] = json!(step_code(e.step()));
    rs["locked_round"] = json!(e.locked().map_or(-1, |(_, r)| i64::from(r.0)));
    rs["valid_round"] = json!(e.valid().map_or(-1, |(_, r)| i64::from(r.0)));
    rs["validators"] = json!({
        "validators": e.validators().map(|s| s
            .validators()
            .iter()
            .map(|v| shapes::validator(&v.public_key, v.voting_power, v.proposer_priority))
            .collect::<Vec<_>>()),
        "proposer": short["proposer"],
    });
    rs["votes"] = short["height_vote_set"].clone();
    rs
}
