//! Prevotes and precommits.

use crate::block::{BlockId, Timestamp};
use crate::canonical::{self, SignedMsgType};
use crate::crypto::{Address, CryptoError, PrivateKey, PublicKey, Signature};
use crate::height::{Height, Round};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// The two voting steps of a round. The order matters: a validator signs at most one
/// message per (height, round, step) and steps only move forward.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
pub enum VoteType {
    Prevote,
    Precommit,
}

/// A vote for a block (or for nil, `block_id = None`) at one height and round: what the
/// consensus engine decides. The time the validator signed it at travels beside it in
/// [`SignedVote`], so that two signatures of one vote that differ only in their timestamps
/// are the same vote, never an equivocation.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct Vote {
    pub vote_type: VoteType,
    pub height: Height,
    pub round: Round,
    pub block_id: Option<BlockId>,
    pub validator: Address,
}

impl Vote {
    /// CometBFT's `VoteSignBytes`: the length-delimited `CanonicalVote` (DESIGN.md §6a), so
    /// that remote signers and light clients check the same bytes.
    pub fn sign_bytes(&self, chain_id: &str, timestamp: Timestamp) -> Vec<u8> {
        let kind = match self.vote_type {
            VoteType::Prevote => SignedMsgType::Prevote,
            VoteType::Precommit => SignedMsgType::Precommit,
        };
        canonical::vote_sign_bytes(
            chain_id,
            kind,
            self.height.0 as i64,
            i64::from(self.round.0),
            self.block_id.map(|id| id.canonical()).as_ref(),
            timestamp.canonical(),
        )
    }

    pub fn sign(self, chain_id: &str, timestamp: Timestamp, key: &PrivateKey) -> SignedVote {
        let signature = key.sign(&self.sign_bytes(chain_id, timestamp));
        SignedVote {
            vote: self,
            timestamp,
            signature,
        }
    }
}

/// A vote with its signature, as it travels between nodes.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct SignedVote {
    pub vote: Vote,
    /// When the validator signed (its clock; for a block, after the block's time).
    pub timestamp: Timestamp,
    pub signature: Signature,
}

impl SignedVote {
    pub fn sign_bytes(&self, chain_id: &str) -> Vec<u8> {
        self.vote.sign_bytes(chain_id, self.timestamp)
    }

    /// Checks the signature against `public_key` for `chain_id`. A vote signed for another
    /// chain fails here, because the chain id is part of the sign bytes.
    pub fn verify(&self, chain_id: &str, public_key: &PublicKey) -> Result<(), CryptoError> {
        public_key.verify(&self.sign_bytes(chain_id), &self.signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Hash;

    #[test]
    fn a_vote_verifies_only_on_its_own_chain_and_content() {
        let key = PrivateKey::from_seed([9; 32]);
        let vote = Vote {
            vote_type: VoteType::Prevote,
            height: Height(5),
            round: Round(1),
            block_id: Some(BlockId(Hash::digest(b"block"), Default::default())),
            validator: key.public_key().address(),
        };
        let at = Timestamp {
            seconds: 1_700_000_000,
            nanos: 5,
        };
        let signed = vote.clone().sign("basalt-1", at, &key);
        assert!(signed.verify("basalt-1", &key.public_key()).is_ok());
        assert!(signed.verify("basalt-2", &key.public_key()).is_err());
        let mut nil = signed.clone();
        nil.vote.block_id = None;
        assert!(nil.verify("basalt-1", &key.public_key()).is_err());
        let mut later = signed.clone();
        later.timestamp.nanos += 1;
        assert!(later.verify("basalt-1", &key.public_key()).is_err());
        let bytes = borsh::to_vec(&signed).unwrap();
        assert_eq!(borsh::from_slice::<SignedVote>(&bytes).unwrap(), signed);
    }
}
