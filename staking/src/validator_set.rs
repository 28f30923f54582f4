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
    #[error("validator {0} signed the commit twice")]
    DuplicateSignature(Address),
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
    /// power, each signature valid for `chain_id` (verified as one batch).
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
        let mut seen = BTreeSet::new();
        let mut signed: u64 = 0;
        let mut keys = Vec::with_capacity(commit.signatures.len());
        for sig in &commit.signatures {
            let v = self
                .get(&sig.validator)
                .ok_or(CommitError::UnknownValidator(sig.validator))?;
            if !seen.insert(sig.validator) {
                return Err(CommitError::DuplicateSignature(sig.validator));
            }
            signed += v.voting_power;
            keys.push(v.public_key);
        }
        if !self.is_quorum(signed) {
            return Err(CommitError::InsufficientPower {
                signed,
                total: self.total_power,
            });
        }
        let messages: Vec<Vec<u8>> = commit
            .precommits()
            .map(|p| p.vote.sign_bytes(chain_id))
            .collect();
        let items: Vec<BatchItem> = commit
            .signatures
            .iter()
            .zip(&messages)
            .zip(&keys)
            .map(|((s, m), k)| BatchItem {
                message: m,
                signature: &s.signature,
                public_key: k,
            })
            .collect();
        verify_batch(&items).map_err(|e| match e {
            CryptoError::BatchItemInvalid { index } => CommitError::BadSignature {
                index,
                validator: commit.signatures[index].validator,
            },
            _ => CommitError::BadSignature {
                index: 0,
                validator: commit.signatures[0].validator,
            },
        })
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
