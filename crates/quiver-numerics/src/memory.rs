//! The memory a request may take, checked before it is allocated.
//!
//! A computation sizes what a request implies from its parameters and input sizes and calls
//! [`reserve`] before allocating (or allocates with [`try_vec`]): past the limit the request is
//! refused with a clear error ([`MemoryError`]) instead of aborting the process when the
//! allocation fails. The
//! limit is `QUIVER_MAX_MEMORY` (bytes, or with a K/M/G/T suffix; `quiver run --max-memory` sets
//! it), by default 80% of the machine's physical memory.

use thiserror::Error;

/// A request refused for its memory.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum MemoryError {
    /// The request needs more than [`limit`] allows.
    #[error(
        "this request needs {} of memory for {what}, past the limit of {} (set with --max-memory or {MAX_MEMORY_ENV})",
        human(*.bytes), human(*.limit as f64)
    )]
    PastLimit {
        /// Bytes needed (an estimate; may be astronomically large or NaN).
        bytes: f64,
        /// The limit in bytes.
        limit: u64,
        /// What the memory is for.
        what: String,
    },
    /// The system refused an allocation the limit allowed.
    #[error("the system refused {} of memory for {what}", human(*.bytes))]
    Refused {
        /// Bytes asked for.
        bytes: f64,
        /// What the memory is for.
        what: String,
    },
}

/// The environment variable holding the limit.
pub const MAX_MEMORY_ENV: &str = "QUIVER_MAX_MEMORY";

/// Parse a size: a number of bytes, optionally with a K, M, G or T suffix (powers of 1024, an
/// optional trailing `B` or `iB`).
pub fn parse_size(text: &str) -> Option<u64> {
    let upper = text.trim().to_ascii_uppercase();
    let t = upper.strip_suffix("IB").or_else(|| upper.strip_suffix('B')).unwrap_or(&upper);
    let (digits, shift) = match t.chars().last()? {
        'K' => (&t[..t.len() - 1], 10),
        'M' => (&t[..t.len() - 1], 20),
        'G' => (&t[..t.len() - 1], 30),
        'T' => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let value: f64 = digits.trim().parse().ok()?;
    let bytes = value * (1u64 << shift) as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// The machine's physical memory in bytes (`/proc/meminfo`), when it can be read.
pub fn physical_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The process's own ceilings on memory (`ulimit -v`, `ulimit -d`: "Max address space" and "Max
/// data size" in `/proc/self/limits`), the lower of those set.
pub fn process_ceiling() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    limits
        .lines()
        .filter(|l| l.starts_with("Max address space") || l.starts_with("Max data size"))
        .filter_map(|l| l.split_whitespace().nth(3)?.parse::<u64>().ok())
        .min()
}

/// The limit in bytes: `QUIVER_MAX_MEMORY`, else 80% of physical memory (8 GiB where that is
/// unknown) — and never more than 80% of a ceiling the process runs under (`ulimit -v`), which
/// would otherwise abort it at an allocation the limit allowed.
pub fn limit() -> u64 {
    let asked = std::env::var(MAX_MEMORY_ENV)
        .ok()
        .and_then(|v| parse_size(&v))
        .unwrap_or_else(|| physical_memory().map_or(8 << 30, |m| m / 5 * 4));
    match process_ceiling() {
        Some(c) => asked.min(c / 5 * 4),
        None => asked,
    }
}

/// `bytes` in human units (B, KiB, MiB, GiB, TiB).
pub fn human(bytes: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} {}", units[u])
    } else if v.is_finite() {
        format!("{v:.1} {}", units[u])
    } else {
        "more than 10^19 B".into()
    }
}

/// Refuse a request that needs `bytes` (an estimate, possibly astronomically large: an `f64`)
/// for `what`, when that is past [`limit`].
pub fn reserve(bytes: f64, what: &str) -> Result<(), MemoryError> {
    let limit = limit();
    if bytes.is_nan() || bytes > limit as f64 {
        return Err(MemoryError::PastLimit { bytes, limit, what: what.to_string() });
    }
    Ok(())
}

/// A vector of `len` copies of `value`, after [`reserve`] and with a fallible allocation (an
/// allocation the system refuses is an error, not an abort).
pub fn try_vec<T: Clone>(len: usize, value: T, what: &str) -> Result<Vec<T>, MemoryError> {
    let bytes = len as f64 * std::mem::size_of::<T>() as f64;
    reserve(bytes, what)?;
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| MemoryError::Refused { bytes, what: what.to_string() })?;
    v.resize(len, value);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_limits_refuse() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("1.5 GiB"), Some(3 << 29));
        assert_eq!(parse_size("512mb"), Some(512 << 20));
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_size("lots"), None);
        assert!(reserve(1e30, "a test").unwrap_err().to_string().contains("past the limit"));
        assert!(reserve(f64::NAN, "a test").is_err());
        assert!(try_vec(usize::MAX / 2, 0u64, "a test").is_err());
        assert_eq!(try_vec(3, 1u8, "a test").unwrap(), vec![1, 1, 1]);
        assert_eq!(human(3.0 * 1024.0 * 1024.0 * 1024.0), "3.0 GiB");
    }
}
