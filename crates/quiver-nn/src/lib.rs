//! A small training core for Quiver's neural critics (docs/critics.md, "Neural critics").
//!
//! * [`Mlp`]: x → [Linear → LayerNorm → ReLU] × H → Linear, its forward and backward passes
//!   written out on OpenBLAS's GEMM, in `f32` for training and `f64` for exact checks;
//! * [`Adam`]: Kingma & Ba's optimiser on the flat parameter vector, with optional clipping;
//! * [`Mlp::polyak_toward`]: target networks by Polyak averaging, θ̄ ← θ̄ + τ(θ − θ̄);
//! * [`batches::minibatch`]: minibatches by counter-based draws (deterministic for a seed,
//!   whatever the thread count);
//! * [`checkpoint`]: safetensors files;
//! * [`device::DeviceNets`]: the same training step on an NVIDIA GPU ([`cuda::CudaBackend`]: the
//!   products on cuBLAS, layer norm, Adam and Polyak averaging as NVRTC kernels), in the same
//!   arithmetic up to the order of the sums.
//!
//! Why not a tensor library: candle 0.11 (measured on this project's 2-core VM, 2026-12-04) ran a
//! training step of a 2 × 256 MLP on 256 rows in 3.6 ms on one thread and 4.9 ms on two, three
//! quarters of it outside the matrix products (a fresh tensor, page-faulted, per operation), and
//! its CUDA backend needs nvcc when it is built — which neither this machine nor the GPU machine
//! (no Rust toolchain) can offer; the CUDA path here needs only the driver, NVRTC and cuBLAS at
//! run time (`cudarc`'s dynamic loading), as every other Quiver kernel. A network of fixed form needs no autograd: its backward pass is
//! three GEMMs a layer and layer norm's closed form, checked here against finite differences.

/// Link OpenBLAS into every crate that uses this one (Debian's, through `openblas-src`'s `system`).
extern crate blas_src;
extern crate openblas_src;

mod adam;
pub mod batches;
pub mod checkpoint;
pub mod cuda;
pub mod device;
mod error;
mod mlp;
mod real;

pub use adam::{Adam, AdamConfig, AdamScalars};
pub use error::NnError;
pub use mlp::{Block, Mlp, MlpSpec, Tape, LAYER_NORM_EPS, MAX_HIDDEN_LAYERS, MAX_WIDTH, ROW_CHUNK};
pub use real::Real;
