//! `ope-assessment`: which off-policy estimator would choose policies well — the risk–return
//! assessment of Kiyohara, Kishimoto, Kawakami, Kobayashi, Nakata & Saito, "Towards assessing and
//! benchmarking risk–return tradeoff of off-policy evaluation" (ICLR 2024; in SCOPE-RL): per
//! estimator, SharpeRatio@k = (best@k − J(π_b)) / std@k over the top-k policies it ranks (k = 1 …
//! K), beside the usual MSE, relative MSE, Spearman's ρ, nDCG@k, regret@k and the type I/II error
//! rates of a safety threshold (`quiver_evaluation::assessment`). With interval ends given, also
//! each estimator's coverage of the true values and mean width.

use quiver_evaluation::assessment::{ndcg, ranking, safety_errors, spearman, top_k};
use quiver_evaluation::Labels;
use quiver_sdk::abi::{Manifest, PluginError};
use quiver_sdk::serde_json::{json, Map, Value};
use quiver_sdk::{column, Context, ManifestBuilder, Plugin, TableBuilder, TableRef, Tables};
use quiver_sdk::{Created, EvaluationResult, EvaluatorImpl, Family};
use std::collections::HashMap;

quiver_sdk::config! {
    /// The parameters, checked against their declared types and ranges.
    pub struct Config {
        /// The safety threshold of the type I/II error rates.
        pub threshold: Option<f64> = float(None, "safety threshold of the type I/II error rates (default: the behaviour policy's true value)"),
        /// The k of regret@k and nDCG@k.
        pub k: Option<usize> = int(None, "k of regret@k and nDCG@k (default: 3, or K when fewer candidates)").at_least(1.0),
    }
}

impl quiver_sdk::PluginConfig for Config {}

/// The estimator object.
pub struct OpeAssessment {
    config: Config,
    ctx: Context,
}

/// The true values: candidates (in the table's order) and the behaviour policy's value.
struct Truth {
    candidates: Vec<String>,
    values: Vec<f64>,
    behaviour: f64,
}

fn read_truth(t: &TableRef<'_>) -> Result<Truth, PluginError> {
    t.non_empty()?;
    let value = t.f64("value")?;
    let behaviour = t.flags("behavior")?;
    let policy = t.texts("policy")?;
    let (mut candidates, mut values, mut found) = (Vec::new(), Vec::new(), None);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for i in 0..t.nrows() {
        let p = policy[i].to_string();
        if let Some(first) = seen.insert(p.clone(), i) {
            return Err(t.row_error(
                "policy",
                i,
                format!("policy '{p}' is also in row {}: one row per policy", first + 1),
            ));
        }
        if behaviour[i] {
            if let Some((_, row)) = &found {
                return Err(t.row_error(
                    "behavior",
                    i,
                    format!("a second behaviour policy (the first: row {})", row + 1),
                ));
            }
            found = Some((value[i], i));
        } else {
            candidates.push(p);
            values.push(value[i]);
        }
    }
    let Some((behaviour, _)) = found else {
        return Err(PluginError::input("table 'truth': no row has behavior = 1 (the behaviour policy's true value)"));
    };
    if candidates.is_empty() {
        return Err(PluginError::input("table 'truth': no candidate policy (rows with behavior = 0)"));
    }
    Ok(Truth { candidates, values, behaviour })
}

/// Per estimator (in order of first appearance), the estimates of every candidate and their
/// interval ends when given.
#[allow(clippy::type_complexity)]
fn read_estimates(
    t: &TableRef<'_>,
    truth: &Truth,
) -> Result<Vec<(String, Vec<f64>, Option<Vec<(f64, f64)>>)>, PluginError> {
    t.non_empty()?;
    let estimate = t.f64("estimate")?;
    let (lower, upper) = (t.f64_opt("lower")?, t.f64_opt("upper")?);
    let (estimator, policy) = (t.texts("estimator")?, t.texts("policy")?);
    if lower.is_some() != upper.is_some() {
        return Err(PluginError::input("table 'estimates': give both 'lower' and 'upper', or neither"));
    }
    let index: HashMap<&str, usize> = truth.candidates.iter().enumerate().map(|(i, p)| (p.as_str(), i)).collect();
    let k = truth.candidates.len();
    let mut names = Labels::new();
    let mut out: Vec<(Vec<Option<f64>>, Vec<(f64, f64)>)> = Vec::new();
    let mut rows: HashMap<(usize, usize), usize> = HashMap::new();
    for i in 0..t.nrows() {
        let (e, p) = (estimator[i], policy[i]);
        let Some(&j) = index.get(p) else {
            return Err(t.row_error(
                "policy",
                i,
                format!("policy '{p}' is not a candidate in table 'truth' (rows with behavior = 0)"),
            ));
        };
        let a = names.intern(e);
        if a == out.len() {
            out.push((vec![None; k], vec![(f64::NAN, f64::NAN); k]));
        }
        if let Some(first) = rows.insert((a, j), i) {
            return Err(t.row_error(
                "policy",
                i,
                format!("estimator '{e}' estimates policy '{p}' again (first in row {})", first + 1),
            ));
        }
        out[a].0[j] = Some(estimate[i]);
        if let (Some(l), Some(u)) = (lower, upper) {
            if l[i] > u[i] {
                return Err(t.row_error("lower", i, format!("{} is above upper ({})", l[i], u[i])));
            }
            out[a].1[j] = (l[i], u[i]);
        }
    }
    names
        .into_names()
        .into_iter()
        .zip(out)
        .map(|(name, (est, iv))| {
            let est: Vec<f64> = est
                .into_iter()
                .enumerate()
                .map(|(j, v)| {
                    v.ok_or_else(|| {
                        PluginError::input(format!(
                            "table 'estimates': estimator '{name}' gives no estimate of policy '{}': every estimator \
                             estimates every candidate",
                            truth.candidates[j]
                        ))
                    })
                })
                .collect::<Result<_, _>>()?;
            Ok((name, est, lower.map(|_| iv)))
        })
        .collect()
}

impl EvaluatorImpl for OpeAssessment {
    fn evaluate(&self, tables: &Tables<'_>) -> Result<EvaluationResult, PluginError> {
        let truth = read_truth(&tables.get("truth")?)?;
        let estimators = read_estimates(&tables.get("estimates")?, &truth)?;
        let n = truth.candidates.len();
        let k = self.config.k.unwrap_or(3).min(n);
        let threshold = self.config.threshold.unwrap_or(truth.behaviour);
        let best_true = truth.values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut per = Map::new();
        for (name, est, intervals) in &estimators {
            let order = ranking(est);
            // the errors scaled by the largest before squaring: RMSE is a number at any scale
            let big = est.iter().zip(&truth.values).map(|(e, v)| (e - v).abs()).fold(0.0, f64::max);
            let rmse = if big > 0.0 {
                big * (est.iter().zip(&truth.values).map(|(e, v)| ((e - v) / big).powi(2)).sum::<f64>() / n as f64)
                    .sqrt()
            } else {
                0.0
            };
            let mse = rmse * rmse;
            if !mse.is_finite() {
                return Err(PluginError::input(format!(
                    "table 'estimates': estimator '{name}''s squared errors overflow double precision (RMSE {rmse:e}); \
                     rescale the estimates and the true values"
                )));
            }
            let (type_i, type_ii) = safety_errors(est, &truth.values, threshold);
            let (mut best, mut std, mut sharpe) = (Vec::new(), Vec::new(), Vec::new());
            for kk in 1..=n {
                let (b, s) = top_k(&order, &truth.values, kk);
                best.push(json!(b));
                std.push(s.map_or(Value::Null, |s| json!(s)));
                // k = 1, or top policies of one value: no spread to divide by
                sharpe.push(match s {
                    Some(s) if s > 0.0 => json!((b - truth.behaviour) / s),
                    _ => Value::Null,
                });
            }
            let (best_k, _) = top_k(&order, &truth.values, k);
            let mut v = json!({
                "ranking": order.iter().map(|&i| truth.candidates[i].clone()).collect::<Vec<_>>(),
                "mse": mse,
                "rmse": rmse,
                // scale-free: each error in units of J(π_b) before squaring (none when J(π_b) = 0)
                "relative_mse": (truth.behaviour != 0.0).then(|| {
                    est.iter().zip(&truth.values).map(|(e, v)| ((e - v) / truth.behaviour).powi(2)).sum::<f64>() / n as f64
                }),
                "spearman": spearman(est, &truth.values),
                "ndcg_at_k": ndcg(&order, &truth.values, k),
                "regret_at_k": best_true - best_k,
                "type_i_error_rate": type_i,
                "type_ii_error_rate": type_ii,
                "top_k": {"best": best, "std": std, "sharpe_ratio": sharpe},
            });
            if let Some(iv) = intervals {
                let covered = iv.iter().zip(&truth.values).filter(|((l, u), t)| l <= t && *t <= u).count();
                v["coverage"] = json!(covered as f64 / n as f64);
                v["mean_width"] = json!(iv.iter().map(|(l, u)| u - l).sum::<f64>() / n as f64);
            }
            per.insert(name.clone(), v);
        }
        let out = json!({
            "candidates": n,
            "behavior_value": truth.behaviour,
            "k": k,
            "threshold": threshold,
            "estimators": per,
        });
        Ok(EvaluationResult { json: self.ctx.result_text(out) })
    }
}

/// The plugin.
pub struct OpeAssessmentPlugin;

impl Plugin for OpeAssessmentPlugin {
    fn manifest() -> Manifest {
        ManifestBuilder::new("ope-assessment", Family::Evaluator)
            .version(env!("CARGO_PKG_VERSION"))
            .summary("Which OPE estimator chooses policies well: SharpeRatio@k, MSE, rank correlation, nDCG@k, regret@k, safety errors")
            .guarantee(
                "Descriptive statistics of the given estimates against the given true values, computed exactly: \
                 SharpeRatio@k = (best@k - J(behaviour)) / std@k over the top-k policies by estimate (std with \
                 k - 1 degrees of freedom; none for k = 1 or equal top values).",
            )
            .reference("Kiyohara, Kishimoto, Kawakami, Kobayashi, Nakata & Saito, Towards assessing and benchmarking risk-return tradeoff of off-policy evaluation, ICLR (2024); SCOPE-RL")
            .config::<Config>()
            .table(
                TableBuilder::new("estimates", "one row per estimator and candidate policy")
                    .column(column::text("estimator", "the OPE estimator's name"))
                    .column(column::text("policy", "the candidate policy's name"))
                    .column(column::f64("estimate", "its estimate of the policy's value"))
                    .column(column::f64_opt("lower", "the estimate's interval: lower end"))
                    .column(column::f64_opt("upper", "the estimate's interval: upper end")),
            )
            .table(
                TableBuilder::new("truth", "one row per policy: its true value")
                    .column(column::text("policy", "the policy's name"))
                    .column(column::f64("value", "its true value (on-policy)"))
                    .column(column::boolean("behavior", "1 on the behaviour policy's row, 0 on the candidates'")),
            )
            .build()
    }

    type Config = Config;

    fn create(config: Config, ctx: Context) -> Result<Created, PluginError> {
        Ok(quiver_sdk::evaluator(OpeAssessment { config, ctx }))
    }
}

quiver_sdk::export_plugin!(OpeAssessmentPlugin);
