//! Evaluation statistics of Quiver's `evaluator` family, without plugin code:
//! [`aggregate`] — `rliable`'s aggregate metrics of RL results over tasks from few runs (mean,
//! median, interquartile mean, optimality gap, probability of improvement, performance profiles;
//! Agarwal et al., NeurIPS 2021); [`bootstrap`] — their stratified bootstrap (each task keeps its
//! run count; counter-based draws, reproducible on any number of threads) with percentile and BCa
//! intervals; [`assessment`] — how well an off-policy estimator chooses policies (SharpeRatio@k,
//! regret@k, nDCG@k, Spearman's ρ, MSE, safety errors; Kiyohara et al., ICLR 2024); [`labels`] —
//! text labels numbered in order of first appearance.

pub mod aggregate;
pub mod assessment;
pub mod bootstrap;
pub mod labels;

pub use aggregate::Metric;
pub use labels::Labels;
