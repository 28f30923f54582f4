//! The double-sign guard: CometBFT's `priv_validator_state` rules, as pure logic.
//!
//! The node persists [`SignerState`] (fsynced) before a signature leaves the process, so that
//! after a crash the validator re-signs an identical message with the identical signature and
//! refuses anything that conflicts, never signing two different things for one
//! height/round/step. As in CometBFT, a message that differs from the last one only in its
//! timestamp is the same message: it gets the earlier timestamp and signature back.

use basalt_types::{Height, Round, Signature, Timestamp};
use borsh::{BorshDeserialize, BorshSerialize};

/// Signing steps in the order they happen within a round.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, BorshSerialize, BorshDeserialize,
)]
pub enum SignStep {
    Propose,
    Prevote,
    Precommit,
}

/// The last thing this validator signed.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignerState {
    pub last: Option<LastSigned>,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct LastSigned {
    pub height: Height,
    pub round: Round,
    pub step: SignStep,
    /// The timestamp inside `sign_bytes`.
    pub timestamp: Timestamp,
    pub sign_bytes: Vec<u8>,
    pub signature: Signature,
}

/// What the guard allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignDecision {
    /// Nothing signed at or after this position: sign, then [`SignerState::record`].
    Sign,
    /// The same message was signed before (e.g. before a crash), perhaps at another time:
    /// reuse that timestamp and signature.
    Reuse(Signature, Timestamp),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DoubleSignError {
    #[error("refusing to sign at {height}/{round}/{step:?}: already signed at a later position {last_height}/{last_round}/{last_step:?}")]
    Regression {
        height: Height,
        round: Round,
        step: SignStep,
        last_height: Height,
        last_round: Round,
        last_step: SignStep,
    },
    #[error(
        "refusing to sign different data at {height}/{round}/{step:?}: that would be a double sign"
    )]
    Conflict {
        height: Height,
        round: Round,
        step: SignStep,
    },
}

impl SignerState {
    /// May this validator sign the message whose sign bytes at a given timestamp are
    /// `sign_bytes_at(timestamp)` at (height, round, step)?
    pub fn check(
        &self,
        height: Height,
        round: Round,
        step: SignStep,
        sign_bytes_at: impl FnOnce(Timestamp) -> Vec<u8>,
    ) -> Result<SignDecision, DoubleSignError> {
        let Some(last) = &self.last else {
            return Ok(SignDecision::Sign);
        };
        let here = (height, round, step);
        let before = (last.height, last.round, last.step);
        if here < before {
            return Err(DoubleSignError::Regression {
                height,
                round,
                step,
                last_height: last.height,
                last_round: last.round,
                last_step: last.step,
            });
        }
        if here == before {
            return if last.sign_bytes == sign_bytes_at(last.timestamp) {
                Ok(SignDecision::Reuse(last.signature, last.timestamp))
            } else {
                Err(DoubleSignError::Conflict {
                    height,
                    round,
                    step,
                })
            };
        }
        Ok(SignDecision::Sign)
    }

    /// Records a new signature (call only after `check` said `Sign`).
    pub fn record(
        &mut self,
        height: Height,
        round: Round,
        step: SignStep,
        timestamp: Timestamp,
        sign_bytes: Vec<u8>,
        signature: Signature,
    ) {
        self.last = Some(LastSigned {
            height,
            round,
            step,
            timestamp,
            sign_bytes,
            signature,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp { seconds, nanos: 0 }
    }

    /// Sign bytes of message `m` at time `t`, the shape the real encodings have.
    fn bytes(m: &'static [u8]) -> impl Fn(Timestamp) -> Vec<u8> {
        move |t| [m, &t.seconds.to_le_bytes()].concat()
    }

    #[test]
    fn identical_resign_reuses_signature_and_anything_else_at_or_before_is_refused() {
        let mut s = SignerState::default();
        let sig = Signature([7; 64]);
        let (h, r) = (Height(5), Round(1));
        assert_eq!(
            s.check(h, r, SignStep::Prevote, bytes(b"a")),
            Ok(SignDecision::Sign)
        );
        s.record(h, r, SignStep::Prevote, at(10), bytes(b"a")(at(10)), sig);
        // The same vote again, whatever the clock says now: the first time and signature.
        assert_eq!(
            s.check(h, r, SignStep::Prevote, bytes(b"a")),
            Ok(SignDecision::Reuse(sig, at(10)))
        );
        assert!(matches!(
            s.check(h, r, SignStep::Prevote, bytes(b"b")),
            Err(DoubleSignError::Conflict { .. })
        ));
        assert!(matches!(
            s.check(h, r, SignStep::Propose, bytes(b"a")),
            Err(DoubleSignError::Regression { .. })
        ));
        assert!(matches!(
            s.check(h, Round(0), SignStep::Precommit, bytes(b"a")),
            Err(DoubleSignError::Regression { .. })
        ));
        assert!(matches!(
            s.check(Height(4), Round(9), SignStep::Precommit, bytes(b"a")),
            Err(DoubleSignError::Regression { .. })
        ));
        for (h, r, step) in [
            (h, r, SignStep::Precommit),
            (h, Round(2), SignStep::Propose),
            (Height(6), Round(0), SignStep::Propose),
        ] {
            assert_eq!(s.check(h, r, step, bytes(b"c")), Ok(SignDecision::Sign));
        }
    }

    #[test]
    fn state_survives_a_borsh_round_trip() {
        let mut s = SignerState::default();
        s.record(
            Height(9),
            Round(3),
            SignStep::Precommit,
            at(4),
            vec![1, 2, 3],
            Signature([1; 64]),
        );
        let bytes = borsh::to_vec(&s).unwrap();
        assert_eq!(borsh::from_slice::<SignerState>(&bytes).unwrap(), s);
    }
}
