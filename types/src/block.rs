//! Block ids, headers and blocks (CometBFT's header fields, borsh-encoded).

use crate::commit::Commit;
use crate::crypto::Address;
use crate::evidence::Evidence;
use crate::hash::{merkle_root, Hash};
use crate::height::Height;
pub use crate::time::Timestamp;
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Names a block: the hash of its header (which commits to the body through `data_hash`
/// and `evidence_hash`).
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
#[serde(transparent)]
pub struct BlockId(pub Hash);

impl BlockId {
    /// The part-set header Basalt reports (RPC) and hashes (a header's `last_block_id`): one
    /// part, named by the block hash, until blocks travel in parts.
    pub fn parts(&self) -> (u32, Hash) {
        (1, self.0)
    }

    /// This id as CometBFT's `BlockID`.
    pub fn canonical(&self) -> crate::canonical::BlockId {
        let (total, hash) = self.parts();
        crate::canonical::BlockId {
            hash: self.0 .0.to_vec(),
            parts_total: total,
            parts_hash: hash.0.to_vec(),
        }
    }
}

impl fmt::Debug for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "B{:?}", self.0)
    }
}

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// CometBFT's block header fields. `app_hash` of block H commits to the state after block H−1.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Header {
    pub chain_id: String,
    pub height: Height,
    pub time: Timestamp,
    pub last_block_id: Option<BlockId>,
    pub last_commit_hash: Hash,
    pub data_hash: Hash,
    pub validators_hash: Hash,
    pub next_validators_hash: Hash,
    pub consensus_hash: Hash,
    pub app_hash: Hash,
    pub last_results_hash: Hash,
    pub evidence_hash: Hash,
    pub proposer_address: Address,
}

/// The header `version` Basalt reports and hashes: CometBFT v0.38's block protocol 11, app 0.
pub const VERSION_BLOCK: u64 = 11;
pub const VERSION_APP: u64 = 0;

impl Header {
    /// CometBFT's `Header.Hash()` ([`crate::canonical::header_hash`]), so that a Tendermint
    /// light client recomputes it from the header the RPC shows.
    pub fn id(&self) -> BlockId {
        BlockId(Hash(crate::canonical::header_hash(
            &crate::canonical::Header {
                version_block: VERSION_BLOCK,
                version_app: VERSION_APP,
                chain_id: &self.chain_id,
                height: self.height.0 as i64,
                time: self.time.canonical(),
                last_block_id: self
                    .last_block_id
                    .map(|id| id.canonical())
                    .unwrap_or_default(),
                last_commit_hash: &self.last_commit_hash.0,
                data_hash: &self.data_hash.0,
                validators_hash: &self.validators_hash.0,
                next_validators_hash: &self.next_validators_hash.0,
                consensus_hash: &self.consensus_hash.0,
                app_hash: &self.app_hash.0,
                last_results_hash: &self.last_results_hash.0,
                evidence_hash: &self.evidence_hash.0,
                proposer_address: &self.proposer_address.0,
            },
        )))
    }
}

/// A block: header, transactions, evidence and the commit that finalised the previous block.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Block {
    pub header: Header,
    pub txs: Vec<Vec<u8>>,
    pub evidence: Vec<Evidence>,
    pub last_commit: Option<Commit>,
}

impl Block {
    pub fn id(&self) -> BlockId {
        self.header.id()
    }

    /// Merkle root of the transaction hashes, for `header.data_hash`.
    pub fn compute_data_hash(txs: &[Vec<u8>]) -> Hash {
        let leaves: Vec<Hash> = txs.iter().map(|tx| Hash::digest(tx)).collect();
        merkle_root(&leaves)
    }

    /// Merkle root of the evidence hashes, for `header.evidence_hash`.
    pub fn compute_evidence_hash(evidence: &[Evidence]) -> Hash {
        let leaves: Vec<Hash> = evidence.iter().map(Hash::of).collect();
        merkle_root(&leaves)
    }

    /// Whether the header's body hashes match the body. Consensus treats a block whose
    /// header lies about its content as invalid.
    pub fn body_matches_header(&self) -> bool {
        self.header.data_hash == Self::compute_data_hash(&self.txs)
            && self.header.evidence_hash == Self::compute_evidence_hash(&self.evidence)
            && self.header.last_commit_hash == Commit::hash_of(self.last_commit.as_ref())
    }
}
