//! The standard Tendermint light client verifies a live Basalt chain: tendermint-rs's
//! `tendermint-light-client-verifier` 0.40 (what IBC relayers run), fed `/commit` and
//! `/validators` of a 4-validator + 1 full-node testnet through `tendermint-rpc`, accepts
//! every adjacent header and skips from a trusted height to the tip across validator-set
//! changes (a delegation that changes a power, a new validator, a validator jailed for
//! downtime), and refuses a tampered header, a forged signature, another chain and a header
//! from the future.

mod common;

use common::*;
use std::time::{Duration, SystemTime};
use tendermint::block::Height;
use tendermint::validator::Set;
use tendermint_light_client_verifier::options::Options;
use tendermint_light_client_verifier::types::{LightBlock, TrustThreshold};
use tendermint_light_client_verifier::{ProdVerifier, Verdict, Verifier};
use tendermint_rpc::{Client, HttpClient, Paging};

const MINUTE: Duration = Duration::from_secs(60);

fn http(net: &Net, k: usize) -> HttpClient {
    net.tendermint_client(k)
}

/// The light block at `h` as a light client assembles it from the RPC.
async fn light_block(c: &HttpClient, h: u64) -> LightBlock {
    let height = Height::try_from(h).unwrap();
    let signed_header = c.commit(height).await.expect("commit").signed_header;
    let set =
        |r: tendermint_rpc::endpoint::validators::Response| Set::without_proposer(r.validators);
    let validators = set(c.validators(height, Paging::All).await.expect("validators"));
    let next = set(c
        .validators(height.increment(), Paging::All)
        .await
        .expect("next validators"));
    LightBlock::new(
        signed_header,
        validators,
        next,
        tendermint::node::Id::new([0; 20]),
    )
}

fn options() -> Options {
    Options {
        trust_threshold: TrustThreshold::ONE_THIRD,
        trusting_period: Duration::from_secs(3600),
        clock_drift: Duration::from_secs(10),
    }
}

fn now() -> tendermint::Time {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    tendermint::Time::from_unix_timestamp(d.as_secs() as i64, d.subsec_nanos()).unwrap()
}

fn verify(trusted: &LightBlock, untrusted: &LightBlock, now: tendermint::Time) -> Verdict {
    ProdVerifier::default().verify_update_header(
        untrusted.as_untrusted_state(),
        trusted.as_trusted_state(),
        &options(),
        now,
    )
}

/// Skipping verification with bisection, as a light client does it: try the target; when
/// the trusted set's overlap is too small, verify the midpoint first. Returns the heights
/// it verified on the way.
async fn skip_to(c: &HttpClient, trusted: LightBlock, target: u64) -> Vec<u64> {
    let mut trusted = trusted;
    let mut path = Vec::new();
    let mut goal = target;
    while trusted.height().value() < target {
        let candidate = light_block(c, goal).await;
        match verify(&trusted, &candidate, now()) {
            Verdict::Success => {
                path.push(goal);
                trusted = candidate;
                goal = target;
            }
            Verdict::NotEnoughTrust(_) => {
                let from = trusted.height().value();
                assert!(goal > from + 1, "adjacent headers never lack trust");
                goal = from + (goal - from) / 2;
            }
            Verdict::Invalid(e) => panic!("header {goal} refused: {e}"),
        }
    }
    path
}

/// Powers of the set at `h` (tendermint-rs's view), by address.
async fn powers(c: &HttpClient, h: u64) -> Vec<(String, u64)> {
    let r = c
        .validators(Height::try_from(h).unwrap(), Paging::All)
        .await
        .unwrap();
    r.validators
        .iter()
        .map(|v| (v.address.to_string(), v.power.value()))
        .collect()
}

fn tx(args: &[&str], home: &std::path::Path) {
    let mut all = vec!["tx"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--home", home.to_str().unwrap()]);
    let o = basalt(&all);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn the_tendermint_light_client_verifies_a_live_chain_through_validator_set_changes() {
    let mut net = Net::new(4, 1, 28700);
    // A short downtime window, so that a stopped validator is jailed within seconds.
    for k in 0..5 {
        let path = net.home(k).join("config/genesis.json");
        let mut g: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let p = &mut g["app_state"]["staking"];
        p["signed_blocks_window"] = serde_json::json!(20);
        p["downtime_jail_duration"] = serde_json::json!(100_000);
        std::fs::write(&path, serde_json::to_vec_pretty(&g).unwrap()).unwrap();
    }
    net.start_all();
    net.wait_height(0, 3, MINUTE);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = http(&net, 0);
    let trusted = rt.block_on(light_block(&c, 2));
    let start = rt.block_on(powers(&c, 2));
    assert_eq!(start.len(), 4);

    // 1. A delegation changes validator 1's power.
    let operator = net.account_key(1).public_key().address().to_hex();
    tx(
        &["delegate", "--validator", &operator, "--amount", "5000000"],
        &net.home(0),
    );
    // 2. The full node's operator creates a validator (with a new consensus key, which the
    // node loads when it restarts, as CometBFT's does).
    tx(
        &[
            "create-validator",
            "--amount",
            "8000000",
            "--moniker",
            "new",
        ],
        &net.home(4),
    );
    let consensus = |k: usize| {
        basalt_node::keys::load(&basalt_node::home::Home::new(net.home(k)).validator_key_file())
            .unwrap()
            .public_key()
            .address()
            .to_hex()
    };
    let (v1, v3, v4) = (consensus(1), consensus(3), consensus(4));
    let power = |set: &[(String, u64)], a: &str| set.iter().find(|(x, _)| x == a).map(|(_, p)| *p);
    let tip_set = |net: &Net| {
        let tip = net.height(0).unwrap_or(1);
        (tip, rt.block_on(powers(&c, tip)))
    };
    wait_for(
        "the delegation and the new validator to take effect",
        MINUTE,
        || {
            let (_, set) = tip_set(&net);
            power(&set, &v1) == Some(15) && power(&set, &v4) == Some(8)
        },
    );
    net.kill(4);
    net.start(4);
    let tip = net.wait_height(0, 1, MINUTE);
    net.wait_height(4, tip + 2, MINUTE);
    // 3. Validator 3 stops and is jailed for missing blocks (the new validator, node 4,
    // signs now: it restarted with its consensus key).
    net.kill(3);
    let mut changed_at = 0;
    wait_for("the stopped validator to be jailed", 2 * MINUTE, || {
        let (tip, set) = tip_set(&net);
        changed_at = tip;
        power(&set, &v3).is_none()
    });
    net.wait_height(0, changed_at + 3, MINUTE);
    let tip = changed_at + 2;

    // Adjacent: every header from the trusted one to the tip, each against the one before.
    let mut prev = trusted.clone();
    let mut set_changes = 0;
    for h in 3..=tip {
        let lb = rt.block_on(light_block(&c, h));
        if lb.signed_header.header.validators_hash != prev.signed_header.header.validators_hash {
            set_changes += 1;
        }
        assert_eq!(verify(&prev, &lb, now()), Verdict::Success, "height {h}");
        prev = lb;
    }
    assert!(set_changes >= 2, "only {set_changes} set changes seen");

    // Skipping: from height 2 straight to the tip (bisecting if the overlap is too small).
    let path = rt.block_on(skip_to(&c, trusted.clone(), tip));
    assert_eq!(path.last(), Some(&tip));
    assert!(
        path.len() < (tip - 2) as usize,
        "skipping verified every header"
    );

    // Refusals.
    let target = rt.block_on(light_block(&c, tip));
    let refused = |lb: &LightBlock, trusted: &LightBlock, now: tendermint::Time, what: &str| {
        let v = verify(trusted, lb, now);
        assert!(matches!(v, Verdict::Invalid(_)), "{what} accepted: {v:?}");
    };
    // A tampered header: another app hash no longer hashes to the block the commit signs.
    let mut tampered = target.clone();
    tampered.signed_header.header.app_hash = tendermint::AppHash::try_from(vec![7; 32]).unwrap();
    refused(&tampered, &trusted, now(), "a tampered header");
    // A forged signature.
    let mut forged = target.clone();
    let sig = forged
        .signed_header
        .commit
        .signatures
        .iter_mut()
        .find_map(|s| match s {
            tendermint::block::CommitSig::BlockIdFlagCommit { signature, .. } => Some(signature),
            _ => None,
        })
        .unwrap();
    let mut bytes = sig.as_ref().unwrap().as_bytes().to_vec();
    bytes[0] ^= 1;
    *sig = tendermint::Signature::new(bytes).unwrap();
    refused(&forged, &prev_of(&rt, &c, tip), now(), "a forged signature");
    // Another chain: a client that trusts a chain of another id refuses this one.
    let mut other = trusted.clone();
    other.signed_header.header.chain_id = "another-chain".parse().unwrap();
    refused(&target, &other, now(), "a header of another chain");
    // A header from the future: the client's clock an hour behind the header.
    let early = (target.time() - Duration::from_secs(3600)).unwrap();
    refused(&target, &trusted, early, "a header from the future");
    // A trusted header older than the trusting period.
    let late = (trusted.time() + Duration::from_secs(7200)).unwrap();
    refused(
        &target,
        &trusted,
        late,
        "a header beyond the trusting period",
    );
    net.assert_no_evidence();
}

/// The light block just below `h` (to check `h` as an adjacent header).
fn prev_of(rt: &tokio::runtime::Runtime, c: &HttpClient, h: u64) -> LightBlock {
    rt.block_on(light_block(c, h - 1))
}
