//! The deterministic simulator.
//!
//! Everything — network delays, drops, duplicates, partitions, crashes, Byzantine choices and
//! block contents — comes from a ChaCha RNG seeded by the seed alone, and events run from a
//! single priority queue ordered by (simulated time, insertion order). The same configuration
//! and seed therefore replay the same run event for event.

mod checker;
mod config;
mod faults;
mod node;
mod world;

pub use checker::Violation;
pub use config::{ByzantineMode, NetConfig, PowerMode, SimConfig};
pub use world::{run_seed, SeedReport};

/// Outcome of many seeds.
#[derive(Debug, Default)]
pub struct Summary {
    pub seeds: u64,
    pub violations: Vec<(u64, Violation)>,
    /// Heights decided by the slowest honest validator, summed over seeds.
    pub heights: u64,
    pub sim_millis: u64,
}

/// Runs seeds `first..first + count`, calling `on_seed` after each one.
pub fn run_seeds(
    config: &SimConfig,
    first: u64,
    count: u64,
    mut on_seed: impl FnMut(&SeedReport),
) -> Summary {
    let mut summary = Summary::default();
    for seed in first..first + count {
        let report = run_seed(config, seed);
        on_seed(&report);
        summary.seeds += 1;
        summary.heights += report.min_honest_height;
        summary.sim_millis += report.sim_millis;
        summary
            .violations
            .extend(report.violations.iter().cloned().map(|v| (seed, v)));
    }
    summary
}

/// The one command that replays `seed` with `config`.
pub fn replay_command(config: &SimConfig, seed: u64) -> String {
    let mut cmd = format!(
        "cargo run --release -p basalt-tests --bin basalt-sim -- --validators {} --byzantine {} --seeds 1 --heights {} --first-seed {}",
        config.validators, config.byzantine, config.heights, seed
    );
    if config.byzantine_mode != ByzantineMode::Mixed {
        cmd += &format!(" --mode {}", config.byzantine_mode.name());
    }
    if config.power_mode != PowerMode::Random {
        cmd += " --equal-power";
    }
    if !config.faults {
        cmd += " --no-faults";
    }
    cmd
}
