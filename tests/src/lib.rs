//! Basalt's test harnesses. `sim`: N validators running the real consensus engine in one
//! process over a simulated network, all randomness drawn from one seed, so that any
//! failure replays exactly with `basalt-sim ... --seeds 1 --first-seed S`.

pub mod sim;
