//! Staking and slashing parameters (genesis, overridable) and the parts-per-million fractions
//! they use. Fractions are integers so that every node computes the same amounts.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// A fraction in parts per million: 50_000 is 5 %, 100 is 0.01 %.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
#[serde(transparent)]
pub struct Ppm(pub u32);

impl Ppm {
    pub const ONE: Ppm = Ppm(1_000_000);

    pub fn is_valid(self) -> bool {
        self.0 <= 1_000_000
    }

    /// ⌊amount × self⌋, exact for every u128 amount (the product is formed in 256 bits).
    pub fn of(self, amount: u128) -> u128 {
        mul_div(amount, self.0 as u128, 1_000_000)
    }
}

/// ⌊a × b / c⌋ computed in 256 bits, so it never overflows when the result fits in u128.
pub fn mul_div(a: u128, b: u128, c: u128) -> u128 {
    if c == 0 {
        return 0;
    }
    if let Some(p) = a.checked_mul(b) {
        return p / c;
    }
    // Long multiplication into (hi, lo), then long division by c.
    let (a_hi, a_lo) = (a >> 64, a & u64::MAX as u128);
    let (b_hi, b_lo) = (b >> 64, b & u64::MAX as u128);
    let ll = a_lo * b_lo;
    let lh = a_lo * b_hi;
    let hl = a_hi * b_lo;
    let hh = a_hi * b_hi;
    let mid = (ll >> 64) + (lh & u64::MAX as u128) + (hl & u64::MAX as u128);
    let lo = (ll & u64::MAX as u128) | (mid << 64);
    let hi = hh + (lh >> 64) + (hl >> 64) + (mid >> 64);
    // Divide the 256-bit (hi, lo) by c bit by bit.
    let mut rem: u128 = 0;
    let mut quot: u128 = 0;
    for i in (0..256).rev() {
        let bit = if i >= 128 {
            (hi >> (i - 128)) & 1
        } else {
            (lo >> i) & 1
        };
        let carry = rem >> 127;
        rem = (rem << 1) | bit;
        if carry == 1 || rem >= c {
            rem = rem.wrapping_sub(c);
            if i < 128 {
                quot |= 1 << i;
            }
        }
    }
    quot
}

/// DESIGN.md §4 defaults.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StakingParams {
    pub max_validators: u32,
    /// Blocks an undelegation waits before the tokens are paid out.
    pub unbonding_period: u64,
    /// Tokens per unit of voting power.
    #[serde(with = "crate::amount")]
    pub power_reduction: u128,
    pub slash_fraction_double_sign: Ppm,
    pub slash_fraction_downtime: Ppm,
    pub signed_blocks_window: u64,
    pub min_signed_per_window: Ppm,
    pub downtime_jail_duration: u64,
    /// Evidence older than this many blocks is refused.
    pub evidence_max_age: u64,
    /// Tokens minted every block and paid, with the fees, to the validators that signed.
    #[serde(with = "crate::amount")]
    pub block_reward: u128,
}

impl Default for StakingParams {
    fn default() -> Self {
        StakingParams {
            max_validators: 100,
            unbonding_period: 1_000,
            power_reduction: 1_000_000,
            slash_fraction_double_sign: Ppm(50_000),
            slash_fraction_downtime: Ppm(100),
            signed_blocks_window: 100,
            min_signed_per_window: Ppm(500_000),
            downtime_jail_duration: 100,
            evidence_max_age: 1_000,
            block_reward: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mul_div_matches_wide_arithmetic() {
        assert_eq!(mul_div(10, 3, 4), 7);
        assert_eq!(mul_div(u128::MAX, 2, 4), u128::MAX / 2);
        assert_eq!(mul_div(u128::MAX, u128::MAX, u128::MAX), u128::MAX);
        assert_eq!(mul_div(1 << 100, 1 << 100, 1 << 120), 1 << 80);
        assert_eq!(Ppm(50_000).of(150_000_000), 7_500_000);
        assert_eq!(Ppm(100).of(1_000_000), 100);
    }
}
