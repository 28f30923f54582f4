//! Runtime tests: a small chain harness, every staking and slashing path with exact amounts,
//! the error codes, and property tests over random transaction sequences.

mod genesis_pieces;
mod paths;
mod properties;

use crate::{BlockContext, BlockResult, Msg, Runtime, TxBody};
use basalt_genesis::Genesis;
use basalt_staking::{StakingParams, ValidatorSchedule};
use basalt_types::{
    Address, BlockId, DuplicateVoteEvidence, Evidence, Hash, Height, PrivateKey, Round, Vote,
    VoteType,
};
use std::collections::BTreeSet;

pub const CHAIN: &str = "rt-test";
pub const M: u128 = 1_000_000;

pub fn key(tag: &str, i: usize) -> PrivateKey {
    PrivateKey::from_seed(Hash::digest(format!("{tag}-{i}").as_bytes()).0)
}

pub struct Chain {
    pub rt: Runtime,
    pub schedule: ValidatorSchedule,
    pub operators: Vec<PrivateKey>,
    pub consensus: Vec<PrivateKey>,
    pub users: Vec<PrivateKey>,
}

impl Chain {
    /// Validators with the given self-bonds (in whole power units of 1_000_000 tokens) and
    /// `users` accounts holding `balance` each.
    pub fn new(
        bonds: &[u128],
        users: usize,
        balance: u128,
        params: impl FnOnce(&mut StakingParams),
    ) -> Chain {
        let operators: Vec<PrivateKey> = (0..bonds.len()).map(|i| key("operator", i)).collect();
        let consensus: Vec<PrivateKey> = (0..bonds.len()).map(|i| key("consensus", i)).collect();
        let users: Vec<PrivateKey> = (0..users).map(|i| key("user", i)).collect();
        let mut accounts: Vec<(Address, u128)> = users
            .iter()
            .map(|k| (k.public_key().address(), balance))
            .collect();
        accounts.extend(operators.iter().map(|k| (k.public_key().address(), 10 * M)));
        let mut g = Genesis::generate(
            CHAIN,
            "2026-01-01T00:00:00Z",
            operators
                .iter()
                .zip(&consensus)
                .zip(bonds)
                .enumerate()
                .map(|(i, ((o, c), b))| (o.public_key(), c.public_key(), b * M, format!("v{i}")))
                .collect(),
            accounts,
        )
        .unwrap();
        params(&mut g.app_state.staking);
        let (rt, set) = Runtime::from_genesis(&g).unwrap();
        Chain {
            rt,
            schedule: ValidatorSchedule::genesis(set),
            operators,
            consensus,
            users,
        }
    }

    pub fn addr(k: &PrivateKey) -> Address {
        k.public_key().address()
    }

    /// A signed transaction from `k` with the account's next nonce plus `offset`.
    pub fn tx(&self, k: &PrivateKey, offset: u64, fee: u128, msg: Msg) -> Vec<u8> {
        let nonce = self.rt.account(&Self::addr(k)).nonce + offset;
        TxBody {
            chain_id: CHAIN.into(),
            nonce,
            fee,
            msg,
        }
        .sign(k)
        .to_bytes()
    }

    /// Consensus addresses of the set that decided the previous block (all of it signs).
    pub fn all_signers(&self) -> BTreeSet<Address> {
        self.schedule
            .current
            .validators()
            .iter()
            .map(|v| v.address)
            .collect()
    }

    pub fn block_with(
        &mut self,
        txs: Vec<Vec<u8>>,
        signers: BTreeSet<Address>,
        evidence: Vec<Evidence>,
    ) -> BlockResult {
        let ctx = BlockContext {
            height: self.rt.height() + 1,
            last_commit_signers: signers,
            evidence,
        };
        let result = self.rt.execute_block(&ctx, &txs).unwrap();
        self.schedule.advance(&result.validator_updates).unwrap();
        let (held, expected) = self.rt.supply_check();
        assert_eq!(
            held, expected,
            "supply invariant after block {}",
            ctx.height
        );
        result
    }

    pub fn block(&mut self, txs: Vec<Vec<u8>>) -> BlockResult {
        let signers = self.all_signers();
        self.block_with(txs, signers, Vec::new())
    }

    /// Two conflicting prevotes by validator `v` at `height`, with its power then.
    pub fn double_sign(&self, v: usize, height: u64) -> Evidence {
        let k = &self.consensus[v];
        let (power, total) = self
            .rt
            .staking()
            .power_at(&Self::addr(k), height)
            .expect("in the set");
        let vote = |b: Option<BlockId>| {
            Vote {
                vote_type: VoteType::Prevote,
                height: Height(height),
                round: Round(0),
                block_id: b,
                validator: Self::addr(k),
            }
            .sign(CHAIN, basalt_types::Timestamp::default(), k)
        };
        Evidence::DuplicateVote(DuplicateVoteEvidence::new(
            vote(Some(BlockId(Hash::digest(b"x"), Default::default()))),
            vote(None),
            power,
            total,
        ))
    }
}
