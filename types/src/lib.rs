//! Basalt's core data types: everything that is hashed, signed or sent between nodes.
//!
//! Every byte that is signed or hashed is [borsh]; every signature covers the chain id
//! (see [`sign_bytes`]), so a message signed for one chain can never be replayed on another.
//! JSON (serde) is offered only for the edges: config, RPC and human-facing tools.

pub mod block;
pub mod canonical;
pub mod commit;
pub mod crypto;
pub mod evidence;
pub mod hash;
pub mod height;
mod hex_serde;
pub mod proposal;
pub mod sign_bytes;
pub mod time;
pub mod vote;

pub use block::{Block, BlockId, Header, PartSetHeader, Timestamp, BLOCK_PART_SIZE};
pub use commit::{Commit, CommitSig};
pub use crypto::{verify_batch, Address, BatchItem, CryptoError, PrivateKey, PublicKey, Signature};
pub use evidence::{DuplicateVoteEvidence, Evidence, EvidenceError};
pub use hash::{merkle_root, Hash};
pub use height::{Height, Round};
pub use proposal::{Proposal, SignedProposal};
pub use sign_bytes::{sign_bytes, SignDomain};
pub use vote::{SignedVote, Vote, VoteType};
