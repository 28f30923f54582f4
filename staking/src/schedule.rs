//! Which validator set runs consensus at which height: changes decided by block H take
//! effect at H+2, with priorities carried over as CometBFT does (`updateState`).

use crate::module::ValidatorUpdate;
use crate::validator_set::{ValidatorSet, ValidatorSetError};

/// The sets of the next two heights.
#[derive(Clone, Debug, PartialEq, Eq, borsh::BorshSerialize, borsh::BorshDeserialize)]
pub struct ValidatorSchedule {
    /// Set of the height about to be decided (H+1 after block H was executed).
    pub current: ValidatorSet,
    /// Set of the height after that (H+2).
    pub next: ValidatorSet,
}

impl ValidatorSchedule {
    /// At genesis the first height uses the genesis set (incremented once by
    /// `ValidatorSet::new`) and the second the same set incremented once more.
    pub fn genesis(set: ValidatorSet) -> Self {
        let mut next = set.clone();
        next.increment_proposer_priority(1);
        ValidatorSchedule { current: set, next }
    }

    /// After executing a block with `updates`: the old `next` becomes current, and the new
    /// `next` is it with the updates applied, advanced once.
    pub fn advance(&mut self, updates: &[ValidatorUpdate]) -> Result<(), ValidatorSetError> {
        let mut after = self.next.clone();
        after.update(updates.iter().map(|u| u.to_validator()).collect())?;
        after.increment_proposer_priority(1);
        self.current = std::mem::replace(&mut self.next, after);
        Ok(())
    }
}
