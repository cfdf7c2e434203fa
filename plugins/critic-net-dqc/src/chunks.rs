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

/// The windows of `data` (episodes from its first rows), rewards divided by `unit`.
pub fn windows(data: &NeuralData, h: usize, gamma: f64, unit: f64) -> Windows {
    let n = data.n;
    let mut ends = vec![n; n];
    let starts: Vec<usize> = data.first_rows.iter().copied().chain(std::iter::once(n)).collect();
    for w in starts.windows(2) {
        ends[w[0]..w[1]].iter_mut().for_each(|e| *e = w[1]);
    }
    let mut out = Windows {
        h,
        steps: Vec::with_capacity(n),
        reward: Vec::with_capacity(n),
        weight: Vec::new(),
        last: Vec::new(),
    };
    for (t, &end) in ends.iter().enumerate() {
        let steps = h.min(end - t);
        let (mut sum, mut g) = (0.0f64, 1.0f64);
        for k in 0..steps {
            sum += g * data.r[t + k];
            g *= gamma;
        }
        let last = t + steps - 1;
        out.steps.push(steps as u32);
        out.reward.push((sum / unit) as f32);
        out.weight.push(if data.done[last] { 0.0 } else { g as f32 });
        out.last.push(last as u32);
    }
    out
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
