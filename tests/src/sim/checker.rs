//! The properties checked after every step of a run, and the violations they report.

use basalt_consensus::signer::SignStep;
use basalt_types::{Address, BlockId, DuplicateVoteEvidence, Height, PublicKey, Round, VoteType};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// A broken property, with enough detail to start debugging from the replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// Two honest validators decided different blocks at one height.
    Agreement {
        height: u64,
        first: (usize, BlockId),
        second: (usize, BlockId),
    },
    /// A decided block was never proposed, or is not a valid block.
    Validity {
        node: usize,
        height: u64,
        block: BlockId,
        reason: &'static str,
    },
    /// An honest validator signed two different messages for one height/round/step.
    HonestDoubleSign {
        node: usize,
        height: u64,
        round: u32,
        step: SignStep,
    },
    /// Evidence that does not verify, or that accuses an honest validator.
    BadEvidence {
        reporter: usize,
        accused: Address,
        reason: String,
    },
    /// A Byzantine validator equivocated and no honest validator produced evidence of it.
    /// `at`: the first (height, round) it equivocated at.
    Unaccountable { node: usize, at: (u64, u32) },
    /// Two honest nodes computed different app hashes after the same height.
    AppHash {
        height: u64,
        first: usize,
        second: usize,
    },
    /// A node's driver stopped with a fatal error (its disk, or diverged state).
    NodeStopped { node: usize, reason: String },
    /// A transaction was committed in two blocks.
    TxTwice { hash: basalt_types::Hash },
    /// A transaction a node admitted vanished: never committed, in no mempool, and the node
    /// that admitted it never crashed.
    TxLost { hash: basalt_types::Hash },
    /// The light client refused a committed header (adjacent to the one before).
    LightClient { height: u64, verdict: String },
    /// Honest validators did not reach the target height in time after the network healed.
    Liveness {
        target: u64,
        heights: Vec<(usize, u64)>,
        deadline_ms: u64,
        /// Honest voting power and the total, in the latest set an honest node holds.
        honest_power: Option<(u64, u64)>,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Agreement { height, first, second } => write!(
                f,
                "agreement: at height {height} node {} decided {} but node {} decided {}",
                first.0, first.1, second.0, second.1
            ),
            Violation::Validity { node, height, block, reason } => {
                write!(f, "validity: node {node} decided {block} at height {height}: {reason}")
            }
            Violation::HonestDoubleSign { node, height, round, step } => write!(
                f,
                "double sign: honest node {node} signed two different messages at {height}/{round}/{step:?}"
            ),
            Violation::BadEvidence { reporter, accused, reason } => {
                write!(f, "bad evidence: node {reporter} accused {accused}: {reason}")
            }
            Violation::Unaccountable { node, at } => {
                write!(f, "accountability: Byzantine node {node} equivocated (first at height {}, round {}) but was never caught", at.0, at.1)
            }
            Violation::AppHash { height, first, second } => write!(
                f,
                "app hash: after height {height} nodes {first} and {second} hold different states"
            ),
            Violation::NodeStopped { node, reason } => {
                write!(f, "node {node} stopped: {reason}")
            }
            Violation::TxTwice { hash } => write!(f, "transaction {hash} committed twice"),
            Violation::LightClient { height, verdict } => {
                write!(f, "light client: the committed header {height} was refused: {verdict}")
            }
            Violation::TxLost { hash } => write!(
                f,
                "transaction {hash} was admitted but never committed and is in no mempool"
            ),
            Violation::Liveness {
                target,
                heights,
                deadline_ms,
                honest_power,
            } => {
                write!(
                    f,
                    "liveness: honest validators did not all reach height {target} by {deadline_ms} ms: {heights:?}"
                )?;
                match honest_power {
                    Some((honest, total)) if honest.saturating_mul(3) <= total.saturating_mul(2) => write!(
                        f,
                        " (honest validators hold {honest} of {total} voting power, no quorum: the run left the fault bound it tolerates)"
                    ),
                    Some((honest, total)) => write!(f, " (honest power {honest} of {total})"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Collects what the run did and reports violations as they happen.
pub struct Checker {
    honest: Vec<bool>,
    keys: Vec<PublicKey>,
    by_address: HashMap<Address, usize>,
    pub violations: Vec<Violation>,
    decisions: HashMap<u64, (usize, BlockId)>,
    proposed: HashSet<BlockId>,
    honest_signed: HashMap<(usize, u64, u32, SignStep), Vec<u8>>,
    byzantine_votes: BTreeMap<(usize, u64, u32, VoteType), HashSet<Option<BlockId>>>,
    caught: HashSet<usize>,
    /// Evidence already verified (many honest nodes report the same canonical evidence).
    verified_evidence: HashSet<basalt_types::Hash>,
    pub decided_height: Vec<u64>,
}

impl Checker {
    pub fn new(honest: Vec<bool>, keys: Vec<PublicKey>) -> Self {
        let by_address = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.address(), i))
            .collect();
        let n = honest.len();
        Checker {
            honest,
            keys,
            by_address,
            violations: Vec::new(),
            decisions: HashMap::new(),
            proposed: HashSet::new(),
            honest_signed: HashMap::new(),
            byzantine_votes: BTreeMap::new(),
            caught: HashSet::new(),
            verified_evidence: HashSet::new(),
            decided_height: vec![0; n],
        }
    }

    fn report(&mut self, v: Violation) {
        if !self.violations.contains(&v) {
            self.violations.push(v);
        }
    }

    /// A signed proposal went onto the wire (from anyone).
    pub fn proposed(&mut self, block: BlockId) {
        self.proposed.insert(block);
    }

    /// An honest validator's signature went onto the wire.
    pub fn honest_signed(
        &mut self,
        node: usize,
        height: Height,
        round: Round,
        step: SignStep,
        bytes: &[u8],
    ) {
        let key = (node, height.0, round.0, step);
        match self.honest_signed.get(&key) {
            Some(prev) if prev.as_slice() != bytes => self.report(Violation::HonestDoubleSign {
                node,
                height: height.0,
                round: round.0,
                step,
            }),
            Some(_) => {}
            None => {
                self.honest_signed.insert(key, bytes.to_vec());
            }
        }
    }

    /// A Byzantine validator's vote went onto the wire.
    pub fn byzantine_vote(
        &mut self,
        node: usize,
        height: Height,
        round: Round,
        t: VoteType,
        block: Option<BlockId>,
    ) {
        self.byzantine_votes
            .entry((node, height.0, round.0, t))
            .or_default()
            .insert(block);
    }

    /// An honest node decided `block` (valid according to the node's block store).
    pub fn decided(&mut self, node: usize, height: Height, block: BlockId, valid: bool) {
        if let Some(&(first_node, first_block)) = self.decisions.get(&height.0) {
            if first_block != block {
                self.report(Violation::Agreement {
                    height: height.0,
                    first: (first_node, first_block),
                    second: (node, block),
                });
            }
        } else {
            self.decisions.insert(height.0, (node, block));
        }
        if !self.proposed.contains(&block) {
            self.report(Violation::Validity {
                node,
                height: height.0,
                block,
                reason: "never proposed",
            });
        } else if !valid {
            self.report(Violation::Validity {
                node,
                height: height.0,
                block,
                reason: "not a valid block",
            });
        }
        let h = &mut self.decided_height[node];
        *h = (*h).max(height.0);
    }

    /// An honest node's engine reported evidence.
    pub fn evidence(&mut self, reporter: usize, ev: &DuplicateVoteEvidence) {
        let accused = ev.vote_a.vote.validator;
        let Some(&node) = self.by_address.get(&accused) else {
            self.report(Violation::BadEvidence {
                reporter,
                accused,
                reason: "not a validator".into(),
            });
            return;
        };
        let id = basalt_types::Hash::of(ev);
        if self.verified_evidence.contains(&id) {
            return;
        }
        if let Err(e) = ev.verify(crate::sim::world::CHAIN_ID, &self.keys[node]) {
            self.report(Violation::BadEvidence {
                reporter,
                accused,
                reason: e.to_string(),
            });
        } else if self.honest[node] {
            self.report(Violation::BadEvidence {
                reporter,
                accused,
                reason: "accuses an honest validator".into(),
            });
        } else {
            self.caught.insert(node);
            self.verified_evidence.insert(id);
        }
    }

    pub fn app_hash_differs(&mut self, height: u64, first: usize, second: usize) {
        self.report(Violation::AppHash {
            height,
            first,
            second,
        });
    }

    /// A node's driver stopped; for an honest node that is a violation.
    pub fn node_stopped(&mut self, node: usize, reason: String) {
        if self.honest[node] {
            self.report(Violation::NodeStopped { node, reason });
        }
    }

    pub fn light_client_refused(&mut self, height: u64, verdict: String) {
        self.report(Violation::LightClient { height, verdict });
    }

    pub fn tx_twice(&mut self, hash: basalt_types::Hash) {
        self.report(Violation::TxTwice { hash });
    }

    pub fn tx_lost(&mut self, hash: basalt_types::Hash) {
        self.report(Violation::TxLost { hash });
    }

    /// End-of-run checks: every equivocator caught.
    pub fn finish(&mut self) {
        let equivocators: HashSet<usize> = self
            .byzantine_votes
            .iter()
            .filter(|(_, v)| v.len() > 1)
            .map(|((n, ..), _)| *n)
            .collect();
        let mut missing: Vec<usize> = equivocators.difference(&self.caught).copied().collect();
        missing.sort();
        for node in missing {
            let at = self
                .byzantine_votes
                .iter()
                .find(|((n, ..), v)| *n == node && v.len() > 1)
                .map(|((_, h, r, _), _)| (*h, *r))
                .unwrap_or_default();
            self.report(Violation::Unaccountable { node, at });
        }
    }

    /// Byzantine validators that signed two different votes for one position.
    pub fn equivocators(&self) -> usize {
        let nodes: HashSet<usize> = self
            .byzantine_votes
            .iter()
            .filter(|(_, v)| v.len() > 1)
            .map(|((n, ..), _)| *n)
            .collect();
        nodes.len()
    }

    /// Validators caught with verified evidence.
    pub fn caught(&self) -> usize {
        self.caught.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_types::{Hash, PrivateKey, Vote};

    fn keys() -> Vec<PrivateKey> {
        (1..=4u8).map(|i| PrivateKey::from_seed([i; 32])).collect()
    }

    fn checker() -> (Checker, Vec<PrivateKey>) {
        let k = keys();
        (
            Checker::new(
                vec![true, true, true, false],
                k.iter().map(|k| k.public_key()).collect(),
            ),
            k,
        )
    }

    fn id(s: &str) -> BlockId {
        BlockId(Hash::digest(s.as_bytes()), Default::default())
    }

    #[test]
    fn conflicting_decisions_are_an_agreement_violation() {
        let (mut c, _) = checker();
        c.proposed(id("a"));
        c.proposed(id("b"));
        c.decided(0, Height(1), id("a"), true);
        c.decided(1, Height(1), id("a"), true);
        assert!(c.violations.is_empty());
        c.decided(2, Height(1), id("b"), true);
        assert!(matches!(
            c.violations[..],
            [Violation::Agreement { height: 1, .. }]
        ));
    }

    #[test]
    fn unproposed_or_invalid_decisions_are_validity_violations() {
        let (mut c, _) = checker();
        c.decided(0, Height(1), id("x"), true);
        c.proposed(id("y"));
        c.decided(0, Height(2), id("y"), false);
        assert_eq!(c.violations.len(), 2);
        assert!(c
            .violations
            .iter()
            .all(|v| matches!(v, Violation::Validity { .. })));
    }

    #[test]
    fn an_honest_double_sign_is_reported_but_an_identical_resign_is_not() {
        let (mut c, _) = checker();
        c.honest_signed(1, Height(3), Round(0), SignStep::Prevote, b"same");
        c.honest_signed(1, Height(3), Round(0), SignStep::Prevote, b"same");
        assert!(c.violations.is_empty());
        c.honest_signed(1, Height(3), Round(0), SignStep::Prevote, b"other");
        assert!(matches!(
            c.violations[..],
            [Violation::HonestDoubleSign { node: 1, .. }]
        ));
    }

    fn evidence_against(k: &PrivateKey) -> DuplicateVoteEvidence {
        let vote = |b: Option<BlockId>| {
            Vote {
                vote_type: VoteType::Prevote,
                height: Height(1),
                round: Round(0),
                block_id: b,
                validator: k.public_key().address(),
            }
            .sign(
                crate::sim::world::CHAIN_ID,
                basalt_types::Timestamp::default(),
                k,
            )
        };
        DuplicateVoteEvidence::new(vote(Some(id("a"))), vote(None), 1, 4)
    }

    #[test]
    fn evidence_must_verify_and_accuse_a_byzantine_validator() {
        let (mut c, k) = checker();
        c.byzantine_vote(3, Height(1), Round(0), VoteType::Prevote, Some(id("a")));
        c.byzantine_vote(3, Height(1), Round(0), VoteType::Prevote, None);
        c.finish();
        assert!(matches!(
            c.violations[..],
            [Violation::Unaccountable {
                node: 3,
                at: (1, 0)
            }]
        ));

        let (mut c, k2) = checker();
        c.byzantine_vote(3, Height(1), Round(0), VoteType::Prevote, Some(id("a")));
        c.byzantine_vote(3, Height(1), Round(0), VoteType::Prevote, None);
        c.evidence(0, &evidence_against(&k2[3]));
        c.finish();
        assert!(c.violations.is_empty());
        assert_eq!((c.equivocators(), c.caught()), (1, 1));

        let (mut c, _) = checker();
        c.evidence(0, &evidence_against(&k[1]));
        assert!(
            matches!(&c.violations[..], [Violation::BadEvidence { reason, .. }] if reason.contains("honest"))
        );

        let (mut c, _) = checker();
        let mut forged = evidence_against(&k[3]);
        forged.vote_b.signature = k[0].sign(b"forged");
        c.evidence(0, &forged);
        assert!(matches!(c.violations[..], [Violation::BadEvidence { .. }]));
    }
}
