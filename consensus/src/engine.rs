//! The state machine of Algorithm 1. Each `upon` rule of the paper is one method below, named
//! after the line of the published algorithm where it starts (L22, L28, L34, L36, L44, L47,
//! L49, L55; timeouts L57, L61, L65; StartRound L11).
//!
//! After every input the rules are re-evaluated until none fires: one rule's effect (a step
//! change, a new round) can enable another, and the paper's rules are meant to fire as soon as
//! their condition holds.

use crate::config::EngineConfig;
use crate::error::ConsensusError;
use crate::io::{Input, Output, Step, TimeoutKind};
use crate::verifier::{DirectVerifier, SignatureVerifier};
use crate::vote_keeper::{AddOutcome, VoteKeeper};
use basalt_staking::ValidatorSet;
use basalt_types::{
    Address, BlockId, Commit, CommitSig, DuplicateVoteEvidence, Height, Proposal, Round,
    SignedProposal, SignedVote, Vote, VoteType,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// A Byzantine proposer may send several proposals for one round; we keep a few (all are
/// needed when different honest nodes saw different ones) but not an unbounded number.
const MAX_PROPOSALS_PER_ROUND: usize = 4;

/// The votes of the height just decided, kept to catch equivocations that arrive late.
#[derive(Debug, Clone)]
struct PreviousHeight {
    height: Height,
    validators: ValidatorSet,
    votes: VoteKeeper,
    reported: HashSet<(Address, Round, VoteType)>,
}

/// One validator's (or full node's) view of consensus.
#[derive(Debug, Clone)]
pub struct Engine {
    config: EngineConfig,
    verifier: Arc<dyn SignatureVerifier>,
    me: Option<Address>,
    height: Height,
    round: Round,
    step: Step,
    validators: Option<ValidatorSet>,
    proposer_cache: HashMap<Round, Address>,
    locked: Option<(BlockId, Round)>,
    valid: Option<(BlockId, Round)>,
    proposals: BTreeMap<Round, Vec<SignedProposal>>,
    validity: HashMap<BlockId, bool>,
    votes: VoteKeeper,
    reported: HashSet<(Address, Round, VoteType)>,
    previous: Option<PreviousHeight>,
    /// Round for which we asked the node for a value and have not proposed yet.
    awaiting_value: Option<Round>,
    /// "for the first time" guards of L34, L36 and L47, reset by StartRound.
    prevote_timeout_scheduled: bool,
    precommit_v_done: bool,
    precommit_timeout_scheduled: bool,
}

impl Engine {
    /// An engine for validator `me` (`None` for a full node that follows but never signs).
    /// It does nothing until the first `Input::NewHeight`.
    pub fn new(config: EngineConfig, me: Option<Address>) -> Self {
        Self::with_verifier(config, me, Arc::new(DirectVerifier))
    }

    /// Like [`Engine::new`], checking signatures through `verifier`.
    pub fn with_verifier(
        config: EngineConfig,
        me: Option<Address>,
        verifier: Arc<dyn SignatureVerifier>,
    ) -> Self {
        Engine {
            config,
            verifier,
            me,
            height: Height(0),
            round: Round(0),
            step: Step::Propose,
            validators: None,
            proposer_cache: HashMap::new(),
            locked: None,
            valid: None,
            proposals: BTreeMap::new(),
            validity: HashMap::new(),
            votes: VoteKeeper::default(),
            reported: HashSet::new(),
            previous: None,
            awaiting_value: None,
            prevote_timeout_scheduled: false,
            precommit_v_done: false,
            precommit_timeout_scheduled: false,
        }
    }

    pub fn height(&self) -> Height {
        self.height
    }
    pub fn round(&self) -> Round {
        self.round
    }
    pub fn step(&self) -> Step {
        self.step
    }
    pub fn locked(&self) -> Option<(BlockId, Round)> {
        self.locked
    }
    pub fn valid(&self) -> Option<(BlockId, Round)> {
        self.valid
    }
    pub fn validators(&self) -> Option<&ValidatorSet> {
        self.validators.as_ref()
    }
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }
    /// Votes of the current height (for re-gossip to peers).
    pub fn votes(&self) -> &VoteKeeper {
        &self.votes
    }
    /// Proposals of the current height, by round.
    pub fn proposals(&self) -> impl Iterator<Item = &SignedProposal> + '_ {
        self.proposals.values().flatten()
    }

    /// Feeds one input; returns the effects to carry out, or why the input was refused
    /// (in which case nothing changed).
    pub fn handle(&mut self, input: Input) -> Result<Vec<Output>, ConsensusError> {
        let mut out = Vec::new();
        match input {
            Input::NewHeight { height, validators } => {
                self.on_new_height(height, validators, &mut out)?
            }
            Input::Proposal(p) => self.on_proposal(p)?,
            Input::ProposalValidity {
                height,
                block_id,
                valid,
            } => {
                self.check_current_height(height)?;
                self.validity.insert(block_id, valid);
            }
            Input::Vote(v) => {
                if self.on_vote(v, &mut out)? {
                    // A vote for the previous height only feeds equivocation detection.
                    return Ok(out);
                }
            }
            Input::TimeoutElapsed {
                height,
                round,
                kind,
            } => {
                self.started()?;
                if height == self.height && round == self.round {
                    self.on_timeout(kind, &mut out);
                }
            }
            Input::ValueReady {
                height,
                round,
                block_id,
            } => self.on_value_ready(height, round, block_id, &mut out)?,
        }
        self.run_rules(&mut out);
        Ok(out)
    }

    fn started(&self) -> Result<&ValidatorSet, ConsensusError> {
        self.validators.as_ref().ok_or(ConsensusError::NotStarted)
    }

    fn check_current_height(&self, height: Height) -> Result<(), ConsensusError> {
        self.started()?;
        match height.cmp(&self.height) {
            std::cmp::Ordering::Less => Err(ConsensusError::OldHeight {
                got: height,
                current: self.height,
            }),
            std::cmp::Ordering::Greater => Err(ConsensusError::FutureHeight {
                got: height,
                current: self.height,
            }),
            std::cmp::Ordering::Equal => Ok(()),
        }
    }

    fn check_round(&self, round: Round) -> Result<(), ConsensusError> {
        if round.0 > self.round.0.saturating_add(self.config.max_rounds_ahead) {
            return Err(ConsensusError::RoundTooFarAhead {
                got: round,
                current: self.round,
            });
        }
        Ok(())
    }

    fn proposer(&mut self, round: Round) -> Address {
        if let Some(p) = self.proposer_cache.get(&round) {
            return *p;
        }
        let set = self
            .validators
            .as_ref()
            .expect("proposer() is only called once started");
        let p = set.proposer_for_round(round.0);
        self.proposer_cache.insert(round, p);
        p
    }

    fn i_am_validator(&self) -> bool {
        match (&self.me, &self.validators) {
            (Some(me), Some(set)) => set.get(me).is_some(),
            _ => false,
        }
    }

    fn on_new_height(
        &mut self,
        height: Height,
        validators: ValidatorSet,
        out: &mut Vec<Output>,
    ) -> Result<(), ConsensusError> {
        if self.validators.is_some() && height <= self.height {
            return Err(ConsensusError::HeightNotIncreasing {
                got: height,
                current: self.height,
            });
        }
        if let Some(set) = self.validators.take() {
            self.previous = Some(PreviousHeight {
                height: self.height,
                validators: set,
                votes: std::mem::take(&mut self.votes),
                reported: std::mem::take(&mut self.reported),
            });
        }
        // L52–L53: next height, reset locked/valid values and the message log.
        self.height = height;
        self.validators = Some(validators);
        self.proposer_cache.clear();
        self.locked = None;
        self.valid = None;
        self.proposals.clear();
        self.validity.clear();
        self.votes = VoteKeeper::default();
        self.reported.clear();
        self.start_round(Round(0), out);
        Ok(())
    }

    /// L11 StartRound(round).
    fn start_round(&mut self, round: Round, out: &mut Vec<Output>) {
        self.round = round;
        self.step = Step::Propose;
        self.awaiting_value = None;
        self.prevote_timeout_scheduled = false;
        self.precommit_v_done = false;
        self.precommit_timeout_scheduled = false;
        let height = self.height;
        if self.i_am_validator() && Some(self.proposer(round)) == self.me {
            match self.valid {
                // L15–L16: re-propose the valid value with its POL round.
                Some((block_id, valid_round)) => {
                    out.push(Output::Propose(self.proposal(block_id, Some(valid_round))))
                }
                // L18: getValue(); the proposal follows on `ValueReady`.
                None => {
                    self.awaiting_value = Some(round);
                    out.push(Output::RequestValue { height, round });
                }
            }
        }
        // L21. The paper schedules this only for non-proposers; we schedule it for the proposer
        // too, so a proposer whose value never arrives (a slow or restarted node) still moves on.
        let after = self.config.timeouts.propose(round.0);
        out.push(Output::ScheduleTimeout {
            height,
            round,
            kind: TimeoutKind::Propose,
            after,
        });
    }

    fn proposal(&self, block_id: BlockId, pol_round: Option<Round>) -> Proposal {
        Proposal {
            height: self.height,
            round: self.round,
            pol_round,
            block_id,
            proposer: self.me.expect("only validators propose"),
        }
    }

    fn vote(&self, vote_type: VoteType, block_id: Option<BlockId>) -> Output {
        Output::Vote(Vote {
            vote_type,
            height: self.height,
            round: self.round,
            block_id,
            validator: self.me.expect("only validators vote"),
        })
    }

    /// Broadcasts our vote if we are a validator of this height; the step changes either way.
    fn cast(&self, vote_type: VoteType, block_id: Option<BlockId>, out: &mut Vec<Output>) {
        if self.i_am_validator() {
            out.push(self.vote(vote_type, block_id));
        }
    }

    fn on_value_ready(
        &mut self,
        height: Height,
        round: Round,
        block_id: BlockId,
        out: &mut Vec<Output>,
    ) -> Result<(), ConsensusError> {
        self.check_current_height(height)?;
        if self.awaiting_value != Some(round) || self.round != round || self.step != Step::Propose {
            return Err(ConsensusError::UnexpectedValue);
        }
        self.awaiting_value = None;
        // L19: broadcast ⟨PROPOSAL, h, round, proposal, validRound = −1⟩.
        out.push(Output::Propose(self.proposal(block_id, None)));
        Ok(())
    }

    fn on_proposal(&mut self, sp: SignedProposal) -> Result<(), ConsensusError> {
        let p = &sp.proposal;
        self.check_current_height(p.height)?;
        self.check_round(p.round)?;
        if p.pol_round.is_some_and(|vr| vr >= p.round) {
            return Err(ConsensusError::InvalidPolRound);
        }
        let expected = self.proposer(p.round);
        if p.proposer != expected {
            return Err(ConsensusError::NotProposer {
                round: p.round,
                expected,
                got: p.proposer,
            });
        }
        let stored = self
            .proposals
            .get(&p.round)
            .map_or(&[][..], |v| v.as_slice());
        if stored.iter().any(|s| s.proposal == *p) {
            return Err(ConsensusError::Duplicate);
        }
        if stored.len() >= MAX_PROPOSALS_PER_ROUND {
            return Err(ConsensusError::TooManyProposals);
        }
        let set = self.started()?;
        let key = set
            .get(&p.proposer)
            .ok_or(ConsensusError::UnknownValidator(p.proposer))?
            .public_key;
        let bytes = sp.sign_bytes(&self.config.chain_id);
        if !self.verifier.verify(&key, &bytes, &sp.signature) {
            return Err(ConsensusError::InvalidSignature);
        }
        self.proposals
            .entry(sp.proposal.round)
            .or_default()
            .push(sp);
        Ok(())
    }

    /// Returns `Ok(true)` when the vote was for the previous height (handled, no rules to run).
    fn on_vote(&mut self, sv: SignedVote, out: &mut Vec<Output>) -> Result<bool, ConsensusError> {
        self.started()?;
        let v = &sv.vote;
        if v.height != self.height {
            if let Some(prev) = self.previous.as_mut().filter(|p| p.height == v.height) {
                let chain_id = &self.config.chain_id;
                let conflict = add_verified(
                    &*self.verifier,
                    chain_id,
                    &prev.validators,
                    &mut prev.votes,
                    sv,
                )?;
                if let Some(ev) = evidence_once(&prev.validators, &mut prev.reported, conflict) {
                    out.push(Output::Evidence(ev));
                }
                return Ok(true);
            }
            self.check_current_height(v.height)?;
        }
        self.check_round(v.round)?;
        let set = self.validators.as_ref().ok_or(ConsensusError::NotStarted)?;
        let conflict = add_verified(
            &*self.verifier,
            &self.config.chain_id,
            set,
            &mut self.votes,
            sv,
        )?;
        if let Some(ev) = evidence_once(set, &mut self.reported, conflict) {
            out.push(Output::Evidence(ev));
        }
        Ok(false)
    }

    fn on_timeout(&mut self, kind: TimeoutKind, out: &mut Vec<Output>) {
        match kind {
            // L57 OnTimeoutPropose: prevote nil.
            TimeoutKind::Propose if self.step == Step::Propose => {
                self.cast(VoteType::Prevote, None, out);
                self.step = Step::Prevote;
            }
            // L61 OnTimeoutPrevote: precommit nil.
            TimeoutKind::Prevote if self.step == Step::Prevote => {
                self.cast(VoteType::Precommit, None, out);
                self.step = Step::Precommit;
            }
            // L65 OnTimeoutPrecommit: next round.
            TimeoutKind::Precommit if self.step != Step::Commit => {
                let next = self.round.next();
                self.start_round(next, out);
            }
            _ => {}
        }
    }

    fn run_rules(&mut self, out: &mut Vec<Output>) {
        if self.validators.is_none() {
            return;
        }
        while self.step != Step::Commit && self.apply_one_rule(out) {}
    }

    /// Fires the first rule whose condition holds; returns whether one fired.
    fn apply_one_rule(&mut self, out: &mut Vec<Output>) -> bool {
        self.l49_decide(out)
            || self.l55_round_skip(out)
            || self.l22_prevote_on_proposal(out)
            || self.l28_prevote_on_proposal_with_pol(out)
            || self.l34_schedule_prevote_timeout(out)
            || self.l36_lock_and_precommit(out)
            || self.l44_precommit_nil(out)
            || self.l47_schedule_precommit_timeout(out)
    }

    fn is_quorum(&self, power: u64) -> bool {
        self.validators.as_ref().is_some_and(|s| s.is_quorum(power))
    }

    fn is_valid(&self, block_id: &BlockId) -> Option<bool> {
        self.validity.get(block_id).copied()
    }

    /// The proposal of the current round with the given POL-round shape whose validity is known.
    fn current_proposal(&self, with_pol: bool) -> Option<(BlockId, Option<Round>, bool)> {
        self.proposals.get(&self.round)?.iter().find_map(|sp| {
            let p = &sp.proposal;
            if p.pol_round.is_some() != with_pol {
                return None;
            }
            self.is_valid(&p.block_id)
                .map(|valid| (p.block_id, p.pol_round, valid))
        })
    }

    /// L49: ⟨PROPOSAL, h, r, v, ∗⟩ from proposer(h, r) and 2f+1 ⟨PRECOMMIT, h, r, id(v)⟩,
    /// for any round r, with valid(v): decide v.
    fn l49_decide(&mut self, out: &mut Vec<Output>) -> bool {
        let mut found = None;
        'rounds: for (round, props) in &self.proposals {
            for sp in props {
                let v = sp.proposal.block_id;
                if self.is_valid(&v) == Some(true)
                    && self.is_quorum(self.votes.power_for(*round, VoteType::Precommit, Some(v)))
                {
                    found = Some((*round, sp.clone()));
                    break 'rounds;
                }
            }
        }
        let Some((round, proposal)) = found else {
            return false;
        };
        let block_id = proposal.proposal.block_id;
        let set = self.validators.as_ref().expect("started");
        let by_validator: HashMap<Address, &SignedVote> = self
            .votes
            .precommits_for(round, block_id)
            .into_iter()
            .map(|v| (v.vote.validator, v))
            .collect();
        // One entry per validator in set order (CometBFT's layout, what light clients check),
        // absent where its precommit for the block is not here.
        let signatures = set
            .validators()
            .iter()
            .map(|val| {
                by_validator.get(&val.address).map(|v| CommitSig {
                    validator: v.vote.validator,
                    timestamp: v.timestamp,
                    signature: v.signature,
                })
            })
            .collect();
        let commit = Commit {
            height: self.height,
            round,
            block_id,
            signatures,
        };
        self.step = Step::Commit;
        out.push(Output::Decide {
            height: self.height,
            round,
            proposal,
            commit,
        });
        true
    }

    /// L55: f+1 messages of a round above ours: StartRound(that round).
    fn l55_round_skip(&mut self, out: &mut Vec<Output>) -> bool {
        let set = self.validators.as_ref().expect("started");
        let target = self
            .votes
            .rounds_above(self.round)
            .find(|r| set.is_one_third(self.votes.participant_power(*r)));
        match target {
            Some(r) => {
                self.start_round(r, out);
                true
            }
            None => false,
        }
    }

    /// L22: ⟨PROPOSAL, h, round, v, −1⟩ from the proposer while in step propose.
    fn l22_prevote_on_proposal(&mut self, out: &mut Vec<Output>) -> bool {
        if self.step != Step::Propose {
            return false;
        }
        let Some((v, _, valid)) = self.current_proposal(false) else {
            return false;
        };
        let accept = valid && (self.locked.is_none() || self.locked.map(|l| l.0) == Some(v));
        self.cast(VoteType::Prevote, accept.then_some(v), out);
        self.step = Step::Prevote;
        true
    }

    /// L28: ⟨PROPOSAL, h, round, v, vr⟩ with 2f+1 ⟨PREVOTE, h, vr, id(v)⟩, 0 ≤ vr < round,
    /// while in step propose.
    fn l28_prevote_on_proposal_with_pol(&mut self, out: &mut Vec<Output>) -> bool {
        if self.step != Step::Propose {
            return false;
        }
        let Some(props) = self.proposals.get(&self.round) else {
            return false;
        };
        let candidate = props.iter().find_map(|sp| {
            let p = &sp.proposal;
            let vr = p.pol_round?;
            let valid = self.is_valid(&p.block_id)?;
            let pol = self.is_quorum(
                self.votes
                    .power_for(vr, VoteType::Prevote, Some(p.block_id)),
            );
            (vr < self.round && pol).then_some((p.block_id, vr, valid))
        });
        let Some((v, vr, valid)) = candidate else {
            return false;
        };
        let accept = valid && self.locked.is_none_or(|(lv, lr)| lr <= vr || lv == v);
        self.cast(VoteType::Prevote, accept.then_some(v), out);
        self.step = Step::Prevote;
        true
    }

    /// L34: 2f+1 ⟨PREVOTE, h, round, ∗⟩ in step prevote, first time: schedule timeoutPrevote.
    fn l34_schedule_prevote_timeout(&mut self, out: &mut Vec<Output>) -> bool {
        if self.step != Step::Prevote
            || self.prevote_timeout_scheduled
            || !self.is_quorum(self.votes.power_any(self.round, VoteType::Prevote))
        {
            return false;
        }
        self.prevote_timeout_scheduled = true;
        let after = self.config.timeouts.prevote(self.round.0);
        out.push(Output::ScheduleTimeout {
            height: self.height,
            round: self.round,
            kind: TimeoutKind::Prevote,
            after,
        });
        true
    }

    /// L36: ⟨PROPOSAL, h, round, v, ∗⟩ and 2f+1 ⟨PREVOTE, h, round, id(v)⟩ with valid(v) and
    /// step ≥ prevote, first time: lock and precommit v if in prevote; set the valid value.
    fn l36_lock_and_precommit(&mut self, out: &mut Vec<Output>) -> bool {
        if self.step < Step::Prevote || self.precommit_v_done {
            return false;
        }
        let Some(props) = self.proposals.get(&self.round) else {
            return false;
        };
        let v = props.iter().map(|sp| sp.proposal.block_id).find(|v| {
            self.is_valid(v) == Some(true)
                && self.is_quorum(
                    self.votes
                        .power_for(self.round, VoteType::Prevote, Some(*v)),
                )
        });
        let Some(v) = v else { return false };
        self.precommit_v_done = true;
        if self.step == Step::Prevote {
            self.locked = Some((v, self.round));
            self.cast(VoteType::Precommit, Some(v), out);
            self.step = Step::Precommit;
        }
        self.valid = Some((v, self.round));
        true
    }

    /// L44: 2f+1 ⟨PREVOTE, h, round, nil⟩ in step prevote: precommit nil.
    fn l44_precommit_nil(&mut self, out: &mut Vec<Output>) -> bool {
        if self.step != Step::Prevote
            || !self.is_quorum(self.votes.power_for(self.round, VoteType::Prevote, None))
        {
            return false;
        }
        self.cast(VoteType::Precommit, None, out);
        self.step = Step::Precommit;
        true
    }

    /// L47: 2f+1 ⟨PRECOMMIT, h, round, ∗⟩ for the first time: schedule timeoutPrecommit.
    fn l47_schedule_precommit_timeout(&mut self, out: &mut Vec<Output>) -> bool {
        if self.precommit_timeout_scheduled
            || !self.is_quorum(self.votes.power_any(self.round, VoteType::Precommit))
        {
            return false;
        }
        self.precommit_timeout_scheduled = true;
        let after = self.config.timeouts.precommit(self.round.0);
        out.push(Output::ScheduleTimeout {
            height: self.height,
            round: self.round,
            kind: TimeoutKind::Precommit,
            after,
        });
        true
    }
}

/// Checks signer membership and signature, then counts the vote. Returns the pair
/// (earlier vote, new vote) when the signer already voted differently at this round and type.
/// An identical vote is refused as a duplicate before any signature work (the network
/// delivers many duplicates).
fn add_verified(
    verifier: &dyn SignatureVerifier,
    chain_id: &str,
    set: &ValidatorSet,
    votes: &mut VoteKeeper,
    sv: SignedVote,
) -> Result<Option<(SignedVote, SignedVote)>, ConsensusError> {
    let v = &sv.vote;
    let validator = set
        .get(&v.validator)
        .ok_or(ConsensusError::UnknownValidator(v.validator))?;
    let held = votes.get(v.round, v.vote_type, &v.validator);
    // Same content with another signature (or timestamp) is the same vote, not an
    // equivocation.
    if held.iter().any(|h| h.vote == sv.vote) {
        return Err(ConsensusError::Duplicate);
    }
    if !verifier.verify(
        &validator.public_key,
        &sv.sign_bytes(chain_id),
        &sv.signature,
    ) {
        return Err(ConsensusError::InvalidSignature);
    }
    let new = (!held.is_empty()).then(|| sv.clone());
    match votes.add(sv, validator.voting_power) {
        AddOutcome::New => Ok(None),
        AddOutcome::Conflict(earlier) => Ok(new.map(|n| (earlier, n))),
        AddOutcome::Duplicate => Err(ConsensusError::Duplicate),
    }
}

/// Turns a conflicting pair into evidence, once per validator, round and vote type.
fn evidence_once(
    set: &ValidatorSet,
    reported: &mut HashSet<(Address, Round, VoteType)>,
    conflict: Option<(SignedVote, SignedVote)>,
) -> Option<DuplicateVoteEvidence> {
    let (held, new) = conflict?;
    let key = (held.vote.validator, held.vote.round, held.vote.vote_type);
    if !reported.insert(key) {
        return None;
    }
    let power = set.get(&held.vote.validator)?.voting_power;
    Some(DuplicateVoteEvidence::new(
        held,
        new,
        power,
        set.total_power(),
    ))
}

#[cfg(test)]
mod tests;
