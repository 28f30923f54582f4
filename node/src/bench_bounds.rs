//! The machine's bounds that benchmarks are judged against, measured in the same run
//! (machines differ by 2× or more, so a figure alone says little): the ed25519
//! batch-verification rate of one core, the cores, and the fsync latency.

use basalt_types::{verify_batch, BatchItem, PrivateKey, PublicKey, Signature};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Signatures per batch: what the node's checks batch at saturation.
const BATCH: usize = 64;
/// How long the rate is measured for.
const MEASURE: Duration = Duration::from_millis(1500);

pub struct Bounds {
    /// ed25519 signatures verified per second by one thread, in batches of [`BATCH`].
    pub verify_per_core: f64,
    pub cores: usize,
    /// Median latency of a 4 KiB write and `fdatasync` in the work folder.
    pub fsync_ms: f64,
}

impl Bounds {
    /// Measures on this machine, with nothing else of ours running; `dir` is where the
    /// benchmark's nodes keep their data.
    pub fn measure(dir: &std::path::Path) -> anyhow::Result<Bounds> {
        eprintln!("measuring the machine's bounds (ed25519 batch verification, fsync)…");
        Ok(Bounds {
            verify_per_core: verify_per_core(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            fsync_ms: crate::restart_bench::fsync_ms(dir)?,
        })
    }

    /// Transactions per second the machine can verify when `verifiers` nodes each check
    /// every transaction's signature once, sharing all the cores.
    pub fn tx_per_s(&self, verifiers: usize) -> f64 {
        self.verify_per_core * self.cores as f64 / verifiers.max(1) as f64
    }

    /// The bounds as report fields, with `rate`'s ratio to [`Bounds::tx_per_s`].
    pub fn report(&self, verifiers: usize, rate: f64) -> Value {
        json!({
            "verify_per_core": self.verify_per_core,
            "cores": self.cores,
            "verifiers": verifiers,
            "signature_bound_tx_per_s": self.tx_per_s(verifiers),
            "ratio_to_signature_bound": rate / self.tx_per_s(verifiers),
            "fsync_ms_p50": self.fsync_ms,
        })
    }
}

/// Batches of transfer-sized messages from distinct keys, verified on this thread.
fn verify_per_core() -> f64 {
    let keys: Vec<PrivateKey> = (0..BATCH).map(crate::bench::sender_key).collect();
    let publics: Vec<PublicKey> = keys.iter().map(PrivateKey::public_key).collect();
    let messages: Vec<Vec<u8>> = (0..BATCH).map(|i| vec![i as u8; 120]).collect();
    let signatures: Vec<Signature> = keys.iter().zip(&messages).map(|(k, m)| k.sign(m)).collect();
    let items: Vec<BatchItem> = (0..BATCH)
        .map(|i| BatchItem {
            message: &messages[i],
            signature: &signatures[i],
            public_key: &publics[i],
        })
        .collect();
    let started = Instant::now();
    let mut verified = 0usize;
    while started.elapsed() < MEASURE {
        if verify_batch(&items).is_ok() {
            verified += BATCH;
        }
    }
    verified as f64 / started.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_bound_divides_the_cores_among_the_verifiers() {
        let b = Bounds {
            verify_per_core: 30_000.0,
            cores: 2,
            fsync_ms: 1.0,
        };
        assert_eq!(b.tx_per_s(4), 15_000.0);
        assert_eq!(b.report(4, 6_000.0)["ratio_to_signature_bound"], json!(0.4));
        assert!(verify_per_core() > 0.0, "valid signatures verify");
    }
}
