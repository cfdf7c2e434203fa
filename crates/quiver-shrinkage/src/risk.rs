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
//! R need not be unimodal in λ when the h_i differ, so λ̂ comes from a branch-and-bound search
//! that cannot miss the global minimum: λ ∈ [0, ∞] is mapped to t ∈ [0, 1] (λ = s·t/(1 − t)),
//! where each b_i is a ratio of linear functions of t, so b_i, b_i′ and b_i″ are monotone between
//! any two points. A sweep evaluates R, R′ and R″ at its points and bounds R from below on each
//! cell between them by the larger of a first-order bound (Σ_i min of unit i's quadratic over the
//! range of b_i on the cell) and a second-order one (Taylor expansions from both ends with a lower
//! bound of R″ on the cell; its error shrinks with the cube of the width). Cells whose bound is
//! within a relative 1e-7 of the best value found are settled; the others are split and swept
//! again ([`QuadraticRisk::minimize`]). Each sweep evaluates all its points and cell bounds in one
//! pass over the units (CPU: parallel chunks summed in a fixed order, so results do not depend on
//! the thread count; CUDA: the `sure_sweep` kernel, the units' data kept on the GPU for the whole
//! search).

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

/// The per-unit quantities of one point t: b, b′, b″ (derivatives in t). With D = h + (s − h)t
/// (> 0 on [0, 1]): decreasing b = h(1 − t)/D, b′ = −hs/D², b″ = 2hs(s − h)/D³; increasing
/// b = st/D, b′ = hs/D², b″ = −2hs(s − h)/D³. The products are formed as (h/D)(s/D) so that no
/// factor overflows.
#[inline(always)]
pub(crate) fn unit_at<const INC: bool>(t: f64, s: f64, h: f64) -> (f64, f64, f64) {
    let inv = 1.0 / (h + (s - h) * t);
    let (hd, sd) = (h * inv, s * inv);
    let b1 = hd * sd;
    let b2 = 2.0 * b1 * ((s - h) * inv);
    if INC {
        (t * sd, b1, -b2)
    } else {
        ((1.0 - t) * hd, -b1, b2)
    }
}

/// Eight partial sums added in a fixed order (one running sum is a dependency chain that
/// neither pipelines nor vectorises; this order is deterministic).
#[inline(always)]
pub(crate) fn fold8(acc: &[f64; 8]) -> f64 {
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
}

/// Per-unit state of one point of a sweep, kept for the cell to the next point.
struct PointUnits {
    b: Vec<f64>,
    b1: Vec<f64>,
    b2: Vec<f64>,
}

impl PointUnits {
    fn new(n: usize) -> Self {
        PointUnits { b: vec![0.0; n], b1: vec![0.0; n], b2: vec![0.0; n] }
    }
}

/// A chunk's view of a [`PointUnits`].
struct PointUnitsMut<'a> {
    b: &'a mut [f64],
    b1: &'a mut [f64],
    b2: &'a mut [f64],
}

/// Unit i's contributions at one point: (f, f′, f″) with f = b(db − 2e).
#[inline(always)]
fn point_terms(d: f64, e: f64, b: f64, b1: f64, b2: f64) -> (f64, f64, f64) {
    let g = 2.0 * (d * b - e);
    (b * (d * b - 2.0 * e), g * b1, 2.0 * d * b1 * b1 + g * b2)
}

/// The sums of one point over a chunk: Σ f, Σ f′ and Σ f″; b, b′ and b″ are left in `out` for
/// the cell to the next point (written whether or not there is one: two plain loops vectorise
/// best). Eight lanes at a time, so the loop vectorises.
#[inline(always)]
fn point_sums<const INC: bool>(
    t: f64,
    s: f64,
    d: &[f64],
    e: &[f64],
    h: &[f64],
    out: &mut PointUnitsMut<'_>,
) -> [f64; 3] {
    let n = d.len();
    let (ob, ob1, ob2) = (&mut out.b[..n], &mut out.b1[..n], &mut out.b2[..n]);
    // element-wise: b, b′, b″ (the loop vectoriser makes this full-width, divisions included)
    for i in 0..n {
        let (b, b1, b2) = unit_at::<INC>(t, s, h[i]);
        ob[i] = b;
        ob1[i] = b1;
        ob2[i] = b2;
    }
    // the sums, eight lanes at a time in a fixed order
    let mut acc = [[0.0f64; 8]; 3];
    let n8 = n / 8 * 8;
    for base in (0..n8).step_by(8) {
        let (d8, e8) = (&d[base..base + 8], &e[base..base + 8]);
        let (b8, b18, b28) = (&ob[base..base + 8], &ob1[base..base + 8], &ob2[base..base + 8]);
        for l in 0..8 {
            let (f0, f1, f2) = point_terms(d8[l], e8[l], b8[l], b18[l], b28[l]);
            acc[0][l] += f0;
            acc[1][l] += f1;
            acc[2][l] += f2;
        }
    }
    let mut rem = [0.0; 3];
    for i in n8..n {
        let (f0, f1, f2) = point_terms(d[i], e[i], ob[i], ob1[i], ob2[i]);
        (rem[0], rem[1], rem[2]) = (rem[0] + f0, rem[1] + f1, rem[2] + f2);
    }
    [fold8(&acc[0]) + rem[0], fold8(&acc[1]) + rem[1], fold8(&acc[2]) + rem[2]]
}

/// The smaller of two numbers (a branch-free select; `f64::min` is slower in the hot loops).
#[inline(always)]
pub(crate) fn lo_of(a: f64, b: f64) -> f64 {
    if a < b {
        a
    } else {
        b
    }
}

/// The larger of two numbers.
#[inline(always)]
pub(crate) fn hi_of(a: f64, b: f64) -> f64 {
    if a < b {
        b
    } else {
        a
    }
}

/// Unit i's contributions to a cell between two points: the minimum of its quadratic over
/// b ∈ [b(p), b(q)] (its minimiser `argmin` = e/d clamped; first order), and a lower bound of
/// f″ on the cell: 2d·min b′² + the least corner of (2(db − e)) × b″ over their ranges (b, b′²,
/// b″ are monotone in t between the points, D being linear).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn cell_terms(d: f64, e: f64, argmin: f64, pb: f64, qb: f64, pb1: f64, qb1: f64, pb2: f64, qb2: f64) -> (f64, f64) {
    let (blo, bhi) = (lo_of(pb, qb), hi_of(pb, qb));
    let x = hi_of(lo_of(argmin, bhi), blo);
    let (glo, ghi) = (2.0 * (d * blo - e), 2.0 * (d * bhi - e));
    let (clo, chi) = (lo_of(pb2, qb2), hi_of(pb2, qb2));
    let corner = lo_of(lo_of(glo * clo, glo * chi), lo_of(ghi * clo, ghi * chi));
    (x * x * d - 2.0 * x * e, 2.0 * d * lo_of(pb1 * pb1, qb1 * qb1) + corner)
}

/// The sums of one cell over a chunk, between the points `p` and `q` (see [`cell_terms`]).
#[inline(always)]
fn cell_sums(p: &PointUnitsMut<'_>, q: &PointUnitsMut<'_>, d: &[f64], e: &[f64], argmin: &[f64]) -> [f64; 2] {
    let mut acc = [[0.0f64; 8]; 2];
    let n8 = d.len() / 8 * 8;
    let mut rem = [0.0; 2];
    for base in (0..n8).step_by(8) {
        let (d8, e8, a8) = (&d[base..base + 8], &e[base..base + 8], &argmin[base..base + 8]);
        let (pb, qb) = (&p.b[base..base + 8], &q.b[base..base + 8]);
        let (pb1, qb1) = (&p.b1[base..base + 8], &q.b1[base..base + 8]);
        let (pb2, qb2) = (&p.b2[base..base + 8], &q.b2[base..base + 8]);
        for l in 0..8 {
            let (c0, c1) = cell_terms(d8[l], e8[l], a8[l], pb[l], qb[l], pb1[l], qb1[l], pb2[l], qb2[l]);
            acc[0][l] += c0;
            acc[1][l] += c1;
        }
    }
    for i in n8..d.len() {
        let (c0, c1) = cell_terms(d[i], e[i], argmin[i], p.b[i], q.b[i], p.b1[i], q.b1[i], p.b2[i], q.b2[i]);
        (rem[0], rem[1]) = (rem[0] + c0, rem[1] + c1);
    }
    [fold8(&acc[0]) + rem[0], fold8(&acc[1]) + rem[1]]
}

/// Scratch space of one worker: the per-unit state at the previous and current point, and the
/// units' minimisers, reused chunk after chunk (allocating and zeroing them per chunk cost more
/// than the arithmetic).
struct Scratch {
    prev: PointUnits,
    cur: PointUnits,
    argmin: Vec<f64>,
}

impl Scratch {
    fn new(n: usize) -> Self {
        Scratch { prev: PointUnits::new(n), cur: PointUnits::new(n), argmin: vec![0.0; n] }
    }
}

/// One chunk of a sweep (at most the scratch's length): for each point its three sums, then for
/// each cell its two, added into `acc`.
#[inline(always)]
fn sweep_chunk_body<const INC: bool>(
    d: &[f64],
    e: &[f64],
    h: &[f64],
    ts: &[f64],
    s: f64,
    scratch: &mut Scratch,
    acc: &mut [f64],
) {
    let (k, n) = (ts.len(), d.len());
    let Scratch { prev, cur, argmin } = scratch;
    let (prev, cur) = (trim(prev, n), trim(cur, n));
    let argmin = &mut argmin[..n];
    if k > 1 {
        // each unit's unconstrained minimiser e/d (±∞ when d = 0), once per chunk, for the cells
        for ((a, &d), &e) in argmin.iter_mut().zip(d).zip(e) {
            *a = if d > 0.0 {
                e / d
            } else if e > 0.0 {
                f64::INFINITY
            } else {
                f64::NEG_INFINITY
            };
        }
    }
    let (mut prev, mut cur) = (prev, cur);
    for (q, &t) in ts.iter().enumerate() {
        let [f0, f1, f2] = point_sums::<INC>(t, s, d, e, h, &mut cur);
        acc[3 * q] += f0;
        acc[3 * q + 1] += f1;
        acc[3 * q + 2] += f2;
        if q > 0 {
            let [c0, c1] = cell_sums(&prev, &cur, d, e, argmin);
            acc[3 * k + 2 * (q - 1)] += c0;
            acc[3 * k + 2 * (q - 1) + 1] += c1;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
}

/// The first `n` entries of a point's state.
fn trim(p: &mut PointUnits, n: usize) -> PointUnitsMut<'_> {
    PointUnitsMut { b: &mut p.b[..n], b1: &mut p.b1[..n], b2: &mut p.b2[..n] }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sweep_chunk_avx2<const INC: bool>(
    d: &[f64],
    e: &[f64],
    h: &[f64],
    ts: &[f64],
    s: f64,
    scratch: &mut Scratch,
    acc: &mut [f64],
) {
    sweep_chunk_body::<INC>(d, e, h, ts, s, scratch, acc)
}

/// One chunk of a sweep, the orientation fixed at compile time, with AVX2 where the CPU has it.
#[allow(clippy::too_many_arguments)]
fn sweep_chunk(d: &[f64], e: &[f64], h: &[f64], ts: &[f64], s: f64, inc: bool, scratch: &mut Scratch, acc: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        unsafe {
            if inc {
                sweep_chunk_avx2::<true>(d, e, h, ts, s, scratch, acc)
            } else {
                sweep_chunk_avx2::<false>(d, e, h, ts, s, scratch, acc)
            }
        };
        return;
    }
    if inc {
        sweep_chunk_body::<true>(d, e, h, ts, s, scratch, acc)
    } else {
        sweep_chunk_body::<false>(d, e, h, ts, s, scratch, acc)
    }
}

/// Which device evaluates the sweeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// Rayon on the CPU.
    Cpu,
    /// The `sure_sweep` CUDA kernel.
    Cuda,
}

/// CUDA source of the sweep kernel.
pub const SURE_KERNEL: &str = include_str!("kernels/sure_sweep.cu");

/// Most points one sweep takes.
pub const MAX_SWEEP: usize = 64;

/// The result of one sweep at points t_0 < … < t_{k−1} of t ∈ [0, 1] (λ = s·t/(1 − t)):
/// R, dR/dt and d²R/dt² at each point, and for each cell between consecutive points a
/// certified lower bound of R on it.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepResult {
    /// The points t.
    pub ts: Vec<f64>,
    /// R(t_q).
    pub value: Vec<f64>,
    /// R′(t_q).
    pub slope: Vec<f64>,
    /// R″(t_q).
    pub curvature: Vec<f64>,
    /// A lower bound of R on [t_q, t_{q+1}]: the larger of the first-order bound (each unit's
    /// quadratic minimised over its b-range) and the second-order one (Taylor expansions from
    /// both ends with a lower bound of R″ on the cell), less a rounding allowance.
    pub cell_bound: Vec<f64>,
}

/// A cell's lower bound from its first- and second-order bounds and its ends' values `va`, `vb`:
/// the larger of the bounds that are numbers, never above either end, less the rounding
/// allowance `slack`; −∞ (nothing certain) where an evaluation went NaN.
pub(crate) fn combine_bounds(first: f64, second: f64, va: f64, vb: f64, slack: f64) -> f64 {
    let bound = match (first.is_nan(), second.is_nan()) {
        (false, false) => hi_of(first, second),
        (false, true) => first,
        (true, false) => second,
        (true, true) => f64::NEG_INFINITY,
    };
    let bound = lo_of(bound, lo_of(va, vb)) - slack;
    if bound.is_nan() {
        f64::NEG_INFINITY
    } else {
        bound
    }
}

/// Sums of `width` numbers over `n` units, computed chunk by chunk on every core: `chunk(range,
/// scratch, acc)` adds a chunk's sums into `acc`, with `scratch` from `init` reused by a worker.
/// Chunks are taken in fixed groups, each summed in order and the groups added in order, so the
/// result does not depend on the number of threads.
pub(crate) fn parallel_sums<S>(
    n: usize,
    width: usize,
    init: impl Fn() -> S + Sync + Send,
    chunk: impl Fn(std::ops::Range<usize>, &mut S, &mut [f64]) + Sync + Send,
) -> Vec<f64> {
    const CHUNK: usize = SUM_CHUNK;
    const GROUP: usize = 16;
    let chunks = n.div_ceil(CHUNK);
    let partials: Vec<Vec<f64>> = (0..chunks.div_ceil(GROUP))
        .into_par_iter()
        .map_init(init, |scratch, g| {
            let mut acc = vec![0.0; width];
            for c in g * GROUP..((g + 1) * GROUP).min(chunks) {
                chunk(c * CHUNK..((c + 1) * CHUNK).min(n), scratch, &mut acc);
            }
            acc
        })
        .collect();
    let mut total = vec![0.0; width];
    for p in &partials {
        for (t, x) in total.iter_mut().zip(p) {
            *t += x;
        }
    }
    total
}

/// The chunk length of [`parallel_sums`] (scratch buffers are this long).
pub(crate) const SUM_CHUNK: usize = 4096;

/// The second-order bound of R on [ta, tb]: min over the cell of max(qa, qb) with
/// qa(t) = Ra + Ra′(t − ta) + m/2 (t − ta)², qb(t) = Rb + Rb′(t − tb) + m/2 (t − tb)², m ≤ R″ on
/// the cell (Taylor's theorem makes each a lower bound of R there). max(qa, qb) is piecewise
/// quadratic: its minimum is at an end, the crossing, or a vertex, all of which are evaluated.
pub(crate) fn taylor_bound(ta: f64, tb: f64, a: [f64; 2], b: [f64; 2], m: f64) -> f64 {
    if !(m.is_finite() && a.iter().chain(&b).all(|x| x.is_finite())) {
        // no usable expansion (a first-order sweep, or an overflow): no bound
        return f64::NEG_INFINITY;
    }
    let qa = |t: f64| a[0] + a[1] * (t - ta) + 0.5 * m * (t - ta) * (t - ta);
    let qb = |t: f64| b[0] + b[1] * (t - tb) + 0.5 * m * (t - tb) * (t - tb);
    let g = |t: f64| hi_of(qa(t), qb(t));
    let mut candidates = [ta, tb, f64::NAN, f64::NAN, f64::NAN];
    // qa − qb = α + β t (the m terms differ by a linear function)
    let beta = a[1] - b[1] + m * (tb - ta);
    let alpha = qa(0.0) - qb(0.0);
    if beta != 0.0 {
        candidates[2] = -alpha / beta;
    }
    if m > 0.0 {
        candidates[3] = ta - a[1] / m;
        candidates[4] = tb - b[1] / m;
    }
    candidates.iter().filter(|t| (ta..=tb).contains(*t)).map(|&t| g(t)).fold(f64::INFINITY, f64::min)
}

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

    /// t of λ under the map of [`QuadraticRisk::scale`] (λ = ∞: t = 1).
    pub fn t_of(&self, lambda: f64) -> f64 {
        t_of_lambda(self.scale(), lambda)
    }

    /// One sweep on the CPU at points `ts` (ascending, in [0, 1]). Units are processed in chunks
    /// (parallel across chunks, the chunk sums added in a fixed order, so results do not depend
    /// on the thread count); within a chunk one point at a time over contiguous arrays, so the
    /// loops vectorise.
    pub fn sweep_t_cpu(&self, ts: &[f64]) -> SweepResult {
        let total = self.sweep_sums(ts, self.scale());
        self.finish(ts, &total)
    }

    /// The sums of one sweep at `ts` on the CPU, before [`sweep_of_sums`] turns them into risks
    /// and bounds: for each point Σ terms of R, R′, R″, then for each cell two sums of its
    /// bounds, with the points t mapped to λ = s·t/(1 − t) by `s` (the whole data's
    /// [`QuadraticRisk::scale`]). Sums over units: with one `s`, the sums of disjoint sets of
    /// units add up to those of their union.
    pub fn sweep_sums(&self, ts: &[f64], s: f64) -> Vec<f64> {
        let inc = self.weight == Weight::Increasing;
        let width = 3 * ts.len() + 2 * ts.len().saturating_sub(1);
        parallel_sums(
            self.len(),
            width,
            || Scratch::new(SUM_CHUNK),
            |range, scratch, acc| {
                let (d, e, h) = (&self.d[range.clone()], &self.e[range.clone()], &self.h[range]);
                sweep_chunk(d, e, h, ts, s, inc, scratch, acc);
            },
        )
    }

    /// The sweep's sums as risks and bounds.
    fn finish(&self, ts: &[f64], total: &[f64]) -> SweepResult {
        sweep_of_sums(self.len(), self.c, ts, total)
    }

    /// One sweep on the CPU at λ values (ascending; `∞` allowed): R at each and the lower bound
    /// of R on each cell between consecutive values.
    pub fn sweep_cpu(&self, lambdas: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let ts: Vec<f64> = lambdas.iter().map(|&l| self.t_of(l)).collect();
        let r = self.sweep_t_cpu(&ts);
        (r.value, r.cell_bound)
    }

    /// R on `points` λ values (for plotting the curve).
    pub fn curve(&self, lambdas: &[f64], device: Sweep) -> Result<Vec<f64>, quiver_gpu::GpuError> {
        let mut sweeper = Sweeper::new(self, device)?;
        let mut out = Vec::with_capacity(lambdas.len());
        for chunk in lambdas.chunks(MAX_SWEEP) {
            let ts: Vec<f64> = chunk.iter().map(|&l| self.t_of(l)).collect();
            out.extend(sweeper.sweep(&ts)?.value);
        }
        Ok(out)
    }

    /// The minimum of R over λ ∈ [0, ∞], certified by branch and bound ([`branch_and_bound`]
    /// on this risk's sweeps, on `device`).
    pub fn minimize(&self, device: Sweep) -> Result<Minimum, quiver_gpu::GpuError> {
        let mut sweeper = Sweeper::new(self, device)?;
        let unit = (self.c / self.len() as f64).abs();
        let s = self.scale();
        branch_and_bound(&mut |ts: &[f64]| sweeper.sweep(ts), unit, 1e-2, s)
    }
}

/// A sweep at `ts` from its sums ([`QuadraticRisk::sweep_sums`], added over any split of the
/// `n` units) and the constant c = Σ c_i: R = (Σ terms + c)/n, R′, R″ and each cell's bound.
pub fn sweep_of_sums(n: usize, c: f64, ts: &[f64], total: &[f64]) -> SweepResult {
    let k = ts.len();
    let n = n as f64;
    let value: Vec<f64> = (0..k).map(|q| (total[3 * q] + c) / n).collect();
    let slope: Vec<f64> = (0..k).map(|q| total[3 * q + 1] / n).collect();
    let curvature: Vec<f64> = (0..k).map(|q| total[3 * q + 2] / n).collect();
    // rounding: the sums of ~10^7 terms carry a relative error far below this allowance
    let unit = (c / n).abs();
    let cell_bound = (0..k.saturating_sub(1))
        .map(|q| {
            let first = (total[3 * k + 2 * q] + c) / n;
            let m = total[3 * k + 2 * q + 1] / n;
            let second = taylor_bound(ts[q], ts[q + 1], [value[q], slope[q]], [value[q + 1], slope[q + 1]], m);
            let slack = 1e-12 * (value[q].abs() + value[q + 1].abs() + unit);
            combine_bounds(first, second, value[q], value[q + 1], slack)
        })
        .collect();
    SweepResult { ts: ts.to_vec(), value, slope, curvature, cell_bound }
}

/// t = λ/(s + λ), the inverse of [`lambda_of_t`] (λ = ∞: t = 1).
pub fn t_of_lambda(s: f64, lambda: f64) -> f64 {
    if lambda.is_infinite() {
        1.0
    } else {
        lambda / (s + lambda)
    }
}

/// λ = s·t/(1 − t) (t = 1: ∞).
pub fn lambda_of_t(s: f64, t: f64) -> f64 {
    if t >= 1.0 {
        f64::INFINITY
    } else {
        s * t / (1.0 - t)
    }
}

/// The certified minimum over t ∈ [0, 1] (λ = s·t/(1 − t)) of a risk whose sweeps `sweep`
/// returns ([`SweepResult`]: values and exact derivatives at the points, a lower bound on each
/// cell between them).
///
/// One sweep evaluates R at 8 points t_k = k/7 and bounds R from below on each of the 7 cells.
/// The neighbourhood of the best point is searched by safeguarded Newton steps on R(t) (exact R,
/// R′, R″ from a one-point sweep; the first from the opening sweep's own; bisection on the sign
/// of R′ when a step leaves the bracket), until a step could gain no more than `polish` × the
/// tolerance (0: until the step itself vanishes). Then every cell whose bound lies more than
/// 10^-7 × max(|R|, `unit`) below the best value is split — into the cube root of its gap over
/// the tolerance pieces, 2 or 3, and at the best point when it lies inside — and swept again,
/// the lowest bounds first and at most 32 points a sweep, until no such cell is left (or 12
/// rounds). `lower_bound` is the least bound of all cells; `bracket` the hull of the cells whose
/// bound is not above R(λ̂).
pub fn branch_and_bound<E>(
    sweep: &mut dyn FnMut(&[f64]) -> Result<SweepResult, E>,
    unit: f64,
    polish: f64,
    s: f64,
) -> Result<Minimum, E> {
    const G: usize = 7;
    const ROUNDS: usize = 12;
    /// Points per refinement sweep: the cost of a sweep grows with its points.
    const BUDGET: usize = 32;
    let tol = |best: f64| 1e-7 * best.abs().max(unit).max(f64::MIN_POSITIVE);
    let ts: Vec<f64> = (0..=G).map(|i| i as f64 / G as f64).collect();
    let first = sweep(&ts)?;
    // (sweeps, points evaluated); the best (t, R) so far
    let mut counts = (1, ts.len());
    let mut state = (0.0, f64::INFINITY);
    for (&t, &v) in first.ts.iter().zip(&first.value) {
        if v < state.1 {
            state = (t, v);
        }
    }
    // cells: (ta, tb, lower bound)
    let mut cells: Vec<(f64, f64, f64)> = (0..G).map(|q| (first.ts[q], first.ts[q + 1], first.cell_bound[q])).collect();
    let k = (state.0 * G as f64).round() as usize;
    let (a, b) = (first.ts[k.saturating_sub(1)], first.ts[(k + 1).min(G)]);
    let stop = tol(state.1) * polish;
    let start = (first.value[k], first.slope[k], first.curvature[k]);
    newton(sweep, state.0, Some(start), a, b, stop, &mut state, &mut counts)?;
    for _ in 0..ROUNDS {
        let (best_t, best) = state;
        let tol_now = tol(best);
        let mut open: Vec<usize> = (0..cells.len()).filter(|&i| cells[i].2 < best - tol_now).collect();
        if open.is_empty() {
            break;
        }
        // the lowest bounds first, each cell split into ~ (gap / tol)^(1/3) pieces (the
        // second-order bound's error falls with the cube of the width), within the budget
        open.sort_by(|&i, &j| cells[i].2.total_cmp(&cells[j].2));
        let mut splits: Vec<(usize, Vec<f64>)> = Vec::new();
        let mut used = 0;
        for &i in &open {
            let (ta, tb, lb) = cells[i];
            let pieces = ((best - lb) / tol_now).cbrt().ceil().clamp(2.0, 3.0) as usize;
            // evenly in t, or evenly in log λ where the cell spans more than a factor 4 of λ:
            // near t = 1 (λ̂ ≫ s) even pieces in t would shrink such a cell's λ-range by only a
            // factor 3 a round, and its bounds loosen with that range
            let (lambda_a, lambda_b) = (lambda_of_t(s, ta), lambda_of_t(s, tb));
            let geometric = lambda_a > 0.0 && lambda_b.is_finite() && lambda_b > 4.0 * lambda_a;
            let mut pts: Vec<f64> = (0..=pieces)
                .map(|j| {
                    let f = j as f64 / pieces as f64;
                    if j == 0 {
                        ta
                    } else if j == pieces {
                        tb
                    } else if geometric {
                        t_of_lambda(s, lambda_a * (lambda_b / lambda_a).powf(f))
                    } else {
                        ta + (tb - ta) * f
                    }
                })
                .collect();
            if best_t > ta && best_t < tb {
                // at the best point R′ ≈ 0: the cells on either side of it bound tightly
                pts.push(best_t);
                pts.sort_by(f64::total_cmp);
                pts.dedup();
            }
            if used > 0 && used + pts.len() > BUDGET {
                break;
            }
            used += pts.len();
            splits.push((i, pts));
        }
        splits.sort_by(|x, y| cells[x.0].0.total_cmp(&cells[y.0].0));
        // one sweep over the splits' points, a point shared by neighbouring cells once; each
        // split's cells start at its first point's index
        let mut pts: Vec<f64> = Vec::with_capacity(used);
        let mut starts = Vec::with_capacity(splits.len());
        for (_, p) in &splits {
            if pts.last() == p.first() {
                pts.pop();
            }
            starts.push(pts.len());
            pts.extend_from_slice(p);
        }
        let r = sweep(&pts)?;
        counts.0 += 1;
        counts.1 += pts.len();
        let mut next: Vec<(f64, f64, f64)> = Vec::with_capacity(cells.len() + pts.len());
        let mut refined = vec![false; cells.len()];
        for ((i, p), &start) in splits.iter().zip(&starts) {
            refined[*i] = true;
            for j in start..start + p.len() - 1 {
                next.push((pts[j], pts[j + 1], r.cell_bound[j]));
            }
        }
        next.extend((0..cells.len()).filter(|&i| !refined[i]).map(|i| cells[i]));
        next.sort_by(|x, y| x.0.total_cmp(&y.0));
        cells = next;
        // a refinement point below the best value: another basin, polished in turn
        if let Some((q, &v)) = r.value.iter().enumerate().min_by(|x, y| x.1.total_cmp(y.1)) {
            if v < state.1 - tol(state.1) {
                let (a, b) = (pts[q.saturating_sub(1)].min(pts[q]), pts[(q + 1).min(pts.len() - 1)].max(pts[q]));
                state = (pts[q], v);
                let stop = tol(state.1) * polish;
                let start = (r.value[q], r.slope[q], r.curvature[q]);
                newton(sweep, pts[q], Some(start), a, b, stop, &mut state, &mut counts)?;
            }
        }
    }
    let (sweeps, evaluations) = counts;
    let (best_t, best) = state;
    let lower_bound = cells.iter().map(|c| c.2).fold(best, f64::min);
    let (mut lo, mut hi) = (best_t, best_t);
    for &(ta, tb, lb) in &cells {
        if lb <= best {
            lo = lo.min(ta);
            hi = hi.max(tb);
        }
    }
    Ok(Minimum {
        lambda: lambda_of_t(s, best_t),
        risk: best,
        lower_bound,
        bracket: (lambda_of_t(s, lo), lambda_of_t(s, hi)),
        sweeps,
        evaluations,
    })
}

/// Safeguarded Newton on R(t) in [a, b] from t0 (`start`: R, R′, R″ there when known), updating
/// the best (t, R) and the counts (sweeps, evaluations); stops when the next step could gain no
/// more than `stop` (R′²/2R″, or |R′|·(b − a) where R is not convex) or vanishes.
#[allow(clippy::too_many_arguments)]
fn newton<E>(
    sweep: &mut dyn FnMut(&[f64]) -> Result<SweepResult, E>,
    t0: f64,
    start: Option<(f64, f64, f64)>,
    mut a: f64,
    mut b: f64,
    stop: f64,
    best: &mut (f64, f64),
    counts: &mut (usize, usize),
) -> Result<(), E> {
    let mut t = t0.clamp(a, b);
    // the start's R, R′, R″ are known from the sweep that found it: its first step is free
    let mut known = start.filter(|_| t == t0);
    let mut best_slope = f64::INFINITY;
    for _ in 0..60 {
        if b - a < 1e-12 {
            break;
        }
        let tt = t.clamp(a, b);
        let (v, r1, r2) = match known.take() {
            Some(k) => k,
            None => {
                let r = sweep(&[tt])?;
                counts.0 += 1;
                counts.1 += 1;
                (r.value[0], r.slope[0], r.curvature[0])
            }
        };
        // at a flat minimum the values tie to rounding: the point with the smaller slope is
        // the better estimate of the minimiser
        let tie = v <= best.1 + 4.0 * f64::EPSILON * v.abs();
        if v < best.1 || (tie && r1.abs() < best_slope) {
            *best = (tt, v);
            best_slope = r1.abs();
        }
        if r1 > 0.0 {
            b = tt;
        } else {
            a = tt;
        }
        let step = tt - r1 / r2;
        if r2 > 0.0 && (step - tt).abs() <= (2.0 * f64::EPSILON * tt.abs()).max(1e-12 * tt * (1.0 - tt)) {
            // converged: the step is below t's rounding (the bracket's end may be t itself, and
            // bisecting towards it would take dozens of sweeps), or moves λ = s·t/(1 − t) by less
            // than 10^-12 of itself (dλ/λ = dt/(t(1 − t))); Newton's next error is its square
            break;
        }
        t = if r2 > 0.0 && step > a && step < b { step } else { 0.5 * (a + b) };
        // a Newton step this close changes R by about R′²/(2R″): stop when that is negligible
        // (r1·(r1/r2), not r1²/r2: with values near 1e-200, r1² underflows to 0 and Newton stopped
        // at once)
        let gain = if r2 > 0.0 { 0.5 * r1.abs() * (r1 / r2).abs() } else { r1.abs() * (b - a) };
        if (t - tt).abs() < 1e-15 || gain <= stop {
            break;
        }
    }
    Ok(())
}

/// Where the sweeps run: the CPU, or a GPU holding the units' data for the whole search (copied
/// once, not per sweep).
pub struct Sweeper<'a> {
    risk: &'a QuadraticRisk,
    device: Option<DeviceData>,
}

/// The units' data on the GPU.
struct DeviceData {
    stream: std::sync::Arc<quiver_gpu::cudarc::driver::CudaStream>,
    kernel: quiver_gpu::cudarc::driver::CudaFunction,
    d: quiver_gpu::cudarc::driver::CudaSlice<f64>,
    e: quiver_gpu::cudarc::driver::CudaSlice<f64>,
    h: quiver_gpu::cudarc::driver::CudaSlice<f64>,
}

impl<'a> Sweeper<'a> {
    /// A sweeper of `risk` on `device` (for CUDA: the data copied to the GPU now).
    pub fn new(risk: &'a QuadraticRisk, device: Sweep) -> Result<Self, quiver_gpu::GpuError> {
        let device = match device {
            Sweep::Cpu => None,
            Sweep::Cuda => {
                let kernel = quiver_gpu::kernel("sure_sweep", SURE_KERNEL, "sure_sweep")?;
                let stream = quiver_gpu::stream()?;
                let d = stream.clone_htod(&risk.d)?;
                let e = stream.clone_htod(&risk.e)?;
                let h = stream.clone_htod(&risk.h)?;
                Some(DeviceData { stream, kernel, d, e, h })
            }
        };
        Ok(Sweeper { risk, device })
    }

    /// One sweep at points `ts` (ascending, in [0, 1], at most [`MAX_SWEEP`]).
    pub fn sweep(&mut self, ts: &[f64]) -> Result<SweepResult, quiver_gpu::GpuError> {
        let total = self.sums(ts)?;
        Ok(self.risk.finish(ts, &total))
    }

    /// The sums of one sweep at `ts` ([`QuadraticRisk::sweep_sums`]), on this sweeper's device.
    pub fn sums(&mut self, ts: &[f64]) -> Result<Vec<f64>, quiver_gpu::GpuError> {
        let Some(dev) = &self.device else { return Ok(self.risk.sweep_sums(ts, self.risk.scale())) };
        use quiver_gpu::cudarc::driver::{LaunchConfig, PushKernelArg};
        let k = ts.len();
        let risk = self.risk;
        let t = dev.stream.clone_htod(ts)?;
        let mut out = dev.stream.alloc_zeros::<f64>(3 * k + 2 * k.saturating_sub(1))?;
        let (p, inc, k32, s) = (risk.len() as i64, (risk.weight == Weight::Increasing) as i32, k as i32, risk.scale());
        let mut launch = dev.stream.launch_builder(&dev.kernel);
        launch.arg(&dev.d).arg(&dev.e).arg(&dev.h).arg(&p).arg(&inc).arg(&s).arg(&t).arg(&k32).arg(&mut out);
        let blocks = (risk.len().div_ceil(256) as u32).clamp(1, 512);
        let cfg = LaunchConfig { grid_dim: (blocks, k as u32, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
        // SAFETY: arguments match the kernel; d, e, h hold p values, ts k values, the output
        // 3k + 2(k − 1); one grid row per point.
        unsafe { launch.launch(cfg) }?;
        Ok(dev.stream.clone_dtoh(&out)?)
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
    /// A proven bracket [λ_lo, λ_hi] of the global minimiser: every cell outside it has a
    /// lower bound above R(λ̂).
    pub bracket: (f64, f64),
    /// Sweeps over the units.
    pub sweeps: usize,
    /// Points evaluated.
    pub evaluations: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::lcg;

    /// The CUDA sweep kernel, run on the CPU (quiver-cuda-emulator), sums what the CPU sweep
    /// sums — the points' R, R′, R″ and both cell bounds — for both orientations of b(λ).
    #[test]
    fn the_kernel_sums_what_the_cpu_sweep_sums() {
        let Some(m) =
            quiver_cuda_emulator::skip_or_panic(quiver_cuda_emulator::Module::compile("sure_sweep", SURE_KERNEL))
        else {
            return;
        };
        type Kernel =
            unsafe extern "C" fn(*const f64, *const f64, *const f64, i64, i32, f64, *const f64, i32, *mut f64);
        // SAFETY: the kernel's parameters (sure_sweep.cu).
        let kernel: Kernel = unsafe { m.function("sure_sweep") }.unwrap();
        for weight in [Weight::Decreasing, Weight::Increasing] {
            let mut r = lcg(9);
            let p = 2500;
            let h: Vec<f64> = (0..p).map(|i| if i % 2 == 0 { 0.01 + r() } else { 5.0 + 200.0 * r() }).collect();
            let d: Vec<f64> = (0..p).map(|i| if i % 7 == 0 { 0.0 } else { 10.0 * r() }).collect();
            let e: Vec<f64> = (0..p).map(|_| 3.0 * r() - 1.0).collect();
            let risk = QuadraticRisk { d, e, h, c: 2.0, weight };
            let ts: Vec<f64> = (0..=10).map(|i| i as f64 / 10.0).collect();
            let cpu = risk.sweep_sums(&ts, risk.scale());
            let k = ts.len();
            let mut out = vec![0.0; 3 * k + 2 * (k - 1)];
            let (dp, ep, hp, tp, op) =
                (risk.d.as_ptr(), risk.e.as_ptr(), risk.h.as_ptr(), ts.as_ptr(), out.as_mut_ptr());
            let (inc, s) = ((weight == Weight::Increasing) as i32, risk.scale());
            // SAFETY: d, e, h hold p values, ts k, out 3k + 2(k − 1); grid rows are the points.
            m.launch((2, k as u32, 1), (256, 1, 1), 0, || unsafe {
                kernel(dp, ep, hp, p as i64, inc, s, tp, k as i32, op)
            })
            .unwrap();
            quiver_cuda_emulator::assert_close(&format!("{weight:?} sweep sums"), &cpu, &out, 1e-9);
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
            // and tight: within 10^-6 of the scale max(|R|, |C|/p)
            let unit = (risk.c / p as f64).abs().max(m.risk.abs());
            assert!(
                m.risk - m.lower_bound <= 1e-6 * unit,
                "seed {seed}: gap {} at scale {unit}",
                m.risk - m.lower_bound
            );
            assert!(m.risk <= lowest + 1e-9 * lowest.abs().max(1.0), "seed {seed}: {} vs grid {lowest}", m.risk);
            assert!((m.risk - risk.at(m.lambda)).abs() <= 1e-12 * m.risk.abs().max(1.0));
            // the fine grid's minimiser lies in the proven bracket where it is as good as λ̂
            let mut arg = (f64::INFINITY, 0.0);
            for chunk in grid.chunks(64) {
                let (v, _) = risk.sweep_cpu(chunk);
                for (l, x) in chunk.iter().zip(v) {
                    if x < arg.0 {
                        arg = (x, *l);
                    }
                }
            }
            // (every point at least as good as λ̂ lies in a cell whose bound is not above R(λ̂))
            if arg.0 <= m.risk {
                assert!(m.bracket.0 <= arg.1 && arg.1 <= m.bracket.1, "seed {seed}: {:?} misses {}", m.bracket, arg.1);
            }
            assert!(m.bracket.0 <= m.lambda && m.lambda <= m.bracket.1);
        }
    }

    /// XKB-like risks (toward the grand mean) across scales, both weights — h over 16 decades,
    /// d over 20 — certified to 10^-6 of the risk scale, never above a 2001-point grid.
    #[test]
    fn the_certificate_holds_across_scales() {
        for seed in 0..600u64 {
            let mut r = lcg(9_000 + seed);
            let p = 2 + (r() * 60.0) as usize;
            let (he, hspread) = (-8.0 + 16.0 * r(), 4.0 * r());
            let h: Vec<f64> = (0..p).map(|_| 10f64.powf(he + hspread * (r() - 0.5))).collect();
            let spread = 10f64.powf(-5.0 + 10.0 * r());
            let x: Vec<f64> = (0..p).map(|_| spread * (r() - 0.5)).collect();
            let xbar = x.iter().sum::<f64>() / p as f64;
            let weight = if seed % 2 == 0 { Weight::Decreasing } else { Weight::Increasing };
            let risk = QuadraticRisk {
                d: x.iter().map(|xi| (xi - xbar).powi(2)).collect(),
                e: h.iter().map(|hi| (1.0 - 1.0 / p as f64) * hi).collect(),
                c: h.iter().sum(),
                h,
                weight,
            };
            let m = risk.minimize(Sweep::Cpu).unwrap();
            let ts: Vec<f64> = (0..=2000).map(|i| i as f64 / 2000.0).collect();
            let grid = ts.chunks(MAX_SWEEP).flat_map(|c| risk.sweep_t_cpu(c).value).fold(f64::INFINITY, f64::min);
            let scale = m.risk.abs().max(risk.c / p as f64);
            let what = format!("seed {seed} ({weight:?}): risk {:e}, bound {:e}, grid {grid:e}", m.risk, m.lower_bound);
            assert!(m.lower_bound <= grid + 1e-9 * scale && m.risk <= grid + 1e-9 * scale, "{what}");
            assert!(m.risk - m.lower_bound <= 1e-6 * scale, "{what}");
        }
    }
}
