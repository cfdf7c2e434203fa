//! The stratified bootstrap of `rliable` (Agarwal et al., NeurIPS 2021, §4): each resample draws,
//! for every task, as many runs as the task has, with replacement from that task's runs — so
//! every resample keeps each task's run count — and recomputes the metric; percentile and BCa
//! intervals from the resampled metrics.
//!
//! Draws are counter-based (SplitMix64, as `ope`'s bootstrap): draw j of task t in resample b of
//! stream s is `mix(key + (t·2^32 + j)·φ)` with `key = mix(seed + mix(s·φ + b·φ² + 1))`, mapped to
//! a run by a 128-bit multiply. A resample depends on (seed, stream, b) only, never on the thread
//! that computes it or the order of the resamples, so results are reproducible for a seed on any
//! number of threads. Streams keep the algorithms' resamples independent (as `rliable` resamples
//! each algorithm on its own).

use crate::aggregate::{Metric, Runs};
use quiver_numerics::splitmix::{mix, PHI};
use rayon::prelude::*;

/// The key of resample `b` of stream `stream`.
fn resample_key(seed: u64, stream: u64, b: u64) -> u64 {
    let z = stream.wrapping_mul(PHI).wrapping_add(b.wrapping_mul(PHI.wrapping_mul(PHI))).wrapping_add(1);
    mix(seed.wrapping_add(mix(z)))
}

/// Run `j` of a task of `n` runs drawn in resample `key` for task `t`.
#[inline]
fn draw(key: u64, t: usize, j: usize, n: usize) -> usize {
    let u = mix(key.wrapping_add((((t as u64) << 32) | j as u64).wrapping_mul(PHI)));
    ((u128::from(u) * n as u128) >> 64) as usize
}

/// Resample `b` of stream `stream` of `runs` into `out` (the same shape: each task keeps its run
/// count).
pub fn resample_into(runs: Runs<'_>, seed: u64, stream: u64, b: u64, out: &mut Vec<Vec<f64>>) {
    let key = resample_key(seed, stream, b);
    out.resize_with(runs.len(), Vec::new);
    for (t, (task, o)) in runs.iter().zip(out.iter_mut()).enumerate() {
        o.clear();
        o.extend((0..task.len()).map(|j| task[draw(key, t, j, task.len())]));
    }
}

/// `statistics` of each of `resamples` stratified resamples of one algorithm's runs (stream
/// `stream`): `out[k][b]` is statistic k on resample b. Resamples run on every core; each is
/// drawn by its own key, so the result does not depend on the threads.
pub fn bootstrap_with(
    runs: Runs<'_>,
    resamples: usize,
    seed: u64,
    stream: u64,
    statistics: impl Fn(Runs<'_>, &mut Vec<f64>) -> Vec<f64> + Sync,
) -> Vec<Vec<f64>> {
    let per_resample: Vec<Vec<f64>> = (0..resamples as u64)
        .into_par_iter()
        .map_init(
            || (Vec::new(), Vec::new()),
            |(resampled, scratch), b| {
                resample_into(runs, seed, stream, b, resampled);
                statistics(resampled, scratch)
            },
        )
        .collect();
    let width = per_resample.first().map_or(0, Vec::len);
    (0..width).map(|k| per_resample.iter().map(|r| r[k]).collect()).collect()
}

/// The metrics of `resamples` stratified resamples of one algorithm's runs (stream `stream`):
/// `out[m][b]` is metric m on resample b ([`bootstrap_with`]).
pub fn bootstrap_metrics(
    runs: Runs<'_>,
    metrics: &[Metric],
    resamples: usize,
    seed: u64,
    stream: u64,
) -> Vec<Vec<f64>> {
    let out =
        bootstrap_with(runs, resamples, seed, stream, |r, scratch| metrics.iter().map(|m| m.of(r, scratch)).collect());
    if out.is_empty() {
        vec![Vec::new(); metrics.len()]
    } else {
        out
    }
}

/// The probability of improvement of `x` over `y` on `resamples` pairs of stratified resamples,
/// each algorithm's drawn from its own stream (independently, as `rliable` draws them).
pub fn bootstrap_improvement(x: Runs<'_>, y: Runs<'_>, streams: (u64, u64), resamples: usize, seed: u64) -> Vec<f64> {
    (0..resamples as u64)
        .into_par_iter()
        .map_init(
            || (Vec::new(), Vec::new(), Vec::new()),
            |(rx, ry, scratch), b| {
                resample_into(x, seed, streams.0, b, rx);
                resample_into(y, seed, streams.1, b, ry);
                crate::aggregate::probability_of_improvement(rx, ry, scratch)
            },
        )
        .collect()
}

/// The `q`-quantile of `sorted` values with linear interpolation between order statistics
/// (NumPy's default): position q·(n − 1).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    lerp(sorted[lo], sorted[hi], pos - lo as f64)
}

/// a + f·(b − a) for f in [0, 1]; where b − a overflows (ends of opposite sign near the largest
/// double), the weighted form a·(1 − f) + b·f, which never forms the difference.
pub fn lerp(a: f64, b: f64, f: f64) -> f64 {
    if (b - a).is_finite() {
        a + f * (b - a)
    } else {
        a * (1.0 - f) + b * f
    }
}

/// The percentile interval at level 1 − α: the α/2 and 1 − α/2 quantiles of the resampled values.
pub fn percentile_interval(boot: &[f64], alpha: f64) -> (f64, f64) {
    let mut s = boot.to_vec();
    s.sort_unstable_by(f64::total_cmp);
    (quantile_sorted(&s, alpha / 2.0), quantile_sorted(&s, 1.0 - alpha / 2.0))
}

/// The BCa interval (Efron, JASA 1987) at level 1 − α from the point estimate, the resampled
/// values and the delete-one jackknife values: bias correction z₀ = Φ⁻¹(#{θ*_b < θ̂}/B),
/// acceleration a = Σ(θ̄ − θ₍ᵢ₎)³ / (6 [Σ(θ̄ − θ₍ᵢ₎)²]^{3/2}), and the percentile interval at
/// Φ(z₀ + (z₀ + z)/(1 − a(z₀ + z))) for z = z_{α/2}, z_{1−α/2}. Where every resample is on one side
/// of θ̂ (z₀ infinite) the percentile interval is returned.
pub fn bca_interval(point: f64, boot: &[f64], jackknife: &[f64], alpha: f64) -> (f64, f64) {
    use quiver_numerics::{normal_cdf, normal_quantile};
    let below = boot.iter().filter(|&&v| v < point).count() as f64 / boot.len() as f64;
    let z0 = normal_quantile(below);
    let jm = jackknife.iter().sum::<f64>() / jackknife.len() as f64;
    let (num, den) = jackknife.iter().fold((0.0, 0.0), |(n, d), &v| {
        let e = jm - v;
        (n + e * e * e, d + e * e)
    });
    let a = if den > 0.0 { num / (6.0 * den.powf(1.5)) } else { 0.0 };
    let adjusted = |z: f64| normal_cdf(z0 + (z0 + z) / (1.0 - a * (z0 + z)));
    let (lo, hi) = (adjusted(normal_quantile(alpha / 2.0)), adjusted(normal_quantile(1.0 - alpha / 2.0)));
    if !(z0.is_finite() && lo.is_finite() && hi.is_finite()) {
        return percentile_interval(boot, alpha);
    }
    let mut s = boot.to_vec();
    s.sort_unstable_by(f64::total_cmp);
    (quantile_sorted(&s, lo), quantile_sorted(&s, hi))
}

/// The delete-one jackknife of `metric`: the metric with each run left out in turn (tasks in
/// order, runs in order). Every task keeps at least one run (tasks have two or more).
pub fn jackknife(runs: Runs<'_>, metric: Metric) -> Vec<f64> {
    let cells: Vec<(usize, usize)> =
        runs.iter().enumerate().flat_map(|(t, r)| (0..r.len()).map(move |j| (t, j))).collect();
    cells
        .par_iter()
        .map_init(
            || (runs.to_vec(), Vec::new()),
            |(left, scratch), &(t, j)| {
                let removed = left[t].remove(j);
                let v = metric.of(left, scratch);
                left[t].insert(j, removed);
                v
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every resample keeps each task's run count and draws only that task's runs; the draws are
    /// about uniform over the runs.
    #[test]
    fn resamples_are_stratified_and_uniform() {
        let runs = vec![vec![1.0, 2.0, 3.0], (10..110).map(f64::from).collect(), vec![-5.0, -6.0]];
        let mut out = Vec::new();
        let mut hits = vec![0usize; 100];
        for b in 0..2000 {
            resample_into(&runs, 7, 0, b, &mut out);
            for (task, o) in runs.iter().zip(&out) {
                assert_eq!(task.len(), o.len());
                assert!(o.iter().all(|v| task.contains(v)));
            }
            for v in &out[1] {
                hits[*v as usize - 10] += 1;
            }
        }
        // 2000 · 100 draws over 100 runs: 2000 each, sd ≈ 44.5; every count within 5 sd
        assert!(hits.iter().all(|&h| (h as f64 - 2000.0).abs() < 5.0 * 44.5), "{hits:?}");
        // another stream or seed draws differently; the same (seed, stream, b) the same
        let (mut a, mut c) = (Vec::new(), Vec::new());
        resample_into(&runs, 7, 0, 3, &mut a);
        resample_into(&runs, 7, 0, 3, &mut c);
        assert_eq!(a, c);
        resample_into(&runs, 7, 1, 3, &mut c);
        assert_ne!(a, c);
    }

    #[test]
    fn intervals_from_known_values() {
        let boot: Vec<f64> = (0..=100).map(f64::from).collect();
        assert_eq!(percentile_interval(&boot, 0.1), (5.0, 95.0));
        // symmetric resamples around the point and a symmetric jackknife: BCa is the percentile
        let (lo, hi) = bca_interval(50.0, &boot, &[1.0, -1.0, 2.0, -2.0], 0.1);
        assert!((lo - 5.0).abs() < 0.6 && (hi - 95.0).abs() < 0.6, "{lo} {hi}");
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let runs: Vec<Vec<f64>> = (0..5).map(|t| (0..7).map(|j| ((t * 7 + j) as f64).sin()).collect()).collect();
        let metrics = [Metric::Mean, Metric::Iqm, Metric::Median, Metric::OptimalityGap(0.5)];
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let a = one.install(|| bootstrap_metrics(&runs, &metrics, 300, 9, 2));
        let b = bootstrap_metrics(&runs, &metrics, 300, 9, 2);
        assert_eq!(a, b);
    }
}
