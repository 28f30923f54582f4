//! Basalt's staking module: the consensus validator set (with CometBFT proposer priority),
//! bonding, delegation as shares, unbonding, active-set rotation, slashing, jailing,
//! tombstones and rewards.

pub mod amount;
pub mod module;
pub mod params;
pub mod schedule;
pub mod validator_set;

pub use module::{
    BondStatus, EvidenceRejection, Payout, SigningInfo, SlashOutcome, StakingError, StakingState,
    UnbondingEntry, ValidatorRecord, ValidatorUpdate,
};
pub use params::{mul_div, Ppm, StakingParams};
pub use schedule::ValidatorSchedule;
pub use validator_set::{
    CommitError, Validator, ValidatorSet, ValidatorSetError, MAX_TOTAL_VOTING_POWER,
};
