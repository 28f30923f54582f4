//! Deliberate misbehaviour for testing the punishment of equivocation (cargo feature
//! `byzantine`; a build without it has neither this code nor the `--misbehave` flag).
//! The validator signs a second, conflicting message with its raw key, past the double-sign
//! guard, and gossips both.

use crate::driver::Driver;
use crate::wire::ConsensusMsg;
use basalt_types::{Block, BlockId, Hash, SignedProposal, SignedVote, Vote, VoteType};
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    DoublePrevote,
    DoublePrecommit,
    DoublePropose,
}

/// `KIND[@HEIGHT]`: misbehave from HEIGHT on, or at every height.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Misbehave {
    pub kind: Kind,
    pub from: u64,
}

impl FromStr for Misbehave {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, from) = match s.split_once('@') {
            Some((k, h)) => (k, h.parse().map_err(|_| format!("bad height in {s:?}"))?),
            None => (s, 0),
        };
        let kind = match kind {
            "double-prevote" => Kind::DoublePrevote,
            "double-precommit" => Kind::DoublePrecommit,
            "double-propose" => Kind::DoublePropose,
            k => {
                return Err(format!(
                    "unknown misbehaviour {k:?}: double-prevote, double-precommit or double-propose"
                ))
            }
        };
        Ok(Misbehave { kind, from })
    }
}

impl Driver {
    fn misbehaving(&self, kind: Kind, height: u64) -> bool {
        self.misbehave
            .is_some_and(|m| m.kind == kind && height >= m.from)
    }

    /// After an honest vote: a conflicting one (nil for a value, a made-up value for nil).
    pub(crate) fn misbehave_vote(&mut self, signed: &SignedVote) {
        let kind = match signed.vote.vote_type {
            VoteType::Prevote => Kind::DoublePrevote,
            VoteType::Precommit => Kind::DoublePrecommit,
        };
        let v = &signed.vote;
        if !self.misbehaving(kind, v.height.0) {
            return;
        }
        let Some(signer) = self.signer.as_ref() else {
            return;
        };
        let other = match v.block_id {
            Some(_) => None,
            None => Some(BlockId(
                Hash::of(&(v.height, v.round, "conflict")),
                Default::default(),
            )),
        };
        let conflicting = Vote {
            block_id: other,
            ..v.clone()
        }
        .sign(self.chain.chain_id(), self.now.wall, signer.raw_key());
        tracing::warn!(height = %v.height, round = %v.round, ?kind, "misbehaving: signed a conflicting vote");
        self.publish_consensus(&ConsensusMsg::Vote(conflicting));
    }

    /// After an honest proposal: a second block (one nanosecond later) proposed too.
    pub(crate) fn misbehave_propose(&mut self, signed: &SignedProposal, block: &Block) {
        let p = &signed.proposal;
        if !self.misbehaving(Kind::DoublePropose, p.height.0) {
            return;
        }
        let Some(signer) = self.signer.as_ref() else {
            return;
        };
        let mut other = block.clone();
        other.header.time.nanos = (other.header.time.nanos + 1) % 1_000_000_000;
        let proposal = basalt_types::Proposal {
            block_id: other.id(),
            ..p.clone()
        }
        .sign(self.chain.chain_id(), self.now.wall, signer.raw_key());
        tracing::warn!(height = %p.height, round = %p.round, "misbehaving: signed a second proposal");
        self.publish_consensus(&ConsensusMsg::Proposal {
            proposal,
            block: Box::new(other),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_with_and_without_a_height() {
        assert_eq!(
            "double-prevote@7".parse::<Misbehave>().unwrap(),
            Misbehave {
                kind: Kind::DoublePrevote,
                from: 7
            }
        );
        assert_eq!(
            "double-precommit".parse::<Misbehave>().unwrap(),
            Misbehave {
                kind: Kind::DoublePrecommit,
                from: 0
            }
        );
        assert!("double-propose@x".parse::<Misbehave>().is_err());
        assert!("lie".parse::<Misbehave>().is_err());
    }
}
