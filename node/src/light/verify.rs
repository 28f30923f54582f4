//! The light client's verification, as pure logic (no I/O, `now` comes in): CometBFT's
//! light-client rules (`light/verifier.go`, tendermint-rs `light-client-verifier`), over
//! Basalt's types.
//!
//! An untrusted light block is accepted from a trusted one when its header hashes to the
//! block its commit signs, its validator sets are the ones the header names, more than 2/3
//! of its own set signed it, it is newer and later than the trusted one, not from the future
//! beyond the clock drift, and the trusted header is still within the trusting period. An
//! adjacent header must be signed by the set the trusted header announced; a skip needs more
//! than the trust level (1/3) of the trusted next set among its signers, else the caller
//! bisects.

use basalt_staking::ValidatorSet;
use basalt_types::{Commit, Header, Timestamp};
use serde::{Deserialize, Serialize};

/// What a light client holds per height: the header, its commit and the two sets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LightBlock {
    pub header: Header,
    pub commit: Commit,
    pub validators: ValidatorSet,
    pub next_validators: ValidatorSet,
}

impl LightBlock {
    pub fn height(&self) -> u64 {
        self.header.height.0
    }

    /// The validator sets are the ones the header names.
    pub fn check_sets(&self) -> Result<(), Invalid> {
        let height = self.height();
        if self.validators.hash() != self.header.validators_hash {
            return Err(Invalid::ValidatorsHash(height));
        }
        if self.next_validators.hash() != self.header.next_validators_hash {
            return Err(Invalid::NextValidatorsHash(height));
        }
        Ok(())
    }
}

/// Verification parameters (CometBFT's defaults: trust level 1/3, 10 s of clock drift).
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Trust level as a fraction (numerator, denominator); at least 1/3.
    pub trust_level: (u64, u64),
    pub trusting_period_s: u64,
    pub clock_drift_s: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            trust_level: (1, 3),
            trusting_period_s: 14 * 24 * 3600,
            clock_drift_s: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("header {height} is for chain {got}, the trusted one for {want}")]
    ChainId {
        height: u64,
        got: String,
        want: String,
    },
    #[error("header {0} does not hash to the block its commit signs")]
    HeaderCommitMismatch(u64),
    #[error("the validator set served for {0} is not the one its header names")]
    ValidatorsHash(u64),
    #[error("the next validator set served for {0} is not the one its header names")]
    NextValidatorsHash(u64),
    #[error("header {0} is signed by a set other than the one the trusted header announced")]
    NotTheAnnouncedSet(u64),
    #[error("the commit of {height} does not verify: {reason}")]
    Commit { height: u64, reason: String },
    #[error("header {height} is not newer than the trusted header {trusted}")]
    NotNewer { height: u64, trusted: u64 },
    #[error("header {0}'s time is not after the trusted header's")]
    TimeNotMonotonic(u64),
    #[error("header {0} is from the future (beyond the allowed clock drift)")]
    FromTheFuture(u64),
    #[error("the trusted header {0} is older than the trusting period; trust a newer one")]
    TrustExpired(u64),
}

/// The outcome of one verification step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Success,
    /// The trusted next set's share among the signers is at most the trust level: verify
    /// a header in between first.
    NotEnoughTrust {
        signed: u64,
        total: u64,
    },
    Invalid(Invalid),
}

fn nanos(t: Timestamp) -> i128 {
    t.as_nanos()
}

/// Checks `untrusted` against `trusted` at time `now` (the client's clock).
pub fn verify(
    trusted: &LightBlock,
    untrusted: &LightBlock,
    options: &Options,
    now: Timestamp,
) -> Verdict {
    match check(trusted, untrusted, options, now) {
        Ok(v) => v,
        Err(e) => Verdict::Invalid(e),
    }
}

fn check(
    trusted: &LightBlock,
    untrusted: &LightBlock,
    options: &Options,
    now: Timestamp,
) -> Result<Verdict, Invalid> {
    let (h, t) = (&untrusted.header, &trusted.header);
    let height = h.height.0;
    let chain_id = &t.chain_id;
    // The block on its own: its sets and its commit.
    untrusted.check_sets()?;
    if untrusted.commit.block_id.hash() != h.hash() || untrusted.commit.height != h.height {
        return Err(Invalid::HeaderCommitMismatch(height));
    }
    // Against the trusted block.
    const NANOS: i128 = 1_000_000_000;
    if nanos(now) >= nanos(t.time) + i128::from(options.trusting_period_s) * NANOS {
        return Err(Invalid::TrustExpired(t.height.0));
    }
    if &h.chain_id != chain_id {
        return Err(Invalid::ChainId {
            height,
            got: h.chain_id.clone(),
            want: chain_id.clone(),
        });
    }
    if height <= t.height.0 {
        return Err(Invalid::NotNewer {
            height,
            trusted: t.height.0,
        });
    }
    if h.time <= t.time {
        return Err(Invalid::TimeNotMonotonic(height));
    }
    if nanos(h.time) >= nanos(now) + i128::from(options.clock_drift_s) * NANOS {
        return Err(Invalid::FromTheFuture(height));
    }
    let adjacent = height == t.height.0 + 1;
    if adjacent && h.validators_hash != t.next_validators_hash {
        return Err(Invalid::NotTheAnnouncedSet(height));
    }
    if !adjacent {
        let (signed, total) = trusted_power_among_signers(trusted, untrusted, chain_id);
        let (num, den) = options.trust_level;
        if u128::from(signed) * u128::from(den) <= u128::from(total) * u128::from(num) {
            return Ok(Verdict::NotEnoughTrust { signed, total });
        }
    }
    untrusted
        .validators
        .verify_commit(
            chain_id,
            h.height,
            &untrusted.commit.block_id,
            &untrusted.commit,
        )
        .map_err(|e| Invalid::Commit {
            height,
            reason: e.to_string(),
        })?;
    Ok(Verdict::Success)
}

/// Power of the trusted next set whose valid precommits are in `untrusted`'s commit, and
/// that set's total power.
fn trusted_power_among_signers(
    trusted: &LightBlock,
    untrusted: &LightBlock,
    chain_id: &str,
) -> (u64, u64) {
    let set = &trusted.next_validators;
    let mut seen = std::collections::BTreeSet::new();
    let signed = untrusted
        .commit
        .signed()
        .filter(|s| seen.insert(s.validator))
        .filter_map(|s| {
            let v = set.get(&s.validator)?;
            let vote = untrusted.commit.precommit(s);
            vote.verify(chain_id, &v.public_key).ok()?;
            Some(v.voting_power)
        })
        .sum();
    (signed, set.total_power())
}

#[cfg(test)]
mod tests;
