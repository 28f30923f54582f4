//! Prevotes and precommits.

use crate::block::BlockId;
use crate::crypto::{Address, CryptoError, PrivateKey, PublicKey, Signature};
use crate::height::{Height, Round};
use crate::sign_bytes::{sign_bytes, SignDomain};
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

/// A vote for a block (or for nil, `block_id = None`) at one height and round.
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
    pub fn sign_bytes(&self, chain_id: &str) -> Vec<u8> {
        sign_bytes(SignDomain::Vote, chain_id, self)
    }

    pub fn sign(self, chain_id: &str, key: &PrivateKey) -> SignedVote {
        let signature = key.sign(&self.sign_bytes(chain_id));
        SignedVote {
            vote: self,
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
    pub signature: Signature,
}

impl SignedVote {
    /// Checks the signature against `public_key` for `chain_id`. A vote signed for another
    /// chain fails here, because the chain id is part of the sign bytes.
    pub fn verify(&self, chain_id: &str, public_key: &PublicKey) -> Result<(), CryptoError> {
        public_key.verify(&self.vote.sign_bytes(chain_id), &self.signature)
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
            block_id: Some(BlockId(Hash::digest(b"block"))),
            validator: key.public_key().address(),
        };
        let signed = vote.clone().sign("basalt-1", &key);
        assert!(signed.verify("basalt-1", &key.public_key()).is_ok());
        assert!(signed.verify("basalt-2", &key.public_key()).is_err());
        let mut nil = signed.clone();
        nil.vote.block_id = None;
        assert!(nil.verify("basalt-1", &key.public_key()).is_err());
        let bytes = borsh::to_vec(&signed).unwrap();
        assert_eq!(borsh::from_slice::<SignedVote>(&bytes).unwrap(), signed);
    }
}
