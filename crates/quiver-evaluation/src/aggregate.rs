//! Aggregate performance over tasks from few runs (Agarwal, Schwarzer, Castro, Courville &
//! Bellemare, "Deep reinforcement learning at the edge of the statistical precipice", NeurIPS
//! 2021; the `rliable` library), on normalised scores x_{t,r} (task t, run r):
//!
//! * **mean**: the mean of every run's score, (1/Σ_t n_t) Σ_t Σ_r x_{t,r};
//! * **median**: the median over tasks of each task's mean score;
//! * **IQM**: the interquartile mean of every run's score — sorted, ⌊N/4⌋ dropped from each end
//!   (N = Σ_t n_t), the mean of the rest (`scipy.stats.trim_mean(·, 0.25)`);
//! * **optimality gap** at threshold γ: γ − mean(min(x, γ)), how far the runs fall short of γ;
//! * **probability of improvement** P(X > Y): per task the Mann–Whitney U of X's runs against
//!   Y's over n_X·n_Y (ties count ½; 0.5 when the two tasks' runs are identical), averaged over
//!   tasks;
//! * **performance profiles**: the run-score distribution F(τ) = the fraction of runs with a
//!   score above τ, and the average-score distribution, the fraction of tasks whose mean score
//!   is above τ.
//!
//! With equal run counts these are `rliable`'s formulas (`metrics.aggregate_*`,
//! `probability_of_improvement`, `create_performance_profile`); with unequal ones every run
//! weighs the same in the pooled metrics (mean, IQM, gap, the run-score profile) and every task
//! the same in the median and the average-score profile.

/// The scores of one algorithm: per task, its runs.
pub type Runs<'a> = &'a [Vec<f64>];

/// An aggregate metric of one algorithm's runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// The mean of every run's score.
    Mean,
    /// The median over tasks of the task means.
    Median,
    /// The interquartile mean of every run's score.
    Iqm,
    /// γ − mean(min(x, γ)).
    OptimalityGap(f64),
}

impl Metric {
    /// The metric's name in results (`mean`, `median`, `iqm`, `optimality_gap`).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Mean => "mean",
            Metric::Median => "median",
            Metric::Iqm => "iqm",
            Metric::OptimalityGap(_) => "optimality_gap",
        }
    }

    /// The metric of `runs` (per task, the runs' scores; every task with at least one run).
    /// `scratch` is reused for the pooled scores.
    pub fn of(self, runs: Runs<'_>, scratch: &mut Vec<f64>) -> f64 {
        match self {
            Metric::Mean => pooled_mean(runs.iter().flatten().copied()),
            Metric::Median => {
                scratch.clear();
                scratch.extend(runs.iter().map(|r| mean(r)));
                median(scratch)
            }
            Metric::Iqm => {
                scratch.clear();
                scratch.extend(runs.iter().flatten().copied());
                iqm(scratch)
            }
            Metric::OptimalityGap(gamma) => gamma - pooled_mean(runs.iter().flatten().map(|&x| x.min(gamma))),
        }
    }
}

fn pooled_mean(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for v in values.clone() {
        sum += v;
        n += 1;
    }
    if sum.is_finite() {
        sum / n as f64
    } else {
        // the sum overflowed (scores near 1e308): each term divided first
        values.map(|v| v / n as f64).sum()
    }
}

/// The mean of `x` (each term divided by n first where the plain sum overflows).
pub fn mean(x: &[f64]) -> f64 {
    pooled_mean(x.iter().copied())
}

/// The median of `x` (reordered): the middle value, or the mean of the two middle values.
pub fn median(x: &mut [f64]) -> f64 {
    let n = x.len();
    let (lo, mid, _) = x.select_nth_unstable_by(n / 2, f64::total_cmp);
    let upper = *mid;
    if n % 2 == 1 {
        upper
    } else {
        let lower = lo.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        // halving is exact, so this is 0.5·(lower + upper) wherever that sum does not overflow
        0.5 * lower + 0.5 * upper
    }
}

/// The interquartile mean of `x` (reordered): ⌊n/4⌋ values dropped from each end, the mean of the
/// rest (`scipy.stats.trim_mean(x, 0.25)`). Two selections instead of a sort (O(n)): the first puts
/// the ⌊n/4⌋ smallest before position ⌊n/4⌋, the second the middle values before position
/// n − ⌊n/4⌋ among the rest — the same values a sort keeps, ties included.
pub fn iqm(x: &mut [f64]) -> f64 {
    let n = x.len();
    let cut = n / 4;
    if cut > 0 {
        x.select_nth_unstable_by(cut, f64::total_cmp);
        x[cut..].select_nth_unstable_by(n - 2 * cut - 1, f64::total_cmp);
    }
    mean(&x[cut..n - cut])
}

/// P(X > Y) on one task: the Mann–Whitney U of `x` against `y` over |x|·|y| (a tie counts ½);
/// 0.5 when the runs are identical, as `rliable` defines it.
pub fn improvement_on_task(x: &[f64], y: &[f64], sorted_y: &mut Vec<f64>) -> f64 {
    if x == y {
        return 0.5;
    }
    sorted_y.clear();
    sorted_y.extend_from_slice(y);
    sorted_y.sort_unstable_by(f64::total_cmp);
    // for each x: the y below it, and half the y equal to it
    let mut u = 0.0;
    for &v in x {
        let below = sorted_y.partition_point(|&w| w < v);
        let not_above = sorted_y.partition_point(|&w| w <= v);
        u += below as f64 + 0.5 * (not_above - below) as f64;
    }
    u / (x.len() * y.len()) as f64
}

/// P(X > Y): [`improvement_on_task`] averaged over the tasks.
pub fn probability_of_improvement(x: Runs<'_>, y: Runs<'_>, scratch: &mut Vec<f64>) -> f64 {
    let total: f64 = x.iter().zip(y).map(|(a, b)| improvement_on_task(a, b, scratch)).sum();
    total / x.len() as f64
}

/// The run-score distribution at each τ: the fraction of all runs with a score above τ.
pub fn run_score_profile(runs: Runs<'_>, taus: &[f64]) -> Vec<f64> {
    let mut all: Vec<f64> = runs.iter().flatten().copied().collect();
    all.sort_unstable_by(f64::total_cmp);
    let n = all.len() as f64;
    taus.iter().map(|&t| (all.len() - all.partition_point(|&v| v <= t)) as f64 / n).collect()
}

/// The average-score distribution at each τ: the fraction of tasks whose mean score is above τ.
pub fn average_score_profile(runs: Runs<'_>, taus: &[f64]) -> Vec<f64> {
    let means: Vec<f64> = runs.iter().map(|r| mean(r)).collect();
    let n = means.len() as f64;
    taus.iter().map(|&t| means.iter().filter(|&&m| m > t).count() as f64 / n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_by_hand() {
        // two tasks, 4 and 3 runs: 7 scores, ⌊7/4⌋ = 1 dropped from each end
        let runs = vec![vec![0.1, 0.9, 0.4, 2.0], vec![-1.0, 0.5, 0.6]];
        let mut s = Vec::new();
        assert_eq!(Metric::Mean.of(&runs, &mut s), (0.1 + 0.9 + 0.4 + 2.0 - 1.0 + 0.5 + 0.6) / 7.0);
        // sorted: -1, 0.1, 0.4, 0.5, 0.6, 0.9, 2.0 → 0.1 … 0.9
        assert!((Metric::Iqm.of(&runs, &mut s) - (0.1 + 0.4 + 0.5 + 0.6 + 0.9) / 5.0).abs() < 1e-15);
        // task means 0.85 and 0.0333…: the median of two is their mean
        let median_by_hand = 0.5 * (3.4 / 4.0 + 0.1 / 3.0);
        assert!((Metric::Median.of(&runs, &mut s) - median_by_hand).abs() < 1e-15);
        let gap = 1.0 - (0.1 + 0.9 + 0.4 + 1.0 - 1.0 + 0.5 + 0.6) / 7.0;
        assert!((Metric::OptimalityGap(1.0).of(&runs, &mut s) - gap).abs() < 1e-15);
        let mut odd = vec![3.0, 1.0, 2.0];
        assert_eq!(median(&mut odd), 2.0);
    }

    /// Scores near the largest double: the means are numbers, not infinities.
    #[test]
    fn means_of_huge_scores_do_not_overflow() {
        let runs = vec![vec![1e308, 1e308], vec![-1e308, 1.7e308]];
        let mut s = Vec::new();
        for m in [Metric::Mean, Metric::Median, Metric::Iqm] {
            assert!(m.of(&runs, &mut s).is_finite(), "{m:?}");
        }
        assert_eq!(Metric::Mean.of(&runs, &mut s), (1e308 / 4.0) * 2.0 + (-1e308 / 4.0) + 1.7e308 / 4.0);
    }

    /// The selections keep the values a sort keeps, for every length and many ties.
    #[test]
    fn iqm_by_selection_equals_iqm_by_sorting() {
        let mut u = 0x9E37u64;
        for n in 1..60 {
            for _ in 0..20 {
                let x: Vec<f64> = (0..n).map(|_| (quiver_numerics::splitmix::next(&mut u) % 7) as f64).collect();
                let mut sorted = x.clone();
                sorted.sort_by(f64::total_cmp);
                let cut = n / 4;
                let want = mean(&sorted[cut..n - cut]);
                assert!((iqm(&mut x.clone()) - want).abs() <= 1e-12 * want.abs().max(1.0), "n = {n}: {x:?}");
            }
        }
    }

    #[test]
    fn improvement_counts_pairs_and_ties() {
        let mut s = Vec::new();
        // pairs (x > y): 2 > 1, 3 > 1, 3 > 2; the tie 2 = 2 counts ½ → 3.5 of 2·2 = 4
        assert_eq!(improvement_on_task(&[2.0, 3.0], &[1.0, 2.0], &mut s), 3.5 / 4.0);
        assert_eq!(improvement_on_task(&[1.0, 2.0], &[1.0, 2.0], &mut s), 0.5);
        let x = vec![vec![2.0, 3.0], vec![0.0]];
        let y = vec![vec![1.0, 2.0], vec![1.0]];
        assert_eq!(probability_of_improvement(&x, &y, &mut s), (3.5 / 4.0 + 0.0) / 2.0);
    }

    #[test]
    fn profiles_count_above_tau() {
        let runs = vec![vec![0.0, 1.0, 2.0], vec![3.0]];
        assert_eq!(run_score_profile(&runs, &[-1.0, 0.0, 1.5, 3.0]), vec![1.0, 0.75, 0.5, 0.0]);
        // task means 1 and 3
        assert_eq!(average_score_profile(&runs, &[0.5, 1.0, 2.9]), vec![1.0, 0.5, 0.5]);
    }
}
