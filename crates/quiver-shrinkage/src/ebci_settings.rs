//! The choices of the robust-EBCI settings both shrinkage methods take (`ci`, `kurtosis`), and the
//! account both give of where the intervals stand against the estimates.

use quiver_numerics::choices;

choices! {
    /// Which intervals to compute.
    pub enum Intervals {
        /// Point estimates only.
        None = "none",
        /// Armstrong, Kolesár & Plagborg-Møller's robust empirical-Bayes confidence intervals.
        RobustEbci = "robust-ebci",
    }
}

choices! {
    /// The fourth-moment constraint of the robust EBCI.
    pub enum Kurtosis {
        /// κ estimated from the data.
        Estimate = "estimate",
        /// κ = ∞ (second moment only).
        None = "none",
    }
}

/// Say in a result's `ebci` object where the intervals stand against the estimates they
/// accompany: `estimates_outside` (how many lie outside their interval) and, when that is not 0,
/// a `note` — AKP's intervals are centred at their own robust shrinkage, which differs from the
/// estimates when the estimator does (a user's λ, another method), and a reader must not take them
/// for intervals around the estimates. `ends`: the p lower ends, then the p upper ends.
pub fn note_centring(ebci: &mut serde_json::Value, estimates: &[f64], ends: &[f64]) {
    use serde_json::json;
    let outside = crate::ebci::estimates_outside(estimates, ends);
    ebci["estimates_outside"] = json!(outside);
    if outside > 0 {
        ebci["note"] = json!(format!(
            "the intervals are centred at the robust empirical-Bayes shrinkage (see centre), not at the estimates: \
             {outside} of {} estimates lie outside their interval",
            estimates.len()
        ));
    }
}
