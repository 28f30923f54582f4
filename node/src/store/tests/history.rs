//! The state history in segment files: rotation, pruning whole files, and recovery from a
//! crash between a record's append and the batch that records it.

use super::*;
use crate::segments::SegKind::History;
use basalt_runtime::StateStore;

/// 300 keys of 100 bytes each: a ~33 KB undo record per height.
fn changes(h: u64) -> StateChanges {
    (0..300u32)
        .map(|i| {
            let mut v = vec![h as u8; 100];
            v[..4].copy_from_slice(&i.to_be_bytes());
            (format!("key-{i:04}").into_bytes(), Some(v))
        })
        .collect()
}

fn value_at(s: &Store, h: u64, i: u32) -> Option<Vec<u8>> {
    s.state_at(h).get(format!("key-{i:04}").as_bytes()).unwrap()
}

#[test]
fn segments_rotate_and_pruning_deletes_whole_files() {
    let s = Store::in_memory(&MemKv::default());
    // ~33 KB a height: a 16 MiB segment holds ~500 heights.
    for h in 1..=1_200u64 {
        save_with(&s, &block(h), vec![TxOutcome::default()], changes(h));
    }
    let before = s.db.seg_list(History).unwrap();
    assert!(before.len() >= 3, "segments: {before:?}");
    assert_eq!(
        before[0].0, 1,
        "the first segment starts at the first block"
    );
    assert!(before.iter().all(|(_, len)| *len <= SEGMENT_LIMIT_BYTES));
    // Keep 1,100 and up: every segment that ends at or below 1,100 goes.
    while s.prune_state(1_100, 250).unwrap().is_some() {}
    let after = s.db.seg_list(History).unwrap();
    assert!(after.len() < before.len(), "{before:?} → {after:?}");
    let first_kept = after[0].0;
    assert!(
        first_kept <= 1_101,
        "height 1,101's record is kept: {after:?}"
    );
    assert!(
        before.iter().any(|(seg, _)| *seg < first_kept),
        "something was deleted"
    );
    // Every retained height still reads its own values.
    for h in [1_100u64, 1_101, 1_150, 1_199, 1_200] {
        for i in [0u32, 150, 299] {
            let v = value_at(&s, h, i).unwrap();
            assert_eq!(v[4], h as u8, "key {i} at {h}");
        }
    }
    assert!(s.state_at(1_000).get(b"key-0000").is_err(), "pruned");
    assert!(s.usage_mib().unwrap()["state history"] > 0.0);
}

/// The store's segment size limit, as a test sees it.
const SEGMENT_LIMIT_BYTES: u64 = 16 * 1024 * 1024 + 64 * 1024;

#[test]
fn a_crash_between_append_and_batch_is_cut_off_at_the_next_start() {
    let kv = MemKv::default();
    let s = Store::in_memory(&kv);
    for h in 1..=3u64 {
        save_with(&s, &block(h), vec![TxOutcome::default()], changes(h));
    }
    let recorded = s.db.seg_list(History).unwrap();
    // Height 4's record reached the file, its batch did not (the power went out between),
    // and a half-written segment of a later height exists too.
    s.db.seg_append(History, recorded[0].0, b"height 4, never recorded")
        .unwrap();
    s.db.seg_sync(History, recorded[0].0).unwrap();
    s.db.seg_append(History, 9, b"a segment nobody recorded")
        .unwrap();
    s.db.seg_sync(History, 9).unwrap();
    kv.crash();
    let s = Store::in_memory(&kv);
    s.recover_segments().unwrap();
    assert_eq!(
        s.db.seg_list(History).unwrap(),
        recorded,
        "back to what the store recorded"
    );
    // The chain goes on from there and every height reads right.
    save_with(&s, &block(4), vec![TxOutcome::default()], changes(4));
    for h in 1..=4u64 {
        assert_eq!(value_at(&s, h, 7).unwrap()[4], h as u8, "at {h}");
    }
    // A history shorter than recorded is corrupt, said so.
    let (seg, len) = s.db.seg_list(History).unwrap()[0];
    s.db.seg_truncate(History, seg, len - 1).unwrap();
    let err = s.recover_segments().unwrap_err().to_string();
    assert!(err.contains("history segment"), "{err}");
}

#[test]
fn blocks_live_in_segments_that_block_pruning_frees() {
    use crate::segments::SegKind::Blocks;
    let kv = MemKv::default();
    let s = Store::in_memory(&kv);
    // 1 MiB blocks: a 32 MiB segment holds ~32 of them.
    let big = |h: u64| {
        let mut b = block(h);
        b.txs = vec![vec![h as u8; 1024 * 1024]];
        b
    };
    for h in 1..=100u64 {
        save(&s, &big(h), vec![TxOutcome::default()]);
    }
    let before = s.db.seg_list(Blocks).unwrap();
    assert!(before.len() >= 3, "segments: {before:?}");
    assert_eq!(s.block(57).unwrap().unwrap(), big(57));
    assert_eq!(s.results(57).unwrap().unwrap().height, 57);
    while s.prune_blocks(80, 7).unwrap() > 0 {}
    assert_eq!(s.earliest_height().unwrap(), Some(80));
    let after = s.db.seg_list(Blocks).unwrap();
    assert!(after.len() < before.len(), "{before:?} → {after:?}");
    assert!(after[0].0 <= 80, "height 80 is kept: {after:?}");
    assert_eq!(s.block(80).unwrap().unwrap(), big(80));
    assert_eq!(s.block(79).unwrap(), None, "pruned");
    // A block appended whose batch was lost: cut off, and the next block goes after 100.
    let (last, _) = *after.last().unwrap();
    s.db.seg_append(Blocks, last, b"a block never recorded")
        .unwrap();
    s.db.seg_sync(Blocks, last).unwrap();
    kv.crash();
    let s = Store::in_memory(&kv);
    s.recover_segments().unwrap();
    assert_eq!(s.db.seg_list(Blocks).unwrap(), after);
    save(&s, &big(101), vec![TxOutcome::default()]);
    assert_eq!(s.block(101).unwrap().unwrap(), big(101));
    assert_eq!(s.block(100).unwrap().unwrap(), big(100));
}
