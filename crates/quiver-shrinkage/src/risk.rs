//! Unbiased risk estimates of linear shrinkage, and their certified global minimisation over λ.
//!
//! Every estimator here shrinks unit i with a weight b_i(λ) ∈ [0, 1] on its target, either
//! b_i = h_i/(h_i + λ) (XKB's normal means, h_i = A_i: the weight on the location falls as λ
//! grows) or b_i = λ/(h_i + λ) (binomial shrinkage, h_i = n_i), and its unbiased risk estimate is
//!
//!   R(λ) = (1/p) [ Σ_i (b_i² d_i − 2 b_i e_i) + C ],
//!
//! a sum of convex quadratics in the b_i (XKB toward μ: d = (x − μ)², e = A, C = Σ A; toward the
//! grand mean: e = (1 − 1/p)A; binomial: d = (p̂ − m)², e = C-term = V̂).
//!
//! R need not be unimodal in λ when the h_i differ, so λ̂ comes from a branch-and-bound search that
//! cannot miss the global minimum: λ ∈ [0, ∞] is mapped to t ∈ [0, 1] (λ = s·t/(1 − t)); on a
//! cell [t₁, t₂] every b_i lies between b_i(λ₁) and b_i(λ₂), so Σ_i min over that range of unit
//! i's quadratic (closed form) bounds R from below on the whole cell. Cells whose bound is above
//! the best value found cannot hold the minimum and are dropped; the others are split, until the
//! remaining bound is within a relative 1e-7 of the best value or the cells are narrow. The result
//! reports that certified lower bound; the point found is then polished by narrowing grid sweeps. Each pass evaluates all its points and cell bounds in one sweep over the units
//! (CPU: parallel chunks summed in a fixed order, so results do not depend on the thread count;
//! CUDA: the `sure_batch` kernel).

use rayon::prelude::*;

/// How b_i depends on λ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weight {
    /// b = h/(h + λ) (1 at λ = 0, 0 at λ = ∞).
    Decreasing,
    /// b = λ/(h + λ) (0 at λ = 0, 1 at λ = ∞).
    Increasing,
}

/// The per-unit data of a risk estimate (see the module documentation).
#[derive(Debug, Clone)]
pub struct QuadraticRisk {
    /// Coefficient of b².
    pub d: Vec<f64>,
    /// Half the coefficient of −b.
    pub e: Vec<f64>,
    /// Scale of λ for each unit.
    pub h: Vec<f64>,
    /// The constant Σ C_i.
    pub c: f64,
    /// Orientation of b(λ).
    pub weight: Weight,
}

/// The shrinkage weight of one unit.
#[inline(always)]
pub fn weight(h: f64, lambda: f64, w: Weight) -> f64 {
    match (w, lambda.is_infinite()) {
        (Weight::Decreasing, true) => 0.0,
        (Weight::Increasing, true) => 1.0,
        (Weight::Decreasing, false) => h / (h + lambda),
        (Weight::Increasing, false) => lambda / (h + lambda),
    }
}

#[inline(always)]
fn term(b: f64, d: f64, e: f64) -> f64 {
    b * b * d - 2.0 * b * e
}

/// b_i(λ) for a slice of units (the orientation and λ = ∞ decided once, outside the loop).
#[inline(always)]
fn fill_weights(out: &mut [f64], h: &[f64], lambda: f64, w: Weight) {
    match (w, lambda.is_infinite()) {
        (Weight::Decreasing, true) => out.fill(0.0),
        (Weight::Increasing, true) => out.fill(1.0),
        (Weight::Decreasing, false) => out.iter_mut().zip(h).for_each(|(o, &h)| *o = h / (h + lambda)),
        (Weight::Increasing, false) => out.iter_mut().zip(h).for_each(|(o, &h)| *o = lambda / (h + lambda)),
    }
}

#[inline(always)]
fn lo_of(a: f64, b: f64) -> f64 {
    if a < b {
        a
    } else {
        b
    }
}

#[inline(always)]
fn hi_of(a: f64, b: f64) -> f64 {
    if a < b {
        b
    } else {
        a
    }
}

/// Eight partial sums added in a fixed order (one running sum is a dependency chain that
/// neither pipelines nor vectorises; this order is deterministic).
#[inline(always)]
fn fold8(acc: [f64; 8]) -> f64 {
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
}

/// Σ_i (b_i² d_i − 2 b_i e_i).
#[inline(always)]
fn point_sum(b: &[f64], d: &[f64], e: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (cb, cd, ce) = (b.chunks_exact(8), d.chunks_exact(8), e.chunks_exact(8));
    let rem: f64 =
        cb.remainder().iter().zip(cd.remainder()).zip(ce.remainder()).map(|((&b, &d), &e)| term(b, d, e)).sum();
    for ((b, d), e) in cb.zip(cd).zip(ce) {
        for l in 0..8 {
            acc[l] += b[l] * b[l] * d[l] - 2.0 * b[l] * e[l];
        }
    }
    fold8(acc) + rem
}

/// Σ_i min over b ∈ [b_i(λ_q−1), b_i(λ_q)] of unit i's quadratic: its minimiser clamped.
#[inline(always)]
fn cell_sum(p: &[f64], b: &[f64], d: &[f64], e: &[f64], argmin: &[f64]) -> f64 {
    let one = |p: f64, b: f64, d: f64, e: f64, a: f64| {
        let x = hi_of(lo_of(a, hi_of(p, b)), lo_of(p, b));
        x * x * d - 2.0 * x * e
    };
    let mut acc = [0.0f64; 8];
    let (cp, cb, cd, ce, ca) =
        (p.chunks_exact(8), b.chunks_exact(8), d.chunks_exact(8), e.chunks_exact(8), argmin.chunks_exact(8));
    let mut rem = 0.0;
    for i in 0..cp.remainder().len() {
        rem += one(cp.remainder()[i], cb.remainder()[i], cd.remainder()[i], ce.remainder()[i], ca.remainder()[i]);
    }
    for ((((p, b), d), e), a) in cp.zip(cb).zip(cd).zip(ce).zip(ca) {
        for l in 0..8 {
            acc[l] += one(p[l], b[l], d[l], e[l], a[l]);
        }
    }
    fold8(acc) + rem
}

/// One chunk of a sweep: the point sums, then the cell-bound sums.
#[inline(always)]
fn sweep_chunk_body(d: &[f64], e: &[f64], h: &[f64], lambdas: &[f64], w: Weight) -> Vec<f64> {
    let k = lambdas.len();
    let mut acc = vec![0.0; 2 * k];
    let mut prev: Vec<f64> = vec![0.0; d.len()];
    let mut cur: Vec<f64> = vec![0.0; d.len()];
    // each unit's unconstrained minimiser e/d (±∞ when d = 0), computed once per chunk
    let argmin: Vec<f64> = d
        .iter()
        .zip(e)
        .map(|(&d, &e)| {
            if d > 0.0 {
                e / d
            } else if e > 0.0 {
                f64::INFINITY
            } else {
                f64::NEG_INFINITY
            }
        })
        .collect();
    for (q, &lambda) in lambdas.iter().enumerate() {
        fill_weights(&mut cur, h, lambda, w);
        acc[q] = point_sum(&cur, d, e);
        if q > 0 {
            acc[k + q - 1] = cell_sum(&prev, &cur, d, e, &argmin);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    acc
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sweep_chunk_avx2(d: &[f64], e: &[f64], h: &[f64], lambdas: &[f64], w: Weight) -> Vec<f64> {
    sweep_chunk_body(d, e, h, lambdas, w)
}

fn sweep_chunk(d: &[f64], e: &[f64], h: &[f64], lambdas: &[f64], w: Weight) -> Vec<f64> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { sweep_chunk_avx2(d, e, h, lambdas, w) };
    }
    sweep_chunk_body(d, e, h, lambdas, w)
}

/// Which device evaluates the sweeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// Rayon on the CPU.
    Cpu,
    /// The `sure_batch` CUDA kernel.
    Cuda,
}

impl From<quiver_gpu::Device> for Sweep {
    /// The sweeps of a run on `device`.
    fn from(device: quiver_gpu::Device) -> Self {
        match device {
            quiver_gpu::Device::Cpu => Sweep::Cpu,
            quiver_gpu::Device::Cuda => Sweep::Cuda,
        }
    }
}

/// CUDA source of the sweep kernel.
pub const SURE_KERNEL: &str = include_str!("kernels/sure_batch.cu");

/// Most λ values one sweep takes (the kernel keeps its sums in registers).
pub const MAX_SWEEP: usize = 64;

impl QuadraticRisk {
    /// Number of units.
    pub fn len(&self) -> usize {
        self.d.len()
    }

    /// Whether there are no units.
    pub fn is_empty(&self) -> bool {
        self.d.is_empty()
    }

    /// R(λ) at one λ.
    pub fn at(&self, lambda: f64) -> f64 {
        self.sweep_cpu(&[lambda]).0[0]
    }

    /// One sweep on the CPU: R at each λ (ascending) and the lower bound of R on each cell
    /// between consecutive λ values. Units are processed in chunks (parallel across chunks, the
    /// chunk sums added in a fixed order); within a chunk, one λ at a time over contiguous arrays,
    /// so the loops vectorise.
    pub fn sweep_cpu(&self, lambdas: &[f64]) -> (Vec<f64>, Vec<f64>) {
        const CHUNK: usize = 4096;
        let k = lambdas.len();
        let partials: Vec<Vec<f64>> = (0..self.len().div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| {
                let range = c * CHUNK..((c + 1) * CHUNK).min(self.len());
                sweep_chunk(&self.d[range.clone()], &self.e[range.clone()], &self.h[range], lambdas, self.weight)
            })
            .collect();
        let mut total = vec![0.0; 2 * k];
        for p in &partials {
            for (t, x) in total.iter_mut().zip(p) {
                *t += x;
            }
        }
        let n = self.len() as f64;
        let points = total[..k].iter().map(|s| (s + self.c) / n).collect();
        let cells = total[k..2 * k - 1].iter().map(|s| (s + self.c) / n).collect();
        (points, cells)
    }

    /// One sweep on the GPU (same contract as [`QuadraticRisk::sweep_cpu`]; sums in another
    /// order, so equal to rounding).
    pub fn sweep_cuda(&self, lambdas: &[f64]) -> Result<(Vec<f64>, Vec<f64>), quiver_gpu::GpuError> {
        use quiver_gpu::cudarc::driver::{LaunchConfig, PushKernelArg};
        let f = quiver_gpu::kernel("sure_batch", SURE_KERNEL, "sure_batch")?;
        let stream = quiver_gpu::stream()?;
        let k = lambdas.len();
        let d = stream.clone_htod(&self.d)?;
        let e = stream.clone_htod(&self.e)?;
        let h = stream.clone_htod(&self.h)?;
        let l = stream.clone_htod(lambdas)?;
        let mut pts = stream.alloc_zeros::<f64>(k)?;
        let mut cel = stream.alloc_zeros::<f64>(k.max(2) - 1)?;
        let (p, inc, k32) = (self.len() as i64, (self.weight == Weight::Increasing) as i32, k as i32);
        let mut launch = stream.launch_builder(&f);
        launch.arg(&d).arg(&e).arg(&h).arg(&p).arg(&inc).arg(&l).arg(&k32).arg(&mut pts).arg(&mut cel);
        let blocks = (self.len().div_ceil(256) as u32).clamp(1, 1024);
        let cfg = LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
        // SAFETY: arguments match the kernel; d, e, h hold p values, lambdas k ≤ 64, outputs k and k−1.
        unsafe { launch.launch(cfg) }?;
        let n = self.len() as f64;
        let points = stream.clone_dtoh(&pts)?.iter().map(|s| (s + self.c) / n).collect();
        let cells = stream.clone_dtoh(&cel)?[..k - 1].iter().map(|s| (s + self.c) / n).collect();
        Ok((points, cells))
    }

    fn sweep(&self, lambdas: &[f64], device: Sweep) -> Result<(Vec<f64>, Vec<f64>), quiver_gpu::GpuError> {
        match device {
            Sweep::Cpu => Ok(self.sweep_cpu(lambdas)),
            Sweep::Cuda => self.sweep_cuda(lambdas),
        }
    }

    /// The scale s of the map λ = s·t/(1 − t): the mean of h (any positive scale is valid; this
    /// puts t = 1/2 at a typical unit's λ).
    pub fn scale(&self) -> f64 {
        let m = self.h.iter().sum::<f64>() / self.len() as f64;
        if m > 0.0 && m.is_finite() {
            m
        } else {
            1.0
        }
    }

    /// R on `points` λ values (for plotting the curve).
    pub fn curve(&self, lambdas: &[f64], device: Sweep) -> Result<Vec<f64>, quiver_gpu::GpuError> {
        let mut out = Vec::with_capacity(lambdas.len());
        for chunk in lambdas.chunks(MAX_SWEEP) {
            out.extend(self.sweep(chunk, device)?.0);
        }
        Ok(out)
    }

    /// R and its first two derivatives in t (λ = s·t/(1 − t), t < 1) in one pass, on the CPU.
    pub fn derivatives_cpu(&self, t: f64, s: f64) -> (f64, f64, f64) {
        let lambda = s * t / (1.0 - t);
        let (lt, ltt) = (s / (1.0 - t).powi(2), 2.0 * s / (1.0 - t).powi(3));
        const CHUNK: usize = 1 << 15;
        let partials: Vec<[f64; 3]> = (0..self.len().div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| {
                let mut acc = [0.0; 3];
                for i in c * CHUNK..((c + 1) * CHUNK).min(self.len()) {
                    let (d, e, h) = (self.d[i], self.e[i], self.h[i]);
                    let b = weight(h, lambda, self.weight);
                    let (b1, b2) = match self.weight {
                        Weight::Decreasing => (-b * b / h, 2.0 * b * b * b / (h * h)),
                        Weight::Increasing => ((1.0 - b).powi(2) / h, -2.0 * (1.0 - b).powi(3) / (h * h)),
                    };
                    let (f1, f2) = (2.0 * b * d - 2.0 * e, 2.0 * d);
                    acc[0] += term(b, d, e);
                    acc[1] += f1 * b1;
                    acc[2] += f2 * b1 * b1 + f1 * b2;
                }
                acc
            })
            .collect();
        let mut tot = [0.0; 3];
        for p in &partials {
            for k in 0..3 {
                tot[k] += p[k];
            }
        }
        let n = self.len() as f64;
        ((tot[0] + self.c) / n, tot[1] * lt / n, (tot[2] * lt * lt + tot[1] * ltt) / n)
    }

    /// The minimum of R over λ ∈ [0, ∞], with a certified lower bound.
    ///
    /// One sweep evaluates R at 16 points t_k = k/15 and bounds R from below on each of the 15
    /// cells (the per-unit bound of the module documentation), so min_k(cell bound) ≤ min R: that
    /// is the certificate, reported as `lower_bound`. The neighbourhood of the best grid point is
    /// then searched by safeguarded Newton steps on R(t) (R, R′, R″ in one pass each; bisection
    /// on the sign of R′ when a step leaves the bracket). The distance between the value returned
    /// and `lower_bound` is what is certified; other cells whose bound is below it widen that gap.
    pub fn minimize(&self, device: Sweep) -> Result<Minimum, quiver_gpu::GpuError> {
        let s = self.scale();
        let lam = |t: f64| if t >= 1.0 { f64::INFINITY } else { s * t / (1.0 - t) };
        const G: usize = 15;
        let ts: Vec<f64> = (0..=G).map(|i| i as f64 / G as f64).collect();
        let (vals, lbs) = self.sweep(&ts.iter().map(|&t| lam(t)).collect::<Vec<_>>(), device)?;
        let mut sweeps = 1;
        let mut evaluations = ts.len();
        let (mut best_t, mut best) = (0.0, f64::INFINITY);
        for (&t, &v) in ts.iter().zip(&vals) {
            if v < best {
                (best_t, best) = (t, v);
            }
        }
        let lower_bound = lbs.iter().copied().fold(best, f64::min);
        // cells that may hold a lower value, searched locally (adjacent ones merged)
        let mut brackets: Vec<(usize, usize)> = Vec::new();
        for (k, &lb) in lbs.iter().enumerate() {
            if lb < best {
                match brackets.last_mut() {
                    Some(last) if last.1 == k => last.1 = k + 1,
                    _ => brackets.push((k, k + 1)),
                }
            }
        }
        // search the run holding the best grid point; other candidate cells only widen the
        // reported certified gap
        let best_k = (best_t * G as f64).round() as usize;
        brackets.retain(|&(ka, kb)| (ka..=kb).contains(&best_k));
        if brackets.is_empty() {
            brackets.push((best_k.saturating_sub(1), (best_k + 1).min(G)));
        }
        for (ka, kb) in brackets {
            // the grid point with the lowest value in the run, and its two neighbouring cells
            let j = (ka..=kb).min_by(|&i, &j| vals[i].total_cmp(&vals[j])).unwrap_or(ka);
            let (mut a, mut b) = (ts[j.saturating_sub(1).max(ka)], ts[(j + 1).min(kb)]);
            let mut t = ts[j].clamp(a, b.min(1.0 - 1e-12));
            for _ in 0..60 {
                if b - a < 1e-10 {
                    break;
                }
                let tt = t.clamp(a, b.min(1.0 - 1e-15));
                let (r, r1, r2) = match device {
                    Sweep::Cpu => self.derivatives_cpu(tt, s),
                    // the GPU path evaluates R at three close points (central differences)
                    Sweep::Cuda => {
                        let hstep = 1e-5 * (b - a).max(1e-9);
                        let pts = [(tt - hstep).max(0.0), tt, (tt + hstep).min(1.0 - 1e-15)];
                        let (v, _) = self.sweep_cuda(&pts.map(lam))?;
                        let (d1, d2) = (pts[1] - pts[0], pts[2] - pts[1]);
                        let g = ((v[2] - v[1]) / d2 * d1 + (v[1] - v[0]) / d1 * d2) / (d1 + d2);
                        let c = 2.0 * ((v[2] - v[1]) / d2 - (v[1] - v[0]) / d1) / (d1 + d2);
                        (v[1], g, c)
                    }
                };
                sweeps += 1;
                evaluations += 1;
                if r < best {
                    (best_t, best) = (tt, r);
                }
                if r1 > 0.0 {
                    b = tt;
                } else {
                    a = tt;
                }
                let newton = tt - r1 / r2;
                t = if r2 > 0.0 && newton > a && newton < b { newton } else { 0.5 * (a + b) };
                if (t - tt).abs() < 1e-14 || r1.abs() * (b - a) <= 1e-15 * r.abs() {
                    break;
                }
            }
            // the bracket's end points were evaluated by the grid sweep
        }
        // every cell whose bound lies above the best value cannot hold the global minimiser: the
        // hull of the others (and of λ̂) is a proven bracket
        let (mut lo, mut hi) = (best_t, best_t);
        for (k, &lb) in lbs.iter().enumerate() {
            if lb <= best {
                lo = lo.min(ts[k]);
                hi = hi.max(ts[k + 1]);
            }
        }
        Ok(Minimum { lambda: lam(best_t), risk: best, lower_bound, bracket: (lam(lo), lam(hi)), sweeps, evaluations })
    }
}

/// The result of [`QuadraticRisk::minimize`].
#[derive(Debug, Clone, PartialEq)]
pub struct Minimum {
    /// λ̂ (may be +∞: no shrinkage... or full, depending on the orientation).
    pub lambda: f64,
    /// R(λ̂).
    pub risk: f64,
    /// A certified lower bound on min_λ R(λ): the global minimum lies in [lower_bound, risk].
    pub lower_bound: f64,
    /// A proven bracket [λ_lo, λ_hi] of the global minimiser: every grid cell outside it has a
    /// lower bound above R(λ̂).
    pub bracket: (f64, f64),
    /// Sweeps over the units.
    pub sweeps: usize,
    /// λ values evaluated.
    pub evaluations: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn cell_bounds_are_lower_bounds_and_the_minimum_is_global() {
        for seed in 0..40 {
            let mut r = lcg(seed);
            let p = 5 + (seed as usize * 37) % 200;
            // two clusters of very different h: R can have two local minima
            let h: Vec<f64> = (0..p).map(|i| if i % 2 == 0 { 0.01 + r() * 0.02 } else { 5.0 + 20.0 * r() }).collect();
            let d: Vec<f64> = (0..p).map(|i| if i % 3 == 0 { 0.0 } else { 10.0 * r() * r() }).collect();
            let weight = if seed % 2 == 0 { Weight::Decreasing } else { Weight::Increasing };
            let risk = QuadraticRisk { e: h.clone(), d, h, c: 3.0, weight };
            let m = risk.minimize(Sweep::Cpu).unwrap();
            // a fine grid in t never beats the certified bound, and the minimum is attained
            let s = risk.scale();
            let grid: Vec<f64> = (0..=4000)
                .map(|i| i as f64 / 4000.0)
                .map(|t| if t >= 1.0 { f64::INFINITY } else { s * t / (1.0 - t) })
                .collect();
            let mut lowest = f64::INFINITY;
            for chunk in grid.chunks(64) {
                let (v, cells) = risk.sweep_cpu(chunk);
                for w in v.windows(2).zip(&cells) {
                    assert!(*w.1 <= w.0[0].min(w.0[1]) + 1e-12, "cell bound above its ends");
                }
                lowest = v.iter().copied().fold(lowest, f64::min);
            }
            assert!(m.lower_bound <= lowest + 1e-12, "seed {seed}: bound {} above grid min {lowest}", m.lower_bound);
            assert!(m.risk <= lowest + 1e-9 * lowest.abs().max(1.0), "seed {seed}: {} vs grid {lowest}", m.risk);
            assert!((m.risk - risk.at(m.lambda)).abs() <= 1e-12 * m.risk.abs().max(1.0));
            // the fine grid's minimiser lies in the proven bracket
            let mut arg = (f64::INFINITY, 0.0);
            for chunk in grid.chunks(64) {
                let (v, _) = risk.sweep_cpu(chunk);
                for (l, x) in chunk.iter().zip(v) {
                    if x < arg.0 {
                        arg = (x, *l);
                    }
                }
            }
            assert!(m.bracket.0 <= arg.1 && arg.1 <= m.bracket.1, "seed {seed}: {:?} misses {}", m.bracket, arg.1);
            assert!(m.bracket.0 <= m.lambda && m.lambda <= m.bracket.1);
        }
    }
}
