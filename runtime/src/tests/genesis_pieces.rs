//! The genesis state built in pieces (as a node does on its first start, so that a large
//! genesis never sits in memory whole) equals the one built at once.

use super::*;
use crate::state::{StateChanges, StateError, StateStore};
use crate::{RestoreError, StateRestore};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// What the pieces wrote, readable back as the builder requires.
#[derive(Default)]
struct Written(Mutex<BTreeMap<Vec<u8>, Vec<u8>>>);

impl StateStore for Written {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.0.lock().unwrap().get(key).cloned())
    }
}

impl Written {
    fn apply(&self, changes: StateChanges) {
        let mut map = self.0.lock().unwrap();
        for (k, v) in changes {
            match v {
                Some(v) => map.insert(k, v),
                None => map.remove(&k),
            };
        }
    }
}

fn genesis(accounts: usize) -> Genesis {
    let op = key("operator", 0);
    let accounts = (0..accounts)
        .map(|i| (key("user", i).public_key().address(), M + i as u128))
        .collect();
    let validators = vec![(op.public_key(), key("c", 0).public_key(), M, "v0".into())];
    Genesis::generate(CHAIN, "2026-01-01T00:00:00Z", validators, accounts).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn any_piece_size_gives_the_same_state(accounts in 0usize..400, piece in 1usize..150) {
        let g = genesis(accounts);
        let (mut whole_rt, _) = Runtime::from_genesis(&g).unwrap();
        let expected: BTreeMap<Vec<u8>, Vec<u8>> = whole_rt
            .take_changes()
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect();

        let written = Arc::new(Written::default());
        let sink_store = written.clone();
        let mut pieces = 0;
        let (mut rt, _) = Runtime::from_genesis_in_pieces(&g, written.clone(), piece, |c| {
            pieces += 1;
            sink_store.apply(c);
            Ok(())
        })
        .unwrap();
        prop_assert_eq!(pieces, accounts.div_ceil(piece).saturating_sub(1));
        written.apply(rt.take_changes());
        prop_assert_eq!(rt.app_hash(), whole_rt.app_hash());
        prop_assert_eq!(&*written.0.lock().unwrap(), &expected);
    }
}

/// The committed entries of a state (no tree keys), in the tree's bucket order: what a
/// snapshot carries.
fn snapshot_entries(state: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut entries: Vec<(Vec<u8>, Vec<u8>)> = state
        .iter()
        .filter(|(k, _)| k.first() != Some(&crate::state::keys::INTERNAL))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    entries.sort_by_key(|(k, _)| Hash::digest(k));
    entries
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// A snapshot's entries, restored in pieces of any size and with a restart anywhere,
    /// rebuild exactly the stored state (tree included) and its app hash.
    #[test]
    fn a_restored_snapshot_is_the_state_it_was_taken_from(
        accounts in 0usize..300,
        piece in 1usize..120,
        restart_after in 0usize..6,
    ) {
        let g = genesis(accounts);
        let (mut rt, _) = Runtime::from_genesis(&g).unwrap();
        let state: BTreeMap<Vec<u8>, Vec<u8>> = rt
            .take_changes()
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect();
        let entries = snapshot_entries(&state);

        let written = Arc::new(Written::default());
        let mut restore = StateRestore::new(written.clone());
        for (i, chunk) in entries.chunks(piece).enumerate() {
            if i == restart_after {
                restore = StateRestore::resume(written.clone()).unwrap();
            }
            written.apply(restore.apply(chunk).unwrap());
        }
        prop_assert_eq!(restore.root(), rt.app_hash());
        prop_assert_eq!(&*written.0.lock().unwrap(), &state);
    }
}

#[test]
fn a_snapshot_entry_naming_a_tree_key_is_refused() {
    let written = Arc::new(Written::default());
    let mut restore = StateRestore::new(written);
    let bucket = crate::state::keys::bucket(7).to_vec();
    assert!(matches!(
        restore.apply(&[(bucket, vec![1, 2, 3])]),
        Err(RestoreError::InternalKey(_))
    ));
    assert_eq!(
        restore.apply(&[(vec![], vec![1])]),
        Err(RestoreError::EmptyKey)
    );
}
