//! State sync: joining a long chain from a recent state snapshot instead of executing every
//! block since genesis.
//!
//! A node with `[statesync] snapshot_interval = N` takes a snapshot of the state at every
//! N-th height ([`take`]), on its own thread and off the consensus path: the committed
//! entries (accounts, staking, supply, height; never the Merkle tree's own keys) in the
//! tree's bucket order, cut into chunks of about [`CHUNK_BYTES`], and a [`SnapshotMeta`]
//! naming each chunk's hash beside the block, commit, results and validator sets of the
//! snapshot's height. It keeps the last few ([`files`]) and serves them to peers over the
//! sync request-response protocol.
//!
//! A fresh node with `[statesync] enable = true` ([`restore`]) verifies the header of the
//! height after a snapshot with the light client (from `trust_height`/`trust_hash`, by
//! skipping verification), checks the snapshot's metadata against it (block id, commit
//! hash, results hash, validator set hashes), fetches the chunks from every peer that
//! offers the snapshot (a chunk whose hash is wrong is fetched elsewhere and its sender
//! penalised), rebuilds the state and its Merkle tree from the entries, and accepts it only
//! if the root it computed is the verified header's app hash. It then block-syncs from the
//! snapshot's height like any node. A restore interrupted half-way resumes from its last
//! stored chunk.

pub mod files;
pub mod restore;
pub mod take;

use crate::store::{BlockResults, ChainMeta, RestoredBase, Store, StoreError};
use basalt_runtime::StateRestore;
use basalt_types::{Block, Commit, Hash, Header};
use borsh::{BorshDeserialize, BorshSerialize};

/// Bytes of entries per chunk: a chunk is one stored piece of the restore (and about 8,000
/// accounts, the piece size of a first start's genesis).
pub const CHUNK_BYTES: usize = 512 * 1024;

/// The snapshot layout this node writes and restores.
pub const FORMAT: u32 = 1;

/// One chunk: committed (key, value) entries, in the order of SHA-256 of the key.
pub type Chunk = Vec<(Vec<u8>, Vec<u8>)>;

/// Everything about a snapshot but its chunks.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SnapshotMeta {
    pub format: u32,
    /// The state is the one after executing this height's block.
    pub height: u64,
    /// SHA-256 of each chunk's bytes, in order.
    pub chunks: Vec<Hash>,
    pub entries: u64,
    pub bytes: u64,
    /// The validator sets of `height` and the two after it (with proposer priorities).
    pub chain_meta: ChainMeta,
    pub block: Block,
    pub commit: Commit,
    pub results: BlockResults,
}

/// What a peer lists: a snapshot's height and the hash of its [`SnapshotMeta`].
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, BorshSerialize, BorshDeserialize,
)]
pub struct SnapshotInfo {
    pub height: u64,
    pub hash: Hash,
}

/// Why a snapshot (or one chunk of it) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("snapshot format {0}, this node restores format {FORMAT}")]
    Format(u32),
    #[error("the metadata hashes to {got}, not the {want} the peer listed")]
    MetaHash { got: Hash, want: Hash },
    #[error("the snapshot's {0} does not match the verified header of the next height")]
    Mismatch(&'static str),
    #[error("chunk {index} hashes to {got}, not the snapshot's {want}")]
    ChunkHash { index: u32, got: Hash, want: Hash },
    #[error("chunk {index} does not decode: {reason}")]
    ChunkDecode { index: u32, reason: String },
    #[error("the restored state's root {got} is not the verified app hash {want}")]
    AppHash { got: Hash, want: Hash },
}

impl SnapshotMeta {
    pub fn hash(&self) -> Hash {
        Hash::of(self)
    }

    pub fn info(&self) -> SnapshotInfo {
        SnapshotInfo {
            height: self.height,
            hash: self.hash(),
        }
    }

    /// Checks everything the metadata says against `next`, the light-client-verified
    /// header of `height + 1`: the block, its commit and results are the ones that header
    /// names, and the validator sets are the ones the two headers name. (The chunks are
    /// checked by their hashes, and the state they rebuild by its root.)
    pub fn check(&self, next: &Header) -> Result<(), Refusal> {
        if self.format != FORMAT {
            return Err(Refusal::Format(self.format));
        }
        if next.height.0 != self.height + 1 || self.block.header.height.0 != self.height {
            return Err(Refusal::Mismatch("height"));
        }
        if next.last_block_id != Some(self.block.id()) {
            return Err(Refusal::Mismatch("block id"));
        }
        if next.last_commit_hash != self.commit.hash() || self.commit.height.0 != self.height {
            return Err(Refusal::Mismatch("commit"));
        }
        if next.last_results_hash != self.results.hash()
            || self.results.app_hash != next.app_hash
            || self.results.height != self.height
        {
            return Err(Refusal::Mismatch("results"));
        }
        let schedule = &self.chain_meta.schedule;
        if schedule.current.hash() != next.validators_hash
            || schedule.next.hash() != next.next_validators_hash
        {
            return Err(Refusal::Mismatch("validator schedule"));
        }
        let last = self.chain_meta.last_set.as_ref().map(|s| s.hash());
        if last != Some(self.block.header.validators_hash) {
            return Err(Refusal::Mismatch("validator set"));
        }
        Ok(())
    }

    /// Checks one chunk's bytes against the metadata and decodes them.
    pub fn chunk(&self, index: u32, bytes: &[u8]) -> Result<Chunk, Refusal> {
        let want = self.chunks.get(index as usize).copied().unwrap_or_default();
        let got = Hash::digest(bytes);
        if got != want {
            return Err(Refusal::ChunkHash { index, got, want });
        }
        crate::wire::decode(bytes).map_err(|reason| Refusal::ChunkDecode { index, reason })
    }
}

/// Why a chunk could not be stored: the snapshot's fault, or this node's.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error(transparent)]
    Bad(Refusal),
    #[error("storing a chunk: {0}")]
    Store(#[from] StoreError),
}

/// Stores one checked chunk of a restore (its entries and the tree writes they cause),
/// durably: a restore resumes after the last chunk stored.
pub fn store_chunk(
    store: &Store,
    restorer: &mut StateRestore,
    index: u32,
    chunk: &Chunk,
) -> Result<(), ChunkError> {
    let changes = restorer.apply(chunk).map_err(|e| match e {
        basalt_runtime::RestoreError::State(e) => ChunkError::Store(StoreError::Corrupt {
            key: "state".into(),
            reason: e.to_string(),
        }),
        bad => ChunkError::Bad(Refusal::ChunkDecode {
            index,
            reason: bad.to_string(),
        }),
    })?;
    store.save_genesis_piece(&changes)?;
    store.flush()?;
    Ok(())
}

/// Accepts a restore whose every chunk is stored if the root it rebuilt is `app_hash` (the
/// verified header's after the snapshot), storing the snapshot's block, commit, results
/// and validator sets as the base of the chain.
pub fn finish(
    store: &Store,
    restorer: &StateRestore,
    meta: &SnapshotMeta,
    app_hash: Hash,
) -> Result<Result<(), Refusal>, StoreError> {
    let root = restorer.root();
    if root != app_hash {
        return Ok(Err(Refusal::AppHash {
            got: root,
            want: app_hash,
        }));
    }
    let base = RestoredBase {
        block: &meta.block,
        commit: &meta.commit,
        results: &meta.results,
        meta: &meta.chain_meta,
    };
    store.save_restored(meta.height, &Vec::new(), &base)?;
    Ok(Ok(()))
}
