//! What a run returns, as the CLI and the bindings print it: typed per-unit arrays beside the
//! plugin's JSON summary, the complete JSON per family, and the manifest as JSON.

use super::*;

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
