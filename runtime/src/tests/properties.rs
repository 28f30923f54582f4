//! Property tests over random transaction sequences.

use super::*;
use crate::runtime::Signatures;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Transfer {
        from: usize,
        to: usize,
        amount: u128,
        fee: u128,
    },
    Delegate {
        from: usize,
        validator: usize,
        amount: u128,
    },
    Undelegate {
        from: usize,
        validator: usize,
        amount: u128,
    },
    BadSignature {
        from: usize,
    },
    WrongNonce {
        from: usize,
        skip: u64,
    },
    Garbage(Vec<u8>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4usize, 0..5usize, 0..30_000_000u128, 0..3u128).prop_map(|(from, to, amount, fee)| Op::Transfer { from, to, amount, fee }),
        2 => (0..4usize, 0..3usize, 0..20_000_000u128).prop_map(|(from, validator, amount)| Op::Delegate { from, validator, amount }),
        2 => (0..4usize, 0..3usize, 0..20_000_000u128).prop_map(|(from, validator, amount)| Op::Undelegate { from, validator, amount }),
        1 => (0..4usize).prop_map(|from| Op::BadSignature { from }),
        1 => (0..4usize, 1..3u64).prop_map(|(from, skip)| Op::WrongNonce { from, skip }),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Op::Garbage),
    ]
}

fn encode(c: &Chain, op: &Op, pending: &mut [u64; 5]) -> Vec<u8> {
    let user = |i: usize| c.users[i].clone();
    let mut next = |i: usize| {
        let n = pending[i];
        pending[i] += 1;
        n
    };
    match op {
        Op::Transfer {
            from,
            to,
            amount,
            fee,
        } => {
            let to = Chain::addr(&c.users[*to % c.users.len()]);
            c.tx(
                &user(*from),
                next(*from),
                *fee,
                Msg::Transfer {
                    to,
                    amount: *amount,
                },
            )
        }
        Op::Delegate {
            from,
            validator,
            amount,
        } => {
            let v = Chain::addr(&c.operators[*validator]);
            c.tx(
                &user(*from),
                next(*from),
                1,
                Msg::Delegate {
                    validator: v,
                    amount: *amount,
                },
            )
        }
        Op::Undelegate {
            from,
            validator,
            amount,
        } => {
            let v = Chain::addr(&c.operators[*validator]);
            c.tx(
                &user(*from),
                next(*from),
                1,
                Msg::Undelegate {
                    validator: v,
                    amount: *amount,
                },
            )
        }
        Op::BadSignature { from } => {
            let mut t =
                crate::SignedTx::decode(&c.tx(&user(*from), pending[*from], 1, Msg::Unjail))
                    .unwrap();
            t.signature = c.users[(*from + 1) % 4].sign(b"x");
            t.to_bytes()
        }
        Op::WrongNonce { from, skip } => c.tx(
            &user(*from),
            pending[*from] + skip,
            1,
            Msg::Transfer {
                to: Chain::addr(&c.users[0]),
                amount: 1,
            },
        ),
        Op::Garbage(bytes) => bytes.clone(),
    }
}

fn new_chain() -> Chain {
    Chain::new(&[10, 10, 10], 4, 40 * M, |p| {
        p.unbonding_period = 3;
        p.block_reward = 1_000;
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Supply = genesis + minted − burned at every height (checked inside `block`), no
    /// balance ever goes negative (u128 arithmetic would panic), and two runtimes fed the same
    /// blocks reach the same app hash at every height.
    #[test]
    fn supply_is_conserved_and_replicas_agree(blocks in prop::collection::vec(prop::collection::vec(op(), 0..6), 1..12)) {
        let mut a = new_chain();
        let mut b = new_chain();
        for ops in &blocks {
            let mut pending = [0u64; 5];
            for (i, u) in a.users.iter().enumerate() {
                pending[i] = a.rt.account(&Chain::addr(u)).nonce;
            }
            let txs: Vec<Vec<u8>> = ops.iter().map(|o| encode(&a, o, &mut pending)).collect();
            let ra = a.block(txs.clone());
            let rb = b.block(txs);
            prop_assert_eq!(ra.app_hash, rb.app_hash);
            prop_assert_eq!(
                ra.tx_results.iter().map(|r| r.code).collect::<Vec<_>>(),
                rb.tx_results.iter().map(|r| r.code).collect::<Vec<_>>()
            );
        }
    }

    /// A failed transaction changes nothing but its fee (and the sender's nonce); one refused
    /// before the fee (bad encoding, chain, signature, nonce, unpayable fee) changes nothing.
    #[test]
    fn a_failed_transaction_changes_only_the_fee(setup in prop::collection::vec(op(), 0..8), probe in op()) {
        let mut c = new_chain();
        let mut pending = [0u64; 5];
        let txs: Vec<Vec<u8>> = setup.iter().map(|o| encode(&c, o, &mut pending)).collect();
        c.block(txs);
        let mut pending = [0u64; 5];
        for (i, u) in c.users.iter().enumerate() {
            pending[i] = c.rt.account(&Chain::addr(u)).nonce;
        }
        let bytes = encode(&c, &probe, &mut pending);
        let before = c.rt.clone();
        let height = c.rt.height() + 1;
        let result = c.rt.deliver_tx(&bytes, height, Signatures::Verify);
        if result.is_ok() {
            return Ok(());
        }
        let after = &c.rt;
        prop_assert_eq!(&after.staking, &before.staking);
        if result.code <= 7 {
            prop_assert_eq!(after.memory_accounts(), before.memory_accounts(), "refused before the fee: code {}", result.code);
            prop_assert_eq!(after.supply, before.supply);
        } else {
            let tx = crate::SignedTx::decode(&bytes).unwrap();
            let sender = tx.sender();
            let mut expected = before.memory_accounts();
            let acct = expected.get_mut(&sender).unwrap();
            acct.balance -= tx.body.fee;
            acct.nonce += 1;
            prop_assert_eq!(after.memory_accounts(), expected);
            prop_assert_eq!(after.supply.fee_pool, before.supply.fee_pool + tx.body.fee);
        }
    }

    /// The app hash changes when any single account changes.
    #[test]
    fn the_app_hash_commits_to_every_account(who in 0..4usize, delta in 1..1000u128) {
        let mut c = new_chain();
        c.block(vec![]);
        let before = c.rt.app_hash();
        let addr = Chain::addr(&c.users[who]);
        let mut changed = c.rt.clone();
        changed.account_mut(addr).balance += delta;
        let after = changed.commit().unwrap();
        prop_assert_ne!(after, before);
        // Nonce alone also counts.
        let mut changed = c.rt.clone();
        changed.account_mut(addr).nonce += 1;
        prop_assert_ne!(changed.commit().unwrap(), before);
        // And an unchanged state commits to the same hash.
        let mut same = c.rt.clone();
        prop_assert_eq!(same.commit().unwrap(), before);
    }
}
