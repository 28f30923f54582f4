//! Catching up: status polls, block sync (ranges with read-ahead, commits checked,
//! signatures batched, one flush per range), catch-up of a stuck height, evidence
//! re-requests, and the answers this node gives its peers.

use super::{Driver, Fatal, STUCK_AFTER_MS};
use crate::wire::{self, ConsensusMsg, SyncRequest, SyncResponse, MAX_BLOCKS_PER_REPLY};
use basalt_p2p::PeerId;
use basalt_types::{Block, Commit};

impl Driver {
    /// The answer to a peer's request. A store that fails to read is this node's problem,
    /// not the peer's: the peer is told so and the node goes on.
    pub(super) fn answer(&mut self, from: PeerId, data: &[u8]) -> SyncResponse {
        let request = match wire::decode::<SyncRequest>(data) {
            Ok(r) => r,
            Err(e) => {
                self.penalise(from, "malformed sync request".into());
                return SyncResponse::Refused(format!("malformed request: {e}"));
            }
        };
        match self.read_answer(request) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(peer = %from, "cannot answer a sync request: {e}");
                SyncResponse::Refused("the node could not read its store".into())
            }
        }
    }

    fn read_answer(&self, r: SyncRequest) -> Result<SyncResponse, crate::store::StoreError> {
        Ok(match r {
            SyncRequest::Status => SyncResponse::Status {
                last_height: self.last_height(),
                earliest_height: self.store.earliest_height()?.unwrap_or(1),
            },
            SyncRequest::Blocks { from, count } => {
                let mut out = Vec::new();
                let mut bytes = 0usize;
                for h in from..from.saturating_add(u64::from(count.min(MAX_BLOCKS_PER_REPLY))) {
                    let (Some(b), Some(c)) = (self.store.block(h)?, self.store.commit(h)?) else {
                        break;
                    };
                    bytes += b.txs.iter().map(Vec::len).sum::<usize>() + 1024;
                    out.push((b, c));
                    if bytes > 16 * 1024 * 1024 {
                        break;
                    }
                }
                SyncResponse::Blocks(out)
            }
            SyncRequest::Catchup { height } => {
                let mut msgs = Vec::new();
                if height == self.engine.height().0 {
                    for p in self.engine.proposals() {
                        if let Some(block) = self.blocks.get(&p.proposal.block_id) {
                            msgs.push(ConsensusMsg::Proposal {
                                proposal: p.clone(),
                                block: Box::new(block.clone()),
                            });
                        }
                    }
                    msgs.extend(
                        self.engine
                            .votes()
                            .all_votes()
                            .cloned()
                            .map(ConsensusMsg::Vote),
                    );
                }
                SyncResponse::Catchup(msgs)
            }
            SyncRequest::Evidence => SyncResponse::Evidence(self.evidence.all().cloned().collect()),
            SyncRequest::Snapshots
            | SyncRequest::SnapshotMeta { .. }
            | SyncRequest::Chunk { .. } => {
                SyncResponse::Refused("this node serves no state snapshots".into())
            }
        })
    }

    pub(super) fn on_tick(&mut self) {
        self.ticks += 1;
        let peers: Vec<PeerId> = self.peers.keys().copied().collect();
        for p in &peers {
            self.request(*p, SyncRequest::Status);
            // Evidence whose gossip a peer missed (it was down, or partitioned) comes back
            // this way every few seconds.
            if self.ticks.is_multiple_of(6) {
                self.request(*p, SyncRequest::Evidence);
            }
        }
        let best = self.peers.values().copied().max().unwrap_or(0);
        let next = self.chain.next_height();
        self.catching_up = best >= next + 2;
        let stuck = self.now.mono_ms.saturating_sub(self.last_progress_ms) > STUCK_AFTER_MS;
        if stuck && self.engine.height().0 == next {
            for p in peers {
                self.request(p, SyncRequest::Catchup { height: next });
            }
            self.last_progress_ms = self.now.mono_ms;
        }
    }

    fn request_blocks(&mut self, peer: PeerId, from: u64, target: u64) {
        self.sync_in_flight = true;
        let count = (target - from + 1).min(u64::from(MAX_BLOCKS_PER_REPLY)) as u32;
        self.request(peer, SyncRequest::Blocks { from, count });
    }

    pub(super) fn on_sync_reply(
        &mut self,
        peer: PeerId,
        response: Result<SyncResponse, String>,
    ) -> Result<(), Fatal> {
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(%peer, "sync request failed: {e}");
                self.sync_in_flight = false;
                return Ok(());
            }
        };
        match response {
            SyncResponse::Status {
                last_height,
                earliest_height,
            } => {
                if let Some(h) = self.peers.get_mut(&peer) {
                    *h = last_height;
                }
                let next = self.chain.next_height();
                // A peer that pruned the next height cannot serve it: another one will.
                if last_height >= next && earliest_height <= next && !self.sync_in_flight {
                    self.request_blocks(peer, next, last_height);
                }
            }
            SyncResponse::Blocks(blocks) => {
                self.sync_in_flight = false;
                // Read ahead: ask for the next range before executing this one, so the
                // peer serves it while we work.
                let target = self.peers.get(&peer).copied().unwrap_or(0);
                if blocks.is_empty() {
                    tracing::debug!(%peer, "a sync reply without blocks (pruned meanwhile?)");
                }
                if let Some((last, _)) = blocks.last() {
                    let from = last.header.height.0 + 1;
                    if target >= from && from > self.chain.next_height() {
                        self.request_blocks(peer, from, target);
                    }
                }
                self.apply_synced(peer, blocks)?;
            }
            SyncResponse::Catchup(msgs) => {
                for m in msgs {
                    if m.height() == self.chain.next_height() && self.check_consensus(&m).is_ok() {
                        self.on_consensus(m)?;
                    }
                }
            }
            SyncResponse::Evidence(list) => {
                for ev in list.into_iter().take(100) {
                    self.admit_evidence(ev)?;
                }
            }
            SyncResponse::Refused(reason) => tracing::debug!(%peer, "sync refused: {reason}"),
            SyncResponse::Snapshots(_) | SyncResponse::SnapshotMeta(_) | SyncResponse::Chunk(_) => {
                self.penalise(peer, "a state sync reply to a block sync request".into());
            }
        }
        Ok(())
    }

    fn apply_synced(&mut self, peer: PeerId, blocks: Vec<(Block, Commit)>) -> Result<(), Fatal> {
        let target = self.peers.get(&peer).copied().unwrap_or(0);
        let mut applied = 0u64;
        for (block, commit) in blocks {
            let height = block.header.height.0;
            if height < self.chain.next_height() {
                continue;
            }
            if height > self.chain.next_height() {
                // A read-ahead reply past a batch that stopped early: ask again later.
                break;
            }
            if let Err(e) = self.chain.check_synced(&block, &commit) {
                tracing::warn!(%peer, height, "invalid synced block: {e}");
                self.penalise(peer, format!("invalid block {height}: {e}"));
                break;
            }
            let round = commit.round.0;
            // Every signature of the block at once, in batches over all cores; a block with
            // a bad one is executed with per-transaction checks (the bad ones fail there).
            let sigs_ok = crate::sigcheck::all_valid(&block.txs);
            self.commit_block(block, commit, round, Some(sigs_ok))?;
            applied += 1;
        }
        if applied == 0 {
            return Ok(());
        }
        // One durable write for the whole batch; then the WAL of the heights left behind goes.
        self.store.flush()?;
        self.wal.reset()?;
        let next = self.chain.next_height();
        let now = self.now.mono_ms;
        let (started, base) = *self.sync_progress.get_or_insert((now, next - applied));
        let secs = (now.saturating_sub(started) as f64 / 1000.0).max(1e-3);
        let rate = (next - base) as f64 / secs;
        let remaining = target.saturating_sub(next - 1);
        if remaining == 0
            || self
                .sync_logged_ms
                .is_none_or(|t| now.saturating_sub(t) >= 1000)
        {
            self.sync_logged_ms = Some(now);
            tracing::info!(
                height = next - 1,
                target,
                blocks_per_s = format!("{rate:.1}"),
                eta_s = format!("{:.0}", remaining as f64 / rate.max(1e-3)),
                "block sync"
            );
        }
        if remaining == 0 {
            self.sync_progress = None;
            self.sync_logged_ms = None;
        }
        // Join consensus at the new height; messages we got for it meanwhile are buffered.
        self.start_height(next)?;
        // Ask for more at once when the peer is further ahead.
        if target >= next && !self.sync_in_flight {
            self.request_blocks(peer, next, target);
        }
        Ok(())
    }
}
