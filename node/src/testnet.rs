//! `basalt init` and `basalt testnet`: fresh homes with keys, config and a shared genesis.

use crate::config::Config;
use crate::home::Home;
use crate::keys;
use anyhow::{bail, Context, Result};
use basalt_genesis::Genesis;
use basalt_types::{Address, PrivateKey};
use std::path::Path;

/// The account key every generated home gets (`--key` defaults to it).
pub const DEFAULT_KEY: &str = "default";
/// Tokens each generated account starts with.
pub const ACCOUNT_FUNDS: u128 = 1_000_000_000_000;
/// Default self-bond of a generated validator: 10 units of voting power.
pub const DEFAULT_STAKE: u128 = 10_000_000;
pub const DEFAULT_BASE_PORT: u16 = 26600;

/// Current UTC time as RFC 3339, whole seconds (the CLI is at the edge: it may read the
/// clock).
pub fn now_rfc3339() -> String {
    let t = basalt_types::Timestamp {
        nanos: 0,
        ..crate::node::now()
    };
    // `…:SS.000000000Z` → `…:SSZ`, the form genesis files usually carry.
    let full = basalt_rpc::shapes::rfc3339(t);
    format!("{}Z", &full[..19])
}

fn refuse_existing(home: &Home) -> Result<()> {
    for f in [
        home.genesis_file(),
        home.config_file(),
        home.validator_key_file(),
    ] {
        if f.exists() {
            bail!(
                "{} already exists: refusing to overwrite an existing node home",
                f.display()
            );
        }
    }
    Ok(())
}

struct NodeKeys {
    consensus: Option<PrivateKey>,
    account: PrivateKey,
}

fn write_home(home: &Home, keys: &NodeKeys, config: &Config, genesis: &Genesis) -> Result<()> {
    std::fs::create_dir_all(home.config_dir())
        .with_context(|| format!("creating {}", home.config_dir().display()))?;
    std::fs::create_dir_all(home.data_dir())
        .with_context(|| format!("creating {}", home.data_dir().display()))?;
    if let Some(c) = &keys.consensus {
        keys::save(&home.validator_key_file(), c)?;
    }
    keys::save(&home.account_key_file(DEFAULT_KEY), &keys.account)?;
    std::fs::write(home.config_file(), config.render())
        .with_context(|| format!("writing {}", home.config_file().display()))?;
    std::fs::write(home.genesis_file(), genesis.to_json())
        .with_context(|| format!("writing {}", home.genesis_file().display()))?;
    Ok(())
}

/// What `init` made.
pub struct Initialised {
    pub account: Address,
    pub consensus: Address,
}

/// A single-validator chain in `home`.
pub fn init(home: &Home, chain_id: &str, moniker: &str) -> Result<Initialised> {
    refuse_existing(home)?;
    let keys = NodeKeys {
        consensus: Some(keys::generate()),
        account: keys::generate(),
    };
    let consensus = keys.consensus.as_ref().expect("validator").public_key();
    let genesis = Genesis::generate(
        chain_id,
        &now_rfc3339(),
        vec![(
            keys.account.public_key(),
            consensus,
            DEFAULT_STAKE,
            moniker.to_string(),
        )],
        vec![(keys.account.public_key().address(), ACCOUNT_FUNDS)],
    )?;
    let config = Config::new(
        moniker,
        DEFAULT_BASE_PORT,
        DEFAULT_BASE_PORT + 1,
        Vec::new(),
    );
    write_home(home, &keys, &config, &genesis)?;
    Ok(Initialised {
        account: keys.account.public_key().address(),
        consensus: consensus.address(),
    })
}

/// Options of `basalt testnet`.
pub struct TestnetSpec<'a> {
    pub validators: usize,
    pub full_nodes: usize,
    pub output: &'a Path,
    pub base_port: u16,
    /// Self-bond of each validator in tokens (default 10,000,000 each).
    pub stakes: Option<Vec<u128>>,
    pub chain_id: &'a str,
    /// Propose timeout (prevote and precommit get half); default CometBFT's 3 s.
    pub timeout_propose_ms: Option<u64>,
    /// Pause after each block; default 1 s.
    pub timeout_commit_ms: Option<u64>,
    /// More funded accounts besides the nodes' own (the benchmark's senders).
    pub extra_accounts: Vec<(Address, u128)>,
}

/// `n` funded accounts whose addresses are hashes (nobody holds their keys): state for
/// tests and benchmarks to carry, 1,000,000 tokens each.
pub fn generated_accounts(n: u32) -> Vec<(Address, u128)> {
    (0..n)
        .map(|i| {
            let h = basalt_types::Hash::digest_parts(&[b"basalt funded account", &i.to_le_bytes()]);
            let mut a = [0u8; 20];
            a.copy_from_slice(&h.0[..20]);
            (Address(a), 1_000_000)
        })
        .collect()
}

/// N validators and M full nodes in `output/node<k>`: node k listens for peers on
/// 127.0.0.1:(base + 2k) and serves RPC on 127.0.0.1:(base + 2k + 1); every node lists all
/// others as persistent peers; every node's account is funded; one genesis for all.
pub fn testnet(spec: &TestnetSpec) -> Result<Vec<Home>> {
    let (n, m) = (spec.validators, spec.full_nodes);
    if n == 0 {
        bail!("--validators must be at least 1");
    }
    let total = n + m;
    if spec.base_port as usize + 2 * total > u16::MAX as usize {
        bail!(
            "--base-port {} leaves no room for {total} nodes",
            spec.base_port
        );
    }
    let stakes = match &spec.stakes {
        Some(s) if s.len() != n => bail!("--stake lists {} amounts for {n} validators", s.len()),
        Some(s) => s.clone(),
        None => vec![DEFAULT_STAKE; n],
    };
    let homes: Vec<Home> = (0..total)
        .map(|k| Home::new(spec.output.join(format!("node{k}"))))
        .collect();
    for h in &homes {
        refuse_existing(h)?;
    }
    let keys: Vec<NodeKeys> = (0..total)
        .map(|k| NodeKeys {
            consensus: (k < n).then(keys::generate),
            account: keys::generate(),
        })
        .collect();
    let mut genesis = Genesis::generate(
        spec.chain_id,
        &now_rfc3339(),
        keys[..n]
            .iter()
            .zip(&stakes)
            .enumerate()
            .map(|(k, (nk, stake))| {
                let cons = nk.consensus.as_ref().expect("validator").public_key();
                (nk.account.public_key(), cons, *stake, format!("node{k}"))
            })
            .collect(),
        keys.iter()
            .map(|k| (k.account.public_key().address(), ACCOUNT_FUNDS))
            .chain(spec.extra_accounts.iter().copied())
            .collect(),
    )?;
    let timeouts = &mut genesis.consensus_params.timeouts;
    if let Some(p) = spec.timeout_propose_ms {
        timeouts.propose_ms = p;
        timeouts.propose_delta_ms = p / 4;
        timeouts.prevote_ms = p / 2;
        timeouts.prevote_delta_ms = p / 4;
        timeouts.precommit_ms = p / 2;
        timeouts.precommit_delta_ms = p / 4;
    }
    if let Some(c) = spec.timeout_commit_ms {
        timeouts.commit_ms = c;
    }
    genesis.validate()?;
    let p2p = |k: usize| spec.base_port + 2 * k as u16;
    for (k, home) in homes.iter().enumerate() {
        let peers = (0..total)
            .filter(|j| *j != k)
            .map(|j| format!("127.0.0.1:{}", p2p(j)))
            .collect();
        let mut config = Config::new(&format!("node{k}"), p2p(k), p2p(k) + 1, peers);
        if let Some(c) = spec.timeout_commit_ms {
            config.consensus.timeout_commit_ms = c;
        }
        write_home(home, &keys[k], &config, &genesis)?;
    }
    Ok(homes)
}
