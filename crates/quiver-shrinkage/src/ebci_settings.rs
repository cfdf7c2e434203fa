//! The robust-EBCI settings both shrinkage plugins take — `ci`, `alpha`, `kurtosis` — declared
//! and read in one place, so that `sure-normal` and `sure-binomial` name and check them alike;
//! and the account both give of where the intervals stand against the estimates.

use quiver_sdk::choices;

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

quiver_sdk::config! {
    /// The interval settings of a shrinkage run, embedded in each plugin's configuration
    /// (`ebci: EbciSettings = flatten`).
    pub struct EbciSettings {
        /// Which intervals (`ci=robust-ebci`: Armstrong, Kolesár & Plagborg-Møller's).
        pub ci: Intervals = choice(Intervals::None, "intervals: robust empirical-Bayes confidence intervals around the method's shrinkage target"),
        /// Their level: average non-coverage α.
        pub alpha: f64 = level(0.05, "interval level: average non-coverage"),
        /// The fourth-moment constraint.
        pub kurtosis: Kurtosis = choice(Kurtosis::Estimate, "robust-ebci: use the estimated fourth moment, or only the second"),
    }
}

impl EbciSettings {
    /// Whether robust EBCIs are asked for.
    pub fn intervals(&self) -> bool {
        self.ci == Intervals::RobustEbci
    }
    /// Whether they use the estimated kurtosis (else the second moment only).
    pub fn uses_kurtosis(&self) -> bool {
        self.kurtosis == Kurtosis::Estimate
    }
}

/// Say in a result's `ebci` object where the intervals stand against the estimates they
/// accompany: `estimates_outside` (how many lie outside their interval) and, when that is not 0,
/// a `note` — AKP's intervals are centred at their own robust shrinkage, which differs from the
/// estimates when the estimator does (a user's λ, another method), and a reader must not take them
/// for intervals around the estimates. `ends`: the p lower ends, then the p upper ends.
pub fn note_centring(ebci: &mut quiver_sdk::serde_json::Value, estimates: &[f64], ends: &[f64]) {
    use quiver_sdk::serde_json::json;
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
