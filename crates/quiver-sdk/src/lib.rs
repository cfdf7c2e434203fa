//! The Quiver plugin SDK: what a plugin author writes against.
//!
//! A plugin is one crate (`crate-type = ["cdylib", "rlib"]`) that implements [`Plugin`] and calls
//! [`export_plugin!`] once. The SDK then
//! * exports the abi_stable root module and the C-ABI identity symbol the host checks first;
//! * validates parameters against the manifest in one place ([`Params::from_json`]: unknown
//!   names, types, ranges, choices; defaults filled in) before [`Plugin::create`] runs;
//! * resolves the device ([`Context`]): `cpu`, or `cuda` only where the manifest lists a CUDA
//!   path and a GPU is usable (`auto` falls back to the CPU with a notice), so a plugin never
//!   decides this itself;
//! * wraps every entry point in `catch_unwind`, so a panic becomes an [`ErrorKind::Panic`] error
//!   instead of aborting the host;
//! * turns ABI table views into slices and `ndarray` views without copying ([`TableRef::f64`]).
//!
//! The estimator itself implements one of the family traits ([`ConformalSelectorImpl`],
//! [`BatchPredictorImpl`], [`QuantileAggregatorImpl`], [`ShrinkageImpl`], [`CriticImpl`],
//! [`EvaluatorImpl`]) in plain Rust, and [`Plugin::create`] boxes it with the matching constructor
//! ([`conformal_selector`], [`batch_predictor`], [`quantile_aggregator`], [`shrinkage`],
//! [`critic`], [`evaluator`]), which maps the trait's methods onto the ABI's one estimator object (named steps,
//! [`quiver_abi::EstimatorObject`]) and the typed result onto a [`quiver_abi::StepOutput`]. A
//! method of a family the SDK has no trait for implements that object directly and declares its
//! steps with [`ManifestBuilder::custom`] (docs/extending.md).
//!
//! A plugin with a CUDA path enables this crate's `cuda` feature (which brings `quiver-gpu`) and
//! declares the path with [`ManifestBuilder::cuda`].
//!
//! Note: abi_stable's export macro names the `abi_stable` crate directly, so a plugin crate lists
//! `abi_stable` in its `Cargo.toml` (it never needs to `use` it).

mod config;
mod family;
mod manifest;
pub mod memory;
pub mod mergeable;
mod params;
mod tables;

pub use config::{ConfigFields, FromParam, NoParams, PluginConfig};
pub use family::{
    AggregationResult, BatchResult, CriticResult, EvaluationResult, Family, OwnedMatrix, SelectionResult,
    ShrinkageResult, StepResult,
};
pub use manifest::{column, param, ManifestBuilder, Param, TableBuilder};
pub use mergeable::{MergeableImpl, Offsets, Round, RoundsImpl};
pub use ndarray;
pub use params::{Choice, Params};
pub use quiver_abi as abi;
pub use quiver_abi::abi_stable;
/// Define an enum of named choices ([`quiver_numerics::choices!`]): the type of a `choice`
/// parameter in [`config!`].
pub use quiver_numerics::choices;
pub use quiver_numerics::{Classify, ErrorClass};
pub use serde_json;
pub use tables::{TableRef, Tables};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RResult, RStr},
};
use quiver_abi::{
    Device, DeviceRequest, ErrorKind, EstimatorBox, Manifest, PluginError, PluginIdentity, PluginResult, RunContext,
    StepOutput, TableViews,
};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Version of this SDK, reported in the identity symbol.
pub const SDK_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// Result type of plugin code.
pub type Result<T, E = PluginError> = std::result::Result<T, E>;

/// A Quiver plugin: one method.
pub trait Plugin: 'static {
    /// The method's parameters as a typed struct (declared with [`config!`]; [`NoParams`] for
    /// none). Its specs go into the manifest with [`ManifestBuilder::config`].
    type Config: PluginConfig;
    /// The method's manifest (name, family, parameters, tables, guarantee, devices).
    fn manifest() -> Manifest;
    /// Build an estimator from its configuration — parameters checked against the manifest
    /// (types, ranges, choices; defaults filled in) and against each other
    /// ([`PluginConfig::validate`]) — and the resolved run context (device, threads, what the result's
    /// JSON echoes).
    fn create(config: Self::Config, ctx: Context) -> Result<Created>;
}

/// What [`Plugin::create`] returns: the estimator object, and the family label it was built for
/// (checked against the manifest's). Made only by the boxing functions ([`conformal_selector`],
/// ..., [`custom_estimator`]), which put every step under the SDK's guard.
pub struct Created {
    family: &'static str,
    object: EstimatorBox,
}

/// The run as the SDK resolved it for one estimator: the device it uses (never CUDA unless the
/// manifest lists a CUDA path and a GPU is usable), the CPU-fallback notice of `auto`, the worker
/// thread budget, and what every result's JSON starts with.
#[derive(Clone, Debug)]
pub struct Context {
    method: String,
    version: String,
    device: Device,
    notice: Option<String>,
    threads: u32,
    progress: quiver_abi::ProgressSink,
    parameters: serde_json::Value,
}

impl Context {
    /// Resolve `run` for `manifest`: `cpu` is the CPU; `cuda` is CUDA or an error
    /// ([`ErrorKind::Unsupported`] when the method has no CUDA path, [`ErrorKind::Device`] when no
    /// GPU is usable); `auto` is CUDA where both the method and the machine have it, else the CPU
    /// (with a notice when the method has a CUDA path the machine cannot run).
    pub fn resolve(manifest: &Manifest, params: &Params, run: RunContext) -> Result<Context> {
        let has_cuda = manifest.devices.contains(&Device::Cuda);
        let (device, notice) = match (run.device, has_cuda) {
            (DeviceRequest::Cpu, _) | (DeviceRequest::Auto, false) => (Device::Cpu, None),
            (DeviceRequest::Cuda, false) => {
                return Err(PluginError::new(
                    ErrorKind::Unsupported,
                    format!("method '{}' has no CUDA path (its devices: cpu); use --device cpu or auto", manifest.name),
                ))
            }
            (request, true) => resolve_cuda(request)?,
        };
        Ok(Context {
            method: manifest.name.to_string(),
            version: manifest.version.to_string(),
            device,
            notice,
            threads: run.threads,
            progress: run.progress,
            parameters: params.to_json(),
        })
    }
    /// The method's name.
    pub fn method(&self) -> &str {
        &self.method
    }
    /// The method's (plugin's) version.
    pub fn version(&self) -> &str {
        &self.version
    }
    /// The parameters as used (defaults filled in), as the result's JSON echoes them.
    pub fn parameters(&self) -> &serde_json::Value {
        &self.parameters
    }
    /// The device this estimator runs on.
    pub fn device(&self) -> Device {
        self.device
    }
    /// The CPU-fallback notice, when `auto` could not use a GPU.
    pub fn notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }
    /// Worker threads the plugin may use (0 = its own default).
    pub fn threads(&self) -> u32 {
        self.threads
    }
    /// Report progress of a long step (`total` 0 when unknown) and learn whether to go on: an
    /// [`ErrorKind::Cancelled`] error when the caller asked to stop, which the step returns with
    /// `?` at this checkpoint. Cheap when nobody listens.
    pub fn progress(&self, done: u64, total: u64, label: &str) -> Result<()> {
        quiver_numerics::checkpoint(self, done, total, label).map_err(plugin_error)
    }
    /// This context with the CPU as its device and `why` as its notice: for a step that has no
    /// CUDA path although the method has one, so that the result reports where it really ran.
    pub fn on_cpu(&self, why: &str) -> Context {
        let mut c = self.clone();
        if c.device == Device::Cuda {
            c.device = Device::Cpu;
            c.notice = Some(format!("notice: {why}; running on the CPU"));
        }
        c
    }
    /// Run `cpu` or `cuda` on the resolved device (both return the same error type: a plugin's, or
    /// an algorithm crate's, mapped with [`plugin_error`] after).
    pub fn dispatch<T, E>(
        &self,
        cpu: impl FnOnce() -> std::result::Result<T, E>,
        cuda: impl FnOnce() -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        match self.device {
            Device::Cpu => cpu(),
            Device::Cuda => cuda(),
        }
    }
    /// A result's JSON: the fields every method reports first — `method`, `version`, `device`,
    /// `notice` (the CPU-fallback notice or null) and `parameters` (as used, defaults filled in) —
    /// then `extra`'s fields (an object) in their order.
    pub fn result_json(&self, extra: serde_json::Value) -> serde_json::Value {
        let mut out = serde_json::json!({
            "method": self.method,
            "version": self.version,
            "device": self.device.name(),
            "notice": self.notice,
            "parameters": self.parameters,
        });
        if let (Some(o), serde_json::Value::Object(e)) = (out.as_object_mut(), extra) {
            o.extend(e);
        }
        out
    }
    /// [`Context::result_json`] as the text a result struct carries.
    pub fn result_text(&self, extra: serde_json::Value) -> quiver_abi::abi_stable::std_types::RString {
        self.result_json(extra).to_string().into()
    }
}

/// An error of an algorithm crate (or of `quiver-gpu`, `quiver-numerics`) as a plugin error: its
/// message, and the ABI's kind for its [`ErrorClass`]. Plugin code maps the errors of what it calls
/// with `.map_err(plugin_error)?`.
pub fn plugin_error<E: Classify>(e: E) -> PluginError {
    let kind = match e.class() {
        ErrorClass::InvalidInput => ErrorKind::InvalidInput,
        ErrorClass::InvalidParameter => ErrorKind::InvalidParameter,
        ErrorClass::Unsupported => ErrorKind::Unsupported,
        ErrorClass::Numerical => ErrorKind::Numerical,
        ErrorClass::Device => ErrorKind::Device,
        ErrorClass::Cancelled => ErrorKind::Cancelled,
        ErrorClass::Internal => ErrorKind::Internal,
    };
    PluginError::new(kind, e.to_string())
}

/// The device for `request` of a method with a CUDA path: CUDA when a GPU is usable; else an
/// error for `cuda`, and the CPU with a notice for `auto`.
/// The algorithm crates report progress and read their thread budget through this context.
impl quiver_numerics::Progress for Context {
    fn report(&self, done: u64, total: u64, label: &str) -> bool {
        self.progress.report(done, total, label)
    }
    fn threads(&self) -> u32 {
        self.threads
    }
}

#[cfg(feature = "cuda")]
fn resolve_cuda(request: DeviceRequest) -> Result<(Device, Option<String>)> {
    let status = quiver_gpu::probe();
    if status.usable() {
        return Ok((Device::Cuda, None));
    }
    let why = status.reason.clone().unwrap_or_else(|| "unknown reason".into());
    match request {
        DeviceRequest::Cuda => Err(plugin_error(quiver_gpu::GpuError::Unavailable(why))),
        _ => Ok((Device::Cpu, Some(format!("notice: CUDA not usable ({why}); running on the CPU")))),
    }
}

#[cfg(not(feature = "cuda"))]
fn resolve_cuda(_request: DeviceRequest) -> Result<(Device, Option<String>)> {
    Err(PluginError::new(
        ErrorKind::Internal,
        "the manifest declares a CUDA path, but the plugin was built without quiver-sdk's `cuda` feature",
    ))
}

/// A conformal selector in plain Rust: `calibrate` then `select`.
pub trait ConformalSelectorImpl: Send + Sync + 'static {
    /// Ingest the calibration data.
    fn calibrate(&mut self, tables: &Tables<'_>) -> Result<()>;
    /// Select test units.
    fn select(&self, tables: &Tables<'_>) -> Result<SelectionResult>;
}

/// A batch predictor in plain Rust: `calibrate` then `bound`.
pub trait BatchPredictorImpl: Send + Sync + 'static {
    /// Ingest the calibration scores.
    fn calibrate(&mut self, tables: &Tables<'_>) -> Result<()>;
    /// Compute the set or bound.
    fn bound(&self, tables: &Tables<'_>) -> Result<BatchResult>;
}

/// A quantile aggregator in plain Rust: `fit`, `calibrate`, `predict`.
pub trait QuantileAggregatorImpl: Send + Sync + 'static {
    /// Fit aggregation weights.
    fn fit(&mut self, tables: &Tables<'_>) -> Result<()>;
    /// Conformal calibration.
    fn calibrate(&mut self, tables: &Tables<'_>) -> Result<()>;
    /// Predict test quantiles.
    fn predict(&self, tables: &Tables<'_>) -> Result<AggregationResult>;
}

/// A shrinkage estimator in plain Rust: `estimate`.
pub trait ShrinkageImpl: Send + Sync + 'static {
    /// Tune and estimate.
    fn estimate(&self, tables: &Tables<'_>) -> Result<ShrinkageResult>;
}

/// An evaluator in plain Rust: `evaluate`.
pub trait EvaluatorImpl: Send + Sync + 'static {
    /// The evaluation statistics of the given results.
    fn evaluate(&self, tables: &Tables<'_>) -> Result<EvaluationResult>;
}

/// A critic in plain Rust: `fit` then `values`.
pub trait CriticImpl: Send + Sync + 'static {
    /// Fit on transitions.
    fn fit(&mut self, tables: &Tables<'_>) -> Result<()>;
    /// Query values.
    fn values(&self, tables: &Tables<'_>) -> Result<CriticResult>;
}

/// An estimator of a family the SDK has no trait for: its steps by name, on the SDK's typed
/// tables, returning the ABI's [`StepOutput`] itself. Declare the steps with
/// [`ManifestBuilder::custom`] and box it with [`custom_estimator`] (docs/extending.md).
pub trait StepsImpl: Send + Sync + 'static {
    /// Run the state-changing step `name` (one the manifest declares with `mutates`).
    fn step(&mut self, name: &str, tables: &Tables<'_>) -> Result<StepOutput>;
    /// Run the read-only step `name`.
    fn query(&self, name: &str, tables: &Tables<'_>) -> Result<StepOutput>;
}

struct StepsAdapter<T>(T);

impl StepResult for StepOutput {
    /// The plugin encoded it itself: nothing the SDK can check.
    fn check_finite(&self) -> Result<()> {
        Ok(())
    }
    fn into_output(self) -> Result<StepOutput> {
        Ok(self)
    }
}

impl<T: StepsImpl> quiver_abi::EstimatorObject for StepsAdapter<T> {
    fn step(&mut self, name: RStr<'_>, tables: TableViews<'_>) -> PluginResult<StepOutput> {
        run_step(name.as_str(), tables, |t| self.0.step(name.as_str(), t))
    }
    fn query(&self, name: RStr<'_>, tables: TableViews<'_>) -> PluginResult<StepOutput> {
        run_step(name.as_str(), tables, |t| self.0.query(name.as_str(), t))
    }
}

/// Box an estimator of a family the SDK has no trait for, labelled `family` as in its manifest:
/// its steps run under the same guard as every family's (panics caught, working memory reserved).
pub fn custom_estimator(family: &'static str, value: impl StepsImpl) -> Created {
    Created { family, object: quiver_abi::EstimatorObject_TO::from_value(StepsAdapter(value), TD_Opaque) }
}

/// Run `f`, turning a panic into an [`ErrorKind::Panic`] error. Every boundary entry point of the
/// SDK goes through here.
pub fn guard<T>(what: &str, f: impl FnOnce() -> Result<T>) -> PluginResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => RResult::ROk(v),
        Ok(Err(e)) => RResult::RErr(e),
        Err(payload) => {
            let msg = panic_message(payload.as_ref());
            RResult::RErr(PluginError::new(ErrorKind::Panic, format!("plugin panicked in {what}: {msg}")))
        }
    }
}

/// The text of a caught panic's payload (`panic!("…")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_string())
}

/// How many copies of its inputs a method may hold without sizing them itself ([`memory::reserve`]
/// is called for that much before every step).
pub const WORKING_COPIES: f64 = 3.0;

/// Run one step of a family trait under the boundary's rules: panics caught, the working-copy
/// memory reserved, the result's numbers checked finite, the result encoded.
fn run_step<R: StepResult>(
    name: &str,
    tables: TableViews<'_>,
    f: impl FnOnce(&Tables<'_>) -> Result<R>,
) -> PluginResult<StepOutput> {
    guard(name, move || {
        let tables = Tables::new(tables);
        // every method may hold a few working copies of its inputs: refuse, clearly, inputs too
        // large for that before the method starts (it sizes anything larger)
        memory::reserve(WORKING_COPIES * tables.bytes(), "working copies of the input tables")?;
        let out = f(&tables)?;
        out.check_finite()?;
        out.into_output()
    })
}

/// The error for a step name the estimator does not have (or that was called through the wrong
/// entry: a state-changing step through `query`, or the reverse).
fn no_step(family: Family, name: &str, mutating: bool) -> PluginResult<StepOutput> {
    let steps: Vec<&str> = family.steps().iter().map(|s| s.name).collect();
    let message = match family.steps().iter().find(|s| s.name == name) {
        Some(s) if s.mutates != mutating => format!(
            "step '{name}' {} the estimator; the host must call it through '{}'",
            if s.mutates { "changes" } else { "does not change" },
            if s.mutates { "step" } else { "query" }
        ),
        _ => format!("a {} has no step '{name}' (its steps: {})", family.label(), steps.join(", ")),
    };
    RResult::RErr(PluginError::new(ErrorKind::State, message))
}

/// Map a family trait onto the ABI's estimator object: each `step` arm names a state-changing
/// method, each `query` arm a read-only one.
macro_rules! family_adapter {
    ($adapter:ident, $trait_:ident, $family:expr, step: [$($m:ident),*], query: [$($q:ident),*]) => {
        struct $adapter<T>(T);

        impl<T: $trait_> quiver_abi::EstimatorObject for $adapter<T> {
            #[allow(unused_variables)]
            fn step(&mut self, name: RStr<'_>, tables: TableViews<'_>) -> PluginResult<StepOutput> {
                match name.as_str() {
                    $( stringify!($m) => run_step(stringify!($m), tables, |t| $trait_::$m(&mut self.0, t)), )*
                    other => no_step($family, other, true),
                }
            }
            #[allow(unused_variables)]
            fn query(&self, name: RStr<'_>, tables: TableViews<'_>) -> PluginResult<StepOutput> {
                match name.as_str() {
                    $( stringify!($q) => run_step(stringify!($q), tables, |t| $trait_::$q(&self.0, t)), )*
                    other => no_step($family, other, false),
                }
            }
        }
    };
}

family_adapter!(SelectorAdapter, ConformalSelectorImpl, Family::ConformalSelector, step: [calibrate], query: [select]);
family_adapter!(BatchAdapter, BatchPredictorImpl, Family::BatchPredictor, step: [calibrate], query: [bound]);
family_adapter!(AggregatorAdapter, QuantileAggregatorImpl, Family::QuantileAggregator, step: [fit, calibrate], query: [predict]);
family_adapter!(ShrinkageAdapter, ShrinkageImpl, Family::Shrinkage, step: [], query: [estimate]);
family_adapter!(CriticAdapter, CriticImpl, Family::Critic, step: [fit], query: [values]);
family_adapter!(EvaluatorAdapter, EvaluatorImpl, Family::Evaluator, step: [], query: [evaluate]);

/// Box a conformal selector.
pub fn conformal_selector(value: impl ConformalSelectorImpl) -> Created {
    let object = quiver_abi::EstimatorObject_TO::from_value(SelectorAdapter(value), TD_Opaque);
    Created { family: Family::ConformalSelector.label(), object }
}

/// Box a batch predictor.
pub fn batch_predictor(value: impl BatchPredictorImpl) -> Created {
    let object = quiver_abi::EstimatorObject_TO::from_value(BatchAdapter(value), TD_Opaque);
    Created { family: Family::BatchPredictor.label(), object }
}

/// Box a quantile aggregator.
pub fn quantile_aggregator(value: impl QuantileAggregatorImpl) -> Created {
    let object = quiver_abi::EstimatorObject_TO::from_value(AggregatorAdapter(value), TD_Opaque);
    Created { family: Family::QuantileAggregator.label(), object }
}

/// Box a shrinkage estimator.
pub fn shrinkage(value: impl ShrinkageImpl) -> Created {
    let object = quiver_abi::EstimatorObject_TO::from_value(ShrinkageAdapter(value), TD_Opaque);
    Created { family: Family::Shrinkage.label(), object }
}

/// Box an evaluator.
pub fn evaluator(value: impl EvaluatorImpl) -> Created {
    let object = quiver_abi::EstimatorObject_TO::from_value(EvaluatorAdapter(value), TD_Opaque);
    Created { family: Family::Evaluator.label(), object }
}

/// Box a critic.
pub fn critic(value: impl CriticImpl) -> Created {
    let object = quiver_abi::EstimatorObject_TO::from_value(CriticAdapter(value), TD_Opaque);
    Created { family: Family::Critic.label(), object }
}

/// The identity value returned by the C-ABI identity symbol.
pub fn identity() -> PluginIdentity {
    PluginIdentity {
        magic: quiver_abi::IDENTITY_MAGIC,
        abi: quiver_abi::ABI_VERSION,
        sdk_version: SDK_VERSION.as_ptr().cast(),
    }
}

/// The `manifest` entry point for plugin `P` (panics caught: a panicking manifest yields a
/// manifest with an empty name, which the host reports as a broken plugin).
pub extern "C" fn manifest_entry<P: Plugin>() -> Manifest {
    match catch_unwind(P::manifest) {
        Ok(m) => m,
        Err(_) => ManifestBuilder::new("", Family::ConformalSelector).build(),
    }
}

/// The `create` entry point for plugin `P`: validates parameters against the manifest, fills
/// defaults, resolves the device, and calls [`Plugin::create`], all under [`guard`].
pub extern "C" fn create_entry<P: Plugin>(params_json: RStr<'_>, ctx: RunContext) -> PluginResult<EstimatorBox> {
    guard("create", || {
        let manifest = P::manifest();
        if let Some(missing) =
            P::Config::param_specs().into_iter().find(|s| !manifest.params.iter().any(|m| m.name == s.name))
        {
            return Err(PluginError::new(
                ErrorKind::Internal,
                format!(
                    "plugin '{}': its configuration has parameter '{}', which its manifest does not declare (add \
                     .config::<Config>() to the manifest)",
                    manifest.name, missing.name
                ),
            ));
        }
        let params = Params::from_json(&manifest, params_json.as_str())?;
        let config = P::Config::read(&params)?;
        config.validate()?;
        let context = Context::resolve(&manifest, &params, ctx)?;
        let created = P::create(config, context)?;
        if created.family != manifest.family.as_str() {
            return Err(PluginError::new(
                ErrorKind::Internal,
                format!(
                    "plugin '{}' declares family '{}' but created an estimator of family '{}'",
                    manifest.name, manifest.family, created.family
                ),
            ));
        }
        Ok(created.object)
    })
}

/// Create an estimator of plugin `P` directly (no dynamic loading): what the rlib-level tests and
/// benches use. Goes through exactly the same validation and panic guard as the exported entry.
pub fn create_local<P: Plugin>(params_json: &str, ctx: RunContext) -> Result<EstimatorBox> {
    create_entry::<P>(RStr::from_str(params_json), ctx).into_result()
}

/// Export `$plugin` (a type implementing [`Plugin`]) as a Quiver plugin: the abi_stable root
/// module and the C-ABI identity symbol. Use once per plugin crate.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        /// The plugin's exported symbols (abi_stable's root module and the C-ABI identity).
        #[allow(missing_docs)]
        mod quiver_plugin_exports {
            #[allow(unused_imports)]
            use super::*;

            /// The plugin's abi_stable root module.
            #[$crate::abi_stable::export_root_module]
            pub fn quiver_root_module() -> $crate::abi::PluginModRef {
                use $crate::abi_stable::prefix_type::PrefixTypeTrait;
                $crate::abi::PluginMod {
                    manifest: $crate::manifest_entry::<$plugin>,
                    create: $crate::create_entry::<$plugin>,
                }
                .leak_into_prefix()
            }

            /// The C-ABI identity the host reads before abi_stable's checks.
            #[no_mangle]
            pub extern "C" fn quiver_plugin_identity() -> $crate::abi::PluginIdentity {
                $crate::identity()
            }
        }
    };
}

pub use quiver_numerics::compact;

/// A float as JSON, with non-finite values as the strings `"inf"`, `"-inf"`, `"nan"` (JSON has
/// no infinities; an infinite bound is a legal result, e.g. too little calibration data).
pub fn json_f64(x: f64) -> serde_json::Value {
    quiver_numerics::json_number(x).map_or_else(|name| serde_json::json!(name), |v| serde_json::json!(v))
}

/// An error for a lifecycle step called out of order.
pub fn state_error(message: impl Into<String>) -> PluginError {
    PluginError::new(ErrorKind::State, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A family the SDK has no trait for, end to end below the host: the manifest's steps, the
    /// object's step and query, the guard around a panic, an unknown step.
    #[test]
    fn a_custom_family_runs_its_steps() {
        use quiver_abi::{ArrayData, NamedArray, TableView};
        struct Count(u64);
        impl StepsImpl for Count {
            fn step(&mut self, name: &str, tables: &Tables<'_>) -> Result<StepOutput> {
                match name {
                    "add" => {
                        self.0 += tables.get("data")?.nrows() as u64;
                        Ok(StepOutput::none())
                    }
                    other => Err(state_error(format!("no step '{other}'"))),
                }
            }
            fn query(&self, name: &str, _tables: &Tables<'_>) -> Result<StepOutput> {
                match name {
                    "total" => Ok(StepOutput::new(
                        format!("{{\"total\": {}}}", self.0).into(),
                        vec![NamedArray::vector("seen", ArrayData::I64(vec![self.0 as i64].into()))].into(),
                    )),
                    "boom" => panic!("deliberate"),
                    other => Err(state_error(format!("no step '{other}'"))),
                }
            }
        }
        struct CountPlugin;
        impl Plugin for CountPlugin {
            type Config = NoParams;
            fn manifest() -> Manifest {
                ManifestBuilder::custom("count", "counter")
                    .table(TableBuilder::new("data", "rows").column(column::f64("x", "")))
                    .step("add", true, true, &["data"], "count the rows")
                    .step("total", false, true, &[], "the count")
                    .property("mergeable", serde_json::json!(false))
                    .build()
            }
            fn create(_config: NoParams, _ctx: Context) -> Result<Created> {
                Ok(custom_estimator("counter", Count(0)))
            }
        }
        let m = CountPlugin::manifest();
        assert_eq!(m.family.as_str(), "counter");
        assert_eq!(m.run_steps().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["add", "total"]);
        assert_eq!(m.properties_json.as_str(), r#"{"mergeable":false}"#);
        let mut est = create_local::<CountPlugin>("{}", RunContext::default()).unwrap();
        let x = [1.0, 2.0, 3.0];
        let cols = [quiver_abi::ColumnView::new("x", quiver_abi::ColumnData::f64(&x))];
        let views = [TableView::new("data", 3, &cols)];
        assert!(est.step("add".into(), quiver_abi::table_views(&views)).unwrap().is_none());
        let out = est.query("total".into(), quiver_abi::table_views(&[])).unwrap();
        assert_eq!(out.json.as_str(), r#"{"total": 3}"#);
        assert_eq!(out.arrays[0].data, ArrayData::I64(vec![3].into()));
        let e = est.query("boom".into(), quiver_abi::table_views(&[])).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Panic);
        assert!(e.message.contains("deliberate"), "{e}");
        let e = est.query("nope".into(), quiver_abi::table_views(&[])).unwrap_err();
        assert_eq!(e.kind, ErrorKind::State);
        // a family plugin built with the wrong boxing function is refused at create
        struct Mislabelled;
        impl Plugin for Mislabelled {
            type Config = NoParams;
            fn manifest() -> Manifest {
                ManifestBuilder::custom("m", "counter").build()
            }
            fn create(_config: NoParams, _ctx: Context) -> Result<Created> {
                Ok(custom_estimator("other", Count(0)))
            }
        }
        let e = create_local::<Mislabelled>("{}", RunContext::default()).err().unwrap();
        assert!(e.message.contains("declares family 'counter' but created an estimator of family 'other'"), "{e}");
    }

    #[test]
    fn compact_shows_values_as_written_or_short() {
        assert_eq!(compact(-1.0), "-1");
        assert_eq!(compact(0.25), "0.25");
        assert_eq!(compact(7_i64), "7");
        assert_eq!(compact(1e300), "1e300");
        assert_eq!(compact(-1.5e-300), "-1.5e-300");
    }
}
