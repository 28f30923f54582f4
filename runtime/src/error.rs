//! Why a transaction failed, with the stable numeric code clients see (0 is success).

use basalt_staking::StakingError;
use basalt_types::Address;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("malformed transaction: {0}")]
    Malformed(String),
    #[error("transaction is {size} bytes, over the {max} byte limit")]
    TooLarge { size: usize, max: usize },
    #[error("transaction is for chain {got:?}, this is {expected:?}")]
    WrongChainId { expected: String, got: String },
    #[error("signature does not verify")]
    InvalidSignature,
    #[error("nonce {got} is ahead of the account's next nonce {expected}")]
    NonceTooHigh { expected: u64, got: u64 },
    #[error("nonce {got} was already used (next is {expected}): replay refused")]
    NonceAlreadyUsed { expected: u64, got: u64 },
    #[error("insufficient funds: need {needed}, account {account} has {available}")]
    InsufficientFunds {
        account: Address,
        needed: u128,
        available: u128,
    },
    #[error("unknown validator {0}")]
    UnknownValidator(Address),
    #[error("amount must be positive")]
    ZeroAmount,
    #[error("amount overflows")]
    Overflow,
    #[error("validator {0} already exists")]
    ValidatorExists(Address),
    #[error("validator {0} is not jailed")]
    NotJailed(Address),
    #[error("validator {0} is tombstoned and can never be unjailed")]
    Tombstoned(Address),
    #[error("validator {operator} is jailed until height {until}")]
    StillJailed { operator: Address, until: u64 },
    #[error("delegation of {delegator} to {validator} is smaller than the amount")]
    InsufficientDelegation {
        delegator: Address,
        validator: Address,
    },
    #[error("commission must be at most 1000000 ppm (100%)")]
    InvalidCommission,
    #[error("moniker must be 1 to 70 printable characters")]
    InvalidMoniker,
    #[error("consensus key already used by validator {0}")]
    ConsensusKeyInUse(Address),
    #[error("only a validator's operator may do this")]
    NotOperator,
}

impl TxError {
    /// The code reported by `check_tx` / `deliver_tx`; stable, distinct, never 0.
    pub fn code(&self) -> u32 {
        match self {
            TxError::Malformed(_) => 1,
            TxError::TooLarge { .. } => 2,
            TxError::WrongChainId { .. } => 3,
            TxError::InvalidSignature => 4,
            TxError::NonceTooHigh { .. } => 5,
            TxError::NonceAlreadyUsed { .. } => 6,
            TxError::InsufficientFunds { .. } => 7,
            TxError::UnknownValidator(_) => 8,
            TxError::ZeroAmount => 9,
            TxError::Overflow => 10,
            TxError::ValidatorExists(_) => 11,
            TxError::NotJailed(_) => 12,
            TxError::Tombstoned(_) => 13,
            TxError::StillJailed { .. } => 14,
            TxError::InsufficientDelegation { .. } => 15,
            TxError::InvalidCommission => 16,
            TxError::InvalidMoniker => 17,
            TxError::ConsensusKeyInUse(_) => 18,
            TxError::NotOperator => 19,
        }
    }
}

impl From<StakingError> for TxError {
    fn from(e: StakingError) -> Self {
        match e {
            StakingError::UnknownValidator(a) => TxError::UnknownValidator(a),
            StakingError::ValidatorExists(a) => TxError::ValidatorExists(a),
            StakingError::ConsensusKeyInUse(a) => TxError::ConsensusKeyInUse(a),
            StakingError::ZeroAmount => TxError::ZeroAmount,
            StakingError::Overflow => TxError::Overflow,
            StakingError::InvalidCommission => TxError::InvalidCommission,
            StakingError::InvalidMoniker => TxError::InvalidMoniker,
            StakingError::InsufficientDelegation {
                delegator,
                validator,
            } => TxError::InsufficientDelegation {
                delegator,
                validator,
            },
            StakingError::NotJailed(a) => TxError::NotJailed(a),
            StakingError::Tombstoned(a) => TxError::Tombstoned(a),
            StakingError::StillJailed { operator, until } => {
                TxError::StillJailed { operator, until }
            }
            StakingError::NotOperator => TxError::NotOperator,
        }
    }
}
