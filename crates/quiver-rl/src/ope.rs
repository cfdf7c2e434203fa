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
//! Intervals at level 1 − α over the independent units (episodes, or rows), from their values x:
//! `t` mean ± t_{1−α/2, n−1} s/√n; `hoeffding` mean ± (max − min)√(ln(2/α)/2n); `bernstein`
//! (Maurer & Pontil 2009) mean ± [√(2s² ln(4/α)/n) + 7(max − min) ln(4/α)/(3(n − 1))] — the two
//! with the observed range standing in for the true one; `bootstrap` the α/2 and 1 − α/2 quantiles
//! of the estimator over resampled units (seeded). Self-normalised estimators (SN-PDIS, SNIPW) are
//! not means of independent terms: their interval is always the bootstrap.

use quiver_numerics::binomial::student_t_quantile;
use quiver_sdk::choices;
use rand::{Rng, SeedableRng};

choices! {
    /// How a confidence interval is computed.
    pub enum CiMethod {
        /// Percentile bootstrap over the units (seeded).
        Bootstrap = "bootstrap",
        /// Hoeffding's inequality with the observed range.
        Hoeffding = "hoeffding",
        /// The empirical Bernstein bound (Maurer & Pontil) with the observed range.
        Bernstein = "bernstein",
        /// Student's t.
        T = "t",
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
}

fn quantile(sorted: &[f64], p: f64) -> f64 {
    let h = p * (sorted.len() - 1) as f64;
    let (lo, f) = (h.floor() as usize, h - h.floor());
    if lo + 1 < sorted.len() {
        sorted[lo] + f * (sorted[lo + 1] - sorted[lo])
    } else {
        sorted[lo]
    }
}

/// Percentile bootstrap of `stat(indices)` over n units.
fn bootstrap(n: usize, spec: &CiSpec, stat: impl Fn(&[usize]) -> f64) -> (f64, f64) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(spec.seed);
    let mut idx = vec![0usize; n];
    let mut stats: Vec<f64> = (0..spec.resamples)
        .map(|_| {
            idx.iter_mut().for_each(|i| *i = rng.random_range(0..n));
            stat(&idx)
        })
        .filter(|x| x.is_finite())
        .collect();
    if stats.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    stats.sort_by(f64::total_cmp);
    (quantile(&stats, spec.alpha / 2.0), quantile(&stats, 1.0 - spec.alpha / 2.0))
}

/// The mean of `x` and its interval.
pub fn mean_interval(x: &[f64], spec: &CiSpec) -> Interval {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = if x.len() > 1 { x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { f64::NAN };
    let range = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max) - x.iter().cloned().fold(f64::INFINITY, f64::min);
    let half = match spec.method {
        CiMethod::T => student_t_quantile(1.0 - spec.alpha / 2.0, n - 1.0) * (var / n).sqrt(),
        CiMethod::Hoeffding => range * ((2.0 / spec.alpha).ln() / (2.0 * n)).sqrt(),
        CiMethod::Bernstein => {
            let l = (4.0 / spec.alpha).ln();
            (2.0 * var * l / n).sqrt() + 7.0 * range * l / (3.0 * (n - 1.0))
        }
        CiMethod::Bootstrap => {
            let (lo, hi) = bootstrap(x.len(), spec, |idx| idx.iter().map(|&i| x[i]).sum::<f64>() / idx.len() as f64);
            return Interval { estimate: mean, lower: lo, upper: hi };
        }
    };
    Interval { estimate: mean, lower: mean - half, upper: mean + half }
}

/// Σ num / Σ den and its bootstrap interval (units resampled together).
pub fn ratio_interval(num: &[f64], den: &[f64], spec: &CiSpec) -> Interval {
    let ratio = |idx: &[usize]| idx.iter().map(|&i| num[i]).sum::<f64>() / idx.iter().map(|&i| den[i]).sum::<f64>();
    let all: Vec<usize> = (0..num.len()).collect();
    let (lower, upper) = bootstrap(num.len(), spec, ratio);
    Interval { estimate: ratio(&all), lower, upper }
}

/// The effective sample size of weights, (Σw)² / Σw².
pub fn effective_sample_size(w: &[f64]) -> f64 {
    let (s, s2) = w.iter().fold((0.0, 0.0), |(a, b), &x| (a + x, b + x * x));
    if s2 > 0.0 {
        s * s / s2
    } else {
        0.0
    }
}

/// Per-episode inputs of the trajectory estimators: rewards, step ratios ρ, and (for DM and DR)
/// Q̂(s_t, a_t) and V̂(s_t) per step.
pub struct Episode {
    /// r_t.
    pub r: Vec<f64>,
    /// ρ_t.
    pub rho: Vec<f64>,
    /// Q̂(s_t, a_t), when a model is given.
    pub q: Option<Vec<f64>>,
    /// V̂(s_t), when a model is given.
    pub v: Option<Vec<f64>>,
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

/// Compute the trajectory estimates of `episodes` (at least 2) with discount γ.
#[allow(clippy::needless_range_loop)] // per-step arrays of one episode, indexed by t together
pub fn trajectory(episodes: &[Episode], gamma: f64, spec: &CiSpec) -> TrajectoryEstimates {
    let n = episodes.len();
    let horizon = episodes.iter().map(|e| e.r.len()).max().unwrap_or(0);
    let (mut tis, mut pdis, mut dm, mut dr, mut last_w) =
        (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    // SN-PDIS numerator per episode: Σ_t γ^t w_t r_t / W_t needs the per-step totals W_t first
    let mut w_steps = vec![vec![0.0; horizon]; n];
    let model = episodes.iter().all(|e| e.q.is_some() && e.v.is_some());
    for (e, ep) in episodes.iter().enumerate() {
        let (mut w, mut disc, mut ret) = (1.0, 1.0, 0.0);
        for t in 0..ep.r.len() {
            let w_prev = w;
            w *= ep.rho[t];
            ret += disc * ep.r[t];
            pdis[e] += disc * w * ep.r[t];
            if model {
                let (q, v) = (ep.q.as_ref().expect("model")[t], ep.v.as_ref().expect("model")[t]);
                dr[e] += disc * (w * (ep.r[t] - q) + w_prev * v);
            }
            w_steps[e][t] = w;
            disc *= gamma;
        }
        for t in ep.r.len()..horizon {
            w_steps[e][t] = w; // an ended episode keeps its last weight, with reward 0
        }
        tis[e] = w * ret;
        last_w[e] = w;
        if model {
            dm[e] = ep.v.as_ref().expect("model").first().copied().unwrap_or(0.0);
        }
    }
    let sn_pdis_of = |idx: &[usize]| -> f64 {
        let mut total = 0.0;
        let mut disc = 1.0;
        for t in 0..horizon {
            let (mut num, mut den) = (0.0, 0.0);
            for &e in idx {
                let w = w_steps[e][t];
                den += w;
                if t < episodes[e].r.len() {
                    num += w * episodes[e].r[t];
                }
            }
            if den > 0.0 {
                total += disc * num / den;
            }
            disc *= gamma;
        }
        total
    };
    let all: Vec<usize> = (0..n).collect();
    let (lower, upper) = bootstrap(n, spec, sn_pdis_of);
    TrajectoryEstimates {
        tis: mean_interval(&tis, spec),
        pdis: mean_interval(&pdis, spec),
        sn_pdis: Interval { estimate: sn_pdis_of(&all), lower, upper },
        dm: model.then(|| mean_interval(&dm, spec)),
        dr: model.then(|| mean_interval(&dr, spec)),
        ess: effective_sample_size(&last_w),
    }
}

/// Per-row inputs of the bandit estimators.
pub struct BanditRow {
    /// r_i.
    pub r: f64,
    /// w_i = π(a_i|x_i)/μ(a_i|x_i).
    pub w: f64,
    /// q̂_{a_i}(x_i).
    pub q_logged: f64,
    /// Σ_k π(k|x_i) q̂_k(x_i).
    pub dm: f64,
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
}

/// Compute the bandit estimates of `rows` (at least 2).
pub fn bandit(rows: &[BanditRow], switch_lambda: f64, dros_lambda: f64, spec: &CiSpec) -> BanditEstimates {
    let per = |f: &dyn Fn(&BanditRow) -> f64| -> Vec<f64> { rows.iter().map(f).collect() };
    let ipw = per(&|x| x.w * x.r);
    let w = per(&|x| x.w);
    let dros_w = |w: f64| {
        if dros_lambda == 0.0 || w == 0.0 {
            0.0
        } else if dros_lambda.is_infinite() {
            w
        } else {
            dros_lambda * w / (w * w + dros_lambda)
        }
    };
    BanditEstimates {
        ipw: mean_interval(&ipw, spec),
        snipw: ratio_interval(&ipw, &w, spec),
        dm: mean_interval(&per(&|x| x.dm), spec),
        dr: mean_interval(&per(&|x| x.dm + x.w * (x.r - x.q_logged)), spec),
        switch_dr: mean_interval(
            &per(&|x| x.dm + if x.w <= switch_lambda { x.w * (x.r - x.q_logged) } else { 0.0 }),
            spec,
        ),
        dros: mean_interval(&per(&|x| x.dm + dros_w(x.w) * (x.r - x.q_logged)), spec),
        ess: effective_sample_size(&w),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_interval_by_hand() {
        let x: Vec<f64> = (1..=10).map(f64::from).collect();
        let spec = CiSpec { method: CiMethod::T, alpha: 0.05, resamples: 0, seed: 0 };
        let iv = mean_interval(&x, &spec);
        // mean 5.5, s = sqrt(55/6), qt(0.975, 9) = 2.2621571627409915
        let half = 2.2621571627409915 * (55.0f64 / 6.0 / 10.0).sqrt();
        assert!((iv.lower - (5.5 - half)).abs() < 1e-9 && (iv.upper - (5.5 + half)).abs() < 1e-9);
        let boot = CiSpec { method: CiMethod::Bootstrap, alpha: 0.05, resamples: 2000, seed: 3 };
        let (a, b) = (mean_interval(&x, &boot), mean_interval(&x, &boot));
        assert_eq!(a, b, "seeded");
        assert!(a.lower < 5.5 && a.upper > 5.5 && a.upper - a.lower < 2.0 * half);
    }
}
