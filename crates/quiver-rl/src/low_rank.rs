//! Low-rank Q estimation on a (state × action) grid (Shah, Song, Xu & Yang, "Sample efficient
//! reinforcement learning via low-rank matrix estimation", NeurIPS 2020), from logged data.
//!
//! Q^π is low rank where the model is — rewards R(s, a) and transition laws P(s′|s, a) that vary
//! with the state and the action through r factors, the paper's setting. The data see only some
//! (s, a) cells Ω. The model is completed, then evaluated exactly:
//!
//! * R̂ (states × actions, observed on Ω) is completed at rank r; so is, for every next state s′,
//!   the matrix P̂(s′|·,·) (with the continuation mass Σ_s′ P̂, to which each completed cell's law
//!   is scaled after negative entries are cut). Completion: the factors U (states × r) and
//!   V (actions × r) of the least-squares fit of UVᵀ on Ω, started from the truncated SVD of
//!   P_Ω(M)/p (the spectral estimate, p the share of cells observed; Keshavan, Montanari & Oh 2010)
//!   and refined by alternating least squares with a small ridge (Jain, Netrapalli & Sanghavi
//!   2013); observed cells keep their data.
//! * Q^π of the completed model by value iteration (a γ-contraction: every completed law has mass
//!   at most 1), to `tol`.
//!
//! With every cell observed nothing is completed and Q is the empirical model's tabular Q^π.
//! (Completing the Bellman backups instead — complete Q, back up, complete again — was tried
//! first: the completion's extrapolation fed back through V and the iteration stalled at a wrong
//! fit, or diverged; completing the model once keeps the evaluation a contraction.)

use crate::policy::Policy;
use crate::tabular::EmpiricalModel;
use crate::RlError;
use ndarray::Array2;
use quiver_numerics::{checkpoint, Progress};

/// The completion's error when a line's normal equations are singular (`ridge` 0 and fewer observed
/// cells than the rank, or collinear ones).
pub const SINGULAR: &str = "a line of the grid has too few observed cells for its least squares at this rank with \
                            ridge 0: raise 'ridge' (e.g. 1e-6) or lower 'rank'";

/// Most alternating least-squares sweeps of one completion.
pub const ALS_SWEEPS: usize = 500;

/// The default ridge of the factors' least squares, relative to the largest observed value: keeps
/// a row or column with few observed cells solvable while biasing the fit by far less than the
/// data's own noise. An over-specified rank with few cells per state needs more (1e-3 is
/// measured to hold such a fit; it also shrinks small entries).
pub const DEFAULT_RIDGE: f64 = 1e-6;

/// The completed fit.
#[derive(Debug, Clone)]
pub struct LowRankFit {
    /// The grid's rows: the states with data, ascending.
    pub states: Vec<u32>,
    /// Q on the grid, one row per state of `states`, one column per action.
    pub q: Array2<f64>,
    /// Which cells the data observed.
    pub observed: Array2<bool>,
    /// V(s) = Σ_a π(a|s) Q(s, a) at each state of `states`.
    pub v: Vec<(u32, f64)>,
    /// The rank used.
    pub rank: usize,
    /// With the rank chosen by cross-validation (`rank` 0 asked): the held-out mean squared
    /// error of the observed rewards at each candidate rank 1, 2, ….
    pub rank_errors: Option<Vec<f64>>,
    /// The singular values of the completed reward matrix (all of them, descending).
    pub reward_singular_values: Vec<f64>,
    /// Value-iteration sweeps done.
    pub iterations: usize,
    /// The last sweep's relative change.
    pub change: f64,
}

/// The spectral start: the truncated SVD of P_Ω(Y)/p, split evenly into U = U_r S_r^½ and
/// V = V_r S_r^½.
pub fn spectral_start(
    y: &Array2<f64>,
    observed: &Array2<bool>,
    rank: usize,
) -> Result<(Array2<f64>, Array2<f64>), RlError> {
    use ndarray_linalg::SVD;
    let share = observed.iter().filter(|&&b| b).count() as f64 / observed.len().max(1) as f64;
    let m = Array2::from_shape_fn(y.dim(), |c| if observed[c] { y[c] / share } else { 0.0 });
    let (u, s, vt) = m.svd(true, true).map_err(|e| RlError::Internal(format!("SVD of the Q grid: {e}")))?;
    let (u, vt) = (u.expect("asked for U"), vt.expect("asked for V^T"));
    let (rows, cols) = y.dim();
    let uf = Array2::from_shape_fn((rows, rank), |(i, k)| u[(i, k)] * s[k].sqrt());
    let vf = Array2::from_shape_fn((cols, rank), |(j, k)| vt[(k, j)] * s[k].sqrt());
    Ok((uf, vf))
}

/// Solve (ρI + Σ_w f_w f_wᵀ) x = Σ_w y_w f_w for one row of a factor, where `cells` lists the
/// line's observed cells as (row of the other factor `other`, value), in the cells' order: the
/// normal equations summed in that order, then solved by Cholesky (they are symmetric positive
/// definite for ρ > 0) — the arithmetic of the GPU kernel `als_lines`, step for step. `a` and `x`
/// are scratch (r × r and r); the solution is left in `x`.
fn ridge_row(
    other: &Array2<f64>,
    cells: &[(usize, f64)],
    rho: f64,
    a: &mut [f64],
    x: &mut [f64],
) -> Result<(), RlError> {
    let r = other.ncols();
    let f = other.as_slice().ok_or_else(|| RlError::Internal("a factor not in row-major order".into()))?;
    // the lower triangle (the factorisation reads no other)
    for p in 0..r {
        for q in 0..=p {
            let mut acc = if p == q { rho } else { 0.0 };
            for &(o, _) in cells {
                acc += f[o * r + p] * f[o * r + q];
            }
            a[p * r + q] = acc;
        }
        let mut acc = 0.0;
        for &(o, y) in cells {
            acc += y * f[o * r + p];
        }
        x[p] = acc;
    }
    // A = L Lᵀ in place (lower triangle), then L z = x, Lᵀ w = z
    for j in 0..r {
        let mut d = a[j * r + j];
        for k in 0..j {
            d -= a[j * r + k] * a[j * r + k];
        }
        if d.is_nan() || d <= 0.0 {
            return Err(RlError::Parameter(SINGULAR.into()));
        }
        let l = d.sqrt();
        a[j * r + j] = l;
        for i in j + 1..r {
            let mut t = a[i * r + j];
            for k in 0..j {
                t -= a[i * r + k] * a[j * r + k];
            }
            a[i * r + j] = t / l;
        }
    }
    for i in 0..r {
        let mut t = x[i];
        for k in 0..i {
            t -= a[i * r + k] * x[k];
        }
        x[i] = t / a[i * r + i];
    }
    for i in (0..r).rev() {
        let mut t = x[i];
        for k in i + 1..r {
            t -= a[k * r + i] * x[k];
        }
        x[i] = t / a[i * r + i];
    }
    Ok(())
}

/// `sweeps` of alternating least squares of UVᵀ to Y on the observed cells: each sweep solves every
/// row of U from V (the ridge ρ = `ridge` × the largest observed |y|), then every row of V from the
/// new U.
pub fn alternate(
    y: &Array2<f64>,
    observed: &Array2<bool>,
    mut u: Array2<f64>,
    mut v: Array2<f64>,
    sweeps: usize,
    ridge: f64,
) -> Result<(Array2<f64>, Array2<f64>), RlError> {
    let (rows, cols) = y.dim();
    let rank = u.ncols();
    let scale = y.iter().zip(observed.iter()).filter(|(_, &o)| o).fold(0.0f64, |m, (x, _)| m.max(x.abs()));
    let rho = ridge * scale.max(f64::MIN_POSITIVE);
    let (mut a, mut x, mut cells) = (vec![0.0; rank * rank], vec![0.0; rank], Vec::new());
    for _ in 0..sweeps {
        for i in 0..rows {
            cells.clear();
            cells.extend((0..cols).filter(|&j| observed[(i, j)]).map(|j| (j, y[(i, j)])));
            ridge_row(&v, &cells, rho, &mut a, &mut x)?;
            u.row_mut(i).iter_mut().zip(&x).for_each(|(d, &s)| *d = s);
        }
        for j in 0..cols {
            cells.clear();
            cells.extend((0..rows).filter(|&i| observed[(i, j)]).map(|i| (i, y[(i, j)])));
            ridge_row(&u, &cells, rho, &mut a, &mut x)?;
            v.row_mut(j).iter_mut().zip(&x).for_each(|(d, &s)| *d = s);
        }
    }
    Ok((u, v))
}

/// `m` completed at rank `rank` off the observed cells (kept as they are); `ridge` relative to the
/// largest observed value ([`DEFAULT_RIDGE`]).
pub fn complete(m: &Array2<f64>, observed: &Array2<bool>, rank: usize, ridge: f64) -> Result<Array2<f64>, RlError> {
    if observed.iter().all(|&o| o) {
        return Ok(m.clone());
    }
    let (mut u, mut v) = spectral_start(m, observed, rank)?;
    let mut last = u.dot(&v.t());
    for _ in 0..ALS_SWEEPS {
        (u, v) = alternate(m, observed, u, v, 1, ridge)?;
        let z = u.dot(&v.t());
        let delta = (&z - &last).iter().fold(0.0f64, |a, x| a.max(x.abs()));
        let scale = z.iter().fold(0.0f64, |a, x| a.max(x.abs()));
        last = z;
        if delta <= 1e-12 * scale.max(f64::MIN_POSITIVE) {
            break;
        }
    }
    Ok(Array2::from_shape_fn(m.dim(), |c| if observed[c] { m[c] } else { last[c] }))
}

/// Folds of the cross-validation of [`choose_rank`].
pub const RANK_FOLDS: usize = 5;
/// The largest rank [`choose_rank`] tries.
pub const MAX_AUTO_RANK: usize = 10;

/// The rank in 1..=`max_rank` whose completion best predicts held-out observed cells of `m`:
/// the observed cells are split into [`RANK_FOLDS`] folds (by a SplitMix64 hash of their place, so
/// the split is fixed), each fold completed from the others at every candidate rank, and the
/// squared errors on the held-out cells summed; the smallest rank within 1 % of the least error
/// wins (a larger rank fits noise as readily as signal). Returns the rank and each rank's mean
/// squared held-out error.
pub fn choose_rank(
    m: &Array2<f64>,
    observed: &Array2<bool>,
    max_rank: usize,
    ridge: f64,
) -> Result<(usize, Vec<f64>), RlError> {
    let cells: Vec<(usize, usize)> = observed.indexed_iter().filter(|(_, &o)| o).map(|(c, _)| c).collect();
    let fold = |k: usize| (quiver_numerics::splitmix::mix(k as u64 + 1) % RANK_FOLDS as u64) as usize;
    let mut errors = vec![0.0; max_rank];
    for f in 0..RANK_FOLDS {
        let held: Vec<(usize, usize)> =
            cells.iter().enumerate().filter(|(k, _)| fold(*k) == f).map(|(_, &c)| c).collect();
        if held.is_empty() {
            continue;
        }
        let mut train = observed.clone();
        for &c in &held {
            train[c] = false;
        }
        for (r, e) in errors.iter_mut().enumerate() {
            let z = complete(m, &train, r + 1, ridge)?;
            *e += held.iter().map(|&c| (z[c] - m[c]).powi(2)).sum::<f64>();
        }
    }
    errors.iter_mut().for_each(|e| *e /= cells.len().max(1) as f64);
    let least = errors.iter().copied().fold(f64::INFINITY, f64::min);
    let rank = errors.iter().position(|&e| e <= least * 1.01).map_or(1, |i| i + 1);
    Ok((rank, errors))
}

fn singular_values(m: &Array2<f64>) -> Result<Vec<f64>, RlError> {
    use ndarray_linalg::SVD;
    let (_, s, _) = m.svd(false, false).map_err(|e| RlError::Internal(format!("SVD of the reward grid: {e}")))?;
    Ok(s.to_vec())
}

/// Where the completions of [`fit`] run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// [`complete`], one matrix after another.
    Cpu,
    /// [`crate::low_rank_cuda::complete_batch_cuda`]: the reward matrix, the continuation mass and
    /// every transition slice at once on the GPU (ranks up to
    /// [`crate::low_rank_cuda::MAX_GPU_RANK`]).
    Cuda,
}

/// Q of π from `model` on the grid of the states with data × `actions` actions: the model
/// completed at rank `rank` (0: chosen by [`choose_rank`] on the observed rewards, up to
/// [`MAX_AUTO_RANK`]), then evaluated to relative change `tol` or `max_iter` sweeps (see the
/// module documentation), `ridge` the completions' ([`complete`]). States reached as s′ with no data of their own are dead ends (V = 0),
/// as for the tabular critics; an action π takes that the data never took at any state has no
/// observed cell to complete from and is refused.
#[allow(clippy::too_many_arguments)]
pub fn fit(
    model: &EmpiricalModel,
    pi: &Policy,
    actions: usize,
    gamma: f64,
    rank: usize,
    ridge: f64,
    tol: f64,
    max_iter: usize,
    completion: Completion,
    progress: &dyn Progress,
) -> Result<LowRankFit, RlError> {
    let mut states: Vec<u32> = model.at_state.keys().copied().collect();
    states.sort_unstable();
    let row: std::collections::HashMap<u32, usize> = states.iter().enumerate().map(|(i, &s)| (s, i)).collect();
    let n = states.len();
    if rank > n.min(actions) {
        return Err(RlError::Parameter(format!(
            "rank {rank} is above min(states, actions) = {} on this {n} x {actions} grid (states with data x \
             actions); rank 0 chooses it by cross-validation",
            n.min(actions)
        )));
    }
    let mut observed = Array2::<bool>::from_elem((n, actions), false);
    for &(s, a) in &model.pairs.pairs {
        observed[(row[&s], a as usize)] = true;
    }
    let taken: Vec<bool> = (0..actions).map(|a| (0..n).any(|i| observed[(i, a)])).collect();
    // π at every state with data, on actions some cell of whose column is observed
    for &s in &states {
        let (acts, ps) = pi.at(s).ok_or_else(|| crate::tabular::missing_policy(s))?;
        if let Some((&a, _)) =
            acts.iter().zip(ps).find(|(&a, &p)| p > 0.0 && !taken.get(a as usize).copied().unwrap_or(false))
        {
            return Err(RlError::input(format!(
                "the target policy takes action {a} at state {s}, and the data never took action {a} at any state: no \
                 cell of its column is observed, so the completion has nothing to estimate it from"
            )));
        }
    }
    // the completions square the values (SVD, least squares): past 1e150 they would overflow
    let largest = model.reward.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    if largest.is_nan() || largest > 1e150 {
        return Err(RlError::input(format!(
            "the rewards reach {largest:e}: the completion squares them, past the double range; rescale the rewards \
             (divide them by {largest:e})"
        )));
    }
    // R̂ completed
    let mut r = Array2::<f64>::zeros((n, actions));
    for (k, &(s, a)) in model.pairs.pairs.iter().enumerate() {
        r[(row[&s], a as usize)] = model.reward[k];
    }
    // rank 0: chosen by cross-validation of the observed rewards
    let (rank, rank_errors) = match rank {
        0 => {
            let (r, e) = choose_rank(&r, &observed, MAX_AUTO_RANK.min(n.min(actions)), ridge)?;
            (r, Some(e))
        }
        r => (r, None),
    };
    // the reward matrix, each next state's P̂(s′|·,·) and the continuation mass, completed; the
    // completed cells' laws cut at 0 and scaled to the completed mass (in [0, 1])
    let mut next_states: Vec<u32> = model.next.iter().flatten().map(|x| x.0).collect();
    next_states.sort_unstable();
    next_states.dedup();
    let mut mass = Array2::<f64>::zeros((n, actions));
    let column: std::collections::HashMap<u32, usize> = next_states.iter().enumerate().map(|(i, &s)| (s, i)).collect();
    let mut slices = vec![Array2::<f64>::zeros((n, actions)); next_states.len()];
    for (k, &(s, a)) in model.pairs.pairs.iter().enumerate() {
        for &(s2, p) in &model.next[k] {
            slices[column[&s2]][(row[&s], a as usize)] = p;
            mass[(row[&s], a as usize)] += p;
        }
    }
    let (r, mass, mut laws) = match completion {
        Completion::Cpu => {
            use rayon::prelude::*;
            // each matrix's completion on its own, in groups on every core (the same results in any
            // order: the matrices are independent); LAPACK on one thread inside the workers
            crate::linear::single_threaded_blas();
            let r = complete(&r, &observed, rank, ridge)?;
            let mass = complete(&mass, &observed, rank, ridge)?;
            let mut laws: Vec<Array2<f64>> = Vec::with_capacity(next_states.len());
            let group = 4 * rayon::current_num_threads().max(1);
            for slices in slices.chunks(group) {
                let done: Vec<Array2<f64>> =
                    slices.par_iter().map(|slice| complete(slice, &observed, rank, ridge)).collect::<Result<_, _>>()?;
                laws.extend(done);
                let total = next_states.len() as u64 + max_iter as u64;
                checkpoint(progress, laws.len() as u64, total, "completing the model")?;
            }
            (r, mass, laws)
        }
        Completion::Cuda => {
            let mut all = Vec::with_capacity(slices.len() + 2);
            all.push(r);
            all.push(mass);
            all.append(&mut slices);
            let mut done =
                crate::low_rank_cuda::complete_batch_cuda(&all, &observed, rank, ridge, progress)?.into_iter();
            let (r, mass) = (done.next().expect("the rewards"), done.next().expect("the mass"));
            (r, mass, done.collect())
        }
    };
    let mass = mass.mapv(|x| x.clamp(0.0, 1.0));
    laws.iter_mut().for_each(|l| l.mapv_inplace(|x| x.max(0.0)));
    for i in 0..n {
        for a in 0..actions {
            if observed[(i, a)] {
                continue;
            }
            let total: f64 = laws.iter().map(|l| l[(i, a)]).sum();
            let f = if total > 0.0 { mass[(i, a)] / total } else { 0.0 };
            laws.iter_mut().for_each(|l| l[(i, a)] *= f);
        }
    }
    // Q^π of the completed model by value iteration
    let mut q = r.clone();
    let (mut change, mut iterations) = (f64::INFINITY, 0);
    while iterations < max_iter {
        let v: Vec<f64> = next_states
            .iter()
            .map(|&s2| match (row.get(&s2), pi.at(s2)) {
                (Some(&i), Some((acts, ps))) => acts.iter().zip(ps).map(|(&a, &p)| p * q[(i, a as usize)]).sum(),
                _ => 0.0,
            })
            .collect();
        let mut next = r.clone();
        for (law, vs) in laws.iter().zip(&v) {
            if *vs != 0.0 {
                next.zip_mut_with(law, |x, p| *x += gamma * p * vs);
            }
        }
        let delta = (&next - &q).iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let scale = next.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        q = next;
        iterations += 1;
        change = quiver_numerics::convergence::relative(delta, scale);
        checkpoint(
            progress,
            (next_states.len() + iterations) as u64,
            next_states.len() as u64 + max_iter as u64,
            "evaluating",
        )?;
        if change <= tol {
            break;
        }
    }
    let reward_singular_values = singular_values(&r)?;
    // every action π takes at these states is a column of the grid (checked above)
    let v = states
        .iter()
        .map(|&s| {
            let value = crate::linear::policy_value(pi, s, |_, a| Some(q[(row[&s], a as usize)]));
            (s, value.expect("π has a row at every state with data"))
        })
        .collect();
    Ok(LowRankFit { states, q, observed, v, rank, rank_errors, reward_singular_values, iterations, change })
}
