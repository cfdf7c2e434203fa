//! `quantile-aggregation` by parts, in rounds (docs/scale.md): the `fit` rows partitioned, the
//! `calibration` and `test` tables given whole to every partition.
//!
//! The weights are fitted by Adam with **full-batch** steps — the one-table run's fit with
//! `batch_rows` at least the training rows — one pass over the partitions per epoch
//! ([`quiver_aggregation::full_batch`]). The passes:
//! 1. **count**: the partition's layout (every partition must have the same columns), rows and
//!    the range of y; every value is checked here, so a bad one is named in the first pass;
//! 2. **centre** and 3. **spread**: Σ y/n, then Σ ((y − ȳ)/b)² with b = max |y − ȳ| (or, when y
//!    does not vary, the forecasts' largest distance from it): the problem's scale, computed as
//!    the one-table run computes it ([`quiver_aggregation::model::problem_scale`]);
//! 4. one pass per **epoch**: at the broadcast weights, the training rows' gradient sums and the
//!    held-out rows' loss (which blocks are held out is decided block by block,
//!    [`quiver_aggregation::adam::Split`]);
//! 5. **last**: at the fitted weights, the sums behind the fit's scores (the objective, the
//!    monotone aggregate's loss, every model's and the aggregate's metrics), and in the
//!    partition that holds the first fit row, the calibration and the test rows' quantiles,
//!    exactly as the one-table run computes them from the same weights.
//!
//! The mean and median baselines have no weights: they take the count pass and the last.

use crate::{gradient_json, metrics_json, wis_line, Config, Conformal, Fitted, QuantileAggregation, Solver};
use quiver_aggregation::adam::{CpuGradient, Split};
use quiver_aggregation::full_batch::FullBatch;
use quiver_aggregation::model::{problem_scale_of, Granularity, Structure, WeightKind, Weights};
use quiver_aggregation::{Forecasts, Layout, ScoreSums};
use quiver_sdk::abi::abi_stable::std_types::RVec;
use quiver_sdk::abi::{Device, ErrorKind, PluginError};
use quiver_sdk::serde_json::{json, Map, Value};
use quiver_sdk::{plugin_error, AggregationResult, Context, OwnedMatrix, QuantileAggregatorImpl};
use quiver_sdk::{Offsets, Round, RoundsImpl, Tables};
use serde::{Deserialize, Serialize};

/// Passes kept for the fit's epochs: the count, centre, spread and last passes, and a margin.
const OTHER_PASSES: usize = 10;

/// What every pass after the first is told: the run's layout, fit rows and y's range, and the
/// pass.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Broadcast {
    layout: Layout,
    n: usize,
    y_range: (f64, f64),
    pass: Pass,
}

/// The pass a broadcast asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Pass {
    /// Σ y / n.
    Centre,
    /// Σ ((y − mean) / big)², or where y does not vary the forecasts' largest |q − mean|.
    Spread { mean: f64, big: f64 },
    /// An epoch: the gradient and held-out loss at the fit's current weights.
    Epoch(Box<FullBatch>),
    /// The scores at the fitted weights (none for the baselines), with the fit's report.
    Last { weights: Option<Vec<f64>>, details: String },
}

/// A partition's contribution to one pass.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PassState {
    /// The first pass: also the fit rows the partition holds (`start..end` of all of them;
    /// none when it is empty), so that partitions given without their offsets, or out of order,
    /// are refused at once rather than after the epochs.
    Count { layout: Layout, n: usize, y_min: f64, y_max: f64, span: Option<(u64, u64)> },
    /// Σ y / n.
    Centre { sum: f64 },
    /// The spread's sum of squares and the forecasts' largest distance from the mean.
    Spread { squares: f64, far: f64 },
    /// The training rows' gradient sums and the held-out rows' summed loss.
    Epoch { gradient: Vec<f64>, holdout_loss: f64, rows: usize },
    /// The scores' sums, and what the partition holding the first fit row computed whole.
    Last { raw: ScoreSums, aggregate: ScoreSums, models: Vec<ScoreSums>, whole: Option<Whole> },
}

/// The calibration and the test predictions, computed once (by the partition holding the fit
/// table's first row).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Whole {
    json: String,
    quantiles: Vec<f64>,
    rows: usize,
    cols: usize,
}

/// The method by parts.
pub struct AggregationByParts {
    pub(crate) cfg: Config,
    pub(crate) ctx: Context,
}

fn unsupported(why: impl Into<String>) -> PluginError {
    PluginError::new(ErrorKind::Unsupported, why.into())
}

impl AggregationByParts {
    /// The weights' structure on `layout` (`None` for the mean and median baselines).
    fn structure(&self, layout: &Layout) -> Option<Structure> {
        Structure::new(self.cfg.granularity, layout.n_models(), layout.n_levels())
    }

    /// Settings a run by parts does not compute, refused by name before any data are read.
    fn refuse_settings(&self) -> Result<(), PluginError> {
        let c = &self.cfg;
        if c.granularity == Granularity::None {
            return Err(unsupported(
                "granularity=none scores the given tables whole: it is not computed by parts (give each table once)",
            ));
        }
        if c.weights == WeightKind::Local {
            return Err(unsupported(
                "weights=local are not computed by parts (their features' standardisation and per-row softmax are \
                 not built as passes): give table 'fit' once",
            ));
        }
        if c.solver == Solver::Exact || c.noncross {
            return Err(unsupported(
                "solver=exact solves one linear program over all the fit rows, which no partition holds: use \
                 solver=gradient to fit by parts",
            ));
        }
        Ok(())
    }

    /// The partition's fit table, its layout, and its forecasts (none when it is empty).
    fn read<'a>(&self, tables: &Tables<'a>) -> Result<(Layout, Option<Forecasts<'a>>), PluginError> {
        let t = tables.get("fit")?;
        let layout = Layout::from_names(t.role(), &t.column_names(), false).map_err(plugin_error)?;
        let fc = if t.nrows() == 0 { None } else { Some(crate::read_forecasts(&t, &layout, true, false)?) };
        Ok((layout, fc))
    }

    /// The partition's last pass: scores at the fitted weights, and the whole tables' part when
    /// it holds the first fit row.
    fn last(
        &self,
        tables: &Tables<'_>,
        offsets: &Offsets,
        layout: Layout,
        fc: Option<Forecasts<'_>>,
        weights: Option<Vec<f64>>,
    ) -> Result<PassState, PluginError> {
        let structure = self.structure(&layout);
        let levels = layout.levels.clone();
        let mut est = QuantileAggregation {
            cfg: self.cfg.clone(),
            ctx: self.ctx.clone(),
            fitted: Some(Fitted { layout, structure, weights: weights.map(Weights::Global), summary: Map::new() }),
            cqr: None,
        };
        let (mut raw, mut aggregate) = (ScoreSums::empty(&levels), ScoreSums::empty(&levels));
        let j = est.fitted.as_ref().expect("set").layout.n_models();
        let mut models = vec![ScoreSums::empty(&levels); j];
        let Some(fc) = fc else { return Ok(PassState::Last { raw, aggregate, models, whole: None }) };
        let t = tables.get("fit")?;
        let y = fc.y.expect("read with y");
        let k = levels.len();
        let f = est.fitted.as_ref().expect("set");
        let mut q = est.raw_aggregate(f, &t, &fc)?;
        raw = ScoreSums::of(&levels, y, |i, kk| q.values[i * k + kk]);
        self.cfg.monotone.apply(&mut q);
        aggregate = ScoreSums::of(&levels, y, |i, kk| q.values[i * k + kk]);
        for (m, sums) in models.iter_mut().enumerate() {
            let cols = &fc.q[m * k..(m + 1) * k];
            *sums = ScoreSums::of(&levels, y, |i, kk| cols[kk][i]);
        }
        let whole = if offsets.of("fit") == 0 {
            est.calibrate(tables)?;
            let r = est.predict(tables)?;
            Some(Whole {
                json: r.json.to_string(),
                quantiles: r.quantiles.data.to_vec(),
                rows: r.quantiles.rows,
                cols: r.quantiles.cols,
            })
        } else {
            None
        };
        Ok(PassState::Last { raw, aggregate, models, whole })
    }

    /// After the count: the passes the fit needs, or a refusal of what a run by parts cannot
    /// give as the one-table run gives it.
    fn plan(&self, layout: Layout, n: usize, y_range: (f64, f64)) -> Result<Broadcast, PluginError> {
        if n == 0 {
            return Err(PluginError::input("table 'fit' is empty in every partition: no rows to fit the weights on"));
        }
        let pass = match self.structure(&layout) {
            None => Pass::Last { weights: None, details: String::new() },
            Some(s) => {
                let one = QuantileAggregation { cfg: self.cfg.clone(), ctx: self.ctx.clone(), fitted: None, cqr: None };
                if one.solves_exactly(&s, n)? {
                    return Err(unsupported(format!(
                        "solver=auto solves the exact linear program for {n} fit rows (up to {:.0e} nonzeros), which \
                         needs every row at once: set solver=gradient to fit by parts",
                        crate::AUTO_EXACT_NONZEROS
                    )));
                }
                let a = &self.cfg.adam;
                let split = Split::new(n, a.holdout, a.seed);
                let train_blocks = split.blocks - split.held;
                if a.batch_rows / split.block < train_blocks {
                    return Err(unsupported(format!(
                        "by parts, solver=gradient takes one full-batch Adam step per pass over the data, which the \
                         one-table run takes when a minibatch holds every training row: set batch_rows to at least \
                         {n} (the fit rows) — now {}",
                        a.batch_rows
                    )));
                }
                let most = quiver_sdk::mergeable::MAX_ROUNDS as usize - OTHER_PASSES;
                if a.max_epochs > most {
                    return Err(unsupported(format!(
                        "by parts, every epoch is a pass over the data and a run takes at most {most} epochs: set \
                         max_epochs to at most {most} (now {})",
                        a.max_epochs
                    )));
                }
                Pass::Centre
            }
        };
        Ok(Broadcast { layout, n, y_range, pass })
    }

    /// The result from the last pass's merged state: the one-table run's JSON and quantiles.
    fn result(
        &self,
        b: &Broadcast,
        weights: &Option<Vec<f64>>,
        details: &str,
        sums: (ScoreSums, ScoreSums, Vec<ScoreSums>),
        whole: Whole,
    ) -> Result<AggregationResult, PluginError> {
        let (raw, aggregate, models) = sums;
        let layout = &b.layout;
        let levels = &layout.levels;
        let mut out = json!({
            "models": layout.models,
            "levels": levels,
            "granularity": self.cfg.granularity.to_string(),
        });
        if let (Some(w), Some(s)) = (weights, self.structure(layout)) {
            out["weights"] = s.weights_json(w, &layout.models, levels);
            out["solver_details"] = quiver_sdk::serde_json::from_str(details)
                .map_err(|e| quiver_sdk::state_error(format!("the fit's report does not parse ({e})")))?;
        }
        let agg = aggregate.scores(levels);
        out["objective"] = quiver_sdk::json_f64(raw.scores(levels).mean_pinball);
        out["fit_loss"] = quiver_sdk::json_f64(agg.mean_pinball);
        let per_model: Vec<_> = models.iter().map(|m| m.scores(levels)).collect();
        let metrics = metrics_json(layout, &per_model, Some(&agg));
        out["fit_wis"] = wis_line(&metrics);
        out["fit_metrics"] = metrics;
        let Value::Object(rest) = quiver_sdk::serde_json::from_str::<Value>(&whole.json)
            .map_err(|e| quiver_sdk::state_error(format!("the test part's JSON does not parse ({e})")))?
        else {
            return Err(quiver_sdk::state_error("the test part's JSON is not an object"));
        };
        let header = ["method", "version", "device", "notice", "parameters"];
        for (key, v) in rest {
            if !header.contains(&key.as_str()) && out.get(&key).is_none() {
                out[key] = v;
            }
        }
        let ctx = self.ctx();
        Ok(AggregationResult {
            device: ctx.device(),
            quantiles: OwnedMatrix { data: RVec::from(whole.quantiles), rows: whole.rows, cols: whole.cols },
            json: ctx.result_text(out),
        })
    }

    /// The run's context: the CPU, which computes every pass.
    fn ctx(&self) -> Context {
        self.ctx.on_cpu("by parts, every pass is computed on the CPU")
    }
}

/// A pass's rows that do not add up to the first pass's.
fn rows_changed(seen: usize, n: usize) -> PluginError {
    PluginError::input(format!(
        "table 'fit': this pass saw {seen} rows in its partitions, the first pass {n}: every pass must be given the \
         same partitions"
    ))
}

impl RoundsImpl for AggregationByParts {
    type Broadcast = Broadcast;
    type State = PassState;
    type Output = AggregationResult;

    fn partial(
        &self,
        tables: &Tables<'_>,
        offsets: &Offsets,
        broadcast: Option<&Broadcast>,
    ) -> Result<PassState, PluginError> {
        self.refuse_settings()?;
        let (layout, fc) = self.read(tables)?;
        let Some(b) = broadcast else {
            // the tables the last pass reads whole, asked for before any epoch is spent
            let needed = [("test", true), ("calibration", self.cfg.conformal == Conformal::Cqr)];
            if let Some((role, _)) = needed.iter().find(|(role, need)| *need && tables.opt(role).is_none()) {
                let why = if *role == "test" { "the run predicts its rows" } else { "conformal=cqr calibrates on it" };
                return Err(PluginError::input(format!(
                    "no '{role}' table was given: by parts it is given whole to every partition ({why})"
                )));
            }
            let Some(fc) = fc else {
                return Ok(PassState::Count {
                    layout,
                    n: 0,
                    y_min: f64::INFINITY,
                    y_max: f64::NEG_INFINITY,
                    span: None,
                });
            };
            let y = fc.y.expect("read with y");
            let (y_min, y_max) = y.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
            let start = offsets.of("fit");
            let span = Some((start, start.saturating_add(fc.n as u64)));
            return Ok(PassState::Count { layout, n: fc.n, y_min, y_max, span });
        };
        if layout != b.layout {
            return Err(PluginError::input(
                "table 'fit': this partition's forecast columns are not the first pass's: every pass must be given \
                 the same partitions",
            ));
        }
        let y = fc.as_ref().map_or(&[][..], |f| f.y.expect("read with y"));
        Ok(match &b.pass {
            Pass::Centre => {
                let n = b.n as f64;
                PassState::Centre { sum: y.iter().map(|v| v / n).sum() }
            }
            Pass::Spread { mean, big } => {
                let constant = b.y_range.0 == b.y_range.1;
                let squares = if constant { 0.0 } else { y.iter().map(|x| ((x - mean) / big).powi(2)).sum() };
                let far = match (&fc, constant) {
                    (Some(fc), true) => {
                        fc.q.iter().flat_map(|c| c.iter()).fold(0.0f64, |m, &v| m.max((v - mean).abs()))
                    }
                    _ => 0.0,
                };
                PassState::Spread { squares, far }
            }
            Pass::Epoch(fit) => {
                let s = self.structure(&b.layout).expect("a fit has weights");
                let mut gradient = vec![0.0; s.n_weights()];
                let mut holdout_loss = 0.0;
                if let Some(fc) = &fc {
                    let start = usize::try_from(offsets.of("fit")).unwrap_or(usize::MAX);
                    if start.checked_add(fc.n).is_none_or(|end| end > b.n) {
                        return Err(rows_changed(start.saturating_add(fc.n), b.n));
                    }
                    let (train, hold) = fit.split.ranges(start, fc.n);
                    let g = CpuGradient { s, q: &fc.q, y, levels: &b.layout.levels, block: fit.split.block };
                    if fit.wants_gradient() {
                        g.eval_ranges(&train, fit.weights(), Some(&mut gradient));
                    }
                    holdout_loss = g.eval_ranges(&hold, fit.weights(), None);
                }
                PassState::Epoch { gradient, holdout_loss, rows: y.len() }
            }
            Pass::Last { weights, .. } => self.last(tables, offsets, layout, fc, weights.clone())?,
        })
    }

    fn merge(&self, a: PassState, b: PassState) -> Result<PassState, PluginError> {
        use PassState as S;
        Ok(match (a, b) {
            (
                S::Count { layout, n, y_min, y_max, span },
                S::Count { layout: l2, n: n2, y_min: a2, y_max: b2, span: span2 },
            ) => {
                if layout != l2 {
                    return Err(PluginError::input(format!(
                        "table 'fit': the partitions' forecast columns differ (models {:?} at levels {:?}, and \
                         {:?} at {:?}): every partition must have the same columns",
                        layout.models, layout.levels, l2.models, l2.levels
                    )));
                }
                let span = match (span, span2) {
                    (Some(a), Some(b)) if a.1 != b.0 => {
                        return Err(PluginError::input(format!(
                            "table 'states': a partition of fit rows {}..{} merged with one of rows {}..{}: give each \
                             partition the rows before it (table 'partition', or `offsets` in Python) and merge them \
                             in order",
                            a.0, a.1, b.0, b.1
                        )))
                    }
                    (Some(a), Some(b)) => Some((a.0, b.1)),
                    (a, b) => a.or(b),
                };
                S::Count { layout, n: n + n2, y_min: y_min.min(a2), y_max: y_max.max(b2), span }
            }
            (S::Centre { sum }, S::Centre { sum: s2 }) => S::Centre { sum: sum + s2 },
            (S::Spread { squares, far }, S::Spread { squares: s2, far: f2 }) => {
                S::Spread { squares: squares + s2, far: far.max(f2) }
            }
            (S::Epoch { mut gradient, holdout_loss, rows }, S::Epoch { gradient: g2, holdout_loss: h2, rows: r2 }) => {
                gradient.iter_mut().zip(&g2).for_each(|(x, y)| *x += y);
                S::Epoch { gradient, holdout_loss: holdout_loss + h2, rows: rows + r2 }
            }
            (
                S::Last { mut raw, mut aggregate, mut models, whole },
                S::Last { raw: r2, aggregate: a2, models: m2, whole: w2 },
            ) => {
                raw.add(&r2);
                aggregate.add(&a2);
                models.iter_mut().zip(&m2).for_each(|(x, y)| x.add(y));
                let whole =
                    match (whole, w2) {
                        (Some(_), Some(_)) => return Err(PluginError::input(
                            "table 'states': two partitions start at row 0 of table 'fit' (give each partition the \
                             rows before it: table 'partition', or `offsets` in Python)",
                        )),
                        (w, None) | (None, w) => w,
                    };
                S::Last { raw, aggregate, models, whole }
            }
            _ => return Err(PluginError::input("table 'states': states of two different passes do not merge")),
        })
    }

    fn finish(
        &self,
        state: PassState,
        broadcast: Option<&Broadcast>,
    ) -> Result<Round<Broadcast, AggregationResult>, PluginError> {
        let wrong = || PluginError::input("table 'states': a state of another pass than the broadcast's");
        let Some(b) = broadcast else {
            let PassState::Count { layout, n, y_min, y_max, .. } = state else { return Err(wrong()) };
            return Ok(Round::Again(self.plan(layout, n, (y_min, y_max))?));
        };
        let mut next = b.clone();
        next.pass = match (state, &b.pass) {
            (PassState::Centre { sum }, Pass::Centre) => {
                let (lo, hi) = b.y_range;
                Pass::Spread { mean: sum, big: (hi - sum).abs().max((lo - sum).abs()) }
            }
            (PassState::Spread { squares, far }, Pass::Spread { big, .. }) => {
                let scale = problem_scale_of(b.n, *big, squares, b.y_range.0 == b.y_range.1, far);
                let s = self.structure(&b.layout).expect("a fit has weights");
                Pass::Epoch(Box::new(FullBatch::new(&s, b.n, scale, &self.cfg.adam)))
            }
            (PassState::Epoch { gradient, holdout_loss, rows }, Pass::Epoch(fit)) => {
                if rows != b.n {
                    return Err(rows_changed(rows, b.n));
                }
                let mut fit = fit.clone();
                let want = fit.wants_gradient();
                fit.advance(want.then_some(gradient.as_slice()), holdout_loss);
                quiver_numerics::checkpoint(&self.ctx, fit.epochs() as u64, self.cfg.adam.max_epochs as u64, "epochs")
                    .map_err(plugin_error)?;
                if fit.done() {
                    let (w, report) = fit.result();
                    let details = gradient_json(&report, &self.cfg.adam, Device::Cpu).to_string();
                    Pass::Last { weights: Some(w), details }
                } else {
                    Pass::Epoch(fit)
                }
            }
            (PassState::Last { raw, aggregate, models, whole }, Pass::Last { weights, details }) => {
                if aggregate.rows() != b.n {
                    return Err(rows_changed(aggregate.rows(), b.n));
                }
                let whole = whole.ok_or_else(|| {
                    PluginError::input(
                        "table 'states': no partition starts at row 0 of table 'fit' (give each partition the rows \
                         before it)",
                    )
                })?;
                return self.result(b, weights, details, (raw, aggregate, models), whole).map(Round::Done);
            }
            _ => return Err(wrong()),
        };
        Ok(Round::Again(next))
    }
}
