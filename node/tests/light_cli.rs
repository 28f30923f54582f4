//! `basalt light` against live chains: it follows a 4-validator testnet from a trusted
//! header (every header it prints is the chain's), refuses a primary that serves a forged
//! header, and reports a fork when a witness serves a different header that also verifies
//! (a copy of a one-validator chain that went its own way, its validator double-signing).

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

fn light(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_basalt"));
    c.arg("light").args(args).env("RUST_LOG", "warn");
    c
}

/// `basalt light --follow` with its stdout lines delivered on a channel.
fn follow(args: &[&str]) -> (Child, mpsc::Receiver<Value>) {
    let mut child = light(args)
        .arg("--follow")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = tx.send(v);
            }
        }
    });
    (child, rx)
}

/// A JSON-RPC proxy in front of `upstream` that replaces the app hash in every `/commit`
/// header from height `from` on: a primary serving forged headers.
fn forging_proxy(port: u16, upstream: String, from: u64) {
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming().map_while(Result::ok) {
            let up = upstream.clone();
            std::thread::spawn(move || serve_forged(s, &up, from));
        }
    });
}

fn serve_forged(mut s: TcpStream, upstream: &str, from: u64) -> Option<()> {
    let mut reader = BufReader::new(s.try_clone().ok()?);
    let mut len = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        if line.trim().is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    let req: Value = serde_json::from_slice(&body).ok()?;
    let mut resp: Value = ureq::post(&format!("http://{upstream}"))
        .send_json(req.clone())
        .ok()?
        .into_json()
        .ok()?;
    let height = req["params"]["height"]
        .as_str()
        .and_then(|h| h.parse::<u64>().ok());
    if req["method"] == "commit" && height.is_some_and(|h| h >= from) {
        resp["result"]["signed_header"]["header"]["app_hash"] = json!("77".repeat(32));
    }
    let out = serde_json::to_vec(&resp).ok()?;
    write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        out.len()
    )
    .ok()?;
    s.write_all(&out).ok()
}

#[test]
fn the_light_client_follows_a_testnet_and_refuses_a_forged_header() {
    let mut net = Net::new(4, 0, 28750);
    net.start_all();
    net.wait_height(0, 3, MINUTE);
    let hash2 = net.block_hash(0, 2);
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("light");
    let (primary, witness) = (net.rpc_addr(0), net.rpc_addr(1));
    let (mut child, lines) = follow(&[
        "--node",
        &primary,
        "--witness",
        &witness,
        "--trust-height",
        "2",
        "--trust-hash",
        &hash2,
        "--home",
        home.to_str().unwrap(),
    ]);
    let first = lines.recv_timeout(MINUTE).expect("the trusted header");
    assert_eq!(first["trusted"]["hash"], hash2);
    let mut verified = Vec::new();
    while verified.len() < 5 {
        let v = lines.recv_timeout(MINUTE).expect("a verified header");
        verified.push(v["verified"].clone());
    }
    child.kill().unwrap();
    let _ = child.wait();
    let mut last = 2;
    for v in &verified {
        let h: u64 = v["height"].as_str().unwrap().parse().unwrap();
        assert!(h > last, "heights go up");
        last = h;
        assert_eq!(v["hash"], net.block_hash(2, h), "the chain's header at {h}");
    }
    // The trusted headers are on disk: a second run needs no trust options.
    let o = light(&["--node", &primary, "--home", home.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read_dir(home.join("trusted")).unwrap().count() >= 2);
    // ...and the account query proves against a header the light client verified.
    let me = net.account_key(0).public_key().address().to_hex();
    let o = basalt(&[
        "query",
        "account",
        &me,
        "--prove",
        "--light-home",
        home.to_str().unwrap(),
        "--node",
        &primary,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["verified"]["trusted"]
        .as_str()
        .unwrap()
        .contains("verified by the light client"));

    // A primary that forges headers above height 2: refused, with the reason.
    forging_proxy(28790, primary.clone(), 3);
    let fresh = dir.path().join("fresh");
    let o = light(&[
        "--node",
        "127.0.0.1:28790",
        "--trust-height",
        "2",
        "--trust-hash",
        &hash2,
        "--home",
        fresh.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(!o.status.success(), "a forged header was accepted");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("refusing the primary's header") && err.contains("does not hash"),
        "{err}"
    );
    // A wrong trust hash is refused before anything else.
    let o = light(&[
        "--node",
        &primary,
        "--trust-height",
        "2",
        "--trust-hash",
        &"AB".repeat(32),
        "--home",
        dir.path().join("wrong").to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not the trusted hash"));
}

#[test]
fn a_witness_with_a_conflicting_header_is_reported_as_a_fork() {
    let mut net = Net::new(1, 0, 28800);
    net.start(0);
    net.wait_height(0, 3, MINUTE);
    net.kill(0);
    // A copy of the chain on other ports: from here on the two go their own ways, the one
    // validator signing both (what a fork attack takes).
    let fork = net.dir.path().join("fork");
    copy(&net.home(0), &fork);
    let cfg = fork.join("config/config.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("127.0.0.1:28800", "127.0.0.1:28810")
        .replace("127.0.0.1:28801", "127.0.0.1:28811");
    std::fs::write(&cfg, text).unwrap();
    let mut other = Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args(["start", "--home", fork.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    net.start(0);
    net.wait_height(0, 8, MINUTE);
    let hash2 = net.block_hash(0, 2);
    let o = light(&[
        "--node",
        &net.rpc_addr(0),
        "--witness",
        "127.0.0.1:28811",
        "--trust-height",
        "2",
        "--trust-hash",
        &hash2,
        "--home",
        net.dir.path().join("light").to_str().unwrap(),
    ])
    .output()
    .unwrap();
    let _ = other.kill();
    let _ = other.wait();
    assert!(!o.status.success(), "the fork went unnoticed");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("fork detected at height"), "{err}");
    assert!(
        err.contains("primary: {") && err.contains("witness: {"),
        "both headers are shown: {err}"
    );
}

fn copy(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
