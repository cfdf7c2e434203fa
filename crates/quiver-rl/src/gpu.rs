//! The moments C = ΦᵀΦ, M = ΦᵀΦ̄′, b = Φᵀr on an NVIDIA GPU: chunks of rows go to the device,
//! the `rff_rows` kernel computes their features there (or given feature columns are copied),
//! and cuBLAS GEMMs add each chunk into C, M and b, which stay on the device until the end.
//!
//! cuBLAS is column-major: a row-major m × d block Φ is the column-major d × m matrix X = Φᵀ,
//! so C += X Xᵀ, M (row-major) += Φ̄′ᵀ-major product Y Xᵀ with Y = Φ̄′ᵀ, and b += X r.

use crate::data::States;
use crate::features::{DenseRows, FeatureMap, NextTarget};
use crate::linear::Moments;
use ndarray::{Array1, Array2};
use quiver_gpu::cudarc::cublas::{sys::cublasOperation_t, Gemm, GemmConfig};
use quiver_gpu::cudarc::driver::PushKernelArg;
use quiver_gpu::GpuError;
use quiver_sdk::abi::PluginError;
use quiver_sdk::Context;

/// CUDA source of the random Fourier feature kernel.
pub const RFF_KERNEL: &str = include_str!("kernels/rff_rows.cu");

/// Rows per chunk on the device.
pub const GPU_CHUNK_ROWS: usize = 1 << 16;

fn blas_err<E: std::fmt::Debug>(e: E) -> GpuError {
    GpuError::Driver(format!("cuBLAS: {e:?}"))
}

/// The moments of dense features (`rff`, `given`) computed on the GPU; equal to
/// [`crate::linear::accumulate_dense`] up to the order of the sums.
pub fn accumulate_dense_cuda(rows: &DenseRows<'_, '_>, ctx: &Context) -> Result<Moments, PluginError> {
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
        ctx.progress(ci as u64 + 1, chunks as u64, "moments (cuda)")?;
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
