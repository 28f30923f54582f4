//! A testnet of real `basalt` processes on loopback: create it with the CLI, start, stop
//! and kill nodes, talk to them over JSON-RPC.

#![allow(dead_code)]

use basalt_node::client::Client;
use basalt_node::home::Home;
use basalt_runtime::{Msg, TxBody};
use basalt_types::{Address, PrivateKey};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const CHAIN: &str = "itest";

pub fn basalt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args(args)
        .output()
        .expect("run basalt")
}

pub struct Net {
    pub dir: tempfile::TempDir,
    pub base_port: u16,
    pub validators: usize,
    procs: Vec<Option<Child>>,
}

impl Net {
    /// `validators` + `full_nodes` homes made by `basalt testnet`, none started.
    pub fn new(validators: usize, full_nodes: usize, base_port: u16) -> Net {
        Net::with_timeouts(validators, full_nodes, base_port, 1000, 100)
    }

    pub fn with_timeouts(
        validators: usize,
        full_nodes: usize,
        base_port: u16,
        propose_ms: u64,
        commit_ms: u64,
    ) -> Net {
        Net::with_args(
            validators,
            full_nodes,
            base_port,
            propose_ms,
            commit_ms,
            &[],
        )
    }

    /// [`Net::with_timeouts`] with more `basalt testnet` arguments.
    pub fn with_args(
        validators: usize,
        full_nodes: usize,
        base_port: u16,
        propose_ms: u64,
        commit_ms: u64,
        extra: &[&str],
    ) -> Net {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("net");
        let o = basalt(
            &[
                "testnet",
                "--validators",
                &validators.to_string(),
                "--full-nodes",
                &full_nodes.to_string(),
                "--output",
                out.to_str().unwrap(),
                "--base-port",
                &base_port.to_string(),
                "--chain-id",
                CHAIN,
                "--timeout-propose-ms",
                &propose_ms.to_string(),
                "--timeout-commit-ms",
                &commit_ms.to_string(),
            ]
            .into_iter()
            .chain(extra.iter().copied())
            .collect::<Vec<_>>(),
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        Net {
            dir,
            base_port,
            validators,
            procs: (0..validators + full_nodes).map(|_| None).collect(),
        }
    }

    pub fn home(&self, k: usize) -> PathBuf {
        self.dir.path().join("net").join(format!("node{k}"))
    }

    /// Replaces `from` with `to` in node k's config.toml (which must contain it).
    pub fn edit_config(&self, k: usize, from: &str, to: &str) {
        let path = self.home(k).join("config/config.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "node{k}'s config has no {from:?}");
        std::fs::write(&path, text.replace(from, to)).unwrap();
    }

    /// Node k's moniker, from its config.toml.
    pub fn moniker(&self, k: usize) -> String {
        let text = std::fs::read_to_string(self.home(k).join("config/config.toml")).unwrap();
        let v: toml::Value = toml::from_str(&text).unwrap();
        v["moniker"].as_str().unwrap().to_string()
    }

    pub fn log(&self, k: usize) -> PathBuf {
        self.home(k).join("node.log")
    }

    pub fn log_text(&self, k: usize) -> String {
        std::fs::read_to_string(self.log(k)).unwrap_or_default()
    }

    pub fn rpc_addr(&self, k: usize) -> String {
        format!("127.0.0.1:{}", self.base_port as usize + 2 * k + 1)
    }

    pub fn client(&self, k: usize) -> Client {
        Client::new(&self.rpc_addr(k))
    }

    /// A real CometBFT client (tendermint-rpc, v0.38 compatibility) for node k.
    pub fn tendermint_client(&self, k: usize) -> tendermint_rpc::HttpClient {
        let url = format!("http://{}", self.rpc_addr(k));
        tendermint_rpc::HttpClient::builder(url.parse().unwrap())
            .compat_mode(tendermint_rpc::client::CompatMode::V0_38)
            .build()
            .unwrap()
    }

    pub fn start(&mut self, k: usize) {
        self.start_with(k, &[]);
    }

    /// Starts node k with extra `basalt start` arguments.
    pub fn start_with(&mut self, k: usize, extra: &[&str]) {
        self.start_env(k, extra, &[]);
    }

    /// Starts node k with extra `basalt start` arguments and environment variables.
    pub fn start_env(&mut self, k: usize, extra: &[&str], env: &[(&str, &str)]) {
        assert!(self.procs[k].is_none(), "node{k} already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log(k))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_basalt"))
            .args(["start", "--home", self.home(k).to_str().unwrap()])
            .args(extra)
            .env("RUST_LOG", "info,libp2p=warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn basalt start");
        self.procs[k] = Some(child);
    }

    pub fn start_all(&mut self) {
        for k in 0..self.procs.len() {
            self.start(k);
        }
    }

    /// SIGKILL: no chance to clean up, like a power cut.
    pub fn kill(&mut self, k: usize) {
        if let Some(mut c) = self.procs[k].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for the process to exit; returns how long it took and whether it
    /// exited with status 0. Panics if it is still running after 10 s.
    pub fn terminate(&mut self, k: usize) -> (Duration, bool) {
        let mut c = self.procs[k].take().expect("node running");
        let sent = Instant::now();
        let ok = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -TERM node{k}");
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                return (sent.elapsed(), status.success());
            }
            if sent.elapsed() > Duration::from_secs(10) {
                let _ = c.kill();
                let _ = c.wait();
                panic!("node{k} ignored SIGTERM for 10 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self, k: usize) -> Option<u32> {
        self.procs[k].as_ref().map(|c| c.id())
    }

    /// Resident memory of node k in KiB (Linux).
    pub fn rss_kib(&self, k: usize) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid(k).unwrap())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    pub fn is_running(&mut self, k: usize) -> bool {
        match self.procs[k].as_mut() {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    pub fn height(&self, k: usize) -> Option<u64> {
        let s = self.client(k).call("status", json!({})).ok()?;
        s["sync_info"]["latest_block_height"].as_str()?.parse().ok()
    }

    /// Waits until node k reaches `h`; panics with the node's log tail otherwise.
    pub fn wait_height(&self, k: usize, h: u64, within: Duration) -> u64 {
        let start = Instant::now();
        loop {
            if let Some(got) = self.height(k) {
                if got >= h {
                    return got;
                }
            }
            if start.elapsed() > within {
                let log = self.log_text(k);
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                panic!(
                    "node{k} did not reach height {h} within {within:?} (at {:?}); log tail:\n{}",
                    self.height(k),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn block_hash(&self, k: usize, h: u64) -> String {
        let b = self
            .client(k)
            .call("block", json!({"height": h.to_string()}))
            .unwrap_or_else(|e| panic!("block {h} from node{k}: {e}"));
        b["block_id"]["hash"].as_str().unwrap().to_string()
    }

    pub fn block(&self, k: usize, h: u64) -> Value {
        self.client(k)
            .call("block", json!({"height": h.to_string()}))
            .unwrap_or_else(|e| panic!("block {h} from node{k}: {e}"))
    }

    /// Every node in `nodes` holds the same block at every height up to `upto`.
    pub fn assert_same_chain(&self, nodes: &[usize], upto: u64) {
        for h in 1..=upto {
            let first = self.block_hash(nodes[0], h);
            for &k in &nodes[1..] {
                assert_eq!(
                    self.block_hash(k, h),
                    first,
                    "node{k} differs at height {h}"
                );
            }
        }
    }

    pub fn account_key(&self, k: usize) -> PrivateKey {
        basalt_node::keys::load(&Home::new(self.home(k)).account_key_file("default")).unwrap()
    }

    pub fn balance(&self, k: usize, a: &Address) -> u128 {
        let v = self.client(k).query(&format!("/account/{a}")).unwrap();
        v["balance"].as_str().unwrap().parse().unwrap()
    }

    /// No node logged an equivocation.
    pub fn assert_no_evidence(&self) {
        for k in 0..self.procs.len() {
            assert!(
                !self.log_text(k).contains("equivocation detected"),
                "node{k} saw an equivocation"
            );
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for k in 0..self.procs.len() {
            self.kill(k);
        }
        if std::thread::panicking() {
            // Keep the logs for the failure report.
            let keep = std::env::temp_dir().join(format!("basalt-itest-{}", self.base_port));
            let _ = std::fs::remove_dir_all(&keep);
            let _ = copy_dir(&self.dir.path().join("net"), &keep);
            eprintln!("node homes and logs kept in {}", keep.display());
        }
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), target)?;
        }
    }
    Ok(())
}

pub fn transfer(key: &PrivateKey, nonce: u64, to: Address, amount: u128) -> Vec<u8> {
    signed(key, CHAIN, nonce, 10, Msg::Transfer { to, amount })
}

pub fn signed(key: &PrivateKey, chain: &str, nonce: u64, fee: u128, msg: Msg) -> Vec<u8> {
    TxBody {
        chain_id: chain.into(),
        nonce,
        fee,
        msg,
    }
    .sign(key)
    .to_bytes()
}

pub fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
