//! Every staking, slashing and error path, with exact amounts.

use super::*;
use crate::TxError;
use basalt_staking::{BondStatus, EvidenceRejection, Ppm};

fn op(c: &Chain, v: usize) -> Address {
    Chain::addr(&c.operators[v])
}

#[test]
fn double_sign_slashes_bonded_and_later_unbonding_stake_jails_tombstones_and_leaves_at_h_plus_2() {
    let mut c = Chain::new(&[100, 100, 100, 100], 2, 100 * M, |_| {});
    let (d1, d2) = (c.users[0].clone(), c.users[1].clone());
    let v0 = op(&c, 0);
    // Height 1: d1 delegates 50M, d2 20M: v0 has 170M, power 170 from height 3.
    let txs = vec![
        c.tx(
            &d1,
            0,
            0,
            Msg::Delegate {
                validator: v0,
                amount: 50 * M,
            },
        ),
        c.tx(
            &d2,
            0,
            0,
            Msg::Delegate {
                validator: v0,
                amount: 20 * M,
            },
        ),
    ];
    assert!(c.block(txs).tx_results.iter().all(|r| r.is_ok()));
    // Height 2: d2 undelegates everything, before the infraction: this entry is not slashed.
    let r = c.block(vec![c.tx(
        &d2,
        0,
        0,
        Msg::Undelegate {
            validator: v0,
            amount: 20 * M,
        },
    )]);
    assert!(r.tx_results[0].is_ok(), "{:?}", r.tx_results);
    // Height 3: the infraction height; v0's power in that set is 170.
    c.block(vec![]);
    let evidence = c.double_sign(0, 3);
    let Evidence::DuplicateVote(d) = &evidence;
    assert_eq!((d.validator_power, d.total_power), (170, 470));
    let signer = d.vote_a.vote.validator;
    // Height 4: d1 undelegates 30M after the infraction: this entry is slashed too.
    let r = c.block(vec![c.tx(
        &d1,
        0,
        0,
        Msg::Undelegate {
            validator: v0,
            amount: 30 * M,
        },
    )]);
    assert!(r.tx_results[0].is_ok());
    assert_eq!(c.rt.staking().validator(&v0).unwrap().tokens, 120 * M);
    let burned_before = c.rt.supply().burned;
    // Height 5: the evidence is committed.
    let r = c.block_with(vec![], c.all_signers(), vec![evidence]);
    let outcome = r.evidence_results[0].clone().unwrap();
    // 5% of 170M = 8.5M: 1.5M (5% of 30M) from d1's later entry, 7M from the bonded tokens.
    assert_eq!(outcome.from_unbonding, 1_500_000);
    assert_eq!(outcome.from_bonded, 7 * M);
    assert_eq!(c.rt.supply().burned - burned_before, 8_500_000);
    // The block reports it: a `slash` event naming the signer, its operator, why and what
    // was burned.
    let slash = |kind: &str| {
        vec![
            ("address".to_string(), signer.to_hex()),
            ("operator".to_string(), v0.to_hex()),
            ("reason".to_string(), kind.to_string()),
            ("burned".to_string(), "8500000".to_string()),
        ]
    };
    assert_eq!(r.events.len(), 1);
    assert_eq!(r.events[0].kind, "slash");
    assert_eq!(r.events[0].attributes, slash("double_sign"));
    let v = c.rt.staking().validator(&v0).unwrap();
    assert_eq!(v.tokens, 113 * M);
    assert!(v.jailed && v.tombstoned);
    let entries = &c.rt.staking().unbonding;
    let of = |who: &PrivateKey| {
        entries
            .iter()
            .find(|e| e.delegator == Chain::addr(who))
            .unwrap()
            .balance
    };
    assert_eq!(
        of(&d2),
        20 * M,
        "entry from before the infraction is untouched"
    );
    assert_eq!(of(&d1), 28_500_000);
    // Delegators lose the same fraction as the operator: 113/120 of their stake.
    let dels = c.rt.delegations_of(&Chain::addr(&d1));
    assert_eq!(dels[0].tokens, 20 * M * 113 / 120);
    let own = c.rt.delegations_of(&v0);
    assert_eq!(own[0].tokens, 100 * M * 113 / 120);
    // Removal reaches consensus at H+2: present at 6, absent at 7.
    let cons0 = Chain::addr(&c.consensus[0]);
    assert!(r
        .validator_updates
        .iter()
        .any(|u| u.public_key.address() == cons0 && u.power == 0));
    assert!(
        c.schedule.current.get(&cons0).is_some(),
        "height 6 still has it"
    );
    assert!(c.schedule.next.get(&cons0).is_none(), "height 7 does not");
    assert_eq!(c.schedule.next.total_power(), 300);
}

#[test]
fn the_same_evidence_twice_slashes_once_and_forged_evidence_is_refused() {
    let mut c = Chain::new(&[10, 10, 10, 10], 0, 0, |_| {});
    c.block(vec![]);
    c.block(vec![]);
    let ev = c.double_sign(1, 2);
    let r = c.block_with(vec![], c.all_signers(), vec![ev.clone(), ev.clone()]);
    assert!(r.evidence_results[0].is_ok());
    assert_eq!(
        r.evidence_results[1],
        Err(EvidenceRejection::AlreadyPunished)
    );
    let r = c.block_with(vec![], c.all_signers(), vec![ev.clone()]);
    assert_eq!(
        r.evidence_results[0],
        Err(EvidenceRejection::AlreadyPunished)
    );
    assert_eq!(c.rt.supply().burned, 500_000, "5% of 10M, once");

    let Evidence::DuplicateVote(mut forged) = c.double_sign(2, 2);
    forged.vote_b.signature = c.consensus[3].sign(b"not a vote");
    let r = c.block_with(
        vec![],
        c.all_signers(),
        vec![Evidence::DuplicateVote(forged)],
    );
    assert!(matches!(
        r.evidence_results[0],
        Err(EvidenceRejection::Invalid(_))
    ));
    assert!(!c.rt.staking().validator(&op(&c, 2)).unwrap().jailed);
}

#[test]
fn evidence_too_old_or_from_a_validator_not_in_the_set_is_refused() {
    let mut c = Chain::new(&[10, 10, 10, 10], 0, 0, |p| p.evidence_max_age = 5);
    c.block(vec![]);
    c.block(vec![]);
    let old = c.double_sign(0, 2);
    for _ in 0..6 {
        c.block(vec![]);
    }
    let r = c.block_with(vec![], c.all_signers(), vec![old]);
    assert_eq!(
        r.evidence_results[0],
        Err(EvidenceRejection::TooOld {
            height: 2,
            current: 9
        })
    );

    // A key that was never a validator.
    let stranger = key("stranger", 0);
    let vote = |b: Option<BlockId>| {
        Vote {
            vote_type: VoteType::Precommit,
            height: Height(8),
            round: Round(0),
            block_id: b,
            validator: Chain::addr(&stranger),
        }
        .sign(CHAIN, basalt_types::Timestamp::default(), &stranger)
    };
    let ev = DuplicateVoteEvidence::new(
        vote(None),
        vote(Some(BlockId(Hash::digest(b"y"), Default::default()))),
        10,
        40,
    );
    let r = c.block_with(vec![], c.all_signers(), vec![Evidence::DuplicateVote(ev)]);
    assert!(matches!(
        r.evidence_results[0],
        Err(EvidenceRejection::NotInSet(_))
    ));
    // A real validator with a false power claim.
    let Evidence::DuplicateVote(mut lie) = c.double_sign(0, 8);
    lie.validator_power = 30;
    let r = c.block_with(vec![], c.all_signers(), vec![Evidence::DuplicateVote(lie)]);
    assert!(matches!(
        r.evidence_results[0],
        Err(EvidenceRejection::NotInSet(_))
    ));
    assert_eq!(c.rt.supply().burned, 0);
}

#[test]
fn downtime_jails_with_a_small_slash_then_unjail_after_the_jail_period() {
    let mut c = Chain::new(&[10, 10, 10, 10], 0, 0, |p| {
        p.signed_blocks_window = 10;
        p.downtime_jail_duration = 5;
        p.slash_fraction_downtime = Ppm(10_000); // 1%
    });
    let lazy = Chain::addr(&c.consensus[3]);
    let v3 = op(&c, 3);
    // `/signing_infos` counts the blocks each validator missed in the window.
    let missed = |c: &Chain, who: Address| {
        let infos = c.rt.query("/signing_infos").unwrap();
        let info = infos
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["address"] == who.to_hex());
        info.map_or(0, |i| i["missed_count"].as_u64().unwrap())
    };
    while missed(&c, lazy) < 3 {
        assert!(c.rt.height() < 6, "missed blocks not counted");
        let signers: BTreeSet<Address> =
            c.all_signers().into_iter().filter(|a| *a != lazy).collect();
        c.block_with(vec![], signers, vec![]);
    }
    assert_eq!(missed(&c, Chain::addr(&c.consensus[0])), 0);
    // `/validators` names each record's consensus address and its operator's own bond.
    let vals = c.rt.query("/validators").unwrap();
    let v = (vals.as_array().unwrap().iter())
        .find(|v| v["operator"] == v3.to_hex())
        .unwrap();
    assert_eq!(v["consensus_address"], lazy.to_hex());
    assert_eq!(
        v["self_bond"], v["tokens"],
        "no delegations yet: all self-bonded"
    );
    let infos = c.rt.query("/signing_infos").unwrap();
    assert!(infos.as_array().unwrap().iter().all(|i| i["window"] == 10));
    let mut events = Vec::new();
    while !c.rt.staking().validator(&v3).unwrap().jailed {
        assert!(c.rt.height() < 30, "never jailed");
        assert!(events.is_empty(), "a slash event before the jailing");
        let signers: BTreeSet<Address> =
            c.all_signers().into_iter().filter(|a| *a != lazy).collect();
        events = c.block_with(vec![], signers, vec![]).events;
    }
    let jailed_at = c.rt.height();
    // The jailing block reports the slash.
    assert_eq!(events.len(), 1);
    let attrs: std::collections::BTreeMap<_, _> = events[0].attributes.iter().cloned().collect();
    assert_eq!(events[0].kind, "slash");
    assert_eq!(attrs["address"], lazy.to_hex());
    assert_eq!(attrs["operator"], v3.to_hex());
    assert_eq!(attrs["reason"], "missing_signature");
    assert_eq!(attrs["burned"], "100000");
    let vals = c.rt.query("/validators").unwrap();
    let v = (vals.as_array().unwrap().iter())
        .find(|v| v["operator"] == v3.to_hex())
        .unwrap();
    assert_eq!(v["tokens"], (10 * M - 100_000).to_string());
    assert_eq!(
        v["self_bond"], v["tokens"],
        "the slash came out of the self-bond"
    );
    // Window of 10 from height 2 (the first with a last commit), more than 5 missed.
    assert_eq!(jailed_at, 12);
    let v = c.rt.staking().validator(&v3).unwrap();
    assert_eq!(v.tokens, 10 * M - 100_000, "1% slashed");
    assert_eq!(v.jailed_until, 17);
    assert!(!v.tombstoned);
    assert!(
        !c.rt.staking().active.contains_key(&v3),
        "left the active set"
    );
    // Unjail before the jail period ends is refused (the fee is still taken).
    let fee_payer = Chain::addr(&c.operators[3]);
    let before = c.rt.account(&fee_payer).balance;
    let early = c.block(vec![c.tx(&c.operators[3], 0, 1, Msg::Unjail)]);
    assert_eq!(early.tx_results[0].code, 14, "{}", early.tx_results[0].log);
    assert_eq!(c.rt.account(&fee_payer).balance, before - 1);
    while c.rt.height() + 1 < 17 {
        c.block(vec![]);
    }
    let r = c.block(vec![c.tx(&c.operators[3], 0, 0, Msg::Unjail)]);
    assert!(r.tx_results[0].is_ok(), "{:?}", r.tx_results[0]);
    assert!(r
        .validator_updates
        .iter()
        .any(|u| u.public_key.address() == lazy && u.power > 0));
    assert!(c.rt.staking().active.contains_key(&v3));
}

#[test]
fn unjail_too_early_gets_still_jailed_and_tombstoned_can_never_unjail() {
    let mut c = Chain::new(&[10, 10, 10, 10], 0, 0, |p| {
        p.signed_blocks_window = 4;
        p.downtime_jail_duration = 50;
    });
    let lazy = Chain::addr(&c.consensus[3]);
    for _ in 0..8 {
        let signers: BTreeSet<Address> =
            c.all_signers().into_iter().filter(|a| *a != lazy).collect();
        c.block_with(vec![], signers, vec![]);
    }
    assert!(c.rt.staking().validator(&op(&c, 3)).unwrap().jailed);
    let r = c.block(vec![c.tx(&c.operators[3], 0, 0, Msg::Unjail)]);
    assert_eq!(r.tx_results[0].code, 14, "{}", r.tx_results[0].log);

    let ev = c.double_sign(1, 2);
    c.block_with(vec![], c.all_signers(), vec![ev]);
    for _ in 0..3 {
        c.block(vec![]);
    }
    let r = c.block(vec![c.tx(&c.operators[1], 0, 0, Msg::Unjail)]);
    assert_eq!(r.tx_results[0].code, 13, "{}", r.tx_results[0].log);
    assert!(r.tx_results[0].log.contains("tombstoned"));
    // Not a validator at all.
    let r = c.block(vec![c.tx(&c.operators[0], 0, 0, Msg::Unjail)]);
    assert_eq!(
        r.tx_results[0].code, 12,
        "v0 is not jailed: {}",
        r.tx_results[0].log
    );
}

#[test]
fn undelegated_tokens_are_paid_exactly_when_the_unbonding_period_ends() {
    let mut c = Chain::new(&[10, 10, 10, 10], 1, 50 * M, |p| p.unbonding_period = 10);
    let d = c.users[0].clone();
    let v0 = op(&c, 0);
    c.block(vec![c.tx(
        &d,
        0,
        0,
        Msg::Delegate {
            validator: v0,
            amount: 20 * M,
        },
    )]);
    assert_eq!(c.rt.account(&Chain::addr(&d)).balance, 30 * M);
    let r = c.block(vec![c.tx(
        &d,
        0,
        0,
        Msg::Undelegate {
            validator: v0,
            amount: 5 * M,
        },
    )]);
    assert!(r.tx_results[0].is_ok());
    let undelegated_at = c.rt.height();
    while c.rt.height() < undelegated_at + 9 {
        c.block(vec![]);
        assert_eq!(
            c.rt.account(&Chain::addr(&d)).balance,
            30 * M,
            "not before completion"
        );
    }
    c.block(vec![]);
    assert_eq!(c.rt.height(), undelegated_at + 10);
    assert_eq!(c.rt.account(&Chain::addr(&d)).balance, 35 * M);
    assert!(c.rt.staking().unbonding.is_empty());
    // More than delegated is refused.
    let r = c.block(vec![c.tx(
        &d,
        0,
        0,
        Msg::Undelegate {
            validator: v0,
            amount: 16 * M,
        },
    )]);
    assert_eq!(r.tx_results[0].code, 15);
}

#[test]
fn a_delegation_lifts_a_validator_into_the_active_set_and_pushes_the_weakest_out_at_h_plus_2() {
    let mut c = Chain::new(&[40, 30, 20, 10], 1, 100 * M, |p| p.max_validators = 3);
    let (v2, v3) = (op(&c, 2), op(&c, 3));
    let (c2, c3) = (Chain::addr(&c.consensus[2]), Chain::addr(&c.consensus[3]));
    assert!(
        c.schedule.current.get(&c3).is_none(),
        "only the top 3 at genesis"
    );
    assert_eq!(
        c.rt.staking().validator(&v3).unwrap().status,
        BondStatus::Unbonded
    );
    let r = c.block(vec![c.tx(
        &c.users[0],
        0,
        0,
        Msg::Delegate {
            validator: v3,
            amount: 25 * M,
        },
    )]);
    let h = c.rt.height();
    let mut updates: Vec<(Address, u64)> = r
        .validator_updates
        .iter()
        .map(|u| (u.public_key.address(), u.power))
        .collect();
    updates.sort();
    let mut expected = vec![(c3, 35), (c2, 0)];
    expected.sort();
    assert_eq!(updates, expected);
    assert!(
        matches!(c.rt.staking().validator(&v2).unwrap().status, BondStatus::Unbonding { until } if until == h + 1000)
    );
    // H+1 keeps the old set, H+2 has the new one.
    assert!(c.schedule.current.get(&c3).is_none() && c.schedule.current.get(&c2).is_some());
    assert!(c.schedule.next.get(&c3).is_some() && c.schedule.next.get(&c2).is_none());
}

#[test]
fn the_new_set_at_h_plus_2_carries_cometbft_priorities() {
    let mut c = Chain::new(&[10, 10, 10], 1, 100 * M, |_| {});
    // A fourth validator created at height 1 joins the set of height 3.
    let newbie = key("new-operator", 0);
    let newbie_cons = key("new-consensus", 0);
    let fund = c.tx(
        &c.users[0],
        0,
        0,
        Msg::Transfer {
            to: Chain::addr(&newbie),
            amount: 50 * M,
        },
    );
    c.block(vec![fund]);
    let before_h_plus_1 = c.schedule.next.clone();
    let create = c.tx(
        &newbie,
        0,
        0,
        Msg::CreateValidator {
            consensus_key: newbie_cons.public_key(),
            moniker: "newbie".into(),
            commission: Ppm(0),
            self_bond: 20 * M,
        },
    );
    let r = c.block(vec![create]);
    assert!(r.tx_results[0].is_ok(), "{:?}", r.tx_results[0]);
    // Expected, by CometBFT's rules: the set of H+1, updated, then advanced once.
    let mut expected = before_h_plus_1.clone();
    expected
        .update(
            r.validator_updates
                .iter()
                .map(|u| u.to_validator())
                .collect(),
        )
        .unwrap();
    expected.increment_proposer_priority(1);
    assert_eq!(c.schedule.current, before_h_plus_1, "H+1 unchanged");
    assert_eq!(c.schedule.next, expected, "H+2 = H+1 updated and advanced");
    let joined = c.schedule.next.get(&Chain::addr(&newbie_cons)).unwrap();
    assert_eq!(joined.voting_power, 20);
    // It entered at −(T + T/8) with T = 50 after the update (−56), then every priority was
    // centred by the floor of their average, then one increment added its power (20).
    let mut priorities: Vec<i64> = before_h_plus_1
        .validators()
        .iter()
        .map(|v| v.proposer_priority)
        .collect();
    priorities.push(-56);
    let spread = priorities.iter().max().unwrap() - priorities.iter().min().unwrap();
    assert!(spread <= 100, "no rescale in this scenario");
    let shift = priorities
        .iter()
        .sum::<i64>()
        .div_euclid(priorities.len() as i64);
    let proposer_is_new = c.schedule.next.proposer().unwrap().address == joined.address;
    let expected_priority = -56 - shift + 20 - if proposer_is_new { 50 } else { 0 };
    assert_eq!(joined.proposer_priority, expected_priority);
}

#[test]
fn every_bad_transaction_gets_a_distinct_code_and_a_readable_log_and_changes_nothing() {
    let mut c = Chain::new(&[10, 10, 10, 10], 2, 10 * M, |_| {});
    let (a, b) = (c.users[0].clone(), c.users[1].clone());
    let to = Chain::addr(&b);
    let transfer = |amount| Msg::Transfer { to, amount };
    let mut bad_sig = crate::SignedTx::decode(&c.tx(&a, 0, 0, transfer(1))).unwrap();
    bad_sig.signature = b.sign(b"not this");
    let other_chain = TxBody {
        chain_id: "other".into(),
        nonce: 0,
        fee: 0,
        msg: transfer(1),
    }
    .sign(&a)
    .to_bytes();
    let cases: Vec<(&str, Vec<u8>, u32)> = vec![
        (
            "malformed bytes",
            vec![1, 2, 3],
            TxError::Malformed(String::new()).code(),
        ),
        ("too large", vec![0; crate::runtime::MAX_TX_BYTES + 1], 2),
        ("other chain id", other_chain, 3),
        ("bad signature", bad_sig.to_bytes(), 4),
        ("nonce ahead", c.tx(&a, 5, 0, transfer(1)), 5),
        ("insufficient funds", c.tx(&a, 0, 0, transfer(11 * M)), 7),
        (
            "unknown validator",
            c.tx(
                &a,
                0,
                0,
                Msg::Delegate {
                    validator: to,
                    amount: 1,
                },
            ),
            8,
        ),
        ("amount zero", c.tx(&a, 0, 0, transfer(0)), 9),
        (
            "amount overflowing",
            c.tx(&a, 0, 1, transfer(u128::MAX)),
            10,
        ),
    ];
    let hash_before = c.rt.app_hash();
    let accounts_before = c.rt.memory_accounts();
    let mut codes = BTreeSet::new();
    for (name, bytes, code) in &cases {
        let r = c.rt.check_tx(bytes);
        assert_eq!(r.code, *code, "{name}: {}", r.log);
        assert!(!r.log.is_empty(), "{name} has a log");
        codes.insert(r.code);
    }
    assert_eq!(codes.len(), cases.len(), "codes are distinct");
    assert_eq!(
        c.rt.memory_accounts(),
        accounts_before,
        "check_tx changes nothing"
    );
    assert_eq!(c.rt.app_hash(), hash_before);
    // Replay: a transaction executed once, then sent again.
    let once = c.tx(&a, 0, 0, transfer(1));
    assert!(c.block(vec![once.clone()]).tx_results[0].is_ok());
    let r = c.rt.check_tx(&once);
    assert_eq!(r.code, 6, "{}", r.log);
    assert!(r.log.contains("replay"));
    let r = c.block(vec![once]);
    assert_eq!(r.tx_results[0].code, 6);
    assert_eq!(
        c.rt.account(&Chain::addr(&b)).balance,
        10 * M + 1,
        "replay did not pay twice"
    );
}

#[test]
fn rewards_go_to_last_commit_signers_by_power_with_commission_then_delegators_by_shares() {
    let mut c = Chain::new(&[30, 10, 10, 10], 1, 20 * M, |p| p.block_reward = 4_000);
    let d = c.users[0].clone();
    let (v0, v1) = (op(&c, 0), op(&c, 1));
    // Height 1: d delegates 10M to v0; v0 has power 40 from height 3.
    c.block(vec![c.tx(
        &d,
        0,
        0,
        Msg::Delegate {
            validator: v0,
            amount: 10 * M,
        },
    )]);
    c.block(vec![]);
    c.block(vec![]);
    // Height 4 carries the commit of height 3, signed by v0 (40) and v1 (10) only.
    let signers: BTreeSet<Address> = [0, 1]
        .iter()
        .map(|i| Chain::addr(&c.consensus[*i]))
        .collect();
    let before = |c: &Chain, a: &Address| c.rt.account(a).balance;
    let (b0, b1, bd) = (
        before(&c, &v0),
        before(&c, &v1),
        before(&c, &Chain::addr(&d)),
    );
    let fee_payer = c.users[0].clone();
    let r = c.block_with(
        vec![c.tx(&fee_payer, 0, 1_000, Msg::Transfer { to: v1, amount: 1 })],
        signers,
        vec![],
    );
    assert!(r.tx_results[0].is_ok());
    // Pot = 4000 minted + 1000 fee = 5000: v0 gets 40/50 = 4000, v1 10/50 = 1000.
    // v0: 10% commission 400, then 3600 by shares: operator 30/40 = 2700, d 10/40 = 900.
    // v1: commission 100 and the rest 900 to its only delegator, the operator.
    assert_eq!(before(&c, &v0) - b0, 400 + 2700);
    // d paid the 1000 fee and the 1 token sent.
    assert_eq!(before(&c, &Chain::addr(&d)) + 1_000 + 1 - bd, 900);
    assert_eq!(before(&c, &v1) - b1 - 1, 100 + 900);
    assert_eq!(c.rt.supply().minted, 4 * 4_000);
}

#[test]
fn edit_validator_changes_moniker_and_commission_for_the_operator_only() {
    let mut c = Chain::new(&[10, 10, 10, 10], 1, M, |_| {});
    let v0 = op(&c, 0);
    let edit = |m: Option<&str>, rate: Option<u32>| Msg::EditValidator {
        moniker: m.map(String::from),
        commission: rate.map(Ppm),
    };
    let r = c.block(vec![c.tx(
        &c.operators[0],
        0,
        0,
        edit(Some("renamed"), Some(250_000)),
    )]);
    assert!(r.tx_results[0].is_ok(), "{:?}", r.tx_results[0]);
    let v = c.rt.staking().validator(&v0).unwrap();
    assert_eq!(
        (v.moniker.as_str(), v.commission),
        ("renamed", Ppm(250_000))
    );
    let r = c.block(vec![
        c.tx(&c.operators[0], 0, 0, edit(None, Some(1_000_001))),
        c.tx(&c.operators[0], 1, 0, edit(Some(""), None)),
        c.tx(&c.users[0], 0, 0, edit(Some("thief"), None)),
    ]);
    let codes: Vec<u32> = r.tx_results.iter().map(|t| t.code).collect();
    assert_eq!(codes, vec![16, 17, 19]);
    let v = c.rt.staking().validator(&v0).unwrap();
    assert_eq!(
        (v.moniker.as_str(), v.commission),
        ("renamed", Ppm(250_000)),
        "failed edits change nothing"
    );
}
