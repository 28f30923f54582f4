//! Block proposals.

use crate::block::{BlockId, Timestamp};
use crate::canonical;
use crate::crypto::{Address, CryptoError, PrivateKey, PublicKey, Signature};
use crate::height::{Height, Round};
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
    /// CometBFT's `ProposalSignBytes` (length-delimited `CanonicalProposal`, DESIGN.md §6a).
    pub fn sign_bytes(&self, chain_id: &str, timestamp: Timestamp) -> Vec<u8> {
        canonical::proposal_sign_bytes(
            chain_id,
            self.height.0 as i64,
            i64::from(self.round.0),
            self.pol_round.map_or(-1, |r| i64::from(r.0)),
            &self.block_id.canonical(),
            timestamp.canonical(),
        )
    }

    pub fn sign(self, chain_id: &str, timestamp: Timestamp, key: &PrivateKey) -> SignedProposal {
        let signature = key.sign(&self.sign_bytes(chain_id, timestamp));
        SignedProposal {
            proposal: self,
            timestamp,
            signature,
        }
    }
}

#[derive(
    Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct SignedProposal {
    pub proposal: Proposal,
    /// When the proposer signed.
    pub timestamp: Timestamp,
    pub signature: Signature,
}

impl SignedProposal {
    pub fn sign_bytes(&self, chain_id: &str) -> Vec<u8> {
        self.proposal.sign_bytes(chain_id, self.timestamp)
    }

    pub fn verify(&self, chain_id: &str, public_key: &PublicKey) -> Result<(), CryptoError> {
        public_key.verify(&self.sign_bytes(chain_id), &self.signature)
    }
}
