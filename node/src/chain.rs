//! The node's view of the decided chain: the runtime state, the validator sets of the next
//! two heights, and the last block. It builds proposals, judges other proposers' blocks (the
//! paper's `valid(v)`), and applies decided blocks, from consensus or from block sync alike.

use crate::store::{BlockResults, ChainMeta, Decided, Store, StoreError, TxOutcome};
use basalt_genesis::Genesis;
use basalt_runtime::{BlockContext, BlockResult, Runtime, RuntimeError, StateError};
use basalt_staking::{CommitError, ValidatorSchedule, ValidatorSet, ValidatorSetError};
use basalt_types::{Address, Block, BlockId, Commit, Evidence, Hash, Header, Height, Timestamp};
use std::collections::BTreeSet;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("runtime: {0}")]
    Runtime(#[from] RuntimeError),
    #[error("validator set update at height {height}: {source}")]
    ValidatorSet {
        height: u64,
        source: ValidatorSetError,
    },
    #[error("stored block {height} is missing")]
    MissingBlock { height: u64 },
    #[error("the stored state is at height {state} but the last stored block is {block}: the data directory is inconsistent")]
    StateHeight { state: String, block: String },
    #[error("the stored state of height {height} has app hash {state} but the block's results say {results}: the data directory is corrupt")]
    StoredAppHash {
        height: u64,
        state: Hash,
        results: Hash,
    },
    #[error("block {height} was decided with app hash {header} but this node computed {ours}: the node's state diverged from the network's; refusing to go on (restore from a peer's snapshot or resync from genesis)")]
    AppHashMismatch {
        height: u64,
        header: Hash,
        ours: Hash,
    },
}

/// Why a block is not a valid proposal (or sync block) for the next height.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("block is for chain {0:?}")]
    ChainId(String),
    #[error("block is for height {got}, expected {expected}")]
    Height { got: u64, expected: u64 },
    #[error("header field {0} does not match this node's chain")]
    Header(&'static str),
    #[error("the body does not match the header's hashes")]
    Body,
    #[error("block time {got:?} must be the weighted median of the last commit's timestamps ({want:?}; the genesis time for the first block) and after the previous block's")]
    Time {
        got: Timestamp,
        want: Option<Timestamp>,
    },
    #[error("proposer {0} is not a validator of this height")]
    Proposer(Address),
    #[error("last commit: {0}")]
    LastCommit(String),
    #[error("block exceeds the limits ({0})")]
    TooLarge(String),
    #[error("commit does not finalise this block: {0}")]
    Commit(#[from] CommitError),
    #[error("evidence: {0}")]
    Evidence(String),
}

pub struct Chain {
    /// The genesis without its funded accounts, which live in the stored state from the
    /// first start on (a million of them is 48 MiB held for nothing). Shared with the RPC's
    /// reads.
    pub genesis: Arc<Genesis>,
    pub genesis_hash: Hash,
    pub runtime: Runtime,
    /// Sets of the next height and the one after.
    pub schedule: ValidatorSchedule,
    /// Set of the last decided height (verifies the next block's last commit).
    pub last_set: Option<ValidatorSet>,
    pub last_header: Option<Header>,
    /// The last block's id (its part-set header needs the whole block, so it is kept).
    last_block_id: Option<BlockId>,
    pub last_commit: Option<Commit>,
    pub last_results_hash: Hash,
    consensus_hash: Hash,
}

/// What applying a block produced, for logs, the mempool and the RPC.
#[derive(Debug)]
pub struct Applied {
    pub result: BlockResult,
    /// What the store keeps of it.
    pub results: BlockResults,
}

impl Applied {
    /// Transactions of the block that executed with an error code.
    pub fn failed_txs(&self) -> usize {
        self.result.tx_results.iter().filter(|r| !r.is_ok()).count()
    }
}

/// Genesis accounts per piece of the first start's state. The last piece is stored in one
/// batch with the first version, and sled holds a few KiB per write of a batch until it
/// ends: 8,192 accounts (and their ~8,000 buckets) keep that under 100 MiB.
const GENESIS_PIECE: usize = 8_192;

impl Chain {
    /// The chain as stored: the last committed state version, checked against the app hash
    /// the last block's results recorded, and the last block, its commit and results. No
    /// block is re-executed, so this costs the same at any height. A store with no state
    /// yet gets the genesis state (version `initial_height − 1`).
    pub fn load(genesis: impl Into<Arc<Genesis>>, store: &Store) -> Result<Chain, ChainError> {
        let genesis: Arc<Genesis> = genesis.into();
        let genesis_hash = genesis.hash();
        let consensus_hash = Hash::of(&genesis.consensus_params);
        store.recover_segments()?;
        let last = store.last_height()?;
        let meta = match (store.state_height()?, store.chain_meta()?) {
            (Some(state), Some(meta)) => {
                let expected = last.unwrap_or(genesis.initial_height - 1);
                if state != expected {
                    return Err(ChainError::StateHeight {
                        state: state.to_string(),
                        block: last.map_or("none".into(), |h| h.to_string()),
                    });
                }
                meta
            }
            (_, _) if last.is_some() => {
                return Err(ChainError::StateHeight {
                    state: "missing".into(),
                    block: last.map_or("none".into(), |h| h.to_string()),
                })
            }
            _ => {
                // A first start that stopped half-way left some pieces: start over.
                store.clear_partial_state()?;
                let (mut runtime, set) = Runtime::from_genesis_in_pieces(
                    &genesis,
                    Arc::new(store.latest_state()),
                    GENESIS_PIECE,
                    |piece| {
                        store
                            .save_genesis_piece(&piece)
                            .map_err(|e| StateError(e.to_string()))
                    },
                )?;
                let meta = ChainMeta {
                    schedule: ValidatorSchedule::genesis(set),
                    last_set: None,
                };
                let height = genesis.initial_height - 1;
                store.save_genesis_state(height, &runtime.take_changes(), &meta)?;
                meta
            }
        };
        let runtime = Runtime::open(&genesis, Arc::new(store.latest_state()))?;
        let mut chain = Chain {
            genesis: Arc::new(genesis.without_accounts()),
            genesis_hash,
            runtime,
            schedule: meta.schedule,
            last_set: meta.last_set,
            last_header: None,
            last_block_id: None,
            last_commit: None,
            last_results_hash: Hash::default(),
            consensus_hash,
        };
        if let Some(h) = last {
            let missing = || ChainError::MissingBlock { height: h };
            let (block, results) = store.block_with_results(h)?.ok_or_else(missing)?;
            let commit = store.commit(h)?.ok_or_else(missing)?;
            if results.app_hash != chain.runtime.app_hash() {
                return Err(ChainError::StoredAppHash {
                    height: h,
                    state: chain.runtime.app_hash(),
                    results: results.app_hash,
                });
            }
            chain.last_results_hash = results.hash();
            chain.last_block_id = Some(block.id());
            chain.last_header = Some(block.header);
            chain.last_commit = Some(commit);
        }
        Ok(chain)
    }

    /// What the store keeps of this chain beside the runtime's state.
    pub fn meta(&self) -> ChainMeta {
        ChainMeta {
            schedule: self.schedule.clone(),
            last_set: self.last_set.clone(),
        }
    }

    /// Stores the block [`Chain::execute`] just applied with everything derived from it,
    /// the runtime's state writes included, in one atomic batch; flushed when `flush`.
    /// From here on the runtime reads that state from the store.
    pub fn store_applied(
        &mut self,
        store: &Store,
        block: &Block,
        commit: &Commit,
        applied: &Applied,
        flush: bool,
    ) -> Result<(), StoreError> {
        let state = self.runtime.take_changes();
        let meta = self.meta();
        let events = stored_events(&applied.result.events);
        let decided = Decided {
            block,
            commit,
            results: &applied.results,
            state: &state,
            meta: &meta,
            events: &events,
        };
        if flush {
            store.save_block(&decided)
        } else {
            store.save_block_unflushed(&decided)
        }
    }

    pub fn chain_id(&self) -> &str {
        &self.genesis.chain_id
    }

    /// The height consensus works on.
    pub fn next_height(&self) -> u64 {
        self.runtime.height() + 1
    }

    pub fn last_block_id(&self) -> Option<BlockId> {
        self.last_block_id
    }

    pub fn validators(&self) -> &ValidatorSet {
        &self.schedule.current
    }

    /// The time the next block must carry (CometBFT's BFT time): the genesis time for the
    /// first block, else the power-weighted median of the timestamps in `last_commit`, the
    /// previous block's commit, counted in the set that signed it.
    pub fn block_time(&self, last_commit: Option<&Commit>) -> Option<Timestamp> {
        match (last_commit, &self.last_set) {
            (None, None) => Some(self.genesis.time()),
            (Some(c), Some(set)) => set.median_time(c),
            _ => None,
        }
    }

    /// A block for the next height with `txs` and `evidence`, proposed by `proposer`; its
    /// time is [`Self::block_time`] of the commit it carries.
    pub fn build_block(
        &self,
        proposer: Address,
        txs: Vec<Vec<u8>>,
        evidence: Vec<Evidence>,
    ) -> Block {
        let time = self
            .block_time(self.last_commit.as_ref())
            .unwrap_or_default();
        let header = Header {
            chain_id: self.chain_id().to_string(),
            height: Height(self.next_height()),
            time,
            last_block_id: self.last_block_id(),
            last_commit_hash: Commit::hash_of(self.last_commit.as_ref()),
            data_hash: Block::compute_data_hash(&txs),
            validators_hash: self.schedule.current.hash(),
            next_validators_hash: self.schedule.next.hash(),
            consensus_hash: self.consensus_hash,
            app_hash: self.runtime.app_hash(),
            last_results_hash: self.last_results_hash,
            evidence_hash: Block::compute_evidence_hash(&evidence),
            proposer_address: proposer,
        };
        Block {
            header,
            txs,
            evidence,
            last_commit: self.last_commit.clone(),
        }
    }

    /// Checks everything about a block for the next height that does not depend on who
    /// proposed it: chain, height, the header fields this node can compute, the body's
    /// hashes, time order, limits and the last commit.
    pub fn check_block(&self, block: &Block) -> Result<(), BlockError> {
        let h = &block.header;
        if h.chain_id != self.chain_id() {
            return Err(BlockError::ChainId(h.chain_id.clone()));
        }
        if h.height.0 != self.next_height() {
            return Err(BlockError::Height {
                got: h.height.0,
                expected: self.next_height(),
            });
        }
        let fields = [
            (h.last_block_id == self.last_block_id(), "last_block_id"),
            (
                h.validators_hash == self.schedule.current.hash(),
                "validators_hash",
            ),
            (
                h.next_validators_hash == self.schedule.next.hash(),
                "next_validators_hash",
            ),
            (h.consensus_hash == self.consensus_hash, "consensus_hash"),
            (h.app_hash == self.runtime.app_hash(), "app_hash"),
            (
                h.last_results_hash == self.last_results_hash,
                "last_results_hash",
            ),
        ];
        if let Some((_, name)) = fields.iter().find(|(ok, _)| !ok) {
            return Err(BlockError::Header(name));
        }
        if !block.body_matches_header() {
            return Err(BlockError::Body);
        }
        let want = self.block_time(block.last_commit.as_ref());
        let time_ok = want == Some(h.time)
            && self
                .last_header
                .as_ref()
                .is_none_or(|last| h.time > last.time);
        if !time_ok {
            return Err(BlockError::Time { got: h.time, want });
        }
        let limits = &self.genesis.consensus_params.block;
        if block.txs.len() as u64 > u64::from(limits.max_txs) {
            return Err(BlockError::TooLarge(format!("{} txs", block.txs.len())));
        }
        let bytes: usize = block.txs.iter().map(Vec::len).sum();
        if bytes as u64 > limits.max_bytes {
            return Err(BlockError::TooLarge(format!("{bytes} bytes of txs")));
        }
        self.check_evidence_list(&block.evidence)?;
        match (&block.last_commit, &self.last_set, self.last_block_id()) {
            (None, None, None) => Ok(()),
            (Some(c), Some(set), Some(id)) => set
                .verify_commit(self.chain_id(), Height(h.height.0 - 1), &id, c)
                .map_err(|e| BlockError::LastCommit(e.to_string())),
            _ => Err(BlockError::LastCommit("missing or unexpected".into())),
        }
    }

    /// Whether `ev` may go into the next block: it verifies against the staking state of its
    /// height, is not too old and its validator was not already punished.
    pub fn check_evidence(&self, ev: &Evidence) -> Result<(), basalt_staking::EvidenceRejection> {
        let Evidence::DuplicateVote(d) = ev;
        self.runtime
            .staking()
            .check_double_sign(self.chain_id(), d, self.next_height())
            .map(|_| ())
    }

    /// A block's evidence: each piece valid, none twice, within the size limit.
    fn check_evidence_list(&self, list: &[Evidence]) -> Result<(), BlockError> {
        let mut seen = BTreeSet::new();
        let mut bytes = 0u64;
        for ev in list {
            if !seen.insert(Hash::of(ev)) {
                return Err(BlockError::Evidence("the same evidence twice".into()));
            }
            bytes += borsh::to_vec(ev).map_or(0, |v| v.len() as u64);
            self.check_evidence(ev)
                .map_err(|e| BlockError::Evidence(e.to_string()))?;
        }
        if bytes > self.genesis.consensus_params.evidence.max_bytes {
            return Err(BlockError::Evidence(format!("{bytes} bytes of evidence")));
        }
        Ok(())
    }

    /// `valid(v)` for a proposal: [`Chain::check_block`] plus a proposer that is a member
    /// of the set, as CometBFT checks it. Not "the proposer of this round": a proposer
    /// re-proposes its `validValue` (Algorithm 1, L16), a block built by the proposer of
    /// an earlier round, and honest validators locked on it must be able to decide it; the
    /// proposal's signature (checked by the engine) is what binds a round to its proposer.
    /// Demanding the round's proposer here livelocked a height (found by `basalt-sim`).
    pub fn check_proposal(&self, block: &Block) -> Result<(), BlockError> {
        self.check_block(block)?;
        if self
            .schedule
            .current
            .get(&block.header.proposer_address)
            .is_none()
        {
            return Err(BlockError::Proposer(block.header.proposer_address));
        }
        Ok(())
    }

    /// Checks a synced block and the commit that finalises it.
    pub fn check_synced(&self, block: &Block, commit: &Commit) -> Result<(), BlockError> {
        self.check_block(block)?;
        self.schedule.current.verify_commit(
            self.chain_id(),
            block.header.height,
            &block.id(),
            commit,
        )?;
        Ok(())
    }

    /// Executes a decided block and advances the validator schedule. `trusted_sigs`: every
    /// transaction's signature was already verified by this node.
    pub fn execute(
        &mut self,
        block: &Block,
        commit: Commit,
        trusted_sigs: bool,
    ) -> Result<Applied, ChainError> {
        let height = block.header.height.0;
        if block.header.app_hash != self.runtime.app_hash() {
            return Err(ChainError::AppHashMismatch {
                height,
                header: block.header.app_hash,
                ours: self.runtime.app_hash(),
            });
        }
        let ctx = BlockContext {
            height,
            last_commit_signers: block
                .last_commit
                .iter()
                .flat_map(|c| c.signed().map(|s| s.validator))
                .collect::<BTreeSet<_>>(),
            evidence: block.evidence.clone(),
        };
        let result = if trusted_sigs {
            self.runtime.execute_block_trusted(&ctx, &block.txs)?
        } else {
            self.runtime.execute_block(&ctx, &block.txs)?
        };
        let set = self.schedule.current.clone();
        self.schedule
            .advance(&result.validator_updates)
            .map_err(|source| ChainError::ValidatorSet { height, source })?;
        self.last_set = Some(set);
        self.last_header = Some(block.header.clone());
        debug_assert_eq!(commit.block_id.hash(), block.header.hash());
        self.last_block_id = Some(commit.block_id);
        self.last_commit = Some(commit);
        let results = results_of(height, &result);
        self.last_results_hash = results.hash();
        Ok(Applied { result, results })
    }
}

/// The stored form of the runtime's events.
fn stored_events(events: &[basalt_runtime::Event]) -> crate::store::Events {
    (events.iter())
        .map(|e| (e.kind.clone(), e.attributes.clone()))
        .collect()
}

/// The stored form of a block's execution result.
fn results_of(height: u64, result: &BlockResult) -> BlockResults {
    BlockResults {
        height,
        txs: result
            .tx_results
            .iter()
            .map(|r| TxOutcome {
                code: r.code,
                log: r.log.clone(),
                events: stored_events(&r.events),
            })
            .collect(),
        app_hash: result.app_hash,
        validator_updates: result
            .validator_updates
            .iter()
            .map(|u| (u.public_key.to_bytes(), u.power))
            .collect(),
    }
}

#[cfg(test)]
mod tests;
