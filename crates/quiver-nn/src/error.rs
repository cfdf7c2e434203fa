//! The training core's errors.

use quiver_numerics::{Classify, ErrorClass};
use thiserror::Error;

/// What can go wrong building, training or loading a network.
#[derive(Debug, Error)]
pub enum NnError {
    /// A network or batch size outside the accepted range.
    #[error("network size: {0}")]
    Size(String),
    /// More memory than this machine allows.
    #[error(transparent)]
    Memory(#[from] quiver_numerics::memory::MemoryError),
    /// A checkpoint could not be written or read, or does not fit the network.
    #[error("checkpoint '{path}': {why}")]
    Checkpoint {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// The GPU (its driver, NVRTC or cuBLAS) failed or is not usable.
    #[error("GPU: {0}")]
    Device(String),
}

impl Classify for NnError {
    fn class(&self) -> ErrorClass {
        match self {
            NnError::Size(_) => ErrorClass::InvalidParameter,
            NnError::Memory(_) => ErrorClass::Unsupported,
            NnError::Checkpoint { .. } => ErrorClass::InvalidInput,
            NnError::Device(_) => ErrorClass::Device,
        }
    }
}
