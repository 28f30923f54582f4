//! Transaction signatures of a whole block at once: batch verification (about twice as fast
//! as one by one) spread over the machine's cores. Used where no mempool verdict exists,
//! as for blocks that arrive by block sync.

use basalt_runtime::SignedTx;
use basalt_types::{BatchItem, PublicKey};

/// Below this many transactions a second thread costs more than it saves.
const PARALLEL_FROM: usize = 64;

/// True when every transaction decodes and carries a valid signature. False says only that
/// some transaction is bad: the caller checks them one by one to learn which.
pub fn all_valid(txs: &[Vec<u8>]) -> bool {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
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

fn chunk_valid(txs: &[Vec<u8>]) -> bool {
    let Ok(decoded) = txs
        .iter()
        .map(|t| SignedTx::decode(t))
        .collect::<Result<Vec<_>, _>>()
    else {
        return false;
    };
    let Ok(keys) = decoded
        .iter()
        .map(|t| PublicKey::from_bytes(&t.public_key))
        .collect::<Result<Vec<_>, _>>()
    else {
        return false;
    };
    let messages: Vec<Vec<u8>> = decoded.iter().map(|t| t.body.sign_bytes()).collect();
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
    }
}
