//! Off-policy evaluation: estimates of a target policy's value from data logged by another, and
//! their confidence intervals.
//!
//! Trajectories (per episode e, step t, ρ_t = π(a_t|s_t)/μ(a_t|s_t), w_t = Π_{k≤t} ρ_k, w_{−1} = 1):
//! * TIS: mean_e w_{T_e−1} Σ_t γ^t r_t;  PDIS: mean_e Σ_t γ^t w_t r_t (Precup et al. 2000);
//! * SN-PDIS: Σ_t γ^t Σ_e w_{e,t} r_{e,t} / Σ_e w_{e,t}, per step over all episodes, an episode
//!   that has ended keeping its last weight with reward 0;
//! * DM: mean_e V̂(s_0);  DR (per decision, Jiang & Li 2016):
//!   mean_e Σ_t γ^t [w_t (r_t − Q̂(s_t, a_t)) + w_{t−1} V̂(s_t)], unbiased for any Q̂.
//!
//! Bandits (row i, w_i = π(a_i|x_i)/μ(a_i|x_i), q̂ the reward model, DM_i = Σ_k π(k|x_i) q̂_k(x_i)):
//! IPW mean w r; SNIPW Σ w r / Σ w; DM mean DM_i; DR mean DM_i + w_i (r_i − q̂_{a_i});
//! Switch-DR(λ) DR where w_i ≤ λ, DM elsewhere (Wang et al. 2017); DRos(λ) DR with
//! ŵ = λw/(w² + λ) (Su et al. 2020). Switch-DR(0) = DRos(0) = DM and Switch-DR(∞) = DR.
//!
//! Intervals at level 1 − α over the independent units (episodes, or rows), from their values x.
//! Asymptotic (they hold as n grows; at n = 1000 a heavy-weighted IPW `t` interval covered 0.81
//! at α = 0.1): `t` mean ± t_{1−α/2, n−1} s/√n; `bootstrap` the α/2 and 1 − α/2 quantiles of the
//! estimator over resampled units (seeded, [`crate::bootstrap`]). Finite-sample, from bounds the
//! user declares ([`crate::ope_bounds`]): `betting` (Waudby-Smith & Ramdas 2024; for importance
//! weights Karampatziakis, Mineiro & Ramdas 2021), `empirical-bernstein` (Maurer & Pontil 2009)
//! and `hoeffding`, for the estimators that are unbiased for the value (IPW, DR; TIS, PDIS, DR),
//! and under `betting` with a weight bound for SNIPW's target too. The self-normalised estimators
//! are ratios, not means: SNIPW's `t` interval is the delta method, R̂ ± t s_u/(√n · mean w) with
//! u_i = w_i (r_i − R̂); otherwise (but for SNIPW's betting interval, and always for SN-PDIS)
//! their interval is the bootstrap, as are the biased estimators' (DM, Switch-DR, DRos) under a
//! finite-sample kind. Each interval says which it is ([`Validity`]).

use crate::bootstrap::{percentile_interval, Plan, UnitKeys, UnitMatrix};
use crate::ope_bounds::{self, Declared, FiniteKind, Range1};
pub use crate::ope_parts::{
    bandit_finish, bandit_merge, bandit_partial, mergeable, trajectory_finish, trajectory_merge, trajectory_partial,
    BanditPartial, TrajectoryPartial,
};
use crate::RlError;
use quiver_numerics::binomial::student_t_quantile;
use quiver_numerics::choices;
use rayon::prelude::*;
use std::ops::Range;

choices! {
    /// How a confidence interval is computed.
    pub enum CiMethod {
        /// Percentile bootstrap over the units (seeded).
        Bootstrap = "bootstrap",
        /// Student's t.
        T = "t",
        /// Testing by betting, from the declared reward range (finite-sample).
        Betting = "betting",
        /// The empirical Bernstein bound (Maurer & Pontil) with the declared bounds (finite-sample).
        EmpiricalBernstein = "empirical-bernstein",
        /// Hoeffding's inequality with the declared bounds (finite-sample).
        Hoeffding = "hoeffding",
    }
}

impl CiMethod {
    /// The finite-sample kind, if this is one.
    pub fn finite(self) -> Option<FiniteKind> {
        match self {
            CiMethod::Betting => Some(FiniteKind::Betting),
            CiMethod::EmpiricalBernstein => Some(FiniteKind::EmpiricalBernstein),
            CiMethod::Hoeffding => Some(FiniteKind::Hoeffding),
            CiMethod::Bootstrap | CiMethod::T => None,
        }
    }

    /// Whether the kind needs a declared bound on the importance ratio for every estimator it
    /// covers (betting covers IPW, TIS and PDIS from the reward range alone).
    pub fn needs_weight_bound(self) -> bool {
        matches!(self, CiMethod::EmpiricalBernstein | CiMethod::Hoeffding)
    }
}

/// What an interval's coverage rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// ≥ 1 − α at every sample size, given the declared bounds.
    FiniteSample,
    /// ≥ 1 − α as the number of units grows.
    Asymptotic,
}

impl Validity {
    /// `finite-sample` or `asymptotic`.
    pub fn name(self) -> &'static str {
        match self {
            Validity::FiniteSample => "finite-sample",
            Validity::Asymptotic => "asymptotic",
        }
    }
}

/// An estimate and its interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// The point estimate.
    pub estimate: f64,
    /// Lower end.
    pub lower: f64,
    /// Upper end.
    pub upper: f64,
    /// What its coverage rests on.
    pub valid: Validity,
}

impl Interval {
    /// An interval around `estimate`, widened where needed to contain it: a bootstrap's
    /// percentiles or a bound computed in another summation order can miss the point estimate by
    /// a rounding error, and an interval that excludes its own estimate misleads whoever reads it
    /// (widening keeps any coverage the ends had).
    pub fn new(estimate: f64, (lower, upper): (f64, f64), valid: Validity) -> Self {
        Interval { estimate, lower: lower.min(estimate), upper: upper.max(estimate), valid }
    }

    /// An asymptotic interval.
    pub fn asymptotic(estimate: f64, ends: (f64, f64)) -> Self {
        Interval::new(estimate, ends, Validity::Asymptotic)
    }

    /// A finite-sample interval.
    pub fn finite(estimate: f64, ends: (f64, f64)) -> Self {
        Interval::new(estimate, ends, Validity::FiniteSample)
    }
}

/// How intervals are computed.
#[derive(Debug, Clone, Copy)]
pub struct CiSpec {
    /// Method.
    pub method: CiMethod,
    /// α.
    pub alpha: f64,
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Bootstrap seed.
    pub seed: u64,
    /// The declared bounds (required by the finite-sample kinds).
    pub declared: Option<Declared>,
}

/// Runs a bootstrap plan (on the CPU cores, or the GPU): per resample, the plan's estimators.
pub type Resampler<'r> = &'r dyn Fn(&Plan<'_>) -> Result<Vec<Vec<f64>>, RlError>;

/// Count, mean, centred sum of squares, minimum and maximum of `K` variables, and the co-moment
/// of the first two; mergeable (Chan, Golub & LeVeque 1979), so a long column is summarised in
/// parallel blocks with the accuracy of a two-pass computation.
#[derive(Debug, Clone, Copy)]
pub struct Summary<const K: usize> {
    /// Count.
    pub n: f64,
    /// Means.
    pub mean: [f64; K],
    /// Σ ((x − mean)/scale)²: the sum of squares in units of `scale`, so that it neither
    /// underflows for values near 1e-200 nor overflows near 1e200.
    pub m2: [f64; K],
    /// Minima.
    pub min: [f64; K],
    /// Maxima.
    pub max: [f64; K],
    /// Σ ((x_0 − mean_0)/scale_0)((x_1 − mean_1)/scale_1).
    pub c01: f64,
    /// Each variable's unit: an exact power of two near its largest |x| ([`pow2_scale`]).
    pub scale: [f64; K],
}

/// An exact power of two near `top` (2^⌊log₂ top⌋, within the normal range): dividing by it and
/// multiplying back is exact, and values of size `top` become of order one. 1 for 0 or a
/// non-finite `top`.
pub fn pow2_scale(top: f64) -> f64 {
    if !(top > 0.0 && top.is_finite()) {
        return 1.0;
    }
    let exponent = (top.log2().floor() as i64).clamp(-1022, 1023);
    f64::from_bits(((exponent + 1023) as u64) << 52)
}

impl<const K: usize> Summary<K> {
    /// The summary of `rows` by two passes.
    #[allow(clippy::needless_range_loop)] // K variables of each row, indexed together
    pub fn of(rows: &[[f64; K]]) -> Self {
        let n = rows.len() as f64;
        let mut s = Summary {
            n,
            mean: [0.0; K],
            m2: [0.0; K],
            min: [f64::INFINITY; K],
            max: [f64::NEG_INFINITY; K],
            c01: 0.0,
            scale: [1.0; K],
        };
        for r in rows {
            for j in 0..K {
                s.mean[j] += r[j];
                s.min[j] = s.min[j].min(r[j]);
                s.max[j] = s.max[j].max(r[j]);
            }
        }
        s.mean.iter_mut().for_each(|m| *m /= n.max(1.0));
        for j in 0..K {
            s.scale[j] = pow2_scale(s.min[j].abs().max(s.max[j].abs()));
        }
        for r in rows {
            for j in 0..K {
                s.m2[j] += ((r[j] - s.mean[j]) / s.scale[j]).powi(2);
            }
            if K >= 2 {
                s.c01 += (r[0] - s.mean[0]) / s.scale[0] * ((r[1] - s.mean[1]) / s.scale[1]);
            }
        }
        s
    }

    /// The summary of two disjoint samples together (Chan et al.'s update, in the larger of the
    /// two units of each variable).
    #[allow(clippy::needless_range_loop)] // K variables, indexed together
    pub fn merge(&self, o: &Self) -> Self {
        if self.n == 0.0 {
            return *o;
        }
        if o.n == 0.0 {
            return *self;
        }
        let n = self.n + o.n;
        let f = self.n * o.n / n;
        let mut s = *self;
        s.n = n;
        let unit: [f64; K] = std::array::from_fn(|j| self.scale[j].max(o.scale[j]));
        // the ratio of two powers of two: rescaling by it is exact (or a negligible underflow)
        let a: [f64; K] = std::array::from_fn(|j| self.scale[j] / unit[j]);
        let b: [f64; K] = std::array::from_fn(|j| o.scale[j] / unit[j]);
        let d: [f64; K] = std::array::from_fn(|j| (o.mean[j] - self.mean[j]) / unit[j]);
        for j in 0..K {
            s.mean[j] = self.mean[j] + (o.mean[j] - self.mean[j]) * o.n / n;
            s.m2[j] = self.m2[j] * a[j] * a[j] + o.m2[j] * b[j] * b[j] + d[j] * d[j] * f;
            s.min[j] = self.min[j].min(o.min[j]);
            s.max[j] = self.max[j].max(o.max[j]);
            s.scale[j] = unit[j];
        }
        if K >= 2 {
            s.c01 = self.c01 * a[0] * a[1] + o.c01 * b[0] * b[1] + d[0] * d[1] * f;
        }
        s
    }

    /// The sample standard deviation of variable j (computed in its unit, so it is a number
    /// wherever the values are: the variance of values near 1e-200 underflows, their deviation
    /// does not).
    pub fn sd(&self, j: usize) -> f64 {
        if self.n > 1.0 {
            (self.m2[j] / (self.n - 1.0)).sqrt() * self.scale[j]
        } else {
            f64::NAN
        }
    }

    /// The `t` interval of variable j's mean (`None` for the other kinds).
    pub fn interval(&self, j: usize, spec: &CiSpec) -> Option<Interval> {
        let (n, mean, sd) = (self.n, self.mean[j], self.sd(j));
        (spec.method == CiMethod::T).then(|| {
            let half = student_t_quantile(1.0 - spec.alpha / 2.0, n - 1.0) * (sd / n.sqrt());
            Interval::asymptotic(mean, (mean - half, mean + half))
        })
    }
}

/// The mean of `x` and its interval (the bootstrap on the CPU, seeded).
pub fn mean_interval(x: &[f64], spec: &CiSpec) -> Interval {
    let rows: Vec<[f64; 1]> = x.iter().map(|&v| [v]).collect();
    let s = Summary::of(&rows);
    s.interval(0, spec).unwrap_or_else(|| {
        let mut m = UnitMatrix::new(1);
        x.iter().for_each(|&v| m.push_unit([(0, v)]));
        let stat = |s: &[f64], size: f64| vec![s[0] / size];
        let plan = Plan { x: &m, keys: UnitKeys::From(0), resamples: spec.resamples, seed: spec.seed, stat: &stat };
        Interval::asymptotic(s.mean[0], percentile_interval(plan.stats_cpu().iter().map(|s| s[0]), spec.alpha))
    })
}

/// The effective sample size of weights, (Σw)² / Σw² ([`WeightSums`]).
pub fn effective_sample_size(w: impl IntoIterator<Item = f64>) -> f64 {
    WeightSums::of(w).ess()
}

/// What the effective sample size (Σw)² / Σw² is computed from: the largest |w| (`top`), and the
/// sums of w/top and (w/top)² — on the weights divided by the largest, which leaves the ESS
/// unchanged and keeps it finite for weights near the ends of the double range (π/μ with μ =
/// 1e-300 squares to infinity). Mergeable: a run by parts adds two partitions' sums in units of the
/// larger top.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WeightSums {
    /// The largest |w|.
    pub top: f64,
    /// Σ w/top (0 when top is 0 or not finite).
    pub sum: f64,
    /// Σ (w/top)².
    pub squares: f64,
}

impl WeightSums {
    /// The sums of the weights `w`.
    pub fn of(w: impl IntoIterator<Item = f64>) -> Self {
        let w: Vec<f64> = w.into_iter().collect();
        let top = w.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        if !(top > 0.0 && top.is_finite()) {
            return WeightSums { top, sum: 0.0, squares: 0.0 };
        }
        let (sum, squares) = w.iter().fold((0.0, 0.0), |(a, b), &x| {
            let x = x / top;
            (a + x, b + x * x)
        });
        WeightSums { top, sum, squares }
    }
    /// The sums of two sets of weights.
    pub fn merge(self, other: WeightSums) -> WeightSums {
        let top = self.top.max(other.top);
        let rescale = |p: WeightSums| {
            if top.is_finite() && p.top > 0.0 {
                let f = p.top / top;
                (p.sum * f, p.squares * f * f)
            } else {
                (0.0, 0.0)
            }
        };
        let ((a1, a2), (b1, b2)) = (rescale(self), rescale(other));
        WeightSums { top, sum: a1 + b1, squares: a2 + b2 }
    }
    /// (Σw)² / Σw²: 0 when every weight is 0, or one is not finite.
    pub fn ess(&self) -> f64 {
        if self.top > 0.0 && self.top.is_finite() && self.squares > 0.0 {
            self.sum * self.sum / self.squares
        } else {
            0.0
        }
    }
}

/// Cumulative importance weights w_t = Π_{k≤t} ρ_k within each episode (a segmented product
/// scan; rows outside every episode stay 0).
pub fn episode_weights(rho: &[f64], episodes: &[Range<usize>]) -> Vec<f64> {
    let mut w = vec![0.0; rho.len()];
    for rg in episodes {
        let mut acc = 1.0;
        for i in rg.clone() {
            acc *= rho[i];
            w[i] = acc;
        }
    }
    w
}

/// The logged episodes for the trajectory estimators: per row r_t, the cumulative weight w_t
/// ([`episode_weights`]), and for DM and DR the model's Q̂(s_t, a_t) and V̂(s_t).
pub struct TrajectoryInput<'a> {
    /// Row ranges of the episodes (contiguous, in order).
    pub episodes: &'a [Range<usize>],
    /// r per row.
    pub r: &'a [f64],
    /// w_t per row.
    pub w: &'a [f64],
    /// (Q̂(s_t, a_t), V̂(s_t)) per row, when a model is given.
    pub model: Option<(&'a [f64], &'a [f64])>,
    /// The model's range over every state and action (Q̂ and V̂), and whether it was fitted
    /// without these data (a `q` table): DR's finite-sample interval needs both.
    pub model_range: Option<(Range1, bool)>,
    /// Each episode's key in the bootstrap (its id): the counts do not depend on where an
    /// episode is in the table, nor on how the table is partitioned.
    pub ids: &'a [u64],
}

/// The trajectory estimates (see the module documentation); DM and DR only with a model.
pub struct TrajectoryEstimates {
    /// Trajectory-wise importance sampling.
    pub tis: Interval,
    /// Per-decision importance sampling.
    pub pdis: Interval,
    /// Self-normalised PDIS.
    pub sn_pdis: Interval,
    /// Direct method.
    pub dm: Option<Interval>,
    /// Per-decision doubly robust.
    pub dr: Option<Interval>,
    /// Effective sample size of the episodes' final weights.
    pub ess: f64,
}

impl TrajectoryInput<'_> {
    /// The longest episode.
    pub fn horizon(&self) -> usize {
        self.episodes.iter().map(|e| e.len()).max().unwrap_or(0)
    }

    /// Per-episode values (TIS, PDIS, DM, DR) and the unit matrix of the bootstrap, in the layout
    /// of [`trajectory_width`] for horizon `h` (the longest episode here, or more): slots 0..4
    /// those values, then per step t the SN-PDIS numerator γ^t w_t r_t (slot 4 + t) and
    /// denominator w_t (slot 4 + H + t), and every episode's final weight at its length T (slot
    /// 4 + 2H + T, T ≤ H), which every later step's denominator adds (none for T = H).
    pub fn units(&self, gamma: f64, h: usize) -> (Vec<[f64; 4]>, UnitMatrix) {
        let mut x = UnitMatrix::new(trajectory_width(h));
        let mut values = Vec::with_capacity(self.episodes.len());
        let mut entries = Vec::new();
        for rg in self.episodes {
            let (mut disc, mut ret, mut pdis, mut dr, mut w_prev) = (1.0, 0.0, 0.0, 0.0, 1.0);
            entries.clear();
            for (t, i) in rg.clone().enumerate() {
                let (w, r) = (self.w[i], self.r[i]);
                ret += disc * r;
                pdis += disc * w * r;
                if let Some((q, v)) = self.model {
                    dr += disc * (w * (r - q[i]) + w_prev * v[i]);
                }
                entries.push((4 + t, disc * w * r));
                entries.push((4 + h + t, w));
                w_prev = w;
                disc *= gamma;
            }
            let last = if rg.is_empty() { 1.0 } else { self.w[rg.end - 1] };
            entries.push((4 + 2 * h + rg.len(), last));
            let dm = self.model.map_or(0.0, |(_, v)| if rg.is_empty() { 0.0 } else { v[rg.start] });
            let vals = [last * ret, pdis, dm, dr];
            x.push_unit(vals.iter().enumerate().map(|(j, &v)| (j, v)).chain(entries.iter().copied()));
            values.push(vals);
        }
        (values, x)
    }
}

/// The sums of the episodes' final weights w_T (their ESS).
pub fn final_weights(input: &TrajectoryInput<'_>) -> WeightSums {
    WeightSums::of(input.episodes.iter().filter(|e| !e.is_empty()).map(|e| input.w[e.end - 1]))
}

/// Slots of the trajectory unit matrix at horizon `h`: 4 values, H numerators, H denominators,
/// H + 1 final weights.
pub fn trajectory_width(h: usize) -> usize {
    5 + 3 * h
}

/// Sums in the layout of horizon `h` (4 values, then H, H and H + 1 slots, then any trailing
/// slots after them, such as a resample's size) laid out for horizon `to` ≥ `h`: the steps past
/// `h` are zero — what a partition whose episodes are all shorter contributes there.
pub fn widen_trajectory_sums(s: &[f64], h: usize, to: usize) -> Vec<f64> {
    let mut out = vec![0.0; trajectory_width(to) + (s.len() - trajectory_width(h))];
    out[..4].copy_from_slice(&s[..4]);
    out[4..4 + h].copy_from_slice(&s[4..4 + h]);
    out[4 + to..4 + to + h].copy_from_slice(&s[4 + h..4 + 2 * h]);
    out[4 + 2 * to..4 + 2 * to + h + 1].copy_from_slice(&s[4 + 2 * h..5 + 3 * h]);
    let tail = trajectory_width(h);
    let n = s.len() - tail;
    let at = trajectory_width(to);
    out[at..at + n].copy_from_slice(&s[tail..]);
    out
}

/// The trajectory estimators on one resample from its slot sums (horizon `h`) and size: the four
/// means, then SN-PDIS.
pub fn trajectory_stat(s: &[f64], size: f64, h: usize) -> Vec<f64> {
    vec![s[0] / size, s[1] / size, s[2] / size, s[3] / size, sn_pdis_from_sums(s, h)]
}

/// SN-PDIS from the slot sums of [`TrajectoryInput::units`] (horizon `h`).
pub fn sn_pdis_from_sums(s: &[f64], h: usize) -> f64 {
    let (mut total, mut carried) = (0.0, 0.0);
    for t in 0..h {
        carried += s[4 + 2 * h + t];
        let den = s[4 + h + t] + carried;
        if den > 0.0 {
            total += s[4 + t] / den;
        }
    }
    total
}

/// Compute the trajectory estimates (at least 2 episodes) with discount γ; `resample` runs the
/// bootstrap (always needed for SN-PDIS).
pub fn trajectory(
    input: &TrajectoryInput<'_>,
    gamma: f64,
    spec: &CiSpec,
    resample: Resampler<'_>,
) -> Result<TrajectoryEstimates, RlError> {
    let h = input.horizon();
    let (values, x) = input.units(gamma, h);
    let summary = Summary::of(&values);
    let ones = vec![1u32; values.len()];
    let mut all = vec![0.0; x.width];
    x.weighted_sums(&ones, &mut all);
    // per resample: the four means, then SN-PDIS
    let stat = |s: &[f64], size: f64| trajectory_stat(s, size, h);
    let keys = UnitKeys::Ids(input.ids);
    let stats = resample(&Plan { x: &x, keys, resamples: spec.resamples, seed: spec.seed, stat: &stat })?;
    let ess = final_weights(input).ess();
    let mut est = crate::ope_parts::trajectory_estimates(&summary, &all, h, &stats, spec, input.model.is_some(), ess);
    if let (Some(kind), Some(d)) = (spec.method.finite(), spec.declared) {
        let column = |j: usize| values.iter().map(|v| v[j]).collect::<Vec<f64>>();
        let bounds = d.weight_max.map(|rho| {
            let q = input.model_range.map_or(Range1 { a: 0.0, b: 0.0 }, |m| m.0);
            ope_bounds::trajectory_unit_bounds(&d, rho, gamma, h, q)
        });
        let (lo, hi) = d.padded();
        let g = ope_bounds::discounted_sum(gamma, 1.0, h);
        let range = Range1 { a: lo * g, b: hi * g };
        if kind == FiniteKind::Betting {
            let (scale, tis, pdis) = ope_bounds::trajectory_pairs(input.episodes, input.r, input.w, gamma, h, &d);
            let (a, b) = (&est.tis, &est.pdis);
            est.tis = Interval::finite(
                a.estimate,
                ope_bounds::weighted_betting(&tis[0], &tis[1], scale, a.estimate, spec.alpha),
            );
            est.pdis = Interval::finite(
                b.estimate,
                ope_bounds::weighted_betting(&pdis[0], &pdis[1], scale, b.estimate, spec.alpha),
            );
            if let (Some([.., dr]), Some((_, external))) = (bounds, input.model_range) {
                let (lower, upper) = ope_bounds::betting_mean(&column(3), dr, range, spec.alpha);
                let valid = if external { Validity::FiniteSample } else { Validity::Asymptotic };
                est.dr = Some(Interval::new(summary.mean[3], (lower, upper), valid));
            }
        } else {
            trajectory_bounded(&mut est, &summary, &d, kind, spec.alpha, (gamma, h), input.model_range);
        }
    }
    Ok(est)
}

/// TIS's, PDIS's and DR's Hoeffding or empirical Bernstein interval (`kind`, not betting) from the
/// episodes' summary — what they need, so the one-table run and a run by parts compute them alike —
/// at discount γ and horizon H (`gamma_h`), with the model's range and whether it was fitted on
/// other data (DR's interval is finite-sample only then).
pub(crate) fn trajectory_bounded(
    est: &mut TrajectoryEstimates,
    s: &Summary<4>,
    d: &Declared,
    kind: FiniteKind,
    alpha: f64,
    (gamma, h): (f64, usize),
    model_range: Option<(Range1, bool)>,
) {
    let bounds = d.weight_max.map(|rho| {
        let q = model_range.map_or(Range1 { a: 0.0, b: 0.0 }, |m| m.0);
        ope_bounds::trajectory_unit_bounds(d, rho, gamma, h, q)
    });
    let (lo, hi) = d.padded();
    let g = ope_bounds::discounted_sum(gamma, 1.0, h);
    let range = Range1 { a: lo * g, b: hi * g };
    let bounded = |j: usize, b: Range1| ope_bounds::bounded_mean_from(s.n, s.mean[j], s.sd(j), b, range, kind, alpha);
    if let Some([tis, pdis, dr]) = bounds {
        if let (Some(a), Some(b)) = (bounded(0, tis), bounded(1, pdis)) {
            est.tis = Interval::finite(s.mean[0], a);
            est.pdis = Interval::finite(s.mean[1], b);
        }
        if let (Some((_, external)), Some(iv)) = (model_range, bounded(3, dr)) {
            let valid = if external { Validity::FiniteSample } else { Validity::Asymptotic };
            est.dr = Some(Interval::new(s.mean[3], iv, valid));
        }
    }
}

/// A contextual-bandit log, column by column (Open Bandit Pipeline's inputs): logged action,
/// reward, behaviour probability of the logged action, the target's probabilities π(k|x_i) and
/// the reward model's q̂_k(x_i) for every action k.
pub struct BanditInput<'a> {
    /// a_i.
    pub a: &'a [i64],
    /// r_i.
    pub r: &'a [f64],
    /// μ(a_i|x_i).
    pub mu: &'a [f64],
    /// π(k|·), one column per action.
    pub pi: Vec<&'a [f64]>,
    /// q̂_k(·), one column per action.
    pub qhat: Vec<&'a [f64]>,
    /// Switch-DR's λ.
    pub switch_lambda: f64,
    /// DRos's λ.
    pub dros_lambda: f64,
    /// Declared bounds to check every row against (finite-sample intervals): rewards in the
    /// range, weights at most `weight_max`, and then also the reward model inside the range.
    pub declared: Option<Declared>,
    /// The row of the whole log this table's first row is (0 unless the table is a partition of
    /// it): the bootstrap's key of row i is `first + i`.
    pub first: u64,
}

/// The six per-row values of the bandit estimators: w r, w, DM_i, DR_i, Switch-DR_i, DRos_i.
pub const BANDIT_VALUES: usize = 6;

/// Why a bandit row is refused (the caller names table, column and row).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BadRow {
    /// `a` is not an action 0..K.
    Action(usize),
    /// `mu_prob` is not in (0, 1].
    Mu(usize),
    /// A `pi_k` is not in [0, 1].
    Pi(usize, usize),
    /// The `pi_*` of a row do not sum to 1.
    Sum(usize, f64),
    /// `r` is outside the declared reward range.
    Reward(usize),
    /// The weight π/μ exceeds the declared bound.
    Weight(usize, f64),
}

impl BanditInput<'_> {
    /// The values of row i, or why it is refused.
    #[inline]
    pub fn row(&self, i: usize) -> Result<[f64; BANDIT_VALUES], BadRow> {
        let k = self.pi.len();
        let a = self.a[i];
        if a < 0 || a as usize >= k {
            return Err(BadRow::Action(i));
        }
        let mu = self.mu[i];
        if !(mu > 0.0 && mu <= 1.0) {
            return Err(BadRow::Mu(i));
        }
        let (mut total, mut dm, mut bad) = (0.0, 0.0, false);
        for (p, q) in self.pi.iter().zip(&self.qhat) {
            let (p, q) = (p[i], q[i]);
            bad |= !(0.0..=1.0).contains(&p);
            total += p;
            dm += p * q;
        }
        if bad {
            let j = self.pi.iter().position(|p| !(0.0..=1.0).contains(&p[i])).unwrap_or(0);
            return Err(BadRow::Pi(i, j));
        }
        if (total - 1.0).abs() > crate::policy::SUM_TOLERANCE {
            return Err(BadRow::Sum(i, total));
        }
        let a = a as usize;
        let w = self.pi[a][i] / mu;
        if let Some(d) = &self.declared {
            let inside = |v: f64| v >= d.reward.0 && v <= d.reward.1;
            if !inside(self.r[i]) {
                return Err(BadRow::Reward(i));
            }
            if d.weight_max.is_some_and(|wmax| w > wmax) {
                return Err(BadRow::Weight(i, w));
            }
        }
        let resid = self.r[i] - self.qhat[a][i];
        let switch = if w <= self.switch_lambda { w } else { 0.0 };
        let dros = if self.dros_lambda == 0.0 || w == 0.0 {
            0.0
        } else if self.dros_lambda.is_infinite() {
            w
        } else {
            self.dros_lambda * w / (w * w + self.dros_lambda)
        };
        Ok([w * self.r[i], w, dm, dm + w * resid, dm + switch * resid, dm + dros * resid])
    }

    /// The summary of every row's values, in parallel blocks (the same result on any number of
    /// threads: blocks are fixed and merged in order), or the first refused row.
    pub fn summary(&self) -> Result<Summary<BANDIT_VALUES>, BadRow> {
        const BLOCK: usize = 1 << 12;
        let n = self.a.len();
        let blocks: Vec<Result<Summary<BANDIT_VALUES>, BadRow>> = (0..n.div_ceil(BLOCK))
            .into_par_iter()
            .map_init(Vec::new, |buf, b| {
                buf.clear();
                for i in b * BLOCK..((b + 1) * BLOCK).min(n) {
                    buf.push(self.row(i)?);
                }
                Ok(Summary::of(buf))
            })
            .collect();
        let mut total: Option<Summary<BANDIT_VALUES>> = None;
        for s in blocks {
            let s = s?;
            total = Some(total.map_or(s, |t| t.merge(&s)));
        }
        Ok(total.expect("at least one row"))
    }

    /// The unit matrix of the bootstrap (six dense slots per row), rows already checked.
    pub fn units(&self) -> Result<UnitMatrix, BadRow> {
        let n = self.a.len();
        let mut x = UnitMatrix::new(BANDIT_VALUES);
        x.offsets = (0..=n).map(|i| i * BANDIT_VALUES).collect();
        x.slots = (0..n * BANDIT_VALUES).map(|p| (p % BANDIT_VALUES) as u32).collect();
        x.values = vec![0.0; n * BANDIT_VALUES];
        x.values.par_chunks_mut(BANDIT_VALUES).enumerate().try_for_each(|(i, out)| {
            out.copy_from_slice(&self.row(i)?);
            Ok(())
        })?;
        Ok(x)
    }
}

/// The bandit estimates: IPW, SNIPW, DM, DR, Switch-DR(λ_s), DRos(λ_o), and the ESS.
pub struct BanditEstimates {
    /// Inverse propensity weighting.
    pub ipw: Interval,
    /// Self-normalised IPW.
    pub snipw: Interval,
    /// Direct method.
    pub dm: Interval,
    /// Doubly robust.
    pub dr: Interval,
    /// Switch-DR.
    pub switch_dr: Interval,
    /// DR with optimistic shrinkage.
    pub dros: Interval,
    /// Effective sample size of the weights.
    pub ess: f64,
    /// The first (row, action) whose reward-model prediction leaves the declared reward range:
    /// DR's values then have no declared bound, and its interval stays the bootstrap.
    pub model_outside: Option<(usize, usize)>,
}

/// The estimates of a bandit log from the Chan summary of its rows' six values: the means, the
/// effective sample size, and the `t` intervals (SNIPW's by the delta method) — or, for the other
/// kinds, the percentile intervals `boot(j)` of estimator j.
pub(crate) fn estimates_from_summary(
    s: &Summary<BANDIT_VALUES>,
    spec: &CiSpec,
    boot: &dyn Fn(usize) -> (f64, f64),
) -> BanditEstimates {
    let n = s.n;
    let ratio = s.mean[0] / s.mean[1];
    // Σw² = scale²(m2 + n (mean/scale)²) gives the ESS without another pass, in the weights'
    // unit (ESS ∈ [1, n] for weights ≥ 0: rounding of m2 under one dominant weight must not leave
    // it); 0 where the weights are all 0
    let w_mean = s.mean[1] / s.scale[1];
    let ess = (n * w_mean).powi(2) / (s.m2[1] + n * w_mean * w_mean);
    let ess = if ess.is_finite() && ess > 0.0 { ess.clamp(1.0, n) } else { 0.0 };
    let mean_iv = |j: usize| s.interval(j, spec).unwrap_or_else(|| Interval::asymptotic(s.mean[j], boot(j)));
    let snipw = if spec.method == CiMethod::T {
        // delta method: Var(u) with u = w r − R̂ w, from the summary's variances and co-moment, in
        // the unit of w r (k = R̂ in those units)
        let k = ratio * s.scale[1] / s.scale[0];
        let var_u = (s.m2[0] - 2.0 * k * s.c01 + k * k * s.m2[1]) / (n - 1.0);
        let half =
            student_t_quantile(1.0 - spec.alpha / 2.0, n - 1.0) * (var_u.max(0.0) / n).sqrt() * s.scale[0] / s.mean[1];
        Interval::asymptotic(ratio, (ratio - half, ratio + half))
    } else {
        Interval::asymptotic(ratio, boot(1))
    };
    BanditEstimates {
        ipw: mean_iv(0),
        snipw,
        dm: mean_iv(2),
        dr: mean_iv(3),
        switch_dr: mean_iv(4),
        dros: mean_iv(5),
        ess,
        model_outside: None,
    }
}

/// The bandit estimators on one resample, from its sums of the six row values and its size: the
/// means, SNIPW (Σ w r / Σ w) in place of the weights' mean.
pub fn bandit_stat(b: &[f64], size: f64) -> Vec<f64> {
    let mut v: Vec<f64> = b.iter().map(|x| x / size).collect();
    v[1] = b[0] / b[1];
    v
}

/// Whether the bandit intervals under `spec` need the bootstrap (its own, or SNIPW's).
pub fn bandit_needs_bootstrap(spec: &CiSpec) -> bool {
    spec.method != CiMethod::T
}

/// Compute the bandit estimates (at least 2 rows); `resample` runs the bootstrap when one is
/// needed ([`bandit_needs_bootstrap`]); `refuse` words the error of a refused row.
pub fn bandit(
    input: &BanditInput<'_>,
    spec: &CiSpec,
    resample: Resampler<'_>,
    refuse: &dyn Fn(BadRow) -> RlError,
) -> Result<BanditEstimates, RlError> {
    let s = input.summary().map_err(refuse)?;
    // per resample: the six estimators (SNIPW in place of the weights' mean)
    let units = bandit_needs_bootstrap(spec).then(|| input.units()).transpose().map_err(refuse)?;
    let stats = match &units {
        Some(x) => {
            let keys = UnitKeys::From(input.first);
            resample(&Plan { x, keys, resamples: spec.resamples, seed: spec.seed, stat: &bandit_stat })?
        }
        None => Vec::new(),
    };
    let boot = |j: usize| percentile_interval(stats.iter().map(|b| b[j]), spec.alpha);
    let mut est = estimates_from_summary(&s, spec, &boot);
    if est.ess == 0.0 {
        // only where the weights are all 0 or not finite: the exact second pass says which
        est.ess = effective_sample_size((0..input.a.len()).map(|i| input.pi[input.a[i] as usize][i] / input.mu[i]));
    }
    let ratio = est.snipw.estimate;
    if let (Some(kind), Some(d), Some(x)) = (spec.method.finite(), spec.declared, &units) {
        let column = |j: usize| x.values.iter().skip(j).step_by(BANDIT_VALUES).copied().collect::<Vec<f64>>();
        let (lo, hi) = d.reward;
        let range = Range1 { a: lo, b: hi };
        if kind == FiniteKind::Betting {
            // X⁺ = w(r − lo)/(hi − lo), X⁻ = w(hi − r)/(hi − lo) from the row values w r and w
            let (wr, w) = (column(0), column(1));
            let plus: Vec<f64> = wr.iter().zip(&w).map(|(v, w)| ((v - lo * w) / (hi - lo)).max(0.0)).collect();
            let minus: Vec<f64> = wr.iter().zip(&w).map(|(v, w)| ((hi * w - v) / (hi - lo)).max(0.0)).collect();
            est.ipw =
                Interval::finite(s.mean[0], ope_bounds::weighted_betting(&plus, &minus, range, s.mean[0], spec.alpha));
            if let Some(iv) = ope_bounds::snipw_betting(&wr, &w, &d, ratio, spec.alpha) {
                est.snipw = Interval::finite(ratio, iv);
            }
        }
        if d.weight_max.is_some() {
            let first = model_outside(input, &d).map(|(i, k)| (i + input.first as usize, k));
            if kind == FiniteKind::Betting {
                est.model_outside = first;
                if first.is_none() {
                    let (_, dr) = bandit_value_bounds(&d);
                    est.dr = Interval::finite(s.mean[3], ope_bounds::betting_mean(&column(3), dr, range, spec.alpha));
                }
            } else {
                bandit_bounded(&mut est, &s, &d, kind, spec.alpha, first);
            }
        }
    }
    Ok(est)
}

/// The first row (of this table) and action whose reward model q̂_k lies outside the declared
/// reward range, if any: DR's values then have no declared bound.
pub fn model_outside(input: &BanditInput<'_>, d: &Declared) -> Option<(usize, usize)> {
    let (lo, hi) = d.reward;
    let outside = |q: &[f64]| q.par_iter().position_first(|&v| !(v >= lo && v <= hi));
    input.qhat.iter().enumerate().filter_map(|(k, q)| outside(q).map(|i| (i, k))).min()
}

/// The declared bounds of a row's IPW value w·r and DR value (weights at most `weight_max`, the
/// reward model inside the reward range).
fn bandit_value_bounds(d: &Declared) -> (Range1, Range1) {
    let (lo, hi) = d.reward;
    let wmax = d.weight_max.unwrap_or(f64::INFINITY);
    (
        Range1 { a: wmax * lo.min(0.0), b: wmax * hi.max(0.0) },
        Range1 { a: lo - wmax * (hi - lo), b: hi + wmax * (hi - lo) },
    )
}

/// IPW's and DR's Hoeffding or empirical Bernstein interval (`kind`, not betting) from the rows'
/// summary — what they need, so the one-table run and a run by parts compute them alike — and
/// `outside`, the first row and action whose reward model leaves the range (DR keeps the
/// bootstrap's interval then). Needs `weight_max`.
pub(crate) fn bandit_bounded(
    est: &mut BanditEstimates,
    s: &Summary<BANDIT_VALUES>,
    d: &Declared,
    kind: FiniteKind,
    alpha: f64,
    outside: Option<(usize, usize)>,
) {
    let range = Range1 { a: d.reward.0, b: d.reward.1 };
    let (ipw, dr) = bandit_value_bounds(d);
    let bounded = |j: usize, b: Range1| ope_bounds::bounded_mean_from(s.n, s.mean[j], s.sd(j), b, range, kind, alpha);
    if let Some(iv) = bounded(0, ipw) {
        est.ipw = Interval::finite(s.mean[0], iv);
    }
    est.model_outside = outside;
    if outside.is_none() {
        if let Some(iv) = bounded(3, dr) {
            est.dr = Interval::finite(s.mean[3], iv);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The effective sample size is scale-free: weights of 1e300 give what weights of 1 give.
    #[test]
    fn effective_sample_size_is_scale_free() {
        let w = [1.0, 2.0, 3.0, 0.5];
        let base = effective_sample_size(w);
        for scale in [1e-300, 1e300, 1e-200] {
            let got = effective_sample_size(w.iter().map(|x| x * scale));
            assert!((got - base).abs() <= 1e-12 * base, "{scale}: {got} vs {base}");
        }
        assert_eq!(effective_sample_size([0.0, 0.0]), 0.0);
    }

    /// An interval always contains its point estimate, whatever rounding did to its ends.
    #[test]
    fn intervals_contain_their_estimate() {
        let iv = Interval::asymptotic(1.0, (1.0 + 1e-14, 2.0));
        assert_eq!((iv.lower, iv.upper), (1.0, 2.0));
        let iv = Interval::finite(3.0, (0.0, 3.0 - 4e-16));
        assert_eq!((iv.lower, iv.upper), (0.0, 3.0));
        // bootstrap intervals of many data sets, each containing its mean
        for seed in 0..50u64 {
            let x: Vec<f64> = (0..40).map(|i| ((i as f64 + seed as f64 * 0.37) * 1.618).sin() * 1e-3 + 0.1).collect();
            let spec = CiSpec { method: CiMethod::Bootstrap, alpha: 0.05, resamples: 200, seed, declared: None };
            let iv = mean_interval(&x, &spec);
            assert!(iv.lower <= iv.estimate && iv.estimate <= iv.upper, "{iv:?}");
        }
    }
}
