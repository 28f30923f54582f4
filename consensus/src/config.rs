//! Engine configuration: the chain id and the timeouts.

use std::time::Duration;

/// Timeouts grow linearly with the round, `base + round × delta`, up to `max`. CometBFT lets
/// them grow without bound, which made recovery after a long halt slow: the cap keeps every
/// round short enough to retry often once the network heals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeoutConfig {
    pub propose: Duration,
    pub propose_delta: Duration,
    pub prevote: Duration,
    pub prevote_delta: Duration,
    pub precommit: Duration,
    pub precommit_delta: Duration,
    /// Upper bound for any of the three timeouts above.
    pub max: Duration,
    /// Pause after a decision before the next height starts (0 allowed). Carried out by
    /// the node, which starts the next height with `Input::NewHeight`.
    pub commit: Duration,
}

impl Default for TimeoutConfig {
    /// CometBFT's defaults (3 s / 0.5 s, 1 s / 0.5 s, 1 s / 0.5 s, commit 1 s), capped at 30 s.
    fn default() -> Self {
        TimeoutConfig {
            propose: Duration::from_millis(3000),
            propose_delta: Duration::from_millis(500),
            prevote: Duration::from_millis(1000),
            prevote_delta: Duration::from_millis(500),
            precommit: Duration::from_millis(1000),
            precommit_delta: Duration::from_millis(500),
            max: Duration::from_secs(30),
            commit: Duration::from_millis(1000),
        }
    }
}

impl TimeoutConfig {
    fn grow(base: Duration, delta: Duration, round: u32, max: Duration) -> Duration {
        base.saturating_add(delta.saturating_mul(round)).min(max)
    }
    pub fn propose(&self, round: u32) -> Duration {
        Self::grow(self.propose, self.propose_delta, round, self.max)
    }
    pub fn prevote(&self, round: u32) -> Duration {
        Self::grow(self.prevote, self.prevote_delta, round, self.max)
    }
    pub fn precommit(&self, round: u32) -> Duration {
        Self::grow(self.precommit, self.precommit_delta, round, self.max)
    }
}

/// Everything the engine needs to know that does not change between heights.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Signatures are checked against this chain id (it is part of the sign bytes).
    pub chain_id: String,
    pub timeouts: TimeoutConfig,
    /// Messages for rounds further than this above the current round are refused, so that a
    /// Byzantine validator cannot make the vote keeper grow without bound.
    pub max_rounds_ahead: u32,
}

impl EngineConfig {
    pub fn new(chain_id: impl Into<String>) -> Self {
        EngineConfig {
            chain_id: chain_id.into(),
            timeouts: TimeoutConfig::default(),
            max_rounds_ahead: 1000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_grow_per_round_and_stop_at_the_cap() {
        let t = TimeoutConfig::default();
        assert_eq!(t.propose(0), Duration::from_millis(3000));
        assert_eq!(t.propose(2), Duration::from_millis(4000));
        assert_eq!(t.prevote(3), Duration::from_millis(2500));
        assert_eq!(t.precommit(1), Duration::from_millis(1500));
        assert_eq!(t.propose(1_000_000), Duration::from_secs(30));
        assert_eq!(t.precommit(u32::MAX), Duration::from_secs(30));
    }
}
