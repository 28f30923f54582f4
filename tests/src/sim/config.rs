//! What a simulation run looks like.

use basalt_consensus::TimeoutConfig;
use std::time::Duration;

/// How Byzantine validators misbehave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByzantineMode {
    /// Each Byzantine validator picks equivocation or silence from the seed.
    Mixed,
    /// Two proposals per round when proposing, and different votes to the two halves of the
    /// honest validators (coordinated: every Byzantine validator splits the same way).
    Equivocate,
    /// Never sends anything.
    Silent,
}

impl ByzantineMode {
    pub fn name(self) -> &'static str {
        match self {
            ByzantineMode::Mixed => "mixed",
            ByzantineMode::Equivocate => "equivocate",
            ByzantineMode::Silent => "silent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            ByzantineMode::Mixed,
            ByzantineMode::Equivocate,
            ByzantineMode::Silent,
        ]
        .into_iter()
        .find(|m| m.name() == s)
    }
}

/// How voting power is spread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerMode {
    /// Powers 1..=10 drawn from the seed; the Byzantine validators are the lightest ones, so
    /// their share of power never exceeds their share of seats.
    Random,
    /// Everyone has power 1.
    Equal,
}

/// Link behaviour.
#[derive(Clone, Debug)]
pub struct NetConfig {
    pub min_delay_ms: u64,
    pub max_delay_ms: u64,
    /// Chance that a message gets a long extra delay (reordering).
    pub slow_prob: f64,
    pub slow_extra_ms: u64,
    pub drop_prob: f64,
    pub dup_prob: f64,
    /// Each honest node forwards a new message to this many random peers (gossip).
    pub relay_fanout: usize,
    /// Period of re-gossip of own messages and status (catch-up) exchanges.
    pub tick_ms: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            min_delay_ms: 2,
            max_delay_ms: 50,
            slow_prob: 0.05,
            slow_extra_ms: 250,
            drop_prob: 0.03,
            dup_prob: 0.03,
            relay_fanout: 4,
            tick_ms: 600,
        }
    }
}

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub validators: usize,
    pub byzantine: usize,
    /// Every honest validator must decide at least this many heights, and at least two more
    /// after the last fault has healed.
    pub heights: u64,
    pub byzantine_mode: ByzantineMode,
    pub power_mode: PowerMode,
    /// Partitions and crash-restarts of honest validators.
    pub faults: bool,
    pub net: NetConfig,
    pub timeouts: TimeoutConfig,
    /// Liveness bound: after the last fault heals, each further height must take at most
    /// this much simulated time on average (plus a fixed allowance to catch up).
    pub per_height_bound: Duration,
}

impl SimConfig {
    pub fn new(validators: usize, byzantine: usize, heights: u64) -> Self {
        SimConfig {
            validators,
            byzantine,
            heights,
            byzantine_mode: ByzantineMode::Mixed,
            power_mode: PowerMode::Random,
            faults: true,
            net: NetConfig::default(),
            timeouts: TimeoutConfig {
                propose: Duration::from_millis(200),
                propose_delta: Duration::from_millis(50),
                prevote: Duration::from_millis(100),
                prevote_delta: Duration::from_millis(50),
                precommit: Duration::from_millis(100),
                precommit_delta: Duration::from_millis(50),
                max: Duration::from_millis(2000),
                commit: Duration::from_millis(250),
            },
            per_height_bound: Duration::from_secs(5),
        }
    }

    /// The largest Byzantine count the algorithm tolerates: ⌊(n − 1) / 3⌋.
    pub fn max_byzantine(validators: usize) -> usize {
        validators.saturating_sub(1) / 3
    }
}
