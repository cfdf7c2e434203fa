//! `sure-binomial`: compound estimation of many binomial proportions (click-through rates, pass
//! rates, batting averages), after Chen & Lei (2025), with robust empirical-Bayes confidence
//! intervals (Armstrong, Kolesár & Plagborg-Møller, Econometrica 2022).
//!
//! One sample: Y_i ~ Bin(n_i, p_i), p̂_i = Y_i/n_i, shrunk toward a target m_i (the `m` column —
//! any model's prediction — or the pooled mean ΣY/Σn): δ_i = (Y_i + λm_i)/(n_i + λ) =
//! (1 − b_i)p̂_i + b_i m_i with b_i = λ/(n_i + λ). With V̂_i = p̂_i(1 − p̂_i)/(n_i − 1), an unbiased
//! estimate of Var(p̂_i) (n_i ≥ 2),
//!
//!   URE(λ) = (1/N) Σ_i [ b_i²(p̂_i − m_i)² + (1 − 2b_i)V̂_i ]
//!
//! is unbiased for the risk (1/N)Σ E(δ_i − p_i)² whenever m_i does not depend on unit i's own
//! data (a given or cross-fitted prediction); with the pooled mean it is nearly so (the pooled
//! mean uses unit i with weight n_i/Σn). λ̂ = the certified global minimiser over [0, ∞].
//!
//! Two samples (p1 − p2 per unit): θ̂_i = p̂1_i − p̂2_i, V̂_i = Σ_g p̂_g(1 − p̂_g)/(n_g − 1),
//! b_i = λ/(λ + h_i) with h_i = (1/n1_i + 1/n2_i)^{-1}.
//!
//! Robust EBCI (`ci = robust-ebci`): with σ_i² the sampling variance of the raw estimate (V̂_i,
//! or m_i(1 − m_i)/n_i when V̂_i = 0), μ₂ = mean[(θ̂ − m)² − σ²] (floored at
//! 2·mean(σ⁴)/(N·mean(σ²)), a standard error of that estimate), κ = mean[(θ̂ − m)⁴ −
//! 6σ²(θ̂ − m)² + 3σ⁴]/μ₂² (at least 1; or κ = ∞ with `kurtosis = none`), and
//! w_i = μ₂/(μ₂ + σ_i²): the interval is m_i + w_i(θ̂_i − m_i) ± cva_α(σ_i²/μ₂, κ)·w_i·σ_i.
//! Average coverage over units ≥ 1 − α when the σ_i are independent of the effects. For one
//! sample the intervals are computed on the arcsine scale by default (`ebci_scale`), where
//! σ_i² = 1/(4n_i + 2) does not move with p_i ([`arcsine_units`]), and mapped back by sin²; on
//! the proportion scale units near p = 1/2 have both the largest σ_i and, in mixtures, the
//! largest deviations, and the average coverage fell short (0.8955 at α = 0.1).

pub mod by_parts;

use quiver_sdk::abi::{
    abi_stable::std_types::{ROption, RVec},
    ErrorKind, Manifest, PluginError,
};
use quiver_sdk::plugin_error;
use quiver_sdk::serde_json::{json, Value};
use quiver_sdk::{
    choices, column, compact, json_f64, Context, ManifestBuilder, Plugin, ShrinkageImpl, TableBuilder, Tables,
};
use quiver_sdk::{Created, Family, ShrinkageResult};
use quiver_shrinkage::{QuadraticRisk, Weight};
use quiver_shrinkage_kit::by_parts::Plan;
use quiver_shrinkage_kit::EbciSettings;

choices! {
    /// One sample (proportions) or two (differences of proportions).
    pub enum Sample {
        /// p_i from y, n.
        One = "one",
        /// p1_i − p2_i from y1, n1, y2, n2.
        Two = "two",
    }
}

choices! {
    /// The scale the robust EBCI is computed on.
    pub enum EbciScale {
        /// arcsine for one sample, proportion for two.
        Auto = "auto",
        /// asin √p (Anscombe), where each unit's sampling variance 1/(4n + 2) does not depend on
        /// its proportion; the ends are mapped back by sin² (one sample).
        Arcsine = "arcsine",
        /// The proportions (or their differences) themselves, with the estimated variances.
        Proportion = "proportion",
    }
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Two-sample (difference of proportions) instead of one-sample.
    pub two_sample: bool,
    /// Compute robust EBCIs.
    pub intervals: bool,
    /// Interval level α.
    pub alpha: f64,
    /// κ estimated (true) or ∞ (false).
    pub kurtosis: bool,
    /// Robust EBCI on the arcsine scale (one sample) instead of the proportion scale.
    pub arcsine: bool,
    /// A fixed λ instead of the tuned one.
    pub lambda: Option<f64>,
    /// Points of the URE curve to report.
    pub curve: usize,
}

quiver_sdk::config! {
    /// The parameters as given (checked against their declared types and ranges, and against each
    /// other); [`Config`] is what the method computes with.
    pub struct Settings {
        /// One or two samples.
        pub sample: Sample = choice(Sample::One, "one: proportions y/n; two: differences y1/n1 - y2/n2"),
        /// Robust EBCIs.
        pub ebci: EbciSettings = flatten,
        /// The scale of the robust EBCI.
        pub ebci_scale: EbciScale =
            choice(EbciScale::Auto, "robust-ebci: arcsine (one sample; variances free of p) | proportion | auto"),
        /// A fixed λ instead of the tuned one.
        pub lambda: Option<f64> =
            float(None, "evaluate at this lambda instead of tuning it (0 = raw proportions, inf = target)")
                .at_least(0.0)
                .up_to_inf(),
        /// Points of the URE curve to report.
        pub curve: usize = int(Some(0), "report URE at this many + 1 lambdas, for plotting").at_least(0.0).at_most(10_000.0),
    }
}

impl quiver_sdk::PluginConfig for Settings {
    fn validate(&self) -> Result<(), PluginError> {
        if (self.ebci_scale, self.sample) == (EbciScale::Arcsine, Sample::Two) {
            return Err(PluginError::param(
                "ebci_scale=arcsine is for one sample: a difference of arcsines is not a monotone function of \
                 p1 - p2, so its interval would not map back; use ebci_scale=proportion",
            ));
        }
        Ok(())
    }
}

impl Config {
    /// The method's configuration from its checked settings.
    pub fn new(s: &Settings) -> Config {
        Config {
            two_sample: s.sample == Sample::Two,
            intervals: s.ebci.intervals(),
            alpha: s.ebci.alpha,
            kurtosis: s.ebci.uses_kurtosis(),
            arcsine: !matches!((s.ebci_scale, s.sample), (EbciScale::Proportion, _) | (EbciScale::Auto, Sample::Two)),
            lambda: s.lambda,
            curve: s.curve,
        }
    }
}

/// The prepared data: raw estimates, targets, variance estimates, λ scales.
#[derive(Debug, Clone)]
pub struct Units {
    /// Raw estimates θ̂_i (p̂_i, or p̂1_i − p̂2_i).
    pub raw: Vec<f64>,
    /// Targets m_i from the `m` column; `None`: every target is [`Units::pooled`].
    pub target_column: Option<Vec<f64>>,
    /// The pooled mean ΣY/Σn (or its two-sample difference).
    pub pooled: f64,
    /// Unbiased variance estimates V̂_i.
    pub var: Vec<f64>,
    /// λ scale h_i (n_i, or (1/n1 + 1/n2)^{-1}).
    pub h: Vec<f64>,
    /// One sample (the model variance where V̂_i = 0 is m(1 − m)/n), or two (0.25/h).
    pub one_sample: bool,
}

fn counts<'a>(t: &quiver_sdk::TableRef<'a>, yname: &str, nname: &str) -> Result<(&'a [f64], &'a [f64]), PluginError> {
    let (y, n) = (t.f64(yname)?, t.f64(nname)?);
    for i in 0..y.len() {
        if n[i].fract() != 0.0 || y[i].fract() != 0.0 {
            return Err(t.row_error(
                yname,
                i,
                format_args!("'{yname}' = {} and '{nname}' = {} must be whole numbers", compact(y[i]), compact(n[i])),
            ));
        }
        // counts past 2^53 are not whole numbers a double can hold exactly (and their variances
        // underflow): a count that large is a data error
        if n[i] > 9_007_199_254_740_992.0 {
            return Err(t.row_error(
                nname,
                i,
                format_args!("n = {:e} is past 2^53, the largest count a double holds exactly", n[i]),
            ));
        }
        if n[i] < 2.0 {
            return Err(t.row_error(
                nname,
                i,
                format_args!(
                    "n = {} < 2; the unbiased variance estimate needs n >= 2 (drop or pool such units)",
                    compact(n[i])
                ),
            ));
        }
        if y[i] < 0.0 || y[i] > n[i] {
            return Err(t.row_error(
                yname,
                i,
                format_args!("y = {} must be in 0..=n (n = {})", compact(y[i]), compact(n[i])),
            ));
        }
    }
    Ok((y, n))
}

impl Units {
    /// Read and check the `data` table: at least two units.
    pub fn read(t: &quiver_sdk::TableRef<'_>, two_sample: bool) -> Result<Units, PluginError> {
        let u = Units::read_rows(t, two_sample)?;
        if u.raw.len() < 2 {
            return Err(PluginError::input("table 'data' has a single unit: shrinkage needs at least 2"));
        }
        Ok(u)
    }

    /// Read and check the rows of the `data` table (any number: a partition of a run by parts).
    pub fn read_rows(t: &quiver_sdk::TableRef<'_>, two_sample: bool) -> Result<Units, PluginError> {
        let vhat = |p: f64, n: f64| p * (1.0 - p) / (n - 1.0);
        let m_col = t.f64_opt("m")?;
        // a target is a proportion (one sample) or a difference of two (two samples): outside
        // that range it would pull the estimates outside it too
        if let Some(m) = m_col {
            let (lo, hi, what) = if two_sample {
                (-1.0, 1.0, "a difference of proportions, in [-1, 1]")
            } else {
                (0.0, 1.0, "a proportion, in [0, 1]")
            };
            t.check_each("m", m, |v| (lo..=hi).contains(&v), &format!("is not {what}"))?;
        }
        let (raw, var, h, pooled) = if two_sample {
            let (y1, n1) = counts(t, "y1", "n1")?;
            let (y2, n2) = counts(t, "y2", "n2")?;
            let p1: Vec<f64> = y1.iter().zip(n1).map(|(y, n)| y / n).collect();
            let p2: Vec<f64> = y2.iter().zip(n2).map(|(y, n)| y / n).collect();
            let pooled =
                y1.iter().sum::<f64>() / n1.iter().sum::<f64>() - y2.iter().sum::<f64>() / n2.iter().sum::<f64>();
            (
                p1.iter().zip(&p2).map(|(a, b)| a - b).collect::<Vec<_>>(),
                (0..p1.len()).map(|i| vhat(p1[i], n1[i]) + vhat(p2[i], n2[i])).collect::<Vec<_>>(),
                (0..p1.len()).map(|i| 1.0 / (1.0 / n1[i] + 1.0 / n2[i])).collect::<Vec<_>>(),
                pooled,
            )
        } else {
            let (y, n) = counts(t, "y", "n")?;
            let p: Vec<f64> = y.iter().zip(n).map(|(y, n)| y / n).collect();
            let pooled = y.iter().sum::<f64>() / n.iter().sum::<f64>();
            let var = p.iter().zip(n).map(|(&p, &n)| vhat(p, n)).collect();
            (p, var, n.to_vec(), pooled)
        };
        let target_column = m_col.map(<[f64]>::to_vec);
        Ok(Units { raw, target_column, pooled, var, h, one_sample: !two_sample })
    }

    /// Sampling variances of the raw estimates for the intervals: the unbiased V̂_i (`var`), or
    /// the target's binomial variance where V̂_i = 0 (a proportion of exactly 0 or 1).
    pub fn sampling_variance(&self, var: &[f64], h: &[f64]) -> Vec<f64> {
        (0..var.len())
            .map(|i| {
                if var[i] > 0.0 {
                    return var[i];
                }
                let t = self.target(i).clamp(0.0, 1.0);
                if self.one_sample {
                    (t * (1.0 - t) / h[i]).max(1e-12)
                } else {
                    (0.25 / h[i]).max(1e-12)
                }
            })
            .collect()
    }

    /// The target m_i.
    #[inline]
    pub fn target(&self, i: usize) -> f64 {
        self.target_column.as_ref().map_or(self.pooled, |m| m[i])
    }

    /// The estimates at λ, (1 − b_i)·raw_i + b_i·m_i with b_i = λ/(h_i + λ), written over the raw
    /// estimates (no second per-unit array); `h` the λ scales ([`Units::take_risk`] moves them out).
    pub fn shrink(&mut self, h: &[f64], lambda: f64) -> Vec<f64> {
        let mut estimates = std::mem::take(&mut self.raw);
        for (i, e) in estimates.iter_mut().enumerate() {
            let b = quiver_shrinkage::risk::weight(h[i], lambda, Weight::Increasing);
            *e = (1.0 - b) * *e + b * self.target(i);
        }
        estimates
    }

    /// The URE as a sum of quadratics in b_i: d = (θ̂ − m)², e = C = V̂, b = λ/(h + λ). V̂ and h
    /// move into the risk, without copies: read them from it afterwards (`risk.e`, `risk.h`).
    pub fn take_risk(&mut self) -> QuadraticRisk {
        QuadraticRisk {
            d: self.raw.iter().enumerate().map(|(i, r)| (r - self.target(i)).powi(2)).collect(),
            c: self.var.iter().sum(),
            e: std::mem::take(&mut self.var),
            h: std::mem::take(&mut self.h),
            weight: Weight::Increasing,
        }
    }
}

pub use quiver_shrinkage::ebci::Ebci;

/// Robust EBCIs for every unit ([`quiver_shrinkage::ebci::robust_intervals`] toward the units'
/// targets). `s2` holds each raw estimate's sampling variance ([`Units::sampling_variance`]).
pub fn robust_ebci(u: &Units, s2: &[f64], alpha: f64, kurtosis: bool) -> Result<Ebci, PluginError> {
    quiver_shrinkage::ebci::robust_intervals(&u.raw, |i| u.target(i), s2, alpha, kurtosis)
        .map_err(|e| PluginError::new(ErrorKind::Internal, e.to_string()))
}

/// One-sample units on the arcsine scale (Anscombe, 1948): x_i = asin √((y_i + 3/8)/(n_i + 3/4)),
/// whose variance ≈ 1/(4n_i + 2) does not depend on p_i, as effects the transform's exact mean
/// g_{n_i}(p_i) (which x_i is unbiased for; [`quiver_shrinkage::arcsine`]) and as targets
/// g_{n_i}(m_i); with those variances. Robust EBCIs assume the sampling variances independent of
/// the effects; on the proportion scale p(1 − p)/n moves with p and the average coverage fell
/// short (0.8955 at α = 0.1 in a mixture-of-betas design). With asin √p as the effect — the
/// transform's bias ignored — units with n_i·p_i or n_i·(1 − p_i) small were missed: average
/// coverage 0.897 with n_i on 5…40 and p_i ~ Beta(½, ½), 0.761 with n_i on 2…10; now 0.931 and
/// 0.945. `n` holds the trials (the URE's `h`, which [`Units::take_risk`] moved out of `u`); the
/// ends map back through `quiver_shrinkage::arcsine::inverse`, each distinct
/// (n, end) once.
pub fn arcsine_units(u: &Units, n: &[f64]) -> (Units, Vec<f64>) {
    use quiver_shrinkage::arcsine;
    let x: Vec<f64> = u.raw.iter().zip(n).map(|(p, n)| arcsine::anscombe(p * n, *n)).collect();
    let trials: Vec<u64> = n.iter().map(|&n| n as u64).collect();
    let m: Vec<f64> = (0..x.len()).map(|i| u.target(i).clamp(0.0, 1.0)).collect();
    let t = arcsine::many(&trials, &m, arcsine::mean);
    let s2: Vec<f64> = n.iter().map(|n| 1.0 / (4.0 * n + 2.0)).collect();
    let pooled = u.pooled.clamp(0.0, 1.0).sqrt().asin();
    let a = Units { raw: x, target_column: Some(t), pooled, var: s2.clone(), h: n.to_vec(), one_sample: false };
    (a, s2)
}

/// The estimator object.
pub struct SureBinomial {
    config: Config,
    ctx: Context,
}

impl ShrinkageImpl for SureBinomial {
    fn estimate(&self, tables: &Tables<'_>) -> Result<ShrinkageResult, PluginError> {
        let data = tables.get("data")?;
        data.non_empty()?;
        let cfg = &self.config;
        let mut u = Units::read(&data, cfg.two_sample)?;
        let risk = u.take_risk();
        let sweep = quiver_shrinkage_kit::sweep(self.ctx.device());
        let (lambda, ure, minimum) = match cfg.lambda {
            Some(l) => (l, risk.at(l), None),
            None => {
                let m = risk.minimize(sweep).map_err(plugin_error)?;
                (m.lambda, m.risk, Some(m))
            }
        };
        let curve = if cfg.curve > 0 {
            let ls = quiver_shrinkage_kit::by_parts::curve_lambdas(risk.scale(), cfg.curve);
            let vs = risk.curve(&ls, sweep).map_err(plugin_error)?;
            Some((ls, vs))
        } else {
            None
        };
        let plan = Plan { lambda, risk: ure, minimum, curve };
        let mut json = summary(&self.ctx, u.raw.len(), (!data.has("m")).then_some(u.pooled), &plan);
        let intervals = if cfg.intervals {
            // (the EBCI, the scale's description, its centre, its guarantee, the map back)
            let (ebci, scale, centre, guarantee, back) = if cfg.arcsine {
                let (a, s2) = arcsine_units(&u, &risk.h);
                (
                    robust_ebci(&a, &s2, cfg.alpha, cfg.kurtosis)?,
                    "arcsine: x = asin(sqrt((y + 3/8) / (n + 3/4))), sigma^2 = 1 / (4 n + 2); effect g_n(p) = E_p[x] \
                     (the transform's exact mean), target g_n(m)",
                    "on the arcsine scale t + w (x - t), w = mu2 / (mu2 + sigma^2); ends mapped back by the inverse of g_n",
                    "average coverage over units >= 1 - alpha (normal approximation on the arcsine scale, where x is \
                     exactly unbiased)",
                    Box::new(|_: usize, t: f64| t) as Box<dyn Fn(usize, f64) -> f64 + Sync>,
                )
            } else {
                let sigma2 = u.sampling_variance(&risk.e, &risk.h);
                (
                    robust_ebci(&u, &sigma2, cfg.alpha, cfg.kurtosis)?,
                    "proportion",
                    "m + w (raw - m), w = mu2 / (mu2 + sigma^2)",
                    "average coverage over units >= 1 - alpha when the units' sampling variances are independent of \
                     their effects (not so for proportions: their variance moves with p)",
                    Box::new(|_: usize, t: f64| t) as Box<dyn Fn(usize, f64) -> f64 + Sync>,
                )
            };
            json["ebci"] = json!({
                "alpha": cfg.alpha,
                "scale": scale,
                "mu2": ebci.mu2,
                "kappa": ebci.kappa.map_or(json!("inf"), |k| json!(k)),
                "centre": centre,
                "guarantee": guarantee,
            });
            let mut ends = ebci.ends(back);
            if cfg.arcsine {
                // back from g_n's scale: every distinct (n, end) inverted once
                let p = risk.h.len();
                let trials: Vec<u64> = risk.h.iter().chain(&risk.h).map(|&n| n as u64).collect();
                debug_assert_eq!(ends.len(), 2 * p);
                ends = quiver_shrinkage::arcsine::many(&trials, &ends, quiver_shrinkage::arcsine::inverse);
            }
            Some(ends)
        } else {
            None
        };
        // the estimates overwrite the raw proportions (no second per-unit array)
        let estimates = u.shrink(&risk.h, lambda);
        if let Some(ends) = &intervals {
            quiver_shrinkage::ebci_settings::note_centring(&mut json["ebci"], &estimates, ends);
        }
        let intervals = match intervals {
            Some(ends) => ROption::RSome(ends.into()),
            None => ROption::RNone,
        };
        Ok(ShrinkageResult {
            device: self.ctx.device(),
            lambda_hat: ROption::RSome(lambda),
            risk_estimate: ROption::RSome(ure),
            estimates: RVec::from(estimates),
            intervals,
            json: json.to_string().into(),
        })
    }
}

/// The result's JSON before the intervals, as the one-call and the by-parts runs both write it:
/// the units, the target (`pooled`: the pooled mean; `None`: the column m), the search's
/// certificate, the curve, λ̂ and the URE there.
pub(crate) fn summary(ctx: &Context, units: usize, pooled: Option<f64>, plan: &Plan) -> Value {
    let mut json = ctx.result_json(json!({
        "units": units,
        "target": pooled.map_or("column m".to_string(), |p| format!("pooled {p}")),
    }));
    if let Some(m) = &plan.minimum {
        json["ure_lower_bound"] = json!(m.lower_bound);
        json["certified_gap"] = json!(m.risk - m.lower_bound);
        json["sweeps"] = json!(m.sweeps);
        json["lambda_bracket"] = json!([json_f64(m.bracket.0), json_f64(m.bracket.1)]);
    }
    if let Some((ls, vs)) = &plan.curve {
        json["curve"] = json!(ls.iter().zip(vs).map(|(l, v)| json!([json_f64(*l), v])).collect::<Vec<_>>());
    }
    json["lambda_hat"] = json_f64(plan.lambda);
    json["ure"] = json!(plan.risk);
    json
}

/// The plugin.
pub struct SureBinomialPlugin;

impl Plugin for SureBinomialPlugin {
    fn manifest() -> Manifest {
        ManifestBuilder::new("sure-binomial", Family::Shrinkage)
            .version(env!("CARGO_PKG_VERSION"))
            .summary("Shrink many binomial proportions toward a target, tuned by an unbiased risk estimate; robust EB intervals")
            .guarantee(
                "URE is exactly unbiased for the mean squared error at every fixed lambda when the target m does not \
                 use the unit's own data (given or cross-fitted m); lambda_hat is its certified global minimiser. \
                 robust-ebci: average coverage over units >= 1 - alpha for any distribution of effects with the \
                 estimated second and fourth moments, under a normal approximation of each unit's estimate with a \
                 sampling variance independent of its effect: one sample on the arcsine scale (variance 1/(4n + 2)), \
                 where this holds when n is independent of p; two samples on the difference scale, where it holds \
                 only approximately.",
            )
            .reference("Chen & Lei (2025) on shrinkage for binomial data; Armstrong, Kolesar & Plagborg-Moller, Robust empirical Bayes confidence intervals, Econometrica (2022)")
            .cuda()
            .config::<Settings>()
            .table(
                TableBuilder::new("data", "one row per unit")
                    .column(column::f64_opt("y", "one sample: successes"))
                    .column(column::f64_opt("n", "one sample: trials (>= 2)"))
                    .column(column::f64_opt("y1", "two samples: successes in group 1"))
                    .column(column::f64_opt("n1", "two samples: trials in group 1 (>= 2)"))
                    .column(column::f64_opt("y2", "two samples: successes in group 2"))
                    .column(column::f64_opt("n2", "two samples: trials in group 2 (>= 2)"))
                    .column(column::f64_opt("m", "shrinkage target per unit (default: the pooled mean)")),
            )
            .mergeable(&["data"])
            .cut_anywhere(&["data"])
            .rounds()
            .build()
    }

    type Config = Settings;

    fn create(settings: Settings, ctx: Context) -> Result<Created, PluginError> {
        let config = Config::new(&settings);
        let by_parts =
            quiver_shrinkage_kit::by_parts::ByParts(SureBinomial { config: config.clone(), ctx: ctx.clone() });
        Ok(quiver_sdk::shrinkage(SureBinomial { config, ctx: ctx.clone() }).in_rounds(by_parts, &ctx))
    }
}

quiver_sdk::export_plugin!(SureBinomialPlugin);
