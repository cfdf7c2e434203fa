//! The timed cases, one file per family.

pub(crate) mod aggregation;
pub(crate) mod critics;
pub(crate) mod evaluation;
pub(crate) mod ope_many;
pub(crate) mod selection;
pub(crate) mod shrinkage;
