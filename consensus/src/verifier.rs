//! How the engine checks signatures. The default verifies each one directly; a node can
//! plug in a verifier that remembers results (a signature checked at the gossip layer need
//! not be checked again) or batches them, and the simulator shares one memo among all its
//! simulated nodes so that a signature is verified once per run instead of once per node.

use basalt_types::{PublicKey, Signature};
use std::fmt::Debug;

pub trait SignatureVerifier: Debug + Send + Sync {
    /// Whether `signature` is `public_key`'s valid signature of `message`.
    fn verify(&self, public_key: &PublicKey, message: &[u8], signature: &Signature) -> bool;
}

/// Verifies every signature with strict ed25519 verification.
#[derive(Debug, Default, Clone, Copy)]
pub struct DirectVerifier;

impl SignatureVerifier for DirectVerifier {
    fn verify(&self, public_key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
        public_key.verify(message, signature).is_ok()
    }
}
