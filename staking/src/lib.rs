//! Basalt's staking module. For now: the validator set with voting power, the BFT
//! thresholds and CometBFT's proposer-priority algorithm. Bonding, delegation, unbonding,
//! slashing and rewards build on this set.

pub mod validator_set;

pub use validator_set::{
    CommitError, Validator, ValidatorSet, ValidatorSetError, MAX_TOTAL_VOTING_POWER,
};
