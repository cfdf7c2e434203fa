//! The manifest (what a method is, before it runs) and the run context.

use crate::ColumnKind;
use abi_stable::{
    std_types::{RStr, RString, RVec},
    StableAbi,
};

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
    /// The family, as a kebab-case label (`conformal-selector`, `critic`, ...): data, not a
    /// layout, so that a new family needs no change of the ABI. The SDK names the families it
    /// has traits for; the host treats every label alike.
    pub family: RString,
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
    /// The steps the estimator runs, in lifecycle order ([`StepSpec`]).
    pub steps: RVec<StepSpec>,
    /// Further properties as a JSON object (empty text: none). A capability added after ABI
    /// 0.4 that a manifest must declare (say, that a method's partial results merge) is a key
    /// here, never a new field: a host that does not know the key ignores it, and a plugin that
    /// lacks it simply does not have the capability.
    pub properties_json: RString,
}

impl Manifest {
    /// The step named `name`.
    pub fn step(&self, name: &str) -> Option<&StepSpec> {
        self.steps.iter().find(|s| s.name.as_str() == name)
    }
    /// The steps a one-call run goes through, in order (those with [`StepSpec::in_run`]).
    pub fn run_steps(&self) -> impl Iterator<Item = &StepSpec> {
        self.steps.iter().filter(|s| s.in_run)
    }
}

/// One step of an estimator's lifecycle (`calibrate`, `select`, `fit`, `values`, ...), run by
/// [`crate::EstimatorObject::step`] (a step that changes the estimator) or
/// [`crate::EstimatorObject::query`] (one that only reads it).
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct StepSpec {
    /// The step's name, unique within the manifest.
    pub name: RString,
    /// Whether the step changes the estimator's state (then the host calls `step`, with
    /// exclusive access; otherwise `query`, which may run beside other queries).
    pub mutates: bool,
    /// Whether a one-call run (`quiver run`, `quiver.run`) goes through this step; the output
    /// of the last such step is the run's result.
    pub in_run: bool,
    /// The roles of the tables the step reads (each declared in [`Manifest::tables`]).
    pub tables: RVec<RString>,
    /// One-line documentation.
    pub doc: RString,
}

/// Where a plugin reports the progress of a long step (a fit's iterations, a pass over the
/// data), and learns whether to go on: `report(data, done, total, label)` returns `false` when the
/// caller wants the plugin to stop, which it then does at its next checkpoint with an
/// [`crate::ErrorKind::Cancelled`] error. `total` is 0 when unknown (an iteration count to a tolerance).
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
