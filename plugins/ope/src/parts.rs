//! `ope` computed by parts (docs/scale.md): a bandit log's partitions, or a partition of whole
//! episodes each (the `policy` and `q` tables read whole by every partition), give what
//! `quiver_rl::ope_parts` sums; merged, they give every estimate and its `t` or `bootstrap`
//! interval — the same, up to the rounding of sums, as the data in one table.

use crate::{bandit_output, model_note, named_finite, trajectory_output, Ope};
use quiver_rl::bootstrap::ResampledSums;
use quiver_rl::ope;
use quiver_sdk::abi::abi_stable::std_types::RVec;
use quiver_sdk::abi::PluginError;
use quiver_sdk::plugin_error;
use quiver_sdk::serde_json::Value;
use quiver_sdk::{CriticResult, MergeableImpl, Offsets, Tables};

/// What a partition contributes: a bandit log's sums, or its episodes' (with the notes the result
/// carries, the same in every partition).
#[derive(serde::Serialize, serde::Deserialize)]
pub enum OpeState {
    /// A partition of a bandit log.
    Bandit(ope::BanditPartial),
    /// A partition of whole episodes, and the result's notes.
    Trajectories(ope::TrajectoryPartial, Vec<String>),
}

/// The `ope` estimator computed by parts.
pub struct OpeByParts(pub(crate) Ope);

impl OpeByParts {
    /// The bootstrap's sums of a partition, on the resolved device (the same counts on both).
    fn sums(&self, plan: &quiver_rl::bootstrap::Plan<'_>) -> Result<ResampledSums, quiver_rl::RlError> {
        self.0.ctx.dispatch(|| Ok(plan.sums_cpu()), || quiver_rl::gpu::resample_sums_cuda(plan))
    }
}

fn overflow() -> PluginError {
    PluginError::input(
        "the estimates overflow double precision: an importance weight pi/mu or a reward of the data is past the \
         double range (run one partition alone to have the row named)",
    )
}

impl MergeableImpl for OpeByParts {
    type State = OpeState;
    type Output = CriticResult;
    fn partial(&self, tables: &Tables<'_>, offsets: &Offsets) -> Result<OpeState, PluginError> {
        let c = &self.0.config;
        ope::mergeable(&c.ci).map_err(plugin_error)?;
        match (tables.opt("bandit"), tables.opt("transitions")) {
            (Some(_), Some(_)) => Err(PluginError::input(
                "tables 'bandit' and 'transitions' were both given: a run evaluates one log, contextual-bandit rounds \
                 or RL trajectories; give one of them",
            )),
            (Some(t), None) => self.0.with_bandit_input(&t, offsets.of("bandit"), |input, refuse| {
                ope::bandit_partial(input, &c.ci, &|plan| self.sums(plan), refuse)
                    .map(OpeState::Bandit)
                    .map_err(plugin_error)
            }),
            (None, Some(_)) => {
                // whole episodes: the bootstrap keys them by their ids, not their place
                let p = self.0.prepare(tables, true)?;
                let partial = ope::trajectory_partial(&p.input(), c.gamma, &c.ci, &|plan| self.sums(plan))
                    .map_err(plugin_error)?;
                Ok(OpeState::Trajectories(partial, p.notes))
            }
            (None, None) => Err(PluginError::input(
                "give the partition's table: 'bandit' (contextual-bandit rounds) or 'transitions' (whole episodes)",
            )),
        }
    }
    fn merge(&self, a: OpeState, b: OpeState) -> Result<OpeState, PluginError> {
        match (a, b) {
            (OpeState::Bandit(a), OpeState::Bandit(b)) => {
                ope::bandit_merge(a, b).map(OpeState::Bandit).map_err(plugin_error)
            }
            (OpeState::Trajectories(a, notes), OpeState::Trajectories(b, _)) => {
                ope::trajectory_merge(a, b).map(|m| OpeState::Trajectories(m, notes)).map_err(plugin_error)
            }
            _ => Err(PluginError::input(
                "table 'states': a bandit log's state and a trajectories' state do not merge (every partition holds \
                 the same kind of log)",
            )),
        }
    }
    fn finish(&self, state: OpeState) -> Result<CriticResult, PluginError> {
        let c = &self.0.config;
        let (values, mut out) = match state {
            OpeState::Bandit(p) => {
                let e = ope::bandit_finish(&p, &c.ci).map_err(plugin_error)?;
                named_finite(&[e.ipw, e.snipw, e.dm, e.dr, e.switch_dr, e.dros]).ok_or_else(overflow)?;
                let note = p.model_outside.map(|(i, k, v)| model_note(c, i as usize, k, v));
                bandit_output(&e, p.summary.n as usize, note)
            }
            OpeState::Trajectories(p, notes) => {
                let e = ope::trajectory_finish(&p, c.gamma, &c.ci).map_err(plugin_error)?;
                trajectory_output(&e, p.summary.n as usize, &notes, |ivs| named_finite(ivs).ok_or_else(overflow))?
            }
        };
        self.0.describe_ci(&mut out);
        Ok(CriticResult {
            device: self.0.ctx.device(),
            values: RVec::from(values),
            json: self.0.ctx.result_text(Value::Object(out)),
        })
    }
}
