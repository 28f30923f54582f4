//! Simulated heights per CPU-second of the deterministic simulator, for 4 and 100 validators.
//!
//! `cargo bench -p basalt-tests --bench sim_throughput` (seeds per row: `BASALT_BENCH_SEEDS`,
//! default 3). Prints a markdown table; nothing here asserts a speed.

use basalt_tests::sim::{run_seed, ByzantineMode, SimConfig};
use std::time::Instant;

/// CPU time of this thread in seconds (the simulator is single-threaded), from the kernel's
/// scheduler statistics; wall-clock time where those are unavailable.
fn cpu_seconds(wall_start: Instant) -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map(|ns| ns as f64 / 1e9)
        .unwrap_or_else(|| wall_start.elapsed().as_secs_f64())
}

struct Row {
    label: String,
    heights: u64,
    cpu: f64,
    sim_s: f64,
    messages: u64,
}

fn measure(label: &str, config: &SimConfig, seeds: u64) -> Row {
    let wall = Instant::now();
    let before = cpu_seconds(wall);
    let (mut heights, mut sim_ms, mut messages) = (0, 0, 0);
    for seed in 0..seeds {
        let r = run_seed(config, seed);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        heights += r.min_honest_height;
        sim_ms += r.sim_millis;
        messages += r.messages;
    }
    Row {
        label: label.into(),
        heights,
        cpu: cpu_seconds(wall) - before,
        sim_s: sim_ms as f64 / 1000.0,
        messages,
    }
}

fn main() {
    let seeds: u64 = std::env::var("BASALT_BENCH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let mut rows = Vec::new();
    for &(n, faults) in &[(4usize, false), (4, true), (100, false), (100, true)] {
        let f = SimConfig::max_byzantine(n);
        let mut config = SimConfig::new(n, f, 20);
        config.faults = faults;
        config.byzantine_mode = ByzantineMode::Mixed;
        let label = format!(
            "n={n} f={f} {}",
            if faults {
                "partitions+crashes"
            } else {
                "no faults"
            }
        );
        let row = measure(&label, &config, seeds);
        eprintln!("done: {label}");
        rows.push(row);
    }
    println!(
        "\n## basalt-sim throughput ({seeds} seeds per row, signatures verified once per run)\n"
    );
    println!("| configuration | heights decided | CPU s | heights / CPU-s | simulated s / CPU-s | messages / height |");
    println!("|---|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {:.2} | {:.1} | {:.1} | {:.0} |",
            r.label,
            r.heights,
            r.cpu,
            r.heights as f64 / r.cpu,
            r.sim_s / r.cpu,
            r.messages as f64 / r.heights.max(1) as f64
        );
    }
}
