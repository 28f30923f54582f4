//! Evidence of misbehaviour: two different signed votes from one validator for the same
//! height, round and step.

use crate::crypto::{CryptoError, PublicKey};
use crate::vote::SignedVote;
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    #[error("the two votes are from different validators")]
    DifferentValidators,
    #[error("the two votes differ in height, round or type")]
    DifferentPositions,
    #[error("the two votes are for the same block: no equivocation")]
    SameBlock,
    #[error("votes are not in canonical order (vote_a must have the lower block id)")]
    NotCanonical,
    #[error("the public key does not belong to the accused validator")]
    WrongKey,
    #[error("a vote's signature does not verify: {0}")]
    BadSignature(CryptoError),
    #[error("validator power {power} is zero or exceeds total power {total}")]
    BadPower { power: u64, total: u64 },
}

/// CometBFT's DuplicateVoteEvidence: both votes plus the validator's power and the total
/// power at that height (what slashing needs, without re-reading history).
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct DuplicateVoteEvidence {
    pub vote_a: SignedVote,
    pub vote_b: SignedVote,
    pub validator_power: u64,
    pub total_power: u64,
}

impl DuplicateVoteEvidence {
    /// Builds evidence with the votes in canonical order (lower block id first, nil lowest),
    /// so that the same equivocation always yields the same bytes and hash.
    pub fn new(a: SignedVote, b: SignedVote, validator_power: u64, total_power: u64) -> Self {
        let (vote_a, vote_b) = if a.vote.block_id <= b.vote.block_id {
            (a, b)
        } else {
            (b, a)
        };
        DuplicateVoteEvidence {
            vote_a,
            vote_b,
            validator_power,
            total_power,
        }
    }

    /// Checks everything that can be checked without knowing the validator set: same
    /// validator and position, different blocks, canonical order, both signatures, and that
    /// `public_key` is the accused validator's. Whether the validator was in the set at that
    /// height with that power, and whether the evidence is too old, is for the caller.
    pub fn verify(&self, chain_id: &str, public_key: &PublicKey) -> Result<(), EvidenceError> {
        let (a, b) = (&self.vote_a.vote, &self.vote_b.vote);
        if a.validator != b.validator {
            return Err(EvidenceError::DifferentValidators);
        }
        if (a.height, a.round, a.vote_type) != (b.height, b.round, b.vote_type) {
            return Err(EvidenceError::DifferentPositions);
        }
        if a.block_id == b.block_id {
            return Err(EvidenceError::SameBlock);
        }
        if a.block_id > b.block_id {
            return Err(EvidenceError::NotCanonical);
        }
        if public_key.address() != a.validator {
            return Err(EvidenceError::WrongKey);
        }
        if self.validator_power == 0 || self.validator_power > self.total_power {
            return Err(EvidenceError::BadPower {
                power: self.validator_power,
                total: self.total_power,
            });
        }
        self.vote_a
            .verify(chain_id, public_key)
            .map_err(EvidenceError::BadSignature)?;
        self.vote_b
            .verify(chain_id, public_key)
            .map_err(EvidenceError::BadSignature)?;
        Ok(())
    }
}

/// All kinds of evidence a block may carry.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub enum Evidence {
    DuplicateVote(DuplicateVoteEvidence),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockId;
    use crate::crypto::PrivateKey;
    use crate::hash::Hash;
    use crate::height::{Height, Round};
    use crate::vote::{Vote, VoteType};

    const CHAIN: &str = "evidence-test";

    fn vote(key: &PrivateKey, block: Option<&[u8]>) -> SignedVote {
        Vote {
            vote_type: VoteType::Prevote,
            height: Height(3),
            round: Round(0),
            block_id: block.map(|b| BlockId(Hash::digest(b), Default::default())),
            validator: key.public_key().address(),
        }
        .sign(CHAIN, crate::Timestamp::default(), key)
    }

    #[test]
    fn valid_evidence_verifies_and_is_canonical_whatever_the_order() {
        let key = PrivateKey::from_seed([1; 32]);
        let (x, y) = (vote(&key, Some(b"x")), vote(&key, None));
        let e1 = DuplicateVoteEvidence::new(x.clone(), y.clone(), 10, 40);
        let e2 = DuplicateVoteEvidence::new(y, x, 10, 40);
        assert_eq!(e1, e2);
        assert_eq!(e1.verify(CHAIN, &key.public_key()), Ok(()));
        assert_eq!(e1.vote_a.vote.block_id, None, "nil sorts first");
    }

    #[test]
    fn forged_or_meaningless_evidence_is_refused() {
        let key = PrivateKey::from_seed([1; 32]);
        let other = PrivateKey::from_seed([2; 32]);
        let a = vote(&key, Some(b"a"));
        let b = vote(&key, Some(b"b"));

        let same = DuplicateVoteEvidence::new(a.clone(), a.clone(), 10, 40);
        assert_eq!(
            same.verify(CHAIN, &key.public_key()),
            Err(EvidenceError::SameBlock)
        );

        let two_validators =
            DuplicateVoteEvidence::new(a.clone(), vote(&other, Some(b"b")), 10, 40);
        assert_eq!(
            two_validators.verify(CHAIN, &key.public_key()),
            Err(EvidenceError::DifferentValidators)
        );

        let mut later = b.clone();
        later.vote.round = Round(1);
        let later = later.vote.sign(CHAIN, crate::Timestamp::default(), &key);
        assert_eq!(
            DuplicateVoteEvidence::new(a.clone(), later, 10, 40).verify(CHAIN, &key.public_key()),
            Err(EvidenceError::DifferentPositions)
        );

        let ok = DuplicateVoteEvidence::new(a.clone(), b.clone(), 10, 40);
        assert_eq!(
            ok.verify(CHAIN, &other.public_key()),
            Err(EvidenceError::WrongKey)
        );
        assert!(matches!(
            ok.verify("another-chain", &key.public_key()),
            Err(EvidenceError::BadSignature(_))
        ));

        let mut tampered = ok.clone();
        tampered.vote_b.signature = other.sign(b"junk");
        assert!(matches!(
            tampered.verify(CHAIN, &key.public_key()),
            Err(EvidenceError::BadSignature(_))
        ));

        let mut swapped = ok.clone();
        std::mem::swap(&mut swapped.vote_a, &mut swapped.vote_b);
        assert_eq!(
            swapped.verify(CHAIN, &key.public_key()),
            Err(EvidenceError::NotCanonical)
        );

        let zero = DuplicateVoteEvidence::new(a, b, 0, 40);
        assert!(matches!(
            zero.verify(CHAIN, &key.public_key()),
            Err(EvidenceError::BadPower { .. })
        ));
    }
}
