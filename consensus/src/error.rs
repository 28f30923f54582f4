//! Why an input was refused. A refused input changes nothing in the engine.

use basalt_types::{Address, Height, Round};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsensusError {
    #[error("the engine has not been given a height to work on yet")]
    NotStarted,
    #[error("message for height {got}, already past it (current {current})")]
    OldHeight { got: Height, current: Height },
    #[error("message for future height {got} (current {current}); the node may buffer it")]
    FutureHeight { got: Height, current: Height },
    #[error("new height {got} does not follow the current height {current}")]
    HeightNotIncreasing { got: Height, current: Height },
    #[error("round {got} is too far ahead of the current round {current}")]
    RoundTooFarAhead { got: Round, current: Round },
    #[error("signer {0} is not a validator at this height")]
    UnknownValidator(Address),
    #[error("proposal for round {round} from {got}, but the proposer is {expected}")]
    NotProposer {
        round: Round,
        expected: Address,
        got: Address,
    },
    #[error("proposal's POL round must be below its round")]
    InvalidPolRound,
    #[error("signature does not verify for this chain")]
    InvalidSignature,
    #[error("already have this message")]
    Duplicate,
    #[error("the proposer already sent too many different proposals for this round")]
    TooManyProposals,
    #[error("no value was requested for this height and round")]
    UnexpectedValue,
}
