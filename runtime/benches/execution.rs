//! Block execution speed: transfers per second on one core (signatures excluded: the node
//! verifies each signature once, in its mempool) and the app-hash cost of a 10,000-tx block.
//!
//! `cargo bench -p basalt-runtime --bench execution`

use basalt_genesis::Genesis;
use basalt_runtime::{BlockContext, Entry, MerkleStore, Msg, Runtime, TxBody};
use basalt_types::{Hash, PrivateKey};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::collections::HashMap;

const TXS: usize = 10_000;

fn key(i: usize) -> PrivateKey {
    PrivateKey::from_seed(Hash::digest(format!("bench-{i}").as_bytes()).0)
}

fn setup(accounts: usize) -> (Runtime, Vec<Vec<u8>>) {
    let keys: Vec<PrivateKey> = (0..accounts).map(key).collect();
    let validator = key(usize::MAX);
    let genesis = Genesis::generate(
        "bench",
        "2026-01-01T00:00:00Z",
        vec![(
            validator.public_key(),
            validator.public_key(),
            10_000_000,
            "v".into(),
        )],
        keys.iter()
            .map(|k| (k.public_key().address(), 1_000_000_000))
            .collect(),
    )
    .expect("genesis");
    let (rt, _) = Runtime::from_genesis(&genesis).expect("runtime");
    // Each sender sends from its own account, nonces in order.
    let mut nonces = vec![0u64; accounts];
    let txs = (0..TXS)
        .map(|i| {
            let from = i % accounts;
            let to = keys[(i * 7 + 1) % accounts].public_key().address();
            let nonce = nonces[from];
            nonces[from] += 1;
            TxBody {
                chain_id: "bench".into(),
                nonce,
                fee: 1,
                msg: Msg::Transfer { to, amount: 10 },
            }
            .sign(&keys[from])
            .to_bytes()
        })
        .collect();
    (rt, txs)
}

fn transfers(c: &mut Criterion) {
    let (rt, txs) = setup(10_000);
    let ctx = BlockContext {
        height: 1,
        ..BlockContext::default()
    };
    let mut group = c.benchmark_group("execute_block");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(TXS as u64));
    group.bench_function("10k transfers, 10k accounts, signatures excluded", |b| {
        b.iter_batched(
            || rt.clone(),
            |mut rt| {
                let r = rt.execute_block_trusted(&ctx, &txs).expect("executes");
                assert!(r.tx_results.iter().all(|t| t.code == 0));
                // Returned, so that freeing the state is not timed.
                (rt, r.app_hash)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// The tree with its buckets in a map, as the node keeps them in its store.
#[derive(Clone, Default)]
struct Tree {
    tree: MerkleStore,
    buckets: HashMap<usize, Vec<Entry>>,
}

impl Tree {
    fn commit(&mut self) -> Hash {
        let buckets = &self.buckets;
        let update = self
            .tree
            .commit(|b| Ok(buckets.get(&b).cloned().unwrap_or_default()))
            .expect("reads from a map");
        self.buckets.extend(update.buckets);
        update.root
    }
}

fn app_hash(c: &mut Criterion) {
    let mut group = c.benchmark_group("app_hash_per_10k_tx_block");
    group.sample_size(10);
    for accounts in [1_000u32, 100_000] {
        let mut store = Tree::default();
        for i in 0..accounts {
            store.tree.put(&i.to_le_bytes(), &[0u8; 24]);
        }
        store.commit();
        // A 10,000-transfer block touches up to 20,000 accounts.
        let touched: Vec<u32> = (0..2 * TXS as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761)) % accounts)
            .collect();
        group.bench_function(format!("{accounts} accounts"), |b| {
            b.iter_batched(
                || store.clone(),
                |mut store| {
                    for (n, i) in touched.iter().enumerate() {
                        store.tree.put(&i.to_le_bytes(), &(n as u64).to_le_bytes());
                    }
                    let root = store.commit();
                    (store, root)
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, transfers, app_hash);
criterion_main!(benches);
