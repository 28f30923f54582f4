//! Commits: the 2f+1 precommits that finalise a block.

use crate::block::BlockId;
use crate::crypto::{Address, Signature};
use crate::height::{Height, Round};
use crate::vote::{SignedVote, Vote, VoteType};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// One validator's precommit for the committed block, without the fields every entry shares.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct CommitSig {
    pub validator: Address,
    pub signature: Signature,
}

/// Precommits for `block_id` at (`height`, `round`) whose power is more than 2/3 of the set.
/// Verification against a validator set lives in `basalt-staking`, which owns the set.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Commit {
    pub height: Height,
    pub round: Round,
    pub block_id: BlockId,
    pub signatures: Vec<CommitSig>,
}

impl Commit {
    /// The full signed precommit behind one entry (for verification or re-gossip).
    pub fn precommit(&self, sig: &CommitSig) -> SignedVote {
        SignedVote {
            vote: Vote {
                vote_type: VoteType::Precommit,
                height: self.height,
                round: self.round,
                block_id: Some(self.block_id),
                validator: sig.validator,
            },
            signature: sig.signature,
        }
    }

    pub fn precommits(&self) -> impl Iterator<Item = SignedVote> + '_ {
        self.signatures.iter().map(|s| self.precommit(s))
    }
}
