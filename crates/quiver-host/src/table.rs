//! Owned input tables: read from CSV (or built in code), checked against a method's manifest,
//! and viewed across the ABI without copying.

use crate::error::InputError;
use quiver_abi::{BytesColumn, ColumnData, ColumnKind, ColumnSpec, ColumnView, TableSpec, TableView};
use std::path::Path;

/// The values of one owned column.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// 64-bit floats.
    F64(Vec<f64>),
    /// 64-bit integers.
    I64(Vec<i64>),
    /// Booleans.
    Bool(Vec<bool>),
    /// Byte strings, one per row, in Arrow's binary layout ([`BytesColumn`]): row `i` is
    /// `data[offsets[i]..offsets[i + 1]]`.
    Bytes {
        /// The rows' bytes, end to end.
        data: Vec<u8>,
        /// Where each row starts, and where the last ends (one more than the rows).
        offsets: Vec<u64>,
    },
}

impl Values {
    /// Append `more` (of the same kind; another kind is a defect of the caller).
    pub(crate) fn extend(&mut self, more: Values) {
        match (self, more) {
            (Values::F64(a), Values::F64(b)) => a.extend(b),
            (Values::I64(a), Values::I64(b)) => a.extend(b),
            (Values::Bool(a), Values::Bool(b)) => a.extend(b),
            (Values::Bytes { data, offsets }, Values::Bytes { data: more, offsets: at }) => {
                let base = data.len() as u64;
                data.extend_from_slice(&more);
                offsets.extend(at.iter().skip(1).map(|o| o + base));
            }
            _ => unreachable!("the parts of one column have one type (checked by the callers)"),
        }
    }
    /// Whether `other` can be appended to this column: values of the same kind.
    fn appends(&self, other: &Values) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
    /// Append `more`, a column of the same kind (numbers, flags or text); another kind is an error.
    pub fn append_values(&mut self, more: Values) -> Result<(), String> {
        if !self.appends(&more) {
            return Err("the parts of the column hold values of different types".into());
        }
        self.extend(more);
        Ok(())
    }
    /// An empty column of the same kind with room for `rows` entries (numbers and flags).
    pub(crate) fn empty_like(&self, rows: usize) -> Values {
        match self {
            Values::F64(_) => Values::F64(Vec::with_capacity(rows)),
            Values::I64(_) => Values::I64(Vec::with_capacity(rows)),
            Values::Bool(_) => Values::Bool(Vec::with_capacity(rows)),
            Values::Bytes { .. } => Values::Bytes { data: Vec::new(), offsets: vec![0] },
        }
    }
    /// The entries `rows` (a copy).
    pub fn rows(&self, rows: std::ops::Range<usize>) -> Values {
        match self {
            Values::F64(v) => Values::F64(v[rows].to_vec()),
            Values::I64(v) => Values::I64(v[rows].to_vec()),
            Values::Bool(v) => Values::Bool(v[rows].to_vec()),
            Values::Bytes { data, offsets } => {
                let base = offsets[rows.start];
                let data = data[base as usize..offsets[rows.end] as usize].to_vec();
                Values::Bytes { data, offsets: offsets[rows.start..=rows.end].iter().map(|o| o - base).collect() }
            }
        }
    }
    /// Number of entries.
    pub fn len(&self) -> usize {
        match self {
            Values::F64(v) => v.len(),
            Values::I64(v) => v.len(),
            Values::Bool(v) => v.len(),
            Values::Bytes { offsets, .. } => offsets.len().saturating_sub(1),
        }
    }
    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn view(&self) -> ColumnData<'_> {
        match self {
            Values::F64(v) => ColumnData::f64(v),
            Values::I64(v) => ColumnData::i64(v),
            Values::Bool(v) => ColumnData::bool(v),
            Values::Bytes { data, offsets } => ColumnData::Bytes(BytesColumn::new(data, offsets)),
        }
    }
}

/// The memory the input tables of one run may take: what the method's working copies leave of
/// the memory limit. A plugin may hold [`quiver_sdk::WORKING_COPIES`] copies of its inputs and
/// refuses inputs larger than the limit allows for them; the host applies the same rule while it
/// reads, so that a request too large is refused before the tables fill the memory, not after.
#[derive(Clone, Debug)]
pub struct InputBudget {
    /// The memory limit.
    limit: f64,
    /// The bytes the tables read so far take.
    taken: f64,
}

impl InputBudget {
    /// The budget of the limit in force (`--max-memory`, `QUIVER_MAX_MEMORY`, else 80% of the
    /// machine's memory).
    pub fn from_limit() -> Self {
        let limit = quiver_sdk::memory::limit() as f64;
        InputBudget { limit, taken: 0.0 }
    }
    /// A budget of `bytes` for the tables themselves (tests).
    pub fn with_bytes(bytes: f64) -> Self {
        InputBudget { limit: bytes * quiver_sdk::WORKING_COPIES, taken: 0.0 }
    }
    /// Whether tables of `bytes` more fit; the error names the table, its file and, while a file
    /// is being read, the row reached.
    pub fn check(&self, bytes: f64, table: &str, path: &Path, at_row: Option<usize>) -> Result<(), InputError> {
        if bytes <= self.left_bytes() {
            return Ok(());
        }
        let copies = quiver_sdk::WORKING_COPIES;
        let human = quiver_sdk::memory::human;
        Err(InputError::File {
            table: table.into(),
            path: path.into(),
            reason: format!(
                "its values{} take {}, and with the method's working copies ({copies}x) the inputs need {} of \
                 memory, past the limit of {} (set with --max-memory or {})",
                at_row.map_or(String::new(), |r| format!(" (up to row {r}, where reading stopped)")),
                human(bytes),
                human((self.taken + bytes) * copies),
                human(self.limit),
                quiver_sdk::memory::MAX_MEMORY_ENV
            ),
        })
    }
    /// The bytes left for tables.
    pub fn left_bytes(&self) -> f64 {
        self.limit / quiver_sdk::WORKING_COPIES - self.taken
    }
    /// Take `bytes` for a table read (see [`InputBudget::check`]).
    pub fn take(&mut self, bytes: f64, table: &str, path: &Path, at_row: Option<usize>) -> Result<(), InputError> {
        self.check(bytes, table, path, at_row)?;
        self.taken += bytes;
        Ok(())
    }
}

/// An owned table with a role name and named columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Role (`calibration`, `test`, ...).
    pub role: String,
    /// Columns, in file order.
    pub columns: Vec<(String, Values)>,
    /// Number of rows.
    pub nrows: usize,
    /// Columns of the file that were not kept (non-numeric and not used by the method).
    pub ignored: Vec<String>,
    /// The file line of each row, where that is not simply row + 2 (blank lines, quoted fields
    /// spanning lines); `None` otherwise and for tables built in memory.
    pub lines: Option<Vec<u64>>,
    /// Whether the rows came from a text file's lines (CSV): errors then name the line too;
    /// `.npy`, Parquet and tables built in memory have rows, not lines.
    pub from_text: bool,
    /// The rows of the source before this table's first (a row group of a Parquet file after
    /// others): messages count rows from the source's first row.
    pub first_row: usize,
}

impl Table {
    /// An empty table with `role`, to fill with [`Table::with_f64`] and friends.
    pub fn new(role: &str) -> Self {
        Table {
            role: role.into(),
            columns: Vec::new(),
            nrows: 0,
            ignored: Vec::new(),
            lines: None,
            from_text: false,
            first_row: 0,
        }
    }
    /// The file line of 0-based `row` (the header is line 1).
    pub fn line_of(&self, row: usize) -> usize {
        self.lines.as_ref().and_then(|l| l.get(row)).map_or(row + 2, |&l| l as usize)
    }
    fn push(mut self, name: &str, v: Values) -> Self {
        if self.columns.is_empty() {
            self.nrows = v.len();
        }
        self.columns.push((name.into(), v));
        self
    }
    /// Add an f64 column.
    pub fn with_f64(self, name: &str, v: Vec<f64>) -> Self {
        self.push(name, Values::F64(v))
    }
    /// Add an i64 column.
    pub fn with_i64(self, name: &str, v: Vec<i64>) -> Self {
        self.push(name, Values::I64(v))
    }
    /// Add a bool column.
    pub fn with_bool(self, name: &str, v: Vec<bool>) -> Self {
        self.push(name, Values::Bool(v))
    }
    /// Add a column of byte strings, one per row.
    pub fn with_bytes(self, name: &str, rows: &[&[u8]]) -> Self {
        let mut offsets = Vec::with_capacity(rows.len() + 1);
        offsets.push(0);
        let mut data = Vec::new();
        for r in rows {
            data.extend_from_slice(r);
            offsets.push(data.len() as u64);
        }
        self.push(name, Values::Bytes { data, offsets })
    }
    /// Add a text column (labels), one string per row, as UTF-8 bytes.
    pub fn with_text<S: AsRef<str>>(self, name: &str, rows: &[S]) -> Self {
        let rows: Vec<&[u8]> = rows.iter().map(|r| r.as_ref().as_bytes()).collect();
        self.with_bytes(name, &rows)
    }
    /// The rows `rows` of this table as a table of their own (a copy; a partition of it, in tests
    /// of methods computed by parts). Errors in it count rows from this table's first.
    pub fn rows(&self, rows: std::ops::Range<usize>) -> Table {
        Table {
            role: self.role.clone(),
            columns: self.columns.iter().map(|(n, v)| (n.clone(), v.rows(rows.clone()))).collect(),
            nrows: rows.len(),
            ignored: self.ignored.clone(),
            lines: self.lines.as_ref().map(|l| l[rows.clone()].to_vec()),
            from_text: self.from_text,
            first_row: self.first_row + rows.start,
        }
    }
    /// Append the rows of `more`, a table with the same columns in the same order and of the same
    /// kinds (a table built a part at a time); another layout is an error and changes nothing.
    pub fn append(&mut self, more: Table) -> Result<(), String> {
        let same = self.columns.len() == more.columns.len()
            && self.columns.iter().zip(&more.columns).all(|((a, x), (b, y))| a == b && x.appends(y));
        if !same {
            return Err(format!("table '{}': the rows to append have other columns", self.role));
        }
        for ((_, v), (_, w)) in self.columns.iter_mut().zip(more.columns) {
            v.extend(w);
        }
        self.nrows += more.nrows;
        self.lines = None;
        Ok(())
    }
    /// A column by name.
    pub fn column(&self, name: &str) -> Option<&Values> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
    /// The column views (borrowed; keep alive while the [`TableView`] is used).
    pub fn column_views(&self) -> Vec<ColumnView<'_>> {
        self.columns.iter().map(|(n, v)| ColumnView::new(n, v.view())).collect()
    }
    /// A table view over `columns` (from [`Table::column_views`]).
    pub fn view<'a>(&'a self, columns: &'a [ColumnView<'a>]) -> TableView<'a> {
        TableView::new(&self.role, self.nrows, columns)
    }

    /// Check against `spec`: not empty, equal lengths, required columns present with the right
    /// types, values finite where the spec requires it. Errors name table, column, row and line.
    pub fn validate(&self, spec: &TableSpec) -> Result<(), InputError> {
        let columns = self.column_views();
        let line_of = |row| self.line_of(row);
        let checked = check_table(
            &self.view(&columns),
            spec,
            &self.ignored,
            self.from_text.then_some(&line_of as &dyn Fn(usize) -> usize),
        );
        match checked {
            Err(InputError::Cell { table, column, row, reason }) => {
                Err(InputError::Cell { table, column, row: row + self.first_row, reason })
            }
            other => other,
        }
    }

    /// Convert columns to the kinds `spec` declares (i64 → f64 where f64 is wanted; 0/1 → bool).
    pub fn coerce(&mut self, spec: &TableSpec) {
        for (name, values) in self.columns.iter_mut() {
            let Some(col) = spec_for(spec, name) else { continue };
            match (col.kind, &*values) {
                (ColumnKind::F64 | ColumnKind::F32, Values::I64(v)) => {
                    *values = Values::F64(v.iter().map(|&x| x as f64).collect())
                }
                (ColumnKind::Bool, Values::I64(v)) if v.iter().all(|&x| x == 0 || x == 1) => {
                    *values = Values::Bool(v.iter().map(|&x| x == 1).collect())
                }
                _ => {}
            }
        }
    }
}

/// Check a borrowed table (columns that live elsewhere, e.g. NumPy arrays) against `spec`, as
/// [`Table::validate`] does for an owned one. There are no file lines: errors name the table,
/// column and 1-based row.
pub fn validate_view(view: &TableView<'_>, spec: &TableSpec) -> Result<(), InputError> {
    check_table(view, spec, &[], None)
}

/// The one validation of a table against its spec, owned or borrowed; `line_of` gives a row's
/// file line where the table came from a file.
fn check_table(
    view: &TableView<'_>,
    spec: &TableSpec,
    ignored: &[String],
    line_of: Option<&dyn Fn(usize) -> usize>,
) -> Result<(), InputError> {
    let role = view.role.as_str();
    if view.nrows == 0 {
        return Err(InputError::Empty { table: role.into() });
    }
    let columns = view.columns.as_slice();
    for c in columns {
        if c.data.len() != view.nrows {
            return Err(InputError::Length {
                table: role.into(),
                column: c.name.to_string(),
                len: c.data.len(),
                nrows: view.nrows,
            });
        }
    }
    for (k, c) in columns.iter().enumerate() {
        if columns[..k].iter().any(|d| d.name == c.name) {
            return Err(InputError::Duplicate { table: role.into(), column: c.name.to_string() });
        }
    }
    for col in spec.columns.iter() {
        let matches: Vec<&ColumnView<'_>> =
            columns.iter().filter(|c| spec_for(spec, c.name.as_str()).is_some_and(|s| std::ptr::eq(s, col))).collect();
        if matches.is_empty() && col.required {
            let names: Vec<&str> =
                columns.iter().map(|c| c.name.as_str()).chain(ignored.iter().map(String::as_str)).collect();
            // a header read as one column with ';' or tabs in it: the file uses another delimiter
            let hint = match names.iter().find_map(|n| [';', '\t', '|'].into_iter().find(|d| n.contains(*d))) {
                Some(d) => format!(
                    "; the header was read with ',' between columns but contains {d:?}: save the file as comma-separated"
                ),
                None => String::new(),
            };
            return Err(InputError::MissingColumn {
                table: role.into(),
                column: if col.prefix { format!("{}*", col.name) } else { col.name.to_string() },
                found: if names.is_empty() { "no columns".to_string() } else { names.join(", ") } + &hint,
            });
        }
        for c in matches {
            let bad = |row: usize, reason: String| match line_of {
                Some(line) => InputError::Value {
                    table: role.into(),
                    column: c.name.to_string(),
                    row: row + 1,
                    line: line(row),
                    reason,
                },
                None => InputError::Cell { table: role.into(), column: c.name.to_string(), row: row + 1, reason },
            };
            match (col.kind, c.data) {
                (ColumnKind::F64 | ColumnKind::F32, ColumnData::F64(v)) => {
                    if !col.allow_nonfinite {
                        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                            return Err(bad(i, format!("value {} is not finite", v[i])));
                        }
                    }
                }
                (ColumnKind::F32, ColumnData::F32(v)) => {
                    if !col.allow_nonfinite {
                        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                            return Err(bad(i, format!("value {} is not finite", v[i])));
                        }
                    }
                }
                (ColumnKind::F64 | ColumnKind::F32, ColumnData::I64(_)) => {}
                (ColumnKind::I64, ColumnData::I64(_)) | (ColumnKind::Bool, ColumnData::Bool(_)) => {}
                (ColumnKind::Bytes, ColumnData::Bytes(b)) => {
                    if !b.is_valid() {
                        return Err(InputError::Cell {
                            table: role.into(),
                            column: c.name.to_string(),
                            row: 1,
                            reason: "its offsets do not describe rows inside its bytes".into(),
                        });
                    }
                }
                (ColumnKind::Bool, ColumnData::I64(v)) => {
                    if let Some(i) = v.iter().position(|&x| x != 0 && x != 1) {
                        return Err(bad(i, format!("value {} is not 0 or 1", v[i])));
                    }
                }
                (kind, data) => {
                    return Err(InputError::Kind {
                        table: role.into(),
                        column: c.name.to_string(),
                        expected: kind.name(),
                        found: data.kind().name(),
                    })
                }
            }
        }
    }
    Ok(())
}

/// The type `spec` declares for column `name` (an exact name, else the longest matching prefix),
/// `None` for a column the method does not read.
pub fn column_kind(spec: &TableSpec, name: &str) -> Option<ColumnKind> {
    spec_for(spec, name).map(|c| c.kind)
}

/// Whether an empty cell of column `name` means "none" (read as −1: `a_next` on a last row).
pub(crate) fn empty_means_none(spec: &TableSpec, name: &str) -> bool {
    spec_for(spec, name).is_some_and(|c| c.empty_means_none)
}

/// The column spec that governs column `name`: the one naming it exactly, else the longest
/// prefix that matches it (so `s_next` is not read as one of the `s_*` columns when both are
/// declared).
fn spec_for<'a>(spec: &'a TableSpec, name: &str) -> Option<&'a ColumnSpec> {
    spec.columns
        .iter()
        .find(|c| !c.prefix && c.name.as_str() == name)
        .or_else(|| spec.columns.iter().filter(|c| c.prefix && column_matches(c, name)).max_by_key(|c| c.name.len()))
}

fn column_matches(spec: &ColumnSpec, name: &str) -> bool {
    if spec.prefix {
        name.starts_with(spec.name.as_str())
    } else {
        name == spec.name.as_str()
    }
}

/// Read a CSV file with a header row into a table named `role`. Columns the `spec` names are
/// parsed as its kinds; other columns are kept when every value is numeric and listed in
/// [`Table::ignored`] otherwise. Errors name the table, column, row and line.
pub fn read_csv(path: &Path, role: &str, spec: Option<&TableSpec>) -> Result<Table, InputError> {
    read_csv_within(path, role, spec, &mut InputBudget::from_limit())
}

/// [`read_csv`], taking the table's memory from `budget`: the values read so far are checked
/// against it as the rows come in, so a file too large for the limit is refused when the limit
/// is reached, not after it has been read.
pub fn read_csv_within(
    path: &Path,
    role: &str,
    spec: Option<&TableSpec>,
    budget: &mut InputBudget,
) -> Result<Table, InputError> {
    let file_err = |reason: String| InputError::File { table: role.into(), path: path.into(), reason };
    // one handle for the checks and the reader: a binary file (NUL bytes in its first 64 KiB) is
    // refused at once, before the reader would take all of it as one enormous header field; the
    // file's length and whether it ends with a newline give each record's line (below). A pipe or
    // a FIFO (`/dev/stdin`) cannot seek: it is read into memory first, within the budget.
    let (mut reader, file_len, ends_with_newline, crlf) = {
        use std::io::{Read, Seek, SeekFrom};
        let io = |e: std::io::Error| file_err(e.to_string());
        let mut f = std::fs::File::open(path).map_err(io)?;
        let meta = f.metadata().map_err(io)?;
        let (source, file_len, ends_with_newline): (Box<dyn Read>, u64, bool) = if meta.is_file() {
            let file_len = meta.len();
            let mut last = [0u8; 1];
            let ends_with_newline = file_len == 0
                || (f.seek(SeekFrom::End(-1)).is_ok() && f.read_exact(&mut last).is_ok() && last[0] == b'\n');
            f.seek(SeekFrom::Start(0)).map_err(io)?;
            (Box::new(f), file_len, ends_with_newline)
        } else {
            // the text of a stream is held while it is parsed: at most what the budget allows
            let cap = budget.left_bytes().min(u64::MAX as f64) as u64;
            let mut text = Vec::new();
            (&mut f).take(cap.saturating_add(1)).read_to_end(&mut text).map_err(io)?;
            if text.len() as u64 > cap {
                budget.check(text.len() as f64, role, path, None)?;
            }
            let ends_with_newline = text.last().is_none_or(|&b| b == b'\n');
            let len = text.len() as u64;
            (Box::new(std::io::Cursor::new(text)), len, ends_with_newline)
        };
        let mut source = std::io::BufReader::with_capacity(1 << 16, source);
        let head = std::io::BufRead::fill_buf(&mut source).map_err(io)?;
        if let Some(at) = head.iter().position(|&b| b == 0) {
            return Err(file_err(format!(
                "not a text CSV file (a NUL byte at offset {at}); give a CSV with a header row, or a .npy matrix as \
                 FILE.npy:NAME1,NAME2,..."
            )));
        }
        // lines ended by CR LF (files written on Windows, and by Python's csv module): the reader
        // stops a record at the CR, so the LF is counted only when the next record is read
        let crlf = head.iter().position(|&b| b == b'\n').is_some_and(|at| at > 0 && head[at - 1] == b'\r');
        (csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(source), file_len, ends_with_newline, crlf)
    };
    let headers: Vec<String> =
        reader.headers().map_err(|e| file_err(e.to_string()))?.iter().map(String::from).collect();
    // by hash: a header of 10^5 columns costs 10^5 lookups, not 10^10 comparisons
    let mut seen = std::collections::HashSet::with_capacity(headers.len());
    if let Some(dup) = headers.iter().find(|h| !seen.insert(h.as_str())) {
        return Err(file_err(format!("column '{dup}' appears twice in the header")));
    }
    if let Some(k) = headers.iter().position(String::is_empty) {
        return Err(file_err(format!("column {} of the header has no name", k + 1)));
    }
    // each column parsed as it is read (no copy of the text is kept): the spec's kind, or, for a
    // column the method does not name, numbers until a field is not one (then it is ignored)
    enum Col {
        F64(Vec<f64>),
        /// ids, and whether an empty cell means "none" (-1)
        I64(Vec<i64>, bool),
        Bool(Vec<bool>),
        /// a cell's text as its bytes
        Bytes(Vec<u8>, Vec<u64>),
        Other(Vec<f64>),
        Ignored,
    }
    /// The memory the values read so far take.
    fn values_bytes(cols: &[Col]) -> f64 {
        cols.iter()
            .map(|c| match c {
                Col::F64(v) | Col::Other(v) => v.len() * 8,
                Col::I64(v, _) => v.len() * 8,
                Col::Bool(v) => v.len(),
                Col::Bytes(d, o) => d.len() + 8 * o.len(),
                Col::Ignored => 0,
            } as f64)
            .sum()
    }
    let mut cols: Vec<Col> = headers
        .iter()
        .map(|name| match spec.and_then(|s| spec_for(s, name)) {
            Some(c) => match c.kind {
                ColumnKind::F64 | ColumnKind::F32 => Col::F64(Vec::new()),
                ColumnKind::I64 => Col::I64(Vec::new(), c.empty_means_none),
                ColumnKind::Bool => Col::Bool(Vec::new()),
                ColumnKind::Bytes => Col::Bytes(Vec::new(), vec![0]),
            },
            None => Col::Other(Vec::new()),
        })
        .collect();
    // a record's line, from where the reader stands after it (the csv crate's own record
    // positions count blank lines before a record as part of it): its last line less the
    // newlines inside its quoted fields; the last line holds no terminator only at the end of a
    // file that does not end with one
    let mut lines: Option<Vec<u64>> = None;
    let mut record = csv::StringRecord::new();
    let mut row = 0usize;
    loop {
        // the values so far, against the budget, every 4096 rows
        if row % 4096 == 0 && row > 0 {
            budget.check(values_bytes(&cols), role, path, Some(row))?;
        }
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(row as u64 + 2, |p| p.line());
                return Err(file_err(match e.kind() {
                    csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                        format!("row {} (line {line}) has {len} fields, but the header has {expected_len}", row + 1)
                    }
                    _ => format!("row {} (line {line}): {e}", row + 1),
                }));
            }
        }
        let after = reader.position();
        let inside: u64 = record.iter().map(|f| f.bytes().filter(|&b| b == b'\n').count() as u64).sum();
        let unterminated = after.byte() >= file_len && !ends_with_newline;
        // the reader has counted this record's own line end unless there is none (the file's last
        // line, unterminated) or it is a CR LF whose LF comes with the next read
        let counted = !unterminated && !crlf;
        let line = (after.line() - inside).saturating_sub(u64::from(counted)).max(2);
        match &mut lines {
            Some(l) => l.push(line),
            None if line != row as u64 + 2 => {
                let mut l: Vec<u64> = (0..row as u64).map(|r| r + 2).collect();
                l.push(line);
                lines = Some(l);
            }
            None => {}
        }
        for ((c, field), name) in cols.iter_mut().zip(record.iter()).zip(&headers) {
            let bad = |reason: String| InputError::Value {
                table: role.into(),
                column: name.clone(),
                row: row + 1,
                line: line as usize,
                reason,
            };
            match c {
                Col::F64(v) => v.push(parse_f64(field).map_err(bad)?),
                Col::I64(v, none) => {
                    v.push(if *none && field.is_empty() { -1 } else { parse_i64(field).map_err(bad)? })
                }
                Col::Bool(v) => v.push(parse_bool(field).map_err(bad)?),
                Col::Bytes(data, offsets) => {
                    data.extend_from_slice(field.as_bytes());
                    offsets.push(data.len() as u64);
                }
                Col::Other(v) => match parse_f64(field) {
                    Ok(x) => v.push(x),
                    Err(_) => *c = Col::Ignored,
                },
                Col::Ignored => {}
            }
        }
        row += 1;
    }
    budget.take(values_bytes(&cols), role, path, None)?;
    let mut table = Table {
        role: role.into(),
        columns: Vec::new(),
        nrows: row,
        ignored: Vec::new(),
        lines,
        from_text: true,
        first_row: 0,
    };
    for (name, col) in headers.into_iter().zip(cols) {
        let values = match col {
            Col::F64(v) | Col::Other(v) => Values::F64(v),
            Col::I64(v, _) => Values::I64(v),
            Col::Bool(v) => Values::Bool(v),
            Col::Bytes(data, offsets) => Values::Bytes { data, offsets },
            Col::Ignored => {
                table.ignored.push(name);
                continue;
            }
        };
        table.columns.push((name, values));
    }
    Ok(table)
}

fn parse_f64(s: &str) -> Result<f64, String> {
    if s.is_empty() {
        return Err("empty value".into());
    }
    let x = s.parse::<f64>().map_err(|_| format!("'{s}' is not a number"))?;
    // a literal too large for a double parses as ±inf: say so, rather than "inf is not finite"
    if x.is_infinite() && !s.trim_start_matches(['+', '-']).to_ascii_lowercase().starts_with("inf") {
        return Err(format!("'{s}' overflows double precision (largest magnitude about 1.8e308)"));
    }
    Ok(x)
}

fn parse_i64(s: &str) -> Result<i64, String> {
    if let Ok(v) = s.parse::<i64>() {
        return Ok(v);
    }
    match s.parse::<f64>() {
        Ok(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => Ok(x as i64),
        _ if s.is_empty() => Err("empty value".into()),
        _ => Err(format!("'{s}' is not an integer")),
    }
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "t" | "yes" | "1.0" => Ok(true),
        "0" | "false" | "f" | "no" | "0.0" => Ok(false),
        "" => Err("empty value".into()),
        _ => Err(format!("'{s}' is not a boolean (use 0/1 or true/false)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_abi::abi_stable::std_types::RVec;
    use std::io::Write;

    fn spec() -> TableSpec {
        let col = |name: &str, kind, required| ColumnSpec {
            name: name.into(),
            kind,
            required,
            prefix: false,
            allow_nonfinite: false,
            empty_means_none: false,
            doc: "".into(),
        };
        TableSpec {
            role: "calibration".into(),
            required: true,
            doc: "".into(),
            columns: RVec::from(vec![col("y", ColumnKind::F64, true), col("flag", ColumnKind::Bool, false)]),
        }
    }

    fn csv(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn reads_and_keeps_numeric_extras() {
        let f = csv("id,y,flag,extra\na,1.5,1,3\nb,2,0,4\n");
        let t = read_csv(f.path(), "calibration", Some(&spec())).unwrap();
        assert_eq!(t.nrows, 2);
        assert_eq!(t.column("y"), Some(&Values::F64(vec![1.5, 2.0])));
        assert_eq!(t.column("flag"), Some(&Values::Bool(vec![true, false])));
        assert_eq!(t.column("extra"), Some(&Values::F64(vec![3.0, 4.0])));
        assert_eq!(t.ignored, vec!["id".to_string()]);
        t.validate(&spec()).unwrap();
    }

    #[test]
    fn errors_name_table_column_row_and_line() {
        let f = csv("y\n1\n2\nabc\n");
        let e = read_csv(f.path(), "calibration", Some(&spec())).unwrap_err();
        assert_eq!(e.to_string(), "table 'calibration', column 'y', row 3 (line 4): 'abc' is not a number");
        let f = csv("y\n1\nNaN\n");
        let t = read_csv(f.path(), "calibration", Some(&spec())).unwrap();
        let e = t.validate(&spec()).unwrap_err();
        assert_eq!(e.to_string(), "table 'calibration', column 'y', row 2 (line 3): value NaN is not finite");
        let f = csv("x\n1\n");
        let t = read_csv(f.path(), "calibration", Some(&spec())).unwrap();
        assert!(matches!(t.validate(&spec()), Err(InputError::MissingColumn { .. })));
        let f = csv("y\n");
        let t = read_csv(f.path(), "calibration", Some(&spec())).unwrap();
        assert_eq!(t.validate(&spec()), Err(InputError::Empty { table: "calibration".into() }));
        let f = csv("y,y\n1,2\n");
        assert!(read_csv(f.path(), "calibration", Some(&spec())).unwrap_err().to_string().contains("twice"));
        let f = csv("y\n1\n2,3\n");
        assert!(read_csv(f.path(), "calibration", Some(&spec())).unwrap_err().to_string().contains("row 2 (line 3)"));
    }

    /// Lines ended by CR LF (Windows, Python's csv module) are numbered as LF lines are: the bad
    /// value on line 4 is named there, with or without a final line end, after a blank line, and
    /// inside a quoted field that spans lines.
    #[test]
    fn crlf_files_name_the_same_lines() {
        for (text, want) in [
            ("y\r\n1\r\n2\r\nabc\r\n", "row 3 (line 4)"),
            ("y\r\n1\r\n2\r\nabc", "row 3 (line 4)"),
            ("y\r\n1\r\n\r\nabc\r\n", "row 2 (line 4)"),
            ("y,id\r\n1,\"a\r\nb\"\r\nabc,c\r\n", "row 2 (line 4)"),
        ] {
            let f = csv(text);
            let e = read_csv(f.path(), "calibration", Some(&spec())).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let f = csv("y\r\n1\r\nNaN\r\n");
        let e = read_csv(f.path(), "calibration", Some(&spec())).unwrap().validate(&spec()).unwrap_err();
        assert_eq!(e.to_string(), "table 'calibration', column 'y', row 2 (line 3): value NaN is not finite");
    }

    #[test]
    fn borrowed_tables_are_checked_like_owned_ones_without_lines() {
        let y = [1.0, f64::NAN];
        let flag = [0i64, 2];
        let cols = [ColumnView::new("y", ColumnData::f64(&y))];
        let e = validate_view(&TableView::new("calibration", 2, &cols), &spec()).unwrap_err();
        assert_eq!(e.to_string(), "table 'calibration', column 'y', row 2: value NaN is not finite");
        let ok = [1.0, 2.0];
        let cols = [ColumnView::new("y", ColumnData::f64(&ok)), ColumnView::new("flag", ColumnData::i64(&flag))];
        let e = validate_view(&TableView::new("calibration", 2, &cols), &spec()).unwrap_err();
        assert_eq!(e.to_string(), "table 'calibration', column 'flag', row 2: value 2 is not 0 or 1");
        let cols = [ColumnView::new("y", ColumnData::f64(&ok)), ColumnView::new("y", ColumnData::f64(&ok))];
        let e = validate_view(&TableView::new("calibration", 2, &cols), &spec()).unwrap_err();
        assert_eq!(e, InputError::Duplicate { table: "calibration".into(), column: "y".into() });
        let bools = [true, false];
        let cols = [ColumnView::new("y", ColumnData::bool(&bools))];
        let e = validate_view(&TableView::new("calibration", 2, &cols), &spec()).unwrap_err();
        assert_eq!(e.to_string(), "table 'calibration', column 'y': expected f64 values, got bool");
        let cols = [ColumnView::new("y", ColumnData::f64(&ok))];
        assert!(matches!(
            validate_view(&TableView::new("calibration", 3, &cols), &spec()),
            Err(InputError::Length { .. })
        ));
        assert_eq!(
            validate_view(&TableView::new("calibration", 0, &[]), &spec()),
            Err(InputError::Empty { table: "calibration".into() })
        );
        validate_view(&TableView::new("calibration", 2, &cols), &spec()).unwrap();
    }

    #[test]
    fn lengths_must_agree() {
        let t = Table::new("calibration").with_f64("y", vec![1.0, 2.0]).with_f64("flag", vec![1.0]);
        assert!(matches!(t.validate(&spec()), Err(InputError::Length { .. })));
    }
}
