//! The Tendermint consensus algorithm (Buchman, Kwon, Milosevic, "The latest gossip on BFT
//! consensus", arXiv:1807.04938, Algorithm 1) as a pure, deterministic state machine.
//!
//! [`Engine::handle`] takes one [`Input`] and returns the [`Output`]s the node must carry out:
//! sign and broadcast a proposal or vote, schedule a timeout, build a value, persist a decision,
//! report evidence. The engine never signs, sends, sleeps or reads a clock; the node (or the
//! simulator) does, which is what makes thousands of seeded Byzantine runs reproducible.

mod config;
mod engine;
mod error;
mod io;
pub mod signer;
mod verifier;
mod vote_keeper;

pub use config::{EngineConfig, TimeoutConfig};
pub use engine::Engine;
pub use error::ConsensusError;
pub use io::{Input, Output, Step, TimeoutKind};
pub use verifier::{DirectVerifier, SignatureVerifier};
pub use vote_keeper::{AddOutcome, VoteKeeper};
