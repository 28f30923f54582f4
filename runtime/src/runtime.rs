//! Block execution.

use crate::error::TxError;
use crate::merkle::{decode_node, MerkleStore};
use crate::state::{keys, NoState, StateChanges, StateError, StateStore};
use crate::tx::{Msg, SignedTx};
use basalt_genesis::{Genesis, GenesisError};
use basalt_staking::{
    EvidenceRejection, Payout, SlashOutcome, StakingState, ValidatorSet, ValidatorSetError,
    ValidatorUpdate,
};
use basalt_types::{Address, Evidence, Hash};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// Whether transaction signatures still need checking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signatures {
    Verify,
    Trusted,
}

/// Largest transaction accepted, in bytes.
pub const MAX_TX_BYTES: usize = 64 * 1024;

#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
pub struct Account {
    #[serde(with = "basalt_staking::amount")]
    pub balance: u128,
    pub nonce: u64,
}

/// Where every token came from and went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub(crate) struct Supply {
    pub genesis: u128,
    pub minted: u128,
    pub burned: u128,
    /// Fees and block rewards not yet paid out (no signers yet).
    pub fee_pool: u128,
}

/// A CometBFT-style event: a type and key/value attributes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: String,
    pub attributes: Vec<(String, String)>,
}

/// A `slash` event: who (consensus address and operator), why, and what it burned.
fn slash_event(address: Address, o: &SlashOutcome, reason: &str) -> Event {
    Event::new(
        "slash",
        &[
            ("address", address.to_hex()),
            (
                "operator",
                o.operator.map(|a| a.to_hex()).unwrap_or_default(),
            ),
            ("reason", reason.to_string()),
            ("burned", o.burned().to_string()),
        ],
    )
}

impl Event {
    fn new(kind: &str, attributes: &[(&str, String)]) -> Self {
        Event {
            kind: kind.into(),
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }
}

/// Outcome of `check_tx` / `deliver_tx`: code 0 is success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxResult {
    pub code: u32,
    pub log: String,
    pub events: Vec<Event>,
}

impl TxResult {
    fn ok(events: Vec<Event>) -> Self {
        TxResult {
            code: 0,
            log: String::new(),
            events,
        }
    }
    fn err(e: &TxError) -> Self {
        TxResult {
            code: e.code(),
            log: e.to_string(),
            events: Vec::new(),
        }
    }
    pub fn is_ok(&self) -> bool {
        self.code == 0
    }
}

/// What consensus tells the runtime about a block besides its transactions.
#[derive(Clone, Debug, Default)]
pub struct BlockContext {
    pub height: u64,
    /// Consensus addresses whose precommits are in the block's last commit.
    pub last_commit_signers: BTreeSet<Address>,
    pub evidence: Vec<Evidence>,
}

#[derive(Clone, Debug)]
pub struct BlockResult {
    pub tx_results: Vec<TxResult>,
    pub evidence_results: Vec<Result<SlashOutcome, EvidenceRejection>>,
    /// Changes to the consensus set, in force at height + 2.
    pub validator_updates: Vec<ValidatorUpdate>,
    /// The state after this block (goes into the header of block height + 1).
    pub app_hash: Hash,
    /// The block's own events (CometBFT's `finalize_block_events`): a `slash` for each
    /// validator this block punished, as the Cosmos SDK's slashing module reports them
    /// (`address` its consensus address, `operator`, `reason` `double_sign` or
    /// `missing_signature`, `burned` tokens).
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    #[error("genesis: {0}")]
    Genesis(#[from] GenesisError),
    #[error("genesis validator set: {0}")]
    ValidatorSet(#[from] ValidatorSetError),
    #[error("block height {got} does not follow the last executed height {last}")]
    WrongHeight { last: u64, got: u64 },
    #[error(transparent)]
    State(#[from] StateError),
    #[error("the state store holds no state")]
    NoState,
}

#[derive(Clone)]
pub struct Runtime {
    pub(crate) chain_id: String,
    /// Accounts the block being executed changed (written out at its commit).
    pub(crate) accounts: HashMap<Address, Account>,
    pub(crate) staking: StakingState,
    pub(crate) supply: Supply,
    initial_height: u64,
    /// Last executed height (initial_height − 1 before the first block).
    height: u64,
    tree: MerkleStore,
    app_hash: Hash,
    /// The committed state, as of the last block the node stored.
    store: Arc<dyn StateStore>,
    /// Writes of executed blocks the node has not taken yet ([`Runtime::take_changes`]);
    /// read before `store`. A runtime over [`NoState`] keeps its whole state here.
    unsaved: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// The first failed read of `store` (reads answer "absent" meanwhile); reported by the
    /// next block execution, which then fails.
    read_error: Arc<Mutex<Option<StateError>>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("chain_id", &self.chain_id)
            .field("height", &self.height)
            .field("app_hash", &self.app_hash)
            .finish()
    }
}

fn decode_state<T: BorshDeserialize>(what: &str, bytes: &[u8]) -> Result<T, StateError> {
    borsh::from_slice(bytes).map_err(|e| StateError(format!("corrupt {what}: {e}")))
}

impl Runtime {
    /// The state at genesis and the validator set of the first height, all of it held in
    /// the runtime's unsaved writes (over [`NoState`]).
    pub fn from_genesis(genesis: &Genesis) -> Result<(Runtime, ValidatorSet), RuntimeError> {
        Self::from_genesis_in_pieces(genesis, Arc::new(NoState), usize::MAX, |_| Ok(()))
    }

    /// The genesis state built `piece` accounts at a time, so that memory follows the piece
    /// and not the genesis (a million funded accounts is a 100 MiB state). Between pieces
    /// `sink` gets the writes so far and must make them readable through `store`, which
    /// holds no state before the first call; the last piece's writes stay unsaved, for the
    /// caller to store with the chain's first version. Accounts go in the order of their
    /// key's hash, the tree's bucket order: a piece fills whole buckets, so almost no
    /// bucket is read back and rewritten by a later piece. Any `piece` gives the same state.
    pub fn from_genesis_in_pieces(
        genesis: &Genesis,
        store: Arc<dyn StateStore>,
        piece: usize,
        mut sink: impl FnMut(StateChanges) -> Result<(), StateError>,
    ) -> Result<(Runtime, ValidatorSet), RuntimeError> {
        genesis.validate()?;
        let mut staking = StakingState::new(genesis.app_state.staking.clone());
        for v in &genesis.app_state.validators {
            staking
                .create_validator(
                    v.operator,
                    v.consensus_key,
                    v.moniker.clone(),
                    v.commission,
                    v.self_bond,
                )
                .map_err(|e| GenesisError::Params(format!("validator {}: {e}", v.operator)))?;
        }
        let updates = staking.init_genesis_set(genesis.initial_height);
        let set = ValidatorSet::new(updates.iter().map(|u| u.to_validator()).collect())?;
        let mut rt = Runtime {
            chain_id: genesis.chain_id.clone(),
            accounts: HashMap::new(),
            staking,
            supply: Supply {
                genesis: genesis.total_supply()?,
                ..Supply::default()
            },
            initial_height: genesis.initial_height,
            height: genesis.initial_height - 1,
            tree: MerkleStore::default(),
            app_hash: Hash::default(),
            store,
            unsaved: BTreeMap::new(),
            read_error: Arc::default(),
        };
        let accounts = &genesis.app_state.accounts;
        // (first four bytes of the key's hash, index): the order only needs to group
        // buckets, and a whole hash (or a `usize` index) would cost 40 (or 8) MiB more for
        // a million accounts, at the first start's peak.
        let index = |i: usize| {
            u32::try_from(i).map_err(|_| GenesisError::Params("more than 2^32 accounts".into()))
        };
        let mut order: Vec<(u32, u32)> = Vec::with_capacity(accounts.len());
        for (i, a) in accounts.iter().enumerate() {
            let h = Hash::digest(&keys::account(&a.address));
            let prefix = u32::from_be_bytes([h.0[0], h.0[1], h.0[2], h.0[3]]);
            order.push((prefix, index(i)?));
        }
        order.sort_unstable();
        let mut pieces = order.chunks(piece.max(1)).peekable();
        loop {
            for (_, i) in pieces.next().unwrap_or_default() {
                let a = &accounts[*i as usize];
                let account = Account {
                    balance: a.balance,
                    nonce: 0,
                };
                rt.accounts.insert(a.address, account);
            }
            rt.app_hash = rt.commit()?;
            if pieces.peek().is_none() {
                break;
            }
            sink(rt.take_changes())?;
        }
        Ok((rt, set))
    }

    /// The state stored in `store` (the last committed version), for the chain of
    /// `genesis`: the staking module and the supply are read, the tree's inner nodes
    /// loaded; accounts are read when used. Restart costs the same at any chain length.
    pub fn open(genesis: &Genesis, store: Arc<dyn StateStore>) -> Result<Runtime, RuntimeError> {
        let mut rt = Self::view(genesis, store)?;
        let s = rt.store.clone();
        rt.tree = MerkleStore::load(|level, index| {
            s.get(&keys::node(level, index))?
                .map(|n| decode_node(&n))
                .transpose()
        })?;
        rt.app_hash = rt.tree.root();
        Ok(rt)
    }

    /// The state in `store` for queries only: its app hash is not loaded (zero), and it
    /// must not execute blocks.
    pub fn view(genesis: &Genesis, store: Arc<dyn StateStore>) -> Result<Runtime, RuntimeError> {
        let get = |key: &[u8]| store.get(key)?.ok_or(RuntimeError::NoState);
        let height_bytes: [u8; 8] = get(keys::HEIGHT)?
            .try_into()
            .map_err(|_| StateError("corrupt height".into()))?;
        Ok(Runtime {
            chain_id: genesis.chain_id.clone(),
            accounts: HashMap::new(),
            staking: decode_state("staking state", &get(keys::STAKING)?)?,
            supply: decode_state("supply", &get(keys::SUPPLY)?)?,
            initial_height: genesis.initial_height,
            height: u64::from_le_bytes(height_bytes),
            tree: MerkleStore::default(),
            app_hash: Hash::default(),
            store,
            unsaved: BTreeMap::new(),
            read_error: Arc::default(),
        })
    }

    /// The writes of every block executed since the last call (the genesis state first),
    /// in key order, for the node to store with the block. The caller must have stored
    /// them before this runtime reads again: from here on it reads them from its store.
    pub fn take_changes(&mut self) -> StateChanges {
        std::mem::take(&mut self.unsaved).into_iter().collect()
    }

    /// A stored value: the writes not yet taken, then the store. A failed read is kept
    /// for the next block execution to report, and answers "absent".
    fn read(&self, key: &[u8]) -> Option<Vec<u8>> {
        if let Some(v) = self.unsaved.get(key) {
            return v.clone();
        }
        self.store.get(key).unwrap_or_else(|e| {
            self.note_read_error(e);
            None
        })
    }

    /// Keeps the first failed read for the next block execution to report.
    fn note_read_error(&self, e: StateError) {
        self.read_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(e);
    }

    fn take_read_error(&self) -> Result<(), StateError> {
        match self
            .read_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }

    /// Last executed height.
    pub fn height(&self) -> u64 {
        self.height
    }

    /// The app hash after the last executed block (at genesis: of the genesis state).
    pub fn app_hash(&self) -> Hash {
        self.app_hash
    }

    pub fn account(&self, address: &Address) -> Account {
        if let Some(a) = self.accounts.get(address) {
            return *a;
        }
        let Some(bytes) = self.read(&keys::account(address)) else {
            return Account::default();
        };
        decode_state("account", &bytes).unwrap_or_else(|e| {
            self.note_read_error(e);
            Account::default()
        })
    }

    /// The account, loaded into the block's working set for a change.
    pub(crate) fn account_mut(&mut self, address: Address) -> &mut Account {
        if !self.accounts.contains_key(&address) {
            let a = self.account(&address);
            self.accounts.insert(address, a);
        }
        self.accounts.get_mut(&address).expect("inserted above")
    }

    pub fn staking(&self) -> &StakingState {
        &self.staking
    }

    fn credit(&mut self, to: Address, amount: u128) {
        let a = self.account_mut(to);
        // Cannot overflow: no balance exceeds the total supply, which fits in u128.
        a.balance = a.balance.saturating_add(amount);
    }

    fn debit(&mut self, from: Address, amount: u128) {
        self.account_mut(from).balance -= amount;
    }

    fn pay(&mut self, payouts: Vec<Payout>) {
        for p in payouts {
            self.credit(p.to, p.amount);
        }
    }

    /// Decodes and checks a transaction against the current state without changing it:
    /// size, encoding, chain id, signature, nonce (against `expected_nonce` when the mempool
    /// has pending transactions of this sender, else the account's) and that the fee is
    /// payable. Message checks come on top in `check_tx`.
    fn admit(&self, bytes: &[u8], expected_nonce: Option<u64>) -> Result<SignedTx, TxError> {
        self.admit_with(bytes, expected_nonce, Signatures::Verify)
    }

    fn admit_with(
        &self,
        bytes: &[u8],
        expected_nonce: Option<u64>,
        sigs: Signatures,
    ) -> Result<SignedTx, TxError> {
        if bytes.len() > MAX_TX_BYTES {
            return Err(TxError::TooLarge {
                size: bytes.len(),
                max: MAX_TX_BYTES,
            });
        }
        let tx = SignedTx::decode(bytes).map_err(TxError::Malformed)?;
        if tx.body.chain_id != self.chain_id {
            return Err(TxError::WrongChainId {
                expected: self.chain_id.clone(),
                got: tx.body.chain_id,
            });
        }
        if sigs == Signatures::Verify && !tx.verify_signature() {
            return Err(TxError::InvalidSignature);
        }
        let sender = tx.sender();
        let account = self.account(&sender);
        let expected = expected_nonce.unwrap_or(account.nonce);
        if tx.body.nonce < expected {
            return Err(TxError::NonceAlreadyUsed {
                expected,
                got: tx.body.nonce,
            });
        }
        if tx.body.nonce > expected {
            return Err(TxError::NonceTooHigh {
                expected,
                got: tx.body.nonce,
            });
        }
        if tx.body.fee > account.balance {
            return Err(TxError::InsufficientFunds {
                account: sender,
                needed: tx.body.fee,
                available: account.balance,
            });
        }
        Ok(tx)
    }

    /// Mempool admission: everything `deliver_tx` would check before running the message,
    /// plus the message's own preconditions against the current state.
    pub fn check_tx(&self, bytes: &[u8]) -> TxResult {
        self.check_tx_with_nonce(bytes, None)
    }

    /// `check_tx` with the sender's next nonce as the mempool sees it (after its pending
    /// transactions), so that back-to-back transactions from one key are admitted.
    pub fn check_tx_with_nonce(&self, bytes: &[u8], expected_nonce: Option<u64>) -> TxResult {
        match self
            .admit(bytes, expected_nonce)
            .and_then(|tx| self.precheck_msg(&tx).map(|_| tx))
        {
            Ok(_) => TxResult::ok(Vec::new()),
            Err(e) => TxResult::err(&e),
        }
    }

    /// `check_tx_with_nonce` for a transaction whose signature this node already verified
    /// (the mempool's re-check after a block): everything but the signature is checked again.
    pub fn recheck_tx(&self, bytes: &[u8], expected_nonce: u64) -> TxResult {
        match self
            .admit_with(bytes, Some(expected_nonce), Signatures::Trusted)
            .and_then(|tx| self.precheck_msg(&tx).map(|_| tx))
        {
            Ok(_) => TxResult::ok(Vec::new()),
            Err(e) => TxResult::err(&e),
        }
    }

    fn precheck_msg(&self, tx: &SignedTx) -> Result<(), TxError> {
        let sender = tx.sender();
        let balance = self.account(&sender).balance;
        let needed = tx
            .body
            .fee
            .checked_add(tx.body.msg.spends())
            .ok_or(TxError::Overflow)?;
        match &tx.body.msg {
            Msg::Transfer { amount, .. }
            | Msg::Delegate { amount, .. }
            | Msg::Undelegate { amount, .. }
                if *amount == 0 =>
            {
                return Err(TxError::ZeroAmount)
            }
            Msg::Delegate { validator, .. } | Msg::Undelegate { validator, .. }
                if self.staking.validator(validator).is_none() =>
            {
                return Err(TxError::UnknownValidator(*validator))
            }
            _ => {}
        }
        if needed > balance {
            return Err(TxError::InsufficientFunds {
                account: sender,
                needed,
                available: balance,
            });
        }
        Ok(())
    }

    /// Executes one transaction of the block being executed. A transaction refused before
    /// its fee is taken (bad encoding, signature, chain, nonce, unpayable fee) changes
    /// nothing; one whose message fails changes only the fee and the nonce.
    pub(crate) fn deliver_tx(&mut self, bytes: &[u8], height: u64, sigs: Signatures) -> TxResult {
        let tx = match self.admit_with(bytes, None, sigs) {
            Ok(tx) => tx,
            Err(e) => return TxResult::err(&e),
        };
        let sender = tx.sender();
        self.debit(sender, tx.body.fee);
        self.supply.fee_pool += tx.body.fee;
        self.accounts.get_mut(&sender).expect("debited above").nonce += 1;
        match self.apply_msg(sender, &tx.body.msg, height) {
            Ok(mut events) => {
                events.push(Event::new(
                    "message",
                    &[
                        ("action", tx.body.msg.action().to_string()),
                        ("sender", sender.to_hex()),
                    ],
                ));
                events.push(Event::new("tx", &[("fee", tx.body.fee.to_string())]));
                TxResult::ok(events)
            }
            Err(e) => TxResult::err(&e),
        }
    }

    fn require_funds(&self, who: Address, needed: u128) -> Result<(), TxError> {
        let available = self.account(&who).balance;
        if needed > available {
            return Err(TxError::InsufficientFunds {
                account: who,
                needed,
                available,
            });
        }
        Ok(())
    }

    /// Runs a message; checks everything before changing anything.
    fn apply_msg(
        &mut self,
        sender: Address,
        msg: &Msg,
        height: u64,
    ) -> Result<Vec<Event>, TxError> {
        match msg {
            Msg::Transfer { to, amount } => {
                if *amount == 0 {
                    return Err(TxError::ZeroAmount);
                }
                self.require_funds(sender, *amount)?;
                if *to != sender && self.account(to).balance.checked_add(*amount).is_none() {
                    return Err(TxError::Overflow);
                }
                self.debit(sender, *amount);
                self.credit(*to, *amount);
                Ok(vec![Event::new(
                    "transfer",
                    &[
                        ("sender", sender.to_hex()),
                        ("recipient", to.to_hex()),
                        ("amount", amount.to_string()),
                    ],
                )])
            }
            Msg::CreateValidator {
                consensus_key,
                moniker,
                commission,
                self_bond,
            } => {
                self.require_funds(sender, *self_bond)?;
                self.staking.create_validator(
                    sender,
                    *consensus_key,
                    moniker.clone(),
                    *commission,
                    *self_bond,
                )?;
                self.debit(sender, *self_bond);
                Ok(vec![Event::new(
                    "create_validator",
                    &[
                        ("validator", sender.to_hex()),
                        ("amount", self_bond.to_string()),
                    ],
                )])
            }
            Msg::EditValidator {
                moniker,
                commission,
            } => {
                if self.staking.validator(&sender).is_none() {
                    return Err(TxError::NotOperator);
                }
                self.staking
                    .edit_validator(sender, moniker.clone(), *commission)?;
                Ok(vec![Event::new(
                    "edit_validator",
                    &[("validator", sender.to_hex())],
                )])
            }
            Msg::Delegate { validator, amount } => {
                self.require_funds(sender, *amount)?;
                self.staking.delegate(sender, *validator, *amount)?;
                self.debit(sender, *amount);
                Ok(vec![Event::new(
                    "delegate",
                    &[
                        ("validator", validator.to_hex()),
                        ("delegator", sender.to_hex()),
                        ("amount", amount.to_string()),
                    ],
                )])
            }
            Msg::Undelegate { validator, amount } => {
                let tokens = self
                    .staking
                    .undelegate(sender, *validator, *amount, height)?;
                let completion = height + self.staking.params.unbonding_period;
                Ok(vec![Event::new(
                    "unbond",
                    &[
                        ("validator", validator.to_hex()),
                        ("delegator", sender.to_hex()),
                        ("amount", tokens.to_string()),
                        ("completion_height", completion.to_string()),
                    ],
                )])
            }
            Msg::Unjail => {
                if self.staking.validator(&sender).is_none() {
                    return Err(TxError::NotOperator);
                }
                self.staking.unjail(sender, height)?;
                Ok(vec![Event::new(
                    "unjail",
                    &[("validator", sender.to_hex())],
                )])
            }
        }
    }

    /// Executes block `ctx.height`: evidence and liveness, transactions, unbonding
    /// maturity, rewards, active-set rotation; then commits and returns the app hash.
    pub fn execute_block(
        &mut self,
        ctx: &BlockContext,
        txs: &[Vec<u8>],
    ) -> Result<BlockResult, RuntimeError> {
        self.execute_block_with(ctx, txs, Signatures::Verify)
    }

    /// Like `execute_block` for transactions whose signatures the node has already verified
    /// (its mempool keeps the verdict), so that each signature is checked once per node.
    /// Everything else is checked as usual. Never use it for transactions nobody verified.
    pub fn execute_block_trusted(
        &mut self,
        ctx: &BlockContext,
        txs: &[Vec<u8>],
    ) -> Result<BlockResult, RuntimeError> {
        self.execute_block_with(ctx, txs, Signatures::Trusted)
    }

    fn execute_block_with(
        &mut self,
        ctx: &BlockContext,
        txs: &[Vec<u8>],
        sigs: Signatures,
    ) -> Result<BlockResult, RuntimeError> {
        let height = ctx.height;
        if height != self.height + 1 {
            return Err(RuntimeError::WrongHeight {
                last: self.height,
                got: height,
            });
        }
        // Begin: evidence, then liveness from the previous block's commit.
        let mut evidence_results = Vec::with_capacity(ctx.evidence.len());
        let mut events = Vec::new();
        for ev in &ctx.evidence {
            let Evidence::DuplicateVote(d) = ev;
            let result = self.staking.handle_double_sign(&self.chain_id, d, height);
            if let Ok(o) = &result {
                self.supply.burned += o.burned();
                events.push(slash_event(d.vote_a.vote.validator, o, "double_sign"));
            }
            evidence_results.push(result);
        }
        if height > self.initial_height {
            for o in self
                .staking
                .record_liveness(height, &ctx.last_commit_signers)
            {
                self.supply.burned += o.burned();
                let record = o.operator.and_then(|op| self.staking.validator(&op));
                if let Some(r) = record {
                    events.push(slash_event(r.consensus_address(), &o, "missing_signature"));
                }
            }
        }
        // Transactions.
        let tx_results = txs
            .iter()
            .map(|tx| self.deliver_tx(tx, height, sigs))
            .collect();
        // End: matured unbondings, rewards, the next active set.
        let matured = self.staking.mature_unbondings(height);
        self.pay(matured);
        let reward = self.staking.params.block_reward;
        self.supply.minted += reward;
        self.supply.fee_pool += reward;
        let payouts = self.staking.distribute_rewards(
            self.supply.fee_pool,
            &ctx.last_commit_signers,
            height.saturating_sub(1),
        );
        if !payouts.is_empty() {
            self.supply.fee_pool = 0;
            self.pay(payouts);
        }
        let validator_updates = self.staking.end_block(height);
        self.height = height;
        self.app_hash = self.commit()?;
        Ok(BlockResult {
            tx_results,
            evidence_results,
            validator_updates,
            app_hash: self.app_hash,
            events,
        })
    }

    /// Writes what changed into the Merkle tree and the unsaved writes and returns the new
    /// root. Accounts are one leaf each (only changed ones are rehashed); the staking module
    /// and the supply are one leaf each.
    pub(crate) fn commit(&mut self) -> Result<Hash, StateError> {
        self.take_read_error()?;
        let mut accounts: Vec<(Address, Account)> = self.accounts.drain().collect();
        accounts.sort_by_key(|(a, _)| *a);
        let mut writes: Vec<(Vec<u8>, Vec<u8>)> = accounts
            .iter()
            .map(|(a, acc)| (keys::account(a).to_vec(), enc(acc)))
            .collect();
        writes.push((keys::STAKING.to_vec(), enc(&self.staking)));
        writes.push((keys::SUPPLY.to_vec(), enc(&self.supply)));
        writes.push((keys::HEIGHT.to_vec(), self.height.to_le_bytes().to_vec()));
        for (k, v) in writes {
            self.tree.put(&k, &v);
            self.unsaved.insert(k, Some(v));
        }
        crate::restore::commit_tree(&mut self.tree, &mut self.unsaved, self.store.as_ref())
    }

    /// Every account with a balance or a nonce, for a runtime whose whole state is in
    /// memory (over [`NoState`], nothing taken): tests and invariant checks.
    pub fn memory_accounts(&self) -> BTreeMap<Address, Account> {
        let mut out: BTreeMap<Address, Account> = self
            .unsaved
            .iter()
            .filter(|(k, _)| k.len() == 21 && k[0] == b'a')
            .filter_map(|(k, v)| {
                let mut a = [0u8; 20];
                a.copy_from_slice(&k[1..]);
                Some((Address(a), borsh::from_slice(v.as_ref()?).ok()?))
            })
            .collect();
        out.extend(self.accounts.iter().map(|(a, acc)| (*a, *acc)));
        out
    }

    /// Every token accounted for (in a runtime whose state is in memory): balances + bonded + unbonding + undistributed fees equal
    /// genesis + minted − burned. Returns both sides.
    pub fn supply_check(&self) -> (u128, u128) {
        let held: u128 = self
            .memory_accounts()
            .values()
            .map(|a| a.balance)
            .sum::<u128>()
            + self.staking.bonded_tokens()
            + self.staking.unbonding_tokens()
            + self.supply.fee_pool;
        (
            held,
            self.supply.genesis + self.supply.minted - self.supply.burned,
        )
    }
}

fn enc<T: BorshSerialize>(v: &T) -> Vec<u8> {
    borsh::to_vec(v).expect("borsh into a Vec is infallible")
}
