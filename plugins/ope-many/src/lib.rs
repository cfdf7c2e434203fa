//! `ope-many`: the values of many target policies π_1 … π_K from one contextual-bandit log, each by
//! IPW and (given a reward model) DR, plain and with the importance weights of all K policies as
//! control variates (Demange-Chryst, Bachoc & Morio 2022): E_μ[π_k/μ] = 1 is known, so the
//! weights' deviations from 1 explain part of every estimator's noise, and the regression
//! estimator removes it. Each estimate comes with its standard error, a Student-t interval and,
//! for the control-variate ones, the variance ratio plain/CV. The formulas are in
//! `quiver_rl::ope_many`.
//!
//! Table `bandit`, one row per logged round: `r`, `mu_prob` (the behaviour's probability of the
//! logged action), `target_<k>` (π_k's probability of the logged action, k = 0..K−1) and, for DR,
//! `vhat_<k>` (the model's value of π_k in the row's context, Σ_a π_k(a|x) q̂(x, a)) with `qhat`
//! (q̂ of the logged action). The columns are K (or 2K + 1) per row, not K × actions: a log of
//! 10^6 rounds and 100 policies is 1.6 GB, not 8.
//!
//! One pass over the rows (chunks merged exactly), so the method also runs by parts
//! (docs/scale.md): a partition's state is its co-moments. CUDA: each chunk's [C | Y] is built and
//! centred on the GPU and its product C_cᵀ[C_c | Y_c] is cuBLAS's (`co_moments_cuda`).

use quiver_rl::ope_many::{self, CoMoments, ManyEstimates, ManyInput, PolicyEstimates};
use quiver_sdk::abi::abi_stable::std_types::RVec;
use quiver_sdk::abi::{Manifest, PluginError};
use quiver_sdk::serde_json::{json, Value};
use quiver_sdk::{column, plugin_error, Context, CriticImpl, ManifestBuilder, Plugin, TableBuilder, Tables};
use quiver_sdk::{Created, CriticResult, Family, MergeableImpl, Offsets};

quiver_sdk::config! {
    /// The parameters, checked against their declared types and ranges.
    pub struct Config {
        /// Interval level.
        pub alpha: f64 = level(0.05, "intervals at level 1 - alpha"),
    }
}

impl quiver_sdk::PluginConfig for Config {}

/// The estimator.
pub struct OpeMany {
    alpha: f64,
    ctx: Context,
    result: Option<CriticResult>,
}

/// Read table `bandit` (every value checked; errors name the column and row).
fn read_input<'a>(t: &quiver_sdk::TableRef<'a>) -> Result<ManyInput<'a>, PluginError> {
    let targets = quiver_critic_kit::read::numbered_columns(t, "target_")?;
    if targets.is_empty() {
        return Err(PluginError::input(
            "table 'bandit' needs target_0..target_<K-1>: each target policy's probability of the logged action",
        ));
    }
    if targets.len() > ope_many::MAX_POLICIES {
        return Err(PluginError::new(
            quiver_sdk::abi::ErrorKind::Unsupported,
            format!(
                "table 'bandit' has {} target_ columns: at most {} policies a run (its sums grow as the square of their \
                 number); evaluate them in groups",
                targets.len(),
                ope_many::MAX_POLICIES
            ),
        ));
    }
    let vhat = quiver_critic_kit::read::numbered_columns(t, "vhat_")?;
    let qhat = t.f64_opt("qhat")?;
    let needs_both = |what: &str| PluginError::input(format!("table 'bandit' has {what}: DR needs both"));
    let model = match (vhat.is_empty(), qhat) {
        (true, None) => None,
        (false, Some(q)) if vhat.len() == targets.len() => Some((vhat, q)),
        (false, Some(_)) => {
            return Err(PluginError::input(format!(
                "table 'bandit' has {} target_ columns but {} vhat_ columns: DR needs one model value per target \
                 policy",
                targets.len(),
                vhat.len()
            )))
        }
        (false, None) => {
            return Err(needs_both("vhat_ columns but no 'qhat' (the model's prediction for the logged action)"))
        }
        (true, Some(_)) => return Err(needs_both("'qhat' but no vhat_<k> columns (each policy's model value)")),
    };
    let (r, mu) = (t.f64("r")?, t.f64("mu_prob")?);
    t.check_each("mu_prob", mu, |v| v > 0.0 && v <= 1.0, "is not a probability in (0, 1]")?;
    for (k, col) in targets.iter().enumerate() {
        t.check_each(&format!("target_{k}"), col, |v| (0.0..=1.0).contains(&v), "is not a probability in [0, 1]")?;
    }
    Ok(ManyInput { r, mu, targets, model })
}

/// The co-moments of table `t`'s rows; where a sum leaves the double range, the error names the
/// first row and policy whose weight or value is not finite.
fn moments_of(ctx: &Context, t: &quiver_sdk::TableRef<'_>, input: &ManyInput<'_>) -> Result<CoMoments, PluginError> {
    let m =
        ctx.dispatch(|| Ok(ope_many::co_moments(input)), || ope_many::co_moments_cuda(input)).map_err(plugin_error)?;
    let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
    if finite(&m.cc) && finite(&m.cy) && finite(&m.yy) && finite(&m.mean_c) && finite(&m.mean_y) {
        return Ok(m);
    }
    for i in 0..input.n() {
        for (k, target) in input.targets.iter().enumerate() {
            let w = target[i] / input.mu[i];
            let mut values = vec![w, w * input.r[i]];
            if let Some((v, q)) = &input.model {
                values.push(v[k][i] + w * (input.r[i] - q[i]));
            }
            if values.iter().any(|x| !x.is_finite() || x.abs() > 1e150) {
                return Err(t.row_error(
                    "mu_prob",
                    i,
                    format!(
                        "the weight target_{k}/mu_prob = {} (or its value with the reward) overflows the sums: check \
                         mu_prob, or rescale the rewards",
                        quiver_sdk::compact(w)
                    ),
                ));
            }
        }
    }
    Err(PluginError::input(
        "the sums of products overflow double precision: the importance weights target/mu_prob or the rewards are too \
         large (rescale the rewards)",
    ))
}

fn columns_json(e: &PolicyEstimates) -> Value {
    let list = |v: &[f64]| Value::Array(v.iter().map(|&x| quiver_sdk::json_f64(x)).collect());
    let mut out = json!({
        "estimate": list(&e.estimate),
        "se": list(&e.se),
        "lower": list(&e.lower),
        "upper": list(&e.upper),
    });
    if let Some(v) = &e.variance_ratio {
        out["variance_ratio"] = list(v);
    }
    out
}

impl OpeMany {
    /// The result from the co-moments of the whole log: the critic's values are the
    /// control-variate estimates (DR's when a model was given, else IPW's), one per policy.
    fn result(&self, m: &CoMoments) -> Result<CriticResult, PluginError> {
        let e: ManyEstimates = ope_many::estimates(m, self.alpha).map_err(plugin_error)?;
        let all = [Some(&e.ipw), Some(&e.ipw_cv), e.dr.as_ref(), e.dr_cv.as_ref()];
        if all.iter().flatten().any(|p| p.estimate.iter().chain(&p.se).any(|x| !x.is_finite())) {
            return Err(PluginError::input(
                "the estimates overflow double precision: an importance weight target/mu_prob or a reward is past \
                 the double range",
            ));
        }
        let best = e.dr_cv.as_ref().unwrap_or(&e.ipw_cv);
        let mut out = json!({
            "mode": "many-policies",
            "rows": e.n,
            "policies": e.policies,
            "controls": {
                "what": "the K importance weights target_k/mu_prob, whose mean under the log is 1",
                "rank": e.rank,
            },
            "interval": {"kind": "t", "valid": "asymptotic", "alpha": self.alpha, "dof_cv": e.dof},
            "ipw": columns_json(&e.ipw),
            "ipw_cv": columns_json(&e.ipw_cv),
        });
        if let (Some(dr), Some(dr_cv)) = (&e.dr, &e.dr_cv) {
            out["dr"] = columns_json(dr);
            out["dr_cv"] = columns_json(dr_cv);
        }
        out["values_are"] = json!(if e.dr_cv.is_some() { "dr_cv" } else { "ipw_cv" });
        Ok(CriticResult {
            device: self.ctx.device(),
            values: RVec::from(best.estimate.clone()),
            json: self.ctx.result_text(out),
        })
    }
}

impl CriticImpl for OpeMany {
    fn fit(&mut self, tables: &Tables<'_>) -> Result<(), PluginError> {
        let t = tables.get("bandit")?;
        t.non_empty()?;
        let input = read_input(&t)?;
        let m = moments_of(&self.ctx, &t, &input)?;
        self.result = Some(self.result(&m)?);
        Ok(())
    }

    fn values(&self, _tables: &Tables<'_>) -> Result<CriticResult, PluginError> {
        self.result.clone().ok_or_else(|| quiver_sdk::state_error("values() before fit()"))
    }
}

/// `ope-many` by parts: a partition's co-moments, merged exactly (Chan's update).
pub struct OpeManyByParts(OpeMany);

impl MergeableImpl for OpeManyByParts {
    type State = CoMoments;
    type Output = CriticResult;
    fn partial(&self, tables: &Tables<'_>, _offsets: &Offsets) -> Result<CoMoments, PluginError> {
        let t = tables.get("bandit")?;
        moments_of(&self.0.ctx, &t, &read_input(&t)?)
    }
    fn merge(&self, a: CoMoments, b: CoMoments) -> Result<CoMoments, PluginError> {
        a.merge(b).map_err(plugin_error)
    }
    fn finish(&self, state: CoMoments) -> Result<CriticResult, PluginError> {
        self.0.result(&state)
    }
}

/// The plugin.
pub struct OpeManyPlugin;

impl Plugin for OpeManyPlugin {
    fn manifest() -> Manifest {
        ManifestBuilder::new("ope-many", Family::Critic)
            .version(env!("CARGO_PKG_VERSION"))
            .summary("The values of many target policies from one bandit log: IPW and DR, plain and with the policies' importance weights as control variates, with t intervals")
            .guarantee(
                "IPW and DR are unbiased for every target policy's value when mu_prob > 0 wherever the target's \
                 probability is; the control-variate estimators are consistent, with O(1/n) bias, and their \
                 asymptotic variance is at most the plain estimator's (least squares on controls of known mean). \
                 Intervals are Student-t, asymptotic.",
            )
            .reference(
                "Demange-Chryst, Bachoc & Morio, Efficient estimation of multiple expectations with the same sample \
                 by adaptive importance sampling and control variates (2022); Owen, Monte Carlo theory, methods and \
                 examples, section 8.9 (regression estimators); Dudik, Langford & Li, Doubly robust policy \
                 evaluation and learning, ICML (2011); Chan, Golub & LeVeque (1979) (merging co-moments)",
            )
            .cuda()
            .config::<Config>()
            .table(
                TableBuilder::new("bandit", "contextual-bandit logs: one row per round")
                    .column(column::f64("r", "reward"))
                    .column(column::f64("mu_prob", "behaviour probability of the logged action"))
                    .column(column::f64_prefix("target_", true, "target_<k>: policy k's probability of the logged action"))
                    .column(column::f64_prefix(
                        "vhat_",
                        false,
                        "vhat_<k>: the reward model's value of policy k in the row's context (for DR)",
                    ))
                    .column(column::f64_opt("qhat", "the reward model's prediction for the logged action (for DR)")),
            )
            .mergeable(&["bandit"])
            .cut_anywhere(&["bandit"])
            .build()
    }

    type Config = Config;

    fn create(config: Config, ctx: Context) -> Result<Created, PluginError> {
        let make = || OpeMany { alpha: config.alpha, ctx: ctx.clone(), result: None };
        Ok(quiver_sdk::critic(make()).mergeable(OpeManyByParts(make()), &ctx))
    }
}

quiver_sdk::export_plugin!(OpeManyPlugin);
