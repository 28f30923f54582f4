//! State sync end to end within one process: a snapshot taken of a past height while the
//! chain moved on, restored into an empty store chunk by chunk, is the state of its height,
//! loads as a chain that goes on exactly as the original did, and anything tampered with is
//! refused.

use super::persist::{funded, sign, state_of, Op};
use super::*;
use crate::kv::MemKv;
use crate::statesync::files::SnapshotDir;
use crate::statesync::take::take_snapshot;
use crate::statesync::Refusal;
use basalt_runtime::{StateRestore, StateStore};

const SNAPSHOT: u64 = 4;

#[test]
fn a_snapshot_taken_while_the_chain_moves_on_restores_the_state_of_its_height() {
    let g = genesis(funded());
    let store = Store::in_memory(&MemKv::default());
    store.check_chain(CHAIN, &g.hash()).unwrap();
    let mut c = Chain::load(g.clone(), &store).unwrap();
    let mut at_snapshot = None;
    for i in 0..8u8 {
        let ops = [
            Op::Transfer {
                from: i % 5,
                to: (i + 1) % 7,
                amount: 1_000 + u128::from(i),
            },
            Op::Delegate {
                from: (i + 2) % 5,
                validator: i % 4,
                amount: 5_000,
            },
        ];
        let txs = sign(&c, &ops);
        let (block, commit, applied) = advance_with(&mut c, txs, vec![]);
        c.store_applied(&store, &block, &commit, &applied, true)
            .unwrap();
        if block.header.height.0 == SNAPSHOT {
            at_snapshot = Some((state_of(&c), c.meta()));
        }
    }
    let (state, meta_at) = at_snapshot.unwrap();

    // Taken at height 8 of the state at 4: four later heights' changes are undone.
    let files = tempfile::tempdir().unwrap();
    let dir = SnapshotDir::new(files.path(), 2);
    let meta = take_snapshot(&store, SNAPSHOT, &dir).unwrap();
    assert_eq!(dir.list().unwrap(), vec![meta.info()]);
    let next = store.block(SNAPSHOT + 1).unwrap().unwrap().header;
    meta.check(&next).unwrap();
    assert_eq!(meta.chain_meta, meta_at);

    let restored_store = Store::in_memory(&MemKv::default());
    restored_store.check_chain(CHAIN, &g.hash()).unwrap();
    let mut restore = StateRestore::new(Arc::new(restored_store.latest_state()));
    for index in 0..meta.chunks.len() as u32 {
        let bytes = dir.chunk(SNAPSHOT, index).unwrap().unwrap();
        let chunk = meta.chunk(index, &bytes).unwrap();
        crate::statesync::store_chunk(&restored_store, &mut restore, index, &chunk).unwrap();
    }
    // Another app hash than the one the state rebuilds is refused, and nothing is based.
    let refused = crate::statesync::finish(&restored_store, &restore, &meta, Hash::default());
    assert!(matches!(refused, Ok(Err(Refusal::AppHash { .. }))));
    assert_eq!(restored_store.state_height().unwrap(), None);
    crate::statesync::finish(&restored_store, &restore, &meta, next.app_hash)
        .unwrap()
        .unwrap();

    let mut restored = Chain::load(g.clone(), &restored_store).unwrap();
    assert_eq!(state_of(&restored), state);
    assert_eq!(restored.next_height(), SNAPSHOT + 1);
    assert_eq!(restored_store.earliest_height().unwrap(), Some(SNAPSHOT));
    let k = basalt_runtime::state::keys::SUPPLY;
    assert!(
        restored_store.state_at(SNAPSHOT - 1).get(k).is_err(),
        "below the snapshot"
    );
    assert!(restored_store.state_at(SNAPSHOT).get(k).unwrap().is_some());
    assert_eq!(
        restored_store
            .block(SNAPSHOT)
            .unwrap()
            .unwrap()
            .header
            .hash(),
        meta.block.header.hash()
    );

    // It block-syncs the rest exactly as the original executed it.
    for h in SNAPSHOT + 1..=8 {
        let block = store.block(h).unwrap().unwrap();
        let commit = store.commit(h).unwrap().unwrap();
        restored.check_synced(&block, &commit).unwrap();
        let applied = restored.execute(&block, commit.clone(), false).unwrap();
        restored
            .store_applied(&restored_store, &block, &commit, &applied, true)
            .unwrap();
    }
    assert_eq!(state_of(&restored), state_of(&c));
}

#[test]
fn tampered_snapshot_metadata_and_chunks_are_refused() {
    let g = genesis(funded());
    let store = Store::in_memory(&MemKv::default());
    store.check_chain(CHAIN, &g.hash()).unwrap();
    let mut c = Chain::load(g, &store).unwrap();
    for _ in 0..4 {
        let (block, commit, applied) = advance_with(&mut c, vec![], vec![]);
        c.store_applied(&store, &block, &commit, &applied, true)
            .unwrap();
    }
    let files = tempfile::tempdir().unwrap();
    let dir = SnapshotDir::new(files.path(), 1);
    let meta = take_snapshot(&store, 2, &dir).unwrap();
    let next = store.block(3).unwrap().unwrap().header;
    meta.check(&next).unwrap();
    // The tip cannot be snapshotted: its canonical commit is in the block after it.
    assert!(take_snapshot(&store, 4, &dir).is_err());
    // Only the newest is kept.
    take_snapshot(&store, 3, &dir).unwrap();
    assert_eq!(dir.heights().unwrap(), vec![3]);
    let meta3 = dir.meta(3).unwrap().unwrap();

    let wrong_header = store.block(2).unwrap().unwrap().header;
    assert_eq!(meta.check(&wrong_header), Err(Refusal::Mismatch("height")));
    let mut bad = meta.clone();
    bad.results.app_hash = Hash::digest(b"another state");
    assert_eq!(bad.check(&next), Err(Refusal::Mismatch("results")));
    let mut bad = meta.clone();
    bad.commit.signatures.pop();
    assert_eq!(bad.check(&next), Err(Refusal::Mismatch("commit")));
    let mut bad = meta.clone();
    bad.format = 9;
    assert_eq!(bad.check(&next), Err(Refusal::Format(9)));

    let mut bytes = dir.chunk(3, 0).unwrap().unwrap();
    meta3.chunk(0, &bytes).unwrap();
    bytes[3] ^= 1;
    assert!(matches!(
        meta3.chunk(0, &bytes),
        Err(Refusal::ChunkHash { index: 0, .. })
    ));
    assert!(matches!(
        meta3.chunk(99, &bytes),
        Err(Refusal::ChunkHash { index: 99, .. })
    ));
}
