//! The tokio shell around the [`Driver`]: it turns network messages, timers, ticks and RPC
//! calls into driver events, and carries out the effects the driver returns (publish,
//! answer, request, penalise, arm a timer) in order. It also keeps what only the RPC needs:
//! peers' addresses, `broadcast_tx_commit` waiters, metrics and WebSocket events. Every
//! decision is the driver's, so the simulator tests the logic that ships.

use crate::driver::{Committed, Driver, Effect, Event, Fatal, Now, Timer};
use crate::rpc_backend::snapshot::Snapshot;
use crate::wire::{self, SyncResponse};
use anyhow::{Context, Result};
use basalt_p2p::{Event as NetEvent, MessageId, P2pHandle, PeerId};
use basalt_rpc::RpcError;
use basalt_types::Timestamp;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

/// An RPC request waiting for the node's answer.
pub struct ApiCall {
    pub request: crate::api::Request,
    pub reply: oneshot::Sender<Result<Value, RpcError>>,
}

pub(crate) enum Internal {
    Timer(Timer),
    SyncReply {
        peer: PeerId,
        response: Result<SyncResponse, String>,
    },
}

pub struct NodeSettings {
    /// How long `broadcast_tx_commit` waits for the block (CometBFT: 10 s).
    pub broadcast_tx_commit_timeout: Duration,
}

pub struct Node {
    pub(crate) settings: NodeSettings,
    pub(crate) driver: Driver,
    pub(crate) p2p: P2pHandle,
    internal: mpsc::UnboundedSender<Internal>,
    pub(crate) peer_info: HashMap<PeerId, Arc<PeerInfo>>,
    /// Where reads find the node's latest state, and what it was last published for.
    snapshot: watch::Sender<Arc<Snapshot>>,
    snapshot_key: Option<(u64, u64, u32, u8, usize)>,
    events: tokio::sync::broadcast::Sender<basalt_rpc::RpcEvent>,
    pub(crate) metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// `broadcast_tx_commit` calls waiting for their transaction's block.
    commit_waiters: HashMap<basalt_types::Hash, Vec<CommitWaiter>>,
    started: Instant,
    /// A fatal error met while answering an RPC call: the loop stops on it.
    fatal: Option<Fatal>,
    state_snapshots: Option<crate::statesync::files::SnapshotDir>,
}

#[derive(Clone)]
pub struct PeerInfo {
    pub addr: String,
    pub ip: String,
    pub outbound: bool,
    pub since: Timestamp,
    /// What the peer says of itself (libp2p identify), once it has: its moniker, software
    /// version and the address it listens on; empty until then.
    pub moniker: String,
    pub version: String,
    pub listen_addr: String,
}

/// A Basalt peer's agent version `basalt/<version>/<moniker>` as (version, moniker); another
/// program's agent version is kept whole as its version.
fn parse_agent_version(agent: &str) -> (String, String) {
    match agent
        .strip_prefix("basalt/")
        .and_then(|r| r.split_once('/'))
    {
        Some((version, moniker)) => (version.to_string(), moniker.to_string()),
        None => (agent.to_string(), String::new()),
    }
}

/// `host:port` of a `/ip4|ip6/../tcp/..` address, as CometBFT's `listen_addr` shows it.
fn tcp_host_port(addr: &basalt_p2p::Multiaddr) -> Option<String> {
    let mut host = None;
    for p in addr.iter() {
        match p {
            basalt_p2p::Protocol::Ip4(ip) => host = Some(ip.to_string()),
            basalt_p2p::Protocol::Ip6(ip) => host = Some(format!("[{ip}]")),
            basalt_p2p::Protocol::Tcp(port) => return host.map(|h| format!("{h}:{port}")),
            _ => {}
        }
    }
    None
}

struct CommitWaiter {
    deadline: Instant,
    check_tx: Value,
    reply: oneshot::Sender<Result<Value, RpcError>>,
}

pub struct NodeParts {
    pub settings: NodeSettings,
    pub driver: Driver,
    pub wal_records: Vec<crate::wal_record::WalRecord>,
    pub p2p: P2pHandle,
    pub events: tokio::sync::broadcast::Sender<basalt_rpc::RpcEvent>,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    pub snapshot: watch::Sender<Arc<Snapshot>>,
    /// The state snapshots this node serves to peers (state sync), if it takes any.
    pub state_snapshots: Option<crate::statesync::files::SnapshotDir>,
    /// Network events received before the node ran (peers that connected during a state
    /// sync), handled first.
    pub replay: Vec<NetEvent>,
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

/// Where an event came from, for the effects that answer it.
#[derive(Clone)]
enum Origin {
    None,
    Gossip(MessageId, PeerId, basalt_p2p::Topic),
    Request(u64),
}

impl Node {
    /// Runs until ctrl-c / SIGTERM or a fatal error.
    pub async fn run(
        parts: NodeParts,
        mut net: mpsc::Receiver<NetEvent>,
        mut api: mpsc::Receiver<ApiCall>,
    ) -> Result<()> {
        let (internal, mut internal_rx) = mpsc::unbounded_channel();
        let mut node = Node {
            settings: parts.settings,
            driver: parts.driver,
            p2p: parts.p2p,
            internal,
            peer_info: HashMap::new(),
            snapshot: parts.snapshot,
            snapshot_key: None,
            events: parts.events,
            metrics: parts.metrics,
            commit_waiters: HashMap::new(),
            started: Instant::now(),
            fatal: None,
            state_snapshots: parts.state_snapshots,
        };
        node.step(
            Event::Start {
                wal: parts.wal_records,
            },
            Origin::None,
        )?;
        for e in parts.replay {
            node.on_net(e)?;
        }
        let mut tick = tokio::time::interval(crate::driver::TICK);
        let mut gossip_tick = tokio::time::interval(crate::driver::GOSSIP_TICK);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        loop {
            tokio::select! {
                Some(e) = net.recv() => node.on_net(e)?,
                Some(i) = internal_rx.recv() => {
                    let event = match i {
                        Internal::Timer(t) => Event::Timer(t),
                        Internal::SyncReply { peer, response } => Event::SyncReply { from: peer, response },
                    };
                    node.step(event, Origin::None)?;
                }
                Some(call) = api.recv() => {
                    match call.request {
                        crate::api::Request::SubmitTx { tx, verified, wait_for_commit: true } => {
                            node.broadcast_tx_commit(tx, verified, call.reply)?;
                        }
                        request => {
                            let result = node.answer(request);
                            let _ = call.reply.send(result);
                        }
                    }
                    if let Some(e) = node.fatal.take() {
                        return Err(e.into());
                    }
                }
                _ = tick.tick() => node.on_tick()?,
                _ = gossip_tick.tick() => {
                    node.step(Event::FlushTxs, Origin::None)?;
                }
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
            }
        }
        tracing::info!("shutting down");
        node.driver
            .flush()
            .context("flushing the WAL and the store")?;
        tracing::info!(height = node.driver.last_height(), "shut down cleanly");
        Ok(())
    }

    fn now(&self) -> Now {
        Now {
            wall: now(),
            mono_ms: self.started.elapsed().as_millis() as u64,
        }
    }

    /// Hands one event to the driver and carries out its effects; the effects that report
    /// back to the caller (an admitted transaction or evidence) are returned.
    fn step(&mut self, event: Event, origin: Origin) -> Result<Vec<Effect>, Fatal> {
        let effects = self.driver.handle(self.now(), event)?;
        let mut back = Vec::new();
        for effect in effects {
            match effect {
                Effect::Publish { topic, data } => {
                    if let Err(e) = self.p2p.publish(topic, data) {
                        tracing::warn!("publish: {e}");
                    }
                }
                Effect::Verdict(v) => {
                    if let Origin::Gossip(id, source, topic) = &origin {
                        let _ = self.p2p.verdict(id.clone(), *source, *topic, v);
                    }
                }
                Effect::Respond(data) => {
                    if let Origin::Request(id) = &origin {
                        let _ = self.p2p.respond(*id, data);
                    }
                }
                Effect::Request { peer, request } => self.request(peer, request),
                Effect::Penalise { peer, reason } => {
                    let _ = self.p2p.penalise(peer, reason);
                }
                Effect::Schedule { after, timer } => {
                    let tx = self.internal.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        let _ = tx.send(Internal::Timer(timer));
                    });
                }
                Effect::Committed(c) => self.after_commit(*c),
                e @ (Effect::TxAdmitted { .. } | Effect::EvidenceAdmitted { .. }) => back.push(e),
            }
        }
        self.publish_snapshot(false);
        Ok(back)
    }

    /// Publishes a new snapshot for the RPC reads when the chain, the round or the peers
    /// moved (or always, with `force`: the tick refreshes mempool counts).
    fn publish_snapshot(&mut self, force: bool) {
        let key = Snapshot::key(&self.driver);
        if !force && self.snapshot_key == Some(key) {
            return;
        }
        self.snapshot_key = Some(key);
        let snap = Snapshot::of(&self.driver, &self.peer_info);
        self.snapshot.send_replace(Arc::new(snap));
    }

    fn request(&self, peer: PeerId, r: crate::wire::SyncRequest) {
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

    fn on_net(&mut self, e: NetEvent) -> Result<(), Fatal> {
        match e {
            NetEvent::Message {
                topic,
                source,
                id,
                data,
            } => {
                self.step(
                    Event::Gossip {
                        topic,
                        from: source,
                        data,
                    },
                    Origin::Gossip(id, source, topic),
                )?;
            }
            NetEvent::Request(req) => {
                if let Some(dir) = &self.state_snapshots {
                    if let Ok(r) = wire::decode::<crate::wire::SyncRequest>(&req.data) {
                        if r.is_snapshot() {
                            let (dir, p2p) = (dir.clone(), self.p2p.clone());
                            tokio::task::spawn_blocking(move || {
                                let answer = crate::statesync::files::serve(&dir, &r);
                                let _ = p2p.respond(req.id, wire::encode(&answer));
                            });
                            return Ok(());
                        }
                    }
                }
                self.step(
                    Event::SyncRequest {
                        from: req.peer,
                        data: req.data,
                    },
                    Origin::Request(req.id),
                )?;
            }
            NetEvent::PeerConnected {
                peer,
                addr,
                outbound,
            } => {
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
                    Arc::new(PeerInfo {
                        addr: addr.to_string(),
                        ip,
                        outbound,
                        since: now(),
                        moniker: String::new(),
                        version: String::new(),
                        // Until identify answers: the address dialled, for an outbound peer.
                        listen_addr: outbound
                            .then(|| tcp_host_port(&addr))
                            .flatten()
                            .unwrap_or_default(),
                    }),
                );
                self.step(Event::PeerConnected(peer), Origin::None)?;
            }
            NetEvent::PeerIdentified {
                peer,
                agent_version,
                listen_addrs,
            } => {
                if let Some(info) = self.peer_info.get_mut(&peer) {
                    let (version, moniker) = parse_agent_version(&agent_version);
                    let listen_addr = (listen_addrs.iter().find_map(tcp_host_port))
                        .unwrap_or_else(|| info.listen_addr.clone());
                    *info = Arc::new(PeerInfo {
                        moniker,
                        version,
                        listen_addr,
                        ..(**info).clone()
                    });
                    // Peers are in the snapshot's key by count only: publish this now.
                    self.publish_snapshot(true);
                }
            }
            NetEvent::PeerDisconnected(p) | NetEvent::PeerBanned(p) => {
                self.peer_info.remove(&p);
                self.step(Event::PeerDisconnected(p), Origin::None)?;
            }
        }
        Ok(())
    }

    /// Admits a client's transaction through the driver; its verdict and hash.
    pub(crate) fn submit_tx(
        &mut self,
        tx: Vec<u8>,
        verified: Option<basalt_types::Hash>,
    ) -> Result<(basalt_runtime::TxResult, basalt_types::Hash), Fatal> {
        let back = self.step(Event::SubmitTx { tx, verified }, Origin::None)?;
        Ok(back
            .into_iter()
            .find_map(|e| match e {
                Effect::TxAdmitted { hash, result } => Some((result, hash)),
                _ => None,
            })
            .expect("the driver answers every SubmitTx with TxAdmitted"))
    }

    /// Keeps and gossips a client's evidence: whether it was new, or why it was refused.
    pub(crate) fn submit_evidence(
        &mut self,
        ev: basalt_types::Evidence,
    ) -> Result<Result<bool, String>, Fatal> {
        let back = self.step(Event::SubmitEvidence(Box::new(ev)), Origin::None)?;
        Ok(back
            .into_iter()
            .find_map(|e| match e {
                Effect::EvidenceAdmitted { outcome } => Some(outcome),
                _ => None,
            })
            .expect("the driver answers every SubmitEvidence with EvidenceAdmitted"))
    }

    /// Keeps a fatal error for the loop (which stops on it) and answers the call.
    pub(crate) fn stop(&mut self, e: Fatal) -> RpcError {
        tracing::error!("fatal: {e}");
        self.fatal = Some(e);
        RpcError::internal("the node is stopping")
    }

    fn on_tick(&mut self) -> Result<(), Fatal> {
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
        let d = &self.driver;
        self.metrics.peers.set(d.peers.len() as i64);
        self.metrics
            .p2p_dropped
            .set(self.p2p.dropped_events() as i64);
        self.metrics.round.set(i64::from(d.engine.round().0));
        self.metrics.mempool_size.set(d.mempool.len() as i64);
        self.metrics
            .mempool_bytes
            .set(d.mempool.size_bytes() as i64);
        self.step(Event::Tick, Origin::None)?;
        self.publish_snapshot(true);
        Ok(())
    }

    /// Metrics, events for WebSocket subscribers, and `broadcast_tx_commit` replies.
    fn after_commit(&mut self, c: Committed) {
        let Committed {
            block,
            applied,
            interval_ms,
            ..
        } = c;
        let (block, applied) = (&block, &applied);
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
            if let Some(prev) = self.driver.store.validator_set(c.height.0).ok().flatten() {
                for v in prev.validators() {
                    if !c.signed_by(&v.address) {
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
        for v in self.driver.chain.validators().validators() {
            m.validator_power
                .get_or_create(&crate::metrics::ValidatorLabel {
                    validator: v.address.to_hex(),
                })
                .set(v.voting_power as i64);
        }
        m.mempool_size.set(self.driver.mempool.len() as i64);
        m.mempool_bytes.set(self.driver.mempool.size_bytes() as i64);

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
    fn broadcast_tx_commit(
        &mut self,
        tx: Vec<u8>,
        verified: Option<basalt_types::Hash>,
        reply: oneshot::Sender<Result<Value, RpcError>>,
    ) -> Result<(), Fatal> {
        let (r, hash) = self.submit_tx(tx, verified)?;
        let check_tx = crate::api::check_tx_json(&r);
        if !r.is_ok() {
            let _ = reply.send(Ok(serde_json::json!({"check_tx": check_tx,
                "tx_result": basalt_rpc::shapes::tx_result(0, "", serde_json::json!([])),
                "hash": hash.to_hex(), "height": "0"})));
            return Ok(());
        }
        self.commit_waiters
            .entry(hash)
            .or_default()
            .push(CommitWaiter {
                deadline: Instant::now() + self.settings.broadcast_tx_commit_timeout,
                check_tx,
                reply,
            });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peers_identify_answer_gives_its_version_moniker_and_listen_address() {
        let (version, moniker) = parse_agent_version("basalt/0.1.0/validator one/eu");
        assert_eq!(
            (version.as_str(), moniker.as_str()),
            ("0.1.0", "validator one/eu")
        );
        let (version, moniker) = parse_agent_version("rust-libp2p/0.47.0");
        assert_eq!(
            (version.as_str(), moniker.as_str()),
            ("rust-libp2p/0.47.0", "")
        );
        let addr = |s: &str| s.parse::<basalt_p2p::Multiaddr>().unwrap();
        assert_eq!(
            tcp_host_port(&addr("/ip4/10.0.0.7/tcp/26656")).as_deref(),
            Some("10.0.0.7:26656")
        );
        assert_eq!(
            tcp_host_port(&addr(
                "/ip6/::1/tcp/26656/p2p/12D3KooWR1dNFEnnghHqXtGXhtGAyVyFyGbgPpbXu8eEnAbSj8Ge"
            ))
            .as_deref(),
            Some("[::1]:26656")
        );
        assert_eq!(tcp_host_port(&addr("/ip4/10.0.0.7/udp/9/quic-v1")), None);
    }
}
