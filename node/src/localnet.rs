//! `basalt localnet`: the README's one command. Creates an N-validator network in a folder
//! (or reuses the one there), starts every node as its own `basalt start` process with its
//! log in `node<k>/node.log`, prints where to reach them and the chain's height as it grows,
//! and stops them all on ctrl-c.

use crate::client::Client;
use crate::home::Home;
use crate::testnet::{self, TestnetSpec};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const LOCALNET_CHAIN_ID: &str = "basalt-localnet";

/// Child processes that are killed (and reaped) when this is dropped, so that no node
/// outlives the command that started it, whatever path it leaves by.
pub(crate) struct Children(pub(crate) Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn run(validators: usize, dir: &Path, base_port: u16) -> Result<()> {
    let homes: Vec<Home> = if dir.join("node0").exists() {
        let n = (0..)
            .take_while(|k| dir.join(format!("node{k}")).exists())
            .count();
        println!("reusing the {n}-node network in {}", dir.display());
        (0..n)
            .map(|k| Home::new(dir.join(format!("node{k}"))))
            .collect()
    } else {
        let spec = TestnetSpec {
            validators,
            full_nodes: 0,
            output: dir,
            base_port,
            stakes: None,
            chain_id: LOCALNET_CHAIN_ID,
            timeout_propose_ms: Some(1000),
            timeout_commit_ms: Some(300),
            extra_accounts: Vec::new(),
        };
        testnet::testnet(&spec)?
    };
    let exe = std::env::current_exe().context("locating the basalt binary")?;
    let mut children = Children(Vec::new());
    for h in &homes {
        let log = std::fs::File::create(h.root().join("node.log"))
            .with_context(|| format!("creating {}/node.log", h.root().display()))?;
        let child = Command::new(&exe)
            .arg("start")
            .arg("--home")
            .arg(h.root())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting a node")?;
        children.0.push(child);
    }
    let rpcs: Vec<String> = homes
        .iter()
        .map(|h| {
            crate::config::Config::load(&h.config_file())
                .map(|c| c.rpc.listen)
                .unwrap_or_default()
        })
        .collect();
    for (k, (h, rpc)) in homes.iter().zip(&rpcs).enumerate() {
        println!(
            "node{k}: home {}  JSON-RPC http://{rpc}",
            h.root().display()
        );
    }
    println!("logs in <home>/node.log; ctrl-c stops the network");
    let client = Client::new(&rpcs[0]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut last = 0;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok(()),
                _ = term.recv() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
            for (k, c) in children.0.iter_mut().enumerate() {
                if let Some(status) = c.try_wait()? {
                    bail!(
                        "node{k} exited ({status}); see {}/node.log",
                        homes[k].root().display()
                    );
                }
            }
            if let Ok(s) = client.call("status", serde_json::json!({})) {
                let h: u64 = s["sync_info"]["latest_block_height"]
                    .as_str()
                    .and_then(|x| x.parse().ok())
                    .unwrap_or(0);
                if h != last {
                    println!("height {h}");
                    last = h;
                }
            }
        }
    })
}
