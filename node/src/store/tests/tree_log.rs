//! The Merkle tree's values in the compacted tree log: the files stay bounded however
//! often the values are rewritten, every height reads its own values through compactions,
//! and a crash before an emptied segment's deletion loses nothing.

use super::*;
use crate::segments::SegKind::Tree;
use basalt_runtime::state::keys;
use basalt_runtime::StateStore;

/// 200 tree buckets of 4 KB, all rewritten at every height (~0.8 MB a height), plus one
/// account-like key that stays in sled.
fn changes(h: u64) -> StateChanges {
    let mut out: StateChanges = (0..200usize)
        .map(|b| {
            let mut v = vec![h as u8; 4096];
            v[..8].copy_from_slice(&(b as u64).to_be_bytes());
            (keys::bucket(b).to_vec(), Some(v))
        })
        .collect();
    out.push((b"a-plain-key".to_vec(), Some(h.to_be_bytes().to_vec())));
    out
}

fn bucket_at(s: &Store, h: u64, b: usize) -> Option<Vec<u8>> {
    s.state_at(h).get(&keys::bucket(b)).unwrap()
}

/// Bytes in the tree log's files.
fn tree_files(s: &Store) -> u64 {
    s.db.seg_list(Tree)
        .unwrap()
        .iter()
        .map(|(_, len)| len)
        .sum()
}

#[test]
fn rewritten_tree_values_keep_the_files_bounded_and_every_height_reads_its_own() {
    let s = Store::in_memory(&MemKv::default());
    let mut most = 0u64;
    for h in 1..=150u64 {
        save_with(&s, &block(h), vec![TxOutcome::default()], changes(h));
        most = most.max(tree_files(&s));
    }
    let (live, files) = s.tree_log_bytes().unwrap();
    let written = 150 * 200 * 4_110u64;
    assert!(live > 800_000 && live < 900_000, "live {live}");
    // Without compaction the files would hold all 123 MB written.
    assert!(
        most < 2 * live + 16 * 1_048_576 + 9 * 1_048_576,
        "files reached {most} bytes for {live} live ({written} written)"
    );
    assert_eq!(files, tree_files(&s));
    assert!(
        s.db.seg_list(Tree).unwrap()[0].0 > 1,
        "the first segments were compacted away"
    );
    // The latest values, and every older height's, read right.
    for h in [1u64, 2, 77, 149, 150] {
        for b in [0usize, 99, 199] {
            let v = bucket_at(&s, h, b).unwrap();
            assert_eq!((v[8], &v[..8]), (h as u8, &(b as u64).to_be_bytes()[..]));
        }
    }
    let latest = s.latest_state();
    assert_eq!(latest.get(&keys::bucket(5)).unwrap().unwrap()[8], 150);
    assert_eq!(latest.get(&keys::bucket(500)).unwrap(), None);
    // A deleted value is gone from the latest state, kept at older heights.
    let mut del = changes(151);
    del[3].1 = None;
    save_with(&s, &block(151), vec![TxOutcome::default()], del);
    assert_eq!(bucket_at(&s, 151, 3), None);
    assert_eq!(bucket_at(&s, 150, 3).unwrap()[8], 150);
    assert!(s.usage_mib().unwrap()["state tree"] > 0.0);
}

#[test]
fn a_crash_before_the_emptied_segment_is_deleted_loses_nothing() {
    let kv = MemKv::default();
    let s = Store::in_memory(&kv);
    let mut h = 0;
    // Until a compaction has emptied a segment (its file goes at the next flush).
    while s.tree_garbage.lock().unwrap().is_empty() {
        h += 1;
        assert!(h < 200, "no compaction");
        save_without_flush(&s, h);
    }
    let before = s.db.seg_list(Tree).unwrap();
    // The power goes out before any flush: the unflushed batches are lost, the emptied
    // file is still there, and the copies appended past the recorded end are cut off.
    kv.crash();
    let s = Store::in_memory(&kv);
    s.recover_segments().unwrap();
    let stored = s.state_height().unwrap().unwrap();
    assert!(stored < h, "the unflushed heights are lost");
    assert!(s.db.seg_list(Tree).unwrap().len() <= before.len());
    for b in [0usize, 100, 199] {
        assert_eq!(bucket_at(&s, stored, b).unwrap()[8], stored as u8);
    }
    // The chain goes on; a flushed compaction deletes its segment, and the next start
    // finds nothing left to delete.
    for h in stored + 1..=stored + 60 {
        save_with(&s, &block(h), vec![TxOutcome::default()], changes(h));
    }
    let after = s.db.seg_list(Tree).unwrap();
    assert!(after[0].0 > before[0].0, "{before:?} → {after:?}");
    kv.crash();
    let s = Store::in_memory(&kv);
    s.recover_segments().unwrap();
    assert_eq!(s.db.seg_list(Tree).unwrap(), after);
    assert_eq!(
        bucket_at(&s, stored + 60, 42).unwrap()[8],
        (stored + 60) as u8
    );
}

/// Height `h` saved, its batch applied but not flushed; every tenth height is flushed
/// until a compaction empties a segment.
fn save_without_flush(s: &Store, h: u64) {
    with_decided(&block(h), vec![TxOutcome::default()], changes(h), |d| {
        s.save_block_unflushed(d).unwrap()
    });
    if h.is_multiple_of(10) && s.tree_garbage.lock().unwrap().is_empty() {
        s.flush().unwrap();
    }
}
