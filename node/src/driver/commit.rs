//! Applying a decided block, from consensus or from block sync alike: execute, store (one
//! atomic batch), reset the WAL, update the mempool and the evidence pool.

use super::{Committed, Driver, Effect, Fatal};
use basalt_types::{Block, Commit};

impl Driver {
    /// Executes and stores a decided block. `synced`: it came from block sync with its
    /// transaction signatures already checked (`Some(true)`), and the caller flushes the
    /// store and resets the WAL once per batch.
    pub(super) fn commit_block(
        &mut self,
        block: Block,
        commit: Commit,
        round: u32,
        synced: Option<bool>,
    ) -> Result<(), Fatal> {
        let height = block.header.height.0;
        let trusted = synced == Some(true) || self.mempool.all_verified(&block.txs);
        let applied = self
            .chain
            .execute(&block, commit.clone(), trusted)
            .map_err(|source| Fatal::Chain {
                context: format!("executing block {height}"),
                source,
            })?;
        self.chain
            .store_applied(&self.store, &block, &commit, &applied, synced.is_none())?;
        if synced.is_none() {
            self.wal.reset()?;
        }
        self.mempool.update(&self.chain.runtime, &block.txs);
        for (ev, result) in block.evidence.iter().zip(&applied.result.evidence_results) {
            let basalt_types::Evidence::DuplicateVote(d) = ev;
            match result {
                Ok(o) => tracing::warn!(
                    height,
                    validator = %d.vote_a.vote.validator,
                    operator = ?o.operator,
                    infraction_height = %d.vote_a.vote.height,
                    burned = %o.burned(),
                    "committed evidence: validator slashed, jailed and tombstoned"
                ),
                Err(e) => tracing::warn!(height, "committed evidence rejected by the runtime: {e}"),
            }
        }
        let chain = &self.chain;
        self.evidence
            .update(&self.store, &block.evidence, |ev| chain.check_evidence(ev))?;
        let now = self.now.mono_ms;
        let interval_ms = self.last_commit_ms.map_or(0, |t| now.saturating_sub(t));
        self.last_commit_ms = Some(now);
        self.last_progress_ms = now;
        tracing::info!(
            height,
            txs = block.txs.len(),
            failed = applied.failed_txs(),
            round,
            interval_ms,
            hash = %block.header.hash(),
            proposer = %block.header.proposer_address,
            "committed block"
        );
        self.out.push(Effect::Committed(Box::new(Committed {
            block,
            applied,
            round,
            interval_ms,
            synced: synced.is_some(),
        })));
        Ok(())
    }
}
