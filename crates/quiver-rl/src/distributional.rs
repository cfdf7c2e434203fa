//! Quantile temporal-difference learning with linear features (Dabney et al. 2018's QR-TD with a
//! linear critic), at its fixed point.
//!
//! The quantiles of the return of (s, a) are θ_j(s, a) = ψ(s)ᵀΘ[a, j], j = 1..N, at the levels
//! τ̂_j = (2j − 1)/2N (ψ random Fourier features of the state, one weight block per action). For
//! row i the target distribution has the atoms z = r_i + γ θ_{j′}(s′_i, a′) with weight
//! π(a′|s′_i)/N (a point mass at r_i where the episode ends). The fixed point solves, for every
//! action block a and level j,
//!
//!   Σ_{i: a_i = a} ψ(s_i) Σ_atoms w |τ̂_j − 1{z < θ_ij}| clamp(z − θ_ij, −κ, κ) = λ Θ[a, j],
//!
//! the first-order condition of the quantile-Huber regression (κ > 0) of the targets on the
//! features, with ridge λ — the semi-gradient QTD fixed point. Each iteration recomputes the
//! targets from the current Θ and takes one iteratively-reweighted least-squares step of that
//! regression: with u = z − θ_ij and the weights c_ij = Σ_atoms w |τ̂_j − 1{u < 0}| min(1, κ/|u|)
//! (the half-quadratic majoriser of the Huber part), Θ[a, j] += (Σ_{i: a_i = a} c_ij ψ_i ψ_iᵀ +
//! λI)⁻¹(gradient − λΘ[a, j]). Iterates until, relative to max(1, the quantiles' largest size),
//! both the largest change of the quantiles at the data's rows and the largest majorisation step
//! (Σ ψψᵀ + λI)⁻¹(gradient − λΘ) there — how far the fixed-point condition is from holding — are
//! at most `tol`.

use crate::RlError;
use ndarray::{s, Array1, Array2};
use ndarray_linalg::{FactorizeC, SolveC, UPLO};
use quiver_numerics::{checkpoint, Progress};
use rayon::prelude::*;

/// Most values the fit holds (Ψ, Ψ′ and three n × A·N matrices; 8 bytes each: 1 GiB).
pub const MAX_VALUES: usize = 1 << 27;

/// Most quantile-Huber terms one iteration may evaluate (rows × A·N atoms × N levels).
pub const MAX_TERMS_PER_ITERATION: f64 = 1e10;

/// The rows of a linear quantile fit.
pub struct QuantileRows<'a> {
    /// ψ(s_i), n × D.
    pub psi: Array2<f64>,
    /// ψ(s′_i), n × D (zero rows where the episode ends).
    pub psi_next: Array2<f64>,
    /// a_i.
    pub a: &'a [u32],
    /// π(a′|s′_i), one slice per action a′.
    pub pi_next: &'a [&'a [f64]],
    /// d_i.
    pub done: &'a [bool],
    /// r_i.
    pub r: &'a [f64],
}

/// The result of [`fit`].
pub struct LinearQuantile {
    /// Θ, D × (A·N): column a·N + j holds the weights of quantile j of action a.
    pub theta: Array2<f64>,
    /// Iterations taken.
    pub iterations: usize,
    /// The last relative change.
    pub change: f64,
}

impl LinearQuantile {
    /// The N quantiles of (s, a) from ψ(s), sorted (a linear fit can cross its levels; sorting is
    /// the monotone rearrangement of Chernozhukov, Fernández-Val & Galichon 2010).
    pub fn quantiles(&self, psi: &[f64], a: usize, n_q: usize) -> Vec<f64> {
        let mut q: Vec<f64> =
            (0..n_q).map(|j| self.theta.column(a * n_q + j).iter().zip(psi).map(|(w, x)| w * x).sum()).collect();
        q.sort_by(f64::total_cmp);
        q
    }
}

/// The levels τ̂_j = (2j − 1)/2N, j = 1..N.
pub fn levels(n: usize) -> Vec<f64> {
    (1..=n).map(|j| (2 * j - 1) as f64 / (2 * n) as f64).collect()
}

/// The quantile-Huber score of q, Σ_atoms w |τ − 1{z < q}| clamp(z − q, −κ, κ), and its IRLS
/// weight Σ_atoms w |τ − 1{z < q}| min(1, κ/|z − q|).
#[inline]
fn score(atoms: &[(f64, f64)], tau: f64, kappa: f64, q: f64) -> (f64, f64) {
    atoms.iter().fold((0.0, 0.0), |(g, h), &(z, w)| {
        let u = z - q;
        let side = w * if u < 0.0 { 1.0 - tau } else { tau };
        (g + side * u.clamp(-kappa, kappa), h + side * if u.abs() <= kappa { 1.0 } else { kappa / u.abs() })
    })
}

/// Solve the linear quantile TD fixed point (see the module documentation) with `n_q` quantiles,
/// quantile-Huber threshold κ > 0, discount γ and ridge λ.
#[allow(clippy::too_many_arguments)]
pub fn fit(
    rows: &QuantileRows<'_>,
    n_q: usize,
    kappa: f64,
    gamma: f64,
    ridge: f64,
    tol: f64,
    max_iter: usize,
    progress: &dyn Progress,
) -> Result<LinearQuantile, RlError> {
    let (n, d) = rows.psi.dim();
    let n_a = rows.pi_next.len();
    let width = n_a * n_q;
    if n * (2 * d + 3 * width) > MAX_VALUES {
        return Err(RlError::Unsupported(format!(
            "{n} rows x ({} features + 3 x {n_a} actions x {n_q} quantiles) exceed the {MAX_VALUES} values the \
                 linear quantile fit holds: lower dim or n_quantiles",
            2 * d
        )));
    }
    let terms = n as f64 * width as f64 * n_q as f64;
    if terms > MAX_TERMS_PER_ITERATION {
        return Err(RlError::Unsupported(format!(
            "{n} rows x {width} target atoms x {n_q} levels = {terms:.2e} terms per iteration (limit \
                 {MAX_TERMS_PER_ITERATION:.0e}): lower n_quantiles"
        )));
    }
    // the rows and features of each action block
    let blocks: Vec<(Vec<usize>, Array2<f64>)> = (0..n_a)
        .map(|a| {
            let idx: Vec<usize> = (0..n).filter(|&i| rows.a[i] as usize == a).collect();
            let x = rows.psi.select(ndarray::Axis(0), &idx);
            (idx, x)
        })
        .collect();
    // G_a + λI per action block: the curvature bound of the regression (each row's atoms weigh 1
    // and ρ^κ_τ'' ≤ 1), so G_a⁻¹(gradient − λθ) — the majorisation step — is a distance to the fixed
    // point that the IRLS step cannot hide: a tiny IRLS step from tiny weights (κ small against
    // the returns) is not convergence
    let singular = |a: usize, rows_a: usize| {
        RlError::input(format!(
            "the quantile regression of action {a} is singular ({rows_a} rows for {d} features): set a ridge > 0 \
             (e.g. --set ridge=1e-6)"
        ))
    };
    let grams = blocks
        .iter()
        .enumerate()
        .map(|(a, (idx, x))| {
            let mut g = x.t().dot(x);
            g.diag_mut().iter_mut().for_each(|v| *v += ridge);
            g.factorizec(UPLO::Lower).map_err(|_| singular(a, idx.len()))
        })
        .collect::<Result<Vec<_>, RlError>>()?;
    let tau = levels(n_q);
    let mut theta = Array2::<f64>::zeros((d, width));
    let mut iterations = 0;
    let mut q_prev: Option<Array2<f64>> = None;
    let mut residual = f64::INFINITY;
    let change = loop {
        let q = rows.psi.dot(&theta);
        // the change is measured on the quantiles at the data (directions of Θ the data do not
        // see are pinned by the ridge alone)
        if let Some(prev) = &q_prev {
            let (step, scale) =
                quiver_numerics::convergence::relative_change(q.iter().zip(prev).map(|(a, b)| (*a, *b)));
            let change = step.max(if scale > 0.0 { residual / scale } else { residual });
            if !change.is_finite() || scale > 1e150 {
                return Err(RlError::diverged("the linear quantile critic", scale, iterations, rows.r));
            }
            if change <= tol || iterations >= max_iter {
                break change;
            }
        }
        let q_next = rows.psi_next.dot(&theta);
        let mut e = Array2::<f64>::zeros((n, width));
        let mut curv = Array2::<f64>::zeros((n, width));
        let (qs, qns) = (q.as_slice().expect("standard layout"), q_next.as_slice().expect("standard layout"));
        let (es, cs) = (e.as_slice_mut().expect("standard layout"), curv.as_slice_mut().expect("standard layout"));
        es.par_chunks_mut(width).zip(cs.par_chunks_mut(width)).enumerate().for_each_init(
            Vec::new,
            |atoms, (i, (out, out_c))| {
                atoms.clear();
                if rows.done[i] {
                    atoms.push((rows.r[i], 1.0));
                } else {
                    for (a2, p) in rows.pi_next.iter().enumerate() {
                        let p = p[i];
                        if p > 0.0 {
                            let next = &qns[i * width + a2 * n_q..i * width + (a2 + 1) * n_q];
                            atoms.extend(next.iter().map(|&x| (rows.r[i] + gamma * x, p / n_q as f64)));
                        }
                    }
                }
                let a = rows.a[i] as usize;
                for (j, &t) in tau.iter().enumerate() {
                    let col = a * n_q + j;
                    (out[col], out_c[col]) = score(atoms, t, kappa, qs[i * width + col]);
                }
            },
        );
        let grad = rows.psi.t().dot(&e);
        residual = 0.0;
        for (a, (idx, x)) in blocks.iter().enumerate() {
            for j in 0..n_q {
                let col = a * n_q + j;
                let root: Array1<f64> = idx.iter().map(|&i| curv[[i, col]].sqrt()).collect();
                let xw = x * &root.insert_axis(ndarray::Axis(1));
                let mut h = xw.t().dot(&xw);
                h.diag_mut().iter_mut().for_each(|v| *v += ridge);
                let rhs: Array1<f64> = &grad.column(col) - &(&theta.column(col) * ridge);
                let mm = grams[a].solvec(&rhs).map_err(|_| singular(a, idx.len()))?;
                residual = x.dot(&mm).iter().fold(residual, |m, v| m.max(v.abs()));
                let step = h
                    .factorizec(UPLO::Lower)
                    .map_err(|_| singular(a, idx.len()))?
                    .solvec(&rhs)
                    .map_err(|_| singular(a, idx.len()))?;
                let mut c = theta.slice_mut(s![.., col]);
                c += &step;
            }
        }
        iterations += 1;
        checkpoint(progress, iterations as u64, max_iter as u64, "quantile iterations")?;
        q_prev = Some(q);
    };
    Ok(LinearQuantile { theta, iterations, change })
}
