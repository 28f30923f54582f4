//! The transaction index's sorted runs: merges by level keep every transaction findable,
//! pruned heights leave the index and its files, and a power cut anywhere in an indexing
//! or merging step loses nothing once the store reopens.

use super::*;
use crate::segments::SegKind::Index;

/// Block `h` with three transfers; the recipient cycles through five names.
fn indexed_block(h: u64) -> (Block, Vec<TxOutcome>) {
    let mut b = block(h);
    b.txs = (0..3u8)
        .map(|i| [h.to_be_bytes().as_slice(), &[i]].concat())
        .collect();
    let to = format!("R{}", h % 5);
    (
        b,
        vec![transfer_to(&to), transfer_to(&to), transfer_to("all")],
    )
}

/// Saves (and indexes) blocks 1 to `n` of [`indexed_block`].
fn save_indexed(s: &Store, n: u64) -> Vec<Block> {
    (1..=n)
        .map(|h| {
            let (b, outcomes) = indexed_block(h);
            save(s, &b, outcomes);
            b
        })
        .collect()
}

/// Every transaction of `blocks` is found at its place, and each recipient's list is the
/// chain-ordered list of its transactions.
fn assert_all_found(s: &Store, blocks: &[Block]) {
    for b in blocks {
        for (i, tx) in b.txs.iter().enumerate() {
            let rec = s.tx(&basalt_runtime::tx_hash(tx)).unwrap();
            let rec = rec.unwrap_or_else(|| panic!("tx {i} of {} lost", b.header.height.0));
            assert_eq!((rec.height, rec.index), (b.header.height.0, i as u32));
        }
    }
    for r in 0..5u64 {
        let want: Vec<Hash> = blocks
            .iter()
            .filter(|b| b.header.height.0 % 5 == r)
            .flat_map(|b| b.txs[..2].iter().map(|t| basalt_runtime::tx_hash(t)))
            .collect();
        assert_eq!(
            s.txs_with("transfer.recipient", &format!("R{r}")).unwrap(),
            want
        );
    }
    assert_eq!(
        s.txs_with("transfer.recipient", "all").unwrap().len(),
        blocks.len()
    );
}

/// The run files on disk are exactly the recorded runs.
fn assert_no_stray_files(s: &Store) {
    let files: Vec<u64> = s.db.seg_list(Index).unwrap().iter().map(|f| f.0).collect();
    assert_eq!(files.len(), s.index_run_shapes().len(), "{files:?}");
}

#[test]
fn runs_merge_by_level_and_every_transaction_stays_findable() {
    let s = Store::in_memory(&MemKv::default());
    let blocks = save_indexed(&s, 80);
    // One run a block: 80 level-0 runs merged 8 at a time into 10 of level 1, 8 of those
    // into one of level 2.
    let shapes = s.index_run_shapes();
    let levels: Vec<u8> = shapes.iter().map(|r| r.0).collect();
    assert_eq!(levels, vec![2, 1, 1], "{shapes:?}");
    assert_eq!(
        (shapes[0].1, shapes[0].2),
        (1, 64),
        "heights of the level-2 run"
    );
    let entries: u64 = shapes.iter().map(|r| r.3).sum();
    assert_eq!(
        entries,
        80 * (3 + 2),
        "a location per tx, two recipients per block"
    );
    assert_all_found(&s, &blocks);
    assert_no_stray_files(&s);
}

#[test]
fn pruned_heights_leave_the_index_and_its_files_shrink() {
    let s = Store::in_memory(&MemKv::default());
    let blocks = save_indexed(&s, 80);
    let before = s.index_bytes().unwrap();
    assert_eq!(s.prune_blocks(71, 100).unwrap(), 70);
    while s.index_next(64).unwrap().is_some() {}
    // The level-2 run (heights 1-64) went whole; of the level-1 runs 65-72 and 73-80 the
    // first, mostly pruned, was rewritten with its heights 71-72 only.
    let shapes = s.index_run_shapes();
    let spans: Vec<(u64, u64)> = shapes.iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(spans, vec![(73, 80), (71, 72)], "{shapes:?}");
    let after = s.index_bytes().unwrap();
    assert!(after * 4 < before, "{after} of {before} bytes left");
    assert_no_stray_files(&s);
    assert_all_found(&s, &blocks[70..]);
    for b in &blocks[..70] {
        assert!(s.tx(&basalt_runtime::tx_hash(&b.txs[0])).unwrap().is_none());
    }
    assert_eq!(s.txs_with("transfer.recipient", "all").unwrap().len(), 10);
    // Entries of heights pruned since the last upkeep are not answered either.
    assert_eq!(s.prune_blocks(75, 100).unwrap(), 4);
    assert_eq!(s.txs_with("transfer.recipient", "all").unwrap().len(), 6);
    assert_eq!(s.txs_with("transfer.recipient", "R0").unwrap().len(), 4);
    assert!(s
        .tx(&basalt_runtime::tx_hash(&blocks[72].txs[0]))
        .unwrap()
        .is_none());
    assert_eq!(s.all_tx_hashes().unwrap().len(), 18);
}

#[test]
fn a_power_cut_anywhere_in_indexing_or_merging_loses_nothing() {
    let mut cuts_that_hit = 0;
    for cut in 0..40u32 {
        let kv = MemKv::default();
        let s = Store::in_memory(&kv);
        let plain = Store::in_memory(&kv).without_tx_index();
        let mut blocks = Vec::new();
        for h in 1..=10 {
            let (b, outcomes) = indexed_block(h);
            // Seven blocks indexed one run each; three left for the step under test.
            save(if h <= 7 { &s } else { &plain }, &b, outcomes);
            blocks.push(b);
        }
        kv.flush().unwrap();
        // Indexes 8-10 as an eighth level-0 run, then merges the eight.
        kv.cut_power_at_write(cut);
        while let Ok(Some(_)) = s.index_next(64) {}
        if kv.power_cut() {
            cuts_that_hit += 1;
        }
        kv.crash();
        let s = Store::in_memory(&kv);
        s.recover_segments().unwrap();
        assert_no_stray_files(&s);
        while s.index_next(64).unwrap().is_some() {}
        assert_all_found(&s, &blocks);
        assert_no_stray_files(&s);
        assert_eq!(s.index_run_shapes().len(), 1, "cut {cut}: merged once done");
    }
    // The step writes 9 times (the new run's block, directory, sync and batch; the merged
    // run's block, directory, sync, batch and flush): every one was a cut point, and the
    // later cuts found the step done.
    assert!(
        (9..40).contains(&cuts_that_hit),
        "cuts that landed in the step: {cuts_that_hit}"
    );
}

#[test]
fn a_recorded_run_whose_file_is_gone_makes_the_index_rebuild_from_the_blocks() {
    let kv = MemKv::default();
    let s = Store::in_memory(&kv);
    let blocks = save_indexed(&s, 12);
    // What sled losing the tail of its log after a merge leaves: runs recorded whose
    // files the merge deleted.
    let gone = s.db.seg_list(Index).unwrap()[0].0;
    s.db.seg_remove(Index, gone).unwrap();
    let s = Store::in_memory(&kv);
    s.recover_segments().unwrap();
    assert_eq!(s.indexed_height().unwrap(), 0, "the index starts over");
    assert_no_stray_files(&s);
    while s.index_next(64).unwrap().is_some() {}
    assert_eq!(s.indexed_height().unwrap(), 12);
    assert_all_found(&s, &blocks);
}
