//! The genesis file: what a chain starts from. JSON at the edge (operators edit it), borsh
//! for its hash, so that two files that differ only in formatting describe the same chain.

use basalt_staking::{Ppm, StakingParams};
use basalt_types::{Address, Hash, PublicKey};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Why a genesis file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    #[error("genesis file is not valid JSON for this format: {0}")]
    Parse(String),
    #[error("chain_id must be 1 to 50 characters of letters, digits, '-', '_' or '.' (got {0:?})")]
    ChainId(String),
    #[error("genesis_time must be an RFC 3339 UTC time such as 2026-01-01T00:00:00Z (got {0:?})")]
    GenesisTime(String),
    #[error("initial_height must be at least 1")]
    InitialHeight,
    #[error("no validators: the chain could never produce a block")]
    NoValidators,
    #[error("validator operator {0} appears twice")]
    DuplicateValidator(Address),
    #[error("the consensus key with address {0} is used by two validators")]
    DuplicateConsensusKey(Address),
    #[error("account {0} appears twice")]
    DuplicateAccount(Address),
    #[error("validator {operator} has zero voting power: self_bond {self_bond} is below power_reduction {power_reduction}")]
    ZeroPower {
        operator: Address,
        self_bond: u128,
        power_reduction: u128,
    },
    #[error("validator {0}: commission must be at most 1000000 ppm (100%)")]
    Commission(Address),
    #[error("validator {0}: moniker must be 1 to 70 printable characters")]
    Moniker(Address),
    #[error("total supply overflows")]
    SupplyOverflow,
    #[error("invalid parameter: {0}")]
    Params(String),
}

/// Block size limits.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockParams {
    pub max_bytes: u64,
    pub max_txs: u32,
}

/// Consensus timeouts in milliseconds (per-round growth `*_delta_ms`, all capped at `max_ms`).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutParams {
    pub propose_ms: u64,
    pub propose_delta_ms: u64,
    pub prevote_ms: u64,
    pub prevote_delta_ms: u64,
    pub precommit_ms: u64,
    pub precommit_delta_ms: u64,
    pub commit_ms: u64,
    pub max_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceParams {
    pub max_age_blocks: u64,
    pub max_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusParams {
    pub block: BlockParams,
    pub timeouts: TimeoutParams,
    pub evidence: EvidenceParams,
}

impl Default for ConsensusParams {
    fn default() -> Self {
        ConsensusParams {
            block: BlockParams {
                max_bytes: 4 * 1024 * 1024,
                max_txs: 20_000,
            },
            timeouts: TimeoutParams {
                propose_ms: 3000,
                propose_delta_ms: 500,
                prevote_ms: 1000,
                prevote_delta_ms: 500,
                precommit_ms: 1000,
                precommit_delta_ms: 500,
                commit_ms: 1000,
                max_ms: 30_000,
            },
            evidence: EvidenceParams {
                max_age_blocks: 1000,
                max_bytes: 1024 * 1024,
            },
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAccount {
    pub address: Address,
    #[serde(with = "basalt_staking::amount")]
    pub balance: u128,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisValidator {
    /// The account that operates the validator (signs create/edit/unjail).
    pub operator: Address,
    /// The key that signs votes.
    pub consensus_key: PublicKey,
    /// Tokens bonded at genesis (not taken from `accounts`).
    #[serde(with = "basalt_staking::amount")]
    pub self_bond: u128,
    pub moniker: String,
    pub commission: Ppm,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppState {
    pub accounts: Vec<GenesisAccount>,
    pub validators: Vec<GenesisValidator>,
    pub staking: StakingParams,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    pub genesis_time: String,
    pub chain_id: String,
    pub initial_height: u64,
    pub consensus_params: ConsensusParams,
    pub app_state: AppState,
}

fn valid_time(t: &str) -> bool {
    // YYYY-MM-DDTHH:MM:SS[.fraction]Z
    let b = t.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())
            .is_some_and(|s| s.iter().all(u8::is_ascii_digit))
    };
    b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[b.len() - 1] == b'Z'
        && (b.len() == 20 || (b[19] == b'.' && digits(20..b.len() - 1) && b.len() > 21))
}

impl Genesis {
    /// `genesis_time` as a timestamp: the time of the first block (validated on load).
    pub fn time(&self) -> basalt_types::Timestamp {
        basalt_types::time::parse_rfc3339(&self.genesis_time).unwrap_or_default()
    }

    /// Parses and validates a genesis file.
    pub fn from_json(text: &str) -> Result<Genesis, GenesisError> {
        let g: Genesis =
            serde_json::from_str(text).map_err(|e| GenesisError::Parse(e.to_string()))?;
        g.validate()?;
        Ok(g)
    }

    /// Parses and validates a genesis file read as it is parsed: a million accounts is an
    /// 80 MiB file, not worth holding as text beside the parsed genesis.
    pub fn from_reader(reader: impl std::io::Read) -> Result<Genesis, GenesisError> {
        let g: Genesis = serde_json::from_reader(std::io::BufReader::new(reader))
            .map_err(|e| GenesisError::Parse(e.to_string()))?;
        g.validate()?;
        Ok(g)
    }

    /// This genesis without its funded accounts: what a node keeps once they are in its
    /// stored state (its hash is not this genesis's hash).
    pub fn without_accounts(&self) -> Genesis {
        Genesis {
            genesis_time: self.genesis_time.clone(),
            chain_id: self.chain_id.clone(),
            initial_height: self.initial_height,
            consensus_params: self.consensus_params.clone(),
            app_state: AppState {
                accounts: Vec::new(),
                validators: self.app_state.validators.clone(),
                staking: self.app_state.staking.clone(),
            },
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("genesis serialises")
    }

    /// The chain's identity beyond its name: SHA-256 of the borsh encoding.
    pub fn hash(&self) -> Hash {
        Hash::of(self)
    }

    /// Total tokens at genesis: balances plus self-bonds.
    pub fn total_supply(&self) -> Result<u128, GenesisError> {
        let mut total: u128 = 0;
        for a in &self.app_state.accounts {
            total = total
                .checked_add(a.balance)
                .ok_or(GenesisError::SupplyOverflow)?;
        }
        for v in &self.app_state.validators {
            total = total
                .checked_add(v.self_bond)
                .ok_or(GenesisError::SupplyOverflow)?;
        }
        Ok(total)
    }

    pub fn validate(&self) -> Result<(), GenesisError> {
        let id = &self.chain_id;
        if id.is_empty()
            || id.len() > 50
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(GenesisError::ChainId(id.clone()));
        }
        if !valid_time(&self.genesis_time)
            || basalt_types::time::parse_rfc3339(&self.genesis_time).is_none()
        {
            return Err(GenesisError::GenesisTime(self.genesis_time.clone()));
        }
        if self.initial_height == 0 {
            return Err(GenesisError::InitialHeight);
        }
        let p = &self.app_state.staking;
        let bad = |m: &str| Err(GenesisError::Params(m.to_string()));
        if p.power_reduction == 0 {
            return bad("staking.power_reduction must be positive");
        }
        if p.max_validators == 0 {
            return bad("staking.max_validators must be positive");
        }
        if p.signed_blocks_window == 0 {
            return bad("staking.signed_blocks_window must be positive");
        }
        for (name, f) in [
            ("slash_fraction_double_sign", p.slash_fraction_double_sign),
            ("slash_fraction_downtime", p.slash_fraction_downtime),
            ("min_signed_per_window", p.min_signed_per_window),
        ] {
            if !f.is_valid() {
                return bad(&format!("staking.{name} must be at most 1000000 ppm"));
            }
        }
        let c = &self.consensus_params;
        if c.block.max_bytes == 0 || c.block.max_txs == 0 {
            return bad("consensus_params.block limits must be positive");
        }
        if c.timeouts.max_ms == 0 {
            return bad("consensus_params.timeouts.max_ms must be positive");
        }
        if self.app_state.validators.is_empty() {
            return Err(GenesisError::NoValidators);
        }
        let mut operators = BTreeSet::new();
        let mut keys = BTreeSet::new();
        for v in &self.app_state.validators {
            if !operators.insert(v.operator) {
                return Err(GenesisError::DuplicateValidator(v.operator));
            }
            if !keys.insert(v.consensus_key) {
                return Err(GenesisError::DuplicateConsensusKey(
                    v.consensus_key.address(),
                ));
            }
            if v.self_bond / p.power_reduction == 0 {
                return Err(GenesisError::ZeroPower {
                    operator: v.operator,
                    self_bond: v.self_bond,
                    power_reduction: p.power_reduction,
                });
            }
            if !v.commission.is_valid() {
                return Err(GenesisError::Commission(v.operator));
            }
            let n = v.moniker.chars().count();
            if n == 0 || n > 70 || v.moniker.chars().any(char::is_control) {
                return Err(GenesisError::Moniker(v.operator));
            }
        }
        let mut accounts = BTreeSet::new();
        for a in &self.app_state.accounts {
            if !accounts.insert(a.address) {
                return Err(GenesisError::DuplicateAccount(a.address));
            }
        }
        self.total_supply()?;
        Ok(())
    }

    /// A genesis for `init` / `testnet`: default parameters, the given validators (operator
    /// key, consensus key, self-bond, moniker) and funded accounts.
    pub fn generate(
        chain_id: &str,
        genesis_time: &str,
        validators: Vec<(PublicKey, PublicKey, u128, String)>,
        accounts: Vec<(Address, u128)>,
    ) -> Result<Genesis, GenesisError> {
        let g = Genesis {
            genesis_time: genesis_time.to_string(),
            chain_id: chain_id.to_string(),
            initial_height: 1,
            consensus_params: ConsensusParams::default(),
            app_state: AppState {
                accounts: accounts
                    .into_iter()
                    .map(|(address, balance)| GenesisAccount { address, balance })
                    .collect(),
                validators: validators
                    .into_iter()
                    .map(
                        |(operator, consensus_key, self_bond, moniker)| GenesisValidator {
                            operator: operator.address(),
                            consensus_key,
                            self_bond,
                            moniker,
                            commission: Ppm(100_000),
                        },
                    )
                    .collect(),
                staking: StakingParams::default(),
            },
        };
        g.validate()?;
        Ok(g)
    }
}

#[cfg(test)]
mod tests;
