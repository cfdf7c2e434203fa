//! Evaluation statistics of Quiver's `evaluator` family, without plugin code:
//! [`aggregate`] — `rliable`'s aggregate metrics of RL results over tasks from few runs (mean,
//! median, interquartile mean, optimality gap, probability of improvement, performance profiles;
//! Agarwal et al., NeurIPS 2021); [`bootstrap`] — their stratified bootstrap (each task keeps its
//! run count; counter-based draws, reproducible on any number of threads) with percentile and BCa
//! intervals.

pub mod aggregate;
pub mod bootstrap;

pub use aggregate::Metric;
