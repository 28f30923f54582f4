use super::*;
use basalt_types::{BlockId, CommitSig, Height, PrivateKey, Round, Timestamp, Vote, VoteType};
use proptest::prelude::*;

fn key(n: u64) -> PublicKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&n.to_le_bytes());
    PrivateKey::from_seed(seed).public_key()
}

/// A validator with a chosen address, as CometBFT's tests build them.
fn named(name: &[u8], power: u64) -> Validator {
    let mut addr = [0u8; 20];
    addr[..name.len()].copy_from_slice(name);
    Validator {
        address: Address(addr),
        public_key: key(power),
        voting_power: power,
        proposer_priority: 0,
    }
}

fn name_of(a: &Address) -> String {
    String::from_utf8(a.0.iter().copied().take_while(|b| *b != 0).collect()).unwrap()
}

fn indexed(i: u8, power: u64) -> Validator {
    let mut addr = [0u8; 20];
    addr[19] = i;
    Validator {
        address: Address(addr),
        public_key: key(i as u64),
        voting_power: power,
        proposer_priority: 0,
    }
}

#[test]
fn cometbft_vector_foo_bar_baz() {
    // CometBFT types/validator_set_test.go, TestProposerSelection1.
    let mut set = ValidatorSet::new(vec![
        named(b"foo", 1000),
        named(b"bar", 300),
        named(b"baz", 330),
    ])
    .unwrap();
    let mut proposers = Vec::new();
    for _ in 0..99 {
        proposers.push(name_of(&set.proposer().unwrap().address));
        set.increment_proposer_priority(1);
    }
    let expected =
        "foo baz foo bar foo foo baz foo bar foo foo baz foo foo bar foo baz foo foo bar \
foo foo baz foo bar foo foo baz foo bar foo foo baz foo foo bar foo baz foo foo bar \
foo baz foo foo bar foo baz foo foo bar foo baz foo foo foo baz bar foo foo foo baz \
foo bar foo foo baz foo bar foo foo baz foo bar foo foo baz foo bar foo foo baz foo \
foo bar foo baz foo foo bar foo baz foo foo bar foo baz foo foo";
    assert_eq!(proposers.join(" "), expected);
}

#[test]
fn cometbft_vector_4_5_3_over_120_heights_gives_40_50_30() {
    // TestProposerSelection2, last part.
    let mut set = ValidatorSet::new(vec![indexed(0, 4), indexed(1, 5), indexed(2, 3)]).unwrap();
    let mut counts = [0u32; 3];
    for _ in 0..120 {
        counts[set.proposer().unwrap().address.0[19] as usize] += 1;
        set.increment_proposer_priority(1);
    }
    assert_eq!(counts, [40, 50, 30]);
}

#[test]
fn equal_power_goes_in_address_order_and_heavier_validators_repeat() {
    // TestProposerSelection2, first parts.
    let mut set =
        ValidatorSet::new(vec![indexed(2, 100), indexed(0, 100), indexed(1, 100)]).unwrap();
    for i in 0..15 {
        assert_eq!(set.proposer().unwrap().address.0[19], (i % 3) as u8);
        set.increment_proposer_priority(1);
    }
    // 400 of 600: first, but not twice in a row.
    let mut set =
        ValidatorSet::new(vec![indexed(0, 100), indexed(1, 100), indexed(2, 400)]).unwrap();
    assert_eq!(set.proposer().unwrap().address.0[19], 2);
    set.increment_proposer_priority(1);
    assert_eq!(set.proposer().unwrap().address.0[19], 0);
    // 401 of 601: twice in a row.
    let mut set =
        ValidatorSet::new(vec![indexed(0, 100), indexed(1, 100), indexed(2, 401)]).unwrap();
    assert_eq!(set.proposer().unwrap().address.0[19], 2);
    set.increment_proposer_priority(1);
    assert_eq!(set.proposer().unwrap().address.0[19], 2);
    set.increment_proposer_priority(1);
    assert_eq!(set.proposer().unwrap().address.0[19], 0);
}

#[test]
fn cometbft_averaging_with_voting_power_vectors() {
    // TestAveragingInIncrementProposerPriorityWithVotingPower: powers 10, 1, 1 from zero
    // priorities; after `times` increments the priorities and proposer are known exactly.
    let (vp0, vp1, vp2) = (10i64, 1i64, 1i64);
    let total = vp0 + vp1 + vp2;
    let base = ValidatorSet {
        validators: vec![indexed(0, 10), indexed(1, 1), indexed(2, 1)],
        total_power: total as u64,
        proposer: None,
    };
    let cases: Vec<(u32, [i64; 3], u8)> = vec![
        (1, [vp0 - total, vp1, vp2], 0),
        (2, [2 * (vp0 - total), 2 * vp1, 2 * vp2], 0),
        (3, [3 * (vp0 - total), 3 * vp1, 3 * vp2], 0),
        (4, [4 * (vp0 - total), 4 * vp1, 4 * vp2], 0),
        (5, [4 * (vp0 - total) + vp0, 5 * vp1 - total, 5 * vp2], 1),
        (6, [6 * vp0 - 5 * total, 6 * vp1 - total, 6 * vp2], 0),
        (7, [7 * vp0 - 6 * total, 7 * vp1 - total, 7 * vp2], 0),
        (8, [8 * vp0 - 7 * total, 8 * vp1 - total, 8 * vp2], 0),
        (
            9,
            [9 * vp0 - 7 * total, 9 * vp1 - total, 9 * vp2 - total],
            2,
        ),
        (
            10,
            [10 * vp0 - 8 * total, 10 * vp1 - total, 10 * vp2 - total],
            0,
        ),
        (
            11,
            [11 * vp0 - 9 * total, 11 * vp1 - total, 11 * vp2 - total],
            0,
        ),
    ];
    for (times, priorities, proposer) in cases {
        let mut set = base.clone();
        set.increment_proposer_priority(times);
        assert_eq!(set.proposer.unwrap().0[19], proposer, "times {times}");
        let got: Vec<i64> = set.validators.iter().map(|v| v.proposer_priority).collect();
        assert_eq!(got, priorities, "times {times}");
    }
}

#[test]
fn averaging_uses_the_floor_and_rescaling_truncates_toward_zero() {
    // TestAveragingInIncrementProposerPriority case 2: priorities 100, -10, 1 with zero
    // power shift by floor(91 / 3) = 30.
    let mut set = ValidatorSet {
        validators: vec![indexed(0, 0), indexed(1, 0), indexed(2, 0)],
        total_power: 0,
        proposer: None,
    };
    set.validators[0].proposer_priority = 100;
    set.validators[1].proposer_priority = -10;
    set.validators[2].proposer_priority = 1;
    set.shift_by_average_priority();
    let got: Vec<i64> = set.validators.iter().map(|v| v.proposer_priority).collect();
    assert_eq!(got, vec![70, -40, -29]);
    // Negative sums floor downward: -7 / 2 -> -4.
    set.validators.truncate(2);
    set.validators[0].proposer_priority = -3;
    set.validators[1].proposer_priority = -4;
    set.shift_by_average_priority();
    let got: Vec<i64> = set.validators.iter().map(|v| v.proposer_priority).collect();
    assert_eq!(got, vec![1, 0]);
    // Rescale: spread 1000 with window 100 divides by ceil(1000/100) = 10.
    set.validators[0].proposer_priority = 995;
    set.validators[1].proposer_priority = -5;
    set.rescale_priorities(100);
    let got: Vec<i64> = set.validators.iter().map(|v| v.proposer_priority).collect();
    assert_eq!(got, vec![99, 0]);
}

#[test]
fn a_new_validator_enters_at_minus_one_and_an_eighth_of_total_power() {
    let mut set = ValidatorSet::new(vec![indexed(0, 10), indexed(1, 10)]).unwrap();
    // Genesis: both at 0, one increment: validator 0 proposes (tie, lower address) -> -10 / 10.
    let prios: Vec<i64> = set.validators.iter().map(|v| v.proposer_priority).collect();
    assert_eq!(prios, vec![-10, 10]);
    set.update(vec![indexed(2, 10)]).unwrap();
    // New: -(30 + 30/8) = -33; then centre by floor((-10 + 10 - 33) / 3) = -11.
    let prios: Vec<(u8, i64)> = set
        .validators
        .iter()
        .map(|v| (v.address.0[19], v.proposer_priority))
        .collect();
    assert_eq!(prios, vec![(0, 1), (1, 21), (2, -22)]);
    assert_eq!(set.total_power(), 30);
}

#[test]
fn updates_keep_priorities_change_power_and_remove() {
    let mut set = ValidatorSet::new(vec![indexed(0, 10), indexed(1, 20), indexed(2, 30)]).unwrap();
    set.increment_proposer_priority(3);
    let before: HashMap<Address, i64> = set
        .validators
        .iter()
        .map(|v| (v.address, v.proposer_priority))
        .collect();
    set.update(vec![indexed(1, 25)]).unwrap();
    let v1 = set.get(&indexed(1, 0).address).unwrap();
    assert_eq!(v1.voting_power, 25);
    // Existing validators keep their priority up to the common centering shift.
    let shift = before[&v1.address] - v1.proposer_priority;
    for v in set.validators() {
        assert_eq!(before[&v.address] - v.proposer_priority, shift);
    }
    set.update(vec![indexed(0, 0)]).unwrap();
    assert!(set.get(&indexed(0, 0).address).is_none());
    assert_eq!(set.total_power(), 55);
    assert_eq!(
        set.validators()[0].address.0[19],
        2,
        "sorted by power, descending"
    );
}

#[test]
fn invalid_updates_are_refused_and_change_nothing() {
    let set = ValidatorSet::new(vec![indexed(0, 10), indexed(1, 20)]).unwrap();
    let mut s = set.clone();
    assert_eq!(
        s.update(vec![indexed(5, 1), indexed(5, 2)]),
        Err(ValidatorSetError::Duplicate(indexed(5, 0).address))
    );
    assert_eq!(
        s.update(vec![indexed(7, 0)]),
        Err(ValidatorSetError::RemoveUnknown(indexed(7, 0).address))
    );
    assert_eq!(
        s.update(vec![indexed(0, 0), indexed(1, 0)]),
        Err(ValidatorSetError::Empty)
    );
    assert_eq!(
        s.update(vec![indexed(3, MAX_TOTAL_VOTING_POWER)]),
        Err(ValidatorSetError::TotalPowerOverflow)
    );
    assert_eq!(s, set);
    assert_eq!(ValidatorSet::new(vec![]), Err(ValidatorSetError::Empty));
    assert!(matches!(
        ValidatorSet::new(vec![indexed(0, 0)]),
        Err(ValidatorSetError::ZeroPower(_))
    ));
}

#[test]
fn thresholds_are_strictly_more_than_two_thirds_and_one_third() {
    let set = ValidatorSet::new(vec![indexed(0, 1), indexed(1, 1), indexed(2, 1)]).unwrap();
    assert!(!set.is_quorum(2));
    assert!(set.is_quorum(3));
    assert!(!set.is_one_third(1));
    assert!(set.is_one_third(2));
    let set = ValidatorSet::new((0..4).map(|i| indexed(i, 1)).collect()).unwrap();
    assert!(set.is_quorum(3) && !set.is_quorum(2));
    assert!(set.is_one_third(2) && !set.is_one_third(1));
}

#[test]
fn proposer_for_round_advances_a_copy() {
    let set = ValidatorSet::new((0..4).map(|i| indexed(i, 1)).collect()).unwrap();
    let mut stepped = set.clone();
    for r in 0..10u32 {
        assert_eq!(
            set.proposer_for_round(r),
            stepped.proposer().unwrap().address,
            "round {r}"
        );
        stepped.increment_proposer_priority(1);
    }
}

/// Four validators of power 10 and a commit at height 7 signed by `signers`, each at its
/// own time (100 s + its index), one entry per validator in set order.
fn signed_commit(keys: &[PrivateKey], signers: &[usize], chain: &str) -> (ValidatorSet, Commit) {
    let set = ValidatorSet::new(
        keys.iter()
            .map(|k| Validator::new(k.public_key(), 10))
            .collect(),
    )
    .unwrap();
    let block_id = BlockId(Hash::digest(b"block"), Default::default());
    let signatures = set
        .validators()
        .iter()
        .map(|val| {
            let i = signers
                .iter()
                .copied()
                .find(|&i| keys[i].public_key().address() == val.address)?;
            let vote = Vote {
                vote_type: VoteType::Precommit,
                height: Height(7),
                round: Round(2),
                block_id: Some(block_id),
                validator: val.address,
            };
            let at = Timestamp {
                seconds: 100 + i as i64,
                nanos: 0,
            };
            let signed = vote.sign(chain, at, &keys[i]);
            Some(CommitSig {
                validator: signed.vote.validator,
                timestamp: signed.timestamp,
                signature: signed.signature,
            })
        })
        .collect();
    (
        set,
        Commit {
            height: Height(7),
            round: Round(2),
            block_id,
            signatures,
        },
    )
}

#[test]
fn commit_verification() {
    let keys: Vec<PrivateKey> = (1..=4u8).map(|i| PrivateKey::from_seed([i; 32])).collect();
    let chain = "commit-test";
    let (set, commit) = signed_commit(&keys, &[0, 1, 2], chain);
    let id = commit.block_id;
    assert_eq!(set.verify_commit(chain, Height(7), &id, &commit), Ok(()));
    assert_eq!(commit.signatures.len(), 4, "one entry per validator");
    assert_eq!(commit.signed().count(), 3);
    assert!(matches!(
        set.verify_commit("other-chain", Height(7), &id, &commit),
        Err(CommitError::BadSignature { .. })
    ));
    assert!(matches!(
        set.verify_commit(chain, Height(8), &id, &commit),
        Err(CommitError::WrongHeight { .. })
    ));
    assert_eq!(
        set.verify_commit(
            chain,
            Height(7),
            &BlockId(Hash::digest(b"x"), Default::default()),
            &commit
        ),
        Err(CommitError::WrongBlock)
    );
    let (_, short) = signed_commit(&keys, &[0, 1], chain);
    assert_eq!(
        set.verify_commit(chain, Height(7), &id, &short),
        Err(CommitError::InsufficientPower {
            signed: 20,
            total: 40
        })
    );
    let mut long = commit.clone();
    long.signatures.push(None);
    assert_eq!(
        set.verify_commit(chain, Height(7), &id, &long),
        Err(CommitError::WrongSize {
            expected: 4,
            got: 5
        })
    );
    let signed_at: Vec<usize> = (0..4).filter(|&i| commit.signatures[i].is_some()).collect();
    let mut swapped = commit.clone();
    swapped.signatures.swap(signed_at[0], signed_at[1]);
    assert!(matches!(
        set.verify_commit(chain, Height(7), &id, &swapped),
        Err(CommitError::WrongPosition { .. })
    ));
    let stranger = PrivateKey::from_seed([99; 32]);
    let mut foreign = commit.clone();
    foreign.signatures[signed_at[0]].as_mut().unwrap().validator = stranger.public_key().address();
    assert!(matches!(
        set.verify_commit(chain, Height(7), &id, &foreign),
        Err(CommitError::UnknownValidator(_))
    ));
    let mut late = commit.clone();
    late.signatures[signed_at[2]]
        .as_mut()
        .unwrap()
        .timestamp
        .seconds += 1;
    assert!(
        matches!(
            set.verify_commit(chain, Height(7), &id, &late),
            Err(CommitError::BadSignature { index, .. }) if index == signed_at[2]
        ),
        "the timestamp is signed"
    );
    let mut forged = commit;
    let who = forged.signatures[signed_at[1]].as_mut().unwrap();
    let validator = who.validator;
    who.signature = keys[0].sign(b"not the vote");
    assert_eq!(
        set.verify_commit(chain, Height(7), &id, &forged),
        Err(CommitError::BadSignature {
            index: signed_at[1],
            validator
        })
    );
}

#[test]
fn block_time_is_the_power_weighted_median_of_the_commit() {
    let keys: Vec<PrivateKey> = (1..=4u8).map(|i| PrivateKey::from_seed([i; 32])).collect();
    let (set, commit) = signed_commit(&keys, &[0, 1, 2, 3], "c");
    // Four equal powers stamped 100..=103 s: the first time with more than half the power
    // at or before it is 102 s.
    assert_eq!(set.median_time(&commit).map(|t| t.seconds), Some(102));
    let (_, three) = signed_commit(&keys, &[1, 2, 3], "c");
    assert_eq!(set.median_time(&three).map(|t| t.seconds), Some(102));
    // Three signers of power 1, the faulty one stamping the epoch: the median is honest.
    let small = ValidatorSet::new(
        keys.iter()
            .map(|k| Validator::new(k.public_key(), 1))
            .collect(),
    )
    .unwrap();
    let mut skewed = three.clone();
    let first = skewed.signatures.iter_mut().flatten().next().unwrap();
    first.timestamp = Timestamp::default();
    let order: Vec<_> = small.validators().iter().map(|v| v.address).collect();
    assert_eq!(
        order,
        set.validators()
            .iter()
            .map(|v| v.address)
            .collect::<Vec<_>>()
    );
    assert!(small.median_time(&skewed).unwrap().seconds >= 101);
    // One validator with most of the power decides the median whatever the others say.
    let heavy = ValidatorSet::new(
        keys.iter()
            .enumerate()
            .map(|(i, k)| Validator::new(k.public_key(), if i == 3 { 70 } else { 10 }))
            .collect(),
    )
    .unwrap();
    let mut ordered = commit.clone();
    ordered.signatures = heavy
        .validators()
        .iter()
        .map(|v| commit.signed().find(|s| s.validator == v.address).cloned())
        .collect();
    assert_eq!(heavy.median_time(&ordered).map(|t| t.seconds), Some(103));
    let mut none = commit;
    none.signatures = vec![None; 4];
    assert_eq!(set.median_time(&none), None);
}

proptest! {
    /// After every increment, priorities stay centred (their sum within ±n, CometBFT's
    /// `verifyValidatorSet` check) and the proposer is a member.
    #[test]
    fn priorities_stay_centred(powers in prop::collection::vec(1u64..1_000_000, 1..12), steps in 1usize..200) {
        let vals: Vec<Validator> = powers.iter().enumerate().map(|(i, p)| indexed(i as u8, *p)).collect();
        let mut set = ValidatorSet::new(vals).unwrap();
        let n = set.len() as i64;
        for _ in 0..steps {
            set.increment_proposer_priority(1);
            let sum: i64 = set.validators().iter().map(|v| v.proposer_priority).sum();
            prop_assert!(sum.abs() < n + 1, "sum {} n {}", sum, n);
            prop_assert!(set.get(&set.proposer().unwrap().address).is_some());
        }
    }

    /// Over total-power heights with small powers, each validator proposes exactly its power.
    #[test]
    fn proposals_are_proportional_to_power(powers in prop::collection::vec(1u64..8, 1..6)) {
        let vals: Vec<Validator> = powers.iter().enumerate().map(|(i, p)| indexed(i as u8, *p)).collect();
        let mut set = ValidatorSet::new(vals).unwrap();
        let total = set.total_power();
        let mut counts = vec![0u64; powers.len()];
        for _ in 0..total * 4 {
            counts[set.proposer().unwrap().address.0[19] as usize] += 1;
            set.increment_proposer_priority(1);
        }
        let expected: Vec<u64> = powers.iter().map(|p| p * 4).collect();
        prop_assert_eq!(counts, expected);
    }
}
