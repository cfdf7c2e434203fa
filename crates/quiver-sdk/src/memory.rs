//! The memory a request may take, checked before it is allocated ([`quiver_numerics::memory`]),
//! with the refusals as plugin errors of kind [`quiver_abi::ErrorKind::Unsupported`].

use quiver_abi::PluginError;
pub use quiver_numerics::memory::{human, limit, parse_size, physical_memory, process_ceiling, MAX_MEMORY_ENV};

/// [`quiver_numerics::memory::reserve`]: refuse a request that needs `bytes` for `what` past the
/// limit.
pub fn reserve(bytes: f64, what: &str) -> Result<(), PluginError> {
    quiver_numerics::memory::reserve(bytes, what).map_err(crate::plugin_error)
}

/// [`quiver_numerics::memory::try_vec`]: `len` copies of `value`, after [`reserve`] and with a
/// fallible allocation.
pub fn try_vec<T: Clone>(len: usize, value: T, what: &str) -> Result<Vec<T>, PluginError> {
    quiver_numerics::memory::try_vec(len, value, what).map_err(crate::plugin_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_abi::ErrorKind;

    #[test]
    fn refusals_are_unsupported_requests() {
        let e = reserve(1e30, "a test").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported);
        assert!(e.message.as_str().contains("past the limit"), "{}", e.message);
        assert_eq!(try_vec(3, 1u8, "a test").unwrap(), vec![1, 1, 1]);
    }
}
