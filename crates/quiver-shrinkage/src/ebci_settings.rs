//! The robust-EBCI settings both shrinkage plugins take — `ci`, `alpha`, `kurtosis` — declared
//! and read in one place, so that `sure-normal` and `sure-binomial` name and check them alike.

use quiver_sdk::abi::PluginError;
use quiver_sdk::{choices, param, ManifestBuilder, Params};

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

/// The validated interval settings of a shrinkage run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EbciSettings {
    /// Whether robust EBCIs are asked for (`ci=robust-ebci`).
    pub intervals: bool,
    /// Their level: average non-coverage α.
    pub alpha: f64,
    /// Whether they use the estimated kurtosis (else the second moment only).
    pub kurtosis: bool,
}

impl EbciSettings {
    /// Read `ci`, `alpha` and `kurtosis` (ranges were checked against the manifest).
    pub fn from_params(p: &Params) -> Result<Self, PluginError> {
        Ok(EbciSettings {
            intervals: p.choice::<Intervals>("ci")? == Intervals::RobustEbci,
            alpha: p.f64("alpha")?,
            kurtosis: p.choice::<Kurtosis>("kurtosis")? == Kurtosis::Estimate,
        })
    }

    /// Declare `ci` (documented by `ci_doc`), `alpha` (default 0.05) and `kurtosis` on a
    /// manifest.
    pub fn declare(builder: ManifestBuilder, ci_doc: &str) -> ManifestBuilder {
        builder
            .param(param::choice("ci", Intervals::None, ci_doc))
            .param(param::level("alpha", 0.05, "interval level: average non-coverage"))
            .param(param::choice(
                "kurtosis",
                Kurtosis::Estimate,
                "robust-ebci: use the estimated fourth moment, or only the second",
            ))
    }
}
