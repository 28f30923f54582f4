//! Where the runtime's state lives between blocks.
//!
//! The runtime keeps in memory only what a block is changing, the staking module (bounded by
//! the number of validators and delegations) and the 2^16 bucket hashes of the Merkle tree
//! (a fixed 2.2 MB); accounts and the tree's buckets are read through a [`StateStore`]: the
//! node's versioned key space in sled, or nothing at all for a runtime that lives in memory.
//! Executing a block leaves its writes in the runtime until the node takes them
//! ([`crate::Runtime::take_changes`]) and stores them in the same atomic batch as the block.

use basalt_types::Address;

/// A read of the stored state failed (an I/O error or a corrupt record). Fatal to the node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state store: {0}")]
pub struct StateError(pub String);

/// The committed state as of one version (height). Reads are deterministic: the same
/// version always answers the same bytes.
pub trait StateStore: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
}

/// An empty store: the runtime keeps every write in memory (unit tests, genesis checks).
pub struct NoState;

impl StateStore for NoState {
    fn get(&self, _key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(None)
    }
}

/// Writes of executed blocks not yet stored, in key order: `None` deletes.
pub type StateChanges = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// Keys of the state's key space. Those under [`INTERNAL`] are the Merkle tree's own
/// nodes; the others are committed to by the app hash.
pub mod keys {
    use super::Address;

    pub const STAKING: &[u8] = b"staking";
    pub const SUPPLY: &[u8] = b"supply";
    pub const HEIGHT: &[u8] = b"height";
    /// Prefix of the tree's buckets and inner nodes (never a committed key).
    pub const INTERNAL: u8 = 0xff;

    pub fn account(a: &Address) -> [u8; 21] {
        let mut k = [0u8; 21];
        k[0] = b'a';
        k[1..].copy_from_slice(&a.0);
        k
    }

    /// A bucket's sorted entries.
    pub fn bucket(b: usize) -> [u8; 4] {
        let b = b as u16;
        [INTERNAL, b'b', (b >> 8) as u8, b as u8]
    }

    /// The 16 child hashes of inner node `index` at `level` (1 = just above the buckets).
    pub fn node(level: usize, index: usize) -> [u8; 5] {
        let i = index as u16;
        [INTERNAL, b'n', level as u8, (i >> 8) as u8, i as u8]
    }
}
