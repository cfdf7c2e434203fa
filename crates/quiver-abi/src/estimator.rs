//! The one estimator object every plugin returns, and what its steps give back.

use crate::{PluginResult, TableViews};
use abi_stable::{
    sabi_trait,
    std_types::{RBox, RStr, RString, RVec},
    StableAbi,
};

/// The values of one output array.
#[repr(u8)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub enum ArrayData {
    /// 64-bit floats (estimates, p-values, interval ends, quantiles).
    F64(RVec<f64>),
    /// 64-bit integers (indices of selected units, counts).
    I64(RVec<i64>),
    /// Booleans (flags per unit).
    Bool(RVec<bool>),
    /// Raw bytes (a serialised state, an encoded picture).
    Bytes(RVec<u8>),
}

impl ArrayData {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            ArrayData::F64(v) => v.len(),
            ArrayData::I64(v) => v.len(),
            ArrayData::Bool(v) => v.len(),
            ArrayData::Bytes(v) => v.len(),
        }
    }
    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `f64`, `i64`, `bool` or `bytes`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            ArrayData::F64(_) => "f64",
            ArrayData::I64(_) => "i64",
            ArrayData::Bool(_) => "bool",
            ArrayData::Bytes(_) => "bytes",
        }
    }
}

/// A named, typed, shaped array of a step's output: `shape` lists the extent of each axis
/// (`[n]` for one value per unit, `[n, k]` for a row of `k` per unit, row-major), and the
/// product of the extents is the number of values.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct NamedArray {
    /// The array's name in the result (`p_values`, `selected`, `test_quantiles`, ...).
    pub name: RString,
    /// The extent of each axis.
    pub shape: RVec<u64>,
    /// The values, row-major.
    pub data: ArrayData,
    /// Whether the printed result (the CLI's table and `--json`, Python's result) shows the
    /// array; `false` for one kept for programmatic callers only, e.g. a critic's value at every
    /// data row when no `queries` were asked.
    pub in_json: bool,
}

impl NamedArray {
    /// A one-axis array named `name`.
    pub fn vector(name: &str, data: ArrayData) -> Self {
        let n = data.len() as u64;
        NamedArray { name: name.into(), shape: RVec::from(vec![n]), data, in_json: true }
    }
    /// A row-major matrix of `cols` values per row (`data.len()` a multiple of `cols`).
    pub fn matrix(name: &str, cols: usize, data: ArrayData) -> Self {
        let rows = data.len().checked_div(cols).unwrap_or(0) as u64;
        NamedArray { name: name.into(), shape: RVec::from(vec![rows, cols as u64]), data, in_json: true }
    }
    /// Whether the shape's product is the number of values.
    pub fn shape_matches(&self) -> bool {
        let mut n: u64 = 1;
        for &e in self.shape.iter() {
            match n.checked_mul(e) {
                Some(m) => n = m,
                None => return false,
            }
        }
        n == self.data.len() as u64
    }
}

/// What a step returns: a JSON summary and named typed arrays. The arrays travel as typed
/// buffers, not as JSON text (rendering a million p-values as text costs more than computing
/// them); the complete JSON of a result is the summary's fields followed by the arrays.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default, PartialEq)]
pub struct StepOutput {
    /// A JSON object, or empty text for a step that returns nothing (`fit`, `calibrate`).
    pub json: RString,
    /// The typed arrays, in the order they follow the summary.
    pub arrays: RVec<NamedArray>,
}

impl StepOutput {
    /// A summary (a JSON object's text) and its arrays.
    pub fn new(json: RString, arrays: RVec<NamedArray>) -> Self {
        StepOutput { json, arrays }
    }
    /// The output of a step that returns nothing.
    pub fn none() -> Self {
        StepOutput::default()
    }
    /// Whether the step returned nothing (no summary, no arrays).
    pub fn is_none(&self) -> bool {
        self.json.is_empty() && self.arrays.is_empty()
    }
}

/// The estimator a plugin's `create` returns: one object for every family, whose lifecycle is
/// a list of named steps declared in the manifest ([`crate::StepSpec`]). The host calls
/// [`EstimatorObject::step`] for a step that changes the estimator (`fit`, `calibrate`) and
/// [`EstimatorObject::query`] for one that only reads it (`select`, `values`, `predict`); an
/// unknown name, or a step called through the wrong one, is an [`crate::ErrorKind::State`]
/// error.
///
/// A prefix trait object: methods may be added after the `last_prefix_field` (a host calling one
/// on an older plugin gets abi_stable's "method not available" and falls back), never before.
#[sabi_trait]
pub trait EstimatorObject: Send + Sync {
    /// Run the state-changing step `name` on `tables`.
    fn step(&mut self, name: RStr<'_>, tables: TableViews<'_>) -> PluginResult<StepOutput>;
    /// Run the read-only step `name` on `tables`.
    #[sabi(last_prefix_field)]
    fn query(&self, name: RStr<'_>, tables: TableViews<'_>) -> PluginResult<StepOutput>;
}

/// The boxed estimator object that crosses the boundary.
pub type EstimatorBox = EstimatorObject_TO<'static, RBox<()>>;
