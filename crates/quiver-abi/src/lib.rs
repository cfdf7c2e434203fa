//! The stable ABI between the Quiver host and its estimator plugins.
//!
//! This is the only crate of the workspace that names `abi_stable` (the SDK re-exports what plugin
//! authors need). Everything that crosses the boundary is defined here:
//!
//! * [`PluginIdentity`]: a tiny C-ABI value every plugin exports under [`IDENTITY_SYMBOL`], read by
//!   the host with `libloading` *before* abi_stable's layout checks, so that a file that is not a
//!   Quiver plugin, or one built against another ABI version, gets a one-line message.
//! * Data views ([`TableView`], [`ColumnView`], [`MatrixView`]): borrowed, typed, named columns.
//! * The [`Manifest`]: what a method is, which parameters and tables it takes, what it guarantees.
//! * One `#[sabi_trait]` per estimator family ([`Critic`], [`QuantileAggregator`],
//!   [`ConformalSelector`], [`Shrinkage`], [`BatchPredictor`]), each a stateful object with the
//!   family's lifecycle, and the typed result struct it returns.
//! * The root module [`PluginMod`], a prefix type that can grow by appending fields after its
//!   `last_prefix_field`.
//!
//! Rules (see `docs/abi.md`): only `abi_stable` types and `#[repr(C)]` values cross the boundary;
//! every entry point catches panics (the SDK does this); libraries are never unloaded.
#![allow(non_local_definitions)]
#![allow(clippy::too_many_arguments)]

pub use abi_stable;

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec},
    StableAbi,
};

/// Version of the Quiver plugin ABI. The host refuses a plugin whose major or minor differs
/// (while the major is 0, the minor is the breaking number, as in Cargo's semver rules).
pub const ABI_VERSION: AbiVersion = AbiVersion { major: 0, minor: 3 };

/// Name of the C-ABI symbol (an `extern "C" fn() -> PluginIdentity`) every plugin exports.
pub const IDENTITY_SYMBOL: &str = "quiver_plugin_identity";

/// Magic number in [`PluginIdentity::magic`]: ASCII "QUIVERPL".
pub const IDENTITY_MAGIC: u64 = 0x5155_4956_4552_504C;

/// An ABI version, `major.minor`.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbiVersion {
    /// Major version.
    pub major: u32,
    /// Minor version (breaking while `major == 0`).
    pub minor: u32,
}

impl AbiVersion {
    /// Whether a plugin speaking `other` can be loaded by a host speaking `self`.
    pub fn compatible_with(&self, other: &AbiVersion) -> bool {
        self.major == other.major && (self.major != 0 || self.minor == other.minor)
    }
}

impl std::fmt::Display for AbiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// What [`IDENTITY_SYMBOL`] returns: plain C data, readable whatever the plugin's abi_stable build.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PluginIdentity {
    /// Always [`IDENTITY_MAGIC`].
    pub magic: u64,
    /// The Quiver ABI version the plugin was compiled against.
    pub abi: AbiVersion,
    /// NUL-terminated, `'static` version string of the SDK the plugin was built with.
    pub sdk_version: *const std::ffi::c_char,
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// The class of a plugin error.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A table, column or value is unusable (the message names table, column and row).
    InvalidInput,
    /// A parameter is unknown, of the wrong type, or out of range.
    InvalidParameter,
    /// The request is valid but this method or device cannot do it.
    Unsupported,
    /// The GPU could not be used.
    Device,
    /// The plugin panicked; the panic was caught at the boundary.
    Panic,
    /// A lifecycle step was called out of order (e.g. `select` before `calibrate`).
    State,
    /// The caller asked the plugin to stop (its progress callback returned `false`).
    Cancelled,
    /// Anything else.
    Internal,
    /// A numerical method failed on valid input (a solver's breakdown): not the data's fault,
    /// and not a bug in the request; the message says what failed and what to try.
    Numerical,
}

/// An error returned across the boundary.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct PluginError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// A one-paragraph human message.
    pub message: RString,
}

impl PluginError {
    /// Build an error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        PluginError { kind, message: RString::from(message.into()) }
    }
    /// Shorthand for [`ErrorKind::InvalidInput`].
    pub fn input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }
    /// Shorthand for [`ErrorKind::InvalidParameter`].
    pub fn param(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParameter, message)
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for PluginError {}

/// Result type of every entry point.
pub type PluginResult<T> = RResult<T, PluginError>;

// ---------------------------------------------------------------------------------------------
// Data views
// ---------------------------------------------------------------------------------------------

/// The element type of a column.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    /// 64-bit float.
    F64,
    /// 32-bit float.
    F32,
    /// 64-bit signed integer (ids, counts).
    I64,
    /// Boolean (0/1 flags).
    Bool,
}

impl ColumnKind {
    /// Lower-case name used in manifests and messages.
    pub fn name(&self) -> &'static str {
        match self {
            ColumnKind::F64 => "f64",
            ColumnKind::F32 => "f32",
            ColumnKind::I64 => "i64",
            ColumnKind::Bool => "bool",
        }
    }
}

/// The borrowed values of one column: contiguous, one entry per row.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub enum ColumnData<'a> {
    /// 64-bit floats.
    F64(RSlice<'a, f64>),
    /// 32-bit floats.
    F32(RSlice<'a, f32>),
    /// 64-bit integers.
    I64(RSlice<'a, i64>),
    /// Booleans.
    Bool(RSlice<'a, bool>),
}

impl ColumnData<'_> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        match self {
            ColumnData::F64(s) => s.len(),
            ColumnData::F32(s) => s.len(),
            ColumnData::I64(s) => s.len(),
            ColumnData::Bool(s) => s.len(),
        }
    }
    /// Whether the column has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The element type.
    pub fn kind(&self) -> ColumnKind {
        match self {
            ColumnData::F64(_) => ColumnKind::F64,
            ColumnData::F32(_) => ColumnKind::F32,
            ColumnData::I64(_) => ColumnKind::I64,
            ColumnData::Bool(_) => ColumnKind::Bool,
        }
    }
}

/// A named column.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct ColumnView<'a> {
    /// Column name, as the method's manifest declares it.
    pub name: RStr<'a>,
    /// Values.
    pub data: ColumnData<'a>,
}

/// A borrowed table: named columns of equal length, named by its role (`calibration`, `test`, ...).
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct TableView<'a> {
    /// Role of the table (`calibration`, `test`, `data`, `transitions`, ...).
    pub role: RStr<'a>,
    /// Number of rows; every column has exactly this many entries.
    pub nrows: usize,
    /// The columns.
    pub columns: RSlice<'a, ColumnView<'a>>,
}

/// A borrowed strided 2-D matrix. Element `(i, j)` lives at
/// `data[offset + i * row_stride + j * col_stride]` (strides in elements, non-negative).
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct MatrixView<'a, T: 'a> {
    /// The storage the matrix lives in.
    pub data: RSlice<'a, T>,
    /// Offset of element (0, 0) in `data`.
    pub offset: usize,
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Distance between rows, in elements.
    pub row_stride: usize,
    /// Distance between columns, in elements.
    pub col_stride: usize,
}

impl<'a, T> MatrixView<'a, T> {
    /// A row-major contiguous matrix over `data` (`data.len() == rows * cols`).
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Option<Self> {
        (rows.checked_mul(cols)? == data.len()).then(|| MatrixView {
            data: RSlice::from_slice(data),
            offset: 0,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        })
    }
    /// Whether every index the shape and strides reach lies inside `data`.
    pub fn in_bounds(&self) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return self.offset <= self.data.len();
        }
        let last = (self.rows - 1)
            .checked_mul(self.row_stride)
            .and_then(|a| (self.cols - 1).checked_mul(self.col_stride).map(|b| (a, b)))
            .and_then(|(a, b)| a.checked_add(b))
            .and_then(|x| x.checked_add(self.offset));
        matches!(last, Some(l) if l < self.data.len())
    }
}

/// An owned row-major matrix returned by plugins.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default)]
pub struct OwnedMatrix {
    /// Row-major values, `rows * cols` of them.
    pub data: RVec<f64>,
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
}

// ---------------------------------------------------------------------------------------------
// Manifest
// ---------------------------------------------------------------------------------------------

/// The five estimator families.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// Value and Q-function estimation from offline RL data.
    Critic,
    /// Combining many models' quantile forecasts (Fakoor et al., JMLR 2023).
    QuantileAggregator,
    /// Selecting units / accepting judgments with FDR or selective-risk guarantees.
    ConformalSelector,
    /// SURE-tuned compound estimation of many means.
    Shrinkage,
    /// Prediction sets for a function of a whole batch (Lee et al., 2024).
    BatchPredictive,
}

impl Family {
    /// All families, in a fixed order.
    pub const ALL: [Family; 5] = [
        Family::Critic,
        Family::QuantileAggregator,
        Family::ConformalSelector,
        Family::Shrinkage,
        Family::BatchPredictive,
    ];
    /// The kebab-case name used on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Family::Critic => "critic",
            Family::QuantileAggregator => "quantile-aggregator",
            Family::ConformalSelector => "conformal-selector",
            Family::Shrinkage => "shrinkage",
            Family::BatchPredictive => "batch-pi",
        }
    }
    /// Parse a kebab-case family name.
    pub fn parse(s: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.name() == s)
    }
}

/// A compute device.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    /// The CPU path (always present).
    Cpu,
    /// An NVIDIA GPU through CUDA.
    Cuda,
}

impl Device {
    /// `cpu` or `cuda`.
    pub fn name(&self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
        }
    }
}

/// The device a caller asks for.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceRequest {
    /// CUDA when a usable GPU is present and the method has a CUDA path, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA, or an error.
    Cuda,
}

/// The type of a parameter.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// A float (JSON number; `inf`/`-inf` as strings).
    Float,
    /// An integer.
    Int,
    /// `true` / `false`.
    Bool,
    /// One of [`ParamSpec::choices`].
    Choice,
    /// Free text.
    Text,
}

/// One end of the range a numeric parameter may take.
///
/// A float parameter with the default ends `(-inf, inf)` (both open) takes every finite number;
/// `inf` itself is allowed only where an end is `inf` and closed (`[0, inf]`).
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq)]
pub struct Bound {
    /// The end point (may be ±∞).
    pub value: f64,
    /// Whether the end point itself is allowed.
    pub inclusive: bool,
}

impl Bound {
    /// No lower limit: every finite value is above it.
    pub const NONE_BELOW: Bound = Bound { value: f64::NEG_INFINITY, inclusive: false };
    /// No upper limit: every finite value is below it.
    pub const NONE_ABOVE: Bound = Bound { value: f64::INFINITY, inclusive: false };
    /// Whether `x` lies on the allowed side of this bound taken as a lower end.
    pub fn admits_from_below(&self, x: f64) -> bool {
        x > self.value || (self.inclusive && x == self.value)
    }
    /// Whether `x` lies on the allowed side of this bound taken as an upper end.
    pub fn admits_from_above(&self, x: f64) -> bool {
        x < self.value || (self.inclusive && x == self.value)
    }
}

/// One parameter of a method.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct ParamSpec {
    /// Name (as in `--set NAME=VALUE`).
    pub name: RString,
    /// Type.
    pub kind: ParamKind,
    /// Default as JSON text (`0.1`, `"clip"`, `null` for "not set": the parameter is optional).
    pub default_json: RString,
    /// Allowed values, for [`ParamKind::Choice`].
    pub choices: RVec<RString>,
    /// Lower end of the allowed range ([`ParamKind::Float`] and [`ParamKind::Int`]).
    pub lower: Bound,
    /// Upper end of the allowed range ([`ParamKind::Float`] and [`ParamKind::Int`]).
    pub upper: Bound,
    /// One-line documentation.
    pub doc: RString,
}

impl ParamSpec {
    /// Whether `x` lies in `[lower, upper]` (ends open or closed as declared). NaN never does.
    pub fn in_range(&self, x: f64) -> bool {
        self.lower.admits_from_below(x) && self.upper.admits_from_above(x)
    }
    /// What a value of this parameter must be, for messages and `quiver info`:
    /// `a number in (0, 1)`, `a finite number`, `an integer in [0, 10000]`, `one of clip | res`.
    pub fn requirement(&self) -> String {
        let unbounded = self.lower == Bound::NONE_BELOW && self.upper == Bound::NONE_ABOVE;
        match self.kind {
            ParamKind::Float if unbounded => "a finite number".into(),
            ParamKind::Float => format!("a number in {}", self.range_text()),
            ParamKind::Int if unbounded => "an integer".into(),
            ParamKind::Int => format!("an integer in {}", self.range_text()),
            ParamKind::Bool => "true or false".into(),
            ParamKind::Choice => {
                format!("one of {}", self.choices.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(" | "))
            }
            ParamKind::Text => "text".into(),
        }
    }
    /// The allowed range in interval notation, e.g. `(0, 1)`, `[0, inf]`, `[1, 10000]`.
    pub fn range_text(&self) -> String {
        let num = |x: f64| {
            if x == f64::INFINITY {
                "inf".to_string()
            } else if x == f64::NEG_INFINITY {
                "-inf".to_string()
            } else {
                format!("{x}")
            }
        };
        format!(
            "{}{}, {}{}",
            if self.lower.inclusive { '[' } else { '(' },
            num(self.lower.value),
            num(self.upper.value),
            if self.upper.inclusive { ']' } else { ')' }
        )
    }
}

/// One column a method reads from a table.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct ColumnSpec {
    /// Column name, or a prefix when `prefix` is true (`q_` matches `q_gbm_0.05`).
    pub name: RString,
    /// Element type.
    pub kind: ColumnKind,
    /// Whether the table must have it.
    pub required: bool,
    /// Whether `name` is a prefix matching a family of columns.
    pub prefix: bool,
    /// Whether NaN / ±inf are allowed (otherwise the host rejects them, naming the row).
    pub allow_nonfinite: bool,
    /// An i64 id column in which an empty CSV cell means "none" and reads as -1 (e.g. `a_next`
    /// on a row that ends its episode: there is no next action).
    pub empty_means_none: bool,
    /// One-line documentation.
    pub doc: RString,
}

/// One input table a method reads, by role.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct TableSpec {
    /// Role name (`calibration`, `test`, ...).
    pub role: RString,
    /// Whether the table must be given.
    pub required: bool,
    /// What the table holds.
    pub doc: RString,
    /// Its columns.
    pub columns: RVec<ColumnSpec>,
}

/// Everything the host and CLI know about a method without running it.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct Manifest {
    /// Method name, unique among loaded plugins (`conformal-selection`).
    pub name: RString,
    /// Family.
    pub family: Family,
    /// Plugin version (its crate version).
    pub version: RString,
    /// One-line summary.
    pub summary: RString,
    /// The guarantee, stated exactly (what is controlled, under which assumption).
    pub guarantee: RString,
    /// Paper(s) implemented.
    pub reference: RString,
    /// Parameters.
    pub params: RVec<ParamSpec>,
    /// Input tables.
    pub tables: RVec<TableSpec>,
    /// Devices with a code path.
    pub devices: RVec<Device>,
}

/// Where a plugin reports the progress of a long step (a fit's iterations, a pass over the
/// data), and learns whether to go on: `report(data, done, total, label)` returns `false` when the
/// caller wants the plugin to stop, which it then does at its next checkpoint with an
/// [`ErrorKind::Cancelled`] error. `total` is 0 when unknown (an iteration count to a tolerance).
///
/// The host keeps `data` valid, and `report` safe to call from any thread, for as long as the
/// estimator built with it lives.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct ProgressSink {
    /// The caller's state, passed back to `report`.
    pub data: *const (),
    /// The callback, `(data, done, total, label) -> keep going`; `None`: nobody is listening and
    /// nothing can cancel.
    pub report: Option<extern "C" fn(data: *const (), done: u64, total: u64, label: RStr<'_>) -> bool>,
}

impl ProgressSink {
    /// No progress reporting.
    pub const NONE: ProgressSink = ProgressSink { data: std::ptr::null(), report: None };
    /// Report `done` of `total` for `label`; `false` when the caller asks to stop.
    pub fn report(&self, done: u64, total: u64, label: &str) -> bool {
        match self.report {
            Some(f) => f(self.data, done, total, RStr::from_str(label)),
            None => true,
        }
    }
}

// SAFETY: the host that builds a sink guarantees `report` may be called from any thread with
// `data` (see the type's documentation); the sink itself is two plain pointers.
unsafe impl Send for ProgressSink {}
// SAFETY: as above.
unsafe impl Sync for ProgressSink {}

/// What the host tells a plugin about the run.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct RunContext {
    /// The device asked for.
    pub device: DeviceRequest,
    /// Worker threads the plugin may use (0 = its own default).
    pub threads: u32,
    /// Where long steps report progress, and learn to stop.
    pub progress: ProgressSink,
}

impl Default for RunContext {
    fn default() -> Self {
        RunContext { device: DeviceRequest::Cpu, threads: 0, progress: ProgressSink::NONE }
    }
}

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

/// Result of a conformal selector: who is selected / accepted.
///
/// The per-unit arrays travel typed, not as JSON text (rendering a million p-values as text costs
/// more than computing them): `json` holds the summary, and the host adds `unit_values` and
/// `selected` to it under `unit_values_name` and `selected_name`.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct SelectionResult {
    /// Device the computation ran on.
    pub device: Device,
    /// Per-test-unit statistic (conformal p-values, or the uncertainty score).
    pub unit_values: RVec<f64>,
    /// JSON name of `unit_values` (`p_values`, `scores`).
    pub unit_values_name: RString,
    /// Selected / accepted test indices, 0-based, ascending.
    pub selected: RVec<u64>,
    /// JSON name of `selected` (`selected`, `accepted`).
    pub selected_name: RString,
    /// The data-dependent threshold (BH cut-off on p-values, or λ̂).
    pub threshold: f64,
    /// The JSON summary (common fields and the method's scalars), without the two arrays above.
    pub json: RString,
}

/// Result of a batch prediction-set request.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
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

/// Result of a quantile aggregator's prediction.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct AggregationResult {
    /// Device the computation ran on.
    pub device: Device,
    /// Test quantiles, one row per test unit, one column per level.
    pub quantiles: OwnedMatrix,
    /// The complete JSON result.
    pub json: RString,
}

/// Result of a shrinkage estimator.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct ShrinkageResult {
    /// Device the computation ran on.
    pub device: Device,
    /// The tuned shrinkage parameter λ̂, for methods with one scalar λ (not, e.g., monotone
    /// shrinkage with one factor per unit).
    pub lambda_hat: ROption<f64>,
    /// The unbiased risk estimate of the returned estimates, for methods that have one.
    pub risk_estimate: ROption<f64>,
    /// Shrunken estimates, one per unit.
    pub estimates: RVec<f64>,
    /// Interval ends, when intervals were asked for: the p lower ends, then the p upper ends.
    pub intervals: ROption<RVec<f64>>,
    /// The JSON summary; the host adds `estimates`, `lower` and `upper` from the typed fields.
    pub json: RString,
}

/// Result of a critic query.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct CriticResult {
    /// Device the computation ran on.
    pub device: Device,
    /// V or Q per queried row.
    pub values: RVec<f64>,
    /// The complete JSON result.
    pub json: RString,
}

/// The tables of one lifecycle call, by role.
pub type Tables<'a> = RSlice<'a, TableView<'a>>;

/// Wrap a slice of table views for a lifecycle call.
pub fn tables<'a>(views: &'a [TableView<'a>]) -> Tables<'a> {
    RSlice::from_slice(views)
}

impl<'a> TableView<'a> {
    /// A table view over `columns`, each of which must have `nrows` entries.
    pub fn new(role: &'a str, nrows: usize, columns: &'a [ColumnView<'a>]) -> Self {
        TableView { role: RStr::from_str(role), nrows, columns: RSlice::from_slice(columns) }
    }
}

impl<'a> ColumnView<'a> {
    /// A named column view.
    pub fn new(name: &'a str, data: ColumnData<'a>) -> Self {
        ColumnView { name: RStr::from_str(name), data }
    }
}

impl<'a> ColumnData<'a> {
    /// View f64 values.
    pub fn f64(v: &'a [f64]) -> Self {
        ColumnData::F64(RSlice::from_slice(v))
    }
    /// View i64 values.
    pub fn i64(v: &'a [i64]) -> Self {
        ColumnData::I64(RSlice::from_slice(v))
    }
    /// View booleans.
    pub fn bool(v: &'a [bool]) -> Self {
        ColumnData::Bool(RSlice::from_slice(v))
    }
    /// View f32 values.
    pub fn f32(v: &'a [f32]) -> Self {
        ColumnData::F32(RSlice::from_slice(v))
    }
}

/// Loading a plugin's root module with abi_stable's layout and version checks.
pub mod loader {
    use super::PluginModRef;
    use abi_stable::library::{lib_header_from_path, LibraryError};
    use std::path::Path;

    /// Why abi_stable refused a library.
    #[derive(Debug)]
    pub enum LoadFailure {
        /// The interface (type layouts) differs from this host's.
        Incompatible(String),
        /// Anything else (not a library, no root module symbol, ...).
        Other(String),
    }

    /// Load and check the root module of the library at `path`.
    ///
    /// Uses `lib_header_from_path(..).init_root_module()` for each file: abi_stable's
    /// `RootModule::load_from_file` caches one module per root-module type and would return the
    /// first plugin for every file.
    pub fn load_root_module(path: &Path) -> Result<PluginModRef, LoadFailure> {
        let classify = |e: LibraryError| match e {
            LibraryError::AbiInstability(_) | LibraryError::IncompatibleVersionNumber { .. } => {
                LoadFailure::Incompatible(e.to_string())
            }
            other => LoadFailure::Other(other.to_string()),
        };
        let header = lib_header_from_path(path).map_err(classify)?;
        header.init_root_module::<PluginModRef>().map_err(classify)
    }
}

// ---------------------------------------------------------------------------------------------
// Family traits
// ---------------------------------------------------------------------------------------------

/// Critics: `fit(transitions)` then `values(queries)`.
#[sabi_trait]
pub trait Critic: Send + Sync {
    /// Fit on offline data (a `transitions` table, and `policy` when given).
    fn fit(&mut self, tables: Tables<'_>) -> PluginResult<()>;
    /// V or Q at the queried states / state-actions, plus policy-value summaries in JSON.
    #[sabi(last_prefix_field)]
    fn values(&self, tables: Tables<'_>) -> PluginResult<CriticResult>;
}

/// Quantile aggregators: `fit`, `calibrate`, then `predict`.
#[sabi_trait]
pub trait QuantileAggregator: Send + Sync {
    /// Learn aggregation weights on the `fit` table.
    fn fit(&mut self, tables: Tables<'_>) -> PluginResult<()>;
    /// Conformal adjustments on the `calibration` table.
    fn calibrate(&mut self, tables: Tables<'_>) -> PluginResult<()>;
    /// Aggregated, monotone, calibrated quantiles for the `test` table.
    #[sabi(last_prefix_field)]
    fn predict(&self, tables: Tables<'_>) -> PluginResult<AggregationResult>;
}

/// Conformal selectors: `calibrate(calibration)` then `select(test)`.
#[sabi_trait]
pub trait ConformalSelector: Send + Sync {
    /// Ingest the `calibration` table.
    fn calibrate(&mut self, tables: Tables<'_>) -> PluginResult<()>;
    /// Select / accept units of the `test` table.
    #[sabi(last_prefix_field)]
    fn select(&self, tables: Tables<'_>) -> PluginResult<SelectionResult>;
}

/// Shrinkage estimators: `estimate(data)`.
#[sabi_trait]
pub trait Shrinkage: Send + Sync {
    /// Tune λ by an unbiased risk estimate and return the estimates.
    #[sabi(last_prefix_field)]
    fn estimate(&self, tables: Tables<'_>) -> PluginResult<ShrinkageResult>;
}

/// Batch predictive inference: `calibrate(calibration)` then `bound(request)`.
#[sabi_trait]
pub trait BatchPredictor: Send + Sync {
    /// Ingest the `calibration` scores.
    fn calibrate(&mut self, tables: Tables<'_>) -> PluginResult<()>;
    /// The set or bound for the batch (`test` table, or parameters alone).
    #[sabi(last_prefix_field)]
    fn bound(&self, tables: Tables<'_>) -> PluginResult<BatchResult>;
}

/// Boxed critic trait object.
pub type CriticBox = Critic_TO<'static, RBox<()>>;
/// Boxed quantile-aggregator trait object.
pub type AggregatorBox = QuantileAggregator_TO<'static, RBox<()>>;
/// Boxed conformal-selector trait object.
pub type SelectorBox = ConformalSelector_TO<'static, RBox<()>>;
/// Boxed shrinkage trait object.
pub type ShrinkageBox = Shrinkage_TO<'static, RBox<()>>;
/// Boxed batch-predictor trait object.
pub type BatchBox = BatchPredictor_TO<'static, RBox<()>>;

/// A constructed estimator, tagged by family.
#[repr(u8)]
#[derive(StableAbi)]
pub enum Estimator {
    /// A critic.
    Critic(CriticBox),
    /// A quantile aggregator.
    QuantileAggregator(AggregatorBox),
    /// A conformal selector.
    ConformalSelector(SelectorBox),
    /// A shrinkage estimator.
    Shrinkage(ShrinkageBox),
    /// A batch predictor.
    BatchPredictive(BatchBox),
}

impl Estimator {
    /// The family of this estimator.
    pub fn family(&self) -> Family {
        match self {
            Estimator::Critic(_) => Family::Critic,
            Estimator::QuantileAggregator(_) => Family::QuantileAggregator,
            Estimator::ConformalSelector(_) => Family::ConformalSelector,
            Estimator::Shrinkage(_) => Family::Shrinkage,
            Estimator::BatchPredictive(_) => Family::BatchPredictive,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Root module
// ---------------------------------------------------------------------------------------------

/// The root module every plugin exports. A prefix type: new fields go after `create`, which is
/// the `last_prefix_field`; their accessors return `Option`, and a host reading an older plugin
/// that lacks them gets `None` (`missing_field(option)`).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(option))]
pub struct PluginMod {
    /// The method's manifest. Never fails; panics are caught by the SDK and give an empty name.
    pub manifest: extern "C" fn() -> Manifest,
    /// Construct an estimator from parameters (a JSON object) and the run context.
    #[sabi(last_prefix_field)]
    pub create: extern "C" fn(params_json: RStr<'_>, ctx: RunContext) -> PluginResult<Estimator>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "quiver_plugin";
    const NAME: &'static str = "quiver_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_version_compat_rules() {
        let v = |major, minor| AbiVersion { major, minor };
        assert!(v(0, 1).compatible_with(&v(0, 1)));
        assert!(!v(0, 1).compatible_with(&v(0, 2)));
        assert!(v(1, 1).compatible_with(&v(1, 4)));
        assert!(!v(1, 1).compatible_with(&v(2, 1)));
    }

    #[test]
    fn matrix_bounds() {
        let data = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let m = MatrixView::row_major(&data, 2, 3).unwrap();
        assert!(m.in_bounds());
        let t = MatrixView { row_stride: 1, col_stride: 2, rows: 2, cols: 3, ..m };
        assert!(t.in_bounds());
        let bad = MatrixView { rows: 3, ..m };
        assert!(!bad.in_bounds());
        assert!(MatrixView::row_major(&data, 4, 2).is_none());
    }

    #[test]
    fn root_symbol_is_the_one_xtask_checks() {
        // xtask checks built plugins for this symbol without depending on abi_stable
        assert_eq!(abi_stable::library::ROOT_MODULE_LOADER_NAME, "_1as_0lib_1header_0root_bmodule_bloader");
    }

    #[test]
    fn family_names_round_trip() {
        for f in Family::ALL {
            assert_eq!(Family::parse(f.name()), Some(f));
        }
    }
}
