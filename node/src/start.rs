//! `basalt start`: load and check everything a node needs, failing with one clear message
//! (bad genesis, data directory of another chain, port in use, unreadable key), then run.

use crate::config::Config;
use crate::driver::verify::MemoVerifier;
use crate::driver::{Driver, DriverParts};
use crate::home::Home;
use crate::keys;
use crate::mempool::Mempool;
use crate::metrics::Metrics;
use crate::node::{Node, NodeParts, NodeSettings};
use crate::rpc_backend::snapshot::{NodeInfo, Snapshot};
use crate::rpc_backend::{NodeBackend, Reads};
use crate::signer::FileSigner;
use crate::store::Store;
use crate::wal::Wal;
use crate::wal_record::WalRecord;
use anyhow::{anyhow, Context, Result};
use basalt_genesis::Genesis;
use basalt_rpc::RpcConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

fn parse_addr(what: &str, s: &str) -> Result<SocketAddr> {
    s.parse()
        .map_err(|e| anyhow!("{what} {s:?} is not an IP:port address: {e}"))
}

pub fn load_genesis(home: &Home) -> Result<Genesis> {
    let path = home.genesis_file();
    let file = std::fs::File::open(&path)
        .with_context(|| format!("reading the genesis file {}", path.display()))?;
    Genesis::from_reader(file)
        .with_context(|| format!("genesis file {} is invalid", path.display()))
}

/// The node's identity key, created on first start (CometBFT's node_key.json): its libp2p
/// peer id and its CometBFT-style node id.
fn node_key(home: &Home) -> Result<basalt_types::PrivateKey> {
    let path = home.config_dir().join("node_key.json");
    if path.exists() {
        return Ok(keys::load(&path)?);
    }
    let k = keys::generate();
    keys::save(&path, &k)?;
    Ok(k)
}

/// Extra behaviour for `start` (only `--misbehave`, in builds with the `byzantine` feature).
#[derive(Default)]
pub struct StartOptions {
    #[cfg(feature = "byzantine")]
    pub misbehave: Option<crate::misbehave::Misbehave>,
}

pub async fn start(home: &Home, options: StartOptions) -> Result<()> {
    let _ = &options;
    let config = Config::load(&home.config_file())?;
    let genesis = Arc::new(load_genesis(home)?);
    let chain_id = genesis.chain_id.clone();
    let p2p_listen = parse_addr("p2p.listen", &config.p2p.listen)?;
    let rpc_listen = parse_addr("rpc.listen", &config.rpc.listen)?;
    let peers = config
        .p2p
        .persistent_peers
        .iter()
        .map(|p| parse_addr("a persistent peer", p))
        .collect::<Result<Vec<_>>>()?;

    std::fs::create_dir_all(home.data_dir())
        .with_context(|| format!("creating {}", home.data_dir().display()))?;
    let store = Store::open(&home.data_dir().join("blockstore.db"))?;
    let store = match config.tx_index.indexer {
        crate::config::Indexer::Kv => store,
        crate::config::Indexer::Null => store.without_tx_index(),
    };
    store.check_chain(&chain_id, &genesis.hash())?;
    let node_key = node_key(home)?;
    let metrics = Metrics::new();
    let mut p2p_config = basalt_p2p::P2pConfig::new(&chain_id, p2p_listen, peers);
    p2p_config.gossip_metrics = Some(metrics.gossip.clone());
    p2p_config.moniker = config.moniker.clone();
    let mut peers_to_replay = Vec::new();
    // State sync runs before anything else: the network is up, consensus is not.
    let mut network = None;
    if config.statesync.enable && store.state_height()?.is_none() {
        let (p2p, net) = basalt_p2p::start(
            p2p_config.clone(),
            basalt_p2p::keypair_from_seed(node_key.seed())?,
        )
        .await?;
        tracing::info!(p2p = %p2p_listen, peer_id = %p2p.local_peer_id(), "state sync: network up");
        let pump = crate::statesync::restore::Pump::start(p2p.clone(), net);
        let ss = &config.statesync;
        let settings = crate::statesync::restore::RestoreSettings {
            rpc_servers: ss.rpc_servers.clone(),
            trust_height: ss.trust_height,
            trust_hash: basalt_types::Hash::from_hex(&ss.trust_hash).map_err(|e| anyhow!(e))?,
            trust_period_s: crate::config::parse_duration_s(&ss.trust_period)
                .ok_or_else(|| anyhow!("statesync.trust_period is not a duration"))?,
            light_home: home.data_dir().join("light"),
            progress_file: home.data_dir().join("statesync.progress"),
            fetchers: ss.chunk_fetchers as usize,
            expected_peers: config.p2p.persistent_peers.len(),
        };
        crate::statesync::restore::restore(&store, &settings, &p2p, &pump).await?;
        let (net, peers) = pump.finish().await;
        peers_to_replay = peers;
        network = Some((p2p, net));
    }
    let loading = std::time::Instant::now();
    // The chain keeps the genesis without its accounts (they are in the stored state);
    // the full one is dropped here, and `genesis` RPCs read the file again.
    let (chain, evidence) = crate::driver::load_state(genesis, &store)?;
    let genesis = chain.genesis.clone();
    tracing::info!(
        chain_id,
        height = chain.next_height() - 1,
        app_hash = %chain.runtime.app_hash(),
        ms = loading.elapsed().as_millis() as u64,
        "state loaded"
    );

    let signer = if home.validator_key_file().exists() {
        let key = keys::load(&home.validator_key_file())?;
        let public = key.public_key();
        let s = FileSigner::open(key, &chain_id, &home.validator_state_file())?;
        tracing::info!(address = %public.address(), "validator key loaded");
        Some(crate::driver::Validator {
            signer: s,
            key: public,
        })
    } else {
        None
    };
    let (wal, replay) = Wal::<WalRecord>::open(&home.wal_file())?;
    if let Some(cut) = replay.repaired_tail {
        tracing::warn!(
            bytes = cut,
            "the WAL had a torn tail (a crash mid-write); it was cut off"
        );
    }

    // Bind both ports before anything runs, so that a port in use stops the start cleanly.
    let (api_tx, api_rx) = mpsc::channel(1024);
    let (events, _) = tokio::sync::broadcast::channel(1024);
    let mut rpc_config = RpcConfig::new(rpc_listen);
    rpc_config.max_body_bytes = config.rpc.max_body_bytes;
    rpc_config.max_batch = config.rpc.max_batch_request_calls;
    rpc_config.max_ws_clients = config.rpc.max_open_websockets;
    rpc_config.max_subscriptions_per_client = config.rpc.max_subscriptions_per_client;
    rpc_config.timeout = Duration::from_millis(config.rpc.timeout_ms);
    rpc_config.cors_allowed_origins = config.rpc.cors_allowed_origins.clone();
    rpc_config.max_open_connections = config.rpc.max_open_connections;
    rpc_config.max_open_connections_per_ip = config.rpc.max_open_connections_per_ip;
    rpc_config.read_timeout = Duration::from_millis(config.rpc.read_timeout_ms);
    rpc_config.idle_timeout = Duration::from_millis(config.rpc.idle_timeout_ms);
    rpc_config.ws_read_wait = Duration::from_millis(config.rpc.ws_read_wait_ms);
    rpc_config.ws_write_wait = Duration::from_millis(config.rpc.ws_write_wait_ms);
    let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(Snapshot::default()));
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let backend = NodeBackend {
        calls: api_tx,
        events: events.clone(),
        metrics: metrics.clone(),
        reads: Arc::new(Reads {
            store: store.clone(),
            genesis,
            genesis_file: Some(home.genesis_file()),
            info: NodeInfo {
                moniker: config.moniker.clone(),
                node_id: node_key.public_key().address().to_hex().to_lowercase(),
                node_key: node_key.public_key(),
                rpc_listen: rpc_listen.to_string(),
                p2p_listen: p2p_listen.to_string(),
            },
            snapshot: snapshot_rx,
            // Reads share the cores with consensus: at most one per core at a time.
            running: Arc::new(tokio::sync::Semaphore::new(cores)),
            budget: Duration::from_millis(config.rpc.query_budget_ms),
        }),
    };
    tokio::spawn(crate::pruner::run(store.clone(), config.storage.clone()));
    if store.indexes_txs() {
        let height = metrics.tx_index_height.clone();
        tokio::spawn(crate::tx_indexer::run(store.clone(), height));
    }
    let rpc_addr = basalt_rpc::serve(rpc_config, backend)
        .await
        .with_context(|| format!("cannot serve JSON-RPC on {rpc_listen}"))?;
    let (p2p, net) = match network {
        Some(n) => n,
        None => {
            basalt_p2p::start(p2p_config, basalt_p2p::keypair_from_seed(node_key.seed())?).await?
        }
    };
    // Snapshots held are served even when no new ones are taken.
    let snapshots_dir = crate::statesync::files::SnapshotDir::new(
        home.data_dir().join("snapshots"),
        config.statesync.snapshot_keep_recent as usize,
    );
    tokio::spawn(crate::statesync::take::run(
        store.clone(),
        snapshots_dir.clone(),
        config.statesync.snapshot_interval,
    ));
    let state_snapshots = Some(snapshots_dir);
    tracing::info!(rpc = %rpc_addr, p2p = %p2p_listen, peer_id = %p2p.local_peer_id(), "node started");

    let parts = NodeParts {
        settings: NodeSettings {
            broadcast_tx_commit_timeout: Duration::from_millis(
                config.rpc.timeout_broadcast_tx_commit_ms,
            ),
        },
        driver: {
            #[allow(unused_mut)]
            let mut driver = Driver::new(DriverParts {
                chain,
                store,
                mempool: Mempool::new(config.mempool.max_txs, config.mempool.max_bytes),
                evidence,
                validator: signer,
                wal: Box::new(wal),
                verifier: Arc::new(MemoVerifier::default()),
                create_empty_blocks: config.consensus.create_empty_blocks,
                timeout_commit: Duration::from_millis(config.consensus.timeout_commit_ms),
            });
            #[cfg(feature = "byzantine")]
            driver.misbehave(options.misbehave);
            driver
        },
        wal_records: replay.records,
        p2p,
        events,
        metrics,
        snapshot: snapshot_tx,
        state_snapshots,
        replay: peers_to_replay,
    };
    Node::run(parts, net, api_rx).await
}
