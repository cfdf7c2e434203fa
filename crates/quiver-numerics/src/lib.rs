//! Shared CPU numerics for Quiver's algorithm crates and plugins, so none writes them again: the
//! Benjamini–Hochberg step-up procedure in O(m), rank counts against sorted data, exact binomial
//! tails, the Bidirectional Preference Entropy score, and a scoped thread pool — and the small
//! vocabulary every algorithm crate shares without depending on the plugin SDK or the ABI:
//! [`Progress`] (progress, cancellation, threads), [`memory`] (requests checked against a memory
//! limit), [`Classify`] (what kind of failure an error is) and [`choices!`] (named settings).

pub mod betting;
pub mod binomial;
mod choice;
mod class;
pub mod convergence;
pub mod exact;
pub mod fdr;
pub mod isotonic;
pub mod memory;
pub mod progress;
pub mod ranks;
pub mod splitmix;

pub use choice::Choice;
pub use class::{Classify, ErrorClass};
pub use progress::{checkpoint, Cancelled, Progress, Silent};

use thiserror::Error;

/// Errors of the shared numerics.
#[derive(Debug, Error, PartialEq)]
pub enum NumericsError {
    /// A level or probability outside its range.
    #[error("{name} = {} must be in {range}", compact(value))]
    OutOfRange {
        /// Parameter name.
        name: &'static str,
        /// Its value.
        value: f64,
        /// The allowed range, as text.
        range: &'static str,
    },
    /// The thread pool could not be built.
    #[error("could not build a thread pool: {0}")]
    ThreadPool(String),
}

/// Run `f` on a rayon pool of `threads` workers (0 = rayon's default: one per core).
/// Each plugin is its own cdylib with its own rayon statics; the host passes the count it wants.
pub fn with_threads<T: Send>(threads: u32, f: impl FnOnce() -> T + Send) -> Result<T, NumericsError> {
    if threads == 0 {
        return Ok(f());
    }
    // never more workers than cores (more only slow the work down)
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads((threads as usize).min(cores))
        .build()
        .map_err(|e| NumericsError::ThreadPool(e.to_string()))?;
    Ok(pool.install(f))
}

/// The root of a continuous function `g` that is decreasing on [lo, hi] (g(lo) ≥ 0 ≥ g(hi)), by
/// bisection until the interval cannot shrink in double precision.
pub fn bisect_decreasing(mut lo: f64, mut hi: f64, g: impl Fn(f64) -> f64) -> f64 {
    for _ in 0..2100 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if g(mid) > 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// A value as an error message shows it: as written (`-1`, `0.25`), or in its shortest form
/// where that runs long (`1e300`, not 301 digits).
pub fn compact(v: impl std::fmt::Display + std::fmt::Debug) -> String {
    let shown = v.to_string();
    if shown.len() > 24 {
        format!("{v:?}")
    } else {
        shown
    }
}

/// How Quiver's JSON writes a float: the number when finite, else the string `"inf"`, `"-inf"` or
/// `"nan"` (JSON has no infinities; an infinite bound is a legal result).
pub fn json_number(x: f64) -> Result<f64, &'static str> {
    if x.is_finite() {
        Ok(x)
    } else if x.is_nan() {
        Err("nan")
    } else if x > 0.0 {
        Err("inf")
    } else {
        Err("-inf")
    }
}

/// The standard normal CDF Φ(x) = erfc(−x/√2)/2.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// The standard normal quantile Φ⁻¹(p), by Newton steps on [`normal_cdf`] from a rational
/// start (Acklam); accurate to ~1e-15 for p ∈ (1e-300, 1 − 1e-16).
pub fn normal_quantile(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    // Acklam's rational approximation as the starting point
    let q = p.min(1.0 - p);
    let t = (-2.0 * q.ln()).sqrt();
    let mut x = t
        - (2.515517 + 0.802853 * t + 0.010328 * t * t) / (1.0 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t * t * t);
    if p < 0.5 {
        x = -x;
    }
    for _ in 0..4 {
        let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
        if pdf == 0.0 {
            break;
        }
        x -= (normal_cdf(x) - p) / pdf;
    }
    x
}

/// Bidirectional Preference Entropy (an uncertainty score for pairwise LLM judgments):
/// with p̄ = (p_fwd + p_rev)/2 the probability that answer A wins averaged over both presentation
/// orders, s = −p̄ ln p̄ − (1 − p̄) ln(1 − p̄) (natural log; 0 ln 0 = 0). Lower is more confident.
pub fn bpe_score(p_fwd: f64, p_rev: f64) -> Result<f64, NumericsError> {
    for (name, v) in [("p_fwd", p_fwd), ("p_rev", p_rev)] {
        if !(0.0..=1.0).contains(&v) {
            return Err(NumericsError::OutOfRange { name, value: v, range: "[0, 1]" });
        }
    }
    let p = 0.5 * (p_fwd + p_rev);
    let h = |x: f64| if x > 0.0 { -x * x.ln() } else { 0.0 };
    Ok(h(p) + h(1.0 - p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpe_values() {
        assert_eq!(bpe_score(1.0, 1.0).unwrap(), 0.0);
        assert_eq!(bpe_score(0.0, 0.0).unwrap(), 0.0);
        assert!((bpe_score(0.5, 0.5).unwrap() - std::f64::consts::LN_2).abs() < 1e-15);
        // order disagreement (0.9 vs 0.1) is maximal uncertainty
        assert!((bpe_score(0.9, 0.1).unwrap() - std::f64::consts::LN_2).abs() < 1e-15);
        assert!(bpe_score(1.2, 0.5).is_err());
        assert!(bpe_score(0.5, f64::NAN).is_err());
    }

    #[test]
    fn normal_cdf_and_quantile() {
        assert_eq!(normal_cdf(0.0), 0.5);
        assert!((normal_cdf(1.959963984540054) - 0.975).abs() < 1e-15);
        for p in [1e-10, 0.001, 0.025, 0.3, 0.5, 0.9, 0.975, 0.999999] {
            assert!((normal_cdf(normal_quantile(p)) - p).abs() < 1e-14 * p.max(1e-3), "{p}");
        }
    }

    #[test]
    fn pool_runs() {
        assert_eq!(with_threads(2, rayon::current_num_threads).unwrap(), 2);
        assert_eq!(with_threads(0, || 7).unwrap(), 7);
    }
}
