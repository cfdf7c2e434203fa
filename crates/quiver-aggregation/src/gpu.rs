//! The pinball loss and its gradient for global `coarse` and `medium` weights on an NVIDIA GPU:
//! the forecast columns are copied to the device once, each step sends the batch's row indices
//! and the J × K weights and receives the J × K sums G_jk = Σ_i (1{y_i < q̂_ik} − τ_k) Q_jk[i] and
//! the loss (kernel `pinball_grad`, `kernels/pinball.cu`). Sums are accumulated with atomics in
//! an order that varies between runs, so results equal the CPU path's to rounding, not bit for bit.

use crate::adam::{block_rows, GlobalGradient};
use crate::model::{Granularity, Structure};
use crate::AggregationError;
use quiver_gpu::cudarc::driver::{CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
use quiver_gpu::GpuError;
use std::sync::Arc;

/// CUDA source of the loss-and-gradient kernel.
pub const PINBALL_KERNEL: &str = include_str!("kernels/pinball.cu");

/// Most models the kernel handles (its per-thread registers); more run on the CPU.
pub const MAX_MODELS: usize = 32;

/// Whether the CUDA path serves this structure.
pub fn supports(s: &Structure) -> bool {
    matches!(s.granularity, Granularity::Coarse | Granularity::Medium) && s.j <= MAX_MODELS
}

/// The device copy of the forecasts and the buffers of one fit.
pub struct CudaGradient {
    s: Structure,
    n: usize,
    block: usize,
    stream: Arc<CudaStream>,
    q: CudaSlice<f64>,
    y: CudaSlice<f64>,
    levels: CudaSlice<f64>,
    grad: CudaSlice<f64>,
    loss: CudaSlice<f64>,
    rows_host: Vec<u32>,
}

impl CudaGradient {
    /// Copy the columns (j·K + k), outcomes and levels to the device.
    pub fn new(
        s: Structure,
        q: &[&[f64]],
        y: &[f64],
        levels: &[f64],
        block: usize,
    ) -> Result<CudaGradient, AggregationError> {
        let n = y.len();
        if n > u32::MAX as usize {
            return Err(AggregationError::Unsupported(
                "the CUDA pinball kernel indexes rows with 32 bits: use device=cpu".into(),
            ));
        }
        let stream = quiver_gpu::stream()?;
        let mut d_q = stream.alloc_zeros::<f64>(n * q.len()).map_err(GpuError::from)?;
        for (c, col) in q.iter().enumerate() {
            let mut dst = d_q.slice_mut(c * n..(c + 1) * n);
            stream.memcpy_htod(*col, &mut dst).map_err(GpuError::from)?;
        }
        Ok(CudaGradient {
            s,
            n,
            block,
            y: stream.clone_htod(y).map_err(GpuError::from)?,
            levels: stream.clone_htod(levels).map_err(GpuError::from)?,
            grad: stream.alloc_zeros::<f64>(s.j * s.k).map_err(GpuError::from)?,
            loss: stream.alloc_zeros::<f64>(1).map_err(GpuError::from)?,
            q: d_q,
            stream,
            rows_host: Vec::new(),
        })
    }
}

impl GlobalGradient for CudaGradient {
    fn eval(&mut self, blocks: &[usize], w: &[f64], grad: Option<&mut [f64]>) -> Result<f64, AggregationError> {
        let (jj, kk) = (self.s.j, self.s.k);
        self.rows_host.clear();
        for &b in blocks {
            self.rows_host.extend(block_rows(b, self.block, self.n).map(|i| i as u32));
        }
        let wjk = weights_by_model_and_level(&self.s, w);
        let st = &self.stream;
        let d_rows = st.clone_htod(&self.rows_host).map_err(GpuError::from)?;
        let d_w = st.clone_htod(&wjk).map_err(GpuError::from)?;
        st.memset_zeros(&mut self.grad).map_err(GpuError::from)?;
        st.memset_zeros(&mut self.loss).map_err(GpuError::from)?;
        let f = quiver_gpu::kernel("pinball", PINBALL_KERNEL, "pinball_grad")?;
        let n_rows = self.rows_host.len() as u32;
        let (n64, j32, k32) = (self.n as u64, jj as u32, kk as u32);
        let chunks = (self.rows_host.len().div_ceil(256) as u32).clamp(1, 64);
        let cfg = LaunchConfig { grid_dim: (k32, chunks, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
        let mut launch = st.launch_builder(&f);
        launch.arg(&self.q).arg(&self.y).arg(&self.levels).arg(&d_w).arg(&d_rows).arg(&n_rows);
        launch.arg(&n64).arg(&j32).arg(&k32).arg(&mut self.grad).arg(&mut self.loss);
        // SAFETY: the argument list matches `pinball_grad`'s signature; every row index is < n
        // (blocks of the fit rows), the weights hold J·K values, grad J·K and loss one.
        unsafe { launch.launch(cfg) }.map_err(GpuError::from)?;
        let g = st.clone_dtoh(&self.grad).map_err(GpuError::from)?;
        let loss = st.clone_dtoh(&self.loss).map_err(GpuError::from)?[0];
        if let Some(out) = grad {
            add_kernel_gradient(&self.s, &g, out);
        }
        Ok(loss)
    }
}

/// The kernel's weights: model j's at level k at `j·K + k`, from the fit's weights `w` (coarse:
/// w_j; medium: w at `k·J + j`).
fn weights_by_model_and_level(s: &Structure, w: &[f64]) -> Vec<f64> {
    let (jj, kk) = (s.j, s.k);
    (0..jj * kk)
        .map(|c| {
            let (j, k) = (c / kk, c % kk);
            if s.granularity == Granularity::Coarse {
                w[j]
            } else {
                w[k * jj + j]
            }
        })
        .collect()
}

/// Add the kernel's sums G (at `j·K + k`) to the gradient in the fit's weights (coarse: summed
/// over the levels).
fn add_kernel_gradient(s: &Structure, g: &[f64], out: &mut [f64]) {
    let (jj, kk) = (s.j, s.k);
    for (c, v) in g.iter().enumerate() {
        let (j, k) = (c / kk, c % kk);
        if s.granularity == Granularity::Coarse {
            out[j] += v;
        } else {
            out[k * jj + j] += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adam::CpuGradient;

    /// The CUDA kernel, run on the CPU (quiver-cuda-emulator), gives the CPU path's loss and
    /// gradient over the same blocks, for coarse and medium weights.
    #[test]
    fn the_kernel_gives_the_cpu_loss_and_gradient() {
        let Some(m) =
            quiver_cuda_emulator::skip_or_panic(quiver_cuda_emulator::Module::compile("pinball", PINBALL_KERNEL))
        else {
            return;
        };
        type Kernel = unsafe extern "C" fn(
            *const f64,
            *const f64,
            *const f64,
            *const f64,
            *const u32,
            u32,
            u64,
            u32,
            u32,
            *mut f64,
            *mut f64,
        );
        // SAFETY: pinball_grad's parameters (kernels/pinball.cu).
        let kernel: Kernel = unsafe { m.function("pinball_grad") }.unwrap();
        let (n, jj, levels) = (3000usize, 4usize, vec![0.1, 0.25, 0.5, 0.75, 0.9]);
        let kk = levels.len();
        let mut state = 7u64;
        let mut r = || quiver_numerics::splitmix::next(&mut state) as f64 / u64::MAX as f64;
        let y: Vec<f64> = (0..n).map(|_| 4.0 * r()).collect();
        // column j·K + k: model j's forecast of level k, around the outcome
        let cols: Vec<Vec<f64>> =
            (0..jj * kk).map(|c| y.iter().map(|yi| yi + levels[c % kk] - 0.5 + r() - 0.5).collect()).collect();
        let q: Vec<&[f64]> = cols.iter().map(Vec::as_slice).collect();
        let flat: Vec<f64> = cols.concat();
        let block = crate::adam::block_size(n);
        let blocks: Vec<usize> = (0..n.div_ceil(block)).filter(|b| b % 3 != 1).collect();
        let rows: Vec<u32> =
            blocks.iter().flat_map(|&b| crate::adam::block_rows(b, block, n)).map(|i| i as u32).collect();
        for granularity in [Granularity::Coarse, Granularity::Medium] {
            let s = Structure::new(granularity, jj, kk).unwrap();
            let w: Vec<f64> = (0..s.n_weights()).map(|_| r()).collect();
            let mut cpu_grad = vec![0.0; w.len()];
            let mut cpu = CpuGradient { s, q: &q, y: &y, levels: &levels, block };
            let cpu_loss = crate::adam::GlobalGradient::eval(&mut cpu, &blocks, &w, Some(&mut cpu_grad)).unwrap();
            let wjk = weights_by_model_and_level(&s, &w);
            let (mut g, mut loss) = (vec![0.0; jj * kk], 0.0f64);
            let ptrs = (flat.as_ptr(), y.as_ptr(), levels.as_ptr(), wjk.as_ptr(), rows.as_ptr());
            let (gp, lp) = (g.as_mut_ptr(), &mut loss as *mut f64);
            // SAFETY: q holds J·K columns of n, every row index is < n, the weights J·K, grad J·K
            // and loss one; the grid is the levels × chunks of rows, 256 threads a block (the
            // kernel's reductions assume 256).
            m.launch((kk as u32, 3, 1), (256, 1, 1), 0, || unsafe {
                kernel(
                    ptrs.0,
                    ptrs.1,
                    ptrs.2,
                    ptrs.3,
                    ptrs.4,
                    rows.len() as u32,
                    n as u64,
                    jj as u32,
                    kk as u32,
                    gp,
                    lp,
                )
            })
            .unwrap();
            let mut grad = vec![0.0; w.len()];
            add_kernel_gradient(&s, &g, &mut grad);
            quiver_cuda_emulator::assert_close(&format!("{granularity:?} loss"), &[cpu_loss], &[loss], 1e-11);
            quiver_cuda_emulator::assert_close(&format!("{granularity:?} gradient"), &cpu_grad, &grad, 1e-11);
        }
    }
}
