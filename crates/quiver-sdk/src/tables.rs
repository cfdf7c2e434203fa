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
    pub fn new(views: quiver_abi::Tables<'a>) -> Self {
        Tables { views: views.as_slice() }
    }
    /// Wrap a plain slice (tests).
    pub fn from_slice(views: &'a [TableView<'a>]) -> Self {
        Tables { views }
    }
    /// The table with role `role`, or an error naming it and the roles that were given.
    pub fn get(&self, role: &str) -> Result<Table<'a>, PluginError> {
        self.opt(role).ok_or_else(|| {
            let given: Vec<&str> = self.views.iter().map(|t| t.role.as_str()).collect();
            PluginError::input(format!(
                "no '{role}' table was given (given: {})",
                if given.is_empty() { "none".to_string() } else { given.join(", ") }
            ))
        })
    }
    /// The table with role `role`, if given.
    pub fn opt(&self, role: &str) -> Option<Table<'a>> {
        self.views.iter().find(|t| t.role.as_str() == role).map(|view| Table { view })
    }
}

/// One table.
#[derive(Clone, Copy)]
pub struct Table<'a> {
    view: &'a TableView<'a>,
}

impl<'a> Table<'a> {
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
    /// An f64 column as an `ndarray` view (no copy), every value finite; an error names the table,
    /// column and 1-based row of the first bad value.
    pub fn f64(&self, name: &str) -> Result<ArrayView1<'a, f64>, PluginError> {
        self.f64_opt(name)?.ok_or_else(|| self.missing(name))
    }
    /// Like [`Table::f64`], `None` when the column is absent.
    pub fn f64_opt(&self, name: &str) -> Result<Option<ArrayView1<'a, f64>>, PluginError> {
        let Some(data) = self.raw(name) else { return Ok(None) };
        let ColumnData::F64(s) = data else {
            return Err(PluginError::input(format!(
                "table '{}', column '{name}': expected f64 values, got {}",
                self.role(),
                data.kind().name()
            )));
        };
        let s: &'a [f64] = s.as_slice();
        self.check_len(name, s.len())?;
        if let Some(row) = s.iter().position(|x| !x.is_finite()) {
            return Err(PluginError::input(format!(
                "table '{}', column '{name}', row {}: value {} is not finite",
                self.role(),
                row + 1,
                s[row]
            )));
        }
        Ok(Some(ArrayView1::from(s)))
    }
    /// An i64 column as an `ndarray` view (no copy).
    pub fn i64(&self, name: &str) -> Result<ArrayView1<'a, i64>, PluginError> {
        match self.raw(name) {
            None => Err(self.missing(name)),
            Some(ColumnData::I64(s)) => {
                self.check_len(name, s.len())?;
                Ok(ArrayView1::from(s.as_slice()))
            }
            Some(d) => Err(PluginError::input(format!(
                "table '{}', column '{name}': expected i64 values, got {}",
                self.role(),
                d.kind().name()
            ))),
        }
    }
    /// A 0/1 column as booleans. Accepts a bool column, or an i64 / f64 column of zeros and ones
    /// (an error names the first row holding anything else).
    pub fn flags(&self, name: &str) -> Result<Vec<bool>, PluginError> {
        let bad = |row: usize, v: String| {
            PluginError::input(format!(
                "table '{}', column '{name}', row {}: value {v} is not 0 or 1",
                self.role(),
                row + 1
            ))
        };
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
            Some(ColumnData::F32(_)) => {
                return Err(PluginError::input(format!(
                    "table '{}', column '{name}': expected 0/1 flags, got f32",
                    self.role()
                )))
            }
        };
        self.check_len(name, out.len())?;
        Ok(out)
    }
}
