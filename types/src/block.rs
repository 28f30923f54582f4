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

/// The part-set header of a block: its encoding cut into [`BLOCK_PART_SIZE`] parts, how many
/// and their RFC 6962 Merkle root (CometBFT's `PartSetHeader`), so that a block can travel
/// in parts each checked against the id the votes sign.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
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
pub struct PartSetHeader {
    pub total: u32,
    pub hash: Hash,
}

/// Bytes per block part (CometBFT's `BlockPartSizeBytes`).
pub const BLOCK_PART_SIZE: usize = 65_536;

/// Names a block as CometBFT's `BlockID` does: the hash of its header (which commits to the
/// body through `data_hash`, `evidence_hash` and `last_commit_hash`) and its part-set
/// header. Votes and proposals sign both.
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
pub struct BlockId(pub Hash, pub PartSetHeader);

impl BlockId {
    /// The header hash.
    pub fn hash(&self) -> Hash {
        self.0
    }

    pub fn parts(&self) -> PartSetHeader {
        self.1
    }

    /// This id as CometBFT's `BlockID`.
    pub fn canonical(&self) -> crate::canonical::BlockId {
        crate::canonical::BlockId {
            hash: self.0 .0.to_vec(),
            parts_total: self.1.total,
            parts_hash: self.1.hash.0.to_vec(),
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
    pub fn hash(&self) -> Hash {
        Hash(crate::canonical::header_hash(&crate::canonical::Header {
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
        }))
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
    /// The block's id: its header hash and its part-set header. Computing the parts encodes
    /// the block: callers that need the id more than once keep it.
    pub fn id(&self) -> BlockId {
        BlockId(self.header.hash(), self.part_set_header())
    }

    /// The block's borsh encoding cut into [`BLOCK_PART_SIZE`] parts: how many, and their
    /// Merkle root.
    pub fn part_set_header(&self) -> PartSetHeader {
        let bytes = borsh::to_vec(self).expect("borsh into a Vec is infallible");
        let parts: Vec<&[u8]> = bytes.chunks(BLOCK_PART_SIZE).collect();
        PartSetHeader {
            total: parts.len() as u32,
            hash: merkle_root(&parts),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn block(txs: Vec<Vec<u8>>) -> Block {
        Block {
            header: Header {
                chain_id: "parts".into(),
                height: Height(3),
                time: Timestamp::default(),
                last_block_id: None,
                last_commit_hash: Hash::default(),
                data_hash: Block::compute_data_hash(&txs),
                validators_hash: Hash::default(),
                next_validators_hash: Hash::default(),
                consensus_hash: Hash::default(),
                app_hash: Hash::default(),
                last_results_hash: Hash::default(),
                evidence_hash: Hash::default(),
                proposer_address: Address([1; 20]),
            },
            txs,
            evidence: vec![],
            last_commit: None,
        }
    }

    #[test]
    fn a_block_id_names_the_header_and_the_parts_of_the_encoding() {
        let small = block(vec![vec![1; 100]]);
        let id = small.id();
        assert_eq!(id.hash(), small.header.hash());
        assert_eq!(id.parts().total, 1);
        let bytes = borsh::to_vec(&small).unwrap();
        assert_eq!(id.parts().hash, merkle_root(&[&bytes[..]]));

        // 200,000 bytes of transactions: four parts of 64 KiB, the last one shorter.
        let big = block((0..200).map(|i| vec![i as u8; 1000]).collect());
        let bytes = borsh::to_vec(&big).unwrap();
        let parts: Vec<&[u8]> = bytes.chunks(BLOCK_PART_SIZE).collect();
        assert_eq!(big.id().parts().total, 4);
        assert_eq!(parts.len(), 4);
        assert_eq!(big.id().parts().hash, merkle_root(&parts));

        // Any change to the body changes both halves of the id.
        let mut other = big.clone();
        other.txs[7][0] ^= 1;
        other.header.data_hash = Block::compute_data_hash(&other.txs);
        assert_ne!(other.id().hash(), big.id().hash());
        assert_ne!(other.id().parts().hash, big.id().parts().hash);
    }
}
