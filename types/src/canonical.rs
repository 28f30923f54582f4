//! CometBFT v0.38's canonical encodings, where light clients and remote signers look
//! (DESIGN.md §6a): vote and proposal sign bytes (`CanonicalVote` / `CanonicalProposal`,
//! length-delimited protobuf), the header hash, the validator-set hash and the commit hash
//! (RFC 6962 Merkle trees, [`crate::merkle_root`], over protobuf encodings). The data hash
//! is [`crate::Block::compute_data_hash`].
//!
//! Encoded by hand (a few dozen lines of protobuf) rather than through `tendermint-proto`
//! and `prost`, which the shipped binary would otherwise carry; the tests pin the result
//! against CometBFT's own vectors and against tendermint-rs as an oracle.

use crate::hash::merkle_root;

/// `SignedMsgType` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SignedMsgType {
    Prevote = 1,
    Precommit = 2,
    Proposal = 32,
}

/// A protobuf `google.protobuf.Timestamp`: seconds since the Unix epoch and nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Time {
    pub seconds: i64,
    pub nanos: i32,
}

/// A `BlockID`: the block's hash and its part-set header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockId {
    pub hash: Vec<u8>,
    pub parts_total: u32,
    pub parts_hash: Vec<u8>,
}

impl BlockId {
    /// CometBFT's `IsZero`: what a nil vote carries.
    pub fn is_zero(&self) -> bool {
        self.hash.is_empty() && self.parts_total == 0 && self.parts_hash.is_empty()
    }
}

/// Protobuf writer: the handful of field kinds the canonical messages use. Proto3 leaves
/// out a scalar field holding its default value; `message` fields are written as given.
#[derive(Default)]
struct Proto(Vec<u8>);

impl Proto {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn key(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }
    /// int64, uint64, uint32, enum: a varint (negative int64 as its 10-byte two's complement).
    fn uint(&mut self, field: u32, v: u64) -> &mut Self {
        if v != 0 {
            self.key(field, 0);
            self.varint(v);
        }
        self
    }
    fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.uint(field, v as u64)
    }
    fn sfixed64(&mut self, field: u32, v: i64) -> &mut Self {
        if v != 0 {
            self.key(field, 1);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
        self
    }
    fn bytes(&mut self, field: u32, v: &[u8]) -> &mut Self {
        if !v.is_empty() {
            self.message(field, v);
        }
        self
    }
    /// An embedded message, written even when empty (gogoproto's non-nullable fields).
    fn message(&mut self, field: u32, v: &[u8]) -> &mut Self {
        self.key(field, 2);
        self.varint(v.len() as u64);
        self.0.extend_from_slice(v);
        self
    }
    fn done(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

fn timestamp(t: Time) -> Vec<u8> {
    Proto::default()
        .int(1, t.seconds)
        .int(2, i64::from(t.nanos))
        .done()
}

/// `BlockID` (header's `last_block_id`): hash, then the part-set header (always written).
fn block_id(id: &BlockId) -> Vec<u8> {
    let parts = Proto::default()
        .uint(1, u64::from(id.parts_total))
        .bytes(2, &id.parts_hash)
        .done();
    Proto::default()
        .bytes(1, &id.hash)
        .message(2, &parts)
        .done()
}

fn delimited(body: Vec<u8>) -> Vec<u8> {
    let mut out = Proto::default();
    out.varint(body.len() as u64);
    out.0.extend_from_slice(&body);
    out.0
}

/// The bytes a validator signs for a prevote or precommit (`VoteSignBytes`): a nil vote
/// has no block id.
pub fn vote_sign_bytes(
    chain_id: &str,
    kind: SignedMsgType,
    height: i64,
    round: i64,
    block: Option<&BlockId>,
    time: Time,
) -> Vec<u8> {
    vote_sign_bytes_of_type(chain_id, kind as u64, height, round, block, time)
}

/// [`vote_sign_bytes`] for any type number (CometBFT's vectors also sign type 0).
fn vote_sign_bytes_of_type(
    chain_id: &str,
    kind: u64,
    height: i64,
    round: i64,
    block: Option<&BlockId>,
    time: Time,
) -> Vec<u8> {
    let mut p = Proto::default();
    p.uint(1, kind).sfixed64(2, height).sfixed64(3, round);
    if let Some(id) = block.filter(|id| !id.is_zero()) {
        // CanonicalBlockID has the same fields as BlockID.
        p.message(4, &block_id(id));
    }
    p.message(5, &timestamp(time)).bytes(6, chain_id.as_bytes());
    delimited(p.done())
}

/// The bytes a proposer signs for a proposal (`ProposalSignBytes`); `pol_round` is -1
/// without a proof-of-lock round.
pub fn proposal_sign_bytes(
    chain_id: &str,
    height: i64,
    round: i64,
    pol_round: i64,
    block: &BlockId,
    time: Time,
) -> Vec<u8> {
    let mut p = Proto::default();
    p.uint(1, SignedMsgType::Proposal as u64)
        .sfixed64(2, height)
        .sfixed64(3, round)
        .int(4, pol_round);
    if !block.is_zero() {
        p.message(5, &block_id(block));
    }
    p.message(6, &timestamp(time)).bytes(7, chain_id.as_bytes());
    delimited(p.done())
}

/// The fields of a header as CometBFT hashes them.
#[derive(Clone, Debug, Default)]
pub struct Header<'a> {
    /// `version.block` (11 for CometBFT v0.38) and `version.app`.
    pub version_block: u64,
    pub version_app: u64,
    pub chain_id: &'a str,
    pub height: i64,
    pub time: Time,
    pub last_block_id: BlockId,
    pub last_commit_hash: &'a [u8],
    pub data_hash: &'a [u8],
    pub validators_hash: &'a [u8],
    pub next_validators_hash: &'a [u8],
    pub consensus_hash: &'a [u8],
    pub app_hash: &'a [u8],
    pub last_results_hash: &'a [u8],
    pub evidence_hash: &'a [u8],
    pub proposer_address: &'a [u8],
}

/// `Header.Hash()`: the Merkle root of its fields' encodings (scalars wrapped in the
/// protobuf well-known value messages, as `cdcEncode` does).
pub fn header_hash(h: &Header) -> [u8; 32] {
    let wrapped = |v: &[u8]| Proto::default().bytes(1, v).done();
    let version = Proto::default()
        .uint(1, h.version_block)
        .uint(2, h.version_app)
        .done();
    merkle_root(&[
        version,
        wrapped(h.chain_id.as_bytes()),
        Proto::default().int(1, h.height).done(),
        timestamp(h.time),
        block_id(&h.last_block_id),
        wrapped(h.last_commit_hash),
        wrapped(h.data_hash),
        wrapped(h.validators_hash),
        wrapped(h.next_validators_hash),
        wrapped(h.consensus_hash),
        wrapped(h.app_hash),
        wrapped(h.last_results_hash),
        wrapped(h.evidence_hash),
        wrapped(h.proposer_address),
    ])
    .0
}

/// `ValidatorSet.Hash()` over (ed25519 public key, voting power) in the set's order
/// (CometBFT orders by power, then address).
pub fn validators_hash(validators: &[([u8; 32], i64)]) -> [u8; 32] {
    let leaves: Vec<Vec<u8>> = validators
        .iter()
        .map(|(key, power)| {
            let pub_key = Proto::default().bytes(1, key).done();
            Proto::default().message(1, &pub_key).int(2, *power).done()
        })
        .collect();
    merkle_root(&leaves).0
}

/// `BlockIDFlag` values of a commit signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum BlockIdFlag {
    Absent = 1,
    Commit = 2,
    Nil = 3,
}

/// One `CommitSig` as a commit hash sees it.
#[derive(Clone, Debug)]
pub struct CommitSig<'a> {
    pub flag: BlockIdFlag,
    pub validator_address: &'a [u8],
    pub time: Time,
    pub signature: &'a [u8],
}

/// `Commit.Hash()`: the Merkle root of its signatures' encodings, in set order.
pub fn commit_hash(sigs: &[CommitSig]) -> [u8; 32] {
    let leaves: Vec<Vec<u8>> = sigs
        .iter()
        .map(|s| {
            Proto::default()
                .uint(1, s.flag as u64)
                .bytes(2, s.validator_address)
                .message(3, &timestamp(s.time))
                .bytes(4, s.signature)
                .done()
        })
        .collect();
    merkle_root(&leaves).0
}

#[cfg(test)]
mod tests;
