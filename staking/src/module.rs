//! The staking module: validators, delegations as shares, the unbonding queue, the active
//! set, slashing (double sign and downtime), jailing, tombstones and rewards.
//!
//! Pure bookkeeping over tokens held by the module. Account balances live in the runtime:
//! operations that take tokens from an account are called after the runtime debited it,
//! and operations that pay tokens out return [`Payout`]s for the runtime to credit. Every
//! operation checks everything before it changes anything, so an error leaves the state as
//! it was.

use crate::params::{mul_div, Ppm, StakingParams};
use crate::validator_set::Validator;
use basalt_types::{Address, DuplicateVoteEvidence, EvidenceError, Hash, PublicKey};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Why a staking operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StakingError {
    #[error("no validator with operator {0}")]
    UnknownValidator(Address),
    #[error("validator {0} already exists")]
    ValidatorExists(Address),
    #[error("consensus key already used by validator {0}")]
    ConsensusKeyInUse(Address),
    #[error("amount must be positive")]
    ZeroAmount,
    #[error("amount overflows")]
    Overflow,
    #[error("commission must be at most 100% (1000000 ppm)")]
    InvalidCommission,
    #[error("moniker must be 1 to 70 characters")]
    InvalidMoniker,
    #[error("delegation of {delegator} to {validator} is smaller than the amount asked")]
    InsufficientDelegation {
        delegator: Address,
        validator: Address,
    },
    #[error("validator {0} is not jailed")]
    NotJailed(Address),
    #[error("validator {0} is tombstoned for double signing and can never be unjailed")]
    Tombstoned(Address),
    #[error("validator {operator} is jailed until height {until}")]
    StillJailed { operator: Address, until: u64 },
    #[error("only the operator may do this")]
    NotOperator,
}

/// Why evidence was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceRejection {
    #[error("evidence does not verify: {0}")]
    Invalid(EvidenceError),
    #[error("evidence from height {height} is older than the maximum age at height {current}")]
    TooOld { height: u64, current: u64 },
    #[error("evidence is for future height {0}")]
    FromTheFuture(u64),
    #[error("validator {0} was not in the validator set at that height with the claimed power")]
    NotInSet(Address),
    #[error("this misbehaviour was already punished")]
    AlreadyPunished,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub enum BondStatus {
    Bonded,
    /// Left the active set; becomes `Unbonded` after the unbonding period.
    Unbonding {
        until: u64,
    },
    Unbonded,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ValidatorRecord {
    pub operator: Address,
    pub consensus_key: PublicKey,
    pub moniker: String,
    pub commission: Ppm,
    /// Tokens bonded to the validator (self-bond and delegations, after slashes).
    #[serde(with = "crate::amount")]
    pub tokens: u128,
    /// Total delegation shares; a delegation's tokens are `shares × tokens / total shares`.
    #[serde(with = "crate::amount")]
    pub shares: u128,
    pub status: BondStatus,
    pub jailed: bool,
    pub jailed_until: u64,
    pub tombstoned: bool,
}

impl ValidatorRecord {
    pub fn consensus_address(&self) -> Address {
        self.consensus_key.address()
    }

    pub fn power(&self, params: &StakingParams) -> u64 {
        u64::try_from(self.tokens / params.power_reduction.max(1)).unwrap_or(u64::MAX)
    }

    /// Tokens that `shares` of this validator are worth.
    pub fn tokens_for(&self, shares: u128) -> u128 {
        if self.shares == 0 {
            0
        } else {
            mul_div(shares, self.tokens, self.shares)
        }
    }
}

/// Tokens on their way out, paid to `delegator` at `completion_height` unless slashed first.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct UnbondingEntry {
    pub delegator: Address,
    pub validator: Address,
    pub creation_height: u64,
    pub completion_height: u64,
    #[serde(with = "crate::amount")]
    pub initial_balance: u128,
    #[serde(with = "crate::amount")]
    pub balance: u128,
}

/// Liveness record of one validator (by consensus address).
#[derive(
    Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct SigningInfo {
    pub start_height: u64,
    pub index: u64,
    pub missed: Vec<bool>,
    pub missed_count: u64,
}

/// Tokens the runtime must credit to an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payout {
    pub to: Address,
    pub amount: u128,
}

/// What a slash did.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SlashOutcome {
    pub operator: Option<Address>,
    /// Taken from the validator's bonded tokens.
    pub from_bonded: u128,
    /// Taken from unbonding entries that began after the infraction.
    pub from_unbonding: u128,
}

impl SlashOutcome {
    pub fn burned(&self) -> u128 {
        self.from_bonded + self.from_unbonding
    }
}

/// Voting power per consensus address at one height.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
struct PowerSnapshot {
    powers: BTreeMap<Address, u64>,
    total: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct StakingState {
    pub params: StakingParams,
    pub validators: BTreeMap<Address, ValidatorRecord>,
    by_consensus: BTreeMap<Address, Address>,
    /// (validator operator, delegator) → shares.
    pub delegations: BTreeMap<(Address, Address), u128>,
    pub unbonding: Vec<UnbondingEntry>,
    /// The set last handed to consensus: operator → power.
    pub active: BTreeMap<Address, u64>,
    /// Consensus powers from the height they took effect (H+2 of the block that decided them),
    /// kept for `evidence_max_age` blocks to check evidence against the set of its height.
    power_history: BTreeMap<u64, PowerSnapshot>,
    punished: BTreeSet<Hash>,
    pub signing: BTreeMap<Address, SigningInfo>,
}

/// A validator-set change for consensus: power 0 removes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorUpdate {
    pub public_key: PublicKey,
    pub power: u64,
}

impl ValidatorUpdate {
    pub fn to_validator(&self) -> Validator {
        Validator::new(self.public_key, self.power)
    }
}

fn check_moniker(m: &str) -> Result<(), StakingError> {
    let n = m.chars().count();
    if n == 0 || n > 70 || m.chars().any(char::is_control) {
        return Err(StakingError::InvalidMoniker);
    }
    Ok(())
}

impl StakingState {
    pub fn new(params: StakingParams) -> Self {
        StakingState {
            params,
            ..Default::default()
        }
    }

    pub fn validator(&self, operator: &Address) -> Option<&ValidatorRecord> {
        self.validators.get(operator)
    }

    pub fn validator_by_consensus(&self, consensus: &Address) -> Option<&ValidatorRecord> {
        self.by_consensus
            .get(consensus)
            .and_then(|op| self.validators.get(op))
    }

    pub fn delegation_shares(&self, validator: &Address, delegator: &Address) -> u128 {
        self.delegations
            .get(&(*validator, *delegator))
            .copied()
            .unwrap_or(0)
    }

    /// Tokens currently bonded to validators.
    pub fn bonded_tokens(&self) -> u128 {
        self.validators.values().map(|v| v.tokens).sum()
    }

    /// Tokens waiting in the unbonding queue.
    pub fn unbonding_tokens(&self) -> u128 {
        self.unbonding.iter().map(|e| e.balance).sum()
    }

    /// Creates a validator bonded with `self_bond` tokens the runtime already took from the
    /// operator's account.
    pub fn create_validator(
        &mut self,
        operator: Address,
        consensus_key: PublicKey,
        moniker: String,
        commission: Ppm,
        self_bond: u128,
    ) -> Result<(), StakingError> {
        if self.validators.contains_key(&operator) {
            return Err(StakingError::ValidatorExists(operator));
        }
        if let Some(other) = self.by_consensus.get(&consensus_key.address()) {
            return Err(StakingError::ConsensusKeyInUse(*other));
        }
        if self_bond == 0 {
            return Err(StakingError::ZeroAmount);
        }
        if !commission.is_valid() {
            return Err(StakingError::InvalidCommission);
        }
        check_moniker(&moniker)?;
        self.by_consensus.insert(consensus_key.address(), operator);
        self.validators.insert(
            operator,
            ValidatorRecord {
                operator,
                consensus_key,
                moniker,
                commission,
                tokens: self_bond,
                shares: self_bond,
                status: BondStatus::Unbonded,
                jailed: false,
                jailed_until: 0,
                tombstoned: false,
            },
        );
        self.delegations.insert((operator, operator), self_bond);
        Ok(())
    }

    pub fn edit_validator(
        &mut self,
        operator: Address,
        moniker: Option<String>,
        commission: Option<Ppm>,
    ) -> Result<(), StakingError> {
        if !self.validators.contains_key(&operator) {
            return Err(StakingError::UnknownValidator(operator));
        }
        if let Some(m) = &moniker {
            check_moniker(m)?;
        }
        if commission.is_some_and(|c| !c.is_valid()) {
            return Err(StakingError::InvalidCommission);
        }
        let v = self.validators.get_mut(&operator).expect("checked above");
        if let Some(m) = moniker {
            v.moniker = m;
        }
        if let Some(c) = commission {
            v.commission = c;
        }
        Ok(())
    }

    /// Bonds `amount` tokens (already taken from the delegator's account) to `validator`.
    pub fn delegate(
        &mut self,
        delegator: Address,
        validator: Address,
        amount: u128,
    ) -> Result<(), StakingError> {
        if amount == 0 {
            return Err(StakingError::ZeroAmount);
        }
        let v = self
            .validators
            .get(&validator)
            .ok_or(StakingError::UnknownValidator(validator))?;
        let shares = if v.tokens == 0 || v.shares == 0 {
            amount
        } else {
            mul_div(amount, v.shares, v.tokens)
        };
        if shares == 0 {
            return Err(StakingError::ZeroAmount);
        }
        let new_tokens = v.tokens.checked_add(amount).ok_or(StakingError::Overflow)?;
        let new_shares = v.shares.checked_add(shares).ok_or(StakingError::Overflow)?;
        let v = self.validators.get_mut(&validator).expect("checked above");
        v.tokens = new_tokens;
        v.shares = new_shares;
        *self.delegations.entry((validator, delegator)).or_default() += shares;
        Ok(())
    }

    /// Starts unbonding `amount` tokens of `delegator`'s delegation to `validator`; they are
    /// paid out `unbonding_period` blocks after `height`. Returns the tokens put in the queue.
    pub fn undelegate(
        &mut self,
        delegator: Address,
        validator: Address,
        amount: u128,
        height: u64,
    ) -> Result<u128, StakingError> {
        if amount == 0 {
            return Err(StakingError::ZeroAmount);
        }
        let v = self
            .validators
            .get(&validator)
            .ok_or(StakingError::UnknownValidator(validator))?;
        let held = self.delegation_shares(&validator, &delegator);
        let insufficient = StakingError::InsufficientDelegation {
            delegator,
            validator,
        };
        if v.tokens == 0 {
            return Err(insufficient);
        }
        // Shares to burn, rounded up so the validator never pays out more than it holds.
        let shares = mul_div(amount, v.shares, v.tokens);
        let shares = if v.tokens_for(shares) < amount {
            shares + 1
        } else {
            shares
        };
        if shares > held || shares == 0 {
            return Err(insufficient);
        }
        let tokens = v.tokens_for(shares).min(v.tokens);
        let v = self.validators.get_mut(&validator).expect("checked above");
        v.tokens -= tokens;
        v.shares -= shares;
        let left = held - shares;
        if left == 0 {
            self.delegations.remove(&(validator, delegator));
        } else {
            self.delegations.insert((validator, delegator), left);
        }
        self.unbonding.push(UnbondingEntry {
            delegator,
            validator,
            creation_height: height,
            completion_height: height + self.params.unbonding_period,
            initial_balance: tokens,
            balance: tokens,
        });
        Ok(tokens)
    }

    pub fn unjail(&mut self, operator: Address, height: u64) -> Result<(), StakingError> {
        let v = self
            .validators
            .get(&operator)
            .ok_or(StakingError::UnknownValidator(operator))?;
        if v.tombstoned {
            return Err(StakingError::Tombstoned(operator));
        }
        if !v.jailed {
            return Err(StakingError::NotJailed(operator));
        }
        if height < v.jailed_until {
            return Err(StakingError::StillJailed {
                operator,
                until: v.jailed_until,
            });
        }
        self.validators
            .get_mut(&operator)
            .expect("checked above")
            .jailed = false;
        Ok(())
    }

    /// Pays out unbonding entries that complete at or before `height`.
    pub fn mature_unbondings(&mut self, height: u64) -> Vec<Payout> {
        let mut payouts = Vec::new();
        self.unbonding.retain(|e| {
            if e.completion_height <= height {
                if e.balance > 0 {
                    payouts.push(Payout {
                        to: e.delegator,
                        amount: e.balance,
                    });
                }
                false
            } else {
                true
            }
        });
        for v in self.validators.values_mut() {
            if let BondStatus::Unbonding { until } = v.status {
                if until <= height {
                    v.status = BondStatus::Unbonded;
                }
            }
        }
        payouts
    }

    /// Top `max_validators` by power among validators not jailed with power ≥ 1, ties to the
    /// lower operator address.
    fn compute_active(&self) -> BTreeMap<Address, u64> {
        let mut candidates: Vec<(u64, Address)> = self
            .validators
            .values()
            .filter(|v| !v.jailed)
            .map(|v| (v.power(&self.params), v.operator))
            .filter(|(p, _)| *p >= 1)
            .collect();
        candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        candidates.truncate(self.params.max_validators as usize);
        candidates.into_iter().map(|(p, a)| (a, p)).collect()
    }

    /// End of block `height`: recomputes the active set and returns the changes for
    /// consensus. They take effect at `height + 2` (recorded for evidence checks).
    pub fn end_block(&mut self, height: u64) -> Vec<ValidatorUpdate> {
        self.rotate(height, height + 2)
    }

    /// The genesis set: in force from `initial_height` itself.
    pub fn init_genesis_set(&mut self, initial_height: u64) -> Vec<ValidatorUpdate> {
        self.rotate(initial_height, initial_height)
    }

    fn rotate(&mut self, height: u64, effective: u64) -> Vec<ValidatorUpdate> {
        let next = self.compute_active();
        let mut updates = Vec::new();
        for (op, power) in &next {
            if self.active.get(op) != Some(power) {
                updates.push(ValidatorUpdate {
                    public_key: self.validators[op].consensus_key,
                    power: *power,
                });
            }
        }
        for op in self.active.keys() {
            if !next.contains_key(op) {
                if let Some(v) = self.validators.get(op) {
                    updates.push(ValidatorUpdate {
                        public_key: v.consensus_key,
                        power: 0,
                    });
                }
            }
        }
        let period = self.params.unbonding_period;
        for (op, v) in self.validators.iter_mut() {
            let bonded = next.contains_key(op);
            v.status = match (bonded, v.status) {
                (true, _) => BondStatus::Bonded,
                (false, BondStatus::Bonded) => BondStatus::Unbonding {
                    until: height + period,
                },
                (false, other) => other,
            };
        }
        if !updates.is_empty() {
            let snapshot = PowerSnapshot {
                powers: next
                    .iter()
                    .map(|(op, p)| (self.validators[op].consensus_address(), *p))
                    .collect(),
                total: next.values().sum(),
            };
            self.power_history.insert(effective, snapshot);
        }
        self.active = next;
        self.prune_history(height);
        updates
    }

    fn prune_history(&mut self, height: u64) {
        let horizon = height.saturating_sub(self.params.evidence_max_age);
        // Keep the newest snapshot at or before the horizon: it is still in force there.
        let keep_from = self
            .power_history
            .range(..=horizon)
            .next_back()
            .map(|(h, _)| *h);
        if let Some(k) = keep_from {
            self.power_history = self.power_history.split_off(&k);
        }
    }

    /// Consensus power of `consensus` at `height` and the total, if it was in the set.
    pub fn power_at(&self, consensus: &Address, height: u64) -> Option<(u64, u64)> {
        let (_, snap) = self.power_history.range(..=height).next_back()?;
        snap.powers.get(consensus).map(|p| (*p, snap.total))
    }

    /// Everything `handle_double_sign` checks, without punishing: the node uses it to admit
    /// evidence to its pool and to judge the evidence in a proposed block. Returns the
    /// operator of the accused validator.
    pub fn check_double_sign(
        &self,
        chain_id: &str,
        ev: &DuplicateVoteEvidence,
        current_height: u64,
    ) -> Result<Address, EvidenceRejection> {
        let height = ev.vote_a.vote.height.0;
        if height > current_height {
            return Err(EvidenceRejection::FromTheFuture(height));
        }
        if current_height - height > self.params.evidence_max_age {
            return Err(EvidenceRejection::TooOld {
                height,
                current: current_height,
            });
        }
        let consensus = ev.vote_a.vote.validator;
        let (power, total) = self
            .power_at(&consensus, height)
            .ok_or(EvidenceRejection::NotInSet(consensus))?;
        if power != ev.validator_power || total != ev.total_power {
            return Err(EvidenceRejection::NotInSet(consensus));
        }
        let operator = *self
            .by_consensus
            .get(&consensus)
            .ok_or(EvidenceRejection::NotInSet(consensus))?;
        let v = &self.validators[&operator];
        ev.verify(chain_id, &v.consensus_key)
            .map_err(EvidenceRejection::Invalid)?;
        if v.tombstoned || self.punished.contains(&Hash::of(ev)) {
            return Err(EvidenceRejection::AlreadyPunished);
        }
        Ok(operator)
    }

    /// Verifies duplicate-vote evidence against the set of its height and punishes: slash
    /// `slash_fraction_double_sign` of the stake bonded at the infraction (power ×
    /// power_reduction), first from unbonding entries that began after it, then from the
    /// bonded tokens; jail; tombstone. The tokens are burned (the caller lowers the supply).
    pub fn handle_double_sign(
        &mut self,
        chain_id: &str,
        ev: &DuplicateVoteEvidence,
        current_height: u64,
    ) -> Result<SlashOutcome, EvidenceRejection> {
        let operator = self.check_double_sign(chain_id, ev, current_height)?;
        let height = ev.vote_a.vote.height.0;
        let power = ev.validator_power;
        let id = Hash::of(ev);
        self.punished.insert(id);
        let fraction = self.params.slash_fraction_double_sign;
        let stake = power as u128 * self.params.power_reduction;
        let mut outcome = self.slash(operator, height, stake, fraction);
        let v = self.validators.get_mut(&operator).expect("present");
        v.jailed = true;
        v.tombstoned = true;
        v.jailed_until = u64::MAX;
        outcome.operator = Some(operator);
        Ok(outcome)
    }

    /// Takes `fraction` of `stake`: unbonding entries of `operator` created after
    /// `infraction_height` lose `fraction` of their initial balance, the rest comes from the
    /// bonded tokens (never more than they hold).
    fn slash(
        &mut self,
        operator: Address,
        infraction_height: u64,
        stake: u128,
        fraction: Ppm,
    ) -> SlashOutcome {
        let mut remaining = fraction.of(stake);
        let mut from_unbonding = 0;
        for e in self.unbonding.iter_mut() {
            if e.validator == operator && e.creation_height > infraction_height && remaining > 0 {
                let cut = fraction.of(e.initial_balance).min(e.balance).min(remaining);
                e.balance -= cut;
                remaining -= cut;
                from_unbonding += cut;
            }
        }
        let v = self.validators.get_mut(&operator).expect("caller checked");
        let from_bonded = remaining.min(v.tokens);
        v.tokens -= from_bonded;
        SlashOutcome {
            operator: Some(operator),
            from_bonded,
            from_unbonding,
        }
    }

    /// Begin of block `height`: records who signed the previous block's commit among the
    /// active set, and jails (with a small slash) validators that missed too many of the last
    /// `signed_blocks_window` blocks. Returns the slashes.
    pub fn record_liveness(
        &mut self,
        height: u64,
        signers: &BTreeSet<Address>,
    ) -> Vec<SlashOutcome> {
        let window = self.params.signed_blocks_window.max(1);
        let min_signed = self.params.min_signed_per_window.of(window as u128) as u64;
        let max_missed = window - min_signed.min(window);
        let mut to_jail = Vec::new();
        for op in self.active.keys() {
            let v = &self.validators[op];
            let cons = v.consensus_address();
            let info = self.signing.entry(cons).or_insert_with(|| SigningInfo {
                start_height: height,
                index: 0,
                missed: vec![false; window as usize],
                missed_count: 0,
            });
            if info.missed.len() != window as usize {
                info.missed = vec![false; window as usize];
                info.missed_count = 0;
            }
            let slot = (info.index % window) as usize;
            let missed = !signers.contains(&cons);
            match (info.missed[slot], missed) {
                (false, true) => info.missed_count += 1,
                (true, false) => info.missed_count -= 1,
                _ => {}
            }
            info.missed[slot] = missed;
            info.index += 1;
            if height >= info.start_height + window && info.missed_count > max_missed && !v.jailed {
                to_jail.push(*op);
            }
        }
        let mut outcomes = Vec::new();
        for op in to_jail {
            let tokens = self.validators[&op].tokens;
            let fraction = self.params.slash_fraction_downtime;
            // Downtime takes a fraction of the current bonded tokens only.
            let mut o = self.slash(op, u64::MAX, tokens, fraction);
            o.operator = Some(op);
            let v = self.validators.get_mut(&op).expect("active");
            v.jailed = true;
            v.jailed_until = height + self.params.downtime_jail_duration;
            let cons = v.consensus_address();
            if let Some(info) = self.signing.get_mut(&cons) {
                info.missed.iter_mut().for_each(|m| *m = false);
                info.missed_count = 0;
                info.start_height = height;
            }
            outcomes.push(o);
        }
        outcomes
    }

    /// Splits `pot` among the validators (by consensus address) that signed the commit of
    /// `signed_height`, in proportion to their power in that height's set; each validator's
    /// share pays commission to its operator and the rest to its delegators by shares.
    /// Rounding dust goes to the operator. Returns the payouts, which add up to `pot` exactly
    /// (or nothing when nobody signed).
    pub fn distribute_rewards(
        &self,
        pot: u128,
        signers: &BTreeSet<Address>,
        signed_height: u64,
    ) -> Vec<Payout> {
        let recipients: Vec<(Address, u64)> = signers
            .iter()
            .filter_map(|c| {
                let (power, _) = self.power_at(c, signed_height)?;
                self.by_consensus.get(c).map(|op| (*op, power))
            })
            .filter(|(op, _)| self.validators.contains_key(op))
            .collect();
        let total: u128 = recipients.iter().map(|(_, p)| *p as u128).sum();
        if pot == 0 || total == 0 {
            return Vec::new();
        }
        let mut payouts = Vec::new();
        let mut given = 0u128;
        for (i, (op, power)) in recipients.iter().enumerate() {
            let share = if i + 1 == recipients.len() {
                pot - given
            } else {
                mul_div(pot, *power as u128, total)
            };
            given += share;
            let v = &self.validators[op];
            let commission = v.commission.of(share);
            let to_delegators = share - commission;
            let mut paid = commission;
            let delegations = self
                .delegations
                .range((*op, Address([0; 20]))..=(*op, Address([0xff; 20])));
            for ((_, delegator), shares) in delegations {
                let amount = if v.shares == 0 {
                    0
                } else {
                    mul_div(to_delegators, *shares, v.shares)
                };
                if amount > 0 {
                    payouts.push(Payout {
                        to: *delegator,
                        amount,
                    });
                    paid += amount;
                }
            }
            let operator_total = commission + (share - paid);
            if operator_total > 0 {
                payouts.push(Payout {
                    to: *op,
                    amount: operator_total,
                });
            }
        }
        payouts
    }
}
