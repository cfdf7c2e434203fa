//! The moments of a linear critic, accumulated in chunks without ever holding Φ for the whole
//! data set, and the solves built on them.
//!
//! With Φ the features of the rows, Φ̄′ the next-state features of the target (zero where the
//! episode ends), r the rewards and γ the discount:
//!
//! * C = ΦᵀΦ, M = ΦᵀΦ̄′, b = Φᵀr (one pass over the data);
//! * LSTD: A = C − γM, θ = (A + λI)⁻¹ b (LU);
//! * FQE: θ_{k+1} = argmin_θ ‖Φθ − (r + γΦ̄′θ_k)‖² + λ‖θ‖² = (C + λI)⁻¹ (b + γ M θ_k) — each
//!   iteration is one ridge regression of the data onto its bootstrapped targets, computed from
//!   the moments (Cholesky once, O(d²) per iteration); its fixed point is LSTD's θ.

use crate::data::{States, Transitions};
use crate::features::{DenseRows, NextTarget, PairIndex};
use crate::policy::Policy;
use crate::RlError;
use ndarray::{Array1, Array2};
use ndarray_linalg::{FactorizeInto, ReciprocalConditionNum, Solve};
use quiver_numerics::{checkpoint, Progress};
use rayon::prelude::*;

/// Rows per chunk of the dense accumulation (two 4096 × d blocks per lane).
pub const CHUNK_ROWS: usize = 4096;

/// Memory the parallel accumulation's per-lane buffers may take together (bytes).
pub const MOMENTS_MEMORY: usize = 2 << 30;

/// Lanes of the dense accumulation: fixed, so that its sums are the same on any number of cores.
pub const LANES: usize = 8;

/// Largest number of features of a critic (the d × d moments live in memory; LU is O(d³)).
pub const MAX_FEATURES: usize = 4096;

/// The moments C = ΦᵀΦ, M = ΦᵀΦ̄′, b = Φᵀr of a data set.
#[derive(Debug, Clone)]
pub struct Moments {
    /// ΦᵀΦ (d × d).
    pub c: Array2<f64>,
    /// ΦᵀΦ̄′ (d × d); rows with `done` contribute nothing.
    pub m: Array2<f64>,
    /// Φᵀr.
    pub b: Array1<f64>,
}

extern "C" {
    fn openblas_set_num_threads(n: std::os::raw::c_int);
}

/// OpenBLAS on one thread: the chunks already run in parallel (one worker per chunk), and
/// OpenBLAS threads inside rayon workers would oversubscribe the cores.
pub(crate) fn single_threaded_blas() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: a plain setter of OpenBLAS's global thread count, called once per process.
    ONCE.call_once(|| unsafe { openblas_set_num_threads(1) });
}

/// `acc += xᵀ y` for row-major x (rows × p) and y (rows × q), acc row-major p × q (dgemm).
pub fn add_xty(acc: &mut [f64], x: &[f64], y: &[f64], rows: usize, p: usize, q: usize) {
    add_xty_strided(acc, (x, p), (y, q), rows, p, q);
}

/// [`add_xty`] for factors that are the first p (or q) columns of wider row-major matrices, given
/// with their row lengths (leading dimensions): `(x, ldx)` holds rows × ldx values, of which each
/// row's first p are x's; likewise `(y, ldy)`; acc is p × q.
pub fn add_xty_strided(
    acc: &mut [f64],
    (x, ldx): (&[f64], usize),
    (y, ldy): (&[f64], usize),
    rows: usize,
    p: usize,
    q: usize,
) {
    if rows == 0 || p == 0 || q == 0 {
        return;
    }
    assert!(p <= ldx && q <= ldy && x.len() >= (rows - 1) * ldx + p && y.len() >= (rows - 1) * ldy + q);
    assert_eq!(acc.len(), p * q);
    // SAFETY: the lengths were checked above; row-major layouts with leading dimensions ldx, ldy, q.
    unsafe {
        cblas_sys::cblas_dgemm(
            cblas_sys::CblasRowMajor,
            cblas_sys::CblasTrans,
            cblas_sys::CblasNoTrans,
            p as i32,
            q as i32,
            rows as i32,
            1.0,
            x.as_ptr(),
            ldx as i32,
            y.as_ptr(),
            ldy as i32,
            1.0,
            acc.as_mut_ptr(),
            q as i32,
        );
    }
}

/// `acc += xᵀ x`, upper triangle only, for row-major x (rows × p), acc row-major p × p (dsyrk:
/// half the products of [`add_xty`]; the lower triangle is left as it is).
pub fn add_xtx_upper(acc: &mut [f64], x: &[f64], rows: usize, p: usize) {
    if rows == 0 || p == 0 {
        return;
    }
    assert!(x.len() >= rows * p && acc.len() == p * p);
    // SAFETY: the lengths were checked above; row-major x with leading dimension p, acc p × p.
    unsafe {
        cblas_sys::cblas_dsyrk(
            cblas_sys::CblasRowMajor,
            cblas_sys::CblasUpper,
            cblas_sys::CblasTrans,
            p as i32,
            rows as i32,
            1.0,
            x.as_ptr(),
            p as i32,
            1.0,
            acc.as_mut_ptr(),
            p as i32,
        );
    }
}

/// The d × d block-diagonal symmetric matrix (d = actions · dd) whose block a is the symmetric
/// matrix with the upper triangle of `packed[a·dd² ..]` (row-major dd × dd).
fn blocks_to_symmetric(packed: &[f64], actions: usize, dd: usize) -> Vec<f64> {
    let d = actions * dd;
    let mut c = vec![0.0; d * d];
    for a in 0..actions {
        let block = &packed[a * dd * dd..(a + 1) * dd * dd];
        for i in 0..dd {
            for j in i..dd {
                let v = block[i * dd + j];
                c[(a * dd + i) * d + a * dd + j] = v;
                c[(a * dd + j) * d + a * dd + i] = v;
            }
        }
    }
    c
}

struct Partial {
    c: Vec<f64>,
    m: Vec<f64>,
    b: Vec<f64>,
}

impl Partial {
    fn zeros(d: usize) -> Partial {
        Partial { c: vec![0.0; d * d], m: vec![0.0; d * d], b: vec![0.0; d] }
    }
    fn add(mut self, o: Partial) -> Partial {
        self.c.iter_mut().zip(&o.c).for_each(|(a, b)| *a += b);
        self.m.iter_mut().zip(&o.m).for_each(|(a, b)| *a += b);
        self.b.iter_mut().zip(&o.b).for_each(|(a, b)| *a += b);
        self
    }
}

/// The multiply-adds [`accumulate_dense`] takes: n·(2d² + d) for dense rows; with action blocks
/// (random Fourier features, D per action) n·(D(D + 1)/2 + D·d + D) — one block of C's upper
/// triangle, one block row of M and one block of b per row.
pub fn moment_work(rows: &DenseRows<'_, '_>) -> f64 {
    let (n, d) = (rows.data.n as f64, rows.map.dim() as f64);
    match rows.action_blocks() {
        Some((_, dd)) => {
            let dd = dd as f64;
            n * (dd * (dd + 1.0) / 2.0 + dd * d + dd)
        }
        None => n * (2.0 * d * d + d),
    }
}

/// One pass over the data with dense features (`rff`, `given`): chunks of [`CHUNK_ROWS`] rows,
/// in parallel, each multiplied into its lane's moments by BLAS, the lanes then summed in order (the same sums on any number of threads). Reports progress
/// per chunk and stops when asked.
pub fn accumulate_dense(rows: &DenseRows<'_, '_>, progress: &dyn Progress) -> Result<Moments, RlError> {
    single_threaded_blas();
    let data = rows.data;
    let d = rows.map.dim();
    let n = data.n;
    let chunks = n.div_ceil(CHUNK_ROWS);
    let blocks = rows.action_blocks();
    let done_chunks = std::sync::atomic::AtomicU64::new(0);
    let stop = std::sync::atomic::AtomicBool::new(false);
    // LANES lanes (fewer when their accumulators and chunk buffers would not fit in
    // MOMENTS_MEMORY), lane l taking chunks l, l + L, l + 2L, …, each with its own accumulator
    // (2d² values), the lanes' sums added in lane order: the sums depend neither on the
    // scheduling nor on the number of threads, and with more lanes than threads a core slowed by
    // other work leaves its lanes to the others
    let per_lane = (2 * d * d + d + 2 * CHUNK_ROWS * d) * std::mem::size_of::<f64>();
    let lanes = LANES.min((MOMENTS_MEMORY / per_lane).max(1)).min(chunks.max(1));
    let result = quiver_numerics::with_threads(progress.threads(), || {
        let partials: Vec<Partial> = (0..lanes)
            .into_par_iter()
            .with_max_len(1)
            .map(|w| {
                let (mut acc, mut phi, mut next) =
                    (Partial::zeros(d), vec![0.0; CHUNK_ROWS * d], vec![0.0; CHUNK_ROWS * d]);
                let mut r = vec![0.0; if blocks.is_some() { CHUNK_ROWS } else { 0 }];
                for k in (w..chunks).step_by(lanes) {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let range = k * CHUNK_ROWS..((k + 1) * CHUNK_ROWS).min(n);
                    let m = range.len();
                    if let Some((actions, dd)) = blocks {
                        // φ(s, a) = e_a ⊗ ψ(s): block a of C gets the a-rows' ψψᵀ (the other
                        // blocks of C are zero), block-row a of M their ψ φ̄′ᵀ, block a of b ψ r —
                        // a quarter of the products of C and half of M's for two actions
                        let psi = &mut phi[..m * dd];
                        let starts = rows.fill_by_action(range, psi, &mut next[..m * d], &mut r[..m]);
                        for a in 0..actions {
                            let (lo, hi) = (starts[a], starts[a + 1]);
                            let (x, y) = (&psi[lo * dd..hi * dd], &next[lo * d..hi * d]);
                            add_xtx_upper(&mut acc.c[a * dd * dd..(a + 1) * dd * dd], x, hi - lo, dd);
                            add_xty(&mut acc.m[a * dd * d..(a + 1) * dd * d], x, y, hi - lo, dd, d);
                            add_xty(&mut acc.b[a * dd..(a + 1) * dd], x, &r[lo..hi], hi - lo, dd, 1);
                        }
                    } else {
                        rows.fill(range.clone(), &mut phi[..m * d], &mut next[..m * d]);
                        add_xty(&mut acc.c, &phi, &phi, m, d, d);
                        add_xty(&mut acc.m, &phi, &next, m, d, d);
                        add_xty(&mut acc.b, &phi, &data.r[range], m, d, 1);
                    }
                    let finished = done_chunks.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    if checkpoint(progress, finished, chunks as u64, "moments").is_err() {
                        stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                acc
            })
            .collect();
        partials.into_iter().fold(Partial::zeros(d), Partial::add)
    })
    .map_err(|e| RlError::Internal(e.to_string()))?;
    let mut result = result;
    if let Some((actions, dd)) = blocks {
        // the blocks of C were held packed (block a at a·D², its upper triangle): place them
        result.c = blocks_to_symmetric(&result.c, actions, dd);
    }
    checkpoint(progress, done_chunks.load(std::sync::atomic::Ordering::Relaxed), chunks as u64, "moments")?;
    Ok(Moments {
        c: Array2::from_shape_vec((d, d), result.c).expect("d × d"),
        m: Array2::from_shape_vec((d, d), result.m).expect("d × d"),
        b: Array1::from(result.b),
    })
}

/// The pair index of a one-hot critic: the pairs with data, then the pairs the target reaches at
/// bootstrapped next states.
#[allow(clippy::needless_range_loop)] // parallel columns, indexed by row
pub fn onehot_index(data: &Transitions<'_>, target: NextTarget<'_, '_>) -> Result<PairIndex, RlError> {
    let States::Discrete { s, s_next, .. } = &data.states else {
        return Err(RlError::Parameter("features=onehot needs discrete states: columns 's' and 's_next'".into()));
    };
    let mut index = PairIndex::default();
    let too_many = || {
        RlError::Unsupported(format!(
            "features=onehot: more than {MAX_FEATURES} (state, action) pairs; use features=rff or given"
        ))
    };
    for (&st, &at) in s.iter().zip(&data.a) {
        index.insert(st, at);
        if index.len() > MAX_FEATURES {
            return Err(too_many());
        }
    }
    index.with_data = index.len();
    for i in 0..data.n {
        if data.done[i] {
            continue;
        }
        match target {
            NextTarget::Policy(pi) => {
                let (acts, _) = pi.at(s_next[i]).expect("policy coverage checked");
                for &a2 in acts {
                    index.insert(s_next[i], a2);
                }
            }
            NextTarget::NextAction => {
                index.insert(s_next[i], data.a_next.as_ref().expect("a_next checked")[i]);
            }
            NextTarget::Columns(_) => unreachable!("discrete states take the policy from a table"),
        }
        if index.len() > MAX_FEATURES {
            return Err(too_many());
        }
    }
    Ok(index)
}

/// The moments of one-hot features, accumulated sparsely (one indicator per row).
pub fn accumulate_onehot(data: &Transitions<'_>, index: &PairIndex, target: NextTarget<'_, '_>) -> Moments {
    let States::Discrete { s, s_next, .. } = &data.states else { unreachable!("checked by onehot_index") };
    let d = index.len();
    let mut c = Array2::zeros((d, d));
    let mut m = Array2::zeros((d, d));
    let mut b = Array1::zeros(d);
    for i in 0..data.n {
        let k = index.get(s[i], data.a[i]).expect("indexed");
        c[[k, k]] += 1.0;
        b[k] += data.r[i];
        if data.done[i] {
            continue;
        }
        match target {
            NextTarget::Policy(pi) => {
                let (acts, probs) = pi.at(s_next[i]).expect("policy coverage checked");
                for (&a2, &p) in acts.iter().zip(probs) {
                    m[[k, index.get(s_next[i], a2).expect("indexed")]] += p;
                }
            }
            NextTarget::NextAction => {
                let a2 = data.a_next.as_ref().expect("a_next checked")[i];
                m[[k, index.get(s_next[i], a2).expect("indexed")]] += 1.0;
            }
            NextTarget::Columns(_) => unreachable!(),
        }
    }
    Moments { c, m, b }
}

/// A solved linear system, with the relative residual ‖(A + λI)θ − b‖ / ‖b‖.
#[derive(Debug, Clone)]
pub struct Solution {
    /// θ.
    pub theta: Array1<f64>,
    /// Relative residual of the system solved.
    pub residual: f64,
}

fn singular(what: &str, ridge: f64) -> RlError {
    let hint = if ridge == 0.0 {
        "set a ridge > 0 (e.g. --set ridge=1e-6), or give data covering every (state, action) the target policy reaches"
    } else {
        "increase the ridge"
    };
    RlError::input(format!("the {what} system is singular: {hint}"))
}

/// The Euclidean norm, scaled as LAPACK's `nrm2` is (by the largest |v_i|) so that it stays finite
/// for entries near the ends of the double range (the squares of 1e300 overflow; of 1e-200,
/// underflow).
pub fn norm(v: &Array1<f64>) -> f64 {
    let top = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    if !(top > 0.0 && top.is_finite()) {
        return top;
    }
    top * v.iter().map(|x| (x / top).powi(2)).sum::<f64>().sqrt()
}

/// LSTD: θ = (C − γM + λI)⁻¹ b by LU with partial pivoting; a singular or numerically singular
/// system (the residual above 1e-6) is an error that suggests the ridge.
pub fn solve_lstd(mo: &Moments, gamma: f64, ridge: f64) -> Result<Solution, RlError> {
    let d = mo.b.len();
    let mut a = &mo.c - &(&mo.m * gamma);
    for k in 0..d {
        a[[k, k]] += ridge;
    }
    let lu = a.clone().factorize_into().map_err(|_| singular("LSTD", ridge))?;
    // numerically singular: the reciprocal condition number (LAPACK's estimate) below d·ε
    let rcond = lu.rcond().map_err(|_| singular("LSTD", ridge))?;
    if rcond.is_nan() || rcond <= d as f64 * f64::EPSILON {
        return Err(singular("LSTD", ridge));
    }
    let theta = lu.solve(&mo.b).map_err(|_| singular("LSTD", ridge))?;
    let residual = norm(&(a.dot(&theta) - &mo.b)) / norm(&mo.b).max(f64::MIN_POSITIVE);
    Ok(Solution { theta, residual })
}

/// How an iterative fit ended.
#[derive(Debug, Clone)]
pub struct Iterated {
    /// The final θ.
    pub theta: Array1<f64>,
    /// Iterations run.
    pub iterations: usize,
    /// ‖θ_k − θ_{k−1}‖_∞ / ‖θ_k‖_∞ at the end (relative: the rewards' units do not matter).
    pub change: f64,
    /// Whether `change` fell to the tolerance (else `max_iter` was reached).
    pub converged: bool,
}

/// FQE: θ_{k+1} = (C + λI)⁻¹(b + γMθ_k) from θ_0 = 0, until the relative change is at most
/// `tol` or `max_iter` iterations. Divergence (the deadly triad: off-policy bootstrapping with
/// function approximation) is an error naming it.
pub fn fqe(
    mo: &Moments,
    gamma: f64,
    ridge: f64,
    tol: f64,
    max_iter: usize,
    progress: &dyn Progress,
) -> Result<Iterated, RlError> {
    let d = mo.b.len();
    let mut g = mo.c.clone();
    for k in 0..d {
        g[[k, k]] += ridge;
    }
    let lu = g.factorize_into().map_err(|_| singular("FQE regression", ridge))?;
    let mut theta = Array1::zeros(d);
    let mut change = f64::INFINITY;
    let mut iterations = 0;
    // the first iterate's size: growth far beyond it is divergence, whatever the rewards' units
    let mut first = 0.0f64;
    while iterations < max_iter {
        let target = &mo.b + &(mo.m.dot(&theta) * gamma);
        let next = lu.solve(&target).map_err(|_| singular("FQE regression", ridge))?;
        let scale;
        (change, scale) = quiver_numerics::convergence::relative_change(next.iter().zip(&theta).map(|(a, b)| (*a, *b)));
        theta = next;
        iterations += 1;
        if iterations == 1 {
            first = scale;
        }
        if !theta.iter().all(|x| x.is_finite()) || scale > 1e12 * first {
            let rewards = mo.b.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            return Err(RlError::input(quiver_numerics::convergence::divergence_message(
                "FQE",
                scale,
                iterations,
                Some(first),
                ("the rewards' sums Φᵀr", rewards),
                "bootstrapping off-policy with these features is unstable; raise the ridge, or use target=lstdq",
            )));
        }
        checkpoint(progress, iterations as u64, max_iter as u64, "fqe iterations")?;
        if change <= tol {
            break;
        }
    }
    Ok(Iterated { theta, iterations, change, converged: change <= tol })
}

/// Σ_a π(a|s) Q(s, a) for a discrete policy, with Q read from `q(s, a)`; `None` where π has no
/// row for s or Q is undefined at one of its actions.
pub fn policy_value(pi: &Policy, s: u32, q: impl Fn(u32, u32) -> Option<f64>) -> Option<f64> {
    let (acts, probs) = pi.at(s)?;
    acts.iter().zip(probs).map(|(&a, &p)| q(s, a).map(|v| p * v)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Progress that asks for one thread.
    struct OneThread;
    impl quiver_numerics::Progress for OneThread {
        fn report(&self, _: u64, _: u64, _: &str) -> bool {
            true
        }
        fn threads(&self) -> u32 {
            1
        }
    }

    #[test]
    fn rff_moments_by_action_block_equal_the_dense_products() {
        use crate::data::{States, TransitionColumns, Transitions};
        use crate::features::{DenseRows, FeatureMap, NextTarget, Rff};
        use crate::policy::PolicyColumns;
        // 3 actions, 2-D states, rows over several chunks, episodes of 7 steps (the last ends)
        let n = 3 * CHUNK_ROWS + 123;
        let mut st = 9u64;
        let mut u = move || {
            st = st.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (st >> 11) as f64 / (1u64 << 53) as f64
        };
        let col = |u: &mut dyn FnMut() -> f64| (0..n).map(|_| u() * 4.0 - 2.0).collect::<Vec<f64>>();
        let (s0, s1, t0, t1, r) = (col(&mut u), col(&mut u), col(&mut u), col(&mut u), col(&mut u));
        let a: Vec<u32> = (0..n).map(|_| (u() * 3.0) as u32).collect();
        // the next row's action where the episode goes on (-1 where it ends)
        let a_next: Vec<i64> = (0..n).map(|i| if i % 7 == 6 || i + 1 == n { -1 } else { a[i + 1] as i64 }).collect();
        let p: Vec<Vec<f64>> = {
            let raw: Vec<[f64; 3]> = (0..n).map(|_| [u(), u(), if u() < 0.3 { 0.0 } else { u() }]).collect();
            (0..3).map(|k| raw.iter().map(|w| w[k] / (w[0] + w[1] + w[2])).collect()).collect()
        };
        let episode: Vec<i64> = (0..n as i64).map(|i| i / 7).collect();
        let t: Vec<i64> = (0..n as i64).map(|i| i % 7).collect();
        let done: Vec<bool> = (0..n).map(|i| i % 7 == 6).collect();
        let mut data = Transitions::new(TransitionColumns {
            episode: &episode,
            t: &t,
            states: States::Continuous { s: vec![&s0, &s1], s_next: vec![&t0, &t1] },
            a: a.clone(),
            a_next: Some(&a_next),
            r: &r,
            done,
            mu_prob: None,
            pi_prob: None,
        })
        .unwrap();
        data.use_a_next("the test").unwrap();
        let map = FeatureMap::Rff(Rff::new(2, 16, 1.0, 5, 3));
        let columns = PolicyColumns { next: p.iter().map(|c| c.as_slice()).collect(), current: None };
        for target in [NextTarget::Columns(&columns), NextTarget::NextAction] {
            let rows = DenseRows { data: &data, map: &map, given: None, target };
            let blocked = accumulate_dense(&rows, &quiver_numerics::Silent).unwrap();
            let d = map.dim();
            let (mut phi, mut next) = (vec![0.0; n * d], vec![0.0; n * d]);
            rows.fill(0..n, &mut phi, &mut next);
            let (mut c, mut m, mut b) = (vec![0.0; d * d], vec![0.0; d * d], vec![0.0; d]);
            add_xty(&mut c, &phi, &phi, n, d, d);
            add_xty(&mut m, &phi, &next, n, d, d);
            add_xty(&mut b, &phi, &r, n, d, 1);
            let close = |x: &[f64], y: &[f64], what: &str| {
                let scale = y.iter().fold(0.0f64, |s, v| s.max(v.abs()));
                for (i, (p, q)) in x.iter().zip(y).enumerate() {
                    assert!((p - q).abs() <= 1e-12 * scale, "{what}[{i}]: {p} vs {q}");
                }
            };
            // the same bits on one thread as on every core
            let one = accumulate_dense(&rows, &OneThread).unwrap();
            assert!(one.c == blocked.c && one.m == blocked.m && one.b == blocked.b, "1 thread vs all");
            close(blocked.c.as_slice().unwrap(), &c, "C");
            close(blocked.m.as_slice().unwrap(), &m, "M");
            close(blocked.b.as_slice().unwrap(), &b, "b");
            assert!(blocked.c == blocked.c.t(), "C is exactly symmetric");
        }
    }

    #[test]
    fn xty_matches_the_naive_product() {
        let (rows, p, q) = (7, 3, 2);
        let x: Vec<f64> = (0..rows * p).map(|i| (i as f64 * 0.37).sin()).collect();
        let y: Vec<f64> = (0..rows * q).map(|i| (i as f64 * 0.11).cos()).collect();
        let mut acc = vec![1.0; p * q];
        add_xty(&mut acc, &x, &y, rows, p, q);
        for i in 0..p {
            for j in 0..q {
                let want: f64 = 1.0 + (0..rows).map(|r| x[r * p + i] * y[r * q + j]).sum::<f64>();
                assert!((acc[i * q + j] - want).abs() < 1e-12);
            }
        }
    }
}
