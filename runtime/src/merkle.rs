//! The state commitment behind the app hash: an incremental Merkle tree kept on disk.
//!
//! Keys hash into 2^16 buckets (by the first two bytes of SHA-256(key)); a bucket's hash
//! covers its sorted (key hash, value hash) pairs; a 16-ary tree over the buckets (four
//! levels: 4096, 256, 16, 1) gives the root. A write marks its bucket dirty, and
//! [`MerkleStore::commit`] reads only the dirty buckets, rehashes them and their paths, and
//! returns the buckets and inner nodes it changed for the node to store, so a block costs
//! work in proportion to what it changed, not to the state's size. The tree is 16-ary rather
//! than binary because a 10,000-transaction block dirties most of the upper levels anyway:
//! four levels of wide nodes hash a third of the bytes of sixteen levels of narrow ones
//! (measured in the `execution` benchmark). Only the bucket hashes and the levels above them
//! stay in memory (2.2 MB whatever the state's size); bucket contents live in the store.
//!
//! A bucket's entries plus the 4 × 16 child hashes of its ancestors prove one key's value,
//! or its absence, against the root ([`StateProof`]). Empty subtrees hash to zero.

use crate::state::{keys, StateError, StateStore};
use basalt_types::Hash;
use borsh::{BorshDeserialize, BorshSerialize};

const BUCKET_BITS: u32 = 16;
const BUCKETS: usize = 1 << BUCKET_BITS;
const ARITY: usize = 16;
/// Levels of inner nodes above the buckets.
const INNER_LEVELS: usize = 4;

/// One key's commitment: (SHA-256 of the key, SHA-256 of 0x00 ‖ value).
pub type Entry = (Hash, Hash);

#[derive(Clone)]
pub struct MerkleStore {
    /// `levels[0]` holds the bucket hashes, each next level 16 times fewer, the last the root.
    levels: Vec<Vec<Hash>>,
    /// Writes since the last `commit()`, in order: `None` deletes. Applying them in bucket
    /// order walks the store sequentially instead of jumping around per write.
    pending: Vec<(Hash, Option<Hash>)>,
}

/// What one [`MerkleStore::commit`] changed: the new root, the dirty buckets' entries and
/// the inner nodes on their paths (level, index, 16 children).
#[derive(Debug, Default)]
pub struct MerkleUpdate {
    pub root: Hash,
    pub buckets: Vec<(usize, Vec<Entry>)>,
    pub nodes: Vec<(usize, usize, Vec<Hash>)>,
}

impl Default for MerkleStore {
    fn default() -> Self {
        let mut levels = Vec::new();
        let mut width = BUCKETS;
        loop {
            levels.push(vec![Hash::default(); width]);
            if width == 1 {
                break;
            }
            width /= ARITY;
        }
        MerkleStore {
            levels,
            pending: Vec::new(),
        }
    }
}

impl std::fmt::Debug for MerkleStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MerkleStore(root {})", self.root())
    }
}

fn bucket_of(key_hash: &Hash) -> usize {
    ((key_hash.0[0] as usize) << 8) | key_hash.0[1] as usize
}

fn node_hash(children: &[Hash]) -> Hash {
    if children.iter().all(|c| *c == Hash::default()) {
        return Hash::default();
    }
    let mut buf = [0u8; 1 + 32 * ARITY];
    buf[0] = 2;
    for (i, c) in children.iter().enumerate() {
        buf[1 + 32 * i..33 + 32 * i].copy_from_slice(&c.0);
    }
    Hash::digest(&buf)
}

fn bucket_hash(entries: &[Entry], buf: &mut Vec<u8>) -> Hash {
    if entries.is_empty() {
        return Hash::default();
    }
    buf.clear();
    buf.push(1);
    for (k, v) in entries {
        buf.extend_from_slice(&k.0);
        buf.extend_from_slice(&v.0);
    }
    Hash::digest(buf)
}

fn value_hash(value: &[u8]) -> Hash {
    Hash::digest_parts(&[&[0], value])
}

/// The stored form of an inner node: its 16 children, 32 bytes each.
pub(crate) fn encode_node(children: &[Hash]) -> Vec<u8> {
    children.iter().flat_map(|h| h.0).collect()
}

pub(crate) fn decode_node(bytes: &[u8]) -> Result<Vec<Hash>, StateError> {
    if bytes.len() != 32 * ARITY {
        return Err(StateError(format!(
            "a Merkle node of {} bytes (expected {})",
            bytes.len(),
            32 * ARITY
        )));
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            Hash(h)
        })
        .collect())
}

pub(crate) fn decode_bucket(bytes: &[u8]) -> Result<Vec<Entry>, StateError> {
    borsh::from_slice(bytes).map_err(|e| StateError(format!("a corrupt Merkle bucket: {e}")))
}

impl MerkleStore {
    /// Sets `key` to `value` (by hash: the tree keeps commitments, the store the data).
    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        self.pending
            .push((Hash::digest(key), Some(value_hash(value))));
    }

    pub fn delete(&mut self, key: &[u8]) {
        self.pending.push((Hash::digest(key), None));
    }

    /// The root as of the last `commit()`.
    pub fn root(&self) -> Hash {
        self.levels[self.levels.len() - 1][0]
    }

    /// The tree as stored: every inner node read through `node(level, index)` (absent ones
    /// are empty). 4,369 reads, whatever the state's size.
    pub fn load(
        mut node: impl FnMut(usize, usize) -> Result<Option<Vec<Hash>>, StateError>,
    ) -> Result<MerkleStore, StateError> {
        let mut tree = MerkleStore::default();
        for level in 1..tree.levels.len() {
            for index in 0..tree.levels[level].len() {
                if let Some(children) = node(level, index)? {
                    tree.levels[level - 1][index * ARITY..(index + 1) * ARITY]
                        .copy_from_slice(&children);
                    tree.levels[level][index] = node_hash(&children);
                }
            }
        }
        Ok(tree)
    }

    /// Applies the writes since the last call: reads each dirty bucket through `bucket`,
    /// rehashes it and its path, and returns what changed with the new root.
    pub fn commit(
        &mut self,
        mut bucket: impl FnMut(usize) -> Result<Vec<Entry>, StateError>,
    ) -> Result<MerkleUpdate, StateError> {
        let mut pending = std::mem::take(&mut self.pending);
        // The bucket index is the key hash's first two bytes, so key-hash order is bucket
        // order. Stable: of several writes to one key, the last one wins below.
        pending.sort_by_key(|e| e.0);
        let mut update = MerkleUpdate::default();
        let mut current: Option<(usize, Vec<Entry>, bool)> = None;
        let mut finished: Vec<(usize, Vec<Entry>)> = Vec::new();
        for (i, (kh, value)) in pending.iter().enumerate() {
            if pending.get(i + 1).is_some_and(|next| next.0 == *kh) {
                continue;
            }
            let b = bucket_of(kh);
            if current.as_ref().map(|c| c.0) != Some(b) {
                if let Some((cb, entries, true)) = current.take() {
                    finished.push((cb, entries));
                }
                current = Some((b, bucket(b)?, false));
            }
            let (_, entries, changed) = current.as_mut().expect("set above");
            match (entries.binary_search_by(|e| e.0.cmp(kh)), value) {
                (Ok(at), Some(v)) if entries[at].1 == *v => continue,
                (Ok(at), Some(v)) => entries[at].1 = *v,
                (Err(at), Some(v)) => entries.insert(at, (*kh, *v)),
                (Ok(at), None) => {
                    entries.remove(at);
                }
                (Err(_), None) => continue,
            }
            *changed = true;
        }
        if let Some((cb, entries, true)) = current.take() {
            finished.push((cb, entries));
        }
        let mut buf = Vec::new();
        let mut indices = Vec::with_capacity(finished.len());
        for (b, entries) in &finished {
            self.levels[0][*b] = bucket_hash(entries, &mut buf);
            indices.push(*b);
        }
        update.buckets = finished;
        for level in 1..self.levels.len() {
            indices = indices.iter().map(|i| i / ARITY).collect();
            indices.dedup();
            let (below, here) = self.levels.split_at_mut(level);
            let children = &below[level - 1];
            for p in &indices {
                let kids = &children[p * ARITY..(p + 1) * ARITY];
                here[0][*p] = node_hash(kids);
                update.nodes.push((level, *p, kids.to_vec()));
            }
        }
        update.root = self.root();
        Ok(update)
    }
}

/// Proof of one key's value (or absence) against a root: the key's bucket and the 16
/// children of each of its four ancestors, bottom-up.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct StateProof {
    pub bucket: Vec<Entry>,
    pub path: Vec<Vec<Hash>>,
}

/// Why a [`StateProof`] does not prove what it was asked to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the proof's shape is wrong: {0}")]
    Shape(&'static str),
    #[error("the key is not in the proven bucket, but a value was claimed")]
    Missing,
    #[error("the key is in the proven bucket, but its absence was claimed")]
    Present,
    #[error("the proven value differs from the claimed one")]
    Value,
    #[error("the proof does not lead to root {0}")]
    Root(Hash),
}

impl StateProof {
    /// Reads the proof of `key` from the state as of one version.
    pub fn build(store: &dyn StateStore, key: &[u8]) -> Result<StateProof, StateError> {
        let mut index = bucket_of(&Hash::digest(key));
        let bucket = match store.get(&keys::bucket(index))? {
            Some(b) => decode_bucket(&b)?,
            None => Vec::new(),
        };
        let mut path = Vec::with_capacity(INNER_LEVELS);
        for level in 1..=INNER_LEVELS {
            index /= ARITY;
            path.push(match store.get(&keys::node(level, index))? {
                Some(n) => decode_node(&n)?,
                None => vec![Hash::default(); ARITY],
            });
        }
        Ok(StateProof { bucket, path })
    }

    /// Checks that under `root`, `key` holds `value` (`None`: that it is absent).
    pub fn verify(&self, root: &Hash, key: &[u8], value: Option<&[u8]>) -> Result<(), ProofError> {
        let kh = Hash::digest(key);
        let mut index = bucket_of(&kh);
        if self.path.len() != INNER_LEVELS || self.path.iter().any(|n| n.len() != ARITY) {
            return Err(ProofError::Shape("four levels of sixteen children"));
        }
        if self.bucket.iter().any(|(k, _)| bucket_of(k) != index)
            || self.bucket.windows(2).any(|w| w[0].0 >= w[1].0)
        {
            return Err(ProofError::Shape(
                "a sorted bucket of the key's own entries",
            ));
        }
        let found = self.bucket.iter().find(|(k, _)| *k == kh).map(|e| e.1);
        match (found, value) {
            (None, Some(_)) => return Err(ProofError::Missing),
            (Some(_), None) => return Err(ProofError::Present),
            (Some(h), Some(v)) if h != value_hash(v) => return Err(ProofError::Value),
            _ => {}
        }
        let mut hash = bucket_hash(&self.bucket, &mut Vec::new());
        for children in &self.path {
            if children[index % ARITY] != hash {
                return Err(ProofError::Root(*root));
            }
            hash = node_hash(children);
            index /= ARITY;
        }
        if hash != *root {
            return Err(ProofError::Root(*root));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A tree with its buckets and nodes kept in maps, as the node keeps them in sled.
    #[derive(Default, Clone)]
    struct Stored {
        tree: MerkleStore,
        buckets: HashMap<usize, Vec<Entry>>,
        nodes: HashMap<(usize, usize), Vec<Hash>>,
    }

    impl Stored {
        fn commit(&mut self) -> Hash {
            let buckets = &self.buckets;
            let update = self
                .tree
                .commit(|b| Ok(buckets.get(&b).cloned().unwrap_or_default()))
                .unwrap();
            for (b, e) in update.buckets {
                self.buckets.insert(b, e);
            }
            for (l, i, c) in update.nodes {
                self.nodes.insert((l, i), c);
            }
            update.root
        }
    }

    impl StateStore for Stored {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
            Ok(match key {
                [0xff, b'b', hi, lo] => {
                    let b = (usize::from(*hi) << 8) | usize::from(*lo);
                    self.buckets.get(&b).map(|e| borsh::to_vec(e).unwrap())
                }
                [0xff, b'n', l, hi, lo] => {
                    let i = (usize::from(*hi) << 8) | usize::from(*lo);
                    self.nodes
                        .get(&(usize::from(*l), i))
                        .map(|c| encode_node(c))
                }
                _ => None,
            })
        }
    }

    /// The root recomputed from scratch, for comparison with the incremental one.
    fn full_root(s: &Stored) -> Hash {
        let mut fresh = Stored::default();
        for entries in s.buckets.values() {
            fresh
                .tree
                .pending
                .extend(entries.iter().map(|(k, v)| (*k, Some(*v))));
        }
        fresh.commit()
    }

    #[test]
    fn incremental_root_equals_full_recomputation() {
        let mut s = Stored::default();
        assert_eq!(s.commit(), Hash::default());
        for i in 0..500u32 {
            s.tree.put(&i.to_le_bytes(), &(i * 7).to_le_bytes());
        }
        let r1 = s.commit();
        assert_eq!(r1, full_root(&s));
        s.tree.put(&3u32.to_le_bytes(), b"changed");
        let r2 = s.commit();
        assert_ne!(r1, r2);
        assert_eq!(r2, full_root(&s));
        s.tree.delete(&3u32.to_le_bytes());
        s.tree.delete(&9999u32.to_le_bytes());
        assert_eq!(s.commit(), full_root(&s));
        assert_eq!(s.buckets.values().map(Vec::len).sum::<usize>(), 499);
        // Several writes to one key before a commit: the last one counts.
        s.tree.put(&7u32.to_le_bytes(), b"first");
        s.tree.put(&7u32.to_le_bytes(), b"second");
        let r = s.commit();
        let mut t = s.clone();
        t.tree.put(&7u32.to_le_bytes(), b"second");
        assert_eq!(t.commit(), r);
        s.tree.put(&8u32.to_le_bytes(), b"x");
        s.tree.delete(&8u32.to_le_bytes());
        assert_eq!(s.commit(), full_root(&s));
        // A tree loaded from its stored nodes has the same root and goes on the same way.
        let mut loaded = Stored {
            tree: MerkleStore::load(|l, i| Ok(s.nodes.get(&(l, i)).cloned())).unwrap(),
            ..s.clone()
        };
        assert_eq!(loaded.tree.root(), s.tree.root());
        loaded.tree.put(b"new", b"1");
        s.tree.put(b"new", b"1");
        assert_eq!(loaded.commit(), s.commit());
    }

    #[test]
    fn an_unchanged_write_rewrites_nothing() {
        let mut s = Stored::default();
        s.tree.put(b"k", b"v");
        s.commit();
        s.tree.put(b"k", b"v");
        let buckets = s.buckets.clone();
        let update = s
            .tree
            .commit(|b| Ok(buckets.get(&b).cloned().unwrap_or_default()))
            .unwrap();
        assert!(update.buckets.is_empty() && update.nodes.is_empty());
    }

    #[test]
    fn root_depends_on_content_not_on_write_order() {
        let mut a = Stored::default();
        let mut b = Stored::default();
        for i in 0..100u32 {
            a.tree.put(&i.to_le_bytes(), b"v");
            b.tree.put(&(99 - i).to_le_bytes(), b"v");
        }
        assert_eq!(a.commit(), b.commit());
        b.tree.put(&5u32.to_le_bytes(), b"w");
        assert_ne!(a.commit(), b.commit());
    }

    #[test]
    fn proofs_of_present_and_absent_keys_verify_and_tampered_ones_fail() {
        let mut s = Stored::default();
        for i in 0..3000u32 {
            s.tree.put(&i.to_le_bytes(), &[i as u8; 9]);
        }
        let root = s.commit();
        let key = 42u32.to_le_bytes();
        let proof = StateProof::build(&s, &key).unwrap();
        proof.verify(&root, &key, Some(&[42u8; 9])).unwrap();
        assert_eq!(
            proof.verify(&root, &key, Some(&[43u8; 9])),
            Err(ProofError::Value)
        );
        assert_eq!(proof.verify(&root, &key, None), Err(ProofError::Present));
        // Absence, and a present key's proof reused for an absent claim.
        let absent = b"no such key";
        let none = StateProof::build(&s, absent).unwrap();
        none.verify(&root, absent, None).unwrap();
        assert_eq!(
            none.verify(&root, absent, Some(b"x")),
            Err(ProofError::Missing)
        );
        // Against another root (another height's state).
        s.tree.put(&key, b"later");
        let later = s.commit();
        assert_eq!(
            proof.verify(&later, &key, Some(&[42u8; 9])),
            Err(ProofError::Root(later))
        );
        StateProof::build(&s, &key)
            .unwrap()
            .verify(&later, &key, Some(b"later"))
            .unwrap();
        // Tampering: an entry slipped into the bucket, a sibling hash changed, a level
        // removed.
        let mut t = proof.clone();
        let mut fake = Hash::digest(&key);
        fake.0[31] ^= 1;
        t.bucket.push((fake, Hash::digest(b"forged")));
        t.bucket.sort();
        assert_eq!(
            t.verify(&root, &key, Some(&[42u8; 9])),
            Err(ProofError::Root(root))
        );
        let mut t = proof.clone();
        t.path[2][(bucket_of(&Hash::digest(&key)) / 256 + 1) % 16].0[0] ^= 1;
        assert_eq!(
            t.verify(&root, &key, Some(&[42u8; 9])),
            Err(ProofError::Root(root))
        );
        let mut t = proof.clone();
        t.path.pop();
        assert!(matches!(
            t.verify(&root, &key, Some(&[42u8; 9])),
            Err(ProofError::Shape(_))
        ));
        // An absence "proven" by hiding the key's entry from its bucket.
        let mut t = proof;
        t.bucket.retain(|(k, _)| *k != Hash::digest(&key));
        assert_eq!(t.verify(&root, &key, None), Err(ProofError::Root(root)));
    }
}
