//! The Basalt node: home layout, keys, configuration, the consensus WAL, the persisted
//! double-sign guard, sled storage, the mempool, the event loop that drives consensus over
//! libp2p, the RPC methods it answers, and the CLI's client side. The `basalt` binary
//! (src/main.rs) drives them from the command line.

pub mod allocator;
pub mod api;
pub mod bench;
pub mod bench_bounds;
pub mod bench_reads;
pub mod chain;
pub mod cli_prove;
pub mod cli_tx;
pub mod client;
pub mod config;
pub mod docker;
pub mod driver;
pub mod evidence_pool;
pub mod home;
pub mod index_bench;
pub mod keys;
pub mod kv;
pub mod light;
pub mod localnet;
pub mod logging;
pub mod mempool;
pub mod metrics;
#[cfg(feature = "byzantine")]
pub mod misbehave;
pub mod node;
pub mod pruner;
pub mod restart_bench;
pub mod rpc_backend;
pub mod segments;
pub mod sigcheck;
pub mod signer;
pub mod start;
pub mod statesync;
pub mod statesync_bench;
pub mod store;
pub mod sync_bench;
pub mod testnet;
pub mod tx_indexer;
pub mod wal;
pub mod wal_record;
pub mod wire;
