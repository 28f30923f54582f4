//! The `basalt` command line, run as a real process.

use basalt_genesis::Genesis;
use std::path::Path;
use std::process::{Command, Output};

fn basalt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args(args)
        .output()
        .expect("run basalt")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn is_address(s: &str) -> bool {
    s.len() == 40 && s.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_creates_a_valid_single_validator_home_with_private_keys() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    let h = home.to_str().unwrap();
    let out = basalt(&[
        "init",
        "--home",
        h,
        "--chain-id",
        "basalt-local",
        "--moniker",
        "alice",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let genesis =
        Genesis::from_json(&std::fs::read_to_string(home.join("config/genesis.json")).unwrap())
            .unwrap();
    assert_eq!(genesis.chain_id, "basalt-local");
    assert_eq!(genesis.app_state.validators.len(), 1);
    assert_eq!(genesis.app_state.validators[0].moniker, "alice");
    #[cfg(unix)]
    {
        assert_eq!(mode(&home.join("config/priv_validator_key.json")), 0o600);
        assert_eq!(mode(&home.join("keys/default.json")), 0o600);
    }
    let config = std::fs::read_to_string(home.join("config/config.toml")).unwrap();
    assert!(config.contains("moniker = \"alice\"") && config.contains('#'));

    let show = basalt(&["keys", "show", "--home", h]);
    let address = stdout(&show).trim().to_string();
    assert!(is_address(&address), "{address}");
    assert_eq!(
        genesis.app_state.accounts[0].address.to_hex(),
        address,
        "the account is funded"
    );
    assert!(stdout(&out).contains(&address));

    // A second init refuses and leaves everything as it was.
    let before = std::fs::read(home.join("config/genesis.json")).unwrap();
    let again = basalt(&["init", "--home", h, "--chain-id", "other"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("refusing to overwrite"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        std::fs::read(home.join("config/genesis.json")).unwrap(),
        before
    );
}

#[test]
fn init_with_a_bad_chain_id_fails_with_one_clear_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    let out = basalt(&[
        "init",
        "--home",
        home.to_str().unwrap(),
        "--chain-id",
        "has spaces",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error:") && err.contains("chain_id"),
        "{err}"
    );
    assert!(!home.join("config/genesis.json").exists());
}

#[test]
fn keys_add_list_show() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().to_str().unwrap();
    let a = stdout(&basalt(&["keys", "add", "--home", h, "--key", "alice"]))
        .trim()
        .to_string();
    let b = stdout(&basalt(&["keys", "add", "--home", h, "--key", "bob"]))
        .trim()
        .to_string();
    assert!(is_address(&a) && is_address(&b) && a != b);
    assert_eq!(
        stdout(&basalt(&["keys", "show", "--home", h, "--key", "bob"])).trim(),
        b
    );
    assert_eq!(
        stdout(&basalt(&["keys", "list", "--home", h])),
        format!("alice\t{a}\nbob\t{b}\n")
    );
    let dup = basalt(&["keys", "add", "--home", h, "--key", "alice"]);
    assert!(!dup.status.success() && stderr(&dup).contains("already exists"));
    let bad = basalt(&["keys", "add", "--home", h, "--key", "../escape"]);
    assert!(!bad.status.success() && stderr(&bad).contains("key name"));
    let missing = basalt(&["keys", "show", "--home", h, "--key", "carol"]);
    assert!(!missing.status.success() && stderr(&missing).contains("carol.json"));
}

#[test]
fn testnet_wires_ports_peers_stakes_and_one_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("net");
    let o = out_dir.to_str().unwrap();
    let out = basalt(&[
        "testnet",
        "--validators",
        "4",
        "--full-nodes",
        "1",
        "--output",
        o,
        "--base-port",
        "31000",
        "--stake",
        "10000000,20000000,30000000,40000000",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let genesis_text = std::fs::read_to_string(out_dir.join("node0/config/genesis.json")).unwrap();
    let genesis = Genesis::from_json(&genesis_text).unwrap();
    assert_eq!(genesis.app_state.validators.len(), 4);
    let bonds: Vec<u128> = genesis
        .app_state
        .validators
        .iter()
        .map(|v| v.self_bond)
        .collect();
    assert_eq!(bonds, vec![10_000_000, 20_000_000, 30_000_000, 40_000_000]);
    assert_eq!(
        genesis.app_state.accounts.len(),
        5,
        "every node's account is funded"
    );
    for k in 0..5 {
        let home = out_dir.join(format!("node{k}"));
        assert_eq!(
            std::fs::read_to_string(home.join("config/genesis.json")).unwrap(),
            genesis_text
        );
        let config: toml::Value =
            toml::from_str(&std::fs::read_to_string(home.join("config/config.toml")).unwrap())
                .unwrap();
        let p2p = 31000 + 2 * k;
        assert_eq!(
            config["p2p"]["listen"].as_str().unwrap(),
            format!("127.0.0.1:{p2p}")
        );
        assert_eq!(
            config["rpc"]["listen"].as_str().unwrap(),
            format!("127.0.0.1:{}", p2p + 1)
        );
        let peers: Vec<&str> = config["p2p"]["persistent_peers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(peers.len(), 4);
        assert!(!peers.contains(&format!("127.0.0.1:{p2p}").as_str()));
        let address = stdout(&basalt(&["keys", "show", "--home", home.to_str().unwrap()]))
            .trim()
            .to_string();
        assert!(genesis
            .app_state
            .accounts
            .iter()
            .any(|a| a.address.to_hex() == address));
        assert_eq!(
            home.join("config/priv_validator_key.json").exists(),
            k < 4,
            "only validators hold a consensus key"
        );
    }
    let wrong = basalt(&[
        "testnet",
        "--validators",
        "2",
        "--output",
        dir.path().join("x").to_str().unwrap(),
        "--stake",
        "1",
    ]);
    assert!(!wrong.status.success() && stderr(&wrong).contains("--stake"));
}

#[test]
fn testnet_docker_writes_a_compose_file_and_container_configs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("net");
    let o = basalt(&[
        "testnet",
        "--validators",
        "2",
        "--full-nodes",
        "1",
        "--output",
        out.to_str().unwrap(),
        "--base-port",
        "30000",
        "--docker",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let compose = std::fs::read_to_string(out.join("docker-compose.yml")).unwrap();
    for k in 0..3 {
        assert!(compose.contains(&format!("  node{k}:\n")), "{compose}");
        assert!(compose.contains(&format!("ipv4_address: 172.30.0.{}", 10 + k)));
        assert!(compose.contains(&format!("\"127.0.0.1:{}:26657\"", 30001 + 2 * k)));
        assert!(compose.contains(&format!("./node{k}:/home/basalt")));
        let config =
            std::fs::read_to_string(out.join(format!("node{k}/config/config.toml"))).unwrap();
        assert!(config.contains(&format!("listen = \"172.30.0.{}:26656\"", 10 + k)));
        assert!(config.contains("listen = \"0.0.0.0:26657\""));
        let peers = (0..3)
            .filter(|j| *j != k)
            .all(|j| config.contains(&format!("\"172.30.0.{}:26656\"", 10 + j)));
        assert!(peers, "{config}");
    }
    assert!(compose.contains("subnet: 172.30.0.0/24"));
}

/// The README's benchmark command, briefly and at a low offered rate: every transfer
/// commits, none is refused, and the report carries the figures tooling reads.
#[test]
fn bench_commits_what_it_offers_and_writes_its_figures() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let o = basalt(&[
        "bench",
        "--duration",
        "6",
        "--rate",
        "100",
        "--accounts",
        "100",
        "--base-port",
        "28400",
        "--full-node",
        "--retain-blocks",
        "20",
        "--sample-s",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("| tps |"), "{}", stdout(&o));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for key in [
        "tps",
        "latency_ms_p50",
        "latency_ms_p99",
        "block_interval_ms_p50",
        "rss_mb_max",
    ] {
        assert!(
            report[key].as_f64().is_some_and(|v| v > 0.0),
            "{key}: {report}"
        );
    }
    assert_eq!(report["indexer"], "null");
    assert_eq!(report["rejected"], 0, "{report}");
    // 6 s at 100/s: about 600 offered, every accepted one committed.
    assert_eq!(report["uncommitted"], 0, "{report}");
    assert!(report["committed"].as_u64().unwrap() >= 500, "{report}");
    assert!(
        report["empty_blocks_per_s"].as_f64().unwrap() > 1.0,
        "{report}"
    );
    // A sample a second: the height, five data directories (four validators and the full
    // node), and the full node's index, which keeps up with this light load.
    let samples = report["samples"].as_array().unwrap();
    assert!(samples.len() >= 4, "{report}");
    let last = samples.last().unwrap();
    assert_eq!(last["disk_mib"].as_array().unwrap().len(), 5, "{report}");
    assert!(last["full_node_indexed"].as_u64().unwrap() > 0, "{report}");
    assert!(
        last["full_node_index_lag"].as_u64().unwrap() < 20,
        "{report}"
    );
}
