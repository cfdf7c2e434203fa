//! The plugin side of Quiver's critics: what every critic plugin (`critic-lstd`,
//! `critic-expectile`, `critic-cql`, `critic-quantile`, `critic-chunked`, `ope`) shares between
//! the SDK and the algorithms of `quiver-rl`, which know nothing of plugins.
//!
//! * [`read`]: the `transitions`, `policy` and feature columns of the ABI's tables, read into
//!   `quiver-rl`'s types ([`read::transitions`], [`read::policy`], …), every error naming the
//!   table, column and row;
//! * [`setup`]: the parameters every critic shares ([`setup::CommonParams`]), its tables in the
//!   manifest, and the summaries of a fitted critic (state values, the start value, answers to a
//!   `queries` table).
//!
//! Errors of `quiver-rl` become plugin errors with [`quiver_sdk::plugin_error`].

pub mod read;
pub mod setup;

pub use quiver_sdk::plugin_error;
