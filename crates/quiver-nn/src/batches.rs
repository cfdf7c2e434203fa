//! Minibatches by counter-based draws: row j of step t's batch is
//! ⌊n · mix(key(seed) + t·B + j) / 2⁶⁴⌋ (SplitMix64's finaliser, Lemire's multiply-shift to a range),
//! so a batch depends only on the seed, the step and n — not on the thread count, nor on the
//! batches drawn before (a run resumed from a checkpoint at step t draws what it would have).

use quiver_numerics::splitmix::mix;

/// The rows of step `step`'s minibatch of `out.len()` rows drawn with replacement from `0..n`.
pub fn minibatch(seed: u64, step: u64, n: usize, out: &mut [u32]) {
    assert!(n > 0 && n <= u32::MAX as usize + 1, "minibatch: n out of range");
    let key = mix(seed ^ 0x6261_7463_6865_7300);
    let base = step.wrapping_mul(out.len() as u64);
    for (j, row) in out.iter_mut().enumerate() {
        let h = mix(key.wrapping_add(base).wrapping_add(j as u64));
        *row = ((u128::from(h) * n as u128) >> 64) as u32;
    }
}
