//! `consensus_state` and `dump_consensus_state`: the engine's round copied by the node
//! into each snapshot ([`RoundView::of`], a few clones), and rendered in CometBFT's shapes
//! by the read that asks for it, off the consensus loop.

use super::snapshot::step_code;
use crate::driver::Driver;
use basalt_rpc::shapes;
use basalt_staking::ValidatorSet;
use basalt_types::{BlockId, Round, SignedVote, Timestamp, VoteType};
use serde_json::{json, Value};

/// What the round state is rendered from.
pub struct RoundView {
    height: u64,
    round: u32,
    step: u8,
    /// When the height began: the last block's time.
    start: Timestamp,
    proposal: Option<BlockId>,
    locked: Option<(BlockId, Round)>,
    valid: Option<(BlockId, Round)>,
    /// The height's set (the engine's, not the next height's).
    set: ValidatorSet,
    /// Per round from 0: each validator's first prevote and precommit, in the set's order.
    votes: Vec<[Vec<Option<SignedVote>>; 2]>,
}

impl RoundView {
    /// The engine's round now, if it has a set.
    pub fn of(d: &Driver) -> Option<RoundView> {
        let e = &d.engine;
        let set = e.validators()?;
        let keeper = e.votes();
        let votes = (0..=e.round().0)
            .map(|r| {
                [VoteType::Prevote, VoteType::Precommit].map(|t| {
                    (set.validators().iter())
                        .map(|v| keeper.get(Round(r), t, &v.address).first().cloned())
                        .collect()
                })
            })
            .collect();
        Some(RoundView {
            height: e.height().0,
            round: e.round().0,
            step: step_code(e.step()),
            start: (d.chain.last_header.as_ref()).map_or_else(Timestamp::default, |h| h.time),
            proposal: (e.proposals())
                .find(|p| p.proposal.round == e.round())
                .map(|p| p.proposal.block_id),
            locked: e.locked(),
            valid: e.valid(),
            set: set.clone(),
            votes,
        })
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
fn vote_string(index: usize, v: &SignedVote) -> String {
    let (code, name) = match v.vote.vote_type {
        VoteType::Prevote => (1, "Prevote"),
        VoteType::Precommit => (2, "Precommit"),
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
fn round_votes(set: &ValidatorSet, votes: &[Option<SignedVote>]) -> (Vec<String>, String) {
    let mut bits = String::with_capacity(set.len());
    let mut power = 0u64;
    let list = (set.validators().iter().zip(votes).enumerate())
        .map(|(i, (val, vote))| match vote {
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

/// `consensus_state`'s round state (`Value::Null` before the engine has a set).
pub fn round_state(r: Option<&RoundView>) -> Value {
    let Some(r) = r else {
        return Value::Null;
    };
    let proposer = r.set.proposer_for_round(r.round);
    let hash_of = |v: Option<(BlockId, Round)>| v.map(|(b, _)| b.0.to_hex()).unwrap_or_default();
    let votes: Vec<Value> = (r.votes.iter().enumerate())
        .map(|(round, [prevotes, precommits])| {
            let (prevotes, pv_bits) = round_votes(&r.set, prevotes);
            let (precommits, pc_bits) = round_votes(&r.set, precommits);
            json!({"round": round, "prevotes": prevotes, "prevotes_bit_array": pv_bits,
                "precommits": precommits, "precommits_bit_array": pc_bits})
        })
        .collect();
    json!({
        "height/round/step": format!("{}/{}/{}", r.height, r.round, r.step),
        "start_time": shapes::rfc3339(r.start),
        "proposal_block_hash": r.proposal.map(|b| b.0.to_hex()).unwrap_or_default(),
        "locked_block_hash": hash_of(r.locked),
        "valid_block_hash": hash_of(r.valid),
        "height_vote_set": votes,
        "proposer": {"address": proposer.to_hex(), "index": r.set.index_of(&proposer).unwrap_or(0)},
    })
}

/// `dump_consensus_state`'s: `consensus_state`'s with the height, round, step, locked and
/// valid rounds as fields, the set with the proposer, and the votes again as `votes`.
pub fn round_state_full(r: Option<&RoundView>) -> Value {
    let mut rs = round_state(r);
    let Some(r) = r else {
        return rs;
    };
    rs["height"] = json!(r.height.to_string());
    rs["round"] = json!(r.round);
    rs["step"] = json!(r.step);
    rs["locked_round"] = json!(r.locked.map_or(-1, |(_, round)| i64::from(round.0)));
    rs["valid_round"] = json!(r.valid.map_or(-1, |(_, round)| i64::from(round.0)));
    rs["validators"] = json!({
        "validators": (r.set.validators().iter())
            .map(|v| shapes::validator(&v.public_key, v.voting_power, v.proposer_priority))
            .collect::<Vec<_>>(),
        "proposer": rs["proposer"].clone(),
    });
    rs["votes"] = rs["height_vote_set"].clone();
    rs
}
