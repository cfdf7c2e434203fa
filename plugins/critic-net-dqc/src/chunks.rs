//! The chunks of a log: from each row t, h′ = min(h, rows left in its episode) logged actions,
//! their discounted reward sum R = Σ_{k<h′} γ^k r_{t+k}, the bootstrap's weight γ^{h′}(1 − d_{t+h′−1})
//! and the row whose next state it bootstraps from; and the chunks' encodings — per slot the
//! action (one-hot, or the continuous action) and a 1 when the slot holds one (a chunk cut short by
//! the episode's end leaves its last slots empty).

use quiver_neural_critic::data::{Actions, Matrix, NeuralData};

/// The h-step windows of every row.
#[derive(Debug, Clone)]
pub struct Windows {
    /// Chunk length h.
    pub h: usize,
    /// Steps in each row's window, h′.
    pub steps: Vec<u32>,
    /// Σ_{k<h′} γ^k r_{t+k}, in the networks' unit.
    pub reward: Vec<f32>,
    /// γ^{h′}(1 − d_{t+h′−1}).
    pub weight: Vec<f32>,
    /// t + h′ − 1: the row whose `s_next` the window bootstraps from.
    pub last: Vec<u32>,
}

/// The windows of `data` (episodes from its first rows), rewards divided by `unit`: the h-step
/// sums are quiver-rl's segmented scan ([`quiver_rl::data::nstep_returns_in`]).
pub fn windows(data: &NeuralData, h: usize, gamma: f64, unit: f64) -> Windows {
    let bounds: Vec<usize> = data.first_rows.iter().map(|&i| i as usize).chain(std::iter::once(data.n)).collect();
    let episodes: Vec<std::ops::Range<usize>> = bounds.windows(2).map(|w| w[0]..w[1]).collect();
    let (sums, steps) = quiver_rl::data::nstep_returns_in(&data.r, &episodes, h, gamma);
    let last: Vec<u32> = steps.iter().enumerate().map(|(t, &k)| (t + k as usize - 1) as u32).collect();
    let weight = steps
        .iter()
        .zip(&last)
        .map(|(&k, &l)| if data.done[l as usize] { 0.0 } else { (0..k).fold(1.0f64, |g, _| g * gamma) as f32 })
        .collect();
    Windows {
        h,
        steps: steps.iter().map(|&k| k as u32).collect(),
        reward: sums.iter().map(|x| (x / unit) as f32).collect(),
        weight,
        last,
    }
}

/// Width of one slot's encoding.
pub fn slot_width(data: &NeuralData) -> usize {
    match &data.actions {
        Actions::Discrete { count, .. } => count + 1,
        Actions::Continuous { a, .. } => a.cols + 1,
    }
}

/// The inputs [s, slot₀ … slot_{len−1}] of `rows`: the state and the first `len` actions of each
/// row's window (fewer where the window is shorter).
pub fn inputs(data: &NeuralData, w: &Windows, rows: &[u32], len: usize) -> Vec<f32> {
    let (ds, sw) = (data.s.cols, slot_width(data));
    let width = ds + len * sw;
    let mut x = vec![0.0f32; rows.len() * width];
    for (j, &t) in rows.iter().enumerate() {
        let t = t as usize;
        let row = &mut x[j * width..(j + 1) * width];
        row[..ds].copy_from_slice(data.s.row(t));
        for k in 0..len.min(w.steps[t] as usize) {
            let slot = &mut row[ds + k * sw..ds + (k + 1) * sw];
            match &data.actions {
                Actions::Discrete { a, .. } => slot[a[t + k] as usize] = 1.0,
                Actions::Continuous { a, .. } => slot[..sw - 1].copy_from_slice(a.row(t + k)),
            }
            slot[sw - 1] = 1.0;
        }
    }
    x
}

/// The state inputs of `rows` of `states` (a value network's).
pub fn states(states: &Matrix, rows: &[u32]) -> Vec<f32> {
    rows.iter().flat_map(|&i| states.row(i as usize).iter().copied()).collect()
}
