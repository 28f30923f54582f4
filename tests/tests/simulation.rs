//! Seeded Byzantine simulations of the real consensus engine.
//!
//! `BASALT_SIM_SEEDS` sets the seeds per validator count (default 200; raise it for a long
//! run, e.g. `BASALT_SIM_SEEDS=5000 cargo test --release -p basalt-tests --test simulation`).
//! Any failure prints the one command that replays its seed.

use basalt_tests::sim::{
    replay_command, run_seed, run_seeds, ByzantineMode, PowerMode, SimConfig, Summary, Violation,
};

fn seeds() -> u64 {
    std::env::var("BASALT_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200)
}

#[derive(Default)]
struct Exercised {
    partitions: usize,
    crashes: usize,
    equivocators: usize,
    caught: usize,
    txs_admitted: usize,
    txs_committed: usize,
    txs_sent_ahead_committed: usize,
    light_verified: u64,
    torn_wals: usize,
    lost_batches: usize,
    cuts_in_writes: usize,
}

fn run(config: &SimConfig, first: u64, count: u64) -> (Summary, Exercised) {
    let mut ex = Exercised::default();
    let summary = run_seeds(config, first, count, |r| {
        ex.partitions += r.partitions;
        ex.crashes += r.crashes;
        ex.equivocators += r.equivocators;
        ex.caught += r.caught;
        ex.txs_admitted += r.txs_admitted;
        ex.txs_committed += r.txs_committed;
        ex.txs_sent_ahead_committed += r.txs_sent_ahead_committed;
        ex.light_verified += r.light_verified;
        ex.torn_wals += r.torn_wals;
        ex.lost_batches += r.lost_batches;
        ex.cuts_in_writes += r.cuts_in_writes;
    });
    (summary, ex)
}

fn assert_clean(config: &SimConfig, summary: &Summary) {
    let report: Vec<String> = summary
        .violations
        .iter()
        .map(|(seed, v)| {
            format!(
                "seed {seed}: {v}\n  replay: {}",
                replay_command(config, *seed)
            )
        })
        .collect();
    assert!(
        report.is_empty(),
        "{} violations:\n{}",
        report.len(),
        report.join("\n")
    );
}

/// n validators with the largest tolerated Byzantine count, partitions and crashes.
fn at_the_bound(n: usize) {
    let f = SimConfig::max_byzantine(n);
    let config = SimConfig::new(n, f, 10);
    let count = seeds();
    let (summary, ex) = run(&config, 0, count);
    assert_clean(&config, &summary);
    assert_eq!(summary.seeds, count);
    // Not vacuous: the seeds did partition, crash and equivocate, and every equivocator was caught.
    assert!(
        ex.partitions > 0 && ex.crashes > 0,
        "faults exercised: {} partitions, {} crashes",
        ex.partitions,
        ex.crashes
    );
    assert!(ex.equivocators > 0, "some Byzantine validator equivocated");
    assert_eq!(ex.caught, ex.equivocators, "every equivocator caught");
    assert!(
        summary.heights >= count * 10,
        "every seed decided at least 10 heights"
    );
    // Real signed transfers and delegations went through the shipped mempool into blocks
    // (every admitted one committed once, or dropped for a stated reason: the checker
    // reports the rest), and crashes tore WAL tails that the restart cut off.
    assert!(
        ex.txs_committed > count as usize && ex.txs_committed * 10 >= ex.txs_admitted * 9,
        "{} of {} admitted transactions committed",
        ex.txs_committed,
        ex.txs_admitted
    );
    // Transactions sent ahead of their predecessor through another node waited in the
    // mempools and committed after it.
    assert!(
        ex.txs_sent_ahead_committed > 0,
        "some transaction sent ahead of its nonce committed"
    );
    // The light client verified the committed headers one after another (a refusal is a
    // violation above): most heights of every seed.
    assert!(
        ex.light_verified * 10 >= summary.heights * 7,
        "the light client verified {} of {} heights",
        ex.light_verified,
        summary.heights
    );
    // Power cuts inside a store write (a block's batch or its flush), at a write chosen by
    // the seed: the checker held those nodes to the others' history and app hashes.
    assert!(
        ex.cuts_in_writes > 0,
        "some power cut landed inside a store write"
    );
    if count >= 50 {
        assert!(ex.torn_wals > 0, "some crash left a torn WAL tail");
        assert!(
            ex.lost_batches > 0,
            "some crash lost unflushed store writes"
        );
    }
}

#[test]
fn four_validators_one_byzantine() {
    at_the_bound(4);
}

#[test]
fn seven_validators_two_byzantine() {
    at_the_bound(7);
}

#[test]
fn ten_validators_three_byzantine() {
    at_the_bound(10);
}

#[test]
fn colluding_equivocators_at_the_bound_stay_safe_and_are_caught() {
    for n in [4, 7] {
        let mut config = SimConfig::new(n, SimConfig::max_byzantine(n), 8);
        config.byzantine_mode = ByzantineMode::Equivocate;
        config.power_mode = PowerMode::Equal;
        let (summary, ex) = run(&config, 1_000, seeds() / 4);
        assert_clean(&config, &summary);
        assert_eq!(ex.caught, ex.equivocators);
        assert!(ex.equivocators > 0);
    }
}

#[test]
fn more_than_a_third_equivocating_breaks_agreement_and_the_checker_reports_it() {
    let mut config = SimConfig::new(4, 2, 10);
    config.byzantine_mode = ByzantineMode::Equivocate;
    config.power_mode = PowerMode::Equal;
    let (summary, _) = run(&config, 0, 40);
    let broken: Vec<u64> = summary
        .violations
        .iter()
        .filter(|(_, v)| matches!(v, Violation::Agreement { .. }))
        .map(|(seed, _)| *seed)
        .collect();
    assert!(
        !broken.is_empty(),
        "2 of 4 colluding equivocators must break agreement in some seed"
    );
    // The reported seed replays to the same violation.
    let again = run_seed(&config, broken[0]);
    assert!(again
        .violations
        .iter()
        .any(|v| matches!(v, Violation::Agreement { .. })));
    assert!(replay_command(&config, broken[0]).contains(&format!("--first-seed {}", broken[0])));
}

#[test]
fn a_silent_third_or_more_halts_the_chain_and_liveness_is_reported() {
    // Two of four silent: the honest half cannot form a quorum, so nothing is decided.
    let mut config = SimConfig::new(4, 2, 5);
    config.byzantine_mode = ByzantineMode::Silent;
    config.power_mode = PowerMode::Equal;
    config.faults = false;
    let report = run_seed(&config, 7);
    assert_eq!(report.min_honest_height, 0);
    assert!(
        matches!(report.violations[..], [Violation::Liveness { .. }]),
        "{:?}",
        report.violations
    );
    // The report says why: no honest quorum.
    let text = report.violations[0].to_string();
    assert!(
        text.contains("honest validators hold 2 of 4 voting power, no quorum"),
        "{text}"
    );
}

#[test]
fn the_same_seed_replays_identically() {
    let config = SimConfig::new(7, 2, 10);
    for seed in [3, 11] {
        let a = run_seed(&config, seed);
        let b = run_seed(&config, seed);
        assert_eq!(
            (a.events, a.messages, a.sim_millis, a.min_honest_height),
            (b.events, b.messages, b.sim_millis, b.min_honest_height)
        );
        assert_eq!(a.violations, b.violations);
    }
    let c = run_seed(&config, 4);
    let d = run_seed(&config, 3);
    assert_ne!(
        (c.events, c.messages),
        (d.events, d.messages),
        "different seeds differ"
    );
}

#[test]
fn the_cli_prints_the_summary_line_and_exits_by_violations() {
    let bin = env!("CARGO_BIN_EXE_basalt-sim");
    let ok = std::process::Command::new(bin)
        .args([
            "--validators",
            "4",
            "--byzantine",
            "1",
            "--seeds",
            "3",
            "--heights",
            "5",
        ])
        .output()
        .expect("run basalt-sim");
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{stdout}");
    assert_eq!(
        stdout.lines().last(),
        Some("seeds=3 heights=5 violations=0")
    );

    let bad = std::process::Command::new(bin)
        .args([
            "--validators",
            "4",
            "--byzantine",
            "2",
            "--seeds",
            "1",
            "--heights",
            "3",
            "--mode",
            "silent",
        ])
        .args(["--equal-power", "--no-faults"])
        .output()
        .expect("run basalt-sim");
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("replay: cargo run --release -p basalt-tests --bin basalt-sim -- --validators 4 --byzantine 2 --seeds 1 --heights 3 --first-seed 0 --mode silent --equal-power --no-faults"), "{stdout}");
    assert_eq!(
        stdout.lines().last(),
        Some("seeds=1 heights=3 violations=1")
    );
}
