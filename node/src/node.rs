//! The running node: one task owns the consensus engine, the chain, the mempool and the
//! WAL, and carries out the engine's outputs. Everything reaches it as a message (gossip,
//! sync replies, timeouts, RPC calls), so no lock guards consensus state.

use crate::chain::Chain;
use crate::evidence_pool::EvidencePool;
use crate::mempool::Mempool;
use crate::signer::FileSigner;
use crate::store::Store;
use crate::wal::Wal;
use crate::wal_record::{kind_code, kind_of, WalRecord};
use crate::wire::{self, ConsensusMsg, SyncRequest, SyncResponse, TxBatch, MAX_BLOCKS_PER_REPLY};
use anyhow::{Context, Result};
use basalt_consensus::{Engine, EngineConfig, Input, Output, TimeoutConfig};
use basalt_p2p::{Event as NetEvent, P2pHandle, PeerId, Topic, Verdict};
use basalt_rpc::RpcError;
use basalt_staking::ValidatorSet;
use basalt_types::{Address, Block, BlockId, Commit, Height, Timestamp};
use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Consensus messages for the next height kept until it starts.
const MAX_FUTURE: usize = 10_000;
/// Without a new block for this long, ask peers for what they have of the current height.
const STUCK_AFTER: Duration = Duration::from_secs(2);

/// An RPC call waiting for the node's answer.
pub struct ApiCall {
    pub method: String,
    pub params: Map<String, Value>,
    pub reply: oneshot::Sender<Result<Value, RpcError>>,
    /// Hash of the `tx` parameter when the RPC task already verified its signature (off
    /// the event loop, on the server's worker threads).
    pub verified_tx: Option<basalt_types::Hash>,
}

pub(crate) enum Internal {
    Timeout {
        height: Height,
        round: basalt_types::Round,
        kind: basalt_consensus::TimeoutKind,
    },
    StartHeight(u64),
    SyncReply {
        peer: PeerId,
        response: Result<SyncResponse, String>,
    },
}

pub struct NodeSettings {
    pub moniker: String,
    /// CometBFT-style node id: the address of the node key, lower-case hex.
    pub node_id: String,
    pub node_key: basalt_types::PublicKey,
    /// How long `broadcast_tx_commit` waits for the block (CometBFT: 10 s).
    pub broadcast_tx_commit_timeout: Duration,
    pub create_empty_blocks: bool,
    pub timeout_commit: Duration,
    pub rpc_listen: String,
    pub p2p_listen: String,
}

pub struct Node {
    pub(crate) settings: NodeSettings,
    pub(crate) chain: Chain,
    pub(crate) store: Store,
    pub(crate) engine: Engine,
    pub(crate) mempool: Mempool,
    pub(crate) evidence: EvidencePool,
    pub(crate) signer: Option<FileSigner>,
    pub(crate) me: Option<Address>,
    pub(crate) validator_key: Option<basalt_types::PublicKey>,
    wal: Wal<WalRecord>,
    pub(crate) p2p: P2pHandle,
    internal: mpsc::UnboundedSender<Internal>,
    blocks: HashMap<BlockId, Block>,
    future: Vec<ConsensusMsg>,
    tx_outbox: Vec<Vec<u8>>,
    pub(crate) peers: HashMap<PeerId, u64>,
    pub(crate) peer_info: HashMap<PeerId, PeerInfo>,
    events: tokio::sync::broadcast::Sender<basalt_rpc::RpcEvent>,
    pub(crate) metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// `broadcast_tx_commit` calls waiting for their transaction's block.
    commit_waiters: HashMap<basalt_types::Hash, Vec<CommitWaiter>>,
    sync_in_flight: bool,
    /// Height waiting for transactions before it starts (`create_empty_blocks = false`).
    waiting_start: Option<u64>,
    last_progress: Instant,
    last_commit_at: Option<Instant>,
    sync_progress: Option<(Instant, u64)>,
    /// When block sync last logged its progress (once a second at most).
    sync_logged_at: Option<Instant>,
    pub(crate) catching_up: bool,
    ticks: u64,
    #[cfg(feature = "byzantine")]
    pub(crate) misbehave: Option<crate::misbehave::Misbehave>,
}

pub(crate) struct PeerInfo {
    pub addr: String,
    pub ip: String,
    pub outbound: bool,
    pub since: Timestamp,
}

struct CommitWaiter {
    deadline: Instant,
    check_tx: Value,
    reply: oneshot::Sender<Result<Value, RpcError>>,
}

pub struct NodeParts {
    pub settings: NodeSettings,
    pub chain: Chain,
    pub store: Store,
    pub mempool: Mempool,
    pub evidence: EvidencePool,
    pub signer: Option<(FileSigner, basalt_types::PublicKey)>,
    pub wal: Wal<WalRecord>,
    pub wal_records: Vec<WalRecord>,
    pub p2p: P2pHandle,
    pub events: tokio::sync::broadcast::Sender<basalt_rpc::RpcEvent>,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    #[cfg(feature = "byzantine")]
    pub misbehave: Option<crate::misbehave::Misbehave>,
}

pub fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos(),
    }
}

fn engine_config(chain: &Chain) -> EngineConfig {
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

impl Node {
    /// Runs until ctrl-c / SIGTERM or a fatal error.
    pub async fn run(
        parts: NodeParts,
        mut net: mpsc::UnboundedReceiver<NetEvent>,
        mut api: mpsc::Receiver<ApiCall>,
    ) -> Result<()> {
        let (internal, mut internal_rx) = mpsc::unbounded_channel();
        let (signer, validator_key) = match parts.signer {
            Some((s, k)) => (Some(s), Some(k)),
            None => (None, None),
        };
        let me = validator_key.map(|k| k.address());
        let engine = Engine::new(engine_config(&parts.chain), me);
        let mut node = Node {
            settings: parts.settings,
            chain: parts.chain,
            store: parts.store,
            engine,
            mempool: parts.mempool,
            evidence: parts.evidence,
            signer,
            me,
            validator_key,
            wal: parts.wal,
            p2p: parts.p2p,
            internal,
            blocks: HashMap::new(),
            future: Vec::new(),
            tx_outbox: Vec::new(),
            peers: HashMap::new(),
            peer_info: HashMap::new(),
            events: parts.events,
            metrics: parts.metrics,
            commit_waiters: HashMap::new(),
            sync_in_flight: false,
            waiting_start: None,
            last_progress: Instant::now(),
            last_commit_at: None,
            sync_progress: None,
            sync_logged_at: None,
            catching_up: false,
            ticks: 0,
            #[cfg(feature = "byzantine")]
            misbehave: parts.misbehave,
        };
        node.resume(parts.wal_records)?;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut gossip_tick = tokio::time::interval(Duration::from_millis(20));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        loop {
            tokio::select! {
                Some(e) = net.recv() => node.on_net(e)?,
                Some(i) = internal_rx.recv() => node.on_internal(i)?,
                Some(call) = api.recv() => {
                    if call.method == "broadcast_tx_commit" {
                        node.broadcast_tx_commit(call);
                    } else {
                        let result = node.api(&call.method, &call.params, call.verified_tx);
                        let _ = call.reply.send(result);
                    }
                }
                _ = tick.tick() => node.on_tick(),
                _ = gossip_tick.tick() => node.flush_txs(),
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
            }
        }
        tracing::info!("shutting down");
        node.wal.sync().context("syncing the WAL")?;
        node.store.flush().context("flushing the block store")?;
        tracing::info!(height = node.chain.next_height() - 1, "shut down cleanly");
        Ok(())
    }

    /// Starts the next height, replaying what the WAL holds for it (a restart mid-height).
    fn resume(&mut self, records: Vec<WalRecord>) -> Result<()> {
        let next = self.chain.next_height();
        let records: Vec<WalRecord> = records
            .into_iter()
            .filter(|r| r.height().0 == next)
            .collect();
        if records.is_empty() {
            return self.start_height(next);
        }
        tracing::info!(
            height = next,
            records = records.len(),
            "replaying the consensus WAL"
        );
        let mut outputs = self
            .engine
            .handle(Input::NewHeight {
                height: Height(next),
                validators: self.chain.validators().clone(),
            })
            .context("starting the engine")?;
        for r in &records {
            let inputs = match r {
                WalRecord::Proposal { proposal, block } => {
                    self.blocks.insert(block.id(), (**block).clone());
                    let valid = self
                        .chain
                        .check_proposal(block, proposal.proposal.round)
                        .is_ok();
                    vec![
                        Input::Proposal(proposal.clone()),
                        Input::ProposalValidity {
                            height: proposal.proposal.height,
                            block_id: block.id(),
                            valid,
                        },
                    ]
                }
                WalRecord::Vote(v) => vec![Input::Vote(v.clone())],
                WalRecord::Timeout {
                    height,
                    round,
                    kind,
                } => match kind_of(*kind) {
                    Some(kind) => vec![Input::TimeoutElapsed {
                        height: *height,
                        round: *round,
                        kind,
                    }],
                    None => vec![],
                },
            };
            for i in inputs {
                if let Ok(o) = self.engine.handle(i) {
                    outputs.extend(o);
                }
            }
            // Own messages go out again: peers may have missed them before the crash.
            match r {
                WalRecord::Proposal { proposal, block }
                    if Some(proposal.proposal.proposer) == self.me =>
                {
                    let msg = ConsensusMsg::Proposal {
                        proposal: proposal.clone(),
                        block: block.clone(),
                    };
                    self.publish_consensus(&msg);
                }
                WalRecord::Vote(v) if Some(v.vote.validator) == self.me => {
                    self.publish_consensus(&ConsensusMsg::Vote(v.clone()));
                }
                _ => {}
            }
        }
        let mut work = VecDeque::new();
        for o in outputs {
            self.execute(o, &mut work)?;
        }
        self.drain(work)
    }

    fn start_height(&mut self, height: u64) -> Result<()> {
        if height != self.chain.next_height() || self.engine.height().0 >= height {
            return Ok(());
        }
        if !self.settings.create_empty_blocks
            && self.mempool.is_empty()
            && !self.future.iter().any(|m| m.height() == height)
        {
            self.waiting_start = Some(height);
            return Ok(());
        }
        self.waiting_start = None;
        self.blocks.clear();
        self.last_progress = Instant::now();
        self.feed(Input::NewHeight {
            height: Height(height),
            validators: self.chain.validators().clone(),
        })?;
        let (ready, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.future)
            .into_iter()
            .partition(|m| m.height() == height);
        self.future = later.into_iter().filter(|m| m.height() > height).collect();
        for m in ready {
            self.on_consensus(m)?;
        }
        Ok(())
    }

    /// Feeds one input and carries out everything that follows from it.
    fn feed(&mut self, input: Input) -> Result<()> {
        self.drain(VecDeque::from([input]))
    }

    fn drain(&mut self, mut work: VecDeque<Input>) -> Result<()> {
        while let Some(input) = work.pop_front() {
            let record = self.wal_record(&input);
            match self.engine.handle(input) {
                Ok(outputs) => {
                    if let Some(r) = record {
                        self.wal.append(&r, false)?;
                    }
                    for o in outputs {
                        self.execute(o, &mut work)?;
                    }
                }
                Err(e) => tracing::trace!("input refused: {e}"),
            }
        }
        Ok(())
    }

    /// The WAL record for an input from elsewhere (own signed messages are written, durably,
    /// when they are signed). Late votes of the previous height only feed equivocation
    /// detection and are not recorded.
    fn wal_record(&self, input: &Input) -> Option<WalRecord> {
        match input {
            Input::Proposal(p) if Some(p.proposal.proposer) != self.me => {
                let block = self.blocks.get(&p.proposal.block_id)?.clone();
                Some(WalRecord::Proposal {
                    proposal: p.clone(),
                    block: Box::new(block),
                })
            }
            Input::Vote(v)
                if Some(v.vote.validator) != self.me && v.vote.height == self.engine.height() =>
            {
                Some(WalRecord::Vote(v.clone()))
            }
            Input::TimeoutElapsed {
                height,
                round,
                kind,
            } => Some(WalRecord::Timeout {
                height: *height,
                round: *round,
                kind: kind_code(*kind),
            }),
            _ => None,
        }
    }

    pub(crate) fn publish_consensus(&self, msg: &ConsensusMsg) {
        if let Err(e) = self.p2p.publish(Topic::Consensus, wire::encode(msg)) {
            tracing::warn!("publish: {e}");
        }
    }

    fn execute(&mut self, output: Output, work: &mut VecDeque<Input>) -> Result<()> {
        match output {
            Output::Propose(p) => {
                let Some(block) = self.blocks.get(&p.block_id).cloned() else {
                    return Ok(());
                };
                let Some(signer) = self.signer.as_mut() else {
                    return Ok(());
                };
                let signed = match signer.sign_proposal(p) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("not signing the proposal: {e}");
                        return Ok(());
                    }
                };
                let record = WalRecord::Proposal {
                    proposal: signed.clone(),
                    block: Box::new(block.clone()),
                };
                self.wal.append(&record, true)?;
                let (height, block_id) = (signed.proposal.height, block.id());
                #[cfg(feature = "byzantine")]
                self.misbehave_propose(&signed, &block);
                self.publish_consensus(&ConsensusMsg::Proposal {
                    proposal: signed.clone(),
                    block: Box::new(block),
                });
                work.push_back(Input::Proposal(signed));
                work.push_back(Input::ProposalValidity {
                    height,
                    block_id,
                    valid: true,
                });
            }
            Output::Vote(v) => {
                let Some(signer) = self.signer.as_mut() else {
                    return Ok(());
                };
                let signed = match signer.sign_vote(v) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("not signing the vote: {e}");
                        return Ok(());
                    }
                };
                self.wal.append(&WalRecord::Vote(signed.clone()), true)?;
                self.publish_consensus(&ConsensusMsg::Vote(signed.clone()));
                #[cfg(feature = "byzantine")]
                self.misbehave_vote(&signed);
                work.push_back(Input::Vote(signed));
            }
            Output::ScheduleTimeout {
                height,
                round,
                kind,
                after,
            } => {
                let tx = self.internal.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    let _ = tx.send(Internal::Timeout {
                        height,
                        round,
                        kind,
                    });
                });
            }
            Output::RequestValue { height, round } => {
                // After a restart the WAL may already hold our proposal for this round.
                let already = self
                    .engine
                    .proposals()
                    .any(|p| p.proposal.round == round && Some(p.proposal.proposer) == self.me);
                let Some(me) = self.me else {
                    return Ok(());
                };
                if already || height.0 != self.chain.next_height() {
                    return Ok(());
                }
                let limits = &self.chain.genesis.consensus_params.block;
                let txs = self
                    .mempool
                    .reap(limits.max_txs as usize, limits.max_bytes as usize);
                let max_evidence = self.chain.genesis.consensus_params.evidence.max_bytes as usize;
                let chain = &self.chain;
                let evidence = self
                    .evidence
                    .for_block(max_evidence, |ev| chain.check_evidence(ev));
                let block = self.chain.build_block(me, now(), txs, evidence);
                let block_id = block.id();
                self.blocks.insert(block_id, block);
                work.push_back(Input::ValueReady {
                    height,
                    round,
                    block_id,
                });
            }
            Output::Decide {
                height,
                round,
                proposal,
                commit,
            } => {
                let Some(block) = self.blocks.get(&proposal.proposal.block_id).cloned() else {
                    tracing::error!(%height, "decided a block this node does not have");
                    return Ok(());
                };
                self.commit_block(block, commit, round.0, None)?;
                let next = height.0 + 1;
                let tx = self.internal.clone();
                let after = self.settings.timeout_commit;
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    let _ = tx.send(Internal::StartHeight(next));
                });
            }
            Output::Evidence(ev) => {
                tracing::warn!(
                    validator = %ev.vote_a.vote.validator,
                    height = %ev.vote_a.vote.height,
                    round = %ev.vote_a.vote.round,
                    kind = ?ev.vote_a.vote.vote_type,
                    "equivocation detected"
                );
                let ev = basalt_types::Evidence::DuplicateVote(ev);
                if self.admit_evidence(ev.clone())? {
                    if let Err(e) = self.p2p.publish(Topic::Evidence, wire::encode(&ev)) {
                        tracing::warn!("publish evidence: {e}");
                    }
                }
            }
        }
        Ok(())
    }

    /// Executes and stores a decided block (from consensus or block sync). `synced`: it came
    /// from block sync with its transaction signatures already checked (`sigs_checked`), and
    /// the caller flushes the store and resets the WAL once per batch.
    fn commit_block(
        &mut self,
        block: Block,
        commit: Commit,
        round: u32,
        synced: Option<bool>,
    ) -> Result<()> {
        let height = block.header.height.0;
        let trusted = synced == Some(true) || self.mempool.all_verified(&block.txs);
        let applied = self
            .chain
            .execute(&block, commit.clone(), trusted)
            .with_context(|| format!("executing block {height}"))?;
        let (results, set) = (&applied.results, &self.chain.schedule.next);
        if synced.is_some() {
            self.store
                .save_block_unflushed(&block, &commit, results, set)
        } else {
            self.store.save_block(&block, &commit, results, set)
        }
        .with_context(|| format!("storing block {height}"))?;
        if synced.is_none() {
            self.wal.reset()?;
        }
        self.mempool.update(&self.chain.runtime, &block.txs);
        for (ev, result) in block.evidence.iter().zip(&applied.result.evidence_results) {
            let basalt_types::Evidence::DuplicateVote(d) = ev;
            match result {
                Ok(o) => tracing::warn!(
                    height,
                    validator = %d.vote_a.vote.validator,
                    operator = ?o.operator,
                    infraction_height = %d.vote_a.vote.height,
                    burned = %o.burned(),
                    "committed evidence: validator slashed, jailed and tombstoned"
                ),
                Err(e) => tracing::warn!(height, "committed evidence rejected by the runtime: {e}"),
            }
        }
        let chain = &self.chain;
        self.evidence
            .update(&self.store, &block.evidence, |ev| chain.check_evidence(ev))?;
        let now = Instant::now();
        let interval_ms = self
            .last_commit_at
            .map_or(0, |t| now.duration_since(t).as_millis() as u64);
        self.last_commit_at = Some(now);
        self.last_progress = now;
        let failed = applied.failed_txs();
        self.after_commit(&block, &applied, interval_ms);
        tracing::info!(
            height,
            txs = block.txs.len(),
            failed,
            round,
            interval_ms,
            hash = %block.id(),
            proposer = %block.header.proposer_address,
            "committed block"
        );
        Ok(())
    }

    /// Metrics, events for WebSocket subscribers, and `broadcast_tx_commit` replies.
    fn after_commit(&mut self, block: &Block, applied: &crate::chain::Applied, interval_ms: u64) {
        use basalt_rpc::{shapes, RpcEvent};
        use serde_json::json;
        use std::sync::Arc;
        let height = block.header.height.0;
        let m = &self.metrics;
        m.height.set(height as i64);
        if interval_ms > 0 {
            m.block_interval_seconds
                .observe(interval_ms as f64 / 1000.0);
        }
        m.txs_per_block.observe(block.txs.len() as f64);
        m.total_txs.inc_by(block.txs.len() as u64);
        m.evidence_committed.inc_by(block.evidence.len() as u64);
        if let Some(c) = block.last_commit.as_ref() {
            if let Some(prev) = self.store.validator_set(c.height.0).ok().flatten() {
                for v in prev.validators() {
                    if !c.signatures.iter().any(|s| s.validator == v.address) {
                        m.missed_blocks
                            .get_or_create(&crate::metrics::ValidatorLabel {
                                validator: v.address.to_hex(),
                            })
                            .inc();
                    }
                }
            }
        }
        m.validator_power.clear();
        for v in self.chain.validators().validators() {
            m.validator_power
                .get_or_create(&crate::metrics::ValidatorLabel {
                    validator: v.address.to_hex(),
                })
                .set(v.voting_power as i64);
        }
        m.mempool_size.set(self.mempool.len() as i64);
        m.mempool_bytes.set(self.mempool.size_bytes() as i64);

        let listening = self.events.receiver_count() > 0;
        let attrs = |kind: &str| {
            vec![
                ("tm.event".to_string(), kind.to_string()),
                ("block.height".to_string(), height.to_string()),
            ]
        };
        if listening {
            let new_block = json!({"type": "tendermint/event/NewBlock", "value": {
                "block": shapes::block(block), "block_id": shapes::block_id(Some(block.id())),
                "result_finalize_block": {"events": [], "tx_results": [], "validator_updates": [],
                    "app_hash": shapes::b64(applied.result.app_hash.as_bytes())}}});
            let _ = self.events.send(RpcEvent {
                attributes: Arc::new(attrs("NewBlock")),
                data: Arc::new(new_block),
            });
            let header = json!({"type": "tendermint/event/NewBlockHeader", "value": {"header": shapes::header(&block.header)}});
            let _ = self.events.send(RpcEvent {
                attributes: Arc::new(attrs("NewBlockHeader")),
                data: Arc::new(header),
            });
            if !applied.result.validator_updates.is_empty() {
                let updates: Vec<_> = applied.result.validator_updates.iter().map(|u| json!({
                    "address": u.public_key.address().to_hex(), "pub_key": shapes::pub_key(&u.public_key),
                    "voting_power": u.power.to_string(), "proposer_priority": "0"})).collect();
                let data = json!({"type": "tendermint/event/ValidatorSetUpdates", "value": {"validator_updates": updates}});
                let _ = self.events.send(RpcEvent {
                    attributes: Arc::new(attrs("ValidatorSetUpdates")),
                    data: Arc::new(data),
                });
            }
        }
        let outcomes = block.txs.iter().zip(&applied.results.txs);
        for (index, (tx, outcome)) in outcomes.enumerate() {
            let hash = basalt_runtime::tx_hash(tx);
            let waiters = self.commit_waiters.remove(&hash);
            if !listening && waiters.is_none() {
                continue;
            }
            let rec = &crate::store::TxRecord::new(height, index as u32, tx, outcome);
            let result = crate::api::tx_result_json(&hash, rec);
            if listening {
                let mut a = rec.attributes(&hash);
                a.push(("tm.event".into(), "Tx".into()));
                let data = json!({"type": "tendermint/event/Tx", "value": {"TxResult": {
                    "height": height.to_string(), "index": rec.index, "tx": shapes::b64(&rec.tx), "result": result}}});
                let _ = self.events.send(RpcEvent {
                    attributes: Arc::new(a),
                    data: Arc::new(data),
                });
            }
            for w in waiters.into_iter().flatten() {
                let _ = w
                    .reply
                    .send(Ok(json!({"check_tx": w.check_tx, "tx_result": result,
                    "hash": hash.to_hex(), "height": height.to_string()})));
            }
        }
    }

    /// `broadcast_tx_commit`: admit, then answer once the transaction is in a block (or the
    /// wait times out).
    fn broadcast_tx_commit(&mut self, call: ApiCall) {
        let tx = match basalt_rpc::param_bytes(&call.params, "tx") {
            Ok(Some(tx)) => tx,
            Ok(None) => {
                let _ = call
                    .reply
                    .send(Err(RpcError::invalid_params("tx is required")));
                return;
            }
            Err(e) => {
                let _ = call.reply.send(Err(e));
                return;
            }
        };
        let (r, hash) = self.submit_tx(tx, call.verified_tx);
        let check_tx = crate::api::check_tx_json(&r);
        if !r.is_ok() {
            let _ = call.reply.send(Ok(serde_json::json!({"check_tx": check_tx,
                "tx_result": basalt_rpc::shapes::tx_result(0, "", serde_json::json!([])),
                "hash": hash.to_hex(), "height": "0"})));
            return;
        }
        self.commit_waiters
            .entry(hash)
            .or_default()
            .push(CommitWaiter {
                deadline: Instant::now() + self.settings.broadcast_tx_commit_timeout,
                check_tx,
                reply: call.reply,
            });
    }

    /// Keeps and gossips evidence from the RPC; whether it was new.
    pub(crate) fn submit_evidence(&mut self, ev: basalt_types::Evidence) -> Result<bool> {
        let new = self.admit_evidence(ev.clone())?;
        if new {
            if let Err(e) = self.p2p.publish(Topic::Evidence, wire::encode(&ev)) {
                tracing::warn!("publish evidence: {e}");
            }
        }
        Ok(new)
    }

    fn on_internal(&mut self, i: Internal) -> Result<()> {
        match i {
            Internal::Timeout {
                height,
                round,
                kind,
            } => self.feed(Input::TimeoutElapsed {
                height,
                round,
                kind,
            }),
            Internal::StartHeight(h) => self.start_height(h),
            Internal::SyncReply { peer, response } => self.on_sync_reply(peer, response),
        }
    }

    fn on_net(&mut self, e: NetEvent) -> Result<()> {
        match e {
            NetEvent::Message {
                topic,
                source,
                id,
                data,
            } => {
                let verdict = match topic {
                    Topic::Consensus => self.on_consensus_gossip(&data)?,
                    Topic::Txs => self.on_tx_gossip(&data),
                    Topic::Evidence => self.on_evidence_gossip(&data)?,
                };
                if verdict == Verdict::Reject {
                    tracing::warn!(peer = %source, ?topic, "invalid gossip message rejected");
                }
                let _ = self.p2p.verdict(id, source, verdict);
            }
            NetEvent::Request(req) => {
                let reply = match wire::decode::<SyncRequest>(&req.data) {
                    Ok(r) => self.answer(r)?,
                    Err(e) => {
                        let _ = self.p2p.penalise(req.peer, "malformed sync request");
                        SyncResponse::Refused(format!("malformed request: {e}"))
                    }
                };
                let _ = self.p2p.respond(req.id, wire::encode(&reply));
            }
            NetEvent::PeerConnected {
                peer,
                addr,
                outbound,
            } => {
                self.peers.insert(peer, 0);
                let ip = addr
                    .iter()
                    .find_map(|p| match p {
                        basalt_p2p::Protocol::Ip4(ip) => Some(ip.to_string()),
                        basalt_p2p::Protocol::Ip6(ip) => Some(ip.to_string()),
                        _ => None,
                    })
                    .unwrap_or_default();
                self.peer_info.insert(
                    peer,
                    PeerInfo {
                        addr: addr.to_string(),
                        ip,
                        outbound,
                        since: now(),
                    },
                );
                self.ask_status(peer);
            }
            NetEvent::PeerDisconnected(p) | NetEvent::PeerBanned(p) => {
                self.peers.remove(&p);
                self.peer_info.remove(&p);
            }
        }
        Ok(())
    }

    /// The validator set that signs messages of `height`, if this node knows it.
    fn set_for(&self, height: u64) -> Option<&ValidatorSet> {
        let next = self.chain.next_height();
        if height == next {
            Some(&self.chain.schedule.current)
        } else if height == next + 1 {
            Some(&self.chain.schedule.next)
        } else if height + 1 == next {
            self.chain.last_set.as_ref()
        } else {
            None
        }
    }

    /// Signature and membership checks that decide whether a message may be forwarded.
    fn check_consensus(&self, m: &ConsensusMsg) -> Result<(), String> {
        let Some(set) = self.set_for(m.height()) else {
            return Err("height outside the window".into());
        };
        let chain_id = self.chain.chain_id();
        match m {
            ConsensusMsg::Proposal { proposal, block } => {
                let v = set
                    .get(&proposal.proposal.proposer)
                    .ok_or("proposer is not a validator")?;
                proposal
                    .verify(chain_id, &v.public_key)
                    .map_err(|e| e.to_string())?;
                if block.id() != proposal.proposal.block_id {
                    return Err("block does not match the proposal".into());
                }
            }
            ConsensusMsg::Vote(vote) => {
                let v = set
                    .get(&vote.vote.validator)
                    .ok_or("voter is not a validator")?;
                vote.verify(chain_id, &v.public_key)
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    fn on_consensus_gossip(&mut self, data: &[u8]) -> Result<Verdict> {
        let Ok(m) = wire::decode::<ConsensusMsg>(data) else {
            return Ok(Verdict::Reject);
        };
        let next = self.chain.next_height();
        if m.height() + 1 < next || m.height() > next + 1 {
            return Ok(Verdict::Ignore);
        }
        if let Err(e) = self.check_consensus(&m) {
            tracing::debug!("consensus message refused: {e}");
            return Ok(Verdict::Reject);
        }
        self.on_consensus(m)?;
        Ok(Verdict::Accept)
    }

    /// A checked consensus message: into the engine now, or kept for the next height.
    fn on_consensus(&mut self, m: ConsensusMsg) -> Result<()> {
        let height = m.height();
        if height > self.engine.height().0 && height >= self.chain.next_height() {
            if self.future.len() < MAX_FUTURE {
                self.future.push(m);
            }
            if self.waiting_start == Some(height) {
                self.start_height(height)?;
            }
            return Ok(());
        }
        match m {
            ConsensusMsg::Proposal { proposal, block } => {
                if height != self.engine.height().0 {
                    return Ok(());
                }
                let block_id = block.id();
                let valid = match self.chain.check_proposal(&block, proposal.proposal.round) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(height, "invalid proposed block: {e}");
                        false
                    }
                };
                self.blocks.insert(block_id, *block);
                let mut work = VecDeque::new();
                work.push_back(Input::Proposal(proposal));
                work.push_back(Input::ProposalValidity {
                    height: Height(height),
                    block_id,
                    valid,
                });
                self.drain(work)
            }
            // Votes for later heights were buffered above; anything else the engine refuses
            // (old heights, duplicates) changes nothing.
            ConsensusMsg::Vote(v) => self.feed(Input::Vote(v)),
        }
    }

    fn on_tx_gossip(&mut self, data: &[u8]) -> Verdict {
        let Ok(TxBatch(txs)) = wire::decode::<TxBatch>(data) else {
            return Verdict::Reject;
        };
        let mut any_bad = false;
        // The batch's signatures at once (batched, over the cores); only a batch holding a
        // bad one is checked transaction by transaction.
        let checked = crate::sigcheck::all_valid(&txs);
        for tx in txs {
            let (r, _) = self.mempool.add(&self.chain.runtime, tx, checked);
            // Malformed, oversized, wrong chain or bad signature: no honest node sends these.
            any_bad |= matches!(r.code, 1..=4);
        }
        self.wake_waiting_height();
        if any_bad {
            Verdict::Reject
        } else {
            Verdict::Accept
        }
    }

    fn on_evidence_gossip(&mut self, data: &[u8]) -> Result<Verdict> {
        let Ok(ev) = wire::decode::<basalt_types::Evidence>(data) else {
            return Ok(Verdict::Reject);
        };
        let basalt_types::Evidence::DuplicateVote(d) = &ev;
        // Forged evidence (bad signatures, same block twice) is an attack; stale or
        // already-punished evidence is just late.
        let chain_id = self.chain.chain_id();
        let forged = match self
            .chain
            .runtime
            .staking()
            .validator_by_consensus(&d.vote_a.vote.validator)
        {
            Some(v) => d.verify(chain_id, &v.consensus_key).is_err(),
            None => true,
        };
        if forged {
            return Ok(Verdict::Reject);
        }
        Ok(if self.admit_evidence(ev)? {
            Verdict::Accept
        } else {
            Verdict::Ignore
        })
    }

    /// Checks and keeps evidence; whether it is new and valid.
    fn admit_evidence(&mut self, ev: basalt_types::Evidence) -> Result<bool> {
        let chain = &self.chain;
        match self
            .evidence
            .add(&self.store, ev, |e| chain.check_evidence(e))
        {
            Ok(new) => Ok(new),
            Err(crate::evidence_pool::PoolError::Store(e)) => Err(e.into()),
            Err(e) => {
                tracing::debug!("evidence not kept: {e}");
                Ok(false)
            }
        }
    }

    /// Admits a transaction from a client and queues it for gossip; `verified`: the hash
    /// whose signature the RPC task already checked (anything else is checked here).
    pub(crate) fn submit_tx(
        &mut self,
        tx: Vec<u8>,
        verified: Option<basalt_types::Hash>,
    ) -> (basalt_runtime::TxResult, basalt_types::Hash) {
        let checked = verified.is_some_and(|h| h == basalt_runtime::tx_hash(&tx));
        let (r, hash) = self.mempool.add(&self.chain.runtime, tx.clone(), checked);
        if r.is_ok() {
            self.tx_outbox.push(tx);
            self.wake_waiting_height();
        }
        (r, hash)
    }

    /// A height held back for want of transactions (`create_empty_blocks = false`) starts
    /// once the mempool has some.
    fn wake_waiting_height(&self) {
        if let Some(h) = self.waiting_start.filter(|_| !self.mempool.is_empty()) {
            let _ = self.internal.send(Internal::StartHeight(h));
        }
    }

    fn flush_txs(&mut self) {
        if self.tx_outbox.is_empty() {
            return;
        }
        let batch = TxBatch(std::mem::take(&mut self.tx_outbox));
        if let Err(e) = self.p2p.publish(Topic::Txs, wire::encode(&batch)) {
            tracing::warn!("publish txs: {e}");
        }
    }

    fn answer(&self, r: SyncRequest) -> Result<SyncResponse> {
        Ok(match r {
            SyncRequest::Status => SyncResponse::Status {
                last_height: self.chain.next_height() - 1,
            },
            SyncRequest::Blocks { from, count } => {
                let mut out = Vec::new();
                let mut bytes = 0usize;
                for h in from..from.saturating_add(u64::from(count.min(MAX_BLOCKS_PER_REPLY))) {
                    let (Some(b), Some(c)) = (self.store.block(h)?, self.store.commit(h)?) else {
                        break;
                    };
                    bytes += b.txs.iter().map(Vec::len).sum::<usize>() + 1024;
                    out.push((b, c));
                    if bytes > 16 * 1024 * 1024 {
                        break;
                    }
                }
                SyncResponse::Blocks(out)
            }
            SyncRequest::Catchup { height } => {
                let mut msgs = Vec::new();
                if height == self.engine.height().0 {
                    for p in self.engine.proposals() {
                        if let Some(block) = self.blocks.get(&p.proposal.block_id) {
                            msgs.push(ConsensusMsg::Proposal {
                                proposal: p.clone(),
                                block: Box::new(block.clone()),
                            });
                        }
                    }
                    msgs.extend(
                        self.engine
                            .votes()
                            .all_votes()
                            .cloned()
                            .map(ConsensusMsg::Vote),
                    );
                }
                SyncResponse::Catchup(msgs)
            }
            SyncRequest::Evidence => SyncResponse::Evidence(self.evidence.all().cloned().collect()),
        })
    }

    fn request(&self, peer: PeerId, r: SyncRequest) {
        let p2p = self.p2p.clone();
        let tx = self.internal.clone();
        tokio::spawn(async move {
            let response = match p2p.request(peer, wire::encode(&r)).await {
                Ok(bytes) => wire::decode::<SyncResponse>(&bytes),
                Err(e) => Err(e.to_string()),
            };
            let _ = tx.send(Internal::SyncReply { peer, response });
        });
    }

    fn ask_status(&self, peer: PeerId) {
        self.request(peer, SyncRequest::Status);
    }

    fn on_tick(&mut self) {
        self.ticks += 1;
        let now = Instant::now();
        self.commit_waiters.retain(|hash, waiters| {
            let (expired, waiting): (Vec<_>, Vec<_>) = waiters
                .drain(..)
                .partition(|w| w.deadline <= now || w.reply.is_closed());
            for w in expired {
                let _ = w.reply.send(Err(RpcError::internal(format!(
                    "timed out waiting for tx {} to be included in a block",
                    hash.to_hex()
                ))));
            }
            *waiters = waiting;
            !waiters.is_empty()
        });
        self.metrics.peers.set(self.peers.len() as i64);
        self.metrics.round.set(i64::from(self.engine.round().0));
        self.metrics.mempool_size.set(self.mempool.len() as i64);
        self.metrics
            .mempool_bytes
            .set(self.mempool.size_bytes() as i64);
        for p in self.peers.keys().copied().collect::<Vec<_>>() {
            self.ask_status(p);
            // Evidence whose gossip a peer missed (it was down, or partitioned) comes back
            // this way every few seconds.
            if self.ticks.is_multiple_of(6) {
                self.request(p, SyncRequest::Evidence);
            }
        }
        let best = self.peers.values().copied().max().unwrap_or(0);
        let next = self.chain.next_height();
        self.catching_up = best >= next + 2;
        if self.last_progress.elapsed() > STUCK_AFTER && self.engine.height().0 == next {
            for p in self.peers.keys().copied().collect::<Vec<_>>() {
                self.request(p, SyncRequest::Catchup { height: next });
            }
            self.last_progress = Instant::now();
        }
    }

    fn on_sync_reply(
        &mut self,
        peer: PeerId,
        response: Result<SyncResponse, String>,
    ) -> Result<()> {
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(%peer, "sync request failed: {e}");
                self.sync_in_flight = false;
                return Ok(());
            }
        };
        match response {
            SyncResponse::Status { last_height } => {
                if let Some(h) = self.peers.get_mut(&peer) {
                    *h = last_height;
                }
                let next = self.chain.next_height();
                if last_height >= next && !self.sync_in_flight {
                    self.sync_in_flight = true;
                    let count =
                        (last_height - next + 1).min(u64::from(MAX_BLOCKS_PER_REPLY)) as u32;
                    self.request(peer, SyncRequest::Blocks { from: next, count });
                }
            }
            SyncResponse::Blocks(blocks) => {
                self.sync_in_flight = false;
                // Read ahead: ask for the next range before executing this one, so the
                // peer serves it while we work.
                let target = self.peers.get(&peer).copied().unwrap_or(0);
                if let Some((last, _)) = blocks.last() {
                    let from = last.header.height.0 + 1;
                    if target >= from && from > self.chain.next_height() {
                        self.sync_in_flight = true;
                        let count = (target - from + 1).min(u64::from(MAX_BLOCKS_PER_REPLY)) as u32;
                        self.request(peer, SyncRequest::Blocks { from, count });
                    }
                }
                self.apply_synced(peer, blocks)?;
            }
            SyncResponse::Catchup(msgs) => {
                for m in msgs {
                    if m.height() == self.chain.next_height() && self.check_consensus(&m).is_ok() {
                        self.on_consensus(m)?;
                    }
                }
            }
            SyncResponse::Evidence(list) => {
                for ev in list.into_iter().take(100) {
                    self.admit_evidence(ev)?;
                }
            }
            SyncResponse::Refused(reason) => tracing::debug!(%peer, "sync refused: {reason}"),
        }
        Ok(())
    }

    fn apply_synced(&mut self, peer: PeerId, blocks: Vec<(Block, Commit)>) -> Result<()> {
        let target = self.peers.get(&peer).copied().unwrap_or(0);
        let mut applied = 0u64;
        for (block, commit) in blocks {
            let height = block.header.height.0;
            if height < self.chain.next_height() {
                continue;
            }
            if height > self.chain.next_height() {
                // A read-ahead reply past a batch that stopped early: ask again later.
                break;
            }
            if let Err(e) = self.chain.check_synced(&block, &commit) {
                tracing::warn!(%peer, height, "invalid synced block: {e}");
                let _ = self
                    .p2p
                    .penalise(peer, format!("invalid block {height}: {e}"));
                break;
            }
            let round = commit.round.0;
            // Every signature of the block at once, in batches over all cores; a block with
            // a bad one is executed with per-transaction checks (the bad ones fail there).
            let sigs_ok = crate::sigcheck::all_valid(&block.txs);
            self.commit_block(block, commit, round, Some(sigs_ok))?;
            applied += 1;
        }
        if applied == 0 {
            return Ok(());
        }
        // One durable write for the whole batch; then the WAL of the heights left behind goes.
        self.store.flush().context("flushing synced blocks")?;
        self.wal.reset()?;
        let next = self.chain.next_height();
        let (started, base) = *self
            .sync_progress
            .get_or_insert((Instant::now(), next - applied));
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        let rate = (next - base) as f64 / secs;
        let remaining = target.saturating_sub(next - 1);
        if remaining == 0
            || self
                .sync_logged_at
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            self.sync_logged_at = Some(Instant::now());
            tracing::info!(
                height = next - 1,
                target,
                blocks_per_s = format!("{rate:.1}"),
                eta_s = format!("{:.0}", remaining as f64 / rate.max(1e-3)),
                "block sync"
            );
        }
        if remaining == 0 {
            self.sync_progress = None;
            self.sync_logged_at = None;
        }
        // Join consensus at the new height; messages we got for it meanwhile are buffered.
        self.start_height(next)?;
        // Ask for more at once when the peer is further ahead.
        if target >= next && !self.sync_in_flight {
            self.sync_in_flight = true;
            let count = (target - next + 1).min(u64::from(MAX_BLOCKS_PER_REPLY)) as u32;
            self.request(peer, SyncRequest::Blocks { from: next, count });
        }
        Ok(())
    }
}
