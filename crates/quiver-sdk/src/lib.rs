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
//! * turns ABI table views into slices and `ndarray` views without copying ([`Table::f64`]).
//!
//! The estimator itself implements one of the family traits ([`SelectorImpl`], [`BatchImpl`],
//! [`AggregatorImpl`], [`ShrinkageImpl`], [`CriticImpl`]) in plain Rust, and
//! [`Plugin::create`] boxes it with the matching constructor ([`selector`], [`batch_predictor`],
//! [`aggregator`], [`shrinkage`], [`critic`]).
//!
//! A plugin with a CUDA path enables this crate's `cuda` feature (which brings `quiver-gpu`) and
//! declares the path with [`ManifestBuilder::cuda`].
//!
//! Note: abi_stable's export macro names the `abi_stable` crate directly, so a plugin crate lists
//! `abi_stable` in its `Cargo.toml` (it never needs to `use` it).

mod manifest;
pub mod memory;
mod params;
mod tables;

pub use manifest::{column, param, ManifestBuilder, Param, TableBuilder};
pub use ndarray;
pub use params::{Choice, Params};
pub use quiver_abi as abi;
pub use quiver_abi::abi_stable;
pub use serde_json;
pub use tables::{Table, Tables};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RResult, RStr},
};
use quiver_abi::{
    AggregationResult, BatchResult, CriticResult, Device, DeviceRequest, ErrorKind, Estimator, Manifest, PluginError,
    PluginIdentity, PluginResult, RunContext, SelectionResult, ShrinkageResult,
};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Version of this SDK, reported in the identity symbol.
pub const SDK_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// Result type of plugin code.
pub type Result<T, E = PluginError> = std::result::Result<T, E>;

/// A Quiver plugin: one method.
pub trait Plugin: 'static {
    /// The method's manifest (name, family, parameters, tables, guarantee, devices).
    fn manifest() -> Manifest;
    /// Build an estimator from validated parameters (defaults filled in, ranges checked) and the
    /// resolved run context (device, threads, what the result's JSON echoes).
    fn create(params: Params, ctx: Context) -> Result<Estimator>;
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
        if self.progress.report(done, total, label) {
            Ok(())
        } else {
            Err(PluginError::new(
                ErrorKind::Cancelled,
                format!("stopped on request during '{label}' ({done} of {total} done)"),
            ))
        }
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
    /// Run `cpu` or `cuda` on the resolved device. Errors of the CUDA layer convert with `?`
    /// (`quiver_gpu::GpuError` into an [`ErrorKind::Device`] error).
    pub fn dispatch<T>(&self, cpu: impl FnOnce() -> Result<T>, cuda: impl FnOnce() -> Result<T>) -> Result<T> {
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

#[cfg(feature = "cuda")]
fn resolve_cuda(request: DeviceRequest) -> Result<(Device, Option<String>)> {
    Ok(quiver_gpu::resolve(request, true)?)
}

#[cfg(not(feature = "cuda"))]
fn resolve_cuda(_request: DeviceRequest) -> Result<(Device, Option<String>)> {
    Err(PluginError::new(
        ErrorKind::Internal,
        "the manifest declares a CUDA path, but the plugin was built without quiver-sdk's `cuda` feature",
    ))
}

/// A conformal selector in plain Rust: `calibrate` then `select`.
pub trait SelectorImpl: Send + Sync + 'static {
    /// Ingest the calibration data.
    fn calibrate(&mut self, tables: &Tables<'_>) -> Result<()>;
    /// Select test units.
    fn select(&self, tables: &Tables<'_>) -> Result<SelectionResult>;
}

/// A batch predictor in plain Rust: `calibrate` then `bound`.
pub trait BatchImpl: Send + Sync + 'static {
    /// Ingest the calibration scores.
    fn calibrate(&mut self, tables: &Tables<'_>) -> Result<()>;
    /// Compute the set or bound.
    fn bound(&self, tables: &Tables<'_>) -> Result<BatchResult>;
}

/// A quantile aggregator in plain Rust: `fit`, `calibrate`, `predict`.
pub trait AggregatorImpl: Send + Sync + 'static {
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

/// A critic in plain Rust: `fit` then `values`.
pub trait CriticImpl: Send + Sync + 'static {
    /// Fit on transitions.
    fn fit(&mut self, tables: &Tables<'_>) -> Result<()>;
    /// Query values.
    fn values(&self, tables: &Tables<'_>) -> Result<CriticResult>;
}

/// Run `f`, turning a panic into an [`ErrorKind::Panic`] error. Every boundary entry point of the
/// SDK goes through here.
pub fn guard<T>(what: &str, f: impl FnOnce() -> Result<T>) -> PluginResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => RResult::ROk(v),
        Ok(Err(e)) => RResult::RErr(e),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_string());
            RResult::RErr(PluginError::new(ErrorKind::Panic, format!("plugin panicked in {what}: {msg}")))
        }
    }
}

struct Adapter<T>(T);

/// The last check before a result crosses the boundary: its per-unit numbers are finite. A NaN or
/// an infinity there comes from an overflow (inputs near the limits of double precision) and would
/// reach the user as a JSON null with success; it becomes an error instead. (Single bounds such as
/// a batch bound of +inf are legal results and are not checked.)
trait FiniteResult {
    fn check_finite(&self) -> Result<()>;
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

impl FiniteResult for () {
    fn check_finite(&self) -> Result<()> {
        Ok(())
    }
}

impl FiniteResult for BatchResult {
    fn check_finite(&self) -> Result<()> {
        Ok(())
    }
}

impl FiniteResult for SelectionResult {
    fn check_finite(&self) -> Result<()> {
        all_finite(self.unit_values_name.as_str(), &self.unit_values)
    }
}

impl FiniteResult for ShrinkageResult {
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
}

impl FiniteResult for CriticResult {
    fn check_finite(&self) -> Result<()> {
        all_finite("values", &self.values)
    }
}

impl FiniteResult for AggregationResult {
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
}

/// How many copies of its inputs a method may hold without sizing them itself ([`memory::reserve`]
/// is called for that much before every entry point).
pub const WORKING_COPIES: f64 = 3.0;

macro_rules! adapter_methods {
    ($( $trait_:ident :: $method:ident ( $($mut_:tt)? ) -> $ret:ty ; )*) => {$(
        fn $method(& $($mut_)? self, tables: quiver_abi::Tables<'_>) -> PluginResult<$ret> {
            let inner = & $($mut_)? self.0;
            guard(stringify!($method), move || {
                let tables = Tables::new(tables);
                // every method may hold a few working copies of its inputs: refuse, clearly,
                // inputs too large for that before the method starts (it sizes anything larger)
                memory::reserve(WORKING_COPIES * tables.bytes(), "working copies of the input tables")?;
                let out = $trait_::$method(inner, &tables)?;
                out.check_finite()?;
                Ok(out)
            })
        }
    )*};
}

impl<T: SelectorImpl> quiver_abi::ConformalSelector for Adapter<T> {
    adapter_methods! {
        SelectorImpl::calibrate(mut) -> ();
        SelectorImpl::select() -> SelectionResult;
    }
}

impl<T: BatchImpl> quiver_abi::BatchPredictor for Adapter<T> {
    adapter_methods! {
        BatchImpl::calibrate(mut) -> ();
        BatchImpl::bound() -> BatchResult;
    }
}

impl<T: AggregatorImpl> quiver_abi::QuantileAggregator for Adapter<T> {
    adapter_methods! {
        AggregatorImpl::fit(mut) -> ();
        AggregatorImpl::calibrate(mut) -> ();
        AggregatorImpl::predict() -> AggregationResult;
    }
}

impl<T: ShrinkageImpl> quiver_abi::Shrinkage for Adapter<T> {
    adapter_methods! {
        ShrinkageImpl::estimate() -> ShrinkageResult;
    }
}

impl<T: CriticImpl> quiver_abi::Critic for Adapter<T> {
    adapter_methods! {
        CriticImpl::fit(mut) -> ();
        CriticImpl::values() -> CriticResult;
    }
}

/// Box a selector as an [`Estimator`].
pub fn selector(value: impl SelectorImpl) -> Estimator {
    Estimator::ConformalSelector(quiver_abi::ConformalSelector_TO::from_value(Adapter(value), TD_Opaque))
}

/// Box a batch predictor as an [`Estimator`].
pub fn batch_predictor(value: impl BatchImpl) -> Estimator {
    Estimator::BatchPredictive(quiver_abi::BatchPredictor_TO::from_value(Adapter(value), TD_Opaque))
}

/// Box a quantile aggregator as an [`Estimator`].
pub fn aggregator(value: impl AggregatorImpl) -> Estimator {
    Estimator::QuantileAggregator(quiver_abi::QuantileAggregator_TO::from_value(Adapter(value), TD_Opaque))
}

/// Box a shrinkage estimator as an [`Estimator`].
pub fn shrinkage(value: impl ShrinkageImpl) -> Estimator {
    Estimator::Shrinkage(quiver_abi::Shrinkage_TO::from_value(Adapter(value), TD_Opaque))
}

/// Box a critic as an [`Estimator`].
pub fn critic(value: impl CriticImpl) -> Estimator {
    Estimator::Critic(quiver_abi::Critic_TO::from_value(Adapter(value), TD_Opaque))
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
        Err(_) => ManifestBuilder::new("", quiver_abi::Family::ConformalSelector).build(),
    }
}

/// The `create` entry point for plugin `P`: validates parameters against the manifest, fills
/// defaults, resolves the device, and calls [`Plugin::create`], all under [`guard`].
pub extern "C" fn create_entry<P: Plugin>(params_json: RStr<'_>, ctx: RunContext) -> PluginResult<Estimator> {
    guard("create", || {
        let manifest = P::manifest();
        let params = Params::from_json(&manifest, params_json.as_str())?;
        let context = Context::resolve(&manifest, &params, ctx)?;
        let estimator = P::create(params, context)?;
        if estimator.family() != manifest.family {
            return Err(PluginError::new(
                ErrorKind::Internal,
                format!(
                    "plugin '{}' declares family {} but created a {}",
                    manifest.name,
                    manifest.family.name(),
                    estimator.family().name()
                ),
            ));
        }
        Ok(estimator)
    })
}

/// Create an estimator of plugin `P` directly (no dynamic loading): what the rlib-level tests and
/// benches use. Goes through exactly the same validation and panic guard as the exported entry.
pub fn create_local<P: Plugin>(params_json: &str, ctx: RunContext) -> Result<Estimator> {
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

/// A value as an error message shows it: as written (`-1`, `0.25`), or in its shortest form
/// where that runs long (`1e300`, not 301 digits).
pub fn compact(v: impl std::fmt::Display + std::fmt::Debug) -> String {
    let shown = v.to_string();
    if shown.len() > 24 {
        format!("{v:?}")
    } else {
        shown
    }
}

/// A float as JSON, with non-finite values as the strings `"inf"`, `"-inf"`, `"nan"` (JSON has
/// no infinities; an infinite bound is a legal result, e.g. too little calibration data).
pub fn json_f64(x: f64) -> serde_json::Value {
    if x.is_finite() {
        serde_json::json!(x)
    } else if x.is_nan() {
        serde_json::json!("nan")
    } else if x > 0.0 {
        serde_json::json!("inf")
    } else {
        serde_json::json!("-inf")
    }
}

/// A strided ABI matrix as an `ndarray` view over the same memory (no copy), after checking
/// that every index the shape and strides reach lies inside the storage.
pub fn matrix_view<'a, T>(m: &quiver_abi::MatrixView<'a, T>) -> Result<ndarray::ArrayView2<'a, T>> {
    use ndarray::ShapeBuilder;
    if !m.in_bounds() {
        return Err(PluginError::input(format!(
            "matrix view {}x{} with strides ({}, {}) and offset {} reaches outside its {} values",
            m.rows,
            m.cols,
            m.row_stride,
            m.col_stride,
            m.offset,
            m.data.len()
        )));
    }
    let data: &'a [T] = m.data.as_slice();
    let tail = &data[m.offset.min(data.len())..];
    ndarray::ArrayView2::from_shape((m.rows, m.cols).strides((m.row_stride, m.col_stride)), tail)
        .map_err(|e| PluginError::input(format!("matrix view: {e}")))
}

/// An error for a lifecycle step called out of order.
pub fn state_error(message: impl Into<String>) -> PluginError {
    PluginError::new(ErrorKind::State, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_shows_values_as_written_or_short() {
        assert_eq!(compact(-1.0), "-1");
        assert_eq!(compact(0.25), "0.25");
        assert_eq!(compact(7_i64), "7");
        assert_eq!(compact(1e300), "1e300");
        assert_eq!(compact(-1.5e-300), "-1.5e-300");
    }

    #[test]
    fn matrix_views_are_zero_copy_and_checked() {
        let data = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let m = quiver_abi::MatrixView::row_major(&data, 2, 3).unwrap();
        let v = matrix_view(&m).unwrap();
        assert_eq!(v[[1, 2]], 6.0);
        assert!(std::ptr::eq(v.as_ptr(), data.as_ptr()));
        // the transpose, by strides
        let t = quiver_abi::MatrixView { rows: 3, cols: 2, row_stride: 1, col_stride: 3, ..m };
        let tv = matrix_view(&t).unwrap();
        assert_eq!(tv[[2, 1]], 6.0);
        assert_eq!(tv[[2, 0]], 3.0);
        let bad = quiver_abi::MatrixView { rows: 3, ..m };
        assert!(matrix_view(&bad).unwrap_err().message.contains("reaches outside"));
    }
}
