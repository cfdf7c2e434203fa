//! The Quiver host: finds plugin files, loads them through the stable ABI, keeps a process-wide
//! registry, validates inputs against each method's manifest, and runs any method's steps by name
//! ([`Estimator`], [`Host::run`]) — whatever its family: the host knows no family.
//!
//! Loading a file: (0) it is parsed without loading ([`check_object_file`]): every segment lies
//! inside the file, and its dynamic symbol table exports the C-ABI identity symbol
//! ([`quiver_abi::IDENTITY_SYMBOL`]) — a library without it is not a Quiver plugin and is never
//! loaded, so its initialisers never run; (1) `libloading` opens it and calls the identity
//! function: one built against another ABI version is refused with both versions in one line; (2) abi_stable checks
//! type layouts and loads the root module (`lib_header_from_path(..).init_root_module()`, never
//! `load_from_file`); (3) the manifest is read and the method name checked for duplicates.
//! A file that fails is recorded in [`Host::failures`]; the others still load. Libraries are never
//! unloaded.
//!
//! One concern a file: `loading` (the search path, the checks, the registry's lookups), `inputs`
//! (`KEY=VALUE` parameters, `ROLE=PATH` tables), `table`, `npy`, `parquet_input` and `parquet_parts` (reading and
//! validating tables; a Parquet file streamed in slices), `run` (the estimator handle, the device contract, one-call runs),
//! `partitioned` (runs by parts: partial, merge, finish; docs/scale.md), `streams` (runs by parts
//! on several workers), `output` (typed arrays and
//! JSON), `progress` (the observer), `error`. Their public items are re-exported here.

mod allocator;
pub mod error;
mod inputs;
mod loading;
pub mod npy;
mod output;
mod parquet_input;
mod parquet_parts;
mod partitioned;
mod progress;
mod run;
mod streams;
pub mod table;

pub use allocator::retain_freed_memory;
pub use inputs::*;
pub use loading::*;
pub use output::*;
pub use parquet_input::{is_parquet, parquet_row_groups, read_parquet_within, values_of_arrow};
pub use parquet_parts::{cut_anywhere_roles, ParquetParts, SLICE_ROWS};
pub use partitioned::{whole_roles, Finished, Merger};
pub use progress::*;
pub use run::*;
pub use streams::{PartitionStreams, Partitions};

pub use error::{HostError, InputError, LoadError};
pub use quiver_abi::{
    Bound, Device, DeviceRequest, ErrorKind, Manifest, ParamKind, ParamSpec, RunContext, StepOutput, StepSpec,
    TableSpec, ABI_VERSION,
};
pub use table::{column_kind, read_csv, read_csv_within, validate_view, InputBudget, Table, Values};

pub use quiver_abi::{BytesColumn, ColumnData, ColumnKind, ColumnView, TableView};
use quiver_abi::{PluginIdentity, PluginModRef};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// Environment variable with plugin folders (separated like `PATH`).
pub const PLUGIN_PATH_ENV: &str = "QUIVER_PLUGIN_PATH";

/// A loaded plugin.
#[derive(Clone)]
pub struct LoadedPlugin {
    /// The file it came from.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// The SDK version it was built with.
    pub sdk_version: String,
    module: PluginModRef,
}

impl LoadedPlugin {
    /// Method name.
    pub fn name(&self) -> &str {
        self.manifest.name.as_str()
    }
}

/// The registry of loaded plugins, and the files that failed.
#[derive(Default, Clone)]
pub struct Host {
    plugins: Vec<LoadedPlugin>,
    failures: Vec<LoadError>,
    searched: Vec<PathBuf>,
}
