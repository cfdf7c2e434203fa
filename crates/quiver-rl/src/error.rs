//! The errors of the critics and off-policy estimators.

use quiver_numerics::{Cancelled, Classify, ErrorClass};
use thiserror::Error;

/// An error of this crate. Each says which [`ErrorClass`] it is ([`Classify`]); messages name the
/// table, column and row where the data are at fault.
#[derive(Debug, Error)]
pub enum RlError {
    /// The data (or a query about them) cannot give an answer.
    #[error("{0}")]
    Input(String),
    /// One value of one column of an input table (`transitions`, `policy`, `queries`) is at fault.
    #[error("table '{table}', column '{column}', row {}: {message}", .row + 1)]
    Row {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The row, from 0 (messages count from 1, as a spreadsheet does).
        row: usize,
        /// What is wrong with the value.
        message: String,
    },
    /// A setting does not fit the data (a feature map for the other kind of states).
    #[error("{0}")]
    Parameter(String),
    /// The request is valid but too large for this implementation.
    #[error("{0}")]
    Unsupported(String),
    /// A linear solve or a thread pool failed where it should not.
    #[error("{0}")]
    Internal(String),
    /// Past the memory limit.
    #[error(transparent)]
    Memory(#[from] quiver_numerics::memory::MemoryError),
    /// The caller asked the computation to stop.
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
    /// The GPU failed.
    #[error(transparent)]
    Gpu(#[from] quiver_gpu::GpuError),
}

impl RlError {
    /// An [`RlError::Input`].
    pub fn input(message: impl Into<String>) -> Self {
        RlError::Input(message.into())
    }
    /// An [`RlError::Row`].
    pub fn row(
        table: impl Into<String>,
        column: impl Into<String>,
        row: usize,
        message: impl std::fmt::Display,
    ) -> Self {
        RlError::Row { table: table.into(), column: column.into(), row, message: message.to_string() }
    }
    /// The error of an iterative fit (`what`, e.g. "the expectile critic") whose values left the
    /// double range after `iterations`, their size `size`: the rewards when they are that large
    /// themselves, else divergence (raise the ridge) — the one message every fit gives
    /// ([`quiver_numerics::convergence::divergence_message`]).
    pub fn diverged(what: &str, size: f64, iterations: usize, rewards: &[f64]) -> Self {
        let largest = rewards.iter().fold(0.0f64, |m, r| m.max(r.abs()));
        RlError::input(quiver_numerics::convergence::divergence_message(
            what,
            size,
            iterations,
            None,
            ("rewards", largest),
            "raise the ridge",
        ))
    }
}

impl Classify for RlError {
    fn class(&self) -> ErrorClass {
        match self {
            RlError::Input(_) | RlError::Row { .. } => ErrorClass::InvalidInput,
            RlError::Parameter(_) => ErrorClass::InvalidParameter,
            RlError::Unsupported(_) => ErrorClass::Unsupported,
            RlError::Internal(_) => ErrorClass::Internal,
            RlError::Memory(e) => e.class(),
            RlError::Cancelled(e) => e.class(),
            RlError::Gpu(e) => e.class(),
        }
    }
}

impl From<quiver_numerics::NumericsError> for RlError {
    fn from(e: quiver_numerics::NumericsError) -> Self {
        RlError::Internal(e.to_string())
    }
}

/// Results of this crate.
pub type Result<T, E = RlError> = std::result::Result<T, E>;
