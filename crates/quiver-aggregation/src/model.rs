//! Aggregation weights (Fakoor, Kim, Mueller, Smola & Tibshirani, "Flexible model aggregation
//! for quantile regression", JMLR 2023, §3): the aggregate quantile at output level k is
//!
//! q̂_k(x) = Σ_{(j, k′) ∈ S_k} w_{k, j, k′}(x) q_{j, k′}(x),
//!
//! with the weights of each group on the simplex. `coarse`: one weight per model shared by every
//! level (S_k = {(j, k)}, one group); `medium`: one per model and level (K groups of J); `fine`:
//! per output level, one over every (model, input level) pair (K groups of J·K). Global weights
//! are constants; local weights are a softmax of a linear function of the standardised features,
//! w(x) = softmax_group(θ + B x̃).

use crate::forecasts::Forecasts;
use crate::score::QuantileMatrix;
use serde_json::{json, Value};

quiver_numerics::choices! {
    /// How finely the weights vary.
    pub enum Granularity {
        /// One weight per model, shared by every level.
        Coarse = "coarse",
        /// One weight per model and level.
        Medium = "medium",
        /// Per output level, one weight per (model, input level) pair.
        Fine = "fine",
        /// Baseline: the mean of the models' quantiles (no fitting).
        Mean = "mean",
        /// Baseline: the median of the models' quantiles (no fitting).
        Median = "median",
        /// No aggregation: score the given quantiles of every model.
        None = "none",
    }
}

quiver_numerics::choices! {
    /// Whether the weights depend on the features.
    pub enum WeightKind {
        /// Constant weights.
        Global = "global",
        /// softmax(θ + B x̃) of the standardised `x_` features.
        Local = "local",
    }
}

/// The index structure of a weighted granularity (coarse, medium, fine) over J models and K
/// levels: weight indices, groups (each a simplex) and the terms of each output level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Structure {
    /// coarse, medium or fine.
    pub granularity: Granularity,
    /// Models J.
    pub j: usize,
    /// Levels K.
    pub k: usize,
}

impl Structure {
    /// The structure of a weighted granularity; `None` for the baselines.
    pub fn new(granularity: Granularity, j: usize, k: usize) -> Option<Structure> {
        matches!(granularity, Granularity::Coarse | Granularity::Medium | Granularity::Fine).then_some(Structure {
            granularity,
            j,
            k,
        })
    }
    /// Number of weights P.
    pub fn n_weights(&self) -> usize {
        match self.granularity {
            Granularity::Coarse => self.j,
            Granularity::Medium => self.j * self.k,
            _ => self.j * self.k * self.k,
        }
    }
    /// Weights per group.
    pub fn group_size(&self) -> usize {
        match self.granularity {
            Granularity::Coarse | Granularity::Medium => self.j,
            _ => self.j * self.k,
        }
    }
    /// Number of groups (simplices).
    pub fn n_groups(&self) -> usize {
        self.n_weights() / self.group_size()
    }
    /// Terms per output level: J (coarse, medium) or J·K (fine).
    pub fn n_terms(&self) -> usize {
        if self.granularity == Granularity::Fine {
            self.j * self.k
        } else {
            self.j
        }
    }
    /// Terms of output level `k`: `(column j·K + k′, weight index)`.
    pub fn terms(&self, k: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let (jj, kk) = (self.j, self.k);
        let g = self.granularity;
        let len = if g == Granularity::Fine { jj * kk } else { jj };
        (0..len).map(move |t| match g {
            Granularity::Coarse => (t * kk + k, t),
            Granularity::Medium => (t * kk + k, k * jj + t),
            _ => (t, k * jj * kk + t),
        })
    }
    /// The group (output level for medium and fine) whose weights enter output level `k`.
    pub fn group_of_level(&self, k: usize) -> usize {
        if self.granularity == Granularity::Coarse {
            0
        } else {
            k
        }
    }
    /// JSON of global weights: `coarse` {model: w}; `medium` {model: [w per level]};
    /// `fine` [{level, weights: {model: [w per input level]}}].
    pub fn weights_json(&self, w: &[f64], models: &[String], levels: &[f64]) -> Value {
        let (jj, kk) = (self.j, self.k);
        match self.granularity {
            Granularity::Coarse => json!(models.iter().zip(w).map(|(m, x)| (m.clone(), json!(x))).collect::<serde_json::Map<_, _>>()),
            Granularity::Medium => json!(models
                .iter()
                .enumerate()
                .map(|(j, m)| (m.clone(), json!((0..kk).map(|k| w[k * jj + j]).collect::<Vec<_>>())))
                .collect::<serde_json::Map<_, _>>()),
            _ => json!(levels
                .iter()
                .enumerate()
                .map(|(k, t)| json!({
                    "level": t,
                    "weights": models.iter().enumerate().map(|(j, m)| (m.clone(), json!(w[k * jj * kk + j * kk..k * jj * kk + (j + 1) * kk].to_vec()))).collect::<serde_json::Map<_, _>>(),
                }))
                .collect::<Vec<_>>()),
        }
    }
}

/// Softmax of `z` in place, per consecutive group of `size` (max-shifted, exact for large
/// logits).
pub fn softmax_groups(z: &mut [f64], size: usize) {
    for g in z.chunks_mut(size) {
        let m = g.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        let mut s = 0.0;
        for v in g.iter_mut() {
            *v = (*v - m).exp();
            s += *v;
        }
        g.iter_mut().for_each(|v| *v /= s);
    }
}

/// The mean and (population) standard deviation of finite values, computed without overflow for
/// values near ±1.8e308 (each term divided by n, the squares by the largest deviation); an sd of
/// 0 (a constant) is reported as 1, so that dividing by it is harmless.
pub fn center_scale(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().map(|x| x / n).sum::<f64>();
    let big = v.iter().fold(0.0f64, |m, x| m.max((x - mean).abs()));
    if !(big > 0.0 && big.is_finite()) {
        return (mean, 1.0);
    }
    let squares = v.iter().map(|x| ((x - mean) / big).powi(2)).sum::<f64>();
    (mean, spread(n, big, squares))
}

/// The standard deviation big · √(squares / n) from the sum of squared scaled deviations
/// Σ ((x − mean) / big)², with big = max |x − mean|; 1 where it is 0 or not finite.
fn spread(n: f64, big: f64, squares: f64) -> f64 {
    if !(big > 0.0 && big.is_finite()) {
        return 1.0;
    }
    let sd = big * (squares / n).sqrt();
    if sd > 0.0 && sd.is_finite() {
        sd
    } else {
        1.0
    }
}

/// [`problem_scale`]'s scale from sums over the rows (a run by parts): `n` outcomes,
/// big = max |y − mean|, Σ ((y − mean) / big)², whether they are all equal, and then the
/// forecasts' largest distance `far` from their mean.
pub fn problem_scale_of(n: usize, big: f64, squares: f64, constant: bool, far: f64) -> f64 {
    if !constant {
        spread(n.max(1) as f64, big, squares)
    } else if far > 0.0 && far.is_finite() {
        far
    } else {
        1.0
    }
}

/// The shift and scale of an aggregation problem (for the LP's standardisation and Adam's
/// gradient): y's mean and standard deviation, or — where the outcomes do not vary (one fit
/// row, or all equal) — the forecasts' largest distance from that mean, so that the scaled
/// problem is of order one whatever the data's scale (forecasts near 1e224 around one outcome
/// stopped the LP's interior point with a numerical error; near 1e-200, Adam's steps vanished
/// below its ε).
pub fn problem_scale(y: &[f64], q: &[&[f64]]) -> (f64, f64) {
    let (mean, sd) = center_scale(y);
    if y.iter().any(|&v| v != y[0]) {
        return (mean, sd);
    }
    let far = q.iter().flat_map(|c| c.iter()).fold(0.0f64, |m, &v| m.max((v - mean).abs()));
    (mean, if far > 0.0 && far.is_finite() { far } else { 1.0 })
}

/// A feature whose standard deviation is below this fraction of its largest magnitude is constant
/// up to rounding (0.1 written ten thousand times has an sd of 4e-16): dividing by that sd would
/// scale the rounding error to order one and the test rows' features by 1e15.
pub const CONSTANT_FEATURE: f64 = 1e-12;

/// The standardisation x̃ = (x − mean) / sd of each feature, fitted on the `fit` rows (a feature
/// that is constant, or constant up to rounding ([`CONSTANT_FEATURE`]), gets sd = 1: it only
/// shifts θ).
#[derive(Debug, Clone, PartialEq)]
pub struct Standardizer {
    /// Feature means.
    pub mean: Vec<f64>,
    /// Feature standard deviations (population).
    pub sd: Vec<f64>,
}

impl Standardizer {
    /// Fit on columns.
    pub fn fit(x: &[&[f64]]) -> Standardizer {
        let (mean, sd) = x
            .iter()
            .map(|c| {
                let (mean, sd) = center_scale(c);
                let size = c.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                (mean, if sd <= CONSTANT_FEATURE * size { 1.0 } else { sd })
            })
            .unzip();
        Standardizer { mean, sd }
    }
    /// x̃ of row `i` into `out`.
    pub fn row(&self, x: &[&[f64]], i: usize, out: &mut [f64]) {
        for (d, c) in x.iter().enumerate() {
            out[d] = (c[i] - self.mean[d]) / self.sd[d];
        }
    }
}

/// Fitted weights.
#[derive(Debug, Clone, PartialEq)]
pub enum Weights {
    /// Constant weights, one per weight index, each group on the simplex.
    Global(Vec<f64>),
    /// w(x) = softmax_group(θ + B x̃): `theta` (P), `b` (P × d, row-major), the standardiser.
    Local {
        /// Intercepts θ.
        theta: Vec<f64>,
        /// Slopes B, `b[w * d + f]`.
        b: Vec<f64>,
        /// Feature standardisation fitted on `fit`.
        standardizer: Standardizer,
    },
}

impl Weights {
    /// The weights at row `i` of `f` into `out` (P).
    pub fn at(&self, s: &Structure, f: &Forecasts<'_>, i: usize, xt: &mut [f64], out: &mut [f64]) {
        match self {
            Weights::Global(w) => out.copy_from_slice(w),
            Weights::Local { theta, b, standardizer } => {
                let d = standardizer.mean.len();
                standardizer.row(&f.x, i, xt);
                for (w, o) in out.iter_mut().enumerate() {
                    *o = theta[w] + b[w * d..(w + 1) * d].iter().zip(&*xt).map(|(a, x)| a * x).sum::<f64>();
                }
                softmax_groups(out, s.group_size());
            }
        }
    }
}

/// Rows per parallel task when predicting.
const ROWS_PER_TASK: usize = 256;

/// The aggregate quantiles of every row of `f` under `weights`.
pub fn predict(s: &Structure, weights: &Weights, f: &Forecasts<'_>) -> QuantileMatrix {
    use rayon::prelude::*;
    let (n, k) = (f.n, s.k);
    let mut values = vec![0.0; n * k];
    let p = s.n_weights();
    let d = f.x.len();
    values.par_chunks_mut(ROWS_PER_TASK * k).enumerate().for_each(|(t, out)| {
        let start = t * ROWS_PER_TASK;
        let rows = out.len() / k.max(1);
        match weights {
            Weights::Global(w) => {
                let mut acc = vec![0.0; rows];
                for kk in 0..k {
                    acc.iter_mut().for_each(|a| *a = 0.0);
                    for (c, wi) in s.terms(kk) {
                        let (wv, col) = (w[wi], &f.q[c][start..start + rows]);
                        acc.iter_mut().zip(col).for_each(|(a, q)| *a += wv * q);
                    }
                    for (r, a) in acc.iter().enumerate() {
                        out[r * k + kk] = *a;
                    }
                }
            }
            Weights::Local { .. } => {
                let (mut xt, mut w) = (vec![0.0; d], vec![0.0; p]);
                for r in 0..rows {
                    let i = start + r;
                    weights.at(s, f, i, &mut xt, &mut w);
                    for kk in 0..k {
                        out[r * k + kk] = s.terms(kk).map(|(c, wi)| w[wi] * f.q[c][i]).sum();
                    }
                }
            }
        }
    });
    QuantileMatrix { n, k, values }
}

/// The baselines: the mean or the median across models at each level (computed so that finite
/// forecasts give a finite result); `None` (scoring only)
/// has no single set and is handled by the caller.
pub fn baseline(g: Granularity, f: &Forecasts<'_>, j: usize, k: usize) -> QuantileMatrix {
    let n = f.n;
    let mut values = vec![0.0; n * k];
    let mut tmp = vec![0.0; j];
    for i in 0..n {
        for kk in 0..k {
            for (jj, t) in tmp.iter_mut().enumerate() {
                *t = f.q[jj * k + kk][i];
            }
            values[i * k + kk] = match g {
                Granularity::Median => {
                    tmp.sort_by(f64::total_cmp);
                    if j % 2 == 1 {
                        tmp[j / 2]
                    } else {
                        // halves first: the sum of two values near 1.8e308 overflows
                        0.5 * tmp[j / 2 - 1] + 0.5 * tmp[j / 2]
                    }
                }
                // each term divided first, for the same reason
                _ => tmp.iter().map(|v| v / j as f64).sum::<f64>(),
            };
        }
    }
    QuantileMatrix { n, k, values }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A feature constant up to rounding is not blown up by its rounding error: 0.1 everywhere
    /// (sd ~ 1e-17 after the mean's rounding) standardises to ~0, not to ±1.
    #[test]
    fn features_constant_up_to_rounding_are_constant() {
        let x = vec![0.1; 10_000];
        let varied: Vec<f64> = (0..10_000).map(|i| 0.1 + (i % 7) as f64 * 1e-3).collect();
        let st = Standardizer::fit(&[&x, &varied]);
        assert_eq!(st.sd[0], 1.0);
        assert!(st.sd[1] > 1e-4 && st.sd[1] < 1e-2, "{}", st.sd[1]);
        let mut out = [0.0; 2];
        st.row(&[&[0.2][..], &[0.1][..]], 0, &mut out);
        assert!(out[0].abs() < 0.2, "a test value off the constant stays small: {}", out[0]);
    }
}
