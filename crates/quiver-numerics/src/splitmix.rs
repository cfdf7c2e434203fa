//! SplitMix64 (Steele, Lea & Flood, OOPSLA 2014): the counter-based draws of the bootstrap and the
//! seeded shuffles of the gradient solvers.

/// The golden-ratio increment of SplitMix64.
pub const PHI: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 finaliser (a bijection of 64-bit words with full avalanche).
#[inline]
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The next draw of the sequential generator: advance `state` by [`PHI`] and mix it.
#[inline]
pub fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(PHI);
    mix(*state)
}
