//! Feeding the engine and carrying out its outputs: which inputs reach the WAL (every
//! accepted input of the current height; own signed messages fsynced before they leave),
//! replay after a restart, future-height buffering and the proposal's value.

use super::{Driver, Effect, Fatal, Timer, MAX_FUTURE};
use crate::wal_record::{kind_code, kind_of, WalRecord};
use crate::wire::ConsensusMsg;
use basalt_consensus::{Input, Output};
use basalt_p2p::Topic;
use basalt_types::{BlockId, Height, Timestamp};
use std::collections::VecDeque;
use std::time::Duration;

impl Driver {
    /// Starts the next height, replaying what the WAL holds for it (a restart mid-height).
    pub(super) fn resume(&mut self, records: Vec<WalRecord>) -> Result<(), Fatal> {
        let next = self.chain.next_height();
        let records: Vec<WalRecord> = records
            .into_iter()
            .filter(|r| r.height().0 == next)
            .collect();
        if records.is_empty() {
            return self.start_height(next);
        }
        tracing::info!(
            height = next,
            records = records.len(),
            "replaying the consensus WAL"
        );
        let mut outputs = self
            .engine
            .handle(Input::NewHeight {
                height: Height(next),
                validators: self.chain.validators().clone(),
            })
            .unwrap_or_default();
        for r in &records {
            let inputs = match r {
                WalRecord::Proposal { proposal, block } => {
                    let block_id = block.id();
                    self.blocks.insert(block_id, (**block).clone());
                    let valid = self.chain.check_proposal(block).is_ok();
                    vec![
                        Input::Proposal(proposal.clone()),
                        Input::ProposalValidity {
                            height: proposal.proposal.height,
                            block_id,
                            valid,
                        },
                    ]
                }
                WalRecord::Vote(v) => vec![Input::Vote(v.clone())],
                WalRecord::Timeout {
                    height,
                    round,
                    kind,
                } => kind_of(*kind)
                    .map(|kind| Input::TimeoutElapsed {
                        height: *height,
                        round: *round,
                        kind,
                    })
                    .into_iter()
                    .collect(),
            };
            for i in inputs {
                if let Ok(o) = self.engine.handle(i) {
                    outputs.extend(o);
                }
            }
            // Own messages go out again: peers may have missed them before the crash.
            match r {
                WalRecord::Proposal { proposal, block }
                    if Some(proposal.proposal.proposer) == self.me =>
                {
                    let msg = ConsensusMsg::Proposal {
                        proposal: proposal.clone(),
                        block: block.clone(),
                    };
                    self.publish_consensus(&msg);
                }
                WalRecord::Vote(v) if Some(v.vote.validator) == self.me => {
                    self.publish_consensus(&ConsensusMsg::Vote(v.clone()));
                }
                _ => {}
            }
        }
        let mut work = VecDeque::new();
        for o in outputs {
            self.execute(o, &mut work)?;
        }
        self.drain(work)
    }

    pub(super) fn start_height(&mut self, height: u64) -> Result<(), Fatal> {
        if height != self.chain.next_height() || self.engine.height().0 >= height {
            return Ok(());
        }
        if !self.create_empty_blocks
            && self.mempool.is_empty()
            && !self.future.iter().any(|m| m.height() == height)
        {
            self.waiting_start = Some(height);
            return Ok(());
        }
        self.waiting_start = None;
        self.add_late_precommits();
        self.blocks.clear();
        self.last_progress_ms = self.now.mono_ms;
        self.feed(Input::NewHeight {
            height: Height(height),
            validators: self.chain.validators().clone(),
        })?;
        let (ready, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.future)
            .into_iter()
            .partition(|m| m.height() == height);
        self.future = later.into_iter().filter(|m| m.height() > height).collect();
        for m in ready {
            self.on_consensus(m)?;
        }
        if self.dropped_ahead >= height {
            // Messages of this height reached the node while it was two heights behind and
            // were dropped: ask for them now.
            let peers: Vec<_> = self.peers.keys().copied().collect();
            for p in peers {
                self.request(p, crate::wire::SyncRequest::Catchup { height });
            }
        }
        Ok(())
    }

    /// Precommits for the decided block that arrived during the pause before the next
    /// height (`timeout_commit`) join its commit, which this node puts in its next block if
    /// it proposes: CometBFT's last commit is the vote set as the next height starts, so a
    /// validator whose precommit came a moment late is not counted as missing the block
    /// (downtime jailing counts those). The commit stored with the block keeps what decided it.
    fn add_late_precommits(&mut self) {
        let (Some(commit), Some(set)) = (self.chain.last_commit.as_mut(), self.engine.validators())
        else {
            return;
        };
        if self.engine.height() != commit.height {
            return;
        }
        for v in self
            .engine
            .votes()
            .precommits_for(commit.round, commit.block_id)
        {
            let slot = set
                .index_of(&v.vote.validator)
                .and_then(|i| commit.signatures.get_mut(i));
            if let Some(slot @ None) = slot {
                *slot = Some(basalt_types::CommitSig {
                    validator: v.vote.validator,
                    timestamp: v.timestamp,
                    signature: v.signature,
                });
            }
        }
    }

    /// A height held back for want of transactions (`create_empty_blocks = false`) starts
    /// once the mempool has some.
    pub(super) fn wake_waiting_height(&mut self) {
        if let Some(h) = self.waiting_start.filter(|_| !self.mempool.is_empty()) {
            self.out.push(Effect::Schedule {
                after: Duration::ZERO,
                timer: Timer::StartHeight(h),
            });
        }
    }

    /// Feeds one input and carries out everything that follows from it.
    pub(super) fn feed(&mut self, input: Input) -> Result<(), Fatal> {
        self.drain(VecDeque::from([input]))
    }

    fn drain(&mut self, mut work: VecDeque<Input>) -> Result<(), Fatal> {
        while let Some(input) = work.pop_front() {
            let record = self.wal_record(&input);
            match self.engine.handle(input) {
                Ok(outputs) => {
                    if let Some(r) = record {
                        self.wal.append(&r, false)?;
                    }
                    for o in outputs {
                        self.execute(o, &mut work)?;
                    }
                }
                Err(e) => tracing::trace!("input refused: {e}"),
            }
        }
        Ok(())
    }

    /// The WAL record for an input from elsewhere (own signed messages are written, durably,
    /// when they are signed). Late votes of the previous height only feed equivocation
    /// detection and are not recorded.
    fn wal_record(&self, input: &Input) -> Option<WalRecord> {
        match input {
            Input::Proposal(p) if Some(p.proposal.proposer) != self.me => {
                let block = self.blocks.get(&p.proposal.block_id)?.clone();
                Some(WalRecord::Proposal {
                    proposal: p.clone(),
                    block: Box::new(block),
                })
            }
            Input::Vote(v)
                if Some(v.vote.validator) != self.me && v.vote.height == self.engine.height() =>
            {
                Some(WalRecord::Vote(v.clone()))
            }
            Input::TimeoutElapsed {
                height,
                round,
                kind,
            } => Some(WalRecord::Timeout {
                height: *height,
                round: *round,
                kind: kind_code(*kind),
            }),
            _ => None,
        }
    }

    /// The timestamp of our vote: the wall clock, but for a block at least one millisecond
    /// after the block's own time (CometBFT's `voteTime`), so that the next block's time, the
    /// median of these precommits' timestamps, moves forward even when clocks lag.
    fn vote_time(&self, block_id: Option<&BlockId>) -> Timestamp {
        let now = self.now.wall;
        match block_id.and_then(|id| self.blocks.get(id)) {
            Some(block) => now.max(block.header.time.plus_millis(1)),
            None => now,
        }
    }

    fn execute(&mut self, output: Output, work: &mut VecDeque<Input>) -> Result<(), Fatal> {
        match output {
            Output::Propose(p) => {
                let Some(block) = self.blocks.get(&p.block_id).cloned() else {
                    return Ok(());
                };
                let Some(signer) = self.signer.as_mut() else {
                    return Ok(());
                };
                let signed = match signer.sign_proposal(p, self.now.wall) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("not signing the proposal: {e}");
                        return Ok(());
                    }
                };
                let record = WalRecord::Proposal {
                    proposal: signed.clone(),
                    block: Box::new(block.clone()),
                };
                self.wal.append(&record, true)?;
                // The block was found under the id the proposal names.
                let (height, block_id) = (signed.proposal.height, signed.proposal.block_id);
                #[cfg(feature = "byzantine")]
                self.misbehave_propose(&signed, &block);
                self.publish_consensus(&ConsensusMsg::Proposal {
                    proposal: signed.clone(),
                    block: Box::new(block),
                });
                work.push_back(Input::Proposal(signed));
                work.push_back(Input::ProposalValidity {
                    height,
                    block_id,
                    valid: true,
                });
            }
            Output::Vote(v) => {
                let timestamp = self.vote_time(v.block_id.as_ref());
                let Some(signer) = self.signer.as_mut() else {
                    return Ok(());
                };
                let signed = match signer.sign_vote(v, timestamp) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("not signing the vote: {e}");
                        return Ok(());
                    }
                };
                self.wal.append(&WalRecord::Vote(signed.clone()), true)?;
                self.publish_consensus(&ConsensusMsg::Vote(signed.clone()));
                #[cfg(feature = "byzantine")]
                self.misbehave_vote(&signed);
                work.push_back(Input::Vote(signed));
            }
            Output::ScheduleTimeout {
                height,
                round,
                kind,
                after,
            } => self.schedule(
                after,
                Timer::Timeout {
                    height,
                    round,
                    kind,
                },
            ),
            Output::RequestValue { height, round } => {
                // After a restart the WAL may already hold our proposal for this round.
                let already = self
                    .engine
                    .proposals()
                    .any(|p| p.proposal.round == round && Some(p.proposal.proposer) == self.me);
                let Some(me) = self.me else {
                    return Ok(());
                };
                if already || height.0 != self.chain.next_height() {
                    return Ok(());
                }
                let limits = &self.chain.genesis.consensus_params.block;
                let txs = self
                    .mempool
                    .reap(limits.max_txs as usize, limits.max_bytes as usize);
                let max_evidence = self.chain.genesis.consensus_params.evidence.max_bytes as usize;
                let chain = &self.chain;
                let evidence = self
                    .evidence
                    .for_block(max_evidence, |ev| chain.check_evidence(ev));
                let block = self.chain.build_block(me, txs, evidence);
                let block_id = block.id();
                self.blocks.insert(block_id, block);
                work.push_back(Input::ValueReady {
                    height,
                    round,
                    block_id,
                });
            }
            Output::Decide {
                height,
                round,
                proposal,
                commit,
            } => {
                let Some(block) = self.blocks.get(&proposal.proposal.block_id).cloned() else {
                    tracing::error!(%height, "decided a block this node does not have");
                    return Ok(());
                };
                self.commit_block(block, commit, round.0, None)?;
                // With transactions waiting, the next height starts at once: the pause is for
                // an idle chain (DESIGN.md §3 keeps the app hash one block behind, so
                // nothing here waits on the state).
                let pause = if self.mempool.is_empty() {
                    self.timeout_commit
                } else {
                    Duration::ZERO
                };
                self.schedule(pause, Timer::StartHeight(height.0 + 1));
            }
            Output::Evidence(ev) => {
                tracing::warn!(
                    validator = %ev.vote_a.vote.validator,
                    height = %ev.vote_a.vote.height,
                    round = %ev.vote_a.vote.round,
                    kind = ?ev.vote_a.vote.vote_type,
                    "equivocation detected"
                );
                let ev = basalt_types::Evidence::DuplicateVote(ev);
                if self.admit_evidence(ev.clone())? {
                    self.publish(Topic::Evidence, crate::wire::encode(&ev));
                }
            }
        }
        Ok(())
    }

    /// A checked consensus message: into the engine now, or kept for the next height.
    pub(super) fn on_consensus(&mut self, m: ConsensusMsg) -> Result<(), Fatal> {
        let height = m.height();
        if height > self.engine.height().0 && height >= self.chain.next_height() {
            if self.future.len() < MAX_FUTURE {
                self.future.push(m);
            }
            if self.waiting_start == Some(height) {
                self.start_height(height)?;
            }
            return Ok(());
        }
        match m {
            ConsensusMsg::Proposal { proposal, block } => {
                if height != self.engine.height().0 {
                    return Ok(());
                }
                // `check_consensus` found the block to be the one the proposal names, so its
                // id (a whole encoding of the block) is not computed again.
                let block_id = proposal.proposal.block_id;
                let valid = match self.chain.check_proposal(&block) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(height, "invalid proposed block: {e}");
                        false
                    }
                };
                self.blocks.insert(block_id, *block);
                let mut work = VecDeque::new();
                work.push_back(Input::Proposal(proposal));
                work.push_back(Input::ProposalValidity {
                    height: Height(height),
                    block_id,
                    valid,
                });
                self.drain(work)
            }
            // Votes for later heights were buffered above; anything else the engine refuses
            // (old heights, duplicates) changes nothing.
            ConsensusMsg::Vote(v) => self.feed(Input::Vote(v)),
        }
    }
}
