//! When an iteration has converged, and what to say when it has not: the one relative-change rule
//! and the one divergence message every iterative fit shares.

/// The largest change of an iterate, relative to the new values' size: (max |new − old|) /
/// (max |new|), and that size. Relative, not absolute, so a fit's convergence does not depend on
/// the units of its data (an absolute test below 1 stopped fits with rewards near 1e-200 after an
/// iteration).
pub fn relative_change(pairs: impl Iterator<Item = (f64, f64)>) -> (f64, f64) {
    let (delta, size) = pairs.fold((0.0f64, 0.0f64), |(d, m), (new, old)| (d.max((new - old).abs()), m.max(new.abs())));
    (relative(delta, size), size)
}

/// A step `delta` relative to the values' size `size` ([`relative_change`]): 0 when both are 0.
pub fn relative(delta: f64, size: f64) -> f64 {
    if size > 0.0 {
        delta / size
    } else if delta == 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// The message of an iterative fit whose values blew up after `iterations` (their size `size`;
/// `first`: after the first iteration, when known). When its input `(label, largest)` — the
/// rewards, say — is itself beyond 1e150 or not finite, that input is the cause: rescale it;
/// otherwise the fit diverges, and `advice` says what to change.
pub fn divergence_message(
    what: &str,
    size: f64,
    iterations: usize,
    first: Option<f64>,
    (label, largest): (&str, f64),
    advice: &str,
) -> String {
    if !largest.is_finite() || largest > 1e150 {
        format!(
            "{what}'s values reach {size:.3e} after {iterations} iterations: {label} up to {largest:.3e} leave no room \
             in double precision; rescale the rewards, e.g. divide them by {largest:.0e}"
        )
    } else {
        let since = first.map_or(String::new(), |f| format!(", {f:.3e} after the first"));
        format!("{what} diverges (values of size {size:.3e} after {iterations} iterations{since}): {advice}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_change_and_messages() {
        assert_eq!(relative_change([(2.0, 1.0), (-4.0, -4.5)].into_iter()), (0.25, 4.0));
        assert_eq!(relative(0.0, 0.0), 0.0);
        assert_eq!(relative(1.0, 0.0), f64::INFINITY);
        let m = divergence_message("FQE", 1e20, 9, Some(1.0), ("rewards", 3.0), "raise the ridge");
        assert!(m.starts_with("FQE diverges (values of size 1.000e20 after 9 iterations, 1.000e0 after the first)"));
        let m = divergence_message("the expectile critic", 1e300, 4, None, ("rewards", 1e200), "raise the ridge");
        assert!(m.contains("rewards up to 1.000e200 leave no room") && m.contains("rescale the rewards"), "{m}");
    }
}
