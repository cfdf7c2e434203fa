//! What a run returns, as the CLI and the bindings print it: typed per-unit arrays beside the
//! plugin's JSON summary, the complete JSON per family, and the manifest as JSON.

use super::*;
use quiver_abi::abi_stable::std_types::RVec;

/// The values of an output array, typed as they crossed the boundary, in the buffers the plugin
/// filled: an `RVec` made in a plugin is freed by the plugin's allocator, so keeping it (rather
/// than converting it to a `Vec`, which copies it) costs nothing for 10^7 estimates.
#[derive(Debug, Clone, PartialEq)]
pub enum ArrayValues {
    /// Numbers (p-values, estimates, interval ends, quantiles).
    F64(RVec<f64>),
    /// Integers (indices of selected units).
    I64(RVec<i64>),
    /// Flags.
    Bool(RVec<bool>),
    /// Raw bytes (a serialised state); JSON shows them as one lower-case hex string.
    Bytes(RVec<u8>),
}

impl ArrayValues {
    /// Value `i` as JSON (a non-finite float as null, as serde_json writes it).
    fn value_json(&self, i: usize) -> Value {
        match self {
            ArrayValues::F64(v) => json!(v[i]),
            ArrayValues::I64(v) => json!(v[i]),
            ArrayValues::Bool(v) => json!(v[i]),
            ArrayValues::Bytes(v) => json!(v[i]),
        }
    }
}

/// A named array of a result: its values and shape (`[n]`: one value per unit; `[n, k]`: a row
/// of `k` per unit, row-major; `[]`: one value).
#[derive(Debug, Clone, PartialEq)]
pub struct OutputArray {
    /// The extent of each axis.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub values: ArrayValues,
    /// Whether the printed result shows it (see [`quiver_abi::NamedArray::in_json`]).
    pub in_json: bool,
}

impl OutputArray {
    /// Whether the array is one value: a shape `[]`, or bytes (one byte string, shown as one hex
    /// string whatever its length).
    pub fn is_single(&self) -> bool {
        self.shape.is_empty() || matches!(self.values, ArrayValues::Bytes(_))
    }
    /// Number of units: the first axis's extent (1 for a single value).
    pub fn len(&self) -> usize {
        if self.is_single() {
            1
        } else {
            self.shape[0]
        }
    }
    /// Whether there are no units.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Values per unit (the product of the extents after the first).
    fn width(&self) -> usize {
        self.shape.iter().skip(1).product()
    }
    /// The f64 values, if that is their type.
    pub fn f64(&self) -> Option<&[f64]> {
        match &self.values {
            ArrayValues::F64(v) => Some(v),
            _ => None,
        }
    }
    /// The i64 values, if that is their type.
    pub fn i64(&self) -> Option<&[i64]> {
        match &self.values {
            ArrayValues::I64(v) => Some(v),
            _ => None,
        }
    }
    /// Unit `i` as a JSON value: a number (or flag) for a one-axis array, a row for a matrix.
    pub fn get_json(&self, i: usize) -> Value {
        match (&self.values, self.shape.len()) {
            (ArrayValues::Bytes(v), _) => Value::String(hex(v)),
            (_, 0 | 1) => self.values.value_json(i),
            (ArrayValues::F64(v), _) => {
                let w = self.width();
                row_json(&v[i * w..(i + 1) * w])
            }
            (values, _) => {
                let w = self.width();
                Value::Array((i * w..(i + 1) * w).map(|j| values.value_json(j)).collect())
            }
        }
    }
    /// The whole array as JSON: a list of units (a single value when the shape is `[]`; bytes
    /// as one hex string).
    pub fn to_json(&self) -> Value {
        if self.is_single() {
            self.get_json(0)
        } else {
            Value::Array((0..self.len()).map(|i| self.get_json(i)).collect())
        }
    }
    /// Write unit `i` as JSON text.
    fn write_unit(&self, w: &mut impl std::io::Write, i: usize) -> std::io::Result<()> {
        match (&self.values, self.shape.len()) {
            (ArrayValues::F64(v), 1) => serde_json::to_writer(&mut *w, &v[i])?,
            (ArrayValues::I64(v), 1) => write!(w, "{}", v[i])?,
            _ => serde_json::to_writer(&mut *w, &self.get_json(i))?,
        }
        Ok(())
    }
}

/// Bytes as lower-case hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A method's result: the plugin's JSON summary and the per-unit arrays, which follow the
/// summary's fields in the complete JSON ([`RunOutput::into_json`], [`RunOutput::write_json`]).
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// The summary (a JSON object).
    pub summary: Value,
    /// `(name, array)`: the typed arrays, in the order they follow the summary.
    pub arrays: Vec<(String, OutputArray)>,
}

impl RunOutput {
    /// The output of a step that returns nothing (`fit`, `calibrate`): a null summary, no arrays.
    pub fn empty() -> Self {
        RunOutput { summary: Value::Null, arrays: Vec::new() }
    }
    /// Whether this is the output of a step that returns nothing.
    pub fn is_empty(&self) -> bool {
        self.summary.is_null() && self.arrays.is_empty()
    }
    /// The f64 matrix named `name` as `(rows, cols, values)` (a one-axis array is one column).
    pub fn matrix(&self, name: &str) -> Option<(usize, usize, &[f64])> {
        let a = self.array(name)?;
        let v = a.f64()?;
        let rows = a.len();
        Some((rows, v.len().checked_div(rows).unwrap_or(0), v))
    }
    /// The array named `name`.
    pub fn array(&self, name: &str) -> Option<&OutputArray> {
        self.arrays.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }
    /// The f64 array named `name` (`None` when there is none, or it is of another type).
    pub fn f64s(&self, name: &str) -> Option<&[f64]> {
        self.array(name).and_then(OutputArray::f64)
    }
    /// The i64 array named `name` (`None` when there is none, or it is of another type).
    pub fn i64s(&self, name: &str) -> Option<&[i64]> {
        self.array(name).and_then(OutputArray::i64)
    }
    /// The summary's number at `key` (`"inf"`, `"-inf"` and `"nan"` read as those floats;
    /// `None` when absent, null or not a number).
    pub fn number(&self, key: &str) -> Option<f64> {
        match self.summary.get(key)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => match s.as_str() {
                "inf" => Some(f64::INFINITY),
                "-inf" => Some(f64::NEG_INFINITY),
                "nan" => Some(f64::NAN),
                _ => None,
            },
            _ => None,
        }
    }
    /// The device the step ran on (the summary's `device`).
    pub fn device(&self) -> Option<Device> {
        match self.summary.get("device")?.as_str()? {
            "cpu" => Some(Device::Cpu),
            "cuda" => Some(Device::Cuda),
            _ => None,
        }
    }

    /// The complete JSON value.
    pub fn into_json(self) -> Value {
        let mut v = self.summary;
        if let Some(obj) = v.as_object_mut() {
            for (name, a) in self.arrays.into_iter().filter(|(_, a)| a.in_json) {
                let value = match (a.values, a.shape.len()) {
                    (ArrayValues::F64(x), 1) => json!(x.as_slice()),
                    (ArrayValues::I64(x), 1) => json!(x.as_slice()),
                    (values, _) => OutputArray { values, shape: a.shape, in_json: true }.to_json(),
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
        let arrays: Vec<&(String, OutputArray)> =
            self.arrays.iter().filter(|(n, a)| a.in_json && !obj.contains_key(n)).collect();
        let total = obj.len() + arrays.len();
        w.write_all(b"{\n")?;
        for (k, (key, value)) in obj.iter().enumerate() {
            write!(w, "  {}: ", Value::String(key.clone()))?;
            let text = serde_json::to_string_pretty(value)?;
            w.write_all(text.replace('\n', "\n  ").as_bytes())?;
            w.write_all(if k + 1 < total { b",\n" } else { b"\n" })?;
        }
        for (k, (name, a)) in arrays.iter().enumerate() {
            write!(w, "  {}: ", Value::String(name.clone()))?;
            if a.is_single() {
                serde_json::to_writer(&mut w, &a.to_json())?;
            } else {
                w.write_all(b"[")?;
                for i in 0..a.len() {
                    w.write_all(if i == 0 { b"\n    " } else { b",\n    " })?;
                    a.write_unit(&mut w, i)?;
                }
                w.write_all(if a.is_empty() { b"]" } else { b"\n  ]" })?;
            }
            w.write_all(if obj.len() + k + 1 < total { b",\n" } else { b"\n" })?;
        }
        w.write_all(b"}\n")
    }
}

/// A row of numbers as JSON, infinities as the strings `"inf"` / `"-inf"` (JSON has none; an
/// infinite interval end is a legal result).
pub(crate) fn row_json(r: &[f64]) -> Value {
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

pub(crate) fn summary_json(method: &str, text: &str) -> Result<Value, HostError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| HostError::BadResult { method: method.into(), reason: e.to_string() })?;
    if !v.is_object() {
        return Err(HostError::BadResult { method: method.into(), reason: "not a JSON object".into() });
    }
    Ok(v)
}

/// A step's output as the host's: the summary parsed (an object; a step that returns nothing
/// gives an empty output, [`RunOutput::is_empty`]), every array's shape checked against its
/// values.
pub fn step_output(method: &str, out: StepOutput) -> Result<RunOutput, HostError> {
    if out.is_none() {
        return Ok(RunOutput::empty());
    }
    let summary = if out.json.is_empty() { json!({}) } else { summary_json(method, out.json.as_str())? };
    let mut arrays = Vec::with_capacity(out.arrays.len());
    for a in out.arrays.into_vec() {
        if !a.shape_matches() {
            return Err(HostError::BadResult {
                method: method.into(),
                reason: format!(
                    "{} holds {} values, not {}",
                    a.name,
                    a.data.len(),
                    a.shape.iter().map(u64::to_string).collect::<Vec<_>>().join(" x ")
                ),
            });
        }
        let values = match a.data {
            quiver_abi::ArrayData::F64(v) => ArrayValues::F64(v),
            quiver_abi::ArrayData::I64(v) => ArrayValues::I64(v),
            quiver_abi::ArrayData::Bool(v) => ArrayValues::Bool(v),
            quiver_abi::ArrayData::Bytes(v) => ArrayValues::Bytes(v),
        };
        let shape = a.shape.iter().map(|&e| e as usize).collect();
        arrays.push((a.name.into_string(), OutputArray { shape, values, in_json: a.in_json }));
    }
    Ok(RunOutput { summary, arrays })
}

/// The manifest as JSON (for `quiver info --json` and `quiver list --json`).
pub fn manifest_json(m: &Manifest) -> Value {
    json!({
        "name": m.name.as_str(),
        "family": m.family.as_str(),
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
        "steps": m.steps.iter().map(|s| json!({
            "name": s.name.as_str(),
            "changes_state": s.mutates,
            "in_run": s.in_run,
            "tables": s.tables.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            "doc": s.doc.as_str(),
        })).collect::<Vec<_>>(),
        "properties": serde_json::from_str::<Value>(m.properties_json.as_str()).unwrap_or(json!({})),
    })
}
