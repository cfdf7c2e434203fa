//! IQL's expectile critic with linear features (Kostrikov, Nair & Levine 2022), at the exact
//! fixed point of its two losses:
//!
//! * Q(s, a) = φ(s, a)ᵀθ regresses r + γ(1 − d)V(s′):
//!   θ = argmin Σ_i (φ_iᵀθ − r_i − γ(1 − d_i)ψ(s′_i)ᵀw)² + λ‖θ‖² = (ΦᵀΦ + λI)⁻¹(Φᵀr + γNw),
//!   N = Φᵀ diag(1 − d) Ψ′;
//! * V(s) = ψ(s)ᵀw is the τ-expectile regression of Q(s_i, a_i) on ψ(s_i):
//!   w = argmin Σ_i |τ − 1{q_i < ψ_iᵀw}| (q_i − ψ_iᵀw)² + λ‖w‖², by iteratively reweighted
//!   least squares (the weights τ / 1 − τ fixed, a weighted ridge solve, repeat until no weight
//!   changes).
//!
//! The two steps alternate until ‖Δw‖_∞ ≤ tol·‖w‖_∞. The features of every row are held
//! in memory (n·(d + 2D) values, capped by [`MAX_CACHE`]).

use crate::RlError;
use ndarray::{Array1, Array2, ArrayView2};
use ndarray_linalg::{Cholesky, Solve, UPLO};
use quiver_numerics::{checkpoint, Progress};

/// Most feature values held in memory (8 bytes each: 1 GiB).
pub const MAX_CACHE: usize = 1 << 27;

/// The rows of a linear expectile fit: Φ (n × d), Ψ (n × D) at s, Ψ′ (n × D) at s′ (zero rows
/// where the episode ends), rewards.
pub struct ExpectileRows<'r> {
    /// Q features, row-major n × d.
    pub phi: Array2<f64>,
    /// V features at s, row-major n × D.
    pub psi: Array2<f64>,
    /// V features at s′, row-major n × D (zero on ended rows).
    pub psi_next: Array2<f64>,
    /// Rewards.
    pub r: &'r [f64],
}

/// The result of [`fit`].
pub struct LinearExpectile {
    /// Q weights.
    pub theta: Array1<f64>,
    /// V weights.
    pub w: Array1<f64>,
    /// Outer iterations.
    pub iterations: usize,
    /// Final relative change of w.
    pub change: f64,
    /// Whether the tolerance was met.
    pub converged: bool,
}

fn singular(what: &str) -> RlError {
    RlError::input(format!("the {what} regression is singular: set a ridge > 0 (e.g. --set ridge=1e-6)"))
}

/// (G + λI)⁻¹ rhs by Cholesky; singular systems ask for a ridge.
pub fn ridge_solve(mut g: Array2<f64>, rhs: &Array1<f64>, ridge: f64, what: &str) -> Result<Array1<f64>, RlError> {
    g.diag_mut().iter_mut().for_each(|x| *x += ridge);
    let l = g.cholesky(UPLO::Lower).map_err(|_| singular(what))?;
    let y = l.solve(rhs).map_err(|_| singular(what))?;
    l.t().solve(&y).map_err(|_| singular(what))
}

/// The weighted Gram XᵀΩX and XᵀΩy.
fn weighted(x: ArrayView2<'_, f64>, omega: &[f64], y: &Array1<f64>) -> (Array2<f64>, Array1<f64>) {
    let xw = &x * &ndarray::ArrayView1::from(omega).insert_axis(ndarray::Axis(1));
    (xw.t().dot(&x), xw.t().dot(y))
}

/// The τ-expectile regression of `y` on the rows of `x` with ridge λ: w = argmin Σ_i
/// |τ − 1{y_i < x_iᵀw}| (y_i − x_iᵀw)² + λ‖w‖², by iteratively reweighted least squares from
/// `init` (the weights τ / 1 − τ fixed, a weighted ridge solve, repeat until no weight changes;
/// at most 100 rounds).
pub fn expectile_regression(
    x: ArrayView2<'_, f64>,
    y: &Array1<f64>,
    tau: f64,
    ridge: f64,
    init: &Array1<f64>,
) -> Result<Array1<f64>, RlError> {
    let mut w = init.clone();
    let mut omega: Vec<f64> = Vec::new();
    for _ in 0..100 {
        let v = x.dot(&w);
        let next_omega: Vec<f64> = y.iter().zip(&v).map(|(yi, vi)| if yi < vi { 1.0 - tau } else { tau }).collect();
        if next_omega == omega {
            break;
        }
        omega = next_omega;
        let (g, rhs) = weighted(x, &omega, y);
        w = ridge_solve(g, &rhs, ridge, "V (expectile)")?;
    }
    Ok(w)
}

/// Solve the linear expectile critic (see the module documentation).
pub fn fit(
    rows: &ExpectileRows<'_>,
    gamma: f64,
    tau: f64,
    ridge: f64,
    tol: f64,
    max_iter: usize,
    progress: &dyn Progress,
) -> Result<LinearExpectile, RlError> {
    let (n, dq) = rows.phi.dim();
    let dv = rows.psi.ncols();
    if n * (dq + 2 * dv) > MAX_CACHE {
        return Err(RlError::Unsupported(format!(
            "{n} rows × {} features exceed the {MAX_CACHE} values the linear expectile fit holds",
            dq + 2 * dv
        )));
    }
    let r = Array1::from(rows.r.to_vec());
    let c = rows.phi.t().dot(&rows.phi);
    let nmat = rows.phi.t().dot(&rows.psi_next);
    let b = rows.phi.t().dot(&r);
    let mut w = Array1::<f64>::zeros(dv);
    let (mut change, mut iterations) = (f64::INFINITY, 0);
    while iterations < max_iter {
        let theta = ridge_solve(c.clone(), &(&b + &(nmat.dot(&w) * gamma)), ridge, "Q")?;
        let q = rows.phi.dot(&theta);
        // IRLS for the expectile regression, from the current w
        let new_w = expectile_regression(rows.psi.view(), &q, tau, ridge, &w)?;
        let scale;
        (change, scale) = quiver_numerics::convergence::relative_change(new_w.iter().zip(&w).map(|(a, b)| (*a, *b)));
        w = new_w;
        iterations += 1;
        if !w.iter().all(|x| x.is_finite()) || scale > 1e150 {
            return Err(RlError::diverged("the expectile critic", scale, iterations, rows.r));
        }
        checkpoint(progress, iterations as u64, max_iter as u64, "expectile iterations")?;
        if change <= tol {
            break;
        }
    }
    let theta = ridge_solve(c, &(&b + &(nmat.dot(&w) * gamma)), ridge, "Q")?;
    Ok(LinearExpectile { theta, w, iterations, change, converged: change <= tol })
}
