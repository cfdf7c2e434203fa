//! `quiver._quiver`: the native half of the `quiver` Python package.
//!
//! It wraps the Rust host ([`quiver_host::Host`]) — the same plugin files, the same loading, the
//! same validation as the `quiver` CLI — and moves tables and results between NumPy and the
//! plugin ABI:
//!
//! * a column that is a contiguous `float64` (or `int64`) NumPy array crosses to the plugin as a
//!   borrowed slice of that array's memory (no copy); other dtypes are converted once (`bool`,
//!   integers where the method wants floats);
//! * per-unit results come back as NumPy arrays that take over the plugin result's buffer;
//! * the GIL is released while a plugin computes, and a pending Ctrl-C (SIGINT) is noticed at
//!   the plugin's next progress report, which stops it as the CLI's first Ctrl-C does;
//! * host and plugin errors become the exceptions of `quiver._errors` (`InvalidInputError` with
//!   the table, column and row, `InvalidParameterError`, `PluginPanicError`, ...).
//!
//! The Python-facing API (families, tables from DataFrames, typed results) is the pure-Python
//! part of the package, `python/quiver/`.

mod arrow;

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use quiver_host::{
    ArrayValues, ColumnData, ColumnView, DeviceRequest, ErrorKind, HostError, InputError, Progress, RunContext,
    RunOutput, TableView,
};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Tables as they come from Python: `[(role, table), ...]`, each table either its columns
/// `[(column, array), ...]` or an object exporting Arrow data (`__arrow_c_stream__`).
type PyTables<'py> = Vec<(String, Bound<'py, PyAny>)>;

/// Named arrays: a table's columns, or a result's per-unit arrays.
type PyArrays<'py> = Vec<(String, Bound<'py, PyAny>)>;

/// One table of a call: its role, rows and columns.
struct InputTable<'py> {
    role: String,
    nrows: usize,
    columns: Vec<(String, Column<'py>)>,
}

/// A plugin registry: every plugin file in the given folders, loaded once.
#[pyclass(frozen, module = "quiver._quiver")]
struct Host {
    inner: quiver_host::Host,
}

#[pymethods]
impl Host {
    /// Load every plugin in `dirs` (in order; a method found twice is a load failure).
    #[new]
    fn new(dirs: Vec<PathBuf>) -> Self {
        let mut inner = quiver_host::Host::new();
        for d in &dirs {
            inner.load_dir(d);
        }
        Host { inner }
    }

    /// The manifests of the loaded plugins as a JSON list (with each plugin's file and SDK).
    fn manifests_json(&self) -> String {
        let all: Vec<Value> = self
            .inner
            .plugins()
            .iter()
            .map(|p| {
                let mut m = quiver_host::manifest_json(&p.manifest);
                m["file"] = Value::String(p.path.display().to_string());
                m["sdk_version"] = Value::String(p.sdk_version.clone());
                m
            })
            .collect();
        Value::Array(all).to_string()
    }

    /// The files that failed to load, one message each.
    fn failures(&self) -> Vec<String> {
        self.inner.failures().iter().map(ToString::to_string).collect()
    }

    /// The folders searched.
    fn searched(&self) -> Vec<String> {
        self.inner.searched().iter().map(|p| p.display().to_string()).collect()
    }

    /// Construct an estimator of `method`: `params_json` is a JSON object checked by the
    /// plugin against its manifest; `device` is `auto`, `cpu` or `cuda`.
    fn create(&self, method: &str, params_json: &str, device: &str, threads: u32) -> PyResult<Estimator> {
        let params = params_object(params_json)?;
        let progress = interrupt_observer();
        let ctx = RunContext { device: device_request(device)?, threads, ..Default::default() };
        let est = self.inner.create_observed(method, &params, ctx, Some(&progress)).map_err(to_py)?;
        let manifest = est.manifest().clone();
        Ok(Estimator { method: method.to_string(), manifest, handle: Arc::new(Mutex::new(est)) })
    }

    /// Run `method`'s whole lifecycle on `tables` (`[(role, [(column, array), ...]), ...]`):
    /// returns the summary as JSON text and the per-unit arrays.
    fn run<'py>(
        &self,
        py: Python<'py>,
        method: &str,
        params_json: &str,
        tables: PyTables<'py>,
        device: &str,
        threads: u32,
    ) -> PyResult<(String, PyArrays<'py>)> {
        let params = params_object(params_json)?;
        let spec = self.inner.get(method).map_err(to_py)?.manifest.clone();
        let ctx = RunContext { device: device_request(device)?, threads, ..Default::default() };
        let input = Input::read(&spec, &tables)?;
        let progress = interrupt_observer();
        let out = {
            let columns = input.columns();
            let views = input.views(&columns);
            py.detach(|| self.inner.run_views(method, &params, &views, ctx, Some(&progress)))
        };
        drop(input);
        output(py, out.map_err(interrupted)?)
    }
}

/// A constructed estimator; its lifecycle steps are called by name.
#[pyclass(frozen, module = "quiver._quiver")]
struct Estimator {
    method: String,
    manifest: quiver_host::Manifest,
    handle: Arc<Mutex<quiver_host::Estimator>>,
}

#[pymethods]
impl Estimator {
    /// The method name.
    #[getter]
    fn method(&self) -> &str {
        &self.method
    }

    /// Call step `step` (one its manifest declares: `calibrate`, `select`, `bound`, `fit`,
    /// `predict`, `estimate`, `values`, ...) on `tables`; returns the summary as JSON text (`None`
    /// for steps that return nothing) and the arrays the result shows.
    fn step<'py>(
        &self,
        py: Python<'py>,
        step: &str,
        tables: PyTables<'py>,
    ) -> PyResult<(Option<String>, PyArrays<'py>)> {
        let input = Input::read(&self.manifest, &tables)?;
        let method = self.method.as_str();
        let out = {
            let columns = input.columns();
            let views = input.views(&columns);
            // the handle is locked with the GIL released: a second Python thread calling this
            // estimator waits here without holding the GIL the first one needs to return
            py.detach(|| -> Result<RunOutput, HostError> {
                let mut guard = self.handle.lock().map_err(|_| {
                    HostError::Parameter(format!(
                        "'{method}': an earlier call on this estimator failed mid-way; construct it again"
                    ))
                })?;
                guard.step_views(step, &views)
            })
        };
        drop(input);
        let out = out.map_err(interrupted)?;
        if out.is_empty() {
            return Ok((None, Vec::new()));
        }
        let (summary, arrays) = output(py, out)?;
        Ok((Some(summary), arrays))
    }

    /// The state of one partition of a run by parts (docs/scale.md), as bytes; `offsets` gives,
    /// per partitioned table, its rows in the partitions before this one; `broadcast`, the round's
    /// broadcast of a method computed in rounds (none in the first).
    #[pyo3(signature = (tables, offsets, broadcast=None))]
    fn partial<'py>(
        &self,
        py: Python<'py>,
        tables: PyTables<'py>,
        offsets: Vec<(String, u64)>,
        broadcast: Option<Vec<u8>>,
    ) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let input = Input::read(&self.manifest, &tables)?;
        let state = {
            let columns = input.columns();
            let views = input.views(&columns);
            py.detach(|| self.locked(|e| e.partial_views(&views, &offsets, broadcast.as_deref())))
        };
        drop(input);
        Ok(pyo3::types::PyBytes::new(py, &state.map_err(interrupted)?))
    }

    /// Two states as one (`a`'s partitions first).
    fn merge<'py>(&self, py: Python<'py>, a: Vec<u8>, b: Vec<u8>) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let state = py.detach(|| self.locked(|e| e.merge(&a, &b))).map_err(interrupted)?;
        Ok(pyo3::types::PyBytes::new(py, &state))
    }

    /// The result from the state of all the data: the summary as JSON text and the arrays.
    fn finish<'py>(&self, py: Python<'py>, state: Vec<u8>) -> PyResult<(String, PyArrays<'py>)> {
        let out = py.detach(|| self.locked(|e| e.finish(&state))).map_err(interrupted)?;
        output(py, out)
    }

    /// A round's end for a method computed in rounds: `(summary, arrays, None)` with the result,
    /// or `(None, None, broadcast)` when another pass over the data is needed.
    #[pyo3(signature = (state, broadcast=None))]
    #[allow(clippy::type_complexity)]
    fn finish_round<'py>(
        &self,
        py: Python<'py>,
        state: Vec<u8>,
        broadcast: Option<Vec<u8>>,
    ) -> PyResult<(Option<String>, Option<PyArrays<'py>>, Option<Bound<'py, pyo3::types::PyBytes>>)> {
        let out = py.detach(|| self.locked(|e| e.finish_round(&state, broadcast.as_deref()))).map_err(interrupted)?;
        match out {
            quiver_host::Finished::Result(out) => {
                let (summary, arrays) = output(py, out)?;
                Ok((Some(summary), Some(arrays), None))
            }
            quiver_host::Finished::Again(b) => Ok((None, None, Some(pyo3::types::PyBytes::new(py, &b)))),
        }
    }
}

impl Estimator {
    /// `f` on the host estimator, locked (a call that failed mid-way poisons it).
    fn locked<T>(&self, f: impl FnOnce(&quiver_host::Estimator) -> Result<T, HostError>) -> Result<T, HostError> {
        let guard = self.handle.lock().map_err(|_| {
            HostError::Parameter(format!(
                "'{}': an earlier call on this estimator failed mid-way; construct it again",
                self.method
            ))
        })?;
        f(&guard)
    }
}

/// One column as it crosses: borrowed from its NumPy array or its Arrow buffer, or converted once.
enum Column<'py> {
    F64(PyReadonlyArray1<'py, f64>),
    I64(PyReadonlyArray1<'py, i64>),
    ArrowF64(arrow_array::Float64Array),
    ArrowI64(arrow_array::Int64Array),
    OwnedF64(Vec<f64>),
    OwnedI64(Vec<i64>),
    OwnedBool(Vec<bool>),
    /// Text (labels), as UTF-8 bytes and their row offsets.
    OwnedBytes(Vec<u8>, Vec<u64>),
}

/// The tables of one call: `(role, [(name, column)])`, kept alive while the plugin reads them.
struct Input<'py> {
    tables: Vec<InputTable<'py>>,
}

impl<'py> Input<'py> {
    /// Read the arrays of `tables`. Each array is 1-D and `float64`, `int64`, `uint8` (a
    /// boolean column) or convertible to one of them (the Python side normalises dtypes); a
    /// column the manifest declares as f64 that arrives as integers is converted, as is a flag
    /// column of 0/1 integers.
    fn read(spec: &quiver_host::Manifest, tables: &[(String, Bound<'py, PyAny>)]) -> PyResult<Self> {
        let mut out = Vec::with_capacity(tables.len());
        for (role, table) in tables {
            let table_spec = spec.tables.iter().find(|t| t.role.as_str() == role);
            if arrow::is_arrow(table) {
                let (nrows, columns) = arrow::read(table, role, table_spec)?;
                out.push(InputTable { role: role.clone(), nrows, columns });
                continue;
            }
            let columns: PyArrays<'py> = table.extract()?;
            let mut cols = Vec::with_capacity(columns.len());
            let mut nrows = None;
            for (name, obj) in &columns {
                let want = table_spec.and_then(|t| quiver_host::column_kind(t, name));
                let col = read_column(obj, want).map_err(|reason| {
                    input_error(obj.py(), &format!("table '{role}', column '{name}': {reason}"), role, name)
                })?;
                nrows.get_or_insert(column_len(&col));
                cols.push((name.clone(), col));
            }
            out.push(InputTable { role: role.clone(), nrows: nrows.unwrap_or(0), columns: cols });
        }
        Ok(Input { tables: out })
    }

    fn columns(&self) -> Vec<Vec<ColumnView<'_>>> {
        self.tables
            .iter()
            .map(|t| {
                t.columns
                    .iter()
                    .map(|(name, c)| {
                        let data = match c {
                            Column::F64(a) => ColumnData::f64(a.as_slice().expect("checked contiguous")),
                            Column::I64(a) => ColumnData::i64(a.as_slice().expect("checked contiguous")),
                            Column::ArrowF64(a) => ColumnData::f64(a.values()),
                            Column::ArrowI64(a) => ColumnData::i64(a.values()),
                            Column::OwnedF64(v) => ColumnData::f64(v),
                            Column::OwnedI64(v) => ColumnData::i64(v),
                            Column::OwnedBool(v) => ColumnData::bool(v),
                            Column::OwnedBytes(d, o) => ColumnData::Bytes(quiver_host::BytesColumn::new(d, o)),
                        };
                        ColumnView::new(name, data)
                    })
                    .collect()
            })
            .collect()
    }

    fn views<'a>(&'a self, columns: &'a [Vec<ColumnView<'a>>]) -> Vec<TableView<'a>> {
        self.tables.iter().zip(columns).map(|(t, c)| TableView::new(&t.role, t.nrows, c)).collect()
    }
}

fn column_len(c: &Column<'_>) -> usize {
    match c {
        Column::F64(a) => a.len(),
        Column::I64(a) => a.len(),
        Column::ArrowF64(a) => a.len(),
        Column::ArrowI64(a) => a.len(),
        Column::OwnedF64(v) => v.len(),
        Column::OwnedI64(v) => v.len(),
        Column::OwnedBool(v) => v.len(),
        Column::OwnedBytes(_, o) => o.len().saturating_sub(1),
    }
}

fn read_column<'py>(obj: &Bound<'py, PyAny>, want: Option<quiver_host::ColumnKind>) -> Result<Column<'py>, String> {
    use quiver_host::ColumnKind as K;
    if want == Some(K::Bytes) {
        // a text column: the Python side hands over a list of UTF-8 byte strings
        let rows: Vec<Vec<u8>> = obj.extract().map_err(|_| "expected text (a list of str)".to_string())?;
        let (mut data, mut offsets) = (Vec::new(), Vec::with_capacity(rows.len() + 1));
        offsets.push(0);
        for r in rows {
            data.extend_from_slice(&r);
            offsets.push(data.len() as u64);
        }
        return Ok(Column::OwnedBytes(data, offsets));
    }
    if let Ok(a) = obj.extract::<PyReadonlyArray1<'py, f64>>() {
        // borrowed where numpy can lend it as a slice (contiguous and aligned); copied once
        // otherwise (a strided view, a buffer another library owns at an odd offset)
        return Ok(match a.as_slice() {
            Ok(_) => Column::F64(a),
            Err(_) => Column::OwnedF64(a.as_array().iter().copied().collect()),
        });
    }
    if let Ok(a) = obj.extract::<PyReadonlyArray1<'py, i64>>() {
        // a copy only where numpy cannot lend the values as a slice, made once
        let copied: Option<Vec<i64>> = a.as_slice().is_err().then(|| a.as_array().iter().copied().collect());
        let s: &[i64] = match &copied {
            Some(v) => v,
            None => a.as_slice().expect("lent above"),
        };
        return Ok(match want {
            Some(K::F64 | K::F32) => Column::OwnedF64(s.iter().map(|&x| x as f64).collect()),
            Some(K::Bool) if s.iter().all(|&x| x == 0 || x == 1) => {
                Column::OwnedBool(s.iter().map(|&x| x == 1).collect())
            }
            _ => match copied {
                Some(v) => Column::OwnedI64(v),
                None => Column::I64(a),
            },
        });
    }
    if let Ok(a) = obj.extract::<PyReadonlyArray1<'py, u8>>() {
        // a boolean column viewed as bytes (any non-zero byte is true)
        let a = a.as_array();
        return Ok(match want {
            Some(K::F64 | K::F32) => Column::OwnedF64(a.iter().map(|&x| f64::from(u8::from(x != 0))).collect()),
            Some(K::I64) => return Err("expected i64 values, got booleans".into()),
            _ => Column::OwnedBool(a.iter().map(|&x| x != 0).collect()),
        });
    }
    let what = obj
        .getattr("dtype")
        .map(|d| d.to_string())
        .or_else(|_| obj.get_type().name().map(|n| n.to_string()))
        .unwrap_or_else(|_| "?".into());
    let ndim = obj.getattr("ndim").and_then(|n| n.extract::<usize>()).unwrap_or(1);
    if ndim != 1 {
        return Err(format!("expected a 1-D array, got {ndim} dimensions"));
    }
    Err(format!("expected float64, int64 or bool values, got {what}"))
}

/// The progress observer of every Python call: stops the plugin at its next report when a
/// SIGINT (Ctrl-C) is pending. Python's handler for SIGINT runs when a thread that holds the
/// GIL checks for signals; `check_signals` does that on the main thread (elsewhere it is a no-op).
fn interrupt_observer() -> Progress {
    Progress::new(|_, _, _| Python::attach(|py| py.check_signals().is_ok()))
}

/// A `Cancelled` plugin error after Ctrl-C is the `KeyboardInterrupt` Python expects.
fn interrupted(e: HostError) -> PyErr {
    if e.plugin_kind() == Some(ErrorKind::Cancelled) {
        return PyKeyboardInterrupt::new_err(e.to_string());
    }
    to_py(e)
}

fn device_request(device: &str) -> PyResult<DeviceRequest> {
    match device {
        "auto" => Ok(DeviceRequest::Auto),
        "cpu" => Ok(DeviceRequest::Cpu),
        "cuda" => Ok(DeviceRequest::Cuda),
        other => Err(Python::attach(|py| {
            error_of(py, "InvalidParameterError", &format!("device '{other}' is not one of auto, cpu, cuda"), None)
        })),
    }
}

fn params_object(text: &str) -> PyResult<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Python::attach(|py| error_of(py, "InvalidParameterError", "parameters must be a JSON object", None))),
    }
}

/// A result's summary as JSON text and its per-unit arrays as NumPy arrays (which take over the
/// result's buffers).
fn output(py: Python<'_>, out: RunOutput) -> PyResult<(String, PyArrays<'_>)> {
    let summary = out.summary.to_string();
    let mut arrays = Vec::with_capacity(out.arrays.len());
    for (name, a) in out.arrays.into_iter().filter(|(_, a)| a.in_json) {
        let obj = match a.values {
            ArrayValues::F64(v) => PyArray1::from_vec(py, v.into_vec()).reshape(a.shape)?.into_any(),
            ArrayValues::I64(v) => PyArray1::from_vec(py, v.into_vec()).reshape(a.shape)?.into_any(),
            ArrayValues::Bool(v) => PyArray1::from_vec(py, v.into_vec()).reshape(a.shape)?.into_any(),
            ArrayValues::Bytes(v) => pyo3::types::PyBytes::new(py, &v).into_any(),
        };
        arrays.push((name, obj));
    }
    Ok((summary, arrays))
}

/// An instance of `quiver._errors.<class>` with `message`; `fields` are
/// `(table, column, row)` when known (`row` 0-based).
fn error_of(py: Python<'_>, class: &str, message: &str, fields: Option<(&str, Option<&str>, Option<usize>)>) -> PyErr {
    let make = || -> PyResult<PyErr> {
        let module = py.import("quiver._errors")?;
        let cls = module.getattr(class)?;
        let (table, column, row) = fields.unwrap_or(("", None, None));
        let table = (!table.is_empty()).then_some(table);
        let args = PyTuple::new(py, [message.into_pyobject(py)?.into_any()])?;
        let kwargs = pyo3::types::PyDict::new(py);
        kwargs.set_item("table", table)?;
        kwargs.set_item("column", column)?;
        kwargs.set_item("row", row)?;
        Ok(PyErr::from_value(cls.call(args, Some(&kwargs))?))
    };
    make().unwrap_or_else(|e| e)
}

fn input_error(py: Python<'_>, message: &str, table: &str, column: &str) -> PyErr {
    error_of(py, "InvalidInputError", message, Some((table, Some(column), None)))
}

/// A host error as the matching `quiver` exception.
fn to_py(e: HostError) -> PyErr {
    Python::attach(|py| {
        let message = e.to_string();
        match &e {
            HostError::Input(i) => {
                let (table, column, row) = match i {
                    InputError::File { table, .. }
                    | InputError::Empty { table }
                    | InputError::MissingTable { table, .. }
                    | InputError::StepNeedsTable { table, .. }
                    | InputError::UnknownTable { table, .. } => (table.as_str(), None, None),
                    InputError::Value { table, column, row, .. } | InputError::Cell { table, column, row, .. } => {
                        (table.as_str(), Some(column.as_str()), Some(row.saturating_sub(1)))
                    }
                    InputError::MissingColumn { table, column, .. }
                    | InputError::Length { table, column, .. }
                    | InputError::Kind { table, column, .. }
                    | InputError::Duplicate { table, column } => (table.as_str(), Some(column.as_str()), None),
                };
                error_of(py, "InvalidInputError", &message, Some((table, column, row)))
            }
            HostError::Parameter(_) => error_of(py, "InvalidParameterError", &message, None),
            HostError::NoCudaPath { .. } => error_of(py, "UnsupportedError", &message, None),
            HostError::UnknownMethod { .. } => error_of(py, "UnknownMethodError", &message, None),
            HostError::Plugin { kind, .. } => {
                let class = match *kind {
                    ErrorKind::InvalidInput => "InvalidInputError",
                    ErrorKind::InvalidParameter => "InvalidParameterError",
                    ErrorKind::Unsupported => "UnsupportedError",
                    ErrorKind::Device => "DeviceError",
                    ErrorKind::Panic => "PluginPanicError",
                    ErrorKind::State => "StateError",
                    ErrorKind::Cancelled => "CancelledError",
                    ErrorKind::Internal => "QuiverError",
                    ErrorKind::Numerical => "NumericalError",
                    _ => "QuiverError",
                };
                // the plugin's own input errors read "table 'T', column 'C', row R: ..."
                let fields = (*kind == ErrorKind::InvalidInput).then(|| cell_of(&message)).flatten();
                match fields {
                    Some((t, c, r)) => error_of(py, class, &message, Some((&t, c.as_deref(), r))),
                    None => error_of(py, class, &message, None),
                }
            }
            _ => error_of(py, "QuiverError", &message, None),
        }
    })
}

/// `(table, column, 0-based row)` from a message of the form
/// `... table 'T', column 'C', row R ...` (each part optional after the table).
fn cell_of(message: &str) -> Option<(String, Option<String>, Option<usize>)> {
    let quoted = |s: &str, key: &str| -> Option<(String, usize)> {
        let at = s.find(key)? + key.len();
        let end = s[at..].find('\'')?;
        Some((s[at..at + end].to_string(), at + end + 1))
    };
    let (table, after) = quoted(message, "table '")?;
    let rest = &message[after..];
    let column = rest.strip_prefix(", column '").and_then(|_| quoted(rest, ", column '"));
    let row = column.as_ref().and_then(|(_, end)| {
        let tail = rest[*end..].strip_prefix(", row ")?;
        let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<usize>().ok().map(|r| r.saturating_sub(1))
    });
    Some((table, column.map(|(c, _)| c), row))
}

/// The Quiver ABI version this package speaks.
#[pyfunction]
fn abi_version() -> String {
    quiver_host::ABI_VERSION.to_string()
}

/// Whether the CUDA driver and NVRTC libraries can be loaded: `(driver, nvrtc)`.
#[pyfunction]
fn cuda_libraries() -> (bool, bool) {
    quiver_host::cuda_libraries()
}

/// The figure of `method`'s result as JSON (`quiver_figure::Figure`): from its JSON `summary`,
/// its typed `arrays` (name → values and columns) and the input tables' numeric columns
/// (`inputs`: table → column → values). `result.plot()` draws it with matplotlib.
#[pyfunction]
fn figure(
    method: &str,
    summary: &str,
    arrays: std::collections::HashMap<String, (Vec<f64>, usize)>,
    inputs: std::collections::HashMap<String, std::collections::HashMap<String, Vec<f64>>>,
) -> PyResult<String> {
    let summary: Value = serde_json::from_str(summary)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("the result's JSON does not parse: {e}")))?;
    let array = |name: &str| arrays.get(name).cloned();
    let input = |table: &str, column: &str| inputs.get(table)?.get(column).cloned();
    let source = quiver_figure::Source { summary: &summary, array: &array, input: &input };
    match quiver_figure::figure(method, &source) {
        Ok(f) => serde_json::to_string(&f).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string())),
        Err(e @ quiver_figure::FigureError::NoPicture(_)) => {
            Err(pyo3::exceptions::PyNotImplementedError::new_err(e.to_string()))
        }
        Err(e) => Err(pyo3::exceptions::PyValueError::new_err(e.to_string())),
    }
}

/// The `quiver._quiver` extension module.
#[pymodule]
fn _quiver(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Host>()?;
    m.add_class::<Estimator>()?;
    m.add_function(wrap_pyfunction!(abi_version, m)?)?;
    m.add_function(wrap_pyfunction!(cuda_libraries, m)?)?;
    m.add_function(wrap_pyfunction!(figure, m)?)?;
    Ok(())
}
