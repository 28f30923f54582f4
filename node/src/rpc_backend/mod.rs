//! How RPC calls reach the node: reads ([`reads`]) off the consensus path, from a store
//! handle and the [`snapshot::Snapshot`] the node publishes; the few calls that need the
//! live node (transactions, evidence, `check_tx`, `abci_query`, the mempool's contents)
//! through a bounded channel into the node task.

pub mod reads;
pub mod round_state;
pub mod snapshot;
pub mod state_query;

use crate::api::Request;
use crate::metrics::Metrics;
use crate::node::ApiCall;
use crate::store::Store;
use basalt_genesis::Genesis;
use basalt_rpc::{Backend, RpcError};
use reads::{Budget, ReadView, READ_METHODS};
use serde_json::{Map, Value};
use snapshot::{NodeInfo, Snapshot};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

/// The RPC server's way into the node: reads on blocking threads from the store and the
/// latest snapshot, everything else through a bounded channel into the node task.
#[derive(Clone)]
pub struct NodeBackend {
    pub calls: mpsc::Sender<ApiCall>,
    pub events: tokio::sync::broadcast::Sender<basalt_rpc::RpcEvent>,
    pub metrics: Arc<Metrics>,
    pub reads: Arc<Reads>,
}

/// What reads need: a read-only store handle, the genesis, the node's fixed identity, the
/// latest snapshot, a bound on reads running at once and each read's time budget.
pub struct Reads {
    pub store: Store,
    /// Without its accounts when `genesis_file` is set (see [`crate::chain::Chain::genesis`]).
    pub genesis: Arc<Genesis>,
    /// The genesis file, read again for the `genesis` methods.
    pub genesis_file: Option<std::path::PathBuf>,
    pub info: NodeInfo,
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    pub running: Arc<Semaphore>,
    pub budget: Duration,
}

impl Reads {
    /// Answers a read on a blocking thread within its budget; "node busy" when every read
    /// slot stays taken for the whole budget.
    async fn call(
        self: &Arc<Self>,
        method: String,
        params: Map<String, Value>,
    ) -> Result<Value, RpcError> {
        let permit = tokio::time::timeout(self.budget, self.running.clone().acquire_owned())
            .await
            .map_err(|_| RpcError::internal("node busy: too many queries at once, try again"))?
            .map_err(|_| RpcError::internal("the node is shutting down"))?;
        let reads = self.clone();
        let budget = Budget::new(self.budget);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let snap = reads.snapshot.borrow().clone();
            let view = ReadView {
                store: &reads.store,
                genesis: &reads.genesis,
                genesis_file: reads.genesis_file.as_deref(),
                snap: &snap,
                info: &reads.info,
                budget,
            };
            view.call(&method, &params)
        })
        .await
        .map_err(|e| RpcError::internal(format!("query failed: {e}")))?
    }
}

impl Backend for NodeBackend {
    fn events(&self) -> tokio::sync::broadcast::Receiver<basalt_rpc::RpcEvent> {
        self.events.subscribe()
    }

    fn metrics(&self) -> String {
        self.metrics.encode()
    }

    fn rpc_metrics(&self) -> Option<&basalt_rpc::RpcMetrics> {
        Some(&self.metrics.rpc)
    }

    async fn call(&self, method: String, params: Map<String, Value>) -> Result<Value, RpcError> {
        if is_read(&method, &params) {
            return self.reads.call(method, params).await;
        }
        // Signature checks cost the most per transaction: do them here, on the server's
        // worker threads, so the node task only checks state.
        let verified_tx = submitted_tx(&method, &params).and_then(|tx| {
            crate::sigcheck::all_valid(std::slice::from_ref(&tx))
                .then(|| basalt_runtime::tx_hash(&tx))
        });
        self.send(method, params, verified_tx).await?.await
    }

    /// Like `call` for each, with the batch's transaction signatures verified at once; the
    /// calls reach the node in the batch's order (a wallet's nonces stay in sequence).
    async fn call_batch(
        &self,
        calls: Vec<(String, Map<String, Value>)>,
    ) -> Vec<Result<Value, RpcError>> {
        let (at, txs): (Vec<usize>, Vec<Vec<u8>>) = calls
            .iter()
            .enumerate()
            .filter_map(|(i, (m, p))| submitted_tx(m, p).map(|tx| (i, tx)))
            .unzip();
        let mut verified: Vec<Option<basalt_types::Hash>> = vec![None; calls.len()];
        for ((i, tx), ok) in at
            .into_iter()
            .zip(&txs)
            .zip(crate::sigcheck::each_valid(&txs))
        {
            verified[i] = ok.then(|| basalt_runtime::tx_hash(tx));
        }
        let mut pending = Vec::with_capacity(calls.len());
        for ((method, params), verified_tx) in calls.into_iter().zip(verified) {
            pending.push(if is_read(&method, &params) {
                Err((method, params))
            } else {
                Ok(self.send(method, params, verified_tx).await)
            });
        }
        let mut out = Vec::with_capacity(pending.len());
        for p in pending {
            out.push(match p {
                Err((method, params)) => self.reads.call(method, params).await,
                Ok(Ok(answer)) => answer.await,
                Ok(Err(e)) => Err(e),
            });
        }
        out
    }
}

impl NodeBackend {
    /// Hands a call to the node task; the returned future is its answer.
    async fn send(
        &self,
        method: String,
        params: Map<String, Value>,
        verified_tx: Option<basalt_types::Hash>,
    ) -> Result<impl std::future::Future<Output = Result<Value, RpcError>>, RpcError> {
        let request = match Request::parse(&method, &params, verified_tx) {
            Some(r) => r?,
            None => return Err(RpcError::method_not_found(&method)),
        };
        let (reply, rx) = oneshot::channel();
        // Over capacity, a call is refused at once: a flood of calls waits in no queue.
        self.calls
            .try_send(ApiCall { request, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    RpcError::internal("node busy: too many calls waiting, try again")
                }
                mpsc::error::TrySendError::Closed(_) => {
                    RpcError::internal("the node is shutting down")
                }
            })?;
        Ok(async move {
            rx.await
                .map_err(|_| RpcError::internal("the node is shutting down"))?
        })
    }
}

/// Whether a call is answered off the consensus path: the read methods, and `abci_query`
/// but for the nonce path (which counts the node's mempool).
fn is_read(method: &str, params: &Map<String, Value>) -> bool {
    READ_METHODS.contains(&method)
        || (method == "abci_query"
            && !crate::api::abci_path(params).is_ok_and(|p| p.starts_with(crate::api::NONCE_PATH)))
}

/// The transaction a `broadcast_tx_*` call submits.
fn submitted_tx(method: &str, params: &Map<String, Value>) -> Option<Vec<u8>> {
    if !method.starts_with("broadcast_tx_") {
        return None;
    }
    basalt_rpc::param_bytes(params, "tx").ok().flatten()
}
