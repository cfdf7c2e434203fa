//! Quantile aggregation (Fakoor, Kim, Mueller, Smola & Tibshirani, "Flexible model aggregation
//! for quantile regression", JMLR 24(162), 2023): combine J base models' quantile forecasts at
//! K levels into one set that minimises the mean pinball loss, make it monotone across levels,
//! calibrate its central intervals by conformalised quantile regression, and score any set.
//!
//! - [`forecasts`]: the wide table (`y`, `q_<model>_<tau>`, `x_<name>`), borrowed column by column.
//!
//! The crate depends on neither the plugin SDK nor the ABI: errors are [`AggregationError`], a
//! fit's progress and cancellation a callback; the `quantile-aggregation` plugin reads its tables
//! into [`Forecasts`] and maps the errors.
//! - [`model`]: weight structures (coarse, medium, fine; global or local), prediction, baselines.
//! - [`lp`]: exact global weights by linear programming (Clarabel).
//! - [`adam`]: softmax weights by Adam on minibatches with early stopping (CPU threads, CUDA).
//! - [`full_batch`]: the same fit with full-batch steps, driven one pass over the data at a time
//!   (a run by parts).
//! - [`calibrate`]: sorting / PAVA across levels, CQR adjustments, nesting.
//! - [`score`]: pinball, coverage, width, interval score, WIS, crossings.

pub mod adam;
pub mod calibrate;
mod error;
pub mod forecasts;
pub mod full_batch;
pub mod gpu;
pub mod lp;
pub mod model;
pub mod score;

pub use error::AggregationError;
pub use forecasts::{Forecasts, Layout};
pub use model::{Granularity, Structure, WeightKind, Weights};
pub use score::{QuantileMatrix, ScoreSums, Scores};
