//! Consensus latency against validator count in the deterministic simulator: every link
//! delays every message by exactly 50 ms (no drops, no reordering, no faults, equal power),
//! `timeout_commit` 0, so a height takes what the protocol's message rounds take.
//!
//! `cargo bench -p basalt-tests --bench consensus_latency` (seeds per row:
//! `BASALT_BENCH_SEEDS`, default 3; heights per seed: `BASALT_BENCH_HEIGHTS`, default 20).
//! Prints a markdown table of simulated milliseconds and messages per height; nothing here
//! asserts a figure.

use basalt_tests::sim::{run_seed, PowerMode, SimConfig};
use std::time::Duration;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let seeds = env_u64("BASALT_BENCH_SEEDS", 3);
    let heights = env_u64("BASALT_BENCH_HEIGHTS", 20);
    println!("\n## Consensus latency, 50 ms links ({seeds} seeds × {heights} heights per row)\n");
    println!(
        "| validators | ms per height | messages per height | messages per height per validator |"
    );
    println!("|---:|---:|---:|---:|");
    for n in [4usize, 16, 64, 100] {
        let mut config = SimConfig::new(n, 0, heights);
        config.faults = false;
        config.power_mode = PowerMode::Equal;
        config.net.min_delay_ms = 50;
        config.net.max_delay_ms = 50;
        config.net.slow_prob = 0.0;
        config.net.drop_prob = 0.0;
        config.net.dup_prob = 0.0;
        config.timeouts.commit = Duration::ZERO;
        let (mut decided, mut millis, mut messages) = (0u64, 0u64, 0u64);
        for seed in 0..seeds {
            let r = run_seed(&config, seed);
            assert!(
                r.violations.is_empty(),
                "n={n} seed {seed}: {:?}",
                r.violations
            );
            decided += r.min_honest_height;
            millis += r.sim_millis;
            messages += r.messages;
        }
        let per = |x: u64| x as f64 / decided.max(1) as f64;
        println!(
            "| {n} | {:.0} | {:.0} | {:.0} |",
            per(millis),
            per(messages),
            per(messages) / n as f64
        );
    }
}
