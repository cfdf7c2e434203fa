//! Shared machinery of Quiver's SURE shrinkage plugins (`sure-normal`, `sure-binomial`):
//! [`risk`] — unbiased risk estimates of linear shrinkage and their certified global minimisation
//! over λ (CPU and CUDA sweeps); [`profile`] — XKB's SURE with the location profiled out
//! (`xkb-estimated`), certified by the same branch and bound; [`ebci`] — robust empirical-Bayes confidence intervals
//! (Armstrong, Kolesár & Plagborg-Møller 2022), critical values by their defining optimisation.

pub mod ebci;
pub mod profile;
pub mod risk;

pub use profile::ProfiledRisk;
pub use risk::{Minimum, QuadraticRisk, Sweep, Weight};
