//! The event loop: simulated nodes running the shipped [`Driver`] over a simulated network,
//! disk and clock, all from one seed.
//!
//! The world only plays what is outside a node: links (delay, loss, duplication,
//! partitions), gossipsub (a message a node accepts is forwarded to a few peers; each node
//! delivers a message once), request-response (with a timeout), power cuts (the disk keeps
//! what was flushed), clients sending signed transfers, and the adversary (equivocators
//! rewrite what their own driver sends). Every decision is the driver's.

mod adversary;
mod clients;
mod light;
mod network;

use super::checker::{Checker, Violation};
use super::config::{ByzantineMode, PowerMode, SimConfig};
use super::faults::FaultPlan;
use super::node::{Audience, Role, Shared, SimNode};
use basalt_consensus::signer::SignStep;
use basalt_node::driver::verify::MemoVerifier;
use basalt_node::driver::{Effect, Event, Now, Timer, GOSSIP_TICK, TICK};
use basalt_node::wire::{self, ConsensusMsg, SyncResponse};
use basalt_p2p::{PeerId, Topic, Verdict};
use basalt_runtime::{Msg, SignedTx, TxBody};
use basalt_staking::ValidatorSet;
use basalt_types::{BlockId, Hash, Header, PrivateKey, Proposal, Timestamp, Vote, VoteType};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::rc::Rc;
use std::sync::Arc;

pub const CHAIN_ID: &str = "basalt-sim";

/// Simulated time the run goes on after the liveness target, for late evidence to spread.
const DRAIN_MS: u64 = 1500;
/// A sync request without an answer by then fails (libp2p's request-response timeout).
const REQUEST_TIMEOUT_MS: u64 = 2000;
/// Clients send a transfer about this often until the faults are over.
const TX_EVERY_MS: u64 = 120;
/// Funded client accounts (each keeps one transfer in flight).
const ACCOUNTS: usize = 12;
/// 2026-01-01T00:00:00Z, the genesis time; simulated time runs from it.
const GENESIS_SECONDS: i64 = 1_767_225_600;

/// What travels between simulated nodes.
#[derive(Debug)]
enum Payload {
    Gossip {
        topic: Topic,
        data: Rc<Vec<u8>>,
        id: Hash,
    },
    Request {
        id: u64,
        data: Vec<u8>,
    },
    Reply {
        id: u64,
        response: Result<SyncResponse, String>,
    },
}

enum Ev {
    Deliver {
        to: usize,
        from: usize,
        payload: Rc<Payload>,
    },
    Timer {
        node: usize,
        incarnation: u32,
        timer: Timer,
    },
    Tick {
        node: usize,
        incarnation: u32,
    },
    Flush {
        node: usize,
        incarnation: u32,
    },
    RequestTimeout {
        node: usize,
        id: u64,
    },
    Crash(usize),
    /// Arms a power cut at the node's `writes`-th store write from now.
    CutPower {
        node: usize,
        writes: u32,
    },
    Restart(usize),
    PartitionStart(usize),
    PartitionEnd,
    Stable,
    Client,
}

struct Scheduled {
    at: u64,
    seq: u64,
    event: Ev,
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
    /// Client transfers admitted by a node, committed, and dropped (with the reason).
    pub txs_admitted: usize,
    pub txs_committed: usize,
    pub txs_dropped: Vec<(Hash, &'static str)>,
    /// Committed transactions that a client sent before their predecessor (to another
    /// node): they waited in a mempool for the gap to fill.
    pub txs_sent_ahead_committed: usize,
    /// Heights the light client verified from the one before (any it refused is a violation).
    pub light_verified: u64,
    /// Restarts that found a torn WAL tail and cut it.
    pub torn_wals: usize,
    /// Store batches lost in crashes (applied but not yet flushed).
    pub lost_batches: usize,
    /// Power cuts that landed inside a store write (a batch or its flush).
    pub cuts_in_writes: usize,
}

/// One client account: its key and the transactions it has in flight.
struct Account {
    key: PrivateKey,
    nonce: u64,
    in_flight: Vec<Hash>,
}

/// A transfer a node admitted: which node, in which of its lives.
struct Admitted {
    node: usize,
    incarnation: u32,
    committed: usize,
}

struct World {
    cfg: SimConfig,
    shared: Shared,
    rng: ChaCha8Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    nodes: Vec<SimNode>,
    by_peer: HashMap<PeerId, usize>,
    halves: [Vec<usize>; 2],
    byzantine: Vec<usize>,
    plan: FaultPlan,
    partition: Option<Vec<u8>>,
    checker: Checker,
    target: Option<u64>,
    deadline: u64,
    events: u64,
    messages: u64,
    next_request: u64,
    /// Sync requests waiting for an answer: (requester, id) → (its life, the peer asked).
    pending: BTreeMap<(usize, u64), (u32, usize)>,
    accounts: Vec<Account>,
    admitted: BTreeMap<Hash, Admitted>,
    /// A transaction sent before its predecessor (to another node) → that predecessor.
    sent_ahead_of: BTreeMap<Hash, Hash>,
    clients_on: bool,
    torn_wals: usize,
    lost_batches: usize,
    cuts_in_writes: usize,
    /// App hash after each height, as the first honest node to commit it computed it.
    app_hashes: BTreeMap<u64, (usize, Hash)>,
    /// The light client's last verified light block ([`light`]).
    light: Option<basalt_node::light::verify::LightBlock>,
    /// Heights the light client verified.
    light_verified: u64,
}

/// Runs one seed of `cfg` to completion and reports what the checker found.
pub fn run_seed(cfg: &SimConfig, seed: u64) -> SeedReport {
    let mut world = World::new(cfg, seed);
    world.run();
    let txs_dropped = world.dropped_txs();
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
        txs_admitted: world.admitted.len(),
        txs_committed: world.admitted.values().filter(|a| a.committed > 0).count(),
        txs_dropped,
        txs_sent_ahead_committed: world
            .sent_ahead_of
            .keys()
            .filter(|h| world.admitted.get(h).is_some_and(|a| a.committed > 0))
            .count(),
        light_verified: world.light_verified,
        torn_wals: world.torn_wals,
        lost_batches: world.lost_batches,
        cuts_in_writes: world.cuts_in_writes,
    }
}

fn validator_key(index: usize) -> PrivateKey {
    PrivateKey::from_seed(Hash::digest(format!("basalt-sim validator {index}").as_bytes()).0)
}

fn account_key(index: usize) -> PrivateKey {
    PrivateKey::from_seed(Hash::digest(format!("basalt-sim account {index}").as_bytes()).0)
}

fn peer_id(index: usize) -> PeerId {
    let seed = Hash::digest(format!("basalt-sim node key {index}").as_bytes()).0;
    basalt_p2p::keypair_from_seed(seed)
        .expect("a 32-byte seed is a key")
        .public()
        .to_peer_id()
}

/// The chain every node of a run starts from: the validators with their powers (self-bond
/// = power × power reduction), the client accounts funded, the run's timeouts.
fn genesis(cfg: &SimConfig, keys: &[PrivateKey], powers: &[u64]) -> basalt_genesis::Genesis {
    let validators = keys
        .iter()
        .zip(powers)
        .enumerate()
        .map(|(i, (k, p))| {
            (
                k.public_key(),
                k.public_key(),
                u128::from(*p) * 1_000_000,
                format!("sim{i}"),
            )
        })
        .collect();
    let accounts = (0..ACCOUNTS)
        .map(|i| (account_key(i).public_key().address(), 1_000_000_000u128))
        .collect();
    let mut g =
        basalt_genesis::Genesis::generate(CHAIN_ID, "2026-01-01T00:00:00Z", validators, accounts)
            .expect("the simulated genesis is valid");
    let t = &mut g.consensus_params.timeouts;
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    t.propose_ms = ms(cfg.timeouts.propose);
    t.propose_delta_ms = ms(cfg.timeouts.propose_delta);
    t.prevote_ms = ms(cfg.timeouts.prevote);
    t.prevote_delta_ms = ms(cfg.timeouts.prevote_delta);
    t.precommit_ms = ms(cfg.timeouts.precommit);
    t.precommit_delta_ms = ms(cfg.timeouts.precommit_delta);
    t.max_ms = ms(cfg.timeouts.max);
    t.commit_ms = ms(cfg.timeouts.commit);
    g
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

        let shared = Shared {
            genesis: genesis(cfg, &keys, &powers),
            verifier: Arc::new(MemoVerifier::new(1 << 20)),
            timeout_commit: cfg.timeouts.commit,
        };
        let nodes: Vec<SimNode> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| SimNode::new(i, k.clone(), peer_id(i), roles[i]))
            .collect();
        let by_peer = nodes.iter().map(|n| (n.peer, n.index)).collect();
        let plan = if cfg.faults {
            FaultPlan::draw(&mut rng, n, &honest)
        } else {
            FaultPlan::default()
        };
        let checker = Checker::new(
            roles.iter().map(|r| *r == Role::Honest).collect(),
            keys.iter().map(|k| k.public_key()).collect(),
        );
        let accounts = (0..ACCOUNTS)
            .map(|i| Account {
                key: account_key(i),
                nonce: 0,
                in_flight: Vec::new(),
            })
            .collect();
        let mut world = World {
            cfg: cfg.clone(),
            shared,
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            by_peer,
            halves,
            byzantine,
            plan,
            partition: None,
            checker,
            target: None,
            deadline: u64::MAX,
            events: 0,
            messages: 0,
            next_request: 0,
            pending: BTreeMap::new(),
            accounts,
            admitted: BTreeMap::new(),
            sent_ahead_of: BTreeMap::new(),
            clients_on: true,
            torn_wals: 0,
            lost_batches: 0,
            cuts_in_writes: 0,
            app_hashes: BTreeMap::new(),
            light: None,
            light_verified: 0,
        };
        world.schedule_start();
        world
    }

    fn schedule(&mut self, after_ms: u64, event: Ev) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at: self.now + after_ms,
            seq: self.seq,
            event,
        });
    }

    fn schedule_start(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].role != Role::Silent {
                self.boot(i);
            }
        }
        let plan = self.plan.clone();
        for (i, p) in plan.partitions.iter().enumerate() {
            self.schedule(p.start_ms, Ev::PartitionStart(i));
            self.schedule(p.end_ms, Ev::PartitionEnd);
        }
        for c in &plan.crashes {
            let ev = match c.at_write {
                Some(writes) => Ev::CutPower {
                    node: c.node,
                    writes,
                },
                None => Ev::Crash(c.node),
            };
            self.schedule(c.at_ms, ev);
            self.schedule(c.restart_ms, Ev::Restart(c.node));
        }
        self.schedule(plan.stable_at_ms(), Ev::Stable);
        self.schedule(TX_EVERY_MS, Ev::Client);
    }

    fn honest(&self) -> impl Iterator<Item = &SimNode> + '_ {
        self.nodes.iter().filter(|n| n.is_honest())
    }

    /// The voting power honest validators hold in the set of the most advanced running
    /// honest node, and the set's total: a stall with no honest quorum is the scenario's
    /// doing (seed 163 once: clients delegated the Byzantine validator up to a third).
    fn honest_power(&self) -> Option<(u64, u64)> {
        let d = self
            .honest()
            .filter_map(|n| n.driver.as_ref())
            .max_by_key(|d| d.chain.next_height())?;
        let set = d.chain.validators();
        let honest = set
            .validators()
            .iter()
            .filter(|v| self.honest().any(|n| n.address == v.address))
            .map(|v| v.voting_power)
            .sum();
        Some((honest, set.total_power()))
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
                honest_power: self.honest_power(),
            });
            if std::env::var_os("BASALT_SIM_DEBUG").is_some() {
                self.dump();
            }
        }
        self.check_transactions();
        self.checker.finish();
    }

    /// Prints every node's consensus state (for `BASALT_SIM_DEBUG=1` replays).
    fn dump(&self) {
        for n in &self.nodes {
            let Some(d) = &n.driver else {
                eprintln!("node {} {:?} down", n.index, n.role);
                continue;
            };
            let e = &d.engine;
            eprintln!(
                "node {} {:?} h={} r={} {:?} locked={:?} valid={:?} chain={} peers={:?}",
                n.index,
                n.role,
                e.height().0,
                e.round().0,
                e.step(),
                e.locked(),
                e.valid(),
                d.chain.next_height(),
                d.peers.values().collect::<Vec<_>>()
            );
        }
    }

    fn process(&mut self, event: Ev) {
        match event {
            Ev::Deliver { to, from, payload } => {
                if self.nodes[to].up && !self.partitioned(from, to) {
                    self.deliver(to, from, payload);
                }
            }
            Ev::Timer {
                node,
                incarnation,
                timer,
            } => {
                if self.alive(node, incarnation) {
                    self.feed(node, Event::Timer(timer), None);
                }
            }
            Ev::Tick { node, incarnation } => {
                if self.alive(node, incarnation) {
                    self.feed(node, Event::Tick, None);
                    self.schedule(TICK.as_millis() as u64, Ev::Tick { node, incarnation });
                }
            }
            Ev::Flush { node, incarnation } => {
                if self.alive(node, incarnation) {
                    self.nodes[node].flush_armed = false;
                    self.feed(node, Event::FlushTxs, None);
                }
            }
            Ev::RequestTimeout { node, id } => {
                if let Some((incarnation, peer)) = self.pending.remove(&(node, id)) {
                    if self.alive(node, incarnation) {
                        let from = self.nodes[peer].peer;
                        let response = Err("request timed out".to_string());
                        self.feed(node, Event::SyncReply { from, response }, None);
                    }
                }
            }
            Ev::Crash(node) => self.crash(node),
            Ev::CutPower { node, writes } => self.nodes[node].kv.cut_power_at_write(writes),
            Ev::Restart(node) => {
                // A power cut armed but not reached (the node wrote nothing since): now.
                if self.nodes[node].up {
                    self.crash(node);
                }
                self.boot(node)
            }
            Ev::PartitionStart(i) => self.partition = Some(self.plan.partitions[i].sides.clone()),
            Ev::PartitionEnd => self.partition = None,
            Ev::Stable => {
                self.clients_on = false;
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
            Ev::Client => {
                if self.clients_on {
                    self.client_sends();
                    self.schedule(TX_EVERY_MS, Ev::Client);
                }
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

    // ------------------------------------------------------------------ lifecycle

    /// Starts (or restarts) a node from its disk, connected to every node that is up.
    fn boot(&mut self, i: usize) {
        let (wal, torn) = self.nodes[i].boot(&self.shared);
        if torn {
            self.torn_wals += 1;
        }
        let incarnation = self.nodes[i].incarnation;
        self.feed(i, Event::Start { wal }, None);
        for j in 0..self.nodes.len() {
            if j != i && self.nodes[j].up {
                let (pi, pj) = (self.nodes[i].peer, self.nodes[j].peer);
                self.feed(i, Event::PeerConnected(pj), None);
                self.feed(j, Event::PeerConnected(pi), None);
            }
        }
        let jitter = self.rng.gen_range(0..TICK.as_millis() as u64);
        self.schedule(
            jitter,
            Ev::Tick {
                node: i,
                incarnation,
            },
        );
    }

    /// A power cut: unflushed store batches are lost, and the WAL keeps what was fsynced
    /// plus, one time in two, a torn piece of what was not.
    fn crash(&mut self, i: usize) {
        self.lost_batches += self.nodes[i].kv.unflushed_batches();
        let unsynced = self.nodes[i].wal.unsynced_bytes();
        let torn = if unsynced > 0 && self.rng.gen_bool(0.5) {
            self.rng.gen_range(0..unsynced)
        } else {
            0
        };
        self.nodes[i].crash(torn);
        let pi = self.nodes[i].peer;
        for j in 0..self.nodes.len() {
            if j != i && self.nodes[j].up {
                self.feed(j, Event::PeerDisconnected(pi), None);
            }
        }
    }

    // ------------------------------------------------------------------ driving a node

    /// Hands one event to node `i`'s driver and carries out the effects. `origin`: the
    /// sender of the gossip message or request being handled.
    /// The simulated wall clock.
    fn wall_now(&self) -> Timestamp {
        Timestamp {
            seconds: GENESIS_SECONDS + (self.now / 1000) as i64,
            nanos: ((self.now % 1000) * 1_000_000) as u32,
        }
    }

    fn feed(&mut self, i: usize, event: Event, origin: Option<(usize, Rc<Payload>)>) {
        let now = Now {
            wall: self.wall_now(),
            mono_ms: self.now,
        };
        let Some(driver) = self.nodes[i].driver.as_mut() else {
            return;
        };
        let effects = match driver.handle(now, event) {
            Ok(effects) => effects,
            Err(_) if self.nodes[i].kv.power_cut() => {
                // The planned power cut, inside one of its store writes.
                self.cuts_in_writes += 1;
                self.crash(i);
                return;
            }
            Err(e) => {
                self.checker.node_stopped(i, e.to_string());
                self.crash(i);
                return;
            }
        };
        for effect in effects {
            self.carry_out(i, effect, origin.as_ref());
        }
    }

    fn carry_out(&mut self, i: usize, effect: Effect, origin: Option<&(usize, Rc<Payload>)>) {
        match effect {
            Effect::Publish { topic, data } => self.publish(i, topic, data),
            Effect::Verdict(Verdict::Accept) => {
                if let Some((from, payload)) = origin {
                    self.relay(i, *from, payload.clone());
                }
            }
            Effect::Verdict(_) => {}
            Effect::Request { peer, request } => {
                let Some(&to) = self.by_peer.get(&peer) else {
                    return;
                };
                self.next_request += 1;
                let id = self.next_request;
                let incarnation = self.nodes[i].incarnation;
                self.pending.insert((i, id), (incarnation, to));
                let data = wire::encode(&request);
                self.send(i, to, Rc::new(Payload::Request { id, data }));
                self.schedule(REQUEST_TIMEOUT_MS, Ev::RequestTimeout { node: i, id });
            }
            Effect::Respond(data) => {
                if let Some((from, payload)) = origin {
                    if let Payload::Request { id, .. } = &**payload {
                        let response = wire::decode::<SyncResponse>(&data);
                        let reply = Payload::Reply { id: *id, response };
                        self.send(i, *from, Rc::new(reply));
                    }
                }
            }
            Effect::Penalise { .. } => {}
            Effect::Schedule { after, timer } => {
                let incarnation = self.nodes[i].incarnation;
                self.schedule(
                    after.as_millis() as u64,
                    Ev::Timer {
                        node: i,
                        incarnation,
                        timer,
                    },
                );
            }
            Effect::Committed(c) => self.committed(i, &c),
            Effect::TxAdmitted { hash, result } => {
                if result.is_ok() {
                    let incarnation = self.nodes[i].incarnation;
                    self.admitted.entry(hash).or_insert(Admitted {
                        node: i,
                        incarnation,
                        committed: 0,
                    });
                    if !self.nodes[i].flush_armed {
                        self.nodes[i].flush_armed = true;
                        let after = GOSSIP_TICK.as_millis() as u64;
                        self.schedule(
                            after,
                            Ev::Flush {
                                node: i,
                                incarnation,
                            },
                        );
                    }
                }
            }
            Effect::EvidenceAdmitted { .. } => {}
        }
    }

    /// A message arrives at `to`: gossip once per node (gossipsub's duplicate cache),
    /// requests and replies as they come.
    fn deliver(&mut self, to: usize, from: usize, payload: Rc<Payload>) {
        let from_peer = self.nodes[from].peer;
        match &*payload {
            Payload::Gossip { topic, data, id } => {
                if !self.nodes[to].seen.insert(*id) {
                    return;
                }
                let event = Event::Gossip {
                    topic: *topic,
                    from: from_peer,
                    data: (**data).clone(),
                };
                self.feed(to, event, Some((from, payload.clone())));
            }
            Payload::Request { data, .. } => {
                let event = Event::SyncRequest {
                    from: from_peer,
                    data: data.clone(),
                };
                self.feed(to, event, Some((from, payload.clone())));
            }
            Payload::Reply { id, response } => {
                let Some((incarnation, _)) = self.pending.remove(&(to, *id)) else {
                    return; // timed out already
                };
                if self.alive(to, incarnation) {
                    let response = response.clone();
                    self.feed(
                        to,
                        Event::SyncReply {
                            from: from_peer,
                            response,
                        },
                        None,
                    );
                }
            }
        }
    }
}
