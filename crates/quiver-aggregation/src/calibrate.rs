//! Making quantiles monotone across levels, and conformalised quantile regression (CQR;
//! Romano, Patterson & Candès, NeurIPS 2019) for every central interval.

use crate::score::{Interval, QuantileMatrix};

quiver_numerics::choices! {
    /// How each row's quantiles are made nondecreasing in the level.
    pub enum Monotone {
        /// Leave them as they are.
        None = "none",
        /// Sort each row (the rearrangement of Chernozhukov, Fernández-Val & Galichon, 2010).
        Sort = "sort",
        /// Isotonic (least-squares) regression across levels by pool-adjacent-violators.
        Pava = "pava",
    }
}

impl Monotone {
    /// Apply to every row of `q` in place. Both maps never raise a row's Σ_τ ψ_τ: with
    /// ψ_τ(y − q) = τ(y − q) + (q − y)₊, the second sum does not depend on the order, sorting
    /// maximises Σ_k τ_k q_(k) (rearrangement inequality) and a PAVA block keeps its sum,
    /// has prefix means ≥ its mean (so Σ τ_k q_k ≤ m Σ τ_k by Abel summation) and is convex in
    /// the second term (Jensen).
    pub fn apply(self, q: &mut QuantileMatrix) {
        use rayon::prelude::*;
        let k = q.k.max(1);
        match self {
            Monotone::None => {}
            Monotone::Sort => q.values.par_chunks_mut(k).for_each(|r| r.sort_by(f64::total_cmp)),
            Monotone::Pava => {
                let w = vec![1.0; k];
                q.values.par_chunks_mut(k).for_each(|r| quiver_numerics::isotonic::pava_in_place(r, &w));
            }
        }
    }
}

/// The CQR adjustment of one central interval: with conformity scores
/// E_i = max(lo_i − y_i, y_i − hi_i) on the calibration rows, Q̂ = the ⌈(1 − α)(n + 1)⌉-th
/// smallest E_i, or +∞ when that rank exceeds n. The interval [lo − Q̂, hi + Q̂] then covers a new
/// exchangeable outcome with probability ≥ 1 − α (and < 1 − α + 1/(n + 1) without ties).
pub fn cqr_adjustment(alpha: f64, lo: impl Iterator<Item = f64>, hi: impl Iterator<Item = f64>, y: &[f64]) -> f64 {
    let mut e: Vec<f64> = lo.zip(hi).zip(y).map(|((l, h), &yi)| (l - yi).max(yi - h)).collect();
    let n = e.len();
    let rank = ((1.0 - alpha) * (n as f64 + 1.0) - 1e-9).ceil() as usize;
    if rank > n {
        return f64::INFINITY;
    }
    let rank = rank.max(1);
    let (_, kth, _) = e.select_nth_unstable_by(rank - 1, f64::total_cmp);
    *kth
}

/// Widen each row's calibrated intervals so that they nest (each contains the narrower ones and
/// the median, when there is one): lower ends become running minima from the centre outwards,
/// upper ends running maxima. Every interval only widens, so each keeps its coverage guarantee,
/// and the row is monotone across the calibrated levels. `ints` are widest first.
pub fn nest(q: &mut QuantileMatrix, ints: &[Interval], median: Option<usize>) {
    let k = q.k;
    for r in q.values.chunks_mut(k.max(1)) {
        let (mut lo, mut hi) = median.map_or((f64::INFINITY, f64::NEG_INFINITY), |m| (r[m], r[m]));
        for iv in ints.iter().rev() {
            lo = lo.min(r[iv.lo]);
            hi = hi.max(r[iv.hi]);
            r[iv.lo] = lo;
            r[iv.hi] = hi;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::{intervals, pinball};
    use proptest::prelude::*;

    fn row_loss(levels: &[f64], y: f64, r: &[f64]) -> f64 {
        levels.iter().zip(r).map(|(&t, &q)| pinball(t, y, q)).sum()
    }

    /// Direct O(K²) isotonic fit: z_i = max_{j ≤ i} min_{l ≥ i} mean(y_j..y_l).
    fn isotonic_minmax(y: &[f64]) -> Vec<f64> {
        let n = y.len();
        (0..n)
            .map(|i| {
                (0..=i)
                    .map(|j| {
                        (i..n).map(|l| y[j..=l].iter().sum::<f64>() / (l - j + 1) as f64).fold(f64::INFINITY, f64::min)
                    })
                    .fold(f64::NEG_INFINITY, f64::max)
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
        #[test]
        fn sorting_and_pava_never_raise_a_rows_loss(
            raw in proptest::collection::vec(-5.0f64..5.0, 1..12),
            gaps in proptest::collection::vec(0.01f64..1.0, 12),
            y in -6.0f64..6.0,
        ) {
            let k = raw.len();
            let total: f64 = gaps[..k].iter().sum::<f64>() * 1.05;
            let levels: Vec<f64> = gaps[..k].iter().scan(0.0, |a, g| { *a += g / total; Some(*a) }).collect();
            let before = row_loss(&levels, y, &raw);
            for m in [Monotone::Sort, Monotone::Pava] {
                let mut q = QuantileMatrix { n: 1, k, values: raw.clone() };
                m.apply(&mut q);
                prop_assert!(q.crossing_rows() == 0);
                let after = row_loss(&levels, y, &q.values);
                prop_assert!(after <= before + 1e-12 * (1.0 + before.abs()), "{m:?}: {after} > {before}");
            }
            let mut q = QuantileMatrix { n: 1, k, values: raw.clone() };
            Monotone::Pava.apply(&mut q);
            for (a, b) in q.values.iter().zip(isotonic_minmax(&raw)) {
                prop_assert!((a - b).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn cqr_takes_the_conformal_rank_and_infinity_past_n() {
        // scores 1..=9 (lo = y − … ): E_i = i
        let y = [0.0; 9];
        let lo: Vec<f64> = (1..=9).map(|i| i as f64).collect();
        let hi = [10.0; 9];
        // ⌈0.8 · 10⌉ = 8
        assert_eq!(cqr_adjustment(0.2, lo.iter().copied(), hi.iter().copied(), &y), 8.0);
        // ⌈0.95 · 10⌉ = 10 > 9
        assert_eq!(cqr_adjustment(0.05, lo.iter().copied(), hi.iter().copied(), &y), f64::INFINITY);
    }

    #[test]
    fn nesting_only_widens() {
        let levels = [0.1, 0.3, 0.5, 0.7, 0.9];
        let (ints, med) = intervals(&levels);
        let mut q = QuantileMatrix { n: 1, k: 5, values: vec![1.0, 0.5, 2.0, 1.5, 3.0] };
        let before = q.values.clone();
        nest(&mut q, &ints, med);
        assert_eq!(q.values, vec![0.5, 0.5, 2.0, 2.0, 3.0]);
        for iv in &ints {
            assert!(q.values[iv.lo] <= before[iv.lo] && q.values[iv.hi] >= before[iv.hi]);
        }
    }
}
