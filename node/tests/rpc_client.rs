//! The JSON-RPC interface against a live 4-validator testnet, through a real CometBFT client
//! (`tendermint-rpc` 0.40, CompatMode::V0_38): every method it offers parses, and what it
//! returns agrees with the chain (hashes, heights, proposers in the node's own log), and the
//! header and validator-set hashes are the ones tendermint-rs recomputes from the JSON.

mod common;

use basalt_types::PrivateKey;
use common::*;
use futures::StreamExt;
use std::time::Duration;
use tendermint_rpc::client::CompatMode;
use tendermint_rpc::query::{EventType, Query};
use tendermint_rpc::{Client, HttpClient, Order, Paging, SubscriptionClient, WebSocketClient};

const MINUTE: Duration = Duration::from_secs(60);

fn http(net: &Net, k: usize) -> HttpClient {
    net.tendermint_client(k)
}

/// `proposer=` of the committed-block log line for `height`.
fn logged_proposer(log: &str, height: u64) -> Option<String> {
    let needle = format!("height={height} ");
    log.lines()
        .find(|l| l.contains("committed block") && l.contains(&needle))
        .and_then(|l| l.split("proposer=").nth(1))
        .map(|p| p.split_whitespace().next().unwrap_or("").to_string())
}

#[test]
fn a_real_cometbft_client_parses_every_method_and_the_content_is_right() {
    let mut net = Net::new(4, 0, 28100);
    net.start_all();
    net.wait_height(0, 4, MINUTE);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = http(&net, 0);
        c.health().await.expect("health");

        let status = c.status().await.expect("status");
        assert_eq!(status.node_info.network.as_str(), CHAIN);
        let tip = status.sync_info.latest_block_height.value();
        assert!(tip >= 4);
        assert_eq!(status.validator_info.power.value(), 10);

        // Real peers: each named as its operator named it (libp2p identify), with the
        // address it listens on and how long the connection has been up.
        let mut expected: Vec<String> = (1..4).map(|k| net.moniker(k)).collect();
        expected.sort();
        let mut ni = c.net_info().await.expect("net_info");
        for _ in 0..50 {
            if ni
                .peers
                .iter()
                .all(|p| !p.node_info.moniker.to_string().is_empty())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            ni = c.net_info().await.expect("net_info");
        }
        assert_eq!(ni.n_peers, 3);
        let mut monikers: Vec<String> = ni
            .peers
            .iter()
            .map(|p| p.node_info.moniker.to_string())
            .collect();
        monikers.sort();
        assert_eq!(monikers, expected);
        for p in &ni.peers {
            assert!(
                p.node_info
                    .listen_addr
                    .to_string()
                    .starts_with("127.0.0.1:"),
                "{p:?}"
            );
            assert!(!p.node_info.version.to_string().is_empty());
            assert!(p.connection_status.duration.as_millis() > 0);
            assert!(p.remote_ip.is_loopback());
        }
        assert_eq!(
            ni.peers.iter().filter(|p| p.is_outbound).count()
                + ni.peers.iter().filter(|p| !p.is_outbound).count(),
            3
        );

        let g: tendermint::Genesis<serde_json::Value> = c.genesis().await.expect("genesis");
        assert_eq!(g.chain_id.as_str(), CHAIN);
        assert_eq!(g.validators.len(), 4);
        let chunk = c.genesis_chunked(0).await.expect("genesis_chunked");
        assert_eq!(chunk.total, 1);
        assert!(!chunk.data.is_empty());

        // Blocks, headers and commits agree with each other and with the node's log.
        let log = net.log_text(0);
        for h in 1..=tip {
            let b = c.block(h as u32).await.expect("block");
            assert_eq!(b.block.header.height.value(), h);
            let by_hash = c
                .block_by_hash(b.block_id.hash)
                .await
                .expect("block_by_hash");
            assert_eq!(by_hash.block.unwrap().header.height.value(), h);
            let header = c.header(h as u32).await.expect("header");
            assert_eq!(header.header.hash(), b.block.header.hash());
            let hh = c
                .header_by_hash(b.block_id.hash)
                .await
                .expect("header_by_hash");
            assert_eq!(hh.header.unwrap().height.value(), h);
            let commit = c.commit(h as u32).await.expect("commit");
            assert_eq!(
                commit.signed_header.commit.block_id.hash, b.block_id.hash,
                "commit of {h}"
            );
            assert_eq!(commit.signed_header.header.height.value(), h);
            // What a Tendermint light client recomputes from the JSON (tendermint-rs, the
            // verifier relayers use): the header hash is the id the commit signs, and the
            // validators at h hash to the header's validators_hash.
            assert_eq!(
                commit.signed_header.header.hash(),
                commit.signed_header.commit.block_id.hash,
                "header hash of {h} recomputed by tendermint-rs"
            );
            let set = c
                .validators(h as u32, Paging::All)
                .await
                .expect("validators");
            assert_eq!(
                tendermint::validator::Set::without_proposer(set.validators).hash(),
                commit.signed_header.header.validators_hash,
                "validators hash of {h} recomputed by tendermint-rs"
            );
            let proposer = b.block.header.proposer_address.to_string().to_uppercase();
            assert_eq!(
                logged_proposer(&log, h).as_deref(),
                Some(proposer.as_str()),
                "proposer of {h}"
            );
            if h > 1 {
                let last = b.block.last_commit.expect("a last commit");
                assert_eq!(last.height.value(), h - 1);
            }
            let results = c.block_results(h as u32).await.expect("block_results");
            assert_eq!(results.height.value(), h);
        }
        let chain = c.blockchain(1u32, tip as u32).await.expect("blockchain");
        assert_eq!(chain.block_metas.len() as u64, tip.min(20));
        assert_eq!(chain.block_metas[0].header.height.value(), tip);

        let vals = c
            .validators(tip as u32, Paging::All)
            .await
            .expect("validators");
        assert_eq!(vals.validators.len(), 4);
        assert_eq!(vals.total, 4);
        let one = c
            .validators(
                tip as u32,
                Paging::Specific {
                    page_number: 2usize.into(),
                    per_page: 3u8.into(),
                },
            )
            .await
            .expect("validators page");
        assert_eq!(one.validators.len(), 1);

        let params = c
            .consensus_params(tip as u32)
            .await
            .expect("consensus_params");
        assert_eq!(params.consensus_params.evidence.max_age_num_blocks, 1000);
        // The round state with its votes: one entry per validator of the set in each round's
        // lists, and bit arrays whose power agrees with them.
        let cs = c.consensus_state().await.expect("consensus_state");
        let rs = &cs.round_state;
        assert!(rs.height_round_step.height.value() >= tip);
        let round0 = &rs.height_vote_set[0];
        assert_eq!(round0.prevotes.len(), 4);
        assert_eq!(round0.precommits.len(), 4);
        assert!(
            round0.prevotes_bit_array.starts_with("BA{4:"),
            "{}",
            round0.prevotes_bit_array
        );
        let voted = |bits: &str| bits[5..9].chars().filter(|c| *c == 'x').count();
        let votes = |l: &[tendermint_rpc::endpoint::consensus_state::RoundVote]| {
            l.iter()
                .filter(|v| !matches!(v, tendermint_rpc::endpoint::consensus_state::RoundVote::Nil))
                .count()
        };
        assert_eq!(voted(&round0.prevotes_bit_array), votes(&round0.prevotes));
        assert!(
            round0.prevotes_bit_array.ends_with(&format!(
                "{}/40 = {:.2}",
                10 * votes(&round0.prevotes),
                votes(&round0.prevotes) as f64 / 4.0
            )),
            "{}",
            round0.prevotes_bit_array
        );
        // Between heights the lists may still be empty; within a few tries a vote shows.
        let mut seen_vote = false;
        for _ in 0..100 {
            let cs = c.consensus_state().await.expect("consensus_state");
            if let Some(tendermint_rpc::endpoint::consensus_state::RoundVote::Vote(v)) = cs
                .round_state
                .height_vote_set
                .iter()
                .flat_map(|r| r.prevotes.iter().chain(&r.precommits))
                .find(|v| !matches!(v, tendermint_rpc::endpoint::consensus_state::RoundVote::Nil))
            {
                assert_eq!(v.height, cs.round_state.height_round_step.height);
                seen_vote = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(seen_vote, "consensus_state never showed a vote");
        let info = c.abci_info().await.expect("abci_info");
        assert!(info.last_block_height.value() >= tip);

        // A transfer: broadcast_tx_sync, then tx and tx_search find it.
        let key = net.account_key(0);
        let to = PrivateKey::from_seed([77; 32]).public_key().address();
        let tx = transfer(&key, 0, to, 4242);
        let r = c
            .broadcast_tx_sync(tx.clone())
            .await
            .expect("broadcast_tx_sync");
        assert!(r.code.is_ok(), "{}", r.log);
        let hash = r.hash;
        let found = loop {
            match c.tx(hash, false).await {
                Ok(t) => break t,
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        assert_eq!(found.hash, hash);
        assert!(found.tx_result.code.is_ok());
        assert_eq!(found.tx, tx);
        let q: Query = format!("transfer.recipient='{}'", to.to_hex())
            .parse()
            .unwrap();
        let search = c
            .tx_search(q, false, 1, 30, Order::Ascending)
            .await
            .expect("tx_search");
        assert_eq!(search.total_count, 1);
        assert_eq!(search.txs[0].hash, hash);
        let q: Query = format!("tx.height={}", found.height.value())
            .parse()
            .unwrap();
        let search = c
            .tx_search(q, false, 1, 30, Order::Descending)
            .await
            .expect("tx_search by height");
        assert!(search.txs.iter().any(|t| t.hash == hash));
        let q: Query = "block.height >= 2".parse().unwrap();
        let blocks = c
            .block_search(q, 1, 5, Order::Ascending)
            .await
            .expect("block_search");
        assert!(blocks.total_count as u64 >= tip - 1);
        assert_eq!(blocks.blocks[0].block.header.height.value(), 2);

        let q = c
            .abci_query(Some(format!("/account/{to}")), vec![], None, false)
            .await
            .expect("abci_query");
        let v: serde_json::Value = serde_json::from_slice(&q.value).unwrap();
        assert_eq!(v["balance"], "4242");

        // broadcast_tx_commit waits for the block; broadcast_tx_async returns at once.
        let committed = c
            .broadcast_tx_commit(transfer(&key, 1, to, 1))
            .await
            .expect("broadcast_tx_commit");
        assert!(committed.check_tx.code.is_ok() && committed.tx_result.code.is_ok());
        assert!(committed.height.value() > 0);
        let r = c
            .broadcast_tx_async(transfer(&key, 2, to, 1))
            .await
            .expect("broadcast_tx_async");
        assert!(r.code.is_ok());
        let bad = c
            .broadcast_tx_sync(b"garbage".to_vec())
            .await
            .expect("a refusal is still a reply");
        assert!(bad.code.is_err());

        // WebSocket: NewBlock events arrive for consecutive heights, and Tx events by query.
        let url = format!("ws://{}/websocket", net.rpc_addr(1));
        let (ws, driver) = WebSocketClient::builder(url.parse().unwrap())
            .compat_mode(CompatMode::V0_38)
            .build()
            .await
            .expect("websocket");
        let driver = tokio::spawn(driver.run());
        let mut blocks = ws
            .subscribe(EventType::NewBlock.into())
            .await
            .expect("subscribe");
        let mut heights = Vec::new();
        while heights.len() < 3 {
            let ev = tokio::time::timeout(Duration::from_secs(20), blocks.next())
                .await
                .expect("an event")
                .unwrap()
                .unwrap();
            if let tendermint_rpc::event::EventData::NewBlock { block: Some(b), .. } = ev.data {
                heights.push(b.header.height.value());
            }
        }
        assert_eq!(heights[1], heights[0] + 1);
        assert_eq!(heights[2], heights[1] + 1);
        let q: Query = format!("tm.event='Tx' AND transfer.recipient='{}'", to.to_hex())
            .parse()
            .unwrap();
        let mut txs = ws.subscribe(q).await.expect("subscribe to txs");
        c.broadcast_tx_sync(transfer(&key, 3, to, 5)).await.unwrap();
        let ev = tokio::time::timeout(Duration::from_secs(20), txs.next())
            .await
            .expect("a tx event")
            .unwrap()
            .unwrap();
        assert!(
            matches!(ev.data, tendermint_rpc::event::EventData::Tx { .. }),
            "{:?}",
            ev.data
        );
        ws.close().unwrap();
        let _ = driver.await;
    });

    // broadcast_evidence: two conflicting precommits of validator 1, in the JSON shape
    // blocks show evidence in; the evidence is kept, gossiped, committed and punished.
    let home1 = basalt_node::home::Home::new(net.home(1));
    let vkey = basalt_node::keys::load(&home1.validator_key_file()).unwrap();
    let h = net.height(0).unwrap();
    let vote = |b: Option<basalt_types::BlockId>| {
        basalt_types::Vote {
            vote_type: basalt_types::VoteType::Precommit,
            height: basalt_types::Height(h),
            round: basalt_types::Round(7),
            block_id: b,
            validator: vkey.public_key().address(),
        }
        .sign(CHAIN, basalt_types::Timestamp::default(), &vkey)
    };
    let ev = basalt_types::Evidence::DuplicateVote(basalt_types::DuplicateVoteEvidence::new(
        vote(Some(basalt_types::BlockId(
            basalt_types::Hash::digest(b"one"),
            Default::default(),
        ))),
        vote(None),
        10,
        40,
    ));
    let json = basalt_rpc::shapes::evidence(&ev, basalt_types::Timestamp::default());
    let r = net
        .client(2)
        .call(
            "broadcast_evidence",
            serde_json::json!({ "evidence": json }),
        )
        .expect("evidence accepted");
    assert_eq!(r["hash"], basalt_types::Hash::of(&ev).to_hex());
    let forged = {
        let mut j = json.clone();
        j["value"]["vote_b"]["signature"] = serde_json::json!(basalt_rpc::shapes::b64(&[1u8; 64]));
        j
    };
    let err = net
        .client(2)
        .call(
            "broadcast_evidence",
            serde_json::json!({ "evidence": forged }),
        )
        .unwrap_err();
    assert!(err.to_string().contains("evidence refused"), "{err}");
    let operator = net.account_key(1).public_key().address();
    wait_for("the evidence to be committed", MINUTE, || {
        net.client(0)
            .query(&format!("/validator/{operator}"))
            .is_ok_and(|v| v["tombstoned"] == true)
    });

    // Prometheus metrics, with the chain's figures and the RPC's own.
    let text = ureq::get(&format!("http://{}/metrics", net.rpc_addr(0)))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let gauge = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
    };
    assert!(gauge("basalt_height") >= 4.0);
    assert_eq!(gauge("basalt_peers"), 3.0);
    assert!(
        gauge("basalt_txs_total") >= 4.0,
        "the transfers above were counted"
    );
    for m in [
        "basalt_block_interval_seconds_bucket",
        "basalt_txs_per_block_bucket",
        "basalt_mempool_size",
        "basalt_validator_power{validator=",
        "basalt_evidence_committed_total",
        "basalt_rpc_requests_total{method=\"tx_search\",outcome=\"ok\"}",
        "basalt_rpc_request_duration_seconds_bucket{",
    ] {
        assert!(text.contains(m), "{m} missing from:\n{text}");
    }
    assert!(text.ends_with("# EOF\n"), "one OpenMetrics document");
    assert_eq!(text.matches("# EOF").count(), 1);
    // Gossipsub's counters: the transfers sent to node 0 reached node 1 on the transaction
    // topic.
    let text = ureq::get(&format!("http://{}/metrics", net.rpc_addr(1)))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let txs_topic = format!("{{hash=\"/basalt/{CHAIN}/txs/2\"}}");
    let counter = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}{txs_topic} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name}{txs_topic} missing from:\n{text}"))
    };
    let kept = counter("basalt_p2p_topic_msg_recv_counts_total");
    assert!(kept >= 1.0, "transaction batches received");
    assert!(counter("basalt_p2p_topic_msg_recv_counts_unfiltered_total") >= kept);
    assert!(counter("basalt_p2p_topic_msg_recv_bytes_total") > 0.0);
}
