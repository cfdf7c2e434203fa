//! Host errors.

use std::path::PathBuf;
use thiserror::Error;

/// Why a plugin file could not be loaded. The other plugins still load.
#[derive(Debug, Error, Clone)]
pub enum LoadError {
    /// Not a loadable shared library at all (corrupt, wrong architecture, missing file).
    #[error("{path}: not a loadable shared library: {reason}")]
    NotALibrary {
        /// The file.
        path: PathBuf,
        /// The loader's reason.
        reason: String,
    },
    /// A shared library without the Quiver identity symbol.
    #[error("{path}: not a Quiver plugin (it has no `{symbol}` symbol)")]
    NotAPlugin {
        /// The file.
        path: PathBuf,
        /// The symbol looked for.
        symbol: &'static str,
    },
    /// Built against another Quiver ABI version.
    #[error("{path}: built against Quiver ABI {found} (SDK {sdk}), this host speaks ABI {expected}; rebuild the plugin against this Quiver")]
    AbiVersion {
        /// The file.
        path: PathBuf,
        /// Host ABI version.
        expected: String,
        /// Plugin ABI version.
        found: String,
        /// Plugin SDK version.
        sdk: String,
    },
    /// abi_stable's layout check refused it (the tail of abi_stable's report is kept).
    #[error("{path}: its interface does not match this host's (ABI {expected}); abi_stable reports:\n{tail}")]
    Incompatible {
        /// The file.
        path: PathBuf,
        /// Host ABI version.
        expected: String,
        /// Last lines of abi_stable's message.
        tail: String,
    },
    /// The root module could not be initialised.
    #[error("{path}: root module could not be loaded: {reason}")]
    RootModule {
        /// The file.
        path: PathBuf,
        /// Reason.
        reason: String,
    },
    /// The manifest is unusable (empty name: the plugin's manifest panicked).
    #[error("{path}: the plugin's manifest is broken ({reason})")]
    BadManifest {
        /// The file.
        path: PathBuf,
        /// Reason.
        reason: String,
    },
    /// Two files provide the same method.
    #[error("{path}: method '{method}' is already provided by {first}; remove one of the two files")]
    Duplicate {
        /// The second file.
        path: PathBuf,
        /// The method name.
        method: String,
        /// The file loaded first.
        first: PathBuf,
    },
}

/// A bad input table, naming the table, column and row.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum InputError {
    /// A file could not be read or parsed.
    #[error("table '{table}' ({path}): {reason}")]
    File {
        /// Role.
        table: String,
        /// File.
        path: PathBuf,
        /// Reason.
        reason: String,
    },
    /// A value could not be parsed or is not allowed.
    #[error("table '{table}', column '{column}', row {row} (line {line}): {reason}")]
    Value {
        /// Role.
        table: String,
        /// Column.
        column: String,
        /// 1-based data row.
        row: usize,
        /// Line in the CSV file (header is line 1).
        line: usize,
        /// Reason.
        reason: String,
    },
    /// A bad value in a table that came from memory, not a file (no line to name).
    #[error("table '{table}', column '{column}', row {row}: {reason}")]
    Cell {
        /// Role.
        table: String,
        /// Column.
        column: String,
        /// 1-based row.
        row: usize,
        /// Reason.
        reason: String,
    },
    /// A column of another element type than the method declares.
    #[error("table '{table}', column '{column}': expected {expected} values, got {found}")]
    Kind {
        /// Role.
        table: String,
        /// Column.
        column: String,
        /// The declared type.
        expected: &'static str,
        /// The type given.
        found: &'static str,
    },
    /// Two columns of one table have the same name.
    #[error("table '{table}': column '{column}' is given twice")]
    Duplicate {
        /// Role.
        table: String,
        /// Column.
        column: String,
    },
    /// A required column is missing.
    #[error("table '{table}' has no column '{column}' (it has: {found})")]
    MissingColumn {
        /// Role.
        table: String,
        /// Column.
        column: String,
        /// Columns found.
        found: String,
    },
    /// A table has no data rows.
    #[error("table '{table}' is empty (no data rows)")]
    Empty {
        /// Role.
        table: String,
    },
    /// A required table was not given.
    #[error("method '{method}' needs a '{table}' table (give it with --input {table}=PATH)")]
    MissingTable {
        /// Method.
        method: String,
        /// Role.
        table: String,
    },
    /// A table a step of the run cannot do without was not given (the manifest's `requires`).
    #[error(
        "method '{method}' needs a '{table}' table for its step '{step}' (give it with --input {table}=PATH); \
         nothing was run"
    )]
    StepNeedsTable {
        /// Method.
        method: String,
        /// The step.
        step: String,
        /// Role.
        table: String,
    },
    /// A table the method does not read.
    #[error("method '{method}' reads no '{table}' table (it reads: {known})")]
    UnknownTable {
        /// Method.
        method: String,
        /// Role.
        table: String,
        /// Roles it reads.
        known: String,
    },
    /// Columns of different lengths.
    #[error("table '{table}': column '{column}' has {len} values, expected {nrows}")]
    Length {
        /// Role.
        table: String,
        /// Column.
        column: String,
        /// Its length.
        len: usize,
        /// Rows.
        nrows: usize,
    },
}

/// Every error the host returns.
#[derive(Debug, Error)]
pub enum HostError {
    /// A plugin file failed to load.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// No loaded plugin provides the method.
    #[error("unknown method '{name}' (loaded: {known})")]
    UnknownMethod {
        /// Name asked for.
        name: String,
        /// Loaded methods.
        known: String,
    },
    /// The method is of another family than the handle asked for.
    #[error("method '{name}' is of family '{found}', not '{wanted}'")]
    WrongFamily {
        /// Method.
        name: String,
        /// Family wanted.
        wanted: &'static str,
        /// Family found.
        found: String,
    },
    /// A malformed parameter argument (`KEY=VALUE` without `=`, a name given twice).
    #[error("{0}")]
    Parameter(String),
    /// `cuda` was asked of a method whose manifest lists no CUDA path.
    #[error("method '{method}' has no CUDA path (its devices: {devices}); use --device cpu or --device auto")]
    NoCudaPath {
        /// Method.
        method: String,
        /// The devices its manifest lists.
        devices: String,
    },
    /// A bad input table.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The plugin returned an error (panics inside plugins arrive here as kind `Panic`); a
    /// numerical failure says so first, so no one reads it as a verdict on the data.
    #[error("{method}: {}{message}", if *kind == quiver_abi::ErrorKind::Numerical { "numerical failure on valid input: " } else { "" })]
    Plugin {
        /// Method.
        method: String,
        /// Error class.
        kind: quiver_abi::ErrorKind,
        /// Message.
        message: String,
    },
    /// The result JSON from the plugin did not parse.
    #[error("{method}: result is not valid JSON: {reason}")]
    BadResult {
        /// Method.
        method: String,
        /// Reason.
        reason: String,
    },
}

impl HostError {
    /// The plugin error kind, when this is a plugin error.
    pub fn plugin_kind(&self) -> Option<quiver_abi::ErrorKind> {
        match self {
            HostError::Plugin { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}
