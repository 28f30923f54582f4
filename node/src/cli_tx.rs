//! `basalt tx …` and `basalt query …`: sign with the home's account key, submit through
//! `broadcast_tx_sync`, and read state through `abci_query`.

use crate::api::NONCE_PATH;
use crate::client::Client;
use crate::home::Home;
use crate::keys;
use crate::start::load_genesis;
use crate::testnet::DEFAULT_KEY;
use anyhow::{bail, Context, Result};
use basalt_runtime::{Msg, TxBody};
use basalt_staking::Ppm;
use basalt_types::Address;
use clap::{Args, Subcommand};

pub const DEFAULT_NODE: &str = "http://127.0.0.1:26601";

#[derive(Args)]
pub struct TxOptions {
    /// The home whose key signs and whose genesis names the chain.
    #[arg(long, global = true)]
    home: Option<std::path::PathBuf>,
    /// Account key name in HOME/keys.
    #[arg(long, global = true, default_value = DEFAULT_KEY)]
    key: String,
    /// The node's JSON-RPC address (default: the home's own RPC address).
    #[arg(long, global = true)]
    node: Option<String>,
    /// Print the signed transaction as hex and send nothing.
    #[arg(long, global = true)]
    offline: bool,
    /// Fee in tokens.
    #[arg(long, global = true, default_value_t = 1000)]
    fee: u128,
    /// Nonce to sign with (default: the node's pending nonce for the account; 0 offline).
    #[arg(long, global = true)]
    nonce: Option<u64>,
}

#[derive(Subcommand)]
pub enum TxCommand {
    /// Send tokens.
    Transfer {
        #[arg(long)]
        to: String,
        #[arg(long)]
        amount: u128,
    },
    /// Become a validator with this home's consensus key (created if missing).
    CreateValidator {
        /// Self-bond in tokens.
        #[arg(long)]
        amount: u128,
        #[arg(long, default_value = "validator")]
        moniker: String,
        /// Commission in parts per million (100000 = 10%).
        #[arg(long, default_value_t = 100_000)]
        commission_ppm: u32,
    },
    /// Delegate tokens to a validator (its operator address).
    Delegate {
        #[arg(long)]
        validator: String,
        #[arg(long)]
        amount: u128,
    },
    /// Start unbonding tokens from a validator.
    Undelegate {
        #[arg(long)]
        validator: String,
        #[arg(long)]
        amount: u128,
    },
    /// Leave jail after the downtime jail period.
    Unjail,
}

#[derive(Subcommand)]
pub enum QueryCommand {
    /// An account's balance and nonce.
    Account {
        address: String,
        /// Verify the answer: a Merkle proof against the app hash of a header whose commit
        /// is checked against its validator set.
        #[arg(long)]
        prove: bool,
        /// With --prove: verify that header with the light client whose trusted headers are
        /// in DIR (`basalt light --home DIR`), instead of taking the node's validator set.
        #[arg(long, value_name = "DIR", requires = "prove")]
        light_home: Option<std::path::PathBuf>,
    },
    /// A validator by operator address.
    Validator { address: String },
    /// Every validator the staking module knows.
    Validators,
}

fn address(s: &str) -> Result<Address> {
    Address::from_hex(s).map_err(|e| anyhow::anyhow!("{s:?}: {e}"))
}

pub fn run_tx(cmd: TxCommand, o: TxOptions) -> Result<()> {
    let Some(home) = o.home.as_ref().map(Home::new) else {
        bail!("--home is required: it holds the signing key and the genesis");
    };
    let genesis = load_genesis(&home)?;
    let key = keys::load(&home.account_key_file(&o.key))?;
    let sender = key.public_key().address();
    let msg = match cmd {
        TxCommand::Transfer { to, amount } => Msg::Transfer {
            to: address(&to)?,
            amount,
        },
        TxCommand::CreateValidator {
            amount,
            moniker,
            commission_ppm,
        } => {
            let path = home.validator_key_file();
            let consensus = if path.exists() {
                keys::load(&path)?
            } else {
                let k = keys::generate();
                keys::save(&path, &k)?;
                eprintln!("created consensus key {}", path.display());
                k
            };
            Msg::CreateValidator {
                consensus_key: consensus.public_key(),
                moniker,
                commission: Ppm(commission_ppm),
                self_bond: amount,
            }
        }
        TxCommand::Delegate { validator, amount } => Msg::Delegate {
            validator: address(&validator)?,
            amount,
        },
        TxCommand::Undelegate { validator, amount } => Msg::Undelegate {
            validator: address(&validator)?,
            amount,
        },
        TxCommand::Unjail => Msg::Unjail,
    };
    let node = match &o.node {
        Some(n) => n.clone(),
        None => crate::config::Config::load(&home.config_file())
            .map(|c| c.rpc.listen)
            .unwrap_or_else(|_| DEFAULT_NODE.to_string()),
    };
    let client = Client::new(&node);
    let nonce = match (o.nonce, o.offline) {
        (Some(n), _) => n,
        (None, true) => 0,
        (None, false) => client.query(&format!("{NONCE_PATH}{sender}"))?["next_nonce"]
            .as_u64()
            .context("the node's nonce reply has no next_nonce")?,
    };
    let tx = TxBody {
        chain_id: genesis.chain_id.clone(),
        nonce,
        fee: o.fee,
        msg,
    }
    .sign(&key)
    .to_bytes();
    if o.offline {
        println!("{}", hex::encode(&tx));
        return Ok(());
    }
    let r = client.broadcast_tx_sync(&tx)?;
    let code = r["code"].as_u64().unwrap_or(u64::MAX);
    if code != 0 {
        bail!(
            "transaction refused (code {code}): {}",
            r["log"].as_str().unwrap_or_default()
        );
    }
    println!("{}", r["hash"].as_str().unwrap_or_default());
    Ok(())
}

pub fn run_query(what: QueryCommand, node: &str) -> Result<()> {
    let client = Client::new(node);
    let path = match &what {
        QueryCommand::Account {
            address: a,
            prove: true,
            light_home,
        } => {
            let light = match light_home {
                Some(dir) => Some(crate::light::LightClient::open(
                    dir,
                    node,
                    &[],
                    None,
                    crate::light::verify::Options::default(),
                )?),
                None => None,
            };
            let v = crate::cli_prove::prove_account(&client, address(a)?, light)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(());
        }
        QueryCommand::Account { address: a, .. } => format!("/account/{}", address(a)?),
        QueryCommand::Validator { address: a } => format!("/validator/{}", address(a)?),
        QueryCommand::Validators => "/validators".to_string(),
    };
    let v = client.query(&path)?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}
