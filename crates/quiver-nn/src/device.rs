//! A network's training on a device other than the CPU's own loops: [`DeviceNets`] holds an
//! online network, its Polyak target, the gradient and Adam's moments in a [`Backend`]'s buffers,
//! and runs [`Mlp::forward`], [`Mlp::backward`], [`crate::Adam::step`] and
//! [`Mlp::polyak_toward`] there — the matrix products as column-major SGEMMs (cuBLAS's
//! convention), the rest as the kernels of `kernels/mlp.cu`. The one backend Quiver ships is
//! [`crate::cuda::CudaBackend`]; the tests run this same code on a backend that executes the
//! kernels' source on the CPU (quiver-cuda-emulator) and the products by a plain column-major
//! loop, against the CPU network, so that the layout of every product and every kernel argument
//! is checked on machines without a GPU.
//!
//! Row-major matrices are column-major transposes: a batch X (rows × fan_in, row-major) is the
//! column-major fan_in × rows matrix Xᵀ with leading dimension fan_in, and a layer's weights W
//! (fan_in × fan_out, row-major) are Wᵀ with leading dimension fan_out. So the forward product
//! Z = XW is Zᵀ = Wᵀ Xᵀ, the weight gradient Xᵀ dZ is (dZᵀ X)ᵀ, and the input gradient dZ Wᵀ is
//! (W dZᵀ)ᵀ.

use crate::adam::{AdamConfig, AdamScalars};
use crate::mlp::LayerAt;
use crate::{Mlp, MlpSpec, NnError};
pub use quiver_gpu::GemmArgs;

/// CUDA C source of the kernels (layer norm forward and backward, column sums, Adam, Polyak
/// averaging, a squared norm).
pub const MLP_KERNELS: &str = include_str!("kernels/mlp.cu");

/// Threads a block of the per-row kernels (`QV_THREADS` in the source).
pub const ROW_THREADS: u32 = 256;

/// What `bias_norm_relu` does to a layer's pre-activations: add the bias at `bias` (an offset
/// into the parameters), then — for a hidden layer — layer norm with the gains at `norm` (the
/// shifts follow) and ReLU, or ReLU alone (`relu` without `norm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowOp {
    /// Rows of the batch.
    pub rows: usize,
    /// The layer's width.
    pub width: usize,
    /// Offset of the biases in the parameters.
    pub bias: usize,
    /// Offset of the layer norm's gains, when the layer is normalised.
    pub norm: Option<usize>,
    /// Whether a ReLU follows.
    pub relu: bool,
}

/// Buffers of floats on a device, and the operations a training step needs on them. Offsets and
/// lengths are in floats; a buffer is at least as long as every range an operation touches
/// (the caller, [`DeviceNets`], sizes them).
pub trait Backend {
    /// A buffer of `f32` on the device.
    type Buf;
    /// A zeroed buffer of `len` floats.
    fn alloc(&self, len: usize) -> Result<Self::Buf, NnError>;
    /// Copy `host` to the start of `to`.
    fn upload(&self, host: &[f32], to: &mut Self::Buf) -> Result<(), NnError>;
    /// The first `len` floats of `from`.
    fn download(&self, from: &Self::Buf, len: usize) -> Result<Vec<f32>, NnError>;
    /// cuBLAS's SGEMM of `g` (α = 1) on A from `a.1`, B from `b.1`, C from `c.1` (offsets into the
    /// buffers), β = `beta`.
    fn gemm(
        &self,
        g: GemmArgs,
        beta: f32,
        a: (&Self::Buf, usize),
        b: (&Self::Buf, usize),
        c: (&mut Self::Buf, usize),
    ) -> Result<(), NnError>;
    /// The kernel `bias_norm_relu` on the rows of `z` (rows × width, in place); `norm` gives the
    /// buffers x̂ (rows × width) and 1/σ (rows) it writes when `op.norm` is set.
    fn bias_norm_relu(
        &self,
        z: &mut Self::Buf,
        params: &Self::Buf,
        op: RowOp,
        norm: Option<(&mut Self::Buf, &mut Self::Buf)>,
    ) -> Result<(), NnError>;
    /// The kernel `norm_backward`: `delta` (rows × width, the gradient in a hidden layer's output)
    /// back through its ReLU (`act`, the output) and, when `op.norm` is set, its layer norm (`xhat`,
    /// `rstd`, the gains in `params`), in place; the masked gradient goes to `masked`.
    #[allow(clippy::too_many_arguments)]
    fn norm_backward(
        &self,
        delta: &mut Self::Buf,
        act: &Self::Buf,
        xhat: &Self::Buf,
        rstd: &Self::Buf,
        params: &Self::Buf,
        op: RowOp,
        masked: &mut Self::Buf,
    ) -> Result<(), NnError>;
    /// The kernel `column_sums`: out[j] = Σ_r x[r, j] (· y[r, j]) over `rows` rows of `width`, into
    /// `out.0` from offset `out.1`.
    fn column_sums(
        &self,
        x: &Self::Buf,
        y: Option<&Self::Buf>,
        rows: usize,
        width: usize,
        out: (&mut Self::Buf, usize),
    ) -> Result<(), NnError>;
    /// The kernel `adam` on the first `n` floats.
    fn adam(
        &self,
        params: &mut Self::Buf,
        grad: &Self::Buf,
        moments: (&mut Self::Buf, &mut Self::Buf),
        n: usize,
        s: AdamScalars<f32>,
    ) -> Result<(), NnError>;
    /// The kernel `polyak`: t ← t + τ(o − t) on the first `n` floats.
    fn polyak(&self, target: &mut Self::Buf, online: &Self::Buf, n: usize, tau: f32) -> Result<(), NnError>;
    /// Σ g² over the first `n` floats, in doubles (the kernel `sum_squares`).
    fn sum_squares(&self, g: &Self::Buf, n: usize) -> Result<f64, NnError>;
}

/// Which network a forward pass runs and on which tape (each keeps its own, on either device).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// The online network, keeping the tape for the step that follows.
    Train,
    /// The target network.
    Target,
    /// The online network on a tape of its own (a value read for another network's target),
    /// leaving the step's tape as it is.
    Eval,
}

/// What a forward pass keeps on the device, sized for `capacity` rows.
struct DeviceTape<B: Backend> {
    capacity: usize,
    rows: usize,
    /// acts[0]: the input; acts[l + 1]: hidden layer l's output.
    acts: Vec<B::Buf>,
    xhat: Vec<B::Buf>,
    rstd: Vec<B::Buf>,
    out: B::Buf,
    /// The backward pass's buffers (the training tape's only): the gradient in the current
    /// layer, the next one, and the ReLU-masked gradient.
    back: Option<[B::Buf; 3]>,
}

impl<B: Backend> DeviceTape<B> {
    fn new(backend: &B, spec: &MlpSpec, rows: usize, backward: bool) -> Result<DeviceTape<B>, NnError> {
        let widths = std::iter::once(spec.inputs).chain(spec.hidden.iter().copied());
        let acts = widths.map(|w| backend.alloc(rows * w)).collect::<Result<Vec<_>, _>>()?;
        let norm = |per_row: bool| -> Result<Vec<B::Buf>, NnError> {
            spec.hidden
                .iter()
                .map(|&w| {
                    backend.alloc(if !spec.layer_norm {
                        1
                    } else if per_row {
                        rows
                    } else {
                        rows * w
                    })
                })
                .collect()
        };
        let widest = spec.hidden.iter().copied().chain([spec.inputs, spec.outputs]).max().unwrap_or(1);
        let back = if backward {
            Some([backend.alloc(rows * widest)?, backend.alloc(rows * widest)?, backend.alloc(rows * widest)?])
        } else {
            None
        };
        Ok(DeviceTape {
            capacity: rows,
            rows: 0,
            acts,
            xhat: norm(false)?,
            rstd: norm(true)?,
            out: backend.alloc(rows * spec.outputs)?,
            back,
        })
    }
}

/// An online network, its target, the gradient and Adam's state on a device, with a tape per
/// [`Pass`]: a training step is [`DeviceNets::forward`] (`Pass::Train`) → the loss's gradient in
/// the outputs (on the host) → [`DeviceNets::step`] → [`DeviceNets::polyak`].
pub struct DeviceNets<B: Backend> {
    backend: B,
    spec: MlpSpec,
    layers: Vec<LayerAt>,
    count: usize,
    online: B::Buf,
    target: B::Buf,
    grad: B::Buf,
    moments: (B::Buf, B::Buf),
    config: AdamConfig,
    steps: u64,
    tapes: [Option<DeviceTape<B>>; 3],
}

impl<B: Backend> DeviceNets<B> {
    /// The networks `online` and `target` (of one shape) copied to `backend`, with Adam of
    /// `config` starting at step 0.
    pub fn new(backend: B, online: &Mlp<f32>, target: &Mlp<f32>, config: AdamConfig) -> Result<Self, NnError> {
        if online.spec() != target.spec() {
            return Err(NnError::Size("the online and target networks differ in shape".into()));
        }
        let spec = online.spec().clone();
        let (layers, count) = spec.layout();
        let upload = |p: &[f32]| -> Result<B::Buf, NnError> {
            let mut buf = backend.alloc(count)?;
            backend.upload(p, &mut buf)?;
            Ok(buf)
        };
        let (on, tg) = (upload(&online.params)?, upload(&target.params)?);
        let grad = backend.alloc(count)?;
        let moments = (backend.alloc(count)?, backend.alloc(count)?);
        Ok(DeviceNets {
            backend,
            spec,
            layers,
            count,
            online: on,
            target: tg,
            grad,
            moments,
            config,
            steps: 0,
            tapes: [None, None, None],
        })
    }

    /// Set Adam's step size (a schedule's).
    pub fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    /// The outputs (rows × outputs, row-major) of the network `pass` names on `rows` rows of `x`
    /// (row-major, rows × inputs).
    pub fn forward(&mut self, pass: Pass, x: &[f32], rows: usize) -> Result<Vec<f32>, NnError> {
        let spec = &self.spec;
        if x.len() != rows * spec.inputs {
            return Err(NnError::Size(format!("{} inputs given for {rows} rows of {}", x.len(), spec.inputs)));
        }
        let slot = &mut self.tapes[pass as usize];
        if slot.as_ref().is_none_or(|t| t.capacity < rows) {
            *slot = None; // the old tape's buffers go before the new ones are taken
            *slot = Some(DeviceTape::new(&self.backend, spec, rows.max(1), pass == Pass::Train)?);
        }
        let tape = slot.as_mut().expect("a tape");
        tape.rows = rows;
        if rows == 0 {
            return Ok(Vec::new());
        }
        let backend = &self.backend;
        backend.upload(x, &mut tape.acts[0])?;
        let params = if pass == Pass::Target { &self.target } else { &self.online };
        let last = self.layers.len() - 1;
        for (l, at) in self.layers.iter().enumerate() {
            let (before, after) = tape.acts.split_at_mut(l + 1);
            let z = if l == last { &mut tape.out } else { &mut after[0] };
            // Zᵀ (fan_out × rows) = Wᵀ (fan_out × fan_in) · Xᵀ (fan_in × rows)
            let g = GemmArgs {
                ta: false,
                tb: false,
                m: at.fan_out,
                n: rows,
                k: at.fan_in,
                lda: at.fan_out,
                ldb: at.fan_in,
                ldc: at.fan_out,
            };
            backend.gemm(g, 0.0, (params, at.w), (&before[l], 0), (z, 0))?;
            let hidden = l < last;
            let op = RowOp { rows, width: at.fan_out, bias: at.b, norm: at.norm.filter(|_| hidden), relu: hidden };
            let norm = match op.norm {
                Some(_) => Some((&mut tape.xhat[l], &mut tape.rstd[l])),
                None => None,
            };
            backend.bias_norm_relu(z, params, op, norm)?;
        }
        backend.download(&tape.out, rows * spec.outputs)
    }

    /// The gradient (into the device's gradient buffer) of a loss whose gradient in the outputs of
    /// the last `Pass::Train` forward is `dout` (rows × outputs).
    pub fn backward(&mut self, dout: &[f32]) -> Result<(), NnError> {
        let tape = self.tapes[Pass::Train as usize]
            .as_mut()
            .filter(|t| t.rows > 0)
            .ok_or_else(|| NnError::Size("a backward pass before a training forward pass".into()))?;
        let rows = tape.rows;
        if dout.len() != rows * self.spec.outputs {
            return Err(NnError::Size(format!(
                "{} output gradients for {rows} rows of {}",
                dout.len(),
                self.spec.outputs
            )));
        }
        let backend = &self.backend;
        let [delta, spare, masked] = tape.back.as_mut().expect("the training tape keeps the backward buffers");
        backend.upload(dout, delta)?;
        let last = self.layers.len() - 1;
        for l in (0..=last).rev() {
            let at = self.layers[l];
            if l < last {
                let op = RowOp { rows, width: at.fan_out, bias: at.b, norm: at.norm, relu: true };
                let (xhat, rstd) = (&tape.xhat[l], &tape.rstd[l]);
                backend.norm_backward(delta, &tape.acts[l + 1], xhat, rstd, &self.online, op, masked)?;
                if let Some(g) = at.norm {
                    backend.column_sums(masked, Some(xhat), rows, at.fan_out, (&mut self.grad, g))?;
                    backend.column_sums(masked, None, rows, at.fan_out, (&mut self.grad, g + at.fan_out))?;
                }
            }
            // gWᵀ (fan_out × fan_in) = dZᵀ (fan_out × rows) · X (rows × fan_in)
            let g = GemmArgs {
                ta: false,
                tb: true,
                m: at.fan_out,
                n: at.fan_in,
                k: rows,
                lda: at.fan_out,
                ldb: at.fan_in,
                ldc: at.fan_out,
            };
            backend.gemm(g, 0.0, (delta, 0), (&tape.acts[l], 0), (&mut self.grad, at.w))?;
            backend.column_sums(delta, None, rows, at.fan_out, (&mut self.grad, at.b))?;
            if l > 0 {
                // dXᵀ (fan_in × rows) = W (fan_in × fan_out) · dZᵀ (fan_out × rows)
                let g = GemmArgs {
                    ta: true,
                    tb: false,
                    m: at.fan_in,
                    n: rows,
                    k: at.fan_out,
                    lda: at.fan_out,
                    ldb: at.fan_out,
                    ldc: at.fan_in,
                };
                backend.gemm(g, 0.0, (&self.online, at.w), (delta, 0), (spare, 0))?;
                std::mem::swap(delta, spare);
            }
        }
        Ok(())
    }

    /// One Adam step of the online network along the loss whose gradient in the outputs of the
    /// last `Pass::Train` forward is `dout`.
    pub fn step(&mut self, dout: &[f32]) -> Result<(), NnError> {
        self.backward(dout)?;
        let scale = match self.config.max_grad_norm {
            Some(_) => self.config.clip_scale(self.backend.sum_squares(&self.grad, self.count)?.sqrt()),
            None => 1.0,
        };
        self.steps += 1;
        let s = self.config.scalars::<f32>(self.steps, scale);
        let (m, v) = &mut self.moments;
        self.backend.adam(&mut self.online, &self.grad, (m, v), self.count, s)
    }

    /// θ̄ ← θ̄ + τ(θ − θ̄).
    pub fn polyak(&mut self, tau: f64) -> Result<(), NnError> {
        self.backend.polyak(&mut self.target, &self.online, self.count, tau as f32)
    }

    /// The gradient of the last [`DeviceNets::backward`] (or step), on the host.
    pub fn gradient(&self) -> Result<Vec<f32>, NnError> {
        self.backend.download(&self.grad, self.count)
    }

    /// The online and target networks' parameters, on the host.
    pub fn parameters(&self) -> Result<(Vec<f32>, Vec<f32>), NnError> {
        Ok((self.backend.download(&self.online, self.count)?, self.backend.download(&self.target, self.count)?))
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }
}
