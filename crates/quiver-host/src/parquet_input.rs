//! Parquet input: a file's columns read into a [`Table`] through Arrow (the `parquet` crate),
//! only the columns the method's table declares (column projection), one row group or all; and
//! the row groups of a file as the partitions of a run by parts (docs/scale.md), so that memory
//! holds one row group at a time.
//!
//! Types: floating columns are read as f64, integer columns (signed, or unsigned below 2^63) as
//! i64, booleans as flags; other columns are left out as a CSV's text columns are. A null is an
//! error naming its row — except in an integer column whose empty cells mean "none" (`a_next`),
//! where it reads as −1 as an empty CSV cell does.

use crate::{InputBudget, InputError, Table};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use quiver_abi::{ColumnKind, TableSpec};
use std::path::Path;

/// Whether `path` names a Parquet file (by its extension).
pub fn is_parquet(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("parq"))
}

pub(crate) fn file_error(role: &str, path: &Path, reason: impl std::fmt::Display) -> InputError {
    InputError::File { table: role.into(), path: path.into(), reason: reason.to_string() }
}

fn builder(path: &Path, role: &str) -> Result<ParquetRecordBatchReaderBuilder<std::fs::File>, InputError> {
    let file = std::fs::File::open(path).map_err(|e| file_error(role, path, e))?;
    ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| file_error(role, path, format!("not a Parquet file ({e})")))
}

/// The number of row groups of a Parquet file.
pub fn parquet_row_groups(path: &Path, role: &str) -> Result<usize, InputError> {
    Ok(builder(path, role)?.metadata().num_row_groups())
}

/// Read a Parquet file as table `role` — row group `group` only, or all — keeping the columns
/// `spec` declares (by name or prefix), and taking their memory from `budget` before reading.
/// Errors name the file, or the table, column and row (counted from the file's first row).
pub fn read_parquet_within(
    path: &Path,
    role: &str,
    spec: &TableSpec,
    group: Option<usize>,
    budget: &mut InputBudget,
) -> Result<Table, InputError> {
    let file = std::fs::File::open(path).map_err(|e| file_error(role, path, e))?;
    let arrow_meta = ArrowReaderMetadata::load(&file, Default::default())
        .map_err(|e| file_error(role, path, format!("not a Parquet file ({e})")))?;
    let meta = arrow_meta.metadata().clone();
    let groups: Vec<usize> = match group {
        Some(g) if g < meta.num_row_groups() => vec![g],
        Some(g) => return Err(file_error(role, path, format!("no row group {g} (it has {})", meta.num_row_groups()))),
        None => (0..meta.num_row_groups()).collect(),
    };
    // the rows before the first group read: messages count rows from the file's first
    let first_row: usize =
        (0..groups.first().copied().unwrap_or(0)).map(|g| meta.row_group(g).num_rows() as usize).sum();
    read_row_groups((path, role, spec), &arrow_meta, &groups, first_row, budget)
}

/// Row groups `groups` (consecutive) of the Parquet file at `path` whose metadata is `arrow_meta`,
/// as table `role` of `spec`, the first of them after `first_row` rows of the file (for messages);
/// their memory taken from `budget`.
pub(crate) fn read_row_groups(
    (path, role, spec): (&Path, &str, &TableSpec),
    arrow_meta: &ArrowReaderMetadata,
    groups: &[usize],
    first_row: usize,
    budget: &mut InputBudget,
) -> Result<Table, InputError> {
    let meta = arrow_meta.metadata();
    let rows: usize = groups.iter().map(|&g| meta.row_group(g).num_rows() as usize).sum();
    let (keep, ignored) = projection(arrow_meta.schema(), spec, role, path)?;
    budget.take(rows as f64 * 8.0 * keep.len() as f64, role, path, None)?;
    // the columns decoded on several threads at once, each thread a share of them (decoding,
    // not the method, is most of a run by parts over a file)
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(keep.len()).max(1);
    let shares: Vec<Vec<usize>> =
        (0..threads).map(|t| keep.iter().copied().skip(t).step_by(threads).collect()).collect();
    let read = Read { path, role, spec, meta: arrow_meta, groups, rows, first_row };
    let decoded: Vec<Result<Vec<Decoded>, InputError>> = if threads == 1 {
        vec![read.columns(&shares[0])]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = shares.iter().map(|share| scope.spawn(|| read.columns(share))).collect();
            handles.into_iter().map(|h| h.join().expect("a Parquet decoding thread panicked")).collect()
        })
    };
    let mut columns: Vec<Decoded> = Vec::with_capacity(keep.len());
    // the first share's error first: the same message whatever the number of threads when one
    // column is bad (the column earliest in the file among several)
    let mut errors: Vec<(usize, InputError)> = Vec::new();
    for (share, d) in shares.iter().zip(decoded) {
        match d {
            Ok(c) => columns.extend(c),
            Err(e) => errors.push((share[0], e)),
        }
    }
    if let Some((_, e)) = errors.into_iter().min_by_key(|(k, _)| *k) {
        return Err(e);
    }
    columns.sort_by_key(|c| c.0);
    let mut table = Table::new(role);
    table.nrows = rows;
    table.first_row = first_row;
    table.columns = columns.into_iter().map(|(_, name, v)| (name, v)).collect();
    table.ignored = ignored;
    Ok(table)
}

/// The leaf columns of a file's `schema` that table `spec` (role `role`, file `path`) declares (by
/// name or prefix), as indices, and the names of the others (ignored, as a CSV's text columns
/// are). A declared column whose values are of another sort — text where numbers are read,
/// numbers where labels are — is an error naming it and both types, not a column left out.
pub(crate) fn projection(
    schema: &arrow_schema::Schema,
    spec: &TableSpec,
    role: &str,
    path: &Path,
) -> Result<(Vec<usize>, Vec<String>), InputError> {
    let (mut keep, mut ignored) = (Vec::new(), Vec::new());
    for (i, field) in schema.fields().iter().enumerate() {
        let numeric = field.data_type().is_numeric() || *field.data_type() == DataType::Boolean;
        let text = matches!(
            field.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Binary | DataType::LargeBinary
        );
        match crate::column_kind(spec, field.name()) {
            Some(ColumnKind::Bytes) if text => keep.push(i),
            Some(kind) if numeric && kind != ColumnKind::Bytes => keep.push(i),
            Some(kind) => {
                let wanted = if kind == ColumnKind::Bytes { "text (labels)" } else { "numbers" };
                return Err(file_error(
                    role,
                    path,
                    format!(
                        "column '{}' holds {} values, and the method reads {wanted} from it ({})",
                        field.name(),
                        field.data_type(),
                        kind.name()
                    ),
                ));
            }
            None => ignored.push(field.name().clone()),
        }
    }
    Ok((keep, ignored))
}

/// A decoded column: its index in the file's schema, its name and its values.
type Decoded = (usize, String, crate::Values);

/// What decoding some columns of a file's row groups needs.
struct Read<'a> {
    path: &'a Path,
    role: &'a str,
    spec: &'a TableSpec,
    meta: &'a ArrowReaderMetadata,
    groups: &'a [usize],
    rows: usize,
    first_row: usize,
}

impl Read<'_> {
    /// The leaf columns `which` (indices in the file's schema) of the row groups, with their index.
    fn columns(&self, which: &[usize]) -> Result<Vec<Decoded>, InputError> {
        let (role, path) = (self.role, self.path);
        let file = std::fs::File::open(path).map_err(|e| file_error(role, path, e))?;
        let mask = ProjectionMask::roots(self.meta.metadata().file_metadata().schema_descr(), which.iter().copied());
        // batches of 2^16 rows: each batch's Arrow arrays are freed once copied out, so a row
        // group's columns are held once (in the table), not twice
        let batch = self.rows.clamp(1, 1 << 16);
        let reader = batches(file, self.meta, self.groups.to_vec(), mask, batch, (role, path))?;
        let mut columns: Vec<Decoded> = Vec::new();
        let mut at = 0usize;
        for batch in reader {
            let batch = batch.map_err(|e| file_error(role, path, format!("cannot read ({e})")))?;
            for (k, (field, array)) in batch.schema().fields().iter().zip(batch.columns()).enumerate() {
                // doubles and 64-bit integers without nulls: copied once, straight into the column
                if let Some((_, _, v)) = columns.get_mut(k) {
                    if append_plain(v, array) {
                        continue;
                    }
                }
                let values = arrow_values(array, field.name(), self.spec, role, self.first_row + at)?;
                match columns.get_mut(k) {
                    Some((_, _, v)) => v.extend(values),
                    None => {
                        let mut v = values.empty_like(self.rows);
                        v.extend(values);
                        columns.push((which[k], field.name().clone(), v));
                    }
                }
            }
            at += batch.num_rows();
        }
        Ok(columns)
    }
}

/// A reader of `meta`'s file (read through `input`) in batches of `batch` rows: the row groups
/// `groups`, the columns of `mask`. Errors name table `role` and its file.
pub(crate) fn batches<T: parquet::file::reader::ChunkReader + 'static>(
    input: T,
    meta: &ArrowReaderMetadata,
    groups: Vec<usize>,
    mask: ProjectionMask,
    batch: usize,
    (role, path): (&str, &Path),
) -> Result<ParquetRecordBatchReader, InputError> {
    ParquetRecordBatchReaderBuilder::new_with_metadata(input, meta.clone())
        .with_row_groups(groups)
        .with_projection(mask)
        .with_batch_size(batch)
        .build()
        .map_err(|e| file_error(role, path, e))
}

/// Column `name` of table `spec` (role `role`) from an Arrow array whose first row is the
/// source's row `first_row` + 1: its values ([`values_of_arrow`]), or the error naming the
/// table, column and row.
pub(crate) fn arrow_values(
    array: &ArrayRef,
    name: &str,
    spec: &TableSpec,
    role: &str,
    first_row: usize,
) -> Result<crate::Values, InputError> {
    values_of_arrow(array, name, Some(spec)).map_err(|(row, why)| InputError::Cell {
        table: role.into(),
        column: name.into(),
        row: first_row + row + 1,
        reason: why,
    })
}

/// Append `array` to `v` when both are doubles or both 64-bit integers and the array has no null
/// (nothing to check per row); false, with `v` untouched, otherwise.
fn append_plain(v: &mut crate::Values, array: &ArrayRef) -> bool {
    if array.null_count() != 0 {
        return false;
    }
    match (v, array.data_type()) {
        (crate::Values::F64(v), DataType::Float64) => v.extend_from_slice(array.as_primitive::<Float64Type>().values()),
        (crate::Values::I64(v), DataType::Int64) => v.extend_from_slice(array.as_primitive::<Int64Type>().values()),
        _ => return false,
    }
    true
}

/// An Arrow array — a column of table `spec` named `name` — as Quiver's values (a copy): floats as
/// f64, integers as i64, booleans as flags, a null an error `(row, why)` (0-based row) except in a
/// column whose empty cells mean "none", where it is −1. The reader of Parquet files and of Arrow
/// data from Python share it.
pub fn values_of_arrow(
    array: &ArrayRef,
    name: &str,
    spec: Option<&TableSpec>,
) -> Result<crate::Values, (usize, String)> {
    convert(array, name, spec.is_some_and(|s| crate::table::empty_means_none(s, name)))
}

/// An Arrow array as Quiver's values; a null (or an unsigned value past i64) is `(row, why)`.
fn convert(array: &ArrayRef, name: &str, none_is_minus_one: bool) -> Result<crate::Values, (usize, String)> {
    let null = |i: usize| (i, format!("a null (missing) value in column '{name}'"));
    // no null buffer (the common case): no per-row check
    let first_null = || if array.null_count() == 0 { None } else { (0..array.len()).find(|&i| array.is_null(i)) };
    macro_rules! floats {
        ($t:ty) => {{
            if let Some(i) = first_null() {
                return Err(null(i));
            }
            crate::Values::F64(array.as_primitive::<$t>().values().iter().map(|&x| f64::from(x)).collect())
        }};
    }
    macro_rules! ints {
        ($t:ty) => {{
            let a = array.as_primitive::<$t>();
            let mut out = Vec::with_capacity(a.len());
            for i in 0..a.len() {
                if a.is_null(i) {
                    if none_is_minus_one {
                        out.push(-1);
                        continue;
                    }
                    return Err(null(i));
                }
                let v = a.value(i);
                out.push(i64::try_from(v).map_err(|_| (i, format!("{v} does not fit a 64-bit signed integer")))?);
            }
            crate::Values::I64(out)
        }};
    }
    Ok(match array.data_type() {
        DataType::Float64 => floats!(Float64Type),
        DataType::Float32 => floats!(Float32Type),
        DataType::Int64 => ints!(Int64Type),
        DataType::Int32 => ints!(Int32Type),
        DataType::Int16 => ints!(Int16Type),
        DataType::Int8 => ints!(Int8Type),
        DataType::UInt64 => ints!(UInt64Type),
        DataType::UInt32 => ints!(UInt32Type),
        DataType::UInt16 => ints!(UInt16Type),
        DataType::UInt8 => ints!(UInt8Type),
        DataType::Boolean => {
            if let Some(i) = first_null() {
                return Err(null(i));
            }
            let a = array.as_boolean();
            crate::Values::Bool((0..a.len()).map(|i| a.value(i)).collect())
        }
        DataType::Utf8 => text(array.as_string::<i32>().iter(), null)?,
        DataType::LargeUtf8 => text(array.as_string::<i64>().iter(), null)?,
        DataType::Utf8View => text(array.as_string_view().iter(), null)?,
        DataType::Binary => bytes(array.as_binary::<i32>().iter(), null)?,
        DataType::LargeBinary => bytes(array.as_binary::<i64>().iter(), null)?,
        other => return Err((0, format!("column '{name}' holds {other}, which no method reads"))),
    })
}

/// Text rows (labels) as a bytes column; a null is an error naming its row.
fn text<'a>(
    rows: impl Iterator<Item = Option<&'a str>>,
    null: impl Fn(usize) -> (usize, String),
) -> Result<crate::Values, (usize, String)> {
    bytes(rows.map(|r| r.map(str::as_bytes)), null)
}

/// Byte-string rows as a bytes column; a null is an error naming its row.
fn bytes<'a>(
    rows: impl Iterator<Item = Option<&'a [u8]>>,
    null: impl Fn(usize) -> (usize, String),
) -> Result<crate::Values, (usize, String)> {
    let (mut data, mut offsets) = (Vec::new(), vec![0u64]);
    for (i, r) in rows.enumerate() {
        data.extend_from_slice(r.ok_or_else(|| null(i))?);
        offsets.push(data.len() as u64);
    }
    Ok(crate::Values::Bytes { data, offsets })
}
