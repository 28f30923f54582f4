//! The driver on its own, over an in-memory disk: one validator deciding heights, a peer's
//! request meeting a failing store, and reads under their time budget.

use super::*;
use crate::kv::MemKv;
use crate::rpc_backend::reads::{Budget, ReadView};
use crate::rpc_backend::snapshot::{NodeInfo, Snapshot};
use crate::wal::MemWal;
use crate::wire::{SyncRequest, SyncResponse};
use basalt_types::PrivateKey;

const CHAIN: &str = "driver-test";

fn key() -> PrivateKey {
    PrivateKey::from_seed([5; 32])
}

fn genesis() -> basalt_genesis::Genesis {
    let k = key().public_key();
    basalt_genesis::Genesis::generate(
        CHAIN,
        "2026-01-01T00:00:00Z",
        vec![(k, k, 10_000_000, "solo".into())],
        vec![(k.address(), 1_000_000_000)],
    )
    .unwrap()
}

/// A one-validator driver over `kv`.
fn driver(kv: &MemKv) -> Driver {
    let store = Store::in_memory(kv);
    let g = genesis();
    store.check_chain(CHAIN, &g.hash()).unwrap();
    let (chain, evidence) = load_state(g, &store).unwrap();
    Driver::new(DriverParts {
        chain,
        store,
        mempool: Mempool::new(1000, 1 << 20),
        evidence,
        validator: Some(Validator {
            signer: FileSigner::in_memory(key(), CHAIN, Default::default()),
            key: key().public_key(),
        }),
        wal: Box::new(MemWal::<WalRecord>::default()),
        verifier: Arc::new(verify::MemoVerifier::default()),
        create_empty_blocks: true,
        timeout_commit: Duration::ZERO,
    })
}

fn at(ms: u64) -> Now {
    Now {
        wall: Timestamp {
            seconds: 1_767_225_600 + (ms / 1000) as i64,
            nanos: 0,
        },
        mono_ms: ms,
    }
}

/// Runs the driver's own timers until it has committed `height`.
fn run_to(d: &mut Driver, height: u64) {
    let mut t = 0;
    let mut timers = vec![];
    let effects = d.handle(at(t), Event::Start { wal: vec![] }).unwrap();
    timers.extend(effects.into_iter().filter_map(|e| match e {
        Effect::Schedule { timer, .. } => Some(timer),
        _ => None,
    }));
    while d.last_height() < height {
        t += 1000;
        let timer = timers.remove(0);
        let effects = d.handle(at(t), Event::Timer(timer)).unwrap();
        timers.extend(effects.into_iter().filter_map(|e| match e {
            Effect::Schedule { timer, .. } => Some(timer),
            _ => None,
        }));
    }
}

fn respond(effects: Vec<Effect>) -> SyncResponse {
    let data = effects
        .into_iter()
        .find_map(|e| match e {
            Effect::Respond(d) => Some(d),
            _ => None,
        })
        .expect("a request is always answered");
    crate::wire::decode(&data).unwrap()
}

#[test]
fn a_store_that_fails_while_serving_a_peer_is_refused_to_it_and_the_node_goes_on() {
    let kv = MemKv::default();
    let mut d = driver(&kv);
    run_to(&mut d, 3);
    let peer = basalt_p2p::keypair_from_seed([1; 32])
        .unwrap()
        .public()
        .to_peer_id();
    let ask = crate::wire::encode(&SyncRequest::Blocks { from: 1, count: 3 });
    kv.set_failing(true);
    let effects = d
        .handle(
            at(10_000),
            Event::SyncRequest {
                from: peer,
                data: ask.clone(),
            },
        )
        .expect("a read error answering a peer is not fatal");
    assert!(matches!(respond(effects), SyncResponse::Refused(_)));
    kv.set_failing(false);
    let effects = d
        .handle(
            at(11_000),
            Event::SyncRequest {
                from: peer,
                data: ask,
            },
        )
        .unwrap();
    assert!(matches!(respond(effects), SyncResponse::Blocks(b) if b.len() == 3));
    // A malformed request costs the peer a penalty and gets a refusal.
    let effects = d
        .handle(
            at(12_000),
            Event::SyncRequest {
                from: peer,
                data: vec![0xff; 7],
            },
        )
        .unwrap();
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Penalise { peer: p, .. } if *p == peer)));
    assert!(matches!(respond(effects), SyncResponse::Refused(_)));
    run_to(&mut d, 5);
}

#[test]
fn a_read_over_its_time_budget_answers_an_error_and_one_within_it_the_result() {
    let kv = MemKv::default();
    let mut d = driver(&kv);
    run_to(&mut d, 4);
    let snap = Snapshot::of(&d, &Default::default());
    let info = NodeInfo {
        moniker: "solo".into(),
        node_id: "00".into(),
        node_key: key().public_key(),
        rpc_listen: "127.0.0.1:0".into(),
        p2p_listen: "127.0.0.1:0".into(),
    };
    let g = genesis();
    let view = |budget| ReadView {
        store: &d.store,
        genesis: &g,
        genesis_file: None,
        snap: &snap,
        info: &info,
        budget,
    };
    let params: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(r#"{"query": "block.height >= 1"}"#).unwrap();
    let ok = view(Budget::new(Duration::from_secs(5)))
        .call("block_search", &params)
        .unwrap();
    assert_eq!(ok["total_count"], "4");
    let spent = Budget::new(Duration::ZERO);
    std::thread::sleep(Duration::from_millis(2));
    for (method, p) in [("block_search", &params), ("tx_search", &params)] {
        let e = view(spent).call(method, p).unwrap_err();
        assert!(e.data.contains("time budget"), "{method}: {e}");
    }
    let e = view(spent)
        .call("blockchain", &Default::default())
        .unwrap_err();
    assert!(e.data.contains("time budget"), "{e}");
}
