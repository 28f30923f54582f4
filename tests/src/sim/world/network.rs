//! The simulated network: links with delay, loss, duplication and partitions; gossipsub
//! (each node sees a message once, an accepted message is forwarded to a few peers); what
//! a node publishes, watched by the checker and rewritten for an equivocator.

use super::*;

impl World {
    pub(super) fn send(&mut self, from: usize, to: usize, payload: Rc<Payload>) {
        self.messages += 1;
        let net = &self.cfg.net;
        if !self.nodes[to].up || self.partitioned(from, to) || self.rng.gen_bool(net.drop_prob) {
            return;
        }
        let copies = if self.rng.gen_bool(net.dup_prob) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let net = &self.cfg.net;
            let (lo, hi, slow_p, slow) = (
                net.min_delay_ms,
                net.max_delay_ms,
                net.slow_prob,
                net.slow_extra_ms,
            );
            let mut delay = self.rng.gen_range(lo..=hi);
            if self.rng.gen_bool(slow_p) {
                delay += self.rng.gen_range(0..=slow);
            }
            self.schedule(
                delay,
                Ev::Deliver {
                    to,
                    from,
                    payload: payload.clone(),
                },
            );
        }
    }

    pub(super) fn gossip(topic: Topic, data: Vec<u8>) -> Rc<Payload> {
        let id = Hash::digest(&data);
        Rc::new(Payload::Gossip {
            topic,
            data: Rc::new(data),
            id,
        })
    }

    pub(super) fn broadcast(&mut self, from: usize, payload: Rc<Payload>, audience: Audience) {
        if let Payload::Gossip { id, .. } = &*payload {
            self.nodes[from].seen.insert(*id);
        }
        let targets: Vec<usize> = match audience {
            Audience::All => (0..self.nodes.len()).collect(),
            Audience::Half(k) => self.halves[k]
                .iter()
                .chain(&self.byzantine)
                .copied()
                .collect(),
        };
        for to in targets {
            if to != from {
                self.send(from, to, payload.clone());
            }
        }
    }

    /// Gossip: an honest node forwards a message it accepted to a few random peers.
    pub(super) fn relay(&mut self, node: usize, from: usize, payload: Rc<Payload>) {
        if !self.nodes[node].is_honest() {
            return;
        }
        let n = self.nodes.len();
        for _ in 0..self.cfg.net.relay_fanout.min(n.saturating_sub(1)) {
            let peer = self.rng.gen_range(0..n);
            if peer != node && peer != from {
                self.send(node, peer, payload.clone());
            }
        }
    }

    /// What a node's driver publishes: watched by the checker, rewritten by an
    /// equivocator, then gossiped.
    pub(super) fn publish(&mut self, i: usize, topic: Topic, data: Vec<u8>) {
        match topic {
            Topic::Consensus => {
                let Ok(msg) = wire::decode::<ConsensusMsg>(&data) else {
                    return;
                };
                if self.nodes[i].role == Role::Equivocator {
                    return self.equivocate(i, msg);
                }
                self.observe(i, &msg);
            }
            Topic::Evidence => {
                if self.nodes[i].is_honest() {
                    if let Ok(basalt_types::Evidence::DuplicateVote(d)) =
                        wire::decode::<basalt_types::Evidence>(&data)
                    {
                        self.checker.evidence(i, &d);
                    }
                }
            }
            Topic::Txs => {}
        }
        self.broadcast(i, Self::gossip(topic, data), Audience::All);
    }

    /// The checker sees every signed consensus message an honest node sends.
    pub(super) fn observe(&mut self, i: usize, msg: &ConsensusMsg) {
        match msg {
            ConsensusMsg::Proposal { proposal, .. } => {
                self.checker.proposed(proposal.proposal.block_id);
                let p = &proposal.proposal;
                if p.proposer == self.nodes[i].address {
                    let bytes = proposal.sign_bytes(CHAIN_ID);
                    self.checker
                        .honest_signed(i, p.height, p.round, SignStep::Propose, &bytes);
                }
            }
            ConsensusMsg::Vote(v) => {
                if v.vote.validator == self.nodes[i].address {
                    let step = match v.vote.vote_type {
                        VoteType::Prevote => SignStep::Prevote,
                        VoteType::Precommit => SignStep::Precommit,
                    };
                    let bytes = v.sign_bytes(CHAIN_ID);
                    self.checker
                        .honest_signed(i, v.vote.height, v.vote.round, step, &bytes);
                }
            }
        }
    }
}
