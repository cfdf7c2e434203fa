//! Off-policy evaluation computed by parts (docs/scale.md): what a partition of the data
//! contributes, how two contributions merge, and the estimates from the contribution of all of it —
//! equal to the one-table estimates up to the rounding of sums.
//!
//! * Bandit logs: the Chan summary of the rows' six values, and for `ci=bootstrap` every
//!   resample's sums ([`ResampledSums`]: Poisson counts keyed by the row's place in the whole log).
//! * Trajectories (whole episodes in each partition): the Chan summary of the episodes' four values
//!   (TIS, PDIS, DM, DR), the SN-PDIS step sums, the final weights' sums for the ESS, and every
//!   resample's sums (counts keyed by the episode's id), for `ci=t` and `ci=bootstrap`: SN-PDIS's
//!   interval is the bootstrap's in both.
//!
//! The finite-sample kinds (betting runs through the rows in order; the bounds of the others need
//! every value) are not computed by parts: [`mergeable`].

use crate::bootstrap::{percentile_interval, Plan, ResampledSums, UnitKeys};
use crate::ope::{
    bandit_stat, effective_sample_size, estimates_from_summary, sn_pdis_from_sums, trajectory_stat, trajectory_width,
    widen_trajectory_sums, BadRow, BanditEstimates, BanditInput, CiMethod, CiSpec, Interval, Summary,
    TrajectoryEstimates, TrajectoryInput, BANDIT_VALUES,
};
use crate::RlError;

/// A [`Summary`] as a state: its fields as vectors.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SummaryState {
    /// Count.
    pub n: f64,
    /// Means.
    pub mean: Vec<f64>,
    /// Σ ((x − mean)/scale)² per value.
    pub m2: Vec<f64>,
    /// Minima.
    pub min: Vec<f64>,
    /// Maxima.
    pub max: Vec<f64>,
    /// The co-moment of the first two values.
    pub c01: f64,
    /// Each value's power-of-two unit.
    pub scale: Vec<f64>,
}

impl SummaryState {
    fn of<const K: usize>(s: &Summary<K>) -> Self {
        SummaryState {
            n: s.n,
            mean: s.mean.to_vec(),
            m2: s.m2.to_vec(),
            min: s.min.to_vec(),
            max: s.max.to_vec(),
            c01: s.c01,
            scale: s.scale.to_vec(),
        }
    }
    fn summary<const K: usize>(&self) -> Result<Summary<K>, RlError> {
        let arr = |v: &[f64]| -> Result<[f64; K], RlError> {
            v.try_into().map_err(|_| RlError::input("a state with the wrong number of values"))
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
    fn merge<const K: usize>(&self, other: &SummaryState) -> Result<SummaryState, RlError> {
        Ok(SummaryState::of(&self.summary::<K>()?.merge(&other.summary::<K>()?)))
    }
}

/// Whether the estimates under `spec` can be computed by parts: `ci=t` (every interval a function
/// of sums, SN-PDIS's the bootstrap's) and `ci=bootstrap` (the counts are per unit, so each
/// partition resamples its own units); not the finite-sample kinds.
pub fn mergeable(spec: &CiSpec) -> Result<(), RlError> {
    if matches!(spec.method, CiMethod::T | CiMethod::Bootstrap) {
        Ok(())
    } else {
        Err(RlError::Unsupported(format!(
            "ci={} is not computed by parts: its intervals run through, or bound, every value at once; a \
             partitioned run takes ci=t or ci=bootstrap (or give the log as one table)",
            spec.method
        )))
    }
}

/// Every resample's sums of the units `x` of a partition (CPU).
fn resampled(x: &crate::bootstrap::UnitMatrix, keys: UnitKeys<'_>, spec: &CiSpec) -> ResampledSums {
    let none = |_: &[f64], _: f64| Vec::new();
    Plan { x, keys, resamples: spec.resamples, seed: spec.seed, stat: &none }.sums_cpu()
}

fn add_boot(a: &Option<ResampledSums>, b: &Option<ResampledSums>) -> Result<Option<ResampledSums>, RlError> {
    Ok(match (a, b) {
        (Some(a), Some(b)) => {
            let mut s = a.clone();
            s.add(b).map_err(RlError::input)?;
            Some(s)
        }
        (a, b) => a.clone().or_else(|| b.clone()),
    })
}

/// What one partition of a bandit log contributes to the estimates (docs/scale.md).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BanditPartial {
    /// Actions (`pi_*` columns); partitions must agree.
    pub n_actions: usize,
    /// The Chan summary of the six row values.
    pub summary: SummaryState,
    /// `ci=bootstrap`: every resample's sums of the six values and its size.
    pub boot: Option<ResampledSums>,
}

/// The contribution of one partition of a bandit log ([`mergeable`] specs only), whose first row is
/// row `input.first` of the whole log; `refuse` words the error of a refused row.
pub fn bandit_partial(
    input: &BanditInput<'_>,
    spec: &CiSpec,
    refuse: &dyn Fn(BadRow) -> RlError,
) -> Result<BanditPartial, RlError> {
    mergeable(spec)?;
    if input.a.is_empty() {
        let s: Summary<BANDIT_VALUES> = Summary::of(&[]);
        return Ok(BanditPartial { n_actions: input.pi.len(), summary: SummaryState::of(&s), boot: None });
    }
    let s = input.summary().map_err(refuse)?;
    let boot = if spec.method == CiMethod::Bootstrap {
        let x = input.units().map_err(refuse)?;
        Some(resampled(&x, UnitKeys::From(input.first), spec))
    } else {
        None
    };
    Ok(BanditPartial { n_actions: input.pi.len(), summary: SummaryState::of(&s), boot })
}

/// Two partitions' contributions as one (`a`'s rows first).
pub fn bandit_merge(a: &BanditPartial, b: &BanditPartial) -> Result<BanditPartial, RlError> {
    let (na, nb) = (a.summary.n, b.summary.n);
    if na > 0.0 && nb > 0.0 && a.n_actions != b.n_actions {
        return Err(RlError::input(format!(
            "the partitions of table 'bandit' differ in their actions: pi_0..pi_{} in one, pi_0..pi_{} in another",
            a.n_actions.saturating_sub(1),
            b.n_actions.saturating_sub(1)
        )));
    }
    Ok(BanditPartial {
        n_actions: if na > 0.0 { a.n_actions } else { b.n_actions },
        summary: a.summary.merge::<BANDIT_VALUES>(&b.summary)?,
        boot: add_boot(&a.boot, &b.boot)?,
    })
}

/// The estimates from the contribution of the whole log (at least 2 rows).
pub fn bandit_finish(p: &BanditPartial, spec: &CiSpec) -> Result<BanditEstimates, RlError> {
    mergeable(spec)?;
    if p.summary.n < 2.0 {
        return Err(RlError::input("table 'bandit' needs at least 2 rows for an interval"));
    }
    let stats = p.boot.as_ref().map_or_else(Vec::new, |b| b.stats(&bandit_stat));
    let boot = |j: usize| {
        if stats.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            percentile_interval(stats.iter().map(|s| s[j]), spec.alpha)
        }
    };
    Ok(estimates_from_summary(&p.summary.summary::<BANDIT_VALUES>()?, spec, &boot))
}

/// What a partition of whole episodes contributes to the trajectory estimates (docs/scale.md):
/// sums in the layout of its own horizon `h`, widened when merged with a longer one.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrajectoryPartial {
    /// The longest episode seen.
    pub h: usize,
    /// Whether DM and DR are estimated (a model was given); partitions must agree.
    pub model: bool,
    /// The Chan summary of the episodes' four values (TIS, PDIS, DM, DR).
    pub summary: SummaryState,
    /// The unit matrix's column sums ([`TrajectoryInput::units`], horizon `h`).
    pub all: Vec<f64>,
    /// The episodes' largest final weight, and Σ (w/max), Σ (w/max)² (the ESS).
    pub ess: (f64, f64, f64),
    /// Every resample's sums and size (horizon `h`).
    pub boot: ResampledSums,
}

/// The contribution of one partition of whole episodes ([`mergeable`] specs only).
pub fn trajectory_partial(
    input: &TrajectoryInput<'_>,
    gamma: f64,
    spec: &CiSpec,
) -> Result<TrajectoryPartial, RlError> {
    mergeable(spec)?;
    let h = input.horizon();
    let (values, x) = input.units(gamma, h);
    let ones = vec![1u32; values.len()];
    let mut all = vec![0.0; x.width];
    x.weighted_sums(&ones, &mut all);
    let last: Vec<f64> = input.episodes.iter().filter(|e| !e.is_empty()).map(|e| input.w[e.end - 1]).collect();
    // as `effective_sample_size`: sums of the weights over the largest |w| (none when it is 0 or
    // not finite, and then the ESS is 0)
    let top = last.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let ess = if top > 0.0 && top.is_finite() {
        (top, last.iter().map(|w| w / top).sum(), last.iter().map(|w| (w / top) * (w / top)).sum())
    } else {
        (top, 0.0, 0.0)
    };
    Ok(TrajectoryPartial {
        h,
        model: input.model.is_some(),
        summary: SummaryState::of(&Summary::of(&values)),
        all,
        ess,
        boot: resampled(&x, UnitKeys::Ids(input.ids), spec),
    })
}

/// Two partitions' contributions as one.
pub fn trajectory_merge(a: &TrajectoryPartial, b: &TrajectoryPartial) -> Result<TrajectoryPartial, RlError> {
    if a.summary.n > 0.0 && b.summary.n > 0.0 && a.model != b.model {
        return Err(RlError::input(
            "the partitions of table 'transitions' differ: DM and DR were estimated in one and not in another",
        ));
    }
    let h = a.h.max(b.h);
    let widen = |p: &TrajectoryPartial| -> ResampledSums {
        if p.h == h {
            return p.boot.clone();
        }
        let sums = p.boot.sums.chunks(p.boot.width + 1).flat_map(|r| widen_trajectory_sums(r, p.h, h)).collect();
        ResampledSums { width: trajectory_width(h), sums }
    };
    let mut boot = widen(a);
    boot.add(&widen(b)).map_err(RlError::input)?;
    let all: Vec<f64> = widen_trajectory_sums(&a.all, a.h, h)
        .iter()
        .zip(widen_trajectory_sums(&b.all, b.h, h))
        .map(|(x, y)| x + y)
        .collect();
    // the ESS sums in units of the larger final weight
    let top = a.ess.0.max(b.ess.0);
    let rescale = |(m, s1, s2): (f64, f64, f64)| {
        if top.is_finite() && m > 0.0 {
            (s1 * (m / top), s2 * (m / top) * (m / top))
        } else {
            (0.0, 0.0)
        }
    };
    let ((a1, a2), (b1, b2)) = (rescale(a.ess), rescale(b.ess));
    Ok(TrajectoryPartial {
        h,
        model: a.model || b.model,
        summary: a.summary.merge::<4>(&b.summary)?,
        all,
        ess: (top, a1 + b1, a2 + b2),
        boot,
    })
}

/// The trajectory estimates from the contribution of every episode (at least 2).
pub fn trajectory_finish(p: &TrajectoryPartial, spec: &CiSpec) -> Result<TrajectoryEstimates, RlError> {
    mergeable(spec)?;
    if p.summary.n < 2.0 {
        return Err(RlError::input("table 'transitions' needs at least 2 episodes for an interval"));
    }
    let h = p.h;
    let stats = p.boot.stats(&|s: &[f64], size: f64| trajectory_stat(s, size, h));
    let (top, s1, s2) = p.ess;
    let ess = if top > 0.0 && top.is_finite() && s2 > 0.0 { s1 * s1 / s2 } else { 0.0 };
    Ok(trajectory_estimates(&p.summary.summary::<4>()?, &p.all, h, &stats, spec, p.model, ess))
}

/// The trajectory estimates from the episodes' summary, the unit matrix's sums, the bootstrap's
/// statistics and the ESS (the one-table run and [`trajectory_finish`] alike).
pub(crate) fn trajectory_estimates(
    summary: &Summary<4>,
    all: &[f64],
    h: usize,
    stats: &[Vec<f64>],
    spec: &CiSpec,
    model: bool,
    ess: f64,
) -> TrajectoryEstimates {
    let boot = |j: usize| percentile_interval(stats.iter().map(|s| s[j]), spec.alpha);
    let mean_iv =
        |j: usize| summary.interval(j, spec).unwrap_or_else(|| Interval::asymptotic(summary.mean[j], boot(j)));
    TrajectoryEstimates {
        tis: mean_iv(0),
        pdis: mean_iv(1),
        sn_pdis: Interval::asymptotic(sn_pdis_from_sums(all, h), boot(4)),
        dm: model.then(|| mean_iv(2)),
        dr: model.then(|| mean_iv(3)),
        ess,
    }
}

/// The effective sample size of the final weights (the one-table run's).
pub(crate) fn final_weights_ess(input: &TrajectoryInput<'_>) -> f64 {
    effective_sample_size(input.episodes.iter().filter(|e| !e.is_empty()).map(|e| input.w[e.end - 1]))
}
