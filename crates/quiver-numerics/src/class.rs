//! What kind of failure an error is, so that a caller can act on it without parsing its message:
//! the plugins map it onto the ABI's error kinds (and the CLI onto its exit codes), a user's
//! program onto its own handling. Each algorithm crate has its own error enum; each implements
//! [`Classify`].

/// The kind of a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The data (or a request about them) cannot give an answer: fix the input.
    InvalidInput,
    /// A setting is out of its range or contradicts another.
    InvalidParameter,
    /// The request is valid but not supported here: past a memory limit, a path not built.
    Unsupported,
    /// A computation on valid input left double precision or a solver failed.
    Numerical,
    /// The GPU failed.
    Device,
    /// The caller asked the computation to stop.
    Cancelled,
    /// A defect of the crate itself.
    Internal,
}

/// An error that says which [`ErrorClass`] it is.
pub trait Classify: std::error::Error {
    /// The kind of this failure.
    fn class(&self) -> ErrorClass;
}

impl Classify for crate::progress::Cancelled {
    fn class(&self) -> ErrorClass {
        ErrorClass::Cancelled
    }
}

impl Classify for crate::memory::MemoryError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Unsupported
    }
}

impl Classify for crate::NumericsError {
    fn class(&self) -> ErrorClass {
        match self {
            crate::NumericsError::OutOfRange { .. } => ErrorClass::InvalidParameter,
            crate::NumericsError::ThreadPool(_) => ErrorClass::Internal,
        }
    }
}
