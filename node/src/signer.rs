//! The validator's signer: CometBFT's `priv_validator_state` rules (in `basalt-consensus`)
//! with the state persisted before any signature is released, so that a validator restarted
//! at any moment re-signs identical messages identically and refuses anything conflicting.

use basalt_consensus::signer::{DoubleSignError, LastSigned, SignDecision, SignStep, SignerState};
use basalt_types::{
    Height, PrivateKey, Proposal, Round, Signature, SignedProposal, SignedVote, Timestamp, Vote,
    VoteType,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error(transparent)]
    DoubleSign(#[from] DoubleSignError),
    #[error("signer state {path}: {reason}; refusing to sign (never reset this file by hand while the validator may have signed)")]
    State { path: String, reason: String },
}

/// The state file, human-readable like CometBFT's.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    height: u64,
    round: u32,
    step: u8,
    /// The timestamp inside `sign_bytes` (seconds, nanoseconds since the Unix epoch).
    timestamp: (i64, u32),
    sign_bytes: String,
    signature: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn step_code(s: SignStep) -> u8 {
    match s {
        SignStep::Propose => 1,
        SignStep::Prevote => 2,
        SignStep::Precommit => 3,
    }
}

pub struct FileSigner {
    key: PrivateKey,
    chain_id: String,
    state: SignerState,
    /// Where the state is persisted; `None` in memory (the simulator keeps [`Self::state`]
    /// as the durable copy, which is as good: it is updated before a signature leaves).
    path: Option<PathBuf>,
}

impl FileSigner {
    /// Loads the state at `path` (absent: nothing signed yet).
    pub fn open(key: PrivateKey, chain_id: &str, path: &Path) -> Result<Self, SignerError> {
        let p = path.display().to_string();
        let bad = |reason: String| SignerError::State {
            path: p.clone(),
            reason,
        };
        let state = match std::fs::read_to_string(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SignerState::default(),
            Err(e) => return Err(bad(e.to_string())),
            Ok(text) => {
                let f: StateFile = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
                let step = match f.step {
                    1 => SignStep::Propose,
                    2 => SignStep::Prevote,
                    3 => SignStep::Precommit,
                    s => return Err(bad(format!("unknown step {s}"))),
                };
                let sign_bytes =
                    unhex(&f.sign_bytes).ok_or_else(|| bad("sign_bytes is not hex".into()))?;
                let sig: [u8; 64] = unhex(&f.signature)
                    .and_then(|v| v.try_into().ok())
                    .ok_or_else(|| bad("signature is not 64 hex bytes".into()))?;
                SignerState {
                    last: Some(LastSigned {
                        height: Height(f.height),
                        round: Round(f.round),
                        step,
                        timestamp: Timestamp {
                            seconds: f.timestamp.0,
                            nanos: f.timestamp.1,
                        },
                        sign_bytes,
                        signature: Signature(sig),
                    }),
                }
            }
        };
        Ok(FileSigner {
            key,
            chain_id: chain_id.to_string(),
            state,
            path: Some(path.to_path_buf()),
        })
    }

    /// A signer whose state lives in memory, starting from `state` (what survived a
    /// simulated crash).
    pub fn in_memory(key: PrivateKey, chain_id: &str, state: SignerState) -> Self {
        FileSigner {
            key,
            chain_id: chain_id.to_string(),
            state,
            path: None,
        }
    }

    /// The key itself, past the guard: only for deliberate misbehaviour in tests.
    #[cfg(feature = "byzantine")]
    pub fn raw_key(&self) -> &PrivateKey {
        &self.key
    }

    pub fn state(&self) -> &SignerState {
        &self.state
    }

    /// Signs `sign_bytes_at(timestamp)`, or hands back the earlier timestamp and signature
    /// of the same message.
    fn sign(
        &mut self,
        height: Height,
        round: Round,
        step: SignStep,
        timestamp: Timestamp,
        sign_bytes_at: impl Fn(Timestamp) -> Vec<u8>,
    ) -> Result<(Timestamp, Signature), SignerError> {
        match self.state.check(height, round, step, &sign_bytes_at)? {
            SignDecision::Reuse(sig, at) => Ok((at, sig)),
            SignDecision::Sign => {
                let bytes = sign_bytes_at(timestamp);
                let sig = self.key.sign(&bytes);
                let file = StateFile {
                    height: height.0,
                    round: round.0,
                    step: step_code(step),
                    timestamp: (timestamp.seconds, timestamp.nanos),
                    sign_bytes: hex(&bytes),
                    signature: hex(&sig.0),
                };
                let json = serde_json::to_vec_pretty(&file).expect("state serialises");
                // On disk before the signature exists anywhere else.
                if let Some(path) = &self.path {
                    crate::keys::write_private(path, &json).map_err(|e| SignerError::State {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    })?;
                }
                self.state
                    .record(height, round, step, timestamp, bytes, sig);
                Ok((timestamp, sig))
            }
        }
    }

    /// Signs `vote` stamped `timestamp` (or returns the earlier signature of the same vote).
    pub fn sign_vote(
        &mut self,
        vote: Vote,
        timestamp: Timestamp,
    ) -> Result<SignedVote, SignerError> {
        let step = match vote.vote_type {
            VoteType::Prevote => SignStep::Prevote,
            VoteType::Precommit => SignStep::Precommit,
        };
        let chain_id = self.chain_id.clone();
        let (timestamp, signature) = self.sign(vote.height, vote.round, step, timestamp, |t| {
            vote.sign_bytes(&chain_id, t)
        })?;
        Ok(SignedVote {
            vote,
            timestamp,
            signature,
        })
    }

    /// Signs `proposal` stamped `timestamp` (or returns the earlier signature of the same one).
    pub fn sign_proposal(
        &mut self,
        proposal: Proposal,
        timestamp: Timestamp,
    ) -> Result<SignedProposal, SignerError> {
        let chain_id = self.chain_id.clone();
        let (timestamp, signature) = self.sign(
            proposal.height,
            proposal.round,
            SignStep::Propose,
            timestamp,
            |t| proposal.sign_bytes(&chain_id, t),
        )?;
        Ok(SignedProposal {
            proposal,
            timestamp,
            signature,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_types::{BlockId, Hash};

    fn at(seconds: i64) -> Timestamp {
        Timestamp { seconds, nanos: 0 }
    }

    fn vote(key: &PrivateKey, round: u32, block: Option<&[u8]>) -> Vote {
        Vote {
            vote_type: VoteType::Prevote,
            height: Height(4),
            round: Round(round),
            block_id: block.map(|b| BlockId(Hash::digest(b), Default::default())),
            validator: key.public_key().address(),
        }
    }

    #[test]
    fn after_a_restart_the_same_vote_gets_the_same_signature_and_a_conflict_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("priv_validator_state.json");
        let key = PrivateKey::from_seed([5; 32]);
        let first = {
            let mut s = FileSigner::open(key.clone(), "c", &path).unwrap();
            s.sign_vote(vote(&key, 1, Some(b"a")), at(100)).unwrap()
        };
        assert!(first.verify("c", &key.public_key()).is_ok());
        // "Crash": a fresh signer from the file only. Its clock has moved on; the vote is the
        // same, so the first timestamp and signature come back.
        let mut s = FileSigner::open(key.clone(), "c", &path).unwrap();
        assert_eq!(
            s.sign_vote(vote(&key, 1, Some(b"a")), at(107)).unwrap(),
            first
        );
        assert!(matches!(
            s.sign_vote(vote(&key, 1, Some(b"b")), at(100)),
            Err(SignerError::DoubleSign(DoubleSignError::Conflict { .. }))
        ));
        assert!(matches!(
            s.sign_vote(vote(&key, 0, None), at(108)),
            Err(SignerError::DoubleSign(DoubleSignError::Regression { .. }))
        ));
        assert!(s.sign_vote(vote(&key, 2, None), at(108)).is_ok());
        let p = Proposal {
            height: Height(4),
            round: Round(2),
            pol_round: None,
            block_id: BlockId(Hash::digest(b"p"), Default::default()),
            proposer: key.public_key().address(),
        };
        assert!(
            s.sign_proposal(p, at(109)).is_err(),
            "propose comes before prevote in round 2"
        );
    }

    #[test]
    fn a_damaged_state_file_stops_signing_instead_of_starting_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, b"{ not json").unwrap();
        let err = FileSigner::open(PrivateKey::from_seed([1; 32]), "c", &path)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("refusing to sign"), "{err}");
    }
}
