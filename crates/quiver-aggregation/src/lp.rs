//! Exact global weights: the aggregation problem as a linear program, solved by Clarabel's
//! interior-point method (Goulart & Chen, 2024; sparse LDLᵀ with AMD ordering).
//!
//! With ψ_τ(u) = τu + (−u)₊, the mean pinball loss of the aggregate over levels L and rows i is
//!
//!   (1 / n|L|) Σ_{k∈L} Σ_i [τ_k (y_i − q̂_ik) + t_ik],   t_ik ≥ 0,  t_ik ≥ q̂_ik − y_i,
//!
//! linear in the weights (q̂_ik = Σ_{(c,w)∈S_k} w_w Q_c[i]) and in t. Constraints: each group of
//! weights on the simplex (Σ w = 1, w ≥ 0) and, with `noncross`, q̂_ik ≤ q̂_i,k+1 at every fit
//! row. Without `noncross` the medium and fine problems separate by output level and are solved
//! one level at a time (in parallel). The data are first standardised (y and every forecast
//! shifted by the mean of y and divided by its standard deviation — or, where y does not vary,
//! by the forecasts' largest distance from it), which leaves the weights unchanged because each
//! group sums to one.

use crate::model::{Granularity, Structure};
use clarabel::algebra::CscMatrix;
use clarabel::solver::{DefaultSettingsBuilder, DefaultSolver, IPSolver, SolverStatus, SupportedConeT};

/// Why an exact solve failed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LpError {
    /// The solver stopped without an optimal point.
    #[error("the LP solver stopped with status {status} after {iterations} iterations")]
    NotSolved {
        /// Clarabel's status.
        status: String,
        /// Iterations run.
        iterations: u32,
    },
    /// The interior point would take too long ([`work`]).
    #[error(
        "the exact LP would take {work:.1e} multiply-adds per interior-point iteration ({problems} problem(s) of {rows} \
         rows, up to {weights} weights a row; limit {limit:.0e}): use solver=gradient, or a coarser \
         granularity"
    )]
    TooMuchWork {
        /// Multiply-adds per iteration ([`work`]).
        work: f64,
        /// Separate LPs.
        problems: usize,
        /// Rows of each (data rows).
        rows: usize,
        /// The most weights a row's prediction uses.
        weights: usize,
        /// The limit.
        limit: f64,
    },
    /// The problem is too large to build.
    #[error("the LP would have {nonzeros:.3e} nonzeros (limit {limit:.0e}): use solver=gradient")]
    TooLarge {
        /// Nonzeros of the constraint matrix.
        nonzeros: f64,
        /// The limit.
        limit: f64,
    },
}

/// Largest constraint matrix built (nonzeros): beyond it the interior point's factorisation
/// memory and time are not what an exact solve should cost; the gradient solver serves.
pub const MAX_NONZEROS: f64 = 6e7;

/// Most multiply-adds per interior-point iteration ([`work`]) an exact solve may take. Measured
/// here (2 vCPUs): fine granularity with J = 10 models × K = 19 levels (190 weights a row) on
/// 2 000 rows is 1.4e9 and takes 31 s, on 500 rows 3.4e8 and 3.8 s (time grows as work^1.5);
/// 40 models × 19 levels on 2 000 rows (2.2e10) ran past 15 minutes.
pub const MAX_WORK: f64 = 3e9;

/// The work of an interior-point iteration: the normal equations of each LP gather, per
/// constraint row, the square of the weights it uses — Σ over the LPs, their levels k and the n
/// rows of terms(k)² (three times that with the non-crossing constraints, which double the uses).
pub fn work(s: &Structure, n: usize, noncross: bool) -> f64 {
    let per_row: f64 = (0..s.k).map(|k| (s.terms(k).count() as f64).powi(2)).sum();
    n as f64 * per_row * if noncross { 3.0 } else { 1.0 }
}

/// Weights the interior point leaves below this are zeros of the exact optimum.
pub const ZERO_WEIGHT: f64 = 1e-10;

/// The data of an aggregation LP: forecast columns, outcomes and levels.
#[derive(Debug, Clone, Copy)]
pub struct LpData<'a> {
    /// Column j·K + k of model j at level k.
    pub q: &'a [&'a [f64]],
    /// Outcomes.
    pub y: &'a [f64],
    /// Levels τ_1 < … < τ_K.
    pub levels: &'a [f64],
}

/// The result of an exact solve.
#[derive(Debug, Clone, PartialEq)]
pub struct LpSolution {
    /// Weights (P), each group on the simplex.
    pub weights: Vec<f64>,
    /// Interior-point iterations, summed over the separate problems.
    pub iterations: u32,
    /// Number of separate LPs solved.
    pub problems: usize,
    /// Largest LP: (variables, constraints, nonzeros).
    pub largest: (usize, usize, usize),
}

/// Nonzeros of the constraint matrix of the LP over the output levels `l` with n rows.
pub fn nonzeros(s: &Structure, n: usize, l: &[usize], noncross: bool) -> f64 {
    let uses: f64 = l.iter().map(|&k| s.terms(k).count() as f64).sum();
    let weights = (l.iter().map(|&k| s.group_of_level(k)).collect::<std::collections::BTreeSet<_>>().len()
        * s.group_size()) as f64;
    let nc = if noncross { 2.0 * uses } else { 0.0 };
    n as f64 * (uses + nc + 2.0 * l.len() as f64) + 2.0 * weights
}

/// The separate LPs: the output levels of each.
pub fn problems(s: &Structure, noncross: bool) -> Vec<Vec<usize>> {
    if noncross || s.granularity == Granularity::Coarse {
        vec![(0..s.k).collect()]
    } else {
        (0..s.k).map(|kk| vec![kk]).collect()
    }
}

/// Nonzeros alive at once: the largest LP's, times the LPs solved in parallel.
pub fn memory_nonzeros(s: &Structure, n: usize, noncross: bool) -> f64 {
    let p = problems(s, noncross);
    let largest = p.iter().map(|l| nonzeros(s, n, l, noncross)).fold(0.0, f64::max);
    largest * p.len().min(rayon::current_num_threads()) as f64
}

/// Bytes per constraint nonzero that a solve holds at its peak (the matrix, the KKT system and
/// its factor; measured ≈ 200 on the coarse problem at n = 10^4, K = 99).
pub const BYTES_PER_NONZERO: f64 = 220.0;

/// Solve for the global weights minimising the mean pinball loss on `data`.
pub fn solve(s: &Structure, data: &LpData<'_>, noncross: bool) -> Result<LpSolution, LpError> {
    use rayon::prelude::*;
    let problems = problems(s, noncross);
    let n = data.y.len();
    let total = memory_nonzeros(s, n, noncross);
    if total > MAX_NONZEROS {
        return Err(LpError::TooLarge { nonzeros: total, limit: MAX_NONZEROS });
    }
    let w = work(s, n, noncross);
    if w > MAX_WORK {
        let weights = (0..s.k).map(|k| s.terms(k).count()).max().unwrap_or(0);
        return Err(LpError::TooMuchWork { work: w, problems: problems.len(), rows: n, weights, limit: MAX_WORK });
    }
    // standardise: q̂ − y is equivariant, each group sums to one
    let (mean, scale) = crate::model::problem_scale(data.y, data.q);

    let results: Vec<Result<Solved, LpError>> =
        problems.par_iter().map(|l| solve_levels(s, data, l, noncross && l.len() > 1, mean, scale)).collect();
    let mut weights = vec![0.0; s.n_weights()];
    let (mut iterations, mut largest) = (0, (0, 0, 0));
    for r in results {
        let (w, it, size) = r?;
        iterations += it;
        if size.2 > largest.2 {
            largest = size;
        }
        for (i, v) in w {
            weights[i] = v;
        }
    }
    // the interior point ends within its tolerance of the vertex: weights below 1e-10 (and its
    // tiny negative entries) are zero; renormalise each group
    for g in weights.chunks_mut(s.group_size()) {
        g.iter_mut().for_each(|v| *v = if *v < ZERO_WEIGHT { 0.0 } else { *v });
        let sum: f64 = g.iter().sum();
        g.iter_mut().for_each(|v| *v /= sum);
    }
    Ok(LpSolution { weights, iterations, problems: problems.len(), largest })
}

/// One LP's answer: (global weight index, value) pairs, iterations, (variables, constraints,
/// nonzeros).
type Solved = (Vec<(usize, f64)>, u32, (usize, usize, usize));

/// One LP over the output levels `l` (ascending).
fn solve_levels(
    s: &Structure,
    data: &LpData<'_>,
    l: &[usize],
    noncross: bool,
    center: f64,
    scale: f64,
) -> Result<Solved, LpError> {
    let n = data.y.len();
    let nl = l.len();
    let gsize = s.group_size();
    let mut groups: Vec<usize> = l.iter().map(|&k| s.group_of_level(k)).collect();
    groups.dedup();
    let ng = groups.len();
    let p = ng * gsize;
    // uses[wl]: (position in l, column) of every level that weight wl enters
    let mut uses: Vec<Vec<(usize, usize)>> = vec![Vec::new(); p];
    for (li, &k) in l.iter().enumerate() {
        let gl = groups.iter().position(|&g| g == s.group_of_level(k)).expect("group of a level in l");
        for (c, w) in s.terms(k) {
            uses[gl * gsize + (w - s.group_of_level(k) * gsize)].push((li, c));
        }
    }
    let n_nc = if noncross { n * (nl - 1) } else { 0 };
    let (r_main, r_t, r_w, r_nc) = (ng, ng + n * nl, ng + 2 * n * nl, ng + 2 * n * nl + p);
    let m = r_nc + n_nc;
    let nvar = p + n * nl;
    let norm = 1.0 / (n * nl) as f64;
    let ys: Vec<f64> = data.y.iter().map(|v| (v - center) / scale).collect();
    let std = |c: usize, i: usize| (data.q[c][i] - center) / scale;

    let mut colptr = Vec::with_capacity(nvar + 1);
    let nnz_guess = nonzeros(s, n, l, noncross) as usize;
    let mut rowval: Vec<usize> = Vec::with_capacity(nnz_guess);
    let mut nzval: Vec<f64> = Vec::with_capacity(nnz_guess);
    let mut obj = vec![0.0; nvar];
    colptr.push(0);
    for (wl, u) in uses.iter().enumerate() {
        rowval.push(wl / gsize);
        nzval.push(1.0);
        let mut lin = 0.0;
        for &(li, c) in u {
            let tau = data.levels[l[li]];
            for i in 0..n {
                let v = std(c, i);
                rowval.push(r_main + li * n + i);
                nzval.push(v);
                lin += tau * v;
            }
        }
        obj[wl] = -lin * norm;
        rowval.push(r_w + wl);
        nzval.push(-1.0);
        if noncross {
            // row block b: q̂_{l[b]} − q̂_{l[b+1]} ≤ 0
            for b in 0..nl - 1 {
                let plus = u.iter().find(|x| x.0 == b).map(|x| x.1);
                let minus = u.iter().find(|x| x.0 == b + 1).map(|x| x.1);
                if plus.is_none() && minus.is_none() {
                    continue;
                }
                for i in 0..n {
                    let v = plus.map_or(0.0, |c| std(c, i)) - minus.map_or(0.0, |c| std(c, i));
                    if v != 0.0 {
                        rowval.push(r_nc + b * n + i);
                        nzval.push(v);
                    }
                }
            }
        }
        colptr.push(rowval.len());
    }
    for li in 0..nl {
        for i in 0..n {
            rowval.extend([r_main + li * n + i, r_t + li * n + i]);
            nzval.extend([-1.0, -1.0]);
            obj[p + li * n + i] = norm;
            colptr.push(rowval.len());
        }
    }
    let a = CscMatrix::new(m, nvar, colptr, rowval, nzval);
    let mut b = vec![0.0; m];
    b[..ng].iter_mut().for_each(|v| *v = 1.0);
    for li in 0..nl {
        b[r_main + li * n..r_main + (li + 1) * n].copy_from_slice(&ys);
    }
    let pmat = CscMatrix::<f64>::zeros((nvar, nvar));
    let cones = [SupportedConeT::ZeroConeT(ng), SupportedConeT::NonnegativeConeT(m - ng)];
    let settings = DefaultSettingsBuilder::default()
        .verbose(false)
        .max_iter(200)
        .tol_gap_abs(1e-10)
        .tol_gap_rel(1e-10)
        .tol_feas(1e-10)
        .tol_ktratio(1e-8)
        .build()
        .expect("valid settings");
    let size = (nvar, m, a.nnz());
    let mut solver = DefaultSolver::new(&pmat, &obj, &a, &b, &cones, settings)
        .map_err(|e| LpError::NotSolved { status: format!("{e:?}"), iterations: 0 })?;
    solver.solve();
    let sol = &solver.solution;
    if !matches!(sol.status, SolverStatus::Solved | SolverStatus::AlmostSolved) {
        return Err(LpError::NotSolved { status: format!("{:?}", sol.status), iterations: sol.iterations });
    }
    let out = (0..p).map(|wl| (groups[wl / gsize] * gsize + wl % gsize, sol.x[wl])).collect();
    Ok((out, sol.iterations, size))
}
