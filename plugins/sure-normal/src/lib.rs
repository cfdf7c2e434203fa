//! `sure-normal`: compound estimation of many normal means x_i ~ N(θ_i, A_i) with known,
//! possibly unequal variances, tuned by Stein's unbiased risk estimate (SURE).
//!
//! * `james-stein`: positive-part James–Stein for equal variances A: toward `location`,
//!   θ̂ = μ + (1 − (p−2)A/Σ(x−μ)²)₊(x − μ); toward the grand mean, x̄ + (1 − (p−3)A/Σ(x−x̄)²)₊(x − x̄).
//! * XKB parametric (Xie, Kou & Brown, JASA 2012): θ̂_i = λ/(λ+A_i)·x_i + A_i/(λ+A_i)·μ, λ̂ the
//!   global minimiser of SURE over λ ∈ [0, ∞]. With b_i = A_i/(A_i+λ):
//!   `xkb-location` (μ given): SURE = (1/p)Σ [b_i²(x_i − μ)² + A_i − 2A_i b_i];
//!   `xkb-grand-mean` (μ = x̄): SURE = (1/p)Σ [b_i²(x_i − x̄)² + A_i − 2(1 − 1/p)A_i b_i];
//!   `xkb-estimated` (μ̂(λ) = Σ b_i² x_i / Σ b_i²): SURE = (1/p)Σ [b_i²(x_i − μ̂)² + A_i
//!   − 2A_i b_i(1 − b_i²/Σ_j b_j²)].
//! * `xkb-monotone` (XKB's semiparametric SURE-M): any factors b_i ∈ [0, 1] nondecreasing in A_i,
//!   minimising SURE: a weighted isotonic regression (PAVA) of e_i/d_i with weights d_i, clipped.
//!
//! The first two XKB forms are sums of convex quadratics in the b_i, minimised by the certified
//! branch-and-bound of `quiver_shrinkage::risk` (CPU or CUDA sweeps); `xkb-estimated` couples the
//! units through μ̂(λ): its profile SURE(λ, μ̂(λ)) is minimised by the same branch and bound with
//! the cell bounds of `quiver_shrinkage::profile` (from each point's sums; CPU or CUDA sweeps),
//! Newton to the end, so λ̂ is the root of XKB's estimating equation where the minimum is inside.
//!
//! `ci=robust-ebci`: Armstrong, Kolesár & Plagborg-Møller's robust empirical-Bayes confidence
//! intervals toward the method's location m (`quiver_shrinkage::ebci::robust_intervals`, σ_i² = A_i
//! known): m + w_i(x_i − m) ± cva_α(A_i/μ₂, κ)·w_i·√A_i, w_i = μ₂/(μ₂ + A_i), with μ₂ and κ the
//! second and fourth moments of the means around m estimated from the data. Centred at AKP's own
//! shrinkage, not at the SURE estimate.

pub mod by_parts;

use quiver_sdk::abi::{
    abi_stable::std_types::{ROption, RVec},
    Manifest, PluginError,
};
use quiver_sdk::plugin_error;
use quiver_sdk::serde_json::{json, Value};
use quiver_sdk::{choices, column, json_f64, Context, ManifestBuilder, Plugin, ShrinkageImpl, TableBuilder, Tables};
use quiver_sdk::{Created, Family, ShrinkageResult};
use quiver_shrinkage::{QuadraticRisk, Weight};
use quiver_shrinkage_kit::EbciSettings;

choices! {
    /// The estimator.
    pub enum Method {
        /// XKB toward the grand mean.
        XkbGrandMean = "xkb-grand-mean",
        /// XKB toward a given location.
        XkbLocation = "xkb-location",
        /// XKB with the location estimated jointly.
        XkbEstimated = "xkb-estimated",
        /// XKB's semiparametric monotone shrinkage.
        XkbMonotone = "xkb-monotone",
        /// Positive-part James–Stein (equal variances).
        JamesStein = "james-stein",
    }
}

choices! {
    /// Where the shrinkage goes (James–Stein and the monotone method).
    pub enum Target {
        /// The parameter `location`.
        Location = "location",
        /// The grand mean x̄.
        GrandMean = "grand-mean",
    }
}

quiver_sdk::config! {
    /// The parameters, validated.
    pub struct Config {
        /// Method.
        pub method: Method = choice(Method::XkbGrandMean, "estimator"),
        /// Target for james-stein / xkb-monotone.
        pub target: Target = choice(Target::Location, "james-stein / xkb-monotone: shrink toward"),
        /// The location μ.
        pub location: f64 = float(Some(0.0), "the location mu for xkb-location and target=location"),
        /// A fixed λ instead of the SURE-tuned one.
        pub lambda: Option<f64> =
            float(None, "evaluate at this lambda instead of tuning it (0 = full shrinkage, inf = none)")
                .at_least(0.0)
                .up_to_inf(),
        /// Number of points of the SURE curve to report (0: none).
        pub curve: usize = int(Some(0), "report SURE at this many + 1 lambdas, for plotting").at_least(0.0).at_most(10_000.0),
        /// Robust EBCIs around the method's location.
        pub ebci: EbciSettings = flatten,
    }
}

impl quiver_sdk::PluginConfig for Config {
    /// A setting the method would ignore is refused, not dropped silently.
    fn validate(&self) -> Result<(), PluginError> {
        if matches!(self.method, Method::JamesStein | Method::XkbMonotone) {
            let name = quiver_sdk::Choice::name(self.method);
            if self.lambda.is_some() {
                return Err(PluginError::param(format!(
                    "parameter 'lambda': {name} has no λ to fix (james-stein takes its factor from the data, \
                     xkb-monotone fits one factor per unit); use an xkb-location, xkb-grand-mean or xkb-estimated method"
                )));
            }
            if self.curve > 0 {
                return Err(PluginError::param(format!(
                    "parameter 'curve': {name} has no SURE curve over λ (the xkb-location, xkb-grand-mean and \
                     xkb-estimated methods have one)"
                )));
            }
        }
        Ok(())
    }
}

/// The per-unit quadratic risk of the XKB forms toward a fixed μ (grand mean: e = (1 − 1/p)·A,
/// p = `units`, the number of units of the whole data — `x.len()` unless `x` is one partition).
pub fn xkb_risk(x: &[f64], a: &[f64], mu: f64, grand_mean: bool, units: usize) -> QuadraticRisk {
    use rayon::prelude::*;
    let factor = if grand_mean { 1.0 - 1.0 / units as f64 } else { 1.0 };
    // three arrays of p values: built on every core (at p = 10^7 this was a fifth of the run)
    QuadraticRisk {
        d: x.par_iter().map(|xi| (xi - mu).powi(2)).collect(),
        e: a.par_iter().map(|ai| factor * ai).collect(),
        h: a.par_iter().copied().collect(),
        c: a.iter().sum(),
        weight: Weight::Decreasing,
    }
}

/// The summary of an `xkb-location` / `xkb-grand-mean` run, in the order the one-call and the
/// by-parts runs both write it: the search's certificate (when λ was searched), the curve, the
/// location.
pub(crate) fn xkb_summary(
    out: &mut Value,
    minimum: Option<&quiver_shrinkage::Minimum>,
    curve: Option<&(Vec<f64>, Vec<f64>)>,
    mu: f64,
) {
    if let Some(m) = minimum {
        out["sure_lower_bound"] = json!(m.lower_bound);
        out["certified_gap"] = json!(m.risk - m.lower_bound);
        out["sweeps"] = json!(m.sweeps);
        out["lambda_bracket"] = json!([json_f64(m.bracket.0), json_f64(m.bracket.1)]);
    }
    if let Some((ls, vs)) = curve {
        out["curve"] = json!(ls.iter().zip(vs).map(|(l, v)| json!([json_f64(*l), v])).collect::<Vec<_>>());
    }
    out["location"] = json!(mu);
}

/// The XKB estimates at λ toward μ: x − b(x − μ), b = A/(A + λ), on every core.
pub fn xkb_estimates(x: &[f64], a: &[f64], lambda: f64, mu: f64) -> Vec<f64> {
    use rayon::prelude::*;
    x.par_iter()
        .zip(a)
        .map(|(&xi, &ai)| xi - quiver_shrinkage::risk::weight(ai, lambda, Weight::Decreasing) * (xi - mu))
        .collect()
}

/// Most units whose `xkb-monotone` shrinkage factors are listed in the JSON summary.
pub const MAX_FACTORS_IN_JSON: usize = 100_000;

/// The estimator object.
pub struct SureNormal {
    config: Config,
    ctx: Context,
}

impl SureNormal {
    fn run(&self, x: &[f64], a: &[f64]) -> Result<(Vec<f64>, Value, f64, f64), PluginError> {
        let cfg = &self.config;
        let p = x.len();
        let pf = p as f64;
        let xbar = x.iter().sum::<f64>() / pf;
        let mut out = json!({});
        let shrink = |b: &[f64], mu: f64| -> Vec<f64> {
            use rayon::prelude::*;
            x.par_iter().zip(b).map(|(xi, bi)| xi - bi * (xi - mu)).collect()
        };
        let (estimates, lambda_hat, sure) = match cfg.method {
            Method::JamesStein => {
                if let Some(i) = a.iter().position(|&ai| ai != a[0]) {
                    return Err(PluginError::input(format!(
                        "table 'data', column 'a', row {}: james-stein needs equal variances (row 1 has {}, this row {}); use an xkb-* method",
                        i + 1,
                        quiver_sdk::compact(a[0]),
                        quiver_sdk::compact(a[i])
                    )));
                }
                let (mu, dof) = match cfg.target {
                    Target::Location => (cfg.location, pf - 2.0),
                    Target::GrandMean => (xbar, pf - 3.0),
                };
                let need = if cfg.target == Target::Location { 3 } else { 4 };
                if p < need {
                    return Err(PluginError::input(format!(
                        "table 'data': james-stein toward this target needs at least {need} rows, got {p}"
                    )));
                }
                let ss: f64 = x.iter().map(|xi| (xi - mu).powi(2)).sum();
                let b = if ss > 0.0 { (dof * a[0] / ss).min(1.0) } else { 1.0 };
                let lambda = if b > 0.0 { a[0] * (1.0 - b) / b } else { f64::INFINITY };
                let risk = xkb_risk(x, a, mu, cfg.target == Target::GrandMean, x.len());
                out["location"] = json!(mu);
                out["shrinkage_factor"] = json!(b);
                (shrink(&vec![b; p], mu), lambda, risk.at(lambda))
            }
            Method::XkbLocation | Method::XkbGrandMean => {
                let grand = cfg.method == Method::XkbGrandMean;
                let mu = if grand { xbar } else { cfg.location };
                let risk = xkb_risk(x, a, mu, grand, x.len());
                let (lambda, sure, minimum) = match cfg.lambda {
                    Some(l) => (l, risk.at(l), None),
                    None => {
                        let m = risk.minimize(quiver_shrinkage_kit::sweep(self.ctx.device())).map_err(plugin_error)?;
                        (m.lambda, m.risk, Some(m))
                    }
                };
                let curve = if cfg.curve > 0 {
                    let ls = quiver_shrinkage_kit::by_parts::curve_lambdas(risk.scale(), cfg.curve);
                    let vs = risk.curve(&ls, quiver_shrinkage_kit::sweep(self.ctx.device())).map_err(plugin_error)?;
                    Some((ls, vs))
                } else {
                    None
                };
                xkb_summary(&mut out, minimum.as_ref(), curve.as_ref(), mu);
                drop(risk);
                (xkb_estimates(x, a, lambda, mu), lambda, sure)
            }
            Method::XkbEstimated => {
                let profile = quiver_shrinkage::ProfiledRisk::new(x, a);
                let lambda = match cfg.lambda {
                    Some(l) => l,
                    None => {
                        // the certified search over the profile SURE(λ, μ̂(λ)), Newton to the end:
                        // λ̂ is the root of XKB's estimating equation where the minimum is inside
                        let m =
                            profile.minimize(quiver_shrinkage_kit::sweep(self.ctx.device())).map_err(plugin_error)?;
                        out["sure_lower_bound"] = json!(m.lower_bound);
                        out["certified_gap"] = json!(m.risk - m.lower_bound);
                        out["sweeps"] = json!(m.sweeps);
                        out["lambda_bracket"] = json!([json_f64(m.bracket.0), json_f64(m.bracket.1)]);
                        m.lambda
                    }
                };
                // XKB's criterion at λ̂ is reported as `sure_xkb`; the risk estimate of what is
                // returned is the unbiased one (μ̂'s dependence on x included: Stein's identity
                // adds each unit's leverage)
                let (published, unbiased, mu) = profile.at_lambda(lambda);
                out["sure_xkb"] = json!(published);
                if cfg.curve > 0 {
                    // XKB's criterion on the grid t = i/curve, λ = s·t/(1 − t) (s the mean of A, as
                    // for the other forms), MAX_SWEEP points a pass as for them
                    let ts: Vec<f64> = (0..=cfg.curve).map(|i| i as f64 / cfg.curve as f64).collect();
                    let mut pts = Vec::with_capacity(ts.len());
                    let mut sweeper = quiver_shrinkage::profile::ProfileSweeper::new(
                        &profile,
                        quiver_shrinkage_kit::sweep(self.ctx.device()),
                    )
                    .map_err(plugin_error)?;
                    for chunk in ts.chunks(quiver_shrinkage::risk::MAX_SWEEP) {
                        let sweep = sweeper.sweep(chunk).map_err(plugin_error)?;
                        pts.extend(chunk.iter().zip(&sweep.value).map(|(&t, v)| {
                            json!([json_f64(quiver_shrinkage::risk::lambda_of_t(profile.scale(), t)), v])
                        }));
                    }
                    out["curve"] = json!(pts);
                }
                out["location"] = json!(mu);
                (xkb_estimates(x, a, lambda, mu), lambda, unbiased)
            }
            Method::XkbMonotone => {
                let mu = if cfg.target == Target::GrandMean { xbar } else { cfg.location };
                // the risk's coefficients computed where they are needed (no per-unit arrays of
                // them: at p = 10^7 those were 240 MB)
                let factor = if cfg.target == Target::GrandMean { 1.0 - 1.0 / pf } else { 1.0 };
                let d = |i: usize| (x[i] - mu).powi(2);
                let e = |i: usize| factor * a[i];
                let b = monotone_factors(x.len(), |i| a[i], d, e);
                let sure = ((0..x.len()).map(|i| b[i] * b[i] * d(i) - 2.0 * b[i] * e(i)).sum::<f64>()
                    + a.iter().sum::<f64>())
                    / pf;
                out["location"] = json!(mu);
                // per-unit factors go into the JSON summary only for moderate p (as text they would
                // cost ~25 bytes a unit twice over); b_i = (x_i − θ̂_i)/(x_i − μ) from the estimates
                if b.len() <= MAX_FACTORS_IN_JSON {
                    out["shrinkage_factors"] = json!(b);
                } else {
                    out["shrinkage_factors"] = json!(format!(
                        "{} factors: b_i = (x_i - estimate_i) / (x_i - location); listed up to {MAX_FACTORS_IN_JSON} units",
                        b.len()
                    ));
                }
                (shrink(&b, mu), f64::NAN, sure)
            }
        };
        // xkb-monotone has no single λ: no number rather than NaN
        out["lambda_hat"] = if lambda_hat.is_nan() { Value::Null } else { json_f64(lambda_hat) };
        out["sure"] = json!(sure);
        Ok((estimates, out, lambda_hat, sure))
    }
}

/// XKB's SURE-M factors: minimise Σ (b_i² d_i − 2 b_i e_i) over b nondecreasing in h_i (= A_i),
/// i.e. weighted isotonic regression of e_i/d_i with weights d_i, then clip to [0, 1]. Units with
/// d_i = 0 get a vanishing weight (their term is minimised by the largest b). The coefficients
/// are read through `h`, `d`, `e` (unit index → value), so no per-unit arrays of them are held.
pub fn monotone_factors(
    p: usize,
    h: impl Fn(usize) -> f64 + Sync,
    d: impl Fn(usize) -> f64,
    e: impl Fn(usize) -> f64,
) -> Vec<f64> {
    // sorted by A on every core, the keys next to their indices (an index sort that looks each
    // key up elsewhere spends its time in cache misses); ties in index order, so the order is
    // the same on any number of threads
    let order: Vec<u32> = {
        use rayon::prelude::*;
        let mut keyed: Vec<(f64, u32)> = (0..p as u32).into_par_iter().map(|i| (h(i as usize), i)).collect();
        keyed.par_sort_unstable_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        keyed.into_par_iter().map(|(_, i)| i).collect()
    };
    let mean_d = (0..p).map(&d).sum::<f64>() / p as f64;
    let floor = (mean_d * 1e-12).max(f64::MIN_POSITIVE);
    let w: Vec<f64> = order.iter().map(|&i| d(i as usize).max(floor)).collect();
    let mut fit: Vec<f64> = order.iter().zip(&w).map(|(&i, &wi)| e(i as usize) / wi).collect();
    quiver_numerics::isotonic::pava_in_place(&mut fit, &w);
    drop(w);
    let mut b = vec![0.0; p];
    for (k, &i) in order.iter().enumerate() {
        b[i as usize] = fit[k].clamp(0.0, 1.0);
    }
    b
}

impl ShrinkageImpl for SureNormal {
    fn estimate(&self, tables: &Tables<'_>) -> Result<ShrinkageResult, PluginError> {
        let data = tables.get("data")?;
        data.non_empty()?;
        // subnormal values (non-zero below 2.2e-308) are refused with their row: the risk's
        // squares and the certificate's sums lose them (a null certificate, or a message about
        // overflow, on data of 1e-320)
        let x = data.f64_normal("x")?;
        let a = data.f64_normal("a")?;
        if data.nrows() < 2 {
            return Err(PluginError::input("table 'data' has a single unit: shrinkage needs at least 2"));
        }
        data.check_each("a", a, |v| v > 0.0, "must be > 0 (a variance)")?;
        let (estimates, summary, lambda_hat, sure) = self.run(x, a)?;
        // the XKB forms with a λ to search sweep on the GPU: the others say where they ran
        let ctx = match self.config.method {
            Method::XkbLocation | Method::XkbGrandMean | Method::XkbEstimated => self.ctx.clone(),
            other => self.ctx.on_cpu(&format!("{} has no CUDA path", quiver_sdk::Choice::name(other))),
        };
        let mut json = result_json(&ctx, x.len(), &summary);
        let intervals = if self.config.ebci.intervals() {
            // AKP's intervals toward the method's location, the variances a_i known
            let m = json["location"].as_f64().unwrap_or(f64::NAN);
            let cfg = &self.config;
            let ebci = quiver_shrinkage::ebci::robust_intervals(x, |_| m, a, cfg.ebci.alpha, cfg.ebci.uses_kurtosis())
                .map_err(|e| PluginError::input(format!("robust-ebci: {e}")))?;
            json["ebci"] = json!({
                "alpha": cfg.ebci.alpha,
                "location": m,
                "mu2": ebci.mu2,
                "kappa": ebci.kappa.map_or(json!("inf"), |k| json!(k)),
                "centre": "location + w (x - location), w = mu2 / (mu2 + a)",
                "guarantee": "average coverage over units >= 1 - alpha for any distribution of the means with the \
                              estimated second (and fourth) moments around the location",
            });
            let ends = ebci.ends(|_, v| v);
            quiver_shrinkage::ebci_settings::note_centring(&mut json["ebci"], &estimates, &ends);
            ROption::RSome(ends.into())
        } else {
            ROption::RNone
        };
        Ok(shrinkage_result(&ctx, &json, estimates, lambda_hat, sure, intervals))
    }
}

/// The result's JSON: the run's context, the number of units, then the method's summary.
pub(crate) fn result_json(ctx: &Context, p: usize, summary: &Value) -> Value {
    let mut json = ctx.result_json(json!({"p": p}));
    for (k, v) in summary.as_object().expect("object") {
        json[k] = v.clone();
    }
    json
}

/// The result, from its JSON and the per-unit arrays (λ̂ NaN: none).
pub(crate) fn shrinkage_result(
    ctx: &Context,
    json: &Value,
    estimates: Vec<f64>,
    lambda_hat: f64,
    sure: f64,
    intervals: ROption<RVec<f64>>,
) -> ShrinkageResult {
    ShrinkageResult {
        device: ctx.device(),
        lambda_hat: if lambda_hat.is_nan() { ROption::RNone } else { ROption::RSome(lambda_hat) },
        risk_estimate: ROption::RSome(sure),
        estimates: RVec::from(estimates),
        intervals,
        json: json.to_string().into(),
    }
}

/// The plugin.
pub struct SureNormalPlugin;

impl Plugin for SureNormalPlugin {
    fn manifest() -> Manifest {
        ManifestBuilder::new("sure-normal", Family::Shrinkage)
            .version(env!("CARGO_PKG_VERSION"))
            .summary("Shrink many normal means x_i ~ N(theta_i, a_i): James-Stein and XKB, tuned by SURE")
            .guarantee(
                "SURE is an unbiased estimate of the mean squared error (1/p) sum E(theta_hat_i - theta_i)^2 at every \
                 fixed lambda; lambda_hat is its certified global minimiser (xkb-location, xkb-grand-mean, xkb-estimated: the criterion XKB minimise) and XKB \
                 show the tuned estimator's risk is asymptotically optimal in its class. James-Stein dominates x in \
                 risk for p >= 3 (p >= 4 toward the grand mean). robust-ebci: average coverage over units >= 1 - alpha \
                 for any distribution of the means with the estimated second and fourth moments around the location \
                 (the variances a_i known; a location estimated from the data, as the grand mean, holds it \
                 asymptotically).",
            )
            .reference("James & Stein (1961); Xie, Kou & Brown, SURE estimates for a heteroscedastic hierarchical model, JASA (2012); Armstrong, Kolesar & Plagborg-Moller, Robust empirical Bayes confidence intervals, Econometrica (2022)")
            .cuda()
            .config::<Config>()
            .table(
                TableBuilder::new("data", "one row per unit")
                    .column(column::f64("x", "observation"))
                    .column(column::f64("a", "its known variance A_i (> 0)")),
            )
            .mergeable(&["data"])
            .cut_anywhere(&["data"])
            .rounds()
            .build()
    }

    type Config = Config;

    fn create(config: Config, ctx: Context) -> Result<Created, PluginError> {
        let by_parts = quiver_shrinkage_kit::by_parts::ByParts(SureNormal { config: config.clone(), ctx: ctx.clone() });
        Ok(quiver_sdk::shrinkage(SureNormal { config, ctx: ctx.clone() }).in_rounds(by_parts, &ctx))
    }
}

quiver_sdk::export_plugin!(SureNormalPlugin);
