//! The state commitment behind the app hash: an incremental Merkle tree.
//!
//! Keys hash into 2^16 buckets (by the first two bytes of SHA-256(key)); a bucket's hash
//! covers its sorted (key hash, value hash) pairs; a 16-ary tree over the buckets (four
//! levels: 4096, 256, 16, 1) gives the root. A write marks its bucket dirty, and `root()`
//! rehashes only dirty buckets and their paths, so a block costs work in proportion to what
//! it changed, not to the state's size. The tree is 16-ary rather than binary because a
//! 10,000-transaction block dirties most of the upper levels anyway: four levels of wide
//! nodes hash a third of the bytes of sixteen levels of narrow ones (measured in the
//! `execution` benchmark). A bucket's entries plus 4 × 15 sibling hashes prove one key
//! against the root (for light clients later). Empty subtrees hash to zero.

use basalt_types::Hash;

const BUCKET_BITS: u32 = 16;
const BUCKETS: usize = 1 << BUCKET_BITS;
const ARITY: usize = 16;

/// One key's commitment: (SHA-256 of the key, SHA-256 of 0x00 ‖ value).
type Entry = (Hash, Hash);

#[derive(Clone)]
pub struct MerkleStore {
    /// Each bucket's entries, sorted by key hash.
    buckets: Vec<Vec<Entry>>,
    /// `levels[0]` holds the bucket hashes, each next level 16 times fewer, the last the root.
    levels: Vec<Vec<Hash>>,
    /// Writes since the last `root()`, in order: `None` deletes. Applying them in bucket
    /// order at `root()` walks memory sequentially instead of jumping around per write.
    pending: Vec<(Hash, Option<Hash>)>,
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
            buckets: vec![Vec::new(); BUCKETS],
            levels,
            pending: Vec::new(),
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

impl MerkleStore {
    /// Sets `key` to `value` (by hash: the store keeps commitments, not data).
    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        let mut leaf = Vec::with_capacity(1 + value.len());
        leaf.push(0);
        leaf.extend_from_slice(value);
        self.pending
            .push((Hash::digest(key), Some(Hash::digest(&leaf))));
    }

    pub fn delete(&mut self, key: &[u8]) {
        self.pending.push((Hash::digest(key), None));
    }

    /// Number of keys (as of the last `root()`).
    pub fn len(&self) -> usize {
        self.buckets.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The root, after applying and rehashing what changed since the last call.
    pub fn root(&mut self) -> Hash {
        let mut pending = std::mem::take(&mut self.pending);
        // The bucket index is the key hash's first two bytes, so key-hash order is bucket
        // order. Stable: of several writes to one key, the last one wins below.
        pending.sort_by_key(|e| e.0);
        let mut dirty: Vec<usize> = Vec::new();
        for (i, (kh, value)) in pending.iter().enumerate() {
            if pending.get(i + 1).is_some_and(|next| next.0 == *kh) {
                continue;
            }
            let b = bucket_of(kh);
            let bucket = &mut self.buckets[b];
            match (bucket.binary_search_by(|e| e.0.cmp(kh)), value) {
                (Ok(at), Some(v)) => bucket[at].1 = *v,
                (Err(at), Some(v)) => bucket.insert(at, (*kh, *v)),
                (Ok(at), None) => {
                    bucket.remove(at);
                }
                (Err(_), None) => continue,
            }
            if dirty.last() != Some(&b) {
                dirty.push(b);
            }
        }
        let mut buf = Vec::new();
        for b in &dirty {
            self.levels[0][*b] = bucket_hash(&self.buckets[*b], &mut buf);
        }
        let mut indices = dirty;
        for level in 1..self.levels.len() {
            indices = indices.iter().map(|i| i / ARITY).collect();
            indices.dedup();
            let (below, here) = self.levels.split_at_mut(level);
            let children = &below[level - 1];
            for p in &indices {
                here[0][*p] = node_hash(&children[p * ARITY..(p + 1) * ARITY]);
            }
        }
        self.levels[self.levels.len() - 1][0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The root recomputed from scratch, for comparison with the incremental one.
    fn full_root(store: &MerkleStore) -> Hash {
        let mut fresh = MerkleStore::default();
        for bucket in &store.buckets {
            for (k, v) in bucket {
                fresh.pending.push((*k, Some(*v)));
            }
        }
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
        // Several writes to one key before a root: the last one counts.
        s.put(&7u32.to_le_bytes(), b"first");
        s.put(&7u32.to_le_bytes(), b"second");
        let r = s.root();
        let mut t = s.clone();
        t.put(&7u32.to_le_bytes(), b"second");
        assert_eq!(t.root(), r);
        s.put(&8u32.to_le_bytes(), b"x");
        s.delete(&8u32.to_le_bytes());
        assert_eq!(s.root(), full_root(&s));
        assert_eq!(s.len(), 498);
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
