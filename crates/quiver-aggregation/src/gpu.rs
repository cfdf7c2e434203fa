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
        // the weight of model j at level k
        let wjk: Vec<f64> = (0..jj * kk)
            .map(|c| {
                let (j, k) = (c / kk, c % kk);
                if self.s.granularity == Granularity::Coarse {
                    w[j]
                } else {
                    w[k * jj + j]
                }
            })
            .collect();
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
            for (c, v) in g.iter().enumerate() {
                let (j, k) = (c / kk, c % kk);
                if self.s.granularity == Granularity::Coarse {
                    out[j] += v;
                } else {
                    out[k * jj + j] += v;
                }
            }
        }
        Ok(loss)
    }
}
