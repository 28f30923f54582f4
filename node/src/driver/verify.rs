//! A signature memo in front of ed25519: the driver checks a consensus message's signature
//! once on gossip, and the engine's check of the same (key, message, signature) is then a
//! lookup. Bounded: when full it starts over, which costs at most one more verification of
//! what it forgot. The simulator shares one memo between all its nodes (the same messages
//! reach every node), so that a 100-validator run does not verify each signature 100 times;
//! every signature is still checked, and forgeries are still refused.

use basalt_consensus::{DirectVerifier, SignatureVerifier};
use basalt_types::{Hash, PublicKey, Signature};
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug)]
pub struct MemoVerifier {
    seen: Mutex<HashMap<Hash, bool>>,
    capacity: usize,
}

impl MemoVerifier {
    pub fn new(capacity: usize) -> Self {
        MemoVerifier {
            seen: Mutex::new(HashMap::new()),
            capacity,
        }
    }
}

impl Default for MemoVerifier {
    /// Room for the votes of a few heights of a large validator set.
    fn default() -> Self {
        MemoVerifier::new(100_000)
    }
}

impl SignatureVerifier for MemoVerifier {
    fn verify(&self, public_key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
        let mut key_bytes = Vec::with_capacity(96 + message.len());
        key_bytes.extend_from_slice(&public_key.to_bytes());
        key_bytes.extend_from_slice(&signature.0);
        key_bytes.extend_from_slice(message);
        let key = Hash::digest(&key_bytes);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = seen.get(&key) {
            return *known;
        }
        let ok = DirectVerifier.verify(public_key, message, signature);
        if seen.len() >= self.capacity {
            seen.clear();
        }
        seen.insert(key, ok);
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_types::PrivateKey;

    #[test]
    fn the_memo_gives_the_same_answers_as_direct_verification_and_stays_bounded() {
        let memo = MemoVerifier::new(2);
        let key = PrivateKey::from_seed([3; 32]);
        let sig = key.sign(b"m");
        for _ in 0..2 {
            assert!(memo.verify(&key.public_key(), b"m", &sig));
            assert!(!memo.verify(&key.public_key(), b"n", &sig));
            assert!(!memo.verify(&PrivateKey::from_seed([4; 32]).public_key(), b"m", &sig));
        }
        assert!(memo.seen.lock().unwrap().len() <= 2);
    }
}
