//! Canonical sign bytes: `borsh((domain, chain_id, message))`.
//!
//! The domain byte keeps a vote from ever verifying as a proposal (or a transaction) and the
//! chain id keeps a signature from one chain from verifying on another.

use borsh::BorshSerialize;

/// What kind of message the bytes stand for. The discriminants are part of the wire
/// format: never renumber them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SignDomain {
    /// Votes and proposals are signed over CometBFT's canonical bytes ([`crate::canonical`])
    /// since data format 6; their numbers stay taken so that no old signature can be replayed
    /// as something else.
    Vote = 1,
    Proposal = 2,
    Transaction = 3,
}

/// The exact bytes a validator or account signs for `message` on chain `chain_id`.
pub fn sign_bytes<T: BorshSerialize>(domain: SignDomain, chain_id: &str, message: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(96 + chain_id.len());
    (domain as u8, chain_id, message)
        .serialize(&mut out)
        .expect("borsh into a Vec is infallible");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_id_and_domain_change_the_bytes() {
        let msg = 42u64;
        let a = sign_bytes(SignDomain::Vote, "chain-a", &msg);
        assert_ne!(a, sign_bytes(SignDomain::Vote, "chain-b", &msg));
        assert_ne!(a, sign_bytes(SignDomain::Proposal, "chain-a", &msg));
        // Layout: domain byte, u32 length, chain id, message.
        assert_eq!(a[0], 1);
        assert_eq!(&a[1..5], &7u32.to_le_bytes());
        assert_eq!(&a[5..12], b"chain-a");
        assert_eq!(&a[12..], &42u64.to_le_bytes());
    }
}
