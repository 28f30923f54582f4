//! Commits: the 2f+1 precommits that finalise a block, laid out as CometBFT's `Commit`
//! (one entry per validator of the set, in set order) so that a light client checks them.

use crate::block::{BlockId, Timestamp};
use crate::canonical::{self, BlockIdFlag};
use crate::crypto::{Address, Signature};
use crate::hash::Hash;
use crate::height::{Height, Round};
use crate::vote::{SignedVote, Vote, VoteType};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// One validator's precommit for the committed block, without the fields every entry shares.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct CommitSig {
    pub validator: Address,
    /// The precommit's own timestamp (it is part of what was signed).
    pub timestamp: Timestamp,
    pub signature: Signature,
}

/// Precommits for `block_id` at (`height`, `round`) whose power is more than 2/3 of the set.
/// `signatures` has one entry per validator of the height's set, in the set's order
/// (voting power descending, then address): `None` where that validator's precommit for the
/// block is not in the commit (CometBFT's `BlockIDFlagAbsent`). Verification against a
/// validator set lives in `basalt-staking`, which owns the set.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Commit {
    pub height: Height,
    pub round: Round,
    pub block_id: BlockId,
    pub signatures: Vec<Option<CommitSig>>,
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
            timestamp: sig.timestamp,
            signature: sig.signature,
        }
    }

    /// The entries that hold a signature.
    pub fn signed(&self) -> impl Iterator<Item = &CommitSig> + '_ {
        self.signatures.iter().flatten()
    }

    pub fn precommits(&self) -> impl Iterator<Item = SignedVote> + '_ {
        self.signed().map(|s| self.precommit(s))
    }

    /// Whether `validator`'s precommit is in the commit.
    pub fn signed_by(&self, validator: &Address) -> bool {
        self.signed().any(|s| &s.validator == validator)
    }

    /// CometBFT's `Commit.Hash()`, what a header's `last_commit_hash` holds.
    pub fn hash(&self) -> Hash {
        const EMPTY: &[u8] = &[];
        let sigs: Vec<canonical::CommitSig> = self
            .signatures
            .iter()
            .map(|s| match s {
                Some(s) => canonical::CommitSig {
                    flag: BlockIdFlag::Commit,
                    validator_address: &s.validator.0,
                    time: s.timestamp.canonical(),
                    signature: &s.signature.0,
                },
                None => canonical::CommitSig {
                    flag: BlockIdFlag::Absent,
                    validator_address: EMPTY,
                    time: Timestamp::GO_ZERO.canonical(),
                    signature: EMPTY,
                },
            })
            .collect();
        Hash(canonical::commit_hash(&sigs))
    }

    /// `last_commit_hash` for a block whose last commit is `commit` (none for the first
    /// block: the hash of nothing, as CometBFT's empty Merkle root).
    pub fn hash_of(commit: Option<&Commit>) -> Hash {
        commit.map_or_else(|| Hash(canonical::commit_hash(&[])), Commit::hash)
    }
}
