//! Xie, Kou & Brown's SURE with the location estimated (`xkb-estimated`), certified.
//!
//! With b_i(λ) = A_i/(A_i + λ) and w_i = b_i², XKB choose (λ, μ) to minimise
//! SURE(λ, μ) = (1/p) Σ [w_i (x_i − μ)² − 2A_i b_i + A_i]; for fixed λ the best μ is
//! μ̂(λ) = Σ w_i x_i / Σ w_i, so λ̂ minimises the profile
//!
//!   R(λ) = (1/p) [ Σ w_i (x_i − μ̂)² + G + C ],   G = −2 Σ A_i b_i,  C = Σ A_i,
//!
//! which is not a sum of per-unit terms (μ̂ couples the units), so the cell bounds of
//! [`crate::risk`] do not apply. In λ every unit's quantities are powers of b:
//! w′ = −2b³/A, w″ = 6b⁴/A², G′ = 2Σw, G″ = −4Σb³/A (derivatives in λ). One pass gives, at each
//! point, the sums S_j = Σ w x^j, D_j = Σ w′ x^j, E_j = Σ w″ x^j (j = 0, 1, 2), the parts of S₁ and
//! D₁ over units with x > 0, and G, from which R and its exact derivatives follow:
//!
//!   R′ = (1/p)[Σ w′(x − μ̂)² + G′]  (envelope theorem),
//!   R″ = (1/p)[Σ w″(x − μ̂)² − 2T²/S₀ + G″],  T = Σ w′(x − μ̂) (μ̂′ = T/S₀);
//!
//! the search runs in t (λ = s·t/(1 − t), s the mean of A) by the chain rule. The sums are taken
//! with derivatives in λ̃ = λ/s (w′ = −2b³/Ã, w″ = 6b⁴/Ã², Ã = A/s), which are of order one
//! whatever A's units; G′ and G″ carry the factor s.
//!
//! **Cell bounds from the point sums alone.** b decreases in λ for every unit, so between two
//! points λ₀ < λ₁ each unit's w and w″ lie between their values at the ends (the smaller at λ₁),
//! w′ and g″ too (the smaller at λ₀); with the sums split by the sign of x, the ends' sums bound
//! S₀, S₁ (hence μ̂), T and G″ over the cell, and Σ w″(x − μ̂)² ≥ min over μ̂'s range of
//! Σ w″(λ₁)(x − μ)². That bounds R″ from below, and Taylor expansions from both ends bound R on
//! the cell (second order). A first-order bound holds too: R ≥ (1/p)[min_μ Σ w(λ₁)(x − μ)² +
//! G(λ₀) + C]. The cell bound is the larger of the two, and [`crate::risk::branch_and_bound`] does
//! the rest. No pass over the data is spent on cells.
//!
//! **The last cell** reaches λ = ∞, where no expansion in λ exists. There, with v = λ₀/λ ∈ [0, 1]
//! and b concave in 1/λ through 0, each unit's b lies above its chord (b ≥ v·b(λ₀)) and below
//! its tangent at λ₀, so
//!
//!   p·R ≥ V₀v² + G(λ₀) + C + 2λ₀S₀(λ₀)(1 − v),   V₀ = min_μ Σ w(λ₀)(x − μ)²,
//!
//! a quadratic in v (exact at v = 1, and close where b is small) whose minimum over [0, 1] bounds
//! the cell. The x are centred at their mean as they are read (R does not change; the sums cancel
//! less).
//!
//! The sums are taken on every core ([`ProfiledRisk::sweep`]) or by the `sure_profile_sweep`
//! CUDA kernel ([`ProfileSweeper`], x and A copied to the GPU once per search); everything after
//! the sums is the same code.

use crate::risk::{
    branch_and_bound, combine_bounds, hi_of, lo_of, parallel_sums, Minimum, Sweep, SweepResult, SUM_CHUNK,
};

/// The profiled SURE of `xkb-estimated` (see the module documentation), over borrowed data.
#[derive(Debug, Clone)]
pub struct ProfiledRisk<'d> {
    /// The observations x_i (centred at `mean` wherever they are read).
    x: &'d [f64],
    /// The known variances A_i.
    a: &'d [f64],
    /// x̄.
    mean: f64,
    /// Σ A_i.
    c: f64,
    /// The scale of the map λ = s·t/(1 − t): the mean of A.
    s: f64,
    /// At t = 1 (λ = ∞), with α_i = A_i/s: Σα², Σα²x, Σα²x², Σα³ (R′ and R″ there).
    at_infinity: [f64; 4],
}

/// Point sums (derivatives in λ̃ = λ/s): S₀, S₁, S₂, S₁⁺ (w x^j; x > 0 only), D₀, D₁, D₂, D₁⁺ (w′ x^j),
/// E₀, E₁, E₂ (w″ x^j), G.
const POINT: usize = 12;
/// Lanes of the point pass (independent partial sums per quantity).
const LANES: usize = 4;

/// The smallest and largest of the four corner products of [a0, a1] × [b0, b1].
#[inline(always)]
fn corners(a0: f64, a1: f64, b0: f64, b1: f64) -> (f64, f64) {
    let (p, q, r, s) = (a0 * b0, a0 * b1, a1 * b0, a1 * b1);
    (lo_of(lo_of(p, q), lo_of(r, s)), hi_of(hi_of(p, q), hi_of(r, s)))
}

/// The sums of one point (laid out as in [`POINT`]) and R, R′, R″ there, in λ.
#[derive(Debug, Clone, Copy)]
struct Point {
    sums: [f64; POINT],
    /// Whether R′ and R″ are in t already (t = 1, or b underflowed to 0 everywhere).
    in_t: bool,
    value: f64,
    slope: f64,
    curvature: f64,
}

impl<'d> ProfiledRisk<'d> {
    /// The profile of `x` (observations) with known variances `a` (> 0); the data are
    /// borrowed, not copied.
    pub fn new(x: &'d [f64], a: &'d [f64]) -> Self {
        let p = x.len() as f64;
        let mean = x.iter().sum::<f64>() / p;
        let c = a.iter().sum::<f64>();
        let s = c / p;
        let s = if s > 0.0 && s.is_finite() { s } else { 1.0 };
        let total = parallel_sums(
            x.len(),
            4,
            || (),
            |range, _, acc| {
                for (&xi, &ai) in x[range.clone()].iter().zip(&a[range]) {
                    let (xi, al) = (xi - mean, ai / s);
                    let a2 = al * al;
                    acc[0] += a2;
                    acc[1] += a2 * xi;
                    acc[2] += a2 * xi * xi;
                    acc[3] += a2 * al;
                }
            },
        );
        ProfiledRisk { x, a, mean, c, s, at_infinity: [total[0], total[1], total[2], total[3]] }
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

    /// At one λ, in one pass on every core: (XKB's SURE(λ, μ̂(λ)), the unbiased risk estimate of
    /// the estimator with μ̂ depending on x, μ̂(λ)). With b_i = A_i/(A_i + λ) and
    /// μ̂ = Σ b_i² x_i / Σ b_i², XKB's criterion is (1/p) Σ [b_i²(x_i − μ̂)² + A_i − 2A_i b_i];
    /// because μ̂ depends on x, Stein's identity adds each unit's leverage b_i²/Σ b_j² to its
    /// divergence term, so the unbiased estimate is that plus (2/p) Σ A_i b_i³ / Σ b_j². At
    /// λ = ∞ (every b_i = 0) μ̂ is its limit Σ A_i² x_i / Σ A_i².
    pub fn at_lambda(&self, lambda: f64) -> (f64, f64, f64) {
        let p = self.len() as f64;
        let sums = parallel_sums(
            self.len(),
            5,
            || (),
            |range, _, acc| {
                for (&xi, &ai) in self.x[range.clone()].iter().zip(&self.a[range]) {
                    let b = crate::risk::weight(ai, lambda, crate::risk::Weight::Decreasing);
                    let (xc, w) = (xi - self.mean, b * b);
                    acc[0] += w;
                    acc[1] += w * xc;
                    acc[2] += w * xc * xc;
                    acc[3] += -2.0 * ai * b;
                    acc[4] += ai * b * w;
                }
            },
        );
        let [s0, s1, s2, g, h] = [sums[0], sums[1], sums[2], sums[3], sums[4]];
        if s0 > 0.0 {
            let published = (spread(s0, s1, s2) + g + self.c) / p;
            (published, published + 2.0 * h / (s0 * p), self.mean + s1 / s0)
        } else {
            // b underflowed (λ = ∞): μ̂'s limit, Σ A² x / Σ A²
            let [q, qx, ..] = self.at_infinity;
            let mu = if q > 0.0 { self.mean + qx / q } else { self.mean };
            ((g + self.c) / p, (g + self.c) / p, mu)
        }
    }

    /// One pass at points `ts` (ascending, in [0, 1]) on the CPU: R, R′, R″ at each
    /// (derivatives in t) and a lower bound of R on each cell between consecutive points (from
    /// the points' sums).
    pub fn sweep(&self, ts: &[f64]) -> SweepResult {
        self.finish(ts, &self.point_sums(ts))
    }

    /// R, R′, R″ (in t) and the cell bounds from the point sums of a pass at `ts` (laid out as
    /// in [`POINT`], point after point), whichever device summed them.
    fn finish(&self, ts: &[f64], totals: &[f64]) -> SweepResult {
        let k = ts.len();
        let p = self.len() as f64;
        let points: Vec<Point> = (0..k).map(|q| self.point(ts[q], &totals[POINT * q..POINT * (q + 1)])).collect();
        // derivatives in t from those in λ̃ (t = 1: in t already)
        let (mut value, mut slope, mut curvature) =
            (Vec::with_capacity(k), Vec::with_capacity(k), Vec::with_capacity(k));
        for (pt, &t) in points.iter().zip(ts) {
            value.push(pt.value);
            if !pt.in_t {
                let u = 1.0 - t;
                // in units of s: λ̃ = λ/s = t/(1 − t), λ̃′ = 1/(1 − t)², λ̃″ = 2/(1 − t)³
                let (l1, l2) = (1.0 / (u * u), 2.0 / (u * u * u));
                slope.push(pt.slope * l1);
                curvature.push(pt.curvature * l1 * l1 + pt.slope * l2);
            } else {
                slope.push(pt.slope);
                curvature.push(pt.curvature);
            }
        }
        let unit = (self.c / p).abs();
        let cell_bound = (0..k.saturating_sub(1))
            .map(|q| {
                let (l, r) = (&points[q], &points[q + 1]);
                let slack = 1e-10 * (l.value.abs() + r.value.abs() + unit);
                // first order: the weighted variance with each unit's smallest weight (at the
                // right end), G with each unit's largest b (at the left end)
                let [s0, s1, s2, ..] = r.sums;
                let first = (spread(s0, s1, s2) + l.sums[11] + self.c) / p;
                let second = if !l.in_t && !r.in_t {
                    let (la, lb) = (crate::risk::lambda_of_t(1.0, ts[q]), crate::risk::lambda_of_t(1.0, ts[q + 1]));
                    let m = curvature_floor_lambda(&l.sums, &r.sums, self.s) / p;
                    crate::risk::taylor_bound(la, lb, [l.value, l.slope], [r.value, r.slope], m)
                } else if ts[q + 1] >= 1.0 && !l.in_t {
                    self.last_cell_bound(ts[q], &l.sums)
                } else {
                    // b underflowed at a finite λ: no expansion
                    f64::NAN
                };
                combine_bounds(first, second, l.value, r.value, slack)
            })
            .collect();
        SweepResult { ts: ts.to_vec(), value, slope, curvature, cell_bound }
    }

    /// The point sums of one pass at `ts` on the CPU (every core; the order of the additions
    /// does not depend on the number of threads).
    fn point_sums(&self, ts: &[f64]) -> Vec<f64> {
        parallel_sums(
            self.len(),
            POINT * ts.len(),
            || vec![0.0; SUM_CHUNK],
            |range, scratch, acc| self.point_chunk_dispatch(&self.x[range.clone()], &self.a[range], ts, scratch, acc),
        )
    }

    /// The sums of one CPU pass at `ts`, and R, R′, R″ (in λ̃ = λ/s) from them.
    #[cfg(test)]
    fn points(&self, ts: &[f64]) -> Vec<Point> {
        let total = self.point_sums(ts);
        (0..ts.len()).map(|q| self.point(ts[q], &total[POINT * q..POINT * (q + 1)])).collect()
    }

    /// R, R′, R″ (in λ̃ = λ/s) at t from its point sums; closed forms at t = 1 (λ = ∞, b = 0), where
    /// R = C/p, R′ = (2s/p)Σα² and R″ = (1/p)[2Σα²(x − μ₁)² − 4sΣα²(1 − α)] in t, with α = A/s
    /// and μ₁ = Σα²x/Σα² (the limit of μ̂; T²/S₀ → 0).
    fn point(&self, t: f64, sums: &[f64]) -> Point {
        let p = self.len() as f64;
        let sums: [f64; POINT] = sums.try_into().expect("a point's sums");
        let [s0, s1, s2, _, d0, d1, d2, _, e0, e1, e2, g] = sums;
        if t >= 1.0 || s0 <= 0.0 {
            let [q, qx, qxx, q3] = self.at_infinity;
            return Point {
                sums,
                in_t: true,
                value: (g + self.c) / p,
                slope: 2.0 * self.s * q / p,
                curvature: (2.0 * spread(q, qx, qxx) - 4.0 * self.s * (q - q3)) / p,
            };
        }
        let mu = s1 / s0;
        let var = spread(s0, s1, s2);
        let dw = d2 - 2.0 * mu * d1 + mu * mu * d0;
        let tt = d1 - mu * d0;
        let ew = e2 - 2.0 * mu * e1 + mu * mu * e0;
        Point {
            sums,
            in_t: false,
            value: (var + g + self.c) / p,
            slope: (dw + 2.0 * self.s * s0) / p,
            curvature: (ew - 2.0 * tt * tt / s0 + 2.0 * self.s * d0) / p,
        }
    }

    /// [`ProfiledRisk::point_chunk`] compiled for AVX2 and FMA where the CPU has them.
    fn point_chunk_dispatch(&self, x: &[f64], a: &[f64], ts: &[f64], scratch: &mut [f64], acc: &mut [f64]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            unsafe { point_chunk_avx2(x, a, self.mean, ts, self.s, scratch, acc) };
            return;
        }
        point_chunk(x, a, self.mean, ts, self.s, scratch, acc)
    }

    /// A lower bound of R on the last cell [λ₀, ∞] from the sums at λ₀ (see the module
    /// documentation): the minimum over v ∈ [0, 1] of (1/p)[V₀v² + G₀ + C + 2λ₀S₀(1 − v)].
    fn last_cell_bound(&self, t0: f64, sums: &[f64; POINT]) -> f64 {
        let lambda = crate::risk::lambda_of_t(self.s, t0);
        let [s0, s1, s2, .., g] = *sums;
        let v0 = spread(s0, s1, s2);
        let slope = 2.0 * lambda * s0;
        let f = |v: f64| v0 * v * v + g + self.c + slope * (1.0 - v);
        let v = if v0 > 0.0 { (0.5 * slope / v0).clamp(0.0, 1.0) } else { 1.0 };
        lo_of(f(v), f(1.0)) / self.len() as f64
    }

    /// The certified minimum of R over λ ∈ [0, ∞] with the sweeps on `device` (Newton polished
    /// to the end: λ̂ is the stationary point XKB's estimating equation finds, where there is
    /// one).
    pub fn minimize(&self, device: Sweep) -> Result<Minimum, quiver_gpu::GpuError> {
        let mut sweeper = ProfileSweeper::new(self, device)?;
        let unit = (self.c / self.len() as f64).abs();
        branch_and_bound(&mut |ts: &[f64]| sweeper.sweep(ts), unit, 0.0, self.s)
    }
}

/// CUDA source of the profile's sweep kernel.
pub const PROFILE_KERNEL: &str = include_str!("kernels/sure_profile_sweep.cu");

/// Where the profile's sweeps run: the CPU, or a GPU holding x and A for the whole search
/// (copied once, not per sweep).
pub struct ProfileSweeper<'r, 'd> {
    risk: &'r ProfiledRisk<'d>,
    device: Option<ProfileDevice>,
}

/// The profile's data on the GPU.
struct ProfileDevice {
    stream: std::sync::Arc<quiver_gpu::cudarc::driver::CudaStream>,
    kernel: quiver_gpu::cudarc::driver::CudaFunction,
    x: quiver_gpu::cudarc::driver::CudaSlice<f64>,
    a: quiver_gpu::cudarc::driver::CudaSlice<f64>,
}

impl<'r, 'd> ProfileSweeper<'r, 'd> {
    /// A sweeper of `risk` on `device` (for CUDA: the data copied to the GPU now).
    pub fn new(risk: &'r ProfiledRisk<'d>, device: Sweep) -> Result<Self, quiver_gpu::GpuError> {
        let device = match device {
            Sweep::Cpu => None,
            Sweep::Cuda => {
                let kernel = quiver_gpu::kernel("sure_profile_sweep", PROFILE_KERNEL, "sure_profile_sweep")?;
                let stream = quiver_gpu::stream()?;
                let x = stream.clone_htod(risk.x)?;
                let a = stream.clone_htod(risk.a)?;
                Some(ProfileDevice { stream, kernel, x, a })
            }
        };
        Ok(ProfileSweeper { risk, device })
    }

    /// One sweep at points `ts` (ascending, in [0, 1]; one grid row per point on the GPU).
    pub fn sweep(&mut self, ts: &[f64]) -> Result<SweepResult, quiver_gpu::GpuError> {
        let Some(dev) = &self.device else { return Ok(self.risk.sweep(ts)) };
        use quiver_gpu::cudarc::driver::{LaunchConfig, PushKernelArg};
        let risk = self.risk;
        let k = ts.len();
        let t = dev.stream.clone_htod(ts)?;
        let mut out = dev.stream.alloc_zeros::<f64>(POINT * k)?;
        let (p, mean, s, k32) = (risk.len() as i64, risk.mean, risk.s, k as i32);
        let mut launch = dev.stream.launch_builder(&dev.kernel);
        launch.arg(&dev.x).arg(&dev.a).arg(&p).arg(&mean).arg(&s).arg(&t).arg(&k32).arg(&mut out);
        let blocks = (risk.len().div_ceil(256) as u32).clamp(1, 512);
        let cfg = LaunchConfig { grid_dim: (blocks, k as u32, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
        // SAFETY: arguments match the kernel; x and a hold p values, ts k values, the output
        // 12k; one grid row per point.
        unsafe { launch.launch(cfg) }?;
        let totals = dev.stream.clone_dtoh(&out)?;
        Ok(risk.finish(ts, &totals))
    }
}

/// min_μ Σ w(x − μ)² from S₀ = Σ w, S₁ = Σ w x, S₂ = Σ w x²: S₂ − S₁²/S₀ (0 when S₀ = 0, and never
/// below 0 by rounding).
fn spread(s0: f64, s1: f64, s2: f64) -> f64 {
    if s0 > 0.0 {
        (s2 - s1 * s1 / s0).max(0.0)
    } else {
        0.0
    }
}

/// Intervals holding S₀ = Σ w, S₁ = Σ w x, D₀ = Σ w′ and D₁ = Σ w′ x over a cell.
struct Intervals {
    s0: (f64, f64),
    s1: (f64, f64),
    d0: (f64, f64),
    d1: (f64, f64),
}

impl Intervals {
    /// The intervals over the cell between the points with sums `l` and `r` (laid out as in
    /// [`POINT`]): w falls and w′ rises with λ, so each unit's w x lies between its ends' values,
    /// the larger at the left end where x > 0 and at the right end where x < 0 (w′ x: the other
    /// way round).
    fn of_cell(l: &[f64; POINT], r: &[f64; POINT]) -> Self {
        // x < 0 parts: S₁⁻ = S₁ − S₁⁺, D₁⁻ = D₁ − D₁⁺
        let (sm_l, sm_r) = (l[1] - l[3], r[1] - r[3]);
        let (dm_l, dm_r) = (l[5] - l[7], r[5] - r[7]);
        Intervals { s0: (r[0], l[0]), s1: (r[3] + sm_l, l[3] + sm_r), d0: (l[4], r[4]), d1: (l[7] + dm_r, r[7] + dm_l) }
    }

    /// The range of μ̂ = S₁/S₀; none where S₀ may vanish.
    fn mu(&self) -> Option<(f64, f64)> {
        let (s0, s1) = (self.s0, self.s1);
        // (NaN fails this too)
        if s0.0.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return None;
        }
        let cand = [s1.0 / s0.0, s1.0 / s0.1, s1.1 / s0.0, s1.1 / s0.1];
        Some((
            cand.iter().copied().fold(f64::INFINITY, f64::min),
            cand.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        ))
    }

    /// The largest T² with T = D₁ − μ D₀ and μ in [m0, m1].
    fn t_squared_max(&self, m0: f64, m1: f64) -> f64 {
        let (pm0, pm1) = corners(m0, m1, self.d0.0, self.d0.1);
        let (t0, t1) = (self.d1.0 - pm1, self.d1.1 - pm0);
        hi_of(t0 * t0, t1 * t1)
    }
}

/// A lower bound of p·R″ (in λ) on the cell between the points with sums `l` and `r` (laid out
/// as in [`POINT`]): every unit's w and w″ are largest at the left end, w′ and g″ at the right
/// (b falls with λ), which bounds S₀, S₁, D₀, D₁ (split by the sign of x), and with them μ̂ and
/// T; Σ w″(x − μ̂)² ≥ min over μ̂'s range of Σ w″(λ₁)(x − μ)²; G″ ≥ 2sD₀(λ₀) (derivatives in
/// λ̃ = λ/s, s the scale). −∞ where S₀ may vanish.
fn curvature_floor_lambda(l: &[f64; POINT], r: &[f64; POINT], s: f64) -> f64 {
    let iv = Intervals::of_cell(l, r);
    let Some((m0, m1)) = iv.mu() else {
        return f64::NEG_INFINITY;
    };
    // min over μ ∈ [m0, m1] of E₂ − 2μE₁ + μ²E₀ at the right end (E₀ ≥ 0)
    let (e0, e1, e2) = (r[8], r[9], r[10]);
    let mu = if e0 > 0.0 { (e1 / e0).clamp(m0, m1) } else { m0 };
    let e_term = (e2 - 2.0 * mu * e1 + mu * mu * e0).max(0.0);
    e_term - 2.0 * iv.t_squared_max(m0, m1) / iv.s0.0 + 2.0 * s * l[4]
}

/// The point sums of one chunk (x centred at `mean`; see [`POINT`]) at every t < 1 of `ts`,
/// added into `acc`; at each point first ũ = b/Ã = (1 − t)/(Ã(1 − t) + t) for the whole chunk
/// (full-width vector divisions), then the sums [`LANES`] units at a time.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn point_chunk(x: &[f64], a: &[f64], mean: f64, ts: &[f64], s: f64, scratch: &mut [f64], acc: &mut [f64]) {
    let n = x.len();
    let n4 = n / LANES * LANES;
    let u = &mut scratch[..n];
    for (q, &t) in ts.iter().enumerate() {
        if t >= 1.0 {
            continue;
        }
        // ũ = s·b/A = (1 − t)/(Ã(1 − t) + t), Ã = A/s: derivatives in λ̃ = λ/s, of order one
        // whatever A's units (in λ, b/A and 6w(b/A)² overflowed for A near 1e-200)
        let (one_t, inv_s) = (1.0 - t, 1.0 / s);
        for i in 0..n {
            u[i] = one_t / (a[i] * inv_s * one_t + t);
        }
        let terms = |i: usize| -> [f64; POINT] {
            let (xi, ai, ui) = (x[i] - mean, a[i], u[i]);
            let b = ai * inv_s * ui;
            let w = b * b;
            let w1 = -2.0 * w * ui;
            let w2 = 6.0 * w * ui * ui;
            let xp = if xi > 0.0 { xi } else { 0.0 };
            let x2 = xi * xi;
            [w, w * xi, w * x2, w * xp, w1, w1 * xi, w1 * x2, w1 * xp, w2, w2 * xi, w2 * x2, -2.0 * ai * b]
        };
        let mut lanes = [[0.0f64; LANES]; POINT];
        for base in (0..n4).step_by(LANES) {
            for l in 0..LANES {
                let v = terms(base + l);
                for j in 0..POINT {
                    lanes[j][l] += v[j];
                }
            }
        }
        let o = POINT * q;
        for j in 0..POINT {
            acc[o + j] += (lanes[j][0] + lanes[j][1]) + (lanes[j][2] + lanes[j][3]);
        }
        for i in n4..n {
            let v = terms(i);
            for j in 0..POINT {
                acc[o + j] += v[j];
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn point_chunk_avx2(x: &[f64], a: &[f64], mean: f64, ts: &[f64], s: f64, scratch: &mut [f64], acc: &mut [f64]) {
    point_chunk(x, a, mean, ts, s, scratch, acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::lcg;

    /// The CUDA kernel, run on the CPU (quiver-cuda-emulator), sums what the CPU pass sums at
    /// every point, with A over twelve orders of magnitude and its mean far from 1 (the kernel once
    /// took its derivatives in λ after the CPU had moved to λ/s: off by s and s²).
    #[test]
    fn the_kernel_sums_what_the_cpu_pass_sums() {
        let Some(m) = quiver_cuda_emulator::skip_or_panic(quiver_cuda_emulator::Module::compile(
            "sure_profile_sweep",
            PROFILE_KERNEL,
        )) else {
            return;
        };
        type Kernel = unsafe extern "C" fn(*const f64, *const f64, i64, f64, f64, *const f64, i32, *mut f64);
        // SAFETY: the kernel's parameters (sure_profile_sweep.cu).
        let kernel: Kernel = unsafe { m.function("sure_profile_sweep") }.unwrap();
        let mut r = lcg(5);
        let p = 3000;
        let a: Vec<f64> = (0..p)
            .map(|i| match i % 10 {
                0 => 1e-6 * (1.0 + r()),
                1 => 1e6 * r(),
                _ => 0.5 + 7.0 * r(),
            })
            .collect();
        let x: Vec<f64> = (0..p).map(|_| 4.0 * r() - 1.0).collect();
        let risk = ProfiledRisk::new(&x, &a);
        assert!((risk.s - 1.0).abs() > 1.0, "the scale must not be 1: {}", risk.s);
        let ts: Vec<f64> = (0..=12).map(|i| i as f64 / 12.0).collect();
        let cpu = risk.point_sums(&ts);
        let mut out = vec![0.0; POINT * ts.len()];
        let (xp, ap, tp, op) = (x.as_ptr(), a.as_ptr(), ts.as_ptr(), out.as_mut_ptr());
        let (mean, s, k) = (risk.mean, risk.s, ts.len());
        // SAFETY: x and a hold p values, ts k, out 12 k; the grid's rows are the points, as the
        // CUDA launch's (fewer blocks a row: the loop strides).
        m.launch((3, k as u32, 1), (256, 1, 1), 0, || unsafe { kernel(xp, ap, p as i64, mean, s, tp, k as i32, op) })
            .unwrap();
        quiver_cuda_emulator::assert_close("point sums", &cpu, &out, 1e-9);
    }

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

    /// Strong signal: the x spread far more than their noise, so λ̂ is large (t̂ near 1, little
    /// shrinkage) and the last cell, up to λ = ∞, holds or borders the minimum.
    fn strong_signal(seed: u64) -> (Vec<f64>, Vec<f64>) {
        let mut r = lcg(seed);
        let p = 20 + (seed as usize * 53) % 300;
        let a: Vec<f64> = (0..p).map(|_| 0.5 + 3.0 * r()).collect();
        let spread = 10.0 + 40.0 * r();
        let x: Vec<f64> = a.iter().map(|ai| -7.0 + spread * (r() - 0.5) + (r() - 0.5) * (12.0 * ai).sqrt()).collect();
        (x, a)
    }

    #[test]
    fn at_lambda_is_the_direct_formula() {
        for seed in 0..10 {
            let (x, a) = problem(300 + seed);
            let risk = ProfiledRisk::new(&x, &a);
            for lambda in [0.0, 1e-3, 0.7, 5.0, 1e4, f64::INFINITY] {
                let (published, unbiased, mu) = risk.at_lambda(lambda);
                let b: Vec<f64> =
                    a.iter().map(|&ai| if lambda.is_infinite() { 0.0 } else { ai / (ai + lambda) }).collect();
                let s2: f64 = b.iter().map(|v| v * v).sum();
                let want_mu = if s2 > 0.0 {
                    b.iter().zip(&x).map(|(bi, xi)| bi * bi * xi).sum::<f64>() / s2
                } else {
                    a.iter().zip(&x).map(|(ai, xi)| ai * ai * xi).sum::<f64>() / a.iter().map(|ai| ai * ai).sum::<f64>()
                };
                let p = x.len() as f64;
                let lev = |i: usize| if s2 > 0.0 { b[i] * b[i] / s2 } else { 0.0 };
                let want_unbiased = (0..x.len())
                    .map(|i| b[i] * b[i] * (x[i] - want_mu).powi(2) + a[i] - 2.0 * a[i] * b[i] * (1.0 - lev(i)))
                    .sum::<f64>()
                    / p;
                let want = direct(&x, &a, lambda);
                let close = |u: f64, v: f64| (u - v).abs() <= 1e-10 * v.abs().max(1.0);
                assert!(close(published, want), "λ {lambda}: {published} vs {want}");
                assert!(close(unbiased, want_unbiased), "λ {lambda}: {unbiased} vs {want_unbiased}");
                assert!(close(mu, want_mu), "λ {lambda}: μ̂ {mu} vs {want_mu}");
            }
        }
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
    fn the_curvature_floor_holds_inside_its_cell() {
        // R″ (in λ) at 200 points inside each of several cells never falls below the floor
        // computed from the cell's ends
        for (seed, (x, a)) in
            (0..20).map(|seed| (seed, problem(500 + seed))).chain((0..10).map(|seed| (100 + seed, strong_signal(seed))))
        {
            let risk = ProfiledRisk::new(&x, &a);
            let p = x.len() as f64;
            for (t0, t1) in [(0.0, 0.05), (0.01, 0.02), (0.2, 0.5), (0.9, 0.95), (0.97, 0.99), (0.3, 0.99)] {
                let ends = risk.points(&[t0, t1]);
                let floor = curvature_floor_lambda(&ends[0].sums, &ends[1].sums, risk.scale()) / p;
                let inside: Vec<f64> = (1..200).map(|i| t0 + (t1 - t0) * i as f64 / 200.0).collect();
                let pts = risk.points(&inside);
                let lowest = pts.iter().map(|pt| pt.curvature).fold(f64::INFINITY, f64::min);
                // every interval holds its sum at every point inside, and μ̂ its range
                let iv = Intervals::of_cell(&ends[0].sums, &ends[1].sums);
                let (m0, m1) = iv.mu().expect("S₀ > 0");
                let within = |v: f64, (lo, hi): (f64, f64)| v >= lo - 1e-12 * lo.abs() && v <= hi + 1e-12 * hi.abs();
                for pt in &pts {
                    let q = &pt.sums;
                    assert!(within(q[0], iv.s0) && within(q[1], iv.s1), "seed {seed}, [{t0}, {t1}]: S outside");
                    assert!(within(q[4], iv.d0) && within(q[5], iv.d1), "seed {seed}, [{t0}, {t1}]: D outside");
                    assert!(within(q[1] / q[0], (m0, m1)), "seed {seed}, [{t0}, {t1}]: μ̂ outside");
                }
                let width = (iv.s0.1 - iv.s0.0) + (iv.d0.1 - iv.d0.0);
                assert!(width > 0.0, "seed {seed}, [{t0}, {t1}]: the cell's intervals are points");
                assert!(
                    floor <= lowest + 1e-9 * lowest.abs().max(1e-300),
                    "seed {seed}, cell [{t0}, {t1}]: floor {floor} above R'' {lowest}"
                );
            }
        }
    }

    #[test]
    fn the_certificate_is_valid_and_tight() {
        let problems = (0..30)
            .map(|seed| (seed, problem(100 + seed)))
            .chain((0..15).map(|seed| (1000 + seed, strong_signal(seed))));
        let mut tighter = 0;
        for (seed, (x, a)) in problems {
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
            // the last cell [t₀, 1] (up to λ = ∞): valid, and above the first-order bound
            // (G(λ₀) + C)/p where b is small
            for t0 in [0.5, 0.9, 0.97, 0.99, 0.999] {
                let bound = risk.sweep(&[t0, 1.0]).cell_bound[0];
                let lambda = crate::risk::lambda_of_t(risk.scale(), t0);
                let first = a.iter().map(|ai| ai - 2.0 * ai * ai / (ai + lambda)).sum::<f64>() / a.len() as f64;
                let inside = (0..=2000)
                    .map(|i| {
                        direct(&x, &a, crate::risk::lambda_of_t(risk.scale(), t0 + (1.0 - t0) * i as f64 / 2000.0))
                    })
                    .fold(f64::INFINITY, f64::min);
                assert!(bound <= inside + 1e-12, "seed {seed}, last cell from {t0}: bound {bound} above {inside}");
                if bound > first + 1e-3 * (inside - first) {
                    tighter += 1;
                }
            }
            let lowest = values.iter().copied().fold(f64::INFINITY, f64::min);
            let m = risk.minimize(Sweep::Cpu).unwrap();
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
        assert!(tighter >= 150, "the last cell's bound beat the first-order one {tighter} times in 225");
    }

    /// Random problems across scales — A over 16 decades (a spread of up to 4 within a problem),
    /// x spreads over 10 decades (so λ̂ from 0 to far beyond A: t̂ within 1e-9 of 1), offsets,
    /// p from 2 to 61: the certificate is valid against a 2001-point grid, λ̂'s value is the
    /// direct formula's and at most the grid's minimum, and the gap is ≤ 10^-6 of the risk scale.
    #[test]
    fn the_certificate_holds_across_scales() {
        for seed in 0..3000u64 {
            let mut r = lcg(7_000 + seed);
            let p = 2 + (r() * 60.0) as usize;
            let (ae, aspread) = (-8.0 + 16.0 * r(), 4.0 * r());
            let a: Vec<f64> = (0..p).map(|_| 10f64.powf(ae + aspread * (r() - 0.5))).collect();
            let (spread, offset) = (10f64.powf(-5.0 + 10.0 * r()), 10f64.powf(-3.0 + 9.0 * r()));
            let x: Vec<f64> = (0..p).map(|_| offset + spread * (r() - 0.5)).collect();
            let risk = ProfiledRisk::new(&x, &a);
            let m = risk.minimize(Sweep::Cpu).unwrap();
            let grid = (0..=2000)
                .map(|i| direct(&x, &a, crate::risk::lambda_of_t(risk.scale(), i as f64 / 2000.0)))
                .fold(f64::INFINITY, f64::min);
            let scale = m.risk.abs().max(a.iter().sum::<f64>() / p as f64);
            let what =
                format!("seed {seed}: risk {:e}, bound {:e}, grid {grid:e}, λ̂ {:e}", m.risk, m.lower_bound, m.lambda);
            assert!(m.lower_bound <= grid + 1e-9 * scale && m.risk <= grid + 1e-9 * scale, "{what}");
            assert!((m.risk - direct(&x, &a, m.lambda)).abs() <= 1e-8 * scale, "{what}");
            assert!(
                m.risk - m.lower_bound <= 1e-6 * scale,
                "{what}: gap {:e} of the scale",
                (m.risk - m.lower_bound) / scale
            );
        }
    }
}
