//! The moments C = ΦᵀΦ, M = ΦᵀΦ̄′, b = Φᵀr on an NVIDIA GPU: chunks of rows go to the device,
//! the `rff_rows` kernel computes their features there (or given feature columns are copied),
//! and cuBLAS GEMMs add each chunk into C, M and b, which stay on the device until the end.
//!
//! cuBLAS is column-major: a row-major m × d block Φ is the column-major d × m matrix X = Φᵀ,
//! so C += X Xᵀ, M (row-major) += Φ̄′ᵀ-major product Y Xᵀ with Y = Φ̄′ᵀ, and b += X r.

use crate::data::States;
use crate::features::{DenseRows, FeatureMap, NextTarget};
use crate::linear::Moments;
use crate::RlError;
use ndarray::{Array1, Array2};
use quiver_gpu::cudarc::cublas::{sys::cublasOperation_t, Gemm, GemmConfig};
use quiver_gpu::cudarc::driver::PushKernelArg;
use quiver_gpu::GpuError;
use quiver_numerics::{checkpoint, Progress};

/// CUDA source of the random Fourier feature kernel.
pub const RFF_KERNEL: &str = include_str!("kernels/rff_rows.cu");

/// Rows per chunk on the device.
pub const GPU_CHUNK_ROWS: usize = 1 << 16;

fn blas_err<E: std::fmt::Debug>(e: E) -> GpuError {
    GpuError::Driver(format!("cuBLAS: {e:?}"))
}

/// The moments of dense features (`rff`, `given`) computed on the GPU; equal to
/// [`crate::linear::accumulate_dense`] up to the order of the sums.
pub fn accumulate_dense_cuda(rows: &DenseRows<'_, '_>, progress: &dyn Progress) -> Result<Moments, RlError> {
    let data = rows.data;
    let d = rows.map.dim();
    let n = data.n;
    let stream = quiver_gpu::stream()?;
    let blas = quiver_gpu::cublas()?;
    let mut c_dev = stream.alloc_zeros::<f64>(d * d).map_err(GpuError::from)?;
    let mut m_dev = stream.alloc_zeros::<f64>(d * d).map_err(GpuError::from)?;
    let mut b_dev = stream.alloc_zeros::<f64>(d).map_err(GpuError::from)?;
    let chunk = GPU_CHUNK_ROWS.min(n.max(1));
    let mut phi_dev = stream.alloc_zeros::<f64>(chunk * d).map_err(GpuError::from)?;
    let mut next_dev = stream.alloc_zeros::<f64>(chunk * d).map_err(GpuError::from)?;
    let chunks = n.div_ceil(chunk);
    let (mut phi_host, mut next_host) = (Vec::new(), Vec::new());
    for (ci, start) in (0..n).step_by(chunk).enumerate() {
        let range = start..(start + chunk).min(n);
        let m = range.len();
        match rows.map {
            FeatureMap::Rff(rff) => {
                let States::Continuous { s, s_next } = &data.states else {
                    unreachable!("rff needs continuous states")
                };
                let k = rff.state_dim;
                let gather = |cols: &[&[f64]]| -> Vec<f64> {
                    range
                        .clone()
                        .flat_map(|i| cols.iter().map(move |c| if c.is_empty() { 0.0 } else { c[i] }))
                        .collect()
                };
                let (sh, snh) = (gather(s), gather(s_next));
                let acts: Vec<i64> = range.clone().map(|i| data.a[i] as i64).collect();
                let na = rff.n_actions;
                let mut pnext = vec![0.0; m * na];
                for (row, i) in range.clone().enumerate() {
                    if data.done[i] {
                        continue;
                    }
                    match rows.target {
                        NextTarget::Columns(pc) => {
                            for q in 0..na {
                                pnext[row * na + q] = pc.next[q][i];
                            }
                        }
                        NextTarget::NextAction => {
                            pnext[row * na + data.a_next.as_ref().expect("a_next")[i] as usize] = 1.0
                        }
                        NextTarget::Policy(_) => unreachable!("continuous states take the policy from columns"),
                    }
                }
                let f = quiver_gpu::kernel("rff_rows", RFF_KERNEL, "rff_rows")?;
                let (d_s, d_sn, d_a, d_p) = (
                    stream.clone_htod(&sh).map_err(GpuError::from)?,
                    stream.clone_htod(&snh).map_err(GpuError::from)?,
                    stream.clone_htod(&acts).map_err(GpuError::from)?,
                    stream.clone_htod(&pnext).map_err(GpuError::from)?,
                );
                let (d_w, d_b) = (
                    stream.clone_htod(&rff.w).map_err(GpuError::from)?,
                    stream.clone_htod(&rff.b).map_err(GpuError::from)?,
                );
                let (mi, ki, di, ai) = (m as i32, k as i32, rff.dim as i32, na as i32);
                let mut launch = stream.launch_builder(&f);
                launch.arg(&d_s).arg(&d_sn).arg(&d_a).arg(&d_p).arg(&d_w).arg(&d_b);
                launch.arg(&mi).arg(&ki).arg(&di).arg(&ai).arg(&rff.scale).arg(&mut phi_dev).arg(&mut next_dev);
                // SAFETY: the argument types and order match `rff_rows`; the buffers hold m·k, m·k,
                // m, m·A, D·k, D inputs and m·D·A outputs, one thread per (row, feature).
                unsafe { launch.launch(quiver_gpu::launch_config(m * rff.dim)) }.map_err(GpuError::from)?;
            }
            FeatureMap::Given(_) => {
                phi_host.resize(m * d, 0.0);
                next_host.resize(m * d, 0.0);
                rows.fill(range.clone(), &mut phi_host, &mut next_host);
                stream.memcpy_htod(&phi_host, &mut phi_dev).map_err(GpuError::from)?;
                stream.memcpy_htod(&next_host, &mut next_dev).map_err(GpuError::from)?;
            }
            FeatureMap::OneHot(_) => unreachable!("one-hot features are accumulated sparsely on the CPU"),
        }
        let r_dev = stream.clone_htod(&data.r[range.clone()]).map_err(GpuError::from)?;
        let (di, mi) = (d as i32, m as i32);
        let cfg = |transb, n_cols: i32, ldb: i32| GemmConfig {
            transa: cublasOperation_t::CUBLAS_OP_N,
            transb,
            m: di,
            n: n_cols,
            k: mi,
            alpha: 1.0,
            lda: di,
            ldb,
            beta: 1.0,
            ldc: di,
        };
        // SAFETY: the device buffers hold at least the m × d (or m) elements the configurations
        // read, and the d × d (or d) elements they write.
        unsafe {
            blas.gemm(cfg(cublasOperation_t::CUBLAS_OP_T, di, di), &phi_dev, &phi_dev, &mut c_dev).map_err(blas_err)?;
            blas.gemm(cfg(cublasOperation_t::CUBLAS_OP_T, di, di), &next_dev, &phi_dev, &mut m_dev)
                .map_err(blas_err)?;
            blas.gemm(cfg(cublasOperation_t::CUBLAS_OP_N, 1, mi), &phi_dev, &r_dev, &mut b_dev).map_err(blas_err)?;
        }
        checkpoint(progress, ci as u64 + 1, chunks as u64, "moments (cuda)")?;
    }
    let c = stream.clone_dtoh(&c_dev).map_err(GpuError::from)?;
    let m = stream.clone_dtoh(&m_dev).map_err(GpuError::from)?;
    let b = stream.clone_dtoh(&b_dev).map_err(GpuError::from)?;
    Ok(Moments {
        c: Array2::from_shape_vec((d, d), c).expect("d × d"),
        m: Array2::from_shape_vec((d, d), m).expect("d × d"),
        b: Array1::from(b),
    })
}

/// CUDA source of the OPE kernels: the segmented scans (`episode_weights`, `nstep_returns`) and
/// the counter-based Poisson bootstrap (`bootstrap_counts`, `resample_sums`), after the
/// `POISSON1_CDF` table written from the CPU's own constants ([`crate::bootstrap::POISSON1_CDF`]),
/// so the two devices invert one table.
pub fn ope_kernel() -> &'static str {
    static SOURCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SOURCE.get_or_init(|| {
        // `{:?}` writes each double's shortest exact decimal, which CUDA reads back to the same bits
        let table: Vec<String> = crate::bootstrap::POISSON1_CDF.iter().map(|f| format!("{f:?}")).collect();
        format!(
            "__constant__ double POISSON1_CDF[{}] = {{{}}};\n{}",
            table.len(),
            table.join(", "),
            include_str!("kernels/ope.cu")
        )
    })
}

/// Most counts held on the device at once (resamples × units), 1 GiB of u32.
pub const MAX_DEVICE_COUNTS: usize = 1 << 28;

/// Slots (and the size) a block accumulates in shared memory (32 KiB of doubles); wider matrices
/// add to global memory directly.
pub const MAX_SHARED_SLOTS: usize = 4096;

fn grid(n: usize, y: usize, shared: u32) -> quiver_gpu::cudarc::driver::LaunchConfig {
    quiver_gpu::cudarc::driver::LaunchConfig {
        grid_dim: (n.div_ceil(256).max(1) as u32, y as u32, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: shared,
    }
}

/// [`crate::ope::episode_weights`] on the GPU: one thread per episode.
pub fn episode_weights_cuda(rho: &[f64], episodes: &[std::ops::Range<usize>]) -> Result<Vec<f64>, RlError> {
    let stream = quiver_gpu::stream()?;
    let f = quiver_gpu::kernel("ope", ope_kernel(), "episode_weights")?;
    let start: Vec<i64> = episodes.iter().map(|e| e.start as i64).collect();
    let end: Vec<i64> = episodes.iter().map(|e| e.end as i64).collect();
    let d_rho = stream.clone_htod(rho).map_err(GpuError::from)?;
    let (d_start, d_end) =
        (stream.clone_htod(&start).map_err(GpuError::from)?, stream.clone_htod(&end).map_err(GpuError::from)?);
    let mut d_w = stream.alloc_zeros::<f64>(rho.len().max(1)).map_err(GpuError::from)?;
    let n_ep = episodes.len() as i64;
    let mut launch = stream.launch_builder(&f);
    launch.arg(&d_rho).arg(&d_start).arg(&d_end).arg(&n_ep).arg(&mut d_w);
    // SAFETY: argument types and order match `episode_weights`; every episode's rows lie inside
    // rho and w (both rho.len() long), one thread per episode.
    unsafe { launch.launch(quiver_gpu::launch_config(episodes.len())) }.map_err(GpuError::from)?;
    let mut w = stream.clone_dtoh(&d_w).map_err(GpuError::from)?;
    w.truncate(rho.len());
    Ok(w)
}

/// h-step discounted reward sums Σ_{k<h′} γ^k r_{i+k} and the window lengths h′ =
/// min(h, end_i − i) on the GPU, `episode_end[i]` the end (exclusive) of row i's episode.
pub fn nstep_returns_cuda(
    r: &[f64],
    episode_end: &[i64],
    h: usize,
    gamma: f64,
) -> Result<(Vec<f64>, Vec<i32>), RlError> {
    let stream = quiver_gpu::stream()?;
    let f = quiver_gpu::kernel("ope", ope_kernel(), "nstep_returns")?;
    let n = r.len();
    let d_r = stream.clone_htod(r).map_err(GpuError::from)?;
    let d_end = stream.clone_htod(episode_end).map_err(GpuError::from)?;
    let mut d_ret = stream.alloc_zeros::<f64>(n.max(1)).map_err(GpuError::from)?;
    let mut d_len = stream.alloc_zeros::<i32>(n.max(1)).map_err(GpuError::from)?;
    let (ni, hi) = (n as i64, h.min(i32::MAX as usize) as i32);
    let mut launch = stream.launch_builder(&f);
    launch.arg(&d_r).arg(&d_end).arg(&ni).arg(&hi).arg(&gamma).arg(&mut d_ret).arg(&mut d_len);
    // SAFETY: argument types and order match `nstep_returns`; r, episode_end, ret and len hold
    // n elements and every episode end is at most n, one thread per row.
    unsafe { launch.launch(quiver_gpu::launch_config(n)) }.map_err(GpuError::from)?;
    let (mut ret, mut len) =
        (stream.clone_dtoh(&d_ret).map_err(GpuError::from)?, stream.clone_dtoh(&d_len).map_err(GpuError::from)?);
    ret.truncate(n);
    len.truncate(n);
    Ok((ret, len))
}

/// [`crate::bootstrap::Plan::stats_cpu`] on the GPU: the same counts (the kernels use the same
/// counter-based generator and the same Poisson inversion), so the slot sums agree up to the order
/// of the additions; the device returns the sums and sizes ([`resample_sums_cuda`]) and the host
/// reduces them by the plan's `stat`.
pub fn resample_stats_cuda(plan: &crate::bootstrap::Plan<'_>) -> Result<Vec<Vec<f64>>, RlError> {
    Ok(resample_sums_cuda(plan)?.stats(plan.stat))
}

/// [`crate::bootstrap::Plan::sums_cpu`] on the GPU: every resample's slot sums and size (what a
/// partition contributes to a bootstrap by parts). Resamples go in batches of at most
/// [`MAX_DEVICE_COUNTS`] counts (and as many rows of sums).
pub fn resample_sums_cuda(plan: &crate::bootstrap::Plan<'_>) -> Result<crate::bootstrap::ResampledSums, RlError> {
    let x = plan.x;
    let (n, width) = (x.units(), x.width);
    let row = width + 1;
    if n == 0 || plan.resamples == 0 {
        return Ok(crate::bootstrap::ResampledSums { width, sums: vec![0.0; plan.resamples * row] });
    }
    let stream = quiver_gpu::stream()?;
    let counts_fn = quiver_gpu::kernel("ope", ope_kernel(), "bootstrap_counts")?;
    let sums_fn = quiver_gpu::kernel("ope", ope_kernel(), "resample_sums")?;
    let offsets: Vec<i64> = x.offsets.iter().map(|&o| o as i64).collect();
    let d_off = stream.clone_htod(&offsets).map_err(GpuError::from)?;
    let d_slots = stream.clone_htod(&x.slots).map_err(GpuError::from)?;
    let d_vals = stream.clone_htod(&x.values).map_err(GpuError::from)?;
    // the units' keys: an array of ids, or a first key (a null array then)
    let (ids, first) = match plan.keys {
        crate::bootstrap::UnitKeys::Ids(ids) => (Some(stream.clone_htod(ids).map_err(GpuError::from)?), 0u64),
        crate::bootstrap::UnitKeys::From(first) => (None, first),
    };
    let null: u64 = 0;
    let batch = (MAX_DEVICE_COUNTS / n.max(row)).clamp(1, plan.resamples.min(65_535));
    let mut d_counts = stream.alloc_zeros::<u32>(batch * n).map_err(GpuError::from)?;
    let mut d_sums = stream.alloc_zeros::<f64>(batch * row).map_err(GpuError::from)?;
    let (shared, use_shared) = if row <= MAX_SHARED_SLOTS { ((row * 8) as u32, 1i32) } else { (0u32, 0i32) };
    let (ni, wi) = (n as i64, width as i32);
    let mut out = Vec::with_capacity(plan.resamples * row);
    for b0 in (0..plan.resamples).step_by(batch) {
        let nb = batch.min(plan.resamples - b0);
        stream.memset_zeros(&mut d_sums).map_err(GpuError::from)?;
        let b0u = b0 as u64;
        let mut launch = stream.launch_builder(&counts_fn);
        launch.arg(&plan.seed).arg(&b0u).arg(&ni);
        match &ids {
            Some(d) => launch.arg(d),
            None => launch.arg(&null),
        };
        launch.arg(&first).arg(&mut d_counts);
        // SAFETY: argument types and order match `bootstrap_counts` (keys a device array of n
        // u64 or a null pointer); the grid is n units × nb resamples and counts holds batch ≥ nb
        // rows of n, each entry written once.
        unsafe { launch.launch(grid(n, nb, 0)) }.map_err(GpuError::from)?;
        let mut launch = stream.launch_builder(&sums_fn);
        launch.arg(&d_counts).arg(&d_off).arg(&d_slots).arg(&d_vals).arg(&ni).arg(&wi).arg(&use_shared);
        launch.arg(&mut d_sums);
        // SAFETY: argument types and order match `resample_sums`; offsets has n + 1 entries
        // bounding slots/values, every slot is below width, sums holds nb rows of width + 1, and
        // the shared memory is width + 1 doubles when it is used. At most 64 blocks of units per
        // resample.
        unsafe { launch.launch(grid(n.min(64 * 256), nb, shared)) }.map_err(GpuError::from)?;
        let sums = stream.clone_dtoh(&d_sums).map_err(GpuError::from)?;
        out.extend_from_slice(&sums[..nb * row]);
    }
    Ok(crate::bootstrap::ResampledSums { width, sums: out })
}
