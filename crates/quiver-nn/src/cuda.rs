//! The CUDA [`Backend`]: buffers are `cudarc` device slices on the process's default stream, the
//! products cuBLAS's `sgemm`, the rest the NVRTC-compiled kernels of [`MLP_KERNELS`]. Every call
//! is queued on the one stream; a download waits for what was queued before it.

use crate::adam::AdamScalars;
use crate::device::{Backend, GemmArgs, RowOp, MLP_KERNELS, ROW_THREADS};
use crate::NnError;
use quiver_gpu::cudarc::cublas::{CudaBlas, Gemm};
use quiver_gpu::cudarc::driver::{CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
use std::sync::Arc;

fn device_err(e: impl std::fmt::Display) -> NnError {
    NnError::Device(e.to_string())
}

fn dim(x: usize, what: &str) -> Result<i32, NnError> {
    i32::try_from(x)
        .map_err(|_| NnError::Size(format!("{what} = {x}: past the 2^31 that cuBLAS and the kernels index")))
}

/// quiver-nn's kernels and cuBLAS on device 0.
pub struct CudaBackend {
    stream: Arc<CudaStream>,
    blas: Arc<CudaBlas>,
    bias_norm_relu: CudaFunction,
    norm_backward: CudaFunction,
    column_sums: CudaFunction,
    adam: CudaFunction,
    polyak: CudaFunction,
    sum_squares: CudaFunction,
    /// One float, passed where a kernel takes a pointer it does not read (a layer without norm).
    unused: CudaSlice<f32>,
}

impl CudaBackend {
    /// The backend on the process's CUDA context (an error, never a panic, without a usable GPU).
    pub fn new() -> Result<CudaBackend, NnError> {
        let status = quiver_gpu::probe();
        if !status.usable() {
            return Err(NnError::Device(format!(
                "CUDA is not usable: {}",
                status.reason.as_deref().unwrap_or("unknown reason")
            )));
        }
        let stream = quiver_gpu::stream().map_err(device_err)?;
        let blas = quiver_gpu::cublas().map_err(device_err)?;
        let f = |name: &str| quiver_gpu::kernel("quiver_nn_mlp", MLP_KERNELS, name).map_err(device_err);
        Ok(CudaBackend {
            bias_norm_relu: f("bias_norm_relu")?,
            norm_backward: f("norm_backward")?,
            column_sums: f("column_sums")?,
            adam: f("adam")?,
            polyak: f("polyak")?,
            sum_squares: f("sum_squares")?,
            unused: stream.alloc_zeros::<f32>(1).map_err(device_err)?,
            stream,
            blas,
        })
    }

    fn rows_config(rows: usize) -> Result<LaunchConfig, NnError> {
        Ok(LaunchConfig {
            grid_dim: (dim(rows, "rows")? as u32, 1, 1),
            block_dim: (ROW_THREADS, 1, 1),
            shared_mem_bytes: 0,
        })
    }
}

impl Backend for CudaBackend {
    type Buf = CudaSlice<f32>;

    fn alloc(&self, len: usize) -> Result<CudaSlice<f32>, NnError> {
        self.stream.alloc_zeros::<f32>(len.max(1)).map_err(device_err)
    }

    fn upload(&self, host: &[f32], to: &mut CudaSlice<f32>) -> Result<(), NnError> {
        if host.len() > to.len() {
            return Err(NnError::Size(format!("{} floats into a device buffer of {}", host.len(), to.len())));
        }
        let mut view = to.slice_mut(..host.len());
        self.stream.memcpy_htod(host, &mut view).map_err(device_err)
    }

    fn download(&self, from: &CudaSlice<f32>, len: usize) -> Result<Vec<f32>, NnError> {
        let view = from.try_slice(..len).ok_or_else(|| NnError::Size(format!("{len} floats from {}", from.len())))?;
        self.stream.clone_dtoh(&view).map_err(device_err)
    }

    fn gemm(
        &self,
        g: GemmArgs,
        beta: f32,
        (a, a_at): (&CudaSlice<f32>, usize),
        (b, b_at): (&CudaSlice<f32>, usize),
        (c, c_at): (&mut CudaSlice<f32>, usize),
    ) -> Result<(), NnError> {
        // the extents each operand is read or written to, checked before cuBLAS gets pointers
        g.check([(a.len(), a_at), (b.len(), b_at), (c.len(), c_at)]).map_err(device_err)?;
        let cfg = g.config(1.0f32, beta).map_err(device_err)?;
        let (av, bv) = (a.slice(a_at..), b.slice(b_at..));
        let mut cv = c.slice_mut(c_at..);
        // SAFETY: each operand's extent from its offset was checked against its buffer above.
        unsafe { self.blas.gemm(cfg, &av, &bv, &mut cv) }.map_err(|e| NnError::Device(format!("cuBLAS: {e:?}")))
    }

    fn bias_norm_relu(
        &self,
        z: &mut CudaSlice<f32>,
        params: &CudaSlice<f32>,
        op: RowOp,
        norm: Option<(&mut CudaSlice<f32>, &mut CudaSlice<f32>)>,
    ) -> Result<(), NnError> {
        let (rows, width) = (dim(op.rows, "rows")?, dim(op.width, "width")?);
        let bias = params.slice(op.bias..op.bias + op.width);
        let gains = params.slice(op.norm.unwrap_or(op.bias)..);
        let (has_norm, relu) = (i32::from(op.norm.is_some()), i32::from(op.relu));
        let mut launch = self.stream.launch_builder(&self.bias_norm_relu);
        launch.arg(z).arg(&bias).arg(&gains).arg(&has_norm).arg(&relu).arg(&rows).arg(&width);
        match norm {
            Some((xhat, rstd)) => launch.arg(xhat).arg(rstd),
            None => launch.arg(&self.unused).arg(&self.unused),
        };
        // SAFETY: the arguments are bias_norm_relu's, in order; z holds rows × width floats, the
        // parameters the bias (and 2 × width norm values) from their offsets, x̂ and 1/σ
        // rows × width and rows (DeviceNets sizes them).
        unsafe { launch.launch(Self::rows_config(op.rows)?) }.map(drop).map_err(device_err)
    }

    fn norm_backward(
        &self,
        delta: &mut CudaSlice<f32>,
        act: &CudaSlice<f32>,
        xhat: &CudaSlice<f32>,
        rstd: &CudaSlice<f32>,
        params: &CudaSlice<f32>,
        op: RowOp,
        masked: &mut CudaSlice<f32>,
    ) -> Result<(), NnError> {
        let (rows, width) = (dim(op.rows, "rows")?, dim(op.width, "width")?);
        let gains = params.slice(op.norm.unwrap_or(op.bias)..);
        let has_norm = i32::from(op.norm.is_some());
        let mut launch = self.stream.launch_builder(&self.norm_backward);
        launch.arg(delta).arg(act).arg(xhat).arg(rstd).arg(&gains).arg(&has_norm).arg(&rows).arg(&width).arg(masked);
        // SAFETY: norm_backward's arguments in order; delta, act, x̂ and masked hold rows × width
        // floats, 1/σ rows, the gains width from their offset.
        unsafe { launch.launch(Self::rows_config(op.rows)?) }.map(drop).map_err(device_err)
    }

    fn column_sums(
        &self,
        x: &CudaSlice<f32>,
        y: Option<&CudaSlice<f32>>,
        rows: usize,
        width: usize,
        (out, at): (&mut CudaSlice<f32>, usize),
    ) -> Result<(), NnError> {
        let (r, w) = (dim(rows, "rows")?, dim(width, "width")?);
        let use_y = i32::from(y.is_some());
        let mut view = out.slice_mut(at..at + width);
        let mut launch = self.stream.launch_builder(&self.column_sums);
        launch.arg(x).arg(y.unwrap_or(x)).arg(&use_y).arg(&r).arg(&w).arg(&mut view);
        // SAFETY: column_sums's arguments in order; x (and y) hold rows × width floats, the output
        // view width.
        unsafe { launch.launch(quiver_gpu::launch_config(width)) }.map(drop).map_err(device_err)
    }

    fn adam(
        &self,
        params: &mut CudaSlice<f32>,
        grad: &CudaSlice<f32>,
        (m, v): (&mut CudaSlice<f32>, &mut CudaSlice<f32>),
        n: usize,
        s: AdamScalars<f32>,
    ) -> Result<(), NnError> {
        let len = n as i64;
        let mut launch = self.stream.launch_builder(&self.adam);
        launch.arg(params).arg(grad).arg(m).arg(v).arg(&len);
        launch.arg(&s.b1).arg(&s.b2).arg(&s.scale).arg(&s.eps).arg(&s.step_size).arg(&s.sqrt_bc2);
        // SAFETY: adam's arguments in order; the four buffers hold n floats (grid-stride loop).
        unsafe { launch.launch(grid_stride(n)) }.map(drop).map_err(device_err)
    }

    fn polyak(&self, target: &mut CudaSlice<f32>, online: &CudaSlice<f32>, n: usize, tau: f32) -> Result<(), NnError> {
        let len = n as i64;
        let mut launch = self.stream.launch_builder(&self.polyak);
        launch.arg(target).arg(online).arg(&len).arg(&tau);
        // SAFETY: polyak's arguments in order; both buffers hold n floats (grid-stride loop).
        unsafe { launch.launch(grid_stride(n)) }.map(drop).map_err(device_err)
    }

    fn sum_squares(&self, g: &CudaSlice<f32>, n: usize) -> Result<f64, NnError> {
        let len = n as i64;
        let mut out = self.stream.alloc_zeros::<f64>(1).map_err(device_err)?;
        let mut launch = self.stream.launch_builder(&self.sum_squares);
        launch.arg(g).arg(&len).arg(&mut out);
        let one = LaunchConfig { grid_dim: (1, 1, 1), block_dim: (ROW_THREADS, 1, 1), shared_mem_bytes: 0 };
        // SAFETY: sum_squares's arguments in order; g holds n floats, out one double; one block.
        unsafe { launch.launch(one) }.map_err(device_err)?;
        Ok(self.stream.clone_dtoh(&out).map_err(device_err)?[0])
    }
}

/// A grid-stride launch over `n` elements: 256 threads a block, at most 4096 blocks.
fn grid_stride(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(256).clamp(1, 4096) as u32;
    LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 }
}
