//! Finite-sample confidence bounds for means: testing by betting (Waudby-Smith & Ramdas,
//! "Estimating means of bounded random variables by betting", JRSSB 2024), in the one-sided form
//! for non-negative variables that Karampatziakis, Mineiro & Ramdas ("Off-policy confidence
//! sequences", ICML 2021) use for importance-weighted rewards, and the empirical-Bernstein and
//! Hoeffding bounds for variables in a declared range.
//!
//! **Betting.** For i.i.d. X_i ≥ 0 with mean m, and bets λ_i chosen from X_1 … X_{i−1} only, the
//! wealth K_n(m) = Π_i (1 + λ_i(m)(X_i − m)) with 0 ≤ λ_i(m) ≤ 1/m is a non-negative martingale
//! under the mean m, so by Ville's inequality P(K_n(m) ≥ 1/α) ≤ α: the m whose wealth stays below
//! 1/α form a (1 − α) confidence set. With λ_i(m) = min(λ̃_i, c/m), c = 1/2, every factor is
//! non-increasing in m, so that set is the half-line [L, ∞) and L is found by root-finding. No
//! upper bound on X is needed — only X ≥ 0 — which is what makes the bound valid for importance
//! weights of any size. The bets are WSR's predictable plug-in for a fixed n,
//! λ̃_i = √(2 ln(1/α) / (n σ̂²_{i−1})), with σ̂²_t = (1/4 + Σ_{j≤t}(X_j − μ̂_j)²)/(t + 1) and
//! μ̂_t = (1/2 + Σ_{j≤t} X_j)/(t + 1) (their defaults for data on [0, 1]).
//!
//! A two-sided interval comes from two such variables: X⁺ ≥ 0 and X⁻ ≥ 0 with E X⁺ = m and
//! E X⁻ = 1 − m (for a variable D in [a, b]: X⁺ = (D − a)/(b − a), X⁻ = 1 − X⁺; for an
//! importance-weighted reward in [a, b]: X⁺ = w(r − a)/(b − a), X⁻ = w(b − r)/(b − a), since
//! E w = 1), each bounded below at level α/2: m ∈ [L⁺, 1 − L⁻].
//!
//! The bound depends on the order of the units (the bets are predictable): Quiver uses the order
//! of the data, so the answer is a deterministic function of the table.

use rayon::prelude::*;

/// The bets' truncation: λ_i(m) ≤ c/m keeps every factor of the wealth ≥ 1 − c.
pub const TRUNCATION: f64 = 0.5;

/// Units summed per parallel block (fixed, so the sum does not depend on the thread count).
const BLOCK: usize = 1 << 13;

/// WSR's predictable plug-in bets λ̃_i for `x` at level `alpha` (see the module documentation).
pub fn plug_in_bets(x: &[f64], alpha: f64) -> Vec<f64> {
    let n = x.len() as f64;
    let scale = 2.0 * (1.0 / alpha).ln() / n;
    let (mut sum, mut ss) = (0.5, 0.25);
    x.iter()
        .enumerate()
        .map(|(t, &xi)| {
            let var = ss / (t as f64 + 1.0);
            sum += xi;
            ss += (xi - sum / (t as f64 + 2.0)).powi(2);
            (scale / var).sqrt()
        })
        .collect()
}

/// ln K_n(m) = Σ ln(1 + min(λ̃_i, c/m)(x_i − m)), summed in fixed blocks on every core.
pub fn log_wealth(x: &[f64], bets: &[f64], m: f64) -> f64 {
    let cap = if m > 0.0 { TRUNCATION / m } else { f64::INFINITY };
    x.par_chunks(BLOCK)
        .zip(bets.par_chunks(BLOCK))
        .map(|(xs, ls)| xs.iter().zip(ls).map(|(&xi, &l)| (l.min(cap) * (xi - m)).ln_1p()).sum::<f64>())
        .collect::<Vec<f64>>()
        .iter()
        .sum()
}

/// The (1 − α) lower confidence bound for the mean of i.i.d. non-negative `x` by betting: the
/// smallest m whose wealth stays below 1/α (to a relative 1e-12; the reported bound is the
/// bracket's lower end, so it errs on the safe side). 0 when no m ≥ 0 is rejected; NaN for an
/// empty `x` or a negative or non-finite value.
pub fn lower_bound_nonnegative(x: &[f64], alpha: f64) -> f64 {
    if x.is_empty() || x.iter().any(|v| !(v.is_finite() && *v >= 0.0)) || !(alpha > 0.0 && alpha < 1.0) {
        return f64::NAN;
    }
    let bets = plug_in_bets(x, alpha);
    let hi = x.iter().copied().fold(0.0, f64::max);
    if hi == 0.0 {
        return 0.0;
    }
    // every factor 1 + min(λ̃_i, c/m)(x_i − m) is ≤ 1 at m = max x, so the wealth is below 1/α there
    lower_root(x.len(), alpha, 0.0, hi, |i, m| {
        let cap = if m > 0.0 { TRUNCATION / m } else { f64::INFINITY };
        bets[i].min(cap) * (x[i] - m)
    })
}

/// The smallest m in [lo, hi] whose wealth Π_i (1 + b_i(m)) stays below 1/α, where `bet(i, m)`
/// = λ_i(m)·X_i(m) is each unit's stake times its outcome under the mean m: ≥ −c > −1, and
/// non-increasing in m, so the wealth is too and the set of m it does not reject is [L, hi]
/// (Illinois regula falsi to 1e-12 of the range; the bracket's lower end is returned). `lo` when
/// nothing is rejected.
pub fn lower_root(n: usize, alpha: f64, lo: f64, hi: f64, bet: impl Fn(usize, f64) -> f64 + Sync) -> f64 {
    let level = (1.0 / alpha).ln();
    let f = |m: f64| -> f64 {
        (0..n.div_ceil(BLOCK))
            .into_par_iter()
            .map(|b| (b * BLOCK..((b + 1) * BLOCK).min(n)).map(|i| bet(i, m).ln_1p()).sum::<f64>())
            .collect::<Vec<f64>>()
            .iter()
            .sum::<f64>()
            - level
    };
    let (mut a, mut b) = (lo, hi);
    let (mut fa, mut fb) = (f(a), f(b));
    if fa < 0.0 {
        return lo;
    }
    if fb >= 0.0 {
        return hi;
    }
    let mut side = 0i8;
    for it in 0..300 {
        if b - a <= 1e-12 * (hi - lo) {
            break;
        }
        let mut c = (a * fb - b * fa) / (fb - fa);
        if !(c > a && c < b) || it % 3 == 2 {
            c = 0.5 * (a + b);
        }
        let fc = f(c);
        if fc >= 0.0 {
            (a, fa) = (c, fc);
            if side == 1 {
                fb *= 0.5;
            }
            side = 1;
        } else {
            (b, fb) = (c, fc);
            if side == -1 {
                fa *= 0.5;
            }
            side = -1;
        }
    }
    a
}

/// A two-sided (1 − α) interval for m from X⁺ (mean m) and X⁻ (mean 1 − m), both ≥ 0: the two
/// lower bounds at α/2 each, [L⁺, 1 − L⁻], clipped to [0, 1].
pub fn interval_from_pair(plus: &[f64], minus: &[f64], alpha: f64) -> (f64, f64) {
    let (lp, lm) =
        rayon::join(|| lower_bound_nonnegative(plus, alpha / 2.0), || lower_bound_nonnegative(minus, alpha / 2.0));
    (lp.clamp(0.0, 1.0), (1.0 - lm).clamp(0.0, 1.0))
}

/// Hoeffding's half-width for the mean of n i.i.d. values in a range of width `range`, two-sided
/// at level 1 − α: range·√(ln(2/α)/(2n)).
pub fn hoeffding_half_width(n: f64, range: f64, alpha: f64) -> f64 {
    range * ((2.0 / alpha).ln() / (2.0 * n)).sqrt()
}

/// Maurer & Pontil's (2009, Theorem 4) empirical-Bernstein half-width for the mean of n ≥ 2
/// i.i.d. values in a range of width `range` with sample standard deviation `sd` (divisor n − 1),
/// two-sided at level 1 − α (α/2 a side): sd·√(2 ln(4/α)/n) + 7 range ln(4/α)/(3(n − 1)). (The
/// deviation, not the variance, is the argument: the variance of values near 1e-200 underflows.)
pub fn empirical_bernstein_half_width(n: f64, sd: f64, range: f64, alpha: f64) -> f64 {
    let l = (4.0 / alpha).ln();
    sd.max(0.0) * (2.0 * l / n).sqrt() + 7.0 * range * l / (3.0 * (n - 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::splitmix::mix;

    fn uniform(seed: u64, i: u64) -> f64 {
        (mix(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(i)) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The lower bound is the root of the wealth: just below it the wealth reaches 1/α, just
    /// above it does not; and it is a bound for the sample's own mean's neighbourhood.
    #[test]
    fn lower_bound_is_where_the_wealth_crosses_one_over_alpha() {
        let x: Vec<f64> = (0..500).map(|i| 2.0 * uniform(1, i)).collect();
        let l = lower_bound_nonnegative(&x, 0.05);
        let bets = plug_in_bets(&x, 0.05);
        let level = (1.0f64 / 0.05).ln();
        assert!(log_wealth(&x, &bets, l) >= level - 1e-9);
        assert!(log_wealth(&x, &bets, l * (1.0 + 1e-9)) < level);
        let mean = x.iter().sum::<f64>() / 500.0;
        assert!(l > 0.8 && l < mean, "{l} vs mean {mean}");
    }

    /// The wealth by hand on three values: λ̃ from the running mean and variance, the product.
    #[test]
    fn wealth_by_hand() {
        let x = [0.2, 0.9, 0.4];
        let bets = plug_in_bets(&x, 0.1);
        let s = 2.0 * 10f64.ln() / 3.0;
        // σ̂²_0 = 1/4; μ̂_1 = 0.35, σ̂²_1 = (1/4 + 0.15²)/2; μ̂_2 = 1.6/3, σ̂²_2 = (1/4 + 0.0225 + (0.9 − μ̂_2)²)/3
        let d2 = (0.9f64 - 1.6 / 3.0).powi(2);
        let want = [(s / 0.25).sqrt(), (s / ((0.25 + 0.0225) / 2.0)).sqrt(), (s / ((0.25 + 0.0225 + d2) / 3.0)).sqrt()];
        for (b, w) in bets.iter().zip(want) {
            assert!((b - w).abs() < 1e-12, "{bets:?} vs {want:?}");
        }
        let m = 0.3;
        let k: f64 = x.iter().zip(&want).map(|(xi, l)| 1.0 + l.min(0.5 / m) * (xi - m)).product();
        assert!((log_wealth(&x, &bets, m) - k.ln()).abs() < 1e-12);
    }

    /// Coverage by Monte Carlo: a skewed non-negative variable (an importance weight times a
    /// Bernoulli reward, E = 0.3), n = 50, 2000 draws: the lower bound misses at most α + 3 se.
    #[test]
    fn lower_bound_covers() {
        let alpha = 0.1;
        let reps = 2000;
        let mut miss = 0;
        for rep in 0..reps {
            let x: Vec<f64> = (0..50)
                .map(|i| {
                    let (u, v) = (uniform(rep, 2 * i), uniform(rep, 2 * i + 1));
                    // w = 5 with prob 0.2, else 0 (mean 1); r ~ Bernoulli(0.3)
                    if u < 0.2 && v < 0.3 {
                        5.0
                    } else {
                        0.0
                    }
                })
                .collect();
            if lower_bound_nonnegative(&x, alpha) > 0.3 {
                miss += 1;
            }
        }
        let rate = miss as f64 / reps as f64;
        let se = (alpha * (1.0 - alpha) / reps as f64).sqrt();
        assert!(rate <= alpha + 3.0 * se, "miss rate {rate}");
    }

    #[test]
    fn degenerate_inputs() {
        assert!(lower_bound_nonnegative(&[], 0.1).is_nan());
        assert!(lower_bound_nonnegative(&[1.0, -1.0], 0.1).is_nan());
        assert_eq!(lower_bound_nonnegative(&[0.0; 10], 0.1), 0.0);
        // two values cannot reject anything at α = 0.01
        assert_eq!(lower_bound_nonnegative(&[1.0, 1.0], 0.01), 0.0);
        let (a, b) = interval_from_pair(&[0.5; 400], &[0.5; 400], 0.05);
        assert!(a < 0.5 && b > 0.5 && b - a < 0.2, "[{a}, {b}]");
    }
}
