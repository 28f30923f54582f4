use super::*;
use basalt_types::PrivateKey;

fn key(i: u8) -> PublicKey {
    PrivateKey::from_seed([i; 32]).public_key()
}

fn sample() -> Genesis {
    Genesis::generate(
        "basalt-test-1",
        "2026-01-01T00:00:00Z",
        vec![
            (key(1), key(101), 10_000_000, "v1".into()),
            (key(2), key(102), 20_000_000, "v2".into()),
        ],
        vec![(key(1).address(), 5_000_000), (key(3).address(), 7)],
    )
    .unwrap()
}

#[test]
fn round_trips_through_json_and_the_hash_ignores_formatting() {
    let g = sample();
    let json = g.to_json();
    let back = Genesis::from_json(&json).unwrap();
    assert_eq!(back, g);
    let compact = serde_json::to_string(&g).unwrap();
    assert_eq!(Genesis::from_json(&compact).unwrap().hash(), g.hash());
    assert!(
        json.contains("\"self_bond\": \"10000000\""),
        "amounts are strings: {json}"
    );
    assert_eq!(g.total_supply().unwrap(), 35_000_007);
}

#[test]
fn the_hash_changes_with_any_field() {
    let g = sample();
    let mut other = g.clone();
    other.app_state.accounts[1].balance += 1;
    assert_ne!(other.hash(), g.hash());
    let mut other = g.clone();
    other.chain_id = "basalt-test-2".into();
    assert_ne!(other.hash(), g.hash());
}

fn expect(mutate: impl FnOnce(&mut Genesis), check: impl FnOnce(&GenesisError) -> bool) {
    let mut g = sample();
    mutate(&mut g);
    let err = g.validate().unwrap_err();
    assert!(check(&err), "unexpected error: {err}");
    // The same error through the JSON path.
    let err2 = Genesis::from_json(&g.to_json()).unwrap_err();
    assert_eq!(err2, err);
}

#[test]
fn every_invalid_genesis_gets_its_own_precise_error() {
    expect(
        |g| g.chain_id.clear(),
        |e| matches!(e, GenesisError::ChainId(_)),
    );
    expect(
        |g| g.chain_id = "x".repeat(51),
        |e| matches!(e, GenesisError::ChainId(_)),
    );
    expect(
        |g| g.chain_id = "bad chain".into(),
        |e| matches!(e, GenesisError::ChainId(_)),
    );
    expect(
        |g| g.genesis_time = "yesterday".into(),
        |e| matches!(e, GenesisError::GenesisTime(_)),
    );
    expect(
        |g| g.initial_height = 0,
        |e| *e == GenesisError::InitialHeight,
    );
    expect(
        |g| g.app_state.validators.clear(),
        |e| *e == GenesisError::NoValidators,
    );
    expect(
        |g| {
            let v = g.app_state.validators[0].clone();
            g.app_state.validators.push(v);
        },
        |e| matches!(e, GenesisError::DuplicateValidator(_)),
    );
    expect(
        |g| g.app_state.validators[1].consensus_key = g.app_state.validators[0].consensus_key,
        |e| matches!(e, GenesisError::DuplicateConsensusKey(_)),
    );
    expect(
        |g| {
            let a = g.app_state.accounts[0].clone();
            g.app_state.accounts.push(a);
        },
        |e| matches!(e, GenesisError::DuplicateAccount(_)),
    );
    expect(
        |g| g.app_state.validators[0].self_bond = 999_999,
        |e| matches!(e, GenesisError::ZeroPower { .. }),
    );
    expect(
        |g| g.app_state.validators[0].commission = Ppm(1_000_001),
        |e| matches!(e, GenesisError::Commission(_)),
    );
    expect(
        |g| g.app_state.validators[0].moniker.clear(),
        |e| matches!(e, GenesisError::Moniker(_)),
    );
    expect(
        |g| {
            g.app_state.accounts[0].balance = u128::MAX;
        },
        |e| *e == GenesisError::SupplyOverflow,
    );
    expect(
        |g| g.app_state.staking.power_reduction = 0,
        |e| matches!(e, GenesisError::Params(_)),
    );
    expect(
        |g| g.app_state.staking.min_signed_per_window = Ppm(2_000_000),
        |e| matches!(e, GenesisError::Params(_)),
    );
}

#[test]
fn unknown_fields_and_malformed_values_are_parse_errors() {
    let json = sample().to_json();
    let extra = json.replacen("\"chain_id\"", "\"surprise\": 1,\n  \"chain_id\"", 1);
    assert!(
        matches!(Genesis::from_json(&extra), Err(GenesisError::Parse(m)) if m.contains("surprise"))
    );
    let bad_key = json.replacen(
        &hex_of(&key(101)),
        &"00".repeat(32).replacen("00", "02", 1),
        1,
    );
    assert!(matches!(
        Genesis::from_json(&bad_key),
        Err(GenesisError::Parse(_))
    ));
    assert!(matches!(
        Genesis::from_json("{"),
        Err(GenesisError::Parse(_))
    ));
    let bad_amount = json.replacen("\"10000000\"", "\"ten\"", 1);
    assert!(matches!(
        Genesis::from_json(&bad_amount),
        Err(GenesisError::Parse(_))
    ));
}

fn hex_of(k: &PublicKey) -> String {
    serde_json::to_value(k)
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn default_parameters_match_the_design_notes() {
    let p = StakingParams::default();
    assert_eq!(p.max_validators, 100);
    assert_eq!(p.unbonding_period, 1000);
    assert_eq!(p.power_reduction, 1_000_000);
    assert_eq!(p.slash_fraction_double_sign, Ppm(50_000));
    assert_eq!(p.slash_fraction_downtime, Ppm(100));
    assert_eq!(
        (p.signed_blocks_window, p.min_signed_per_window),
        (100, Ppm(500_000))
    );
    assert_eq!(p.downtime_jail_duration, 100);
    assert_eq!(p.evidence_max_age, 1000);
}
