//! Transaction signatures, many at once: batch verification (about twice as fast as one by
//! one) spread over the machine's cores, with the senders' public keys kept decompressed.
//! Used for gossiped batches, for the calls of a JSON-RPC batch, and for blocks that arrive
//! by block sync.

use basalt_runtime::SignedTx;
use basalt_types::{BatchItem, PublicKey};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Below this many transactions a second thread costs more than it saves.
const PARALLEL_FROM: usize = 64;
/// Decompressed keys kept (~225 bytes a slot with the key); the cache starts over when
/// full, so a flood of one-off keys costs memory no longer than that. Just under 7/8 of
/// 2^17, where the hash table would double: at 200,000 it grew from 131,072 to 262,144 slots
/// (~29 MiB more) once ~115,000 distinct senders had been seen, the ~30 MiB RSS step 3.5
/// minutes into a 1,000,000-account load (docs/performance.md). 114,000 still holds every
/// sender of a 100,000-account load.
const KEY_CACHE: usize = 114_000;

/// The machine's cores, asked once: the standard library reads cgroup files each time.
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// A sender's key, decompressed once (a decompression costs about a third of a batched
/// verification, and senders sign many transactions).
fn public_key(bytes: &[u8; 32]) -> Option<PublicKey> {
    static KEYS: OnceLock<Mutex<HashMap<[u8; 32], PublicKey>>> = OnceLock::new();
    let keys = KEYS.get_or_init(Mutex::default);
    if let Some(k) = keys.lock().ok()?.get(bytes) {
        return Some(*k);
    }
    let key = PublicKey::from_bytes(bytes).ok()?;
    let mut keys = keys.lock().ok()?;
    if keys.len() >= KEY_CACHE {
        keys.clear();
    }
    keys.insert(*bytes, key);
    Some(key)
}

/// True when every transaction decodes and carries a valid signature. False says only that
/// some transaction is bad: the caller checks them one by one to learn which.
pub fn all_valid(txs: &[Vec<u8>]) -> bool {
    let threads = cores();
    if threads < 2 || txs.len() < PARALLEL_FROM {
        return chunk_valid(txs);
    }
    let per = txs.len().div_ceil(threads);
    std::thread::scope(|s| {
        let mut chunks = txs.chunks(per);
        let first = chunks.next().unwrap_or_default();
        let others: Vec<_> = chunks.map(|c| s.spawn(move || chunk_valid(c))).collect();
        let mine = chunk_valid(first);
        others
            .into_iter()
            .fold(mine, |ok, h| h.join().unwrap_or(false) && ok)
    })
}

/// For each transaction, whether it decodes and its signature is valid: one batch
/// verification when all are good, one check each only when some are not.
pub fn each_valid(txs: &[Vec<u8>]) -> Vec<bool> {
    if all_valid(txs) {
        return vec![true; txs.len()];
    }
    txs.iter()
        .map(|t| chunk_valid(std::slice::from_ref(t)))
        .collect()
}

fn chunk_valid<T: AsRef<[u8]>>(txs: &[T]) -> bool {
    let Ok(decoded) = txs
        .iter()
        .map(|t| SignedTx::decode(t.as_ref()))
        .collect::<Result<Vec<_>, _>>()
    else {
        return false;
    };
    let Some(keys) = decoded
        .iter()
        .map(|t| public_key(&t.public_key))
        .collect::<Option<Vec<_>>>()
    else {
        return false;
    };
    let messages: Vec<Vec<u8>> = decoded.iter().map(|t| t.body.sign_bytes()).collect();
    if let ([t], [k], [m]) = (&decoded[..], &keys[..], &messages[..]) {
        // One alone: plain verification is cheaper than a batch of one.
        return k.verify(m, &t.signature).is_ok();
    }
    let items: Vec<BatchItem<'_>> = decoded
        .iter()
        .zip(&keys)
        .zip(&messages)
        .map(|((t, k), m)| BatchItem {
            message: m,
            signature: &t.signature,
            public_key: k,
        })
        .collect();
    basalt_types::verify_batch(&items).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_runtime::{Msg, TxBody};
    use basalt_types::{Address, PrivateKey};

    fn tx(i: u8) -> Vec<u8> {
        TxBody {
            chain_id: "c".into(),
            nonce: u64::from(i),
            fee: 1,
            msg: Msg::Transfer {
                to: Address([i; 20]),
                amount: 1,
            },
        }
        .sign(&PrivateKey::from_seed([i; 32]))
        .to_bytes()
    }

    #[test]
    fn good_blocks_pass_and_one_bad_signature_anywhere_fails() {
        let txs: Vec<Vec<u8>> = (0..200).map(tx).collect();
        assert!(all_valid(&txs));
        assert!(all_valid(&txs[..3]));
        assert!(all_valid(&[]));
        for at in [0, 99, 150, 199] {
            let mut bad = txs.clone();
            let last = bad[at].len() - 1;
            bad[at][last] ^= 1; // a signature byte
            assert!(!all_valid(&bad), "flipped signature at {at}");
        }
        let mut garbage = txs.clone();
        garbage[120] = vec![1, 2, 3];
        assert!(!all_valid(&garbage));
        assert!(!all_valid(&garbage[120..121]), "alone");
    }

    #[test]
    fn each_transaction_gets_its_own_verdict() {
        let mut txs: Vec<Vec<u8>> = (0..10).map(tx).collect();
        assert_eq!(each_valid(&txs), vec![true; 10]);
        let last = txs[3].len() - 1;
        txs[3][last] ^= 1;
        txs[7] = vec![0; 5];
        let verdicts = each_valid(&txs);
        let bad: Vec<usize> = (0..10).filter(|&i| !verdicts[i]).collect();
        assert_eq!(bad, vec![3, 7]);
        // A key seen before (now cached) still fails a forged signature.
        assert!(!each_valid(&txs[3..4])[0]);
    }
}
