//! Shared machinery of Quiver's SURE shrinkage plugins (`sure-normal`, `sure-binomial`):
//! [`risk`] — unbiased risk estimates of linear shrinkage and their certified global minimisation
//! over λ (CPU and CUDA sweeps); [`profile`] — XKB's SURE with the location profiled out
//! (`xkb-estimated`), certified by the same branch and bound (CPU and CUDA sweeps); [`replay`] —
//! that search driven one pass over the data at a time (runs by parts); [`ebci`] — robust empirical-Bayes confidence intervals
//! (Armstrong, Kolesár & Plagborg-Møller 2022), critical values by their defining optimisation,
//! and [`ebci_settings`] — the plugins' shared `ci`/`alpha`/`kurtosis` parameters.

pub mod arcsine;
pub mod ebci;
pub mod ebci_settings;
pub mod profile;
pub mod replay;
pub mod risk;

pub use profile::ProfiledRisk;
pub use risk::{Minimum, QuadraticRisk, Sweep, Weight};

/// The seeded generator of the crate's unit tests (a 64-bit LCG, top 53 bits as a uniform).
#[cfg(test)]
mod test_rng {
    pub(crate) fn lcg(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        }
    }
}
