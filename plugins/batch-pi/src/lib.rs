//! `batch-pi`: prediction sets for a function of a whole batch of m unseen outcomes
//! (Lee, Tchetgen Tchetgen & Dobriban, "Batch predictive inference", 2024).
//!
//! Under exchangeability of n calibration scores S_i and m test scores T_j, the sorted test
//! ranks R_j = 1 + #{i : S_i < T_j} are uniform over the C(n+m, m) multisets of {1, …, n+1}. A
//! set A of rank multisets with P(R ∈ A) ≥ 1 − α becomes the bound sup_{r ∈ A} f(S_(r_1), …,
//! S_(r_m)) for any f nondecreasing in each argument (S_(n+1) = `upper_bound`, S_(0) =
//! `lower_bound`). Modes:
//! * `order-stat`: the ζ-th smallest test score is ≤ S_(k), k the smallest with
//!   P(R_(ζ) ≤ k) ≥ 1 − α (m = 1: split conformal, k = ⌈(n+1)(1−α)⌉).
//! * `two-sided`: S_(k₋) ≤ T_(ζ) ≤ S_(k₊) with probability ≥ 1 − α (α/2 in each tail).
//! * `pac`: at least ζ = ⌈(1−δ)m⌉ of the m test scores are ≤ S_(k), with probability ≥ 1 − α.
//! * `mean` (and `max`, `clipped-mean`): A = {rank sum ≤ Q}, Q the exact (1−α)-quantile of the
//!   rank sum (m + Mann–Whitney U); the bound is the max-sum dynamic program over A.
//! * `selection`: null scores V = μ·1{y ≤ c}; select test units with μ_j > S_(k), k for
//!   ζ = m − η: P(more than η false selections) ≤ α.
//!
//! Every "CDF ≥ 1 − α" is decided in exact arithmetic (`quiver_numerics::exact`). The official R
//! code estimates Q by Monte Carlo with i.i.d. ranks — the wrong law (variance m·n(n+2)/12 instead
//! of n·m(n+m+1)/12), anti-conservative — this plugin uses the exact law.

pub mod dp;

use dp::Compose;
use quiver_numerics::exact::{order_stat_rank, rank_sum_quantile, Level};
use quiver_sdk::abi::{abi_stable::std_types::RVec, ErrorKind, Manifest, PluginError};
use quiver_sdk::plugin_error;
use quiver_sdk::serde_json::{json, Value};
use quiver_sdk::{
    choices, column, json_f64, BatchPredictorImpl, Choice, Context, ManifestBuilder, Plugin, TableBuilder, Tables,
};
use quiver_sdk::{BatchResult, Created, Family};

choices! {
    /// The request mode.
    pub enum Mode {
        /// Upper bound on the ζ-th smallest test score.
        OrderStat = "order-stat",
        /// Two-sided interval for the ζ-th smallest test score.
        TwoSided = "two-sided",
        /// Bound that holds for at least ⌈(1−δ)m⌉ test scores simultaneously.
        Pac = "pac",
        /// Bound on a compositional statistic (mean, max, clipped mean) of the batch.
        Mean = "mean",
        /// Select test units with at most η false selections.
        Selection = "selection",
    }
}

choices! {
    /// The `statistic` parameter: which compositional statistic `mean` mode bounds.
    pub enum StatisticName {
        /// (1/m) Σ T_j.
        Mean = "mean",
        /// max_j T_j.
        Max = "max",
        /// (1/m) Σ min(T_j, τ), τ the parameter `clip`.
        ClippedMean = "clipped-mean",
    }
}

/// The compositional statistic of `mean` mode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Statistic {
    /// (1/m) Σ T_j.
    Mean,
    /// max_j T_j.
    Max,
    /// (1/m) Σ min(T_j, τ).
    ClippedMean(f64),
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Mode.
    pub mode: Mode,
    /// Miscoverage level α, exact.
    pub alpha: Level,
    /// α as given.
    pub alpha_f64: f64,
    /// Batch size (None: the test table's rows).
    pub m: Option<u64>,
    /// Order statistic (None: m).
    pub zeta: Option<u64>,
    /// PAC fraction δ, exact.
    pub delta: Level,
    /// Selection: tolerated false selections.
    pub eta: u64,
    /// Selection threshold on y.
    pub c: f64,
    /// S_(0).
    pub lower_bound: f64,
    /// S_(n+1).
    pub upper_bound: f64,
    /// `mean` mode statistic.
    pub statistic: Statistic,
}

quiver_sdk::config! {
    /// The parameters as given (checked against their declared types and ranges, and against each
    /// other); [`Config`] is what the method computes with.
    pub struct Settings {
        /// Mode.
        pub mode: Mode = choice(Mode::OrderStat, "what to bound"),
        /// Miscoverage level α.
        pub alpha: f64 = level(0.1, "miscoverage level"),
        /// Batch size (None: the test table's rows).
        pub m: Option<u64> = int(None, "batch size (default: rows of the 'test' table)").at_least(1.0),
        /// Order statistic (None: m).
        pub zeta: Option<u64> = int(None, "order-stat / two-sided: which order statistic, 1..=m (default m)").at_least(1.0),
        /// PAC fraction δ.
        pub delta: f64 = level(0.1, "pac: fraction of the batch allowed above the bound"),
        /// Selection: tolerated false selections.
        pub eta: u64 = int(Some(0), "selection: false selections tolerated").at_least(0.0),
        /// Selection threshold on y.
        pub c: f64 = float(Some(0.0), "selection: a unit is null when y <= c"),
        /// S_(0).
        pub lower_bound: f64 = float(Some(f64::NEG_INFINITY), "smallest possible score, S_(0)").down_to_neg_inf(),
        /// S_(n+1).
        pub upper_bound: f64 = float(Some(f64::INFINITY), "largest possible score, S_(n+1) (finite for mean)").up_to_inf(),
        /// `mean` mode statistic.
        pub statistic: StatisticName = choice(StatisticName::Mean, "mean mode: the batch statistic"),
        /// clipped-mean: τ.
        pub clip: Option<f64> = float(None, "clipped-mean: tau in mean of min(T, tau)"),
    }
}

impl quiver_sdk::PluginConfig for Settings {
    fn validate(&self) -> Result<(), PluginError> {
        let (lower_bound, upper_bound) = (self.lower_bound, self.upper_bound);
        if lower_bound >= upper_bound {
            return Err(PluginError::param(format!(
                "parameters 'lower_bound' = {lower_bound} and 'upper_bound' = {upper_bound} must satisfy lower < upper"
            )));
        }
        if self.statistic == StatisticName::ClippedMean && self.clip.is_none() {
            return Err(PluginError::param(
                "statistic 'clipped-mean' needs the parameter 'clip' (the level tau of min(T, tau))",
            ));
        }
        Ok(())
    }
}

fn exact_level(name: &str, x: f64) -> Result<Level, PluginError> {
    Level::from_f64(x).map_err(|e| PluginError::param(format!("parameter '{name}' = {x}: {e}")))
}

impl Config {
    /// The method's configuration from its checked settings (levels made exact).
    pub fn new(s: Settings) -> Result<Config, PluginError> {
        let statistic = match s.statistic {
            StatisticName::Mean => Statistic::Mean,
            StatisticName::Max => Statistic::Max,
            StatisticName::ClippedMean => Statistic::ClippedMean(s.clip.expect("checked by validate")),
        };
        Ok(Config {
            mode: s.mode,
            alpha: exact_level("alpha", s.alpha)?,
            alpha_f64: s.alpha,
            m: s.m,
            zeta: s.zeta,
            delta: exact_level("delta", s.delta)?,
            eta: s.eta,
            c: s.c,
            lower_bound: s.lower_bound,
            upper_bound: s.upper_bound,
            statistic,
        })
    }
}

/// The exact rank computations of each mode, independent of the scores (for tests and benches).
pub mod ranks {
    use super::*;

    /// order-stat: smallest k with P(R_(ζ) ≤ k) ≥ 1 − α.
    pub fn order_stat(n: u64, m: u64, zeta: u64, alpha: &Level) -> u64 {
        order_stat_rank(n, m, zeta, &alpha.complement())
    }

    /// two-sided: (k₋, k₊) with S_(k₋) ≤ T_(ζ) ≤ S_(k₊) w.p. ≥ 1 − α: k₊ the smallest k with
    /// CDF ≥ 1 − α/2, k₋ = (smallest k with CDF ≥ α/2) − 1, the largest with CDF < α/2.
    pub fn two_sided(n: u64, m: u64, zeta: u64, alpha: &Level) -> (u64, u64) {
        let half = alpha.half();
        (order_stat_rank(n, m, zeta, &half) - 1, order_stat_rank(n, m, zeta, &half.complement()))
    }

    /// pac: ζ = ⌈(1 − δ)m⌉ (at least 1).
    pub fn pac_zeta(m: u64, delta: &Level) -> u64 {
        let keep = delta.complement().ceil_of(&m.into());
        keep.try_into().unwrap_or(m).clamp(1, m)
    }

    /// pac: ζ = ⌈(1 − δ)m⌉ (at least 1), and its order-statistic rank.
    pub fn pac(n: u64, m: u64, delta: &Level, alpha: &Level) -> (u64, u64) {
        let zeta = pac_zeta(m, delta);
        (zeta, order_stat(n, m, zeta, alpha))
    }

    /// mean: Q, the exact (1 − α)-quantile of the rank sum Σ_j R_j.
    pub fn mean(n: u64, m: u64, alpha: &Level) -> u64 {
        rank_sum_quantile(n, m, &alpha.complement())
    }
}

/// The statistic of a batch whose ranks are all n + 1 (every score at `upper_bound`).
fn op_top(vals: &[f64], m: u64, op: Compose) -> f64 {
    let top = *vals.last().expect("n + 1 values");
    match op {
        Compose::Max => top,
        Compose::Sum => (0..m).fold(0.0, |a, _| a + top),
    }
}

/// The estimator: `calibrate` sorts the calibration scores, `bound` answers a request.
pub struct BatchPi {
    config: Config,
    ctx: Context,
    sorted: Option<Vec<f64>>,
}

/// S_(r) for r in 0..=n+1.
fn order(sorted: &[f64], r: u64, config: &Config) -> f64 {
    match r {
        0 => config.lower_bound,
        r if r as usize > sorted.len() => config.upper_bound,
        r => sorted[r as usize - 1],
    }
}

/// Largest DP work (m·Q·(n+1) max-plus steps) accepted before refusing with a clear message.
pub const MAX_DP_WORK: f64 = 2e12;

/// Most limb operations the exact order-statistic ranks may take (about a minute).
pub const MAX_EXACT_WORK: f64 = 1e11;

/// Refuse an order-statistic rank whose exact arithmetic would be too large to finish.
fn check_exact(n: u64, m: u64, zeta: u64) -> Result<(), PluginError> {
    let work = quiver_numerics::exact::order_stat_exact_work(n, m, zeta);
    if work > MAX_EXACT_WORK {
        return Err(PluginError::new(
            ErrorKind::Unsupported,
            format!(
                "n = {n}, m = {m}, zeta = {zeta}: the exact rank law needs up to {work:.2e} operations on numbers of \
                 {} (limit {MAX_EXACT_WORK:.0e}); lower m",
                quiver_sdk::memory::human(
                    quiver_numerics::exact::rank_sum_law_bytes(n, m) / (n as f64 * m as f64 + 1.0)
                )
            ),
        ));
    }
    Ok(())
}

impl BatchPi {
    fn batch_size(&self, tables: &Tables<'_>) -> Result<u64, PluginError> {
        match (self.config.m, tables.opt("test")) {
            (Some(m), _) => Ok(m),
            (None, Some(t)) if t.nrows() > 0 => Ok(t.nrows() as u64),
            _ => {
                Err(PluginError::param("parameter 'm' (the batch size) must be set, or a non-empty 'test' table given"))
            }
        }
    }

    fn zeta(&self, m: u64) -> Result<u64, PluginError> {
        let zeta = self.config.zeta.unwrap_or(m);
        if zeta > m {
            return Err(PluginError::param(format!("parameter 'zeta' = {zeta} must be in 1..=m (m = {m})")));
        }
        Ok(zeta)
    }

    fn compute(&self, tables: &Tables<'_>) -> Result<(BatchResult, Value), PluginError> {
        let sorted =
            self.sorted.as_ref().ok_or_else(|| quiver_sdk::state_error("bound() called before calibrate()"))?;
        let cfg = &self.config;
        let n = sorted.len() as u64;
        let inf = f64::INFINITY;
        let mut out = json!({});
        let (lower, upper, selected) = match cfg.mode {
            Mode::OrderStat => {
                let m = self.batch_size(tables)?;
                let zeta = self.zeta(m)?;
                check_exact(n, m, zeta)?;
                let k = ranks::order_stat(n, m, zeta, &cfg.alpha);
                let b = order(sorted, k, cfg);
                out = json!({"m": m, "zeta": zeta, "k": k, "bound": json_f64(b)});
                (-inf, b, Vec::new())
            }
            Mode::TwoSided => {
                let m = self.batch_size(tables)?;
                let zeta = self.zeta(m)?;
                check_exact(n, m, zeta)?;
                let (kl, ku) = ranks::two_sided(n, m, zeta, &cfg.alpha);
                let (lo, hi) = (order(sorted, kl, cfg), order(sorted, ku, cfg));
                out = json!({"m": m, "zeta": zeta, "k_lower": kl, "k_upper": ku, "lower": json_f64(lo), "upper": json_f64(hi)});
                (lo, hi, Vec::new())
            }
            Mode::Pac => {
                let m = self.batch_size(tables)?;
                let zeta = ranks::pac_zeta(m, &cfg.delta);
                check_exact(n, m, zeta)?;
                let (zeta, k) = ranks::pac(n, m, &cfg.delta, &cfg.alpha);
                let b = order(sorted, k, cfg);
                out = json!({"m": m, "zeta": zeta, "k": k, "bound": json_f64(b)});
                (-inf, b, Vec::new())
            }
            Mode::Mean => {
                let m = self.batch_size(tables)?;
                if m >= 2 && !cfg.upper_bound.is_finite() {
                    return Err(PluginError::param(
                        "mode 'mean' needs a finite 'upper_bound' (the largest score possible): with m >= 2 the \
                         exact set of rank multisets includes one with a test rank above every calibration score, \
                         so with an unbounded score the bound is +inf",
                    ));
                }
                // sized before anything is allocated: the DP's work is at least m · m(n + 1)/2 · (n + 1)
                // (Q is above the rank sum's mean), and the rank-sum law takes n·m + 1 big counts
                let least_work = m as f64 * (m as f64 * (n + 1) as f64 / 2.0) * (n + 1) as f64;
                if least_work > MAX_DP_WORK {
                    return Err(PluginError::new(
                        ErrorKind::Unsupported,
                        format!(
                            "mode 'mean' with n = {n}, m = {m}: the exact DP needs more than {least_work:.2e} steps \
                             (limit {MAX_DP_WORK:.0e}); lower m, or use mode 'order-stat' / 'pac'"
                        ),
                    ));
                }
                quiver_sdk::memory::reserve(
                    quiver_numerics::exact::rank_sum_law_bytes(n, m),
                    "the exact law of the rank sum (mode 'mean')",
                )?;
                let q = ranks::mean(n, m, &cfg.alpha);
                let work = m as f64 * q as f64 * (n + 1) as f64;
                if work > MAX_DP_WORK {
                    return Err(PluginError::new(
                        ErrorKind::Unsupported,
                        format!("mode 'mean' with n = {n}, m = {m}: the exact DP needs {work:.2e} steps (limit {MAX_DP_WORK:.0e})"),
                    ));
                }
                let mut vals: Vec<f64> = sorted.clone();
                vals.push(cfg.upper_bound);
                let (op, scale) = match cfg.statistic {
                    Statistic::Mean => (Compose::Sum, m as f64),
                    Statistic::Max => (Compose::Max, 1.0),
                    Statistic::ClippedMean(tau) => {
                        vals.iter_mut().for_each(|v| *v = v.min(tau));
                        (Compose::Sum, m as f64)
                    }
                };
                let (m_, q_) = (m as usize, q as usize);
                let best = self.ctx.dispatch(
                    || Ok(dp::max_compose_cpu(&vals, m_, q_, op)),
                    || dp::max_compose_cuda(&vals, m_, q_, op).map_err(plugin_error),
                )?;
                let b = best / scale;
                let stat = match cfg.statistic {
                    Statistic::Mean => "mean".to_string(),
                    Statistic::Max => "max".to_string(),
                    Statistic::ClippedMean(t) => format!("clipped-mean(clip={t})"),
                };
                out = json!({"m": m, "Q": q, "statistic": stat, "bound": json_f64(b)});
                if best == op_top(&vals, m, op) {
                    out["note"] = json!(
                        "the bound is the statistic of a batch entirely at upper_bound's rank: the rank-sum set \
                         contains it. For the maximum, mode 'order-stat' with zeta = m is the sharp bound."
                    );
                }
                (-inf, b, Vec::new())
            }
            Mode::Selection => {
                let test = tables.get("test")?;
                test.non_empty()?;
                let mu = test.f64("mu")?;
                let m = mu.len() as u64;
                if cfg.eta >= m {
                    return Err(PluginError::param(format!("parameter 'eta' = {} must be < m = {m}", cfg.eta)));
                }
                let zeta = m - cfg.eta;
                check_exact(n, m, zeta)?;
                let k = ranks::order_stat(n, m, zeta, &cfg.alpha);
                let t = order(sorted, k, cfg);
                let selected: Vec<u64> = (0..mu.len()).filter(|&j| mu[j] > t).map(|j| j as u64).collect();
                out = json!({"m": m, "eta": cfg.eta, "zeta": zeta, "k": k, "threshold": json_f64(t), "n_selected": selected.len()});
                (-inf, t, selected)
            }
        };
        let mut full = self.ctx.result_json(json!({"mode": cfg.mode.name(), "n_calibration": n}));
        for (k, v) in out.as_object().expect("object") {
            full[k] = v.clone();
        }
        if cfg.mode == Mode::Selection {
            full["selected"] = json!(selected);
        }
        Ok((
            BatchResult {
                device: self.ctx.device(),
                lower,
                upper,
                selected: RVec::from(selected),
                json: full.to_string().into(),
            },
            full,
        ))
    }
}

impl BatchPredictorImpl for BatchPi {
    fn calibrate(&mut self, tables: &Tables<'_>) -> Result<(), PluginError> {
        let cal = tables.get("calibration")?;
        cal.non_empty()?;
        let cfg = &self.config;
        let scores: Vec<f64> = if cfg.mode == Mode::Selection {
            let (mu, y) = (cal.f64("mu")?, cal.f64("y")?);
            mu.iter().zip(y.iter()).map(|(&m, &y)| if y <= cfg.c { m } else { 0.0 }).collect()
        } else {
            cal.f64("score")?.to_vec()
        };
        if cfg.mode != Mode::Selection {
            let (lo, hi) = (cfg.lower_bound, cfg.upper_bound);
            let outside = format!("is outside [lower_bound, upper_bound] = [{lo}, {hi}]");
            cal.check_each("score", &scores, |s| (lo..=hi).contains(&s), &outside)?;
        }
        self.sorted = Some(quiver_numerics::ranks::into_sorted(scores));
        Ok(())
    }

    fn bound(&self, tables: &Tables<'_>) -> Result<BatchResult, PluginError> {
        Ok(self.compute(tables)?.0)
    }
}

/// The plugin.
pub struct BatchPiPlugin;

impl Plugin for BatchPiPlugin {
    fn manifest() -> Manifest {
        let test_mu = column::f64_opt("mu", "selection mode: model prediction of each test unit");
        ManifestBuilder::new("batch-pi", Family::BatchPredictor)
            .version(env!("CARGO_PKG_VERSION"))
            .summary("Prediction sets for a whole batch: order statistics, PAC, mean/max bounds, selection with <= eta errors")
            .guarantee(
                "Exchangeable calibration and test scores: order-stat P(T_(zeta) <= bound) >= 1 - alpha; two-sided \
                 P(lower <= T_(zeta) <= upper) >= 1 - alpha; pac P(at least ceil((1-delta)m) test scores <= bound) >= 1 - alpha; \
                 mean P(statistic of the batch <= bound) >= 1 - alpha for mean, max and clipped mean; selection \
                 P(more than eta selected units with y <= c) <= alpha. Finite-sample, exact rank laws.",
            )
            .reference("Lee, Tchetgen Tchetgen & Dobriban, Batch predictive inference (2024)")
            .cuda()
            .config::<Settings>()
            .table(
                TableBuilder::new("calibration", "calibration scores (selection: mu and y)")
                    .column(column::f64_opt("score", "nonconformity score"))
                    .column(column::f64_opt("mu", "selection mode: model prediction"))
                    .column(column::f64_opt("y", "selection mode: observed outcome")),
            )
            .table(TableBuilder::new("test", "the batch (its rows give m; selection mode reads mu)").optional().column(test_mu))
            .build()
    }

    type Config = Settings;

    fn create(settings: Settings, ctx: Context) -> Result<Created, PluginError> {
        let config = Config::new(settings)?;
        Ok(quiver_sdk::batch_predictor(BatchPi { config, ctx, sorted: None }))
    }
}

quiver_sdk::export_plugin!(BatchPiPlugin);
