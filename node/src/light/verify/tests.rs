//! The verifier on hand-made light blocks: adjacent and skipping success, a skip the
//! trusted set cannot vouch for (bisect), and each refusal.

use super::*;
use basalt_staking::Validator;
use basalt_types::{BlockId, CommitSig, Hash, Height, PrivateKey, Round, Vote, VoteType};

const CHAIN: &str = "light-test";

fn keys() -> Vec<PrivateKey> {
    (1..=8u8).map(|i| PrivateKey::from_seed([i; 32])).collect()
}

fn set(members: &[usize]) -> ValidatorSet {
    let k = keys();
    ValidatorSet::new(
        members
            .iter()
            .map(|&i| Validator::new(k[i].public_key(), 10))
            .collect(),
    )
    .unwrap()
}

fn at(seconds: i64) -> Timestamp {
    Timestamp { seconds, nanos: 0 }
}

/// A light block at `height` (time = height seconds) of set `members`, announcing
/// `next`, signed by `signers`.
fn block(height: u64, members: &[usize], next: &[usize], signers: &[usize]) -> LightBlock {
    let (validators, next_validators) = (set(members), set(next));
    let header = Header {
        chain_id: CHAIN.into(),
        height: Height(height),
        time: at(height as i64),
        last_block_id: Some(BlockId(
            Hash::digest(&height.to_le_bytes()),
            Default::default(),
        )),
        last_commit_hash: Hash::default(),
        data_hash: Hash::default(),
        validators_hash: validators.hash(),
        next_validators_hash: next_validators.hash(),
        consensus_hash: Hash::default(),
        app_hash: Hash::digest(b"app"),
        last_results_hash: Hash::default(),
        evidence_hash: Hash::default(),
        proposer_address: validators.validators()[0].address,
    };
    let k = keys();
    let id = BlockId(
        header.hash(),
        basalt_types::PartSetHeader {
            total: 1,
            hash: Hash::digest(b"parts"),
        },
    );
    let signatures = validators
        .validators()
        .iter()
        .map(|v| {
            let i = signers
                .iter()
                .copied()
                .find(|&i| k[i].public_key().address() == v.address)?;
            let vote = Vote {
                vote_type: VoteType::Precommit,
                height: Height(height),
                round: Round(0),
                block_id: Some(id),
                validator: v.address,
            }
            .sign(CHAIN, at(height as i64 + 1), &k[i]);
            Some(CommitSig {
                validator: v.address,
                timestamp: vote.timestamp,
                signature: vote.signature,
            })
        })
        .collect();
    LightBlock {
        header,
        commit: Commit {
            height: Height(height),
            round: Round(0),
            block_id: id,
            signatures,
        },
        validators,
        next_validators,
    }
}

fn opts() -> Options {
    Options {
        trust_level: (1, 3),
        trusting_period_s: 1_000,
        clock_drift_s: 10,
    }
}

#[test]
fn adjacent_and_skipping_headers_verify_and_an_unvouched_skip_asks_to_bisect() {
    let abcd = [0, 1, 2, 3];
    let trusted = block(10, &abcd, &abcd, &abcd);
    let now = at(100);
    assert_eq!(
        verify(&trusted, &block(11, &abcd, &abcd, &[0, 1, 2]), &opts(), now),
        Verdict::Success
    );
    // A skip to a set that shares two of four members with the trusted one: 20 of 40 > 1/3.
    let later = block(20, &[0, 1, 4, 5], &[0, 1, 4, 5], &[0, 1, 4, 5]);
    assert_eq!(verify(&trusted, &later, &opts(), now), Verdict::Success);
    // A skip to a set with one of four trusted members signing: 10 of 40 is not enough.
    let far = block(30, &[0, 5, 6, 7], &[0, 5, 6, 7], &[0, 5, 6, 7]);
    assert_eq!(
        verify(&trusted, &far, &opts(), now),
        Verdict::NotEnoughTrust {
            signed: 10,
            total: 40
        }
    );
    // ...which the intermediate header bridges.
    assert_eq!(verify(&later, &far, &opts(), now), Verdict::Success);
}

#[test]
fn each_kind_of_bad_header_is_refused() {
    let abcd = [0, 1, 2, 3];
    let trusted = block(10, &abcd, &abcd, &abcd);
    let good = block(11, &abcd, &abcd, &abcd);
    let now = at(100);
    let refused = |b: &LightBlock, now: Timestamp| match verify(&trusted, b, &opts(), now) {
        Verdict::Invalid(e) => e,
        v => panic!("accepted: {v:?}"),
    };
    let mut tampered = good.clone();
    tampered.header.app_hash = Hash::digest(b"other state");
    assert_eq!(refused(&tampered, now), Invalid::HeaderCommitMismatch(11));

    let mut forged = good.clone();
    if let Some(s) = forged.commit.signatures[1].as_mut() {
        s.signature = keys()[7].sign(b"not the vote");
    }
    assert!(matches!(refused(&forged, now), Invalid::Commit { .. }));

    let few = block(11, &abcd, &abcd, &[0, 1]);
    assert!(matches!(refused(&few, now), Invalid::Commit { .. }));

    let mut wrong_set = good.clone();
    wrong_set.validators = set(&[0, 1, 2, 4]);
    assert_eq!(refused(&wrong_set, now), Invalid::ValidatorsHash(11));

    let other_set = block(11, &[0, 1, 2, 4], &abcd, &[0, 1, 2, 4]);
    assert_eq!(refused(&other_set, now), Invalid::NotTheAnnouncedSet(11));

    assert_eq!(refused(&good, at(0)), Invalid::FromTheFuture(11));
    assert_eq!(refused(&good, at(2_000)), Invalid::TrustExpired(10));
    assert!(matches!(
        refused(&block(9, &abcd, &abcd, &abcd), now),
        Invalid::NotNewer { .. }
    ));

    let mut other_chain = trusted.clone();
    other_chain.header.chain_id = "another-chain".into();
    assert!(matches!(
        verify(&other_chain, &good, &opts(), now),
        Verdict::Invalid(Invalid::ChainId { .. })
    ));
}

#[test]
fn skipping_bisects_through_a_header_the_trusted_set_vouches_for() {
    // Heights 10..=30: the set moves from {0,1,2,3} to {0,1,4,5} at 20 and to {0,5,6,7} at
    // 30. From 10, height 30 lacks trust (one of four trusted members signs), height 20 has
    // it, and from 20, height 30 has it.
    let sets: &[(u64, [usize; 4])] = &[(10, [0, 1, 2, 3]), (20, [0, 1, 4, 5]), (30, [0, 5, 6, 7])];
    let members = |h: u64| sets.iter().rev().find(|(from, _)| h >= *from).unwrap().1;
    let at_height = |h: u64| block(h, &members(h), &members(h + 1), &members(h));
    let mut fetched = Vec::new();
    let now = at(100);
    let (got, path) = crate::light::skip(&at_height(10), 30, &opts(), now, |h| {
        fetched.push(h);
        Ok(at_height(h))
    })
    .unwrap();
    assert_eq!(got.height(), 30);
    let heights: Vec<u64> = path.iter().map(LightBlock::height).collect();
    assert_eq!(heights, vec![20, 30], "verified 20 on the way");
    assert_eq!(
        fetched,
        vec![30, 20],
        "30 fetched once: the cached copy is reused"
    );
    // A header that does not verify stops the walk with the reason.
    let mut bad = at_height(30);
    bad.header.app_hash = Hash::digest(b"forged");
    let Err(err) = crate::light::skip(&at_height(20), 30, &opts(), now, |_| Ok(bad.clone())) else {
        panic!("a forged header verified");
    };
    assert!(err.to_string().contains("does not hash"), "{err}");
}
