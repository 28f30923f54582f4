//! ed25519 keys and signatures, 20-byte addresses and batch verification.

use crate::hash::Hash;
use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Why a key or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("public key bytes are not a valid ed25519 point")]
    InvalidPublicKey,
    #[error("signature does not verify")]
    InvalidSignature,
    #[error("signature {index} of the batch does not verify")]
    BatchItemInvalid { index: usize },
}

/// An ed25519 public key, kept decompressed so that verification does not redo that work.
/// Decoding (borsh or JSON) rejects bytes that are not a valid curve point.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, CryptoError> {
        VerifyingKey::from_bytes(bytes)
            .map(PublicKey)
            .map_err(|_| CryptoError::InvalidPublicKey)
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The account / validator address: the first 20 bytes of SHA-256 of the key.
    pub fn address(&self) -> Address {
        Address::of_key_bytes(self.0.as_bytes())
    }

    /// Strict verification (rejects small-order keys and non-canonical signatures), so that
    /// one message has exactly one valid signature per key: equivocation detection relies on it.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), CryptoError> {
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.0
            .verify_strict(message, &sig)
            .map_err(|_| CryptoError::InvalidSignature)
    }
}

impl std::hash::Hash for PublicKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.as_bytes().hash(state)
    }
}

impl PartialOrd for PublicKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for PublicKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.as_bytes().cmp(other.0.as_bytes())
    }
}

impl BorshSerialize for PublicKey {
    fn serialize<W: std::io::Write>(&self, writer: &mut W) -> std::io::Result<()> {
        writer.write_all(self.0.as_bytes())
    }
}

impl BorshDeserialize for PublicKey {
    fn deserialize_reader<R: std::io::Read>(reader: &mut R) -> std::io::Result<Self> {
        let bytes = <[u8; 32]>::deserialize_reader(reader)?;
        PublicKey::from_bytes(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex::encode_upper(self.0.as_bytes()))
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::hex_serde::serialize(self.0.as_bytes(), s)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = crate::hex_serde::deserialize::<D, 32>(d)?;
        PublicKey::from_bytes(&bytes).map_err(serde::de::Error::custom)
    }
}

/// A 64-byte ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sig({}…)", hex::encode_upper(&self.0[..6]))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::hex_serde::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::hex_serde::deserialize::<D, 64>(d).map(Signature)
    }
}

/// An ed25519 signing key. Deliberately neither `Debug`-printable nor serialisable: keys
/// are written to disk by the node's key store only.
#[derive(Clone)]
pub struct PrivateKey(SigningKey);

impl PrivateKey {
    /// Derives the key from 32 secret bytes. The caller supplies the randomness, which
    /// keeps this crate deterministic (the node draws from the OS, the simulator from its seed).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        PrivateKey(SigningKey::from_bytes(&seed))
    }

    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PrivateKey(<secret for {:?}>)",
            self.public_key().address()
        )
    }
}

/// A 20-byte account or validator address.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, BorshSerialize, BorshDeserialize,
)]
pub struct Address(pub [u8; 20]);

impl Address {
    /// The address of a public key given as its 32 encoded bytes (no point decompression:
    /// cheap enough for every transaction).
    pub fn of_key_bytes(key: &[u8; 32]) -> Address {
        let digest = Hash::digest(key);
        let mut out = [0u8; 20];
        out.copy_from_slice(&digest.0[..20]);
        Address(out)
    }

    pub fn to_hex(&self) -> String {
        hex::encode_upper(self.0)
    }

    /// Parses 40 hex digits (either case).
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let bytes = hex::decode(text).map_err(|e| format!("address is not hex: {e}"))?;
        let arr: [u8; 20] = bytes
            .try_into()
            .map_err(|v: Vec<u8>| format!("address must be 20 bytes, got {}", v.len()))?;
        Ok(Address(arr))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &self.to_hex()[..8])
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::hex_serde::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::hex_serde::deserialize::<D, 20>(d).map(Address)
    }
}

/// One entry of a batch: the signed message, its signature and the signer's key.
pub struct BatchItem<'a> {
    pub message: &'a [u8],
    pub signature: &'a Signature,
    pub public_key: &'a PublicKey,
}

/// Verifies many signatures at once (roughly twice as fast as one by one). The batch
/// equation can only say "some item is bad"; in that case every item is checked alone so
/// that the error names the first bad one. The random scalars come from a transcript of
/// the inputs (ed25519-dalek's design), so the result is deterministic.
pub fn verify_batch(items: &[BatchItem<'_>]) -> Result<(), CryptoError> {
    if items.is_empty() {
        return Ok(());
    }
    let messages: Vec<&[u8]> = items.iter().map(|i| i.message).collect();
    let signatures: Vec<ed25519_dalek::Signature> = items
        .iter()
        .map(|i| ed25519_dalek::Signature::from_bytes(&i.signature.0))
        .collect();
    let keys: Vec<VerifyingKey> = items.iter().map(|i| i.public_key.0).collect();
    if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
        return Ok(());
    }
    for (index, item) in items.iter().enumerate() {
        if item
            .public_key
            .verify(item.message, item.signature)
            .is_err()
        {
            return Err(CryptoError::BatchItemInvalid { index });
        }
    }
    // The batch equation failed while every item verifies alone: only possible for
    // adversarial non-canonical inputs, which strict verification above would refuse.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> PrivateKey {
        PrivateKey::from_seed([n; 32])
    }

    #[test]
    fn sign_and_verify_round_trip() {
        let k = key(1);
        let sig = k.sign(b"hello");
        assert!(k.public_key().verify(b"hello", &sig).is_ok());
        assert_eq!(
            k.public_key().verify(b"hellO", &sig),
            Err(CryptoError::InvalidSignature)
        );
        assert_eq!(
            key(2).public_key().verify(b"hello", &sig),
            Err(CryptoError::InvalidSignature)
        );
    }

    #[test]
    fn address_is_first_20_bytes_of_sha256_of_key() {
        let pk = key(3).public_key();
        let digest = Hash::digest(&pk.to_bytes());
        assert_eq!(&pk.address().0[..], &digest.0[..20]);
        assert_eq!(
            Address::from_hex(&pk.address().to_hex()).unwrap(),
            pk.address()
        );
        assert!(Address::from_hex("00").is_err());
    }

    #[test]
    fn invalid_public_key_bytes_are_refused_on_decode() {
        // y = 2 is not on the curve (no x satisfies the equation).
        let mut bad = [0u8; 32];
        bad[0] = 2;
        assert_eq!(
            PublicKey::from_bytes(&bad),
            Err(CryptoError::InvalidPublicKey)
        );
        assert!(borsh::from_slice::<PublicKey>(&bad).is_err());
        let good = key(4).public_key();
        let bytes = borsh::to_vec(&good).unwrap();
        assert_eq!(borsh::from_slice::<PublicKey>(&bytes).unwrap(), good);
    }

    #[test]
    fn batch_verification_names_the_bad_item() {
        let keys: Vec<PrivateKey> = (0..8).map(key).collect();
        let msgs: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 10]).collect();
        let mut sigs: Vec<Signature> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
        let pks: Vec<PublicKey> = keys.iter().map(|k| k.public_key()).collect();
        let items = |sigs: &[Signature]| -> Result<(), CryptoError> {
            let items: Vec<BatchItem> = (0..8)
                .map(|i| BatchItem {
                    message: &msgs[i],
                    signature: &sigs[i],
                    public_key: &pks[i],
                })
                .collect();
            verify_batch(&items)
        };
        assert_eq!(items(&sigs), Ok(()));
        sigs[5] = keys[5].sign(b"something else");
        assert_eq!(
            items(&sigs),
            Err(CryptoError::BatchItemInvalid { index: 5 })
        );
        assert_eq!(verify_batch(&[]), Ok(()));
    }
}
