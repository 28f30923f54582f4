//! The node's Prometheus metrics (`GET /metrics`): chain progress, mempool, peers, per
//! validator power and missed blocks, evidence, and (registered by `basalt-rpc`) RPC request
//! counts and latencies.

use basalt_rpc::RpcMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ValidatorLabel {
    pub validator: String,
}

pub struct Metrics {
    pub height: Gauge,
    pub round: Gauge,
    pub block_interval_seconds: Histogram,
    pub txs_per_block: Histogram,
    pub total_txs: Counter,
    pub mempool_size: Gauge,
    pub mempool_bytes: Gauge,
    pub peers: Gauge,
    /// Network events dropped because the node's queue was full (a flood, or a stalled node).
    pub p2p_dropped: Gauge,
    pub missed_blocks: Family<ValidatorLabel, Counter>,
    pub validator_power: Family<ValidatorLabel, Gauge>,
    pub evidence_committed: Counter,
    /// Last height the transaction index covers (the indexer runs behind the chain).
    pub tx_index_height: Gauge,
    pub rpc: RpcMetrics,
    registry: Registry,
    /// Gossipsub's counters, registered by the swarm when it starts (`basalt_p2p_*`).
    pub gossip: Arc<Mutex<Registry>>,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("basalt");
        let m = Metrics {
            height: Gauge::default(),
            round: Gauge::default(),
            block_interval_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 12)),
            txs_per_block: Histogram::new(exponential_buckets(1.0, 4.0, 10)),
            total_txs: Counter::default(),
            mempool_size: Gauge::default(),
            mempool_bytes: Gauge::default(),
            peers: Gauge::default(),
            p2p_dropped: Gauge::default(),
            missed_blocks: Family::default(),
            validator_power: Family::default(),
            evidence_committed: Counter::default(),
            tx_index_height: Gauge::default(),
            rpc: RpcMetrics::register(&mut registry),
            registry: Registry::default(),
            gossip: Arc::new(Mutex::new(Registry::with_prefix("basalt_p2p"))),
        };
        let r = &mut registry;
        r.register("height", "Last committed height", m.height.clone());
        r.register(
            "tx_index_height",
            "Last height the transaction index covers",
            m.tx_index_height.clone(),
        );
        r.register(
            "round",
            "Round of the height being decided",
            m.round.clone(),
        );
        r.register(
            "block_interval_seconds",
            "Time between committed blocks",
            m.block_interval_seconds.clone(),
        );
        r.register(
            "txs_per_block",
            "Transactions per committed block",
            m.txs_per_block.clone(),
        );
        r.register(
            "txs",
            "Transactions committed since start",
            m.total_txs.clone(),
        );
        r.register(
            "mempool_size",
            "Transactions waiting in the mempool",
            m.mempool_size.clone(),
        );
        r.register(
            "mempool_bytes",
            "Bytes of transactions waiting in the mempool",
            m.mempool_bytes.clone(),
        );
        r.register("peers", "Connected peers", m.peers.clone());
        r.register(
            "p2p_dropped_events",
            "Network events dropped because the node's queue was full",
            m.p2p_dropped.clone(),
        );
        r.register(
            "missed_blocks",
            "Blocks whose commit lacks the validator's precommit",
            m.missed_blocks.clone(),
        );
        r.register(
            "validator_power",
            "Voting power of each validator of the current set",
            m.validator_power.clone(),
        );
        r.register(
            "evidence_committed",
            "Pieces of evidence committed in blocks",
            m.evidence_committed.clone(),
        );
        Arc::new(Metrics { registry, ..m })
    }

    pub fn encode(&self) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut out = String::new();
        let gossip = self.gossip.lock().unwrap_or_else(|e| e.into_inner());
        if encode_registry(&mut out, &self.registry)
            .and_then(|()| encode_registry(&mut out, &gossip))
            .and_then(|()| encode_eof(&mut out))
            .is_err()
        {
            out.clear();
        }
        out
    }
}
