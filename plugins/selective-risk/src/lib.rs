//! `selective-risk`: accept only the judgments you can trust. Calibrate a threshold λ̂ on an
//! uncertainty score s (lower = more confident); judgments with s ≤ λ̂ are accepted, the rest are
//! deferred (to a human, a bigger model, ...).
//!
//! Two rules, with different guarantees (stated exactly in the manifest and `docs/conformal-selectors.md`):
//! * `scope` (the SCOPE paper's rule): λ̂ = sup{λ ∈ {−∞} ∪ {s_i} : Σ_i 1{s_i ≤ λ}(E_i − α) ≤ −1},
//!   i.e. errors_acc(λ) + 1 ≤ α·n_acc(λ). Keeps the *expected* selective risk E[R(λ̂)] ≤ α,
//!   averaged over calibration draws (checked by Monte Carlo); not the risk of a given λ̂.
//! * `ltt` (Learn then Test, Angelopoulos et al. 2021): G candidate thresholds at calibration
//!   quantiles; exact binomial p-values p_λ = P(Bin(n_acc(λ), α) ≤ errors_acc(λ)) of
//!   H_λ: "selective risk at λ > α", Bonferroni at δ/G′ with G′ ≤ G the number of distinct
//!   candidates (tied quantiles are one hypothesis); λ̂ = the largest rejected candidate.
//!   Guarantee: P(selective risk of λ̂ > α) ≤ δ over calibration draws.
//!
//! The threshold search (accepted and error counts for every candidate) runs on the CPU or as the
//! CUDA kernel `threshold_counts`; the decision is exact integer arithmetic plus one binomial tail.

use quiver_numerics::binomial::binomial_cdf;
use quiver_sdk::abi::{abi_stable::std_types::RVec, Manifest, PluginError};
use quiver_sdk::plugin_error;
use quiver_sdk::{
    choices, column, json_f64, serde_json::json, ConformalSelectorImpl, Context, ManifestBuilder, Plugin, TableBuilder,
    Tables,
};
use quiver_sdk::{Created, Family, MergeableImpl, Offsets, SelectionResult};
use rayon::slice::ParallelSliceMut;

/// CUDA source of the threshold-count kernel.
pub const THRESHOLD_KERNEL: &str = include_str!("kernels/threshold_counts.cu");

/// Guarantee of the `scope` rule, as stated to users.
pub const SCOPE_GUARANTEE: &str =
    "scope: expected selective risk E[R(lambda_hat)] <= alpha, where R is the error rate \
     among judgments accepted at lambda_hat and the expectation is over calibration draws (exchangeable data; \
     verified by Monte Carlo, no finite-sample proof). It does not bound R(lambda_hat) for one calibration set \
     (that exceeds alpha about half the time), nor exactly the pooled rate E[errors accepted]/E[accepted] \
     (measured 0.102 at alpha = 0.1, n = 500).";
/// Guarantee of the `ltt` rule.
pub const LTT_GUARANTEE: &str = "ltt: P(selective risk of lambda_hat > alpha) <= delta over calibration draws \
     (i.i.d. data; exact binomial tests, Bonferroni over the grid).";

choices! {
    /// The threshold rule.
    pub enum Rule {
        /// SCOPE's sum rule.
        Scope = "scope",
        /// Learn then Test with Bonferroni over a grid.
        Ltt = "ltt",
    }
}

quiver_sdk::config! {
    /// The parameters, validated.
    pub struct Config {
        /// Target error rate among accepted judgments.
        pub alpha: f64 = level(0.1, "target error rate among accepted judgments"),
        /// Rule.
        pub rule: Rule = choice(Rule::Scope, "threshold rule (see guarantee)"),
        /// LTT failure probability.
        pub delta: f64 = level(0.1, "ltt: probability that the guarantee fails"),
        /// LTT grid size G.
        pub grid: usize = int(Some(50), "ltt: number of candidate thresholds (calibration quantiles)")
            .at_least(1.0)
            .at_most(1e6),
    }
}

impl quiver_sdk::PluginConfig for Config {}

/// Calibration judgments sorted by score, with prefix error counts.
#[derive(Debug, Clone)]
pub struct Calibrated {
    /// Scores ascending.
    pub sorted: Vec<f64>,
    /// error_prefix\[i\] = errors among the i most confident judgments (n + 1 entries).
    pub error_prefix: Vec<i64>,
}

/// 0 followed by the running count of `true`s.
fn prefix_counts(flags: impl ExactSizeIterator<Item = bool>) -> Vec<i64> {
    let mut out = Vec::with_capacity(flags.len() + 1);
    out.push(0);
    let mut acc = 0i64;
    for e in flags {
        acc += e as i64;
        out.push(acc);
    }
    out
}

impl Calibrated {
    /// Sort judgments by score (stable: ties keep their input order).
    pub fn new(scores: &[f64], errors: &[bool]) -> Calibrated {
        // a 4-byte order (ties by input position: stable) instead of sorting (score, error) pairs
        if scores.len() > u32::MAX as usize {
            let mut pairs: Vec<(f64, bool)> = scores.iter().copied().zip(errors.iter().copied()).collect();
            pairs.par_sort_by(|a, b| a.0.total_cmp(&b.0));
            let (sorted, errs): (Vec<f64>, Vec<bool>) = pairs.into_iter().unzip();
            return Calibrated { error_prefix: prefix_counts(errs.into_iter()), sorted };
        }
        let order = quiver_numerics::ranks::argsort(scores);
        Calibrated {
            sorted: order.iter().map(|&i| scores[i as usize]).collect(),
            error_prefix: prefix_counts(order.iter().map(|&i| errors[i as usize])),
        }
    }

    /// (accepted, errors among accepted) at each threshold, on the CPU: accepted = #{s_i ≤ λ}
    /// (the at-or-below count of `quiver_numerics::ranks::counts_below`).
    pub fn counts_cpu(&self, lambdas: &[f64]) -> Vec<(i64, i64)> {
        // the rules' candidates come ascending: one merge walk over the sorted scores, with no
        // query sort and no count pairs held beside the result
        if lambdas.windows(2).all(|w| w[0] <= w[1]) {
            let mut le = 0usize;
            return lambdas
                .iter()
                .map(|&lam| {
                    while le < self.sorted.len() && self.sorted[le] <= lam {
                        le += 1;
                    }
                    (le as i64, self.error_prefix[le])
                })
                .collect();
        }
        quiver_numerics::ranks::counts_below(&self.sorted, lambdas)
            .into_iter()
            .map(|(_, le)| (le as i64, self.error_prefix[le as usize]))
            .collect()
    }

    /// (accepted, errors among accepted) at each threshold, by the CUDA kernel.
    pub fn counts_cuda(&self, lambdas: &[f64]) -> Result<Vec<(i64, i64)>, quiver_gpu::GpuError> {
        use quiver_gpu::cudarc::driver::PushKernelArg;
        let f = quiver_gpu::kernel("threshold_counts", THRESHOLD_KERNEL, "threshold_counts")?;
        let stream = quiver_gpu::stream()?;
        let n = self.sorted.len() as i64;
        let g = lambdas.len() as i64;
        let d_sorted = stream.clone_htod(&self.sorted)?;
        let d_prefix = stream.clone_htod(&self.error_prefix)?;
        let d_lam = stream.clone_htod(lambdas)?;
        let mut d_acc = stream.alloc_zeros::<i64>(lambdas.len().max(1))?;
        let mut d_err = stream.alloc_zeros::<i64>(lambdas.len().max(1))?;
        let mut launch = stream.launch_builder(&f);
        launch.arg(&d_sorted).arg(&n).arg(&d_prefix).arg(&d_lam).arg(&g).arg(&mut d_acc).arg(&mut d_err);
        // SAFETY: argument types and order match the kernel; buffers hold n, n+1, g, g, g elements.
        unsafe { launch.launch(quiver_gpu::launch_config(lambdas.len())) }?;
        let acc = stream.clone_dtoh(&d_acc)?;
        let err = stream.clone_dtoh(&d_err)?;
        Ok(acc.into_iter().zip(err).take(lambdas.len()).collect())
    }

    /// The candidate thresholds of a rule: every distinct score (`scope`), or the calibration
    /// quantiles S_(⌈g n / G⌉), g = 1..G, deduplicated (`ltt`).
    pub fn candidates(&self, rule: Rule, grid: usize) -> Vec<f64> {
        let n = self.sorted.len();
        let mut c: Vec<f64> = match rule {
            Rule::Scope => self.sorted.clone(),
            Rule::Ltt => (1..=grid).map(|g| self.sorted[(g * n).div_ceil(grid).max(1) - 1]).collect(),
        };
        c.dedup();
        c
    }
}

/// [`ltt_counts`] replaces the sort only when the calibration has at least this many rows per
/// candidate: each parallel worker holds one count pair per candidate, so with a grid near n
/// (up to 10^6) those would outweigh the sort they save (`quiver run` on a 10^6-row CSV with
/// G = 10^6: 246 MB and 2.34 s that way, 112 MB and 0.54 s by the sort).
pub const LTT_ROWS_PER_CANDIDATE: usize = 64;

/// LTT's candidates and their (accepted, errors among accepted) counts straight from the unsorted
/// calibration — the same as [`Calibrated::candidates`] then [`Calibrated::counts_cpu`], without
/// sorting n scores for G quantiles: the quantiles S_(⌈g n / G⌉) by selection
/// ([`quiver_numerics::ranks::order_statistics`]), then one parallel pass that puts each judgment
/// in the bucket of the first candidate at or above its score, and prefix sums over the buckets.
pub fn ltt_counts(scores: &[f64], errors: &[bool], grid: usize) -> (Vec<f64>, Vec<(i64, i64)>) {
    use rayon::prelude::*;
    let n = scores.len();
    let mut ranks: Vec<usize> = (1..=grid).map(|g| (g * n).div_ceil(grid).max(1) - 1).collect();
    ranks.dedup();
    let mut lambdas = quiver_numerics::ranks::order_statistics(scores, &ranks);
    lambdas.dedup();
    let buckets = lambdas.len();
    // per bucket: judgments whose first candidate at or above their score is this one, and errors
    let per_bucket = scores
        .par_chunks(1 << 16)
        .zip(errors.par_chunks(1 << 16))
        .fold(
            || vec![(0i64, 0i64); buckets],
            |mut acc, (s, e)| {
                for (&v, &wrong) in s.iter().zip(e) {
                    let b = lambdas.partition_point(|&l| l < v);
                    if b < buckets {
                        acc[b].0 += 1;
                        acc[b].1 += wrong as i64;
                    }
                }
                acc
            },
        )
        .reduce(
            || vec![(0i64, 0i64); buckets],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    x.0 += y.0;
                    x.1 += y.1;
                }
                a
            },
        );
    let counts = per_bucket
        .into_iter()
        .scan((0i64, 0i64), |run, (acc, err)| {
            *run = (run.0 + acc, run.1 + err);
            Some(*run)
        })
        .collect();
    (lambdas, counts)
}

/// The calibrated decision.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Decision {
    /// λ̂ (−∞: accept nothing).
    pub lambda_hat: f64,
    /// Calibration judgments accepted at λ̂.
    pub cal_accepted: i64,
    /// Errors among them.
    pub cal_errors: i64,
    /// Candidates tested.
    pub candidates: usize,
    /// LTT: the binomial p-value at λ̂.
    pub p_value: Option<f64>,
}

/// The `scope` rule straight from the sorted calibration (the same answer as [`decide`] on every
/// distinct score, with no candidate or count arrays): from the largest distinct score down, the
/// first λ with errors + 1 ≤ α · accepted.
pub fn decide_scope(config: &Config, cal: &Calibrated) -> Decision {
    let s = &cal.sorted;
    let distinct = s.windows(2).filter(|w| w[0] != w[1]).count() + usize::from(!s.is_empty());
    let mut best =
        Decision { lambda_hat: f64::NEG_INFINITY, cal_accepted: 0, cal_errors: 0, candidates: distinct, p_value: None };
    let mut end = s.len();
    while end > 0 {
        let lam = s[end - 1];
        let (acc, err) = (end as i64, cal.error_prefix[end]);
        if (err as f64) + 1.0 <= config.alpha * (acc as f64) {
            best =
                Decision { lambda_hat: lam, cal_accepted: acc, cal_errors: err, candidates: distinct, p_value: None };
            break;
        }
        // the start of this run of equal scores (most runs are one score long: step, then search)
        end -= 1;
        if end > 0 && s[end - 1] == lam {
            end = s[..end].partition_point(|&x| x < lam);
        }
    }
    best
}

/// Apply a rule to per-candidate counts (candidates ascending).
pub fn decide(config: &Config, lambdas: &[f64], counts: &[(i64, i64)]) -> Decision {
    let mut best = Decision {
        lambda_hat: f64::NEG_INFINITY,
        cal_accepted: 0,
        cal_errors: 0,
        candidates: lambdas.len(),
        p_value: None,
    };
    for (&lam, &(acc, err)) in lambdas.iter().zip(counts).rev() {
        let (ok, p) = match config.rule {
            // Σ 1{s ≤ λ}(E − α) ≤ −1  ⟺  errors + 1 ≤ α · accepted
            Rule::Scope => ((err as f64) + 1.0 <= config.alpha * (acc as f64), None),
            Rule::Ltt => {
                let p = if acc == 0 { 1.0 } else { binomial_cdf(err as u64, acc as u64, config.alpha) };
                (p <= config.delta / lambdas.len() as f64, Some(p))
            }
        };
        if ok {
            best =
                Decision { lambda_hat: lam, cal_accepted: acc, cal_errors: err, candidates: lambdas.len(), p_value: p };
            break;
        }
    }
    best
}

/// Read uncertainty scores from `score`, or compute the Bidirectional Preference Entropy from
/// `p_fwd` and `p_rev`.
pub fn read_scores<'a>(t: &quiver_sdk::TableRef<'a>) -> Result<std::borrow::Cow<'a, [f64]>, PluginError> {
    if let Some(s) = t.f64_opt("score")? {
        return Ok(std::borrow::Cow::Borrowed(s));
    }
    match (t.f64_opt("p_fwd")?, t.f64_opt("p_rev")?) {
        (Some(f), Some(r)) => f
            .iter()
            .zip(r.iter())
            .enumerate()
            .map(|(i, (&a, &b))| {
                quiver_numerics::bpe_score(a, b).map_err(|e| {
                    // the column whose value is out of range
                    let column = match &e {
                        quiver_numerics::NumericsError::OutOfRange { name, .. } => name,
                        _ => "p_fwd",
                    };
                    t.row_error(column, i, e)
                })
            })
            .collect::<Result<Vec<f64>, PluginError>>()
            .map(std::borrow::Cow::Owned),
        _ => Err(PluginError::input(format!(
            "table '{}' needs a 'score' column, or 'p_fwd' and 'p_rev' columns for the BPE score (columns: {})",
            t.role(),
            t.column_names().join(", ")
        ))),
    }
}

/// The selector object.
pub struct SelectiveRisk {
    config: Config,
    ctx: Context,
    decision: Option<(Decision, usize)>,
}

impl SelectiveRisk {
    /// λ̂ from the calibration table, and the table's size.
    fn decide(&self, tables: &Tables<'_>) -> Result<(Decision, usize), PluginError> {
        let cal = tables.get("calibration")?;
        cal.non_empty()?;
        let scores = read_scores(&cal)?;
        let errors = cal.flags("error")?;
        if self.config.rule == Rule::Ltt
            && self.ctx.device() == quiver_sdk::abi::Device::Cpu
            && self.config.grid.saturating_mul(LTT_ROWS_PER_CANDIDATE) <= scores.len()
        {
            // G quantiles and their counts: no sort of the calibration
            let (lambdas, counts) = ltt_counts(&scores, &errors, self.config.grid);
            return Ok((decide(&self.config, &lambdas, &counts), scores.len()));
        }
        let calibrated = Calibrated::new(&scores, &errors);
        // (the scores computed from p_fwd and p_rev are not needed past the sorted copy)
        drop((scores, errors));
        let n = calibrated.sorted.len();
        if self.config.rule == Rule::Scope && self.ctx.device() == quiver_sdk::abi::Device::Cpu {
            // one pass down the sorted scores: no candidate or count arrays
            return Ok((decide_scope(&self.config, &calibrated), n));
        }
        let lambdas = calibrated.candidates(self.config.rule, self.config.grid);
        let counts = self.ctx.dispatch(
            || Ok(calibrated.counts_cpu(&lambdas)),
            || calibrated.counts_cuda(&lambdas).map_err(plugin_error),
        )?;
        Ok((decide(&self.config, &lambdas, &counts), n))
    }

    /// The test judgments accepted at λ̂ (s ≤ λ̂), and the result.
    fn result(&self, d: &Decision, n: usize, scores: Vec<f64>) -> SelectionResult {
        let accepted: Vec<u64> =
            scores.iter().enumerate().filter(|(_, &s)| s <= d.lambda_hat).map(|(j, _)| j as u64).collect();
        let json = self.ctx.result_text(json!({
            "guarantee": match self.config.rule { Rule::Scope => SCOPE_GUARANTEE, Rule::Ltt => LTT_GUARANTEE },
            "n_calibration": n,
            "m_test": scores.len(),
            "lambda_hat": json_f64(d.lambda_hat),
            "cal_accepted": d.cal_accepted,
            "cal_errors_accepted": d.cal_errors,
            "cal_error_rate_accepted": if d.cal_accepted > 0 { json!(d.cal_errors as f64 / d.cal_accepted as f64) } else { json!(null) },
            "candidates_tested": d.candidates,
            "p_value_at_lambda_hat": d.p_value,
            "n_accepted": accepted.len(),
        }));
        SelectionResult {
            device: self.ctx.device(),
            unit_values: RVec::from(scores),
            unit_values_name: "scores".into(),
            selected: RVec::from(accepted),
            selected_name: "accepted".into(),
            threshold: d.lambda_hat,
            json,
        }
    }
}

impl ConformalSelectorImpl for SelectiveRisk {
    fn calibrate(&mut self, tables: &Tables<'_>) -> Result<(), PluginError> {
        self.decision = Some(self.decide(tables)?);
        Ok(())
    }

    fn select(&self, tables: &Tables<'_>) -> Result<SelectionResult, PluginError> {
        let (d, n) =
            self.decision.as_ref().ok_or_else(|| quiver_sdk::state_error("select() called before calibrate()"))?;
        let test = tables.get("test")?;
        test.non_empty()?;
        let scores = read_scores(&test)?.into_owned();
        Ok(self.result(d, *n, scores))
    }
}

/// What a partition of the test judgments contributes: the decision its calibration table gave
/// (every partition reads the same table whole, so the same decision) and its judgments' scores,
/// in order — the result lists every judgment's score.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct RiskState {
    n_calibration: usize,
    decision: Decision,
    scores: Vec<f64>,
}

/// `selective-risk` by parts: λ̂ from the calibration table given whole to every partition, the
/// test judgments partitioned (docs/scale.md).
pub struct RiskByParts(SelectiveRisk);

impl MergeableImpl for RiskByParts {
    type State = RiskState;
    type Output = SelectionResult;
    fn partial(&self, tables: &Tables<'_>, _offsets: &Offsets) -> Result<RiskState, PluginError> {
        let (decision, n_calibration) = self.0.decide(tables)?;
        let test = tables.get("test")?;
        let scores = if test.nrows() == 0 { Vec::new() } else { read_scores(&test)?.into_owned() };
        Ok(RiskState { n_calibration, decision, scores })
    }
    fn merge(&self, mut a: RiskState, b: RiskState) -> Result<RiskState, PluginError> {
        // the decision's bits, so that a NaN p-value (none today) could not make equal ones differ
        let same = a.n_calibration == b.n_calibration
            && a.decision.lambda_hat.to_bits() == b.decision.lambda_hat.to_bits()
            && (a.decision.cal_accepted, a.decision.cal_errors, a.decision.candidates)
                == (b.decision.cal_accepted, b.decision.cal_errors, b.decision.candidates);
        if !same {
            return Err(PluginError::input(
                "table 'states': the partitions were calibrated on different calibration tables (every partition \
                 reads the same calibration table whole)",
            ));
        }
        a.scores.extend(b.scores);
        Ok(a)
    }
    fn finish(&self, state: RiskState) -> Result<SelectionResult, PluginError> {
        if state.scores.is_empty() {
            return Err(PluginError::input("table 'test' is empty in every partition: no judgment to accept"));
        }
        Ok(self.0.result(&state.decision, state.n_calibration, state.scores))
    }
}

/// The plugin.
pub struct SelectiveRiskPlugin;

impl Plugin for SelectiveRiskPlugin {
    fn manifest() -> Manifest {
        ManifestBuilder::new("selective-risk", Family::ConformalSelector)
            .version(env!("CARGO_PKG_VERSION"))
            .summary("Accept judgments with uncertainty score <= lambda_hat so the error rate among accepted is <= alpha")
            .guarantee(&format!("{SCOPE_GUARANTEE} {LTT_GUARANTEE}"))
            .reference("SCOPE selective evaluation rule; Angelopoulos et al., Learn then Test (2021); BPE score for pairwise judges")
            .cuda()
            .config::<Config>()
            .table(
                TableBuilder::new("calibration", "judgments with known correctness")
                    .column(column::f64_opt("score", "uncertainty score, lower = more confident"))
                    .column(column::f64_opt("p_fwd", "P(A wins | A shown first), for the BPE score"))
                    .column(column::f64_opt("p_rev", "P(A wins | A shown second), for the BPE score"))
                    .column(column::boolean("error", "1 if the judgment was wrong, else 0")),
            )
            .table(
                TableBuilder::new("test", "judgments to accept or defer")
                    .column(column::f64_opt("score", "uncertainty score"))
                    .column(column::f64_opt("p_fwd", "for the BPE score"))
                    .column(column::f64_opt("p_rev", "for the BPE score")),
            )
            .mergeable(&["test"])
            .cut_anywhere(&["test"])
            .given_whole(&["calibration"])
            .build()
    }

    type Config = Config;

    fn create(config: Config, ctx: Context) -> Result<Created, PluginError> {
        let parts = RiskByParts(SelectiveRisk { config: config.clone(), ctx: ctx.clone(), decision: None });
        Ok(quiver_sdk::conformal_selector(SelectiveRisk { config, ctx: ctx.clone(), decision: None })
            .mergeable(parts, &ctx))
    }
}

quiver_sdk::export_plugin!(SelectiveRiskPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ltt_counts_without_a_sort_equal_the_sorted_counts() {
        let mut state = 777u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as f64 / (1u64 << 31) as f64
        };
        for (n, grid, ties) in [(1, 1, false), (7, 50, true), (200, 10, true), (5000, 50, false), (300_000, 37, true)] {
            let scores: Vec<f64> =
                (0..n).map(|_| if ties { (next() * 40.0).floor() - 20.0 } else { next() - 0.5 }).collect();
            let errors: Vec<bool> = scores.iter().map(|s| next() < 0.5 + s / 80.0).collect();
            let cal = Calibrated::new(&scores, &errors);
            let lambdas = cal.candidates(Rule::Ltt, grid);
            let want = (lambdas.clone(), cal.counts_cpu(&lambdas));
            let got = ltt_counts(&scores, &errors, grid);
            assert_eq!(
                got.0.iter().map(|l| l.to_bits()).collect::<Vec<_>>(),
                lambdas.iter().map(|l| l.to_bits()).collect::<Vec<_>>(),
                "n = {n}"
            );
            assert_eq!(got.1, want.1, "n = {n}, grid = {grid}");
        }
    }

    #[test]
    fn the_one_pass_scope_rule_equals_the_rule_over_every_candidate() {
        // scores with many ties, errors more likely at high scores
        let mut state = 12345u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as f64 / (1u64 << 31) as f64
        };
        for (n, alpha) in [(1, 0.5), (7, 0.3), (200, 0.1), (5000, 0.05), (5000, 0.2)] {
            let scores: Vec<f64> = (0..n).map(|_| (next() * 40.0).floor()).collect();
            let errors: Vec<bool> = scores.iter().map(|s| next() < s / 60.0).collect();
            let config = Config { alpha, rule: Rule::Scope, delta: 0.1, grid: 10 };
            let cal = Calibrated::new(&scores, &errors);
            let lambdas = cal.candidates(Rule::Scope, 10);
            let full = decide(&config, &lambdas, &cal.counts_cpu(&lambdas));
            let fast = decide_scope(&config, &cal);
            assert_eq!(
                (full.lambda_hat, full.cal_accepted, full.cal_errors, full.candidates),
                (fast.lambda_hat, fast.cal_accepted, fast.cal_errors, fast.candidates),
                "n = {n}, alpha = {alpha}"
            );
        }
    }
}
