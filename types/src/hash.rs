//! SHA-256 hashes and the binary Merkle root used for block data and evidence.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::fmt;

/// A SHA-256 digest.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, BorshSerialize, BorshDeserialize,
)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// SHA-256 of raw bytes.
    pub fn digest(data: &[u8]) -> Self {
        Hash(Sha256::digest(data).into())
    }

    /// SHA-256 of the borsh encoding of `value`.
    pub fn of<T: BorshSerialize + ?Sized>(value: &T) -> Self {
        let mut hasher = HashWriter(Sha256::new());
        // Writing into a hasher cannot fail.
        value
            .serialize(&mut hasher)
            .expect("borsh into a hasher is infallible");
        Hash(hasher.0.finalize().into())
    }

    /// SHA-256 of the concatenation of `parts`, without building it in memory.
    pub fn digest_parts(parts: &[&[u8]]) -> Self {
        let mut hasher = Sha256::new();
        for p in parts {
            hasher.update(p);
        }
        Hash(hasher.finalize().into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Upper-case hex, as CometBFT shows hashes.
    pub fn to_hex(&self) -> String {
        hex::encode_upper(self.0)
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let bytes = hex::decode(text).map_err(|e| format!("hash is not hex: {e}"))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|v: Vec<u8>| format!("a hash must be 32 bytes, got {}", v.len()))?;
        Ok(Hash(arr))
    }
}

/// Streams borsh output straight into SHA-256 instead of buffering it.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl AsRef<[u8]> for Hash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Six bytes are enough to tell hashes apart in logs and test failures.
        write!(f, "{}…", &self.to_hex()[..12])
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::hex_serde::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::hex_serde::deserialize::<D, 32>(d).map(Hash)
    }
}

/// RFC 6962-style Merkle root (CometBFT's `merkle.HashFromByteSlices`): leaves hashed with
/// a 0x00 prefix, inner nodes with 0x01, the split at the largest power of two below the
/// count. The empty list hashes to SHA-256 of nothing. Domain-separated prefixes stop a leaf
/// from posing as an inner node.
pub fn merkle_root<T: AsRef<[u8]>>(leaves: &[T]) -> Hash {
    match leaves.len() {
        0 => Hash::digest(&[]),
        1 => Hash::digest_parts(&[&[0], leaves[0].as_ref()]),
        n => {
            let split = n.next_power_of_two() / 2;
            let left = merkle_root(&leaves[..split]);
            let right = merkle_root(&leaves[split..]);
            Hash::digest_parts(&[&[1], &left.0, &right.0])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_abc_matches_the_standard_vector() {
        assert_eq!(
            Hash::digest(b"abc").to_hex(),
            "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
        );
    }

    #[test]
    fn digest_parts_equals_digest_of_the_concatenation() {
        assert_eq!(
            Hash::digest_parts(&[b"ab", b"", b"c"]),
            Hash::digest(b"abc")
        );
    }

    #[test]
    fn hash_of_borsh_equals_hash_of_encoded_bytes() {
        let value = (7u64, String::from("basalt"));
        assert_eq!(
            Hash::of(&value),
            Hash::digest(&borsh::to_vec(&value).unwrap())
        );
    }

    #[test]
    fn merkle_root_depends_on_order_and_content() {
        let a = Hash::digest(b"a");
        let b = Hash::digest(b"b");
        let c = Hash::digest(b"c");
        assert_ne!(merkle_root(&[a, b]), merkle_root(&[b, a]));
        assert_ne!(merkle_root(&[a, b, c]), merkle_root(&[a, b]));
        assert_ne!(merkle_root(&[a]), a, "a single leaf is still prefixed");
        assert_eq!(merkle_root(&[a, b, c]), merkle_root(&[a, b, c]));
    }

    #[test]
    fn hash_json_is_upper_hex() {
        let h = Hash::digest(b"abc");
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, format!("\"{}\"", h.to_hex()));
        assert_eq!(serde_json::from_str::<Hash>(&json).unwrap(), h);
        assert!(serde_json::from_str::<Hash>("\"ABCD\"").is_err());
    }
}
