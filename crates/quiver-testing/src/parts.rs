//! Checks of methods computed by parts (docs/scale.md): random partitionings, and results
//! compared number by number.

use rand::Rng;
use serde_json::Value;
use std::ops::Range;

/// `parts` partitions of the rows `0..n`, cut at random among `boundaries` (the rows where a
/// partition may start: every row, or each episode's first): uneven, some empty.
pub fn random_partitions(rng: &mut impl Rng, n: usize, boundaries: &[usize], parts: usize) -> Vec<Range<usize>> {
    let mut points: Vec<usize> = (1..parts)
        .map(|_| if boundaries.is_empty() { 0 } else { boundaries[rng.random_range(0..boundaries.len())] })
        .collect();
    points.sort_unstable();
    let bounds: Vec<usize> = std::iter::once(0).chain(points).chain(std::iter::once(n)).collect();
    bounds.windows(2).map(|w| w[0]..w[1].max(w[0])).collect()
}

/// Every number of `a` and `b` equal to `rel` (relative to the larger), every other value equal,
/// and the same keys in the same order; `at` names where a difference is.
pub fn assert_json_close(a: &Value, b: &Value, rel: f64, at: &str) {
    assert_json_within(a, b, rel.into(), at)
}

/// How close two numbers must be: |x − y| ≤ rel·max(|x|, |y|) + abs. An absolute part serves
/// numbers that are differences of nearly equal sums (a certified gap), whose relative error is
/// the sums' rounding over the difference.
#[derive(Debug, Clone, Copy)]
pub struct Close {
    /// Relative to the larger number.
    pub rel: f64,
    /// Absolute.
    pub abs: f64,
}

/// A relative tolerance alone.
impl From<f64> for Close {
    fn from(rel: f64) -> Close {
        Close { rel, abs: 0.0 }
    }
}

/// [`assert_json_close`] to `close`.
pub fn assert_json_within(a: &Value, b: &Value, close: Close, at: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().expect("a number"), y.as_f64().expect("a number"));
            let tol = close.rel * x.abs().max(y.abs()).max(1e-300) + close.abs;
            assert!((x - y).abs() <= tol, "{at}: {x} vs {y}");
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>(), "{at}");
            for (k, v) in x {
                assert_json_within(v, &y[k], close, &format!("{at}.{k}"));
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}");
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                assert_json_within(u, v, close, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

/// Run `method` on all `n` rows in one call and by parts — cut into 1, 2, 7 and 64 partitions at
/// random among `boundaries` (uneven, some empty) — and require every number of the two results
/// equal to `close` (a relative tolerance, 0: bit for bit; or a [`Close`]). `tables(rows)` builds
/// the partitioned tables of `rows`; `whole` are the tables every partition reads whole (the
/// one-call run gets them too).
pub fn check_partitionings(
    rng: &mut impl Rng,
    method: &str,
    params: &serde_json::Map<String, Value>,
    whole: &[quiver_host::Table],
    (n, boundaries): (usize, &[usize]),
    tables: impl Fn(Range<usize>) -> Vec<quiver_host::Table>,
    close: impl Into<Close>,
) {
    let close = close.into();
    let host = crate::host();
    let all: Vec<quiver_host::Table> = whole.iter().cloned().chain(tables(0..n)).collect();
    let one = host.run(method, params, &all, crate::cpu()).unwrap();
    for parts in [1, 2, 7, 64] {
        let ranges = random_partitions(rng, n, boundaries, parts);
        let partitions = || Ok(ranges.iter().map(|r| Ok(tables(r.clone()))));
        let by_parts = host
            .run_in_rounds(method, params, whole.to_vec(), partitions, crate::cpu(), None)
            .unwrap_or_else(|e| panic!("{method}, {parts} partitions {ranges:?}: {e}"))
            .into_json();
        assert_json_within(&one, &by_parts, close, &format!("{method}, n = {n}, {parts} partitions {ranges:?}"));
    }
}

/// Write `groups` — tables with the same columns — as one Parquet file (snappy, as pandas and
/// pyarrow write), one row group per table: data for runs by parts at scale, produced a group at
/// a time. Returns the rows written.
pub fn write_parquet(
    path: &std::path::Path,
    groups: impl IntoIterator<Item = quiver_host::Table>,
) -> Result<u64, String> {
    write_parquet_as(path, groups, true)
}

/// [`write_parquet`], snappy-compressed or not (`compressed`: the pages written as they are).
pub fn write_parquet_as(
    path: &std::path::Path,
    groups: impl IntoIterator<Item = quiver_host::Table>,
    compressed: bool,
) -> Result<u64, String> {
    use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch};
    use parquet::arrow::ArrowWriter;
    use parquet::basic::Compression;
    use parquet::file::properties::WriterProperties;
    use quiver_host::Values;
    use std::sync::Arc;
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut writer: Option<ArrowWriter<std::fs::File>> = None;
    let mut file = Some(file);
    let mut rows = 0u64;
    for t in groups {
        let columns: Vec<(String, ArrayRef)> = t
            .columns
            .into_iter()
            .map(|(name, v)| {
                let array: ArrayRef = match v {
                    Values::F64(v) => Arc::new(Float64Array::from(v)),
                    Values::I64(v) => Arc::new(Int64Array::from(v)),
                    Values::Bool(v) => Arc::new(BooleanArray::from(v)),
                    Values::Bytes { .. } => unreachable!("no bytes columns in data files"),
                };
                (name, array)
            })
            .collect();
        let batch = RecordBatch::try_from_iter(columns).map_err(|e| e.to_string())?;
        rows += batch.num_rows() as u64;
        if writer.is_none() {
            let props = WriterProperties::builder()
                .set_compression(if compressed { Compression::SNAPPY } else { Compression::UNCOMPRESSED })
                .set_max_row_group_size(usize::MAX)
                .build();
            let f = file.take().expect("once");
            writer = Some(ArrowWriter::try_new(f, batch.schema(), Some(props)).map_err(|e| e.to_string())?);
        }
        let w = writer.as_mut().expect("created");
        w.write(&batch).map_err(|e| e.to_string())?;
        w.flush().map_err(|e| e.to_string())?; // one row group per table
    }
    writer.ok_or("no row group to write")?.close().map_err(|e| e.to_string())?;
    Ok(rows)
}
