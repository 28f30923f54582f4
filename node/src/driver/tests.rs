//! The driver on its own, over an in-memory disk: one validator deciding heights, a peer's
//! request meeting a failing store, and reads under their time budget.

use super::*;
use crate::kv::MemKv;
use crate::rpc_backend::reads::{Budget, ReadView};
use crate::rpc_backend::snapshot::{NodeInfo, Snapshot};
use crate::wal::MemWal;
use crate::wire::{SyncRequest, SyncResponse};
use basalt_types::{PrivateKey, Vote, VoteType};

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
    driver_with(kv, Duration::ZERO, 20_000)
}

/// A one-validator driver over `kv` whose `timeout_commit` is `pause` and whose blocks hold
/// at most `max_txs` transactions.
fn driver_with(kv: &MemKv, pause: Duration, max_txs: u32) -> Driver {
    let store = Store::in_memory(kv);
    let mut g = genesis();
    g.consensus_params.block.max_txs = max_txs;
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
        timeout_commit: pause,
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

/// The driver's own timers, fired one a simulated second apart.
#[derive(Default)]
struct Clock {
    t: u64,
    timers: Vec<Timer>,
}

impl Clock {
    /// Hands `event` to the driver now, keeping the timers it arms.
    fn feed(&mut self, d: &mut Driver, event: Event) -> Vec<Effect> {
        let effects = d.handle(at(self.t), event).unwrap();
        self.timers.extend(effects.iter().filter_map(|e| match e {
            Effect::Schedule { timer, .. } => Some(timer.clone()),
            _ => None,
        }));
        effects
    }

    /// Fires the next timer a second later.
    fn step(&mut self, d: &mut Driver) -> Vec<Effect> {
        self.t += 1000;
        let timer = self.timers.remove(0);
        self.feed(d, Event::Timer(timer))
    }
}

/// Starts the driver and runs its own timers until it has committed `height`.
fn run_to(d: &mut Driver, height: u64) -> Clock {
    let mut clock = Clock::default();
    clock.feed(d, Event::Start { wal: vec![] });
    while d.last_height() < height {
        clock.step(d);
    }
    clock
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
    let peer = peer(1);
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

fn peer(seed: u8) -> basalt_p2p::PeerId {
    basalt_p2p::keypair_from_seed([seed; 32])
        .unwrap()
        .public()
        .to_peer_id()
}

fn start_pause(effects: &[Effect], height: u64) -> Option<Duration> {
    effects.iter().find_map(|e| match e {
        Effect::Schedule {
            after,
            timer: Timer::StartHeight(h),
        } if *h == height => Some(*after),
        _ => None,
    })
}

#[test]
fn the_next_height_starts_at_once_while_transactions_wait_and_after_timeout_commit_when_idle() {
    let kv = MemKv::default();
    // Blocks of one transaction: two sent at once leave one waiting at the first decision.
    let mut d = driver_with(&kv, Duration::from_millis(700), 1);
    let mut clock = Clock::default();
    clock.feed(&mut d, Event::Start { wal: vec![] });
    let me = key();
    let to = PrivateKey::from_seed([8; 32]).public_key().address();
    let mut pauses = vec![];
    while d.last_height() < 8 {
        if d.chain.next_height() >= 3 && d.mempool.is_empty() {
            let nonce = d.chain.runtime.account(&me.public_key().address()).nonce;
            for n in nonce..nonce + 2 {
                let tx = basalt_runtime::TxBody {
                    chain_id: CHAIN.into(),
                    nonce: n,
                    fee: 1,
                    msg: basalt_runtime::Msg::Transfer { to, amount: 1 },
                }
                .sign(&me)
                .to_bytes();
                let effects = clock.feed(&mut d, Event::SubmitTx { tx, verified: None });
                assert!(effects
                    .iter()
                    .any(|e| matches!(e, Effect::TxAdmitted { result, .. } if result.code == 0)));
            }
        }
        let next = d.chain.next_height();
        let effects = clock.step(&mut d);
        if let Some(p) = start_pause(&effects, next + 1) {
            pauses.push((next, p, d.mempool.is_empty()));
        }
    }
    // An empty mempool at the decision: the pause; a transaction waiting: at once.
    assert!(pauses.iter().any(|(_, _, idle)| *idle), "{pauses:?}");
    assert!(pauses.iter().any(|(_, _, idle)| !*idle), "{pauses:?}");
    for (h, p, idle) in &pauses {
        let want = if *idle {
            Duration::from_millis(700)
        } else {
            Duration::ZERO
        };
        assert_eq!(*p, want, "height {h}: {pauses:?}");
    }
}

#[test]
fn a_message_two_heights_ahead_asks_peers_status_at_once_and_that_heights_messages_on_arrival() {
    let kv = MemKv::default();
    let mut d = driver(&kv);
    let mut clock = run_to(&mut d, 2);
    let p = peer(1);
    clock.feed(&mut d, Event::PeerConnected(p));
    let next = d.chain.next_height();
    let ahead = next + 2;
    let stranger = PrivateKey::from_seed([9; 32]);
    let vote = |height: u64| {
        let v = Vote {
            vote_type: VoteType::Prevote,
            height: Height(height),
            round: Round(0),
            block_id: None,
            validator: stranger.public_key().address(),
        };
        let msg = ConsensusMsg::Vote(v.sign(CHAIN, at(0).wall, &stranger));
        Event::Gossip {
            topic: Topic::Consensus,
            from: p,
            data: crate::wire::encode(&msg),
        }
    };
    let asked = |effects: &[Effect], want: &SyncRequest| {
        effects.iter().any(
            |e| matches!(e, Effect::Request { peer, request } if *peer == p && request == want),
        )
    };
    clock.t += 1;
    let effects = clock.feed(&mut d, vote(ahead));
    assert!(
        asked(&effects, &SyncRequest::Status),
        "status asked at once"
    );
    // Not again within 100 ms.
    clock.t += 50;
    let effects = clock.feed(&mut d, vote(ahead));
    assert!(!asked(&effects, &SyncRequest::Status));
    // A made-up height far ahead is not remembered for catch-up.
    clock.t += 200;
    clock.feed(&mut d, vote(next + 10_000));
    assert_eq!(d.dropped_ahead, ahead);
    // On reaching the dropped height (here by its own decisions), the node asks for it.
    let mut found = false;
    while d.chain.next_height() <= ahead {
        let effects = clock.step(&mut d);
        found |= asked(&effects, &SyncRequest::Catchup { height: ahead });
    }
    assert!(found, "catch-up asked for height {ahead} on arrival");
}
