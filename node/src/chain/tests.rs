//! Block validity with evidence, and the evidence pool: forged, stale and repeated evidence is
//! refused by the pool and makes a block that carries it invalid; the pool stays bounded.

use super::*;
use crate::evidence_pool::{EvidencePool, PoolError};
use basalt_types::{DuplicateVoteEvidence, PrivateKey, Round, Vote, VoteType};

mod persist;
mod snapshot;

const CHAIN: &str = "chain-test";

fn key(tag: u8, i: u8) -> PrivateKey {
    PrivateKey::from_seed([
        tag, i, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
        7, 7,
    ])
}

/// A 4-validator chain (10 power each) with a short evidence age.
fn chain(store: &Store) -> Chain {
    Chain::load(genesis(vec![]), store).unwrap()
}

/// The genesis of [`chain`], with `accounts` funded.
fn genesis(accounts: Vec<(Address, u128)>) -> Genesis {
    let mut g = Genesis::generate(
        CHAIN,
        "2026-01-01T00:00:00Z",
        (0..4)
            .map(|i| {
                (
                    key(1, i).public_key(),
                    key(2, i).public_key(),
                    10_000_000,
                    format!("v{i}"),
                )
            })
            .collect(),
        accounts,
    )
    .unwrap();
    g.app_state.staking.evidence_max_age = 3;
    g
}

fn vote(signer: u8, height: u64, round: u32, value: Option<&str>) -> basalt_types::SignedVote {
    Vote {
        vote_type: VoteType::Prevote,
        height: Height(height),
        round: Round(round),
        block_id: value.map(|v| BlockId(Hash::digest(v.as_bytes()), Default::default())),
        validator: key(2, signer).public_key().address(),
    }
    .sign(CHAIN, Timestamp::default(), &key(2, signer))
}

fn evidence(signer: u8, height: u64, round: u32) -> Evidence {
    Evidence::DuplicateVote(DuplicateVoteEvidence::new(
        vote(signer, height, round, Some("a")),
        vote(signer, height, round, None),
        10,
        40,
    ))
}

/// Checks and executes a block with a full commit.
fn advance(c: &mut Chain, evidence: Vec<Evidence>) {
    advance_with(c, vec![], evidence);
}

/// Checks and executes a block of `txs` and `evidence` with a full commit.
fn advance_with(
    c: &mut Chain,
    txs: Vec<Vec<u8>>,
    evidence: Vec<Evidence>,
) -> (Block, Commit, Applied) {
    let proposer = c.validators().proposer_for_round(0);
    let block = c.build_block(proposer, txs, evidence);
    c.check_proposal(&block).expect("a valid block");
    // Every member of the block's set whose key we hold precommits a second after the
    // block's time, in set order: the next block's last commit must verify.
    let stamp = block.header.time.plus_millis(1_000);
    let signatures = c
        .validators()
        .validators()
        .iter()
        .map(|val| {
            let k = (0..4)
                .map(|i| key(2, i))
                .find(|k| k.public_key().address() == val.address)?;
            let v = Vote {
                vote_type: VoteType::Precommit,
                height: block.header.height,
                round: Round(0),
                block_id: Some(block.id()),
                validator: val.address,
            }
            .sign(CHAIN, stamp, &k);
            Some(basalt_types::CommitSig {
                validator: v.vote.validator,
                timestamp: v.timestamp,
                signature: v.signature,
            })
        })
        .collect();
    let commit = Commit {
        height: block.header.height,
        round: Round(0),
        block_id: block.id(),
        signatures,
    };
    let applied = c.execute(&block, commit.clone(), false).unwrap();
    (block, commit, applied)
}

fn block_with(c: &Chain, ev: Evidence) -> Block {
    let proposer = c.validators().proposer_for_round(0);
    c.build_block(proposer, vec![], vec![ev])
}

#[test]
fn forged_or_stale_evidence_is_refused_and_invalidates_a_block() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut c = chain(&store);
    advance(&mut c, vec![]);
    advance(&mut c, vec![]);
    let good = evidence(0, 2, 0);
    assert!(c.check_evidence(&good).is_ok());

    let Evidence::DuplicateVote(g) = &good;
    let mut bad_sig = g.clone();
    bad_sig.vote_b.signature.0[0] ^= 1;
    let mut same_ids = g.clone();
    same_ids.vote_b = same_ids.vote_a.clone();
    let mut wrong_height = g.clone();
    wrong_height.vote_b = vote(0, 1, 0, None);
    let future = evidence(0, 9, 0);
    let outsider = {
        let v = |b: Option<&str>| {
            Vote {
                vote_type: VoteType::Prevote,
                height: Height(2),
                round: Round(0),
                block_id: b.map(|v| BlockId(Hash::digest(v.as_bytes()), Default::default())),
                validator: key(9, 9).public_key().address(),
            }
            .sign(CHAIN, Timestamp::default(), &key(9, 9))
        };
        Evidence::DuplicateVote(DuplicateVoteEvidence::new(v(Some("a")), v(None), 10, 40))
    };
    let mut wrong_power = g.clone();
    wrong_power.validator_power = 20;
    let cases = [
        ("bad signature", Evidence::DuplicateVote(bad_sig)),
        ("identical block ids", Evidence::DuplicateVote(same_ids)),
        (
            "votes of different heights",
            Evidence::DuplicateVote(wrong_height),
        ),
        ("a future height", future),
        ("a validator not in the set", outsider),
        ("a wrong power", Evidence::DuplicateVote(wrong_power)),
    ];
    let mut pool = EvidencePool::load(&store, 1 << 20).unwrap();
    for (what, ev) in cases {
        assert!(c.check_evidence(&ev).is_err(), "{what} passes the check");
        assert!(
            matches!(
                c.check_block(&block_with(&c, ev.clone())),
                Err(BlockError::Evidence(_))
            ),
            "a block with {what} is valid"
        );
        let r = pool.add(&store, ev, |e| c.check_evidence(e));
        assert!(
            matches!(r, Err(PoolError::Rejected(_))),
            "{what} admitted: {r:?}"
        );
    }
    assert!(pool.is_empty());

    // The same evidence twice in one block.
    let twice = c.build_block(
        c.validators().proposer_for_round(0),
        vec![],
        vec![good.clone(), good.clone()],
    );
    assert!(matches!(
        c.check_block(&twice),
        Err(BlockError::Evidence(_))
    ));

    // Valid evidence is taken once; once committed it is refused everywhere.
    assert!(pool
        .add(&store, good.clone(), |e| c.check_evidence(e))
        .unwrap());
    assert!(!pool
        .add(&store, good.clone(), |e| c.check_evidence(e))
        .unwrap());
    let for_block = pool.for_block(1 << 20, |e| c.check_evidence(e));
    assert_eq!(for_block, vec![good.clone()]);
    advance(&mut c, for_block.clone());
    pool.update(&store, &for_block, |e| c.check_evidence(e))
        .unwrap();
    assert!(pool.is_empty());
    assert!(
        store.evidence().unwrap().is_empty(),
        "committed evidence leaves the disk too"
    );
    assert!(c.check_evidence(&good).is_err(), "already committed");
    assert!(matches!(
        c.check_block(&block_with(&c, good.clone())),
        Err(BlockError::Evidence(_))
    ));
    assert!(pool.add(&store, good, |e| c.check_evidence(e)).is_err());

    // Too old: validator 1 equivocated at height 2; the max age is 3 blocks.
    let old = evidence(1, 2, 0);
    assert!(c.check_evidence(&old).is_ok());
    for _ in 0..3 {
        advance(&mut c, vec![]);
    }
    assert!(c.check_evidence(&old).is_err(), "older than the max age");
    assert!(matches!(
        c.check_block(&block_with(&c, old)),
        Err(BlockError::Evidence(_))
    ));
}

#[test]
fn the_pool_stays_within_its_bound_under_a_flood_of_valid_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut c = chain(&store);
    advance(&mut c, vec![]);
    let one = borsh::to_vec(&evidence(0, 1, 0)).unwrap().len();
    let bound = one * 10 + one / 2;
    let mut pool = EvidencePool::load(&store, bound).unwrap();
    let mut full = 0;
    // Every round of every validator gives a different, valid piece of evidence.
    for round in 0..100 {
        for v in 0..4 {
            match pool.add(&store, evidence(v, 1, round), |e| c.check_evidence(e)) {
                Ok(true) => {}
                Err(PoolError::Full) => full += 1,
                r => panic!("unexpected {r:?}"),
            }
        }
    }
    assert_eq!(pool.len(), 10);
    assert_eq!(full, 390);
    assert_eq!(
        store.evidence().unwrap().len(),
        10,
        "only what was admitted is on disk"
    );
    // After a restart the pool holds the same.
    assert_eq!(EvidencePool::load(&store, bound).unwrap().len(), 10);
}

/// Algorithm 1, L16: a proposer re-proposes its `validValue`, a block another validator
/// built in an earlier round. It stays valid in any round; a block whose proposer is not a
/// validator is not.
#[test]
fn a_valid_value_reproposed_in_a_later_round_by_another_proposer_is_valid() {
    let store = Store::in_memory(&crate::kv::MemKv::default());
    let c = chain(&store);
    let first = c.validators().proposer_for_round(0);
    let later = (1..8)
        .map(|r| c.validators().proposer_for_round(r))
        .find(|p| *p != first)
        .expect("another proposer within a few rounds");
    let block = c.build_block(first, vec![], vec![]);
    assert_ne!(block.header.proposer_address, later);
    c.check_proposal(&block)
        .expect("valid whoever proposes it again");
    let stranger = key(9, 9).public_key().address();
    let bad = c.build_block(stranger, vec![], vec![]);
    assert!(matches!(
        c.check_proposal(&bad),
        Err(BlockError::Proposer(a)) if a == stranger
    ));
}

#[test]
fn block_time_is_the_genesis_time_then_the_median_of_the_last_commit() {
    let store = Store::in_memory(&crate::kv::MemKv::default());
    let mut c = chain(&store);
    let proposer = c.validators().proposer_for_round(0);
    let first = c.build_block(proposer, vec![], vec![]);
    assert_eq!(
        basalt_types::time::rfc3339(first.header.time),
        "2026-01-01T00:00:00.000000000Z",
        "the first block carries the genesis time"
    );
    let (block, commit, _) = advance_with(&mut c, vec![], vec![]);
    // Every precommit of `advance_with` is stamped a second after its block.
    let next = c.build_block(c.validators().proposer_for_round(0), vec![], vec![]);
    assert_eq!(next.header.time, block.header.time.plus_millis(1_000));
    assert_eq!(next.header.last_commit_hash, commit.hash());
    c.check_proposal(&next).expect("valid");
    // A proposer that picks its own time, earlier or later, proposes an invalid block.
    for shift in [-1i128, 1] {
        let mut off = next.clone();
        off.header.time = Timestamp::from_nanos(off.header.time.as_nanos() + shift);
        assert!(
            matches!(c.check_proposal(&off), Err(BlockError::Time { .. })),
            "a time {shift} ns off the median"
        );
    }
}
