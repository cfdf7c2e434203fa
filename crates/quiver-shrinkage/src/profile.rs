//! Xie, Kou & Brown's SURE with the location estimated (`xkb-estimated`), certified.
//!
//! With b_i(λ) = A_i/(A_i + λ) and w_i = b_i², XKB choose (λ, μ) to minimise
//! SURE(λ, μ) = (1/p) Σ [w_i (x_i − μ)² − 2A_i b_i + A_i]; for fixed λ the best μ is
//! μ̂(λ) = Σ w_i x_i / Σ w_i, so λ̂ minimises the profile
//!
//!   R(λ) = (1/p) [ Σ w_i (x_i − μ̂)² + G + C ],   G = −2 Σ A_i b_i,  C = Σ A_i,
//!
//! which is not a sum of per-unit terms (μ̂ couples the units), so the cell bounds of
//! [`crate::risk`] do not apply. In t (λ = s·t/(1 − t)) every b_i is a ratio of linear functions,
//! and one pass gives, at each point, the sums S_j^{(k)} = Σ w_i^{(k)} x_i^j (k = 0, 1, 2 derivatives,
//! j = 0, 1, 2) and G, G′, G″, from which R and its exact derivatives follow:
//!
//!   R′ = (1/p)[Σ w′(x − μ̂)² + G′]  (envelope theorem),
//!   R″ = (1/p)[Σ w″(x − μ̂)² − 2T²/S₀ + G″],  T = Σ w′(x − μ̂) (μ̂′ = T/S₀).
//!
//! On a cell between two points each unit's w, w′, w″ lie in intervals (b, b′, b″ are monotone
//! there; products bounded by their corners), so interval sums bound S₀, S₁ (hence μ̂), T and
//! Σ w″(x − μ)² over the cell, and with them R″ from below; Taylor expansions from both ends then
//! bound R on the cell (second order). A first-order bound holds too: R is at least
//! (1/p)[min_μ Σ w_lo (x − μ)² − 2Σ A b_hi + C], with each unit's smallest w and largest b on the
//! cell (a weighted variance, in closed form). The cell bound is the larger of the two, and
//! [`crate::risk::branch_and_bound`] does the rest. The x are centred at their mean first (R does
//! not change; the sums cancel less).

use crate::risk::{
    branch_and_bound, combine_bounds, fold8, hi_of, lo_of, parallel_sums, unit_at, Minimum, SweepResult, SUM_CHUNK,
};
use rayon::prelude::*;

/// The profiled SURE of `xkb-estimated` (see the module documentation).
#[derive(Debug, Clone)]
pub struct ProfiledRisk {
    /// x − x̄.
    x: Vec<f64>,
    /// The known variances A_i.
    a: Vec<f64>,
    /// Σ A_i.
    c: f64,
    /// The scale of the map λ = s·t/(1 − t): the mean of A.
    s: f64,
}

/// Point sums: w x^j (3), w′ x^j (3), w″ x^j (3), g, g′, g″.
const POINT: usize = 12;
/// Cell sums: first order Σ w_lo x^j (3) and Σ −2A b_hi; interval ends of Σ w, Σ w x, Σ w′,
/// Σ w′ x (8); interval ends of Σ w″ x^j (6); Σ of g″'s lower end.
const CELL: usize = 19;

/// The smallest and largest of the four corner products of [a0, a1] × [b0, b1].
#[inline(always)]
fn corners(a0: f64, a1: f64, b0: f64, b1: f64) -> (f64, f64) {
    let (p, q, r, s) = (a0 * b0, a0 * b1, a1 * b0, a1 * b1);
    (lo_of(lo_of(p, q), lo_of(r, s)), hi_of(hi_of(p, q), hi_of(r, s)))
}

/// An interval [lo, hi] times a real x (x ≥ 0 keeps the order).
#[inline(always)]
fn scaled(lo: f64, hi: f64, x: f64) -> (f64, f64) {
    if x >= 0.0 {
        (lo * x, hi * x)
    } else {
        (hi * x, lo * x)
    }
}

impl ProfiledRisk {
    /// The profile of `x` (observations) with known variances `a` (> 0).
    pub fn new(x: &[f64], a: &[f64]) -> Self {
        let p = x.len() as f64;
        let mean = x.iter().sum::<f64>() / p;
        let s = a.iter().sum::<f64>() / p;
        ProfiledRisk {
            x: x.par_iter().map(|xi| xi - mean).collect(),
            a: a.to_vec(),
            c: a.iter().sum(),
            s: if s > 0.0 && s.is_finite() { s } else { 1.0 },
        }
    }

    /// Number of units.
    pub fn len(&self) -> usize {
        self.x.len()
    }

    /// Whether there are no units.
    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }

    /// The scale s of λ = s·t/(1 − t).
    pub fn scale(&self) -> f64 {
        self.s
    }

    /// R(λ).
    pub fn at(&self, lambda: f64) -> f64 {
        let t = crate::risk::t_of_lambda(self.s, lambda);
        self.sweep(&[t]).value[0]
    }

    /// One pass at points `ts` (ascending, in [0, 1]): R, R′, R″ at each and a lower bound of R
    /// on each cell between consecutive points. Units go in chunks (parallel across chunks, the
    /// chunk sums added in a fixed order); within a chunk one point at a time: b, b′, b″
    /// element-wise (full-width vector divisions), then the sums eight lanes at a time.
    pub fn sweep(&self, ts: &[f64]) -> SweepResult {
        let k = ts.len();
        let width = POINT * k + CELL * k.saturating_sub(1);
        let scratch = || {
            let buf = || [vec![0.0; SUM_CHUNK], vec![0.0; SUM_CHUNK], vec![0.0; SUM_CHUNK]];
            [buf(), buf()]
        };
        let total = parallel_sums(self.len(), width, scratch, |range, scratch, acc| {
            self.chunk_dispatch(&self.x[range.clone()], &self.a[range], ts, scratch, acc)
        });
        self.finish(ts, &total)
    }

    /// [`ProfiledRisk::chunk`] compiled for AVX2 and FMA where the CPU has them.
    fn chunk_dispatch(&self, x: &[f64], a: &[f64], ts: &[f64], scratch: &mut [[Vec<f64>; 3]; 2], acc: &mut [f64]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            unsafe { self.chunk_avx2(x, a, ts, scratch, acc) };
            return;
        }
        self.chunk(x, a, ts, scratch, acc)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn chunk_avx2(&self, x: &[f64], a: &[f64], ts: &[f64], scratch: &mut [[Vec<f64>; 3]; 2], acc: &mut [f64]) {
        self.chunk(x, a, ts, scratch, acc)
    }

    /// One chunk of a sweep, added into `acc`; `scratch` holds b, b′, b″ at the previous and
    /// the current point. (Lane-indexed loops on purpose: eight independent partial sums.)
    #[inline(always)]
    #[allow(clippy::needless_range_loop)]
    fn chunk(&self, x: &[f64], a: &[f64], ts: &[f64], scratch: &mut [[Vec<f64>; 3]; 2], acc: &mut [f64]) {
        let (n, k, s) = (x.len(), ts.len(), self.s);
        let n8 = n / 8 * 8;
        let [prev, cur] = scratch;
        let (mut prev, mut cur) = (prev, cur);
        for (q, &t) in ts.iter().enumerate() {
            {
                let [b, b1, b2] = cur;
                for i in 0..n {
                    (b[i], b1[i], b2[i]) = unit_at::<false>(t, s, a[i]);
                }
            }
            let [b, b1, b2] = &*cur;
            let mut lanes = [[0.0f64; 8]; POINT];
            let point = |i: usize| -> [f64; POINT] {
                let (xi, ai) = (x[i], a[i]);
                let x2 = xi * xi;
                let (w, w1, w2) = (b[i] * b[i], 2.0 * b[i] * b1[i], 2.0 * (b1[i] * b1[i] + b[i] * b2[i]));
                [
                    w,
                    w * xi,
                    w * x2,
                    w1,
                    w1 * xi,
                    w1 * x2,
                    w2,
                    w2 * xi,
                    w2 * x2,
                    -2.0 * ai * b[i],
                    -2.0 * ai * b1[i],
                    -2.0 * ai * b2[i],
                ]
            };
            for base in (0..n8).step_by(8) {
                for l in 0..8 {
                    let v = point(base + l);
                    for j in 0..POINT {
                        lanes[j][l] += v[j];
                    }
                }
            }
            let o = POINT * q;
            for j in 0..POINT {
                acc[o + j] += fold8(&lanes[j]);
            }
            for i in n8..n {
                let v = point(i);
                for j in 0..POINT {
                    acc[o + j] += v[j];
                }
            }
            if q > 0 {
                let [pb, pb1, pb2] = &*prev;
                let cell = |i: usize| -> [f64; CELL] {
                    let (xi, ai) = (x[i], a[i]);
                    let x2 = xi * xi;
                    let (blo, bhi) = (lo_of(pb[i], b[i]), hi_of(pb[i], b[i]));
                    let (wlo, whi) = (blo * blo, bhi * bhi);
                    let (c1lo, c1hi) = (lo_of(pb1[i], b1[i]), hi_of(pb1[i], b1[i]));
                    let (c2lo, c2hi) = (lo_of(pb2[i], b2[i]), hi_of(pb2[i], b2[i]));
                    // w′ = 2 b b′, w″ = 2(b′² + b b″): corners of their factors' ranges
                    let (v1lo, v1hi) = corners(blo, bhi, c1lo, c1hi);
                    let (sq_lo, sq_hi) = (lo_of(pb1[i] * pb1[i], b1[i] * b1[i]), hi_of(pb1[i] * pb1[i], b1[i] * b1[i]));
                    let (pl, ph) = corners(blo, bhi, c2lo, c2hi);
                    let (v2lo, v2hi) = (2.0 * (sq_lo + pl), 2.0 * (sq_hi + ph));
                    let (v1lo, v1hi) = (2.0 * v1lo, 2.0 * v1hi);
                    let (w1l, w1h) = scaled(wlo, whi, xi);
                    let (d1l, d1h) = scaled(v1lo, v1hi, xi);
                    let (e1l, e1h) = scaled(v2lo, v2hi, xi);
                    let (e2l, e2h) = scaled(v2lo, v2hi, x2);
                    [
                        wlo,
                        wlo * xi,
                        wlo * x2,
                        -2.0 * ai * bhi,
                        wlo,
                        whi,
                        w1l,
                        w1h,
                        v1lo,
                        v1hi,
                        d1l,
                        d1h,
                        v2lo,
                        v2hi,
                        e1l,
                        e1h,
                        e2l,
                        e2h,
                        -2.0 * ai * c2hi,
                    ]
                };
                let mut lanes = [[0.0f64; 8]; CELL];
                for base in (0..n8).step_by(8) {
                    for l in 0..8 {
                        let v = cell(base + l);
                        for j in 0..CELL {
                            lanes[j][l] += v[j];
                        }
                    }
                }
                let o = POINT * k + CELL * (q - 1);
                for j in 0..CELL {
                    acc[o + j] += fold8(&lanes[j]);
                }
                for i in n8..n {
                    let v = cell(i);
                    for j in 0..CELL {
                        acc[o + j] += v[j];
                    }
                }
            }
            std::mem::swap(&mut prev, &mut cur);
        }
    }

    fn finish(&self, ts: &[f64], total: &[f64]) -> SweepResult {
        let k = ts.len();
        let p = self.len() as f64;
        let (mut value, mut slope, mut curvature) =
            (Vec::with_capacity(k), Vec::with_capacity(k), Vec::with_capacity(k));
        for q in 0..k {
            let t = &total[POINT * q..POINT * (q + 1)];
            let (w0, w1, w2) = (t[0], t[1], t[2]);
            let (mu, var) = if w0 > 0.0 { (w1 / w0, (w2 - w1 * w1 / w0).max(0.0)) } else { (0.0, 0.0) };
            // Σ w′(x − μ̂)², T = Σ w′(x − μ̂), Σ w″(x − μ̂)²
            let d2 = t[5] - 2.0 * mu * t[4] + mu * mu * t[3];
            let tt = t[4] - mu * t[3];
            let e2 = t[8] - 2.0 * mu * t[7] + mu * mu * t[6];
            value.push((var + t[9] + self.c) / p);
            slope.push((d2 + t[10]) / p);
            let coupling = if w0 > 0.0 { 2.0 * tt * tt / w0 } else { 0.0 };
            curvature.push((e2 - coupling + t[11]) / p);
        }
        let unit = (self.c / p).abs();
        let cell_bound = (0..k.saturating_sub(1))
            .map(|q| {
                let c = &total[POINT * k + CELL * q..POINT * k + CELL * (q + 1)];
                // first order: the weighted variance with each unit's smallest weight
                let var_lo = if c[0] > 0.0 { (c[2] - c[1] * c[1] / c[0]).max(0.0) } else { 0.0 };
                let first = (var_lo + c[3] + self.c) / p;
                // second order: a lower bound of R″ on the cell from the interval sums
                let m = curvature_floor(c) / p;
                let second =
                    crate::risk::taylor_bound(ts[q], ts[q + 1], [value[q], slope[q]], [value[q + 1], slope[q + 1]], m);
                let slack = 1e-10 * (value[q].abs() + value[q + 1].abs() + unit);
                combine_bounds(first, second, value[q], value[q + 1], slack)
            })
            .collect();
        SweepResult { ts: ts.to_vec(), value, slope, curvature, cell_bound }
    }

    /// The certified minimum of R over λ ∈ [0, ∞] (Newton polished to the end: λ̂ is the
    /// stationary point XKB's estimating equation finds, where there is one).
    pub fn minimize(&self) -> Minimum {
        let unit = (self.c / self.len() as f64).abs();
        let result: Result<Minimum, std::convert::Infallible> =
            branch_and_bound(&mut |ts: &[f64]| Ok(self.sweep(ts)), unit, 0.0, self.s);
        match result {
            Ok(m) => m,
            Err(e) => match e {},
        }
    }
}

/// A lower bound of p·R″ on a cell from its interval sums (`c`, laid out as in [`CELL`]):
/// Σ w″(x − μ)² − 2T²/S₀ + G″ with μ = S₁/S₀, T = Σ w′(x − μ) = D₁ − μD₀ and every sum in its
/// interval. −∞ where S₀ may vanish.
fn curvature_floor(c: &[f64]) -> f64 {
    let (s0, s1) = ((c[4], c[5]), (c[6], c[7]));
    if s0.0 <= 0.0 {
        return f64::NEG_INFINITY;
    }
    // μ = S₁/S₀ with S₀ > 0
    let (m0, m1) = {
        let cand = [s1.0 / s0.0, s1.0 / s0.1, s1.1 / s0.0, s1.1 / s0.1];
        (cand.iter().copied().fold(f64::INFINITY, f64::min), cand.iter().copied().fold(f64::NEG_INFINITY, f64::max))
    };
    let (d0, d1) = ((c[8], c[9]), (c[10], c[11]));
    // T = D₁ − μ D₀
    let (pm0, pm1) = corners(m0, m1, d0.0, d0.1);
    let (t0, t1) = (d1.0 - pm1, d1.1 - pm0);
    let t2max = hi_of(t0 * t0, t1 * t1);
    // Σ w″(x − μ)² = E₂ − 2μE₁ + μ²E₀
    let (e0, e1, e2) = ((c[12], c[13]), (c[14], c[15]), (c[16], c[17]));
    let (mu_e1_lo, mu_e1_hi) = corners(m0, m1, e1.0, e1.1);
    let _ = mu_e1_lo;
    let sq = if m0 <= 0.0 && m1 >= 0.0 {
        (0.0, hi_of(m0 * m0, m1 * m1))
    } else {
        (lo_of(m0 * m0, m1 * m1), hi_of(m0 * m0, m1 * m1))
    };
    let (sq_e0_lo, _) = corners(sq.0, sq.1, e0.0, e0.1);
    let curv = e2.0 - 2.0 * mu_e1_hi + sq_e0_lo;
    curv - 2.0 * t2max / s0.0 + c[18]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::lcg;

    /// XKB's SURE(λ, μ̂(λ)) written out directly.
    fn direct(x: &[f64], a: &[f64], lambda: f64) -> f64 {
        let b: Vec<f64> = a.iter().map(|&ai| if lambda.is_infinite() { 0.0 } else { ai / (ai + lambda) }).collect();
        let s2: f64 = b.iter().map(|v| v * v).sum();
        let mu = if s2 > 0.0 { b.iter().zip(x).map(|(bi, xi)| bi * bi * xi).sum::<f64>() / s2 } else { 0.0 };
        (0..x.len()).map(|i| b[i] * b[i] * (x[i] - mu).powi(2) + a[i] - 2.0 * a[i] * b[i]).sum::<f64>() / x.len() as f64
    }

    fn problem(seed: u64) -> (Vec<f64>, Vec<f64>) {
        let mut r = lcg(seed);
        let p = 5 + (seed as usize * 37) % 150;
        // two clusters of very different variances, and a location far from 0
        let a: Vec<f64> = (0..p).map(|i| if i % 2 == 0 { 0.01 + r() * 0.05 } else { 2.0 + 20.0 * r() }).collect();
        let x: Vec<f64> = (0..p).map(|i| 50.0 + (r() - 0.5) * if i % 3 == 0 { 8.0 } else { 1.0 }).collect();
        (x, a)
    }

    #[test]
    fn values_and_derivatives_are_exact() {
        for seed in 0..10 {
            let (x, a) = problem(seed);
            let risk = ProfiledRisk::new(&x, &a);
            let ts = [0.0, 0.1, 0.37, 0.5, 0.9, 0.999, 1.0];
            let r = risk.sweep(&ts);
            for (q, &t) in ts.iter().enumerate() {
                let lambda = crate::risk::lambda_of_t(risk.scale(), t);
                let want = direct(&x, &a, lambda);
                assert!((r.value[q] - want).abs() <= 1e-11 * want.abs().max(1.0), "{t}: {} vs {want}", r.value[q]);
                if t > 0.01 && t < 0.99 {
                    let h = 1e-5;
                    let f = |t: f64| risk.sweep(&[t]).value[0];
                    let d1 = (f(t + h) - f(t - h)) / (2.0 * h);
                    let d2 = (f(t + h) - 2.0 * f(t) + f(t - h)) / (h * h);
                    assert!((r.slope[q] - d1).abs() <= 1e-5 * d1.abs().max(1.0), "{t}: R' {} vs {d1}", r.slope[q]);
                    assert!(
                        (r.curvature[q] - d2).abs() <= 1e-3 * d2.abs().max(1.0),
                        "{t}: R'' {} vs {d2}",
                        r.curvature[q]
                    );
                }
            }
        }
    }

    #[test]
    fn the_certificate_is_valid_and_tight() {
        for seed in 0..30 {
            let (x, a) = problem(100 + seed);
            let risk = ProfiledRisk::new(&x, &a);
            // every cell bound of a coarse sweep lies below R everywhere in its cell
            let coarse: Vec<f64> = (0..=9).map(|i| i as f64 / 9.0).collect();
            let c = risk.sweep(&coarse);
            let fine: Vec<f64> = (0..=4000).map(|i| i as f64 / 4000.0).collect();
            let mut values = Vec::with_capacity(fine.len());
            for chunk in fine.chunks(64) {
                values.extend(risk.sweep(chunk).value);
            }
            for q in 0..coarse.len() - 1 {
                let inside = fine
                    .iter()
                    .zip(&values)
                    .filter(|(t, _)| **t >= coarse[q] && **t <= coarse[q + 1])
                    .map(|(_, v)| *v)
                    .fold(f64::INFINITY, f64::min);
                assert!(
                    c.cell_bound[q] <= inside + 1e-12,
                    "seed {seed}, cell {q}: bound {} above {inside}",
                    c.cell_bound[q]
                );
            }
            let lowest = values.iter().copied().fold(f64::INFINITY, f64::min);
            let m = risk.minimize();
            assert!(m.lower_bound <= lowest + 1e-12, "seed {seed}: bound {} above the grid's {lowest}", m.lower_bound);
            assert!(m.risk <= lowest + 1e-9 * lowest.abs().max(1.0), "seed {seed}: {} vs grid {lowest}", m.risk);
            let unit = (a.iter().sum::<f64>() / a.len() as f64).max(m.risk.abs());
            assert!(
                m.risk - m.lower_bound <= 1e-6 * unit,
                "seed {seed}: gap {} at scale {unit}",
                m.risk - m.lower_bound
            );
            assert!((m.risk - direct(&x, &a, m.lambda)).abs() <= 1e-10 * m.risk.abs().max(1.0));
        }
    }
}
