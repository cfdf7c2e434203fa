//! The nonparametric bootstrap over independent units (episodes, or bandit rows), computed from
//! resampled sums.
//!
//! Every estimator Quiver bootstraps is a function of sums over units: a mean is S/n, SNIPW is
//! Σ w r / Σ w, SN-PDIS is Σ_t (Σ_e w_{e,t} r_{e,t}) / (Σ_e w_{e,t}). A resample that draws unit
//! e c_e times has the sums S_j = Σ_e c_e X_{e,j}, where X is a sparse unit × slot matrix (CSR, one
//! row per unit). So one resample is: draw n indices, count them, and stream X once; no resampled
//! copy of the data is made.
//!
//! The draws are counter-based: draw j of resample b is `mulhi(mix(key_b + j·φ), n)` with
//! `key_b = mix(seed + mix(b·φ + 1))`, `mix` the SplitMix64 finaliser and φ = 0x9E3779B97F4A7C15
//! (Steele, Lea & Flood 2014; Lemire's multiply-high maps the 64-bit word to 0..n with bias at
//! most n/2^64). Any resample can be computed alone, so the resamples run in parallel on the CPU
//! cores and the GPU draws exactly the same indices (`kernels/bootstrap.cu`): results do not depend
//! on the thread count or the device, up to the order of floating-point sums.

use rayon::prelude::*;

pub use quiver_numerics::splitmix::{mix, PHI};

/// The key of resample `b` under `seed`.
#[inline]
pub fn resample_key(seed: u64, b: u64) -> u64 {
    mix(seed.wrapping_add(mix(b.wrapping_mul(PHI).wrapping_add(1))))
}

/// Draw `j` of the resample with key `key`: a unit index in `0..n`.
#[inline]
pub fn draw(key: u64, j: u64, n: u64) -> u64 {
    ((mix(key.wrapping_add(j.wrapping_mul(PHI))) as u128 * n as u128) >> 64) as u64
}

/// How many times each of the `counts.len()` units is drawn in resample `b` (n draws).
pub fn resample_counts(seed: u64, b: u64, counts: &mut [u32]) {
    counts.iter_mut().for_each(|c| *c = 0);
    let n = counts.len() as u64;
    let key = resample_key(seed, b);
    for j in 0..n {
        counts[draw(key, j, n) as usize] += 1;
    }
}

/// A sparse units × slots matrix in compressed rows: unit e's entries are
/// `slots[offsets[e]..offsets[e + 1]]` with values `values[..]` at the same positions.
#[derive(Debug, Clone, Default)]
pub struct UnitMatrix {
    /// Number of slots (columns).
    pub width: usize,
    /// Row starts, `units + 1` of them.
    pub offsets: Vec<usize>,
    /// Column of each entry.
    pub slots: Vec<u32>,
    /// Value of each entry.
    pub values: Vec<f64>,
}

impl UnitMatrix {
    /// An empty matrix of `width` slots.
    pub fn new(width: usize) -> Self {
        UnitMatrix { width, offsets: vec![0], slots: Vec::new(), values: Vec::new() }
    }

    /// Append the next unit's entries.
    pub fn push_unit(&mut self, entries: impl IntoIterator<Item = (usize, f64)>) {
        for (slot, v) in entries {
            debug_assert!(slot < self.width);
            self.slots.push(slot as u32);
            self.values.push(v);
        }
        self.offsets.push(self.slots.len());
    }

    /// Number of units.
    pub fn units(&self) -> usize {
        self.offsets.len() - 1
    }

    /// S_j = Σ_e counts_e X_{e,j} into `sums` (length `width`).
    pub fn weighted_sums(&self, counts: &[u32], sums: &mut [f64]) {
        sums.iter_mut().for_each(|s| *s = 0.0);
        for (e, &c) in counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let c = f64::from(c);
            for p in self.offsets[e]..self.offsets[e + 1] {
                sums[self.slots[p] as usize] += c * self.values[p];
            }
        }
    }
}

/// Reduces one resample's slot sums to the value of each estimator.
pub type Stat<'a> = &'a (dyn Fn(&[f64]) -> Vec<f64> + Sync);

/// What the bootstrap computes: `resamples` resamples of the units of `x` under `seed`, each
/// reduced by `stat` from its slot sums to one value per estimator (so only B × estimators
/// values are kept, however wide X is).
pub struct Plan<'a> {
    /// The per-unit values.
    pub x: &'a UnitMatrix,
    /// Number of resamples B.
    pub resamples: usize,
    /// Seed.
    pub seed: u64,
    /// The estimators as functions of the slot sums.
    pub stat: Stat<'a>,
}

impl Plan<'_> {
    /// Elementary steps of the CPU bootstrap: B × (n draws + nonzeros of X).
    pub fn work(&self) -> f64 {
        self.resamples as f64 * (self.x.units() + self.x.values.len()) as f64
    }

    /// The estimators on every resample, on the CPU cores (row b of the result is resample b).
    pub fn stats_cpu(&self) -> Vec<Vec<f64>> {
        let n = self.x.units();
        (0..self.resamples as u64)
            .into_par_iter()
            .map_init(
                || (vec![0u32; n], vec![0.0; self.x.width]),
                |(counts, sums), b| {
                    resample_counts(self.seed, b, counts);
                    self.x.weighted_sums(counts, sums);
                    (self.stat)(sums)
                },
            )
            .collect()
    }
}

/// The `p` quantile of sorted values (linear interpolation between order statistics, NumPy's
/// default).
pub fn quantile_sorted(sorted: &[f64], p: f64) -> f64 {
    let h = p * (sorted.len() - 1) as f64;
    let (lo, f) = (h.floor() as usize, h - h.floor());
    if lo + 1 < sorted.len() {
        sorted[lo] + f * (sorted[lo + 1] - sorted[lo])
    } else {
        sorted[lo]
    }
}

/// Percentile interval (α/2 and 1 − α/2 quantiles) of the finite values among `stats`; NaN ends
/// when none is finite.
pub fn percentile_interval(stats: impl IntoIterator<Item = f64>, alpha: f64) -> (f64, f64) {
    let mut s: Vec<f64> = stats.into_iter().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    s.sort_by(f64::total_cmp);
    (quantile_sorted(&s, alpha / 2.0), quantile_sorted(&s, 1.0 - alpha / 2.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_uniform_and_reproducible() {
        let mut c = vec![0u32; 10];
        let mut total = vec![0u64; 10];
        for b in 0..10_000 {
            resample_counts(7, b, &mut c);
            assert_eq!(c.iter().sum::<u32>(), 10);
            for (t, &x) in total.iter_mut().zip(&c) {
                *t += u64::from(x);
            }
        }
        // each unit is drawn 10^4 times on average, sd 100 · sqrt(0.9) ≈ 95
        assert!(total.iter().all(|&t| (t as f64 - 10_000.0).abs() < 400.0), "{total:?}");
        let mut again = vec![0u32; 10];
        resample_counts(7, 3, &mut c);
        resample_counts(7, 3, &mut again);
        assert_eq!(c, again);
        resample_counts(8, 3, &mut again);
        assert_ne!(c, again, "another seed, other draws");
    }

    #[test]
    fn sums_equal_the_resampled_data() {
        let mut x = UnitMatrix::new(3);
        for e in 0..50 {
            x.push_unit([(0, e as f64), (2, 1.0 + (e % 3) as f64)]);
        }
        let plan = Plan { x: &x, resamples: 20, seed: 4, stat: &|s| s.to_vec() };
        let sums = plan.stats_cpu();
        for (b, s) in sums.iter().enumerate() {
            let key = resample_key(4, b as u64);
            let idx: Vec<u64> = (0..50).map(|j| draw(key, j, 50)).collect();
            let want0: f64 = idx.iter().map(|&e| e as f64).sum();
            let want2: f64 = idx.iter().map(|&e| 1.0 + (e % 3) as f64).sum();
            assert_eq!((s[0], s[1], s[2]), (want0, 0.0, want2));
        }
    }
}
