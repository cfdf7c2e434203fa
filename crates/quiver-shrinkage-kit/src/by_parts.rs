//! The SURE plugins computed by parts, in rounds (docs/scale.md): one driver for `sure-normal`
//! and `sure-binomial`, each of which says only what its passes read ([`SurePasses`]).
//!
//! Every number the one-call run computes from the units is a sum over them, so each pass over
//! the data sums its partitions' terms and the driver adds them:
//! 1. the method's moments (units, sums for the shrinkage target, Σ c_i, Σ h_i) — the target, the
//!    risk's constant c and the scale s of the map λ = s·t/(1 − t);
//! 2. one pass per sweep — of the certified search for λ̂ (`branch_and_bound`, replayed over the
//!    sweeps so far: `quiver_shrinkage::replay`), of the one-point sweep at a fixed λ, and of the
//!    curve's sweeps — each the sums of `QuadraticRisk::sweep_sums` at the broadcast points;
//! 3. the estimates at λ̂, each partition's in order.
//!
//! The search takes the one-call run's path on sums that differ from the one-call run's only in
//! the order they were added, so λ̂, the risk estimate and the certificate agree to rounding;
//! where the minimum is so flat that Newton stops elsewhere on such sums, both runs still
//! certify the same minimum to the search's tolerance.

use quiver_sdk::abi::{ErrorKind, PluginError};
use quiver_sdk::{Offsets, Round, RoundsImpl, ShrinkageResult, Tables};
use quiver_shrinkage::replay::{replay, NeedSweep, Replayed};
use quiver_shrinkage::risk::{branch_and_bound, lambda_of_t, sweep_of_sums, t_of_lambda, SweepResult, MAX_SWEEP};
use quiver_shrinkage::{Minimum, QuadraticRisk};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// What a SURE method's passes read: implemented by each shrinkage plugin, driven by [`ByParts`].
pub trait SurePasses: Send + Sync + 'static {
    /// The first pass's sums over a partition.
    type Moments: Serialize + DeserializeOwned + Clone;
    /// What the later passes need from the first (the shrinkage target).
    type Target: Serialize + DeserializeOwned + Clone;
    /// Refuse, by name, settings not computed by parts.
    fn check_supported(&self) -> Result<(), PluginError>;
    /// The first pass over one partition (its rows checked as the one-call run checks them).
    fn moments(&self, tables: &Tables<'_>) -> Result<Self::Moments, PluginError>;
    /// Two partitions' moments as one.
    fn add(&self, a: Self::Moments, b: Self::Moments) -> Self::Moments;
    /// From all the data's moments: the units, the target, c = Σ c_i and the scale s.
    fn whole(&self, m: Self::Moments) -> Result<Whole<Self::Target>, PluginError>;
    /// One partition's risk terms toward the target (its constant c unused).
    fn risk(&self, tables: &Tables<'_>, whole: &Whole<Self::Target>) -> Result<QuadraticRisk, PluginError>;
    /// One partition's estimates at λ.
    fn estimates(&self, tables: &Tables<'_>, whole: &Whole<Self::Target>, lambda: f64)
        -> Result<Vec<f64>, PluginError>;
    /// The fixed λ, when the run does not search for λ̂.
    fn fixed_lambda(&self) -> Option<f64>;
    /// Points of the reported risk curve (0: none).
    fn curve_points(&self) -> usize;
    /// The result from the sweeps' answers and every unit's estimate — the one-call run's JSON.
    fn result(
        &self,
        whole: &Whole<Self::Target>,
        plan: &Plan,
        estimates: Vec<f64>,
    ) -> Result<ShrinkageResult, PluginError>;
}

/// What the first pass gives the later ones.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Whole<T> {
    /// Units.
    pub n: u64,
    /// The shrinkage target.
    pub target: T,
    /// c = Σ c_i, the risk's constant.
    pub c: f64,
    /// The scale s of λ = s·t/(1 − t).
    pub s: f64,
}

/// The scale of λ = s·t/(1 − t) from Σ h_i over `n` units: their mean, as
/// `QuadraticRisk::scale` (any positive scale is valid).
pub fn scale(sum_h: f64, n: u64) -> f64 {
    let m = sum_h / n as f64;
    if m > 0.0 && m.is_finite() {
        m
    } else {
        1.0
    }
}

/// The λ of the reported risk curve: λ = s·t/(1 − t) at t = i/`points`, i = 0..=`points`.
pub fn curve_lambdas(s: f64, points: usize) -> Vec<f64> {
    (0..=points).map(|i| lambda_of_t(s, i as f64 / points as f64)).collect()
}

/// What the sweeps answer: λ (searched or fixed), the risk estimate there, the search's
/// certificate, the curve (λ, risk).
#[derive(Debug, Clone)]
pub struct Plan {
    /// λ̂, or the fixed λ.
    pub lambda: f64,
    /// The risk estimate at λ.
    pub risk: f64,
    /// The certified search's answer (when λ was searched).
    pub minimum: Option<Minimum>,
    /// The curve: λ values and the risk estimate at each.
    pub curve: Option<(Vec<f64>, Vec<f64>)>,
}

/// What a partition contributes in one pass.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum State<M> {
    /// The first pass's moments.
    Moments(M),
    /// A sweep's sums at the broadcast points.
    Sums(Vec<f64>),
    /// The last pass: the partition's estimates, in order (merged by concatenation).
    Estimates(Vec<f64>),
}

/// What the driver sends every partition after the first pass.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Broadcast<T> {
    /// The first pass's answer.
    whole: Whole<T>,
    /// The sweeps made so far: points and summed terms.
    log: Vec<(Vec<f64>, Vec<f64>)>,
    /// This pass.
    pass: Pass,
}

/// What a pass after the first computes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Pass {
    /// The sums of a sweep at these points.
    Sweep(Vec<f64>),
    /// The estimates at λ̂.
    Estimates {
        /// λ̂.
        lambda: f64,
    },
}

/// A SURE method's run by parts: [`RoundsImpl`] for any [`SurePasses`].
pub struct ByParts<P>(pub P);

impl<P: SurePasses> ByParts<P> {
    /// The sweeps every pass replays: λ̂'s certified search (or the risk at the fixed λ), then the
    /// curve, each sweep answered by `sweep`.
    fn plan(
        &self,
        w: &Whole<P::Target>,
        sweep: &mut dyn FnMut(&[f64]) -> Result<SweepResult, NeedSweep>,
    ) -> Result<Plan, NeedSweep> {
        // as QuadraticRisk::minimize: the tolerance's unit is the mean of c_i
        let unit = (w.c / w.n as f64).abs();
        let (lambda, risk, minimum) = match self.0.fixed_lambda() {
            Some(l) => (l, sweep(&[t_of_lambda(w.s, l)])?.value[0], None),
            None => {
                let m = branch_and_bound(sweep, unit, 1e-2, w.s)?;
                (m.lambda, m.risk, Some(m))
            }
        };
        let points = self.0.curve_points();
        let curve = if points > 0 {
            // as QuadraticRisk::curve: at most MAX_SWEEP points a sweep
            let ls = curve_lambdas(w.s, points);
            let mut vs = Vec::with_capacity(ls.len());
            for chunk in ls.chunks(MAX_SWEEP) {
                let ts: Vec<f64> = chunk.iter().map(|&l| t_of_lambda(w.s, l)).collect();
                vs.extend(sweep(&ts)?.value);
            }
            Some((ls, vs))
        } else {
            None
        };
        Ok(Plan { lambda, risk, minimum, curve })
    }

    /// The plan replayed over `b`'s log: the next pass's points, or the plan's answer.
    fn replayed(&self, b: &Broadcast<P::Target>) -> Result<Replayed<Plan>, PluginError> {
        let finish = |ts: &[f64], sums: &[f64]| sweep_of_sums(b.whole.n as usize, b.whole.c, ts, sums);
        replay(&b.log, finish, |sweep| self.plan(&b.whole, sweep))
            .map_err(|e| PluginError::new(ErrorKind::Internal, format!("SURE by parts: {e}")))
    }

    /// The pass after the sweeps of `b.log`: another sweep, or the estimates.
    fn next(&self, mut b: Broadcast<P::Target>) -> Result<Round<Broadcast<P::Target>, ShrinkageResult>, PluginError> {
        b.pass = match self.replayed(&b)? {
            Replayed::Need(ts) => Pass::Sweep(ts),
            Replayed::Done(plan) => Pass::Estimates { lambda: plan.lambda },
        };
        Ok(Round::Again(b))
    }
}

fn mismatched() -> PluginError {
    PluginError::input("table 'broadcast': a broadcast of another pass than the states' (give each pass its own)")
}

impl<P: SurePasses> RoundsImpl for ByParts<P> {
    type Broadcast = Broadcast<P::Target>;
    type State = State<P::Moments>;
    type Output = ShrinkageResult;

    fn partial(
        &self,
        tables: &Tables<'_>,
        _: &Offsets,
        broadcast: Option<&Self::Broadcast>,
    ) -> Result<Self::State, PluginError> {
        self.0.check_supported()?;
        let Some(b) = broadcast else { return Ok(State::Moments(self.0.moments(tables)?)) };
        Ok(match &b.pass {
            Pass::Sweep(ts) => State::Sums(self.0.risk(tables, &b.whole)?.sweep_sums(ts, b.whole.s)),
            Pass::Estimates { lambda } => State::Estimates(self.0.estimates(tables, &b.whole, *lambda)?),
        })
    }

    fn merge(&self, a: Self::State, b: Self::State) -> Result<Self::State, PluginError> {
        Ok(match (a, b) {
            (State::Moments(x), State::Moments(y)) => State::Moments(self.0.add(x, y)),
            (State::Sums(mut s), State::Sums(t)) if s.len() == t.len() => {
                s.iter_mut().zip(t).for_each(|(u, v)| *u += v);
                State::Sums(s)
            }
            (State::Estimates(mut e), State::Estimates(f)) => {
                e.extend(f);
                State::Estimates(e)
            }
            _ => return Err(PluginError::input("table 'states': states of different passes")),
        })
    }

    fn finish(
        &self,
        state: Self::State,
        broadcast: Option<&Self::Broadcast>,
    ) -> Result<Round<Self::Broadcast, ShrinkageResult>, PluginError> {
        match (state, broadcast) {
            (State::Moments(m), None) => {
                let whole = self.0.whole(m)?;
                if whole.n < 2 {
                    return Err(PluginError::input("table 'data' has a single unit: shrinkage needs at least 2"));
                }
                self.next(Broadcast { whole, log: Vec::new(), pass: Pass::Sweep(Vec::new()) })
            }
            (State::Sums(sums), Some(b)) => {
                let Pass::Sweep(ts) = &b.pass else { return Err(mismatched()) };
                let mut b = b.clone();
                b.log.push((ts.clone(), sums));
                self.next(b)
            }
            (State::Estimates(estimates), Some(b)) => {
                let Replayed::Done(plan) = self.replayed(b)? else { return Err(mismatched()) };
                if estimates.len() as u64 != b.whole.n {
                    return Err(PluginError::input(format!(
                        "table 'data': {} units in the last pass, {} in the first: give every pass the same data",
                        estimates.len(),
                        b.whole.n
                    )));
                }
                Ok(Round::Done(self.0.result(&b.whole, &plan, estimates)?))
            }
            _ => Err(mismatched()),
        }
    }
}
