//! The adversary: an equivocator's driver runs honestly, and what it sends is rewritten
//! here into conflicting messages for the two halves of the honest validators.

use super::*;

impl World {
    /// An equivocator's own messages, rewritten (signed at the epoch: a faulty clock). A
    /// proposal: a second block (without its last transaction, so just as valid; an empty
    /// block one nanosecond later instead, invalid under BFT time) proposed too, one to each half of the honest
    /// validators (the lower block id to half 0), both to its accomplices at once. A vote:
    /// with two proposals in the round, half 0 gets a vote for the lower block id and half
    /// 1 for the other; otherwise half 0 gets the driver's vote and half 1 a conflicting
    /// one (nil for a value, a value for nil).
    pub(super) fn equivocate(&mut self, i: usize, msg: ConsensusMsg) {
        let key = self.nodes[i].key.clone();
        match msg {
            ConsensusMsg::Proposal { proposal, block } => {
                let mut second = (*block).clone();
                if second.txs.pop().is_some() {
                    second.header.data_hash = basalt_types::Block::compute_data_hash(&second.txs);
                } else {
                    // Nothing to leave out: another time, which BFT time makes invalid.
                    second.header.time.nanos = (second.header.time.nanos + 1) % 1_000_000_000;
                }
                let other = Proposal {
                    pol_round: None,
                    block_id: second.id(),
                    ..proposal.proposal.clone()
                }
                .sign(CHAIN_ID, Timestamp::default(), &key);
                let second_id = other.proposal.block_id;
                let mut pair = [(proposal, *block), (other, second)];
                pair.sort_by_key(|(p, _)| p.proposal.block_id);
                for (half, (p, b)) in pair.into_iter().enumerate() {
                    self.checker.proposed(p.proposal.block_id);
                    let id = p.proposal.block_id;
                    let msg = ConsensusMsg::Proposal {
                        proposal: p,
                        block: Box::new(b),
                    };
                    let data = wire::encode(&msg);
                    if id == second_id {
                        // The equivocator's own engine learns its second proposal too, so
                        // that it splits its votes between the two like its accomplices.
                        let from = self.nodes[i].peer;
                        let topic = Topic::Consensus;
                        let event = Event::Gossip {
                            topic,
                            from,
                            data: data.clone(),
                        };
                        self.feed(i, event, None);
                    }
                    let payload = Self::gossip(Topic::Consensus, data);
                    for accomplice in self.byzantine.clone() {
                        if accomplice != i {
                            self.schedule(
                                0,
                                Ev::Deliver {
                                    to: accomplice,
                                    from: i,
                                    payload: payload.clone(),
                                },
                            );
                        }
                    }
                    self.broadcast(i, payload, Audience::Half(half));
                }
            }
            ConsensusMsg::Vote(signed) => {
                let vote = signed.vote;
                let mut ids: Vec<BlockId> = self.nodes[i]
                    .driver
                    .as_ref()
                    .map(|d| {
                        d.engine
                            .proposals()
                            .filter(|p| p.proposal.round == vote.round)
                            .map(|p| p.proposal.block_id)
                            .collect()
                    })
                    .unwrap_or_default();
                ids.sort();
                ids.dedup();
                let values = if ids.len() >= 2 {
                    [Some(ids[0]), Some(ids[1])]
                } else {
                    let alternative = match vote.block_id {
                        Some(_) => None,
                        None => Some(ids.first().copied().unwrap_or_else(|| {
                            BlockId(Hash::digest(&self.rng.gen::<[u8; 8]>()), Default::default())
                        })),
                    };
                    [vote.block_id, alternative]
                };
                for (half, value) in values.into_iter().enumerate() {
                    let signed = Vote {
                        block_id: value,
                        ..vote.clone()
                    }
                    .sign(CHAIN_ID, Timestamp::default(), &key);
                    self.checker
                        .byzantine_vote(i, vote.height, vote.round, vote.vote_type, value);
                    let msg = ConsensusMsg::Vote(signed);
                    let payload = Self::gossip(Topic::Consensus, wire::encode(&msg));
                    self.broadcast(i, payload, Audience::Half(half));
                }
            }
        }
    }
}
