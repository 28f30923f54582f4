//! RPC reads served off the consensus path: on the RPC server's blocking threads, from a
//! read-only handle on the block store and the [`Snapshot`] the node publishes after each
//! event that changed it. A heavy query (a range `tx_search`, `blockchain` over the whole
//! chain) therefore costs the node's consensus nothing, and each runs under a time budget
//! after which it answers an error, never a silently partial result.

use super::snapshot::{NodeInfo, Snapshot};
use crate::api::{internal, order_desc, page_window, required, tx_json, tx_result_json};
use crate::store::{Store, TxRecord};
use basalt_genesis::Genesis;
use basalt_rpc::query::{Op, Operand, Query};
use basalt_rpc::{param_hash, param_str, param_u64, shapes, RpcError};
use basalt_types::{Block, Hash};
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

/// Methods answered here; everything else needs the live node.
/// Longest a `tx` or `tx_search` waits for the indexer to reach the last height.
const INDEX_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

pub const READ_METHODS: &[&str] = &[
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
    "tx",
    "tx_search",
    "block_search",
    "num_unconfirmed_txs",
    "abci_info",
];

const GENESIS_CHUNK: usize = 16 * 1024 * 1024;

/// When a read must be done by.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    deadline: Instant,
    limit: Duration,
}

impl Budget {
    pub fn new(limit: Duration) -> Self {
        Budget {
            deadline: Instant::now() + limit,
            limit,
        }
    }

    pub fn check(&self) -> Result<(), RpcError> {
        if Instant::now() > self.deadline {
            return Err(RpcError::internal(format!(
                "the query exceeded its time budget of {} ms; narrow it (an equality condition, a height range, a smaller page)",
                self.limit.as_millis()
            )));
        }
        Ok(())
    }
}

/// The heights `[lo, hi]` within `[first, last]` that `key`'s range conditions allow (the
/// only index block search needs: heights are dense).
fn height_range(query: &Query, key: &str, first: u64, last: u64) -> (u64, u64) {
    let (mut lo, mut hi) = (first, last);
    for c in query.conditions.iter().filter(|c| c.key == key) {
        let Some(Operand::Num(n)) = &c.value else {
            continue;
        };
        if *n < 0.0 {
            continue;
        }
        let n = *n as u64;
        match c.op {
            Op::Eq => {
                lo = lo.max(n);
                hi = hi.min(n);
            }
            Op::Gt => lo = lo.max(n.saturating_add(1)),
            Op::Ge => lo = lo.max(n),
            Op::Lt => hi = hi.min(n.saturating_sub(1)),
            Op::Le => hi = hi.min(n),
            _ => {}
        }
    }
    (lo, hi)
}

/// One read: the store, the genesis, the latest snapshot, and its budget.
pub struct ReadView<'a> {
    pub store: &'a Store,
    pub genesis: &'a Genesis,
    pub genesis_file: Option<&'a std::path::Path>,
    pub snap: &'a Snapshot,
    pub info: &'a NodeInfo,
    pub budget: Budget,
}

impl ReadView<'_> {
    /// Answers a read method (one of [`READ_METHODS`]).
    pub fn call(&self, method: &str, params: &Map<String, Value>) -> Result<Value, RpcError> {
        match method {
            "health" => Ok(json!({})),
            "abci_query" => self.abci_query(params),
            "status" => Ok(self.status()),
            "net_info" => Ok(self.net_info()),
            "genesis" => Ok(json!({"genesis": self.genesis_doc()?})),
            "genesis_chunked" => {
                let text = self.genesis_doc()?.to_string().into_bytes();
                let chunks: Vec<&[u8]> = text.chunks(GENESIS_CHUNK).collect();
                let n = param_u64(params, "chunk")?.unwrap_or(0) as usize;
                let chunk = chunks.get(n).ok_or_else(|| {
                    RpcError::invalid_params(format!(
                        "there are {} chunks, {n} is out of range",
                        chunks.len()
                    ))
                })?;
                Ok(
                    json!({"chunk": n.to_string(), "total": chunks.len().to_string(), "data": shapes::b64(chunk)}),
                )
            }
            "blockchain" => self.blockchain(params),
            "block" => {
                let h = self.height_param(params, "height")?;
                Ok(shapes::block_response(&self.block_at(h)?))
            }
            "block_by_hash" => {
                let b = self.block_by_hash(params)?;
                Ok(b.map_or(
                    json!({"block_id": shapes::block_id(None), "block": null}),
                    |b| shapes::block_response(&b),
                ))
            }
            "header" => {
                let h = self.height_param(params, "height")?;
                Ok(json!({"header": shapes::header(&self.block_at(h)?.header)}))
            }
            "header_by_hash" => {
                let b = self.block_by_hash(params)?;
                Ok(json!({"header": b.map(|b| shapes::header(&b.header))}))
            }
            "commit" => self.commit(params),
            "validators" => self.validators(params),
            "consensus_params" => {
                let h = self.height_param(params, "height")?;
                Ok(
                    json!({"block_height": h.to_string(), "consensus_params": self.consensus_params_json()}),
                )
            }
            "block_results" => self.block_results(params),
            "consensus_state" => Ok(
                json!({"round_state": super::round_state::round_state(self.snap.round.as_deref())}),
            ),
            "dump_consensus_state" => Ok(json!({
                "round_state": super::round_state::round_state_full(self.snap.round.as_deref()),
                "peers": self.snap.peers.iter().map(|(p, h, _)| json!({"node_address": p.to_string(), "peer_state": {"last_height": h.to_string()}})).collect::<Vec<_>>(),
            })),
            "tx" | "tx_search" if !self.store.indexes_txs() => {
                Err(RpcError::internal("transaction indexing is disabled"))
            }
            "tx" => {
                let hash = Hash(required(param_hash(params, "hash")?, "hash")?);
                let indexed = self.wait_for_index()?;
                match self.store.tx(&hash).map_err(internal)? {
                    Some(rec) => Ok(tx_json(&hash, &rec)),
                    None if indexed < self.last_height() => Err(RpcError::internal(format!(
                        "tx ({}) not found; the transaction index is behind the chain (indexed to height {indexed} of {})",
                        hash.to_hex(),
                        self.last_height()
                    ))),
                    None => Err(RpcError::internal(format!(
                        "tx ({}) not found",
                        hash.to_hex()
                    ))),
                }
            }
            "tx_search" => {
                self.wait_for_index()?;
                self.tx_search(params)
            }
            "block_search" => self.block_search(params),
            "num_unconfirmed_txs" => Ok(
                json!({"n_txs": self.snap.mempool_txs.to_string(), "total": self.snap.mempool_txs.to_string(),
                "total_bytes": self.snap.mempool_bytes.to_string(), "txs": null}),
            ),
            "abci_info" => Ok(json!({"response": {
                "data": "basalt",
                "version": env!("CARGO_PKG_VERSION"),
                "app_version": "0",
                "last_block_height": self.last_height().to_string(),
                "last_block_app_hash": shapes::b64(self.snap.app_hash.as_bytes()),
            }})),
            m => Err(RpcError::method_not_found(m)),
        }
    }

    /// Waits a moment for the indexer (it runs behind the commit path) to cover the last
    /// committed height, so that a transaction committed just now is found. Returns the
    /// height the index covers.
    fn wait_for_index(&self) -> Result<u64, RpcError> {
        crate::tx_indexer::wait_for(self.store, self.last_height(), INDEX_WAIT).map_err(internal)
    }

    /// Records of `hashes` in their order, read in chunks under the budget.
    fn txs(&self, hashes: &[Hash]) -> Result<Vec<(Hash, TxRecord)>, RpcError> {
        self.budget.check()?;
        let mut out = Vec::with_capacity(hashes.len());
        for chunk in hashes.chunks(256) {
            self.budget.check()?;
            out.extend(self.store.txs(chunk).map_err(internal)?);
        }
        Ok(out)
    }

    pub(crate) fn last_height(&self) -> u64 {
        (self.snap.last_height + 1) - 1
    }
    /// `height` or the latest; a height above the chain's is an error, as in CometBFT.
    fn height_param(&self, params: &Map<String, Value>, name: &str) -> Result<u64, RpcError> {
        let last = self.last_height();
        match param_u64(params, name)? {
            None | Some(0) => Ok(last),
            Some(h) if h > last => Err(RpcError::invalid_params(format!(
                "height {h} must be less than or equal to the current blockchain height {last}"
            ))),
            Some(h) => Ok(h),
        }
    }
    fn block_at(&self, h: u64) -> Result<Block, RpcError> {
        self.check_retained(h)?;
        self.store
            .block(h)
            .map_err(internal)?
            .ok_or_else(|| RpcError::internal(format!("block {h} not found")))
    }
    /// CometBFT's error for a height below the pruned store's earliest.
    fn check_retained(&self, h: u64) -> Result<(), RpcError> {
        match self.store.earliest_height().map_err(internal)? {
            Some(lowest) if h < lowest => Err(RpcError::internal(format!(
                "height {h} is not available, lowest height is {lowest}"
            ))),
            _ => Ok(()),
        }
    }
    fn block_by_hash(&self, params: &Map<String, Value>) -> Result<Option<Block>, RpcError> {
        let hash = Hash(required(param_hash(params, "hash")?, "hash")?);
        match self.store.height_of(&hash).map_err(internal)? {
            Some(h) => self.block_at(h).map(Some),
            None => Ok(None),
        }
    }
    fn node_info(&self) -> Value {
        json!({
            "protocol_version": {"p2p": "8", "block": "11", "app": "0"},
            "id": self.info.node_id,
            "listen_addr": self.info.p2p_listen,
            "network": self.genesis.chain_id,
            "version": env!("CARGO_PKG_VERSION"),
            "channels": "",
            "moniker": self.info.moniker,
            "other": {"tx_index": if self.store.indexes_txs() { "on" } else { "off" },
                "rpc_address": format!("tcp://{}", self.info.rpc_listen)},
        })
    }
    fn status(&self) -> Value {
        let last = self.snap.last_header.as_ref();
        let earliest = (self.store.earliest_height().ok().flatten())
            .and_then(|h| self.store.block(h).ok().flatten());
        let genesis_time = &self.genesis.genesis_time;
        let time = |t: Option<basalt_types::Timestamp>| {
            t.map_or_else(|| genesis_time.clone(), shapes::rfc3339)
        };
        let key = self.snap.validator_key.unwrap_or(self.info.node_key);
        let power = self
            .snap
            .validators
            .as_ref()
            .and_then(|s| s.get(&key.address()))
            .map_or(0, |v| v.voting_power);
        json!({
            "node_info": self.node_info(),
            "sync_info": {
                "latest_block_hash": last.map(|h| h.hash().to_hex()).unwrap_or_default(),
                "latest_app_hash": self.snap.app_hash.to_hex(),
                "latest_block_height": self.last_height().to_string(),
                "latest_block_time": time(last.map(|h| h.time)),
                "earliest_block_hash": earliest.as_ref().map(|b| b.header.hash().to_hex()).unwrap_or_default(),
                "earliest_app_hash": earliest.as_ref().map(|b| b.header.app_hash.to_hex()).unwrap_or_default(),
                "earliest_block_height": earliest.as_ref().map_or(0, |b| b.header.height.0).to_string(),
                "earliest_block_time": time(earliest.as_ref().map(|b| b.header.time)),
                "catching_up": self.snap.catching_up,
            },
            "validator_info": {"address": key.address().to_hex(), "pub_key": shapes::pub_key(&key), "voting_power": power.to_string()},
        })
    }
    /// CometBFT's `net_info`: each connected peer with what it told of itself (moniker,
    /// version, listen address, from libp2p identify), the address and direction of the
    /// connection and how long it has been up. Traffic monitors are zero: libp2p counts
    /// bytes per topic (`/metrics`), not per peer.
    fn net_info(&self) -> Value {
        let now = crate::node::now();
        let peers: Vec<Value> = self
            .snap
            .peers
            .iter()
            .map(|(p, height, info)| {
                let id = &Hash::digest(&p.to_bytes()).to_hex()[..40];
                let up_ns = (now.as_nanos() - info.since.as_nanos()).max(0);
                let monitor = json!({"Active": true, "Start": shapes::rfc3339(info.since),
                    "Duration": up_ns.to_string(), "Idle": "0", "Bytes": "0", "Samples": "0",
                    "InstRate": "0", "CurRate": "0", "AvgRate": "0", "PeakRate": "0",
                    "BytesRem": "0", "TimeRem": "0", "Progress": 0});
                json!({
                    "node_info": {
                        "protocol_version": {"p2p": "8", "block": "11", "app": "0"},
                        "id": id.to_lowercase(),
                        "listen_addr": info.listen_addr,
                        "network": self.genesis.chain_id,
                        "version": info.version,
                        "channels": "",
                        "moniker": info.moniker,
                        "other": {"tx_index": "off", "rpc_address": ""},
                    },
                    "is_outbound": info.outbound,
                    "connection_status": {"Duration": up_ns.to_string(), "SendMonitor": monitor,
                        "RecvMonitor": monitor, "Channels": []},
                    "remote_ip": info.ip,
                    "libp2p_peer_id": p.to_string(),
                    "connection_addr": info.addr,
                    "last_height": height.to_string(),
                })
            })
            .collect();
        json!({
            "listening": true,
            "listeners": [format!("Listener(@{})", self.info.p2p_listen)],
            "n_peers": peers.len().to_string(),
            "peers": peers,
        })
    }
    fn consensus_params_json(&self) -> Value {
        let p = &self.genesis.consensus_params;
        json!({
            "block": {"max_bytes": p.block.max_bytes.to_string(), "max_gas": "-1"},
            "evidence": {"max_age_num_blocks": p.evidence.max_age_blocks.to_string(),
                "max_age_duration": "172800000000000", "max_bytes": p.evidence.max_bytes.to_string()},
            "validator": {"pub_key_types": ["ed25519"]},
            "version": {"app": "0"},
            "abci": {"vote_extensions_enable_height": "0"},
        })
    }
    /// The genesis file in CometBFT's genesis-document shape; Basalt's own application state
    /// (accounts, validators, staking parameters) is `app_state`.
    fn genesis_doc(&self) -> Result<Value, RpcError> {
        // The node keeps no accounts in memory: they come from the file.
        let full;
        let g = match self.genesis_file {
            Some(path) => {
                let file = std::fs::File::open(path)
                    .map_err(|e| RpcError::internal(format!("reading the genesis file: {e}")))?;
                full = Genesis::from_reader(file)
                    .map_err(|e| RpcError::internal(format!("the genesis file is invalid: {e}")))?;
                &full
            }
            None => self.genesis,
        };
        let validators: Vec<Value> = self.store
            .validator_set(g.initial_height)
            .ok()
            .flatten()
            .map(|set| {
                set.validators()
                    .iter()
                    .map(|v| {
                        let name = g.app_state.validators.iter().find(|x| x.consensus_key == v.public_key).map(|x| x.moniker.clone());
                        json!({"address": v.address.to_hex(), "pub_key": shapes::pub_key(&v.public_key),
                            "power": v.voting_power.to_string(), "name": name})
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(json!({
            "genesis_time": g.genesis_time,
            "chain_id": g.chain_id,
            "initial_height": g.initial_height.to_string(),
            "consensus_params": self.consensus_params_json(),
            "validators": validators,
            "app_hash": "",
            "app_state": serde_json::to_value(&g.app_state).unwrap_or(Value::Null),
        }))
    }
    fn blockchain(&self, params: &Map<String, Value>) -> Result<Value, RpcError> {
        let last = self.last_height();
        // CometBFT clamps the range to the store's base (its earliest unpruned block).
        let first = (self.store.earliest_height().map_err(internal)?)
            .unwrap_or(self.genesis.initial_height);
        let max = param_u64(params, "maxHeight")?
            .filter(|h| *h > 0)
            .unwrap_or(last)
            .min(last);
        let min = param_u64(params, "minHeight")?
            .filter(|h| *h > 0)
            .unwrap_or(first)
            .max(first);
        if min > max && last >= first {
            return Err(RpcError::invalid_params(format!(
                "min height {min} can't be greater than max height {max}"
            )));
        }
        let min = min.max(max.saturating_sub(19));
        let mut metas = Vec::new();
        for h in (min..=max).rev() {
            self.budget.check()?;
            let b = self.block_at(h)?;
            let size = borsh::to_vec(&b).map_or(0, |v| v.len());
            metas.push(
                json!({"block_id": shapes::block_id(Some(b.id())), "block_size": size.to_string(),
                "header": shapes::header(&b.header), "num_txs": b.txs.len().to_string()}),
            );
        }
        Ok(json!({"last_height": last.to_string(), "block_metas": metas}))
    }
    fn commit(&self, params: &Map<String, Value>) -> Result<Value, RpcError> {
        let h = self.height_param(params, "height")?;
        let block = self.block_at(h)?;
        // The canonical commit is the one the next block carries; the latest block has only
        // this node's own.
        let (commit, canonical) = match self
            .store
            .block(h + 1)
            .map_err(internal)?
            .and_then(|b| b.last_commit)
        {
            Some(c) => (c, true),
            None => (
                self.store
                    .commit(h)
                    .map_err(internal)?
                    .ok_or_else(|| RpcError::internal(format!("no commit for {h}")))?,
                false,
            ),
        };
        Ok(
            json!({"signed_header": {"header": shapes::header(&block.header), "commit": shapes::commit(&commit)},
            "canonical": canonical}),
        )
    }
    fn validators(&self, params: &Map<String, Value>) -> Result<Value, RpcError> {
        let next = self.snap.last_height + 1;
        let height = match param_u64(params, "height")? {
            None | Some(0) => next - 1,
            Some(h) => h,
        }
        .max(self.genesis.initial_height);
        self.check_retained(height)?;
        let set = self
            .store
            .validator_set(height)
            .map_err(internal)?
            .ok_or_else(|| {
                RpcError::invalid_params(format!(
                    "no validator set for height {height}; heights {} to {} are known",
                    self.genesis.initial_height,
                    next + 1
                ))
            })?;
        let all = set.validators();
        let (start, per_page) = page_window(params, all.len())?;
        let items: Vec<Value> = all
            .iter()
            .skip(start)
            .take(per_page)
            .map(|v| shapes::validator(&v.public_key, v.voting_power, v.proposer_priority))
            .collect();
        Ok(
            json!({"block_height": height.to_string(), "validators": items,
            "count": items.len().to_string(), "total": all.len().to_string()}),
        )
    }
    fn block_results(&self, params: &Map<String, Value>) -> Result<Value, RpcError> {
        let h = self.height_param(params, "height")?;
        let block = self.block_at(h)?;
        let results = self
            .store
            .results(h)
            .map_err(internal)?
            .ok_or_else(|| RpcError::internal(format!("no results for {h}")))?;
        let txs: Vec<Value> = block
            .txs
            .iter()
            .zip(&results.txs)
            .enumerate()
            .map(|(i, (tx, outcome))| {
                let rec = TxRecord::new(h, i as u32, tx, outcome);
                tx_result_json(&basalt_runtime::tx_hash(tx), &rec)
            })
            .collect();
        let updates: Vec<Value> = results
            .validator_updates
            .iter()
            .filter_map(|(k, p)| {
                basalt_types::PublicKey::from_bytes(k)
                    .ok()
                    .map(|k| json!({"pub_key": shapes::pub_key(&k), "power": p.to_string()}))
            })
            .collect();
        Ok(json!({
            "height": h.to_string(),
            "txs_results": if txs.is_empty() { Value::Null } else { Value::Array(txs) },
            "finalize_block_events": self.store.block_events(h).map_err(internal)?
                .iter().map(|(kind, attrs)| shapes::event(kind, attrs)).collect::<Vec<_>>(),
            "validator_updates": updates,
            "consensus_param_updates": null,
            "app_hash": shapes::b64(results.app_hash.as_bytes()),
        }))
    }
    fn tx_search(&self, params: &Map<String, Value>) -> Result<Value, RpcError> {
        let query = Query::parse(required(param_str(params, "query")?, "query")?)
            .map_err(|e| RpcError::invalid_params(e.to_string()))?;
        let desc = order_desc(params)?;
        // Candidates from the index when an equality narrows them, else every transaction.
        let candidates: Vec<(Hash, TxRecord)> = match query
            .conditions
            .iter()
            .find_map(|c| c.equals().map(|v| (c.key.clone(), v)))
        {
            Some((k, v)) => self.txs(&self.store.txs_with(&k, &v).map_err(internal)?)?,
            None => self.txs(&self.store.all_tx_hashes().map_err(internal)?)?,
        };
        let mut hits: Vec<(Hash, TxRecord)> = candidates
            .into_iter()
            .filter(|(h, r)| {
                let mut a = r.attributes(h);
                a.push(("tm.event".into(), "Tx".into()));
                query.matches(&a)
            })
            .collect();
        if desc {
            hits.reverse();
        }
        let (start, per_page) = page_window(params, hits.len())?;
        let txs: Vec<Value> = hits
            .iter()
            .skip(start)
            .take(per_page)
            .map(|(h, r)| tx_json(h, r))
            .collect();
        Ok(json!({"txs": txs, "total_count": hits.len().to_string()}))
    }
    fn block_search(&self, params: &Map<String, Value>) -> Result<Value, RpcError> {
        let query = Query::parse(required(param_str(params, "query")?, "query")?)
            .map_err(|e| RpcError::invalid_params(e.to_string()))?;
        let desc = order_desc(params)?;
        let mut hits = Vec::new();
        let (lo, hi) = height_range(
            &query,
            "block.height",
            self.genesis.initial_height,
            self.last_height(),
        );
        let attributes = |h: u64, events: &[(String, Vec<(String, String)>)]| {
            let mut a = vec![
                ("block.height".to_string(), h.to_string()),
                ("tm.event".to_string(), "NewBlock".to_string()),
            ];
            a.extend(crate::store::event_attributes(events));
            a
        };
        // A condition on a block event (`slash.reason EXISTS`) can only hold where a block
        // has events: those few heights are read, not every height.
        let on_events =
            (query.conditions.iter()).any(|c| c.key != "block.height" && c.key != "tm.event");
        if on_events {
            for (h, events) in self.store.blocks_with_events(lo, hi).map_err(internal)? {
                if query.matches(&attributes(h, &events)) {
                    hits.push(h);
                }
            }
        } else {
            for h in lo..=hi {
                if (h - lo) % 4096 == 0 {
                    self.budget.check()?;
                }
                if query.matches(&attributes(h, &[])) {
                    hits.push(h);
                }
            }
        }
        if desc {
            hits.reverse();
        }
        let (start, per_page) = page_window(params, hits.len())?;
        let mut blocks = Vec::new();
        for h in hits.iter().skip(start).take(per_page) {
            self.budget.check()?;
            blocks.push(shapes::block_response(&self.block_at(*h)?));
        }
        Ok(json!({"blocks": blocks, "total_count": hits.len().to_string()}))
    }
}
