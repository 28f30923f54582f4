//! `basalt-sim`: runs the deterministic simulator over many seeds.
//!
//! `basalt-sim --validators N --byzantine F --seeds K --heights H [--first-seed S]`
//! Prints one line per violation with the command that replays its seed, then
//! `seeds=K heights=H violations=V`; exits 1 when V > 0.

use basalt_tests::sim::{replay_command, run_seeds, ByzantineMode, SimConfig};
use clap::Parser;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(
    name = "basalt-sim",
    about = "Deterministic Byzantine simulation of Basalt consensus"
)]
struct Args {
    /// Number of validators.
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Number of Byzantine validators (the tolerated maximum is (validators - 1) / 3).
    #[arg(long, default_value_t = 1)]
    byzantine: usize,
    /// Number of seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// Heights every honest validator must decide in each seed.
    #[arg(long, default_value_t = 10)]
    heights: u64,
    /// First seed (seeds run from here upward).
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Byzantine behaviour: mixed, equivocate or silent.
    #[arg(long, default_value = "mixed", value_parser = parse_mode)]
    mode: ByzantineMode,
    /// Give every validator power 1 instead of random powers 1..=10.
    #[arg(long)]
    equal_power: bool,
    /// No partitions and no crashes (only delays, drops, duplicates and reordering).
    #[arg(long)]
    no_faults: bool,
    /// Print one line per seed.
    #[arg(long)]
    verbose: bool,
}

fn parse_mode(s: &str) -> Result<ByzantineMode, String> {
    ByzantineMode::parse(s)
        .ok_or_else(|| format!("unknown mode {s:?}: use mixed, equivocate or silent"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        basalt_node::logging::init();
    }
    if args.validators == 0 || args.byzantine >= args.validators {
        eprintln!(
            "error: need at least one validator and fewer Byzantine validators than validators"
        );
        return ExitCode::from(2);
    }
    let mut config = SimConfig::new(args.validators, args.byzantine, args.heights);
    config.byzantine_mode = args.mode;
    config.faults = !args.no_faults;
    if args.equal_power {
        config.power_mode = basalt_tests::sim::PowerMode::Equal;
    }
    if args.byzantine > SimConfig::max_byzantine(args.validators) {
        eprintln!(
            "warning: {} Byzantine of {} validators exceeds the tolerated {}: violations are expected",
            args.byzantine,
            args.validators,
            SimConfig::max_byzantine(args.validators)
        );
    }
    let started = Instant::now();
    let summary = run_seeds(&config, args.first_seed, args.seeds, |report| {
        for v in &report.violations {
            println!("seed {}: VIOLATION {v}", report.seed);
            println!("  replay: {}", replay_command(&config, report.seed));
        }
        if args.verbose {
            println!(
                "seed {}: min height {} in {} ms simulated, {} events, {} messages; {} crashes ({} inside a store write, {} unflushed store batches lost, {} torn WAL tails cut); {} of {} admitted transactions committed ({} sent ahead of their nonce), {} dropped with a reason; {} headers verified by the light client",
                report.seed,
                report.min_honest_height,
                report.sim_millis,
                report.events,
                report.messages,
                report.crashes,
                report.cuts_in_writes,
                report.lost_batches,
                report.torn_wals,
                report.txs_committed,
                report.txs_admitted,
                report.txs_sent_ahead_committed,
                report.txs_dropped.len(),
                report.light_verified
            );
        }
    });
    eprintln!(
        "ran {} seeds in {:.1} s",
        summary.seeds,
        started.elapsed().as_secs_f64()
    );
    let violations = summary.violations.len();
    println!(
        "seeds={} heights={} violations={}",
        summary.seeds, args.heights, violations
    );
    if violations > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
