//! The seed's fault plan: partitions (that always heal) and crash-restarts of honest validators.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone)]
pub struct Partition {
    pub start_ms: u64,
    pub end_ms: u64,
    /// Side (0 or 1) of every node.
    pub sides: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Crash {
    pub node: usize,
    pub at_ms: u64,
    pub restart_ms: u64,
    /// Instead of crashing at `at_ms`, cut the power at the node's n-th store write from
    /// then on (0: the next): inside a commit, between its batch and its flush.
    pub at_write: Option<u32>,
}

#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    pub partitions: Vec<Partition>,
    pub crashes: Vec<Crash>,
}

impl FaultPlan {
    pub fn draw(rng: &mut ChaCha8Rng, nodes: usize, honest: &[usize]) -> FaultPlan {
        let mut plan = FaultPlan::default();
        let mut t = rng.gen_range(0..1500);
        for _ in 0..rng.gen_range(0..=2) {
            let len = rng.gen_range(300..4000);
            let mut sides: Vec<u8> = (0..nodes).map(|_| rng.gen_range(0..2)).collect();
            // Both sides non-empty.
            sides[0] = 0;
            sides[nodes - 1] = 1;
            plan.partitions.push(Partition {
                start_ms: t,
                end_ms: t + len,
                sides,
            });
            t += len + rng.gen_range(200..2000);
        }
        let mut candidates = honest.to_vec();
        for _ in 0..rng.gen_range(0..=2usize) {
            if candidates.is_empty() {
                break;
            }
            let node = candidates.swap_remove(rng.gen_range(0..candidates.len()));
            let at_ms = rng.gen_range(0..6000);
            let restart_ms = at_ms + rng.gen_range(50..3000);
            plan.crashes.push(Crash {
                node,
                at_ms,
                restart_ms,
                at_write: None,
            });
        }
        // Drawn after the rest: one crash in two lands inside a store write.
        for c in &mut plan.crashes {
            c.at_write = rng.gen_bool(0.5).then(|| rng.gen_range(0..4));
        }
        plan
    }

    /// When the last fault is over.
    pub fn stable_at_ms(&self) -> u64 {
        let p = self.partitions.iter().map(|p| p.end_ms).max().unwrap_or(0);
        let c = self.crashes.iter().map(|c| c.restart_ms).max().unwrap_or(0);
        p.max(c)
    }
}
