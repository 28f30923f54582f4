//! `basalt light`: a light client. It starts from one header the user trusts (height and
//! hash, obtained out of band), verifies later headers from a primary node by skipping
//! verification (bisecting when a skip lacks trust, [`verify`]), keeps every verified light
//! block on disk ([`store`]), and cross-checks each new header with witnesses: a witness
//! whose different header also verifies is a fork, reported with both headers.

pub mod fetch;
pub mod store;
pub mod verify;

use crate::client::Client;
use anyhow::{anyhow, bail, Context, Result};
use basalt_types::{Hash, Timestamp};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use store::TrustedStore;
use verify::{LightBlock, Options, Verdict};

/// The client's clock: the only place the light client reads time.
pub fn now() -> Timestamp {
    crate::node::now()
}

/// A conflicting header: two headers for one height that both verify from the trusted one.
#[derive(Debug, thiserror::Error)]
#[error("fork detected at height {height}: the primary and witness {witness} serve different headers that both verify\nprimary: {primary}\nwitness: {other}")]
pub struct Fork {
    pub height: u64,
    pub witness: String,
    pub primary: Value,
    pub other: Value,
}

pub struct LightClient {
    primary: Client,
    witnesses: Vec<(String, Client)>,
    store: TrustedStore,
    options: Options,
}

impl LightClient {
    /// Opens the trusted store at `home`. With `trust`, the header at that height from the
    /// primary must hash to the given hash (and is stored as the root of trust); without
    /// it, the store must already hold a trusted header.
    pub fn open(
        home: &Path,
        primary: &str,
        witnesses: &[String],
        trust: Option<(u64, Hash)>,
        options: Options,
    ) -> Result<LightClient> {
        let store = TrustedStore::open(home)?;
        let client = LightClient {
            primary: Client::new(primary),
            witnesses: witnesses
                .iter()
                .map(|w| (w.clone(), Client::new(w)))
                .collect(),
            store,
            options,
        };
        match trust {
            Some((height, hash)) => client.trust(height, hash)?,
            None if client.store.latest()?.is_none() => bail!(
                "{} holds no trusted header: give --trust-height and --trust-hash",
                home.display()
            ),
            None => {}
        }
        Ok(client)
    }

    /// Stores the primary's light block at `height` as trusted if it hashes to `hash`.
    fn trust(&self, height: u64, hash: Hash) -> Result<()> {
        if let Some(held) = self.store.get(height)? {
            if held.header.hash() != hash {
                bail!("the store already trusts another header at height {height}");
            }
            return Ok(());
        }
        let lb = fetch::light_block(&self.primary, height)?;
        let got = lb.header.hash();
        if got != hash {
            bail!("the primary's header at height {height} is {got}, not the trusted hash {hash}");
        }
        lb.check_sets()
            .map_err(|e| anyhow!("the primary's trusted header: {e}"))?;
        self.store.save(&lb)
    }

    /// The latest trusted light block.
    pub fn latest(&self) -> Result<LightBlock> {
        self.store
            .latest()?
            .ok_or_else(|| anyhow!("no trusted header"))
    }

    /// Verifies the primary's header at `target` from the latest trusted one, bisecting
    /// as needed, then checks it against every witness. Returns the verified block and the
    /// heights verified on the way.
    pub fn verify_to(&mut self, target: u64) -> Result<(LightBlock, Vec<u64>)> {
        let root = self.latest()?;
        if target <= root.height() {
            let lb = self.store.get(target)?.ok_or_else(|| {
                anyhow!("height {target} is below the trusted header and was not verified")
            })?;
            return Ok((lb, vec![]));
        }
        let (lb, path) = skip(&root, target, &self.options, now(), |h| {
            fetch::light_block(&self.primary, h)
        })
        .map_err(|e| anyhow!("refusing the primary's header: {e}"))?;
        self.check_witnesses(&root, &lb)?;
        for b in &path {
            self.store.save(b)?;
        }
        Ok((lb, path.iter().map(LightBlock::height).collect()))
    }

    /// A witness that serves another header for the same height is asked to prove it from
    /// the same trusted root: if it can, the chain has forked; if not, the witness is wrong
    /// and is only reported.
    fn check_witnesses(&self, root: &LightBlock, lb: &LightBlock) -> Result<()> {
        let height = lb.height();
        for (url, w) in &self.witnesses {
            let (header, _) = match fetch::signed_header(w, height) {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(witness = %url, "witness unreachable or behind: {e:#}");
                    continue;
                }
            };
            if header.hash() == lb.header.hash() {
                continue;
            }
            match skip(root, height, &self.options, now(), |h| {
                fetch::light_block(w, h)
            }) {
                Ok((theirs, _)) => {
                    return Err(Fork {
                        height,
                        witness: url.clone(),
                        primary: basalt_rpc::shapes::header(&lb.header),
                        other: basalt_rpc::shapes::header(&theirs.header),
                    }
                    .into())
                }
                Err(e) => tracing::warn!(
                    witness = %url,
                    height,
                    "the witness serves another header that does not verify: {e}"
                ),
            }
        }
        Ok(())
    }
}

/// Skipping verification from `root` to `target` at time `now`: tries the target, and when
/// the trusted set cannot vouch for it, a header halfway first. Returns the target's block
/// and every block verified on the way (the target last).
pub fn skip(
    root: &LightBlock,
    target: u64,
    options: &Options,
    now: Timestamp,
    mut fetch: impl FnMut(u64) -> Result<LightBlock>,
) -> Result<(LightBlock, Vec<LightBlock>)> {
    let mut cache: HashMap<u64, LightBlock> = HashMap::new();
    let mut trusted = root.clone();
    let mut path = Vec::new();
    let mut goal = target;
    while trusted.height() < target {
        let candidate = match cache.remove(&goal) {
            Some(b) => b,
            None => fetch(goal).with_context(|| format!("fetching the light block at {goal}"))?,
        };
        match verify::verify(&trusted, &candidate, options, now) {
            Verdict::Success => {
                path.push(candidate.clone());
                trusted = candidate;
                goal = target;
            }
            Verdict::NotEnoughTrust { .. } => {
                let from = trusted.height();
                cache.insert(goal, candidate);
                goal = from + (goal - from) / 2;
            }
            Verdict::Invalid(e) => bail!("{e}"),
        }
    }
    Ok((trusted, path))
}

/// One line of `basalt light`'s output.
pub fn report(lb: &LightBlock, via: &[u64]) -> Value {
    json!({
        "height": lb.height().to_string(),
        "hash": lb.header.hash().to_hex(),
        "time": basalt_rpc::shapes::rfc3339(lb.header.time),
        "app_hash": lb.header.app_hash.to_hex(),
        "validators_hash": lb.header.validators_hash.to_hex(),
        "verified_via": via.iter().map(u64::to_string).collect::<Vec<_>>(),
    })
}

/// `basalt light`: verify up to the primary's tip, print it, and with `follow` keep
/// verifying each new tip.
pub fn run(mut client: LightClient, follow: bool) -> Result<()> {
    let trusted = client.latest()?;
    println!("{}", json!({"trusted": report(&trusted, &[])}));
    loop {
        let tip = match fetch::latest_height(&client.primary) {
            Ok(tip) => tip,
            // Following, an unreachable primary is waited for; a header that does not
            // verify, or a fork, still stops the client.
            Err(e) if follow => {
                tracing::warn!("the primary did not answer: {e:#}");
                std::thread::sleep(std::time::Duration::from_secs(1));
                continue;
            }
            Err(e) => return Err(e),
        };
        if tip > client.latest()?.height() {
            let (lb, via) = client.verify_to(tip)?;
            println!("{}", json!({"verified": report(&lb, &via)}));
        }
        if !follow {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}
