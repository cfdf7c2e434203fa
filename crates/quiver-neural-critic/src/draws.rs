//! Counter-based draws for the training's own randomness (a target's sampled action and return,
//! a flow's noise and interpolants): each a function of a key and a counter, so that a step's draws
//! depend on the seed and the step alone, whatever the thread count.

use quiver_numerics::splitmix::mix;

/// A uniform on (0, 1) (never 0: its logarithm is finite) from `counter` under `key`.
pub fn uniform(key: u64, counter: u64) -> f64 {
    ((mix(key.wrapping_add(counter)) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// A standard normal from two uniforms (Box–Muller).
pub fn box_muller(u1: f64, u2: f64) -> f32 {
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// The action a uniform `u` picks from the probabilities `p` (the first whose cumulative sum passes
/// `u`; the last with positive probability when rounding leaves the sum short of `u`).
pub fn pick(p: &[f32], u: f32) -> usize {
    let mut acc = 0.0;
    p.iter()
        .position(|&w| {
            acc += w;
            u < acc
        })
        .unwrap_or_else(|| p.iter().rposition(|&w| w > 0.0).unwrap_or(0))
}
