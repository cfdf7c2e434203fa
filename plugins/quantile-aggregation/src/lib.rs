//! `quantile-aggregation`: combine J base models' quantile forecasts at K levels into one set
//! that minimises the mean pinball loss (Fakoor, Kim, Mueller, Smola & Tibshirani, "Flexible model
//! aggregation for quantile regression", JMLR 24(162), 2023), make it monotone across levels,
//! calibrate its central intervals by conformalised quantile regression (Romano, Patterson &
//! Candès, NeurIPS 2019), and score it — or score any given quantile forecasts
//! (`granularity=none`).
//!
//! Lifecycle: `fit` learns the weights on table `fit`; `calibrate` computes one CQR adjustment
//! per central interval on table `calibration` (`conformal=cqr`); `predict` returns the test
//! quantiles (a typed n × K matrix) and metrics wherever outcomes are given.

use quiver_aggregation::adam::{self, AdamConfig, AdamReport, CpuGradient};
use quiver_aggregation::calibrate::{cqr_adjustment, nest, Monotone};
use quiver_aggregation::model::{self, Granularity, Structure, WeightKind, Weights};
use quiver_aggregation::score::{self, intervals, Interval, QuantileMatrix, Scores};
use quiver_aggregation::{gpu, lp, AggregationError, Forecasts, Layout};
use quiver_sdk::abi::abi_stable::std_types::RVec;
use quiver_sdk::abi::{Device, ErrorKind, Manifest, PluginError};
use quiver_sdk::plugin_error;
use quiver_sdk::serde_json::{json, Map, Value};
use quiver_sdk::{column, TableBuilder};
use quiver_sdk::{AggregationResult, Created, Family, OwnedMatrix};
use quiver_sdk::{Context, ManifestBuilder, Plugin, QuantileAggregatorImpl, TableRef, Tables};

mod by_parts;
pub use by_parts::AggregationByParts;

quiver_sdk::choices! {
    /// How global weights are found.
    pub enum Solver {
        /// `exact` for global weights whose LP is small enough, else `gradient`.
        Auto = "auto",
        /// The linear program, solved by an interior-point method (global weights only).
        Exact = "exact",
        /// Adam on softmax logits with early stopping.
        Gradient = "gradient",
    }
}

quiver_sdk::choices! {
    /// Conformal calibration of the central intervals.
    pub enum Conformal {
        /// None.
        None = "none",
        /// Conformalised quantile regression per central interval.
        Cqr = "cqr",
    }
}

/// LPs up to this many constraint nonzeros are solved exactly under `solver=auto` (about a
/// second or two on one core); larger ones go to the gradient solver.
pub const AUTO_EXACT_NONZEROS: f64 = 2e6;

/// Most multiply-adds a local-weights fit may plan (about an hour on one core is ~10^13; this
/// refuses requests that would run for days, e.g. fine local weights over many levels).
pub const MAX_LOCAL_WORK: f64 = 1e13;

quiver_sdk::config! {
    /// The parameters as given (checked against their declared types and ranges, and against each
    /// other); [`Config`] is what the method computes with.
    pub struct Settings {
        /// The weights' granularity, or a baseline.
        pub granularity: Granularity = choice(
            Granularity::Medium,
            "coarse | medium | fine weights; mean | median baselines; none: score the given forecasts"
        ),
        /// Global or local weights.
        pub weights: WeightKind =
            choice(WeightKind::Global, "global constants, or local: softmax of a linear model of the x_ columns"),
        /// The solver.
        pub solver: Solver = choice(Solver::Auto, "exact (LP) | gradient (Adam) | auto: exact when the LP is small"),
        /// Monotone rearrangement across levels.
        pub monotone: Monotone = choice(Monotone::Sort, "none | sort | pava across levels, per row"),
        /// Conformalisation.
        pub conformal: Conformal =
            choice(Conformal::None, "none | cqr: conformalise the central intervals on 'calibration'"),
        /// Comma-separated α of the central intervals to calibrate.
        pub alphas: String = text(
            Some(""),
            "comma-separated alpha of the central intervals to calibrate (default: every symmetric pair)"
        ),
        /// Non-crossing constraints in the LP.
        pub noncross: bool = boolean(false, "exact solver: constrain the aggregate to be non-crossing at the fit rows"),
        /// Adam's step size.
        pub lr: f64 = float(Some(0.05), "gradient: Adam step size on the softmax logits").greater_than(0.0).at_most(100.0),
        /// Rows per minibatch.
        pub batch_rows: usize = int(Some(1024), "gradient: rows per minibatch").at_least(1.0).at_most(1e9),
        /// Most epochs.
        pub max_epochs: usize = int(Some(200), "gradient: most epochs").at_least(1.0).at_most(1e6),
        /// Early-stopping patience.
        pub patience: usize = int(Some(10), "gradient: stop after this many epochs without a lower held-out loss")
            .at_least(1.0)
            .at_most(1e6),
        /// Held-out fraction.
        pub holdout: f64 = float(Some(0.1), "gradient: fraction of the fit rows held out for early stopping (0: none)")
            .at_least(0.0)
            .less_than(1.0),
        /// Seed of the split and the shuffles.
        pub seed: u64 = int(Some(0), "gradient: seed of the held-out split and the shuffles").at_least(0.0),
    }
}

impl quiver_sdk::PluginConfig for Settings {
    fn validate(&self) -> Result<(), PluginError> {
        let weighted = matches!(self.granularity, Granularity::Coarse | Granularity::Medium | Granularity::Fine);
        if !weighted && (self.weights == WeightKind::Local || self.noncross) {
            return Err(PluginError::param(format!(
                "granularity={} has no weights: weights=local and noncross apply to coarse, medium and fine",
                self.granularity
            )));
        }
        if parse_alphas(&self.alphas)?.is_some() && self.conformal == Conformal::None {
            return Err(PluginError::param("alphas choose the intervals of conformal=cqr: set conformal=cqr too"));
        }
        Ok(())
    }
}

/// What the method computes with.
#[derive(Debug, Clone)]
struct Config {
    granularity: Granularity,
    weights: WeightKind,
    solver: Solver,
    monotone: Monotone,
    conformal: Conformal,
    alphas: Option<Vec<f64>>,
    noncross: bool,
    adam: AdamConfig,
}

impl Config {
    fn new(s: Settings) -> Result<Config, PluginError> {
        Ok(Config {
            granularity: s.granularity,
            weights: s.weights,
            solver: s.solver,
            monotone: s.monotone,
            conformal: s.conformal,
            alphas: parse_alphas(&s.alphas)?,
            noncross: s.noncross,
            adam: AdamConfig {
                lr: s.lr,
                batch_rows: s.batch_rows,
                max_epochs: s.max_epochs,
                patience: s.patience,
                holdout: s.holdout,
                seed: s.seed,
            },
        })
    }
}

/// What `fit` learned.
struct Fitted {
    layout: Layout,
    structure: Option<Structure>,
    weights: Option<Weights>,
    summary: Map<String, Value>,
}

/// The estimator.
pub struct QuantileAggregation {
    cfg: Config,
    ctx: Context,
    fitted: Option<Fitted>,
    /// Per calibrated interval: the interval and Q̂; plus the calibration summary.
    cqr: Option<(Vec<(Interval, f64)>, Value)>,
}

fn as_matrix(q: QuantileMatrix) -> OwnedMatrix {
    OwnedMatrix { data: RVec::from(q.values), rows: q.n, cols: q.k }
}

impl QuantileAggregation {
    /// The aggregate (monotonised) quantiles of table `t`'s rows (`granularity=none` has none).
    fn aggregate(&self, f: &Fitted, t: &TableRef<'_>, fc: &Forecasts<'_>) -> Result<QuantileMatrix, PluginError> {
        let mut q = self.raw_aggregate(f, t, fc)?;
        self.cfg.monotone.apply(&mut q);
        Ok(q)
    }

    /// The aggregate quantiles as the weights give them, before the monotone step: what the
    /// solver's objective is measured on. An aggregate that is not finite (forecasts at the edge
    /// of double precision) is an error naming the table and row, for the fit, calibration and
    /// test rows alike.
    fn raw_aggregate(&self, f: &Fitted, t: &TableRef<'_>, fc: &Forecasts<'_>) -> Result<QuantileMatrix, PluginError> {
        let (j, k) = (f.layout.n_models(), f.layout.n_levels());
        let q = match (&f.structure, &f.weights) {
            (Some(s), Some(w)) => model::predict(s, w, fc),
            _ => match self.cfg.granularity {
                Granularity::None => unreachable!("granularity=none scores only"),
                g => model::baseline(g, fc, j, k),
            },
        };
        if let Some(bad) = q.values.iter().position(|v| !v.is_finite()) {
            return Err(t.row_error(
                &f.layout.columns[0],
                bad / k,
                "the aggregate quantiles overflowed double precision (forecasts near 1e308?): rescale the forecasts",
            ));
        }
        Ok(q)
    }

    /// Metrics of every base model and of the aggregate `agg` on a table with outcomes.
    fn metrics(&self, layout: &Layout, fc: &Forecasts<'_>, agg: Option<&QuantileMatrix>) -> Value {
        let Some(y) = fc.y else { return Value::Null };
        let (j, k) = (layout.n_models(), layout.n_levels());
        let models: Vec<Scores> = (0..j)
            .map(|m| {
                let cols = &fc.q[m * k..(m + 1) * k];
                score::score_with(&layout.levels, y, |i, kk| cols[kk][i])
            })
            .collect();
        metrics_json(layout, &models, agg.map(|a| score::score(a, &layout.levels, y)).as_ref())
    }

    /// The central intervals to calibrate: every symmetric pair, or those of `alphas`.
    fn calibrated_intervals(&self, layout: &Layout) -> Result<Vec<Interval>, PluginError> {
        let (all, _) = intervals(&layout.levels);
        let Some(alphas) = &self.cfg.alphas else {
            if all.is_empty() {
                return Err(PluginError::param(format!(
                    "conformal=cqr needs a central interval: a pair of levels tau and 1 - tau (levels: {:?})",
                    layout.levels
                )));
            }
            return Ok(all);
        };
        alphas
            .iter()
            .map(|&a| {
                all.iter().copied().find(|iv| (iv.alpha - a).abs() <= score::LEVEL_TOL).ok_or_else(|| {
                    PluginError::param(format!(
                        "alphas: {a} has no pair of levels {} and {} among the forecast columns (levels: {:?})",
                        a / 2.0,
                        1.0 - a / 2.0,
                        layout.levels
                    ))
                })
            })
            .collect()
    }

    /// Whether global weights of `s` over `n` fit rows are found by the exact LP (else by Adam):
    /// `solver`, or under `auto` the LP's size; an error where the settings contradict.
    fn solves_exactly(&self, s: &Structure, n: usize) -> Result<bool, PluginError> {
        let local = self.cfg.weights == WeightKind::Local;
        let exact = match self.cfg.solver {
            Solver::Exact => true,
            Solver::Gradient => false,
            Solver::Auto => {
                !local && (self.cfg.noncross || lp::memory_nonzeros(s, n, self.cfg.noncross) <= AUTO_EXACT_NONZEROS)
            }
        };
        if exact && local {
            return Err(PluginError::param(
                "weights=local are fitted by solver=gradient (the softmax of a linear model of x is not an LP)",
            ));
        }
        if !exact && self.cfg.noncross {
            return Err(PluginError::param(
                "noncross=true adds constraints to the LP: use solver=exact (with solver=gradient, monotone=sort or \
                 pava makes the quantiles non-crossing)",
            ));
        }
        Ok(exact)
    }

    fn fit_weights(
        &self,
        s: &Structure,
        layout: &Layout,
        fc: &Forecasts<'_>,
        y: &[f64],
    ) -> Result<(Weights, Value, Device), PluginError> {
        let n = fc.n;
        let local = self.cfg.weights == WeightKind::Local;
        let lp_size = lp::memory_nonzeros(s, n, self.cfg.noncross);
        let exact = self.solves_exactly(s, n)?;
        if exact {
            quiver_sdk::memory::reserve(
                lp_size * lp::BYTES_PER_NONZERO,
                "the exact LP (its matrix and factorisation)",
            )?;
            self.ctx.progress(0, 1, "solving the LP")?;
            let sol = lp::solve(s, &lp::LpData { q: &fc.q, y, levels: &layout.levels }, self.cfg.noncross)
                .map_err(|e| lp_error(e, self.cfg.noncross))?;
            let details = json!({
                "solver": "exact",
                "lp_solver": "clarabel (interior point)",
                "lp_problems": sol.problems,
                "lp_iterations": sol.iterations,
                "lp_largest": {"variables": sol.largest.0, "constraints": sol.largest.1, "nonzeros": sol.largest.2},
                "noncross": self.cfg.noncross,
            });
            return Ok((Weights::Global(sol.weights), details, Device::Cpu));
        }
        let (_, scale) = model::problem_scale(y, &fc.q);
        let total = self.cfg.adam.max_epochs as u64;
        let mut progress = |e: usize| -> Result<(), AggregationError> {
            Ok(quiver_numerics::checkpoint(&self.ctx, e as u64, total, "epochs")?)
        };
        let (weights, report, device) = if local {
            if fc.x.is_empty() {
                return Err(PluginError::input(
                    "weights=local needs feature columns x_<name> in table 'fit' (the weights are a softmax of a linear \
                     model of them)",
                ));
            }
            // per row and step: the P (d + 1) logits and their gradient, and the K levels' terms
            let per_row = (s.n_weights() * (fc.x.len() + 1) + s.k * s.n_terms()) as f64;
            let work = per_row * n as f64 * self.cfg.adam.max_epochs as f64;
            if work > MAX_LOCAL_WORK {
                return Err(PluginError::new(
                    ErrorKind::Unsupported,
                    format!(
                        "weights=local with granularity={} would cost {work:.2e} multiply-adds ({} weights x {} \
                         features per row, {} rows, {} epochs; limit {MAX_LOCAL_WORK:.0e}): use a coarser \
                         granularity, fewer features or fewer max_epochs",
                        self.cfg.granularity,
                        s.n_weights(),
                        fc.x.len() + 1,
                        n,
                        self.cfg.adam.max_epochs
                    ),
                ));
            }
            let (w, r) = adam::fit_local(s, fc, y, &layout.levels, scale, &self.cfg.adam, &mut progress)
                .map_err(plugin_error)?;
            (w, r, Device::Cpu)
        } else if self.ctx.device() == Device::Cuda && gpu::supports(s) {
            let block = adam::block_size(n);
            let mut g = gpu::CudaGradient::new(*s, &fc.q, y, &layout.levels, block).map_err(plugin_error)?;
            let (w, r) = adam::fit_global(s, n, &mut g, scale, &self.cfg.adam, &mut progress).map_err(plugin_error)?;
            (Weights::Global(w), r, Device::Cuda)
        } else {
            let mut g = CpuGradient { s: *s, q: &fc.q, y, levels: &layout.levels, block: adam::block_size(n) };
            let (w, r) = adam::fit_global(s, n, &mut g, scale, &self.cfg.adam, &mut progress).map_err(plugin_error)?;
            (Weights::Global(w), r, Device::Cpu)
        };
        Ok((weights, gradient_json(&report, &self.cfg.adam, device), device))
    }
}

/// The metrics value: `{"models": {model: scores}, "aggregate": scores}`.
fn metrics_json(layout: &Layout, models: &[Scores], agg: Option<&Scores>) -> Value {
    let models: Map<String, Value> =
        layout.models.iter().zip(models).map(|(m, s)| (m.clone(), s.to_json(&layout.levels))).collect();
    let mut out = json!({ "models": models });
    if let Some(a) = agg {
        out["aggregate"] = a.to_json(&layout.levels);
    }
    out
}

/// `{model: WIS, ..., aggregate: WIS}` from a metrics value (the line a reader looks at first).
fn wis_line(metrics: &Value) -> Value {
    let mut out = Map::new();
    if let Some(models) = metrics["models"].as_object() {
        for (m, v) in models {
            out.insert(m.clone(), v["wis"].clone());
        }
    }
    if !metrics["aggregate"].is_null() {
        out.insert("aggregate".into(), metrics["aggregate"]["wis"].clone());
    }
    Value::Object(out)
}

/// `{"1 - alpha": coverage}` of the aggregate's central intervals.
fn coverage_line(metrics: &Value) -> Value {
    let mut out = Map::new();
    for iv in metrics["aggregate"]["intervals"].as_array().into_iter().flatten() {
        let a = iv["alpha"].as_f64().unwrap_or(f64::NAN);
        out.insert(score::level_key(((1.0 - a) * 1e12).round() / 1e12), iv["coverage"].clone());
    }
    Value::Object(out)
}

fn gradient_json(r: &AdamReport, c: &AdamConfig, device: Device) -> Value {
    json!({
        "solver": "gradient",
        "gradient_device": device.name(),
        "epochs": r.epochs,
        "best_epoch": r.best_epoch,
        "stopped": if r.stopped_early { "early stopping (no lower held-out loss for `patience` epochs)" } else { "max_epochs" },
        "holdout_loss": r.holdout_loss,
        "holdout_history": r.history,
        "steps": r.steps,
        "train_rows": r.rows.0,
        "holdout_rows": r.rows.1,
        "block_rows": r.block,
        "lr": c.lr,
        "batch_rows": c.batch_rows,
    })
}

impl QuantileAggregatorImpl for QuantileAggregation {
    fn fit(&mut self, tables: &Tables<'_>) -> Result<(), PluginError> {
        let cfg = &self.cfg;
        if cfg.granularity == Granularity::None {
            // scoring only: the layout of whichever table is there
            let t = tables.opt("fit").or(tables.opt("test")).or(tables.opt("calibration")).ok_or_else(|| {
                PluginError::input("granularity=none scores forecasts: give a 'fit', 'calibration' or 'test' table")
            })?;
            let layout = Layout::from_names(t.role(), &t.column_names(), true).map_err(plugin_error)?;
            self.ctx = self.ctx.on_cpu("scoring runs on the CPU");
            self.fitted = Some(Fitted { layout, structure: None, weights: None, summary: Map::new() });
            return Ok(());
        }
        let t = tables.get("fit")?;
        let layout = Layout::from_names(t.role(), &t.column_names(), false).map_err(plugin_error)?;
        let local = cfg.weights == WeightKind::Local;
        let fc = read_forecasts(&t, &layout, true, local)?;
        let y = fc.y.expect("read with y");
        let structure = Structure::new(cfg.granularity, layout.n_models(), layout.n_levels());
        if structure.is_none() {
            self.ctx = self.ctx.on_cpu("the mean and median baselines run on the CPU");
        }
        let mut summary = Map::new();
        let weights = match &structure {
            Some(s) => {
                let (w, details, device) = self.fit_weights(s, &layout, &fc, y)?;
                if device == Device::Cpu {
                    let why = if details["solver"] == "exact" {
                        "the exact LP solver runs on the CPU"
                    } else if local {
                        "local weights are fitted on the CPU"
                    } else {
                        "the CUDA pinball kernel serves coarse and medium weights of up to 32 models"
                    };
                    self.ctx = self.ctx.on_cpu(why);
                }
                summary.insert("weights".into(), match &w {
                    Weights::Global(g) => s.weights_json(g, &layout.models, &layout.levels),
                    Weights::Local { theta, b, standardizer } => json!({
                        "theta": theta,
                        "b": b,
                        "layout": "softmax per group of theta[w] + sum_f b[w * d + f] * (x_f - mean_f) / sd_f; w indexes \
                                   the weights as in a global fit of this granularity",
                        "features": layout.features,
                        "mean": standardizer.mean,
                        "sd": standardizer.sd,
                    }),
                });
                summary.insert("solver_details".into(), details);
                Some(w)
            }
            None => None,
        };
        let mut fitted = Fitted { layout, structure, weights, summary };
        // the solver's objective is the loss of the weights themselves; the monotone step (sort or
        // PAVA, which never raise a row's loss) comes after it and has its own figure
        let mut agg = self.raw_aggregate(&fitted, &t, &fc)?;
        let objective = score::score(&agg, &fitted.layout.levels, y).mean_pinball;
        self.cfg.monotone.apply(&mut agg);
        let fit_loss = score::score(&agg, &fitted.layout.levels, y).mean_pinball;
        fitted.summary.insert("objective".into(), quiver_sdk::json_f64(objective));
        fitted.summary.insert("fit_loss".into(), quiver_sdk::json_f64(fit_loss));
        let metrics = self.metrics(&fitted.layout, &fc, Some(&agg));
        fitted.summary.insert("fit_wis".into(), wis_line(&metrics));
        fitted.summary.insert("fit_metrics".into(), metrics);
        self.fitted = Some(fitted);
        Ok(())
    }

    fn calibrate(&mut self, tables: &Tables<'_>) -> Result<(), PluginError> {
        let f = self.fitted.as_ref().ok_or_else(|| quiver_sdk::state_error("calibrate() before fit()"))?;
        if self.cfg.conformal == Conformal::None {
            self.cqr = None;
            return Ok(());
        }
        if self.cfg.granularity == Granularity::None {
            return Err(PluginError::param(
                "conformal=cqr calibrates an aggregate; granularity=none only scores the given forecasts",
            ));
        }
        let t = tables.get("calibration").map_err(|e| {
            PluginError::input(format!(
                "{}: conformal=cqr needs the 'calibration' table (y and the forecasts)",
                e.message
            ))
        })?;
        let local = self.cfg.weights == WeightKind::Local;
        f.layout.check_same(t.role(), &t.column_names(), local).map_err(plugin_error)?;
        let fc = read_forecasts(&t, &f.layout, true, local)?;
        let y = fc.y.expect("read with y");
        let q = self.aggregate(f, &t, &fc)?;
        let ints = self.calibrated_intervals(&f.layout)?;
        let k = q.k;
        let adj: Vec<(Interval, f64)> = ints
            .iter()
            .map(|iv| {
                let lo = (0..q.n).map(|i| q.values[i * k + iv.lo]);
                let hi = (0..q.n).map(|i| q.values[i * k + iv.hi]);
                (*iv, cqr_adjustment(iv.alpha, lo, hi, y))
            })
            .collect();
        let summary = json!({
            "calibration_rows": fc.n,
            "metrics_before": self.metrics(&f.layout, &fc, Some(&q)),
        });
        self.cqr = Some((adj, summary));
        Ok(())
    }

    fn predict(&self, tables: &Tables<'_>) -> Result<AggregationResult, PluginError> {
        let f = self.fitted.as_ref().ok_or_else(|| quiver_sdk::state_error("predict() before fit()"))?;
        let layout = &f.layout;
        let local = self.cfg.weights == WeightKind::Local;
        let mut out = json!({
            "models": layout.models,
            "levels": layout.levels,
            "granularity": self.cfg.granularity.to_string(),
        });
        for (key, v) in &f.summary {
            out[key] = v.clone();
        }
        if self.cfg.granularity == Granularity::None {
            // score every table that has outcomes
            let mut metrics = Map::new();
            for role in ["fit", "calibration", "test"] {
                if let Some(t) = tables.opt(role) {
                    layout.check_same(t.role(), &t.column_names(), false).map_err(plugin_error)?;
                    let fc = read_forecasts(&t, layout, false, false)?;
                    let m = self.metrics(layout, &fc, None);
                    if !m.is_null() {
                        out[format!("{role}_wis")] = wis_line(&m);
                    }
                    metrics.insert(role.into(), m);
                }
            }
            out["metrics"] = Value::Object(metrics);
            return Ok(AggregationResult {
                device: self.ctx.device(),
                quantiles: OwnedMatrix { data: RVec::new(), rows: 0, cols: 0 },
                json: self.ctx.result_text(out),
            });
        }
        let t = tables.get("test")?;
        layout.check_same(t.role(), &t.column_names(), local).map_err(plugin_error)?;
        let fc = read_forecasts(&t, layout, false, local)?;
        let mut q = self.aggregate(f, &t, &fc)?;
        if let Some((adj, cal)) = &self.cqr {
            let k = q.k;
            for (iv, qhat) in adj {
                for r in q.values.chunks_mut(k) {
                    r[iv.lo] -= qhat;
                    r[iv.hi] += qhat;
                }
            }
            let ints: Vec<Interval> = adj.iter().map(|a| a.0).collect();
            nest(&mut q, &ints, intervals(&layout.levels).1);
            out["cqr_adjustments"] = Value::Array(
                adj.iter()
                    .map(|(iv, qhat)| {
                        json!({
                            "alpha": iv.alpha,
                            "levels": [layout.levels[iv.lo], layout.levels[iv.hi]],
                            "adjustment": quiver_sdk::json_f64(*qhat),
                        })
                    })
                    .collect(),
            );
            out["calibration"] = cal.clone();
            let infinite: Vec<f64> = adj.iter().filter(|a| a.1.is_infinite()).map(|a| a.0.alpha).collect();
            if !infinite.is_empty() {
                out["notes"] = json!([format!(
                    "the calibration table ({} rows) is too small to bound the intervals with alpha in {infinite:?} \
                     (needs ceil((1 - alpha)(n + 1)) <= n): their ends are -inf / inf",
                    cal["calibration_rows"]
                )]);
            }
        }
        let metrics = self.metrics(layout, &fc, Some(&q));
        if !metrics.is_null() {
            out["test_wis"] = wis_line(&metrics);
            out["test_coverage"] = coverage_line(&metrics);
        }
        out["test_metrics"] = metrics;
        out["test_rows"] = json!(fc.n);
        Ok(AggregationResult { device: self.ctx.device(), quantiles: as_matrix(q), json: self.ctx.result_text(out) })
    }
}

/// The exact solver's failures by cause: too large (a request to refuse), no feasible weights
/// (only the non-crossing constraints can make the LP infeasible), or a numerical stop on valid
/// data.
fn lp_error(e: lp::LpError, noncross: bool) -> PluginError {
    match &e {
        lp::LpError::NotSolved { status, .. } if noncross && status.contains("Infeasible") => PluginError::new(
            ErrorKind::Unsupported,
            format!(
                "no weights make the aggregate non-crossing on these forecasts ({e}): use noncross=false with \
                 monotone=sort (or pava), which repairs crossings after the fit"
            ),
        ),
        lp::LpError::NotSolved { .. } => PluginError::new(
            ErrorKind::Numerical,
            format!(
                "{e}: the interior-point solver did not converge on valid data; solver=gradient fits the same loss"
            ),
        ),
        lp::LpError::TooLarge { .. } | lp::LpError::TooMuchWork { .. } => {
            PluginError::new(ErrorKind::Unsupported, e.to_string())
        }
    }
}

/// The plugin.
pub struct QuantileAggregationPlugin;

fn forecast_table(role: &str, doc: &str) -> TableBuilder {
    TableBuilder::new(role, doc)
        .column(column::f64_opt("y", "the observed outcome"))
        .column(column::f64_prefix("q_", true, "q_<model>_<level>: model's quantile forecast at level in (0, 1)"))
        .column(column::f64_prefix("x_", false, "x_<name>: features of local weights"))
}

/// `alphas` as a list of numbers in (0, 1).
fn parse_alphas(text: &str) -> Result<Option<Vec<f64>>, PluginError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    text.split(',')
        .map(|a| {
            let v: f64 = a.trim().parse().map_err(|_| PluginError::param(format!("alphas: '{a}' is not a number")))?;
            if v > 0.0 && v < 1.0 {
                Ok(v)
            } else {
                Err(PluginError::param(format!("alphas: {v} is outside (0, 1)")))
            }
        })
        .collect::<Result<Vec<f64>, _>>()
        .map(|mut a| {
            // an interval listed twice is calibrated once
            let mut seen = Vec::new();
            a.retain(|x| {
                !seen.contains(&x.to_bits()) && {
                    seen.push(x.to_bits());
                    true
                }
            });
            Some(a)
        })
}

impl Plugin for QuantileAggregationPlugin {
    fn manifest() -> Manifest {
        ManifestBuilder::new("quantile-aggregation", Family::QuantileAggregator)
            .version(env!("CARGO_PKG_VERSION"))
            .summary("Many models' quantile forecasts into one monotone, conformally calibrated set; forecast scoring")
            .guarantee(
                "solver=exact returns weights minimising the mean pinball loss on 'fit' over the simplex (an LP, to \
                 the interior point's 1e-10 tolerances); solver=gradient returns the best held-out epoch of Adam. \
                 monotone=sort|pava never raises any row's summed pinball loss. conformal=cqr: each calibrated \
                 central interval covers a new exchangeable outcome with probability >= 1 - alpha.",
            )
            .reference(
                "Fakoor, Kim, Mueller, Smola & Tibshirani, Flexible model aggregation for quantile regression, JMLR \
                 24(162) (2023); Romano, Patterson & Candes, Conformalized quantile regression, NeurIPS (2019); \
                 Gneiting & Raftery, JASA (2007)",
            )
            .cuda()
            .config::<Settings>()
            .table(forecast_table("fit", "rows to learn the weights on (y required)"))
            .table(forecast_table("calibration", "rows for the CQR adjustments (y required; conformal=cqr)").optional())
            .table(forecast_table("test", "rows to predict (y optional: metrics when present)").optional())
            // a run predicts the test rows, except granularity=none, which scores the fit table
            .step_requires_unless("predict", "test", ("granularity", "none"))
            // by parts (solver=gradient, full-batch steps): the fit rows partitioned, one pass an epoch
            .mergeable(&["fit"])
            .cut_anywhere(&["fit"])
            .given_whole(&["calibration", "test"])
            .rounds()
            .build()
    }

    type Config = Settings;

    fn create(settings: Settings, ctx: Context) -> Result<Created, PluginError> {
        let cfg = Config::new(settings)?;
        let by_parts = AggregationByParts { cfg: cfg.clone(), ctx: ctx.clone() };
        Ok(quiver_sdk::quantile_aggregator(QuantileAggregation { cfg, ctx: ctx.clone(), fitted: None, cqr: None })
            .in_rounds(by_parts, &ctx))
    }
}

quiver_sdk::export_plugin!(QuantileAggregationPlugin);
/// Read a forecast table with `layout`'s columns (every value finite: an error names table, column
/// and row), `y` when present (required when `need_y`), and the features when `features`.
fn read_forecasts<'a>(
    table: &TableRef<'a>,
    layout: &Layout,
    need_y: bool,
    features: bool,
) -> Result<Forecasts<'a>, PluginError> {
    table.non_empty()?;
    // subnormal values are refused: the problem is standardised, which would scale their
    // rounding to order one (data near 1e-320 left Adam's weights at their start)
    let y = if need_y { Some(table.f64_normal("y")?) } else { table.f64_normal_opt("y")? };
    let q = layout.columns.iter().map(|c| table.f64_normal(c)).collect::<Result<Vec<_>, _>>()?;
    let x = if features {
        layout.features.iter().map(|f| table.f64_normal(&format!("x_{f}"))).collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    Ok(Forecasts { n: table.nrows(), y, q, x })
}
