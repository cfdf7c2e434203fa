//! The Quiver host: finds plugin files, loads them through the stable ABI, keeps a process-wide
//! registry, validates inputs against each method's manifest, and hands out typed handles per
//! estimator family ([`Selector`], [`BatchPredictor`], [`Aggregator`], [`Shrinker`], [`Critic`]).
//!
//! Loading a file: (0) it is parsed without loading ([`check_object_file`]): every segment lies
//! inside the file, and its dynamic symbol table exports the C-ABI identity symbol
//! ([`quiver_abi::IDENTITY_SYMBOL`]) — a library without it is not a Quiver plugin and is never
//! loaded, so its initialisers never run; (1) `libloading` opens it and calls the identity
//! function: one built against another ABI version is refused with both versions in one line; (2) abi_stable checks
//! type layouts and loads the root module (`lib_header_from_path(..).init_root_module()`, never
//! `load_from_file`); (3) the manifest is read and the method name checked for duplicates.
//! A file that fails is recorded in [`Host::failures`]; the others still load. Libraries are never
//! unloaded.

pub mod error;
pub mod npy;
pub mod table;

pub use error::{HostError, InputError, LoadError};
pub use quiver_abi::{
    AggregationResult, BatchResult, Bound, CriticResult, Device, DeviceRequest, ErrorKind, Family, Manifest, ParamKind,
    ParamSpec, RunContext, SelectionResult, ShrinkageResult, TableSpec, ABI_VERSION,
};
pub use table::{column_kind, read_csv, validate_view, Table, Values};

use quiver_abi::{loader, PluginIdentity, PluginModRef};
pub use quiver_abi::{ColumnData, ColumnKind, ColumnView, TableView};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// Environment variable with plugin folders (separated like `PATH`).
pub const PLUGIN_PATH_ENV: &str = "QUIVER_PLUGIN_PATH";

/// A loaded plugin.
#[derive(Clone)]
pub struct Plugin {
    /// The file it came from.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// The SDK version it was built with.
    pub sdk_version: String,
    module: PluginModRef,
}

impl Plugin {
    /// Method name.
    pub fn name(&self) -> &str {
        self.manifest.name.as_str()
    }
}

/// The registry of loaded plugins, and the files that failed.
#[derive(Default, Clone)]
pub struct Host {
    plugins: Vec<Plugin>,
    failures: Vec<LoadError>,
    searched: Vec<PathBuf>,
}

/// Whether the CUDA driver library and NVRTC can be loaded: `(driver, nvrtc)`.
pub fn cuda_libraries() -> (bool, bool) {
    let found = |names: &[&str]| {
        names.iter().any(|n| {
            // SAFETY: opening the CUDA driver / NVRTC only to test presence; dropped at once.
            unsafe { libloading::Library::new(n) }.is_ok()
        })
    };
    (
        found(&["libcuda.so.1", "libcuda.so", "nvcuda.dll"]),
        found(&["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "nvrtc64_130_0.dll", "nvrtc64_120_0.dll"]),
    )
}

/// The file-name extension of shared libraries on this platform.
pub fn library_extension() -> &'static str {
    std::env::consts::DLL_EXTENSION
}

/// The folders searched for plugins: `explicit` if given; else the folders in
/// `QUIVER_PLUGIN_PATH` if set; else the first of `plugins/` next to the running binary,
/// `../plugins` from it (so `target/release/quiver` finds `target/plugins`), and
/// `target/plugins` under the current directory, that exists.
pub fn plugin_dirs(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(dir) = explicit {
        return vec![dir.to_path_buf()];
    }
    if let Some(paths) = std::env::var_os(PLUGIN_PATH_ENV) {
        let dirs: Vec<PathBuf> = std::env::split_paths(&paths).filter(|p| !p.as_os_str().is_empty()).collect();
        if !dirs.is_empty() {
            return dirs;
        }
    }
    let mut candidates = Vec::new();
    if let Some(exe_dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        candidates.push(exe_dir.join("plugins"));
        if let Some(up) = exe_dir.parent() {
            candidates.push(up.join("plugins"));
            if let Some(up2) = up.parent() {
                candidates.push(up2.join("plugins"));
            }
        }
    }
    candidates.push(PathBuf::from("target/plugins"));
    candidates.into_iter().find(|d| d.is_dir()).into_iter().collect()
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Check an object file before the dynamic loader maps it: it parses as an ELF, Mach-O or PE file,
/// and every segment (and section) it would map lies inside the file. The loader maps segments
/// past the end of a truncated file and the first touch of those pages kills the process with
/// SIGBUS, so a corrupt file must be refused here.
pub fn check_object_file(path: &Path) -> Result<(), LoadError> {
    inspect_object_file(path).map(|_| ())
}

/// [`check_object_file`], and whether the file's dynamic symbol table exports the plugin identity
/// symbol (`None` when the format's exports cannot be listed: then `dlsym` decides after
/// loading). Read before any loading, so a shared library that is not a Quiver plugin (a system
/// library in a plugin folder) is refused without running its initialisers.
fn inspect_object_file(path: &Path) -> Result<Option<bool>, LoadError> {
    use object::{Object, ObjectSection, ObjectSegment};
    let corrupt = |reason: String| LoadError::NotALibrary { path: path.into(), reason };
    let data = std::fs::read(path).map_err(|e| corrupt(e.to_string()))?;
    let len = data.len() as u64;
    let file = object::File::parse(&*data).map_err(|e| corrupt(format!("not a valid object file ({e})")))?;
    let past_end = |what: &str, name: &str, (offset, size): (u64, u64)| {
        (offset.checked_add(size).is_none_or(|end| end > len)).then(|| {
            corrupt(format!(
                "{what} {name} spans bytes {offset}..{} but the file has {len}: truncated or corrupt",
                offset.saturating_add(size)
            ))
        })
    };
    for seg in file.segments() {
        let name = seg.name().ok().flatten().unwrap_or("").to_string();
        if let Some(e) = past_end("segment", &name, seg.file_range()) {
            return Err(e);
        }
    }
    for sec in file.sections() {
        if let Some(range) = sec.file_range() {
            if let Some(e) = past_end("section", sec.name().unwrap_or(""), range) {
                return Err(e);
            }
        }
    }
    Ok(file.exports().ok().map(|exports| {
        exports.iter().any(|e| {
            let name = e.name();
            // Mach-O prefixes C symbols with an underscore
            name == quiver_abi::IDENTITY_SYMBOL.as_bytes()
                || name.strip_prefix(b"_") == Some(quiver_abi::IDENTITY_SYMBOL.as_bytes())
        })
    }))
}

fn read_identity(path: &Path) -> Result<PluginIdentity, LoadError> {
    if inspect_object_file(path)? == Some(false) {
        return Err(LoadError::NotAPlugin { path: path.into(), symbol: quiver_abi::IDENTITY_SYMBOL });
    }
    // SAFETY: loading a library runs its initialisers; plugin folders are trusted code, as with
    // any plugin system. The library is kept loaded for the life of the process.
    let lib = unsafe { libloading::Library::new(path) }
        .map_err(|e| LoadError::NotALibrary { path: path.into(), reason: e.to_string() })?;
    let identity = {
        // SAFETY: the symbol, when present, is the SDK's `extern "C" fn() -> PluginIdentity`.
        let sym: Result<libloading::Symbol<extern "C" fn() -> PluginIdentity>, _> =
            unsafe { lib.get(quiver_abi::IDENTITY_SYMBOL.as_bytes()) };
        match sym {
            Ok(f) => f(),
            Err(_) => return Err(LoadError::NotAPlugin { path: path.into(), symbol: quiver_abi::IDENTITY_SYMBOL }),
        }
    };
    std::mem::forget(lib);
    if identity.magic != quiver_abi::IDENTITY_MAGIC {
        return Err(LoadError::NotAPlugin { path: path.into(), symbol: quiver_abi::IDENTITY_SYMBOL });
    }
    Ok(identity)
}

fn sdk_version(identity: &PluginIdentity) -> String {
    if identity.sdk_version.is_null() {
        return "unknown".into();
    }
    // SAFETY: the SDK points this at a NUL-terminated 'static string in the plugin's image,
    // which stays loaded.
    unsafe { std::ffi::CStr::from_ptr(identity.sdk_version) }.to_string_lossy().into_owned()
}

impl Host {
    /// An empty registry.
    pub fn new() -> Self {
        Host::default()
    }

    /// Load every plugin in [`plugin_dirs`]`(explicit)`.
    pub fn discover(explicit: Option<&Path>) -> Self {
        let mut host = Host::new();
        for dir in plugin_dirs(explicit) {
            host.load_dir(&dir);
        }
        host
    }

    /// Load every shared library in `dir` (sorted by file name). Failures are recorded.
    pub fn load_dir(&mut self, dir: &Path) {
        self.searched.push(dir.to_path_buf());
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == library_extension()))
            .collect();
        files.sort();
        for f in files {
            let _ = self.load_file(&f);
        }
    }

    /// Load one plugin file. On failure the error is returned and also recorded.
    pub fn load_file(&mut self, path: &Path) -> Result<&Plugin, LoadError> {
        match self.try_load(path) {
            Ok(p) => {
                self.plugins.push(p);
                Ok(self.plugins.last().expect("just pushed"))
            }
            Err(e) => {
                self.failures.push(e.clone());
                Err(e)
            }
        }
    }

    fn try_load(&self, path: &Path) -> Result<Plugin, LoadError> {
        let identity = read_identity(path)?;
        if !ABI_VERSION.compatible_with(&identity.abi) {
            return Err(LoadError::AbiVersion {
                path: path.into(),
                expected: ABI_VERSION.to_string(),
                found: identity.abi.to_string(),
                sdk: sdk_version(&identity),
            });
        }
        let module = loader::load_root_module(path).map_err(|e| match e {
            loader::LoadFailure::Incompatible(msg) => LoadError::Incompatible {
                path: path.into(),
                expected: ABI_VERSION.to_string(),
                tail: tail_lines(&msg, 12),
            },
            loader::LoadFailure::Other(msg) => {
                LoadError::RootModule { path: path.into(), reason: tail_lines(&msg, 12) }
            }
        })?;
        let manifest = (module.manifest())();
        if manifest.name.is_empty() {
            return Err(LoadError::BadManifest { path: path.into(), reason: "empty method name".into() });
        }
        if let Some(first) = self.plugins.iter().find(|p| p.name() == manifest.name.as_str()) {
            return Err(LoadError::Duplicate {
                path: path.into(),
                method: manifest.name.to_string(),
                first: first.path.clone(),
            });
        }
        Ok(Plugin { path: path.into(), manifest, sdk_version: sdk_version(&identity), module })
    }

    /// Loaded plugins, in load order.
    pub fn plugins(&self) -> &[Plugin] {
        &self.plugins
    }

    /// Files that failed to load.
    pub fn failures(&self) -> &[LoadError] {
        &self.failures
    }

    /// Folders that were searched.
    pub fn searched(&self) -> &[PathBuf] {
        &self.searched
    }

    /// The plugin providing `method`.
    pub fn get(&self, method: &str) -> Result<&Plugin, HostError> {
        self.plugins.iter().find(|p| p.name() == method).ok_or_else(|| HostError::UnknownMethod {
            name: method.into(),
            known: if self.plugins.is_empty() {
                "none: build them with `cargo xtask build` or point --plugins / QUIVER_PLUGIN_PATH at them".into()
            } else {
                self.plugins.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
            },
        })
    }

    /// Construct an estimator of `method` with `params` (a JSON object, validated by the
    /// plugin's SDK against its manifest: names, types, ranges, choices).
    ///
    /// The device contract: `cuda` for a method whose manifest lists no CUDA path is refused
    /// here ([`HostError::NoCudaPath`]); `auto` for such a method runs on the CPU without asking
    /// the plugin to probe for a GPU; a method with a CUDA path resolves `auto` and `cuda` itself
    /// (CUDA where a GPU is usable).
    pub fn create(&self, method: &str, params: &Map<String, Value>, ctx: RunContext) -> Result<Estimator, HostError> {
        self.create_observed(method, params, ctx, None)
    }

    /// [`Host::create`] with a progress observer: the plugin reports the progress of its long
    /// steps to `progress`, and stops with an [`ErrorKind::Cancelled`] error when it returns
    /// `false`. The estimator keeps the observer alive.
    pub fn create_observed(
        &self,
        method: &str,
        params: &Map<String, Value>,
        ctx: RunContext,
        progress: Option<&Progress>,
    ) -> Result<Estimator, HostError> {
        let plugin = self.get(method)?;
        let mut ctx = device_contract(&plugin.manifest, ctx)?;
        // more worker threads than cores only slow a method down (and thousands exhaust the
        // process): cap them at the machine's parallelism
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        ctx.threads = ctx.threads.min(cores);
        if let Some(p) = progress {
            ctx.progress = p.sink();
        }
        let text = Value::Object(params.clone()).to_string();
        let create = plugin.module.create();
        let inner = create(text.as_str().into(), ctx).into_result().map_err(|e| plugin_error(method, e))?;
        Ok(Estimator { method: method.into(), manifest: plugin.manifest.clone(), inner, _progress: progress.cloned() })
    }

    /// A conformal-selector handle.
    pub fn selector(&self, method: &str, params: &Map<String, Value>, ctx: RunContext) -> Result<Selector, HostError> {
        Selector::new(self.create(method, params, ctx)?)
    }

    /// A batch-predictor handle.
    pub fn batch_predictor(
        &self,
        method: &str,
        params: &Map<String, Value>,
        ctx: RunContext,
    ) -> Result<BatchPredictor, HostError> {
        BatchPredictor::new(self.create(method, params, ctx)?)
    }

    /// A quantile-aggregator handle.
    pub fn aggregator(
        &self,
        method: &str,
        params: &Map<String, Value>,
        ctx: RunContext,
    ) -> Result<Aggregator, HostError> {
        Aggregator::new(self.create(method, params, ctx)?)
    }

    /// A shrinkage handle.
    pub fn shrinker(&self, method: &str, params: &Map<String, Value>, ctx: RunContext) -> Result<Shrinker, HostError> {
        Shrinker::new(self.create(method, params, ctx)?)
    }

    /// A critic handle.
    pub fn critic(&self, method: &str, params: &Map<String, Value>, ctx: RunContext) -> Result<Critic, HostError> {
        Critic::new(self.create(method, params, ctx)?)
    }

    /// Run a method's whole lifecycle on `tables` (each lifecycle step sees every table) and
    /// return its JSON result: what the CLI and demo do, generic over families.
    pub fn run(
        &self,
        method: &str,
        params: &Map<String, Value>,
        tables: &[Table],
        ctx: RunContext,
    ) -> Result<Value, HostError> {
        self.run_observed(method, params, tables, ctx, None)
    }

    /// [`Host::run`] with a progress observer (see [`Host::create_observed`]).
    pub fn run_observed(
        &self,
        method: &str,
        params: &Map<String, Value>,
        tables: &[Table],
        ctx: RunContext,
        progress: Option<&Progress>,
    ) -> Result<Value, HostError> {
        Ok(self.run_output_observed(method, params, tables, ctx, progress)?.into_json())
    }

    /// [`Host::run_observed`] with the per-unit arrays kept typed ([`RunOutput`]): what a
    /// front-end that streams large results uses (a JSON value costs 32 bytes a number).
    pub fn run_output_observed(
        &self,
        method: &str,
        params: &Map<String, Value>,
        tables: &[Table],
        ctx: RunContext,
        progress: Option<&Progress>,
    ) -> Result<RunOutput, HostError> {
        validate_owned(&self.get(method)?.manifest, tables)?;
        let columns: Vec<Vec<ColumnView<'_>>> = tables.iter().map(Table::column_views).collect();
        let views: Vec<TableView<'_>> = tables.iter().zip(&columns).map(|(t, c)| t.view(c)).collect();
        self.run_checked(method, params, &views, ctx, progress)
    }

    /// [`Host::run_output_observed`] on borrowed tables: columns that live elsewhere (NumPy
    /// arrays, memory maps) cross to the plugin without a copy. They are checked against the
    /// manifest as owned tables are ([`validate_view`]; errors name table, column and row).
    pub fn run_views(
        &self,
        method: &str,
        params: &Map<String, Value>,
        tables: &[TableView<'_>],
        ctx: RunContext,
        progress: Option<&Progress>,
    ) -> Result<RunOutput, HostError> {
        validate_views(&self.get(method)?.manifest, tables)?;
        self.run_checked(method, params, tables, ctx, progress)
    }

    /// The lifecycle on tables already checked against the manifest.
    fn run_checked(
        &self,
        method: &str,
        params: &Map<String, Value>,
        views: &[TableView<'_>],
        ctx: RunContext,
        progress: Option<&Progress>,
    ) -> Result<RunOutput, HostError> {
        let est = self.create_observed(method, params, ctx, progress)?;
        let t = quiver_abi::tables(views);
        match est.family() {
            Family::ConformalSelector => {
                let mut h = Selector::new(est)?;
                h.est.invoke(h.inner.calibrate(t))?;
                selection_output(method, h.est.invoke(h.inner.select(t))?)
            }
            Family::BatchPredictive => {
                let mut h = BatchPredictor::new(est)?;
                h.est.invoke(h.inner.calibrate(t))?;
                batch_output(method, h.est.invoke(h.inner.bound(t))?)
            }
            Family::QuantileAggregator => {
                let mut h = Aggregator::new(est)?;
                h.est.invoke(h.inner.fit(t))?;
                h.est.invoke(h.inner.calibrate(t))?;
                aggregation_output(method, h.est.invoke(h.inner.predict(t))?)
            }
            Family::Shrinkage => {
                let h = Shrinker::new(est)?;
                shrinkage_output(method, h.est.invoke(h.inner.estimate(t))?)
            }
            Family::Critic => {
                let mut h = Critic::new(est)?;
                h.est.invoke(h.inner.fit(t))?;
                critic_output(method, h.est.invoke(h.inner.values(t))?)
            }
        }
    }
}

/// Check the owned tables a method reads (those present) against its manifest.
fn validate_owned(manifest: &Manifest, tables: &[Table]) -> Result<(), HostError> {
    for t in tables {
        if let Some(spec) = manifest.tables.iter().find(|s| s.role.as_str() == t.role) {
            t.validate(spec)?;
        }
    }
    Ok(())
}

/// Check the borrowed tables a method reads (those present) against its manifest.
fn validate_views(manifest: &Manifest, views: &[TableView<'_>]) -> Result<(), HostError> {
    for t in views {
        if let Some(spec) = manifest.tables.iter().find(|s| s.role.as_str() == t.role.as_str()) {
            validate_view(t, spec)?;
        }
    }
    Ok(())
}

/// A per-unit array of a result, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum UnitArray {
    /// Numbers (p-values, estimates, interval ends).
    F64(Vec<f64>),
    /// Indices (selected units).
    U64(Vec<u64>),
    /// One row of `cols` numbers per unit (row-major), e.g. a quantile set per test row.
    Rows {
        /// Numbers per unit.
        cols: usize,
        /// The `len() * cols` values.
        values: Vec<f64>,
    },
}

impl UnitArray {
    /// Number of entries.
    pub fn len(&self) -> usize {
        match self {
            UnitArray::F64(v) => v.len(),
            UnitArray::U64(v) => v.len(),
            UnitArray::Rows { cols, values } => values.len().checked_div(*cols).unwrap_or(0),
        }
    }
    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Entry `i` as a JSON value.
    pub fn get_json(&self, i: usize) -> Value {
        match self {
            UnitArray::F64(v) => json!(v[i]),
            UnitArray::U64(v) => json!(v[i]),
            UnitArray::Rows { cols, values } => row_json(&values[i * cols..(i + 1) * cols]),
        }
    }
}

/// A method's result: the plugin's JSON summary and the per-unit arrays, which follow the
/// summary's fields in the complete JSON ([`RunOutput::into_json`], [`RunOutput::write_json`]).
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// The summary (a JSON object).
    pub summary: Value,
    /// `(name, values)` per-unit arrays.
    pub arrays: Vec<(String, UnitArray)>,
}

impl RunOutput {
    /// The complete JSON value.
    pub fn into_json(self) -> Value {
        let mut v = self.summary;
        if let Some(obj) = v.as_object_mut() {
            for (name, a) in self.arrays {
                let value = match a {
                    UnitArray::F64(x) => json!(x),
                    UnitArray::U64(x) => json!(x),
                    UnitArray::Rows { cols, values } => {
                        Value::Array(values.chunks(cols.max(1)).map(row_json).collect())
                    }
                };
                obj.insert(name, value);
            }
        }
        v
    }

    /// Write the complete JSON (indented, one array entry per line) as it is serialised: no
    /// text or JSON value of the whole result is built.
    pub fn write_json(&self, mut w: impl std::io::Write) -> std::io::Result<()> {
        let obj = self.summary.as_object().cloned().unwrap_or_default();
        let arrays: Vec<&(String, UnitArray)> = self.arrays.iter().filter(|(n, _)| !obj.contains_key(n)).collect();
        let total = obj.len() + arrays.len();
        w.write_all(b"{\n")?;
        for (k, (key, value)) in obj.iter().enumerate() {
            write!(w, "  {}: ", Value::String(key.clone()))?;
            let text = serde_json::to_string_pretty(value)?;
            w.write_all(text.replace('\n', "\n  ").as_bytes())?;
            w.write_all(if k + 1 < total { b",\n" } else { b"\n" })?;
        }
        for (k, (name, a)) in arrays.iter().enumerate() {
            write!(w, "  {}: [", Value::String(name.clone()))?;
            for i in 0..a.len() {
                w.write_all(if i == 0 { b"\n    " } else { b",\n    " })?;
                match a {
                    UnitArray::F64(v) => serde_json::to_writer(&mut w, &v[i])?,
                    UnitArray::U64(v) => write!(w, "{}", v[i])?,
                    UnitArray::Rows { cols, values } => {
                        serde_json::to_writer(&mut w, &row_json(&values[i * cols..(i + 1) * cols]))?
                    }
                }
            }
            w.write_all(if a.is_empty() { b"]" } else { b"\n  ]" })?;
            w.write_all(if obj.len() + k + 1 < total { b",\n" } else { b"\n" })?;
        }
        w.write_all(b"}\n")
    }
}

/// A row of numbers as JSON, infinities as the strings `"inf"` / `"-inf"` (JSON has none; an
/// infinite interval end is a legal result).
fn row_json(r: &[f64]) -> Value {
    Value::Array(
        r.iter()
            .map(|&x| match x {
                x if x.is_finite() => json!(x),
                x if x.is_nan() => json!("nan"),
                x if x > 0.0 => json!("inf"),
                _ => json!("-inf"),
            })
            .collect(),
    )
}

fn summary_json(method: &str, text: &str) -> Result<Value, HostError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| HostError::BadResult { method: method.into(), reason: e.to_string() })?;
    if !v.is_object() {
        return Err(HostError::BadResult { method: method.into(), reason: "not a JSON object".into() });
    }
    Ok(v)
}

/// A batch result as a [`RunOutput`] (its JSON is complete: no typed arrays).
pub fn batch_output(method: &str, r: BatchResult) -> Result<RunOutput, HostError> {
    Ok(RunOutput { summary: summary_json(method, r.json.as_str())?, arrays: Vec::new() })
}

/// A critic result as a [`RunOutput`] (its JSON is complete, the queried values included).
pub fn critic_output(method: &str, r: CriticResult) -> Result<RunOutput, HostError> {
    Ok(RunOutput { summary: summary_json(method, r.json.as_str())?, arrays: Vec::new() })
}

/// A selection's summary and its typed arrays (`selected`, and the per-unit values).
pub fn selection_output(method: &str, r: SelectionResult) -> Result<RunOutput, HostError> {
    Ok(RunOutput {
        summary: summary_json(method, r.json.as_str())?,
        arrays: vec![
            (r.selected_name.to_string(), UnitArray::U64(r.selected.into_vec())),
            (r.unit_values_name.to_string(), UnitArray::F64(r.unit_values.into_vec())),
        ],
    })
}

/// A shrinkage result's summary and its typed arrays (`estimates`, and `lower` / `upper` when
/// intervals were computed).
pub fn shrinkage_output(method: &str, r: ShrinkageResult) -> Result<RunOutput, HostError> {
    let p = r.estimates.len();
    let mut arrays = vec![("estimates".to_string(), UnitArray::F64(r.estimates.into_vec()))];
    if let Some(iv) = r.intervals.into_option() {
        let iv = iv.into_vec();
        arrays.push(("lower".into(), UnitArray::F64(iv[..p].to_vec())));
        arrays.push(("upper".into(), UnitArray::F64(iv[p..].to_vec())));
    }
    Ok(RunOutput { summary: summary_json(method, r.json.as_str())?, arrays })
}

/// An aggregation's summary and its typed `test_quantiles` (one row of K quantiles per test
/// row; absent when the method produced no quantile set, e.g. scoring only).
pub fn aggregation_output(method: &str, r: AggregationResult) -> Result<RunOutput, HostError> {
    let q = r.quantiles;
    if q.rows.checked_mul(q.cols) != Some(q.data.len()) {
        return Err(HostError::BadResult {
            method: method.into(),
            reason: format!("test_quantiles holds {} values, not {} x {}", q.data.len(), q.rows, q.cols),
        });
    }
    let arrays = if q.cols == 0 {
        Vec::new()
    } else {
        vec![("test_quantiles".to_string(), UnitArray::Rows { cols: q.cols, values: q.data.into_vec() })]
    };
    Ok(RunOutput { summary: summary_json(method, r.json.as_str())?, arrays })
}

/// The complete JSON of a selection: the plugin's summary plus the typed per-unit arrays.
pub fn selection_json(method: &str, r: &SelectionResult) -> Result<Value, HostError> {
    Ok(selection_output(method, r.clone())?.into_json())
}

/// The complete JSON of a shrinkage result: the plugin's summary plus `estimates`, and `lower` /
/// `upper` when intervals were computed (the typed arrays travel outside the JSON text).
pub fn shrinkage_json(method: &str, r: &ShrinkageResult) -> Result<Value, HostError> {
    Ok(shrinkage_output(method, r.clone())?.into_json())
}

fn plugin_error(method: &str, e: quiver_abi::PluginError) -> HostError {
    HostError::Plugin { method: method.into(), kind: e.kind, message: e.message.into() }
}

/// Whether the manifest lists a CUDA path.
pub fn has_cuda_path(manifest: &Manifest) -> bool {
    manifest.devices.contains(&Device::Cuda)
}

/// Apply the device contract to a run context: a CUDA request for a method without a CUDA path
/// is an error; `auto` for such a method becomes `cpu`.
pub fn device_contract(manifest: &Manifest, ctx: RunContext) -> Result<RunContext, HostError> {
    if has_cuda_path(manifest) {
        return Ok(ctx);
    }
    match ctx.device {
        DeviceRequest::Cuda => Err(HostError::NoCudaPath {
            method: manifest.name.to_string(),
            devices: manifest.devices.iter().map(|d| d.name()).collect::<Vec<_>>().join(", "),
        }),
        _ => Ok(RunContext { device: DeviceRequest::Cpu, ..ctx }),
    }
}

/// Turn `KEY=VALUE` strings into a JSON parameter object, typed by the manifest (numbers for
/// float and integer parameters, `true`/`false` for booleans, text otherwise; `inf`/`-inf`
/// as the strings JSON needs). Text that does not parse is passed on as text, so the plugin's
/// SDK — the one place parameters are checked — refuses it with the message every caller sees:
/// `parameter 'q' = "lots" must be a number in (0, 1)`. Unknown names are refused the same way.
pub fn params_from_pairs(manifest: &Manifest, pairs: &[String]) -> Result<Map<String, Value>, HostError> {
    let mut out = Map::new();
    for pair in pairs {
        let (key, raw) =
            pair.split_once('=').ok_or_else(|| HostError::Parameter(format!("'{pair}' is not KEY=VALUE")))?;
        let (key, raw) = (key.trim(), raw.trim());
        let kind = manifest.params.iter().find(|p| p.name.as_str() == key).map(|p| p.kind);
        let value = match kind {
            Some(ParamKind::Float) => match raw.to_ascii_lowercase().as_str() {
                "inf" | "+inf" | "infinity" => json!("inf"),
                "-inf" | "-infinity" => json!("-inf"),
                // integers stay integers, so messages echo the value as typed (`q = 2`, not 2.0)
                _ => match (raw.parse::<i64>(), raw.parse::<f64>()) {
                    (Ok(i), _) => json!(i),
                    (_, Ok(x)) if x.is_finite() => json!(x),
                    _ => json!(raw),
                },
            },
            Some(ParamKind::Int) => raw.parse::<i64>().map_or_else(|_| json!(raw), |x| json!(x)),
            Some(ParamKind::Bool) => raw.parse::<bool>().map_or_else(|_| json!(raw), |b| json!(b)),
            _ => json!(raw),
        };
        if out.insert(key.to_string(), value).is_some() {
            return Err(HostError::Parameter(format!("parameter '{key}' is set twice")));
        }
    }
    Ok(out)
}

/// Read `ROLE=PATH` inputs (CSV, or `.npy` with column names), typed and validated by the
/// method's manifest. Tables the
/// method does not read, and required tables that are missing, are errors.
pub fn read_inputs(manifest: &Manifest, inputs: &[(String, PathBuf)]) -> Result<Vec<Table>, HostError> {
    let mut tables = Vec::new();
    for (i, (role, path)) in inputs.iter().enumerate() {
        // a repeated role is a mistake, not a choice to make silently
        if let Some((_, first)) = inputs[..i].iter().find(|(r, _)| r == role) {
            return Err(HostError::Parameter(format!(
                "table '{role}' is given twice ({} and {}): give it once",
                first.display(),
                path.display()
            )));
        }
        let spec =
            manifest.tables.iter().find(|t| t.role.as_str() == role).ok_or_else(|| InputError::UnknownTable {
                method: manifest.name.to_string(),
                table: role.clone(),
                known: manifest.tables.iter().map(|t| t.role.as_str()).collect::<Vec<_>>().join(", "),
            })?;
        let table = read_table(path, role, spec)?;
        tables.push(table);
    }
    validate_tables(manifest, &mut tables)?;
    Ok(tables)
}

/// Read one input: a CSV file, or `PATH.npy:name1,name2,...` for a plain NumPy matrix whose
/// columns get those names.
pub fn read_table(path: &Path, role: &str, spec: &quiver_abi::TableSpec) -> Result<Table, InputError> {
    let text = path.to_string_lossy();
    if let Some((file, names)) = text.rsplit_once(':').filter(|(f, _)| f.ends_with(".npy")) {
        let names: Vec<String> = names.split(',').map(|s| s.trim().to_string()).collect();
        if let Some(k) = names.iter().position(String::is_empty) {
            return Err(InputError::File {
                table: role.to_string(),
                path: path.to_path_buf(),
                reason: format!("column name {} of the .npy names is empty ('{file}:NAME1,NAME2,...')", k + 1),
            });
        }
        if let Some((k, name)) = names.iter().enumerate().find(|(k, n)| names[..*k].contains(n)) {
            return Err(InputError::File {
                table: role.to_string(),
                path: path.to_path_buf(),
                reason: format!(
                    "column name '{name}' is given twice in the .npy names (names {} and {k_1})",
                    names.iter().position(|n| n == name).map_or(0, |p| p + 1),
                    k_1 = k + 1
                ),
            });
        }
        return npy::read_npy(Path::new(file), role, &names);
    }
    if text.ends_with(".npy") {
        return Err(InputError::File {
            table: role.into(),
            path: path.into(),
            reason: "name the columns of a .npy matrix: ROLE=PATH.npy:name1,name2,...".into(),
        });
    }
    read_csv(path, role, Some(spec))
}

/// Check tables against the manifest (required tables present, columns, types, finiteness) and
/// coerce column types (integers where floats are wanted, 0/1 where flags are wanted).
pub fn validate_tables(manifest: &Manifest, tables: &mut [Table]) -> Result<(), HostError> {
    for spec in manifest.tables.iter() {
        match tables.iter_mut().find(|t| t.role == spec.role.as_str()) {
            Some(t) => {
                t.coerce(spec);
                t.validate(spec)?;
            }
            None if spec.required => {
                return Err(InputError::MissingTable {
                    method: manifest.name.to_string(),
                    table: spec.role.to_string(),
                }
                .into())
            }
            None => {}
        }
    }
    Ok(())
}

/// The manifest as JSON (for `quiver info --json` and `quiver list --json`).
pub fn manifest_json(m: &Manifest) -> Value {
    json!({
        "name": m.name.as_str(),
        "family": m.family.name(),
        "version": m.version.as_str(),
        "summary": m.summary.as_str(),
        "guarantee": m.guarantee.as_str(),
        "reference": m.reference.as_str(),
        "devices": m.devices.iter().map(|d| d.name()).collect::<Vec<_>>(),
        "parameters": m.params.iter().map(|p| {
            let numeric = matches!(p.kind, ParamKind::Float | ParamKind::Int);
            json!({
                "name": p.name.as_str(),
                "type": format!("{:?}", p.kind).to_lowercase(),
                "default": serde_json::from_str::<Value>(p.default_json.as_str()).unwrap_or(Value::Null),
                "choices": p.choices.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                "range": if numeric { json!(p.range_text()) } else { Value::Null },
                "allowed": p.requirement(),
                "doc": p.doc.as_str(),
            })
        }).collect::<Vec<_>>(),
        "tables": m.tables.iter().map(|t| json!({
            "role": t.role.as_str(),
            "required": t.required,
            "doc": t.doc.as_str(),
            "columns": t.columns.iter().map(|c| json!({
                "name": if c.prefix { format!("{}*", c.name) } else { c.name.to_string() },
                "type": c.kind.name(),
                "required": c.required,
                "doc": c.doc.as_str(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// A constructed estimator, before it is narrowed to its family's handle.
pub struct Estimator {
    method: String,
    manifest: Manifest,
    inner: quiver_abi::Estimator,
    _progress: Option<Progress>,
}

/// A progress observer for long plugin steps: called with `(done, total, label)` (`total` 0 when
/// unknown) from whichever thread the plugin runs; returning `false` asks the plugin to stop.
/// Cheap to clone; every estimator built with it keeps it alive.
#[derive(Clone)]
pub struct Progress(std::sync::Arc<ProgressCallback>);

type ProgressCallback = Box<dyn Fn(u64, u64, &str) -> bool + Send + Sync>;

extern "C" fn progress_trampoline(
    data: *const (),
    done: u64,
    total: u64,
    label: quiver_abi::abi_stable::std_types::RStr<'_>,
) -> bool {
    // SAFETY: `data` is the `ProgressCallback` inside the Arc of a `Progress` that the estimator
    // (which the plugin belongs to) keeps alive; the callback is Send + Sync.
    let f = unsafe { &*(data as *const ProgressCallback) };
    // a panicking observer stops the plugin rather than unwinding into it
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(done, total, label.as_str()))).unwrap_or(false)
}

impl Progress {
    /// An observer calling `f(done, total, label)`; `f` returns whether to go on.
    pub fn new(f: impl Fn(u64, u64, &str) -> bool + Send + Sync + 'static) -> Self {
        Progress(std::sync::Arc::new(Box::new(f)))
    }
    /// The ABI view of this observer (valid while this `Progress` or a clone lives).
    pub fn sink(&self) -> quiver_abi::ProgressSink {
        quiver_abi::ProgressSink {
            data: std::sync::Arc::as_ptr(&self.0) as *const (),
            report: Some(progress_trampoline),
        }
    }
}

impl Estimator {
    /// Its family.
    pub fn family(&self) -> Family {
        self.inner.family()
    }
}

/// What every handle knows about its method (and the progress observer it keeps alive).
#[derive(Clone)]
struct EstimatorInfo {
    method: String,
    manifest: Manifest,
    _progress: Option<Progress>,
}

impl EstimatorInfo {
    fn of(e: &Estimator) -> Self {
        EstimatorInfo { method: e.method.clone(), manifest: e.manifest.clone(), _progress: e._progress.clone() }
    }

    /// Validate `tables` (the ones this method reads, that are present) and call `f` with their
    /// ABI views.
    fn call<T>(
        &self,
        tables: &[Table],
        f: impl FnOnce(quiver_abi::Tables<'_>) -> quiver_abi::PluginResult<T>,
    ) -> Result<T, HostError> {
        validate_owned(&self.manifest, tables)?;
        let columns: Vec<Vec<ColumnView<'_>>> = tables.iter().map(Table::column_views).collect();
        let views: Vec<TableView<'_>> = tables.iter().zip(&columns).map(|(t, c)| t.view(c)).collect();
        self.invoke(f(quiver_abi::tables(&views)))
    }

    /// [`EstimatorInfo::call`] on borrowed tables ([`validate_view`]).
    fn call_views<T>(
        &self,
        views: &[TableView<'_>],
        f: impl FnOnce(quiver_abi::Tables<'_>) -> quiver_abi::PluginResult<T>,
    ) -> Result<T, HostError> {
        validate_views(&self.manifest, views)?;
        self.invoke(f(quiver_abi::tables(views)))
    }

    /// A plugin call's result as the host's.
    fn invoke<T>(&self, r: quiver_abi::PluginResult<T>) -> Result<T, HostError> {
        r.into_result().map_err(|e| plugin_error(&self.method, e))
    }
}

macro_rules! handle {
    ($(#[$doc:meta])* $name:ident, $boxed:ty, $variant:ident, { $( $(#[$mdoc:meta])* fn $method:ident / $views:ident (& $($mut_:ident)?) -> $ret:ty; )* }) => {
        $(#[$doc])*
        pub struct $name {
            inner: $boxed,
            est: EstimatorInfo,
        }

        impl $name {
            /// Narrow a constructed estimator to this family's handle.
            pub fn new(e: Estimator) -> Result<Self, HostError> {
                let est = EstimatorInfo::of(&e);
                match e.inner {
                    quiver_abi::Estimator::$variant(inner) => Ok($name { inner, est }),
                    other => Err(HostError::WrongFamily {
                        name: e.method,
                        wanted: Family::$variant.name(),
                        found: other.family().name(),
                    }),
                }
            }

            /// The method name.
            pub fn method(&self) -> &str {
                &self.est.method
            }

            /// The method's manifest.
            pub fn manifest(&self) -> &Manifest {
                &self.est.manifest
            }
            $(
                $(#[$mdoc])*
                pub fn $method(& $($mut_)? self, tables: &[Table]) -> Result<$ret, HostError> {
                    let inner = & $($mut_)? self.inner;
                    self.est.call(tables, |t| inner.$method(t))
                }

                /// The same step on borrowed tables (no copy of their columns); see
                /// [`Host::run_views`].
                pub fn $views(& $($mut_)? self, tables: &[TableView<'_>]) -> Result<$ret, HostError> {
                    let inner = & $($mut_)? self.inner;
                    self.est.call_views(tables, |t| inner.$method(t))
                }
            )*
        }
    };
}

handle!(
    /// A conformal selector: `calibrate` then `select` (many times).
    Selector, quiver_abi::SelectorBox, ConformalSelector, {
        /// Ingest the `calibration` table.
        fn calibrate / calibrate_views(&mut) -> ();
        /// Select units of the `test` table.
        fn select / select_views(&) -> SelectionResult;
    }
);

handle!(
    /// A batch predictor: `calibrate` then `bound`.
    BatchPredictor, quiver_abi::BatchBox, BatchPredictive, {
        /// Ingest the calibration scores.
        fn calibrate / calibrate_views(&mut) -> ();
        /// The set or bound for a batch.
        fn bound / bound_views(&) -> BatchResult;
    }
);

handle!(
    /// A quantile aggregator: `fit`, `calibrate`, `predict`.
    Aggregator, quiver_abi::AggregatorBox, QuantileAggregator, {
        /// Fit weights.
        fn fit / fit_views(&mut) -> ();
        /// Conformal calibration.
        fn calibrate / calibrate_views(&mut) -> ();
        /// Predict quantiles.
        fn predict / predict_views(&) -> AggregationResult;
    }
);

handle!(
    /// A shrinkage estimator: `estimate`.
    Shrinker, quiver_abi::ShrinkageBox, Shrinkage, {
        /// Tune and estimate.
        fn estimate / estimate_views(&) -> ShrinkageResult;
    }
);

handle!(
    /// A critic: `fit` then `values`.
    Critic, quiver_abi::CriticBox, Critic, {
        /// Fit on transitions.
        fn fit / fit_views(&mut) -> ();
        /// Query values.
        fn values / values_views(&) -> CriticResult;
    }
);
