//! Shared machinery of Quiver's SURE shrinkage plugins (`sure-normal`, `sure-binomial`):
//! [`risk`] — unbiased risk estimates of linear shrinkage and their certified global minimisation
//! over λ (CPU and CUDA sweeps); [`ebci`] — robust empirical-Bayes confidence intervals
//! (Armstrong, Kolesár & Plagborg-Møller 2022), critical values by their defining optimisation.

pub mod ebci;
pub mod risk;

pub use risk::{Minimum, QuadraticRisk, Sweep, Weight};
