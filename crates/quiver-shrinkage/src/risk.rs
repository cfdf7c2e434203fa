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

/// The minimum of b²d − 2be over b ∈ [lo, hi] (d ≥ 0).
#[inline(always)]
fn term_min(lo: f64, hi: f64, d: f64, e: f64) -> f64 {
    let b = if d > 0.0 {
        (e / d).clamp(lo, hi)
    } else if e > 0.0 {
        hi
    } else {
        lo
    };
    term(b, d, e)
}

/// Which device evaluates the sweeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// Rayon on the CPU.
    Cpu,
    /// The `sure_batch` CUDA kernel.
    Cuda,
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

    /// b_i(λ) for every unit.
    pub fn weights(&self, lambda: f64) -> Vec<f64> {
        self.h.iter().map(|&h| weight(h, lambda, self.weight)).collect()
    }

    /// R(λ) at one λ.
    pub fn at(&self, lambda: f64) -> f64 {
        self.sweep_cpu(&[lambda]).0[0]
    }

    /// One sweep on the CPU: R at each λ (ascending) and the lower bound of R on each cell
    /// between consecutive λ values.
    pub fn sweep_cpu(&self, lambdas: &[f64]) -> (Vec<f64>, Vec<f64>) {
        const CHUNK: usize = 1 << 15;
        let k = lambdas.len();
        let partials: Vec<Vec<f64>> = (0..self.len().div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| {
                let mut acc = vec![0.0; 2 * k];
                let mut b = vec![0.0; k];
                let end = ((c + 1) * CHUNK).min(self.len());
                for i in c * CHUNK..end {
                    let (d, e, h) = (self.d[i], self.e[i], self.h[i]);
                    for q in 0..k {
                        b[q] = weight(h, lambdas[q], self.weight);
                        acc[q] += term(b[q], d, e);
                    }
                    for q in 1..k {
                        let (lo, hi) = if b[q - 1] <= b[q] { (b[q - 1], b[q]) } else { (b[q], b[q - 1]) };
                        acc[k + q - 1] += term_min(lo, hi, d, e);
                    }
                }
                acc
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
        use quiver_gpu::driver_err;
        let f = quiver_gpu::kernel("sure_batch", SURE_KERNEL, "sure_batch")?;
        let stream = quiver_gpu::stream()?;
        let k = lambdas.len();
        let d = stream.clone_htod(&self.d).map_err(driver_err)?;
        let e = stream.clone_htod(&self.e).map_err(driver_err)?;
        let h = stream.clone_htod(&self.h).map_err(driver_err)?;
        let l = stream.clone_htod(lambdas).map_err(driver_err)?;
        let mut pts = stream.alloc_zeros::<f64>(k).map_err(driver_err)?;
        let mut cel = stream.alloc_zeros::<f64>(k.max(2) - 1).map_err(driver_err)?;
        let (p, inc, k32) = (self.len() as i64, (self.weight == Weight::Increasing) as i32, k as i32);
        let mut launch = stream.launch_builder(&f);
        launch.arg(&d).arg(&e).arg(&h).arg(&p).arg(&inc).arg(&l).arg(&k32).arg(&mut pts).arg(&mut cel);
        let blocks = (self.len().div_ceil(256) as u32).clamp(1, 1024);
        let cfg = LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
        // SAFETY: arguments match the kernel; d, e, h hold p values, lambdas k ≤ 64, outputs k and k−1.
        unsafe { launch.launch(cfg) }.map_err(driver_err)?;
        let n = self.len() as f64;
        let points = stream.clone_dtoh(&pts).map_err(driver_err)?.iter().map(|s| (s + self.c) / n).collect();
        let cells = stream.clone_dtoh(&cel).map_err(driver_err)?[..k - 1].iter().map(|s| (s + self.c) / n).collect();
        Ok((points, cells))
    }

    fn sweep(&self, lambdas: &[f64], device: Sweep) -> Result<(Vec<f64>, Vec<f64>), quiver_gpu::GpuError> {
        match device {
            Sweep::Cpu => Ok(self.sweep_cpu(lambdas)),
            Sweep::Cuda => self.sweep_cuda(lambdas),
        }
    }

    /// The scale s of the map λ = s·t/(1 − t): the median of h.
    pub fn scale(&self) -> f64 {
        let mut h = self.h.clone();
        let mid = h.len() / 2;
        let (_, m, _) = h.select_nth_unstable_by(mid, f64::total_cmp);
        if *m > 0.0 {
            *m
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

    /// The certified global minimum of R over λ ∈ [0, ∞].
    pub fn minimize(&self, device: Sweep) -> Result<Minimum, quiver_gpu::GpuError> {
        let s = self.scale();
        let lam = |t: f64| if t >= 1.0 { f64::INFINITY } else { s * t / (1.0 - t) };
        // cells: (t_lo, t_hi, lower bound); points: best (t, value)
        let first = 32usize;
        let ts: Vec<f64> = (0..=first).map(|i| i as f64 / first as f64).collect();
        let (vals, lbs) = self.sweep(&ts.iter().map(|&t| lam(t)).collect::<Vec<_>>(), device)?;
        let mut sweeps = 1;
        let mut evaluations = ts.len();
        let (mut best_t, mut best) = (0.0, f64::INFINITY);
        for (&t, &v) in ts.iter().zip(&vals) {
            if v < best {
                (best_t, best) = (t, v);
            }
        }
        let mut cells: Vec<(f64, f64, f64)> = (0..first).map(|i| (ts[i], ts[i + 1], lbs[i])).collect();
        // the per-unit bound is first-order in the cell width while R is flat (second order) at
        // its minimum, so near the optimum the bound alone converges slowly: it is used to exclude
        // every cell that cannot hold the global minimum, then the surviving region is refined
        // by grid sweeps (each 17 points, narrowing eightfold).
        let tol = |best: f64| 1e-7 * (best.abs() + self.c.abs() / self.len() as f64 + f64::MIN_POSITIVE);
        const SPLIT: usize = 8;
        const ACTIVE: usize = 8;
        loop {
            cells.retain(|c| c.2 < best - tol(best));
            cells.sort_by(|a, b| a.2.total_cmp(&b.2));
            let splittable: Vec<usize> =
                (0..cells.len()).filter(|&i| cells[i].1 - cells[i].0 > 1e-6).take(ACTIVE).collect();
            if splittable.is_empty() || sweeps >= 24 {
                break;
            }
            let mut new_ts = Vec::new();
            for &i in &splittable {
                let (a, b, _) = cells[i];
                new_ts.extend((0..=SPLIT).map(|j| a + (b - a) * j as f64 / SPLIT as f64));
            }
            let lambdas: Vec<f64> = new_ts.iter().map(|&t| lam(t)).collect();
            let (vals, lbs) = self.sweep(&lambdas, device)?;
            sweeps += 1;
            evaluations += lambdas.len();
            let mut replaced = Vec::new();
            for (c, &i) in splittable.iter().enumerate() {
                let base = c * (SPLIT + 1);
                for j in 0..=SPLIT {
                    if vals[base + j] < best {
                        (best_t, best) = (new_ts[base + j], vals[base + j]);
                    }
                }
                for j in 0..SPLIT {
                    replaced.push((new_ts[base + j], new_ts[base + j + 1], lbs[base + j]));
                }
                cells[i].2 = f64::INFINITY; // dropped below
            }
            cells.retain(|c| c.2.is_finite());
            cells.extend(replaced);
        }
        // polish around the best point found, within the cells that survived
        let (mut lo, mut hi) = (best_t, best_t);
        for c in &cells {
            if (c.0..=c.1).contains(&best_t) || (c.1 - c.0) < 1e-3 {
                lo = lo.min(c.0);
                hi = hi.max(c.1);
            }
        }
        while hi - lo > 1e-11 {
            const POINTS: usize = 17;
            let ts: Vec<f64> = (0..POINTS).map(|j| lo + (hi - lo) * j as f64 / (POINTS - 1) as f64).collect();
            let (vals, _) = self.sweep(&ts.iter().map(|&t| lam(t)).collect::<Vec<_>>(), device)?;
            sweeps += 1;
            evaluations += POINTS;
            let (mut bj, mut bv) = (0, f64::INFINITY);
            for (j, &v) in vals.iter().enumerate() {
                if v < bv {
                    (bj, bv) = (j, v);
                }
            }
            if bv < best {
                (best_t, best) = (ts[bj], bv);
            }
            let step = (hi - lo) / (POINTS - 1) as f64;
            (lo, hi) = ((ts[bj] - step).max(0.0), (ts[bj] + step).min(1.0));
        }
        let lower = cells.iter().map(|c| c.2).fold(best, f64::min);
        Ok(Minimum { lambda: lam(best_t), risk: best, lower_bound: lower, sweeps, evaluations })
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
        }
    }
}
