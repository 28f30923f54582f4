//! Clients sending signed transfers and delegations through random honest nodes, and the
//! bookkeeping that checks every admitted transaction is committed once or accounted for.

use super::*;

impl World {
    /// Each client account with nothing in flight sends its next nonce (to a random
    /// account) through a random honest node that is up; one time in four it first sends
    /// the nonce after it through another random node, which must hold it until the
    /// earlier one arrives (the mempool's waiting transactions).
    pub(super) fn client_sends(&mut self) {
        let up: Vec<usize> = self
            .nodes
            .iter()
            .filter(|n| n.is_honest() && n.up)
            .map(|n| n.index)
            .collect();
        if up.is_empty() {
            return;
        }
        let a = self.rng.gen_range(0..ACCOUNTS);
        if !self.accounts[a].in_flight.is_empty() {
            return;
        }
        // Mostly transfers; one in five a delegation of one unit of power to a random
        // honest validator, which changes the validator set two heights after its block.
        // Never to a Byzantine one: enough delegations would lift its share to a third of
        // the power, past what the run claims to tolerate (seed 163 of 4 validators did,
        // and stalled for want of a quorum of honest power).
        let msg = if self.rng.gen_bool(0.2) {
            let v = up[self.rng.gen_range(0..up.len())];
            Msg::Delegate {
                validator: self.nodes[v].address,
                amount: 1_000_000,
            }
        } else {
            Msg::Transfer {
                to: self.random_account(),
                amount: 10,
            }
        };
        let nonce = self.accounts[a].nonce;
        let next = self.rng.gen_bool(0.25).then(|| Msg::Transfer {
            to: self.random_account(),
            amount: 10,
        });
        let first = self.sign_for(a, nonce, msg);
        if let Some(msg) = next {
            let ahead = self.sign_for(a, nonce + 1, msg);
            let hash = self.submit(a, ahead, &up);
            self.sent_ahead_of
                .insert(hash, basalt_runtime::tx_hash(&first));
        }
        self.submit(a, first, &up);
    }

    fn random_account(&mut self) -> basalt_types::Address {
        account_key(self.rng.gen_range(0..ACCOUNTS))
            .public_key()
            .address()
    }

    fn sign_for(&self, a: usize, nonce: u64, msg: Msg) -> Vec<u8> {
        let tx: SignedTx = TxBody {
            chain_id: CHAIN_ID.into(),
            nonce,
            fee: 1,
            msg,
        }
        .sign(&self.accounts[a].key);
        tx.to_bytes()
    }

    /// Submits `bytes` from account `a` through a random node of `up`; returns its hash.
    fn submit(&mut self, a: usize, bytes: Vec<u8>, up: &[usize]) -> Hash {
        let hash = basalt_runtime::tx_hash(&bytes);
        let node = up[self.rng.gen_range(0..up.len())];
        self.feed(
            node,
            Event::SubmitTx {
                tx: bytes,
                verified: None,
            },
            None,
        );
        if self.admitted.contains_key(&hash) {
            self.accounts[a].in_flight.push(hash);
        }
        hash
    }

    pub(super) fn committed(&mut self, i: usize, c: &basalt_node::driver::Committed) {
        if !self.nodes[i].is_honest() {
            return;
        }
        let height = c.block.header.height;
        let block_id = c.block.id();
        let valid = c.block.header.chain_id == CHAIN_ID && c.block.body_matches_header();
        self.checker.decided(i, height, block_id, valid);
        // Evidence an honest node committed catches its validator, whoever detected it
        // first (an equivocator's accomplices often do, and gossip it).
        for ev in &c.block.evidence {
            let basalt_types::Evidence::DuplicateVote(d) = ev;
            self.checker.evidence(i, d);
        }
        let app_hash = c.applied.result.app_hash;
        match self.app_hashes.get(&height.0) {
            Some(&(first, h)) if h != app_hash => self.checker.app_hash_differs(height.0, first, i),
            Some(_) => {}
            None => {
                self.app_hashes.insert(height.0, (i, app_hash));
                self.light_client_check(i, c);
                // First commit of this height: count its transactions once.
                for tx in &c.block.txs {
                    let hash = basalt_runtime::tx_hash(tx);
                    if let Some(a) = self.admitted.get_mut(&hash) {
                        a.committed += 1;
                        if a.committed > 1 {
                            self.checker.tx_twice(hash);
                        }
                    }
                    for acc in &mut self.accounts {
                        if let Some(at) = acc.in_flight.iter().position(|h| *h == hash) {
                            acc.in_flight.remove(at);
                            acc.nonce += 1;
                        }
                    }
                }
            }
        }
    }

    /// Admitted transfers never committed, each with why: still waiting in a live node's
    /// mempool, lost with the mempool of the node that admitted it, or sent ahead of a
    /// predecessor that never committed (it waited, then expired).
    pub(super) fn dropped_txs(&self) -> Vec<(Hash, &'static str)> {
        self.admitted
            .iter()
            .filter(|(_, a)| a.committed == 0)
            .map(|(h, a)| {
                let pending = self
                    .nodes
                    .iter()
                    .any(|n| n.driver.as_ref().is_some_and(|d| d.mempool.contains(h)));
                let node = &self.nodes[a.node];
                let reason = if node.incarnation != a.incarnation {
                    "its node crashed before the transfer was committed (mempools are not durable)"
                } else if pending {
                    "still in a mempool when the run ended"
                } else if self
                    .sent_ahead_of
                    .get(h)
                    .is_some_and(|p| self.admitted.get(p).is_none_or(|pa| pa.committed == 0))
                {
                    "sent ahead of a transaction that never committed: it expired waiting"
                } else {
                    "lost"
                };
                (*h, reason)
            })
            .collect()
    }

    pub(super) fn check_transactions(&mut self) {
        for (hash, reason) in self.dropped_txs() {
            if reason == "lost" {
                self.checker.tx_lost(hash);
            }
        }
    }
}
