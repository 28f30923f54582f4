//! The RPC methods the node answers, in CometBFT v0.38's shapes (see `basalt_rpc::shapes`).
//! They run inside the node task, so they see one consistent state.

use crate::node::Node;
use crate::store::TxRecord;
use basalt_rpc::query::Query;
use basalt_rpc::{param_bytes, param_hash, param_str, param_u64, shapes, RpcError};
use basalt_types::{Block, Hash};
use serde_json::{json, Map, Value};

/// Documented `abci_query` paths (besides the runtime's own).
pub const NONCE_PATH: &str = "/nonce/";
/// Largest page of `tx_search`, `block_search`, `validators` (CometBFT: 100).
const MAX_PER_PAGE: u64 = 100;
const GENESIS_CHUNK: usize = 16 * 1024 * 1024;

fn internal(e: impl std::fmt::Display) -> RpcError {
    RpcError::internal(e.to_string())
}

fn required<T>(v: Option<T>, name: &str) -> Result<T, RpcError> {
    v.ok_or_else(|| RpcError::invalid_params(format!("{name} is required")))
}

/// CometBFT's step numbers for `consensus_state`.
fn step_code(s: basalt_consensus::Step) -> u8 {
    match s {
        basalt_consensus::Step::Propose => 3,
        basalt_consensus::Step::Prevote => 4,
        basalt_consensus::Step::Precommit => 6,
        basalt_consensus::Step::Commit => 8,
    }
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
    pub(crate) fn api(
        &mut self,
        method: &str,
        params: &Map<String, Value>,
        verified_tx: Option<basalt_types::Hash>,
    ) -> Result<Value, RpcError> {
        match method {
            "health" => Ok(json!({})),
            "status" => Ok(self.status()),
            "net_info" => Ok(self.net_info()),
            "genesis" => Ok(json!({"genesis": self.genesis_doc()})),
            "genesis_chunked" => {
                let text = self.genesis_doc().to_string().into_bytes();
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
            "consensus_state" => Ok(json!({"round_state": self.round_state(false)})),
            "dump_consensus_state" => Ok(json!({
                "round_state": self.round_state(true),
                "peers": self.driver.peers.iter().map(|(p, h)| json!({"node_address": p.to_string(), "peer_state": {"last_height": h.to_string()}})).collect::<Vec<_>>(),
            })),
            "broadcast_tx_sync" | "broadcast_tx_async" => {
                let tx = required(param_bytes(params, "tx")?, "tx")?;
                let (r, hash) = self.submit_tx(tx, verified_tx).map_err(|e| self.stop(e))?;
                Ok(
                    json!({"code": r.code, "data": "", "log": r.log, "codespace": "", "hash": hash.to_hex()}),
                )
            }
            "check_tx" => {
                let tx = required(param_bytes(params, "tx")?, "tx")?;
                Ok(check_tx_json(&self.driver.chain.runtime.check_tx(&tx)))
            }
            "tx" | "tx_search" if !self.driver.store.indexes_txs() => {
                Err(RpcError::internal("transaction indexing is disabled"))
            }
            "tx" => {
                let hash = Hash(required(param_hash(params, "hash")?, "hash")?);
                match self.driver.store.tx(&hash).map_err(internal)? {
                    Some(rec) => Ok(tx_json(&hash, &rec)),
                    None => Err(RpcError::internal(format!(
                        "tx ({}) not found",
                        hash.to_hex()
                    ))),
                }
            }
            "tx_search" => self.tx_search(params),
            "block_search" => self.block_search(params),
            "unconfirmed_txs" => {
                let limit = param_u64(params, "limit")?
                    .unwrap_or(30)
                    .clamp(1, MAX_PER_PAGE) as usize;
                let txs: Vec<String> = self
                    .driver
                    .mempool
                    .pending(limit)
                    .iter()
                    .map(|t| shapes::b64(t))
                    .collect();
                Ok(
                    json!({"n_txs": txs.len().to_string(), "total": self.driver.mempool.len().to_string(),
                    "total_bytes": self.driver.mempool.size_bytes().to_string(), "txs": txs}),
                )
            }
            "num_unconfirmed_txs" => Ok(
                json!({"n_txs": self.driver.mempool.len().to_string(), "total": self.driver.mempool.len().to_string(),
                "total_bytes": self.driver.mempool.size_bytes().to_string(), "txs": null}),
            ),
            "abci_info" => Ok(json!({"response": {
                "data": "basalt",
                "version": env!("CARGO_PKG_VERSION"),
                "app_version": "0",
                "last_block_height": self.last_height().to_string(),
                "last_block_app_hash": shapes::b64(self.driver.chain.runtime.app_hash().as_bytes()),
            }})),
            "abci_query" => self.abci_query(params),
            "broadcast_evidence" => self.broadcast_evidence(params),
            m => Err(RpcError::method_not_found(m)),
        }
    }

    pub(crate) fn last_height(&self) -> u64 {
        self.driver.chain.next_height() - 1
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
        self.driver.store
            .block(h)
            .map_err(internal)?
            .ok_or_else(|| RpcError::internal(format!("block {h} not found")))
    }

    fn block_by_hash(&self, params: &Map<String, Value>) -> Result<Option<Block>, RpcError> {
        let id = basalt_types::BlockId(Hash(required(param_hash(params, "hash")?, "hash")?));
        match self.driver.store.height_of(&id).map_err(internal)? {
            Some(h) => self.block_at(h).map(Some),
            None => Ok(None),
        }
    }

    fn node_info(&self) -> Value {
        json!({
            "protocol_version": {"p2p": "8", "block": "11", "app": "0"},
            "id": self.settings.node_id,
            "listen_addr": self.settings.p2p_listen,
            "network": self.driver.chain.chain_id(),
            "version": env!("CARGO_PKG_VERSION"),
            "channels": "",
            "moniker": self.settings.moniker,
            "other": {"tx_index": if self.driver.store.indexes_txs() { "on" } else { "off" },
                "rpc_address": format!("tcp://{}", self.settings.rpc_listen)},
        })
    }

    fn status(&self) -> Value {
        let last = self.driver.chain.last_header.as_ref();
        let earliest = self
            .driver
            .store
            .block(self.driver.chain.genesis.initial_height)
            .ok()
            .flatten();
        let genesis_time = &self.driver.chain.genesis.genesis_time;
        let time = |t: Option<basalt_types::Timestamp>| {
            t.map_or_else(|| genesis_time.clone(), shapes::rfc3339)
        };
        let key = self.driver.validator_key.unwrap_or(self.settings.node_key);
        let power = self
            .driver
            .chain
            .validators()
            .get(&key.address())
            .map_or(0, |v| v.voting_power);
        json!({
            "node_info": self.node_info(),
            "sync_info": {
                "latest_block_hash": last.map(|h| h.id().0.to_hex()).unwrap_or_default(),
                "latest_app_hash": self.driver.chain.runtime.app_hash().to_hex(),
                "latest_block_height": self.last_height().to_string(),
                "latest_block_time": time(last.map(|h| h.time)),
                "earliest_block_hash": earliest.as_ref().map(|b| b.id().0.to_hex()).unwrap_or_default(),
                "earliest_app_hash": earliest.as_ref().map(|b| b.header.app_hash.to_hex()).unwrap_or_default(),
                "earliest_block_height": earliest.as_ref().map_or(0, |b| b.header.height.0).to_string(),
                "earliest_block_time": time(earliest.as_ref().map(|b| b.header.time)),
                "catching_up": self.driver.catching_up,
            },
            "validator_info": {"address": key.address().to_hex(), "pub_key": shapes::pub_key(&key), "voting_power": power.to_string()},
        })
    }

    fn net_info(&self) -> Value {
        let peers: Vec<Value> = self
            .peer_info
            .iter()
            .map(|(p, info)| {
                let id = &Hash::digest(&p.to_bytes()).to_hex()[..40];
                let monitor = json!({"Active": true, "Start": shapes::rfc3339(info.since), "Duration": "0", "Idle": "0",
                    "Bytes": "0", "Samples": "0", "InstRate": "0", "CurRate": "0", "AvgRate": "0", "PeakRate": "0",
                    "BytesRem": "0", "TimeRem": "0", "Progress": 0});
                json!({
                    "node_info": {
                        "protocol_version": {"p2p": "8", "block": "11", "app": "0"},
                        "id": id.to_lowercase(),
                        "listen_addr": info.addr,
                        "network": self.driver.chain.chain_id(),
                        "version": "",
                        "channels": "",
                        "moniker": p.to_string(),
                        "other": {"tx_index": "on", "rpc_address": ""},
                    },
                    "is_outbound": info.outbound,
                    "connection_status": {"Duration": "0", "SendMonitor": monitor, "RecvMonitor": monitor, "Channels": []},
                    "remote_ip": info.ip,
                })
            })
            .collect();
        json!({
            "listening": true,
            "listeners": [format!("Listener(@{})", self.settings.p2p_listen)],
            "n_peers": peers.len().to_string(),
            "peers": peers,
        })
    }

    fn consensus_params_json(&self) -> Value {
        let p = &self.driver.chain.genesis.consensus_params;
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
    fn genesis_doc(&self) -> Value {
        let g = &self.driver.chain.genesis;
        let validators: Vec<Value> = self
            .driver
            .store
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
        json!({
            "genesis_time": g.genesis_time,
            "chain_id": g.chain_id,
            "initial_height": g.initial_height.to_string(),
            "consensus_params": self.consensus_params_json(),
            "validators": validators,
            "app_hash": "",
            "app_state": serde_json::to_value(&g.app_state).unwrap_or(Value::Null),
        })
    }

    fn blockchain(&self, params: &Map<String, Value>) -> Result<Value, RpcError> {
        let last = self.last_height();
        let first = self.driver.chain.genesis.initial_height;
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
            .driver
            .store
            .block(h + 1)
            .map_err(internal)?
            .and_then(|b| b.last_commit)
        {
            Some(c) => (c, true),
            None => (
                self.driver.store
                    .commit(h)
                    .map_err(internal)?
                    .ok_or_else(|| RpcError::internal(format!("no commit for {h}")))?,
                false,
            ),
        };
        Ok(
            json!({"signed_header": {"header": shapes::header(&block.header), "commit": shapes::commit(&commit, block.header.time)},
            "canonical": canonical}),
        )
    }

    fn validators(&self, params: &Map<String, Value>) -> Result<Value, RpcError> {
        let next = self.driver.chain.next_height();
        let height = match param_u64(params, "height")? {
            None | Some(0) => next - 1,
            Some(h) => h,
        }
        .max(self.driver.chain.genesis.initial_height);
        let set = self
            .driver
            .store
            .validator_set(height)
            .map_err(internal)?
            .ok_or_else(|| {
                RpcError::invalid_params(format!(
                    "no validator set for height {height}; heights {} to {} are known",
                    self.driver.chain.genesis.initial_height,
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
            .driver
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
            "finalize_block_events": [],
            "validator_updates": updates,
            "consensus_param_updates": null,
            "app_hash": shapes::b64(results.app_hash.as_bytes()),
        }))
    }

    fn round_state(&self, full: bool) -> Value {
        let e = &self.driver.engine;
        let h = e.height().0;
        let proposer = e.validators().map(|s| {
            let a = s.proposer_for_round(e.round().0);
            json!({"address": a.to_hex(), "index": s.index_of(&a).unwrap_or(0)})
        });
        let hash_of = |v: Option<(basalt_types::BlockId, basalt_types::Round)>| {
            v.map(|(b, _)| b.0.to_hex()).unwrap_or_default()
        };
        let proposal = e
            .proposals()
            .find(|p| p.proposal.round == e.round())
            .map(|p| p.proposal.block_id.0.to_hex())
            .unwrap_or_default();
        let total = e.validators().map_or(0, |s| s.total_power());
        let votes: Vec<Value> = (0..=e.round().0)
            .map(|r| {
                let r = basalt_types::Round(r);
                let pv = e.votes().power_any(r, basalt_types::VoteType::Prevote);
                let pc = e.votes().power_any(r, basalt_types::VoteType::Precommit);
                json!({"round": r.0, "prevotes": [], "prevotes_bit_array": format!("BA{{}} {pv}/{total}"),
                    "precommits": [], "precommits_bit_array": format!("BA{{}} {pc}/{total}")})
            })
            .collect();
        let start = self
            .driver
            .chain
            .last_header
            .as_ref()
            .map(|h| h.time)
            .unwrap_or_default();
        let mut rs = json!({
            "height/round/step": format!("{h}/{}/{}", e.round().0, step_code(e.step())),
            "start_time": shapes::rfc3339(start),
            "proposal_block_hash": proposal,
            "locked_block_hash": hash_of(e.locked()),
            "valid_block_hash": hash_of(e.valid()),
            "height_vote_set": votes,
            "proposer": proposer,
        });
        if full {
            rs["height"] = json!(h.to_string());
            rs["round"] = json!(e.round().0);
            rs["step"] = json!(step_code(e.step()));
            rs["locked_round"] = json!(e.locked().map_or(-1, |(_, r)| i64::from(r.0)));
            rs["valid_round"] = json!(e.valid().map_or(-1, |(_, r)| i64::from(r.0)));
            rs["validators"] = json!(e.validators().map(|s| s
                .validators()
                .iter()
                .map(|v| shapes::validator(&v.public_key, v.voting_power, v.proposer_priority))
                .collect::<Vec<_>>()));
            rs["votes"] = json!(e.votes().all_votes().map(|v| json!({"type": format!("{:?}", v.vote.vote_type), "round": v.vote.round.0,
                "validator": v.vote.validator.to_hex(), "block_id": v.vote.block_id.map(|b| b.0.to_hex())})).collect::<Vec<_>>());
        }
        rs
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
            Some((k, v)) => self
                .driver
                .store
                .txs(&self.driver.store.txs_with(&k, &v).map_err(internal)?)
                .map_err(internal)?,
            None => self.driver.store.all_txs().map_err(internal)?,
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
        for h in self.driver.chain.genesis.initial_height..=self.last_height() {
            let a = vec![
                ("block.height".to_string(), h.to_string()),
                ("tm.event".to_string(), "NewBlock".to_string()),
            ];
            if query.matches(&a) {
                hits.push(h);
            }
        }
        if desc {
            hits.reverse();
        }
        let (start, per_page) = page_window(params, hits.len())?;
        let mut blocks = Vec::new();
        for h in hits.iter().skip(start).take(per_page) {
            blocks.push(shapes::block_response(&self.block_at(*h)?));
        }
        Ok(json!({"blocks": blocks, "total_count": hits.len().to_string()}))
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
                .map(|a| json!({"address": a, "next_nonce": self.driver.mempool.next_nonce(&self.driver.chain.runtime, &a)}))
                .map_err(|e| e.to_string())
        } else {
            self.driver.chain.runtime.query(&path).map_err(|e| e.to_string())
        };
        let (code, log, value) = match answer {
            Ok(v) => (0, String::new(), shapes::b64(v.to_string().as_bytes())),
            Err(e) => (1, e, String::new()),
        };
        Ok(
            json!({"response": {"code": code, "log": log, "info": "", "index": "0", "key": shapes::b64(path.as_bytes()),
            "value": value, "proofOps": null, "height": height.to_string(), "codespace": ""}}),
        )
    }

    /// Evidence in CometBFT's JSON (`{"type":"tendermint/DuplicateVoteEvidence","value":…}`,
    /// as `block` shows it) or Basalt's own; verified like gossip before it is kept.
    fn broadcast_evidence(&mut self, params: &Map<String, Value>) -> Result<Value, RpcError> {
        let ev = params
            .get("evidence")
            .ok_or_else(|| RpcError::invalid_params("evidence is required"))?;
        let ev = shapes::parse_evidence(ev).map_err(RpcError::invalid_params)?;
        let hash = Hash::of(&ev);
        let outcome = self.submit_evidence(ev).map_err(|e| self.stop(e))?;
        if outcome.map_err(|e| RpcError::internal(format!("evidence refused: {e}")))? {
            tracing::info!(%hash, "evidence received through RPC");
        }
        Ok(json!({"hash": hash.to_hex()}))
    }
}

/// Page `page` (1-based) of `per_page` (default 30, at most 100) over `total` items.
fn page_window(params: &Map<String, Value>, total: usize) -> Result<(usize, usize), RpcError> {
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

fn order_desc(params: &Map<String, Value>) -> Result<bool, RpcError> {
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
