//! A light client watching the simulated chain: the first commit of every height is checked
//! by the shipped light client's verifier ([`basalt_node::light::verify`]), adjacent from the
//! height before, over the header, commit and validator sets the committing node stored. So
//! what equivocators, crashes and partitions leave in commits (absent signatures, faulty
//! timestamps, set changes) is also held to what a Tendermint light client accepts.

use super::*;
use basalt_node::light::verify::{verify, LightBlock, Options, Verdict};

impl World {
    pub(super) fn light_client_check(&mut self, i: usize, c: &basalt_node::driver::Committed) {
        let height = c.block.header.height.0;
        // Block `height` carries the commit of `height - 1`: that light block is complete.
        let (Some(commit), Some(driver)) = (&c.block.last_commit, self.nodes[i].driver.as_ref())
        else {
            return;
        };
        let store = &driver.store;
        let part = |h: u64| -> Option<(Header, ValidatorSet)> {
            Some((store.block(h).ok()??.header, store.validator_set(h).ok()??))
        };
        let (Some((header, validators)), Some(next_validators)) =
            (part(height - 1), store.validator_set(height).ok().flatten())
        else {
            return;
        };
        let lb = LightBlock {
            header,
            commit: commit.clone(),
            validators,
            next_validators,
        };
        if let Some(prev) = self.light.take().filter(|p| p.height() + 1 == lb.height()) {
            let options = Options {
                trusting_period_s: 24 * 3600,
                ..Options::default()
            };
            let now = self.wall_now();
            match verify(&prev, &lb, &options, now) {
                Verdict::Success => self.light_verified += 1,
                v => self
                    .checker
                    .light_client_refused(lb.height(), format!("{v:?}")),
            }
        }
        self.light = Some(lb);
    }
}
