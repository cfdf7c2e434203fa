//! Logged RL transitions for Quiver's critics, read and checked once, and the linear algebra
//! every critic shares.
//!
//! * [`data`]: the `transitions` table (`episode`, `t`, `s`, `a`, `r`, `s_next`, `done`, …):
//!   episodes, next-row lookups, n-step windows, with every error naming the table, column and
//!   row;
//! * [`policy`]: the target policy, as a `policy` table (discrete states) or per-row columns;
//! * [`features`]: one-hot, random Fourier and given features, and the next-state features of a
//!   target (π-averaged, or the logged next action);
//! * [`linear`]: the moments ΦᵀΦ, ΦᵀΦ̄′, Φᵀr in chunks (OpenBLAS on the CPU), LSTD and FQE;
//! * [`tabular`]: the empirical (certainty-equivalence) model of discrete data, and the
//!   expectile and conservative critics' fixed points on it;
//! * [`distributional`]: quantile TD with linear (random Fourier) features;
//! * [`ope`]: off-policy evaluation estimators and their intervals; [`bootstrap`]: the
//!   counter-based bootstrap over units they use (CPU cores or GPU, the same draws);
//! * [`gpu`]: the same moments by cuBLAS, with the features computed on the device, and the
//!   OPE scans and bootstrap sums as CUDA kernels;
//! * [`setup`]: the parameters, tables and summaries every critic plugin shares.

pub mod bootstrap;
pub mod data;
pub mod distributional;
pub mod expectile;
pub mod features;
pub mod gpu;
pub mod linear;
pub mod ope;
pub mod ope_bounds;
pub mod policy;
pub mod quantile_dp;
pub mod setup;
pub mod tabular;

/// Link OpenBLAS (BLAS and LAPACK) into every crate that uses this one.
extern crate blas_src;

pub use data::{NStep, States, Transitions};
pub use features::{FeatureMap, GivenColumns, NextTarget, PairIndex, Rff};
pub use linear::Moments;
pub use policy::{Policy, PolicyColumns};
