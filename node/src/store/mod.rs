//! The node's durable chain: blocks, their commits, execution results, the transaction
//! index and evidence, one key space with a one-byte prefix per kind, in sled on disk (or
//! in [`crate::kv::MemKv`] under the simulator: the same layout code either way).
//!
//! A decided block and everything derived from it go to disk in one atomic batch followed by
//! one flush: one durable write per block, never one per transaction, and never a block
//! without its results (or the reverse) after a crash. The block with its results and the
//! state's undo record are appended to segment files first (see [`crate::segments`]), and
//! so are the Merkle tree's new buckets and nodes ([`tree_log`]); the batch records where
//! they are.

mod cache;
mod index_runs;
mod prune;
mod seglog;
mod snapshot;
mod state;
mod tree_log;

pub use snapshot::{RestoredBase, StatePage};
pub use state::Overrides;
pub use state::{ChainMeta, StoredState};

use crate::kv::{Entries, Kv, KvBatch, KvError, MemKv, SledKv};
use basalt_runtime::StateChanges;
use basalt_staking::ValidatorSet;
use basalt_types::{Block, Commit, Hash};
use borsh::{BorshDeserialize, BorshSerialize};
use std::collections::BTreeMap;
use std::path::Path;

/// `B height` → [`BlockAt`]: where the block and its results are.
const BLOCK: u8 = b'B';
const COMMIT: u8 = b'C';
const TX: u8 = b'T';
const EVIDENCE: u8 = b'E';
const META: u8 = b'M';
const VALSET: u8 = b'V';
const INDEX: u8 = b'I';
const BLOCK_BY_ID: u8 = b'H';
/// `F height` → the block's own events (`finalize_block_events`: slashes), only for blocks
/// that have some.
const BLOCK_EVENTS: u8 = b'F';

/// Bytes of latest state kept in memory in front of sled (accounts, Merkle buckets and
/// nodes): all of it for 100,000 accounts, the recently used part for more. 64 MiB kept
/// validators of a 1,000,000-account chain at 337–351 MiB under load; a miss costs one
/// sled read.
const STATE_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// sled's own page cache. 16 MiB since the tree's buckets left sled: the first start of a
/// 1,000,000-account chain peaked ~40 MiB lower than with 32 MiB and the saturated
/// throughput did not drop (docs/performance.md).
const SLED_CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// The layout this node reads and writes. 1: the layout before the version was recorded
/// (state rebuilt by replaying blocks); 2: versioned state in the store, its history and
/// the blocks in sled; 3: the history, blocks and results in segment files beside sled;
/// 4: the Merkle tree's values in a compacted log of segment files, their locations in sled;
/// 5: the transaction index in sorted runs of segment files (`store::index_runs`);
/// 6: votes, proposals and commits as CometBFT lays them out (timestamped votes signed over
/// the canonical sign bytes, one commit entry per validator in set order).
pub const FORMAT_VERSION: u32 = 6;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open { path: String, source: sled::Error },
    #[error("database: {0}")]
    Db(#[from] KvError),
    #[error("database record {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error(
        "the data directory has store format {found}, this node reads format {expected}: {advice}"
    )]
    Format {
        found: u32,
        expected: u32,
        advice: &'static str,
    },
    #[error("height {height} is not available, lowest height is {earliest}")]
    Pruned { height: u64, earliest: u64 },
    #[error("the data directory belongs to chain {found:?} (genesis {found_hash}), not to {expected:?} (genesis {expected_hash}); use a fresh --home for this chain")]
    OtherChain {
        found: String,
        found_hash: String,
        expected: String,
        expected_hash: String,
    },
}

/// What one transaction of a block produced. Kept with the block's results, so that
/// `block_results` answers whether or not transactions are indexed.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TxOutcome {
    pub code: u32,
    pub log: String,
    /// `(type, [(key, value)])` pairs, CometBFT-style events.
    pub events: Events,
}

/// CometBFT-style events as stored, a transaction's or a block's own: `(type, [(key, value)])`.
pub type Events = Vec<(String, Vec<(String, String)>)>;

/// A `T` record of the index: where a committed transaction is. The transaction and its
/// outcome are read from the block and its results rather than stored a second time (a
/// full record per transaction made sled write ~30 times the bytes).
#[derive(Clone, Copy, Debug, BorshSerialize, BorshDeserialize)]
struct TxLocation {
    height: u64,
    index: u32,
}

/// One executed transaction, as `tx` and the tx index return it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TxRecord {
    pub height: u64,
    pub index: u32,
    pub code: u32,
    pub log: String,
    /// `(type, [(key, value)])` pairs, CometBFT-style events.
    pub events: Vec<(String, Vec<(String, String)>)>,
    pub tx: Vec<u8>,
}

impl TxRecord {
    /// The `index`-th transaction `tx` of block `height`, with its outcome.
    pub fn new(height: u64, index: u32, tx: &[u8], outcome: &TxOutcome) -> TxRecord {
        TxRecord {
            height,
            index,
            code: outcome.code,
            log: outcome.log.clone(),
            events: outcome.events.clone(),
            tx: tx.to_vec(),
        }
    }

    /// The composite `type.key = value` attributes a transaction is searched by, with
    /// `tx.hash` and `tx.height`.
    pub fn attributes(&self, hash: &Hash) -> Vec<(String, String)> {
        let mut out = vec![
            ("tx.hash".to_string(), hash.to_hex()),
            ("tx.height".to_string(), self.height.to_string()),
        ];
        out.extend(event_attributes(&self.events));
        out
    }
}

/// The composite `type.key = value` attributes of events (a transaction's, a block's).
pub fn event_attributes(
    events: &[(String, Vec<(String, String)>)],
) -> impl Iterator<Item = (String, String)> + '_ {
    events.iter().flat_map(|(kind, attrs)| {
        attrs
            .iter()
            .map(move |(k, v)| (format!("{kind}.{k}"), v.clone()))
    })
}

/// `I key 0 value 0 height` → the hashes of that block's transactions with the attribute,
/// in block order: transactions by attribute, in chain order.
fn index_prefix(k: &str, v: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(k.len() + v.len() + 3);
    out.push(INDEX);
    out.extend_from_slice(k.as_bytes());
    out.push(0);
    out.extend_from_slice(v.as_bytes());
    out.push(0);
    out
}

fn index_key(k: &str, v: &str, height: u64) -> Vec<u8> {
    let mut out = index_prefix(k, v);
    out.extend_from_slice(&height.to_be_bytes());
    out
}

/// The height an [`index_key`] ends with.
fn index_key_height(key: &[u8]) -> Option<u64> {
    key.len()
        .checked_sub(8)
        .and_then(|at| key[at..].try_into().ok())
        .map(u64::from_be_bytes)
}

/// What executing a block produced, kept for `block_results` and `last_results_hash`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BlockResults {
    pub height: u64,
    /// One per transaction of the block, in block order.
    pub txs: Vec<TxOutcome>,
    pub app_hash: Hash,
    /// Validator set changes decided by the block: (consensus key bytes, new power).
    pub validator_updates: Vec<([u8; 32], u64)>,
}

impl BlockResults {
    /// The header field `last_results_hash` of the next block.
    pub fn hash(&self) -> Hash {
        Hash::of(&self.txs.iter().map(|t| t.code).collect::<Vec<u32>>())
    }
}

/// A decided block and everything derived from it, stored together.
pub struct Decided<'a> {
    pub block: &'a Block,
    pub commit: &'a Commit,
    pub results: &'a BlockResults,
    /// The runtime's writes for the block ([`basalt_runtime::Runtime::take_changes`]).
    pub state: &'a StateChanges,
    pub meta: &'a ChainMeta,
    /// The block's own events (`finalize_block_events`).
    pub events: &'a [(String, Vec<(String, String)>)],
}

#[derive(Clone)]
pub struct Store {
    db: std::sync::Arc<dyn Kv>,
    /// The latest state's recently used keys (shared by the clones of this store).
    cache: std::sync::Arc<cache::StateCache>,
    /// Whether committed transactions are indexed for `tx` and `tx_search` (CometBFT's
    /// `tx_index.indexer = "kv"`). Off (`"null"`), a block costs a handful of writes instead
    /// of two or more per transaction: what a validator that serves no queries wants.
    index_txs: bool,
    /// Tree log segments emptied by applied batches, deleted after the next flush.
    tree_garbage: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
    /// The transaction index's runs.
    index_runs: std::sync::Arc<index_runs::RunSet>,
}

/// Where a block is in the blocks' segments: its bytes, then its results'.
#[derive(Clone, Copy, Debug, BorshSerialize, BorshDeserialize)]
struct BlockAt {
    at: seglog::RecordAt,
    block_len: u32,
}

fn key(prefix: u8, height: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = prefix;
    k[1..].copy_from_slice(&height.to_be_bytes());
    k
}

fn prefixed(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + rest.len());
    k.push(prefix);
    k.extend_from_slice(rest);
    k
}

fn decode<T: BorshDeserialize>(k: &[u8], v: &[u8]) -> Result<T, StoreError> {
    borsh::from_slice(v).map_err(|e| StoreError::Corrupt {
        key: hex::encode(k),
        reason: e.to_string(),
    })
}

fn enc<T: BorshSerialize>(v: &T) -> Vec<u8> {
    borsh::to_vec(v).expect("borsh into a Vec is infallible")
}

/// Adds a block's transaction locations and index entries to `entries`.
fn index_block(entries: &mut Vec<(Vec<u8>, Vec<u8>)>, block: &Block, results: &BlockResults) {
    let h = block.header.height.0;
    // One index entry per (attribute, value) per block, listing the block's matching
    // transactions: a block of transfers to one recipient writes one recipient entry, not
    // one per transfer. `tx.hash` and `tx.height` need no entries: the locations and the
    // blocks answer them.
    let mut index: BTreeMap<(String, String), Vec<u8>> = BTreeMap::new();
    for (i, (tx, outcome)) in block.txs.iter().zip(&results.txs).enumerate() {
        let hash = basalt_runtime::tx_hash(tx);
        let at = TxLocation {
            height: h,
            index: i as u32,
        };
        entries.push((prefixed(TX, hash.as_bytes()), enc(&at)));
        for (k, v) in event_attributes(&outcome.events) {
            let hashes = index.entry((k, v)).or_default();
            if !hashes.ends_with(hash.as_bytes()) {
                hashes.extend_from_slice(hash.as_bytes());
            }
        }
    }
    for ((k, v), hashes) in index {
        entries.push((index_key(&k, &v, h), hashes));
    }
}

impl Store {
    /// Opens (creating if needed) the store in `dir`. sled locks its files; a store dropped
    /// a moment ago in this process keeps the lock until its flusher thread ends (up to
    /// half a second), so a held lock is retried for 2 s before it is reported: then another
    /// process is using this data directory.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let started = std::time::Instant::now();
        loop {
            match sled::Config::new()
                .path(dir)
                .cache_capacity(SLED_CACHE_BYTES)
                .open()
            {
                Ok(db) => {
                    let kv = SledKv::new(db, dir.to_path_buf()).map_err(StoreError::Db)?;
                    return Ok(Store::on(std::sync::Arc::new(kv)));
                }
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && started.elapsed() < std::time::Duration::from_secs(2) =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(source) => {
                    return Err(StoreError::Open {
                        path: dir.display().to_string(),
                        source,
                    })
                }
            }
        }
    }

    /// A store over any key space (memory for the simulator and tests).
    pub fn on(db: std::sync::Arc<dyn Kv>) -> Store {
        Store {
            db,
            cache: std::sync::Arc::new(cache::StateCache::new(STATE_CACHE_BYTES)),
            index_txs: true,
            tree_garbage: std::sync::Arc::default(),
            index_runs: std::sync::Arc::default(),
        }
    }

    /// A store in memory, sharing `kv` (see [`MemKv::crash`]).
    pub fn in_memory(kv: &MemKv) -> Store {
        Store::on(std::sync::Arc::new(kv.clone()))
    }

    /// This store without the transaction index: blocks are stored without `T` and `I`
    /// records, and [`Store::indexes_txs`] says so to the RPC.
    pub fn without_tx_index(self) -> Store {
        Store {
            index_txs: false,
            ..self
        }
    }

    /// Whether `tx`, `tx_search` and their index are available.
    pub fn indexes_txs(&self) -> bool {
        self.index_txs
    }

    /// Binds the database to one chain and to this node's layout ([`FORMAT_VERSION`]) on
    /// first use, and refuses any other chain or layout afterwards.
    pub fn check_chain(&self, chain_id: &str, genesis_hash: &Hash) -> Result<(), StoreError> {
        self.check_format()?;
        let k = prefixed(META, b"chain");
        let want = enc(&(chain_id.to_string(), *genesis_hash));
        match self.db.get(&k)? {
            None => {
                let mut b = KvBatch::default();
                b.insert(k, want);
                self.db.apply(b)?;
                self.db.flush()?;
                Ok(())
            }
            Some(v) if v == want => Ok(()),
            Some(v) => {
                let (found, found_hash): (String, Hash) = decode(&k, &v)?;
                Err(StoreError::OtherChain {
                    found,
                    found_hash: found_hash.to_string(),
                    expected: chain_id.to_string(),
                    expected_hash: genesis_hash.to_string(),
                })
            }
        }
    }

    /// Refuses a data directory written in another layout; records ours in a new one.
    fn check_format(&self) -> Result<(), StoreError> {
        let k = prefixed(META, b"format");
        let found = match self.db.get(&k)? {
            Some(v) => decode::<u32>(&k, &v)?,
            None if self.db.last_key(&[])?.is_none() => {
                let mut b = KvBatch::default();
                b.insert(k, enc(&FORMAT_VERSION));
                self.db.apply(b)?;
                self.db.flush()?;
                return Ok(());
            }
            None => 1,
        };
        if found == FORMAT_VERSION {
            return Ok(());
        }
        Err(StoreError::Format {
            found,
            expected: FORMAT_VERSION,
            advice: if found < FORMAT_VERSION {
                "it was written by an older basalt; move the home's data/ directory away (keep priv_validator_state.json) and start again: the node syncs the chain from its peers"
            } else {
                "it was written by a newer basalt; run that version"
            },
        })
    }

    /// The highest stored height, if any block is stored.
    pub fn last_height(&self) -> Result<Option<u64>, StoreError> {
        let last = self.db.last_key(&[BLOCK])?;
        Ok(last.map(|k| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&k[1..9]);
            u64::from_be_bytes(b)
        }))
    }

    fn get<T: BorshDeserialize>(&self, k: &[u8]) -> Result<Option<T>, StoreError> {
        match self.db.get(k)? {
            None => Ok(None),
            Some(v) => decode(k, &v).map(Some),
        }
    }

    fn block_at(&self, height: u64) -> Result<Option<BlockAt>, StoreError> {
        self.get(&key(BLOCK, height))
    }

    /// `part` of the block record of `height` (its block, its results or both), with where
    /// the record is; `None` for a height not stored, or pruned while this read ran (its
    /// segment may be gone).
    fn block_part(
        &self,
        height: u64,
        part: impl Fn(&BlockAt) -> (u32, u32),
    ) -> Result<Option<(BlockAt, Vec<u8>)>, StoreError> {
        let Some(b) = self.block_at(height)? else {
            return Ok(None);
        };
        let (from, len) = part(&b);
        match seglog::BLOCKS.read(self, &b.at, from, len) {
            Ok(bytes) => Ok(Some((b, bytes))),
            Err(_) if self.earliest_height()?.is_some_and(|e| height < e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn block(&self, height: u64) -> Result<Option<Block>, StoreError> {
        let bytes = self.block_part(height, |b| (0, b.block_len))?;
        bytes
            .map(|(_, b)| decode(&key(BLOCK, height), &b))
            .transpose()
    }

    pub fn commit(&self, height: u64) -> Result<Option<Commit>, StoreError> {
        self.get(&key(COMMIT, height))
    }

    /// The block's own events (`finalize_block_events`); none for most blocks.
    pub fn block_events(&self, height: u64) -> Result<Events, StoreError> {
        Ok(self.get(&key(BLOCK_EVENTS, height))?.unwrap_or_default())
    }

    /// The heights in `from..=to` whose blocks have events of their own, with them (they
    /// are few: one per slash, so all of them are read).
    pub fn blocks_with_events(&self, from: u64, to: u64) -> Result<Vec<(u64, Events)>, StoreError> {
        let mut out = Vec::new();
        for (k, v) in self.db.scan_prefix(&[BLOCK_EVENTS])? {
            let Some(h) = k
                .get(1..9)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
            else {
                continue;
            };
            if (from..=to).contains(&h) {
                out.push((h, decode(&k, &v)?));
            }
        }
        Ok(out)
    }

    pub fn results(&self, height: u64) -> Result<Option<BlockResults>, StoreError> {
        let bytes = self.block_part(height, |b| {
            (b.block_len, b.at.len.saturating_sub(b.block_len))
        })?;
        bytes
            .map(|(_, b)| decode(&key(BLOCK, height), &b))
            .transpose()
    }

    /// The block of `height` and its results, from one read of their record (for callers
    /// that need both: the indexer, pruning, transaction records, the start).
    pub fn block_with_results(
        &self,
        height: u64,
    ) -> Result<Option<(Block, BlockResults)>, StoreError> {
        let Some((at, bytes)) = self.block_part(height, |b| (0, b.at.len))? else {
            return Ok(None);
        };
        let k = key(BLOCK, height);
        let (block, results) = bytes.split_at((at.block_len as usize).min(bytes.len()));
        Ok(Some((decode(&k, block)?, decode(&k, results)?)))
    }

    pub fn tx(&self, hash: &Hash) -> Result<Option<TxRecord>, StoreError> {
        Ok(self.txs(&[*hash])?.pop().map(|(_, r)| r))
    }

    /// The indexed transactions among `hashes`, in the given order (unknown ones left out,
    /// and so are those of pruned blocks: the indexer may write an entry for a block the
    /// pruner is deleting at the same moment).
    pub fn txs(&self, hashes: &[Hash]) -> Result<Vec<(Hash, TxRecord)>, StoreError> {
        let earliest = self.earliest_height()?.unwrap_or(0);
        let mut located = Vec::with_capacity(hashes.len());
        for hash in hashes {
            let k = prefixed(TX, hash.as_bytes());
            if let Some(v) = self.index_get(&k)? {
                let at: TxLocation = decode(&k, &v)?;
                if at.height >= earliest {
                    located.push((*hash, at));
                }
            }
        }
        self.records(located)
    }

    /// Full records of located transactions; consecutive ones of one height read its block
    /// and results once.
    fn records(
        &self,
        located: Vec<(Hash, TxLocation)>,
    ) -> Result<Vec<(Hash, TxRecord)>, StoreError> {
        let corrupt = |at: TxLocation| StoreError::Corrupt {
            key: format!("tx index entry at height {} index {}", at.height, at.index),
            reason: "its block or results are missing or too short".into(),
        };
        let mut out = Vec::with_capacity(located.len());
        let mut current: Option<(u64, Block, BlockResults)> = None;
        for (hash, at) in located {
            if current.as_ref().map(|c| c.0) != Some(at.height) {
                let (block, results) = self
                    .block_with_results(at.height)?
                    .ok_or_else(|| corrupt(at))?;
                current = Some((at.height, block, results));
            }
            let record = current.as_ref().and_then(|(_, block, results)| {
                let i = at.index as usize;
                Some(TxRecord::new(
                    at.height,
                    at.index,
                    block.txs.get(i)?,
                    results.txs.get(i)?,
                ))
            });
            out.push((hash, record.ok_or_else(|| corrupt(at))?));
        }
        Ok(out)
    }

    /// Height of the block with this id.
    /// The height of the block whose header hashes to `hash`.
    pub fn height_of(&self, hash: &Hash) -> Result<Option<u64>, StoreError> {
        self.get(&prefixed(BLOCK_BY_ID, hash.as_bytes()))
    }

    /// The validator set that decides `height` (kept for every height, for the RPC).
    pub fn validator_set(&self, height: u64) -> Result<Option<ValidatorSet>, StoreError> {
        self.get(&key(VALSET, height))
    }

    /// Records the set of `height` (at start, for the two heights the schedule knows).
    pub fn save_validator_set(&self, height: u64, set: &ValidatorSet) -> Result<(), StoreError> {
        let mut b = KvBatch::default();
        b.insert(key(VALSET, height), enc(set));
        self.db.apply(b)?;
        Ok(())
    }

    /// Stores a decided block with its commit, results, transaction index entries, the
    /// state it produced and the validator set it scheduled for two heights later, in one
    /// atomic batch, then flushes once.
    pub fn save_block(&self, d: &Decided) -> Result<(), StoreError> {
        self.save_block_unflushed(d)?;
        self.flush()
    }

    /// [`Store::save_block`] without the flush: the batch is atomic, and sled writes are
    /// prefix-consistent, so a crash loses a suffix of such blocks, never a middle one. For
    /// blocks that can be fetched again (block sync, generated chains); call
    /// [`Store::flush`] before anything is signed on top of them.
    pub fn save_block_unflushed(&self, d: &Decided) -> Result<(), StoreError> {
        let (block, commit, results) = (d.block, d.commit, d.results);
        let h = block.header.height.0;
        let mut batch = KvBatch::default();
        let emptied = self.put_state(&mut batch, h, d.state, d.meta, false)?;
        batch.insert(key(VALSET, h + 2), enc(&d.meta.schedule.next));
        self.put_block(&mut batch, block, commit, results)?;
        if !d.events.is_empty() {
            batch.insert(key(BLOCK_EVENTS, h), enc(&d.events));
        }
        self.db.apply(batch)?;
        self.tree_segment_emptied(emptied);
        self.cache.write_through(d.state);
        Ok(())
    }

    /// Appends a block and its results to the blocks' segments and adds to `batch` where
    /// they are, the block's id and its commit.
    fn put_block(
        &self,
        batch: &mut KvBatch,
        block: &Block,
        commit: &Commit,
        results: &BlockResults,
    ) -> Result<(), StoreError> {
        let h = block.header.height.0;
        let mut record = enc(block);
        let block_len = record.len() as u32;
        record.extend_from_slice(&enc(results));
        let at = seglog::BLOCKS.append(self, batch, h, &record)?;
        batch.insert(key(BLOCK, h), enc(&BlockAt { at, block_len }));
        batch.insert(
            prefixed(BLOCK_BY_ID, block.header.hash().as_bytes()),
            enc(&h),
        );
        batch.insert(key(COMMIT, h), enc(commit));
        Ok(())
    }

    /// MiB held per kind of record (by key prefix), for benchmarks and operators.
    pub fn usage_mib(&self) -> Result<BTreeMap<String, f64>, StoreError> {
        let name = |b: u8| match b {
            BLOCK => "block locations",
            COMMIT => "commits",
            index_runs::RUN => "tx index",
            BLOCK_BY_ID => "block ids",
            VALSET => "validator sets",
            state::LATEST => "state (latest)",
            state::UNDO => "state history",
            _ => "other",
        };
        let mut out = BTreeMap::new();
        for (b, (_, bytes)) in self.db.usage()? {
            *out.entry(name(b).to_string()).or_insert(0.0) += bytes as f64 / 1048576.0;
        }
        for (log, what) in [
            (&seglog::HISTORY, "state history"),
            (&seglog::BLOCKS, "blocks and results"),
            (&seglog::TREE, "state tree"),
        ] {
            *out.entry(what.to_string()).or_insert(0.0) += log.bytes(self)? as f64 / 1048576.0;
        }
        *out.entry("tx index".to_string()).or_insert(0.0) += self.index_bytes()? as f64 / 1048576.0;
        Ok(out)
    }

    /// The last height the transaction index covers (0 before any).
    pub fn indexed_height(&self) -> Result<u64, StoreError> {
        Ok(self.get(&prefixed(META, b"indexed"))?.unwrap_or(0))
    }

    /// Indexes the stored blocks after [`Store::indexed_height`], at most `max_blocks` of
    /// them (fewer once they hold [`index_runs::NEW_RUN_ENTRIES`] entries) as one new run
    /// recorded with the new progress height (pruned ones are skipped); or, first, does a
    /// due step of the index's upkeep ([`Store::maintain_index`]). Returns the
    /// indexed height when it did something, `None` when there was nothing to do. The
    /// commit path never indexes: this runs on the indexer's own thread.
    pub fn index_next(&self, max_blocks: u64) -> Result<Option<u64>, StoreError> {
        if self.maintain_index()? {
            return Ok(Some(self.indexed_height()?));
        }
        self.index_new_blocks(max_blocks)
    }

    /// [`Store::index_next`] without the upkeep (the indexer runs that on its own thread,
    /// so that a long merge does not hold up new blocks).
    pub fn index_new_blocks(&self, max_blocks: u64) -> Result<Option<u64>, StoreError> {
        let done = self.indexed_height()?;
        let Some(last) = self.last_height()? else {
            return Ok(None);
        };
        let from = (done + 1).max(self.earliest_height()?.unwrap_or(1));
        if from > last {
            return Ok(None);
        }
        let mut to = from;
        let mut entries = Vec::new();
        for h in from..=last.min(from + max_blocks.max(1) - 1) {
            if let Some((block, results)) = self.block_with_results(h)? {
                index_block(&mut entries, &block, &results);
            }
            to = h;
            if entries.len() >= index_runs::NEW_RUN_ENTRIES {
                break;
            }
        }
        self.write_new_run(entries, to)?;
        Ok(Some(to))
    }

    /// The index entries of the block at `height` (empty for a missing one): what the
    /// indexer writes for it (`basalt bench-index` inserts them into sled as a baseline).
    pub fn index_entries(&self, height: u64) -> Result<Entries, StoreError> {
        let mut entries = Vec::new();
        if let Some((block, results)) = self.block_with_results(height)? {
            index_block(&mut entries, &block, &results);
        }
        Ok(entries)
    }

    /// Makes the segment files agree with the key space after a crash (see
    /// [`seglog::SegLog::recover`]) and deletes the segments pruning left behind. Run at
    /// every start, before anything is read.
    pub fn recover_segments(&self) -> Result<(), StoreError> {
        seglog::HISTORY.recover(self)?;
        seglog::BLOCKS.recover(self)?;
        self.recover_tree()?;
        self.recover_index()?;
        let pruned = self.earliest_state()?;
        if pruned > 0 {
            seglog::HISTORY.remove_through(self, pruned)?;
        }
        if let Some(earliest) = self.earliest_height()? {
            seglog::BLOCKS.remove_through(self, earliest.saturating_sub(1))?;
        }
        Ok(())
    }

    /// Writes everything to disk (graceful shutdown; blocks are flushed as they are saved).
    pub fn flush(&self) -> Result<(), StoreError> {
        let garbage = self.take_tree_garbage();
        self.db.flush()?;
        self.drop_tree_garbage(garbage)?;
        Ok(())
    }

    /// Hashes of the transactions with attribute `k` equal to `v`, in chain order.
    pub fn txs_with(&self, k: &str, v: &str) -> Result<Vec<Hash>, StoreError> {
        match k {
            "tx.hash" => {
                let Ok(Ok(bytes)) = hex::decode(v).map(<[u8; 32]>::try_from) else {
                    return Ok(Vec::new());
                };
                let hash = Hash(bytes);
                return Ok(self.tx(&hash)?.map(|_| hash).into_iter().collect());
            }
            "tx.height" => {
                let Ok(height) = v.parse::<u64>() else {
                    return Ok(Vec::new());
                };
                return Ok(self
                    .block(height)?
                    .map(|b| b.txs.iter().map(|t| basalt_runtime::tx_hash(t)).collect())
                    .unwrap_or_default());
            }
            _ => {}
        }
        let earliest = self.earliest_height()?.unwrap_or(0);
        let mut out = Vec::new();
        for (key, hashes) in self.index_scan(&index_prefix(k, v), true)? {
            if index_key_height(&key).is_some_and(|h| h < earliest) {
                continue;
            }
            if !hashes.len().is_multiple_of(32) {
                return Err(StoreError::Corrupt {
                    key: format!("tx index {k}={v}"),
                    reason: "not a list of 32-byte hashes".into(),
                });
            }
            for c in hashes.chunks_exact(32) {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                out.push(Hash(h));
            }
        }
        Ok(out)
    }

    /// Every indexed transaction (for queries with no equality condition), in chain order.
    pub fn all_txs(&self) -> Result<Vec<(Hash, TxRecord)>, StoreError> {
        self.txs(&self.all_tx_hashes()?)
    }

    /// The hashes of every indexed transaction, in chain order (no block is read).
    pub fn all_tx_hashes(&self) -> Result<Vec<Hash>, StoreError> {
        let earliest = self.earliest_height()?.unwrap_or(0);
        let mut all = Vec::new();
        for (k, v) in self.index_scan(&[TX], false)? {
            let at: TxLocation = decode(&k, &v)?;
            if at.height < earliest {
                continue;
            }
            let mut h = [0u8; 32];
            h.copy_from_slice(&k[1..33]);
            all.push((Hash(h), at));
        }
        all.sort_by_key(|(_, at)| (at.height, at.index));
        Ok(all.into_iter().map(|(h, _)| h).collect())
    }

    /// Keeps a piece of evidence (keyed by its hash) for the evidence pool.
    pub fn save_evidence(&self, ev: &basalt_types::Evidence) -> Result<(), StoreError> {
        let mut b = KvBatch::default();
        b.insert(prefixed(EVIDENCE, Hash::of(ev).as_bytes()), enc(ev));
        self.db.apply(b)?;
        Ok(())
    }

    pub fn remove_evidence(&self, hash: &Hash) -> Result<(), StoreError> {
        let mut b = KvBatch::default();
        b.remove(prefixed(EVIDENCE, hash.as_bytes()));
        self.db.apply(b)?;
        Ok(())
    }

    pub fn evidence(&self) -> Result<Vec<basalt_types::Evidence>, StoreError> {
        self.db
            .scan_prefix(&[EVIDENCE])?
            .into_iter()
            .map(|(k, v)| decode(&k, &v))
            .collect()
    }
}

#[cfg(test)]
mod tests;
