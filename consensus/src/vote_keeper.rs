//! Counts votes by power for one height: once per validator per (round, type), whatever the
//! network duplicates, and reports a second, different vote as an equivocation.

use basalt_types::{Address, BlockId, Round, SignedVote, VoteType};
use std::collections::{BTreeMap, HashMap};

/// What adding a vote did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddOutcome {
    /// First vote of this validator for this round and type: counted.
    New,
    /// The very same signed vote again: ignored.
    Duplicate,
    /// A different vote than the one already counted (returned here): not counted; the pair
    /// is evidence of equivocation.
    Conflict(SignedVote),
}

/// Votes of one type in one round.
#[derive(Default, Debug, Clone)]
struct Tally {
    votes: HashMap<Address, SignedVote>,
    power_by_value: HashMap<Option<BlockId>, u64>,
    power: u64,
}

impl Tally {
    fn add(&mut self, vote: SignedVote, power: u64) -> AddOutcome {
        if let Some(existing) = self.votes.get(&vote.vote.validator) {
            return if existing.vote == vote.vote {
                AddOutcome::Duplicate
            } else {
                AddOutcome::Conflict(existing.clone())
            };
        }
        *self.power_by_value.entry(vote.vote.block_id).or_default() += power;
        self.power += power;
        self.votes.insert(vote.vote.validator, vote);
        AddOutcome::New
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

    /// The vote already held for this signer, round and type, if any (cheap duplicate check
    /// before spending a signature verification).
    pub fn get(
        &self,
        round: Round,
        vote_type: VoteType,
        validator: &Address,
    ) -> Option<&SignedVote> {
        self.rounds
            .get(&round)?
            .tally(vote_type)
            .votes
            .get(validator)
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
                .filter(|v| v.vote.block_id == Some(value))
                .collect()
        })
    }

    /// Every vote held, for re-gossip to peers that missed them.
    pub fn all_votes(&self) -> impl Iterator<Item = &SignedVote> + '_ {
        self.rounds
            .values()
            .flat_map(|r| r.prevotes.votes.values().chain(r.precommits.votes.values()))
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
            block_id: value.map(|v| BlockId(Hash::digest(v))),
            validator: key.public_key().address(),
        }
        .sign("vk", &key)
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
    fn a_different_second_vote_is_a_conflict_and_is_not_counted() {
        let mut vk = VoteKeeper::default();
        let first = vote(1, VoteType::Precommit, 2, Some(b"x"));
        vk.add(first.clone(), 10);
        let second = vote(1, VoteType::Precommit, 2, Some(b"y"));
        assert_eq!(vk.add(second.clone(), 10), AddOutcome::Conflict(first));
        assert_eq!(
            vk.power_for(Round(2), VoteType::Precommit, second.vote.block_id),
            0
        );
        assert_eq!(vk.power_any(Round(2), VoteType::Precommit), 10);
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
