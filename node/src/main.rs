//! `basalt`: the node's command line (DESIGN.md §5): init, testnet, start, localnet, keys,
//! tx and query.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{bail, Context, Result};
use basalt_node::home::Home;
use basalt_node::keys;
use basalt_node::testnet::{self, TestnetSpec, DEFAULT_BASE_PORT, DEFAULT_KEY};
use basalt_node::{cli_tx, localnet};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "basalt",
    version,
    about = "Basalt: a Tendermint-style proof-of-stake node"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a node home with a single-validator genesis.
    Init {
        #[arg(long)]
        home: PathBuf,
        #[arg(long)]
        chain_id: String,
        #[arg(long, default_value = "basalt-node")]
        moniker: String,
    },
    /// Create homes for a local multi-node network (node k: P2P on base+2k, RPC on base+2k+1).
    Testnet {
        #[arg(long)]
        validators: usize,
        #[arg(long, default_value_t = 0)]
        full_nodes: usize,
        #[arg(long)]
        output: PathBuf,
        #[arg(long, default_value_t = DEFAULT_BASE_PORT)]
        base_port: u16,
        /// Self-bond of each validator in tokens, comma separated (default 10000000 each).
        #[arg(long, value_delimiter = ',')]
        stake: Option<Vec<u128>>,
        #[arg(long, default_value = "basalt-testnet")]
        chain_id: String,
        /// Propose timeout in milliseconds (prevote and precommit wait half of it).
        #[arg(long)]
        timeout_propose_ms: Option<u64>,
        /// Pause after each block, in milliseconds.
        #[arg(long)]
        timeout_commit_ms: Option<u64>,
        /// Also fund this many generated accounts (no keys kept): a large state to sync.
        #[arg(long, default_value_t = 0)]
        funded_accounts: u32,
        /// Wire the nodes for containers and write OUTPUT/docker-compose.yml (image
        /// basalt:local, built by tests/e2e/run.sh).
        #[arg(long)]
        docker: bool,
    },
    /// Run a node.
    Start {
        #[arg(long)]
        home: PathBuf,
        /// Equivocate on purpose: double-prevote, double-precommit or double-propose, from
        /// HEIGHT on (testing builds only).
        #[cfg(feature = "byzantine")]
        #[arg(long, value_name = "KIND[@HEIGHT]")]
        misbehave: Option<basalt_node::misbehave::Misbehave>,
    },
    /// Create and run a local N-validator network in one command (ctrl-c stops it).
    Localnet {
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Where the nodes' homes go (kept between runs; a new chain if it is empty).
        #[arg(long, default_value = "localnet")]
        dir: PathBuf,
        #[arg(long, default_value_t = DEFAULT_BASE_PORT)]
        base_port: u16,
    },
    /// Sign and submit a transaction.
    Tx {
        #[command(subcommand)]
        msg: cli_tx::TxCommand,
        #[command(flatten)]
        opts: cli_tx::TxOptions,
    },
    /// A light client: verify the chain's headers from one trusted header (skipping
    /// verification with bisection), cross-checked with witnesses; JSON lines on stdout.
    Light {
        /// The primary node's JSON-RPC address.
        #[arg(long, default_value = cli_tx::DEFAULT_NODE)]
        node: String,
        /// The height of a header trusted out of band (needed the first time).
        #[arg(long, requires = "trust_hash")]
        trust_height: Option<u64>,
        /// That header's hash (64 hex digits).
        #[arg(long, requires = "trust_height")]
        trust_hash: Option<String>,
        /// Keep verifying each new tip.
        #[arg(long)]
        follow: bool,
        /// A node to cross-check every verified header with (repeatable).
        #[arg(long)]
        witness: Vec<String>,
        /// Where the trusted headers are kept.
        #[arg(long, default_value = "basalt-light")]
        home: PathBuf,
        /// How long a trusted header may be used, in seconds (under the unbonding period).
        #[arg(long, default_value_t = 14 * 24 * 3600)]
        trusting_period_s: u64,
    },
    /// Query a node (JSON on stdout).
    Query {
        #[command(subcommand)]
        what: cli_tx::QueryCommand,
        /// The node's JSON-RPC address.
        #[arg(long, global = true, default_value = cli_tx::DEFAULT_NODE)]
        node: String,
    },
    /// Measure throughput and latency on a fresh local network (prints a markdown table).
    Bench {
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Seconds of load.
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// Offered transfers per second (default: as fast as the nodes take them).
        #[arg(long)]
        rate: Option<u64>,
        /// Funded sender accounts.
        #[arg(long, default_value_t = 10_000)]
        accounts: usize,
        /// Also write the figures as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        #[arg(long, default_value_t = 26900)]
        base_port: u16,
        /// Pause after each block under load, in milliseconds.
        #[arg(long, default_value_t = 200)]
        timeout_commit_ms: u64,
        /// The validators' transaction indexer (`null`, as CometBFT advises for validators,
        /// or `kv`).
        #[arg(long, value_enum, default_value_t = basalt_node::config::Indexer::Null)]
        indexer: basalt_node::config::Indexer,
        /// The validators' `[storage] retain_blocks` (0 keeps every block).
        #[arg(long, default_value_t = 0)]
        retain_blocks: u64,
        /// Also run a kv-indexing full node and report how far its index lags the chain.
        #[arg(long)]
        full_node: bool,
        /// Seconds between progress samples (height, each node's disk use, the full
        /// node's index lag).
        #[arg(long, default_value_t = 60)]
        sample_s: u64,
    },
    /// Measure how much heavy RPC reads slow consensus: the block rate of an idle
    /// 4-validator localnet against the rate while every validator serves heavy reads.
    BenchReads {
        /// Transfers committed before measuring (what tx_search has to search).
        #[arg(long, default_value_t = 20_000)]
        transfers: usize,
        /// Seconds of each measurement.
        #[arg(long, default_value_t = 20)]
        duration: u64,
        #[arg(long, default_value_t = 27700)]
        base_port: u16,
        /// Also write the figures as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Measure block sync: a fresh full node catches up with a generated chain (prints
    /// blocks/s).
    BenchSync {
        /// Length of the chain to sync.
        #[arg(long, default_value_t = 10_000)]
        blocks: u64,
        /// Signed transfers in every block.
        #[arg(long, default_value_t = 100)]
        txs: usize,
        /// Also write the figures as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        #[arg(long, default_value_t = 26950)]
        base_port: u16,
    },
    /// Measure joining a long chain with a large state by state sync and by block sync
    /// (prints both times, and the restore time at an early and a late snapshot).
    BenchStatesync {
        /// Length of the chain.
        #[arg(long, default_value_t = 100_000)]
        blocks: u64,
        /// Funded accounts at genesis (the state's size).
        #[arg(long, default_value_t = 1_000_000)]
        accounts: u32,
        /// Also write the figures as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        #[arg(long, default_value_t = 27900)]
        base_port: u16,
    },
    /// Measure restart time: a validator stopped with SIGTERM and started again on a short
    /// and on a long generated chain (prints both, and the fsync latency beside them).
    BenchRestart {
        /// Height of the short chain.
        #[arg(long, default_value_t = 100)]
        short: u64,
        /// Height of the long chain.
        #[arg(long, default_value_t = 100_000)]
        long: u64,
        /// Signed transfers in every block.
        #[arg(long, default_value_t = 10)]
        txs: usize,
        /// Also write the figures as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        #[arg(long, default_value_t = 26970)]
        base_port: u16,
    },
    /// Measure the kv transaction indexer: indexing a generated chain into sorted runs,
    /// against the same entries inserted into sled one by one (prints both and the ratio).
    BenchIndex {
        /// Blocks in the generated chain.
        #[arg(long, default_value_t = 100)]
        blocks: u64,
        /// Signed transfers in every block.
        #[arg(long, default_value_t = 4_000)]
        txs: usize,
        /// Also write the figures as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        #[arg(long, default_value_t = 26990)]
        base_port: u16,
    },
    /// Manage account keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Create a new key.
    Add {
        #[arg(long)]
        home: PathBuf,
        #[arg(long, default_value = DEFAULT_KEY)]
        key: String,
    },
    /// Print a key's account address (40 hex digits).
    Show {
        #[arg(long)]
        home: PathBuf,
        #[arg(long, default_value = DEFAULT_KEY)]
        key: String,
    },
    /// List key names and addresses.
    List {
        #[arg(long)]
        home: PathBuf,
    },
}

fn valid_key_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("key name {name:?} must be 1 to 64 letters, digits, '-' or '_'");
    }
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Init {
            home,
            chain_id,
            moniker,
        } => {
            let done = testnet::init(&Home::new(&home), &chain_id, &moniker)?;
            println!("initialised {} for chain {chain_id}", home.display());
            println!("account address:   {}", done.account);
            println!("validator address: {}", done.consensus);
        }
        Command::Testnet {
            validators,
            full_nodes,
            output,
            base_port,
            stake,
            chain_id,
            timeout_propose_ms,
            timeout_commit_ms,
            funded_accounts,
            docker,
        } => {
            let spec = TestnetSpec {
                validators,
                full_nodes,
                output: &output,
                base_port,
                stakes: stake,
                chain_id: &chain_id,
                timeout_propose_ms,
                timeout_commit_ms,
                extra_accounts: testnet::generated_accounts(funded_accounts),
            };
            let homes = testnet::testnet(&spec)?;
            if docker {
                basalt_node::docker::write(&output, &homes, base_port)?;
                println!("wrote {}", output.join("docker-compose.yml").display());
            }
            for (k, h) in homes.iter().enumerate() {
                let role = if k < validators {
                    "validator"
                } else {
                    "full node"
                };
                let p2p = base_port as usize + 2 * k;
                println!(
                    "{}  {role}  p2p 127.0.0.1:{p2p}  rpc 127.0.0.1:{}",
                    h.root().display(),
                    p2p + 1
                );
            }
        }
        Command::Start {
            home,
            #[cfg(feature = "byzantine")]
            misbehave,
        } => {
            basalt_node::logging::init();
            let options = basalt_node::start::StartOptions {
                #[cfg(feature = "byzantine")]
                misbehave,
            };
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let result = rt.block_on(basalt_node::start::start(&Home::new(&home), options));
            // Everything durable is flushed by now; do not wait on connection tasks, so a
            // SIGTERM stops the node within a second or two.
            rt.shutdown_timeout(std::time::Duration::from_millis(300));
            result?;
        }
        Command::Localnet {
            validators,
            dir,
            base_port,
        } => localnet::run(validators, &dir, base_port)?,
        Command::Tx { msg, opts } => cli_tx::run_tx(msg, opts)?,
        Command::Query { what, node } => cli_tx::run_query(what, &node)?,
        Command::Light {
            node,
            trust_height,
            trust_hash,
            follow,
            witness,
            home,
            trusting_period_s,
        } => {
            let trust = match (trust_height, trust_hash) {
                (Some(h), Some(hash)) => Some((
                    h,
                    basalt_types::Hash::from_hex(&hash)
                        .map_err(|e| anyhow::anyhow!("--trust-hash: {e}"))?,
                )),
                _ => None,
            };
            let options = basalt_node::light::verify::Options {
                trusting_period_s,
                ..Default::default()
            };
            let client =
                basalt_node::light::LightClient::open(&home, &node, &witness, trust, options)?;
            basalt_node::light::run(client, follow)?
        }
        Command::Bench {
            validators,
            duration,
            rate,
            accounts,
            json,
            base_port,
            timeout_commit_ms,
            indexer,
            retain_blocks,
            full_node,
            sample_s,
        } => basalt_node::bench::run(basalt_node::bench::BenchSpec {
            validators,
            duration: std::time::Duration::from_secs(duration),
            rate,
            accounts,
            json,
            base_port,
            timeout_commit_ms,
            indexer,
            retain_blocks,
            full_node,
            sample_every: std::time::Duration::from_secs(sample_s.max(1)),
        })?,
        Command::BenchReads {
            transfers,
            duration,
            base_port,
            json,
        } => basalt_node::bench_reads::run(basalt_node::bench_reads::ReadBenchSpec {
            transfers,
            duration: std::time::Duration::from_secs(duration),
            base_port,
            json,
        })?,
        Command::BenchSync {
            blocks,
            txs,
            json,
            base_port,
        } => basalt_node::sync_bench::run(basalt_node::sync_bench::SyncBenchSpec {
            blocks,
            txs_per_block: txs,
            base_port,
            json,
        })?,
        Command::BenchStatesync {
            blocks,
            accounts,
            json,
            base_port,
        } => basalt_node::statesync_bench::run(basalt_node::statesync_bench::StateSyncBenchSpec {
            blocks,
            accounts,
            base_port,
            json,
        })?,
        Command::BenchRestart {
            short,
            long,
            txs,
            json,
            base_port,
        } => basalt_node::restart_bench::run(basalt_node::restart_bench::RestartBenchSpec {
            short,
            long,
            txs_per_block: txs,
            base_port,
            json,
        })?,
        Command::BenchIndex {
            blocks,
            txs,
            json,
            base_port,
        } => basalt_node::index_bench::run(basalt_node::index_bench::IndexBenchSpec {
            blocks,
            txs_per_block: txs,
            base_port,
            json,
        })?,
        Command::Keys { action } => match action {
            KeysAction::Add { home, key } => {
                valid_key_name(&key)?;
                let k = keys::generate();
                keys::save(&Home::new(&home).account_key_file(&key), &k)?;
                println!("{}", k.public_key().address());
            }
            KeysAction::Show { home, key } => {
                valid_key_name(&key)?;
                let k = keys::load(&Home::new(&home).account_key_file(&key))?;
                println!("{}", k.public_key().address());
            }
            KeysAction::List { home } => {
                let dir = Home::new(&home).keys_dir();
                let mut names: Vec<String> = std::fs::read_dir(&dir)
                    .with_context(|| format!("reading {}", dir.display()))?
                    .filter_map(|e| e.ok())
                    .filter_map(|e| {
                        e.file_name()
                            .to_str()?
                            .strip_suffix(".json")
                            .map(String::from)
                    })
                    .collect();
                names.sort();
                for name in names {
                    let k = keys::load(&dir.join(format!("{name}.json")))?;
                    println!("{name}\t{}", k.public_key().address());
                }
            }
        },
    }
    Ok(())
}

fn main() -> ExitCode {
    basalt_node::allocator::purge_freed_memory_at_once();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
