//! `rl-aggregate`: how good is each algorithm over a suite of tasks, from few runs — the interval
//! estimates of aggregate performance of Agarwal, Schwarzer, Castro, Courville & Bellemare, "Deep
//! reinforcement learning at the edge of the statistical precipice" (NeurIPS 2021), as their
//! library `rliable` computes them (`quiver_evaluation::aggregate`):
//!
//! * the **interquartile mean** (IQM) of all runs' normalised scores, their **median** over tasks
//!   of task means, **mean**, and **optimality gap** γ − mean(min(x, γ)), each with a stratified
//!   bootstrap interval (every resample redraws each task's runs with replacement, keeping each
//!   task's run count), percentile or BCa;
//! * the **probability of improvement** P(X > Y) of every pair of algorithms (per task the
//!   Mann–Whitney U over n_X·n_Y, averaged over tasks), with its interval;
//! * **performance profiles**: the fraction of runs (and of tasks, by their mean) above each score
//!   τ, with percentile bands.
//!
//! Scores are normalised per task by the optional `normalization` table (`(score − low)/(high −
//! low)`: random and human scores, say). Draws are counter-based (`quiver_evaluation::bootstrap`):
//! a seed gives the same intervals on any number of threads.

pub mod design;

use design::Design;
use quiver_evaluation::aggregate::{average_score_profile, probability_of_improvement, run_score_profile, Metric};
use quiver_evaluation::bootstrap::{
    bca_interval, bootstrap_improvement, bootstrap_metrics, bootstrap_with, jackknife, lerp, percentile_interval,
};
use quiver_sdk::abi::{ErrorKind, Manifest, PluginError};
use quiver_sdk::serde_json::{json, Map, Value};
use quiver_sdk::{choices, column, Context, ManifestBuilder, Plugin, TableBuilder, Tables};
use quiver_sdk::{Created, EvaluationResult, EvaluatorImpl, Family};

choices! {
    /// How the bootstrap intervals are read off the resamples.
    pub enum Interval {
        /// The α/2 and 1 − α/2 quantiles of the resampled metric (rliable's default).
        Percentile = "percentile",
        /// Bias-corrected and accelerated (Efron 1987), the acceleration from the delete-one
        /// jackknife over runs.
        Bca = "bca",
    }
}

quiver_sdk::config! {
    /// The parameters, checked against their declared types and ranges.
    pub struct Config {
        /// The metrics, comma-separated.
        pub metrics: String = text(Some("iqm,median,mean,optimality_gap"), "metrics to report, comma-separated: iqm, median, mean, optimality_gap"),
        /// The optimality gap's threshold γ.
        pub gamma: f64 = float(Some(1.0), "optimality gap threshold gamma (normalised score)"),
        /// Bootstrap resamples.
        pub resamples: usize = int(Some(2000), "stratified bootstrap resamples").at_least(2.0).at_most(10_000_000.0),
        /// Seed of the counter-based draws.
        pub seed: u64 = int(Some(0), "seed of the bootstrap draws").at_least(0.0),
        /// Interval level.
        pub alpha: f64 = level(0.05, "interval level: non-coverage (0.05: 95% intervals)"),
        /// Percentile or BCa.
        pub interval: Interval = choice(Interval::Percentile, "bootstrap interval: percentile or bca"),
        /// P(X > Y) for every pair.
        pub improvement: bool = boolean(true, "probability of improvement for every pair of algorithms"),
        /// τ points of the performance profiles.
        pub profile: usize = int(Some(0), "performance profiles at this many + 1 scores tau, from the lowest normalised score to the highest (0: none)").at_most(10_000.0),
    }
}

impl quiver_sdk::PluginConfig for Config {
    fn validate(&self) -> Result<(), PluginError> {
        metrics(&self.metrics, self.gamma).map(|_| ())
    }
}

/// The metrics of the parameter `metrics`, in its order.
fn metrics(list: &str, gamma: f64) -> Result<Vec<Metric>, PluginError> {
    let mut out: Vec<Metric> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let m = match name {
            "iqm" => Metric::Iqm,
            "median" => Metric::Median,
            "mean" => Metric::Mean,
            "optimality_gap" => Metric::OptimalityGap(gamma),
            other => {
                return Err(PluginError::param(format!(
                    "parameter 'metrics': '{other}' is not one of iqm, median, mean, optimality_gap"
                )))
            }
        };
        if out.iter().any(|o| o.name() == m.name()) {
            return Err(PluginError::param(format!("parameter 'metrics': '{name}' is listed twice")));
        }
        out.push(m);
    }
    if out.is_empty() {
        return Err(PluginError::param("parameter 'metrics': name at least one of iqm, median, mean, optimality_gap"));
    }
    Ok(out)
}

/// Most resampled numbers held at once (resamples × (metrics + profile points) per algorithm).
pub const MAX_RESAMPLED_VALUES: f64 = 2e8;

/// The estimator object.
pub struct RlAggregate {
    config: Config,
    ctx: Context,
}

/// `{"estimate", "lower", "upper"}`.
fn interval_json(estimate: f64, (lower, upper): (f64, f64)) -> Value {
    json!({"estimate": estimate, "lower": lower, "upper": upper})
}

impl RlAggregate {
    /// The interval of a resampled statistic, as configured.
    fn interval(&self, point: f64, boot: &[f64], jack: impl FnOnce() -> Vec<f64>) -> (f64, f64) {
        match self.config.interval {
            Interval::Percentile => percentile_interval(boot, self.config.alpha),
            Interval::Bca => bca_interval(point, boot, &jack(), self.config.alpha),
        }
    }

    /// Each metric of each algorithm with its interval: `{metric: {algorithm: {...}}}`.
    fn metrics(&self, d: &Design, list: &[Metric]) -> Value {
        let cfg = &self.config;
        let mut by_metric: Vec<Map<String, Value>> = vec![Map::new(); list.len()];
        let mut scratch = Vec::new();
        for (a, name) in d.algorithms.iter().enumerate() {
            let runs = &d.runs[a];
            let boot = bootstrap_metrics(runs, list, cfg.resamples, cfg.seed, a as u64);
            for (m, metric) in list.iter().enumerate() {
                let point = metric.of(runs, &mut scratch);
                let iv = self.interval(point, &boot[m], || jackknife(runs, *metric));
                by_metric[m].insert(name.clone(), interval_json(point, iv));
            }
        }
        Value::Object(list.iter().map(|m| m.name().to_string()).zip(by_metric.into_iter().map(Value::Object)).collect())
    }

    /// P(X > Y) for every pair i < j, with its interval.
    fn improvement(&self, d: &Design) -> Value {
        let cfg = &self.config;
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        for i in 0..d.algorithms.len() {
            for j in i + 1..d.algorithms.len() {
                let (x, y) = (&d.runs[i], &d.runs[j]);
                let point = probability_of_improvement(x, y, &mut scratch);
                let boot = bootstrap_improvement(x, y, (i as u64, j as u64), cfg.resamples, cfg.seed);
                // BCa's jackknife for a two-sample statistic would leave out runs of either
                // sample; the percentile interval is what rliable reports for it
                let iv = percentile_interval(&boot, cfg.alpha);
                let mut v = interval_json(point, iv);
                v["x"] = json!(d.algorithms[i]);
                v["y"] = json!(d.algorithms[j]);
                out.push(v);
            }
        }
        Value::Array(out)
    }

    /// The run-score and average-score profiles at `points + 1` values of τ, with percentile bands.
    fn profiles(&self, d: &Design, points: usize) -> Value {
        let cfg = &self.config;
        let all = d.runs.iter().flatten().flatten();
        let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| (l.min(x), h.max(x)));
        // evenly spaced from the lowest score to the highest; where hi − lo overflows (scores of
        // both signs near ±1e308), the weighted form of lerp
        let tau = |i: usize| {
            let t = lo + (hi - lo) * i as f64 / points as f64;
            if t.is_finite() {
                t
            } else {
                lerp(lo, hi, i as f64 / points as f64)
            }
        };
        let taus: Vec<f64> = (0..=points).map(tau).collect();
        let mut run_score = Map::new();
        let mut average_score = Map::new();
        for (a, name) in d.algorithms.iter().enumerate() {
            let runs = &d.runs[a];
            // per resample: the run-score profile at every τ, then the average-score profile
            let n = taus.len();
            let mut boot = bootstrap_with(runs, cfg.resamples, cfg.seed, a as u64, |r, _| {
                let mut v = run_score_profile(r, &taus);
                v.extend(average_score_profile(r, &taus));
                v
            });
            let avg = boot.split_off(n);
            let band = |samples: &[Vec<f64>]| -> (Vec<f64>, Vec<f64>) {
                samples.iter().map(|s| percentile_interval(s, cfg.alpha)).unzip()
            };
            let (rl, ru) = band(&boot);
            let (al, au) = band(&avg);
            run_score
                .insert(name.clone(), json!({"fraction": run_score_profile(runs, &taus), "lower": rl, "upper": ru}));
            average_score.insert(
                name.clone(),
                json!({"fraction": average_score_profile(runs, &taus), "lower": al, "upper": au}),
            );
        }
        json!({"tau": taus, "run_score": run_score, "average_score": average_score})
    }
}

impl EvaluatorImpl for RlAggregate {
    fn evaluate(&self, tables: &Tables<'_>) -> Result<EvaluationResult, PluginError> {
        let cfg = &self.config;
        let d = Design::read(tables)?;
        let list = metrics(&cfg.metrics, cfg.gamma)?;
        // per algorithm: each metric's resamples, and the two profiles' at every τ
        let profile_values = if cfg.profile > 0 { 2 * (cfg.profile + 1) } else { 0 };
        let held = cfg.resamples as f64 * (list.len() + profile_values) as f64;
        if held > MAX_RESAMPLED_VALUES {
            return Err(PluginError::new(
                ErrorKind::Unsupported,
                format!(
                    "{} resamples of {} metric(s) and {} profile point(s) would hold {held:.2e} numbers per algorithm \
                     (limit {MAX_RESAMPLED_VALUES:.0e}): fewer resamples or profile points",
                    cfg.resamples,
                    list.len(),
                    cfg.profile
                ),
            ));
        }
        let runs: Map<String, Value> = d
            .algorithms
            .iter()
            .zip(&d.runs)
            .map(|(a, r)| (a.clone(), json!(r.iter().map(Vec::len).sum::<usize>())))
            .collect();
        let mut out = json!({
            "algorithms": d.algorithms,
            "tasks": d.tasks.len(),
            "runs": runs,
            "normalised": d.normalised,
            "interval": quiver_sdk::Choice::name(cfg.interval),
            "alpha": cfg.alpha,
            "resamples": cfg.resamples,
            "metrics": self.metrics(&d, &list),
        });
        if cfg.improvement && d.algorithms.len() >= 2 {
            out["improvement"] = self.improvement(&d);
        }
        if cfg.profile > 0 {
            out["profile"] = self.profiles(&d, cfg.profile);
        }
        Ok(EvaluationResult { json: self.ctx.result_text(out) })
    }
}

/// The plugin.
pub struct RlAggregatePlugin;

impl Plugin for RlAggregatePlugin {
    fn manifest() -> Manifest {
        ManifestBuilder::new("rl-aggregate", Family::Evaluator)
            .version(env!("CARGO_PKG_VERSION"))
            .summary("Aggregate performance of RL algorithms over tasks from few runs (rliable): IQM, median, mean, optimality gap, probability of improvement, performance profiles, with stratified bootstrap intervals")
            .guarantee(
                "Each interval is a stratified bootstrap interval (each task's runs redrawn with replacement, its run \
                 count kept): percentile or BCa at level 1 - alpha, asymptotically valid as the runs per task grow; \
                 with few runs it is the interval rliable reports, not an exact one. The point metrics are rliable's \
                 formulas exactly.",
            )
            .reference("Agarwal, Schwarzer, Castro, Courville & Bellemare, Deep reinforcement learning at the edge of the statistical precipice, NeurIPS (2021); the rliable library")
            .config::<Config>()
            .table(
                TableBuilder::new("scores", "one row per run of an algorithm on a task")
                    .column(column::text("algorithm", "the algorithm's name"))
                    .column(column::text("task", "the task's name"))
                    .column(column::i64_opt("run", "the run's id (checked: one row per run)"))
                    .column(column::f64("score", "the run's score")),
            )
            .table(
                TableBuilder::new("normalization", "one row per task: score -> (score - low) / (high - low)")
                    .optional()
                    .column(column::text("task", "the task's name"))
                    .column(column::f64("low", "the score mapped to 0 (a random policy's, say)"))
                    .column(column::f64("high", "the score mapped to 1 (a human's, say)")),
            )
            .build()
    }

    type Config = Config;

    fn create(config: Config, ctx: Context) -> Result<Created, PluginError> {
        Ok(quiver_sdk::evaluator(RlAggregate { config, ctx }))
    }
}

quiver_sdk::export_plugin!(RlAggregatePlugin);
