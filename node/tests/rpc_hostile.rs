//! Hostile JSON-RPC clients against a live node: malformed and oversized requests get their
//! JSON-RPC error or a closed connection, slow clients are cut off, floods of WebSocket
//! clients and subscriptions hit their caps; the node keeps committing and its memory stays
//! flat.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tendermint_rpc::client::CompatMode;
use tendermint_rpc::query::Query;
use tendermint_rpc::{SubscriptionClient, WebSocketClient};

const MINUTE: Duration = Duration::from_secs(60);

/// A raw HTTP POST; the status code and the body as JSON (Null when it is not JSON).
fn post(addr: &str, body: &[u8]) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    // The server may close early on an oversized body: that is an acceptable answer.
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let json = text
        .split("\r\n\r\n")
        .nth(1)
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

fn code(v: &Value) -> i64 {
    v["error"]["code"].as_i64().unwrap_or(0)
}

#[test]
fn hostile_clients_get_errors_or_closed_connections_and_the_node_is_unharmed() {
    let mut net = Net::new(4, 0, 28200);
    net.start_all();
    net.wait_height(0, 3, MINUTE);
    let addr = net.rpc_addr(0);
    let rss_before = net.rss_kib(0);

    // Malformed, mistyped, unknown, oversized, over-batched, deeply nested.
    assert_eq!(code(&post(&addr, b"{\"jsonrpc\":\"2.0\",").1), -32700);
    let wrong = json!({"jsonrpc": "2.0", "id": 1, "method": "block", "params": {"height": "tall"}});
    assert_eq!(code(&post(&addr, wrong.to_string().as_bytes()).1), -32602);
    let wrong = json!({"jsonrpc": "2.0", "id": 1, "method": "tx", "params": {"hash": 5}});
    assert_eq!(code(&post(&addr, wrong.to_string().as_bytes()).1), -32602);
    let unknown = json!({"jsonrpc": "2.0", "id": 1, "method": "steal_funds"});
    let (_, v) = post(&addr, unknown.to_string().as_bytes());
    assert_eq!(code(&v), -32601);
    assert!(v["error"]["data"].as_str().unwrap().contains("steal_funds"));
    let big = vec![b' '; 2_000_000];
    let (status, _) = post(&addr, &big);
    assert!(
        status == 413 || status == 0,
        "oversized body: status {status}"
    );
    let batch: Vec<Value> = (0..11)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "health"}))
        .collect();
    assert_eq!(
        code(&post(&addr, serde_json::to_string(&batch).unwrap().as_bytes()).1),
        -32600
    );
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(code(&post(&addr, nested.as_bytes()).1), -32700);

    // Slow clients: 50 connections that never finish their headers do not block anybody,
    // and are closed by the server.
    let mut slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Len")
                .unwrap();
            s
        })
        .collect();
    let (_, v) = post(
        &addr,
        json!({"jsonrpc": "2.0", "id": 1, "method": "health"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(v["result"], json!({}), "served while slow clients hang");
    let started = Instant::now();
    let mut buf = [0u8; 64];
    slow[0]
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let n = slow[0].read(&mut buf).unwrap_or(0);
    let _ = n;
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "a slow client is cut off"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = format!("ws://{addr}/websocket");
        let connect = || async {
            WebSocketClient::builder(url.parse().unwrap())
                .compat_mode(CompatMode::V0_38)
                .build()
                .await
        };
        // Subscriptions per client are capped at 5 (a raw client: tendermint-rpc's ignores
        // subscription errors).
        let raw_addr = addr.clone();
        tokio::task::spawn_blocking(move || {
            let stream = TcpStream::connect(&raw_addr).unwrap();
            let (mut ws, _) =
                tungstenite::client(format!("ws://{raw_addr}/websocket"), stream).unwrap();
            for h in 0..6 {
                let req = json!({"jsonrpc": "2.0", "id": h, "method": "subscribe",
                    "params": {"query": format!("tm.event='NewBlock' AND block.height > {h}")}});
                ws.send(tungstenite::Message::Text(req.to_string())).unwrap();
                // Skip events until the reply to this request.
                let reply = loop {
                    let m: Value = serde_json::from_str(&ws.read().unwrap().into_text().unwrap()).unwrap();
                    if m["id"] == json!(h) && m["result"].get("query").is_none() {
                        break m;
                    }
                };
                if h < 5 {
                    assert_eq!(reply["result"], json!({}), "subscription {h}: {reply}");
                } else {
                    assert!(reply["error"]["data"].as_str().unwrap().contains("max_subscriptions_per_client"), "{reply}");
                }
            }
            let bad = json!({"jsonrpc": "2.0", "id": 9, "method": "subscribe", "params": {"query": "tm.event="}});
            ws.send(tungstenite::Message::Text(bad.to_string())).unwrap();
            loop {
                let m: Value = serde_json::from_str(&ws.read().unwrap().into_text().unwrap()).unwrap();
                if m["id"] == json!(9) {
                    assert_eq!(m["error"]["code"], -32602, "{m}");
                    break;
                }
            }
        })
        .await
        .unwrap();
        // A flood of clients, each subscribed and never reading: the cap of 100 holds, and
        // events for clients that do not read are dropped, not queued without bound.
        let flood_addr = addr.clone();
        let (kept, refused) = tokio::task::spawn_blocking(move || {
            let mut kept = Vec::new();
            let mut refused = 0;
            for i in 0..110 {
                let stream = TcpStream::connect(&flood_addr).unwrap();
                match tungstenite::client(format!("ws://{flood_addr}/websocket"), stream) {
                    Ok((mut ws, _)) => {
                        let req = json!({"jsonrpc": "2.0", "id": i, "method": "subscribe",
                            "params": {"query": "tm.event='NewBlock'"}});
                        ws.send(tungstenite::Message::Text(req.to_string())).unwrap();
                        kept.push(ws);
                    }
                    Err(_) => refused += 1,
                }
            }
            (kept, refused)
        })
        .await
        .unwrap();
        assert!(kept.len() <= 100, "{} clients accepted", kept.len());
        assert!(refused >= 10, "clients over the cap are refused ({refused} refused)");
        // A well-behaved client still gets through? Not while the cap is full; after the
        // flood leaves, it does.
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(kept);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (ws, driver) = connect().await.expect("a websocket after the flood");
        let d = tokio::spawn(driver.run());
        let mut sub = ws.subscribe("tm.event='NewBlock'".parse::<Query>().unwrap()).await.unwrap();
        use futures::StreamExt;
        let ev = tokio::time::timeout(Duration::from_secs(20), sub.next()).await;
        assert!(matches!(ev, Ok(Some(Ok(_)))), "events flow again");
        drop(sub);
        ws.close().unwrap();
        let _ = d.await;
    });
    drop(slow);

    // The node kept committing, and its memory stayed flat.
    let h = net.height(0).unwrap();
    net.wait_height(0, h + 3, MINUTE);
    let rss_after = net.rss_kib(0);
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    net.assert_same_chain(&[0, 1, 2, 3], h);
}

/// A JSON-RPC batch whose middle transaction is forged: each call gets its own verdict in its
/// place, the good ones (two nonces of one sender, in order) commit. With
/// `indexer = "null"` the block and its results are served, `tx` and `tx_search` say that
/// indexing is off.
#[test]
fn a_batch_is_verified_per_transaction_and_a_null_indexer_still_serves_block_results() {
    let mut net = Net::new(1, 0, 28250);
    let config = net.home(0).join("config/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("indexer = \"kv\""), "{text}");
    std::fs::write(
        &config,
        text.replace("indexer = \"kv\"", "indexer = \"null\""),
    )
    .unwrap();
    net.start_all();
    net.wait_height(0, 2, MINUTE);
    let key = net.account_key(0);
    let to = basalt_types::Address([7; 20]);
    let mut forged = transfer(&key, 1, to, 5);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let txs = [transfer(&key, 0, to, 1), forged, transfer(&key, 1, to, 2)];
    let batch: Vec<Value> = txs
        .iter()
        .enumerate()
        .map(|(i, tx)| {
            json!({"jsonrpc": "2.0", "id": i, "method": "broadcast_tx_sync",
                "params": {"tx": basalt_rpc::shapes::b64(tx)}})
        })
        .collect();
    let (status, answers) = post(&net.rpc_addr(0), Value::Array(batch).to_string().as_bytes());
    assert_eq!(status, 200);
    let codes: Vec<u64> = (0..3)
        .map(|i| answers[i]["result"]["code"].as_u64().unwrap())
        .collect();
    assert_eq!(codes[0], 0, "{answers}");
    assert_ne!(codes[1], 0, "forged: {answers}");
    assert!(
        answers[1]["result"]["log"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{answers}"
    );
    assert_eq!(codes[2], 0, "the sender's next nonce: {answers}");
    let good = [
        basalt_runtime::tx_hash(&txs[0]),
        basalt_runtime::tx_hash(&txs[2]),
    ];

    let c = net.client(0);
    let mut found = Vec::new();
    wait_for("both transfers in blocks", MINUTE, || {
        let Some(h) = net.height(0) else { return false };
        for height in found.last().map_or(1, |(h, _)| h + 1)..=h {
            let r = c
                .call("block_results", json!({"height": height.to_string()}))
                .unwrap();
            let n = r["txs_results"].as_array().map_or(0, Vec::len);
            if n > 0 {
                found.push((height, r));
            }
        }
        found
            .iter()
            .map(|(_, r)| r["txs_results"].as_array().unwrap().len())
            .sum::<usize>()
            == 2
    });
    for (_, r) in &found {
        for t in r["txs_results"].as_array().unwrap() {
            assert_eq!(t["code"], 0, "{t}");
            assert!(t["events"].as_array().is_some_and(|e| !e.is_empty()), "{t}");
        }
    }
    for (method, params) in [
        ("tx", json!({"hash": good[0].to_hex()})),
        ("tx_search", json!({"query": "tx.height > 0"})),
    ] {
        let err = c.call(method, params).unwrap_err().to_string();
        assert!(
            err.contains("transaction indexing is disabled"),
            "{method}: {err}"
        );
    }
    assert_eq!(net.balance(0, &to), 3);
    let status = c.call("status", json!({})).unwrap();
    assert_eq!(status["node_info"]["other"]["tx_index"], "off");
}
