//! Owned input tables: read from CSV (or built in code), checked against a method's manifest,
//! and viewed across the ABI without copying.

use crate::error::InputError;
use quiver_abi::{ColumnData, ColumnKind, ColumnSpec, ColumnView, TableSpec, TableView};
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
}

impl Values {
    /// Number of entries.
    pub fn len(&self) -> usize {
        match self {
            Values::F64(v) => v.len(),
            Values::I64(v) => v.len(),
            Values::Bool(v) => v.len(),
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
        }
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
}

impl Table {
    /// An empty table with `role`, to fill with [`Table::with_f64`] and friends.
    pub fn new(role: &str) -> Self {
        Table { role: role.into(), columns: Vec::new(), nrows: 0, ignored: Vec::new() }
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
    /// types, values finite where the spec requires it. Errors name table, column and row.
    pub fn validate(&self, spec: &TableSpec) -> Result<(), InputError> {
        if self.nrows == 0 {
            return Err(InputError::Empty { table: self.role.clone() });
        }
        for (name, v) in &self.columns {
            if v.len() != self.nrows {
                return Err(InputError::Length {
                    table: self.role.clone(),
                    column: name.clone(),
                    len: v.len(),
                    nrows: self.nrows,
                });
            }
        }
        for col in spec.columns.iter() {
            let matches: Vec<&(String, Values)> =
                self.columns.iter().filter(|(n, _)| spec_for(spec, n).is_some_and(|c| std::ptr::eq(c, col))).collect();
            if matches.is_empty() && col.required {
                return Err(InputError::MissingColumn {
                    table: self.role.clone(),
                    column: if col.prefix { format!("{}*", col.name) } else { col.name.to_string() },
                    found: self.columns.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", "),
                });
            }
            for (name, values) in matches {
                let bad = |row: usize, reason: String| InputError::Value {
                    table: self.role.clone(),
                    column: name.clone(),
                    row: row + 1,
                    line: row + 2,
                    reason,
                };
                match (col.kind, values) {
                    (ColumnKind::F64 | ColumnKind::F32, Values::F64(v)) => {
                        if !col.allow_nonfinite {
                            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                                return Err(bad(i, format!("value {} is not finite", v[i])));
                            }
                        }
                    }
                    (ColumnKind::F64 | ColumnKind::F32, Values::I64(_)) => {}
                    (ColumnKind::I64, Values::I64(_)) | (ColumnKind::Bool, Values::Bool(_)) => {}
                    (ColumnKind::Bool, Values::I64(v)) => {
                        if let Some(i) = v.iter().position(|&x| x != 0 && x != 1) {
                            return Err(bad(i, format!("value {} is not 0 or 1", v[i])));
                        }
                    }
                    (kind, _) => {
                        return Err(InputError::Value {
                            table: self.role.clone(),
                            column: name.clone(),
                            row: 1,
                            line: 2,
                            reason: format!("expected {} values", kind.name()),
                        })
                    }
                }
            }
        }
        Ok(())
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
    let file_err = |reason: String| InputError::File { table: role.into(), path: path.into(), reason };
    let mut reader =
        csv::ReaderBuilder::new().trim(csv::Trim::All).from_path(path).map_err(|e| file_err(e.to_string()))?;
    let headers: Vec<String> =
        reader.headers().map_err(|e| file_err(e.to_string()))?.iter().map(String::from).collect();
    if let Some(dup) = headers.iter().enumerate().find(|(i, h)| headers[..*i].contains(h)) {
        return Err(file_err(format!("column '{}' appears twice in the header", dup.1)));
    }
    let mut raw: Vec<Vec<String>> = vec![Vec::new(); headers.len()];
    for (row, record) in reader.records().enumerate() {
        let record = record.map_err(|e| file_err(format!("row {} (line {}): {e}", row + 1, row + 2)))?;
        for (c, field) in record.iter().enumerate() {
            raw[c].push(field.to_string());
        }
    }
    let nrows = raw.first().map_or(0, Vec::len);
    let mut table = Table { role: role.into(), columns: Vec::new(), nrows, ignored: Vec::new() };
    for (name, fields) in headers.into_iter().zip(raw) {
        let kind = spec.and_then(|s| spec_for(s, &name)).map(|c| c.kind);
        let bad = |row: usize, reason: String| InputError::Value {
            table: role.into(),
            column: name.clone(),
            row: row + 1,
            line: row + 2,
            reason,
        };
        let values = match kind {
            Some(ColumnKind::F64 | ColumnKind::F32) => Values::F64(parse_all(&fields, parse_f64, &bad)?),
            Some(ColumnKind::I64) => Values::I64(parse_all(&fields, parse_i64, &bad)?),
            Some(ColumnKind::Bool) => Values::Bool(parse_all(&fields, parse_bool, &bad)?),
            None => match parse_all(&fields, parse_f64, &bad) {
                Ok(v) => Values::F64(v),
                Err(_) => {
                    table.ignored.push(name);
                    continue;
                }
            },
        };
        table.columns.push((name, values));
    }
    Ok(table)
}

fn parse_all<T>(
    fields: &[String],
    parse: fn(&str) -> Result<T, String>,
    bad: &dyn Fn(usize, String) -> InputError,
) -> Result<Vec<T>, InputError> {
    fields.iter().enumerate().map(|(i, f)| parse(f).map_err(|r| bad(i, r))).collect()
}

fn parse_f64(s: &str) -> Result<f64, String> {
    if s.is_empty() {
        return Err("empty value".into());
    }
    s.parse::<f64>().map_err(|_| format!("'{s}' is not a number"))
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

    #[test]
    fn lengths_must_agree() {
        let t = Table::new("calibration").with_f64("y", vec![1.0, 2.0]).with_f64("flag", vec![1.0]);
        assert!(matches!(t.validate(&spec()), Err(InputError::Length { .. })));
    }
}
