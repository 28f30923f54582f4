//! Read-only queries (served through `abci_query` by the node).
//!
//! Paths: `/account/<address>`, `/validator/<operator>`, `/validators`,
//! `/delegations/<delegator>`, `/unbonding/<delegator>`, `/params`, `/supply`,
//! `/signing_infos` (each validator's missed blocks in the downtime window).
//! Addresses are 40 hex digits. Answers are JSON.

use crate::runtime::Runtime;
use basalt_types::Address;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("unknown query path {0:?}")]
    UnknownPath(String),
    #[error("bad address {0:?}: {1}")]
    BadAddress(String, String),
    #[error("not found: {0}")]
    NotFound(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DelegationView {
    pub validator: Address,
    #[serde(with = "basalt_staking::amount")]
    pub shares: u128,
    #[serde(with = "basalt_staking::amount")]
    pub tokens: u128,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SupplyView {
    #[serde(with = "basalt_staking::amount")]
    pub total: u128,
    #[serde(with = "basalt_staking::amount")]
    pub genesis: u128,
    #[serde(with = "basalt_staking::amount")]
    pub minted: u128,
    #[serde(with = "basalt_staking::amount")]
    pub burned: u128,
    #[serde(with = "basalt_staking::amount")]
    pub bonded: u128,
    #[serde(with = "basalt_staking::amount")]
    pub unbonding: u128,
}

/// A validator's liveness in the downtime window (by consensus address), for explorers
/// and operators: how many of the last `window` blocks it did not sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SigningView {
    pub address: Address,
    pub start_height: u64,
    pub missed_count: u64,
    pub window: u64,
}

/// A validator's record as stored, with what explorers join it by and show beside it: the
/// address its consensus key signs blocks as, and the tokens its operator bonded itself
/// (the rest of `tokens` is delegated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidatorView<'a> {
    #[serde(flatten)]
    pub record: &'a basalt_staking::ValidatorRecord,
    pub consensus_address: Address,
    #[serde(with = "basalt_staking::amount")]
    pub self_bond: u128,
}

fn json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("query views serialise")
}

impl Runtime {
    pub fn delegations_of(&self, delegator: &Address) -> Vec<DelegationView> {
        self.staking
            .delegations
            .iter()
            .filter(|((_, d), _)| d == delegator)
            .map(|((v, _), shares)| DelegationView {
                validator: *v,
                shares: *shares,
                tokens: self
                    .staking
                    .validator(v)
                    .map_or(0, |r| r.tokens_for(*shares)),
            })
            .collect()
    }

    pub fn supply(&self) -> SupplyView {
        let s = &self.supply;
        SupplyView {
            total: s.genesis + s.minted - s.burned,
            genesis: s.genesis,
            minted: s.minted,
            burned: s.burned,
            bonded: self.staking.bonded_tokens(),
            unbonding: self.staking.unbonding_tokens(),
        }
    }

    pub fn query(&self, path: &str) -> Result<Value, QueryError> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let addr =
            |s: &str| Address::from_hex(s).map_err(|e| QueryError::BadAddress(s.to_string(), e));
        match parts.as_slice() {
            ["account", a] => Ok(json(&self.account(&addr(a)?))),
            ["validator", a] => {
                let a = addr(a)?;
                self.staking
                    .validator(&a)
                    .map(json)
                    .ok_or_else(|| QueryError::NotFound(format!("validator {a}")))
            }
            ["validators"] => Ok(json(
                &(self.staking.validators.values())
                    .map(|record| ValidatorView {
                        record,
                        consensus_address: record.consensus_address(),
                        self_bond: record.tokens_for(
                            self.staking
                                .delegation_shares(&record.operator, &record.operator),
                        ),
                    })
                    .collect::<Vec<_>>(),
            )),
            ["delegations", a] => Ok(json(&self.delegations_of(&addr(a)?))),
            ["unbonding", a] => {
                let a = addr(a)?;
                Ok(json(
                    &self
                        .staking
                        .unbonding
                        .iter()
                        .filter(|e| e.delegator == a)
                        .collect::<Vec<_>>(),
                ))
            }
            ["signing_infos"] => Ok(json(
                &(self.staking.signing.iter())
                    .map(|(address, info)| SigningView {
                        address: *address,
                        start_height: info.start_height,
                        missed_count: info.missed_count,
                        window: info.missed.len() as u64,
                    })
                    .collect::<Vec<_>>(),
            )),
            ["params"] => Ok(json(&self.staking.params)),
            ["supply"] => Ok(json(&self.supply())),
            _ => Err(QueryError::UnknownPath(path.to_string())),
        }
    }
}
