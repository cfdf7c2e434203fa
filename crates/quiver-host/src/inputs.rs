//! Inputs from the command line: `KEY=VALUE` parameters typed by the manifest, `ROLE=PATH`
//! tables (CSV or `.npy`), checked against the manifest.

use super::*;

/// Turn `KEY=VALUE` strings into a JSON parameter object, typed by the manifest (numbers for
/// float and integer parameters, `true`/`false` for booleans, text otherwise; `inf`/`-inf`
/// as the strings JSON needs). Text that does not parse is passed on as text, so the plugin's
/// SDK — the one place parameters are checked — refuses it with the message every caller sees:
/// `parameter 'q' = "lots" must be a number in (0, 1)`. Unknown names are refused the same way.
pub fn params_from_pairs(manifest: &Manifest, pairs: &[String]) -> Result<Map<String, Value>, HostError> {
    let mut out = Map::new();
    for pair in pairs {
        let (key, raw) =
            pair.split_once('=').ok_or_else(|| HostError::Parameter(format!("'{pair}' is not KEY=VALUE")))?;
        let (key, raw) = (key.trim(), raw.trim());
        let kind = manifest.params.iter().find(|p| p.name.as_str() == key).map(|p| p.kind);
        let value = match kind {
            Some(ParamKind::Float) => match raw.to_ascii_lowercase().as_str() {
                "inf" | "+inf" | "infinity" => json!("inf"),
                "-inf" | "-infinity" => json!("-inf"),
                // integers stay integers, so messages echo the value as typed (`q = 2`, not 2.0)
                _ => match (raw.parse::<i64>(), raw.parse::<f64>()) {
                    (Ok(i), _) => json!(i),
                    (_, Ok(x)) if x.is_finite() => json!(x),
                    _ => json!(raw),
                },
            },
            Some(ParamKind::Int) => raw.parse::<i64>().map_or_else(|_| json!(raw), |x| json!(x)),
            Some(ParamKind::Bool) => raw.parse::<bool>().map_or_else(|_| json!(raw), |b| json!(b)),
            _ => json!(raw),
        };
        if out.insert(key.to_string(), value).is_some() {
            return Err(HostError::Parameter(format!("parameter '{key}' is set twice")));
        }
    }
    Ok(out)
}

/// Read `ROLE=PATH` inputs (CSV, or `.npy` with column names), typed and validated by the
/// method's manifest. Tables the
/// method does not read, and required tables that are missing, are errors.
pub fn read_inputs(manifest: &Manifest, inputs: &[(String, PathBuf)]) -> Result<Vec<Table>, HostError> {
    for (i, (role, path)) in inputs.iter().enumerate() {
        // a repeated role is a mistake, not a choice to make silently
        if let Some((_, first)) = inputs[..i].iter().find(|(r, _)| r == role) {
            let why = if manifest.step("partial").is_some() {
                String::new()
            } else {
                format!(" ('{}' is not computed by parts)", manifest.name)
            };
            return Err(HostError::Parameter(format!(
                "table '{role}' is given twice ({} and {}): give it once{why}",
                first.display(),
                path.display()
            )));
        }
    }
    let parts: Vec<PartInput> = inputs
        .iter()
        .map(|(role, path)| PartInput { role: role.clone(), path: path.clone(), row_group: None })
        .collect();
    let mut tables = read_partition(manifest, &parts)?;
    validate_tables(manifest, &mut tables)?;
    Ok(tables)
}

/// One table of one partition of a run by parts: a file, or one row group of a Parquet file.
#[derive(Debug, Clone, PartialEq)]
pub struct PartInput {
    /// The table's role.
    pub role: String,
    /// The file.
    pub path: PathBuf,
    /// The row group, for a partition that is one row group of a Parquet file.
    pub row_group: Option<usize>,
}

/// Read the tables of one partition of a run by parts, typed by the manifest: an empty file is an
/// empty table (it contributes nothing), and the checks against the manifest are the run's
/// ([`Host::run_partitioned`]).
pub fn read_partition(manifest: &Manifest, inputs: &[PartInput]) -> Result<Vec<Table>, HostError> {
    // the tables share one budget: together they must leave room for the method's working copies
    let mut budget = InputBudget::from_limit();
    let mut tables = Vec::new();
    for input in inputs {
        let spec = table_spec(manifest, &input.role)?;
        let table = match input.row_group {
            Some(g) => crate::read_parquet_within(&input.path, &input.role, spec, Some(g), &mut budget)?,
            None => read_table_within(&input.path, &input.role, spec, &mut budget)?,
        };
        tables.push(table);
    }
    Ok(tables)
}

pub(crate) fn table_spec<'m>(manifest: &'m Manifest, role: &str) -> Result<&'m quiver_abi::TableSpec, HostError> {
    Ok(manifest.tables.iter().find(|t| t.role.as_str() == role).ok_or_else(|| InputError::UnknownTable {
        method: manifest.name.to_string(),
        table: role.to_string(),
        known: manifest.tables.iter().map(|t| t.role.as_str()).collect::<Vec<_>>().join(", "),
    })?)
}

/// Read one input: a CSV file, or `PATH.npy:name1,name2,...` for a plain NumPy matrix whose
/// columns get those names.
pub fn read_table(path: &Path, role: &str, spec: &quiver_abi::TableSpec) -> Result<Table, InputError> {
    read_table_within(path, role, spec, &mut InputBudget::from_limit())
}

/// [`read_table`], taking the table's memory from `budget` ([`InputBudget`]).
pub fn read_table_within(
    path: &Path,
    role: &str,
    spec: &quiver_abi::TableSpec,
    budget: &mut InputBudget,
) -> Result<Table, InputError> {
    let text = path.to_string_lossy();
    if let Some((file, names)) = text.rsplit_once(':').filter(|(f, _)| f.ends_with(".npy")) {
        let names: Vec<String> = names.split(',').map(|s| s.trim().to_string()).collect();
        if let Some(k) = names.iter().position(String::is_empty) {
            return Err(InputError::File {
                table: role.to_string(),
                path: path.to_path_buf(),
                reason: format!("column name {} of the .npy names is empty ('{file}:NAME1,NAME2,...')", k + 1),
            });
        }
        if let Some((k, name)) = names.iter().enumerate().find(|(k, n)| names[..*k].contains(n)) {
            return Err(InputError::File {
                table: role.to_string(),
                path: path.to_path_buf(),
                reason: format!(
                    "column name '{name}' is given twice in the .npy names (names {} and {k_1})",
                    names.iter().position(|n| n == name).map_or(0, |p| p + 1),
                    k_1 = k + 1
                ),
            });
        }
        return npy::read_npy_within(Path::new(file), role, &names, budget);
    }
    if crate::is_parquet(path) {
        return crate::read_parquet_within(path, role, spec, None, budget);
    }
    if text.ends_with(".npy") {
        return Err(InputError::File {
            table: role.into(),
            path: path.into(),
            reason: "name the columns of a .npy matrix: ROLE=PATH.npy:name1,name2,...".into(),
        });
    }
    crate::table::read_csv_within(path, role, Some(spec), budget)
}

/// Check tables against the manifest (required tables present, columns, types, finiteness) and
/// coerce column types (integers where floats are wanted, 0/1 where flags are wanted).
pub fn validate_tables(manifest: &Manifest, tables: &mut [Table]) -> Result<(), HostError> {
    validate_tables_beside(manifest, tables, &[])
}

/// [`validate_tables`] for tables read beside others already validated (`beside`: the tables a
/// run by parts gives whole to every partition): a required table may be in either.
pub fn validate_tables_beside(manifest: &Manifest, tables: &mut [Table], beside: &[Table]) -> Result<(), HostError> {
    for spec in manifest.tables.iter() {
        match tables.iter_mut().find(|t| t.role == spec.role.as_str()) {
            Some(t) => {
                t.coerce(spec);
                t.validate(spec)?;
            }
            None if beside.iter().any(|t| t.role == spec.role.as_str()) => {}
            None if spec.required => {
                return Err(InputError::MissingTable {
                    method: manifest.name.to_string(),
                    table: spec.role.to_string(),
                }
                .into())
            }
            None => {}
        }
    }
    Ok(())
}
