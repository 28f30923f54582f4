//! The task that owns the libp2p swarm: it turns commands into swarm calls and swarm events
//! into [`Event`]s, keeps persistent peers connected and applies penalties.

use crate::codec::FrameCodec;
use crate::{
    socket_to_multiaddr, Command, Event, InboundRequest, P2pConfig, P2pError, P2pHandle, Topic,
    Verdict,
};
use futures::StreamExt;
use libp2p::gossipsub::{
    self, IdentTopic, MessageAcceptance, MessageAuthenticity, MessageId, TopicHash,
};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, ping, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

const SYNC_PROTOCOL: &str = "/basalt/sync/1";
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(NetworkBehaviour)]
struct Behaviour {
    gossipsub: gossipsub::Behaviour,
    sync: request_response::Behaviour<FrameCodec>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

/// A persistent peer's address and when to dial it next.
struct Persistent {
    addr: Multiaddr,
    connected: Option<PeerId>,
    dialing: Option<ConnectionId>,
    next_dial: Instant,
    backoff: Duration,
}

struct Task {
    swarm: Swarm<Behaviour>,
    config: P2pConfig,
    events: mpsc::Sender<Event>,
    dropped: Arc<AtomicU64>,
    topics: HashMap<TopicHash, Topic>,
    pending_requests: HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>, P2pError>>>,
    inbound: HashMap<u64, ResponseChannel<Vec<u8>>>,
    next_inbound: u64,
    persistent: Vec<Persistent>,
    penalties: HashMap<PeerId, u32>,
    banned: HashMap<PeerId, Instant>,
    /// Accepted transaction batches waiting [`TX_RELAY_DELAY`] before gossipsub forwards
    /// them, in acceptance order.
    relay_later: VecDeque<(Instant, MessageId, PeerId)>,
}

/// How long an accepted transaction batch waits before it is forwarded. The peers that got
/// it from its publisher announce IDONTWANT on arrival; a relay that forwards at once often
/// beats those announcements (its own check is quick) and sends them a second copy. A few
/// milliseconds let the announcements land first; transactions wait for a block anyway.
const TX_RELAY_DELAY: Duration = Duration::from_millis(5);

/// Messages larger than this are announced with IDONTWANT on arrival (gossipsub's default is
/// 1,000 bytes; a transfer is ~180, a vote ~150).
const IDONTWANT_ABOVE_BYTES: usize = 120;

/// What this node tells peers it runs: `basalt/<version>/<moniker>`.
pub(crate) fn agent_version(moniker: &str) -> String {
    format!("basalt/{}/{moniker}", env!("CARGO_PKG_VERSION"))
}

/// A peer's identify answer is its own word: keep a bounded part of it.
const MAX_AGENT_VERSION: usize = 256;
const MAX_LISTEN_ADDRS: usize = 16;

fn build_swarm(config: &P2pConfig, keypair: Keypair) -> Result<Swarm<Behaviour>, P2pError> {
    let setup = |e: &dyn std::fmt::Display| P2pError::Setup(e.to_string());
    let gossip_config = gossipsub::ConfigBuilder::default()
        // No author, sequence number or signature on the envelope: every payload is signed
        // already (transactions by their senders, votes and proposals by validators,
        // evidence is two signed votes), penalties go to the peer that relayed a message,
        // and ids are content hashes. An envelope signature cost each message an ed25519
        // signing and one verification per receiver, and ~140 bytes.
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .validate_messages()
        // Tell mesh peers "I have it" for every message but the tiniest, so that a peer that
        // got a transaction batch from its publisher does not get it again from a relay.
        .idontwant_message_size_threshold(IDONTWANT_ABOVE_BYTES)
        // Content-addressed ids: the same transaction published by two nodes is one message.
        .message_id_fn(|m: &gossipsub::Message| {
            gossipsub::MessageId::from(Sha256::digest(&m.data).to_vec())
        })
        // The transport takes up to twice the limit so that a message over the limit reaches
        // `swarm_event`, where it is refused and its sender penalised; beyond that gossipsub
        // drops it on its own.
        .max_transmit_size(config.max_message_bytes.saturating_mul(2))
        .heartbeat_interval(Duration::from_millis(500))
        .build()
        .map_err(|e| setup(&e))?;
    let max_sync = config.max_sync_bytes;
    let gossip_metrics = config.gossip_metrics.clone();
    let request_timeout = config.request_timeout;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| setup(&e))?
        .with_behaviour(|key| {
            let mut gossipsub =
                gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, gossip_config)?;
            if let Some(registry) = &gossip_metrics {
                let mut registry = registry.lock().unwrap_or_else(|e| e.into_inner());
                gossipsub = gossipsub.with_metrics(&mut registry, Default::default());
            }
            let sync = request_response::Behaviour::with_codec(
                FrameCodec {
                    max_request: 64 * 1024,
                    max_response: max_sync,
                },
                [(StreamProtocol::new(SYNC_PROTOCOL), ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(request_timeout),
            );
            let identify = identify::Behaviour::new(
                identify::Config::new("/basalt/1".into(), key.public())
                    .with_agent_version(agent_version(&config.moniker)),
            );
            Ok(Behaviour {
                gossipsub,
                sync,
                identify,
                ping: ping::Behaviour::default(),
            })
        })
        .map_err(|e| setup(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    Ok(swarm)
}

pub(crate) async fn start(
    config: P2pConfig,
    keypair: Keypair,
) -> Result<(P2pHandle, mpsc::Receiver<Event>), P2pError> {
    let local_peer_id = keypair.public().to_peer_id();
    let mut swarm = build_swarm(&config, keypair)?;
    // Bind now so that a port in use is reported to the operator at start.
    std::net::TcpListener::bind(config.listen).map_err(|e| P2pError::Listen {
        addr: config.listen,
        reason: e.to_string(),
    })?;
    swarm
        .listen_on(socket_to_multiaddr(&config.listen))
        .map_err(|e| P2pError::Listen {
            addr: config.listen,
            reason: e.to_string(),
        })?;
    let mut topics = HashMap::new();
    for t in Topic::ALL {
        let topic = IdentTopic::new(t.name(&config.chain_id));
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&topic)
            .map_err(|e| P2pError::Setup(e.to_string()))?;
        topics.insert(topic.hash(), t);
    }
    let now = Instant::now();
    let persistent = config
        .persistent_peers
        .iter()
        .filter(|a| **a != config.listen)
        .map(|a| Persistent {
            addr: socket_to_multiaddr(a),
            connected: None,
            dialing: None,
            next_dial: now,
            backoff: Duration::from_millis(500),
        })
        .collect();
    let (commands_tx, commands) = mpsc::unbounded_channel();
    let (events, events_rx) = mpsc::channel(config.event_queue);
    let dropped = Arc::new(AtomicU64::new(0));
    let task = Task {
        swarm,
        config,
        events,
        dropped: dropped.clone(),
        topics,
        pending_requests: HashMap::new(),
        inbound: HashMap::new(),
        next_inbound: 0,
        persistent,
        penalties: HashMap::new(),
        banned: HashMap::new(),
        relay_later: VecDeque::new(),
    };
    tokio::spawn(task.run(commands));
    Ok((
        P2pHandle {
            commands: commands_tx,
            local_peer_id,
            dropped,
        },
        events_rx,
    ))
}

/// Sleeps until the first batch of `queue` is due.
async fn sleep_until_first(queue: &VecDeque<(Instant, MessageId, PeerId)>) {
    if let Some((at, _, _)) = queue.front() {
        tokio::time::sleep_until((*at).into()).await;
    }
}

impl Task {
    /// Hands gossipsub the accepted transaction batches whose relay delay is over.
    fn relay_due(&mut self) {
        let now = Instant::now();
        while let Some((at, id, source)) = self.relay_later.front() {
            if *at > now {
                break;
            }
            self.swarm
                .behaviour_mut()
                .gossipsub
                .report_message_validation_result(id, source, MessageAcceptance::Accept);
            self.relay_later.pop_front();
        }
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                c = commands.recv() => match c {
                    Some(c) => self.command(c),
                    None => return, // the node is gone
                },
                e = self.swarm.select_next_some() => self.swarm_event(e),
                _ = tick.tick() => self.redial(),
                _ = sleep_until_first(&self.relay_later), if !self.relay_later.is_empty() => {
                    self.relay_due();
                }
            }
        }
    }

    /// Hands an event to the node. The queue is bounded: when the node is behind, the event
    /// is dropped and counted (gossip goes unvalidated and gossipsub forgets it; a request
    /// goes unanswered and its peer times out), so a flood cannot grow memory. A closed
    /// receiver means the node is shutting down.
    fn emit(&mut self, e: Event) {
        if let Err(mpsc::error::TrySendError::Full(e)) = self.events.try_send(e) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            if let Event::Request(r) = e {
                self.inbound.remove(&r.id);
            }
        }
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::Publish { topic, data } => {
                let t = IdentTopic::new(topic.name(&self.config.chain_id));
                match self.swarm.behaviour_mut().gossipsub.publish(t, data) {
                    Ok(_)
                    | Err(gossipsub::PublishError::Duplicate)
                    | Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {}
                    Err(e) => tracing::debug!(?topic, "publish failed: {e}"),
                }
            }
            Command::Verdict {
                id,
                source,
                topic,
                verdict,
            } => {
                if topic == Topic::Txs && verdict == Verdict::Accept {
                    let at = Instant::now() + TX_RELAY_DELAY;
                    self.relay_later.push_back((at, id, source));
                    return;
                }
                let acceptance = match verdict {
                    Verdict::Accept => MessageAcceptance::Accept,
                    Verdict::Ignore => MessageAcceptance::Ignore,
                    Verdict::Reject => MessageAcceptance::Reject,
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&id, &source, acceptance);
                if verdict == Verdict::Reject {
                    self.penalise(source, "invalid gossip message");
                }
            }
            Command::Request { peer, data, reply } => {
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, data);
                self.pending_requests.insert(id, reply);
            }
            Command::Respond { id, data } => {
                if let Some(ch) = self.inbound.remove(&id) {
                    // The peer may have gone away meanwhile; nothing to do then.
                    let _ = self.swarm.behaviour_mut().sync.send_response(ch, data);
                }
            }
            Command::Penalise { peer, reason } => self.penalise(peer, &reason),
            Command::Peers { reply } => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
        }
    }

    fn penalise(&mut self, peer: PeerId, reason: &str) {
        let points = self.penalties.entry(peer).or_default();
        *points += 1;
        tracing::warn!(%peer, points = *points, "peer penalised: {reason}");
        if *points >= self.config.ban_threshold {
            self.penalties.remove(&peer);
            self.banned
                .insert(peer, Instant::now() + self.config.ban_duration);
            let _ = self.swarm.disconnect_peer_id(peer);
            tracing::warn!(%peer, "peer banned for {:?}", self.config.ban_duration);
            self.emit(Event::PeerBanned(peer));
        }
    }

    fn is_banned(&mut self, peer: &PeerId) -> bool {
        match self.banned.get(peer) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                self.banned.remove(peer);
                false
            }
            None => false,
        }
    }

    fn redial(&mut self) {
        let now = Instant::now();
        for i in 0..self.persistent.len() {
            let p = &mut self.persistent[i];
            if p.connected.is_some() || p.dialing.is_some() || p.next_dial > now {
                continue;
            }
            let opts = DialOpts::unknown_peer_id().address(p.addr.clone()).build();
            p.dialing = Some(opts.connection_id());
            p.next_dial = now + p.backoff;
            p.backoff = (p.backoff * 2).min(MAX_BACKOFF);
            let addr = p.addr.clone();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(%addr, "dial failed: {e}");
                self.persistent[i].dialing = None;
            }
        }
    }

    fn swarm_event(&mut self, e: SwarmEvent<BehaviourEvent>) {
        match e {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "p2p listening");
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                num_established,
                endpoint,
                ..
            } => {
                if self.is_banned(&peer_id) {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                for p in &mut self.persistent {
                    if p.dialing == Some(connection_id) {
                        p.dialing = None;
                        p.connected = Some(peer_id);
                        p.backoff = Duration::from_millis(500);
                    }
                }
                if num_established.get() == 1 {
                    tracing::info!(%peer_id, "peer connected");
                    self.emit(Event::PeerConnected {
                        peer: peer_id,
                        addr: endpoint.get_remote_address().clone(),
                        outbound: endpoint.is_dialer(),
                    });
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                for p in &mut self.persistent {
                    if p.connected == Some(peer_id) {
                        p.connected = None;
                    }
                }
                tracing::info!(%peer_id, "peer disconnected");
                self.emit(Event::PeerDisconnected(peer_id));
            }
            SwarmEvent::OutgoingConnectionError { connection_id, .. } => {
                for p in &mut self.persistent {
                    if p.dialing == Some(connection_id) {
                        p.dialing = None;
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                let Some(topic) = self.topics.get(&message.topic).copied() else {
                    return;
                };
                if message.data.len() > self.config.max_message_bytes {
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            MessageAcceptance::Reject,
                        );
                    let reason = format!("oversized message ({} bytes)", message.data.len());
                    self.penalise(propagation_source, &reason);
                    return;
                }
                self.emit(Event::Message {
                    topic,
                    source: propagation_source,
                    id: message_id,
                    data: message.data,
                });
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                peer,
                message,
                ..
            })) => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    if self.is_banned(&peer) {
                        return;
                    }
                    let id = self.next_inbound;
                    self.next_inbound += 1;
                    self.inbound.insert(id, channel);
                    self.emit(Event::Request(InboundRequest {
                        peer,
                        id,
                        data: request,
                    }));
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(reply) = self.pending_requests.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            SwarmEvent::Behaviour(BehaviourEvent::Sync(
                request_response::Event::OutboundFailure {
                    peer,
                    request_id,
                    error,
                    ..
                },
            )) => {
                if let Some(reply) = self.pending_requests.remove(&request_id) {
                    let _ = reply.send(Err(P2pError::Request {
                        peer,
                        reason: error.to_string(),
                    }));
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                let mut agent_version = info.agent_version;
                agent_version.truncate(MAX_AGENT_VERSION);
                let mut listen_addrs = info.listen_addrs;
                listen_addrs.truncate(MAX_LISTEN_ADDRS);
                self.emit(Event::PeerIdentified {
                    peer: peer_id,
                    agent_version,
                    listen_addrs,
                });
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(
                request_response::Event::InboundFailure { .. },
            )) => {
                // The channel was dropped or timed out; forget stale ids lazily.
                self.inbound.retain(|_, ch| ch.is_open());
            }
            _ => {}
        }
    }
}
