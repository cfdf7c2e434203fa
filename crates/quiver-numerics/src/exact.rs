//! Exact rank laws for batch predictive inference (Lee, Tchetgen Tchetgen & Dobriban, 2024).
//!
//! Under exchangeability the sorted ranks of m test scores among n calibration scores
//! (R_j = 1 + #{i : S_i < T_j}) are uniform over the C(n+m, m) multisets of {1, …, n+1}. This
//! module computes, exactly (big integers; levels as exact decimal fractions):
//! * the law of the ζ-th smallest rank: P(R_(ζ) ≤ k) = P(X ≥ ζ) with
//!   X ~ Hypergeometric(n + m, m, k + ζ − 1) (the ζ-th test score precedes the k-th calibration
//!   score iff at least ζ of the first k + ζ − 1 pooled positions are test scores), whose pmf
//!   P(R_(ζ) = k) = C(k+ζ−2, ζ−1)·C(n+m−k−ζ+1, m−ζ) / C(n+m, m);
//! * the smallest k with P(R_(ζ) ≤ k) ≥ level, located in floating point and decided exactly;
//! * the law of the rank sum Σ_j R_j = m + U (U the Mann–Whitney statistic): the number of
//!   multisets with Σ (R_j − 1) = s is the coefficient of q^s in the Gaussian binomial
//!   [n+m choose m]_q = Π_{k=1..m} (1 − q^{n+k}) / (1 − q^k), and its exact quantile.
//!
//! Deciding "CDF ≥ 1 − α" in floating point moves k at exact ties, e.g. n = 19, m = 1, α = 0.95
//! (CDF(1) = 1/20 = 1 − α exactly); here the comparison is between integers.

use crate::NumericsError;
use num_bigint::BigUint;
use num_traits::{One, ToPrimitive, Zero};

/// A probability level as an exact fraction `num / den`: the shortest decimal that rounds to the
/// given f64 (what the user typed: 0.95 is 95/100, not the binary double nearest to it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Level {
    /// Numerator.
    pub num: BigUint,
    /// Denominator (a power of ten).
    pub den: BigUint,
}

impl Level {
    /// Parse `x ∈ [0, 1]` through its shortest round-trip decimal.
    pub fn from_f64(x: f64) -> Result<Level, NumericsError> {
        if !(0.0..=1.0).contains(&x) {
            return Err(NumericsError::OutOfRange { name: "level", value: x, range: "[0, 1]" });
        }
        let text = format!("{x}"); // Display never uses an exponent
        let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
        let digits = format!("{int}{frac}");
        let num: BigUint = digits.parse().expect("decimal digits");
        let den = BigUint::from(10u32).pow(frac.len() as u32);
        Ok(Level { num, den })
    }
    /// 1 − level.
    pub fn complement(&self) -> Level {
        Level { num: &self.den - &self.num, den: self.den.clone() }
    }
    /// level / 2.
    pub fn half(&self) -> Level {
        Level { num: self.num.clone(), den: &self.den * 2u32 }
    }
    /// The level as an f64 (for locating ranks before the exact decision).
    pub fn to_f64(&self) -> f64 {
        self.num.to_f64().unwrap_or(f64::NAN) / self.den.to_f64().unwrap_or(f64::NAN)
    }
    /// Whether `num_p / den_p ≥ level`, exactly.
    pub fn at_most(&self, num_p: &BigUint, den_p: &BigUint) -> bool {
        num_p * &self.den >= &self.num * den_p
    }
    /// ⌈level · total⌉.
    pub fn ceil_of(&self, total: &BigUint) -> BigUint {
        let prod = &self.num * total;
        let q = &prod / &self.den;
        if (&q * &self.den) == prod {
            q
        } else {
            q + 1u32
        }
    }
}

/// C(n, k) exactly (factors batched into u64 products between big-integer steps; each batch
/// boundary is an exact binomial, so every division is exact).
pub fn binomial(n: u64, k: u64) -> BigUint {
    if k > n {
        return BigUint::zero();
    }
    let k = k.min(n - k);
    let mut r = BigUint::one();
    let (mut num, mut den) = (1u64, 1u64);
    for i in 0..k {
        match (num.checked_mul(n - i), den.checked_mul(i + 1)) {
            (Some(a), Some(b)) => (num, den) = (a, b),
            _ => {
                r *= num;
                r /= den;
                (num, den) = (n - i, i + 1);
            }
        }
    }
    r *= num;
    r /= den;
    r
}

fn ln_choose(n: u64, k: u64) -> f64 {
    libm::lgamma(n as f64 + 1.0) - libm::lgamma(k as f64 + 1.0) - libm::lgamma((n - k) as f64 + 1.0)
}

/// The summation range of the hypergeometric tail for P(R_(ζ) ≤ k): (L, first i, last i).
fn tail_range(n: u64, m: u64, zeta: u64, k: u64) -> (u64, u64, u64) {
    let l = k + zeta - 1;
    (l, zeta.max(l.saturating_sub(n)), m.min(l))
}

/// P(R_(ζ) ≤ k) exactly, as (numerator, denominator) = (Σ_{i ≥ ζ} C(m, i)·C(n, L − i), C(n+m, L))
/// with L = k + ζ − 1; for 1 ≤ ζ ≤ m and 1 ≤ k ≤ n + 1 (k = n + 1 gives 1).
pub fn order_stat_cdf_exact(n: u64, m: u64, zeta: u64, k: u64) -> (BigUint, BigUint) {
    let (l, lo, hi) = tail_range(n, m, zeta, k);
    let den = binomial(n + m, l);
    if lo > hi {
        return (BigUint::zero(), den);
    }
    // term_i = C(m, i)·C(n, L − i); term_{i+1} = term_i·(m − i)(L − i) / ((i + 1)(n − L + i + 1))
    let mut term = binomial(m, lo) * binomial(n, l - lo);
    let mut sum = term.clone();
    for i in lo..hi {
        term *= u128::from(m - i) * u128::from(l - i);
        term /= u128::from(i + 1) * u128::from(n + i + 1 - l);
        sum += &term;
    }
    (sum, den)
}

/// An upper bound on the limb operations [`order_stat_rank`] may spend in exact arithmetic for
/// (n, m, ζ): its binomials run min(L, n + m − L) and min(i, m − i) steps over numbers of
/// log₂ C(n+m, m) bits at most, and the tail sum n more. An `f64`, so huge requests are sized
/// without overflow.
pub fn order_stat_exact_work(n: u64, m: u64, zeta: u64) -> f64 {
    let (n, m, z) = (n as f64, m as f64, zeta as f64);
    let log2_c = (libm::lgamma(n + m + 1.0) - libm::lgamma(n + 1.0) - libm::lgamma(m + 1.0)) / std::f64::consts::LN_2;
    let limbs = (log2_c / 64.0).ceil().max(1.0);
    ((z + n).min(m - z + n) + z.min(m - z) + n) * limbs
}

/// P(R_(ζ) ≤ k) in floating point (log space); accurate to ~1e-12, for locating ranks.
pub fn order_stat_cdf_f64(n: u64, m: u64, zeta: u64, k: u64) -> f64 {
    let (l, lo, hi) = tail_range(n, m, zeta, k);
    if lo > hi {
        return 0.0;
    }
    let ln_den = ln_choose(n + m, l);
    let logs: Vec<f64> = (lo..=hi).map(|i| ln_choose(m, i) + ln_choose(n, l - i) - ln_den).collect();
    let top = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (top + logs.iter().map(|x| (x - top).exp()).sum::<f64>().ln()).exp().min(1.0)
}

/// P(R_(ζ) = k) exactly: C(k+ζ−2, ζ−1)·C(n+m−k−ζ+1, m−ζ) / C(n+m, m).
pub fn order_stat_pmf_exact(n: u64, m: u64, zeta: u64, k: u64) -> (BigUint, BigUint) {
    (binomial(k + zeta - 2, zeta - 1) * binomial(n + m + 1 - k - zeta, m - zeta), binomial(n + m, m))
}

/// The smallest k ∈ {1, …, n+1} with P(R_(ζ) ≤ k) ≥ level, decided exactly (located by a binary
/// search in floating point, then checked and moved with exact arithmetic).
pub fn order_stat_rank(n: u64, m: u64, zeta: u64, level: &Level) -> u64 {
    let target = level.to_f64();
    let (mut lo, mut hi) = (1u64, n + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if order_stat_cdf_f64(n, m, zeta, mid) >= target {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let reaches = |k: u64| order_stat_cdf_reaches(n, m, zeta, k, level);
    let mut k = lo;
    if reaches(k) {
        while k > 1 && reaches(k - 1) {
            k -= 1;
        }
    } else {
        while k <= n && !reaches(k) {
            k += 1;
        }
    }
    k
}

/// Whether P(R_(ζ) ≤ k) ≥ level. Decided in floating point when the two differ by more than a
/// bound on the floating-point error (lgamma's rounding, scaled by the size of the logarithms),
/// and in exact integer arithmetic otherwise: ties, and near-ties, are always decided exactly.
pub fn order_stat_cdf_reaches(n: u64, m: u64, zeta: u64, k: u64, level: &Level) -> bool {
    let f = order_stat_cdf_f64(n, m, zeta, k);
    let margin = 1e-13 * (1.0 + libm::lgamma((n + m) as f64 + 1.0));
    let t = level.to_f64();
    if f > t + margin {
        true
    } else if f < t - margin {
        false
    } else {
        let (num, den) = order_stat_cdf_exact(n, m, zeta, k);
        level.at_most(&num, &den)
    }
}

/// Every rank multiset of size m from {1, …, n+1}, as nondecreasing vectors: the C(n+m, m)
/// equally likely outcomes of the sorted test ranks. The brute-force oracle of the tests (small
/// n and m only).
pub fn rank_multisets(n: u64, m: usize) -> Vec<Vec<u64>> {
    fn rec(start: u64, n1: u64, left: usize, cur: &mut Vec<u64>, out: &mut Vec<Vec<u64>>) {
        if left == 0 {
            out.push(cur.clone());
            return;
        }
        for r in start..=n1 {
            cur.push(r);
            rec(r, n1, left - 1, cur, out);
            cur.pop();
        }
    }
    let mut out = Vec::new();
    rec(1, n + 1, m, &mut Vec::new(), &mut out);
    out
}

/// Number of rank multisets by rank sum: entry s counts multisets with Σ_j R_j = m + s, for
/// s = 0..=n·m (the coefficients of the Gaussian binomial [n+m choose m]_q). For tests and small
/// cases; [`rank_sum_quantile`] computes the quantile without materialising big integers.
pub fn rank_sum_counts(n: u64, m: u64) -> Vec<BigUint> {
    let w = WideCounts::gaussian_binomial(n, m);
    (0..w.len()).map(|s| w.get(s)).collect()
}

/// The bytes [`rank_sum_quantile`] holds: (n·m + 1) coefficients of ⌈log₂ C(n+m, m) / 64⌉ limbs
/// (log₂ C by `lgamma`; an `f64`, so astronomically large requests are sized without overflow).
pub fn rank_sum_law_bytes(n: u64, m: u64) -> f64 {
    let (n, m) = (n as f64, m as f64);
    let log2_c = (libm::lgamma(n + m + 1.0) - libm::lgamma(n + 1.0) - libm::lgamma(m + 1.0)) / std::f64::consts::LN_2;
    let limbs = (log2_c / 64.0).ceil().max(1.0) + 1.0;
    (n * m + 1.0) * limbs * 8.0
}

/// The exact `level` quantile of the rank sum Σ_j R_j: the smallest Q with P(Σ R_j ≤ Q) ≥ level.
pub fn rank_sum_quantile(n: u64, m: u64, level: &Level) -> u64 {
    let w = WideCounts::gaussian_binomial(n, m);
    let total = binomial(n + m, m);
    let target = level.ceil_of(&total);
    let target = WideCounts::limbs_of(&target, w.width + 1);
    let mut cum = vec![0u64; w.width + 1];
    for s in 0..w.len() {
        add_into(&mut cum, w.slot(s));
        if !less_than(&cum, &target) {
            return m + s as u64;
        }
    }
    m + (n * m)
}

/// Non-negative integers of a fixed number of 64-bit limbs, stored flat: one per coefficient.
/// (Plain limb arithmetic: millions of additions of ~10-limb numbers, with no allocation each.)
struct WideCounts {
    width: usize,
    data: Vec<u64>,
}

fn add_into(dst: &mut [u64], src: &[u64]) {
    let mut carry = 0u64;
    for (d, s) in dst.iter_mut().zip(src) {
        let (a, c1) = d.overflowing_add(*s);
        let (b, c2) = a.overflowing_add(carry);
        *d = b;
        carry = c1 as u64 + c2 as u64;
    }
    if carry != 0 {
        // only reachable for the extra limb of a cumulative sum, which is wide enough
        debug_assert!(dst.len() > src.len());
        let mut i = src.len();
        while carry != 0 && i < dst.len() {
            let (a, c) = dst[i].overflowing_add(carry);
            dst[i] = a;
            carry = c as u64;
            i += 1;
        }
    }
}

fn sub_from(dst: &mut [u64], src: &[u64]) {
    let mut borrow = 0u64;
    for (d, s) in dst.iter_mut().zip(src) {
        let (a, b1) = d.overflowing_sub(*s);
        let (b, b2) = a.overflowing_sub(borrow);
        *d = b;
        borrow = b1 as u64 + b2 as u64;
    }
    debug_assert_eq!(borrow, 0, "Gaussian binomial coefficients are non-negative");
}

fn less_than(a: &[u64], b: &[u64]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

impl WideCounts {
    fn len(&self) -> usize {
        self.data.len() / self.width
    }
    fn slot(&self, s: usize) -> &[u64] {
        &self.data[s * self.width..(s + 1) * self.width]
    }
    fn get(&self, s: usize) -> BigUint {
        let words: Vec<u32> = self.slot(s).iter().flat_map(|w| [*w as u32, (*w >> 32) as u32]).collect();
        BigUint::new(words)
    }
    fn limbs_of(x: &BigUint, width: usize) -> Vec<u64> {
        let mut v = x.to_u64_digits();
        v.resize(width, 0);
        v
    }

    /// Coefficients of [n+m choose m]_q: for k = 1..m, divide by (1 − q^k) (a running sum with
    /// stride k), then multiply by (1 − q^{n+k}) (a difference with stride n + k), keeping the
    /// degree at n·k. Every intermediate coefficient is at most C(n+m, m).
    fn gaussian_binomial(n: u64, m: u64) -> WideCounts {
        let width = (binomial(n + m, m).bits() as usize).div_ceil(64).max(1);
        let deg = (n * m) as usize;
        let mut w = WideCounts { width, data: vec![0; (deg + 1) * width] };
        w.data[0] = 1;
        let (n, width) = (n as usize, width);
        for k in 1..=m as usize {
            let top = n * k;
            for s in k..=top {
                let (lo, hi) = w.data.split_at_mut(s * width);
                add_into(&mut hi[..width], &lo[(s - k) * width..(s - k + 1) * width]);
            }
            let step = n + k;
            for s in (step..=top).rev() {
                let (lo, hi) = w.data.split_at_mut(s * width);
                sub_from(&mut hi[..width], &lo[(s - step) * width..(s - step + 1) * width]);
            }
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn multisets(n: u64, m: usize) -> Vec<Vec<u64>> {
        rank_multisets(n, m)
    }

    #[test]
    fn levels_are_the_decimals_written() {
        let l = Level::from_f64(0.95).unwrap();
        assert_eq!((l.num.clone(), l.den.clone()), (BigUint::from(95u32), BigUint::from(100u32)));
        assert_eq!(l.complement().num, BigUint::from(5u32));
        assert_eq!(Level::from_f64(1.0).unwrap().num, BigUint::from(1u32));
        assert_eq!(Level::from_f64(0.0000001).unwrap().den, BigUint::from(10_000_000u32));
        assert!(Level::from_f64(1.5).is_err());
        assert_eq!(Level::from_f64(0.1).unwrap().ceil_of(&BigUint::from(7u32)), BigUint::from(1u32));
        assert_eq!(Level::from_f64(0.5).unwrap().ceil_of(&BigUint::from(8u32)), BigUint::from(4u32));
    }

    #[test]
    fn order_statistic_law_matches_enumeration() {
        for n in 1..=6u64 {
            for m in 1..=4usize {
                let all = multisets(n, m);
                assert_eq!(BigUint::from(all.len()), binomial(n + m as u64, m as u64));
                for zeta in 1..=m as u64 {
                    let mut cum = 0usize;
                    for k in 1..=n + 1 {
                        let count = all.iter().filter(|r| r[zeta as usize - 1] == k).count();
                        cum += count;
                        let (pn, pd) = order_stat_pmf_exact(n, m as u64, zeta, k);
                        assert_eq!(pn * all.len(), pd * count, "pmf n={n} m={m} zeta={zeta} k={k}");
                        let (cn, cd) = order_stat_cdf_exact(n, m as u64, zeta, k);
                        assert_eq!(cn * all.len(), cd * cum, "cdf n={n} m={m} zeta={zeta} k={k}");
                        let f = order_stat_cdf_f64(n, m as u64, zeta, k);
                        assert!((f - cum as f64 / all.len() as f64).abs() < 1e-12);
                    }
                }
            }
        }
    }

    #[test]
    fn rank_sum_law_matches_enumeration() {
        for n in 1..=6u64 {
            for m in 1..=4usize {
                let all = multisets(n, m);
                let counts = rank_sum_counts(n, m as u64);
                assert_eq!(counts.len() as u64, n * m as u64 + 1);
                for (s, c) in counts.iter().enumerate() {
                    let want = all.iter().filter(|r| r.iter().sum::<u64>() == m as u64 + s as u64).count();
                    assert_eq!(*c, BigUint::from(want), "n={n} m={m} s={s}");
                }
                for level in [0.5, 0.8, 0.9, 0.95] {
                    let lv = Level::from_f64(level).unwrap();
                    let q = rank_sum_quantile(n, m as u64, &lv);
                    let below = |x: u64| all.iter().filter(|r| r.iter().sum::<u64>() <= x).count();
                    // smallest Q with count(≤ Q) ≥ level · total, compared as exact fractions
                    let ok = |x: u64| lv.at_most(&BigUint::from(below(x)), &BigUint::from(all.len()));
                    assert!(ok(q) && (q == m as u64 || !ok(q - 1)), "n={n} m={m} level={level} q={q}");
                }
            }
        }
    }

    #[test]
    fn split_conformal_and_exact_ties() {
        // m = 1: k = ⌈(n+1)(1−α)⌉, computed in exact decimal arithmetic
        for n in [1u64, 9, 19, 99, 100, 999] {
            for alpha in [0.01, 0.05, 0.1, 0.2, 0.5, 0.95] {
                let lv = Level::from_f64(alpha).unwrap().complement();
                let k = order_stat_rank(n, 1, 1, &lv);
                let want = (BigUint::from(n + 1) * &lv.num + &lv.den - 1u32) / &lv.den;
                assert_eq!(BigUint::from(k), want.max(BigUint::one()), "n={n} alpha={alpha}");
            }
        }
        // CDF = 1 − α exactly: floating point would answer k + 1
        let lv = Level::from_f64(0.95).unwrap().complement();
        assert_eq!(order_stat_rank(19, 1, 1, &lv), 1);
        let lv = Level::from_f64(0.5).unwrap().complement();
        assert_eq!(order_stat_rank(100, 100, 1, &lv), 1);
    }

    #[test]
    fn large_rank_agrees_with_exact_arithmetic() {
        let lv = Level::from_f64(0.9).unwrap();
        let k = order_stat_rank(100_000, 10_000, 5_000, &lv);
        let (a, b) = order_stat_cdf_exact(100_000, 10_000, 5_000, k);
        let (c, d) = order_stat_cdf_exact(100_000, 10_000, 5_000, k - 1);
        assert!(lv.at_most(&a, &b) && !lv.at_most(&c, &d));
    }

    #[test]
    fn float_and_exact_decisions_agree_away_from_ties() {
        for (n, m, zeta) in [(50u64, 20u64, 3u64), (200, 7, 7), (1000, 30, 1)] {
            for level in [0.05, 0.5, 0.9, 0.975] {
                let lv = Level::from_f64(level).unwrap();
                for k in 1..=n + 1 {
                    let (a, b) = order_stat_cdf_exact(n, m, zeta, k);
                    assert_eq!(order_stat_cdf_reaches(n, m, zeta, k, &lv), lv.at_most(&a, &b), "{n} {m} {zeta} {k}");
                }
            }
        }
    }
}
