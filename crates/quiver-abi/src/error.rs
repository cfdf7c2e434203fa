//! Errors that cross the boundary.

use abi_stable::{
    std_types::{RResult, RString},
    StableAbi,
};

/// The class of a plugin error.
///
/// An open set: a `u8` code with named values, not a Rust enum, so that a new class can be named
/// later without changing the layout of what exists (a host reading an unknown code
/// shows it as `Unknown(n)` and treats it as [`ErrorKind::Internal`]). The names are written as
/// variants so that `match` arms read as they did.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorKind(pub u8);

#[allow(non_upper_case_globals)]
impl ErrorKind {
    /// A table, column or value is unusable (the message names table, column and row).
    pub const InvalidInput: ErrorKind = ErrorKind(0);
    /// A parameter is unknown, of the wrong type, or out of range.
    pub const InvalidParameter: ErrorKind = ErrorKind(1);
    /// The request is valid but this method or device cannot do it.
    pub const Unsupported: ErrorKind = ErrorKind(2);
    /// The GPU could not be used.
    pub const Device: ErrorKind = ErrorKind(3);
    /// The plugin panicked; the panic was caught at the boundary.
    pub const Panic: ErrorKind = ErrorKind(4);
    /// A step was called out of order (e.g. `select` before `calibrate`), or does not exist.
    pub const State: ErrorKind = ErrorKind(5);
    /// The caller asked the plugin to stop (its progress callback returned `false`).
    pub const Cancelled: ErrorKind = ErrorKind(6);
    /// Anything else.
    pub const Internal: ErrorKind = ErrorKind(7);
    /// A numerical method failed on valid input (a solver's breakdown): not the data's fault,
    /// and not a bug in the request; the message says what failed and what to try.
    pub const Numerical: ErrorKind = ErrorKind(8);

    /// The named classes, in code order.
    pub const ALL: [(ErrorKind, &'static str); 9] = [
        (ErrorKind::InvalidInput, "InvalidInput"),
        (ErrorKind::InvalidParameter, "InvalidParameter"),
        (ErrorKind::Unsupported, "Unsupported"),
        (ErrorKind::Device, "Device"),
        (ErrorKind::Panic, "Panic"),
        (ErrorKind::State, "State"),
        (ErrorKind::Cancelled, "Cancelled"),
        (ErrorKind::Internal, "Internal"),
        (ErrorKind::Numerical, "Numerical"),
    ];

    /// The class's name (`InvalidInput`), or `None` for a code this version does not name.
    pub fn name(&self) -> Option<&'static str> {
        ErrorKind::ALL.iter().find(|(k, _)| k == self).map(|(_, n)| *n)
    }
}

impl std::fmt::Debug for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "Unknown({})", self.0),
        }
    }
}

/// An error returned across the boundary.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct PluginError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// A one-paragraph human message.
    pub message: RString,
}

impl PluginError {
    /// Build an error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        PluginError { kind, message: RString::from(message.into()) }
    }
    /// Shorthand for [`ErrorKind::InvalidInput`].
    pub fn input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }
    /// Shorthand for [`ErrorKind::InvalidParameter`].
    pub fn param(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParameter, message)
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for PluginError {}

/// Result type of every entry point.
pub type PluginResult<T> = RResult<T, PluginError>;
