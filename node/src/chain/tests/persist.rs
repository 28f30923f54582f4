//! The state on disk: blocks of random transactions executed and stored, then the chain
//! loaded back from the store (what a restart does) holds the same state, goes on to the
//! same app hashes as a chain that never stopped, and answers queries at past heights.

use super::*;
use crate::kv::MemKv;
use basalt_runtime::{Msg, StateProof, StateStore, TxBody};
use proptest::prelude::*;

pub(super) const USERS: u8 = 5;

pub(super) fn user(i: u8) -> PrivateKey {
    key(3, i)
}

pub(super) fn funded() -> Vec<(Address, u128)> {
    (0..USERS)
        .map(|i| (user(i).public_key().address(), 1_000_000_000))
        .collect()
}

/// One generated transaction: who sends, what, and a nonce offset (non-zero ones fail).
#[derive(Clone, Debug)]
pub(super) enum Op {
    Transfer {
        from: u8,
        to: u8,
        amount: u128,
    },
    Delegate {
        from: u8,
        validator: u8,
        amount: u128,
    },
    Undelegate {
        from: u8,
        validator: u8,
        amount: u128,
    },
    BadNonce {
        from: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..USERS, 0..USERS + 2, 1..5_000_000u128)
            .prop_map(|(from, to, amount)| Op::Transfer { from, to, amount }),
        2 => (0..USERS, 0..4u8, 1..3_000_000u128)
            .prop_map(|(from, validator, amount)| Op::Delegate { from, validator, amount }),
        2 => (0..USERS, 0..4u8, 1..3_000_000u128)
            .prop_map(|(from, validator, amount)| Op::Undelegate { from, validator, amount }),
        1 => (0..USERS).prop_map(|from| Op::BadNonce { from }),
    ]
}

/// Signs a block's operations with the nonces `c`'s state expects (some fail on purpose).
pub(super) fn sign(c: &Chain, ops: &[Op]) -> Vec<Vec<u8>> {
    let mut nonces: std::collections::HashMap<u8, u64> = Default::default();
    ops.iter()
        .map(|o| {
            let (from, msg, skip) = match o {
                Op::Transfer { from, to, amount } => {
                    let to = key(3, *to).public_key().address();
                    (
                        *from,
                        Msg::Transfer {
                            to,
                            amount: *amount,
                        },
                        0,
                    )
                }
                Op::Delegate {
                    from,
                    validator,
                    amount,
                } => {
                    let validator = key(1, *validator).public_key().address();
                    (
                        *from,
                        Msg::Delegate {
                            validator,
                            amount: *amount,
                        },
                        0,
                    )
                }
                Op::Undelegate {
                    from,
                    validator,
                    amount,
                } => {
                    let validator = key(1, *validator).public_key().address();
                    (
                        *from,
                        Msg::Undelegate {
                            validator,
                            amount: *amount,
                        },
                        0,
                    )
                }
                Op::BadNonce { from } => {
                    let to = user(0).public_key().address();
                    (*from, Msg::Transfer { to, amount: 1 }, 5)
                }
            };
            let k = user(from);
            let next = nonces
                .entry(from)
                .or_insert_with(|| c.runtime.account(&k.public_key().address()).nonce);
            let nonce = *next + skip;
            if skip == 0 {
                *next += 1;
            }
            TxBody {
                chain_id: CHAIN.into(),
                nonce,
                fee: 10,
                msg,
            }
            .sign(&k)
            .to_bytes()
        })
        .collect()
}

/// Everything a query can see of the state, for comparison.
pub(super) fn state_of(c: &Chain) -> (Hash, Vec<basalt_runtime::Account>, String, String) {
    let accounts = (0..USERS + 2)
        .map(|i| c.runtime.account(&key(3, i).public_key().address()))
        .collect();
    (
        c.runtime.app_hash(),
        accounts,
        c.runtime.query("/validators").unwrap().to_string(),
        c.runtime.query("/supply").unwrap().to_string(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn the_state_read_back_after_a_restart_equals_the_state_before(
        blocks in proptest::collection::vec(proptest::collection::vec(op(), 0..6), 1..6),
    ) {
        let kv = MemKv::default();
        let store = Store::in_memory(&kv);
        store.check_chain(CHAIN, &genesis(funded()).hash()).unwrap();
        let mut stored = Chain::load(genesis(funded()), &store).unwrap();
        // The same chain kept in memory only, as the runtime's own tests run it.
        let mut memory = Chain::load(genesis(funded()), &Store::in_memory(&MemKv::default())).unwrap();
        let mut hashes = vec![stored.runtime.app_hash()];
        for ops in &blocks {
            let txs = sign(&stored, ops);
            let (block, commit, applied) = advance_with(&mut stored, txs.clone(), vec![]);
            stored.store_applied(&store, &block, &commit, &applied, true).unwrap();
            advance_with(&mut memory, txs, vec![]);
            prop_assert_eq!(stored.runtime.app_hash(), memory.runtime.app_hash());
            hashes.push(stored.runtime.app_hash());
        }
        // A restart: only what was flushed, read back.
        kv.crash();
        let before = state_of(&stored);
        let mut loaded = Chain::load(genesis(funded()), &store).unwrap();
        prop_assert_eq!(state_of(&loaded), before);
        prop_assert_eq!(loaded.meta(), stored.meta());
        prop_assert_eq!(loaded.last_block_id(), stored.last_block_id());
        prop_assert_eq!(loaded.last_results_hash, stored.last_results_hash);
        // It goes on exactly as the chain that never stopped.
        let ops = [Op::Transfer { from: 1, to: 2, amount: 7 }];
        let txs = sign(&loaded, &ops);
        advance_with(&mut loaded, txs.clone(), vec![]);
        advance_with(&mut memory, txs, vec![]);
        prop_assert_eq!(loaded.runtime.app_hash(), memory.runtime.app_hash());
        // Every past height's state proves against the app hash it had.
        let first = stored.genesis.initial_height - 1;
        for (i, hash) in hashes.iter().enumerate() {
            let height = first + i as u64;
            let view = store.state_at(height);
            let k = basalt_runtime::state::keys::account(&user(0).public_key().address());
            let value = view.get(&k).unwrap();
            StateProof::build(&view, &k).unwrap().verify(hash, &k, value.as_deref()).unwrap();
        }
    }
}

#[test]
fn a_store_that_lost_its_state_is_refused_not_replayed() {
    let kv = MemKv::default();
    let store = Store::in_memory(&kv);
    let mut c = Chain::load(genesis(funded()), &store).unwrap();
    let (block, commit, applied) = advance_with(&mut c, vec![], vec![]);
    c.store_applied(&store, &block, &commit, &applied, true)
        .unwrap();
    // The state's marker gone (a store torn by hand): the chain will not guess.
    let mut b = crate::kv::KvBatch::default();
    b.remove(b"Mstate");
    crate::kv::Kv::apply(&kv, b).unwrap();
    let Err(err) = Chain::load(genesis(funded()), &store) else {
        panic!("a store without its state marker loaded");
    };
    assert!(err.to_string().contains("inconsistent"), "{err}");
}

#[test]
fn a_first_start_stopped_half_way_starts_over_and_reaches_the_genesis_app_hash() {
    // Two pieces' worth of funded accounts.
    let many: Vec<(Address, u128)> = (0..GENESIS_PIECE as u32 + 5_000)
        .map(|i| {
            let mut a = [7u8; 20];
            a[..4].copy_from_slice(&i.to_le_bytes());
            (Address(a), 1_000 + u128::from(i))
        })
        .collect();
    let g = genesis(many.clone());
    let expected = Runtime::from_genesis(&g).unwrap().0.app_hash();
    let kv = MemKv::default();
    let store = Store::in_memory(&kv);
    store.check_chain(CHAIN, &g.hash()).unwrap();
    // The first start writes its first piece, which reaches the disk, then stops.
    let stopped = Runtime::from_genesis_in_pieces(
        &g,
        Arc::new(store.latest_state()),
        GENESIS_PIECE,
        |piece| {
            store.save_genesis_piece(&piece).unwrap();
            Err(StateError("power cut".into()))
        },
    );
    assert!(stopped.is_err());
    crate::kv::Kv::flush(&kv).unwrap();
    kv.crash();
    assert_eq!(store.state_height().unwrap(), None);
    let some = basalt_runtime::state::keys::account(&many[0].0);
    let partial = many.iter().any(|(a, _)| {
        let k = basalt_runtime::state::keys::account(a);
        store.latest_state().get(&k).unwrap().is_some()
    });
    assert!(partial, "the first piece was not on disk");
    let loaded = Chain::load(g.clone(), &store).unwrap();
    assert_eq!(loaded.runtime.app_hash(), expected);
    assert_eq!(store.state_height().unwrap(), Some(g.initial_height - 1));
    let value = store.latest_state().get(&some).unwrap();
    StateProof::build(&store.latest_state(), &some)
        .unwrap()
        .verify(&expected, &some, value.as_deref())
        .unwrap();
    assert_eq!(loaded.runtime.account(&many[0].0).balance, many[0].1);
}
