//! What goes into the engine and what comes out.

use basalt_staking::ValidatorSet;
use basalt_types::{
    BlockId, Commit, DuplicateVoteEvidence, Height, Proposal, Round, SignedProposal, SignedVote,
    Vote,
};
use std::time::Duration;

/// The step of the current round. Ordered: `step ≥ prevote` in the paper compares these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Propose,
    Prevote,
    Precommit,
    /// The height is decided; the engine waits for `Input::NewHeight`.
    Commit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimeoutKind {
    Propose,
    Prevote,
    Precommit,
}

/// An event for the engine. Own signed messages come back in as `Proposal` / `Vote` after
/// the node has signed them: the engine counts its own vote like anybody else's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Start `height` (round 0) with its validator set, already advanced once for the height.
    NewHeight {
        height: Height,
        validators: ValidatorSet,
    },
    /// A signed proposal from the network (or our own, signed).
    Proposal(SignedProposal),
    /// The node's verdict on a proposed block, once it has the whole block: the paper's `valid(v)`.
    ProposalValidity {
        height: Height,
        block_id: BlockId,
        valid: bool,
    },
    /// A signed prevote or precommit.
    Vote(SignedVote),
    /// A timeout scheduled by `Output::ScheduleTimeout` has elapsed.
    TimeoutElapsed {
        height: Height,
        round: Round,
        kind: TimeoutKind,
    },
    /// The value asked for by `Output::RequestValue` (the paper's `getValue()`) is ready.
    ValueReady {
        height: Height,
        round: Round,
        block_id: BlockId,
    },
}

/// An effect for the node to carry out, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Sign (through the double-sign guard), persist, broadcast, then feed back as `Input::Proposal`.
    Propose(Proposal),
    /// Sign (through the double-sign guard), persist, broadcast, then feed back as `Input::Vote`.
    Vote(Vote),
    /// Deliver `Input::TimeoutElapsed` with these fields after `after`.
    ScheduleTimeout {
        height: Height,
        round: Round,
        kind: TimeoutKind,
        after: Duration,
    },
    /// Build a block for (`height`, `round`) and answer with `Input::ValueReady`.
    RequestValue { height: Height, round: Round },
    /// `block_id` is decided at `height`: the proposal that carried it and the 2f+1 precommits.
    Decide {
        height: Height,
        round: Round,
        proposal: SignedProposal,
        commit: Commit,
    },
    /// A validator signed two different votes for one height, round and type.
    Evidence(DuplicateVoteEvidence),
}
