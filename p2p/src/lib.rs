//! Basalt's network layer: a libp2p swarm (TCP + noise + yamux, identify, ping) with one
//! gossipsub topic per kind of message and chain id, a request-response protocol for block
//! sync and catch-up, persistent peers redialled with backoff, and penalties for peers that
//! send invalid messages.
//!
//! Gossipsub runs in manual validation mode: a message is handed to the node
//! ([`Event::Message`]) and forwarded to other peers only once the node has decoded and
//! checked it and answered [`Verdict::Accept`]. A [`Verdict::Reject`] costs the peer that
//! relayed it penalty points; past [`P2pConfig::ban_threshold`] it is disconnected and
//! refused for [`P2pConfig::ban_duration`].
//!
//! The node talks to the swarm task through [`P2pHandle`] (commands in) and an event
//! receiver (events out); nothing here knows what the bytes mean.

mod codec;
mod swarm_task;

pub use libp2p::gossipsub::MessageId;
pub use libp2p::{identity::Keypair, multiaddr::Protocol, Multiaddr, PeerId};
pub use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The three gossip channels of a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Proposals (with their blocks) and votes.
    Consensus,
    /// Batches of transactions.
    Txs,
    /// Duplicate-vote evidence.
    Evidence,
}

impl Topic {
    pub const ALL: [Topic; 3] = [Topic::Consensus, Topic::Txs, Topic::Evidence];

    /// The gossipsub topic name: chains never share a topic, so a node never even receives
    /// another chain's traffic.
    pub fn name(self, chain_id: &str) -> String {
        let kind = match self {
            Topic::Consensus => "consensus",
            Topic::Txs => "txs",
            Topic::Evidence => "evidence",
        };
        // Version 2: envelopes without author or signature (version 1 signed them), so the
        // two never share a topic and neither penalises the other for the difference.
        format!("/basalt/{chain_id}/{kind}/2")
    }
}

/// The node's judgement of a gossiped message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: forward it to other peers.
    Accept,
    /// Not useful but not malicious (a duplicate, a stale height): drop it quietly.
    Ignore,
    /// Invalid (garbage, bad signature, wrong chain): drop it and penalise the sender.
    Reject,
}

#[derive(Clone, Debug)]
pub struct P2pConfig {
    pub chain_id: String,
    pub listen: SocketAddr,
    /// `host:port` of peers to keep connections to.
    pub persistent_peers: Vec<SocketAddr>,
    /// Largest gossip message, in bytes (a proposal carries its whole block).
    pub max_message_bytes: usize,
    /// Largest sync request or response, in bytes.
    pub max_sync_bytes: usize,
    /// Penalty points (one per rejected message or bad sync reply) that get a peer banned.
    pub ban_threshold: u32,
    pub ban_duration: Duration,
    /// How long a sync request may take.
    pub request_timeout: Duration,
    /// Events waiting for the node at most; more are dropped and counted
    /// ([`P2pHandle::dropped_events`]).
    pub event_queue: usize,
    /// Where gossipsub registers its counters (per topic: messages published, sent,
    /// received before and after duplicates are filtered, and their bytes), if anywhere.
    pub gossip_metrics: Option<Arc<Mutex<Registry>>>,
    /// The operator's name for this node, told to peers in identify's agent version
    /// (`basalt/<version>/<moniker>`) so that their `net_info` names it.
    pub moniker: String,
}

impl P2pConfig {
    pub fn new(chain_id: &str, listen: SocketAddr, persistent_peers: Vec<SocketAddr>) -> Self {
        P2pConfig {
            chain_id: chain_id.to_string(),
            listen,
            persistent_peers,
            max_message_bytes: 8 * 1024 * 1024,
            max_sync_bytes: 64 * 1024 * 1024,
            ban_threshold: 5,
            ban_duration: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            event_queue: 4096,
            gossip_metrics: None,
            moniker: String::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
    #[error("network setup: {0}")]
    Setup(String),
    #[error("the network task has stopped")]
    Stopped,
    #[error("request to {peer} failed: {reason}")]
    Request { peer: PeerId, reason: String },
}

/// A request from a peer, to be answered with [`P2pHandle::respond`].
#[derive(Debug)]
pub struct InboundRequest {
    pub peer: PeerId,
    pub id: u64,
    pub data: Vec<u8>,
}

#[derive(Debug)]
pub enum Event {
    /// A gossiped message waiting for the node's [`Verdict`].
    Message {
        topic: Topic,
        source: PeerId,
        id: MessageId,
        data: Vec<u8>,
    },
    Request(InboundRequest),
    PeerConnected {
        peer: PeerId,
        /// The peer's address as seen on this connection.
        addr: Multiaddr,
        /// Whether this node dialled it.
        outbound: bool,
    },
    PeerDisconnected(PeerId),
    /// A connected peer told who it is (libp2p identify): its software and moniker, and
    /// the addresses it listens on.
    PeerIdentified {
        peer: PeerId,
        /// `basalt/<version>/<moniker>` from a Basalt node; whatever another program sent.
        agent_version: String,
        listen_addrs: Vec<Multiaddr>,
    },
    /// A peer crossed the penalty threshold and was disconnected.
    PeerBanned(PeerId),
}

pub(crate) enum Command {
    Publish {
        topic: Topic,
        data: Vec<u8>,
    },
    Verdict {
        id: MessageId,
        source: PeerId,
        topic: Topic,
        verdict: Verdict,
    },
    Request {
        peer: PeerId,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, P2pError>>,
    },
    Respond {
        id: u64,
        data: Vec<u8>,
    },
    Penalise {
        peer: PeerId,
        reason: String,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
}

/// The node's side of the swarm task. Cheap to clone.
#[derive(Clone)]
pub struct P2pHandle {
    commands: mpsc::UnboundedSender<Command>,
    dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
    local_peer_id: PeerId,
}

impl P2pHandle {
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    fn send(&self, c: Command) -> Result<(), P2pError> {
        self.commands.send(c).map_err(|_| P2pError::Stopped)
    }

    /// Gossips `data` on `topic`. A message gossipsub has already seen is silently skipped.
    /// Events dropped because the node's queue was full.
    pub fn dropped_events(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn publish(&self, topic: Topic, data: Vec<u8>) -> Result<(), P2pError> {
        self.send(Command::Publish { topic, data })
    }

    /// The node's judgement of the gossip message `id` of `topic` that `source` relayed.
    pub fn verdict(
        &self,
        id: MessageId,
        source: PeerId,
        topic: Topic,
        verdict: Verdict,
    ) -> Result<(), P2pError> {
        self.send(Command::Verdict {
            id,
            source,
            topic,
            verdict,
        })
    }

    /// Sends a sync request and waits for the reply.
    pub async fn request(&self, peer: PeerId, data: Vec<u8>) -> Result<Vec<u8>, P2pError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Request { peer, data, reply })?;
        rx.await.map_err(|_| P2pError::Stopped)?
    }

    pub fn respond(&self, id: u64, data: Vec<u8>) -> Result<(), P2pError> {
        self.send(Command::Respond { id, data })
    }

    /// One penalty point for `peer` (an invalid sync reply, say).
    pub fn penalise(&self, peer: PeerId, reason: impl Into<String>) -> Result<(), P2pError> {
        self.send(Command::Penalise {
            peer,
            reason: reason.into(),
        })
    }

    pub async fn peers(&self) -> Result<Vec<PeerId>, P2pError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Peers { reply })?;
        rx.await.map_err(|_| P2pError::Stopped)
    }
}

/// Starts the swarm on the current tokio runtime: binds the listen address (failing at once
/// if it is taken), dials the persistent peers, and returns the handle and the event stream.
pub async fn start(
    config: P2pConfig,
    keypair: Keypair,
) -> Result<(P2pHandle, mpsc::Receiver<Event>), P2pError> {
    swarm_task::start(config, keypair).await
}

/// The libp2p identity for a node key's 32 secret bytes (so a node keeps its peer id).
pub fn keypair_from_seed(seed: [u8; 32]) -> Result<Keypair, P2pError> {
    Keypair::ed25519_from_bytes(seed).map_err(|e| P2pError::Setup(e.to_string()))
}

pub fn socket_to_multiaddr(addr: &SocketAddr) -> Multiaddr {
    let mut m = Multiaddr::empty();
    match addr.ip() {
        std::net::IpAddr::V4(ip) => m.push(libp2p::multiaddr::Protocol::Ip4(ip)),
        std::net::IpAddr::V6(ip) => m.push(libp2p::multiaddr::Protocol::Ip6(ip)),
    }
    m.push(libp2p::multiaddr::Protocol::Tcp(addr.port()));
    m
}

#[cfg(test)]
mod tests;
