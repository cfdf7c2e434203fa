//! Typed, zero-copy access to the tables of a lifecycle call.

use ndarray::ArrayView1;
use quiver_abi::{ColumnData, PluginError, TableView};

/// The tables passed to one lifecycle call, looked up by role.
#[derive(Clone, Copy)]
pub struct Tables<'a> {
    views: &'a [TableView<'a>],
}

impl<'a> Tables<'a> {
    /// Wrap the ABI slice.
    pub fn new(views: quiver_abi::TableViews<'a>) -> Self {
        Tables { views: views.as_slice() }
    }
    /// The bytes of every column of every table (8 per value: what working copies cost; a bytes
    /// column's own size).
    pub fn bytes(&self) -> f64 {
        let size = |d: &ColumnData<'_>| match d {
            ColumnData::Bytes(b) => (b.data.len() + 8 * b.offsets.len()) as f64,
            other => other.len() as f64 * 8.0,
        };
        self.views.iter().flat_map(|t| t.columns.iter()).map(|c| size(&c.data)).sum()
    }
    /// Wrap a plain slice (tests).
    pub fn from_slice(views: &'a [TableView<'a>]) -> Self {
        Tables { views }
    }
    /// The table with role `role`, or an error naming it and the roles that were given.
    pub fn get(&self, role: &str) -> Result<TableRef<'a>, PluginError> {
        self.opt(role).ok_or_else(|| {
            // the protocol's own tables of a run by parts are not the user's to give
            let internal = [crate::mergeable::PARTITION, crate::mergeable::BROADCAST, crate::mergeable::STATES];
            let given: Vec<&str> =
                self.views.iter().map(|t| t.role.as_str()).filter(|r| !internal.contains(r)).collect();
            PluginError::input(format!(
                "no '{role}' table was given (given: {})",
                if given.is_empty() { "none".to_string() } else { given.join(", ") }
            ))
        })
    }
    /// The table with role `role`, if given.
    pub fn opt(&self, role: &str) -> Option<TableRef<'a>> {
        self.views.iter().find(|t| t.role.as_str() == role).map(|view| TableRef { view })
    }
}

/// One table.
#[derive(Clone, Copy)]
pub struct TableRef<'a> {
    view: &'a TableView<'a>,
}

impl<'a> TableRef<'a> {
    /// Role name.
    pub fn role(&self) -> &'a str {
        self.view.role.as_str()
    }
    /// Number of rows.
    pub fn nrows(&self) -> usize {
        self.view.nrows
    }
    /// Error unless the table has at least one row.
    pub fn non_empty(&self) -> Result<(), PluginError> {
        if self.nrows() == 0 {
            Err(PluginError::input(format!("table '{}' is empty (no data rows)", self.role())))
        } else {
            Ok(())
        }
    }
    /// Column names.
    pub fn column_names(&self) -> Vec<&'a str> {
        self.view.columns.iter().map(|c| c.name.as_str()).collect()
    }
    /// Whether a column exists.
    pub fn has(&self, name: &str) -> bool {
        self.raw(name).is_some()
    }
    fn raw(&self, name: &str) -> Option<&'a ColumnData<'a>> {
        self.view.columns.as_slice().iter().find(|c| c.name.as_str() == name).map(|c| &c.data)
    }
    fn missing(&self, name: &str) -> PluginError {
        PluginError::input(format!(
            "table '{}' has no column '{name}' (columns: {})",
            self.role(),
            self.column_names().join(", ")
        ))
    }
    fn check_len(&self, name: &str, len: usize) -> Result<(), PluginError> {
        if len != self.nrows() {
            return Err(PluginError::input(format!(
                "table '{}', column '{name}': {len} values for {} rows",
                self.role(),
                self.nrows()
            )));
        }
        Ok(())
    }
    /// An error about one cell: `table 'T', column 'C', row R: {message}` (`row` is 0-based
    /// here and shown 1-based, the data row of a CSV file).
    pub fn row_error(&self, column: &str, row: usize, message: impl std::fmt::Display) -> PluginError {
        PluginError::input(format!("table '{}', column '{column}', row {}: {message}", self.role(), row + 1))
    }
    /// Check every value of a column: the first one for which `ok` is false gives
    /// `table 'T', column 'C', row R: value V {requirement}` (e.g. `must be > 0`).
    pub fn check_each<T: Copy + std::fmt::Display + std::fmt::Debug>(
        &self,
        column: &str,
        values: &[T],
        ok: impl Fn(T) -> bool,
        requirement: &str,
    ) -> Result<(), PluginError> {
        match values.iter().position(|&v| !ok(v)) {
            Some(row) => {
                Err(self.row_error(column, row, format!("value {} {requirement}", crate::compact(values[row]))))
            }
            None => Ok(()),
        }
    }
    /// An f64 column (borrowed, no copy), every value finite; an error names the table, column
    /// and 1-based row of the first bad value.
    pub fn f64(&self, name: &str) -> Result<&'a [f64], PluginError> {
        self.f64_opt(name)?.ok_or_else(|| self.missing(name))
    }
    /// [`TableRef::f64`] as an `ndarray` view over the same memory.
    pub fn f64_view(&self, name: &str) -> Result<ArrayView1<'a, f64>, PluginError> {
        self.f64(name).map(ArrayView1::from)
    }
    /// The f64 columns whose names are `prefix` followed by a number, by number: `(k, values)`
    /// in increasing k, each checked as [`TableRef::f64`] checks. One pass over the columns: a
    /// table of 10^5 columns costs 10^5 steps, not a lookup (a pass) per column.
    pub fn numbered_f64(&self, prefix: &str) -> Result<Vec<(usize, &'a [f64])>, PluginError> {
        let mut found: Vec<(usize, &'a quiver_abi::ColumnView<'a>)> = Vec::new();
        for c in self.view.columns.as_slice() {
            // digits only: `phi_next_0` is not a `phi_` column, nor is `phi_+1`
            let Some(k) = c.name.as_str().strip_prefix(prefix) else { continue };
            if k.is_empty() || !k.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            match k.parse::<usize>() {
                Ok(n) if n.to_string() == k => found.push((n, c)),
                _ => {
                    return Err(PluginError::input(format!(
                        "table '{}': column '{}': number the {prefix}* columns 0, 1, 2, ... (no leading zeros)",
                        self.role(),
                        c.name
                    )))
                }
            }
        }
        found.sort_unstable_by_key(|(k, _)| *k);
        found.into_iter().map(|(k, c)| Ok((k, self.f64_of(c.name.as_str(), &c.data)?))).collect()
    }
    /// [`TableRef::f64`] for a method whose arithmetic needs full precision: besides finite, every
    /// value is 0 or a normal number — a subnormal one (non-zero, below 2.2e-308) keeps too few
    /// digits, and scaling it to order one (standardising) turns its rounding into the answer.
    /// One pass, as the finiteness check alone.
    pub fn f64_normal(&self, name: &str) -> Result<&'a [f64], PluginError> {
        let Some(data) = self.raw(name) else { return Err(self.missing(name)) };
        let ColumnData::F64(s) = data else { return self.f64_of(name, data) };
        let s: &'a [f64] = s.as_slice();
        if all_values(s, zero_or_normal) {
            self.check_len(name, s.len())?;
            return Ok(s);
        }
        // the first bad value, with what is wrong with it
        let s = self.f64_of(name, data)?;
        self.check_each(
            name,
            s,
            zero_or_normal,
            "is subnormal (non-zero below 2.2e-308: too few digits to compute with); rescale the data",
        )?;
        Ok(s)
    }
    /// [`TableRef::f64_normal`], `None` when the column is absent.
    pub fn f64_normal_opt(&self, name: &str) -> Result<Option<&'a [f64]>, PluginError> {
        if self.has(name) {
            self.f64_normal(name).map(Some)
        } else {
            Ok(None)
        }
    }
    /// Like [`TableRef::f64`], `None` when the column is absent.
    pub fn f64_opt(&self, name: &str) -> Result<Option<&'a [f64]>, PluginError> {
        let Some(data) = self.raw(name) else { return Ok(None) };
        self.f64_of(name, data).map(Some)
    }
    fn f64_of(&self, name: &str, data: &'a ColumnData<'a>) -> Result<&'a [f64], PluginError> {
        let ColumnData::F64(s) = data else {
            return Err(PluginError::input(format!(
                "table '{}', column '{name}': expected f64 values, got {}",
                self.role(),
                data.kind().name()
            )));
        };
        let s: &'a [f64] = s.as_slice();
        self.check_len(name, s.len())?;
        if !all_values(s, finite) {
            self.check_each(name, s, f64::is_finite, "is not finite")?;
        }
        Ok(s)
    }
    /// An i64 column (borrowed, no copy).
    pub fn i64(&self, name: &str) -> Result<&'a [i64], PluginError> {
        self.i64_opt(name)?.ok_or_else(|| self.missing(name))
    }
    /// Like [`TableRef::i64`], `None` when the column is absent.
    pub fn i64_opt(&self, name: &str) -> Result<Option<&'a [i64]>, PluginError> {
        match self.raw(name) {
            None => Ok(None),
            Some(ColumnData::I64(s)) => {
                self.check_len(name, s.len())?;
                Ok(Some(s.as_slice()))
            }
            Some(d) => Err(PluginError::input(format!(
                "table '{}', column '{name}': expected i64 values, got {}",
                self.role(),
                d.kind().name()
            ))),
        }
    }
    /// A text column (labels, [`crate::column::text`]): one `&str` per row, borrowed; a row that is
    /// not UTF-8 is an error naming the table, column and row.
    pub fn texts(&self, name: &str) -> Result<Vec<&'a str>, PluginError> {
        let col = self.bytes(name)?;
        (0..col.len())
            .map(|i| {
                std::str::from_utf8(col.get(i).expect("a checked column's row"))
                    .map_err(|_| self.row_error(name, i, "is not UTF-8 text"))
            })
            .collect()
    }
    /// A bytes column (variable-length byte strings, one per row), checked: its offsets describe
    /// rows inside its data, one per row of the table.
    pub fn bytes(&self, name: &str) -> Result<quiver_abi::BytesColumn<'a>, PluginError> {
        match self.raw(name) {
            None => Err(self.missing(name)),
            Some(ColumnData::Bytes(b)) if b.is_valid() => {
                self.check_len(name, b.len())?;
                Ok(*b)
            }
            Some(ColumnData::Bytes(_)) => Err(PluginError::input(format!(
                "table '{}', column '{name}': its offsets do not describe rows inside its bytes",
                self.role()
            ))),
            Some(d) => Err(PluginError::input(format!(
                "table '{}', column '{name}': expected bytes, got {}",
                self.role(),
                d.kind().name()
            ))),
        }
    }
    /// A 0/1 column as booleans. Accepts a bool column, or an i64 / f64 column of zeros and ones
    /// (an error names the first row holding anything else).
    pub fn flags(&self, name: &str) -> Result<Vec<bool>, PluginError> {
        let bad = |row: usize, v: String| self.row_error(name, row, format!("value {v} is not 0 or 1"));
        let out = match self.raw(name) {
            None => return Err(self.missing(name)),
            Some(ColumnData::Bool(s)) => s.to_vec(),
            Some(ColumnData::I64(s)) => s
                .iter()
                .enumerate()
                .map(|(i, &v)| match v {
                    0 => Ok(false),
                    1 => Ok(true),
                    _ => Err(bad(i, v.to_string())),
                })
                .collect::<Result<_, _>>()?,
            Some(ColumnData::F64(s)) => s
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    if v == 0.0 {
                        Ok(false)
                    } else if v == 1.0 {
                        Ok(true)
                    } else {
                        Err(bad(i, v.to_string()))
                    }
                })
                .collect::<Result<_, _>>()?,
            Some(d @ (ColumnData::F32(_) | ColumnData::Bytes(_))) => {
                return Err(PluginError::input(format!(
                    "table '{}', column '{name}': expected 0/1 flags, got {}",
                    self.role(),
                    d.kind().name()
                )))
            }
        };
        self.check_len(name, out.len())?;
        Ok(out)
    }
}

/// Whether `ok` holds for every value: a branch-free scan (vectorised by the compiler) over blocks,
/// in parallel for long columns; the caller locates the first bad value only when this fails.
fn all_values(s: &[f64], ok: impl Fn(f64) -> bool + Sync) -> bool {
    use rayon::prelude::*;
    let block = |c: &[f64]| c.iter().fold(true, |all, &x| all & ok(x));
    if s.len() < 1 << 18 {
        s.chunks(1 << 12).all(block)
    } else {
        s.par_chunks(1 << 16).all(block)
    }
}

/// Finite: not NaN, not ±∞.
fn finite(x: f64) -> bool {
    x.is_finite()
}

/// 0, or a normal double (finite, not subnormal).
fn zero_or_normal(x: f64) -> bool {
    x == 0.0 || x.is_normal()
}
