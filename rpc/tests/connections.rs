//! The server against clients that hold connections for nothing, over real sockets on
//! loopback: silent and preface-only connections, kept-alive idlers, WebSocket upgrades
//! reset mid-handshake, idle WebSocket clients, oversized declared bodies and huge inputs
//! quoted in errors. Each test runs its own server (port 0) with short deadlines.

use basalt_rpc::{Backend, RpcConfig, RpcError, RpcEvent};
use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

#[derive(Clone)]
struct Echo;

impl Backend for Echo {
    async fn call(&self, method: String, params: Map<String, Value>) -> Result<Value, RpcError> {
        match method.as_str() {
            "health" => Ok(json!({})),
            "height" => Ok(json!(basalt_rpc::param_u64(&params, "height")?)),
            m => Err(RpcError::method_not_found(m)),
        }
    }
    fn events(&self) -> tokio::sync::broadcast::Receiver<RpcEvent> {
        tokio::sync::broadcast::channel(1).1
    }
    fn metrics(&self) -> String {
        "# EOF\n".into()
    }
}

async fn server(edit: impl FnOnce(&mut RpcConfig)) -> SocketAddr {
    let mut c = RpcConfig::new("127.0.0.1:0".parse().unwrap());
    c.read_timeout = Duration::from_secs(1);
    c.idle_timeout = Duration::from_secs(1);
    edit(&mut c);
    basalt_rpc::serve(c, Echo).await.unwrap()
}

/// A connection from a chosen loopback source address (127.0.0.x is all loopback on Linux).
async fn connect_from(source: &str, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(format!("{source}:0").parse().unwrap())?;
    socket.connect(addr).await
}

/// Reads until the server closes the connection (EOF or reset) or `within` passes; returns
/// what was read and whether it closed.
async fn read_to_close(s: &mut TcpStream, within: Duration) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (got, false),
        }
    }
}

/// One JSON-RPC call over a fresh connection from `source`; the answer's JSON.
async fn call_from(source: &str, addr: SocketAddr, method: &str) -> Value {
    call_with(source, addr, method, json!({})).await
}

async fn call_with(source: &str, addr: SocketAddr, method: &str, params: Value) -> Value {
    let mut s = connect_from(source, addr).await.expect("connect");
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let req = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let (resp, _) = read_to_close(&mut s, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&resp);
    let json = text.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(json).unwrap_or(Value::Null)
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Opens `n` connections from `source` that send `first` (maybe nothing) and then nothing.
async fn silent(source: &str, addr: SocketAddr, n: usize, first: &'static [u8]) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = connect_from(source, addr).await.expect("connect");
        if !first.is_empty() {
            let _ = s.write_all(first).await;
        }
        held.push(s);
    }
    held
}

/// How many of `conns` the server closes within `within` (all read concurrently).
async fn closed_within(conns: Vec<TcpStream>, within: Duration) -> usize {
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut s| tokio::spawn(async move { read_to_close(&mut s, within).await.1 }))
        .collect();
    let mut closed = 0;
    for t in tasks {
        closed += usize::from(t.await.unwrap());
    }
    closed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_silent_connections_are_closed_by_the_deadline_and_a_normal_client_is_served_meanwhile(
) {
    // No per-address cap and room for all of them: only the deadline can close them.
    let addr = server(|c| {
        c.max_open_connections = 2000;
        c.max_open_connections_per_ip = 0;
    })
    .await;
    let started = Instant::now();
    let mut conns = silent("127.0.0.1", addr, 800, b"").await;
    conns.extend(silent("127.0.0.1", addr, 200, H2_PREFACE).await);
    assert_eq!(
        call_from("127.0.0.2", addr, "health").await["result"],
        json!({}),
        "served while 1,000 connections sit silent"
    );
    let closed = closed_within(conns, Duration::from_secs(6)).await;
    assert_eq!(
        closed, 1000,
        "every silent and preface-only connection is closed"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "closed by the 1 s deadline, not by chance ({:?})",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_host_cannot_take_every_slot() {
    let addr = server(|c| {
        c.max_open_connections = 900;
        c.max_open_connections_per_ip = 300;
        c.read_timeout = Duration::from_secs(5);
    })
    .await;
    let conns = silent("127.0.0.1", addr, 1000, b"").await;
    // Those over the per-address cap are closed at once; 300 are held until the deadline.
    let closed_at_once = closed_within(conns, Duration::from_millis(1500)).await;
    assert_eq!(closed_at_once, 700, "the per-address cap of 300 holds");
    assert_eq!(
        call_from("127.0.0.2", addr, "health").await["result"],
        json!({}),
        "another host is served"
    );
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_after_its_idle_timeout() {
    let addr = server(|c| c.idle_timeout = Duration::from_millis(700)).await;
    let mut s = connect_from("127.0.0.1", addr).await.unwrap();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "health"}).to_string();
    let req = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (resp, closed) = read_to_close(&mut s, Duration::from_secs(5)).await;
    assert!(String::from_utf8_lossy(&resp).starts_with("HTTP/1.1 200"));
    assert!(closed, "closed once idle");
    let idle = started.elapsed();
    assert!(
        idle >= Duration::from_millis(600) && idle < Duration::from_secs(3),
        "after the idle timeout, not at once nor never: {idle:?}"
    );
}

fn upgrade_request(key: &str) -> String {
    format!(
        "GET /websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
    )
}

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A raw WebSocket handshake; the status line of the answer and the stream.
async fn ws_handshake(addr: SocketAddr, key: &str) -> (String, TcpStream) {
    let mut s = connect_from("127.0.0.1", addr).await.unwrap();
    s.write_all(upgrade_request(key).as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&head);
    (text.lines().next().unwrap_or("").to_string(), s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_reset_mid_handshake_leave_the_websocket_capacity_whole() {
    let addr = server(|c| c.max_ws_clients = 100).await;
    for i in 0..200 {
        let s = connect_from("127.0.0.1", addr).await.unwrap();
        let mut s = s;
        s.write_all(upgrade_request(KEY).as_bytes()).await.unwrap();
        // Half of them wait until the server has read the request; all reset (RST).
        if i % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        s.set_zero_linger().unwrap();
        drop(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut held = Vec::new();
    for i in 0..100 {
        let (status, s) = ws_handshake(addr, KEY).await;
        assert!(status.contains(" 101 "), "client {i} of 100: {status}");
        held.push(s);
    }
    let (status, _) = ws_handshake(addr, KEY).await;
    assert!(
        status.contains(" 503 "),
        "the 101st is over the cap: {status}"
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _) = ws_handshake(addr, KEY).await;
    assert!(
        status.contains(" 101 "),
        "slots come back when clients leave: {status}"
    );
}

#[tokio::test]
async fn a_junk_key_or_version_is_refused() {
    let addr = server(|_| {}).await;
    for key in ["not base64!", "c2hvcnQ=", ""] {
        let (status, _) = ws_handshake(addr, key).await;
        assert!(status.contains(" 400 "), "key {key:?}: {status}");
    }
    let mut s = connect_from("127.0.0.1", addr).await.unwrap();
    let req = upgrade_request(KEY).replace("Version: 13", "Version: 8");
    s.write_all(req.as_bytes()).await.unwrap();
    let (resp, _) = read_to_close(&mut s, Duration::from_secs(3)).await;
    let status = String::from_utf8_lossy(&resp)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    assert!(!status.contains(" 101 "), "version 8: {status}");
    let (status, _) = ws_handshake(addr, KEY).await;
    assert!(status.contains(" 101 "), "a proper handshake: {status}");
}

#[tokio::test]
async fn an_idle_websocket_client_that_never_pongs_is_dropped_and_one_that_pongs_is_kept() {
    let addr = server(|c| c.ws_read_wait = Duration::from_millis(800)).await;
    // Silent: reads the pings, never answers.
    let (status, mut silent) = ws_handshake(addr, KEY).await;
    assert!(status.contains(" 101 "), "{status}");
    let started = Instant::now();
    let (frames, closed) = read_to_close(&mut silent, Duration::from_secs(5)).await;
    assert!(closed, "a silent client is closed");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "within its read wait: {:?}",
        started.elapsed()
    );
    assert_eq!(
        frames.first(),
        Some(&0x89),
        "it was pinged first: {frames:?}"
    );

    // Alive: answers every ping with a (masked) pong and is still open after 2.5 read waits.
    let (_, mut alive) = ws_handshake(addr, KEY).await;
    let until = Instant::now() + Duration::from_secs(2);
    let mut buf = [0u8; 64];
    while Instant::now() < until {
        match tokio::time::timeout(Duration::from_millis(100), alive.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => panic!("a client that answers pings was closed"),
            Ok(Ok(n)) if buf[..n].contains(&0x89) => {
                alive.write_all(&[0x8A, 0x80, 0, 0, 0, 0]).await.unwrap();
            }
            _ => {}
        }
    }
}

/// Sends `head` (and nothing more) and returns the status line and how long it took.
async fn answer_to(addr: SocketAddr, head: &str) -> (String, Duration) {
    let mut s = connect_from("127.0.0.1", addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (resp, _) = read_to_close(&mut s, Duration::from_secs(15)).await;
    let text = String::from_utf8_lossy(&resp).to_string();
    (
        text.lines().next().unwrap_or("").to_string(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn an_oversized_declared_body_gets_413_at_once() {
    // A long read timeout: an answer within it cannot be the timeout's 408.
    let addr = server(|c| {
        c.read_timeout = Duration::from_secs(10);
        c.max_body_bytes = 1_000_000;
    })
    .await;
    let heads = [
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\nExpect: 100-continue\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFF\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n10\r\n0123456789abcdef\r\n7FFFFFFFFFFFFFFF\r\nab",
    ];
    for head in heads {
        let (status, took) = answer_to(addr, head).await;
        assert!(status.contains(" 413 "), "{head:?}: {status}");
        assert!(took < Duration::from_secs(2), "{head:?}: took {took:?}");
    }
}

#[tokio::test]
async fn a_huge_bad_method_name_or_parameter_gets_a_short_error() {
    let addr = server(|_| {}).await;
    let long = "m".repeat(100_000);
    let v = call_from("127.0.0.1", addr, &long).await;
    assert_eq!(v["error"]["code"], -32601, "{v}");
    let data = v["error"]["data"].as_str().unwrap();
    assert!(data.len() < 200, "{} bytes of data", data.len());
    assert!(
        data.contains("100000 bytes"),
        "says how long it was: {data}"
    );

    // A bad parameter value of 100 KB.
    let v = call_with(
        "127.0.0.1",
        addr,
        "height",
        json!({"height": "9x".repeat(50_000)}),
    )
    .await;
    assert_eq!(v["error"]["code"], -32602, "{v}");
    let data = v["error"]["data"].as_str().unwrap();
    assert!(data.len() < 200, "{} bytes of data", data.len());
}
