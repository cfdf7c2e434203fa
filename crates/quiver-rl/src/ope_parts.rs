//! Bandit off-policy evaluation computed by parts (docs/scale.md): what a partition of the log
//! contributes — the Chan summary of its rows' six values — how two contributions merge, and the
//! estimates from the contribution of the whole log, equal to the one-table ones up to the
//! rounding of sums. Only `ci=t` merges: see [`bandit_mergeable`].

use crate::ope::{
    estimates_from_summary, BadRow, BanditEstimates, BanditInput, CiMethod, CiSpec, Summary, BANDIT_VALUES,
};
use crate::RlError;

/// What one partition of a bandit log contributes to the estimates (docs/scale.md): the Chan
/// summary of its rows' six values, and its number of actions (partitions must agree).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BanditPartial {
    /// Actions (`pi_*` columns).
    pub n_actions: usize,
    /// Rows.
    pub n: f64,
    /// The summary's means, sums of squares (in `scale` units), minima, maxima and units.
    pub mean: Vec<f64>,
    /// Σ ((x − mean)/scale)² per value.
    pub m2: Vec<f64>,
    /// Minima.
    pub min: Vec<f64>,
    /// Maxima.
    pub max: Vec<f64>,
    /// The co-moment of w r and w.
    pub c01: f64,
    /// Each value's power-of-two unit.
    pub scale: Vec<f64>,
}

impl BanditPartial {
    fn of(n_actions: usize, s: &Summary<BANDIT_VALUES>) -> Self {
        BanditPartial {
            n_actions,
            n: s.n,
            mean: s.mean.to_vec(),
            m2: s.m2.to_vec(),
            min: s.min.to_vec(),
            max: s.max.to_vec(),
            c01: s.c01,
            scale: s.scale.to_vec(),
        }
    }
    fn summary(&self) -> Result<Summary<BANDIT_VALUES>, RlError> {
        let arr = |v: &[f64]| -> Result<[f64; BANDIT_VALUES], RlError> {
            v.try_into().map_err(|_| RlError::input("a bandit state with the wrong number of values"))
        };
        Ok(Summary {
            n: self.n,
            mean: arr(&self.mean)?,
            m2: arr(&self.m2)?,
            min: arr(&self.min)?,
            max: arr(&self.max)?,
            c01: self.c01,
            scale: arr(&self.scale)?,
        })
    }
}

/// Whether the bandit estimates under `spec` can be computed by parts: with `ci=t` every interval
/// is a function of sums; the bootstrap draws n rows from all n at once, and the betting and
/// finite-sample kinds need it (or every row in order) for some estimators.
pub fn bandit_mergeable(spec: &CiSpec) -> Result<(), RlError> {
    if spec.method == CiMethod::T {
        Ok(())
    } else {
        Err(RlError::Unsupported(format!(
            "ci={} is not computed by parts: its intervals draw from, or run through, all rows at once; a \
             partitioned run takes ci=t (or give the log as one table)",
            spec.method
        )))
    }
}

/// The contribution of one partition of a bandit log ([`bandit_mergeable`] specs only); `refuse`
/// words the error of a refused row.
pub fn bandit_partial(input: &BanditInput<'_>, refuse: &dyn Fn(BadRow) -> RlError) -> Result<BanditPartial, RlError> {
    let s = if input.a.is_empty() { Summary::of(&[]) } else { input.summary().map_err(refuse)? };
    Ok(BanditPartial::of(input.pi.len(), &s))
}

/// Two partitions' contributions as one (`a`'s rows first).
pub fn bandit_merge(a: &BanditPartial, b: &BanditPartial) -> Result<BanditPartial, RlError> {
    if a.n > 0.0 && b.n > 0.0 && a.n_actions != b.n_actions {
        return Err(RlError::input(format!(
            "the partitions of table 'bandit' differ in their actions: pi_0..pi_{} in one, pi_0..pi_{} in another",
            a.n_actions.saturating_sub(1),
            b.n_actions.saturating_sub(1)
        )));
    }
    let n_actions = if a.n > 0.0 { a.n_actions } else { b.n_actions };
    Ok(BanditPartial::of(n_actions, &a.summary()?.merge(&b.summary()?)))
}

/// The estimates from the contribution of the whole log (at least 2 rows).
pub fn bandit_finish(p: &BanditPartial, spec: &CiSpec) -> Result<BanditEstimates, RlError> {
    bandit_mergeable(spec)?;
    if p.n < 2.0 {
        return Err(RlError::input("table 'bandit' needs at least 2 rows for an interval"));
    }
    Ok(estimates_from_summary(&p.summary()?, spec, &|_| (f64::NAN, f64::NAN)))
}
