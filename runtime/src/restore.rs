//! Rebuilding a stored state from a snapshot's entries (state sync).
//!
//! A snapshot holds only the committed keys (accounts, staking, supply, height), never the
//! Merkle tree's own buckets and nodes: the restoring node rebuilds the tree from the
//! entries, so the root it ends with is computed, not trusted, and is compared with an app
//! hash a light client verified. Entries arrive in the order of their key's hash (the
//! tree's bucket order), so each piece fills whole buckets and almost none is read back.

use crate::merkle::{decode_bucket, decode_node, encode_node, MerkleStore};
use crate::state::{keys, StateChanges, StateError, StateStore};
use basalt_types::Hash;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A snapshot entry the restore refuses: the peer that sent it sent garbage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("a snapshot entry with the Merkle tree's internal key {0}")]
    InternalKey(String),
    #[error("a snapshot entry with an empty key")]
    EmptyKey,
    #[error(transparent)]
    State(#[from] StateError),
}

/// The tree being rebuilt, over the pieces stored so far.
pub struct StateRestore {
    tree: MerkleStore,
    store: Arc<dyn StateStore>,
}

impl StateRestore {
    /// A restore into a store that holds no state yet.
    pub fn new(store: Arc<dyn StateStore>) -> StateRestore {
        StateRestore {
            tree: MerkleStore::default(),
            store,
        }
    }

    /// A restore that goes on from the pieces already in `store` (an interrupted one): the
    /// tree is loaded from the nodes those pieces wrote.
    pub fn resume(store: Arc<dyn StateStore>) -> Result<StateRestore, StateError> {
        let s = store.clone();
        let tree = MerkleStore::load(|level, index| {
            s.get(&keys::node(level, index))?
                .map(|n| decode_node(&n))
                .transpose()
        })?;
        Ok(StateRestore { tree, store })
    }

    /// Adds `entries` (key, value) and returns every write to store for them: the entries
    /// and the tree's buckets and nodes they changed. The caller stores them before the
    /// next call, which reads the buckets back through the store.
    pub fn apply(&mut self, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<StateChanges, RestoreError> {
        let mut unsaved = BTreeMap::new();
        for (k, v) in entries {
            match k.first() {
                None => return Err(RestoreError::EmptyKey),
                Some(&keys::INTERNAL) => return Err(RestoreError::InternalKey(hex::encode(k))),
                Some(_) => {}
            }
            self.tree.put(k, v);
            unsaved.insert(k.clone(), Some(v.clone()));
        }
        commit_tree(&mut self.tree, &mut unsaved, self.store.as_ref())?;
        Ok(unsaved.into_iter().collect())
    }

    /// The root of everything applied so far.
    pub fn root(&self) -> Hash {
        self.tree.root()
    }
}

/// Commits `tree`'s pending writes, reading buckets from `unsaved` then `store`, and puts
/// the buckets and inner nodes it changed into `unsaved` (`None`: emptied). Returns the
/// new root.
pub(crate) fn commit_tree(
    tree: &mut MerkleStore,
    unsaved: &mut BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    store: &dyn StateStore,
) -> Result<Hash, StateError> {
    let update = {
        let unsaved = &*unsaved;
        tree.commit(|b| {
            let key = keys::bucket(b);
            let stored = match unsaved.get(key.as_slice()) {
                Some(v) => v.clone(),
                None => store.get(&key)?,
            };
            stored.map_or(Ok(Vec::new()), |b| decode_bucket(&b))
        })?
    };
    for (b, entries) in update.buckets {
        let v = (!entries.is_empty()).then(|| borsh::to_vec(&entries).expect("in memory"));
        unsaved.insert(keys::bucket(b).to_vec(), v);
    }
    for (level, index, children) in update.nodes {
        let empty = children.iter().all(|c| *c == Hash::default());
        let v = (!empty).then(|| encode_node(&children));
        unsaved.insert(keys::node(level, index).to_vec(), v);
    }
    Ok(update.root)
}
