//! The flow: a velocity field v_θ(t, x | s, a) on the scalar return x, integrated from noise
//! x₀ ~ N(0, 1) at t = 0 to t = 1 — by Euler's method or the midpoint rule in a fixed number of
//! steps — reads out a draw of the return of (s, a); the mean of the draws is Q(s, a). Training
//! is flow matching (Lipman et al., ICLR 2023) toward TD targets: a target y = r + γ(1 − d)·x̂₁(s′, a′)
//! (a draw read out by the target network at π's next action), then at interpolants
//! t ∈ (0, 1), x_t = (1 − t) x₀ + t y, the velocity regresses on y − x₀.

use quiver_neural_critic::data::{Actions, Matrix, NeuralData};
use quiver_neural_critic::draws::{box_muller, pick, uniform};

quiver_sdk::choices! {
    /// How the read-out integrates the velocity field.
    pub enum Integrator {
        /// x ← x + h v(t, x).
        Euler = "euler",
        /// x ← x + h v(t + h/2, x + (h/2) v(t, x)) (two evaluations a step).
        Midpoint = "midpoint",
    }
}

/// A standard normal from two counters (Box–Muller).
pub fn normal(key: u64, counter: u64) -> f32 {
    box_muller(uniform(key, 2 * counter), uniform(key, 2 * counter + 1))
}

/// Which action of each row the velocity field is conditioned on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The logged action.
    Logged,
    /// The target policy's at s′: drawn from `pi_next_<a>` (discrete) or `a_next_<k>`.
    Next,
    /// The target policy's at s: `a_pi_<k>` (continuous only; discrete V averages over π).
    Here,
}

/// Width of an action's encoding: one-hot over the actions, or the continuous action.
pub fn action_width(data: &NeuralData) -> usize {
    match &data.actions {
        Actions::Discrete { count, .. } => *count,
        Actions::Continuous { a, .. } => a.cols,
    }
}

/// The rows' inputs [s, action, t, x] (t and x filled in later, per integration step), with the
/// action `which` names — for discrete `Next`, drawn from π(·|s′) by counters of `key` (or the
/// action `fixed` when given).
pub fn inputs(
    data: &NeuralData,
    states: &Matrix,
    rows: &[u32],
    which: Which,
    fixed: Option<usize>,
    key: u64,
    counter: u64,
) -> Result<Vec<f32>, &'static str> {
    let (ds, da) = (states.cols, action_width(data));
    let width = ds + da + 2;
    let mut x = vec![0.0f32; rows.len() * width];
    for (j, &i) in rows.iter().enumerate() {
        let i = i as usize;
        let row = &mut x[j * width..(j + 1) * width];
        row[..ds].copy_from_slice(states.row(i));
        let act = &mut row[ds..ds + da];
        match &data.actions {
            Actions::Discrete { a, pi_next, .. } => {
                let k = match (fixed, which) {
                    (Some(k), _) => k,
                    (None, Which::Logged) => a[i] as usize,
                    (None, Which::Next) => pick(pi_next.row(i), uniform(key, counter + j as u64) as f32),
                    (None, Which::Here) => return Err("an action per row"),
                };
                act[k] = 1.0;
            }
            Actions::Continuous { a, a_next, a_pi, .. } => {
                let m = match which {
                    Which::Logged => a,
                    Which::Next => a_next,
                    Which::Here => a_pi.as_ref().ok_or("a_pi_<k> columns")?,
                };
                act.copy_from_slice(m.row(i));
            }
        }
    }
    Ok(x)
}

/// Integrate the velocity field `field` (outputs for inputs) from `x0` over `steps` steps, with
/// the rows' inputs `base` (their t and x columns overwritten at each evaluation).
pub fn integrate<E>(
    mut field: impl FnMut(&[f32], usize) -> Result<Vec<f32>, E>,
    base: &mut [f32],
    x0: &[f32],
    steps: usize,
    integrator: Integrator,
) -> Result<Vec<f32>, E> {
    let n = x0.len();
    let width = base.len() / n.max(1);
    let mut x = x0.to_vec();
    let h = 1.0 / steps as f32;
    let mut eval = |t: f32, at: &[f32], base: &mut [f32]| {
        for (row, &v) in base.chunks_exact_mut(width).zip(at) {
            row[width - 2] = t;
            row[width - 1] = v;
        }
        field(base, n)
    };
    for k in 0..steps {
        let t = k as f32 * h;
        let v = eval(t, &x, base)?;
        match integrator {
            Integrator::Euler => x.iter_mut().zip(&v).for_each(|(x, v)| *x += h * v),
            Integrator::Midpoint => {
                let mid: Vec<f32> = x.iter().zip(&v).map(|(x, v)| x + 0.5 * h * v).collect();
                let v2 = eval(t + 0.5 * h, &mid, base)?;
                x.iter_mut().zip(&v2).for_each(|(x, v)| *x += h * v);
            }
        }
    }
    Ok(x)
}
