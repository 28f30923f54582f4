use super::*;
use basalt_genesis::Genesis;
use basalt_runtime::{BlockContext, Msg, TxBody};
use basalt_types::PrivateKey;

const CHAIN: &str = "mempool-test";

fn key(i: u8) -> PrivateKey {
    PrivateKey::from_seed([i; 32])
}

fn runtime() -> Runtime {
    let v = key(100);
    let g = Genesis::generate(
        CHAIN,
        "2026-01-01T00:00:00Z",
        vec![(
            v.public_key(),
            key(101).public_key(),
            10_000_000,
            "v".into(),
        )],
        (1..=3)
            .map(|i| (key(i).public_key().address(), 1_000_000))
            .collect(),
    )
    .unwrap();
    Runtime::from_genesis(&g).unwrap().0
}

fn transfer(from: u8, nonce: u64, amount: u128) -> Vec<u8> {
    TxBody {
        chain_id: CHAIN.into(),
        nonce,
        fee: 10,
        msg: Msg::Transfer {
            to: key(9).public_key().address(),
            amount,
        },
    }
    .sign(&key(from))
    .to_bytes()
}

#[test]
fn back_to_back_nonces_are_admitted_and_reaped_in_order() {
    let rt = runtime();
    let mut m = Mempool::new(100, 1 << 20);
    let sender = key(1).public_key().address();
    assert_eq!(m.next_nonce(&rt, &sender), 0);
    for n in 0..3 {
        let (r, _) = m.add(&rt, transfer(1, n, 5), false);
        assert_eq!(r.code, 0, "{}", r.log);
    }
    assert_eq!(m.next_nonce(&rt, &sender), 3);
    // A gap beyond what may wait is refused with its own code; a replay by check_tx.
    let (far, _) = m.add(&rt, transfer(1, 3 + MAX_NONCE_GAP + 1, 5), false);
    assert_eq!(far.code, CODE_NONCE_GAP);
    assert!(far.log.contains("next nonce 3"), "{}", far.log);
    assert_ne!(m.add(&rt, transfer(1, 1, 6), false).0.code, 0);
    // The same bytes twice: a duplicate.
    let (dup, _) = m.add(&rt, transfer(1, 2, 5), false);
    assert_eq!(dup.code, CODE_DUPLICATE);
    m.add(&rt, transfer(2, 0, 5), false);
    let reaped = m.reap(10, 1 << 20);
    assert_eq!(reaped.len(), 4);
    let nonces: Vec<u64> = reaped
        .iter()
        .map(|b| SignedTx::decode(b).unwrap())
        .filter(|t| t.sender() == sender)
        .map(|t| t.body.nonce)
        .collect();
    assert_eq!(nonces, vec![0, 1, 2]);
    // Limits are respected.
    assert_eq!(m.reap(2, 1 << 20).len(), 2);
    assert_eq!(m.reap(10, reaped[0].len()).len(), 1);
}

#[test]
fn bounded_by_count_and_bytes() {
    let rt = runtime();
    let mut m = Mempool::new(2, 1 << 20);
    assert_eq!(m.add(&rt, transfer(1, 0, 1), false).0.code, 0);
    assert_eq!(m.add(&rt, transfer(2, 0, 1), false).0.code, 0);
    assert_eq!(m.add(&rt, transfer(3, 0, 1), false).0.code, CODE_FULL);
    let tx = transfer(1, 1, 1);
    let mut small = Mempool::new(100, tx.len() - 1);
    assert_eq!(small.add(&rt, tx, false).0.code, CODE_FULL);
    assert_eq!(small.size_bytes(), 0);
}

#[test]
fn committed_txs_leave_and_the_rest_is_rechecked() {
    let mut rt = runtime();
    let mut m = Mempool::new(100, 1 << 20);
    let a0 = transfer(1, 0, 5);
    let a1 = transfer(1, 1, 5);
    // Sender 2 spends almost everything in its second transaction.
    let b0 = transfer(2, 0, 5);
    let b1 = transfer(2, 1, 999_000);
    for t in [&a0, &a1, &b0, &b1] {
        assert_eq!(m.add(&rt, t.clone(), false).0.code, 0);
    }
    // A block from elsewhere commits a0 and a conflicting spend of sender 2 with nonce 0.
    let other_b0 = transfer(2, 0, 900_000);
    let ctx = BlockContext {
        height: 1,
        ..Default::default()
    };
    rt.execute_block(&ctx, &[a0.clone(), other_b0.clone()])
        .unwrap();
    m.update(&rt, &[a0.clone(), other_b0]);
    // a1 stays; b0 is stale (nonce used) and b1 now lacks funds and nonce order.
    assert_eq!(m.len(), 1);
    assert_eq!(m.reap(10, 1 << 20), vec![a1]);
    // A committed transaction is remembered and not admitted again.
    assert_eq!(m.add(&rt, a0, false).0.code, CODE_DUPLICATE);
}

#[test]
fn a_checked_signature_skips_only_the_signature_check() {
    let rt = runtime();
    let mut m = Mempool::new(100, 1 << 20);
    let good = transfer(1, 0, 5);
    let mut forged = transfer(2, 0, 5);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    // Unchecked, the forged signature is refused; the caller's verdict is what lets it by,
    // which is why only this node's own verification may set it.
    assert_ne!(m.add(&rt, forged.clone(), false).0.code, 0);
    assert!(crate::sigcheck::all_valid(std::slice::from_ref(&good)));
    assert!(!crate::sigcheck::all_valid(std::slice::from_ref(&forged)));
    assert_eq!(m.add(&rt, good, true).0.code, 0);
    // Everything else is still checked: a wrong nonce, a wrong chain.
    assert_ne!(m.add(&rt, transfer(3, 40, 5), true).0.code, 0);
    let other_chain = TxBody {
        chain_id: "other".into(),
        nonce: 0,
        fee: 10,
        msg: Msg::Transfer {
            to: key(9).public_key().address(),
            amount: 5,
        },
    }
    .sign(&key(3))
    .to_bytes();
    assert_ne!(m.add(&rt, other_chain, true).0.code, 0);
    assert_eq!(m.len(), 1);
}

/// The sender's transactions in a reaped batch, as nonces.
fn nonces_of(txs: &[Vec<u8>], from: u8) -> Vec<u64> {
    let sender = key(from).public_key().address();
    txs.iter()
        .map(|b| SignedTx::decode(b).unwrap())
        .filter(|t| t.sender() == sender)
        .map(|t| t.body.nonce)
        .collect()
}

#[test]
fn a_transaction_ahead_of_its_nonce_waits_until_the_gap_fills() {
    let rt = runtime();
    let mut m = Mempool::new(100, 1 << 20);
    // Nonces 3, 1, 2 arrive before 0 (as through four different nodes).
    for n in [3u64, 1, 2] {
        let (r, _) = m.add(&rt, transfer(1, n, 5), false);
        assert_eq!(r.code, 0, "nonce {n}: {}", r.log);
    }
    assert_eq!((m.len(), m.waiting()), (0, 3));
    assert!(
        m.reap(10, 1 << 20).is_empty(),
        "nothing can go in before nonce 0"
    );
    // The same waiting transaction again is a duplicate; another one with a waiting nonce too.
    assert_eq!(m.add(&rt, transfer(1, 2, 5), false).0.code, CODE_DUPLICATE);
    assert_eq!(m.add(&rt, transfer(1, 2, 6), false).0.code, CODE_DUPLICATE);
    assert_eq!(m.add(&rt, transfer(1, 0, 5), false).0.code, 0);
    assert_eq!((m.len(), m.waiting()), (4, 0));
    assert_eq!(nonces_of(&m.reap(10, 1 << 20), 1), vec![0, 1, 2, 3]);
    let sender = key(1).public_key().address();
    assert_eq!(m.next_nonce(&rt, &sender), 4);
}

#[test]
fn waiting_transactions_expire_leave_when_overtaken_and_count_in_the_limits() {
    let mut rt = runtime();
    let mut m = Mempool::new(3, 1 << 20);
    let late = transfer(1, 2, 5);
    assert_eq!(m.add(&rt, late.clone(), false).0.code, 0);
    assert_eq!(m.add(&rt, transfer(2, 1, 5), false).0.code, 0);
    assert_eq!(m.add(&rt, transfer(3, 0, 5), false).0.code, 0);
    assert_eq!(m.add(&rt, transfer(3, 1, 5), false).0.code, CODE_FULL);
    // Sender 2's nonce 0 is committed by a block from elsewhere: its nonce 1 moves up.
    let b0 = transfer(2, 0, 5);
    let ctx = BlockContext {
        height: 1,
        ..Default::default()
    };
    rt.execute_block(&ctx, std::slice::from_ref(&b0)).unwrap();
    m.update(&rt, &[b0]);
    assert_eq!((m.len(), m.waiting()), (2, 1));
    // Sender 1's nonce 2 waits for 0 and 1, which never come: it expires once more than
    // WAIT_BLOCKS blocks (the one above included) have passed.
    for _ in 1..WAIT_BLOCKS {
        m.update(&rt, &[]);
    }
    assert_eq!(m.waiting(), 1, "still within its time");
    m.update(&rt, &[]);
    assert_eq!(m.waiting(), 0, "expired");
    assert!(!m.contains(&basalt_runtime::tx_hash(&late)));
    assert_eq!(m.len(), 2);
    let before = m.size_bytes();
    assert_eq!(
        before,
        m.reap(10, 1 << 20).iter().map(Vec::len).sum::<usize>()
    );
}
