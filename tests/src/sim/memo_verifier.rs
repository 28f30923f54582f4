//! One signature memo shared by every simulated node of a run: each distinct
//! (key, message, signature) is really verified once, then remembered. Without it, 100
//! simulated validators would spend 99% of the run re-verifying the same signatures; with it
//! every signature is still checked, and forgeries are still refused.

use basalt_consensus::{DirectVerifier, SignatureVerifier};
use basalt_types::{Hash, PublicKey, Signature};
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct MemoVerifier {
    seen: Mutex<HashMap<Hash, bool>>,
}

impl SignatureVerifier for MemoVerifier {
    fn verify(&self, public_key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
        let mut key_bytes = Vec::with_capacity(96 + message.len());
        key_bytes.extend_from_slice(&public_key.to_bytes());
        key_bytes.extend_from_slice(&signature.0);
        key_bytes.extend_from_slice(message);
        let key = Hash::digest(&key_bytes);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        *seen
            .entry(key)
            .or_insert_with(|| DirectVerifier.verify(public_key, message, signature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_types::PrivateKey;

    #[test]
    fn memo_gives_the_same_answers_as_direct_verification() {
        let memo = MemoVerifier::default();
        let key = PrivateKey::from_seed([3; 32]);
        let sig = key.sign(b"m");
        for _ in 0..2 {
            assert!(memo.verify(&key.public_key(), b"m", &sig));
            assert!(!memo.verify(&key.public_key(), b"n", &sig));
            assert!(!memo.verify(&PrivateKey::from_seed([4; 32]).public_key(), b"m", &sig));
        }
    }
}
