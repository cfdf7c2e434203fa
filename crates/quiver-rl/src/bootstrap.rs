//! The nonparametric bootstrap over independent units (episodes, or bandit rows), computed from
//! resampled sums.
//!
//! Every estimator Quiver bootstraps is a function of sums over units: a mean is S/N, SNIPW is
//! Σ w r / Σ w, SN-PDIS is Σ_t (Σ_e w_{e,t} r_{e,t}) / (Σ_e w_{e,t}). A resample that takes unit
//! e c_e times has the sums S_j = Σ_e c_e X_{e,j} and the size N = Σ_e c_e, where X is a sparse
//! unit × slot matrix (CSR, one row per unit). So one resample is: draw the counts, and stream X
//! once; no resampled copy of the data is made.
//!
//! The counts are **Poisson(1), one per unit, counter-based** (the Poisson bootstrap: Hanley &
//! MacGibbon 2006; Chamandy, Muralidharan, Najmi & Naidu 2012, for data streamed or split across
//! machines): unit e's count in resample b is the Poisson(1) variate at the uniform
//! `mix(key_b + k_e·φ)`, where k_e is the unit's **key** — its place in the whole table (a bandit
//! row's index) or its own id (an episode's) — `key_b = mix(seed + mix(b·φ + 1))`, `mix` the
//! SplitMix64 finaliser and φ = 0x9E3779B97F4A7C15 (Steele, Lea & Flood 2014). A unit's count
//! depends on nothing but the seed, the resample and the unit, so (i) the resamples run in parallel
//! on the CPU cores and the GPU draws exactly the same counts (`kernels/ope.cu`), and (ii) data
//! split into partitions give each partition's resampled sums on their own, which add up to those
//! of the whole (docs/scale.md): results depend neither on the thread count, the device nor the
//! partitioning, up to the order of floating-point sums. Unlike the multinomial bootstrap (n draws
//! of n), a resample's size N varies around n (variance n); statistics are ratios of sums and use
//! it. A resample that takes no unit at all (probability e^{−n}) gives non-finite statistics and
//! is left out of the percentiles.

use rayon::prelude::*;

pub use quiver_numerics::splitmix::{mix, PHI};

/// The Poisson(1) CDF at 0..20 as the recursion p_k = p_{k−1}/k, F_k = F_{k−1} + p_k from
/// p_0 = e^{−1} computes it in double precision (a test checks them against the recursion; the
/// CUDA kernel is given these constants, `crate::gpu::ope_kernel`).
#[rustfmt::skip]
pub const POISSON1_CDF: [f64; 20] = [
    0.36787944117144233,
    0.7357588823428847,
    0.9196986029286058,
    0.9810118431238463,
    0.9963401531726563,
    0.9994058151824183,
    0.999916758850712,
    0.9999897508033253,
    0.999998874797402,
    0.9999998885745216,
    0.9999999899522336,
    0.9999999991683892,
    0.9999999999364022,
    0.9999999999954802,
    0.9999999999997,
    0.9999999999999813,
    0.9999999999999989,
    0.9999999999999999,
    1.0,
    1.0,
];

/// The key of resample `b` under `seed`.
#[inline]
pub fn resample_key(seed: u64, b: u64) -> u64 {
    mix(seed.wrapping_add(mix(b.wrapping_mul(PHI).wrapping_add(1))))
}

/// A Poisson(1) variate from the 64-bit word `u`: the inverse of its CDF at the uniform of u's top
/// 53 bits — the first k with U < F_k, at most 20 ([`POISSON1_CDF`]; the CUDA kernel's same
/// comparisons).
#[inline]
pub fn poisson1(u: u64) -> u32 {
    let x = (u >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0);
    // the table rises, so the first k with U < F_k is the number of F_j ≤ U: counted without a
    // branch over the first six (all but 6·10^-4 of the draws), then one by one
    let mut k: usize = POISSON1_CDF[..6].iter().map(|&f| usize::from(x >= f)).sum();
    if k == 6 {
        while k < 20 && x >= POISSON1_CDF[k] {
            k += 1;
        }
    }
    k as u32
}

/// The count of the unit with key `unit` in the resample with key `key`.
#[inline]
pub fn unit_count(key: u64, unit: u64) -> u32 {
    poisson1(mix(key.wrapping_add(unit.wrapping_mul(PHI))))
}

/// The keys of the units of a [`Plan`]: unit e's key is `first + e` (its place in the whole table,
/// when this table is a part of it), or `ids[e]` (an episode's id).
#[derive(Debug, Clone, Copy)]
pub enum UnitKeys<'a> {
    /// Keys `first`, `first + 1`, ….
    From(u64),
    /// One key per unit.
    Ids(&'a [u64]),
}

impl UnitKeys<'_> {
    /// The key of unit `e`.
    #[inline]
    pub fn of(&self, e: usize) -> u64 {
        match self {
            UnitKeys::From(first) => first.wrapping_add(e as u64),
            UnitKeys::Ids(ids) => ids[e],
        }
    }
}

/// Each unit's count in resample `b` (keys `keys`); returns the resample's size Σ counts.
pub fn resample_counts(seed: u64, b: u64, keys: UnitKeys<'_>, counts: &mut [u32]) -> u64 {
    let key = resample_key(seed, b);
    let mut size = 0u64;
    for (e, c) in counts.iter_mut().enumerate() {
        *c = unit_count(key, keys.of(e));
        size += u64::from(*c);
    }
    size
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

/// Reduces one resample's slot sums and its size N (units taken, with multiplicity) to the value of
/// each estimator.
pub type Stat<'a> = &'a (dyn Fn(&[f64], f64) -> Vec<f64> + Sync);

/// What the bootstrap computes: `resamples` resamples of the units of `x` (keys `keys`) under
/// `seed`, each reduced by `stat` from its slot sums to one value per estimator (so only B ×
/// estimators values are kept, however wide X is).
pub struct Plan<'a> {
    /// The per-unit values.
    pub x: &'a UnitMatrix,
    /// The units' keys.
    pub keys: UnitKeys<'a>,
    /// Number of resamples B.
    pub resamples: usize,
    /// Seed.
    pub seed: u64,
    /// The estimators as functions of the slot sums and the resample's size.
    pub stat: Stat<'a>,
}

impl Plan<'_> {
    /// Elementary steps of the CPU bootstrap: B × (n counts + nonzeros of X).
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
                    let size = self.resample(b, counts, sums);
                    (self.stat)(sums, size)
                },
            )
            .collect()
    }

    /// Every resample's slot sums followed by its size (B rows of `width + 1`): what a partition of
    /// the units contributes to the bootstrap of the whole ([`ResampledSums`]).
    pub fn sums_cpu(&self) -> ResampledSums {
        let (n, w) = (self.x.units(), self.x.width);
        let mut sums = vec![0.0; self.resamples * (w + 1)];
        sums.par_chunks_mut(w + 1).enumerate().for_each_init(
            || vec![0u32; n],
            |counts, (b, row)| row[w] = self.resample(b as u64, counts, &mut row[..w]),
        );
        ResampledSums { width: w, sums }
    }

    /// Resample `b`: its counts into `counts`, its slot sums into `sums`; returns its size.
    fn resample(&self, b: u64, counts: &mut [u32], sums: &mut [f64]) -> f64 {
        let size = resample_counts(self.seed, b, self.keys, counts);
        self.x.weighted_sums(counts, sums);
        size as f64
    }
}

/// The bootstrap's resampled sums of some units (a partition of the data): for each resample b,
/// the slot sums S_b and the size N_b, in rows of `width + 1`. Partitions' sums add up to those of
/// all their units (the counts are per unit), so a bootstrap runs by parts.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResampledSums {
    /// Slots per resample (the size follows them).
    pub width: usize,
    /// B rows of `width + 1`.
    pub sums: Vec<f64>,
}

impl ResampledSums {
    /// Resamples.
    pub fn resamples(&self) -> usize {
        self.sums.len() / (self.width + 1)
    }
    /// Add `other`'s sums (the same resamples and slots).
    pub fn add(&mut self, other: &ResampledSums) -> Result<(), String> {
        if (self.width, self.sums.len()) != (other.width, other.sums.len()) {
            return Err(format!(
                "bootstrap sums of {} resamples x {} slots cannot add to {} x {}",
                other.resamples(),
                other.width,
                self.resamples(),
                self.width
            ));
        }
        self.sums.iter_mut().zip(&other.sums).for_each(|(a, b)| *a += b);
        Ok(())
    }
    /// The estimators on every resample (row b is resample b).
    pub fn stats(&self, stat: Stat<'_>) -> Vec<Vec<f64>> {
        self.sums.chunks(self.width + 1).map(|r| stat(&r[..self.width], r[self.width])).collect()
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

    /// e^{−1}, P(Poisson(1) = 0).
    const EXP_MINUS_ONE: f64 = 0.367_879_441_171_442_33;

    #[test]
    fn the_cdf_table_is_the_recursion_in_double_precision() {
        let (mut p, mut cdf) = (EXP_MINUS_ONE, EXP_MINUS_ONE);
        for (k, &f) in POISSON1_CDF.iter().enumerate() {
            if k > 0 {
                p /= k as f64;
                cdf += p;
            }
            assert_eq!(f.to_bits(), cdf.to_bits(), "F_{k}");
        }
    }

    #[test]
    fn counts_are_poisson_one_and_reproducible() {
        // the distribution: P(k) for k = 0..4 against e^-1 / k!, over 2·10^5 draws
        let key = resample_key(7, 0);
        let n = 200_000u64;
        let mut hist = [0u64; 8];
        for e in 0..n {
            hist[(unit_count(key, e) as usize).min(7)] += 1;
        }
        let mut p = EXP_MINUS_ONE;
        for (k, &h) in hist.iter().take(5).enumerate() {
            if k > 0 {
                p /= k as f64;
            }
            let se = (p * (1.0 - p) / n as f64).sqrt();
            assert!((h as f64 / n as f64 - p).abs() < 5.0 * se, "P({k}) = {} vs {p}", h as f64 / n as f64);
        }
        // the CDF's far end: a word of all ones is the largest count, and counts stay small
        assert!(poisson1(u64::MAX) <= 20 && poisson1(0) == 0);
        let mut c = vec![0u32; 10];
        let mut again = vec![0u32; 10];
        let size = resample_counts(7, 3, UnitKeys::From(0), &mut c);
        assert_eq!(size, c.iter().map(|&x| u64::from(x)).sum::<u64>());
        resample_counts(7, 3, UnitKeys::From(0), &mut again);
        assert_eq!(c, again);
        resample_counts(8, 3, UnitKeys::From(0), &mut again);
        assert_ne!(c, again, "another seed, other draws");
        // a unit's count depends on its key only: the units 5..10 of a table drawn alone
        let mut tail = vec![0u32; 5];
        resample_counts(7, 3, UnitKeys::From(5), &mut tail);
        assert_eq!(tail, c[5..]);
        let ids: Vec<u64> = (5..10).collect();
        resample_counts(7, 3, UnitKeys::Ids(&ids), &mut tail);
        assert_eq!(tail, c[5..]);
    }

    #[test]
    fn sums_equal_the_resampled_data_and_add_up_by_parts() {
        let mut x = UnitMatrix::new(3);
        for e in 0..50 {
            x.push_unit([(0, e as f64), (2, 1.0 + (e % 3) as f64)]);
        }
        let stat = |s: &[f64], size: f64| vec![s[0], s[1], s[2], size];
        let plan = Plan { x: &x, keys: UnitKeys::From(0), resamples: 20, seed: 4, stat: &stat };
        let sums = plan.stats_cpu();
        for (b, s) in sums.iter().enumerate() {
            let key = resample_key(4, b as u64);
            let c: Vec<f64> = (0..50).map(|e| f64::from(unit_count(key, e))).collect();
            let want0: f64 = c.iter().enumerate().map(|(e, c)| c * e as f64).sum();
            let want2: f64 = c.iter().enumerate().map(|(e, c)| c * (1.0 + (e % 3) as f64)).sum();
            assert_eq!((s[0], s[1], s[2], s[3]), (want0, 0.0, want2, c.iter().sum::<f64>()));
        }
        // the units split in two: the halves' sums add up to the whole's
        let (mut a, mut b) = (UnitMatrix::new(3), UnitMatrix::new(3));
        for e in 0..50 {
            let m = if e < 17 { &mut a } else { &mut b };
            m.push_unit([(0, e as f64), (2, 1.0 + (e % 3) as f64)]);
        }
        let part = |m: &UnitMatrix, first: u64| {
            Plan { x: m, keys: UnitKeys::From(first), resamples: 20, seed: 4, stat: &stat }.sums_cpu()
        };
        let mut merged = part(&a, 0);
        merged.add(&part(&b, 17)).unwrap();
        assert_eq!(merged.stats(&stat), sums);
    }
}
