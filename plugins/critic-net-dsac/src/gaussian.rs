//! DSAC-T's critic (Duan et al., "Distributional soft actor-critic with three refinements", 2023,
//! arXiv:2310.05858) for policy evaluation: each of two critics models the return of (s, a) as
//! N(Q(s, a), σ(s, a)²) — a network with a mean and a spread output per action, σ = softplus(u) +
//! [`SIGMA_MIN`] — and is trained on
//!
//! * y_q = r + γ(1 − d) Q̄(s′, π) (the **expected value substituted** for the sampled return in the
//!   mean's gradient), and
//! * y_z = r + γ(1 − d) z′, z′ ~ N(Q̄(s′, a′), σ̄(s′, a′)²), a′ ~ π(·|s′) (the sampled return, for the
//!   spread's gradient), clipped to Q ± `clip`·√ω;
//!
//! with the gradient of the Gaussian log-likelihood taken as
//! −(ω + ε)[(y_q − Q)/(σ² + ε) ∇Q + ((y_z − Q)² − σ²)/(σ³ + ε) ∇σ] (the **variance-based gradient
//! adjustment**: ω a moving average of σ², ε = [`EPS`]), and the target of each row taken from the
//! **twin** whose mean value at s′ is the smaller. The mean's fixed point is Q^π of the data; the
//! spread's, where the network can represent it, the variance of the return in the empirical model
//! (Sobel's variance Bellman equation: the Gaussian form is exact in the first two moments).

use quiver_neural_critic::data::{Actions, NeuralData};
use quiver_neural_critic::draws::{box_muller, pick, uniform};
use quiver_neural_critic::qnet::{At, QNet};
use quiver_sdk::abi::PluginError;

/// The smallest spread, in the networks' value unit.
pub const SIGMA_MIN: f32 = 1e-3;
/// ε of the variance-based gradient adjustment (in squared value units).
pub const EPS: f32 = 0.1;

/// softplus(u) = ln(1 + eᵘ), without overflow.
pub fn softplus(u: f32) -> f32 {
    if u > 20.0 {
        u
    } else {
        u.exp().ln_1p()
    }
}

fn sigmoid(u: f32) -> f32 {
    1.0 / (1.0 + (-u).exp())
}

/// One critic's outputs at a row: (mean, σ, raw spread u) of action `a` (discrete: the
/// per-action blocks; continuous: the two outputs).
pub fn head(raw: &[f32], row: usize, a: usize, actions: usize) -> (f32, f32, f32) {
    let width = 2 * actions;
    let (m, u) = (raw[row * width + a], raw[row * width + actions + a]);
    (m, softplus(u) + SIGMA_MIN, u)
}

/// The number of actions a head has outputs for (1 for continuous actions).
pub fn head_actions(data: &NeuralData) -> usize {
    match &data.actions {
        Actions::Discrete { count, .. } => *count,
        Actions::Continuous { .. } => 1,
    }
}

/// The targets of one minibatch: (y_q, y_z) per row, in the networks' unit.
pub struct Targets {
    /// r + γ(1 − d) Q̄(s′, π).
    pub expected: Vec<f32>,
    /// r + γ(1 − d) z′, z′ drawn from the next return's distribution.
    pub sampled: Vec<f32>,
}

/// The targets of `rows` from the critics' target networks (the twin with the smaller mean value
/// at s′ for each row when `twin`), with a′ and z′ drawn from counters of `key` and `step`.
#[allow(clippy::too_many_arguments)]
pub fn targets(
    critics: &mut [QNet],
    data: &NeuralData,
    rows: &[u32],
    reward: &[f32],
    gamma: f32,
    twin: bool,
    key: u64,
    step: u64,
) -> Result<Targets, PluginError> {
    let k = head_actions(data);
    let used = if twin { critics.len() } else { 1 };
    let raws: Vec<Vec<f32>> = critics[..used]
        .iter_mut()
        .map(|c| c.target_raw(data, &data.s_next, rows, At::PolicyNext))
        .collect::<Result<_, _>>()?;
    let b = rows.len();
    let (mut expected, mut sampled) = (Vec::with_capacity(b), Vec::with_capacity(b));
    for (j, &i) in rows.iter().enumerate() {
        let i = i as usize;
        let counter = (step * b as u64 + j as u64) * 3;
        // a′ ~ π(·|s′) (discrete), and each twin's value of π at s′
        let (a_next, values): (usize, Vec<f32>) = match &data.actions {
            Actions::Discrete { pi_next, .. } => {
                let p = pi_next.row(i);
                let a = pick(p, uniform(key, counter) as f32);
                let v = raws.iter().map(|raw| (0..k).map(|x| p[x] * head(raw, j, x, k).0).sum()).collect();
                (a, v)
            }
            Actions::Continuous { .. } => (0, raws.iter().map(|raw| head(raw, j, 0, k).0).collect()),
        };
        let pick = (0..values.len()).min_by(|&x, &y| values[x].total_cmp(&values[y])).unwrap_or(0);
        let (m, sd, _) = head(&raws[pick], j, a_next, k);
        // z′ ~ N(m, sd²) by Box–Muller on two counters
        let normal = box_muller(uniform(key, counter + 1), uniform(key, counter + 2));
        let cont = if data.done[i] { 0.0 } else { gamma };
        expected.push(reward[i] + cont * values[pick]);
        sampled.push(reward[i] + cont * (m + sd * normal));
    }
    Ok(Targets { expected, sampled })
}

/// What one critic's step reports: its mean negative log-likelihood (without the constant), the
/// mean σ² of its batch, and its largest |Q|.
pub struct Stepped {
    /// Mean of ln σ + (y_z − Q)²/(2σ²).
    pub nll: f64,
    /// Mean σ² over the batch.
    pub variance: f64,
    /// Largest |Q|.
    pub largest: f32,
}

/// One Adam step of `critic` on the batch `rows` toward `t`, with the adjustment's ω and the clip.
pub fn step(
    critic: &mut QNet,
    data: &NeuralData,
    rows: &[u32],
    t: &Targets,
    omega: f32,
    clip: f32,
) -> Result<Stepped, PluginError> {
    let k = head_actions(data);
    let raw = critic.online_raw(data, &data.s, rows, At::Logged)?;
    let b = rows.len() as f32;
    let mut dout = vec![0.0f32; raw.len()];
    let (mut nll, mut variance, mut largest) = (0.0f64, 0.0f64, 0.0f32);
    let bound = clip * omega.sqrt();
    for (j, &i) in rows.iter().enumerate() {
        let a = match &data.actions {
            Actions::Discrete { a, .. } => a[i as usize] as usize,
            Actions::Continuous { .. } => 0,
        };
        let (q, sd, u) = head(&raw, j, a, k);
        let yz = if clip > 0.0 { t.sampled[j].clamp(q - bound, q + bound) } else { t.sampled[j] };
        let var = sd * sd;
        let scale = (omega + EPS) / b;
        let dq = -scale * (t.expected[j] - q) / (var + EPS);
        let dsd = -scale * ((yz - q) * (yz - q) - var) / (var * sd + EPS);
        dout[j * 2 * k + a] = dq;
        dout[j * 2 * k + k + a] = dsd * sigmoid(u);
        nll += f64::from(sd.ln() + (t.sampled[j] - q).powi(2) / (2.0 * var));
        variance += f64::from(var);
        largest = largest.max(q.abs());
    }
    critic.step_raw(&dout)?;
    Ok(Stepped { nll: nll / f64::from(b), variance: variance / f64::from(b), largest })
}
