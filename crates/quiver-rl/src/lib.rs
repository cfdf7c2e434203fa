//! Logged RL transitions for Quiver's critics, read and checked once, and the linear algebra
//! every critic shares.
//!
//! * [`data`]: logged transitions (`episode`, `t`, `s`, `a`, `r`, `s_next`, `done`, …):
//!   episodes, next-row lookups, n-step windows, with every error naming the table, column and
//!   row;
//! * [`policy`]: the target policy, as a `policy` table (discrete states) or per-row columns;
//! * [`features`]: one-hot, random Fourier and given features, and the next-state features of a
//!   target (π-averaged, or the logged next action);
//! * [`linear`]: the moments ΦᵀΦ, ΦᵀΦ̄′, Φᵀr in chunks (OpenBLAS on the CPU), LSTD and FQE;
//! * [`tabular`]: the empirical (certainty-equivalence) model of discrete data, and the
//!   expectile and conservative critics' fixed points on it;
//! * [`distributional`]: quantile TD with linear (random Fourier) features;
//! * [`ope`]: off-policy evaluation estimators and their intervals ([`ope_parts`]: by parts);
//!   [`bootstrap`]: the
//!   counter-based bootstrap over units they use (CPU cores or GPU, the same draws);
//! * [`gpu`]: the same moments by cuBLAS, with the features computed on the device, and the
//!   OPE scans and bootstrap sums as CUDA kernels;
//!
//! The crate stands on its own — it depends on neither the plugin SDK nor the ABI: errors are
//! [`RlError`] (each with its [`quiver_numerics::ErrorClass`]), long fits report progress and
//! learn of cancellation through [`quiver_numerics::Progress`] ([`quiver_numerics::Silent`] when
//! nobody listens), and inputs are slices ([`TransitionColumns`], [`Policy::from_rows`]). The
//! critic plugins read their tables into these types with `quiver-critic-kit`.

pub mod bootstrap;
pub mod data;
pub mod distributional;
mod error;
pub mod expectile;
pub mod features;
pub mod gpu;
pub mod linear;
pub mod low_rank;
pub mod low_rank_cuda;
pub mod multi_agent;
pub mod ope;
pub mod ope_bounds;
pub mod ope_many;
pub mod ope_parts;
pub mod policy;
pub mod quantile_dp;
pub mod tabular;

/// Link OpenBLAS (BLAS and LAPACK) into every crate that uses this one.
extern crate blas_src;

pub use data::{EpisodeSpan, NStep, States, TransitionColumns, Transitions};
pub use error::{Result, RlError};
pub use features::{FeatureMap, GivenColumns, NextTarget, PairIndex, Rff};
pub use linear::Moments;
pub use policy::{Policy, PolicyColumns};
