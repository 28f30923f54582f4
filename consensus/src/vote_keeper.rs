//! Counts votes by power for one height and reports a second, different vote from one
//! validator for the same round and type as an equivocation.
//!
//! The paper counts *messages*: "2f+1 ⟨PREVOTE, h, r, id(v)⟩" holds when validators with more
//! than 2/3 of the power sent a prevote for v, even if some of them also sent something else.
//! So a validator's power counts once for each distinct value it voted for (and once in the
//! total of "any" votes). Counting only the first vote received would let an equivocator show
//! different honest nodes different quorums forever: honest nodes locked on v could never
//! convince one that saw the equivocator's nil first (a liveness bug the simulator found).
//! Safety is unaffected: two quorums for different values overlap in more than 1/3 of the
//! power, which must include an honest validator, and honest validators do not equivocate.

use basalt_types::{Address, BlockId, Round, SignedVote, VoteType};
use std::collections::{BTreeMap, HashMap};

// Iterated maps are BTreeMaps: anything that walks the held votes (re-gossip, commits) must
// see them in the same order on every run, or seeded simulations stop being replayable.

/// What adding a vote did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddOutcome {
    /// First vote of this validator for this round and type: counted.
    New,
    /// The very same signed vote again: ignored.
    Duplicate,
    /// A vote for another value than an earlier vote of the same validator (returned here):
    /// counted for its value; the pair is evidence of equivocation.
    Conflict(SignedVote),
}

/// A Byzantine validator may sign any number of values; beyond this many per round and type
/// its votes are dropped, which keeps memory bounded (a few distinct values are all that
/// ever matter).
const MAX_VALUES_PER_VALIDATOR: usize = 4;

/// Votes of one type in one round.
#[derive(Default, Debug, Clone)]
struct Tally {
    votes: BTreeMap<Address, Vec<SignedVote>>,
    power_by_value: HashMap<Option<BlockId>, u64>,
    power: u64,
}

impl Tally {
    fn add(&mut self, vote: SignedVote, power: u64) -> AddOutcome {
        let held = self.votes.entry(vote.vote.validator).or_default();
        if held.iter().any(|h| h.vote == vote.vote) {
            return AddOutcome::Duplicate;
        }
        let earlier = held.first().cloned();
        if held.len() >= MAX_VALUES_PER_VALIDATOR {
            return AddOutcome::Conflict(earlier.expect("non-empty"));
        }
        *self.power_by_value.entry(vote.vote.block_id).or_default() += power;
        held.push(vote);
        match earlier {
            Some(e) => AddOutcome::Conflict(e),
            None => {
                self.power += power;
                AddOutcome::New
            }
        }
    }
}

#[derive(Default, Debug, Clone)]
struct RoundVotes {
    prevotes: Tally,
    precommits: Tally,
    /// Power of the distinct validators with any vote in this round (for the round skip, L55).
    participants: HashMap<Address, u64>,
    participant_power: u64,
}

impl RoundVotes {
    fn tally(&self, t: VoteType) -> &Tally {
        match t {
            VoteType::Prevote => &self.prevotes,
            VoteType::Precommit => &self.precommits,
        }
    }
}

/// All votes of one height, by round.
#[derive(Default, Debug, Clone)]
pub struct VoteKeeper {
    rounds: BTreeMap<Round, RoundVotes>,
}

impl VoteKeeper {
    /// Adds a vote whose signature the caller has checked, counting `power` for its signer.
    pub fn add(&mut self, vote: SignedVote, power: u64) -> AddOutcome {
        let (round, vote_type, validator) =
            (vote.vote.round, vote.vote.vote_type, vote.vote.validator);
        let rv = self.rounds.entry(round).or_default();
        let tally = match vote_type {
            VoteType::Prevote => &mut rv.prevotes,
            VoteType::Precommit => &mut rv.precommits,
        };
        let outcome = tally.add(vote, power);
        if outcome == AddOutcome::New && rv.participants.insert(validator, power).is_none() {
            rv.participant_power += power;
        }
        outcome
    }

    /// The votes already held for this signer, round and type (first received first).
    pub fn get(&self, round: Round, vote_type: VoteType, validator: &Address) -> &[SignedVote] {
        self.rounds
            .get(&round)
            .and_then(|r| r.tally(vote_type).votes.get(validator))
            .map_or(&[], |v| v.as_slice())
    }

    /// Power of the votes of `vote_type` in `round` for `value` (`None` = nil).
    pub fn power_for(&self, round: Round, vote_type: VoteType, value: Option<BlockId>) -> u64 {
        self.rounds
            .get(&round)
            .and_then(|r| r.tally(vote_type).power_by_value.get(&value).copied())
            .unwrap_or(0)
    }

    /// Power of all votes of `vote_type` in `round`, whatever their value (the paper's `∗`).
    pub fn power_any(&self, round: Round, vote_type: VoteType) -> u64 {
        self.rounds
            .get(&round)
            .map_or(0, |r| r.tally(vote_type).power)
    }

    /// Power of the distinct validators that sent any vote in `round`.
    pub fn participant_power(&self, round: Round) -> u64 {
        self.rounds.get(&round).map_or(0, |r| r.participant_power)
    }

    /// Rounds above `round` that hold any vote, highest first.
    pub fn rounds_above(&self, round: Round) -> impl Iterator<Item = Round> + '_ {
        self.rounds
            .range(round.next()..)
            .rev()
            .map(|(r, _)| *r)
            .filter(move |r| *r > round)
    }

    /// The precommits of `round` for `value`, for building a commit.
    pub fn precommits_for(&self, round: Round, value: BlockId) -> Vec<&SignedVote> {
        self.rounds.get(&round).map_or_else(Vec::new, |r| {
            r.precommits
                .votes
                .values()
                .flatten()
                .filter(|v| v.vote.block_id == Some(value))
                .collect()
        })
    }

    /// Every vote held, for re-gossip to peers that missed them.
    pub fn all_votes(&self) -> impl Iterator<Item = &SignedVote> + '_ {
        self.rounds
            .values()
            .flat_map(|r| r.prevotes.votes.values().chain(r.precommits.votes.values()))
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_types::{Hash, Height, PrivateKey, Vote};

    fn vote(seed: u8, t: VoteType, round: u32, value: Option<&[u8]>) -> SignedVote {
        let key = PrivateKey::from_seed([seed; 32]);
        Vote {
            vote_type: t,
            height: Height(1),
            round: Round(round),
            block_id: value.map(|v| BlockId(Hash::digest(v), Default::default())),
            validator: key.public_key().address(),
        }
        .sign("vk", basalt_types::Timestamp::default(), &key)
    }

    #[test]
    fn power_counts_once_per_validator_and_type() {
        let mut vk = VoteKeeper::default();
        let a = vote(1, VoteType::Prevote, 0, Some(b"x"));
        assert_eq!(vk.add(a.clone(), 10), AddOutcome::New);
        assert_eq!(vk.add(a.clone(), 10), AddOutcome::Duplicate);
        assert_eq!(
            vk.power_for(Round(0), VoteType::Prevote, a.vote.block_id),
            10
        );
        // The same validator's precommit is a separate count, but not a new participant.
        assert_eq!(
            vk.add(vote(1, VoteType::Precommit, 0, None), 10),
            AddOutcome::New
        );
        assert_eq!(vk.power_any(Round(0), VoteType::Precommit), 10);
        assert_eq!(vk.participant_power(Round(0)), 10);
        assert_eq!(
            vk.add(vote(2, VoteType::Prevote, 0, None), 5),
            AddOutcome::New
        );
        assert_eq!(vk.power_any(Round(0), VoteType::Prevote), 15);
        assert_eq!(vk.power_for(Round(0), VoteType::Prevote, None), 5);
        assert_eq!(vk.participant_power(Round(0)), 15);
    }

    #[test]
    fn a_different_second_vote_is_a_conflict_counted_for_its_value_but_not_twice_in_the_total() {
        let mut vk = VoteKeeper::default();
        let first = vote(1, VoteType::Precommit, 2, Some(b"x"));
        vk.add(first.clone(), 10);
        let second = vote(1, VoteType::Precommit, 2, Some(b"y"));
        assert_eq!(
            vk.add(second.clone(), 10),
            AddOutcome::Conflict(first.clone())
        );
        assert_eq!(vk.add(second.clone(), 10), AddOutcome::Duplicate);
        assert_eq!(
            vk.power_for(Round(2), VoteType::Precommit, second.vote.block_id),
            10
        );
        assert_eq!(
            vk.power_for(Round(2), VoteType::Precommit, first.vote.block_id),
            10
        );
        assert_eq!(vk.power_any(Round(2), VoteType::Precommit), 10);
        assert_eq!(vk.participant_power(Round(2)), 10);
    }

    #[test]
    fn an_equivocator_cannot_grow_the_keeper_without_bound() {
        let mut vk = VoteKeeper::default();
        for i in 0..20u8 {
            vk.add(vote(1, VoteType::Prevote, 0, Some(&[i])), 1);
        }
        let who = vote(1, VoteType::Prevote, 0, None).vote.validator;
        assert_eq!(
            vk.get(Round(0), VoteType::Prevote, &who).len(),
            MAX_VALUES_PER_VALIDATOR
        );
        assert_eq!(vk.power_any(Round(0), VoteType::Prevote), 1);
    }

    #[test]
    fn rounds_above_lists_higher_rounds_highest_first() {
        let mut vk = VoteKeeper::default();
        for r in [0, 3, 7, 5] {
            vk.add(vote(1, VoteType::Prevote, r, None), 1);
        }
        assert_eq!(
            vk.rounds_above(Round(3)).collect::<Vec<_>>(),
            vec![Round(7), Round(5)]
        );
        assert_eq!(vk.rounds_above(Round(7)).count(), 0);
    }
}
