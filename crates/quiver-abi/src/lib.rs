//! The stable ABI between the Quiver host and its estimator plugins.
//!
//! This is the only crate of the workspace that names `abi_stable` (the SDK re-exports what plugin
//! authors need). Everything that crosses the boundary is defined here:
//!
//! * [`PluginIdentity`]: a tiny C-ABI value every plugin exports under [`IDENTITY_SYMBOL`], read by
//!   the host with `libloading` *before* abi_stable's layout checks, so that a file that is not a
//!   Quiver plugin, or one built against another ABI version, gets a one-line message.
//! * Data views ([`TableView`], [`ColumnView`], [`ColumnData`]): borrowed, typed, named columns.
//! * The [`Manifest`]: what a method is, its family (a label), parameters, tables, steps and
//!   guarantee.
//! * One estimator object for every family ([`EstimatorObject`]): named steps that read tables
//!   and return a [`StepOutput`] (a JSON summary and named typed arrays).
//! * The root module [`PluginMod`], a prefix type that can grow by appending fields after its
//!   `last_prefix_field`.
//!
//! Rules (see `docs/abi.md`): only `abi_stable` types and `#[repr(C)]` values cross the boundary;
//! every entry point catches panics (the SDK does this); libraries are never unloaded; a new
//! capability is data (a step named in the manifest, a key of [`Manifest::properties_json`], a
//! named [`ErrorKind`] code) or a field after a prefix type's `last_prefix_field` — never a change
//! of the layout of what exists.
#![allow(non_local_definitions)]

pub use abi_stable;

mod data;
mod error;
mod estimator;
mod manifest;

pub use data::*;
pub use error::*;
pub use estimator::*;
pub use manifest::*;

use abi_stable::{
    declare_root_module_statics, library::RootModule, package_version_strings, sabi_types::VersionStrings,
    std_types::RStr, StableAbi,
};

/// Version of the Quiver plugin ABI. The host refuses a plugin whose major or minor differs
/// (while the major is 0, the minor is the breaking number, as in Cargo's semver rules).
pub const ABI_VERSION: AbiVersion = AbiVersion { major: 0, minor: 4 };

/// Name of the C-ABI symbol (an `extern "C" fn() -> PluginIdentity`) every plugin exports.
pub const IDENTITY_SYMBOL: &str = "quiver_plugin_identity";

/// Magic number in [`PluginIdentity::magic`]: ASCII "QUIVERPL".
pub const IDENTITY_MAGIC: u64 = 0x5155_4956_4552_504C;

/// An ABI version, `major.minor`.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbiVersion {
    /// Major version.
    pub major: u32,
    /// Minor version (breaking while `major == 0`).
    pub minor: u32,
}

impl AbiVersion {
    /// Whether a plugin speaking `other` can be loaded by a host speaking `self`.
    pub fn compatible_with(&self, other: &AbiVersion) -> bool {
        self.major == other.major && (self.major != 0 || self.minor == other.minor)
    }
}

impl std::fmt::Display for AbiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// What [`IDENTITY_SYMBOL`] returns: plain C data, readable whatever the plugin's abi_stable build.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PluginIdentity {
    /// Always [`IDENTITY_MAGIC`].
    pub magic: u64,
    /// The Quiver ABI version the plugin was compiled against.
    pub abi: AbiVersion,
    /// NUL-terminated, `'static` version string of the SDK the plugin was built with.
    pub sdk_version: *const std::ffi::c_char,
}

/// Loading a plugin's root module with abi_stable's layout and version checks.
pub mod loader {
    use super::PluginModRef;
    use abi_stable::library::{lib_header_from_path, LibraryError};
    use std::path::Path;

    /// Why abi_stable refused a library.
    #[derive(Debug)]
    pub enum LoadFailure {
        /// The interface (type layouts) differs from this host's.
        Incompatible(String),
        /// Anything else (not a library, no root module symbol, ...).
        Other(String),
    }

    /// Load and check the root module of the library at `path`.
    ///
    /// Uses `lib_header_from_path(..).init_root_module()` for each file: abi_stable's
    /// `RootModule::load_from_file` caches one module per root-module type and would return the
    /// first plugin for every file.
    pub fn load_root_module(path: &Path) -> Result<PluginModRef, LoadFailure> {
        let classify = |e: LibraryError| match e {
            LibraryError::AbiInstability(_) | LibraryError::IncompatibleVersionNumber { .. } => {
                LoadFailure::Incompatible(e.to_string())
            }
            other => LoadFailure::Other(other.to_string()),
        };
        let header = lib_header_from_path(path).map_err(classify)?;
        header.init_root_module::<PluginModRef>().map_err(classify)
    }
}

// ---------------------------------------------------------------------------------------------
// Root module
// ---------------------------------------------------------------------------------------------

/// The root module every plugin exports. A prefix type: new fields go after `create`, which is
/// the `last_prefix_field`; their accessors return `Option`, and a host reading an older plugin
/// that lacks them gets `None` (`missing_field(option)`).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(option))]
pub struct PluginMod {
    /// The method's manifest. Never fails; panics are caught by the SDK and give an empty name.
    pub manifest: extern "C" fn() -> Manifest,
    /// Construct an estimator from parameters (a JSON object) and the run context.
    #[sabi(last_prefix_field)]
    pub create: extern "C" fn(params_json: RStr<'_>, ctx: RunContext) -> PluginResult<EstimatorBox>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "quiver_plugin";
    const NAME: &'static str = "quiver_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_version_compat_rules() {
        let v = |major, minor| AbiVersion { major, minor };
        assert!(v(0, 1).compatible_with(&v(0, 1)));
        assert!(!v(0, 1).compatible_with(&v(0, 2)));
        assert!(v(1, 1).compatible_with(&v(1, 4)));
        assert!(!v(1, 1).compatible_with(&v(2, 1)));
    }

    #[test]
    fn root_symbol_is_the_one_xtask_checks() {
        // xtask checks built plugins for this symbol without depending on abi_stable
        assert_eq!(abi_stable::library::ROOT_MODULE_LOADER_NAME, "_1as_0lib_1header_0root_bmodule_bloader");
    }

    #[test]
    fn error_kinds_are_named_and_open() {
        assert_eq!(format!("{:?}", ErrorKind::Numerical), "Numerical");
        assert_eq!(format!("{:?}", ErrorKind(200)), "Unknown(200)");
        assert!(matches!(ErrorKind(1), ErrorKind::InvalidParameter));
    }

    #[test]
    fn bytes_columns_check_their_offsets() {
        let data = b"abcde";
        assert!(BytesColumn::new(data, &[0, 2, 5]).is_valid());
        assert_eq!(BytesColumn::new(data, &[0, 2, 5]).get(1), Some(&b"cde"[..]));
        assert!(!BytesColumn::new(data, &[0, 3, 2, 5]).is_valid());
        assert!(!BytesColumn::new(data, &[0, 2]).is_valid());
        assert!(!BytesColumn::new(data, &[]).is_valid());
    }

    #[test]
    fn named_arrays_check_their_shape() {
        let a = NamedArray::matrix("q", 2, ArrayData::F64(vec![1.0, 2.0, 3.0, 4.0].into()));
        assert_eq!(a.shape.as_slice(), &[2, 2]);
        assert!(a.shape_matches());
        let bad = NamedArray { shape: vec![3, 2].into(), ..a };
        assert!(!bad.shape_matches());
        assert!(!NamedArray { shape: vec![u64::MAX, 4].into(), ..bad }.shape_matches());
    }
}
