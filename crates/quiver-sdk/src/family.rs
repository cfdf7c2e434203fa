//! The families the SDK has typed traits for: their labels, their steps, and their typed results
//! with the one encoding of each into the ABI's [`StepOutput`].
//!
//! The ABI knows no family: a manifest carries a label and a list of steps, and every estimator is
//! the same object running named steps. A family here is a convenience for plugin authors — a Rust
//! trait with one method per step (`ConformalSelectorImpl::calibrate`, `::select`) and a typed
//! result — mapped onto that object by the adapters in this crate. Adding a family is adding a
//! variant here, its trait and its adapter (see docs/extending.md); the ABI, the host, the CLI and
//! the Python binding handle any label and any steps alike.

use crate::Result;
use quiver_abi::abi_stable::std_types::{ROption, RString, RVec};
use quiver_abi::{ArrayData, Device, ErrorKind, NamedArray, PluginError, StepOutput};

/// The families the SDK has typed traits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// Value and Q-function estimation from offline RL data: `fit`, then `values`.
    Critic,
    /// Combining many models' quantile forecasts (Fakoor et al., JMLR 2023): `fit`, `calibrate`,
    /// then `predict`.
    QuantileAggregator,
    /// Selecting units / accepting judgments with FDR or selective-risk guarantees: `calibrate`,
    /// then `select`.
    ConformalSelector,
    /// SURE-tuned compound estimation of many means: `estimate`.
    Shrinkage,
    /// Prediction sets for a function of a whole batch (Lee et al., 2024): `calibrate`, then
    /// `bound`.
    BatchPredictor,
    /// Judging results rather than producing them — aggregate metrics of RL runs with stratified
    /// bootstrap intervals (Agarwal et al., 2021), the risk–return of OPE estimators (Kiyohara et
    /// al., 2024): `evaluate`.
    Evaluator,
}

/// One step of a family: name, whether it changes the estimator, the table roles it prefers
/// (`*` alone: every table but those named after it), whether it cannot run without them (its
/// roles then go into the manifest's `requires` property), and its documentation.
pub(crate) struct FamilyStep {
    pub name: &'static str,
    pub mutates: bool,
    pub roles: &'static [&'static str],
    pub needs_roles: bool,
    pub doc: &'static str,
}

/// A step that reads its roles when they are given.
const fn step(name: &'static str, mutates: bool, roles: &'static [&'static str], doc: &'static str) -> FamilyStep {
    FamilyStep { name, mutates, roles, needs_roles: false, doc }
}

/// A step that cannot run without its roles.
const fn step_needing(
    name: &'static str,
    mutates: bool,
    roles: &'static [&'static str],
    doc: &'static str,
) -> FamilyStep {
    FamilyStep { name, mutates, roles, needs_roles: true, doc }
}

impl Family {
    /// Every family, in a fixed order.
    pub const ALL: [Family; 6] = [
        Family::Critic,
        Family::QuantileAggregator,
        Family::ConformalSelector,
        Family::Shrinkage,
        Family::BatchPredictor,
        Family::Evaluator,
    ];

    /// The label in manifests and on the command line.
    pub fn label(self) -> &'static str {
        match self {
            Family::Critic => "critic",
            Family::QuantileAggregator => "quantile-aggregator",
            Family::ConformalSelector => "conformal-selector",
            Family::Shrinkage => "shrinkage",
            Family::BatchPredictor => "batch-pi",
            Family::Evaluator => "evaluator",
        }
    }

    /// The family labelled `label`.
    pub fn parse(label: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.label() == label)
    }

    /// The family's steps, in lifecycle order.
    pub(crate) fn steps(self) -> &'static [FamilyStep] {
        match self {
            Family::Critic => CRITIC_STEPS,
            Family::QuantileAggregator => AGGREGATOR_STEPS,
            Family::ConformalSelector => SELECTOR_STEPS,
            Family::Shrinkage => SHRINKAGE_STEPS,
            Family::BatchPredictor => BATCH_STEPS,
            Family::Evaluator => EVALUATOR_STEPS,
        }
    }
}

const CRITIC_STEPS: &[FamilyStep] = &[
    step("fit", true, &["*", "queries"], "fit on the offline data"),
    step("values", false, &["queries"], "V or Q at the queried rows, and the policy-value summaries"),
];
const AGGREGATOR_STEPS: &[FamilyStep] = &[
    step_needing("fit", true, &["fit"], "learn the aggregation weights"),
    step("calibrate", true, &["calibration"], "conformal adjustments on held-out data"),
    step("predict", false, &["test"], "aggregated, monotone, calibrated test quantiles"),
];
const SELECTOR_STEPS: &[FamilyStep] = &[
    step_needing("calibrate", true, &["calibration"], "ingest the calibration data"),
    step_needing("select", false, &["test"], "select / accept test units"),
];
const SHRINKAGE_STEPS: &[FamilyStep] =
    &[step_needing("estimate", false, &["data"], "tune by an unbiased risk estimate; return the estimates")];
const BATCH_STEPS: &[FamilyStep] = &[
    step_needing("calibrate", true, &["calibration"], "ingest the calibration scores"),
    step("bound", false, &["test"], "the set or bound for the batch"),
];

const EVALUATOR_STEPS: &[FamilyStep] =
    &[step("evaluate", false, &["*"], "the evaluation statistics of the given results")];

/// What a family's step returns in plain Rust, and its one encoding as a [`StepOutput`]: the
/// summary JSON, then the typed per-unit arrays in a fixed order.
pub trait StepResult {
    /// Check that the per-unit numbers are finite (a NaN or an infinity there comes from an
    /// overflow and would reach the user as a JSON null with success).
    fn check_finite(&self) -> Result<()>;
    /// The ABI form.
    fn into_output(self) -> Result<StepOutput>;
}

impl StepResult for () {
    fn check_finite(&self) -> Result<()> {
        Ok(())
    }
    fn into_output(self) -> Result<StepOutput> {
        Ok(StepOutput::none())
    }
}

fn all_finite(what: &str, values: &[f64]) -> Result<()> {
    match values.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(i) => Err(PluginError::input(format!(
            "the result's {what} are not all finite (entry {i} is {}): the computation overflowed double \
             precision; rescale the inputs",
            values[i]
        ))),
    }
}

fn indices(v: RVec<u64>) -> ArrayData {
    ArrayData::I64(v.into_iter().map(|i| i64::try_from(i).unwrap_or(i64::MAX)).collect())
}

/// Result of a conformal selector: who is selected / accepted.
#[derive(Clone, Debug)]
pub struct SelectionResult {
    /// Device the computation ran on.
    pub device: Device,
    /// Per-test-unit statistic (conformal p-values, or the uncertainty score).
    pub unit_values: RVec<f64>,
    /// Name of `unit_values` in the result (`p_values`, `scores`).
    pub unit_values_name: RString,
    /// Selected / accepted test indices, 0-based, ascending.
    pub selected: RVec<u64>,
    /// Name of `selected` in the result (`selected`, `accepted`).
    pub selected_name: RString,
    /// The data-dependent threshold (BH cut-off on p-values, or λ̂); the summary reports it
    /// under the method's own name for it.
    pub threshold: f64,
    /// The JSON summary (common fields and the method's scalars), without the two arrays.
    pub json: RString,
}

impl StepResult for SelectionResult {
    fn check_finite(&self) -> Result<()> {
        all_finite(self.unit_values_name.as_str(), &self.unit_values)
    }
    /// Arrays: `selected` (i64), then the unit values (f64).
    fn into_output(self) -> Result<StepOutput> {
        Ok(StepOutput::new(
            self.json,
            RVec::from(vec![
                NamedArray::vector(self.selected_name.as_str(), indices(self.selected)),
                NamedArray::vector(self.unit_values_name.as_str(), ArrayData::F64(self.unit_values)),
            ]),
        ))
    }
}

/// Result of a batch prediction-set request.
#[derive(Clone, Debug)]
pub struct BatchResult {
    /// Device the computation ran on.
    pub device: Device,
    /// Lower end of the set (`-inf` for one-sided upper bounds).
    pub lower: f64,
    /// Upper end of the set.
    pub upper: f64,
    /// Selected test indices (selection mode), 0-based.
    pub selected: RVec<u64>,
    /// The complete JSON result.
    pub json: RString,
}

impl StepResult for BatchResult {
    /// Single bounds such as +inf are legal results: nothing to check.
    fn check_finite(&self) -> Result<()> {
        Ok(())
    }
    /// The JSON is complete: no arrays.
    fn into_output(self) -> Result<StepOutput> {
        Ok(StepOutput::new(self.json, RVec::new()))
    }
}

/// An owned row-major matrix.
#[derive(Clone, Debug, Default)]
pub struct OwnedMatrix {
    /// Row-major values, `rows * cols` of them.
    pub data: RVec<f64>,
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
}

/// Result of a quantile aggregator's prediction.
#[derive(Clone, Debug)]
pub struct AggregationResult {
    /// Device the computation ran on.
    pub device: Device,
    /// Test quantiles, one row per test unit, one column per level (0 columns: no quantile set,
    /// e.g. scoring only).
    pub quantiles: OwnedMatrix,
    /// The complete JSON summary, without the quantiles.
    pub json: RString,
}

impl StepResult for AggregationResult {
    /// ±∞ are legal quantiles (an interval end that too little calibration data cannot bound);
    /// NaN never is. The plugin checks that its other values did not overflow.
    fn check_finite(&self) -> Result<()> {
        match self.quantiles.data.iter().position(|x| x.is_nan()) {
            None => Ok(()),
            Some(i) => Err(PluginError::input(format!(
                "the result's quantiles are not all numbers (entry {i} is NaN): the computation overflowed double \
                 precision; rescale the inputs"
            ))),
        }
    }
    /// Arrays: `test_quantiles`, a `[rows, levels]` f64 matrix (absent with no quantile set).
    fn into_output(self) -> Result<StepOutput> {
        let q = self.quantiles;
        if q.rows.checked_mul(q.cols) != Some(q.data.len()) {
            return Err(PluginError::new(
                ErrorKind::Internal,
                format!("test_quantiles holds {} values, not {} x {}", q.data.len(), q.rows, q.cols),
            ));
        }
        let arrays = if q.cols == 0 {
            RVec::new()
        } else {
            RVec::from(vec![NamedArray {
                name: "test_quantiles".into(),
                shape: RVec::from(vec![q.rows as u64, q.cols as u64]),
                data: ArrayData::F64(q.data),
                in_json: true,
            }])
        };
        Ok(StepOutput::new(self.json, arrays))
    }
}

/// Result of a shrinkage estimator.
#[derive(Clone, Debug)]
pub struct ShrinkageResult {
    /// Device the computation ran on.
    pub device: Device,
    /// The tuned shrinkage parameter λ̂, for methods with one scalar λ.
    pub lambda_hat: ROption<f64>,
    /// The unbiased risk estimate of the returned estimates, for methods that have one.
    pub risk_estimate: ROption<f64>,
    /// Shrunken estimates, one per unit.
    pub estimates: RVec<f64>,
    /// Interval ends, when intervals were asked for: the p lower ends, then the p upper ends.
    pub intervals: ROption<RVec<f64>>,
    /// The JSON summary, without `estimates`, `lower` and `upper`.
    pub json: RString,
}

impl StepResult for ShrinkageResult {
    fn check_finite(&self) -> Result<()> {
        all_finite("estimates", &self.estimates)?;
        // the tuned risk is a number the method promises; λ̂ may be +inf (no shrinkage), never NaN
        if let Some(r) = self.risk_estimate.into_option().filter(|r| !r.is_finite()) {
            return Err(PluginError::input(format!(
                "the risk estimate is {r}: the data's scale overflows double precision in the risk (squares of \
                 values near 1e154 and beyond); rescale the data (e.g. divide the means by s and their variances \
                 by s^2)"
            )));
        }
        if self.lambda_hat.into_option().is_some_and(f64::is_nan) {
            return Err(PluginError::new(ErrorKind::Internal, "the tuned lambda is NaN".to_string()));
        }
        match self.intervals.as_ref().into_option() {
            Some(iv) => all_finite("interval ends", iv),
            None => Ok(()),
        }
    }
    /// Arrays: `estimates`, then `lower` and `upper` when intervals were computed (all f64).
    fn into_output(self) -> Result<StepOutput> {
        let p = self.estimates.len();
        let mut arrays = vec![NamedArray::vector("estimates", ArrayData::F64(self.estimates))];
        if let Some(iv) = self.intervals.into_option() {
            if iv.len() != 2 * p {
                return Err(PluginError::new(
                    ErrorKind::Internal,
                    format!("{} interval ends for {p} estimates (want {})", iv.len(), 2 * p),
                ));
            }
            arrays.push(NamedArray::vector("lower", ArrayData::F64(RVec::from(&iv[..p]))));
            arrays.push(NamedArray::vector("upper", ArrayData::F64(RVec::from(&iv[p..]))));
        }
        Ok(StepOutput::new(self.json, RVec::from(arrays)))
    }
}

/// Result of an evaluator: its statistics, as JSON (metrics per algorithm or estimator with their
/// intervals, curves); nothing per unit.
#[derive(Clone, Debug)]
pub struct EvaluationResult {
    /// The complete JSON result.
    pub json: RString,
}

impl StepResult for EvaluationResult {
    fn check_finite(&self) -> Result<()> {
        Ok(())
    }
    fn into_output(self) -> Result<StepOutput> {
        Ok(StepOutput::new(self.json, RVec::new()))
    }
}

/// Result of a critic query.
#[derive(Clone, Debug)]
pub struct CriticResult {
    /// Device the computation ran on.
    pub device: Device,
    /// V or Q per queried row (also in the JSON, under the method's own key).
    pub values: RVec<f64>,
    /// The complete JSON result.
    pub json: RString,
}

impl StepResult for CriticResult {
    fn check_finite(&self) -> Result<()> {
        all_finite("values", &self.values)
    }
    /// The JSON is complete, the queried values included; the values travel typed too, as
    /// `values`, an array the printed result does not show (it holds them under the method's own
    /// keys, or, when no rows were queried, not at all).
    fn into_output(self) -> Result<StepOutput> {
        let values = NamedArray { in_json: false, ..NamedArray::vector("values", ArrayData::F64(self.values)) };
        Ok(StepOutput::new(self.json, RVec::from(vec![values])))
    }
}
