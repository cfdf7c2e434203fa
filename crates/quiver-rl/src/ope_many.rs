//! Many target policies evaluated from one contextual-bandit log, each with control variates
//! (Demange-Chryst, Bachoc & Morio, "Efficient estimation of multiple expectations with the same
//! sample by adaptive importance sampling and control variates", 2022).
//!
//! Row i of the log has reward r_i, the behaviour's probability μ_i of its action and, for each
//! target policy k = 1..K, π_k's probability of that action, so its importance weight is
//! w_ik = π_ik/μ_i. The responses are IPW's Y_ik = w_ik r_i and, given a reward model, DR's
//! Y_ik = v̂_ik + w_ik (r_i − q̂_i) (v̂_ik = Σ_a π_k(a|x_i) q̂(x_i, a), q̂_i = q̂(x_i, a_i)).
//! Every weight has a known mean under the log, E_μ[w_k] = 1, so the K columns C_ik = w_ik − 1
//! are **control variates** shared by all the estimators: policy k's regression estimator is the
//! intercept of the least-squares fit of Y_k on C (Owen, *Monte Carlo theory, methods and
//! examples*, §8.9),
//!
//!   Ĵ_k = Ȳ_k − β̂_kᵀ C̄,  β̂_k = S_CC⁺ S_CY_k,
//!
//! with S the centred sums of squares and products; its standard error is the intercept's,
//! s_k √(1/n + C̄ᵀ S_CC⁺ C̄) with s_k² = (S_YY_k − β̂_kᵀ S_CY_k)/(n − 1 − rank S_CC), and the interval
//! uses Student's t with those degrees of freedom. Least squares makes the residual variance no
//! larger than Y_k's own, so the reported variance ratio (plain over CV) is ≥ 1 up to the
//! intercept's leverage term. Controls that repeat (two equal policies) or vanish (a target equal
//! to the behaviour: w ≡ 1) make S_CC singular: the pseudo-inverse (of the controls' correlation
//! matrix, eigenvalues below 1e-10 of the largest dropped) fits the same intercept, and the rank
//! is reported.
//!
//! The sums are one pass: each chunk of rows gives its count, means and centred Gram blocks
//! (BLAS), and chunks — or partitions of a log computed apart — merge exactly by the pairwise
//! update of Chan, Golub & LeVeque (1979) ([`CoMoments::merge`]).

use crate::RlError;
use quiver_numerics::binomial::student_t_quantile;
use rayon::prelude::*;

/// Rows per chunk of the pass.
pub const CHUNK_ROWS: usize = 8192;

/// The columns of a log with K target policies.
#[derive(Debug, Clone)]
pub struct ManyInput<'a> {
    /// Rewards r_i.
    pub r: &'a [f64],
    /// The behaviour's probability of the logged action, μ_i ∈ (0, 1].
    pub mu: &'a [f64],
    /// For each target policy k, its probability of the logged action π_k(a_i | x_i).
    pub targets: Vec<&'a [f64]>,
    /// For DR: each policy's model value v̂_k(x_i) = Σ_a π_k(a|x_i) q̂(x_i, a), and q̂(x_i, a_i).
    pub model: Option<(Vec<&'a [f64]>, &'a [f64])>,
}

impl ManyInput<'_> {
    /// Rows.
    pub fn n(&self) -> usize {
        self.r.len()
    }
    /// Target policies K.
    pub fn policies(&self) -> usize {
        self.targets.len()
    }
    /// Responses: K (IPW), or 2K (IPW, then DR).
    pub fn responses(&self) -> usize {
        self.targets.len() * if self.model.is_some() { 2 } else { 1 }
    }
}

/// Count, means and centred sums of squares and products of the controls C (K) and the
/// responses Y (R): what the estimates need, and what partitions of a log merge.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CoMoments {
    /// Rows.
    pub n: u64,
    /// Controls K.
    pub k: usize,
    /// Responses R.
    pub responses: usize,
    /// C̄ (K).
    pub mean_c: Vec<f64>,
    /// Ȳ (R).
    pub mean_y: Vec<f64>,
    /// S_CC, K × K row-major.
    pub cc: Vec<f64>,
    /// S_CY, K × R row-major.
    pub cy: Vec<f64>,
    /// The diagonal of S_YY (R).
    pub yy: Vec<f64>,
}

impl CoMoments {
    /// No rows.
    pub fn empty(k: usize, responses: usize) -> CoMoments {
        CoMoments {
            n: 0,
            k,
            responses,
            mean_c: vec![0.0; k],
            mean_y: vec![0.0; responses],
            cc: vec![0.0; k * k],
            cy: vec![0.0; k * responses],
            yy: vec![0.0; responses],
        }
    }

    /// The co-moments of rows `rows` of `input`: the chunk's matrix [C | Y] built and centred at
    /// its own means, then S_CC and S_CY by one matrix product (BLAS).
    fn of_rows(input: &ManyInput<'_>, rows: std::ops::Range<usize>) -> CoMoments {
        let (k, rr) = (input.policies(), input.responses());
        let width = k + rr;
        let m = rows.len();
        let mut z = vec![0.0; m * width];
        for (row, i) in rows.clone().enumerate() {
            let line = &mut z[row * width..(row + 1) * width];
            let (r, mu) = (input.r[i], input.mu[i]);
            for (j, t) in input.targets.iter().enumerate() {
                let w = t[i] / mu;
                line[j] = w - 1.0;
                line[k + j] = w * r;
                if let Some((v, q)) = &input.model {
                    line[2 * k + j] = v[j][i] + w * (r - q[i]);
                }
            }
        }
        let mut means = vec![0.0; width];
        for line in z.chunks_exact(width) {
            means.iter_mut().zip(line).for_each(|(s, x)| *s += x);
        }
        means.iter_mut().for_each(|s| *s /= m as f64);
        for line in z.chunks_exact_mut(width) {
            line.iter_mut().zip(&means).for_each(|(x, mean)| *x -= mean);
        }
        let mut out = CoMoments::empty(k, rr);
        out.n = m as u64;
        out.mean_c.copy_from_slice(&means[..k]);
        out.mean_y.copy_from_slice(&means[k..]);
        // [S_CC | S_CY] = C_cᵀ [C_c | Y_c]: the first K columns of z against all of them
        let mut block = vec![0.0; k * width];
        crate::linear::add_xty_strided(&mut block, (&z, width), (&z, width), m, k, width);
        for j in 0..k {
            out.cc[j * k..(j + 1) * k].copy_from_slice(&block[j * width..j * width + k]);
            out.cy[j * rr..(j + 1) * rr].copy_from_slice(&block[j * width + k..(j + 1) * width]);
        }
        for line in z.chunks_exact(width) {
            out.yy.iter_mut().zip(&line[k..]).for_each(|(s, y)| *s += y * y);
        }
        out
    }

    /// The co-moments of the rows of `self` followed by those of `other` (Chan, Golub & LeVeque:
    /// the sums of products add, plus n_a n_b / n times the product of the means' difference).
    pub fn merge(self, other: CoMoments) -> Result<CoMoments, RlError> {
        if (self.k, self.responses) != (other.k, other.responses) {
            return Err(RlError::input(format!(
                "the parts of the log hold different numbers of target policies ({} and {}) or of models",
                self.k, other.k
            )));
        }
        if other.n == 0 {
            return Ok(self);
        }
        if self.n == 0 {
            return Ok(other);
        }
        let (na, nb) = (self.n as f64, other.n as f64);
        let n = na + nb;
        let f = na * nb / n;
        let dc: Vec<f64> = other.mean_c.iter().zip(&self.mean_c).map(|(b, a)| b - a).collect();
        let dy: Vec<f64> = other.mean_y.iter().zip(&self.mean_y).map(|(b, a)| b - a).collect();
        let mut out = self;
        // the sums of products add, with n_a n_b / n times the outer product of the means' step
        let add = |acc: &mut [f64], more: &[f64], left: &[f64], right: &[f64]| {
            for (j, (row, more_row)) in
                acc.chunks_exact_mut(right.len()).zip(more.chunks_exact(right.len())).enumerate()
            {
                for ((a, m), r) in row.iter_mut().zip(more_row).zip(right) {
                    *a += m + f * left[j] * r;
                }
            }
        };
        add(&mut out.cc, &other.cc, &dc, &dc);
        add(&mut out.cy, &other.cy, &dc, &dy);
        for ((a, m), d) in out.yy.iter_mut().zip(&other.yy).zip(&dy) {
            *a += m + f * d * d;
        }
        out.mean_c.iter_mut().zip(&dc).for_each(|(m, d)| *m += d * nb / n);
        out.mean_y.iter_mut().zip(&dy).for_each(|(m, d)| *m += d * nb / n);
        out.n += other.n;
        Ok(out)
    }
}

/// Most target policies: the state holds K × 3K sums (for 4096 policies, 400 MB).
pub const MAX_POLICIES: usize = 4096;

/// Rows per chunk for `width` columns: [`CHUNK_ROWS`], or fewer so that a chunk's matrix stays
/// near 32 MB however many policies there are.
fn chunk_rows(width: usize) -> usize {
    CHUNK_ROWS.min((1usize << 22) / width.max(1)).max(16)
}

/// The co-moments of every row of `input`: chunks on all cores (BLAS on one thread each), taken
/// a few at a time and merged in row order — the same sums whatever the number of threads, and
/// at most a few chunks' sums held at once (each is K × 3K numbers).
pub fn co_moments(input: &ManyInput<'_>) -> CoMoments {
    crate::linear::single_threaded_blas();
    let n = input.n();
    let rows = chunk_rows(input.policies() + input.responses());
    let chunks: Vec<std::ops::Range<usize>> = (0..n).step_by(rows).map(|s| s..(s + rows).min(n)).collect();
    let batch = 2 * rayon::current_num_threads().max(1);
    let mut total = CoMoments::empty(input.policies(), input.responses());
    for group in chunks.chunks(batch) {
        let parts: Vec<CoMoments> = group.par_iter().map(|r| CoMoments::of_rows(input, r.clone())).collect();
        for part in parts {
            total = total.merge(part).expect("chunks of one input have one shape");
        }
    }
    total
}

/// CUDA source of the chunk kernels (`many_rows`, `column_sums`, `centre`).
pub const OPE_MANY_KERNEL: &str = include_str!("kernels/ope_many.cu");

/// Rows per chunk on the GPU.
pub const GPU_CHUNK_ROWS: usize = 1 << 16;

impl CoMoments {
    /// The co-moments of one chunk from its count, column means (K + R), S_CC | S_CY as the
    /// K × (K + R) block `block` (column-major, as cuBLAS leaves it) and the responses' sums of
    /// squares.
    fn of_chunk(k: usize, rr: usize, m: usize, means: &[f64], block: &[f64], yy: Vec<f64>) -> CoMoments {
        let mut out = CoMoments::empty(k, rr);
        out.n = m as u64;
        out.mean_c.copy_from_slice(&means[..k]);
        out.mean_y.copy_from_slice(&means[k..]);
        for j in 0..k {
            for l in 0..k {
                out.cc[j * k + l] = block[j + l * k];
            }
            for y in 0..rr {
                out.cy[j * rr + y] = block[j + (k + y) * k];
            }
        }
        out.yy = yy;
        out
    }
}

/// [`co_moments`] on an NVIDIA GPU: each chunk of [`GPU_CHUNK_ROWS`] rows (fewer when the policies
/// are many) is copied to the device,
/// `many_rows` builds its [C | Y], `column_sums` and `centre` centre it (the CPU's order of sums),
/// cuBLAS multiplies C_cᵀ[C_c | Y_c], and the chunks' co-moments merge on the host in row order —
/// the CPU path's result up to the order of the products' sums.
pub fn co_moments_cuda(input: &ManyInput<'_>) -> Result<CoMoments, RlError> {
    use quiver_gpu::cudarc::cublas::{sys::cublasOperation_t, Gemm, GemmConfig};
    use quiver_gpu::cudarc::driver::{LaunchConfig, PushKernelArg};
    use quiver_gpu::GpuError;
    let (n, k, rr) = (input.n(), input.policies(), input.responses());
    let width = k + rr;
    let stream = quiver_gpu::stream()?;
    let blas = quiver_gpu::cublas()?;
    let rows_fn = quiver_gpu::kernel("ope_many", OPE_MANY_KERNEL, "many_rows")?;
    let sums_fn = quiver_gpu::kernel("ope_many", OPE_MANY_KERNEL, "column_sums")?;
    let centre_fn = quiver_gpu::kernel("ope_many", OPE_MANY_KERNEL, "centre")?;
    // at most about 1 GB of chunk matrix on the device
    let chunk = GPU_CHUNK_ROWS.min((1usize << 27) / width.max(1)).max(16).min(n.max(1));
    let mut z = stream.alloc_zeros::<f64>(chunk * width).map_err(GpuError::from)?;
    let mut sums = stream.alloc_zeros::<f64>(width).map_err(GpuError::from)?;
    let mut sumsq = stream.alloc_zeros::<f64>(rr.max(1)).map_err(GpuError::from)?;
    let mut block = stream.alloc_zeros::<f64>(k * width).map_err(GpuError::from)?;
    let columns = |cols: &[&[f64]], rows: std::ops::Range<usize>| -> Vec<f64> {
        cols.iter().flat_map(|c| c[rows.clone()].iter().copied()).collect()
    };
    let per_column =
        LaunchConfig { grid_dim: (width.div_ceil(128) as u32, 1, 1), block_dim: (128, 1, 1), shared_mem_bytes: 0 };
    let mut total = CoMoments::empty(k, rr);
    for start in (0..n).step_by(chunk) {
        let rows = start..(start + chunk).min(n);
        let m = rows.len();
        let d_r = stream.clone_htod(&input.r[rows.clone()]).map_err(GpuError::from)?;
        let d_mu = stream.clone_htod(&input.mu[rows.clone()]).map_err(GpuError::from)?;
        let d_t = stream.clone_htod(&columns(&input.targets, rows.clone())).map_err(GpuError::from)?;
        let model = match &input.model {
            Some((v, q)) => Some((
                stream.clone_htod(&columns(v, rows.clone())).map_err(GpuError::from)?,
                stream.clone_htod(&q[rows.clone()]).map_err(GpuError::from)?,
            )),
            None => None,
        };
        let null: u64 = 0;
        let (mi, ki, wi) = (m as i64, k as i32, width as i32);
        let mut launch = stream.launch_builder(&rows_fn);
        launch.arg(&d_r).arg(&d_mu).arg(&d_t);
        match &model {
            Some((v, q)) => launch.arg(v).arg(q),
            None => launch.arg(&null).arg(&null),
        };
        launch.arg(&mi).arg(&ki).arg(&mut z);
        // SAFETY: the argument types and order match `many_rows`; r and mu hold m values, the
        // targets (and vhat) k columns of m, qhat m, z at least m × width; one thread per (row,
        // policy).
        unsafe { launch.launch(quiver_gpu::launch_config(m * k)) }.map_err(GpuError::from)?;
        let mut launch = stream.launch_builder(&sums_fn);
        launch.arg(&z).arg(&mi).arg(&wi).arg(&mut sums);
        // SAFETY: `column_sums`'s arguments; z holds m × width, sums width; one thread per column.
        unsafe { launch.launch(per_column) }.map_err(GpuError::from)?;
        let means: Vec<f64> =
            stream.clone_dtoh(&sums).map_err(GpuError::from)?.into_iter().map(|x| x / m as f64).collect();
        let d_means = stream.clone_htod(&means).map_err(GpuError::from)?;
        let mut launch = stream.launch_builder(&centre_fn);
        launch.arg(&mut z).arg(&mi).arg(&wi).arg(&ki).arg(&d_means).arg(&mut sumsq);
        // SAFETY: `centre`'s arguments; z holds m × width, means width, sumsq width − k; one thread
        // per column.
        unsafe { launch.launch(per_column) }.map_err(GpuError::from)?;
        // row-major z (m × W) is the column-major Zᵀ (W × m): the K × W block Z₁ᵀZ is Zᵀ's first K
        // rows times its transpose, column-major with leading dimension K
        let cfg = GemmConfig {
            transa: cublasOperation_t::CUBLAS_OP_N,
            transb: cublasOperation_t::CUBLAS_OP_T,
            m: ki,
            n: wi,
            k: m as i32,
            alpha: 1.0,
            lda: wi,
            ldb: wi,
            beta: 0.0,
            ldc: ki,
        };
        // SAFETY: z holds m × width doubles (read as W × m column-major, its first K rows the left
        // factor), block K × W.
        unsafe { blas.gemm(cfg, &z, &z, &mut block) }.map_err(|e| GpuError::Driver(format!("cuBLAS: {e:?}")))?;
        let host_block = stream.clone_dtoh(&block).map_err(GpuError::from)?;
        let mut yy = stream.clone_dtoh(&sumsq).map_err(GpuError::from)?;
        yy.truncate(rr);
        total = total.merge(CoMoments::of_chunk(k, rr, m, &means, &host_block, yy))?;
    }
    Ok(total)
}

/// One estimator's values for every policy.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyEstimates {
    /// Ĵ_k.
    pub estimate: Vec<f64>,
    /// Its standard error.
    pub se: Vec<f64>,
    /// The interval's ends (Student's t).
    pub lower: Vec<f64>,
    /// The interval's upper ends.
    pub upper: Vec<f64>,
    /// For the control-variate estimators: the plain estimator's variance over this one's.
    pub variance_ratio: Option<Vec<f64>>,
}

/// Every policy's estimates.
#[derive(Debug, Clone, PartialEq)]
pub struct ManyEstimates {
    /// Rows.
    pub n: u64,
    /// Target policies.
    pub policies: usize,
    /// The rank of the controls' S_CC (at most K).
    pub rank: usize,
    /// The control-variate intervals' degrees of freedom, n − 1 − rank.
    pub dof: f64,
    /// IPW, mean of w r.
    pub ipw: PolicyEstimates,
    /// IPW with the weights as control variates.
    pub ipw_cv: PolicyEstimates,
    /// DR (when a model was given).
    pub dr: Option<PolicyEstimates>,
    /// DR with the weights as control variates.
    pub dr_cv: Option<PolicyEstimates>,
}

/// The pseudo-inverse of S_CC (K × K row-major) through its correlation matrix, and its rank:
/// controls of zero spread are dropped, and eigenvalues below 1e-10 of the largest.
fn pseudo_inverse(cc: &[f64], k: usize) -> Result<(Vec<f64>, usize), RlError> {
    use ndarray_linalg::{Eigh, UPLO};
    let scale: Vec<f64> = (0..k)
        .map(|j| {
            let d = cc[j * k + j];
            if d > 0.0 && d.is_finite() {
                1.0 / d.sqrt()
            } else {
                0.0
            }
        })
        .collect();
    let kept: Vec<usize> = (0..k).filter(|&j| scale[j] > 0.0).collect();
    let m = kept.len();
    let mut out = vec![0.0; k * k];
    if m == 0 {
        return Ok((out, 0));
    }
    let corr = ndarray::Array2::from_shape_fn((m, m), |(a, b)| {
        let (j, l) = (kept[a], kept[b]);
        cc[j * k + l] * scale[j] * scale[l]
    });
    let (values, vectors) =
        corr.eigh(UPLO::Lower).map_err(|e| RlError::Internal(format!("eigendecomposition of the controls: {e}")))?;
    let top = values.iter().fold(0.0f64, |a, &b| a.max(b));
    let keep: Vec<usize> = (0..m).filter(|&i| values[i] > 1e-10 * top).collect();
    for a in 0..m {
        for b in 0..m {
            let v: f64 = keep.iter().map(|&i| vectors[(a, i)] * vectors[(b, i)] / values[i]).sum();
            let (j, l) = (kept[a], kept[b]);
            out[j * k + l] = v * scale[j] * scale[l];
        }
    }
    Ok((out, keep.len()))
}

/// Every policy's plain and control-variate estimates, with intervals at level 1 − α, from the
/// co-moments of the whole log.
pub fn estimates(m: &CoMoments, alpha: f64) -> Result<ManyEstimates, RlError> {
    let (k, rr) = (m.k, m.responses);
    let n = m.n as f64;
    if m.n < 2 {
        return Err(RlError::input(format!("table 'bandit' holds {} row(s): the estimates need at least 2", m.n)));
    }
    let (pinv, rank) = pseudo_inverse(&m.cc, k)?;
    let dof = n - 1.0 - rank as f64;
    if dof < 1.0 {
        return Err(RlError::input(format!(
            "table 'bandit' holds {} rows for {k} target policies whose weights span {rank} directions: the \
             control-variate fit needs more rows than directions + 1 (give more rows, or fewer policies)",
            m.n
        )));
    }
    // β = S_CC⁺ S_CY (K × R), and the intercept's leverage 1/n + C̄ᵀ S_CC⁺ C̄
    let mut beta = vec![0.0; k * rr];
    for j in 0..k {
        for l in 0..k {
            let p = pinv[j * k + l];
            if p != 0.0 {
                for y in 0..rr {
                    beta[j * rr + y] += p * m.cy[l * rr + y];
                }
            }
        }
    }
    let mut leverage = 1.0 / n;
    for j in 0..k {
        for l in 0..k {
            leverage += m.mean_c[j] * pinv[j * k + l] * m.mean_c[l];
        }
    }
    let t_plain = student_t_quantile(1.0 - alpha / 2.0, n - 1.0);
    let t_cv = student_t_quantile(1.0 - alpha / 2.0, dof);
    let estimator = |cols: std::ops::Range<usize>, cv: bool| -> PolicyEstimates {
        let mut e = PolicyEstimates {
            estimate: Vec::new(),
            se: Vec::new(),
            lower: Vec::new(),
            upper: Vec::new(),
            variance_ratio: cv.then(Vec::new),
        };
        for y in cols {
            let plain_se = (m.yy[y].max(0.0) / (n - 1.0) / n).sqrt();
            let (est, se, t) = if cv {
                let adjust: f64 = (0..k).map(|j| beta[j * rr + y] * m.mean_c[j]).sum();
                let explained: f64 = (0..k).map(|j| beta[j * rr + y] * m.cy[j * rr + y]).sum();
                let rss = (m.yy[y] - explained).max(0.0);
                (m.mean_y[y] - adjust, (rss / dof * leverage).sqrt(), t_cv)
            } else {
                (m.mean_y[y], plain_se, t_plain)
            };
            e.estimate.push(est);
            e.se.push(se);
            e.lower.push(est - t * se);
            e.upper.push(est + t * se);
            if let Some(v) = e.variance_ratio.as_mut() {
                v.push(if se > 0.0 { (plain_se / se).powi(2) } else { f64::INFINITY });
            }
        }
        e
    };
    let dr = rr > k;
    Ok(ManyEstimates {
        n: m.n,
        policies: k,
        rank,
        dof,
        ipw: estimator(0..k, false),
        ipw_cv: estimator(0..k, true),
        dr: dr.then(|| estimator(k..2 * k, false)),
        dr_cv: dr.then(|| estimator(k..2 * k, true)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn chunks_merge_to_the_two_pass_sums() {
        let mut r = lcg(1);
        let n = 3 * CHUNK_ROWS + 17;
        let rew: Vec<f64> = (0..n).map(|_| r()).collect();
        let mu: Vec<f64> = (0..n).map(|_| 0.2 + 0.6 * r()).collect();
        let t: Vec<Vec<f64>> = (0..3).map(|_| (0..n).map(|_| r()).collect()).collect();
        let input = ManyInput { r: &rew, mu: &mu, targets: t.iter().map(Vec::as_slice).collect(), model: None };
        let m = co_moments(&input);
        // two passes, directly
        let c = |j: usize, i: usize| t[j][i] / mu[i] - 1.0;
        let y = |j: usize, i: usize| t[j][i] / mu[i] * rew[i];
        let mc: Vec<f64> = (0..3).map(|j| (0..n).map(|i| c(j, i)).sum::<f64>() / n as f64).collect();
        let my: Vec<f64> = (0..3).map(|j| (0..n).map(|i| y(j, i)).sum::<f64>() / n as f64).collect();
        for j in 0..3 {
            assert!((m.mean_c[j] - mc[j]).abs() < 1e-13);
            for l in 0..3 {
                let cc: f64 = (0..n).map(|i| (c(j, i) - mc[j]) * (c(l, i) - mc[l])).sum();
                let cy: f64 = (0..n).map(|i| (c(j, i) - mc[j]) * (y(l, i) - my[l])).sum();
                assert!((m.cc[j * 3 + l] - cc).abs() < 1e-9 * cc.abs().max(1.0), "{} {cc}", m.cc[j * 3 + l]);
                assert!((m.cy[j * 3 + l] - cy).abs() < 1e-9 * cy.abs().max(1.0));
            }
        }
    }
}
