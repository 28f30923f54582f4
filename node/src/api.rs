//! The RPC methods that need the live node (they change its state, or read the runtime's
//! state or the mempool as the node holds them), answered inside the node task in CometBFT
//! v0.38's shapes. Everything else is read off the consensus path
//! ([`crate::rpc_backend::reads`]).

use crate::node::Node;
use crate::store::TxRecord;
use basalt_rpc::{param_bytes, param_str, param_u64, shapes, RpcError};
use basalt_types::Hash;
use serde_json::{json, Map, Value};

/// Documented `abci_query` paths (besides the runtime's own).
pub const NONCE_PATH: &str = "/nonce/";
/// Largest page of `tx_search`, `block_search`, `validators`, `unconfirmed_txs`
/// (CometBFT: 100).
pub(crate) const MAX_PER_PAGE: u64 = 100;

/// What the RPC asks of the node task: parsed and checked on the RPC side, so the node
/// task never parses a parameter.
#[derive(Debug)]
pub enum Request {
    /// `broadcast_tx_sync` / `_async` (answered once admitted) and `broadcast_tx_commit`
    /// (answered once in a block). `verified`: the hash whose signature the RPC checked.
    SubmitTx {
        tx: Vec<u8>,
        verified: Option<Hash>,
        wait_for_commit: bool,
    },
    CheckTx(Vec<u8>),
    UnconfirmedTxs {
        limit: usize,
    },
    /// `abci_query` on `/nonce/ADDR` (the full path, `data` appended): the sender's next
    /// nonce counts the mempool, which only the node holds. Every other path is a read.
    AbciQuery {
        path: String,
    },
    BroadcastEvidence(Box<basalt_types::Evidence>),
}

impl Request {
    /// The request for one of the methods the node task answers; `None` for any other.
    pub fn parse(
        method: &str,
        params: &Map<String, Value>,
        verified: Option<Hash>,
    ) -> Option<Result<Request, RpcError>> {
        let tx = || required(param_bytes(params, "tx")?, "tx");
        Some(match method {
            "broadcast_tx_sync" | "broadcast_tx_async" | "broadcast_tx_commit" => {
                tx().map(|tx| Request::SubmitTx {
                    tx,
                    verified,
                    wait_for_commit: method == "broadcast_tx_commit",
                })
            }
            "check_tx" => tx().map(Request::CheckTx),
            "unconfirmed_txs" => param_u64(params, "limit").map(|l| Request::UnconfirmedTxs {
                limit: l.unwrap_or(30).clamp(1, MAX_PER_PAGE) as usize,
            }),
            "abci_query" => abci_path(params).map(|path| Request::AbciQuery { path }),
            "broadcast_evidence" => params
                .get("evidence")
                .ok_or_else(|| RpcError::invalid_params("evidence is required"))
                .and_then(|ev| shapes::parse_evidence(ev).map_err(RpcError::invalid_params))
                .map(|ev| Request::BroadcastEvidence(Box::new(ev))),
            _ => return None,
        })
    }
}

/// `path` with `data` (hex, CometBFT's HexBytes) appended: Basalt's paths take text
/// arguments.
pub(crate) fn abci_path(params: &Map<String, Value>) -> Result<String, RpcError> {
    let mut path = param_str(params, "path")?.unwrap_or("").to_string();
    if let Some(data) = param_str(params, "data")?.filter(|d| !d.is_empty()) {
        let bytes = hex::decode(data.trim_start_matches("0x"))
            .map_err(|e| RpcError::invalid_params(format!("data must be hex: {e}")))?;
        let arg = String::from_utf8(bytes.clone()).unwrap_or_else(|_| hex::encode_upper(&bytes));
        path = format!("{}/{arg}", path.trim_end_matches('/'));
    }
    Ok(path)
}

pub(crate) fn internal(e: impl std::fmt::Display) -> RpcError {
    RpcError::internal(e.to_string())
}

pub(crate) fn required<T>(v: Option<T>, name: &str) -> Result<T, RpcError> {
    v.ok_or_else(|| RpcError::invalid_params(format!("{name} is required")))
}

pub(crate) fn check_tx_json(r: &basalt_runtime::TxResult) -> Value {
    let events: Vec<Value> = r
        .events
        .iter()
        .map(|e| shapes::event(&e.kind, &e.attributes))
        .collect();
    shapes::tx_result(r.code, &r.log, Value::Array(events))
}

impl Node {
    /// Answers a request but `broadcast_tx_commit` (which waits for its block).
    pub(crate) fn answer(&mut self, request: Request) -> Result<Value, RpcError> {
        match request {
            Request::SubmitTx { tx, verified, .. } => {
                let (r, hash) = self.submit_tx(tx, verified).map_err(|e| self.stop(e))?;
                Ok(
                    json!({"code": r.code, "data": "", "log": r.log, "codespace": "", "hash": hash.to_hex()}),
                )
            }
            Request::CheckTx(tx) => Ok(check_tx_json(&self.driver.chain.runtime.check_tx(&tx))),
            Request::UnconfirmedTxs { limit } => {
                let m = &self.driver.mempool;
                let txs: Vec<String> = m.pending(limit).iter().map(|t| shapes::b64(t)).collect();
                Ok(
                    json!({"n_txs": txs.len().to_string(), "total": m.len().to_string(),
                    "total_bytes": m.size_bytes().to_string(), "txs": txs}),
                )
            }
            Request::AbciQuery { path } => Ok(self.abci_query(&path)),
            Request::BroadcastEvidence(ev) => self.broadcast_evidence(*ev),
        }
    }

    /// The next nonce of `/nonce/ADDR` (the RPC sends every other path to the reads).
    fn abci_query(&self, path: &str) -> Value {
        let height = self.driver.last_height();
        let answer = match path.strip_prefix(NONCE_PATH) {
            Some(addr) => basalt_types::Address::from_hex(addr)
                .map(|a| json!({"address": a, "next_nonce": self.driver.mempool.next_nonce(&self.driver.chain.runtime, &a)}))
                .map_err(|e| e.to_string()),
            None => Err(format!("{path:?} is answered from the store, not by the node")),
        };
        let (code, log, value) = match answer {
            Ok(v) => (0, String::new(), shapes::b64(v.to_string().as_bytes())),
            Err(e) => (1, e, String::new()),
        };
        json!({"response": {"code": code, "log": log, "info": "", "index": "0", "key": shapes::b64(path.as_bytes()),
            "value": value, "proofOps": null, "height": height.to_string(), "codespace": ""}})
    }

    /// Evidence in CometBFT's JSON (`{"type":"tendermint/DuplicateVoteEvidence","value":…}`,
    /// as `block` shows it) or Basalt's own; verified like gossip before it is kept.
    fn broadcast_evidence(&mut self, ev: basalt_types::Evidence) -> Result<Value, RpcError> {
        let hash = Hash::of(&ev);
        let outcome = self.submit_evidence(ev).map_err(|e| self.stop(e))?;
        if outcome.map_err(|e| RpcError::internal(format!("evidence refused: {e}")))? {
            tracing::info!(%hash, "evidence received through RPC");
        }
        Ok(json!({"hash": hash.to_hex()}))
    }
}

/// Page `page` (1-based) of `per_page` (default 30, at most 100) over `total` items.
pub(crate) fn page_window(
    params: &Map<String, Value>,
    total: usize,
) -> Result<(usize, usize), RpcError> {
    let per_page = param_u64(params, "per_page")?
        .unwrap_or(30)
        .clamp(1, MAX_PER_PAGE) as usize;
    let pages = total.div_ceil(per_page).max(1);
    let page = param_u64(params, "page")?.unwrap_or(1) as usize;
    if page == 0 || page > pages {
        return Err(RpcError::invalid_params(format!(
            "page should be within [1, {pages}] range, given {page}"
        )));
    }
    Ok(((page - 1) * per_page, per_page))
}

pub(crate) fn order_desc(params: &Map<String, Value>) -> Result<bool, RpcError> {
    match param_str(params, "order_by")?.unwrap_or("asc") {
        "" | "asc" => Ok(false),
        "desc" => Ok(true),
        o => Err(RpcError::invalid_params(format!(
            "order_by must be \"asc\" or \"desc\", got {o:?}"
        ))),
    }
}

fn tx_events(hash: &Hash, rec: &TxRecord) -> Value {
    let mut events: Vec<Value> = rec
        .events
        .iter()
        .map(|(k, a)| shapes::event(k, a))
        .collect();
    events.push(shapes::event(
        "tx",
        &[
            ("hash".into(), hash.to_hex()),
            ("height".into(), rec.height.to_string()),
        ],
    ));
    Value::Array(events)
}

pub fn tx_result_json(hash: &Hash, rec: &TxRecord) -> Value {
    shapes::tx_result(rec.code, &rec.log, tx_events(hash, rec))
}

pub fn tx_json(hash: &Hash, rec: &TxRecord) -> Value {
    json!({
        "hash": hash.to_hex(),
        "height": rec.height.to_string(),
        "index": rec.index,
        "tx_result": tx_result_json(hash, rec),
        "tx": shapes::b64(&rec.tx),
    })
}
