//! `conformal-selection`: select the test units whose unobserved outcome exceeds a threshold,
//! with the false discovery rate controlled at level q — Benjamini–Hochberg on conformal p-values
//! (Jin & Candès, "Selection by prediction with conformal p-values", JMLR 2023).
//!
//! * Calibration scores (nondecreasing in y): `res` V = y − μ; `clip` V = M·1{y > c} + c·1{y ≤ c} − μ,
//!   M = ∞ by default (a calibration unit above c outranks every test score whatever the data's
//!   units; a finite default of 10^6 lost all power once c − μ passed it, e.g. outcomes in dollars).
//! * Test scores V̂_j = c_j − μ_j.
//! * p_j = (#{V_i < V̂_j} + U_j (1 + #{V_i = V̂_j})) / (n + 1); weighted (covariate shift):
//!   p_j = (Σ w_i 1{V_i < V̂_j} + (w_j + Σ w_i 1{V_i = V̂_j}) U_j) / (w_j + Σ w_i).
//! * BH at level q on the p-values (O(m), see `quiver_numerics::fdr`).
//!
//! Cost O((n + m) log(n + m)): sorted calibration scores, sorted test scores walked against them.
//! The official Python code drops one selected unit (`range(max(idx))`); this does not.

use quiver_sdk::abi::{abi_stable::std_types::RVec, Manifest, PluginError};
use quiver_sdk::plugin_error;
use quiver_sdk::{
    choices, column, serde_json::json, ConformalSelectorImpl, Context, ManifestBuilder, Plugin, TableBuilder, Tables,
};
use quiver_sdk::{Created, Family, MergeableImpl, Offsets, SelectionResult};
use rand::{Rng, SeedableRng};

/// CUDA source of the p-value kernel.
pub const PVALUE_KERNEL: &str = include_str!("kernels/pvalues.cu");

choices! {
    /// The calibration score.
    pub enum Score {
        /// V = M·1{y > c} + c·1{y ≤ c} − μ (the "clip" score; Jin & Candès' recommended choice).
        Clip = "clip",
        /// V = y − μ.
        Res = "res",
    }
}

choices! {
    /// How the U_j in the p-value are drawn.
    pub enum TieBreak {
        /// U_j ~ Uniform(0, 1), seeded (or the test table's `u` column).
        Random = "random",
        /// U_j = 1 (conservative p-values).
        Conservative = "conservative",
    }
}

quiver_sdk::config! {
    /// The parameters, validated.
    pub struct Config {
        /// FDR level q ∈ (0, 1).
        pub q: f64 = level(0.1, "FDR level"),
        /// Default threshold c when a table has no `c` column.
        pub c: f64 = float(Some(0.0), "threshold: select units with y > c (when no 'c' column)"),
        /// Score.
        pub score: Score = choice(Score::Clip, "calibration score: clip (M 1{y>c} + c 1{y<=c} - mu) or res (y - mu)"),
        /// The constant M of the clip score.
        pub clip_m: f64 = float(Some(f64::INFINITY), "the constant M of the clip score (inf: above every score)")
            .greater_than(0.0)
            .up_to_inf(),
        /// Tie-breaking.
        pub tie_break: TieBreak = choice(TieBreak::Random, "U_j: seeded uniforms (or the test 'u' column) or 1"),
        /// Seed for the U_j.
        pub seed: u64 = int(Some(0), "seed of the tie-breaking uniforms").at_least(0.0),
    }
}

impl quiver_sdk::PluginConfig for Config {}

/// Calibration scores V_i.
pub fn calibration_scores(y: &[f64], mu: &[f64], c: &dyn Fn(usize) -> f64, score: Score, clip_m: f64) -> Vec<f64> {
    (0..y.len())
        .map(|i| match score {
            Score::Res => y[i] - mu[i],
            Score::Clip => {
                let ci = c(i);
                (if y[i] > ci { clip_m } else { ci }) - mu[i]
            }
        })
        .collect()
}

/// Calibration ready for queries: sorted scores and, when weighted, the exclusive prefix sums of
/// the weights in the same order.
#[derive(Debug, Clone)]
pub struct Calibrated {
    /// Scores ascending.
    pub sorted: Vec<f64>,
    /// Prefix sums of weights in sorted order (n + 1 entries), when weighted; the weights are
    /// divided by [`Calibrated::weight_scale`] first.
    pub weight_prefix: Option<Vec<f64>>,
    /// The largest calibration weight: every weight (test weights too) is divided by it, so sums
    /// of up to billions of weights anywhere in the double range stay finite (the weighted
    /// p-values are unchanged when all weights are scaled together).
    pub weight_scale: f64,
}

impl Calibrated {
    /// Sort scores (and weights with them).
    pub fn new(scores: Vec<f64>, weights: Option<&[f64]>) -> Calibrated {
        match weights {
            None => {
                // sorted in place: no second copy of the scores
                Calibrated {
                    sorted: quiver_numerics::ranks::into_sorted(scores),
                    weight_prefix: None,
                    weight_scale: 1.0,
                }
            }
            Some(w) => {
                let scale = w.iter().copied().fold(0.0, f64::max);
                let scale = if scale > 0.0 { scale } else { 1.0 };
                let mut pairs: Vec<(f64, f64)> = scores.into_iter().zip(w.iter().map(|x| x / scale)).collect();
                pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
                let ws: Vec<f64> = pairs.iter().map(|p| p.1).collect();
                Calibrated {
                    sorted: pairs.into_iter().map(|p| p.0).collect(),
                    weight_prefix: Some(quiver_numerics::ranks::prefix_sums(&ws)),
                    weight_scale: scale,
                }
            }
        }
    }

    /// Conformal p-values on the CPU (the exact expressions of the CUDA kernel).
    pub fn p_values_cpu(&self, test_scores: &[f64], test_w: Option<&[f64]>, u: &[f64]) -> Vec<f64> {
        self.p_values_by(test_scores.len(), |j| test_scores[j], test_w, u.into())
    }

    /// [`Calibrated::p_values_cpu`] with the m test scores computed on demand (no array of them);
    /// uniforms given as an owned array become the p-values in place (no second m-long array).
    pub fn p_values_by(
        &self,
        m: usize,
        score: impl Fn(usize) -> f64 + Sync,
        test_w: Option<&[f64]>,
        u: std::borrow::Cow<'_, [f64]>,
    ) -> Vec<f64> {
        // each p-value straight from its counts (the counts themselves are never held)
        let n = self.sorted.len() as f64;
        let total = self.weight_prefix.as_ref().map(|wp| wp[self.sorted.len()]);
        let p_value = |j: usize, u: f64, lt: u64, le: u64| match (&self.weight_prefix, test_w, total) {
            (Some(wp), Some(tw), Some(total)) => {
                let (lt, le) = (lt as usize, le as usize);
                (wp[lt] + (tw[j] + (wp[le] - wp[lt])) * u) / (tw[j] + total)
            }
            _ => (lt as f64 + u * (1.0 + (le - lt) as f64)) / (n + 1.0),
        };
        match u {
            std::borrow::Cow::Owned(mut p) => {
                debug_assert_eq!(p.len(), m);
                quiver_numerics::ranks::counts_below_over(&self.sorted, &mut p, &score, |j, o, lt, le| {
                    *o = p_value(j, *o, lt, le)
                });
                p
            }
            std::borrow::Cow::Borrowed(u) => {
                quiver_numerics::ranks::counts_below_by(&self.sorted, m, &score, |j, lt, le| p_value(j, u[j], lt, le))
            }
        }
    }

    /// Conformal p-values on the GPU (kernel `conformal_pvalues`).
    pub fn p_values_cuda(
        &self,
        test_scores: &[f64],
        test_w: Option<&[f64]>,
        u: &[f64],
    ) -> Result<Vec<f64>, quiver_gpu::GpuError> {
        use quiver_gpu::cudarc::driver::PushKernelArg;
        let f = quiver_gpu::kernel("conformal_pvalues", PVALUE_KERNEL, "conformal_pvalues")?;
        let stream = quiver_gpu::stream()?;
        let n = self.sorted.len() as i64;
        let m = test_scores.len() as i64;
        let d_cal = stream.clone_htod(&self.sorted)?;
        let d_test = stream.clone_htod(test_scores)?;
        let d_u = stream.clone_htod(u)?;
        let mut d_out = stream.alloc_zeros::<f64>(test_scores.len().max(1))?;
        // unweighted runs pass 1-element placeholders plus a null flag through `weighted`
        let weighted = self.weight_prefix.is_some() && test_w.is_some();
        let d_wp = stream.clone_htod(self.weight_prefix.as_deref().unwrap_or(&[0.0]))?;
        let d_tw = stream.clone_htod(test_w.unwrap_or(&[0.0]))?;
        let null: u64 = 0;
        let mut launch = stream.launch_builder(&f);
        launch.arg(&d_cal).arg(&n);
        if weighted {
            launch.arg(&d_wp);
        } else {
            launch.arg(&null);
        }
        launch.arg(&d_test);
        if weighted {
            launch.arg(&d_tw);
        } else {
            launch.arg(&null);
        }
        launch.arg(&d_u).arg(&m).arg(&mut d_out);
        // SAFETY: argument types and order match the kernel signature; buffers hold n, n+1 and m
        // elements as the kernel reads them.
        unsafe { launch.launch(quiver_gpu::launch_config(test_scores.len())) }?;
        let mut out = stream.clone_dtoh(&d_out)?;
        out.truncate(test_scores.len());
        Ok(out)
    }
}

/// The uniforms U_j of test units `first .. first + m` (0-based, in test order over all of the
/// test data): 1 for conservative tie-breaking, else the ChaCha8 stream from `seed`, unit j taking
/// its 64 bits at word 2j — so a partition starting at unit `first` draws exactly the uniforms the
/// whole table would give its units.
pub fn tie_break_uniforms(first: u64, m: usize, tie_break: TieBreak, seed: u64) -> Vec<f64> {
    match tie_break {
        TieBreak::Conservative => vec![1.0; m],
        TieBreak::Random => {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            rng.set_word_pos(2 * u128::from(first));
            (0..m).map(|_| rng.random::<f64>()).collect()
        }
    }
}

/// The selector object: `calibrate` sorts scores, `select` computes p-values and BH.
pub struct ConformalSelection {
    config: Config,
    ctx: Context,
    calibration: Option<(Calibrated, usize)>,
}

fn internal(e: impl std::fmt::Display) -> PluginError {
    PluginError::new(quiver_sdk::abi::ErrorKind::Internal, e.to_string())
}

/// A per-row column, or one value for every row: read in place (a copy, or a column filled with
/// the parameter, would add a test table's worth of memory at 10^7 rows).
#[derive(Clone, Copy)]
enum PerRow<'a> {
    Column(&'a [f64]),
    Constant(f64),
}

impl PerRow<'_> {
    #[inline]
    fn at(&self, i: usize) -> f64 {
        match self {
            PerRow::Column(v) => v[i],
            PerRow::Constant(c) => *c,
        }
    }
}

fn column_or_param<'a>(t: &quiver_sdk::TableRef<'a>, name: &str, default: f64) -> Result<PerRow<'a>, PluginError> {
    Ok(t.f64_opt(name)?.map_or(PerRow::Constant(default), PerRow::Column))
}

fn check_weights(t: &quiver_sdk::TableRef<'_>, w: &[f64]) -> Result<(), PluginError> {
    t.check_each("w", w, |x| x >= 0.0, "must be >= 0 (a weight)")
}

/// Calibration weights: non-negative, and not all zero (the weighted p-values divide by their sum).
fn check_calibration_weights(t: &quiver_sdk::TableRef<'_>, w: &[f64]) -> Result<(), PluginError> {
    check_weights(t, w)?;
    if w.iter().all(|&x| x == 0.0) {
        return Err(PluginError::input(
            "table 'calibration', column 'w': every weight is 0, so the weighted p-values are undefined; give \
             positive weights (the likelihood ratio of test to calibration covariates)",
        ));
    }
    Ok(())
}

impl ConformalSelection {
    /// The calibration table's sorted scores (and weights) and its size.
    fn calibrated(&self, tables: &Tables<'_>) -> Result<(Calibrated, usize), PluginError> {
        let cal = tables.get("calibration")?;
        cal.non_empty()?;
        let y = cal.f64("y")?;
        let mu = cal.f64("mu")?;
        let c = column_or_param(&cal, "c", self.config.c)?;
        let scores = calibration_scores(y, mu, &|i| c.at(i), self.config.score, self.config.clip_m);
        let w = cal.f64_opt("w")?;
        if let Some(w) = w {
            check_calibration_weights(&cal, w)?;
        }
        let calibrated =
            quiver_numerics::with_threads(self.ctx.threads(), || Calibrated::new(scores, w)).map_err(internal)?;
        Ok((calibrated, y.len()))
    }

    /// The conformal p-values of the test table's units, the first of which is unit `first` of all
    /// the test data (its tie-breaking uniform is drawn for that place).
    fn p_values(&self, cal: &Calibrated, test: &quiver_sdk::TableRef<'_>, first: u64) -> Result<Vec<f64>, PluginError> {
        let mu = test.f64("mu")?;
        let c = column_or_param(test, "c", self.config.c)?;
        // the test scores c − μ, computed where they are used (the CUDA path copies them out)
        let score = |i: usize| c.at(i) - mu[i];
        let w = test.f64_opt("w")?;
        if let Some(w) = w {
            check_weights(test, w)?;
        }
        // on the calibration's scale (see `Calibrated::weight_scale`)
        let scaled: Option<Vec<f64>> = w.map(|w| w.iter().map(|x| x / cal.weight_scale).collect());
        if let Some(i) = scaled.as_ref().and_then(|s| s.iter().position(|x| !x.is_finite())) {
            return Err(test.row_error(
                "w",
                i,
                format_args!(
                    "weight {} is more than 1e308 times the largest calibration weight ({}): past double precision",
                    w.map_or(0.0, |w| w[i]),
                    cal.weight_scale
                ),
            ));
        }
        let w = scaled.as_deref();
        match (cal.weight_prefix.is_some(), w.is_some()) {
            (true, false) => {
                return Err(PluginError::input(
                    "table 'test' has no column 'w', but the calibration table is weighted: give both or neither",
                ))
            }
            (false, true) => {
                return Err(PluginError::input(
                    "table 'test' has a column 'w', but the calibration table has none: give both or neither",
                ))
            }
            _ => {}
        }
        let m = test.nrows();
        // the given uniforms are read in place
        let u: std::borrow::Cow<'_, [f64]> = match test.f64_opt("u")? {
            Some(u) => {
                test.check_each("u", u, |x| (0.0..=1.0).contains(&x), "is not in [0, 1]")?;
                u.into()
            }
            None => tie_break_uniforms(first, m, self.config.tie_break, self.config.seed).into(),
        };
        let threads = self.ctx.threads();
        // drawn uniforms are overwritten by the p-values (whichever device runs takes them)
        let u = std::cell::RefCell::new(Some(u));
        let take = || u.borrow_mut().take().expect("one device runs");
        self.ctx.dispatch(
            || {
                let u = take();
                quiver_numerics::with_threads(threads, move || cal.p_values_by(m, score, w, u)).map_err(internal)
            },
            || cal.p_values_cuda(&(0..m).map(score).collect::<Vec<f64>>(), w, &take()).map_err(plugin_error),
        )
    }

    /// BH at level q on all the test units' p-values, and the result.
    fn result(&self, n: usize, p: Vec<f64>) -> Result<SelectionResult, PluginError> {
        let m = p.len();
        let (k_star, selected) = quiver_numerics::fdr::benjamini_hochberg(&p, self.config.q);
        let threshold = self.config.q * k_star as f64 / m as f64;
        let json = self.ctx.result_text(json!({
            "n_calibration": n,
            "m_test": m,
            "k_star": k_star,
            "n_selected": selected.len(),
            "threshold": threshold,
        }));
        Ok(SelectionResult {
            device: self.ctx.device(),
            unit_values: RVec::from(p),
            unit_values_name: "p_values".into(),
            selected: RVec::from(selected),
            selected_name: "selected".into(),
            threshold,
            json,
        })
    }

    fn compute(&self, tables: &Tables<'_>) -> Result<SelectionResult, PluginError> {
        let (cal, n) = self
            .calibration
            .as_ref()
            .ok_or_else(|| quiver_sdk::state_error("conformal-selection: select() called before calibrate()"))?;
        let test = tables.get("test")?;
        test.non_empty()?;
        let p = self.p_values(cal, &test, 0)?;
        self.result(*n, p)
    }
}

/// What a partition of the test units contributes: the calibration it was scored against (its
/// size and a fingerprint of its sorted scores and weights, which every partition must share) and
/// its units' p-values, in order. BH needs every p-value's rank among all m, and the result lists
/// every unit's p-value, so the state is the p-values themselves — 8 bytes a test unit.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SelectionState {
    n_calibration: usize,
    calibration: u64,
    p_values: Vec<f64>,
}

/// `conformal-selection` by parts: the calibration table given whole to every partition, the test
/// units partitioned (docs/scale.md).
pub struct SelectionByParts(ConformalSelection);

impl MergeableImpl for SelectionByParts {
    type State = SelectionState;
    type Output = SelectionResult;
    fn partial(&self, tables: &Tables<'_>, offsets: &Offsets) -> Result<SelectionState, PluginError> {
        let (cal, n) = self.0.calibrated(tables)?;
        let calibration = quiver_sdk::mergeable::fingerprint(
            cal.sorted.iter().copied().chain(cal.weight_prefix.iter().flatten().copied()).chain([cal.weight_scale]),
        );
        let test = tables.get("test")?;
        let p_values = if test.nrows() == 0 { Vec::new() } else { self.0.p_values(&cal, &test, offsets.of("test"))? };
        Ok(SelectionState { n_calibration: n, calibration, p_values })
    }
    fn merge(&self, mut a: SelectionState, b: SelectionState) -> Result<SelectionState, PluginError> {
        if (a.n_calibration, a.calibration) != (b.n_calibration, b.calibration) {
            return Err(PluginError::input(
                "table 'states': the partitions were scored against different calibration tables (every partition \
                 reads the same calibration table whole)",
            ));
        }
        a.p_values.extend(b.p_values);
        Ok(a)
    }
    fn finish(&self, state: SelectionState) -> Result<SelectionResult, PluginError> {
        if state.p_values.is_empty() {
            return Err(PluginError::input("table 'test' is empty in every partition: no unit to select from"));
        }
        self.0.result(state.n_calibration, state.p_values)
    }
}

impl ConformalSelectorImpl for ConformalSelection {
    fn calibrate(&mut self, tables: &Tables<'_>) -> Result<(), PluginError> {
        self.calibration = Some(self.calibrated(tables)?);
        Ok(())
    }

    fn select(&self, tables: &Tables<'_>) -> Result<SelectionResult, PluginError> {
        self.compute(tables)
    }
}

/// The plugin.
pub struct ConformalSelectionPlugin;

impl Plugin for ConformalSelectionPlugin {
    fn manifest() -> Manifest {
        ManifestBuilder::new("conformal-selection", Family::ConformalSelector)
            .version(env!("CARGO_PKG_VERSION"))
            .summary("Select test units whose outcome exceeds c with FDR <= q: BH on conformal p-values")
            .guarantee(
                "FDR <= q (expected fraction of selected units with y <= c), finite-sample, when calibration \
                 and test units are exchangeable (unweighted) or under covariate shift with the true \
                 likelihood ratio as w (weighted; with random tie-breaking).",
            )
            .reference("Jin & Candes, Selection by prediction with conformal p-values, JMLR 24 (2023)")
            .cuda()
            .config::<Config>()
            .table(
                TableBuilder::new("calibration", "labelled units")
                    .column(column::f64("y", "observed outcome"))
                    .column(column::f64("mu", "model prediction"))
                    .column(column::f64_opt("c", "per-unit threshold (else parameter c)"))
                    .column(column::f64_opt("w", "covariate-shift weight (>= 0)")),
            )
            .table(
                TableBuilder::new("test", "units to select from")
                    .column(column::f64("mu", "model prediction"))
                    .column(column::f64_opt("c", "per-unit threshold (else parameter c)"))
                    .column(column::f64_opt("w", "covariate-shift weight (>= 0)"))
                    .column(column::f64_opt("u", "tie-breaking uniform in [0, 1]")),
            )
            .mergeable(&["test"])
            .cut_anywhere(&["test"])
            .given_whole(&["calibration"])
            .build()
    }

    type Config = Config;

    fn create(config: Config, ctx: Context) -> Result<Created, PluginError> {
        let parts =
            SelectionByParts(ConformalSelection { config: config.clone(), ctx: ctx.clone(), calibration: None });
        Ok(quiver_sdk::conformal_selector(ConformalSelection { config, ctx: ctx.clone(), calibration: None })
            .mergeable(parts, &ctx))
    }
}

quiver_sdk::export_plugin!(ConformalSelectionPlugin);
