//! CometBFT's golden sign-bytes vectors (types/vote_test.go, `TestVoteSignBytesTestVectors`)
//! and tendermint-rs 0.40 as an oracle for sign bytes and hashes.

use super::*;
use tendermint::block::parts::Header as PartSetHeader;
use tendermint::block::{self, Height, Round};
use tendermint::{account, chain, validator, vote, Hash as TmHash};

/// Go's zero `time.Time` (0001-01-01T00:00:00Z), what CometBFT's vectors sign.
const GO_ZERO: Time = Time {
    seconds: -62_135_596_800,
    nanos: 0,
};

#[test]
fn cometbft_vote_sign_bytes_vectors() {
    // The timestamp field as every vector has it (Go's zero time).
    let ts: &[u8] = &[
        0x2a, 0xb, 0x8, 0x80, 0x92, 0xb8, 0xc3, 0x98, 0xfe, 0xff, 0xff, 0xff, 0x1,
    ];
    let h1: &[u8] = &[0x11, 0x1, 0, 0, 0, 0, 0, 0, 0];
    let r1: &[u8] = &[0x19, 0x1, 0, 0, 0, 0, 0, 0, 0];
    let chain: &[u8] = &[
        0x32, 0xd, 0x74, 0x65, 0x73, 0x74, 0x5f, 0x63, 0x68, 0x61, 0x69, 0x6e, 0x5f, 0x69, 0x64,
    ];
    let vectors: [(&str, u64, i64, Vec<u8>); 5] = [
        ("", 0, 0, [&[0xd][..], ts].concat()),
        ("", 2, 1, [&[0x21, 0x8, 0x2][..], h1, r1, ts].concat()),
        ("", 1, 1, [&[0x21, 0x8, 0x1][..], h1, r1, ts].concat()),
        ("", 0, 1, [&[0x1f][..], h1, r1, ts].concat()),
        (
            "test_chain_id",
            0,
            1,
            [&[0x2e][..], h1, r1, ts, chain].concat(),
        ),
    ];
    for (i, (chain_id, kind, hr, want)) in vectors.into_iter().enumerate() {
        let got = vote_sign_bytes_of_type(chain_id, kind, hr, hr, None, GO_ZERO);
        assert_eq!(got, want, "CometBFT vector {i}");
    }
    // The public function is the same encoding.
    assert_eq!(
        vote_sign_bytes("", SignedMsgType::Precommit, 1, 1, None, GO_ZERO),
        vote_sign_bytes_of_type("", 2, 1, 1, None, GO_ZERO)
    );
}

fn sha(b: u8) -> [u8; 32] {
    [b; 32]
}

fn tm_id(id: &BlockId) -> block::Id {
    block::Id {
        hash: TmHash::Sha256(id.hash.clone().try_into().unwrap()),
        part_set_header: PartSetHeader::new(
            id.parts_total,
            TmHash::Sha256(id.parts_hash.clone().try_into().unwrap()),
        )
        .unwrap(),
    }
}

fn some_id() -> BlockId {
    BlockId {
        hash: sha(7).to_vec(),
        parts_total: 1,
        parts_hash: sha(8).to_vec(),
    }
}

#[test]
fn vote_and_proposal_sign_bytes_match_tendermint_rs() {
    let time = Time {
        seconds: 1_700_000_000,
        nanos: 123_456_789,
    };
    let tm_time = tendermint::Time::from_unix_timestamp(time.seconds, time.nanos as u32).unwrap();
    let chain: chain::Id = "basalt-test".parse().unwrap();
    for (kind, tm_kind) in [
        (SignedMsgType::Prevote, vote::Type::Prevote),
        (SignedMsgType::Precommit, vote::Type::Precommit),
    ] {
        for block in [None, Some(some_id())] {
            let tm = tendermint::Vote {
                vote_type: tm_kind,
                height: Height::try_from(1234u64).unwrap(),
                round: Round::try_from(3u32).unwrap(),
                block_id: block.as_ref().map(tm_id),
                timestamp: Some(tm_time),
                validator_address: account::Id::new([1; 20]),
                validator_index: 0u32.try_into().unwrap(),
                signature: None,
                extension: vec![],
                extension_signature: None,
            };
            let ours = vote_sign_bytes("basalt-test", kind, 1234, 3, block.as_ref(), time);
            assert_eq!(
                ours,
                tm.into_signable_vec(chain.clone()),
                "{kind:?} {block:?}"
            );
        }
    }
    for pol in [-1i64, 2] {
        let tm = tendermint::proposal::Proposal {
            msg_type: tendermint::proposal::Type::Proposal,
            height: Height::try_from(1234u64).unwrap(),
            round: Round::try_from(3u32).unwrap(),
            pol_round: (pol >= 0).then(|| Round::try_from(pol as u32).unwrap()),
            block_id: Some(tm_id(&some_id())),
            timestamp: Some(tm_time),
            signature: None,
        };
        let ours = proposal_sign_bytes("basalt-test", 1234, 3, pol, &some_id(), time);
        assert_eq!(ours, tm.into_signable_vec(chain.clone()), "pol round {pol}");
    }
}

#[test]
fn header_hash_matches_tendermint_rs_with_and_without_a_last_block() {
    let proposer = [9u8; 20];
    for (height, last) in [(1i64, BlockId::default()), (5, some_id())] {
        let (c, d, v, n, k, a, r, e) = (
            sha(1),
            sha(2),
            sha(3),
            sha(4),
            sha(5),
            vec![6u8; 32],
            sha(10),
            sha(11),
        );
        let ours = Header {
            version_block: 11,
            version_app: 1,
            chain_id: "basalt-test",
            height,
            time: Time {
                seconds: 1_700_000_000,
                nanos: 5,
            },
            last_block_id: last.clone(),
            last_commit_hash: &c,
            data_hash: &d,
            validators_hash: &v,
            next_validators_hash: &n,
            consensus_hash: &k,
            app_hash: &a,
            last_results_hash: &r,
            evidence_hash: &e,
            proposer_address: &proposer,
        };
        let tm = tendermint::block::Header {
            version: tendermint::block::header::Version { block: 11, app: 1 },
            chain_id: "basalt-test".parse().unwrap(),
            height: Height::try_from(height as u64).unwrap(),
            time: tendermint::Time::from_unix_timestamp(1_700_000_000, 5).unwrap(),
            last_block_id: (!last.is_zero()).then(|| tm_id(&last)),
            last_commit_hash: Some(TmHash::Sha256(c)),
            data_hash: Some(TmHash::Sha256(d)),
            validators_hash: TmHash::Sha256(v),
            next_validators_hash: TmHash::Sha256(n),
            consensus_hash: TmHash::Sha256(k),
            app_hash: a.clone().try_into().unwrap(),
            last_results_hash: Some(TmHash::Sha256(r)),
            evidence_hash: Some(TmHash::Sha256(e)),
            proposer_address: account::Id::new(proposer),
        };
        assert_eq!(
            header_hash(&ours).to_vec(),
            tm.hash().as_bytes(),
            "height {height}"
        );
    }
}

#[test]
fn validators_hash_matches_tendermint_rs_in_its_order() {
    let keys: Vec<[u8; 32]> = (1..=5u8)
        .map(|i| {
            ed25519_dalek::SigningKey::from_bytes(&[i; 32])
                .verifying_key()
                .to_bytes()
        })
        .collect();
    let powers = [10i64, 30, 10, 5, 1_000_000];
    let infos: Vec<validator::Info> = keys
        .iter()
        .zip(powers)
        .map(|(k, p)| {
            validator::Info::new(
                tendermint::PublicKey::from_raw_ed25519(k).unwrap(),
                vote::Power::try_from(p).unwrap(),
            )
        })
        .collect();
    let set = validator::Set::without_proposer(infos);
    // tendermint-rs orders by power, then address: feed ours in that order.
    let ordered: Vec<([u8; 32], i64)> = set
        .validators()
        .iter()
        .map(|v| {
            let k: [u8; 32] = v.pub_key.to_bytes().try_into().unwrap();
            (k, v.power.value() as i64)
        })
        .collect();
    assert_eq!(validators_hash(&ordered).to_vec(), set.hash().as_bytes());
}

#[test]
fn merkle_roots_match_tendermint_rs_for_every_small_count() {
    for n in 0..20usize {
        let items: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; i]).collect();
        let tm = tendermint::merkle::simple_hash_from_byte_vectors::<
            tendermint::crypto::default::Sha256,
        >(&items);
        assert_eq!(merkle_root(&items).0, tm, "{n} items");
        // The data hash: the root of the transactions' SHA-256 hashes.
        let hashes: Vec<[u8; 32]> = items.iter().map(|t| crate::Hash::digest(t).0).collect();
        let tm = tendermint::merkle::simple_hash_from_byte_vectors::<
            tendermint::crypto::default::Sha256,
        >(&hashes);
        assert_eq!(crate::Block::compute_data_hash(&items).0, tm, "{n} txs");
    }
}

/// CometBFT's `TestHeaderHash` vector (types/block_test.go).
#[test]
fn cometbft_header_hash_vector() {
    let sum = |s: &str| crate::Hash::digest(s.as_bytes()).0;
    let (c, d, v, n, k, a, r, e) = (
        sum("last_commit_hash"),
        sum("data_hash"),
        sum("validators_hash"),
        sum("next_validators_hash"),
        sum("consensus_hash"),
        sum("app_hash"),
        sum("last_results_hash"),
        sum("evidence_hash"),
    );
    let proposer = &sum("proposer_address")[..20];
    let h = Header {
        version_block: 1,
        version_app: 2,
        chain_id: "chainId",
        height: 3,
        // 2019-10-13T16:14:44Z
        time: Time {
            seconds: 1_570_983_284,
            nanos: 0,
        },
        last_block_id: BlockId {
            hash: vec![0; 32],
            parts_total: 6,
            parts_hash: vec![0; 32],
        },
        last_commit_hash: &c,
        data_hash: &d,
        validators_hash: &v,
        next_validators_hash: &n,
        consensus_hash: &k,
        app_hash: &a,
        last_results_hash: &r,
        evidence_hash: &e,
        proposer_address: proposer,
    };
    assert_eq!(
        hex::encode_upper(header_hash(&h)),
        "F740121F553B5418C3EFBD343C2DBFE9E007BB67B0D020A0741374BAB65242A4"
    );
}

#[test]
fn commit_hash_matches_tendermint_protobuf_and_merkle() {
    use prost::Message;
    use tendermint::block::CommitSig as TmSig;
    use tendermint_proto::types::CommitSig as RawCommitSig;
    let time = Time {
        seconds: 1_700_000_000,
        nanos: 42,
    };
    let tm_time = tendermint::Time::from_unix_timestamp(time.seconds, time.nanos as u32).unwrap();
    let (addr_a, addr_b) = ([3u8; 20], [4u8; 20]);
    let (sig_a, sig_b) = ([5u8; 64], [6u8; 64]);
    let ours = commit_hash(&[
        CommitSig {
            flag: BlockIdFlag::Commit,
            validator_address: &addr_a,
            time,
            signature: &sig_a,
        },
        CommitSig {
            flag: BlockIdFlag::Absent,
            validator_address: &[],
            time: GO_ZERO,
            signature: &[],
        },
        CommitSig {
            flag: BlockIdFlag::Commit,
            validator_address: &addr_b,
            time,
            signature: &sig_b,
        },
    ]);
    let commit = |a: [u8; 20], s: [u8; 64]| TmSig::BlockIdFlagCommit {
        validator_address: account::Id::new(a),
        timestamp: tm_time,
        signature: tendermint::Signature::new(s).unwrap(),
    };
    let leaves: Vec<Vec<u8>> = [
        commit(addr_a, sig_a),
        TmSig::BlockIdFlagAbsent,
        commit(addr_b, sig_b),
    ]
    .into_iter()
    .map(|s| RawCommitSig::from(s).encode_to_vec())
    .collect();
    let theirs = tendermint::merkle::simple_hash_from_byte_vectors::<
        tendermint::crypto::default::Sha256,
    >(&leaves);
    assert_eq!(ours, theirs);
}
