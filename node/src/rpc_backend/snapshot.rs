//! What the node publishes for the RPC after each event that changed it: the latest
//! height and header, app hash, validator set, round state, peers and mempool size. Reads
//! take the latest snapshot from a `watch` channel and never wait for the node.

use super::round_state::RoundView;
use crate::driver::Driver;
use crate::node::PeerInfo;
use basalt_p2p::PeerId;
use basalt_staking::ValidatorSet;
use basalt_types::{Hash, Header, PublicKey};
use std::sync::Arc;

/// What does not change while the node runs.
pub struct NodeInfo {
    pub moniker: String,
    pub node_id: String,
    pub node_key: PublicKey,
    pub rpc_listen: String,
    pub p2p_listen: String,
}

#[derive(Clone, Default)]
pub struct Snapshot {
    pub last_height: u64,
    pub last_header: Option<Header>,
    pub app_hash: Hash,
    /// The set of the next height.
    pub validators: Option<Arc<ValidatorSet>>,
    pub validator_key: Option<PublicKey>,
    pub catching_up: bool,
    /// Connected peers: id, last reported height, connection.
    pub peers: Vec<(PeerId, u64, Arc<PeerInfo>)>,
    pub mempool_txs: usize,
    pub mempool_bytes: usize,
    /// The engine's round, copied as it is (rendered as CometBFT's round state by the
    /// read that asks, off the consensus loop).
    pub round: Option<Arc<RoundView>>,
}

impl Snapshot {
    pub fn of(
        d: &Driver,
        peer_info: &std::collections::HashMap<PeerId, Arc<PeerInfo>>,
    ) -> Snapshot {
        Snapshot {
            last_height: d.last_height(),
            last_header: d.chain.last_header.clone(),
            app_hash: d.chain.runtime.app_hash(),
            validators: Some(Arc::new(d.chain.validators().clone())),
            validator_key: d.validator_key,
            catching_up: d.catching_up,
            peers: d
                .peers
                .iter()
                .filter_map(|(p, h)| peer_info.get(p).map(|i| (*p, *h, i.clone())))
                .collect(),
            mempool_txs: d.mempool.len(),
            mempool_bytes: d.mempool.size_bytes(),
            round: RoundView::of(d).map(Arc::new),
        }
    }

    /// What a change worth a new snapshot is measured by: the chain and the round moving,
    /// or peers coming and going (mempool counts follow on the node's tick).
    pub fn key(d: &Driver) -> (u64, u64, u32, u8, usize) {
        let e = &d.engine;
        (
            d.last_height(),
            e.height().0,
            e.round().0,
            step_code(e.step()),
            d.peers.len(),
        )
    }
}

/// CometBFT's step numbers for `consensus_state`.
pub(super) fn step_code(s: basalt_consensus::Step) -> u8 {
    match s {
        basalt_consensus::Step::Propose => 3,
        basalt_consensus::Step::Prevote => 4,
        basalt_consensus::Step::Precommit => 6,
        basalt_consensus::Step::Commit => 8,
    }
}
