//! A Parquet file as the partitions of a run by parts (docs/scale.md), read by several workers
//! at once ([`crate::Host::run_streams`]): each row group is a stream, read in order by one
//! worker. A table whose rows a method lets any partition boundary cut (the manifest property
//! `"cut_anywhere"`: every row a unit of its own, keyed by its place in the whole table — a bandit
//! round, a test unit) is read in slices of [`SLICE_ROWS`] rows, each checked and computed by the
//! worker right after it decoded it, while it is still in the processor's caches: a row's bytes
//! come from memory once, not three times (page, decoded row group, method). A table whose rows
//! belong together (an RL log's episodes) keeps the file's row groups as its partitions, which
//! the writer keeps whole.
//!
//! The row group a worker reads is mapped into memory (no copy out of the page cache), and
//! doubles and 64-bit integers without nulls are taken from the decoder without a copy.

use crate::parquet_input::{arrow_values, batches, file_error, projection, read_row_groups};
use crate::streams::PartitionStreams;
use crate::{HostError, InputBudget, InputError, Table};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReader};
use parquet::arrow::ProjectionMask;
use quiver_abi::{Manifest, TableSpec};
use std::path::{Path, PathBuf};

/// Rows of a slice: 2^15 rows of 23 doubles are 6 MB (measured with `ope` on 10^7 bandit rows,
/// docs/scale.md: 2^14–2^16 rows a slice within the runs' noise of one another; 2^12, 40 %
/// slower — the per-partition work of the host and the plugin shows).
pub const SLICE_ROWS: usize = 1 << 15;

/// The roles of a method's tables that a run by parts may cut between any two rows (the manifest
/// property `"cut_anywhere"`).
pub fn cut_anywhere_roles(manifest: &Manifest) -> Vec<String> {
    crate::partitioned::roles_property(manifest, "cut_anywhere")
}

/// Bytes `start..end` of a Parquet file mapped into memory, read at the file's own offsets: the
/// pages the decoder asks for are slices of the mapping, not copies. Only one row group's columns
/// are mapped at a time, so that the mapped pages (which count in the process's resident memory)
/// stay one row group's, whatever the file's size. As with any memory-mapped reader, the file must
/// not be truncated while it is read.
struct MappedRange {
    start: u64,
    bytes: bytes::Bytes,
    file_len: u64,
}

impl MappedRange {
    /// The mapping, or `None` where the range is empty or past the file, or the file cannot be
    /// mapped (then the caller reads it).
    fn map(file: &std::fs::File, start: u64, end: u64) -> Option<Self> {
        let file_len = file.metadata().ok()?.len();
        if end <= start || end > file_len {
            return None;
        }
        let len = usize::try_from(end - start).ok()?;
        // SAFETY: the mapping is read-only and private to this reader; its contents change only if
        // another process writes the file while it is read (documented above), and every access
        // is a bounds-checked slice of it.
        let map = unsafe { memmap2::MmapOptions::new().offset(start).len(len).populate().map(file) }.ok()?;
        let _ = map.advise(memmap2::Advice::Sequential);
        Some(MappedRange { start, bytes: bytes::Bytes::from_owner(map), file_len })
    }

    /// Where file offset `at`, `length` bytes long, lies in the mapping.
    fn local(&self, at: u64, length: usize) -> parquet::errors::Result<usize> {
        let inside = at.checked_sub(self.start).and_then(|o| usize::try_from(o).ok());
        match inside {
            Some(o) if o.checked_add(length).is_some_and(|e| e <= self.bytes.len()) => Ok(o),
            _ => Err(parquet::errors::ParquetError::General(format!(
                "bytes {at}..+{length} lie outside the row group's columns (file bytes {}..{})",
                self.start,
                self.start + self.bytes.len() as u64
            ))),
        }
    }
}

impl parquet::file::reader::Length for MappedRange {
    fn len(&self) -> u64 {
        self.file_len
    }
}

impl parquet::file::reader::ChunkReader for MappedRange {
    type T = bytes::buf::Reader<bytes::Bytes>;
    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        use bytes::Buf;
        let o = self.local(start, 0)?;
        Ok(self.bytes.slice(o..).reader())
    }
    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        let o = self.local(start, length)?;
        Ok(self.bytes.slice(o..o + length))
    }
}

/// The values of a column of doubles or 64-bit integers without nulls, without a copy: the Arrow
/// reader decodes them into a `Vec`, which is taken back from the array when nothing else holds
/// it (copied when something does). Any other array is given back, for [`arrow_values`].
fn take_plain(array: ArrayRef) -> Result<crate::Values, ArrayRef> {
    if array.null_count() != 0 || !matches!(array.data_type(), DataType::Float64 | DataType::Int64) {
        return Err(array);
    }
    let data = array.to_data();
    if data.offset() != 0 || data.buffers().len() != 1 {
        return Err(array);
    }
    let (kind, len, buffer) = (data.data_type().clone(), data.len(), data.buffers()[0].clone());
    // the buffer's other holders gone, it is this function's alone
    drop((data, array));
    Ok(match kind {
        DataType::Float64 => crate::Values::F64(owned(buffer, len)),
        _ => crate::Values::I64(owned(buffer, len)),
    })
}

/// The first `len` values of `buffer` as a `Vec`: the buffer's own allocation when it is
/// unshared and was a `Vec` of `T`, else a copy.
fn owned<T: arrow_buffer::ArrowNativeType>(buffer: arrow_buffer::Buffer, len: usize) -> Vec<T> {
    match buffer.into_vec::<T>() {
        Ok(mut v) => {
            v.truncate(len);
            v
        }
        Err(shared) => shared.typed_data::<T>()[..len].to_vec(),
    }
}

/// A Parquet file read as the partitions of table `role` of a method: its row groups as the
/// streams of [`crate::Host::run_streams`], each in slices (a table the method may cut anywhere)
/// or whole.
pub struct ParquetParts {
    path: PathBuf,
    role: String,
    spec: TableSpec,
    meta: ArrowReaderMetadata,
    /// The columns the table declares (indices in the file's schema), and the others' names.
    keep: Vec<usize>,
    ignored: Vec<String>,
    /// Each row group's rows, and the rows of the file before it.
    groups: Vec<(usize, usize)>,
    /// Rows of a slice; `None`: whole row groups.
    slice_rows: Option<usize>,
}

impl ParquetParts {
    /// The file at `path` as table `role` of `manifest`'s method, in slices of `slice_rows` rows
    /// when the method may cut the table anywhere ([`cut_anywhere_roles`]), else by row groups;
    /// the memory of the slices `workers` hold at once taken from `budget`. Errors name the file.
    pub fn open(
        manifest: &Manifest,
        role: &str,
        path: &Path,
        slice_rows: usize,
        workers: usize,
        budget: &mut InputBudget,
    ) -> Result<Self, HostError> {
        let spec = crate::inputs::table_spec(manifest, role)?.clone();
        let file = std::fs::File::open(path).map_err(|e| file_error(role, path, e))?;
        let meta = ArrowReaderMetadata::load(&file, Default::default())
            .map_err(|e| file_error(role, path, format!("not a Parquet file ({e})")))?;
        let (keep, ignored) = projection(meta.schema(), &spec, role, path)?;
        let mut groups = Vec::new();
        let mut rows = 0usize;
        for g in 0..meta.metadata().num_row_groups() {
            let n = usize::try_from(meta.metadata().row_group(g).num_rows()).unwrap_or(0);
            groups.push((n, rows));
            // a footer claiming more rows than can be counted: its reading fails, not the sum
            rows = rows.saturating_add(n);
        }
        let sliced = cut_anywhere_roles(manifest).iter().any(|r| r == role);
        let slice_rows = sliced.then_some(slice_rows.max(1));
        if let Some(s) = slice_rows {
            let largest = groups.iter().map(|g| g.0).max().unwrap_or(0).min(s);
            budget.take((workers.max(1) * largest * 8 * keep.len()) as f64, role, path, None)?;
        }
        Ok(ParquetParts { path: path.into(), role: role.into(), spec, meta, keep, ignored, groups, slice_rows })
    }

    /// Whether the file is read in slices (else by whole row groups).
    pub fn sliced(&self) -> bool {
        self.slice_rows.is_some()
    }

    /// A reader of the table's columns of row group `g` in batches of `batch` rows, the row
    /// group's bytes mapped into memory (the mapping goes with the reader), or read from the file
    /// where they cannot be mapped.
    fn reader(&self, g: usize, batch: usize) -> Result<ParquetRecordBatchReader, InputError> {
        let file = std::fs::File::open(&self.path).map_err(|e| file_error(&self.role, &self.path, e))?;
        let meta = self.meta.metadata();
        let schema = meta.file_metadata().schema_descr_ptr();
        let group = meta.row_group(g);
        // the leaf columns read (all of the row group's when the schema nests: leaves are not roots)
        let leaves: Vec<usize> = if schema.num_columns() == self.meta.schema().fields().len() {
            self.keep.clone()
        } else {
            (0..group.num_columns()).collect()
        };
        let ranges = leaves.iter().map(|&c| group.column(c).byte_range());
        let start = ranges.clone().map(|(s, _)| s).min().unwrap_or(0);
        let end = ranges.map(|(s, l)| s.saturating_add(l)).max().unwrap_or(0);
        let mask = ProjectionMask::roots(&schema, self.keep.iter().copied());
        let at = (self.role.as_str(), self.path.as_path());
        match MappedRange::map(&file, start, end) {
            Some(mapped) => batches(mapped, &self.meta, vec![g], mask, batch, at),
            None => batches(file, &self.meta, vec![g], mask, batch, at),
        }
    }

    /// A decoded slice as the table, its rows counted from the file's first (`first_row` before it).
    fn table(&self, batch: RecordBatch, first_row: usize) -> Result<Table, InputError> {
        let mut table = Table::new(&self.role);
        table.nrows = batch.num_rows();
        table.first_row = first_row;
        table.ignored = self.ignored.clone();
        let (schema, arrays, _) = batch.into_parts();
        for (field, array) in schema.fields().iter().zip(arrays) {
            let values = match take_plain(array) {
                Ok(values) => values,
                Err(array) => arrow_values(&array, field.name(), &self.spec, &self.role, first_row)?,
            };
            table.columns.push((field.name().clone(), values));
        }
        Ok(table)
    }
}

impl PartitionStreams for ParquetParts {
    fn streams(&self) -> usize {
        self.groups.len()
    }
    fn partitions(&self, g: usize) -> usize {
        match self.slice_rows {
            Some(s) => self.groups[g].0.div_ceil(s),
            None => 1,
        }
    }
    fn open(&self, g: usize) -> Result<crate::streams::Partitions<'_>, HostError> {
        let Some(slice_rows) = self.slice_rows else {
            // a whole row group: read as `quiver run` reads one (its columns on all cores), with
            // the metadata and the rows before it known
            let mut budget = InputBudget::from_limit();
            let file = (self.path.as_path(), self.role.as_str(), &self.spec);
            let read = read_row_groups(file, &self.meta, &[g], self.groups[g].1, &mut budget);
            return Ok(Box::new(std::iter::once(read.map(|t| vec![t]).map_err(HostError::from))));
        };
        let reader = self.reader(g, slice_rows)?;
        let mut at = self.groups[g].1;
        let mut failed = false;
        Ok(Box::new(reader.map_while(move |batch| {
            if failed {
                return None;
            }
            let slice =
                batch.map_err(|e| file_error(&self.role, &self.path, format!("cannot read ({e})"))).and_then(|b| {
                    let rows = b.num_rows();
                    let t = self.table(b, at);
                    at += rows;
                    t
                });
            failed = slice.is_err();
            Some(slice.map(|t| vec![t]).map_err(HostError::from))
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn plain_columns_are_taken_without_a_copy_and_others_given_back() {
        let v: Vec<f64> = (0..1000).map(f64::from).collect();
        let at = v.as_ptr();
        let array: ArrayRef = Arc::new(arrow_array::Float64Array::from(v));
        match take_plain(array) {
            Ok(crate::Values::F64(got)) => {
                assert_eq!(got.as_ptr(), at, "the decoder's allocation, not a copy");
                assert_eq!(got.len(), 1000);
                assert_eq!(got[999], 999.0);
            }
            _ => panic!("a plain f64 column"),
        }
        // shared with another holder: copied, the other holder's values untouched
        let ints: ArrayRef = Arc::new(arrow_array::Int64Array::from(vec![5i64, 6, 7]));
        let keep = ints.clone();
        match take_plain(ints) {
            Ok(crate::Values::I64(got)) => assert_eq!(got, vec![5, 6, 7]),
            _ => panic!("a plain i64 column"),
        }
        assert_eq!(keep.len(), 3);
        // a null, or another type: given back for the checked conversion
        let nulls: ArrayRef = Arc::new(arrow_array::Float64Array::from(vec![Some(1.0), None]));
        assert!(take_plain(nulls).is_err());
        let floats: ArrayRef = Arc::new(arrow_array::Float32Array::from(vec![1.0f32]));
        assert!(take_plain(floats).is_err());
    }
}
