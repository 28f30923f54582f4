//! The store: blocks, the index, state versions and pruning.

use super::*;
use basalt_types::{Header, Height, Round, Timestamp};

fn block(h: u64) -> Block {
    Block {
        header: Header {
            chain_id: "c".into(),
            height: Height(h),
            time: Timestamp::default(),
            last_block_id: None,
            last_commit_hash: Hash::default(),
            data_hash: Hash::default(),
            validators_hash: Hash::default(),
            next_validators_hash: Hash::default(),
            consensus_hash: Hash::default(),
            app_hash: Hash::default(),
            last_results_hash: Hash::default(),
            evidence_hash: Hash::default(),
            proposer_address: basalt_types::Address([0; 20]),
        },
        txs: vec![vec![h as u8]],
        evidence: vec![],
        last_commit: None,
    }
}

/// Saves `b` with an empty commit and one outcome per transaction, scheduling a
/// one-validator set.
fn save(s: &Store, b: &Block, outcomes: Vec<TxOutcome>) {
    save_with(s, b, outcomes, vec![]);
}

/// [`save`] with the runtime's state writes for the block.
fn save_with(s: &Store, b: &Block, outcomes: Vec<TxOutcome>, state: StateChanges) {
    with_decided(b, outcomes, state, |d| s.save_block(d).unwrap());
    if s.indexes_txs() {
        while s.index_next(1000).unwrap().is_some() {}
    }
}

/// Runs `f` on `b` decided with an empty commit, `outcomes` and `state`, scheduling a
/// one-validator set.
fn with_decided(
    b: &Block,
    outcomes: Vec<TxOutcome>,
    state: StateChanges,
    f: impl FnOnce(&Decided),
) {
    let h = b.header.height;
    let c = Commit {
        height: h,
        round: Round(0),
        block_id: b.id(),
        signatures: vec![],
    };
    let r = BlockResults {
        height: h.0,
        txs: outcomes,
        app_hash: Hash::default(),
        validator_updates: vec![],
    };
    let k = basalt_types::PrivateKey::from_seed([1; 32]).public_key();
    let set = ValidatorSet::new(vec![basalt_staking::Validator::new(k, 1)]).unwrap();
    let meta = ChainMeta {
        schedule: basalt_staking::ValidatorSchedule::genesis(set),
        last_set: None,
    };
    f(&Decided {
        block: b,
        commit: &c,
        results: &r,
        state: &state,
        meta: &meta,
        events: &[],
    });
}

#[test]
fn blocks_survive_a_reopen_and_the_chain_is_bound_once() {
    let dir = tempfile::tempdir().unwrap();
    let g = Hash::digest(b"genesis");
    {
        let s = Store::open(dir.path()).unwrap();
        s.check_chain("c", &g).unwrap();
        assert_eq!(s.last_height().unwrap(), None);
        for h in [1u64, 2, 300] {
            save(&s, &block(h), vec![TxOutcome::default()]);
        }
    }
    let s = Store::open(dir.path()).unwrap();
    s.check_chain("c", &g).unwrap();
    assert_eq!(
        s.last_height().unwrap(),
        Some(300),
        "ordered by height, not bytes"
    );
    assert_eq!(s.block(2).unwrap().unwrap(), block(2));
    assert!(s.block(3).unwrap().is_none());
    // A larger block comes back whole, and is found by its id.
    let mut big = block(500);
    big.txs = (0..5u8).map(|i| vec![i; 7_000]).collect();
    save(&s, &big, vec![TxOutcome::default(); 5]);
    assert_eq!(s.block(500).unwrap().unwrap(), big);
    assert_eq!(s.height_of(&big.header.hash()).unwrap(), Some(500));
    assert_eq!(s.commit(300).unwrap().unwrap().block_id, block(300).id());
    let rec = s.tx(&basalt_runtime::tx_hash(&[2u8])).unwrap().unwrap();
    assert_eq!(rec.height, 2);
    assert_eq!(s.height_of(&block(1).header.hash()).unwrap(), Some(1));
    assert!(
        s.validator_set(302).unwrap().is_some(),
        "the set of h+2 is kept"
    );
    assert!(s.validator_set(303).unwrap().is_none());
    assert_eq!(s.height_of(&Hash::digest(b"x")).unwrap(), None);
    let err = s.check_chain("other", &g).unwrap_err();
    assert!(err.to_string().contains("belongs to chain \"c\""), "{err}");
}

#[test]
fn the_index_groups_a_block_by_attribute_and_answers_hash_and_height_without_entries() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let outcome = |to: &str| TxOutcome {
        code: 0,
        log: String::new(),
        events: vec![(
            "transfer".into(),
            vec![
                ("recipient".into(), to.into()),
                ("amount".into(), "1".into()),
            ],
        )],
    };
    let mut all = Vec::new();
    for h in 1..=3u64 {
        let mut b = block(h);
        b.txs = (0..4u8).map(|i| vec![h as u8, i]).collect();
        let to = |i: u8| if i.is_multiple_of(2) { "A" } else { "B" };
        save(&s, &b, (0..4u8).map(|i| outcome(to(i))).collect());
        all.extend(b.txs.iter().map(|t| basalt_runtime::tx_hash(t)));
    }
    // One key per (attribute, value, block): 3 blocks × (2 recipients + 1 amount).
    assert_eq!(s.index_scan(&[INDEX], false).unwrap().len(), 9);
    let to_a: Vec<Hash> = all.iter().copied().step_by(2).collect();
    assert_eq!(
        s.txs_with("transfer.recipient", "A").unwrap(),
        to_a,
        "chain order"
    );
    assert_eq!(s.txs_with("transfer.amount", "1").unwrap(), all);
    assert!(s.txs_with("transfer.amount", "10").unwrap().is_empty());
    assert_eq!(s.txs_with("tx.height", "2").unwrap(), all[4..8].to_vec());
    assert!(s.txs_with("tx.height", "9").unwrap().is_empty());
    let h = all[5];
    assert_eq!(s.txs_with("tx.hash", &h.to_hex()).unwrap(), vec![h]);
    // Records are rebuilt from the block and its results.
    let rec = s.tx(&h).unwrap().unwrap();
    assert_eq!((rec.height, rec.index, rec.tx.clone()), (2, 1, vec![2, 1]));
    assert_eq!(rec.events, outcome("B").events);
    let listed: Vec<Hash> = s.all_txs().unwrap().into_iter().map(|(h, _)| h).collect();
    assert_eq!(listed, all, "every transaction, in chain order");
    let some = s.txs(&[all[7], Hash::digest(b"unknown"), all[0]]).unwrap();
    assert_eq!(
        some.iter().map(|(h, _)| *h).collect::<Vec<_>>(),
        vec![all[7], all[0]]
    );
    assert_eq!(
        s.txs_with("tx.hash", &h.to_hex().to_lowercase()).unwrap(),
        vec![h]
    );
    assert!(s.txs_with("tx.hash", "00").unwrap().is_empty());
    assert!(s
        .txs_with("tx.hash", &Hash::digest(b"no").to_hex())
        .unwrap()
        .is_empty());
}

#[test]
fn without_the_index_a_block_writes_no_transaction_records_but_keeps_its_results() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap().without_tx_index();
    assert!(!s.indexes_txs());
    let mut b = block(1);
    b.txs = vec![vec![1], vec![2]];
    let failed = TxOutcome {
        code: 5,
        log: "insufficient funds".into(),
        events: vec![],
    };
    save(&s, &b, vec![TxOutcome::default(), failed.clone()]);
    assert_eq!(s.index_scan(&[TX], false).unwrap().len(), 0);
    assert_eq!(s.index_scan(&[INDEX], false).unwrap().len(), 0);
    assert!(s
        .db
        .seg_list(crate::segments::SegKind::Index)
        .unwrap()
        .is_empty());
    assert!(s.tx(&basalt_runtime::tx_hash(&[2u8])).unwrap().is_none());
    let r = s.results(1).unwrap().unwrap();
    assert_eq!(r.txs[1], failed);
    assert_eq!(s.block(1).unwrap().unwrap(), b);
}

fn transfer_to(to: &str) -> TxOutcome {
    TxOutcome {
        code: 0,
        log: String::new(),
        events: vec![("transfer".into(), vec![("recipient".into(), to.into())])],
    }
}

#[test]
fn pruned_blocks_take_everything_stored_for_them_in_bounded_steps() {
    let s = Store::in_memory(&MemKv::default());
    assert_eq!(s.prune_blocks(5, 10).unwrap(), 0, "nothing stored yet");
    let blocks: Vec<Block> = (1..=10u64)
        .map(|h| {
            let mut b = block(h);
            b.txs = vec![vec![h as u8, 1], vec![h as u8, 2]];
            b
        })
        .collect();
    for b in &blocks {
        let to = format!("R{}", b.header.height.0);
        save(&s, b, vec![transfer_to(&to), transfer_to("all")]);
    }
    assert_eq!(s.earliest_height().unwrap(), Some(1));
    assert_eq!(s.prune_blocks(6, 2).unwrap(), 2, "at most two a step");
    assert_eq!(s.earliest_height().unwrap(), Some(3));
    assert_eq!(s.prune_blocks(6, 100).unwrap(), 3);
    assert_eq!(s.prune_blocks(6, 100).unwrap(), 0, "done");
    assert_eq!(s.earliest_height().unwrap(), Some(6));
    assert_eq!(s.last_height().unwrap(), Some(10));
    for b in &blocks {
        let h = b.header.height.0;
        let kept = h >= 6;
        assert_eq!(s.block(h).unwrap().is_some(), kept, "block {h}");
        assert_eq!(s.commit(h).unwrap().is_some(), kept, "commit {h}");
        assert_eq!(s.results(h).unwrap().is_some(), kept, "results {h}");
        if kept {
            let both = s.block_with_results(h).unwrap().unwrap();
            assert_eq!(
                both,
                (s.block(h).unwrap().unwrap(), s.results(h).unwrap().unwrap())
            );
        } else {
            assert!(s.block_with_results(h).unwrap().is_none(), "pruned {h}");
        }
        assert_eq!(
            s.height_of(&b.header.hash()).unwrap().is_some(),
            kept,
            "id {h}"
        );
        let hash = basalt_runtime::tx_hash(&b.txs[0]);
        assert_eq!(s.tx(&hash).unwrap().is_some(), kept, "tx of {h}");
        let to = format!("R{h}");
        assert_eq!(
            s.txs_with("transfer.recipient", &to).unwrap().len(),
            usize::from(kept)
        );
    }
    assert_eq!(s.validator_set(5).unwrap(), None);
    assert!(s.validator_set(6).unwrap().is_some());
    // The indexer's upkeep drops the pruned heights: one index entry per (attribute, value,
    // block) is left, 5 blocks × 2 recipients.
    while s.index_next(64).unwrap().is_some() {}
    assert_eq!(s.index_scan(&[INDEX], false).unwrap().len(), 10);
    assert_eq!(s.txs_with("transfer.recipient", "all").unwrap().len(), 5);
}

#[test]
fn pruning_state_keeps_every_version_a_retained_height_reads() {
    use basalt_runtime::StateStore;
    let s = Store::in_memory(&MemKv::default());
    let put = |k: &str, v: &str| (k.as_bytes().to_vec(), Some(v.as_bytes().to_vec()));
    for h in 1..=10u64 {
        let mut state = vec![];
        if [1, 3, 5, 8].contains(&h) {
            state.push(put("k", &format!("k@{h}")));
        }
        if h == 2 {
            state.push(put("j", "j@2"));
        }
        if h == 9 {
            state.push((b"j".to_vec(), None));
        }
        save_with(&s, &block(h), vec![TxOutcome::default()], state);
    }
    let read = |h: u64, k: &str| {
        s.state_at(h)
            .get(k.as_bytes())
            .unwrap()
            .map(|v| String::from_utf8(v).unwrap())
    };
    assert_eq!(read(2, "k").as_deref(), Some("k@1"));
    assert_eq!(read(4, "k").as_deref(), Some("k@3"));
    assert_eq!(read(8, "j").as_deref(), Some("j@2"));
    assert_eq!(read(9, "j"), None, "deleted at 9");
    assert_eq!(s.state_height().unwrap(), Some(10));
    assert_eq!(s.earliest_state().unwrap(), 0);
    // Keep heights 6 and up, two heights a step.
    assert_eq!(s.prune_state(6, 2).unwrap(), Some(1));
    assert_eq!(s.earliest_state().unwrap(), 1);
    while s.prune_state(6, 2).unwrap().is_some() {}
    assert_eq!(s.earliest_state().unwrap(), 6);
    for h in 6..=10 {
        let k = if h >= 8 { "k@8" } else { "k@5" };
        assert_eq!(read(h, "k").as_deref(), Some(k), "k at {h}");
        let j = (h < 9).then_some("j@2");
        assert_eq!(read(h, "j").as_deref(), j, "j at {h}");
    }
    // What nothing at 6 or above reads is gone: the undo records of heights 1 to 6.
    for h in 0..=10u64 {
        let undo = s.db.get(&key(b'U', h)).unwrap().is_some();
        assert_eq!(undo, h == 8 || h == 9, "undo record of {h}");
    }
    assert_eq!(
        read(10, "k").as_deref(),
        Some("k@8"),
        "the latest is untouched"
    );
    // Below the earliest height a read is an error, not another height's value.
    let err = s.state_at(3).get(b"k").unwrap_err();
    assert!(
        err.to_string()
            .contains("not available, lowest height is 6"),
        "{err}"
    );
}

#[test]
fn a_height_that_wrote_many_keys_reads_back_through_its_undo_pieces() {
    use basalt_runtime::StateStore;
    let s = Store::in_memory(&MemKv::default());
    let key = |i: u32| format!("key-{i:05}").into_bytes();
    let value = |h: u64, i: u32| Some(format!("{h}:{i}").into_bytes());
    for h in 1..=3u64 {
        // Every key at 1 and 2 (2,000 keys: many pieces), every third one at 3.
        let state: StateChanges = (0..2000u32)
            .filter(|i| h < 3 || i % 3 == 0)
            .map(|i| (key(i), value(h, i)))
            .collect();
        save_with(&s, &block(h), vec![TxOutcome::default()], state);
    }
    let dir: Vec<(Vec<u8>, u32, u32)> = {
        let at = s.db.get(&super::key(b'U', 2)).unwrap().unwrap();
        let (seg, offset, len, dir): (u64, u64, u32, u32) = borsh::from_slice(&at).unwrap();
        let history = crate::segments::SegKind::History;
        let bytes =
            s.db.seg_read(history, seg, offset + u64::from(len - dir), u64::from(dir))
                .unwrap();
        borsh::from_slice(&bytes).unwrap()
    };
    assert!(dir.len() > 5, "pieces: {}", dir.len());
    for i in (0..2000u32).step_by(7) {
        let at = |h: u64| s.state_at(h).get(&key(i)).unwrap();
        assert_eq!(at(1), value(1, i), "key {i} at 1");
        assert_eq!(at(2), value(2, i), "key {i} at 2");
        let now = if i % 3 == 0 { value(3, i) } else { value(2, i) };
        assert_eq!(at(3), now, "key {i} at 3");
        assert_eq!(s.latest_state().get(&key(i)).unwrap(), now);
        assert_eq!(
            s.state_at(0).get(&key(i)).unwrap(),
            None,
            "before any block"
        );
    }
}

mod history;
mod index_runs;
mod tree_log;

#[test]
fn the_indexer_ends_a_run_after_a_bounded_number_of_entries() {
    // Saved without indexing, indexed afterwards as the indexer's thread does.
    let s = Store::in_memory(&MemKv::default()).without_tx_index();
    let tx = |h: u64, i: u32| [h.to_le_bytes().as_slice(), &i.to_le_bytes()].concat();
    for h in 1..=3u64 {
        let mut b = block(h);
        b.txs = (0..40_000u32).map(|i| tx(h, i)).collect();
        save(&s, &b, vec![TxOutcome::default(); 40_000]);
    }
    assert_eq!(
        s.index_next(64).unwrap(),
        Some(2),
        "two blocks: 80,000 entries"
    );
    assert_eq!(s.indexed_height().unwrap(), 2);
    assert_eq!(s.index_next(64).unwrap(), Some(3));
    assert_eq!(s.index_next(64).unwrap(), None, "nothing left");
    for (h, i) in [(1u64, 0u32), (2, 25_000), (3, 39_999)] {
        let found = s.tx(&basalt_runtime::tx_hash(&tx(h, i))).unwrap().unwrap();
        assert_eq!((found.height, found.index), (h, i));
    }
}

#[test]
fn block_events_are_kept_for_the_blocks_that_have_them_and_pruned_with_them() {
    let s = Store::in_memory(&MemKv::default());
    let slash = |who: &str| {
        vec![(
            "slash".to_string(),
            vec![("address".to_string(), who.to_string())],
        )]
    };
    for h in 1..=8u64 {
        let events = match h {
            3 => slash("A"),
            7 => slash("B"),
            _ => vec![],
        };
        with_decided(&block(h), vec![], vec![], |d| {
            s.save_block(&Decided {
                events: &events,
                ..*d
            })
            .unwrap()
        });
    }
    assert_eq!(s.block_events(3).unwrap(), slash("A"));
    assert!(s.block_events(4).unwrap().is_empty());
    let heights = |from, to| -> Vec<u64> {
        let found = s.blocks_with_events(from, to).unwrap();
        found.into_iter().map(|(h, _)| h).collect()
    };
    assert_eq!(heights(1, 8), [3, 7]);
    assert_eq!(heights(4, 8), [7]);
    assert_eq!(heights(4, 6), Vec::<u64>::new());
    s.prune_blocks(5, 100).unwrap();
    assert!(
        s.block_events(3).unwrap().is_empty(),
        "pruned with its block"
    );
    assert_eq!(heights(1, 8), [7]);
}
