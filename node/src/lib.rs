//! The Basalt node's building blocks: the home directory layout, key files, configuration,
//! the consensus write-ahead log and the persisted double-sign guard. The `basalt` binary
//! (src/main.rs) drives them from the command line.

pub mod config;
pub mod home;
pub mod keys;
pub mod signer;
pub mod testnet;
pub mod wal;
