//! A validator set with voting power and CometBFT's weighted round-robin proposer selection.
//!
//! The proposer algorithm must match CometBFT bit for bit (its test vectors are below):
//! validators that disagree on the proposer cannot make progress. Each step:
//! 1. rescale priorities so that max − min ≤ 2 × total power (divide each by
//!    ⌈diff / (2 × total)⌉, truncating toward zero);
//! 2. subtract the floor of the average priority (centering);
//! 3. add each validator's voting power to its priority;
//! 4. the highest priority proposes (ties go to the lower address) and pays total power.
//!
//! Steps 1–2 run once per call of [`ValidatorSet::increment_proposer_priority`], step 3–4
//! `times` times, as CometBFT's `IncrementProposerPriority(times)` does.

use basalt_types::{verify_batch, Address, BatchItem, Commit, CryptoError, Hash, PublicKey};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

/// CometBFT's bound: priorities stay far from i64 overflow with this much total power.
pub const MAX_TOTAL_VOTING_POWER: u64 = (i64::MAX / 8) as u64;

/// How wide (in multiples of total power) the spread of priorities may become.
const PRIORITY_WINDOW_SIZE_FACTOR: i64 = 2;

/// One validator: identity, weight and proposer priority.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Validator {
    pub address: Address,
    pub public_key: PublicKey,
    pub voting_power: u64,
    pub proposer_priority: i64,
}

impl Validator {
    /// A validator whose address is derived from its key (the normal case).
    pub fn new(public_key: PublicKey, voting_power: u64) -> Self {
        Validator {
            address: public_key.address(),
            public_key,
            voting_power,
            proposer_priority: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidatorSetError {
    #[error("a validator set cannot be empty")]
    Empty,
    #[error("validator {0} appears twice")]
    Duplicate(Address),
    #[error("validator {0} has zero voting power")]
    ZeroPower(Address),
    #[error("total voting power would exceed the maximum {MAX_TOTAL_VOTING_POWER}")]
    TotalPowerOverflow,
    #[error("cannot remove validator {0}: not in the set")]
    RemoveUnknown(Address),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    #[error("commit is for height {got}, expected {expected}")]
    WrongHeight { expected: u64, got: u64 },
    #[error("commit is for another block")]
    WrongBlock,
    #[error("commit signer {0} is not in the validator set")]
    UnknownValidator(Address),
    #[error("commit has {got} entries for a set of {expected} validators")]
    WrongSize { expected: usize, got: usize },
    #[error("commit entry {index} is validator {validator}'s, out of the set's order")]
    WrongPosition { index: usize, validator: Address },
    #[error("commit signature {index} (validator {validator}) does not verify")]
    BadSignature { index: usize, validator: Address },
    #[error("commit carries {signed} of {total} voting power: more than two thirds needed")]
    InsufficientPower { signed: u64, total: u64 },
}

/// The validators of one height, sorted by voting power (descending) then address, as
/// CometBFT orders them. Cloning is cheap enough to derive the proposer of later rounds.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    total_power: u64,
    proposer: Option<Address>,
}

impl ValidatorSet {
    /// The set at genesis: every validator enters as new, then one increment picks the
    /// proposer of the first height (CometBFT's `NewValidatorSet`).
    pub fn new(validators: Vec<Validator>) -> Result<Self, ValidatorSetError> {
        if validators.is_empty() {
            return Err(ValidatorSetError::Empty);
        }
        if let Some(v) = validators.iter().find(|v| v.voting_power == 0) {
            return Err(ValidatorSetError::ZeroPower(v.address));
        }
        let mut set = ValidatorSet {
            validators: Vec::new(),
            total_power: 0,
            proposer: None,
        };
        set.update(validators)?;
        set.increment_proposer_priority(1);
        Ok(set)
    }

    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    pub fn len(&self) -> usize {
        self.validators.len()
    }

    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    pub fn total_power(&self) -> u64 {
        self.total_power
    }

    pub fn get(&self, address: &Address) -> Option<&Validator> {
        self.validators.iter().find(|v| v.address == *address)
    }

    pub fn index_of(&self, address: &Address) -> Option<usize> {
        self.validators.iter().position(|v| v.address == *address)
    }

    /// "2f+1": strictly more than two thirds of the total power.
    pub fn is_quorum(&self, power: u64) -> bool {
        (power as u128) * 3 > (self.total_power as u128) * 2
    }

    /// "f+1": strictly more than one third of the total power, so at least one honest
    /// validator is among the holders.
    pub fn is_one_third(&self, power: u64) -> bool {
        (power as u128) * 3 > self.total_power as u128
    }

    /// The proposer chosen by the last increment.
    pub fn proposer(&self) -> Option<&Validator> {
        self.proposer.as_ref().and_then(|a| self.get(a))
    }

    /// The proposer of `round` at this set's height: a copy advanced `round` more times.
    /// A set whose priorities were never advanced (no proposer yet) first takes the one
    /// increment that every height starts with.
    pub fn proposer_for_round(&self, round: u32) -> Address {
        let times = round.saturating_add(u32::from(self.proposer.is_none()));
        if times == 0 {
            if let Some(p) = self.proposer {
                return p;
            }
        }
        let mut copy = self.clone();
        copy.increment_proposer_priority(times);
        copy.proposer.unwrap_or(self.validators[0].address)
    }

    /// CometBFT's `IncrementProposerPriority(times)`.
    pub fn increment_proposer_priority(&mut self, times: u32) {
        if times == 0 || self.validators.is_empty() {
            return;
        }
        let total = self.total_power as i64;
        self.rescale_priorities(PRIORITY_WINDOW_SIZE_FACTOR * total);
        self.shift_by_average_priority();
        let mut proposer = self.validators[0].address;
        for _ in 0..times {
            proposer = self.increment_once();
        }
        self.proposer = Some(proposer);
    }

    fn increment_once(&mut self) -> Address {
        for v in &mut self.validators {
            v.proposer_priority = v.proposer_priority.saturating_add(v.voting_power as i64);
        }
        let mut best = 0;
        for (i, v) in self.validators.iter().enumerate().skip(1) {
            let b = &self.validators[best];
            if v.proposer_priority > b.proposer_priority
                || (v.proposer_priority == b.proposer_priority && v.address < b.address)
            {
                best = i;
            }
        }
        let total = self.total_power as i64;
        let chosen = &mut self.validators[best];
        chosen.proposer_priority = chosen.proposer_priority.saturating_sub(total);
        chosen.address
    }

    fn rescale_priorities(&mut self, diff_max: i64) {
        if diff_max <= 0 {
            return;
        }
        let max = self
            .validators
            .iter()
            .map(|v| v.proposer_priority)
            .max()
            .unwrap_or(0);
        let min = self
            .validators
            .iter()
            .map(|v| v.proposer_priority)
            .min()
            .unwrap_or(0);
        let diff = ((max as i128) - (min as i128)).min(i64::MAX as i128) as i64;
        if diff > diff_max {
            let ratio = (diff as i128 + diff_max as i128 - 1) / diff_max as i128;
            for v in &mut self.validators {
                // Rust's `/` truncates toward zero, like Go's.
                v.proposer_priority = (v.proposer_priority as i128 / ratio) as i64;
            }
        }
    }

    fn shift_by_average_priority(&mut self) {
        let n = self.validators.len() as i128;
        let sum: i128 = self
            .validators
            .iter()
            .map(|v| v.proposer_priority as i128)
            .sum();
        // Go's big.Int Div is Euclidean: the floor for a positive divisor.
        let avg = sum.div_euclid(n) as i64;
        for v in &mut self.validators {
            v.proposer_priority = v.proposer_priority.saturating_sub(avg);
        }
    }

    /// Applies validator changes with CometBFT's rules (`UpdateWithChangeSet`): power 0
    /// removes, a new address joins at −1.125 × (total after updates, before removals),
    /// an existing one keeps its priority; then rescale and center. Nothing changes on error.
    pub fn update(&mut self, changes: Vec<Validator>) -> Result<(), ValidatorSetError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut seen = BTreeSet::new();
        for c in &changes {
            if !seen.insert(c.address) {
                return Err(ValidatorSetError::Duplicate(c.address));
            }
        }
        let current: HashMap<Address, &Validator> =
            self.validators.iter().map(|v| (v.address, v)).collect();
        let (updates, removals): (Vec<Validator>, Vec<Validator>) =
            changes.into_iter().partition(|c| c.voting_power > 0);

        let mut removed_power: u64 = 0;
        for r in &removals {
            match current.get(&r.address) {
                Some(v) => removed_power += v.voting_power,
                None => return Err(ValidatorSetError::RemoveUnknown(r.address)),
            }
        }
        // Total after updates but before removals, checked for overflow.
        let mut after_updates: i128 = self.total_power as i128;
        for u in &updates {
            if u.voting_power > MAX_TOTAL_VOTING_POWER {
                return Err(ValidatorSetError::TotalPowerOverflow);
            }
            let old = current.get(&u.address).map_or(0, |v| v.voting_power);
            after_updates += u.voting_power as i128 - old as i128;
        }
        if after_updates - removed_power as i128 > MAX_TOTAL_VOTING_POWER as i128
            || after_updates > MAX_TOTAL_VOTING_POWER as i128
        {
            return Err(ValidatorSetError::TotalPowerOverflow);
        }
        let after_updates = after_updates as i64;
        let new_priority = -(after_updates + (after_updates >> 3));

        let mut next: Vec<Validator> = self.validators.clone();
        for mut u in updates {
            match next.iter_mut().find(|v| v.address == u.address) {
                Some(existing) => {
                    existing.voting_power = u.voting_power;
                    existing.public_key = u.public_key;
                }
                None => {
                    u.proposer_priority = new_priority;
                    next.push(u);
                }
            }
        }
        let removed: BTreeSet<Address> = removals.iter().map(|r| r.address).collect();
        next.retain(|v| !removed.contains(&v.address));
        if next.is_empty() {
            return Err(ValidatorSetError::Empty);
        }

        self.total_power = next.iter().map(|v| v.voting_power).sum();
        self.validators = next;
        if self.proposer.is_some_and(|p| removed.contains(&p)) {
            self.proposer = None;
        }
        self.rescale_priorities(PRIORITY_WINDOW_SIZE_FACTOR * self.total_power as i64);
        self.shift_by_average_priority();
        sort_by_power(&mut self.validators);
        Ok(())
    }

    /// Commits to the set's membership and powers (not priorities), for
    /// `validators_hash` in block headers: CometBFT's `ValidatorSet.Hash()` over the set in
    /// its order (power, then address), which a Tendermint light client recomputes.
    pub fn hash(&self) -> Hash {
        let members: Vec<([u8; 32], i64)> = self
            .validators
            .iter()
            .map(|v| (v.public_key.to_bytes(), v.voting_power as i64))
            .collect();
        Hash(basalt_types::canonical::validators_hash(&members))
    }

    /// Checks that `commit` finalises `block_id` at `height` with more than 2/3 of this set's
    /// power: one entry per validator in the set's order (CometBFT's `VerifyCommit` layout),
    /// each signature valid for `chain_id` (verified as one batch).
    pub fn verify_commit(
        &self,
        chain_id: &str,
        height: basalt_types::Height,
        block_id: &basalt_types::BlockId,
        commit: &Commit,
    ) -> Result<(), CommitError> {
        if commit.height != height {
            return Err(CommitError::WrongHeight {
                expected: height.0,
                got: commit.height.0,
            });
        }
        if commit.block_id != *block_id {
            return Err(CommitError::WrongBlock);
        }
        if commit.signatures.len() != self.validators.len() {
            return Err(CommitError::WrongSize {
                expected: self.validators.len(),
                got: commit.signatures.len(),
            });
        }
        let mut signed: u64 = 0;
        let mut entries = Vec::with_capacity(commit.signatures.len());
        for (index, (slot, v)) in commit.signatures.iter().zip(&self.validators).enumerate() {
            let Some(sig) = slot else { continue };
            if sig.validator != v.address {
                return Err(if self.get(&sig.validator).is_some() {
                    CommitError::WrongPosition {
                        index,
                        validator: sig.validator,
                    }
                } else {
                    CommitError::UnknownValidator(sig.validator)
                });
            }
            signed += v.voting_power;
            let message = commit.precommit(sig).sign_bytes(chain_id);
            entries.push((index, sig, v.public_key, message));
        }
        if !self.is_quorum(signed) {
            return Err(CommitError::InsufficientPower {
                signed,
                total: self.total_power,
            });
        }
        let items: Vec<BatchItem> = entries
            .iter()
            .map(|(_, s, k, m)| BatchItem {
                message: m,
                signature: &s.signature,
                public_key: k,
            })
            .collect();
        verify_batch(&items).map_err(|e| {
            let item = match e {
                CryptoError::BatchItemInvalid { index } => index,
                _ => 0,
            };
            let (index, sig, _, _) = &entries[item.min(entries.len() - 1)];
            CommitError::BadSignature {
                index: *index,
                validator: sig.validator,
            }
        })
    }

    /// BFT time: the median of the commit's precommit timestamps weighted by voting power
    /// in this set (the set that signed it), what the next block's header time must be. The
    /// median is the first time (ascending) at which the power stamped at or before it is
    /// more than half the signed power, so it lies between honest timestamps: the signers
    /// hold more than 2/3 of the set's power and the faulty less than 1/3, less than half of
    /// theirs. (CometBFT's `weightedMedian` stops at half rounded down, which with small
    /// equal powers, three signers of power 1, lets the one faulty signer set the time.)
    /// Every honest precommit is stamped after its block's time, so block times only move
    /// forward. `None` for a commit with no signer of this set.
    pub fn median_time(&self, commit: &Commit) -> Option<basalt_types::Timestamp> {
        let mut stamps: Vec<(basalt_types::Timestamp, u64)> = commit
            .signatures
            .iter()
            .zip(&self.validators)
            .filter_map(|(s, v)| s.as_ref().map(|s| (s.timestamp, v.voting_power)))
            .collect();
        stamps.sort();
        let total: u128 = stamps.iter().map(|s| u128::from(s.1)).sum();
        let mut before: u128 = 0;
        for (t, power) in stamps {
            before += u128::from(power);
            if 2 * before > total {
                return Some(t);
            }
        }
        None
    }
}

fn sort_by_power(validators: &mut [Validator]) {
    validators.sort_by(|a, b| {
        b.voting_power
            .cmp(&a.voting_power)
            .then(a.address.cmp(&b.address))
    });
}

#[cfg(test)]
mod tests;
