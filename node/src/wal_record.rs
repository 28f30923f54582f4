//! What the consensus WAL holds: every consensus input the engine accepted at the current
//! height (proposals with their blocks, votes, timeouts), own signed messages among them,
//! written durably before they leave the node. Replaying the records of the height being
//! decided into a fresh engine rebuilds the pre-crash state.

use basalt_consensus::TimeoutKind;
use basalt_types::{Block, Height, Round, SignedProposal, SignedVote};
use borsh::{BorshDeserialize, BorshSerialize};

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum WalRecord {
    Proposal {
        proposal: SignedProposal,
        block: Box<Block>,
    },
    Vote(SignedVote),
    Timeout {
        height: Height,
        round: Round,
        /// 0 propose, 1 prevote, 2 precommit.
        kind: u8,
    },
}

impl WalRecord {
    pub fn height(&self) -> Height {
        match self {
            WalRecord::Proposal { proposal, .. } => proposal.proposal.height,
            WalRecord::Vote(v) => v.vote.height,
            WalRecord::Timeout { height, .. } => *height,
        }
    }
}

pub fn kind_code(k: TimeoutKind) -> u8 {
    match k {
        TimeoutKind::Propose => 0,
        TimeoutKind::Prevote => 1,
        TimeoutKind::Precommit => 2,
    }
}

pub fn kind_of(code: u8) -> Option<TimeoutKind> {
    match code {
        0 => Some(TimeoutKind::Propose),
        1 => Some(TimeoutKind::Prevote),
        2 => Some(TimeoutKind::Precommit),
        _ => None,
    }
}
