//! The low-rank completion ([`crate::low_rank::complete`]) on an NVIDIA GPU, for a batch of
//! matrices that share one mask of observed cells — `critic-lowrank` completes the reward matrix,
//! the continuation mass and one transition slice per next state, all on the same cells, so a run
//! completes them together. Each matrix starts from its spectral estimate (its SVD, on the CPU, as
//! the CPU path) and then alternates least squares on the device: the `als_lines` kernel solves
//! every row of every U_b (a block per line and matrix: the normal equations accumulated in the
//! CPU's order, solved by Cholesky), then every row of every V_b; cuBLAS's strided-batched DGEMM
//! forms each Z_b = U_b V_bᵀ; `als_converged` stops each matrix at the sweep whose change is at
//! most 1e-12 of its scale — the CPU's rule, per matrix. Equal to the CPU path up to the solver's
//! rounding (Cholesky here, LAPACK's LU there).

use crate::low_rank::{spectral_start, ALS_SWEEPS};
use crate::RlError;
use ndarray::Array2;
use quiver_gpu::cudarc::cublas::{Gemm, StridedBatchedConfig};
use quiver_gpu::cudarc::driver::{LaunchConfig, PushKernelArg};
use quiver_gpu::{GemmArgs, GpuError};
use quiver_numerics::{checkpoint, Progress};

/// CUDA source of the completion's kernels (`als_lines`, `als_converged`).
pub const ALS_KERNEL: &str = include_str!("kernels/als.cu");

/// The largest rank the GPU path solves (its r × r normal equations live in a block's shared
/// memory); past it the CPU's solver runs.
pub const MAX_GPU_RANK: usize = 64;

/// Most matrices one batch takes (CUDA's limit on a grid's second dimension); more run in batches
/// of this size.
pub const MAX_BATCH: usize = 65_535;

/// Threads a block of `als_lines` and `als_converged`.
pub const ALS_THREADS: u32 = 256;

/// Z_b = U_b V_bᵀ for every matrix b, as a cuBLAS strided-batched product: U_b (rows × r) and V_b
/// (cols × r) row-major are the column-major r × rows and r × cols matrices U_bᵀ and V_bᵀ, and the
/// row-major Z_b (rows × cols) is the column-major Z_bᵀ = V_b U_bᵀ (cols × rows): A = V_bᵀ
/// transposed, B = U_bᵀ as stored.
pub fn product_config(
    rows: usize,
    cols: usize,
    rank: usize,
    batch: usize,
) -> Result<StridedBatchedConfig<f64>, RlError> {
    let args = GemmArgs { ta: true, tb: false, m: cols, n: rows, k: rank, lda: rank, ldb: rank, ldc: cols };
    Ok(StridedBatchedConfig {
        gemm: args.config(1.0, 0.0)?,
        batch_size: i32::try_from(batch).map_err(|_| RlError::Parameter(format!("{batch} matrices past 2^31")))?,
        stride_a: (cols * rank) as i64,
        stride_b: (rows * rank) as i64,
        stride_c: (rows * cols) as i64,
    })
}

/// Bytes of dynamic shared memory `als_lines` takes at rank `r`: A (r × r) and x (r).
pub fn shared_bytes(rank: usize) -> u32 {
    ((rank * rank + rank) * std::mem::size_of::<f64>()) as u32
}

fn blas_err<E: std::fmt::Debug>(e: E) -> RlError {
    RlError::from(GpuError::Driver(format!("cuBLAS: {e:?}")))
}

/// Every matrix of `ms` (one shape, observed on the same cells) completed at rank `rank` off the
/// observed cells, as [`crate::low_rank::complete`] completes each, on the GPU. `ridge` is relative
/// to each matrix's largest observed value.
pub fn complete_batch_cuda(
    ms: &[Array2<f64>],
    observed: &Array2<bool>,
    rank: usize,
    ridge: f64,
    progress: &dyn Progress,
) -> Result<Vec<Array2<f64>>, RlError> {
    if ms.is_empty() || observed.iter().all(|&o| o) {
        return Ok(ms.to_vec());
    }
    if ms.len() > MAX_BATCH {
        // a launch's second grid dimension (the matrix) holds at most 65 535 blocks
        let mut out = Vec::with_capacity(ms.len());
        for group in ms.chunks(MAX_BATCH) {
            out.extend(complete_batch_cuda(group, observed, rank, ridge, progress)?);
        }
        return Ok(out);
    }
    if rank == 0 || rank > MAX_GPU_RANK {
        return Err(RlError::Parameter(format!("rank {rank}: the GPU completion takes ranks 1 to {MAX_GPU_RANK}")));
    }
    let (rows, cols) = observed.dim();
    let batch = ms.len();
    if ms.iter().any(|m| m.dim() != (rows, cols)) {
        return Err(RlError::Internal("matrices of another shape than their mask".into()));
    }
    // the spectral starts (SVDs) on the CPU, and each matrix's ridge
    let (mut y, mut u, mut v, mut rho) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for m in ms {
        let (u0, v0) = spectral_start(m, observed, rank)?;
        y.extend(m.iter().copied());
        u.extend(u0.iter().copied());
        v.extend(v0.iter().copied());
        let scale = m.iter().zip(observed.iter()).filter(|(_, &o)| o).fold(0.0f64, |a, (x, _)| a.max(x.abs()));
        rho.push(ridge * scale.max(f64::MIN_POSITIVE));
    }
    let mask: Vec<u8> = observed.iter().map(|&o| u8::from(o)).collect();
    let stream = quiver_gpu::stream()?;
    let blas = quiver_gpu::cublas()?;
    let lines = quiver_gpu::kernel("als", ALS_KERNEL, "als_lines")?;
    let converged = quiver_gpu::kernel("als", ALS_KERNEL, "als_converged")?;
    let up = |x: &[f64]| stream.clone_htod(x).map_err(GpuError::from);
    let (y_d, rho_d) = (up(&y)?, up(&rho)?);
    let (mut u_d, mut v_d) = (up(&u)?, up(&v)?);
    let mask_d = stream.clone_htod(&mask).map_err(GpuError::from)?;
    let mut active = stream.clone_htod(&vec![1i32; batch]).map_err(GpuError::from)?;
    let mut failed = stream.alloc_zeros::<i32>(1).map_err(GpuError::from)?;
    let cells = rows * cols;
    let mut z = stream.alloc_zeros::<f64>(batch * cells).map_err(GpuError::from)?;
    let mut last = stream.alloc_zeros::<f64>(batch * cells).map_err(GpuError::from)?;
    let product = product_config(rows, cols, rank, batch)?;
    // SAFETY: V (batch × cols × r), U (batch × rows × r) and L (batch × rows × cols) hold what the
    // strided configuration reads and writes.
    unsafe { blas.gemm_strided_batched(product, &v_d, &u_d, &mut last) }.map_err(blas_err)?;
    let (ri, ci, ki) = (rows as i32, cols as i32, rank as i32);
    let grid = |n: usize| LaunchConfig {
        grid_dim: (n as u32, batch as u32, 1),
        block_dim: (ALS_THREADS, 1, 1),
        shared_mem_bytes: shared_bytes(rank),
    };
    for sweep in 0..ALS_SWEEPS {
        for by_rows in [1i32, 0] {
            let (n, other, mine) = if by_rows == 1 { (rows, &v_d, &mut u_d) } else { (cols, &u_d, &mut v_d) };
            let mut launch = stream.launch_builder(&lines);
            launch.arg(&y_d).arg(&mask_d).arg(other).arg(mine).arg(&active).arg(&rho_d);
            launch.arg(&ri).arg(&ci).arg(&ki).arg(&by_rows).arg(&mut failed);
            // SAFETY: als_lines's arguments in order; y holds batch × rows × cols values, the mask
            // rows × cols, the factors batch × lines × r; the shared memory holds r × r + r doubles.
            unsafe { launch.launch(grid(n)) }.map_err(GpuError::from)?;
        }
        // SAFETY: as for the first product.
        unsafe { blas.gemm_strided_batched(product, &v_d, &u_d, &mut z) }.map_err(blas_err)?;
        let total = cells as i64;
        let mut launch = stream.launch_builder(&converged);
        launch.arg(&z).arg(&mut last).arg(&mut active).arg(&total);
        let per_matrix =
            LaunchConfig { grid_dim: (batch as u32, 1, 1), block_dim: (ALS_THREADS, 1, 1), shared_mem_bytes: 0 };
        // SAFETY: als_converged's arguments in order; Z and L hold batch × cells values, active batch.
        unsafe { launch.launch(per_matrix) }.map_err(GpuError::from)?;
        if stream.clone_dtoh(&failed).map_err(GpuError::from)?[0] != 0 {
            return Err(RlError::Parameter(crate::low_rank::SINGULAR.into()));
        }
        let still = stream.clone_dtoh(&active).map_err(GpuError::from)?.iter().filter(|&&a| a != 0).count();
        checkpoint(progress, sweep as u64 + 1, ALS_SWEEPS as u64, "completing the model (cuda)")?;
        if still == 0 {
            break;
        }
    }
    let completed = stream.clone_dtoh(&last).map_err(GpuError::from)?;
    Ok(ms
        .iter()
        .enumerate()
        .map(|(b, m)| {
            let z = &completed[b * cells..(b + 1) * cells];
            Array2::from_shape_fn((rows, cols), |(i, j)| if observed[(i, j)] { m[(i, j)] } else { z[i * cols + j] })
        })
        .collect())
}
