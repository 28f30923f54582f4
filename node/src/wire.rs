//! What nodes say to each other: borsh messages on the gossip topics and the sync protocol.
//! Every message is decoded in full before anything acts on it; trailing bytes or a wrong
//! tag make it garbage, and garbage costs the sender penalty points.

use basalt_types::{Block, Commit, SignedProposal, SignedVote};
use borsh::{BorshDeserialize, BorshSerialize};

/// On the consensus topic. A proposal travels with its whole block.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ConsensusMsg {
    Proposal {
        proposal: SignedProposal,
        block: Box<Block>,
    },
    Vote(SignedVote),
}

impl ConsensusMsg {
    pub fn height(&self) -> u64 {
        match self {
            ConsensusMsg::Proposal { proposal, .. } => proposal.proposal.height.0,
            ConsensusMsg::Vote(v) => v.vote.height.0,
        }
    }
}

/// On the transactions topic: a batch, so that a busy node sends one message per tick
/// rather than one per transaction.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TxBatch(pub Vec<Vec<u8>>);

/// Most blocks in one sync reply.
pub const MAX_BLOCKS_PER_REPLY: u32 = 64;

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum SyncRequest {
    /// What is your last committed height?
    Status,
    /// Decided blocks `from ..= from + count - 1` with their commits.
    Blocks { from: u64, count: u32 },
    /// Everything you have for `height`, which you are still deciding: proposals (with
    /// blocks) and votes. Gossip alone loses what was sent while a peer was unreachable.
    Catchup { height: u64 },
    /// Your pending evidence (re-sent to peers that missed its gossip).
    Evidence,
    /// The state snapshots you keep (state sync).
    Snapshots,
    /// The metadata of your snapshot of `height`.
    SnapshotMeta { height: u64 },
    /// Chunk `index` of your snapshot of `height`.
    Chunk { height: u64, index: u32 },
}

impl SyncRequest {
    /// Whether this asks for state snapshots (served by the node's shell from its files,
    /// off the consensus path).
    pub fn is_snapshot(&self) -> bool {
        matches!(
            self,
            SyncRequest::Snapshots | SyncRequest::SnapshotMeta { .. } | SyncRequest::Chunk { .. }
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum SyncResponse {
    /// The last committed height and the lowest one whose block is still stored (the
    /// rest was pruned: ask another peer for it).
    Status {
        last_height: u64,
        earliest_height: u64,
    },
    Blocks(Vec<(Block, Commit)>),
    Catchup(Vec<ConsensusMsg>),
    Evidence(Vec<basalt_types::Evidence>),
    Refused(String),
    Snapshots(Vec<crate::statesync::SnapshotInfo>),
    SnapshotMeta(Box<crate::statesync::SnapshotMeta>),
    Chunk(Vec<u8>),
}

pub fn encode<T: BorshSerialize>(v: &T) -> Vec<u8> {
    borsh::to_vec(v).expect("borsh into a Vec is infallible")
}

/// Decodes exactly one `T` from `bytes` (borsh refuses trailing bytes).
pub fn decode<T: BorshDeserialize>(bytes: &[u8]) -> Result<T, String> {
    borsh::from_slice(bytes).map_err(|e| e.to_string())
}
