//! Transactions waiting for a block: bounded by count and bytes, admitted by `check_tx`
//! against the state plus the sender's pending transactions (so back-to-back transactions
//! from one key are accepted in nonce order), re-checked after every block, and reaped in
//! per-sender nonce order. A transaction whose nonce is ahead of its sender's next one (it
//! reached this node before an earlier one, as through a load-balanced endpoint or gossip)
//! waits, within [`MAX_NONCE_GAP`] and for at most [`WAIT_BLOCKS`] blocks, until the gap
//! fills. A cache of recently seen hashes keeps gossip from bringing the same transaction
//! back again and again.

use basalt_runtime::{tx_hash, Runtime, SignedTx, TxResult};
use basalt_types::{Address, Hash};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    #[error("transaction already in the mempool or recently seen")]
    Duplicate,
    #[error("mempool is full ({count} transactions, {bytes} bytes)")]
    Full { count: usize, bytes: usize },
    #[error("nonce {nonce} is {gap} ahead of the sender's next nonce {next}: at most {MAX_NONCE_GAP} ahead may wait")]
    NonceGap { nonce: u64, next: u64, gap: u64 },
}

/// A transaction waiting for its sender's earlier nonces.
struct Waiting {
    bytes: Vec<u8>,
    sender: Address,
    nonce: u64,
    /// [`Mempool::blocks`] when it arrived.
    since: u64,
}

/// Codes for mempool refusals, next to the runtime's check_tx codes (which stay below 100).
pub const CODE_DUPLICATE: u32 = 101;
pub const CODE_FULL: u32 = 102;
pub const CODE_NONCE_GAP: u32 = 103;

/// How far ahead of its sender's next nonce a transaction may be and still wait.
pub const MAX_NONCE_GAP: u64 = 16;
/// Blocks a waiting transaction is kept before it expires.
pub const WAIT_BLOCKS: u64 = 20;

struct Entry {
    bytes: Vec<u8>,
    sender: Address,
    nonce: u64,
}

pub struct Mempool {
    max_txs: usize,
    max_bytes: usize,
    bytes: usize,
    txs: HashMap<Hash, Entry>,
    /// Per sender: nonce → hash, contiguous from the account's nonce.
    by_sender: HashMap<Address, BTreeMap<u64, Hash>>,
    /// Arrival order, for fair reaping across senders.
    order: VecDeque<Hash>,
    seen: HashSet<Hash>,
    seen_order: VecDeque<Hash>,
    /// 100,000 hashes: 7 s of 13,000 tx/s, far longer than gossip takes to bring a
    /// transaction back (a committed one also fails its nonce check), in ~10 MB.
    seen_cap: usize,
    /// Hashes whose signatures this node verified (committed blocks made of them need no
    /// second verification).
    verified: HashSet<Hash>,
    /// Transactions ahead of their sender's next nonce (counted in the limits).
    waiting: HashMap<Hash, Waiting>,
    waiting_by_sender: HashMap<Address, BTreeMap<u64, Hash>>,
    /// Blocks seen ([`Mempool::update`] calls): the clock waiting transactions expire by.
    blocks: u64,
}

impl Mempool {
    pub fn new(max_txs: usize, max_bytes: usize) -> Self {
        Mempool {
            max_txs,
            max_bytes,
            bytes: 0,
            txs: HashMap::new(),
            by_sender: HashMap::new(),
            order: VecDeque::new(),
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            seen_cap: 100_000,
            verified: HashSet::new(),
            waiting: HashMap::new(),
            waiting_by_sender: HashMap::new(),
            blocks: 0,
        }
    }

    /// Transactions waiting for an earlier nonce of their sender.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    pub fn len(&self) -> usize {
        self.txs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    pub fn size_bytes(&self) -> usize {
        self.bytes
    }

    /// The nonce the sender's next transaction must carry.
    pub fn next_nonce(&self, runtime: &Runtime, sender: &Address) -> u64 {
        self.by_sender
            .get(sender)
            .and_then(|m| m.keys().next_back())
            .map_or_else(|| runtime.account(sender).nonce, |n| n + 1)
    }

    fn remember(&mut self, hash: Hash) {
        if self.seen.insert(hash) {
            self.seen_order.push_back(hash);
            while self.seen_order.len() > self.seen_cap {
                if let Some(old) = self.seen_order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
    }

    /// Whether the transaction is waiting here for a block (or for an earlier nonce).
    pub fn contains(&self, hash: &Hash) -> bool {
        self.txs.contains_key(hash) || self.waiting.contains_key(hash)
    }

    pub fn seen(&self, hash: &Hash) -> bool {
        self.seen.contains(hash)
    }

    /// `check_tx` and, when it passes, admission. Returns the result and the hash.
    /// `sig_checked`: this node has verified the signature already (in a batch, or on an RPC
    /// worker thread); everything else is checked here.
    pub fn add(
        &mut self,
        runtime: &Runtime,
        bytes: Vec<u8>,
        sig_checked: bool,
    ) -> (TxResult, Hash) {
        let hash = tx_hash(&bytes);
        if self.seen.contains(&hash) {
            return (refusal(CODE_DUPLICATE, MempoolError::Duplicate), hash);
        }
        let count = self.txs.len() + self.waiting.len();
        if count >= self.max_txs || self.bytes + bytes.len() > self.max_bytes {
            let e = MempoolError::Full {
                count,
                bytes: self.bytes,
            };
            return (refusal(CODE_FULL, e), hash);
        }
        let Ok(tx) = SignedTx::decode(&bytes) else {
            // Let the runtime word the refusal.
            return (runtime.check_tx(&bytes), hash);
        };
        let sender = tx.sender();
        let nonce = tx.body.nonce;
        let expected = self.next_nonce(runtime, &sender);
        if nonce > expected {
            return (
                self.wait(runtime, bytes, hash, sender, nonce, expected, sig_checked),
                hash,
            );
        }
        let result = if sig_checked {
            runtime.recheck_tx(&bytes, expected)
        } else {
            runtime.check_tx_with_nonce(&bytes, Some(expected))
        };
        if !result.is_ok() {
            return (result, hash);
        }
        self.remember(hash);
        self.verified.insert(hash);
        self.bytes += bytes.len();
        self.queue(hash, bytes, sender, nonce);
        self.promote(runtime, &sender);
        (result, hash)
    }

    /// Puts an admitted transaction (its sender's next nonce; counted in `bytes` already)
    /// in line for blocks.
    fn queue(&mut self, hash: Hash, bytes: Vec<u8>, sender: Address, nonce: u64) {
        self.by_sender
            .entry(sender)
            .or_default()
            .insert(nonce, hash);
        self.order.push_back(hash);
        self.txs.insert(
            hash,
            Entry {
                bytes,
                sender,
                nonce,
            },
        );
    }

    /// Keeps a transaction ahead of its sender's next nonce `expected` until the gap fills:
    /// everything but the nonce is checked now (and again when it moves up).
    #[allow(clippy::too_many_arguments)]
    fn wait(
        &mut self,
        runtime: &Runtime,
        bytes: Vec<u8>,
        hash: Hash,
        sender: Address,
        nonce: u64,
        expected: u64,
        sig_checked: bool,
    ) -> TxResult {
        let gap = nonce - expected;
        if gap > MAX_NONCE_GAP {
            let e = MempoolError::NonceGap {
                nonce,
                next: expected,
                gap,
            };
            return refusal(CODE_NONCE_GAP, e);
        }
        if self
            .waiting_by_sender
            .get(&sender)
            .is_some_and(|m| m.contains_key(&nonce))
        {
            return refusal(CODE_DUPLICATE, MempoolError::Duplicate);
        }
        let result = if sig_checked {
            runtime.recheck_tx(&bytes, nonce)
        } else {
            runtime.check_tx_with_nonce(&bytes, Some(nonce))
        };
        if !result.is_ok() {
            return result;
        }
        self.remember(hash);
        self.verified.insert(hash);
        self.bytes += bytes.len();
        self.waiting_by_sender
            .entry(sender)
            .or_default()
            .insert(nonce, hash);
        self.waiting.insert(
            hash,
            Waiting {
                bytes,
                sender,
                nonce,
                since: self.blocks,
            },
        );
        result
    }

    /// Moves `sender`'s waiting transactions that now follow on into line, in nonce order;
    /// one that no longer passes its checks is dropped.
    fn promote(&mut self, runtime: &Runtime, sender: &Address) {
        while self.waiting_by_sender.contains_key(sender) {
            let expected = self.next_nonce(runtime, sender);
            let Some(hash) = self
                .waiting_by_sender
                .get(sender)
                .and_then(|m| m.get(&expected))
                .copied()
            else {
                return;
            };
            let Some(w) = self.unwait(&hash) else {
                return;
            };
            if runtime.recheck_tx(&w.bytes, expected).is_ok() {
                self.queue(hash, w.bytes, w.sender, w.nonce);
            } else {
                self.bytes -= w.bytes.len();
                self.verified.remove(&hash);
            }
        }
    }

    /// Takes a transaction out of the waiting ones (its bytes stay counted).
    fn unwait(&mut self, hash: &Hash) -> Option<Waiting> {
        let w = self.waiting.remove(hash)?;
        if let Some(m) = self.waiting_by_sender.get_mut(&w.sender) {
            m.remove(&w.nonce);
            if m.is_empty() {
                self.waiting_by_sender.remove(&w.sender);
            }
        }
        Some(w)
    }

    /// Up to `max_txs` transactions and `max_bytes` bytes for a proposal, each sender's in
    /// nonce order (a sender's later transaction never precedes an earlier one).
    pub fn reap(&self, max_txs: usize, max_bytes: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut taken: HashMap<Address, u64> = HashMap::new();
        for hash in &self.order {
            if out.len() >= max_txs {
                break;
            }
            let Some(e) = self.txs.get(hash) else {
                continue;
            };
            // Only the sender's next nonce may go in; arrival order already follows nonces
            // for one sender because admission required it.
            let first = self
                .by_sender
                .get(&e.sender)
                .and_then(|m| m.keys().next().copied())
                .unwrap_or(e.nonce);
            let next = taken.get(&e.sender).map_or(first, |n| n + 1);
            if e.nonce != next || bytes + e.bytes.len() > max_bytes {
                continue;
            }
            bytes += e.bytes.len();
            taken.insert(e.sender, e.nonce);
            out.push(e.bytes.clone());
        }
        out
    }

    /// Whether every transaction of `txs` was verified by this node.
    pub fn all_verified(&self, txs: &[Vec<u8>]) -> bool {
        txs.iter().all(|t| self.verified.contains(&tx_hash(t)))
    }

    /// After a block: drops its transactions, then re-checks the rest in nonce order against
    /// the new state and drops what no longer passes.
    pub fn update(&mut self, runtime: &Runtime, committed: &[Vec<u8>]) {
        for tx in committed {
            let h = tx_hash(tx);
            self.remember(h);
            self.verified.remove(&h);
            self.remove(&h);
        }
        let senders: Vec<Address> = self.by_sender.keys().copied().collect();
        for sender in senders {
            let mut expected = runtime.account(&sender).nonce;
            let hashes: Vec<Hash> = self
                .by_sender
                .get(&sender)
                .map(|m| m.values().copied().collect())
                .unwrap_or_default();
            for h in hashes {
                let keep = self.txs.get(&h).is_some_and(|e| {
                    e.nonce == expected && runtime.recheck_tx(&e.bytes, expected).is_ok()
                });
                if keep {
                    expected += 1;
                } else {
                    self.remove(&h);
                    self.verified.remove(&h);
                }
            }
        }
        self.order.retain(|h| self.txs.contains_key(h));
        // Waiting transactions: drop those committed or overtaken (nonce below the
        // account's) and those that waited too long; move up those whose gap filled.
        self.blocks += 1;
        let stale: Vec<Hash> = self
            .waiting
            .iter()
            .filter(|(_, w)| {
                w.nonce < runtime.account(&w.sender).nonce
                    || self.blocks.saturating_sub(w.since) > WAIT_BLOCKS
            })
            .map(|(h, _)| *h)
            .collect();
        for h in stale {
            if let Some(w) = self.unwait(&h) {
                self.bytes -= w.bytes.len();
                self.verified.remove(&h);
            }
        }
        let senders: Vec<Address> = self.waiting_by_sender.keys().copied().collect();
        for sender in senders {
            self.promote(runtime, &sender);
        }
    }

    fn remove(&mut self, hash: &Hash) {
        if let Some(e) = self.txs.remove(hash) {
            self.bytes -= e.bytes.len();
            if let Some(m) = self.by_sender.get_mut(&e.sender) {
                m.remove(&e.nonce);
                if m.is_empty() {
                    self.by_sender.remove(&e.sender);
                }
            }
        }
    }

    /// Pending transactions in arrival order (for `unconfirmed_txs`).
    pub fn pending(&self, limit: usize) -> Vec<Vec<u8>> {
        self.order
            .iter()
            .filter_map(|h| self.txs.get(h))
            .take(limit)
            .map(|e| e.bytes.clone())
            .collect()
    }
}

fn refusal(code: u32, e: MempoolError) -> TxResult {
    TxResult {
        code,
        log: e.to_string(),
        events: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
