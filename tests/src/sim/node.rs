//! One simulated validator: its engine, what survives a crash (WAL, signer state, decided
//! chain) and what does not (everything else).

use basalt_consensus::signer::SignerState;
use basalt_consensus::{Engine, EngineConfig, Input, SignatureVerifier};
use basalt_types::{
    Address, Block, BlockId, Commit, Hash, Header, Height, PrivateKey, SignedProposal, Timestamp,
};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;

use super::world::NetMsg;

/// What a validator is in this run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Honest,
    Equivocator,
    Silent,
}

/// Who receives a message a node sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    All,
    /// One half of the honest validators, plus the Byzantine ones.
    Half(usize),
}

/// A WAL record: every input the engine accepted at the current height, and every block the
/// node learned, in order. Replaying it into a fresh engine rebuilds the pre-crash state.
#[derive(Clone, Debug)]
pub enum WalEntry {
    Input(Input),
    Block(Box<Block>),
}

/// A decided height, as stored on disk.
#[derive(Clone, Debug)]
pub struct Decided {
    pub proposal: SignedProposal,
    pub block: Block,
    pub commit: Commit,
}

pub struct Node {
    pub index: usize,
    pub key: PrivateKey,
    pub address: Address,
    pub role: Role,
    pub up: bool,
    /// Bumped on every crash so that timers of a previous life are ignored.
    pub incarnation: u32,
    pub engine: Engine,
    // Durable: survives a crash.
    pub wal: Vec<WalEntry>,
    pub signer: SignerState,
    pub chain: BTreeMap<u64, Decided>,
    // Volatile: lost on a crash.
    pub blocks: HashMap<BlockId, Block>,
    pub future: BTreeMap<u64, Vec<(usize, Rc<NetMsg>)>>,
    pub future_len: usize,
    pub own: Vec<(Rc<NetMsg>, Audience)>,
    verifier: Arc<dyn SignatureVerifier>,
    /// Height at the previous tick: no progress since then triggers anti-entropy gossip.
    pub height_at_last_tick: u64,
}

impl Node {
    pub fn new(
        index: usize,
        key: PrivateKey,
        role: Role,
        config: &EngineConfig,
        verifier: Arc<dyn SignatureVerifier>,
    ) -> Self {
        let address = key.public_key().address();
        Node {
            index,
            key,
            address,
            role,
            up: role != Role::Silent,
            incarnation: 0,
            engine: Engine::with_verifier(config.clone(), Some(address), verifier.clone()),
            verifier,
            wal: Vec::new(),
            signer: SignerState::default(),
            chain: BTreeMap::new(),
            blocks: HashMap::new(),
            future: BTreeMap::new(),
            future_len: 0,
            own: Vec::new(),
            height_at_last_tick: 0,
        }
    }

    pub fn is_honest(&self) -> bool {
        self.role == Role::Honest
    }

    /// The height this node works on next, from its durable chain.
    pub fn next_height(&self) -> Height {
        Height(self.chain.keys().next_back().map_or(1, |h| h + 1))
    }

    /// Loses all volatile state.
    pub fn crash(&mut self, config: &EngineConfig) {
        self.up = false;
        self.incarnation += 1;
        self.engine =
            Engine::with_verifier(config.clone(), Some(self.address), self.verifier.clone());
        self.blocks.clear();
        self.future.clear();
        self.future_len = 0;
        self.own.clear();
    }
}

/// A block for `height` whose content (one "transaction") comes from the seed.
pub fn make_block(chain_id: &str, height: Height, proposer: Address, nonce: u64) -> Block {
    let txs = vec![nonce.to_le_bytes().to_vec()];
    let header = Header {
        chain_id: chain_id.to_string(),
        height,
        time: Timestamp::default(),
        last_block_id: None,
        last_commit_hash: Hash::default(),
        data_hash: Block::compute_data_hash(&txs),
        validators_hash: Hash::default(),
        next_validators_hash: Hash::default(),
        consensus_hash: Hash::default(),
        app_hash: Hash::default(),
        last_results_hash: Hash::default(),
        evidence_hash: Block::compute_evidence_hash(&[]),
        proposer_address: proposer,
    };
    Block {
        header,
        txs,
        evidence: Vec::new(),
        last_commit: None,
    }
}

/// The simulation's `valid(v)`: right chain and height, and a body that matches the header.
pub fn block_is_valid(chain_id: &str, height: Height, block: &Block) -> bool {
    block.header.chain_id == chain_id
        && block.header.height == height
        && block.body_matches_header()
}
