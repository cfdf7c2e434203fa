//! The errors of quantile aggregation.

use quiver_numerics::{Cancelled, Classify, ErrorClass};
use thiserror::Error;

/// An error of this crate, with its [`ErrorClass`] ([`Classify`]).
#[derive(Debug, Error)]
pub enum AggregationError {
    /// The forecasts (their column names, their values) cannot give an answer.
    #[error("{0}")]
    Input(String),
    /// A setting does not fit the forecasts (aggregation of a single model).
    #[error("{0}")]
    Parameter(String),
    /// The request is valid but not supported on this path.
    #[error("{0}")]
    Unsupported(String),
    /// The caller asked the fit to stop.
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
    /// The GPU failed.
    #[error(transparent)]
    Gpu(#[from] quiver_gpu::GpuError),
}

impl Classify for AggregationError {
    fn class(&self) -> ErrorClass {
        match self {
            AggregationError::Input(_) => ErrorClass::InvalidInput,
            AggregationError::Parameter(_) => ErrorClass::InvalidParameter,
            AggregationError::Unsupported(_) => ErrorClass::Unsupported,
            AggregationError::Cancelled(e) => e.class(),
            AggregationError::Gpu(e) => e.class(),
        }
    }
}
