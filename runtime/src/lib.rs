//! Basalt's chain state machine: accounts (balance, nonce), signed transactions, the staking
//! module, block execution and the app hash. Deterministic: no clock, no I/O, no randomness;
//! two runtimes fed the same blocks reach the same app hash.

mod error;
mod merkle;
mod query;
pub mod restore;
mod runtime;
pub mod state;
mod tx;

pub use error::TxError;
pub use merkle::{Entry, MerkleStore, MerkleUpdate, ProofError, StateProof};
pub use query::{DelegationView, QueryError, SupplyView};
pub use restore::{RestoreError, StateRestore};
pub use runtime::{Account, BlockContext, BlockResult, Event, Runtime, RuntimeError, TxResult};
pub use state::{StateChanges, StateError, StateStore};
pub use tx::{tx_hash, Msg, SignedTx, TxBody};

#[cfg(test)]
mod tests;
