//! The training loop every neural critic runs: minibatches by counter-based draws, progress and
//! cancellation through the host, the loss curve, and divergence caught as an error.

use crate::settings::NetworkSettings;
use quiver_sdk::abi::{ErrorKind, PluginError};
use quiver_sdk::serde_json::{json, Value};
use quiver_sdk::Context;

/// Points of the loss curve kept (the mean loss over each window of steps).
pub const CURVE_POINTS: usize = 200;
/// A prediction past this many times the largest return the rewards allow means the training
/// diverged (no value of any policy can exceed max|r|/(1 − γ) in magnitude).
pub const DIVERGED: f64 = 10.0;

/// What one step reports.
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    /// The minibatch's loss.
    pub loss: f64,
    /// The largest |value| the networks predicted on it, in the networks' unit.
    pub largest: f32,
}

/// The training's record.
#[derive(Debug, Clone, Default)]
pub struct Curve {
    /// The last step of each window.
    pub step: Vec<u64>,
    /// The mean loss over the window.
    pub loss: Vec<f64>,
}

impl Curve {
    /// As JSON.
    pub fn to_json(&self) -> Value {
        json!({"step": self.step, "loss": self.loss})
    }
}

/// Run `settings.steps` steps of `step` (given the step number, its step size on the schedule, and
/// its minibatch's rows, drawn from `0..n`), reporting progress to `ctx` (and stopping when asked), recording the curve, and
/// failing with a message that says so when a loss is not finite or a value leaves the range the
/// rewards allow (`bound`: max|r|/(1 − γ) in the networks' unit). `first_step` > 0 resumes a run (its batches are the ones it would have drawn).
pub fn run(
    settings: &NetworkSettings,
    first_step: u64,
    n: usize,
    bound: f64,
    ctx: &Context,
    mut step: impl FnMut(u64, f64, &[u32]) -> Result<StepReport, PluginError>,
) -> Result<Curve, PluginError> {
    let steps = settings.steps as u64;
    let window = steps.div_ceil(CURVE_POINTS as u64).max(1);
    let mut curve = Curve::default();
    let mut rows = vec![0u32; settings.batch];
    let (mut sum, mut count) = (0.0, 0u64);
    let every = (steps / 100).clamp(1, 1000);
    for k in 0..steps {
        if k % every == 0 {
            ctx.progress(k, steps, "training")?;
        }
        let t = first_step + k;
        quiver_nn::batches::minibatch(settings.seed, t, n, &mut rows);
        let report = step(t, settings.lr_at(k), &rows)?;
        let largest = f64::from(report.largest) / bound;
        if !report.loss.is_finite() || !largest.is_finite() || largest > DIVERGED {
            return Err(PluginError::new(
                ErrorKind::Numerical,
                format!(
                    "the training diverged at step {}: {} (lr = {}; lower it, or raise the batch)",
                    t + 1,
                    if report.loss.is_finite() && largest.is_finite() {
                        format!("a value reached {largest:.3e} times max|r|/(1 - gamma), the largest any return can be")
                    } else {
                        "the loss is not a finite number".to_string()
                    },
                    settings.lr
                ),
            ));
        }
        sum += report.loss;
        count += 1;
        if count == window || k + 1 == steps {
            curve.step.push(t + 1);
            curve.loss.push(sum / count as f64);
            (sum, count) = (0.0, 0);
        }
    }
    ctx.progress(steps, steps, "training")?;
    Ok(curve)
}

/// The networks' unit of value: the rewards' root mean square (1 when every reward is 0), so that
/// rewards — and values, up to 1/(1 − γ) — are of order one whatever the rewards' units; the fixed
/// point is the same, in that unit.
pub fn value_scale(r: &[f64]) -> f64 {
    // scaled by the largest |r| first, so that rewards near 1e±200 neither underflow nor overflow
    let m = r.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    if !(m > 0.0 && m.is_finite()) {
        return 1.0;
    }
    m * (r.iter().map(|x| (x / m) * (x / m)).sum::<f64>() / r.len() as f64).sqrt()
}

/// max|r|/(1 − γ), the largest |value| any policy can have, in units of `unit`.
pub fn return_bound(r: &[f64], gamma: f64, unit: f64) -> f64 {
    let m = r.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    (m / (1.0 - gamma) / unit).max(f64::MIN_POSITIVE)
}

/// The expectile loss |τ − 1(u < 0)| u² of a residual u = target − prediction (IQL's and DQC's
/// value regressions), and its gradient in the prediction.
pub fn expectile(u: f32, tau: f32) -> (f32, f32) {
    let w = if u < 0.0 { 1.0 - tau } else { tau };
    (w * u * u, -2.0 * w * u)
}
