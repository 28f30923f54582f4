//! `basalt bench-sync`: how fast a new full node catches up with a long chain.
//!
//! Builds a chain of `--blocks` blocks of `--txs` signed transfers each straight into a
//! validator's block store (executed and committed like any block, with a real commit
//! signature, but without waiting for consensus), starts that validator with empty blocks
//! off so the target stays put, then starts a fresh full node that knows only the validator's
//! address and times it from start to the last block. The full node verifies every commit and
//! every transaction signature and re-executes everything, as a joining node must.

use crate::bench::{height, print_report, wait_height};
use crate::chain::Chain;
use crate::client::Client;
use crate::home::Home;
use crate::localnet::Children;
use crate::start::load_genesis;
use crate::store::Store;
use crate::testnet::{self, TestnetSpec};
use anyhow::{bail, Context, Result};
use basalt_runtime::{Msg, TxBody};
use basalt_types::{Address, CommitSig, PrivateKey, Round, Vote, VoteType};
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct SyncBenchSpec {
    pub blocks: u64,
    pub txs_per_block: usize,
    pub base_port: u16,
    pub json: Option<std::path::PathBuf>,
}

const CHAIN: &str = "basalt-sync-bench";

/// Signed transfers for block `height`: sender i's transaction with nonce height - 1.
fn block_txs(keys: &[PrivateKey], height: u64) -> Vec<Vec<u8>> {
    let sign = |k: &PrivateKey| {
        TxBody {
            chain_id: CHAIN.into(),
            nonce: height - 1,
            fee: 1,
            msg: Msg::Transfer {
                to: Address([0xBE; 20]),
                amount: 1,
            },
        }
        .sign(k)
        .to_bytes()
    };
    // Signing dominates generation: both cores.
    let (a, b) = keys.split_at(keys.len() / 2);
    std::thread::scope(|s| {
        let first = s.spawn(|| a.iter().map(sign).collect::<Vec<_>>());
        let mut second: Vec<Vec<u8>> = b.iter().map(sign).collect();
        let mut all = first.join().unwrap_or_default();
        all.append(&mut second);
        all
    })
}

/// A validator (and `full_nodes` full nodes) in `dir` whose store holds a generated chain
/// of `blocks` blocks of `txs_per_block` transfers. No node adds blocks of its own (empty
/// blocks off); `configure` edits every node's config on top.
pub(crate) fn generated_chain(
    dir: &std::path::Path,
    base_port: u16,
    full_nodes: usize,
    blocks: u64,
    txs_per_block: usize,
    configure: impl Fn(&mut crate::config::Config),
) -> Result<Vec<Home>> {
    let spec = GeneratedChain {
        full_nodes,
        blocks,
        txs_per_block,
        funded: 0,
    };
    generated_chain_with(dir, base_port, &spec, configure, |_, _| Ok(()))
}

/// What [`generated_chain_with`] builds.
pub(crate) struct GeneratedChain {
    pub full_nodes: usize,
    pub blocks: u64,
    pub txs_per_block: usize,
    /// Generated accounts funded at genesis besides the senders (a large state).
    pub funded: u32,
}

/// [`generated_chain`] with more funded accounts, calling `after` with the validator's
/// store after each generated block is stored.
pub(crate) fn generated_chain_with(
    dir: &std::path::Path,
    base_port: u16,
    spec: &GeneratedChain,
    configure: impl Fn(&mut crate::config::Config),
    mut after: impl FnMut(&Store, u64) -> Result<()>,
) -> Result<Vec<Home>> {
    let (full_nodes, blocks, txs_per_block) = (spec.full_nodes, spec.blocks, spec.txs_per_block);
    let keys: Vec<PrivateKey> = (0..txs_per_block).map(crate::bench::sender_key).collect();
    let homes = testnet::testnet(&TestnetSpec {
        validators: 1,
        full_nodes,
        output: dir,
        base_port,
        stakes: None,
        chain_id: CHAIN,
        timeout_propose_ms: Some(1000),
        timeout_commit_ms: Some(1000),
        extra_accounts: keys
            .iter()
            .map(|k| (k.public_key().address(), 1_000_000_000_000))
            .chain(testnet::generated_accounts(spec.funded))
            .collect(),
    })?;
    crate::bench::edit_configs(&homes, |c| {
        c.consensus.create_empty_blocks = false;
        configure(c);
    })?;
    eprintln!("building a chain of {blocks} blocks × {txs_per_block} transfers…");
    generate(&homes[0], &keys, blocks, &mut after)?;
    Ok(homes)
}

/// Appends `blocks` blocks to the single validator's store at `home`.
fn generate(
    home: &Home,
    keys: &[PrivateKey],
    blocks: u64,
    after: &mut dyn FnMut(&Store, u64) -> Result<()>,
) -> Result<()> {
    let genesis = load_genesis(home)?;
    let store = Store::open(&home.data_dir().join("blockstore.db"))?;
    store.check_chain(&genesis.chain_id, &genesis.hash())?;
    let mut chain = Chain::load(genesis, &store)?;
    let validator = crate::keys::load(&home.validator_key_file())?;
    let me = validator.public_key().address();
    let started = Instant::now();
    // Where generation spends its time: signing, executing, storing.
    let (mut sign_s, mut exec_s, mut store_s) = (0.0, 0.0, 0.0);
    for h in 1..=blocks {
        let t = Instant::now();
        let txs = block_txs(keys, h);
        sign_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let block = chain.build_block(me, txs, vec![]);
        let block_id = block.id();
        let vote = Vote {
            vote_type: VoteType::Precommit,
            height: block.header.height,
            round: Round(0),
            block_id: Some(block_id),
            validator: me,
        }
        .sign(CHAIN, block.header.time.plus_millis(1), &validator);
        let commit = basalt_types::Commit {
            height: block.header.height,
            round: Round(0),
            block_id,
            signatures: vec![Some(CommitSig {
                validator: me,
                timestamp: vote.timestamp,
                signature: vote.signature,
            })],
        };
        let applied = chain
            .execute(&block, commit.clone(), true)
            .with_context(|| format!("executing generated block {h}"))?;
        let failed = applied.failed_txs();
        if failed > 0 {
            bail!("{failed} generated transfers failed at height {h}");
        }
        exec_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        chain.store_applied(&store, &block, &commit, &applied, false)?;
        if h.is_multiple_of(1000) {
            // As the node's pruner would have, with the default state_versions.
            crate::pruner::prune_once(&store, &crate::config::StorageConfig::default())?;
        }
        store_s += t.elapsed().as_secs_f64();
        after(&store, h)?;
        if h.is_multiple_of(1000) || h == blocks {
            let per = |s: f64| s * 1e3 / h as f64;
            eprintln!(
                "generated {h}/{blocks} blocks ({:.0} blocks/s; per block: sign {:.2} ms, build and execute {:.2} ms, store {:.2} ms)",
                h as f64 / started.elapsed().as_secs_f64(),
                per(sign_s),
                per(exec_s),
                per(store_s),
            );
        }
    }
    store.flush()?;
    Ok(())
}

/// `basalt start` (this executable) on `home`, logging with `filter` into a new
/// `node.log` in the home.
pub(crate) fn spawn_node(home: &Home, filter: &str) -> Result<std::process::Child> {
    let log = std::fs::File::create(home.root().join("node.log"))?;
    Ok(Command::new(std::env::current_exe()?)
        .args(["start", "--home"])
        .arg(home.root())
        .env("RUST_LOG", filter)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?)
}

pub fn run(spec: SyncBenchSpec) -> Result<()> {
    if spec.blocks == 0 || spec.txs_per_block == 0 {
        bail!("--blocks and --txs must be at least 1");
    }
    let dir = tempfile::tempdir().context("creating a work folder")?;
    let bounds = crate::bench_bounds::Bounds::measure(dir.path())?;
    let gen_started = Instant::now();
    let homes = generated_chain(
        dir.path(),
        spec.base_port,
        1,
        spec.blocks,
        spec.txs_per_block,
        |_| {},
    )?;
    let generate_s = gen_started.elapsed().as_secs_f64();

    let spawn = spawn_node;
    let rpc = |k: usize| format!("127.0.0.1:{}", spec.base_port as usize + 2 * k + 1);
    let mut nodes = Children(Vec::new());
    nodes.0.push(spawn(&homes[0], "warn")?);
    let source = Client::new(&rpc(0));
    let began = Instant::now();
    let what = "the validator did not load its chain";
    let within = Duration::from_secs(600);
    wait_height(&source, spec.blocks, within, &mut nodes, dir.path(), what)?;
    eprintln!(
        "validator serving {} blocks (loaded in {:.1} s); starting a fresh full node…",
        spec.blocks,
        began.elapsed().as_secs_f64()
    );
    let sync_started = Instant::now();
    nodes
        .0
        .push(spawn(&homes[1], "warn,basalt_node::node=info")?);
    let syncer = Client::new(&rpc(1));
    let mut last_print = Instant::now();
    loop {
        let h = height(&syncer);
        if h >= spec.blocks {
            break;
        }
        if sync_started.elapsed() > Duration::from_secs(3600) {
            bail!(
                "the full node stalled at height {h}; see {}",
                dir.path().display()
            );
        }
        if last_print.elapsed() > Duration::from_secs(5) {
            let secs = sync_started.elapsed().as_secs_f64();
            eprintln!("  full node at {h}/{} after {secs:.0} s", spec.blocks);
            last_print = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = sync_started.elapsed().as_secs_f64();
    let (cpu_s, rss_mb) = crate::bench::usage(nodes.0[1].id());
    let progress: Vec<String> = std::fs::read_to_string(homes[1].root().join("node.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("block sync"))
        .map(str::to_string)
        .collect();
    if let Some(last) = progress.last() {
        eprintln!("the full node's last progress line:\n  {last}");
    }
    let txs_per_s = (spec.blocks * spec.txs_per_block as u64) as f64 / secs;
    let report = json!({
        // The syncing node verifies every transaction once, on all the cores.
        "bounds": bounds.report(1, txs_per_s),
        "blocks": spec.blocks,
        "txs_per_block": spec.txs_per_block,
        "sync_s": secs,
        "blocks_per_s": spec.blocks as f64 / secs,
        "txs_per_s": txs_per_s,
        "syncing_node_cpu_s": cpu_s,
        "syncing_node_rss_mb": rss_mb,
        "progress_lines": progress.len(),
        "generate_s": generate_s,
    });
    print_report(&report, spec.json.as_deref())
}
