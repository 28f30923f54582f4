//! The node's decision logic as a deterministic state machine: [`Driver::handle`] takes an
//! [`Event`] (gossip, a peer's sync request or reply, a timer, a tick, a client's
//! transaction) and returns the [`Effect`]s to carry out (publish, answer, request, arm a
//! timer, report a commit). It owns the consensus engine, the chain, the mempool, the
//! evidence pool, the blocks of the height in progress, the buffer of future-height
//! messages and the sync state; it reaches the block store, the WAL and the signer's state
//! through handles that are sled / a file in `basalt` and memory in the simulator.
//!
//! No tokio, no sockets, no clock: time comes in with each event ([`Now`]). Both the
//! `basalt` binary (through the thin tokio shell in [`crate::node`]) and `basalt-sim` run
//! exactly this code.
//!
//! Ordering guarantee: everything the driver writes (WAL records, fsynced own messages,
//! signer state, store batches) is written inside `handle`, before the effects that depend
//! on it are returned, so a shell that carries out effects in order never sends a message
//! that is not yet durable.

mod commit;
mod consensus;
mod gossip;
mod sync;
pub mod verify;

#[cfg(test)]
mod tests;

use crate::chain::{Applied, Chain, ChainError};
use crate::evidence_pool::EvidencePool;
use crate::mempool::Mempool;
use crate::signer::FileSigner;
use crate::store::{Store, StoreError};
use crate::wal::{ConsensusWal, WalError};
use crate::wal_record::WalRecord;
use crate::wire::{ConsensusMsg, SyncRequest, SyncResponse};
use basalt_consensus::{Engine, EngineConfig, SignatureVerifier, TimeoutConfig, TimeoutKind};
use basalt_p2p::{PeerId, Topic, Verdict};
use basalt_types::{Address, Block, BlockId, Evidence, Hash, Height, Round, Timestamp};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// Consensus messages for the next height kept until it starts.
pub const MAX_FUTURE: usize = 10_000;
/// Without a new block for this long, ask peers for what they have of the current height.
pub const STUCK_AFTER_MS: u64 = 2_000;
/// How often the shell sends [`Event::Tick`].
pub const TICK: Duration = Duration::from_millis(500);
/// How often the shell sends [`Event::FlushTxs`] (gossip of admitted transactions).
pub const GOSSIP_TICK: Duration = Duration::from_millis(20);

/// The time an event happens at: wall clock for block times, a monotonic count of
/// milliseconds for intervals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Now {
    pub wall: Timestamp,
    pub mono_ms: u64,
}

/// Something the node was told or something that happened to it.
#[derive(Debug)]
pub enum Event {
    /// Once, first: resume from what the WAL held (a restart mid-height) or start afresh.
    Start {
        wal: Vec<WalRecord>,
    },
    /// A gossip message to judge; the effects hold exactly one [`Effect::Verdict`].
    Gossip {
        topic: Topic,
        from: PeerId,
        data: Vec<u8>,
    },
    PeerConnected(PeerId),
    PeerDisconnected(PeerId),
    /// A peer's sync request; the effects hold exactly one [`Effect::Respond`].
    SyncRequest {
        from: PeerId,
        data: Vec<u8>,
    },
    /// The answer to an [`Effect::Request`] (or why there is none).
    SyncReply {
        from: PeerId,
        response: Result<SyncResponse, String>,
    },
    /// A timer armed by [`Effect::Schedule`] went off.
    Timer(Timer),
    /// Periodic: status polls, evidence re-requests, stuck-height catch-up.
    Tick,
    /// Periodic: gossip the transactions admitted since the last flush, in one batch.
    FlushTxs,
    /// A client's transaction; `verified`: the hash whose signature the RPC already checked.
    /// The effects hold exactly one [`Effect::TxAdmitted`].
    SubmitTx {
        tx: Vec<u8>,
        verified: Option<Hash>,
    },
    /// Evidence from a client; the effects hold one [`Effect::EvidenceAdmitted`].
    SubmitEvidence(Box<Evidence>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Timer {
    Timeout {
        height: Height,
        round: Round,
        kind: TimeoutKind,
    },
    StartHeight(u64),
}

/// What the shell must do, in order.
#[derive(Debug)]
pub enum Effect {
    Publish {
        topic: Topic,
        data: Vec<u8>,
    },
    /// The verdict on the gossip message of this event.
    Verdict(Verdict),
    Request {
        peer: PeerId,
        request: SyncRequest,
    },
    /// The encoded answer to this event's sync request.
    Respond(Vec<u8>),
    Penalise {
        peer: PeerId,
        reason: String,
    },
    /// Send `Event::Timer(timer)` after `after`.
    Schedule {
        after: Duration,
        timer: Timer,
    },
    /// A block was executed and stored.
    Committed(Box<Committed>),
    TxAdmitted {
        hash: Hash,
        result: basalt_runtime::TxResult,
    },
    /// Whether the evidence was new, or why it was refused.
    EvidenceAdmitted {
        outcome: Result<bool, String>,
    },
}

/// A committed block and what executing it produced (for metrics, events and replies).
#[derive(Debug)]
pub struct Committed {
    pub block: Block,
    pub applied: Applied,
    pub round: u32,
    /// Since the previous commit (0 for the first one).
    pub interval_ms: u64,
    /// It came from block sync rather than this node's consensus.
    pub synced: bool,
}

/// Failures that stop the node: its own disk, or a state that diverged from the network's.
/// Anything a peer or a client sent is handled inside the driver and never ends up here.
#[derive(Debug, thiserror::Error)]
pub enum Fatal {
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{context}: {source}")]
    Chain { context: String, source: ChainError },
}

/// Validator identity: the signer (with its persisted double-sign guard) and its key.
pub struct Validator {
    pub signer: FileSigner,
    pub key: basalt_types::PublicKey,
}

/// Everything a driver is built from.
pub struct DriverParts {
    pub chain: Chain,
    pub store: Store,
    pub mempool: Mempool,
    pub evidence: EvidencePool,
    pub validator: Option<Validator>,
    pub wal: Box<dyn ConsensusWal<WalRecord>>,
    pub verifier: Arc<dyn SignatureVerifier>,
    pub create_empty_blocks: bool,
    pub timeout_commit: Duration,
}

pub struct Driver {
    pub chain: Chain,
    pub store: Store,
    pub engine: Engine,
    pub mempool: Mempool,
    pub evidence: EvidencePool,
    pub(crate) signer: Option<FileSigner>,
    pub me: Option<Address>,
    pub validator_key: Option<basalt_types::PublicKey>,
    wal: Box<dyn ConsensusWal<WalRecord>>,
    verifier: Arc<dyn SignatureVerifier>,
    create_empty_blocks: bool,
    timeout_commit: Duration,
    /// Blocks of the height in progress, by id.
    blocks: HashMap<BlockId, Block>,
    /// Checked consensus messages for a later height.
    future: Vec<ConsensusMsg>,
    /// The highest height of a consensus message ignored for being two or more heights
    /// ahead: gossip will not bring it again, so on reaching that height the node asks its
    /// peers for it at once rather than after [`STUCK_AFTER_MS`].
    dropped_ahead: u64,
    /// When this node last asked every peer for its status because a message showed it
    /// behind.
    ahead_status_ms: Option<u64>,
    /// Admitted transactions not yet gossiped.
    tx_outbox: Vec<Vec<u8>>,
    /// Connected peers and the last height each reported (ordered: the effects of a tick
    /// come in the same order on every run).
    pub peers: BTreeMap<PeerId, u64>,
    sync_in_flight: bool,
    /// Height waiting for transactions before it starts (`create_empty_blocks = false`).
    waiting_start: Option<u64>,
    last_progress_ms: u64,
    last_commit_ms: Option<u64>,
    sync_progress: Option<(u64, u64)>,
    sync_logged_ms: Option<u64>,
    pub catching_up: bool,
    ticks: u64,
    pub(crate) now: Now,
    out: Vec<Effect>,
    #[cfg(feature = "byzantine")]
    pub(crate) misbehave: Option<crate::misbehave::Misbehave>,
}

/// The decided state from the store: the chain (its last committed state, no block
/// re-executed), the evidence pool, and the validator sets of the next two heights recorded
/// for the RPC.
pub fn load_state(
    genesis: impl Into<Arc<basalt_genesis::Genesis>>,
    store: &Store,
) -> Result<(Chain, EvidencePool), Fatal> {
    let genesis = genesis.into();
    let evidence_bytes = genesis.consensus_params.evidence.max_bytes as usize * 4;
    let chain = Chain::load(genesis, store).map_err(|source| Fatal::Chain {
        context: "loading the chain".into(),
        source,
    })?;
    let evidence = EvidencePool::load(store, evidence_bytes)?;
    let next = chain.next_height();
    store.save_validator_set(next, &chain.schedule.current)?;
    store.save_validator_set(next + 1, &chain.schedule.next)?;
    Ok((chain, evidence))
}

/// The engine's configuration from the genesis parameters.
pub fn engine_config(chain: &Chain) -> EngineConfig {
    let t = &chain.genesis.consensus_params.timeouts;
    let ms = Duration::from_millis;
    let mut c = EngineConfig::new(chain.chain_id());
    c.timeouts = TimeoutConfig {
        propose: ms(t.propose_ms),
        propose_delta: ms(t.propose_delta_ms),
        prevote: ms(t.prevote_ms),
        prevote_delta: ms(t.prevote_delta_ms),
        precommit: ms(t.precommit_ms),
        precommit_delta: ms(t.precommit_delta_ms),
        max: ms(t.max_ms),
        commit: ms(t.commit_ms),
    };
    c
}

impl Driver {
    pub fn new(parts: DriverParts) -> Driver {
        let (signer, validator_key) = match parts.validator {
            Some(v) => (Some(v.signer), Some(v.key)),
            None => (None, None),
        };
        let me = validator_key.map(|k| k.address());
        let engine = Engine::with_verifier(engine_config(&parts.chain), me, parts.verifier.clone());
        Driver {
            chain: parts.chain,
            store: parts.store,
            engine,
            mempool: parts.mempool,
            evidence: parts.evidence,
            signer,
            me,
            validator_key,
            wal: parts.wal,
            verifier: parts.verifier,
            create_empty_blocks: parts.create_empty_blocks,
            timeout_commit: parts.timeout_commit,
            blocks: HashMap::new(),
            future: Vec::new(),
            tx_outbox: Vec::new(),
            peers: BTreeMap::new(),
            sync_in_flight: false,
            waiting_start: None,
            last_progress_ms: 0,
            last_commit_ms: None,
            dropped_ahead: 0,
            ahead_status_ms: None,
            sync_progress: None,
            sync_logged_ms: None,
            catching_up: false,
            ticks: 0,
            now: Now::default(),
            out: Vec::new(),
            #[cfg(feature = "byzantine")]
            misbehave: None,
        }
    }

    /// Deliberate misbehaviour (tests of the punishment of equivocation only).
    #[cfg(feature = "byzantine")]
    pub fn misbehave(&mut self, m: Option<crate::misbehave::Misbehave>) {
        self.misbehave = m;
    }

    /// Handles one event at `now`; the effects to carry out, in order. An error is fatal
    /// (the node's own disk failed, or its state diverged): the shell stops.
    pub fn handle(&mut self, now: Now, event: Event) -> Result<Vec<Effect>, Fatal> {
        self.now = now;
        let result = self.dispatch(event);
        let out = std::mem::take(&mut self.out);
        result.map(|()| out)
    }

    fn dispatch(&mut self, event: Event) -> Result<(), Fatal> {
        match event {
            Event::Start { wal } => {
                self.last_progress_ms = self.now.mono_ms;
                self.resume(wal)
            }
            Event::Gossip { topic, from, data } => {
                let verdict = match topic {
                    Topic::Consensus => self.on_consensus_gossip(&data)?,
                    Topic::Txs => self.on_tx_gossip(&data),
                    Topic::Evidence => self.on_evidence_gossip(&data)?,
                };
                if verdict == Verdict::Reject {
                    tracing::warn!(peer = %from, ?topic, "invalid gossip message rejected");
                }
                self.out.push(Effect::Verdict(verdict));
                Ok(())
            }
            Event::PeerConnected(peer) => {
                self.peers.insert(peer, 0);
                self.request(peer, SyncRequest::Status);
                Ok(())
            }
            Event::PeerDisconnected(peer) => {
                self.peers.remove(&peer);
                Ok(())
            }
            Event::SyncRequest { from, data } => {
                let reply = self.answer(from, &data);
                self.out.push(Effect::Respond(crate::wire::encode(&reply)));
                Ok(())
            }
            Event::SyncReply { from, response } => self.on_sync_reply(from, response),
            Event::Timer(Timer::Timeout {
                height,
                round,
                kind,
            }) => self.feed(basalt_consensus::Input::TimeoutElapsed {
                height,
                round,
                kind,
            }),
            Event::Timer(Timer::StartHeight(h)) => self.start_height(h),
            Event::Tick => {
                self.on_tick();
                Ok(())
            }
            Event::FlushTxs => {
                self.flush_txs();
                Ok(())
            }
            Event::SubmitTx { tx, verified } => {
                let (result, hash) = self.submit_tx(tx, verified);
                self.out.push(Effect::TxAdmitted { hash, result });
                Ok(())
            }
            Event::SubmitEvidence(ev) => {
                let outcome = self.submit_evidence(*ev)?;
                self.out.push(Effect::EvidenceAdmitted { outcome });
                Ok(())
            }
        }
    }

    /// Makes everything written durable (graceful shutdown).
    pub fn flush(&mut self) -> Result<(), Fatal> {
        self.wal.sync()?;
        self.store.flush()?;
        Ok(())
    }

    /// The signer's double-sign guard as it stands (persisted before every signature).
    pub fn signer_state(&self) -> Option<&basalt_consensus::signer::SignerState> {
        self.signer.as_ref().map(FileSigner::state)
    }

    pub fn last_height(&self) -> u64 {
        self.chain.next_height() - 1
    }

    pub(crate) fn publish(&mut self, topic: Topic, data: Vec<u8>) {
        self.out.push(Effect::Publish { topic, data });
    }

    pub(crate) fn publish_consensus(&mut self, msg: &ConsensusMsg) {
        self.publish(Topic::Consensus, crate::wire::encode(msg));
    }

    fn schedule(&mut self, after: Duration, timer: Timer) {
        self.out.push(Effect::Schedule { after, timer });
    }

    fn request(&mut self, peer: PeerId, request: SyncRequest) {
        self.out.push(Effect::Request { peer, request });
    }

    fn penalise(&mut self, peer: PeerId, reason: String) {
        self.out.push(Effect::Penalise { peer, reason });
    }
}
