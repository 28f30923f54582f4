//! One test (or more) per rule of Algorithm 1, named after the line of the published paper.

use super::*;
use crate::config::TimeoutConfig;
use basalt_staking::Validator;
use basalt_types::{Hash, PrivateKey};
use std::time::Duration;

const CHAIN: &str = "engine-test";

struct Fixture {
    keys: Vec<PrivateKey>,
    set: ValidatorSet,
}

impl Fixture {
    /// Four validators of power 1 (f = 1: quorum 3, one third + 1 = 2).
    fn new() -> Self {
        Self::with_powers(&[1, 1, 1, 1])
    }

    fn with_powers(powers: &[u64]) -> Self {
        let keys: Vec<PrivateKey> = (1..=powers.len() as u8)
            .map(|i| PrivateKey::from_seed([i; 32]))
            .collect();
        let set = ValidatorSet::new(
            keys.iter()
                .zip(powers)
                .map(|(k, p)| Validator::new(k.public_key(), *p))
                .collect(),
        )
        .unwrap();
        Fixture { keys, set }
    }

    fn addr(&self, i: usize) -> Address {
        self.keys[i].public_key().address()
    }

    fn index_of(&self, a: Address) -> usize {
        (0..self.keys.len()).find(|i| self.addr(*i) == a).unwrap()
    }

    fn proposer(&self, round: u32) -> usize {
        self.index_of(self.set.proposer_for_round(round))
    }

    /// A validator that is not the proposer of `round`.
    fn non_proposer(&self, round: u32) -> usize {
        (0..self.keys.len())
            .find(|i| *i != self.proposer(round))
            .unwrap()
    }

    /// An engine for validator `me`, started at height 1.
    fn engine(&self, me: usize) -> (Engine, Vec<Output>) {
        let mut config = EngineConfig::new(CHAIN);
        config.timeouts = TimeoutConfig {
            propose: Duration::from_millis(300),
            propose_delta: Duration::from_millis(100),
            prevote: Duration::from_millis(200),
            prevote_delta: Duration::from_millis(100),
            precommit: Duration::from_millis(200),
            precommit_delta: Duration::from_millis(100),
            max: Duration::from_secs(2),
            commit: Duration::ZERO,
        };
        let mut e = Engine::new(config, Some(self.addr(me)));
        let out = e
            .handle(Input::NewHeight {
                height: Height(1),
                validators: self.set.clone(),
            })
            .unwrap();
        (e, out)
    }

    fn proposal(&self, round: u32, value: BlockId, pol: Option<u32>) -> SignedProposal {
        let p = self.proposer(round);
        Proposal {
            height: Height(1),
            round: Round(round),
            pol_round: pol.map(Round),
            block_id: value,
            proposer: self.addr(p),
        }
        .sign(CHAIN, basalt_types::Timestamp::default(), &self.keys[p])
    }

    fn vote(&self, i: usize, t: VoteType, round: u32, value: Option<BlockId>) -> SignedVote {
        Vote {
            vote_type: t,
            height: Height(1),
            round: Round(round),
            block_id: value,
            validator: self.addr(i),
        }
        .sign(CHAIN, basalt_types::Timestamp::default(), &self.keys[i])
    }

    /// Delivers votes of type `t` from validators `from` (skipping errors such as our own).
    fn votes(
        &self,
        e: &mut Engine,
        from: &[usize],
        t: VoteType,
        round: u32,
        value: Option<BlockId>,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        for i in from {
            out.extend(
                e.handle(Input::Vote(self.vote(*i, t, round, value)))
                    .unwrap(),
            );
        }
        out
    }

    /// Delivers a proposal with a verdict on its value.
    fn propose(
        &self,
        e: &mut Engine,
        round: u32,
        value: BlockId,
        pol: Option<u32>,
        valid: bool,
    ) -> Vec<Output> {
        let mut out = e
            .handle(Input::Proposal(self.proposal(round, value, pol)))
            .unwrap();
        out.extend(
            e.handle(Input::ProposalValidity {
                height: Height(1),
                block_id: value,
                valid,
            })
            .unwrap(),
        );
        out
    }

    fn others(&self, me: usize) -> Vec<usize> {
        (0..self.keys.len()).filter(|i| *i != me).collect()
    }
}

fn value(name: &str) -> BlockId {
    BlockId(Hash::digest(name.as_bytes()), Default::default())
}

fn votes_cast(out: &[Output]) -> Vec<(VoteType, Round, Option<BlockId>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Vote(v) => Some((v.vote_type, v.round, v.block_id)),
            _ => None,
        })
        .collect()
}

fn timeouts(out: &[Output]) -> Vec<(TimeoutKind, Round, Duration)> {
    out.iter()
        .filter_map(|o| match o {
            Output::ScheduleTimeout {
                kind, round, after, ..
            } => Some((*kind, *round, *after)),
            _ => None,
        })
        .collect()
}

/// Observable state, to show that a refused input changed nothing.
fn snapshot(e: &Engine) -> String {
    format!(
        "{:?} {:?} {:?} {:?} {:?} {:?}",
        e.height(),
        e.round(),
        e.step(),
        e.locked(),
        e.valid(),
        (0..3u32)
            .map(|r| {
                (
                    e.votes().power_any(Round(r), VoteType::Prevote),
                    e.votes().power_any(Round(r), VoteType::Precommit),
                )
            })
            .collect::<Vec<_>>()
    ) + &format!(" {}", e.proposals().count())
}

// ---------------------------------------------------------------- StartRound (L11–L21)

#[test]
fn l11_l18_proposer_asks_for_a_value_and_l19_proposes_it_with_pol_minus_one() {
    let f = Fixture::new();
    let me = f.proposer(0);
    let (mut e, out) = f.engine(me);
    assert!(out.contains(&Output::RequestValue {
        height: Height(1),
        round: Round(0)
    }));
    let out = e
        .handle(Input::ValueReady {
            height: Height(1),
            round: Round(0),
            block_id: value("a"),
        })
        .unwrap();
    assert_eq!(
        out,
        vec![Output::Propose(Proposal {
            height: Height(1),
            round: Round(0),
            pol_round: None,
            block_id: value("a"),
            proposer: f.addr(me)
        })]
    );
    // A second value for the same round is refused: one proposal per round.
    assert_eq!(
        e.handle(Input::ValueReady {
            height: Height(1),
            round: Round(0),
            block_id: value("b")
        }),
        Err(ConsensusError::UnexpectedValue)
    );
}

#[test]
fn l21_non_proposer_schedules_timeout_propose_growing_with_the_round() {
    let f = Fixture::new();
    let (mut e, out) = f.engine(f.non_proposer(0));
    assert!(!out
        .iter()
        .any(|o| matches!(o, Output::RequestValue { .. } | Output::Propose(_))));
    assert_eq!(
        timeouts(&out),
        vec![(TimeoutKind::Propose, Round(0), Duration::from_millis(300))]
    );
    // Move to round 2 via L65 twice: the timeout grows by the delta each round.
    for r in 0..2 {
        let out = e
            .handle(Input::TimeoutElapsed {
                height: Height(1),
                round: Round(r),
                kind: TimeoutKind::Precommit,
            })
            .unwrap();
        let expected = Duration::from_millis(300 + 100 * (r as u64 + 1));
        assert!(timeouts(&out).contains(&(TimeoutKind::Propose, Round(r + 1), expected)));
    }
}

#[test]
fn l15_l16_proposer_reproposes_its_valid_value_with_the_valid_round() {
    let f = Fixture::new();
    // Find a validator that is the proposer of round 1.
    let me = f.proposer(1);
    let (mut e, _) = f.engine(me);
    let v = value("v");
    // Round 0: proposal v and 2f+1 prevotes for v make v the valid value (L36).
    f.propose(&mut e, 0, v, None, true);
    f.votes(&mut e, &f.others(me), VoteType::Prevote, 0, Some(v));
    assert_eq!(e.valid(), Some((v, Round(0))));
    let out = e
        .handle(Input::TimeoutElapsed {
            height: Height(1),
            round: Round(0),
            kind: TimeoutKind::Precommit,
        })
        .unwrap();
    assert!(out.contains(&Output::Propose(Proposal {
        height: Height(1),
        round: Round(1),
        pol_round: Some(Round(0)),
        block_id: v,
        proposer: f.addr(me)
    })));
    assert!(!out.iter().any(|o| matches!(o, Output::RequestValue { .. })));
}

// ---------------------------------------------------------------- L22

#[test]
fn l22_prevote_for_a_valid_proposal_when_unlocked() {
    let f = Fixture::new();
    let (mut e, _) = f.engine(f.non_proposer(0));
    let out = f.propose(&mut e, 0, value("a"), None, true);
    assert_eq!(
        votes_cast(&out),
        vec![(VoteType::Prevote, Round(0), Some(value("a")))]
    );
    assert_eq!(e.step(), Step::Prevote);
}

#[test]
fn l22_l26_prevote_nil_for_an_invalid_proposal() {
    let f = Fixture::new();
    let (mut e, _) = f.engine(f.non_proposer(0));
    let out = f.propose(&mut e, 0, value("bad"), None, false);
    assert_eq!(votes_cast(&out), vec![(VoteType::Prevote, Round(0), None)]);
}

#[test]
fn l22_waits_for_the_validity_verdict_before_prevoting() {
    let f = Fixture::new();
    let (mut e, _) = f.engine(f.non_proposer(0));
    let out = e
        .handle(Input::Proposal(f.proposal(0, value("a"), None)))
        .unwrap();
    assert!(votes_cast(&out).is_empty());
    assert_eq!(e.step(), Step::Propose);
    let out = e
        .handle(Input::ProposalValidity {
            height: Height(1),
            block_id: value("a"),
            valid: true,
        })
        .unwrap();
    assert_eq!(
        votes_cast(&out),
        vec![(VoteType::Prevote, Round(0), Some(value("a")))]
    );
}

/// Locks `me` on `v` in round 0 (L36) and moves it to round 1 (L65).
fn locked_on(f: &Fixture, me: usize, v: BlockId) -> Engine {
    let (mut e, _) = f.engine(me);
    f.propose(&mut e, 0, v, None, true);
    // Our own prevote (fed back after signing) plus two others: 2f+1.
    let others = f.others(me);
    f.votes(
        &mut e,
        &[me, others[0], others[1]],
        VoteType::Prevote,
        0,
        Some(v),
    );
    assert_eq!(e.locked(), Some((v, Round(0))));
    e.handle(Input::TimeoutElapsed {
        height: Height(1),
        round: Round(0),
        kind: TimeoutKind::Precommit,
    })
    .unwrap();
    assert_eq!(e.round(), Round(1));
    e
}

#[test]
fn l22_locked_validator_prevotes_nil_for_another_value_and_v_for_its_locked_value() {
    let f = Fixture::new();
    let me = (0..4)
        .find(|i| *i != f.proposer(0) && *i != f.proposer(1))
        .unwrap();
    let mut e = locked_on(&f, me, value("v"));
    let out = f.propose(&mut e, 1, value("w"), None, true);
    assert_eq!(votes_cast(&out), vec![(VoteType::Prevote, Round(1), None)]);

    let mut e = locked_on(&f, me, value("v"));
    let out = f.propose(&mut e, 1, value("v"), None, true);
    assert_eq!(
        votes_cast(&out),
        vec![(VoteType::Prevote, Round(1), Some(value("v")))]
    );
}

// ---------------------------------------------------------------- L28

#[test]
fn l28_pol_newer_than_the_lock_unlocks_the_prevote() {
    let f = Fixture::new();
    let me = (0..4)
        .find(|i| ![f.proposer(0), f.proposer(1), f.proposer(2)].contains(i))
        .unwrap_or(f.non_proposer(2));
    let mut e = locked_on(&f, me, value("v"));
    // Round 1: 2f+1 prevotes for w (a POL for w at round 1), then round 2 proposes w with vr = 1.
    let others = f.others(me);
    f.votes(&mut e, &others, VoteType::Prevote, 1, Some(value("w")));
    e.handle(Input::TimeoutElapsed {
        height: Height(1),
        round: Round(1),
        kind: TimeoutKind::Precommit,
    })
    .ok();
    if e.round() != Round(2) {
        // The prevotes already moved us to precommit; the timeout above started round 2.
        e.handle(Input::TimeoutElapsed {
            height: Height(1),
            round: e.round(),
            kind: TimeoutKind::Precommit,
        })
        .unwrap();
    }
    assert_eq!(e.round(), Round(2));
    assert_eq!(
        e.locked(),
        Some((value("v"), Round(0))),
        "no proposal for w in round 1, so no re-lock"
    );
    let out = f.propose(&mut e, 2, value("w"), Some(1), true);
    // lockedRound 0 ≤ vr 1: prevote w although locked on v.
    assert_eq!(
        votes_cast(&out),
        vec![(VoteType::Prevote, Round(2), Some(value("w")))]
    );
}

#[test]
fn l28_l32_pol_older_than_the_lock_for_another_value_gets_nil() {
    let f = Fixture::new();
    let me = (0..4)
        .find(|i| ![f.proposer(0), f.proposer(1), f.proposer(2)].contains(i))
        .unwrap_or(f.non_proposer(2));
    let (mut e, _) = f.engine(me);
    let others = f.others(me);
    // Round 0: POL for w (no proposal seen, so no lock).
    f.votes(&mut e, &others, VoteType::Prevote, 0, Some(value("w")));
    e.handle(Input::TimeoutElapsed {
        height: Height(1),
        round: Round(0),
        kind: TimeoutKind::Propose,
    })
    .ok();
    e.handle(Input::TimeoutElapsed {
        height: Height(1),
        round: Round(0),
        kind: TimeoutKind::Precommit,
    })
    .unwrap();
    // Round 1: lock on v.
    f.propose(&mut e, 1, value("v"), None, true);
    f.votes(
        &mut e,
        &[me, others[0], others[1]],
        VoteType::Prevote,
        1,
        Some(value("v")),
    );
    assert_eq!(e.locked(), Some((value("v"), Round(1))));
    e.handle(Input::TimeoutElapsed {
        height: Height(1),
        round: Round(1),
        kind: TimeoutKind::Precommit,
    })
    .unwrap();
    // Round 2 re-proposes w with vr = 0 < lockedRound 1 and w ≠ v: nil.
    let out = f.propose(&mut e, 2, value("w"), Some(0), true);
    assert_eq!(votes_cast(&out), vec![(VoteType::Prevote, Round(2), None)]);
}

#[test]
fn l28_waits_for_the_pol_prevotes() {
    let f = Fixture::new();
    let me = f.non_proposer(1);
    let (mut e, _) = f.engine(me);
    e.handle(Input::TimeoutElapsed {
        height: Height(1),
        round: Round(0),
        kind: TimeoutKind::Precommit,
    })
    .unwrap();
    let out = f.propose(&mut e, 1, value("w"), Some(0), true);
    assert!(votes_cast(&out).is_empty(), "no POL yet");
    let others: Vec<usize> = f.others(me);
    let out = f.votes(&mut e, &others, VoteType::Prevote, 0, Some(value("w")));
    assert_eq!(
        votes_cast(&out),
        vec![(VoteType::Prevote, Round(1), Some(value("w")))]
    );
}

#[test]
fn proposals_with_a_pol_round_not_below_their_round_are_refused() {
    let f = Fixture::new();
    let (mut e, _) = f.engine(f.non_proposer(0));
    let before = snapshot(&e);
    assert_eq!(
        e.handle(Input::Proposal(f.proposal(0, value("a"), Some(0)))),
        Err(ConsensusError::InvalidPolRound)
    );
    assert_eq!(snapshot(&e), before);
}

// ---------------------------------------------------------------- L34, L36, L44, L47

#[test]
fn l34_two_thirds_of_any_prevotes_schedule_timeout_prevote_once() {
    let f = Fixture::new();
    let me = f.non_proposer(0);
    let (mut e, _) = f.engine(me);
    e.handle(Input::TimeoutElapsed {
        height: Height(1),
        round: Round(0),
        kind: TimeoutKind::Propose,
    })
    .unwrap();
    let others = f.others(me);
    let out1 = f.votes(&mut e, &others[..1], VoteType::Prevote, 0, Some(value("a")));
    let out2 = f.votes(&mut e, &others[1..2], VoteType::Prevote, 0, None);
    assert!(
        timeouts(&out1).is_empty() && timeouts(&out2).is_empty(),
        "two of four is not 2f+1"
    );
    // Our own nil prevote (fed back) makes three: mixed values still count as "∗".
    let own = f.vote(me, VoteType::Prevote, 0, None);
    let out = e.handle(Input::Vote(own)).unwrap();
    assert_eq!(
        timeouts(&out),
        vec![(TimeoutKind::Prevote, Round(0), Duration::from_millis(200))]
    );
    let out = f.votes(&mut e, &others[2..], VoteType::Prevote, 0, Some(value("b")));
    assert!(timeouts(&out).is_empty(), "for the first time only");
}

#[test]
fn l36_quorum_of_prevotes_for_the_proposal_locks_and_precommits() {
    let f = Fixture::new();
    let me = f.non_proposer(0);
    let (mut e, _) = f.engine(me);
    f.propose(&mut e, 0, value("a"), None, true);
    let others = f.others(me);
    let out = f.votes(&mut e, &others[..2], VoteType::Prevote, 0, Some(value("a")));
    assert!(votes_cast(&out).is_empty(), "two others are not yet 2f+1");
    let out = e
        .handle(Input::Vote(f.vote(
            me,
            VoteType::Prevote,
            0,
            Some(value("a")),
        )))
        .unwrap();
    assert_eq!(
        votes_cast(&out),
        vec![(VoteType::Precommit, Round(0), Some(value("a")))]
    );
    assert_eq!(e.locked(), Some((value("a"), Round(0))));
    assert_eq!(e.valid(), Some((value("a"), Round(0))));
    assert_eq!(e.step(), Step::Precommit);
}

#[test]
fn l36_needs_a_valid_proposal_not_just_votes() {
    let f = Fixture::new();
    let me = f.non_proposer(0);
    let (mut e, _) = f.engine(me);
    e.handle(Input::TimeoutElapsed {
        height: Height(1),
        round: Round(0),
        kind: TimeoutKind::Propose,
    })
    .unwrap();
    let out = f.votes(
        &mut e,
        &f.others(me),
        VoteType::Prevote,
        0,
        Some(value("a")),
    );
    assert!(votes_cast(&out).is_empty());
    assert_eq!(e.locked(), None);
    // The proposal arrives but is invalid: still no lock.
    let out = f.propose(&mut e, 0, value("a"), None, false);
    assert!(votes_cast(&out).is_empty());
    assert_eq!(e.locked(), None);
}

#[test]
fn l36_l42_in_precommit_step_only_the_valid_value_is_updated() {
    let f = Fixture::new();
    let me = f.non_proposer(0);
    let (mut e, _) = f.engine(me);
    // Prevote nil by timeout, then precommit nil by timeout: step precommit, nothing locked.
    e.handle(Input::TimeoutElapsed {
        height: Height(1),
        round: Round(0),
        kind: TimeoutKind::Propose,
    })
    .unwrap();
    e.handle(Input::TimeoutElapsed {
        height: Height(1),
        round: Round(0),
        kind: TimeoutKind::Prevote,
    })
    .unwrap();
    assert_eq!(e.step(), Step::Precommit);
    f.propose(&mut e, 0, value("a"), None, true);
    let out = f.votes(
        &mut e,
        &f.others(me),
        VoteType::Prevote,
        0,
        Some(value("a")),
    );
    assert!(votes_cast(&out).is_empty());
    assert_eq!(e.locked(), None);
    assert_eq!(e.valid(), Some((value("a"), Round(0))));
}

#[test]
fn l44_quorum_of_nil_prevotes_precommits_nil() {
    let f = Fixture::new();
    let me = f.non_proposer(0);
    let (mut e, _) = f.engine(me);
    f.propose(&mut e, 0, value("a"), None, true);
    let out = f.votes(&mut e, &f.others(me), VoteType::Prevote, 0, None);
    assert_eq!(
        votes_cast(&out),
        vec![(VoteType::Precommit, Round(0), None)]
    );
    assert_eq!(e.locked(), None);
}

#[test]
fn l47_two_thirds_of_any_precommits_schedule_timeout_precommit_once() {
    let f = Fixture::new();
    let me = f.non_proposer(0);
    let (mut e, _) = f.engine(me);
    let others = f.others(me);
    f.votes(&mut e, &others[..1], VoteType::Precommit, 0, None);
    f.votes(
        &mut e,
        &others[1..2],
        VoteType::Precommit,
        0,
        Some(value("x")),
    );
    let out = f.votes(
        &mut e,
        &others[2..],
        VoteType::Precommit,
        0,
        Some(value("y")),
    );
    assert_eq!(
        timeouts(&out),
        vec![(TimeoutKind::Precommit, Round(0), Duration::from_millis(200))]
    );
    assert_eq!(e.step(), Step::Propose, "L47 holds in any step");
}

// ---------------------------------------------------------------- L49

#[test]
fn l49_decides_with_the_proposal_and_quorum_of_precommits_and_builds_the_commit() {
    let f = Fixture::new();
    let me = f.non_proposer(0);
    let (mut e, _) = f.engine(me);
    f.propose(&mut e, 0, value("a"), None, true);
    let others = f.others(me);
    let out = f.votes(&mut e, &others, VoteType::Precommit, 0, Some(value("a")));
    let decide = out.iter().find_map(|o| match o {
        Output::Decide {
            height,
            round,
            proposal,
            commit,
        } => Some((height, round, proposal, commit)),
        _ => None,
    });
    let (height, round, proposal, commit) = decide.expect("decided");
    assert_eq!((*height, *round), (Height(1), Round(0)));
    assert_eq!(proposal.proposal.block_id, value("a"));
    assert_eq!(commit.block_id, value("a"));
    // One entry per validator of the set, in set order; the fourth is absent.
    assert_eq!(commit.signatures.len(), 4);
    assert_eq!(commit.signed().count(), 3);
    for (slot, v) in commit.signatures.iter().zip(f.set.validators()) {
        assert!(slot.as_ref().is_none_or(|s| s.validator == v.address));
    }
    assert_eq!(
        f.set.verify_commit(CHAIN, Height(1), &value("a"), commit),
        Ok(())
    );
    assert_eq!(e.step(), Step::Commit);
    // After the decision nothing more happens at this height.
    let out = e
        .handle(Input::TimeoutElapsed {
            height: Height(1),
            round: Round(0),
            kind: TimeoutKind::Precommit,
        })
        .unwrap();
    assert!(out.is_empty());
}

#[test]
fn l49_decides_on_precommits_of_an_earlier_round() {
    let f = Fixture::new();
    let me = f.non_proposer(0);
    let (mut e, _) = f.engine(me);
    // We move on to round 1 without seeing round 0's outcome.
    e.handle(Input::TimeoutElapsed {
        height: Height(1),
        round: Round(0),
        kind: TimeoutKind::Precommit,
    })
    .unwrap();
    assert_eq!(e.round(), Round(1));
    f.propose(&mut e, 0, value("a"), None, true);
    let out = f.votes(
        &mut e,
        &f.others(me),
        VoteType::Precommit,
        0,
        Some(value("a")),
    );
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Decide {
            round: Round(0),
            ..
        }
    )));
}

#[test]
fn l49_l50_no_decision_without_the_proposal_or_for_an_invalid_value() {
    let f = Fixture::new();
    let me = f.non_proposer(0);
    let (mut e, _) = f.engine(me);
    let out = f.votes(
        &mut e,
        &f.others(me),
        VoteType::Precommit,
        0,
        Some(value("a")),
    );
    assert!(!out.iter().any(|o| matches!(o, Output::Decide { .. })));
    let out = f.propose(&mut e, 0, value("a"), None, false);
    assert!(!out.iter().any(|o| matches!(o, Output::Decide { .. })));
    let out = e.handle(Input::ProposalValidity {
        height: Height(1),
        block_id: value("a"),
        valid: true,
    });
    assert!(out
        .unwrap()
        .iter()
        .any(|o| matches!(o, Output::Decide { .. })));
}

// ---------------------------------------------------------------- L55

#[test]
fn l55_f_plus_one_messages_of_a_higher_round_skip_to_it() {
    let f = Fixture::new();
    let me = f.non_proposer(0);
    let (mut e, _) = f.engine(me);
    let others = f.others(me);
    let out = f.votes(&mut e, &others[..1], VoteType::Prevote, 5, None);
    assert_eq!(e.round(), Round(0), "one of four is not f+1");
    assert!(out.is_empty());
    // A precommit from another validator in round 5: two distinct validators, more than 1/3.
    let out = f.votes(&mut e, &others[1..2], VoteType::Precommit, 5, None);
    assert_eq!(e.round(), Round(5));
    assert_eq!(e.step(), Step::Propose);
    assert!(timeouts(&out)
        .iter()
        .any(|(k, r, _)| *k == TimeoutKind::Propose && *r == Round(5)));
}

#[test]
fn l55_the_same_validator_twice_is_not_f_plus_one() {
    let f = Fixture::new();
    let me = f.non_proposer(0);
    let (mut e, _) = f.engine(me);
    let other = f.others(me)[0];
    f.votes(&mut e, &[other], VoteType::Prevote, 3, None);
    f.votes(&mut e, &[other], VoteType::Precommit, 3, None);
    assert_eq!(e.round(), Round(0));
}

// ---------------------------------------------------------------- L57, L61, L65

#[test]
fn l57_timeout_propose_prevotes_nil_only_in_propose_step_of_that_round() {
    let f = Fixture::new();
    let (mut e, _) = f.engine(f.non_proposer(0));
    let stale = e
        .handle(Input::TimeoutElapsed {
            height: Height(1),
            round: Round(3),
            kind: TimeoutKind::Propose,
        })
        .unwrap();
    assert!(stale.is_empty());
    let out = e
        .handle(Input::TimeoutElapsed {
            height: Height(1),
            round: Round(0),
            kind: TimeoutKind::Propose,
        })
        .unwrap();
    assert_eq!(votes_cast(&out), vec![(VoteType::Prevote, Round(0), None)]);
    let again = e
        .handle(Input::TimeoutElapsed {
            height: Height(1),
            round: Round(0),
            kind: TimeoutKind::Propose,
        })
        .unwrap();
    assert!(again.is_empty(), "no second prevote");
}

#[test]
fn l61_timeout_prevote_precommits_nil_only_in_prevote_step() {
    let f = Fixture::new();
    let (mut e, _) = f.engine(f.non_proposer(0));
    let early = e
        .handle(Input::TimeoutElapsed {
            height: Height(1),
            round: Round(0),
            kind: TimeoutKind::Prevote,
        })
        .unwrap();
    assert!(early.is_empty(), "still in propose");
    e.handle(Input::TimeoutElapsed {
        height: Height(1),
        round: Round(0),
        kind: TimeoutKind::Propose,
    })
    .unwrap();
    let out = e
        .handle(Input::TimeoutElapsed {
            height: Height(1),
            round: Round(0),
            kind: TimeoutKind::Prevote,
        })
        .unwrap();
    assert_eq!(
        votes_cast(&out),
        vec![(VoteType::Precommit, Round(0), None)]
    );
    assert_eq!(e.step(), Step::Precommit);
}

#[test]
fn l65_timeout_precommit_starts_the_next_round_and_old_heights_are_ignored() {
    let f = Fixture::new();
    let (mut e, _) = f.engine(f.non_proposer(0));
    let out = e
        .handle(Input::TimeoutElapsed {
            height: Height(0),
            round: Round(0),
            kind: TimeoutKind::Precommit,
        })
        .unwrap();
    assert!(out.is_empty());
    e.handle(Input::TimeoutElapsed {
        height: Height(1),
        round: Round(0),
        kind: TimeoutKind::Precommit,
    })
    .unwrap();
    assert_eq!((e.round(), e.step()), (Round(1), Step::Propose));
}

// ---------------------------------------------------------------- Refusals

#[test]
fn bad_messages_are_refused_with_typed_errors_and_change_nothing() {
    let f = Fixture::new();
    let me = f.non_proposer(0);
    let (mut e, _) = f.engine(me);
    let other = f.others(me)[0];
    let before = snapshot(&e);

    let mut old = f.vote(other, VoteType::Prevote, 0, None);
    old.vote.height = Height(0);
    let old = old
        .vote
        .sign(CHAIN, basalt_types::Timestamp::default(), &f.keys[other]);
    assert!(matches!(
        e.handle(Input::Vote(old)),
        Err(ConsensusError::OldHeight { .. })
    ));

    let mut future = f.vote(other, VoteType::Prevote, 0, None).vote;
    future.height = Height(2);
    assert!(matches!(
        e.handle(Input::Vote(future.sign(
            CHAIN,
            basalt_types::Timestamp::default(),
            &f.keys[other]
        ))),
        Err(ConsensusError::FutureHeight { .. })
    ));

    let stranger = PrivateKey::from_seed([77; 32]);
    let mut foreign = f.vote(other, VoteType::Prevote, 0, None).vote;
    foreign.validator = stranger.public_key().address();
    assert!(matches!(
        e.handle(Input::Vote(foreign.sign(
            CHAIN,
            basalt_types::Timestamp::default(),
            &stranger
        ))),
        Err(ConsensusError::UnknownValidator(_))
    ));

    let other_chain = f.vote(other, VoteType::Prevote, 0, None).vote.sign(
        "another-chain",
        basalt_types::Timestamp::default(),
        &f.keys[other],
    );
    assert_eq!(
        e.handle(Input::Vote(other_chain)),
        Err(ConsensusError::InvalidSignature)
    );

    let mut forged = f.vote(other, VoteType::Prevote, 0, None);
    forged.signature = f.keys[me].sign(b"anything");
    assert_eq!(
        e.handle(Input::Vote(forged)),
        Err(ConsensusError::InvalidSignature)
    );

    let far = f.vote(other, VoteType::Prevote, 5000, None);
    assert!(matches!(
        e.handle(Input::Vote(far)),
        Err(ConsensusError::RoundTooFarAhead { .. })
    ));

    // A proposal signed by a validator that is not this round's proposer.
    let wrong = Proposal {
        height: Height(1),
        round: Round(0),
        pol_round: None,
        block_id: value("a"),
        proposer: f.addr(me),
    }
    .sign(CHAIN, basalt_types::Timestamp::default(), &f.keys[me]);
    assert!(matches!(
        e.handle(Input::Proposal(wrong)),
        Err(ConsensusError::NotProposer { .. })
    ));

    // The right proposer's proposal, signed for another chain.
    let p = f.proposer(0);
    let other_chain = Proposal {
        height: Height(1),
        round: Round(0),
        pol_round: None,
        block_id: value("a"),
        proposer: f.addr(p),
    }
    .sign(
        "another-chain",
        basalt_types::Timestamp::default(),
        &f.keys[p],
    );
    assert_eq!(
        e.handle(Input::Proposal(other_chain)),
        Err(ConsensusError::InvalidSignature)
    );

    assert!(matches!(
        e.handle(Input::ProposalValidity {
            height: Height(9),
            block_id: value("a"),
            valid: true
        }),
        Err(ConsensusError::FutureHeight { .. })
    ));
    assert_eq!(snapshot(&e), before);

    // Duplicates are refused too, after the first copy counted.
    let v = f.vote(other, VoteType::Prevote, 0, None);
    e.handle(Input::Vote(v.clone())).unwrap();
    let after_one = snapshot(&e);
    assert_eq!(
        e.handle(Input::Vote(v.clone())),
        Err(ConsensusError::Duplicate)
    );
    // The same vote signed again at another time (a validator that lost its signer state
    // would do this) is the same vote: a duplicate, neither counted twice nor evidence.
    let later = v.vote.clone().sign(
        CHAIN,
        basalt_types::Timestamp {
            seconds: 99,
            nanos: 0,
        },
        &f.keys[other],
    );
    assert_ne!(later.signature, v.signature);
    assert_eq!(e.handle(Input::Vote(later)), Err(ConsensusError::Duplicate));
    assert_eq!(snapshot(&e), after_one);
}

#[test]
fn nothing_happens_before_the_first_height() {
    let f = Fixture::new();
    let mut e = Engine::new(EngineConfig::new(CHAIN), Some(f.addr(0)));
    assert_eq!(
        e.handle(Input::Vote(f.vote(1, VoteType::Prevote, 0, None))),
        Err(ConsensusError::NotStarted)
    );
    assert_eq!(
        e.handle(Input::TimeoutElapsed {
            height: Height(1),
            round: Round(0),
            kind: TimeoutKind::Propose
        }),
        Err(ConsensusError::NotStarted)
    );
}

#[test]
fn new_height_must_increase() {
    let f = Fixture::new();
    let (mut e, _) = f.engine(0);
    assert!(matches!(
        e.handle(Input::NewHeight {
            height: Height(1),
            validators: f.set.clone()
        }),
        Err(ConsensusError::HeightNotIncreasing { .. })
    ));
}

// ---------------------------------------------------------------- Equivocation

#[test]
fn conflicting_votes_yield_verifiable_evidence_once_and_count_once_per_value() {
    let f = Fixture::new();
    let me = f.non_proposer(0);
    let (mut e, _) = f.engine(me);
    let byz = f.others(me)[0];
    f.votes(&mut e, &[byz], VoteType::Prevote, 0, Some(value("a")));
    let out = f.votes(&mut e, &[byz], VoteType::Prevote, 0, Some(value("b")));
    let evidence: Vec<&DuplicateVoteEvidence> = out
        .iter()
        .filter_map(|o| match o {
            Output::Evidence(ev) => Some(ev),
            _ => None,
        })
        .collect();
    assert_eq!(evidence.len(), 1);
    assert_eq!(evidence[0].verify(CHAIN, &f.keys[byz].public_key()), Ok(()));
    assert_eq!(
        (evidence[0].validator_power, evidence[0].total_power),
        (1, 4)
    );
    assert_eq!(
        e.votes().power_any(Round(0), VoteType::Prevote),
        1,
        "one validator in the total"
    );
    assert_eq!(
        e.votes()
            .power_for(Round(0), VoteType::Prevote, Some(value("b"))),
        1,
        "the second vote counts for its own value"
    );
    // A third different vote: no second report for the same position.
    let out = f.votes(&mut e, &[byz], VoteType::Prevote, 0, None);
    assert!(!out.iter().any(|o| matches!(o, Output::Evidence(_))));
}

#[test]
fn equivocation_arriving_after_the_decision_is_still_caught_at_the_next_height() {
    let f = Fixture::new();
    let me = f.non_proposer(0);
    let (mut e, _) = f.engine(me);
    let others = f.others(me);
    f.propose(&mut e, 0, value("a"), None, true);
    f.votes(&mut e, &others, VoteType::Precommit, 0, Some(value("a")));
    let mut next = f.set.clone();
    next.increment_proposer_priority(1);
    e.handle(Input::NewHeight {
        height: Height(2),
        validators: next,
    })
    .unwrap();
    // A late conflicting precommit for height 1.
    let late = f.vote(others[0], VoteType::Precommit, 0, None);
    let out = e.handle(Input::Vote(late)).unwrap();
    assert!(matches!(out.as_slice(), [Output::Evidence(_)]));
    // Heights before that are refused.
    let mut ancient = f.vote(others[0], VoteType::Precommit, 0, None).vote;
    ancient.height = Height(0);
    assert!(matches!(
        e.handle(Input::Vote(ancient.sign(
            CHAIN,
            basalt_types::Timestamp::default(),
            &f.keys[others[0]]
        ))),
        Err(ConsensusError::OldHeight { .. })
    ));
}

// ---------------------------------------------------------------- Weighted power and full nodes

#[test]
fn thresholds_are_by_power_not_by_count() {
    // Powers 5, 1, 1, 1 (total 8): validator 0 alone holds 5/8 < 2/3; with one more, 6/8 > 2/3.
    let f = Fixture::with_powers(&[5, 1, 1, 1]);
    let me = (1..4).find(|i| *i != f.proposer(0)).unwrap();
    let (mut e, _) = f.engine(me);
    f.propose(&mut e, 0, value("a"), None, true);
    let out = f.votes(&mut e, &[0], VoteType::Precommit, 0, Some(value("a")));
    assert!(!out.iter().any(|o| matches!(o, Output::Decide { .. })));
    let helper = (1..4).find(|i| *i != me).unwrap();
    let out = f.votes(&mut e, &[helper], VoteType::Precommit, 0, Some(value("a")));
    assert!(out.iter().any(|o| matches!(o, Output::Decide { .. })));
    // Round skip: validator 0 alone (5/8 > 1/3) is f+1.
    let f = Fixture::with_powers(&[5, 1, 1, 1]);
    let (mut e, _) = f.engine(me);
    f.votes(&mut e, &[0], VoteType::Prevote, 4, None);
    assert_eq!(e.round(), Round(4));
}

#[test]
fn a_full_node_follows_and_decides_but_never_signs() {
    let f = Fixture::new();
    let mut e = Engine::new(EngineConfig::new(CHAIN), None);
    let mut out = e
        .handle(Input::NewHeight {
            height: Height(1),
            validators: f.set.clone(),
        })
        .unwrap();
    out.extend(f.propose(&mut e, 0, value("a"), None, true));
    out.extend(f.votes(
        &mut e,
        &[0, 1, 2, 3],
        VoteType::Prevote,
        0,
        Some(value("a")),
    ));
    out.extend(f.votes(
        &mut e,
        &[0, 1, 2, 3],
        VoteType::Precommit,
        0,
        Some(value("a")),
    ));
    assert!(!out.iter().any(|o| matches!(
        o,
        Output::Vote(_) | Output::Propose(_) | Output::RequestValue { .. }
    )));
    assert!(out.iter().any(|o| matches!(o, Output::Decide { .. })));
}
