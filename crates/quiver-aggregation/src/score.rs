//! Scoring a set of quantile forecasts: pinball loss per level, central-interval coverage,
//! width and interval score (Gneiting & Raftery, JASA 2007), the weighted interval score (Bracher,
//! Ray, Gneiting & Reich, PLoS Comput Biol 2021) and the number of rows whose quantiles cross.

use serde_json::{self, json, Value};

/// The pinball (check) loss ψ_τ(u) = max(τu, (τ − 1)u) of the quantile `q` at level `tau`
/// for the outcome `y`, u = y − q.
#[inline]
pub fn pinball(tau: f64, y: f64, q: f64) -> f64 {
    let u = y - q;
    if u >= 0.0 {
        tau * u
    } else {
        (tau - 1.0) * u
    }
}

/// The interval score of the central (1 − α) interval [lo, hi] (Gneiting & Raftery 2007, eq. 43):
/// IS_α = (hi − lo) + (2/α)(lo − y)₊ + (2/α)(y − hi)₊.
#[inline]
pub fn interval_score(alpha: f64, y: f64, lo: f64, hi: f64) -> f64 {
    (hi - lo) + 2.0 / alpha * ((lo - y).max(0.0) + (y - hi).max(0.0))
}

/// A central interval formed by a symmetric pair of levels (τ, 1 − τ), α = 2τ.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// Nominal miscoverage α = 2 τ_lo.
    pub alpha: f64,
    /// Index of the lower level τ_lo = α/2.
    pub lo: usize,
    /// Index of the upper level 1 − α/2.
    pub hi: usize,
}

/// Levels closer than this count as symmetric partners (τ + τ′ = 1) or as the median.
pub const LEVEL_TOL: f64 = 1e-9;

/// Every central interval of `levels` (sorted ascending): pairs (τ, 1 − τ) with τ < 1/2, widest
/// first; and the index of the median level 1/2 if present.
pub fn intervals(levels: &[f64]) -> (Vec<Interval>, Option<usize>) {
    let mut out = Vec::new();
    for (lo, &t) in levels.iter().enumerate() {
        if t < 0.5 - LEVEL_TOL {
            if let Some(hi) = levels.iter().position(|&u| (t + u - 1.0).abs() <= LEVEL_TOL) {
                out.push(Interval { alpha: 2.0 * t, lo, hi });
            }
        }
    }
    let median = levels.iter().position(|&t| (t - 0.5).abs() <= LEVEL_TOL);
    (out, median)
}

/// Quantiles of n rows at K levels, row-major (`values[i * K + k]`).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantileMatrix {
    /// Rows.
    pub n: usize,
    /// Levels.
    pub k: usize,
    /// The n × K values.
    pub values: Vec<f64>,
}

impl QuantileMatrix {
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.k..(i + 1) * self.k]
    }
    /// Whether row `i` decreases somewhere (q_k > q_{k+1}).
    pub fn crosses(&self, i: usize) -> bool {
        self.row(i).windows(2).any(|w| w[0] > w[1])
    }
    /// Rows that cross.
    pub fn crossing_rows(&self) -> usize {
        (0..self.n).filter(|&i| self.crosses(i)).count()
    }
}

/// The scores of one quantile set against outcomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Mean pinball loss per level.
    pub pinball: Vec<f64>,
    /// Mean over levels of the per-level means: the aggregation objective.
    pub mean_pinball: f64,
    /// Per central interval: (interval, coverage, mean width, mean interval score).
    pub intervals: Vec<(Interval, f64, f64, f64)>,
    /// Mean weighted interval score over the symmetric levels (and the median), normalised by
    /// K_int + 1/2 (K_int without a median); `None` without any symmetric pair or median.
    pub wis: Option<f64>,
    /// Rows whose quantiles decrease somewhere.
    pub crossing_rows: usize,
    /// Rows scored.
    pub n: usize,
}

/// Score `q` (n × K at `levels`) against `y`. For each row the weighted interval score is
/// WIS = (½|y − m| + Σ_k (α_k/2) IS_{α_k}) / (K_int + ½), the median term and the ½ present only
/// with a median level; by (α/2) IS_α = ψ_{α/2}(y − lo) + ψ_{1−α/2}(y − hi) it equals twice the
/// mean pinball loss over the symmetric levels.
pub fn score(q: &QuantileMatrix, levels: &[f64], y: &[f64]) -> Scores {
    assert_eq!(levels.len(), q.k);
    assert_eq!(y.len(), q.n);
    let k = q.k;
    score_with(levels, y, |i, kk| q.values[i * k + kk])
}

/// Rows per parallel task when scoring.
const SCORE_ROWS: usize = 4096;

/// [`score`] of the quantiles `q(i, k)` (row i, level k), e.g. read straight from a model's
/// forecast columns. Rows are scored in parallel chunks whose sums are added in row order.
pub fn score_with(levels: &[f64], y: &[f64], q: impl Fn(usize, usize) -> f64 + Sync) -> Scores {
    ScoreSums::of(levels, y, q).scores(levels)
}

/// The sums behind [`Scores`] — per level the summed pinball loss, per central interval the
/// rows covered, the summed widths and interval scores, the summed WIS, the crossing rows and the
/// rows — which rows in parts add up to ([`ScoreSums::add`]): the scores of a run by parts.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScoreSums {
    pinball: Vec<f64>,
    intervals: Vec<(f64, f64, f64)>,
    wis: f64,
    crossing_rows: usize,
    n: usize,
}

impl ScoreSums {
    /// No rows, for `levels`.
    pub fn empty(levels: &[f64]) -> ScoreSums {
        ScoreSums {
            pinball: vec![0.0; levels.len()],
            intervals: vec![(0.0, 0.0, 0.0); intervals(levels).0.len()],
            wis: 0.0,
            crossing_rows: 0,
            n: 0,
        }
    }

    /// The sums over the rows of `y` of the quantiles `q(i, k)`.
    pub fn of(levels: &[f64], y: &[f64], q: impl Fn(usize, usize) -> f64 + Sync) -> ScoreSums {
        use rayon::prelude::*;
        let k = levels.len();
        let n = y.len();
        let (ints, median) = intervals(levels);
        let wis_norm = ints.len() as f64 + if median.is_some() { 0.5 } else { 0.0 };
        // per chunk: pinball per level, (covered, width, score) per interval, WIS sum, crossings
        let chunk = |start: usize| {
            let mut sums = ScoreSums::empty(levels);
            let mut row = vec![0.0; k];
            let end = (start + SCORE_ROWS).min(n);
            for (i, &yi) in y[start..end].iter().enumerate().map(|(r, v)| (start + r, v)) {
                for (kk, r) in row.iter_mut().enumerate() {
                    *r = q(i, kk);
                }
                sums.crossing_rows += usize::from(row.windows(2).any(|w| w[0] > w[1]));
                for (kk, (&t, &qk)) in levels.iter().zip(&row).enumerate() {
                    sums.pinball[kk] += pinball(t, yi, qk);
                }
                let mut w = median.map_or(0.0, |m| 0.5 * (yi - row[m]).abs());
                for (a, iv) in sums.intervals.iter_mut().zip(&ints) {
                    let (lo, hi) = (row[iv.lo], row[iv.hi]);
                    let s = interval_score(iv.alpha, yi, lo, hi);
                    a.0 += f64::from(u8::from(lo <= yi && yi <= hi));
                    a.1 += hi - lo;
                    a.2 += s;
                    w += iv.alpha / 2.0 * s;
                }
                sums.wis += w / wis_norm;
            }
            sums.n = end - start;
            sums
        };
        let parts: Vec<ScoreSums> = (0..n).into_par_iter().step_by(SCORE_ROWS).map(chunk).collect();
        parts.into_iter().fold(ScoreSums::empty(levels), |mut a, b| {
            a.add(&b);
            a
        })
    }

    /// Add the sums of further rows (of the same levels).
    pub fn add(&mut self, b: &ScoreSums) {
        self.pinball.iter_mut().zip(&b.pinball).for_each(|(x, y)| *x += y);
        for (x, y) in self.intervals.iter_mut().zip(&b.intervals) {
            x.0 += y.0;
            x.1 += y.1;
            x.2 += y.2;
        }
        self.wis += b.wis;
        self.crossing_rows += b.crossing_rows;
        self.n += b.n;
    }

    /// The rows summed.
    pub fn rows(&self) -> usize {
        self.n
    }

    /// The scores: each sum over the rows divided by their number.
    pub fn scores(&self, levels: &[f64]) -> Scores {
        let (ints, median) = intervals(levels);
        let wis_norm = ints.len() as f64 + if median.is_some() { 0.5 } else { 0.0 };
        let nf = self.n.max(1) as f64;
        let pin: Vec<f64> = self.pinball.iter().map(|p| p / nf).collect();
        Scores {
            mean_pinball: pin.iter().sum::<f64>() / levels.len() as f64,
            pinball: pin,
            intervals: ints.iter().zip(&self.intervals).map(|(iv, a)| (*iv, a.0 / nf, a.1 / nf, a.2 / nf)).collect(),
            wis: (wis_norm > 0.0).then_some(self.wis / nf),
            crossing_rows: self.crossing_rows,
            n: self.n,
        }
    }
}

impl Scores {
    /// JSON: `pinball` keyed by level, `mean_pinball`, `intervals` (alpha, levels, coverage,
    /// mean_width, interval_score), `wis`, `crossing_rows`, `rows`.
    pub fn to_json(&self, levels: &[f64]) -> Value {
        // infinite interval ends (CQR with too small a calibration set) give infinite widths and
        // scores: strings, as everywhere in Quiver's JSON
        let f = |x: f64| quiver_numerics::json_number(x).map_or_else(|name| json!(name), |v| json!(v));
        let pin: serde_json::Map<String, Value> =
            levels.iter().zip(&self.pinball).map(|(t, p)| (level_key(*t), f(*p))).collect();
        json!({
            "rows": self.n,
            "mean_pinball": f(self.mean_pinball),
            "wis": self.wis.map(f),
            "crossing_rows": self.crossing_rows,
            "pinball": pin,
            "intervals": self.intervals.iter().map(|(iv, cov, width, is)| json!({
                "alpha": iv.alpha,
                "levels": [levels[iv.lo], levels[iv.hi]],
                "coverage": cov,
                "mean_width": f(*width),
                "interval_score": f(*is),
            })).collect::<Vec<_>>(),
        })
    }
}

/// A level as a JSON key: its shortest round-trip decimal (`0.05`).
pub fn level_key(t: f64) -> String {
    format!("{t}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_score_by_hand() {
        // inside: the width; below: width + (2/α)(lo − y); above likewise
        assert_eq!(interval_score(0.2, 1.0, 0.0, 2.0), 2.0);
        assert!((interval_score(0.2, -1.0, 0.0, 2.0) - (2.0 + 10.0)).abs() < 1e-12);
        assert!((interval_score(0.5, 3.5, 0.0, 2.0) - (2.0 + 4.0 * 1.5)).abs() < 1e-12);
        assert_eq!(pinball(0.9, 2.0, 1.0), 0.9);
        assert!((pinball(0.9, 0.0, 1.0) - 0.1).abs() < 1e-15);
    }

    #[test]
    fn wis_is_twice_the_mean_pinball_on_symmetric_levels() {
        for levels in [vec![0.05, 0.25, 0.5, 0.75, 0.95], vec![0.1, 0.3, 0.7, 0.9], vec![0.025, 0.5, 0.975]] {
            let k = levels.len();
            let n = 50;
            let mut s = 3u64;
            let mut next = || {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (s >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0
            };
            let values: Vec<f64> = (0..n * k).map(|_| next()).collect();
            let y: Vec<f64> = (0..n).map(|_| next()).collect();
            let sc = score(&QuantileMatrix { n, k, values }, &levels, &y);
            let wis = sc.wis.expect("symmetric");
            assert!((wis - 2.0 * sc.mean_pinball).abs() < 1e-12 * wis.max(1.0), "{wis} vs {}", 2.0 * sc.mean_pinball);
        }
    }

    #[test]
    fn intervals_pair_levels_and_count_crossings() {
        let (iv, med) = intervals(&[0.1, 0.2, 0.5, 0.8, 0.9, 0.95]);
        assert_eq!(med, Some(2));
        assert_eq!(iv.len(), 2);
        assert!((iv[0].alpha - 0.2).abs() < 1e-15 && iv[0].lo == 0 && iv[0].hi == 4);
        let q = QuantileMatrix { n: 2, k: 3, values: vec![0.0, 1.0, 2.0, 0.0, 3.0, 2.0] };
        assert_eq!(q.crossing_rows(), 1);
    }
}
