//! The event loop: a simulated network of nodes driven by one seed.

use super::checker::{Checker, Violation};
use super::config::{ByzantineMode, PowerMode, SimConfig};
use super::faults::FaultPlan;
use super::memo_verifier::MemoVerifier;
use super::node::{block_is_valid, make_block, Audience, Decided, Node, Role, WalEntry};
use basalt_consensus::signer::{SignDecision, SignStep};
use basalt_consensus::{
    ConsensusError, EngineConfig, Input, Output, SignatureVerifier, TimeoutKind,
};
use basalt_staking::{Validator, ValidatorSet};
use basalt_types::{
    Block, BlockId, Hash, Height, PrivateKey, Proposal, Round, SignedProposal, SignedVote, Vote,
    VoteType,
};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

pub const CHAIN_ID: &str = "basalt-sim";

/// How many decided heights one catch-up answer carries.
const CATCH_UP_BATCH: u64 = 10;
/// Messages for heights this far ahead are dropped rather than buffered.
const FUTURE_HEIGHTS: u64 = 16;
/// Simulated time the run goes on after the liveness target, for late evidence to spread.
const DRAIN_MS: u64 = 1500;

/// What travels between simulated nodes.
#[derive(Debug)]
pub enum NetMsg {
    Proposal {
        proposal: SignedProposal,
        block: Block,
    },
    Vote(SignedVote),
    /// "I am working on this height": a peer that has decided it answers with `Decided`.
    Status {
        height: Height,
    },
    Decided(Decided),
}

enum Event {
    Deliver {
        to: usize,
        from: usize,
        msg: Rc<NetMsg>,
    },
    Timeout {
        node: usize,
        incarnation: u32,
        height: Height,
        round: Round,
        kind: TimeoutKind,
    },
    NextHeight {
        node: usize,
        incarnation: u32,
        height: Height,
    },
    Tick {
        node: usize,
        incarnation: u32,
    },
    Crash(usize),
    Restart(usize),
    PartitionStart(usize),
    PartitionEnd,
    Stable,
}

struct Scheduled {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed: `BinaryHeap` is a max-heap and we want the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The result of one seed.
#[derive(Debug, Clone)]
pub struct SeedReport {
    pub seed: u64,
    pub violations: Vec<Violation>,
    /// The lowest height decided by any honest validator.
    pub min_honest_height: u64,
    pub sim_millis: u64,
    pub events: u64,
    pub messages: u64,
    /// Faults the seed's plan applied, and Byzantine activity seen: proof a run was not vacuous.
    pub partitions: usize,
    pub crashes: usize,
    pub equivocators: usize,
    pub caught: usize,
}

struct World {
    cfg: SimConfig,
    engine_cfg: EngineConfig,
    rng: ChaCha8Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    nodes: Vec<Node>,
    valsets: Vec<ValidatorSet>,
    halves: [Vec<usize>; 2],
    byzantine: Vec<usize>,
    plan: FaultPlan,
    partition: Option<Vec<u8>>,
    checker: Checker,
    target: Option<u64>,
    deadline: u64,
    events: u64,
    messages: u64,
}

/// Runs one seed of `cfg` to completion and reports what the checker found.
pub fn run_seed(cfg: &SimConfig, seed: u64) -> SeedReport {
    let mut world = World::new(cfg, seed);
    world.run();
    SeedReport {
        seed,
        violations: world.checker.violations.clone(),
        min_honest_height: world.min_honest_height(),
        sim_millis: world.now,
        events: world.events,
        messages: world.messages,
        partitions: world.plan.partitions.len(),
        crashes: world.plan.crashes.len(),
        equivocators: world.checker.equivocators(),
        caught: world.checker.caught(),
    }
}

fn validator_key(index: usize) -> PrivateKey {
    PrivateKey::from_seed(Hash::digest(format!("basalt-sim validator {index}").as_bytes()).0)
}

impl World {
    fn new(cfg: &SimConfig, seed: u64) -> World {
        let n = cfg.validators;
        assert!(n > 0 && cfg.byzantine < n, "need validators > byzantine");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let keys: Vec<PrivateKey> = (0..n).map(validator_key).collect();
        let powers: Vec<u64> = (0..n)
            .map(|_| match cfg.power_mode {
                PowerMode::Random => rng.gen_range(1..=10),
                PowerMode::Equal => 1,
            })
            .collect();
        // The Byzantine validators are the lightest ones (ties broken by a shuffle), so that
        // f seats never hold more than f/n of the power.
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        order.sort_by_key(|i| powers[*i]);
        let mut byzantine: Vec<usize> = order[..cfg.byzantine].to_vec();
        byzantine.sort();
        let roles: Vec<Role> = (0..n)
            .map(|i| {
                if !byzantine.contains(&i) {
                    return Role::Honest;
                }
                match cfg.byzantine_mode {
                    ByzantineMode::Equivocate => Role::Equivocator,
                    ByzantineMode::Silent => Role::Silent,
                    ByzantineMode::Mixed if rng.gen_bool(0.7) => Role::Equivocator,
                    ByzantineMode::Mixed => Role::Silent,
                }
            })
            .collect();
        let mut honest: Vec<usize> = (0..n).filter(|i| roles[*i] == Role::Honest).collect();
        honest.shuffle(&mut rng);
        let half = honest.len().div_ceil(2);
        let halves = [honest[..half].to_vec(), honest[half..].to_vec()];
        honest.sort();

        let genesis = ValidatorSet::new(
            keys.iter()
                .zip(&powers)
                .map(|(k, p)| Validator::new(k.public_key(), *p))
                .collect(),
        )
        .expect("simulated validator set is valid");
        let mut engine_cfg = EngineConfig::new(CHAIN_ID);
        engine_cfg.timeouts = cfg.timeouts.clone();
        let verifier: Arc<dyn SignatureVerifier> = Arc::new(MemoVerifier::default());
        let nodes: Vec<Node> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| Node::new(i, k.clone(), roles[i], &engine_cfg, verifier.clone()))
            .collect();
        let plan = if cfg.faults {
            FaultPlan::draw(&mut rng, n, &honest)
        } else {
            FaultPlan::default()
        };
        let checker = Checker::new(
            roles.iter().map(|r| *r == Role::Honest).collect(),
            keys.iter().map(|k| k.public_key()).collect(),
        );
        let mut world = World {
            cfg: cfg.clone(),
            engine_cfg,
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            valsets: vec![genesis],
            halves,
            byzantine,
            plan,
            partition: None,
            checker,
            target: None,
            deadline: u64::MAX,
            events: 0,
            messages: 0,
        };
        world.schedule_start();
        world
    }

    fn schedule(&mut self, after_ms: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at: self.now + after_ms,
            seq: self.seq,
            event,
        });
    }

    fn schedule_start(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].up {
                self.schedule(
                    0,
                    Event::NextHeight {
                        node: i,
                        incarnation: 0,
                        height: Height(1),
                    },
                );
                let jitter = self.rng.gen_range(0..self.cfg.net.tick_ms);
                self.schedule(
                    jitter,
                    Event::Tick {
                        node: i,
                        incarnation: 0,
                    },
                );
            }
        }
        let plan = self.plan.clone();
        for (i, p) in plan.partitions.iter().enumerate() {
            self.schedule(p.start_ms, Event::PartitionStart(i));
            self.schedule(p.end_ms, Event::PartitionEnd);
        }
        for c in &plan.crashes {
            self.schedule(c.at_ms, Event::Crash(c.node));
            self.schedule(c.restart_ms, Event::Restart(c.node));
        }
        self.schedule(plan.stable_at_ms(), Event::Stable);
    }

    fn honest(&self) -> impl Iterator<Item = &Node> + '_ {
        self.nodes.iter().filter(|n| n.is_honest())
    }

    fn min_honest_height(&self) -> u64 {
        self.honest()
            .map(|n| self.checker.decided_height[n.index])
            .min()
            .unwrap_or(0)
    }

    fn run(&mut self) {
        let mut reached = false;
        while let Some(s) = self.queue.pop() {
            self.now = s.at;
            self.events += 1;
            self.process(s.event);
            if let Some(target) = self.target {
                if self.min_honest_height() >= target {
                    reached = true;
                    break;
                }
                if self.now > self.deadline {
                    break;
                }
            }
        }
        if reached {
            let stop = self.now + DRAIN_MS;
            while self.queue.peek().is_some_and(|s| s.at <= stop) {
                let s = self.queue.pop().expect("peeked");
                self.now = s.at;
                self.events += 1;
                self.process(s.event);
            }
        } else {
            let target = self.target.unwrap_or(self.cfg.heights);
            let heights = self
                .honest()
                .map(|n| (n.index, self.checker.decided_height[n.index]))
                .collect();
            self.checker.violations.push(Violation::Liveness {
                target,
                heights,
                deadline_ms: self.deadline,
            });
            if std::env::var_os("BASALT_SIM_DEBUG").is_some() {
                self.dump();
            }
        }
        self.checker.finish();
    }

    /// Prints every node's consensus state (for `BASALT_SIM_DEBUG=1` replays).
    fn dump(&self) {
        for n in &self.nodes {
            let e = &n.engine;
            let props: Vec<String> = e
                .proposals()
                .map(|p| {
                    format!(
                        "r{}:{:?}/pol{:?}",
                        p.proposal.round.0, p.proposal.block_id, p.proposal.pol_round
                    )
                })
                .collect();
            eprintln!(
                "node {} {:?} up={} h={} r={} {:?} locked={:?} valid={:?} future={} own={} props={:?}",
                n.index, n.role, n.up, e.height().0, e.round().0, e.step(), e.locked(), e.valid(), n.future_len, n.own.len(), props
            );
            eprintln!(
                "    address {:?} crashes {:?}",
                n.address,
                self.plan
                    .crashes
                    .iter()
                    .filter(|c| c.node == n.index)
                    .map(|c| (c.at_ms, c.restart_ms))
                    .collect::<Vec<_>>()
            );
            for r in [Round(0), e.round()] {
                for t in [VoteType::Prevote, VoteType::Precommit] {
                    let votes: Vec<String> = e
                        .votes()
                        .all_votes()
                        .filter(|v| v.vote.round == r && v.vote.vote_type == t)
                        .map(|v| format!("{:?}:{:?}", v.vote.validator, v.vote.block_id))
                        .collect();
                    eprintln!("    {t:?} r{}: {:?}", r.0, votes);
                }
            }
        }
    }

    fn process(&mut self, event: Event) {
        match event {
            Event::Deliver { to, from, msg } => {
                if self.nodes[to].up && !self.partitioned(from, to) {
                    self.on_message(to, from, msg);
                }
            }
            Event::Timeout {
                node,
                incarnation,
                height,
                round,
                kind,
            } => {
                if self.alive(node, incarnation) {
                    let _ = self.feed(
                        node,
                        Input::TimeoutElapsed {
                            height,
                            round,
                            kind,
                        },
                    );
                }
            }
            Event::NextHeight {
                node,
                incarnation,
                height,
            } => {
                if self.alive(node, incarnation) && self.nodes[node].engine.height() < height {
                    self.start_height(node, height);
                }
            }
            Event::Tick { node, incarnation } => {
                if self.alive(node, incarnation) {
                    self.tick(node);
                    let every = self.cfg.net.tick_ms;
                    self.schedule(every, Event::Tick { node, incarnation });
                }
            }
            Event::Crash(node) => {
                let cfg = self.engine_cfg.clone();
                self.nodes[node].crash(&cfg);
            }
            Event::Restart(node) => self.restart(node),
            Event::PartitionStart(i) => {
                self.partition = Some(self.plan.partitions[i].sides.clone())
            }
            Event::PartitionEnd => self.partition = None,
            Event::Stable => {
                let max = self
                    .honest()
                    .map(|n| self.checker.decided_height[n.index])
                    .max()
                    .unwrap_or(0);
                let target = self.cfg.heights.max(max + 2);
                let todo = target.saturating_sub(self.min_honest_height());
                self.target = Some(target);
                self.deadline =
                    self.now + todo * self.cfg.per_height_bound.as_millis() as u64 + 10_000;
            }
        }
    }

    fn alive(&self, node: usize, incarnation: u32) -> bool {
        self.nodes[node].up && self.nodes[node].incarnation == incarnation
    }

    fn partitioned(&self, a: usize, b: usize) -> bool {
        self.partition
            .as_ref()
            .is_some_and(|sides| sides[a] != sides[b])
    }

    fn valset(&mut self, height: Height) -> ValidatorSet {
        while (self.valsets.len() as u64) < height.0 {
            let mut next = self.valsets.last().expect("genesis set").clone();
            next.increment_proposer_priority(1);
            self.valsets.push(next);
        }
        self.valsets[height.0 as usize - 1].clone()
    }

    // ------------------------------------------------------------------ network

    fn send(&mut self, from: usize, to: usize, msg: Rc<NetMsg>) {
        self.messages += 1;
        let net = &self.cfg.net;
        if self.partitioned(from, to) || self.rng.gen_bool(net.drop_prob) {
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
                Event::Deliver {
                    to,
                    from,
                    msg: msg.clone(),
                },
            );
        }
    }

    fn broadcast(&mut self, from: usize, msg: Rc<NetMsg>, audience: Audience) {
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
                self.send(from, to, msg.clone());
            }
        }
    }

    /// Gossip: an honest node forwards a message it accepted as new to a few random peers.
    fn relay(&mut self, node: usize, from: usize, msg: Rc<NetMsg>) {
        if !self.nodes[node].is_honest() {
            return;
        }
        let n = self.nodes.len();
        for _ in 0..self.cfg.net.relay_fanout.min(n.saturating_sub(1)) {
            let peer = self.rng.gen_range(0..n);
            if peer != node && peer != from {
                self.send(node, peer, msg.clone());
            }
        }
    }

    fn buffer(&mut self, node: usize, from: usize, height: Height, msg: Rc<NetMsg>) {
        let cap = 16 * self.nodes.len();
        let n = &mut self.nodes[node];
        if height.0 <= n.engine.height().0 + FUTURE_HEIGHTS && n.future_len < cap {
            n.future.entry(height.0).or_default().push((from, msg));
            n.future_len += 1;
        }
    }

    fn on_message(&mut self, to: usize, from: usize, msg: Rc<NetMsg>) {
        let current = self.nodes[to].engine.height();
        match &*msg {
            NetMsg::Proposal { proposal, block } => {
                let height = proposal.proposal.height;
                if height > current {
                    return self.buffer(to, from, height, msg.clone());
                }
                if block.id() != proposal.proposal.block_id {
                    return; // A block that does not match its proposal is garbage.
                }
                self.learn_block(to, block);
                if self.feed(to, Input::Proposal(proposal.clone())).is_ok() {
                    self.relay(to, from, msg.clone());
                    let valid = block_is_valid(CHAIN_ID, height, block);
                    let block_id = proposal.proposal.block_id;
                    let _ = self.feed(
                        to,
                        Input::ProposalValidity {
                            height,
                            block_id,
                            valid,
                        },
                    );
                }
            }
            NetMsg::Vote(vote) => match self.feed(to, Input::Vote(vote.clone())) {
                Ok(()) => self.relay(to, from, msg.clone()),
                Err(ConsensusError::FutureHeight { got, .. }) => {
                    self.buffer(to, from, got, msg.clone())
                }
                Err(_) => {}
            },
            NetMsg::Status { height } => {
                if self.nodes[to].is_honest() {
                    for h in height.0..height.0 + CATCH_UP_BATCH {
                        let Some(d) = self.nodes[to].chain.get(&h) else {
                            break;
                        };
                        let reply = Rc::new(NetMsg::Decided(d.clone()));
                        self.send(to, from, reply);
                    }
                }
            }
            NetMsg::Decided(d) => {
                let height = d.proposal.proposal.height;
                if height > current {
                    return self.buffer(to, from, height, msg.clone());
                }
                if height < current || d.block.id() != d.proposal.proposal.block_id {
                    return;
                }
                self.learn_block(to, &d.block);
                let _ = self.feed(to, Input::Proposal(d.proposal.clone()));
                let valid = block_is_valid(CHAIN_ID, height, &d.block);
                let block_id = d.block.id();
                let _ = self.feed(
                    to,
                    Input::ProposalValidity {
                        height,
                        block_id,
                        valid,
                    },
                );
                for precommit in d.commit.precommits() {
                    let _ = self.feed(to, Input::Vote(precommit));
                }
            }
        }
    }

    fn learn_block(&mut self, node: usize, block: &Block) {
        let n = &mut self.nodes[node];
        let id = block.id();
        if let std::collections::hash_map::Entry::Vacant(slot) = n.blocks.entry(id) {
            slot.insert(block.clone());
            n.wal.push(WalEntry::Block(Box::new(block.clone())));
        }
    }

    /// Periodic gossip: re-send own messages of this height. A node stuck at the same height
    /// since the last tick also announces its height (peers that have decided it answer with
    /// the decision) and pushes everything it holds for the height to a few random peers, so that
    /// what one honest node received, every honest node eventually receives: the gossip
    /// property the paper's liveness proof assumes (CometBFT's reactor sends peers the votes
    /// they lack). Without it an equivocator can keep two honest groups locked apart.
    fn tick(&mut self, node: usize) {
        let own = self.nodes[node].own.clone();
        for (msg, audience) in own {
            self.broadcast(node, msg, audience);
        }
        let height = self.nodes[node].engine.height();
        let stuck = self.nodes[node].height_at_last_tick == height.0;
        self.nodes[node].height_at_last_tick = height.0;
        if stuck {
            self.broadcast(node, Rc::new(NetMsg::Status { height }), Audience::All);
            if self.nodes[node].is_honest() {
                self.anti_entropy(node);
            }
        }
    }

    fn anti_entropy(&mut self, node: usize) {
        let n = &self.nodes[node];
        let mut msgs: Vec<Rc<NetMsg>> = n
            .engine
            .proposals()
            .filter_map(|p| {
                let block = n.blocks.get(&p.proposal.block_id)?.clone();
                Some(Rc::new(NetMsg::Proposal {
                    proposal: p.clone(),
                    block,
                }))
            })
            .collect();
        msgs.extend(
            n.engine
                .votes()
                .all_votes()
                .map(|v| Rc::new(NetMsg::Vote(v.clone()))),
        );
        let count = self.nodes.len();
        for _ in 0..2 {
            let peer = self.rng.gen_range(0..count);
            if peer == node {
                continue;
            }
            for msg in &msgs {
                self.send(node, peer, msg.clone());
            }
        }
    }

    // ------------------------------------------------------------------ node driving

    /// Feeds one input and carries out everything that follows from it.
    fn feed(&mut self, node: usize, input: Input) -> Result<(), ConsensusError> {
        let outputs = self.apply(node, input)?;
        let mut work = VecDeque::new();
        for o in outputs {
            self.execute(node, o, &mut work);
        }
        self.drain(node, work);
        Ok(())
    }

    fn drain(&mut self, node: usize, mut work: VecDeque<Input>) {
        while let Some(input) = work.pop_front() {
            if let Ok(outputs) = self.apply(node, input) {
                for o in outputs {
                    self.execute(node, o, &mut work);
                }
            }
        }
    }

    /// Hands the input to the engine and logs it to the WAL once accepted.
    fn apply(&mut self, node: usize, input: Input) -> Result<Vec<Output>, ConsensusError> {
        let n = &mut self.nodes[node];
        let outputs = n.engine.handle(input.clone())?;
        n.wal.push(WalEntry::Input(input));
        Ok(outputs)
    }

    fn start_height(&mut self, node: usize, height: Height) {
        let validators = self.valset(height);
        {
            let n = &mut self.nodes[node];
            n.wal.clear();
            n.own.clear();
            n.blocks.clear();
        }
        if self
            .feed(node, Input::NewHeight { height, validators })
            .is_err()
        {
            return;
        }
        let n = &mut self.nodes[node];
        let mut ready = Vec::new();
        while let Some((&h, _)) = n.future.first_key_value() {
            if h > height.0 {
                break;
            }
            let (h, msgs) = n.future.pop_first().expect("non-empty");
            n.future_len -= msgs.len();
            if h == height.0 {
                ready.extend(msgs);
            }
        }
        for (from, msg) in ready {
            self.on_message(node, from, msg);
        }
    }

    fn restart(&mut self, node: usize) {
        let next = self.nodes[node].next_height();
        let wal = std::mem::take(&mut self.nodes[node].wal);
        self.nodes[node].up = true;
        let resumable = matches!(wal.first(), Some(WalEntry::Input(Input::NewHeight { height, .. })) if *height == next);
        if resumable {
            // Replay the WAL into the fresh engine, then carry out what it asks for: the double-
            // sign guard turns repeats into identical re-signs and refuses anything older.
            let mut outputs = Vec::new();
            {
                let n = &mut self.nodes[node];
                for entry in &wal {
                    match entry {
                        WalEntry::Block(b) => {
                            n.blocks.insert(b.id(), (**b).clone());
                        }
                        WalEntry::Input(input) => {
                            if let Ok(o) = n.engine.handle(input.clone()) {
                                outputs.extend(o);
                            }
                            match input {
                                Input::Vote(v) if v.vote.validator == n.address => {
                                    n.own
                                        .push((Rc::new(NetMsg::Vote(v.clone())), Audience::All));
                                }
                                Input::Proposal(p) if p.proposal.proposer == n.address => {
                                    if let Some(block) = n.blocks.get(&p.proposal.block_id) {
                                        let msg = NetMsg::Proposal {
                                            proposal: p.clone(),
                                            block: block.clone(),
                                        };
                                        n.own.push((Rc::new(msg), Audience::All));
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                }
                n.wal = wal;
            }
            let mut work = VecDeque::new();
            for o in outputs {
                self.execute(node, o, &mut work);
            }
            self.drain(node, work);
        } else {
            self.start_height(node, next);
        }
        let incarnation = self.nodes[node].incarnation;
        self.schedule(self.cfg.net.tick_ms / 2, Event::Tick { node, incarnation });
    }

    fn execute(&mut self, node: usize, output: Output, work: &mut VecDeque<Input>) {
        match output {
            Output::Propose(p) => {
                if self.nodes[node].role == Role::Equivocator {
                    self.byzantine_propose(node, p, work)
                } else {
                    self.honest_propose(node, p, work)
                }
            }
            Output::Vote(v) => {
                if self.nodes[node].role == Role::Equivocator {
                    self.byzantine_vote(node, v, work)
                } else {
                    self.honest_vote(node, v, work)
                }
            }
            Output::ScheduleTimeout {
                height,
                round,
                kind,
                after,
            } => {
                let incarnation = self.nodes[node].incarnation;
                self.schedule(
                    after.as_millis() as u64,
                    Event::Timeout {
                        node,
                        incarnation,
                        height,
                        round,
                        kind,
                    },
                );
            }
            Output::RequestValue { height, round } => {
                let nonce = self.rng.gen();
                let block = make_block(CHAIN_ID, height, self.nodes[node].address, nonce);
                let block_id = block.id();
                self.learn_block(node, &block);
                work.push_back(Input::ValueReady {
                    height,
                    round,
                    block_id,
                });
            }
            Output::Decide {
                height,
                proposal,
                commit,
                ..
            } => {
                let block_id = proposal.proposal.block_id;
                let Some(block) = self.nodes[node].blocks.get(&block_id).cloned() else {
                    return;
                };
                if self.nodes[node].is_honest() {
                    let valid = block_is_valid(CHAIN_ID, height, &block);
                    self.checker.decided(node, height, block_id, valid);
                }
                self.nodes[node].chain.insert(
                    height.0,
                    Decided {
                        proposal,
                        block,
                        commit,
                    },
                );
                let incarnation = self.nodes[node].incarnation;
                let after = self.cfg.timeouts.commit.as_millis() as u64;
                self.schedule(
                    after,
                    Event::NextHeight {
                        node,
                        incarnation,
                        height: height.next(),
                    },
                );
            }
            Output::Evidence(ev) => {
                if self.nodes[node].is_honest() {
                    self.checker.evidence(node, &ev);
                }
            }
        }
    }

    /// Signs through the double-sign guard; `None` when the guard refuses.
    fn guarded_sign(
        &mut self,
        node: usize,
        height: Height,
        round: Round,
        step: SignStep,
        bytes: Vec<u8>,
    ) -> Option<basalt_types::Signature> {
        let n = &mut self.nodes[node];
        let signature = match n.signer.check(height, round, step, &bytes) {
            Ok(SignDecision::Sign) => {
                let s = n.key.sign(&bytes);
                n.signer.record(height, round, step, bytes.clone(), s);
                s
            }
            Ok(SignDecision::Reuse(s)) => s,
            Err(_) => return None,
        };
        self.checker
            .honest_signed(node, height, round, step, &bytes);
        Some(signature)
    }

    fn honest_vote(&mut self, node: usize, vote: Vote, work: &mut VecDeque<Input>) {
        let step = match vote.vote_type {
            VoteType::Prevote => SignStep::Prevote,
            VoteType::Precommit => SignStep::Precommit,
        };
        let bytes = vote.sign_bytes(CHAIN_ID);
        let Some(signature) = self.guarded_sign(node, vote.height, vote.round, step, bytes) else {
            return;
        };
        let signed = SignedVote { vote, signature };
        let msg = Rc::new(NetMsg::Vote(signed.clone()));
        self.nodes[node].own.push((msg.clone(), Audience::All));
        self.broadcast(node, msg, Audience::All);
        work.push_back(Input::Vote(signed));
    }

    fn honest_propose(&mut self, node: usize, proposal: Proposal, work: &mut VecDeque<Input>) {
        let Some(block) = self.nodes[node].blocks.get(&proposal.block_id).cloned() else {
            return;
        };
        let bytes = proposal.sign_bytes(CHAIN_ID);
        let (height, round) = (proposal.height, proposal.round);
        let Some(signature) = self.guarded_sign(node, height, round, SignStep::Propose, bytes)
        else {
            return;
        };
        let signed = SignedProposal {
            proposal,
            signature,
        };
        self.send_proposal(node, signed, block, Audience::All, work);
    }

    fn send_proposal(
        &mut self,
        node: usize,
        signed: SignedProposal,
        block: Block,
        audience: Audience,
        work: &mut VecDeque<Input>,
    ) {
        let (height, block_id) = (signed.proposal.height, signed.proposal.block_id);
        self.checker.proposed(block_id);
        let valid = block_is_valid(CHAIN_ID, height, &block);
        let msg = Rc::new(NetMsg::Proposal {
            proposal: signed.clone(),
            block,
        });
        self.nodes[node].own.push((msg.clone(), audience));
        self.broadcast(node, msg, audience);
        work.push_back(Input::Proposal(signed));
        work.push_back(Input::ProposalValidity {
            height,
            block_id,
            valid,
        });
    }

    /// A Byzantine proposer signs two different proposals and sends one to each half of the
    /// honest validators (the lower block id to half 0); its accomplices see both.
    fn byzantine_propose(&mut self, node: usize, proposal: Proposal, work: &mut VecDeque<Input>) {
        let Some(first) = self.nodes[node].blocks.get(&proposal.block_id).cloned() else {
            return;
        };
        let nonce = self.rng.gen();
        let second = make_block(CHAIN_ID, proposal.height, self.nodes[node].address, nonce);
        self.learn_block(node, &second);
        let other = Proposal {
            pol_round: None,
            block_id: second.id(),
            ..proposal.clone()
        };
        let mut pair = [(proposal, first), (other, second)];
        pair.sort_by_key(|(p, _)| p.block_id);
        for (half, (p, block)) in pair.into_iter().enumerate() {
            let key = self.nodes[node].key.clone();
            let signed = p.sign(CHAIN_ID, &key);
            // Colluders share both proposals at once (over their own channel), so that they
            // all split their votes the same way.
            let shared = Rc::new(NetMsg::Proposal {
                proposal: signed.clone(),
                block: block.clone(),
            });
            for accomplice in self.byzantine.clone() {
                if accomplice != node {
                    self.schedule(
                        0,
                        Event::Deliver {
                            to: accomplice,
                            from: node,
                            msg: shared.clone(),
                        },
                    );
                }
            }
            self.send_proposal(node, signed, block, Audience::Half(half), work);
        }
    }

    /// A Byzantine voter splits: with two proposals in the round, half 0 gets a vote for the
    /// lower block id and half 1 for the other; otherwise half 0 gets the engine's vote and
    /// half 1 a conflicting one (nil for a value, a value for nil).
    fn byzantine_vote(&mut self, node: usize, vote: Vote, work: &mut VecDeque<Input>) {
        let mut ids: Vec<BlockId> = self.nodes[node]
            .engine
            .proposals()
            .filter(|p| p.proposal.round == vote.round)
            .map(|p| p.proposal.block_id)
            .collect();
        ids.sort();
        ids.dedup();
        let values = if ids.len() >= 2 {
            [Some(ids[0]), Some(ids[1])]
        } else {
            let alternative = match vote.block_id {
                Some(_) => None,
                None => Some(
                    ids.first()
                        .copied()
                        .unwrap_or_else(|| BlockId(Hash::digest(&self.rng.gen::<[u8; 8]>()))),
                ),
            };
            [vote.block_id, alternative]
        };
        let key = self.nodes[node].key.clone();
        for (half, value) in values.into_iter().enumerate() {
            let signed = Vote {
                block_id: value,
                ..vote.clone()
            }
            .sign(CHAIN_ID, &key);
            self.checker
                .byzantine_vote(node, vote.height, vote.round, vote.vote_type, value);
            let msg = Rc::new(NetMsg::Vote(signed.clone()));
            self.nodes[node]
                .own
                .push((msg.clone(), Audience::Half(half)));
            self.broadcast(node, msg, Audience::Half(half));
            if half == 0 {
                work.push_back(Input::Vote(signed));
            }
        }
    }
}
