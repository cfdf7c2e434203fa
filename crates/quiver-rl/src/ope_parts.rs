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
//! Hoeffding's and the empirical Bernstein intervals need the values' count, mean and standard
//! deviation — the summaries hold them; betting runs through the units in order and is not
//! computed by parts ([`mergeable`]).

use crate::bootstrap::{percentile_interval, Plan, ResampledSums, UnitKeys};
use crate::ope::{
    bandit_bounded, bandit_stat, estimates_from_summary, final_weights, model_outside, sn_pdis_from_sums,
    trajectory_bounded, trajectory_stat, trajectory_width, widen_trajectory_sums, BadRow, BanditEstimates, BanditInput,
    CiSpec, Interval, Summary, TrajectoryEstimates, TrajectoryInput, WeightSums, BANDIT_VALUES,
};
use crate::ope_bounds::{FiniteKind, Range1};
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
/// of sums, SN-PDIS's the bootstrap's), `ci=bootstrap` (the counts are per unit, so each partition
/// resamples its own units), `empirical-bernstein` and `hoeffding` (count, mean and standard
/// deviation); not `betting`.
pub fn mergeable(spec: &CiSpec) -> Result<(), RlError> {
    if spec.method.finite() != Some(FiniteKind::Betting) {
        Ok(())
    } else {
        Err(RlError::Unsupported(format!(
            "ci={} is not computed by parts: the betting intervals run through the units in order; a partitioned \
             run takes ci=t, bootstrap, empirical-bernstein or hoeffding (or give the log as one table)",
            spec.method
        )))
    }
}

/// Computes every resample's sums of a plan's units: [`Plan::sums_cpu`], or the GPU's
/// [`crate::gpu::resample_sums_cuda`] (the same counts).
pub type SumsResampler<'r> = &'r dyn Fn(&Plan<'_>) -> Result<ResampledSums, RlError>;

/// Every resample's sums of the units `x` of a partition.
fn resampled(
    x: &crate::bootstrap::UnitMatrix,
    keys: UnitKeys<'_>,
    spec: &CiSpec,
    sums: SumsResampler<'_>,
) -> Result<ResampledSums, RlError> {
    // B rows of width + 1 sums, held and then sealed into the state (a second copy): refused
    // before they are allocated when past the memory limit (many resamples of long episodes)
    let bytes = spec.resamples as f64 * (x.width + 1) as f64 * 8.0 * 2.0;
    quiver_numerics::memory::reserve(bytes, "the bootstrap's resampled sums of a partition (resamples x slots)")?;
    let none = |_: &[f64], _: f64| Vec::new();
    sums(&Plan { x, keys, resamples: spec.resamples, seed: spec.seed, stat: &none })
}

fn add_boot(a: Option<ResampledSums>, b: Option<ResampledSums>) -> Result<Option<ResampledSums>, RlError> {
    Ok(match (a, b) {
        (Some(mut a), Some(b)) => {
            a.add(&b).map_err(RlError::input)?;
            Some(a)
        }
        (a, b) => a.or(b),
    })
}

/// What one partition of a bandit log contributes to the estimates (docs/scale.md).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BanditPartial {
    /// Actions (`pi_*` columns); partitions must agree.
    pub n_actions: usize,
    /// The Chan summary of the six row values.
    pub summary: SummaryState,
    /// Every resample's sums of the six values and its size, where an interval is the bootstrap's
    /// (any `ci` but `t`).
    pub boot: Option<ResampledSums>,
    /// A finite-sample kind with `weight_max`: the first row (of the whole log), action and value
    /// where the reward model leaves the declared range.
    pub model_outside: Option<(u64, usize, f64)>,
}

/// The contribution of one partition of a bandit log ([`mergeable`] specs only), whose first row is
/// row `input.first` of the whole log; `refuse` words the error of a refused row.
pub fn bandit_partial(
    input: &BanditInput<'_>,
    spec: &CiSpec,
    sums: SumsResampler<'_>,
    refuse: &dyn Fn(BadRow) -> RlError,
) -> Result<BanditPartial, RlError> {
    mergeable(spec)?;
    if input.a.is_empty() {
        let s: Summary<BANDIT_VALUES> = Summary::of(&[]);
        return Ok(BanditPartial {
            n_actions: input.pi.len(),
            summary: SummaryState::of(&s),
            boot: None,
            model_outside: None,
        });
    }
    let s = input.summary().map_err(refuse)?;
    // the bootstrap's sums wherever an interval is the bootstrap's (every estimator's under
    // `ci=bootstrap`; DM's, SNIPW's, Switch-DR's and DRos's under the finite-sample kinds)
    let boot = if crate::ope::bandit_needs_bootstrap(spec) {
        let x = input.units().map_err(refuse)?;
        Some(resampled(&x, UnitKeys::From(input.first), spec, sums)?)
    } else {
        None
    };
    let outside = match (spec.method.finite(), spec.declared) {
        (Some(_), Some(d)) if d.weight_max.is_some() => {
            model_outside(input, &d).map(|(i, k)| (input.first + i as u64, k, input.qhat[k][i]))
        }
        _ => None,
    };
    Ok(BanditPartial { n_actions: input.pi.len(), summary: SummaryState::of(&s), boot, model_outside: outside })
}

/// Two partitions' contributions as one (`a`'s rows first).
pub fn bandit_merge(a: BanditPartial, b: BanditPartial) -> Result<BanditPartial, RlError> {
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
        boot: add_boot(a.boot, b.boot)?,
        // the first of the log: the earlier partition's, else the later's
        model_outside: a.model_outside.or(b.model_outside),
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
    let s = p.summary.summary::<BANDIT_VALUES>()?;
    let mut est = estimates_from_summary(&s, spec, &boot);
    if let (Some(kind), Some(d)) = (spec.method.finite(), spec.declared) {
        if d.weight_max.is_some() {
            let outside = p.model_outside.map(|(i, k, _)| (i as usize, k));
            bandit_bounded(&mut est, &s, &d, kind, spec.alpha, outside);
        }
    }
    Ok(est)
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
    /// The episodes' final weights' sums (the ESS).
    pub ess: WeightSums,
    /// Every resample's sums and size (horizon `h`).
    pub boot: ResampledSums,
    /// The model's range (Q̂ and V̂) and whether it was fitted on other data (a `q` table).
    pub model_range: Option<(f64, f64, bool)>,
    /// The first and last episode ids (an episode cut between partitions is refused).
    pub span: Option<crate::EpisodeSpan>,
}

/// The contribution of one partition of whole episodes ([`mergeable`] specs only).
pub fn trajectory_partial(
    input: &TrajectoryInput<'_>,
    gamma: f64,
    spec: &CiSpec,
    sums: SumsResampler<'_>,
) -> Result<TrajectoryPartial, RlError> {
    mergeable(spec)?;
    let h = input.horizon();
    let (values, x) = input.units(gamma, h);
    let ones = vec![1u32; values.len()];
    let mut all = vec![0.0; x.width];
    x.weighted_sums(&ones, &mut all);
    Ok(TrajectoryPartial {
        h,
        model: input.model.is_some(),
        summary: SummaryState::of(&Summary::of(&values)),
        all,
        ess: final_weights(input),
        boot: resampled(&x, UnitKeys::Ids(input.ids), spec, sums)?,
        model_range: input.model_range.map(|(r, external)| (r.a, r.b, external)),
        span: (!input.ids.is_empty())
            .then(|| crate::EpisodeSpan { first: input.ids[0] as i64, last: input.ids[input.ids.len() - 1] as i64 }),
    })
}

/// Two partitions' contributions as one (`a`'s episodes first).
pub fn trajectory_merge(a: TrajectoryPartial, b: TrajectoryPartial) -> Result<TrajectoryPartial, RlError> {
    if a.summary.n > 0.0 && b.summary.n > 0.0 && a.model != b.model {
        return Err(RlError::input(
            "the partitions of table 'transitions' differ: DM and DR were estimated in one and not in another",
        ));
    }
    let h = a.h.max(b.h);
    // a partition's sums in the layout of horizon h (its own, moved, when that is h)
    let widen = |p_h: usize, boot: ResampledSums| -> ResampledSums {
        if p_h == h {
            return boot;
        }
        let sums = boot.sums.chunks(boot.width + 1).flat_map(|r| widen_trajectory_sums(r, p_h, h)).collect();
        ResampledSums { width: trajectory_width(h), sums }
    };
    let mut boot = widen(a.h, a.boot);
    boot.add(&widen(b.h, b.boot)).map_err(RlError::input)?;
    let all: Vec<f64> = widen_trajectory_sums(&a.all, a.h, h)
        .iter()
        .zip(widen_trajectory_sums(&b.all, b.h, h))
        .map(|(x, y)| x + y)
        .collect();
    Ok(TrajectoryPartial {
        h,
        model: a.model || b.model,
        summary: a.summary.merge::<4>(&b.summary)?,
        all,
        ess: a.ess.merge(b.ess),
        boot,
        model_range: a.model_range.or(b.model_range),
        span: crate::EpisodeSpan::merge(a.span, b.span)?,
    })
}

/// The trajectory estimates from the contribution of every episode (at least 2), discount γ.
pub fn trajectory_finish(p: &TrajectoryPartial, gamma: f64, spec: &CiSpec) -> Result<TrajectoryEstimates, RlError> {
    mergeable(spec)?;
    if p.summary.n < 2.0 {
        return Err(RlError::input("table 'transitions' needs at least 2 episodes for an interval"));
    }
    let h = p.h;
    let stats = p.boot.stats(&|s: &[f64], size: f64| trajectory_stat(s, size, h));
    let s = p.summary.summary::<4>()?;
    let mut est = trajectory_estimates(&s, &p.all, h, &stats, spec, p.model, p.ess.ess());
    if let (Some(kind), Some(d)) = (spec.method.finite(), spec.declared) {
        let model_range = p.model_range.map(|(a, b, external)| (Range1 { a, b }, external));
        trajectory_bounded(&mut est, &s, &d, kind, spec.alpha, (gamma, h), model_range);
    }
    Ok(est)
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
