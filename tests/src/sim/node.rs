//! One simulated node: the shipped [`Driver`] over a simulated disk. What a crash keeps is
//! what the real node keeps: the block store's flushed batches ([`MemKv`]), the WAL up to
//! its last fsync (maybe with a torn piece of the next record, [`MemWal`]) and the signer's
//! state (persisted before every signature). Everything else, the driver included, is
//! rebuilt at restart exactly as `basalt start` rebuilds it.

use basalt_consensus::signer::SignerState;
use basalt_consensus::SignatureVerifier;
use basalt_genesis::Genesis;
use basalt_node::driver::{Driver, DriverParts, Validator};
use basalt_node::kv::MemKv;
use basalt_node::mempool::Mempool;
use basalt_node::signer::FileSigner;
use basalt_node::store::Store;
use basalt_node::wal::MemWal;
use basalt_node::wal_record::WalRecord;
use basalt_p2p::PeerId;
use basalt_types::{Address, PrivateKey};
use std::sync::Arc;
use std::time::Duration;

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

pub struct SimNode {
    pub index: usize,
    pub key: PrivateKey,
    pub address: Address,
    pub peer: PeerId,
    pub role: Role,
    pub up: bool,
    /// Bumped on every crash so that timers of a previous life are ignored.
    pub incarnation: u32,
    /// `None` while down.
    pub driver: Option<Driver>,
    // The disk: survives a crash (up to what was made durable).
    pub kv: MemKv,
    pub wal: MemWal<WalRecord>,
    pub signer: SignerState,
    // Volatile network state: gossip messages already seen (gossipsub's duplicate cache).
    pub seen: std::collections::HashSet<basalt_types::Hash>,
    /// A FlushTxs event is pending.
    pub flush_armed: bool,
}

/// What every node of a run is built from.
pub struct Shared {
    pub genesis: Genesis,
    pub verifier: Arc<dyn SignatureVerifier>,
    pub timeout_commit: Duration,
}

impl SimNode {
    pub fn new(index: usize, key: PrivateKey, peer: PeerId, role: Role) -> Self {
        SimNode {
            index,
            address: key.public_key().address(),
            key,
            peer,
            role,
            up: false,
            incarnation: 0,
            driver: None,
            kv: MemKv::default(),
            wal: MemWal::default(),
            signer: SignerState::default(),
            seen: Default::default(),
            flush_armed: false,
        }
    }

    pub fn is_honest(&self) -> bool {
        self.role == Role::Honest
    }

    /// Boots the node as `basalt start` does: the store, the chain loaded from it, the
    /// evidence pool, the signer and what the WAL held. Returns the WAL records to replay
    /// and whether a torn tail was cut.
    pub fn boot(&mut self, shared: &Shared) -> (Vec<WalRecord>, bool) {
        let store = Store::in_memory(&self.kv);
        store
            .check_chain(&shared.genesis.chain_id, &shared.genesis.hash())
            .expect("the simulated store belongs to this chain");
        let (chain, evidence) = basalt_node::driver::load_state(shared.genesis.clone(), &store)
            .expect("a simulated store loads");
        let signer = FileSigner::in_memory(
            self.key.clone(),
            &shared.genesis.chain_id,
            self.signer.clone(),
        );
        let replay = self.wal.replay().expect("a simulated WAL is never corrupt");
        let driver = Driver::new(DriverParts {
            chain,
            store,
            mempool: Mempool::new(10_000, 64 * 1024 * 1024),
            evidence,
            validator: Some(Validator {
                signer,
                key: self.key.public_key(),
            }),
            wal: Box::new(self.wal.clone()),
            verifier: shared.verifier.clone(),
            create_empty_blocks: true,
            timeout_commit: shared.timeout_commit,
        });
        self.driver = Some(driver);
        self.up = true;
        (replay.records, replay.repaired_tail.is_some())
    }

    /// A crash: the driver and everything volatile are gone; the disk keeps what was
    /// durable, and the WAL may keep a torn piece (`torn_bytes`) of what was not.
    pub fn crash(&mut self, torn_bytes: usize) {
        if let Some(d) = &self.driver {
            if let Some(s) = d.signer_state() {
                self.signer = s.clone();
            }
        }
        self.driver = None;
        self.up = false;
        self.incarnation += 1;
        self.kv.crash();
        self.wal.crash(torn_bytes);
        self.seen.clear();
        self.flush_armed = false;
    }
}
