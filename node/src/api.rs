//! The RPC methods the node answers, in CometBFT v0.38's shapes (see `basalt_rpc::shapes`).
//! They run inside the node task, so they see one consistent state.

use crate::node::Node;
use crate::store::TxRecord;
use basalt_rpc::{param_bytes, param_hash, param_str, param_u64, shapes, RpcError};
use basalt_types::Hash;
use serde_json::{json, Map, Value};

/// Documented `abci_query` paths (besides the runtime's own).
pub const NONCE_PATH: &str = "/nonce/";

fn internal(e: impl std::fmt::Display) -> RpcError {
    RpcError::internal(e.to_string())
}

impl Node {
    pub(crate) fn api(
        &mut self,
        method: &str,
        params: &Map<String, Value>,
    ) -> Result<Value, RpcError> {
        match method {
            "health" => Ok(json!({})),
            "status" => Ok(self.status()),
            "broadcast_tx_sync" | "broadcast_tx_async" => {
                let tx = param_bytes(params, "tx")?
                    .ok_or_else(|| RpcError::invalid_params("tx is required"))?;
                let (r, hash) = self.submit_tx(tx);
                Ok(json!({
                    "code": r.code,
                    "data": "",
                    "log": r.log,
                    "codespace": "",
                    "hash": hash.to_hex(),
                }))
            }
            "check_tx" => {
                let tx = param_bytes(params, "tx")?
                    .ok_or_else(|| RpcError::invalid_params("tx is required"))?;
                let r = self.chain.runtime.check_tx(&tx);
                Ok(shapes::tx_result(r.code, &r.log, json!([])))
            }
            "tx" => {
                let hash = param_hash(params, "hash")?
                    .ok_or_else(|| RpcError::invalid_params("hash is required"))?;
                let hash = Hash(hash);
                match self.store.tx(&hash).map_err(internal)? {
                    Some(rec) => Ok(tx_json(&hash, &rec)),
                    None => Err(RpcError::internal(format!(
                        "tx ({}) not found",
                        hash.to_hex()
                    ))),
                }
            }
            "block" => {
                let h = self.height_param(params)?;
                let block = self
                    .store
                    .block(h)
                    .map_err(internal)?
                    .ok_or_else(|| RpcError::internal(format!("block {h} not found")))?;
                Ok(shapes::block_response(&block))
            }
            "validators" => self.validators(params),
            "abci_query" => self.abci_query(params),
            m => Err(RpcError::method_not_found(m)),
        }
    }

    fn last_height(&self) -> u64 {
        self.chain.next_height() - 1
    }

    /// `height` or the latest; a height above the chain's is an error, as in CometBFT.
    fn height_param(&self, params: &Map<String, Value>) -> Result<u64, RpcError> {
        let last = self.last_height();
        match param_u64(params, "height")? {
            None | Some(0) => Ok(last),
            Some(h) if h > last => Err(RpcError::invalid_params(format!(
                "height {h} must be less than or equal to the current blockchain height {last}"
            ))),
            Some(h) => Ok(h),
        }
    }

    fn status(&self) -> Value {
        let last = self.chain.last_header.as_ref();
        let earliest = self
            .store
            .block(self.chain.genesis.initial_height)
            .ok()
            .flatten();
        let time = |t: Option<basalt_types::Timestamp>| t.map(shapes::rfc3339).unwrap_or_default();
        let validator_info = match self.validator_key {
            Some(k) => {
                let power = self
                    .chain
                    .validators()
                    .get(&k.address())
                    .map_or(0, |v| v.voting_power);
                json!({"address": k.address().to_hex(), "pub_key": shapes::pub_key(&k), "voting_power": power.to_string()})
            }
            None => json!({"address": "", "pub_key": null, "voting_power": "0"}),
        };
        json!({
            "node_info": {
                "protocol_version": {"p2p": "8", "block": "11", "app": "0"},
                "id": self.p2p.local_peer_id().to_string(),
                "listen_addr": self.settings.p2p_listen,
                "network": self.chain.chain_id(),
                "version": env!("CARGO_PKG_VERSION"),
                "channels": "",
                "moniker": self.settings.moniker,
                "other": {"tx_index": "on", "rpc_address": self.settings.rpc_listen},
            },
            "sync_info": {
                "latest_block_hash": last.map(|h| h.id().0.to_hex()).unwrap_or_default(),
                "latest_app_hash": self.chain.runtime.app_hash().to_hex(),
                "latest_block_height": self.last_height().to_string(),
                "latest_block_time": time(last.map(|h| h.time)),
                "earliest_block_hash": earliest.as_ref().map(|b| b.id().0.to_hex()).unwrap_or_default(),
                "earliest_app_hash": earliest.as_ref().map(|b| b.header.app_hash.to_hex()).unwrap_or_default(),
                "earliest_block_height": earliest.as_ref().map_or(0, |b| b.header.height.0).to_string(),
                "earliest_block_time": time(earliest.as_ref().map(|b| b.header.time)),
                "catching_up": self.catching_up,
            },
            "validator_info": validator_info,
        })
    }

    fn validators(&self, params: &Map<String, Value>) -> Result<Value, RpcError> {
        let next = self.chain.next_height();
        let height = match param_u64(params, "height")? {
            None | Some(0) => next - 1,
            Some(h) => h,
        };
        let set = self
            .store
            .validator_set(height)
            .map_err(internal)?
            .ok_or_else(|| {
                RpcError::invalid_params(format!(
                    "no validator set for height {height}; heights {} to {} are known",
                    self.chain.genesis.initial_height,
                    next + 1
                ))
            })?;
        let page = param_u64(params, "page")?.unwrap_or(1).max(1) as usize;
        let per_page = param_u64(params, "per_page")?.unwrap_or(30).clamp(1, 100) as usize;
        let all = set.validators();
        let start = (page - 1) * per_page;
        if start >= all.len() && !all.is_empty() {
            return Err(RpcError::invalid_params(format!(
                "page should be within [1, {}] range, given {page}",
                all.len().div_ceil(per_page)
            )));
        }
        let items: Vec<Value> = all
            .iter()
            .skip(start)
            .take(per_page)
            .map(|v| shapes::validator(&v.public_key, v.voting_power, v.proposer_priority))
            .collect();
        Ok(json!({
            "block_height": height.to_string(),
            "validators": items,
            "count": items.len().to_string(),
            "total": all.len().to_string(),
        }))
    }

    fn abci_query(&self, params: &Map<String, Value>) -> Result<Value, RpcError> {
        let mut path = param_str(params, "path")?.unwrap_or("").to_string();
        if let Some(data) = param_str(params, "data")?.filter(|d| !d.is_empty()) {
            // `data` is hex (CometBFT's HexBytes); Basalt's paths take text arguments.
            let bytes = hex::decode(data.trim_start_matches("0x"))
                .map_err(|e| RpcError::invalid_params(format!("data must be hex: {e}")))?;
            let arg =
                String::from_utf8(bytes.clone()).unwrap_or_else(|_| hex::encode_upper(&bytes));
            path = format!("{}/{arg}", path.trim_end_matches('/'));
        }
        let height = self.last_height();
        let answer = if let Some(addr) = path.strip_prefix(NONCE_PATH) {
            basalt_types::Address::from_hex(addr)
                .map(|a| json!({"address": a, "next_nonce": self.mempool.next_nonce(&self.chain.runtime, &a)}))
                .map_err(|e| e.to_string())
        } else {
            self.chain.runtime.query(&path).map_err(|e| e.to_string())
        };
        let (code, log, value) = match answer {
            Ok(v) => (0, String::new(), shapes::b64(v.to_string().as_bytes())),
            Err(e) => (1, e, String::new()),
        };
        Ok(json!({"response": {
            "code": code,
            "log": log,
            "info": "",
            "index": "0",
            "key": shapes::b64(path.as_bytes()),
            "value": value,
            "proofOps": null,
            "height": height.to_string(),
            "codespace": "",
        }}))
    }
}

pub fn tx_json(hash: &Hash, rec: &TxRecord) -> Value {
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
    json!({
        "hash": hash.to_hex(),
        "height": rec.height.to_string(),
        "index": rec.index,
        "tx_result": shapes::tx_result(rec.code, &rec.log, Value::Array(events)),
        "tx": shapes::b64(&rec.tx),
    })
}
