//! Block proposals.

use crate::block::BlockId;
use crate::crypto::{Address, CryptoError, PrivateKey, PublicKey, Signature};
use crate::height::{Height, Round};
use crate::sign_bytes::{sign_bytes, SignDomain};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// The proposer's `⟨PROPOSAL, h, round, v, validRound⟩`: the value travels separately (as a
/// block) and is named here by its id. `pol_round` is the paper's `validRound`, `None` for -1.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct Proposal {
    pub height: Height,
    pub round: Round,
    pub pol_round: Option<Round>,
    pub block_id: BlockId,
    pub proposer: Address,
}

impl Proposal {
    pub fn sign_bytes(&self, chain_id: &str) -> Vec<u8> {
        sign_bytes(SignDomain::Proposal, chain_id, self)
    }

    pub fn sign(self, chain_id: &str, key: &PrivateKey) -> SignedProposal {
        let signature = key.sign(&self.sign_bytes(chain_id));
        SignedProposal {
            proposal: self,
            signature,
        }
    }
}

#[derive(
    Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct SignedProposal {
    pub proposal: Proposal,
    pub signature: Signature,
}

impl SignedProposal {
    pub fn verify(&self, chain_id: &str, public_key: &PublicKey) -> Result<(), CryptoError> {
        public_key.verify(&self.proposal.sign_bytes(chain_id), &self.signature)
    }
}
