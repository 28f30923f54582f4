//! `config.toml`: the node's settings, written with a comment on every field and read back
//! strictly (an unknown key is a typo that would otherwise be silently ignored).

use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub moniker: String,
    pub p2p: P2pConfig,
    pub rpc: RpcConfig,
    pub consensus: ConsensusConfig,
    pub mempool: MempoolConfig,
    /// Absent in files written before it existed: the default (`kv`) applies.
    #[serde(default)]
    pub tx_index: TxIndexConfig,
    /// Absent in files written before it existed: keep every block, 100 state versions.
    #[serde(default)]
    pub storage: StorageConfig,
    /// Absent in files written before it existed: snapshots every 1,000 heights, no state
    /// sync.
    #[serde(default)]
    pub statesync: StateSyncConfig,
}

/// State sync (DESIGN.md §5): joining from a verified snapshot, and taking snapshots for
/// others (CometBFT's `[statesync]` and the Cosmos SDK's snapshot settings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSyncConfig {
    /// On a node with no state yet: restore a peer's snapshot instead of executing every
    /// block from genesis.
    pub enable: bool,
    /// JSON-RPC servers the light client verifies headers from (the first is its primary,
    /// the others witnesses).
    pub rpc_servers: Vec<String>,
    /// A header the operator trusts (obtained out of band): its height and hash.
    pub trust_height: u64,
    pub trust_hash: String,
    /// How long a trusted header stays trusted ("168h0m0s", "336h", "90m", "600s").
    pub trust_period: String,
    /// Take a state snapshot every this many heights (0: never).
    pub snapshot_interval: u64,
    /// Snapshots kept (older ones are deleted).
    pub snapshot_keep_recent: u32,
    /// Chunk requests in flight at once while restoring.
    pub chunk_fetchers: u32,
}

impl Default for StateSyncConfig {
    fn default() -> Self {
        StateSyncConfig {
            enable: false,
            rpc_servers: Vec::new(),
            trust_height: 0,
            trust_hash: String::new(),
            trust_period: "168h0m0s".into(),
            snapshot_interval: 1000,
            snapshot_keep_recent: 2,
            chunk_fetchers: 4,
        }
    }
}

/// Seconds in a Go-style duration ("168h0m0s", "90m", "600s").
pub fn parse_duration_s(text: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().ok()?;
        number.clear();
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    number.is_empty().then_some(total).filter(|t| *t > 0)
}

/// What the node keeps on disk (DESIGN.md §5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Blocks kept below the tip (0: every block).
    pub retain_blocks: u64,
    /// Recent state versions kept for queries at a height and proofs (at least 1).
    pub state_versions: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            retain_blocks: 0,
            state_versions: 100,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P2pConfig {
    pub listen: String,
    pub persistent_peers: Vec<String>,
}

/// JSON-RPC limits, with CometBFT's defaults (older config files without them still load).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcConfig {
    pub listen: String,
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    #[serde(default = "defaults::max_batch_request_calls")]
    pub max_batch_request_calls: usize,
    #[serde(default = "defaults::max_open_websockets")]
    pub max_open_websockets: usize,
    #[serde(default = "defaults::max_subscriptions_per_client")]
    pub max_subscriptions_per_client: usize,
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "defaults::timeout_broadcast_tx_commit_ms")]
    pub timeout_broadcast_tx_commit_ms: u64,
    #[serde(default)]
    pub cors_allowed_origins: Vec<String>,
    #[serde(default = "defaults::max_open_connections")]
    pub max_open_connections: usize,
    #[serde(default = "defaults::max_open_connections_per_ip")]
    pub max_open_connections_per_ip: usize,
    #[serde(default = "defaults::read_timeout_ms")]
    pub read_timeout_ms: u64,
    #[serde(default = "defaults::idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    #[serde(default = "defaults::ws_read_wait_ms")]
    pub ws_read_wait_ms: u64,
    #[serde(default = "defaults::ws_write_wait_ms")]
    pub ws_write_wait_ms: u64,
    #[serde(default = "defaults::query_budget_ms")]
    pub query_budget_ms: u64,
}

mod defaults {
    pub fn max_body_bytes() -> usize {
        1_000_000
    }
    pub fn max_batch_request_calls() -> usize {
        10
    }
    pub fn max_open_websockets() -> usize {
        100
    }
    pub fn max_subscriptions_per_client() -> usize {
        5
    }
    pub fn timeout_ms() -> u64 {
        15_000
    }
    pub fn timeout_broadcast_tx_commit_ms() -> u64 {
        10_000
    }
    pub fn max_open_connections() -> usize {
        900
    }
    pub fn max_open_connections_per_ip() -> usize {
        300
    }
    pub fn read_timeout_ms() -> u64 {
        10_000
    }
    pub fn idle_timeout_ms() -> u64 {
        30_000
    }
    pub fn ws_read_wait_ms() -> u64 {
        30_000
    }
    pub fn ws_write_wait_ms() -> u64 {
        10_000
    }
    pub fn query_budget_ms() -> u64 {
        5_000
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusConfig {
    pub create_empty_blocks: bool,
    pub timeout_commit_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MempoolConfig {
    pub max_txs: usize,
    pub max_bytes: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxIndexConfig {
    pub indexer: Indexer,
}

/// CometBFT's `tx_index.indexer`: `kv` keeps every committed transaction findable by hash
/// and by its events (`tx`, `tx_search`); `null` stores blocks and their results only, which
/// is what a validator that serves no queries should run (two or more fewer writes per
/// transaction).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Indexer {
    #[default]
    Kv,
    Null,
}

impl Indexer {
    /// The name in `config.toml` (and on the `bench` command line).
    pub fn name(self) -> &'static str {
        match self {
            Indexer::Kv => "kv",
            Indexer::Null => "null",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

impl Config {
    pub fn new(moniker: &str, p2p_port: u16, rpc_port: u16, peers: Vec<String>) -> Self {
        Config {
            moniker: moniker.to_string(),
            p2p: P2pConfig {
                listen: format!("127.0.0.1:{p2p_port}"),
                persistent_peers: peers,
            },
            rpc: RpcConfig {
                listen: format!("127.0.0.1:{rpc_port}"),
                max_body_bytes: defaults::max_body_bytes(),
                max_batch_request_calls: defaults::max_batch_request_calls(),
                max_open_websockets: defaults::max_open_websockets(),
                max_subscriptions_per_client: defaults::max_subscriptions_per_client(),
                timeout_ms: defaults::timeout_ms(),
                timeout_broadcast_tx_commit_ms: defaults::timeout_broadcast_tx_commit_ms(),
                cors_allowed_origins: Vec::new(),
                max_open_connections: defaults::max_open_connections(),
                max_open_connections_per_ip: defaults::max_open_connections_per_ip(),
                read_timeout_ms: defaults::read_timeout_ms(),
                idle_timeout_ms: defaults::idle_timeout_ms(),
                ws_read_wait_ms: defaults::ws_read_wait_ms(),
                ws_write_wait_ms: defaults::ws_write_wait_ms(),
                query_budget_ms: defaults::query_budget_ms(),
            },
            consensus: ConsensusConfig {
                create_empty_blocks: true,
                timeout_commit_ms: 1000,
            },
            mempool: MempoolConfig {
                max_txs: 50_000,
                max_bytes: 256 * 1024 * 1024,
            },
            tx_index: TxIndexConfig::default(),
            storage: StorageConfig::default(),
            statesync: StateSyncConfig::default(),
        }
    }

    /// The file's text: every value with the comment that says what it does.
    pub fn render(&self) -> String {
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let peers: Vec<String> = self.p2p.persistent_peers.iter().map(|p| q(p)).collect();
        format!(
            "# Basalt node configuration.\n\n\
             # A name for this node, shown to peers and in logs.\n\
             moniker = {moniker}\n\n\
             [p2p]\n\
             # host:port to accept peer connections on.\n\
             listen = {p2p}\n\
             # Peers to stay connected to (host:port), redialled with backoff.\n\
             persistent_peers = [{peers}]\n\n\
             [rpc]\n\
             # host:port of the JSON-RPC server. Keep it on 127.0.0.1 unless you put a proxy in front.\n\
             listen = {rpc}\n\
             # Largest request body in bytes, and most calls in one batch.\n\
             max_body_bytes = {max_body}\n\
             max_batch_request_calls = {max_batch}\n\
             # WebSocket clients at once, and subscriptions each may hold.\n\
             max_open_websockets = {max_ws}\n\
             max_subscriptions_per_client = {max_subs}\n\
             # Longest a request may take, and how long broadcast_tx_commit waits for the block (ms).\n\
             timeout_ms = {rpc_timeout}\n\
             timeout_broadcast_tx_commit_ms = {commit_timeout}\n\
             # Origins browsers may call from (\"*\" for any); empty sends no CORS headers.\n\
             cors_allowed_origins = [{cors}]\n\
             # HTTP connections at once, and from one source address (0: no cap); more are closed on accept.\n\
             max_open_connections = {max_conns}\n\
             max_open_connections_per_ip = {max_conns_ip}\n\
             # From accept, request headers must arrive within read_timeout_ms (and each body within it\n\
             # once its headers are in); a kept-alive connection idle for idle_timeout_ms is closed (ms).\n\
             read_timeout_ms = {read_timeout}\n\
             idle_timeout_ms = {idle_timeout}\n\
             # A WebSocket client silent for ws_read_wait_ms (pinged every 9/10 of it) is closed, and so\n\
             # is one that does not take a message within ws_write_wait_ms.\n\
             ws_read_wait_ms = {ws_read}\n\
             ws_write_wait_ms = {ws_write}\n\
             # A read (tx_search, block_search, blockchain, ...) that takes longer answers an error (ms).\n\
             query_budget_ms = {query_budget}\n\n\
             [consensus]\n\
             # Propose blocks even when the mempool is empty.\n\
             create_empty_blocks = {empty}\n\
             # Pause after a committed block before the next height, in milliseconds, when no\n\
             # transaction waits in the mempool (with some waiting the next height starts at once).\n\
             timeout_commit_ms = {commit}\n\n\
             [mempool]\n\
             # Most transactions, and most bytes, held waiting for a block.\n\
             max_txs = {max_txs}\n\
             max_bytes = {max_bytes}\n\n\
             [tx_index]\n\
             # \"kv\": committed transactions can be found by hash and events (tx, tx_search).\n\
             # \"null\": no transaction index (fewer writes per block; for validators that serve no queries).\n\
             indexer = {indexer}\n\n\
             [storage]\n\
             # Blocks kept below the tip (0 keeps every block); older blocks, their commits, results and\n\
             # index entries are deleted in the background. Peers that need them sync from other peers.\n\
             retain_blocks = {retain_blocks}\n\
             # Recent state versions kept for abci_query at a height and proofs (at least 1).\n\
             state_versions = {state_versions}\n\n\
             [statesync]\n\
             # On a node with no state yet, restore a peer's state snapshot (verified by a light client)\n\
             # instead of executing every block from genesis; then block-sync from the snapshot on.\n\
             enable = {ss_enable}\n\
             # JSON-RPC servers the light client verifies headers from (first: primary; others: witnesses).\n\
             rpc_servers = [{ss_rpc}]\n\
             # A header you trust, obtained out of band (e.g. `basalt query` on a node you run): height, hash.\n\
             trust_height = {ss_height}\n\
             trust_hash = {ss_hash}\n\
             # How long a trusted header stays trusted (less than the unbonding time).\n\
             trust_period = {ss_period}\n\
             # Take a state snapshot for other nodes every this many heights (0: never), keeping the last few.\n\
             snapshot_interval = {ss_interval}\n\
             snapshot_keep_recent = {ss_keep}\n\
             # Snapshot chunk requests in flight at once while restoring.\n\
             chunk_fetchers = {ss_fetchers}\n",
            moniker = q(&self.moniker),
            p2p = q(&self.p2p.listen),
            peers = peers.join(", "),
            rpc = q(&self.rpc.listen),
            max_body = self.rpc.max_body_bytes,
            max_batch = self.rpc.max_batch_request_calls,
            max_ws = self.rpc.max_open_websockets,
            max_subs = self.rpc.max_subscriptions_per_client,
            rpc_timeout = self.rpc.timeout_ms,
            commit_timeout = self.rpc.timeout_broadcast_tx_commit_ms,
            max_conns = self.rpc.max_open_connections,
            max_conns_ip = self.rpc.max_open_connections_per_ip,
            read_timeout = self.rpc.read_timeout_ms,
            idle_timeout = self.rpc.idle_timeout_ms,
            ws_read = self.rpc.ws_read_wait_ms,
            ws_write = self.rpc.ws_write_wait_ms,
            query_budget = self.rpc.query_budget_ms,
            cors = self.rpc.cors_allowed_origins.iter().map(|o| q(o)).collect::<Vec<_>>().join(", "),
            empty = self.consensus.create_empty_blocks,
            commit = self.consensus.timeout_commit_ms,
            max_txs = self.mempool.max_txs,
            max_bytes = self.mempool.max_bytes,
            indexer = q(self.tx_index.indexer.name()),
            retain_blocks = self.storage.retain_blocks,
            state_versions = self.storage.state_versions,
            ss_enable = self.statesync.enable,
            ss_rpc = self.statesync.rpc_servers.iter().map(|o| q(o)).collect::<Vec<_>>().join(", "),
            ss_height = self.statesync.trust_height,
            ss_hash = q(&self.statesync.trust_hash),
            ss_period = q(&self.statesync.trust_period),
            ss_interval = self.statesync.snapshot_interval,
            ss_keep = self.statesync.snapshot_keep_recent,
            ss_fetchers = self.statesync.chunk_fetchers,
        )
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: p.clone(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: p.clone(),
            reason: e.to_string(),
        })?;
        if config.storage.state_versions == 0 {
            return Err(ConfigError::Invalid {
                path: p,
                reason: "storage.state_versions must be at least 1".into(),
            });
        }
        let ss = &config.statesync;
        let invalid = |reason: &str| ConfigError::Invalid {
            path: p.clone(),
            reason: reason.into(),
        };
        if parse_duration_s(&ss.trust_period).is_none() {
            return Err(invalid(
                "statesync.trust_period is not a duration like \"168h0m0s\"",
            ));
        }
        if ss.enable {
            if ss.rpc_servers.is_empty() {
                return Err(invalid(
                    "statesync.enable needs at least one of statesync.rpc_servers",
                ));
            }
            if ss.trust_height == 0 {
                return Err(invalid("statesync.enable needs statesync.trust_height"));
            }
            if basalt_types::Hash::from_hex(&ss.trust_hash).is_err() {
                return Err(invalid(
                    "statesync.trust_hash must be the trusted header's hash (64 hex digits)",
                ));
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rendered_file_reads_back_identically_and_unknown_keys_are_refused() {
        let c = Config::new(
            "node \"zero\"",
            26600,
            26601,
            vec!["127.0.0.1:26602".into(), "127.0.0.1:26604".into()],
        );
        let text = c.render();
        assert!(
            text.lines().filter(|l| l.starts_with('#')).count() >= 8,
            "commented"
        );
        assert_eq!(toml::from_str::<Config>(&text).unwrap(), c);
        assert!(text.contains("[statesync]") && text.contains("snapshot_interval = 1000"));
        let typo = text.replace("max_txs", "max_tx");
        assert!(toml::from_str::<Config>(&typo).is_err());
    }

    #[test]
    fn the_indexer_is_kv_unless_set_and_only_kv_or_null_are_accepted() {
        let c = Config::new("n", 26600, 26601, vec![]);
        let text = c.render();
        assert!(text.contains("indexer = \"kv\""), "{text}");
        let older = text.split("[tx_index]").next().unwrap();
        assert_eq!(
            toml::from_str::<Config>(older).unwrap().tx_index.indexer,
            Indexer::Kv,
            "a file without the section"
        );
        let null = text.replace("indexer = \"kv\"", "indexer = \"null\"");
        assert_eq!(
            toml::from_str::<Config>(&null).unwrap().tx_index.indexer,
            Indexer::Null
        );
        let bad = text.replace("indexer = \"kv\"", "indexer = \"psql\"");
        assert!(toml::from_str::<Config>(&bad).is_err());
    }
}

#[cfg(test)]
mod statesync_tests {
    use super::*;

    #[test]
    fn durations_parse_like_go_and_garbage_does_not() {
        assert_eq!(parse_duration_s("168h0m0s"), Some(168 * 3600));
        assert_eq!(parse_duration_s("90m"), Some(5400));
        assert_eq!(parse_duration_s("1h30m15s"), Some(5415));
        for bad in ["", "0s", "12", "h", "5d", "1.5h", "-3h"] {
            assert_eq!(parse_duration_s(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn state_sync_without_what_it_needs_is_refused_with_the_key_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let mut c = Config::new("n", 26600, 26601, vec![]);
        c.statesync.enable = true;
        std::fs::write(&path, c.render()).unwrap();
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(e.contains("statesync.rpc_servers"), "{e}");
        c.statesync.rpc_servers = vec!["http://127.0.0.1:26657".into()];
        c.statesync.trust_height = 5;
        c.statesync.trust_hash = "zz".into();
        std::fs::write(&path, c.render()).unwrap();
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(e.contains("statesync.trust_hash"), "{e}");
        c.statesync.trust_hash = "AB".repeat(32);
        std::fs::write(&path, c.render()).unwrap();
        assert_eq!(Config::load(&path).unwrap(), c);
    }
}
