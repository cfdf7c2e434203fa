//! Tables in Arrow memory (a `pyarrow.Table` or `RecordBatch`, a polars DataFrame, anything with
//! `__arrow_c_stream__`) read through the Arrow PyCapsule interface — the C stream interface: the
//! producer lends its buffers, and a float64 or int64 column without nulls in one chunk reaches the
//! plugin without a copy (its memory stays the producer's, released when the call's input is
//! dropped). Columns in several chunks, of other types, or read as another type are copied once;
//! a null is an error naming its row (−1 in a column whose empty cells mean "none").

use crate::{error_of, Column};
use arrow_array::cast::AsArray;
use arrow_array::ffi_stream::{ArrowArrayStreamReader, FFI_ArrowArrayStream};
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, RecordBatch, RecordBatchReader};
use arrow_schema::DataType;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;
use quiver_host::{ColumnKind, TableSpec, Values};

/// Whether `obj` is a table the Python side passed as Arrow data (`quiver._tables.is_arrow` decides:
/// an object with `__arrow_c_stream__` that is not a pandas one); other tables come as columns.
pub(crate) fn is_arrow(obj: &Bound<'_, PyAny>) -> bool {
    obj.hasattr("__arrow_c_stream__").unwrap_or(false)
}

/// The columns of an Arrow table, as the call's input, with the number of rows.
pub(crate) fn read<'py>(
    obj: &Bound<'py, PyAny>,
    role: &str,
    spec: Option<&TableSpec>,
) -> PyResult<(usize, Vec<(String, Column<'py>)>)> {
    let py = obj.py();
    let bad = |reason: String| {
        error_of(py, "InvalidInputError", &format!("table '{role}': {reason}"), Some((role, None, None)))
    };
    let capsule = obj.call_method0("__arrow_c_stream__")?;
    let capsule = capsule.cast::<PyCapsule>().map_err(|_| bad("__arrow_c_stream__ did not return a capsule".into()))?;
    let stream = capsule.pointer_checked(Some(c"arrow_array_stream"))?.cast::<FFI_ArrowArrayStream>();
    // SAFETY: the capsule holds a valid ArrowArrayStream (the PyCapsule interface's contract,
    // its name checked above); `from_raw` moves it out and marks the capsule's copy released, so
    // the capsule's destructor does not release it again.
    let reader = unsafe { ArrowArrayStreamReader::from_raw(stream.as_ptr()) }
        .map_err(|e| bad(format!("not a readable Arrow stream ({e})")))?;
    let schema = reader.schema();
    let batches: Vec<RecordBatch> =
        reader.collect::<Result<_, _>>().map_err(|e| bad(format!("cannot read the Arrow stream ({e})")))?;
    let nrows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut out = Vec::new();
    for (k, field) in schema.fields().iter().enumerate() {
        let name = field.name();
        let want = spec.and_then(|s| quiver_host::column_kind(s, name));
        let numeric = field.data_type().is_numeric() || *field.data_type() == DataType::Boolean;
        if !numeric && want != Some(quiver_host::ColumnKind::Bytes) {
            if want.is_some() {
                let reason = format!("expected numbers, got {} values", field.data_type());
                return Err(column_error(py, role, name, None, &reason));
            }
            continue; // a text column the method does not read, as in a CSV file
        }
        let chunks: Vec<&ArrayRef> = batches.iter().map(|b| b.column(k)).collect();
        let col = column(&chunks, name, spec, want).map_err(|(row, why)| column_error(py, role, name, row, &why))?;
        out.push((name.clone(), col));
    }
    Ok((nrows, out))
}

fn column_error(py: Python<'_>, role: &str, name: &str, row: Option<usize>, reason: &str) -> PyErr {
    let at = row.map_or(String::new(), |r| format!(", row {}", r + 1));
    error_of(
        py,
        "InvalidInputError",
        &format!("table '{role}', column '{name}'{at}: {reason}"),
        Some((role, Some(name), row)),
    )
}

/// One column from its chunks: lent when it is one chunk of f64 (or i64) without nulls and read as
/// such; otherwise converted once.
fn column<'py>(
    chunks: &[&ArrayRef],
    name: &str,
    spec: Option<&TableSpec>,
    want: Option<ColumnKind>,
) -> Result<Column<'py>, (Option<usize>, String)> {
    if let [only] = chunks {
        if only.null_count() == 0 {
            match (only.data_type(), want) {
                (DataType::Float64, None | Some(ColumnKind::F64 | ColumnKind::F32)) => {
                    return Ok(Column::ArrowF64(only.as_primitive::<Float64Type>().clone()));
                }
                (DataType::Int64, None | Some(ColumnKind::I64)) => {
                    return Ok(Column::ArrowI64(only.as_primitive::<Int64Type>().clone()));
                }
                _ => {}
            }
        }
    }
    // converted once, chunk after chunk; rows counted from the table's first
    let mut values: Option<Values> = None;
    let mut before = 0usize;
    for chunk in chunks {
        let v = quiver_host::values_of_arrow(chunk, name, spec).map_err(|(row, why)| (Some(before + row), why))?;
        before += chunk.len();
        match &mut values {
            None => values = Some(v),
            Some(all) => all.append_values(v).map_err(|why| (None, why))?,
        }
    }
    let values = values.unwrap_or(Values::F64(Vec::new()));
    Ok(match (values, want) {
        (Values::F64(v), Some(ColumnKind::I64)) => {
            let mut out = Vec::with_capacity(v.len());
            for (i, x) in v.into_iter().enumerate() {
                if x.fract() != 0.0 || !x.is_finite() || x.abs() > 2f64.powi(53) {
                    return Err((Some(i), format!("value {x} is not an integer")));
                }
                out.push(x as i64);
            }
            Column::OwnedI64(out)
        }
        (Values::F64(v), _) => Column::OwnedF64(v),
        (Values::I64(v), Some(ColumnKind::F64 | ColumnKind::F32)) => {
            Column::OwnedF64(v.iter().map(|&x| x as f64).collect())
        }
        (Values::I64(v), Some(ColumnKind::Bool)) if v.iter().all(|&x| x == 0 || x == 1) => {
            Column::OwnedBool(v.iter().map(|&x| x == 1).collect())
        }
        (Values::I64(v), _) => Column::OwnedI64(v),
        (Values::Bool(v), Some(ColumnKind::F64 | ColumnKind::F32)) => {
            Column::OwnedF64(v.iter().map(|&b| f64::from(u8::from(b))).collect())
        }
        (Values::Bool(_), Some(ColumnKind::I64)) => return Err((None, "expected i64 values, got booleans".into())),
        (Values::Bool(v), _) => Column::OwnedBool(v),
        (Values::Bytes { data, offsets }, Some(ColumnKind::Bytes)) => Column::OwnedBytes(data, offsets),
        (Values::Bytes { .. }, _) => return Err((None, "expected numbers, got text".into())),
    })
}
