//! What the node accepts from gossip and from clients, each check written once: consensus
//! messages (decoded, signed by a member of the set of their height, within a window of
//! heights), transactions (the mempool's admission, signatures batched), evidence (the
//! staking state's verdict).

use super::{Driver, Fatal};
use crate::evidence_pool::PoolError;
use crate::wire::{self, ConsensusMsg, TxBatch};
use basalt_p2p::{Topic, Verdict};
use basalt_staking::{EvidenceRejection, ValidatorSet};
use basalt_types::Hash;

/// What became of a piece of evidence.
pub(crate) enum EvidenceOutcome {
    New,
    Known,
    /// Not valid now: forged, stale, already punished, or the pool is full.
    Refused(PoolError),
}

/// Least time between two status rounds prompted by messages from heights ahead.
const AHEAD_STATUS_MS: u64 = 100;
/// How far ahead a dropped message's height is remembered for catch-up on arrival.
const MAX_DROPPED_AHEAD: u64 = 64;

impl Driver {
    /// The validator set that signs messages of `height`, if this node knows it.
    fn set_for(&self, height: u64) -> Option<&ValidatorSet> {
        let next = self.chain.next_height();
        if height == next {
            Some(&self.chain.schedule.current)
        } else if height == next + 1 {
            Some(&self.chain.schedule.next)
        } else if height + 1 == next {
            self.chain.last_set.as_ref()
        } else {
            None
        }
    }

    /// Signature and membership checks that decide whether a message may be forwarded. The
    /// signature goes through the driver's verifier, which the engine shares: the engine's
    /// own check of the same signature is then a memo hit, not a second verification.
    pub(super) fn check_consensus(&self, m: &ConsensusMsg) -> Result<(), String> {
        let Some(set) = self.set_for(m.height()) else {
            return Err("height outside the window".into());
        };
        let chain_id = self.chain.chain_id();
        match m {
            ConsensusMsg::Proposal { proposal, block } => {
                let v = set
                    .get(&proposal.proposal.proposer)
                    .ok_or("proposer is not a validator")?;
                let bytes = proposal.sign_bytes(chain_id);
                if !self
                    .verifier
                    .verify(&v.public_key, &bytes, &proposal.signature)
                {
                    return Err("bad proposal signature".into());
                }
                if block.id() != proposal.proposal.block_id {
                    return Err("block does not match the proposal".into());
                }
            }
            ConsensusMsg::Vote(vote) => {
                let v = set
                    .get(&vote.vote.validator)
                    .ok_or("voter is not a validator")?;
                let bytes = vote.sign_bytes(chain_id);
                if !self.verifier.verify(&v.public_key, &bytes, &vote.signature) {
                    return Err("bad vote signature".into());
                }
            }
        }
        Ok(())
    }

    pub(super) fn on_consensus_gossip(&mut self, data: &[u8]) -> Result<Verdict, Fatal> {
        let Ok(m) = wire::decode::<ConsensusMsg>(data) else {
            return Ok(Verdict::Reject);
        };
        let next = self.chain.next_height();
        if m.height() > next + 1 {
            self.behind(m.height());
            return Ok(Verdict::Ignore);
        }
        if m.height() + 1 < next {
            return Ok(Verdict::Ignore);
        }
        if let Err(e) = self.check_consensus(&m) {
            tracing::debug!("consensus message refused: {e}");
            return Ok(Verdict::Reject);
        }
        self.on_consensus(m)?;
        Ok(Verdict::Accept)
    }

    /// A consensus message of `height`, two or more heights ahead, was dropped: this node is
    /// behind. It asks its peers' status now (at most every [`AHEAD_STATUS_MS`]), so block
    /// sync starts without waiting for the next tick, and remembers the height, to fetch
    /// its messages as soon as it gets there.
    fn behind(&mut self, height: u64) {
        // Unverified (no set to check it against yet): a height far ahead is not kept, so a
        // peer's made-up height cannot make this node ask for catch-up at every height; such
        // heights come by block sync anyway.
        if height <= self.chain.next_height() + MAX_DROPPED_AHEAD {
            self.dropped_ahead = self.dropped_ahead.max(height);
        }
        let now = self.now.mono_ms;
        if self.sync_in_flight
            || self
                .ahead_status_ms
                .is_some_and(|t| now.saturating_sub(t) < AHEAD_STATUS_MS)
        {
            return;
        }
        self.ahead_status_ms = Some(now);
        let peers: Vec<_> = self.peers.keys().copied().collect();
        for p in peers {
            self.request(p, crate::wire::SyncRequest::Status);
        }
    }

    pub(super) fn on_tx_gossip(&mut self, data: &[u8]) -> Verdict {
        let Ok(TxBatch(txs)) = wire::decode::<TxBatch>(data) else {
            return Verdict::Reject;
        };
        let mut any_bad = false;
        // The batch's signatures at once (batched, over the cores); only a batch holding a
        // bad one is checked transaction by transaction.
        let checked = crate::sigcheck::all_valid(&txs);
        for tx in txs {
            let (r, _) = self.mempool.add(&self.chain.runtime, tx, checked);
            // Malformed, oversized, wrong chain or bad signature: no honest node sends these.
            any_bad |= matches!(r.code, 1..=4);
        }
        self.wake_waiting_height();
        if any_bad {
            Verdict::Reject
        } else {
            Verdict::Accept
        }
    }

    pub(super) fn on_evidence_gossip(&mut self, data: &[u8]) -> Result<Verdict, Fatal> {
        let Ok(ev) = wire::decode::<basalt_types::Evidence>(data) else {
            return Ok(Verdict::Reject);
        };
        Ok(match self.evidence_outcome(ev)? {
            EvidenceOutcome::New => Verdict::Accept,
            // Forged evidence (bad signatures, same block twice, a made-up member of the
            // set) is an attack; stale or already-punished evidence is just late.
            EvidenceOutcome::Refused(PoolError::Rejected(
                EvidenceRejection::Invalid(_) | EvidenceRejection::NotInSet(_),
            )) => Verdict::Reject,
            EvidenceOutcome::Known | EvidenceOutcome::Refused(_) => Verdict::Ignore,
        })
    }

    /// Checks evidence once (against the staking state of its height) and keeps it.
    pub(super) fn evidence_outcome(
        &mut self,
        ev: basalt_types::Evidence,
    ) -> Result<EvidenceOutcome, Fatal> {
        let chain = &self.chain;
        match self
            .evidence
            .add(&self.store, ev, |e| chain.check_evidence(e))
        {
            Ok(true) => Ok(EvidenceOutcome::New),
            Ok(false) => Ok(EvidenceOutcome::Known),
            Err(PoolError::Store(e)) => Err(e.into()),
            Err(e) => {
                tracing::debug!("evidence not kept: {e}");
                Ok(EvidenceOutcome::Refused(e))
            }
        }
    }

    /// Checks and keeps evidence; whether it is new and valid.
    pub(super) fn admit_evidence(&mut self, ev: basalt_types::Evidence) -> Result<bool, Fatal> {
        Ok(matches!(self.evidence_outcome(ev)?, EvidenceOutcome::New))
    }

    /// Keeps and gossips evidence from a client: whether it was new, or why it was refused.
    pub(super) fn submit_evidence(
        &mut self,
        ev: basalt_types::Evidence,
    ) -> Result<Result<bool, String>, Fatal> {
        Ok(match self.evidence_outcome(ev.clone())? {
            EvidenceOutcome::New => {
                self.publish(Topic::Evidence, wire::encode(&ev));
                Ok(true)
            }
            EvidenceOutcome::Known => Ok(false),
            EvidenceOutcome::Refused(e) => Err(e.to_string()),
        })
    }

    /// Admits a transaction from a client and queues it for gossip; `verified`: the hash
    /// whose signature the RPC task already checked (anything else is checked here).
    pub(super) fn submit_tx(
        &mut self,
        tx: Vec<u8>,
        verified: Option<Hash>,
    ) -> (basalt_runtime::TxResult, Hash) {
        let checked = verified.is_some_and(|h| h == basalt_runtime::tx_hash(&tx));
        let (r, hash) = self.mempool.add(&self.chain.runtime, tx.clone(), checked);
        if r.is_ok() {
            self.tx_outbox.push(tx);
            self.wake_waiting_height();
        }
        (r, hash)
    }

    pub(super) fn flush_txs(&mut self) {
        if self.tx_outbox.is_empty() {
            return;
        }
        let batch = TxBatch(std::mem::take(&mut self.tx_outbox));
        self.publish(Topic::Txs, wire::encode(&batch));
    }
}
