//! The plugin side of Quiver's SURE shrinkage: the robust-EBCI settings both shrinkage plugins
//! take — `ci`, `alpha`, `kurtosis` — declared and read in one place, so that `sure-normal` and
//! `sure-binomial` name and check them alike; the algorithms live in `quiver-shrinkage`, which
//! knows nothing of plugins. [`by_parts`] drives either plugin computed by parts, in rounds.

pub mod by_parts;

use quiver_shrinkage::ebci_settings::{Intervals, Kurtosis};
use quiver_shrinkage::risk::Sweep;

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

/// The sweeps of a run on `device` (rayon on the CPU, the `sure_sweep` kernel on CUDA).
pub fn sweep(device: quiver_sdk::abi::Device) -> Sweep {
    match device {
        quiver_sdk::abi::Device::Cpu => Sweep::Cpu,
        quiver_sdk::abi::Device::Cuda => Sweep::Cuda,
    }
}
