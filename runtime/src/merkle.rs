//! The state commitment behind the app hash: an incremental Merkle tree.
//!
//! Keys hash into 2^16 buckets (by the first two bytes of SHA-256(key)); a bucket's hash
//! covers its sorted (key hash, value hash) pairs; a binary tree over the buckets gives the
//! root. A write marks its bucket dirty, and `root()` rehashes only dirty buckets and their
//! paths, so a block costs work in proportion to what it changed, not to the state's size.
//! A bucket's entries plus its 16 sibling hashes prove one key against the root (for light
//! clients later). Empty subtrees hash to zero so the empty tree costs nothing.

use basalt_types::Hash;
use std::collections::BTreeMap;

const BUCKET_BITS: u32 = 16;
const BUCKETS: usize = 1 << BUCKET_BITS;

#[derive(Clone)]
pub struct MerkleStore {
    buckets: Vec<BTreeMap<Hash, Hash>>,
    /// Heap-ordered tree: node 1 is the root, nodes BUCKETS.. are the buckets.
    nodes: Vec<Hash>,
    dirty: Vec<usize>,
}

impl Default for MerkleStore {
    fn default() -> Self {
        MerkleStore {
            buckets: vec![BTreeMap::new(); BUCKETS],
            nodes: vec![Hash::default(); 2 * BUCKETS],
            dirty: Vec::new(),
        }
    }
}

impl std::fmt::Debug for MerkleStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MerkleStore({} keys)", self.len())
    }
}

fn bucket_of(key_hash: &Hash) -> usize {
    ((key_hash.0[0] as usize) << 8) | key_hash.0[1] as usize
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    if *left == Hash::default() && *right == Hash::default() {
        return Hash::default();
    }
    let mut buf = [0u8; 65];
    buf[0] = 2;
    buf[1..33].copy_from_slice(&left.0);
    buf[33..].copy_from_slice(&right.0);
    Hash::digest(&buf)
}

fn bucket_hash(entries: &BTreeMap<Hash, Hash>) -> Hash {
    if entries.is_empty() {
        return Hash::default();
    }
    let mut buf = Vec::with_capacity(1 + 64 * entries.len());
    buf.push(1);
    for (k, v) in entries {
        buf.extend_from_slice(&k.0);
        buf.extend_from_slice(&v.0);
    }
    Hash::digest(&buf)
}

impl MerkleStore {
    /// Sets `key` to `value` (by hash: the store keeps commitments, not data).
    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        let kh = Hash::digest(key);
        let mut leaf = Vec::with_capacity(1 + value.len());
        leaf.push(0);
        leaf.extend_from_slice(value);
        let b = bucket_of(&kh);
        self.buckets[b].insert(kh, Hash::digest(&leaf));
        self.dirty.push(b);
    }

    pub fn delete(&mut self, key: &[u8]) {
        let kh = Hash::digest(key);
        let b = bucket_of(&kh);
        if self.buckets[b].remove(&kh).is_some() {
            self.dirty.push(b);
        }
    }

    pub fn len(&self) -> usize {
        self.buckets.iter().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The root, after rehashing what changed since the last call.
    pub fn root(&mut self) -> Hash {
        let mut level: Vec<usize> = std::mem::take(&mut self.dirty);
        level.sort_unstable();
        level.dedup();
        for b in &level {
            self.nodes[BUCKETS + b] = bucket_hash(&self.buckets[*b]);
        }
        let mut indices: Vec<usize> = level.iter().map(|b| BUCKETS + b).collect();
        while indices.first().is_some_and(|i| *i > 1) {
            let mut parents: Vec<usize> = indices.iter().map(|i| i / 2).collect();
            parents.dedup();
            for p in &parents {
                self.nodes[*p] = node_hash(&self.nodes[2 * p], &self.nodes[2 * p + 1]);
            }
            indices = parents;
        }
        self.nodes[1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The root recomputed from scratch, for comparison with the incremental one.
    fn full_root(store: &MerkleStore) -> Hash {
        let mut fresh = MerkleStore {
            buckets: store.buckets.clone(),
            ..Default::default()
        };
        fresh.dirty = (0..BUCKETS).collect();
        fresh.root()
    }

    #[test]
    fn incremental_root_equals_full_recomputation() {
        let mut s = MerkleStore::default();
        let empty = s.root();
        assert_eq!(empty, Hash::default());
        for i in 0..500u32 {
            s.put(&i.to_le_bytes(), &(i * 7).to_le_bytes());
        }
        let r1 = s.root();
        assert_eq!(r1, full_root(&s));
        s.put(&3u32.to_le_bytes(), b"changed");
        let r2 = s.root();
        assert_ne!(r1, r2);
        assert_eq!(r2, full_root(&s));
        s.delete(&3u32.to_le_bytes());
        s.delete(&9999u32.to_le_bytes());
        assert_eq!(s.root(), full_root(&s));
        assert_eq!(s.len(), 499);
    }

    #[test]
    fn root_depends_on_content_not_on_write_order() {
        let mut a = MerkleStore::default();
        let mut b = MerkleStore::default();
        for i in 0..100u32 {
            a.put(&i.to_le_bytes(), b"v");
            b.put(&(99 - i).to_le_bytes(), b"v");
        }
        assert_eq!(a.root(), b.root());
        b.put(&5u32.to_le_bytes(), b"w");
        assert_ne!(a.root(), b.root());
    }
}
