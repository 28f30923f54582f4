//! RPC request counts and latencies, by method, registered in the node's Prometheus registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub method: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodOnly {
    pub method: String,
}

/// Methods outside the known set are counted under `other`, so that a client calling
/// made-up names cannot grow the label set without bound.
const KNOWN: &[&str] = &[
    "health",
    "status",
    "net_info",
    "genesis",
    "genesis_chunked",
    "blockchain",
    "block",
    "block_by_hash",
    "header",
    "header_by_hash",
    "commit",
    "validators",
    "consensus_params",
    "block_results",
    "consensus_state",
    "dump_consensus_state",
    "broadcast_tx_async",
    "broadcast_tx_sync",
    "broadcast_tx_commit",
    "check_tx",
    "tx",
    "tx_search",
    "block_search",
    "unconfirmed_txs",
    "num_unconfirmed_txs",
    "abci_info",
    "abci_query",
    "broadcast_evidence",
    "subscribe",
    "unsubscribe",
    "unsubscribe_all",
];

pub struct RpcMetrics {
    requests: Family<MethodLabels, Counter>,
    latency: Family<MethodOnly, Histogram>,
}

impl RpcMetrics {
    pub fn register(registry: &mut Registry) -> RpcMetrics {
        let requests = Family::<MethodLabels, Counter>::default();
        let latency = Family::<MethodOnly, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 4.0, 10))
        });
        registry.register(
            "rpc_requests",
            "JSON-RPC requests by method and outcome",
            requests.clone(),
        );
        registry.register(
            "rpc_request_duration_seconds",
            "JSON-RPC request latency",
            latency.clone(),
        );
        RpcMetrics { requests, latency }
    }

    pub fn observe(&self, method: &str, seconds: f64, ok: bool) {
        let method = if KNOWN.contains(&method) {
            method
        } else {
            "other"
        }
        .to_string();
        self.requests
            .get_or_create(&MethodLabels {
                method: method.clone(),
                outcome: if ok { "ok" } else { "error" }.into(),
            })
            .inc();
        self.latency
            .get_or_create(&MethodOnly { method })
            .observe(seconds);
    }
}
