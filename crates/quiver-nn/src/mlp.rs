//! Multi-layer perceptrons with layer norm: x → [Linear → LayerNorm → ReLU] × H → Linear, the
//! critics' networks in DSAC-T, IQL, DQC and flow-matching TD (each hidden layer normalised as in
//! Ba, Kiros & Hinton 2016, "Layer normalization", ε = 1e-5).
//!
//! The forward and backward passes are written out (no autograd): a linear layer is one GEMM, its
//! weight gradient another, its input gradient a third; layer norm's backward is
//! dz = σ⁻¹ (dx̂ − mean(dx̂) − x̂ · mean(dx̂ ⊙ x̂)) per row, with dx̂ = dy ⊙ g. A batch is cut into
//! pieces of [`ROW_CHUNK`] rows, each run through every layer on one of rayon's workers; their
//! weight gradients are added in the pieces' order, so a step gives the same bits on any number of
//! threads. The parameters live in one flat vector (what Adam, Polyak averaging and checkpoints
//! work on); [`Mlp::blocks`] names its pieces.

use crate::{NnError, Real};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Rows of a batch one worker runs through the network at a time (the unit of the fixed order in
/// which weight gradients are added).
pub const ROW_CHUNK: usize = 64;
/// Widest layer accepted.
pub const MAX_WIDTH: usize = 1 << 16;
/// Most hidden layers accepted.
pub const MAX_HIDDEN_LAYERS: usize = 64;
/// Layer norm's ε (PyTorch's default).
pub const LAYER_NORM_EPS: f64 = 1e-5;

/// The shape of a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MlpSpec {
    /// Inputs per row.
    pub inputs: usize,
    /// Widths of the hidden layers.
    pub hidden: Vec<usize>,
    /// Outputs per row.
    pub outputs: usize,
    /// Whether each hidden layer is normalised (LayerNorm) before its ReLU.
    pub layer_norm: bool,
}

/// Where one layer's parameters lie in the flat vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LayerAt {
    pub(crate) fan_in: usize,
    pub(crate) fan_out: usize,
    /// Offset of the weights, `fan_in × fan_out`, row-major (input-major).
    pub(crate) w: usize,
    /// Offset of the biases.
    pub(crate) b: usize,
    /// Offset of the layer norm's gain (its shift follows), when the layer is normalised.
    pub(crate) norm: Option<usize>,
}

impl MlpSpec {
    /// A spec with layer norm on every hidden layer.
    pub fn new(inputs: usize, hidden: &[usize], outputs: usize) -> MlpSpec {
        MlpSpec { inputs, hidden: hidden.to_vec(), outputs, layer_norm: true }
    }

    /// Check the sizes: every width at least 1 and at most [`MAX_WIDTH`], at most
    /// [`MAX_HIDDEN_LAYERS`] hidden layers.
    pub fn check(&self) -> Result<(), NnError> {
        if self.hidden.len() > MAX_HIDDEN_LAYERS {
            return Err(NnError::Size(format!("{} hidden layers: at most {MAX_HIDDEN_LAYERS}", self.hidden.len())));
        }
        for (what, w) in [("inputs", self.inputs), ("outputs", self.outputs)]
            .into_iter()
            .chain(self.hidden.iter().map(|&w| ("a hidden layer's width", w)))
        {
            if w == 0 || w > MAX_WIDTH {
                return Err(NnError::Size(format!("{what} = {w}: must be in 1..={MAX_WIDTH}")));
            }
        }
        Ok(())
    }

    pub(crate) fn layout(&self) -> (Vec<LayerAt>, usize) {
        let mut at = 0;
        let mut layers = Vec::with_capacity(self.hidden.len() + 1);
        let mut fan_in = self.inputs;
        for (i, &fan_out) in self.hidden.iter().chain(std::iter::once(&self.outputs)).enumerate() {
            let hidden = i < self.hidden.len();
            let w = at;
            let b = w + fan_in * fan_out;
            at = b + fan_out;
            let norm = (hidden && self.layer_norm).then(|| {
                let g = at;
                at += 2 * fan_out;
                g
            });
            layers.push(LayerAt { fan_in, fan_out, w, b, norm });
            fan_in = fan_out;
        }
        (layers, at)
    }

    /// Number of parameters (weights, biases, layer norms' gains and shifts).
    pub fn parameter_count(&self) -> usize {
        self.layout().1
    }

    /// Bytes a training run holds for a network of this shape with `copies` parameter-sized
    /// vectors (parameters, gradient, Adam's two moments, a target: 5) and a batch of `batch` rows
    /// (activations and their gradients), in floats of `float_bytes`.
    pub fn training_bytes(&self, copies: usize, batch: usize, float_bytes: usize) -> f64 {
        let widths: f64 = self.hidden.iter().map(|&w| w as f64).sum::<f64>() + (self.inputs + self.outputs) as f64;
        let pieces = batch.div_ceil(ROW_CHUNK).max(1) as f64;
        let params = self.parameter_count() as f64;
        // per piece: a gradient partial; per row: input, output, and 3 per hidden unit (x̂, act, grad)
        (params * (copies as f64 + pieces) + batch as f64 * 4.0 * widths) * float_bytes as f64
    }
}

/// A network: its spec and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp<T> {
    spec: MlpSpec,
    layers: Vec<LayerAt>,
    /// The parameters, flat: for each layer its weights (`fan_in × fan_out`, row-major), biases,
    /// and (hidden layers with layer norm) gains and shifts.
    pub params: Vec<T>,
}

/// One named piece of a network's parameters (for checkpoints): its name, shape and range in
/// [`Mlp::params`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// `layers.<l>.weight`, `layers.<l>.bias`, `layers.<l>.norm.weight`, `layers.<l>.norm.bias`.
    pub name: String,
    /// Its shape (`[fan_in, fan_out]` for weights).
    pub shape: Vec<usize>,
    /// Its range in the flat vector.
    pub range: std::ops::Range<usize>,
}

impl<T: Real> Mlp<T> {
    /// A network of shape `spec` initialised as PyTorch's `nn.Linear` is — weights and biases
    /// uniform on ±1/√fan_in — from counter-based draws of `seed` (parameter i's draw depends only on
    /// the seed and i); layer norms start at gain 1, shift 0.
    pub fn new(spec: MlpSpec, seed: u64) -> Result<Mlp<T>, NnError> {
        spec.check()?;
        let (layers, count) = spec.layout();
        let mut params = quiver_numerics::memory::try_vec(count, T::zero(), "the network's parameters")?;
        let key = quiver_numerics::splitmix::mix(seed ^ 0x6e6e_5f69_6e69_7400);
        for layer in &layers {
            let bound = 1.0 / (layer.fan_in as f64).sqrt();
            for (i, p) in params.iter_mut().enumerate().take(layer.b + layer.fan_out).skip(layer.w) {
                let u = (quiver_numerics::splitmix::mix(key.wrapping_add(i as u64)) >> 11) as f64 / (1u64 << 53) as f64;
                *p = T::from_f64(bound * (2.0 * u - 1.0)).unwrap_or_else(T::zero);
            }
            if let Some(g) = layer.norm {
                params[g..g + layer.fan_out].iter_mut().for_each(|x| *x = T::one());
            }
        }
        Ok(Mlp { spec, layers, params })
    }

    /// A network of shape `spec` with the given parameters (e.g. read from a checkpoint).
    pub fn from_params(spec: MlpSpec, params: Vec<T>) -> Result<Mlp<T>, NnError> {
        spec.check()?;
        let (layers, count) = spec.layout();
        if params.len() != count {
            return Err(NnError::Size(format!("{} parameters given for a network of {count}", params.len())));
        }
        Ok(Mlp { spec, layers, params })
    }

    /// The network's shape.
    pub fn spec(&self) -> &MlpSpec {
        &self.spec
    }

    /// The named pieces of [`Mlp::params`].
    pub fn blocks(&self) -> Vec<Block> {
        let mut out = Vec::new();
        for (l, at) in self.layers.iter().enumerate() {
            let mut push = |name: String, shape: Vec<usize>, start: usize, len: usize| {
                out.push(Block { name, shape, range: start..start + len })
            };
            push(format!("layers.{l}.weight"), vec![at.fan_in, at.fan_out], at.w, at.fan_in * at.fan_out);
            push(format!("layers.{l}.bias"), vec![at.fan_out], at.b, at.fan_out);
            if let Some(g) = at.norm {
                push(format!("layers.{l}.norm.weight"), vec![at.fan_out], g, at.fan_out);
                push(format!("layers.{l}.norm.bias"), vec![at.fan_out], g + at.fan_out, at.fan_out);
            }
        }
        out
    }

    /// Run `rows` rows of `x` (row-major, `rows × inputs`) through the network, keeping what the
    /// backward pass needs in `tape`; returns the outputs (`rows × outputs`, row-major).
    pub fn forward<'t>(&self, tape: &'t mut Tape<T>, x: &[T], rows: usize) -> &'t [T] {
        assert_eq!(x.len(), rows * self.spec.inputs, "forward: x is not rows x inputs");
        tape.resize(self, rows);
        let inputs = self.spec.inputs;
        tape.pieces.par_iter_mut().enumerate().for_each(|(p, piece)| {
            let r0 = p * ROW_CHUNK;
            piece.acts[0].copy_from_slice(&x[r0 * inputs..(r0 + piece.rows) * inputs]);
            self.piece_forward(piece);
        });
        let outputs = self.spec.outputs;
        tape.out.clear();
        for piece in &tape.pieces {
            tape.out.extend_from_slice(&piece.out[..piece.rows * outputs]);
        }
        &tape.out
    }

    fn piece_forward(&self, piece: &mut Piece<T>) {
        let r = piece.rows;
        let hidden = self.layers.len() - 1;
        for (l, at) in self.layers.iter().enumerate() {
            let (before, after) = piece.acts.split_at_mut(l + 1);
            let input = &before[l][..r * at.fan_in];
            let z: &mut [T] =
                if l == hidden { &mut piece.out[..r * at.fan_out] } else { &mut after[0][..r * at.fan_out] };
            let w = &self.params[at.w..at.w + at.fan_in * at.fan_out];
            T::gemm(
                false,
                false,
                (r, at.fan_out, at.fan_in),
                T::one(),
                (input, at.fan_in),
                (w, at.fan_out),
                T::zero(),
                (z, at.fan_out),
            );
            let bias = &self.params[at.b..at.b + at.fan_out];
            for row in z.chunks_exact_mut(at.fan_out) {
                row.iter_mut().zip(bias).for_each(|(v, &b)| *v = *v + b);
            }
            if l == hidden {
                continue;
            }
            match at.norm {
                Some(g) => {
                    let (gain, shift) = self.params[g..g + 2 * at.fan_out].split_at(at.fan_out);
                    let xhat = &mut piece.xhat[l][..r * at.fan_out];
                    let rstd = &mut piece.rstd[l][..r];
                    let n = T::from_usize(at.fan_out).unwrap();
                    let eps = T::from_f64(LAYER_NORM_EPS).unwrap();
                    for ((zrow, xrow), s) in
                        z.chunks_exact_mut(at.fan_out).zip(xhat.chunks_exact_mut(at.fan_out)).zip(rstd.iter_mut())
                    {
                        let mean = sum8(zrow, |v| v) / n;
                        let var = sum8(zrow, |v| (v - mean) * (v - mean)) / n;
                        *s = T::one() / (var + eps).sqrt();
                        for (((zv, xv), &g), &b) in zrow.iter_mut().zip(xrow.iter_mut()).zip(gain).zip(shift) {
                            *xv = (*zv - mean) * *s;
                            *zv = relu(*xv * g + b);
                        }
                    }
                }
                None => z.iter_mut().for_each(|v| *v = relu(*v)),
            }
        }
    }

    /// The gradient of a loss in the parameters, into `grad` (overwritten): `dout` is the loss's
    /// gradient in the outputs of the last [`Mlp::forward`] on `tape` (`rows × outputs`).
    pub fn backward(&self, tape: &mut Tape<T>, dout: &[T], grad: &mut [T]) {
        let outputs = self.spec.outputs;
        assert_eq!(dout.len(), tape.rows * outputs, "backward: dout is not rows x outputs");
        assert_eq!(grad.len(), self.params.len(), "backward: grad is not parameter-sized");
        tape.pieces.par_iter_mut().enumerate().for_each(|(p, piece)| {
            let r0 = p * ROW_CHUNK;
            self.piece_backward(piece, &dout[r0 * outputs..(r0 + piece.rows) * outputs]);
        });
        // the pieces' partial gradients, added in their order (the same bits on any thread count)
        let pieces = &tape.pieces;
        grad.par_chunks_mut(4096).enumerate().for_each(|(c, g)| {
            let range = c * 4096..c * 4096 + g.len();
            g.copy_from_slice(&pieces[0].grad[range.clone()]);
            for piece in &pieces[1..] {
                g.iter_mut().zip(&piece.grad[range.clone()]).for_each(|(a, &b)| *a = *a + b);
            }
        });
    }

    fn piece_backward(&self, piece: &mut Piece<T>, dout: &[T]) {
        let r = piece.rows;
        let last = self.layers.len() - 1;
        // `delta` holds the gradient in the current layer's pre-activation z (rows × fan_out)
        piece.delta[..dout.len()].copy_from_slice(dout);
        for l in (0..=last).rev() {
            let at = self.layers[l];
            let input = &piece.acts[l][..r * at.fan_in];
            if l < last {
                // δ arrives as the gradient in this layer's output (after ReLU): through the ReLU,
                // then the layer norm
                let act = &piece.acts[l + 1][..r * at.fan_out];
                let dy = &mut piece.delta[..r * at.fan_out];
                dy.iter_mut().zip(act).for_each(|(d, &a)| *d = if a > T::zero() { *d } else { T::zero() });
                if let Some(g) = at.norm {
                    let gain = &self.params[g..g + at.fan_out];
                    let xhat = &piece.xhat[l][..r * at.fan_out];
                    let (gg, gs) = piece.grad[g..g + 2 * at.fan_out].split_at_mut(at.fan_out);
                    gg.iter_mut().chain(gs.iter_mut()).for_each(|v| *v = T::zero());
                    let n = T::from_usize(at.fan_out).unwrap();
                    for ((drow, xrow), &s) in
                        dy.chunks_exact_mut(at.fan_out).zip(xhat.chunks_exact(at.fan_out)).zip(&piece.rstd[l][..r])
                    {
                        for ((((d, &x), a), b), &g) in
                            drow.iter_mut().zip(xrow).zip(gg.iter_mut()).zip(gs.iter_mut()).zip(gain)
                        {
                            *a = *a + *d * x;
                            *b = *b + *d;
                            *d = *d * g;
                        }
                        let m1 = sum8(drow, |d| d) / n;
                        let m2 = dot8(drow, xrow) / n;
                        for (d, &x) in drow.iter_mut().zip(xrow) {
                            *d = s * (*d - m1 - x * m2);
                        }
                    }
                }
            }
            let dz = &piece.delta[..r * at.fan_out];
            let gw = &mut piece.grad[at.w..at.w + at.fan_in * at.fan_out];
            T::gemm(
                true,
                false,
                (at.fan_in, at.fan_out, r),
                T::one(),
                (input, at.fan_in),
                (dz, at.fan_out),
                T::zero(),
                (gw, at.fan_out),
            );
            let gb = &mut piece.grad[at.b..at.b + at.fan_out];
            gb.iter_mut().for_each(|v| *v = T::zero());
            for row in dz.chunks_exact(at.fan_out) {
                gb.iter_mut().zip(row).for_each(|(a, &d)| *a = *a + d);
            }
            if l > 0 {
                let w = &self.params[at.w..at.w + at.fan_in * at.fan_out];
                let next = &mut piece.spare[..r * at.fan_in];
                T::gemm(
                    false,
                    true,
                    (r, at.fan_in, at.fan_out),
                    T::one(),
                    (dz, at.fan_out),
                    (w, at.fan_out),
                    T::zero(),
                    (next, at.fan_in),
                );
                std::mem::swap(&mut piece.delta, &mut piece.spare);
            }
        }
    }

    /// Polyak averaging of a target network toward `online`: θ̄ ← θ̄ + τ(θ − θ̄).
    pub fn polyak_toward(&mut self, online: &Mlp<T>, tau: f64) {
        assert_eq!(self.spec, online.spec, "polyak: networks of different shapes");
        let tau = T::from_f64(tau).unwrap();
        self.params.par_chunks_mut(4096).zip(online.params.par_chunks(4096)).for_each(|(t, o)| {
            t.iter_mut().zip(o).for_each(|(a, &b)| *a = *a + tau * (b - *a));
        });
    }
}

/// max(x, 0), written as a select (so that a loop of them vectorises).
#[inline(always)]
fn relu<T: Real>(x: T) -> T {
    if x > T::zero() {
        x
    } else {
        T::zero()
    }
}

/// Σ f(x) over a slice with eight running sums, added in a fixed order: the same bits on every
/// machine and thread count, and a loop the compiler vectorises (one running sum cannot be).
#[inline(always)]
fn sum8<T: Real>(x: &[T], f: impl Fn(T) -> T) -> T {
    let mut acc = [T::zero(); 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder().iter().fold(T::zero(), |s, &v| s + f(v));
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = *a + f(v);
        }
    }
    acc.iter().fold(tail, |s, &a| s + a)
}

/// Σ x_j y_j, as [`sum8`].
#[inline(always)]
fn dot8<T: Real>(x: &[T], y: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let (cx, cy) = (x.chunks_exact(8), y.chunks_exact(8));
    let tail = cx.remainder().iter().zip(cy.remainder()).fold(T::zero(), |s, (&a, &b)| s + a * b);
    for (a8, b8) in cx.zip(cy) {
        for ((acc, &a), &b) in acc.iter_mut().zip(a8).zip(b8) {
            *acc = *acc + a * b;
        }
    }
    acc.iter().fold(tail, |s, &a| s + a)
}

/// What a forward pass keeps for the backward pass, per piece of [`ROW_CHUNK`] rows; reused from
/// step to step (its buffers grow to the largest batch seen, never shrink).
#[derive(Debug, Default)]
pub struct Tape<T> {
    rows: usize,
    pieces: Vec<Piece<T>>,
    out: Vec<T>,
}

#[derive(Debug, Default)]
struct Piece<T> {
    rows: usize,
    /// acts[0]: the input; acts[l + 1]: hidden layer l's output.
    acts: Vec<Vec<T>>,
    /// Hidden layer l's normalised pre-activation x̂.
    xhat: Vec<Vec<T>>,
    /// Hidden layer l's 1/σ per row.
    rstd: Vec<Vec<T>>,
    out: Vec<T>,
    delta: Vec<T>,
    spare: Vec<T>,
    grad: Vec<T>,
}

impl<T: Real> Tape<T> {
    /// An empty tape.
    pub fn new() -> Tape<T> {
        Tape { rows: 0, pieces: Vec::new(), out: Vec::new() }
    }

    fn resize(&mut self, net: &Mlp<T>, rows: usize) {
        self.rows = rows;
        let count = rows.div_ceil(ROW_CHUNK);
        self.pieces.resize_with(count, Piece::default);
        let spec = &net.spec;
        let widest = spec.hidden.iter().copied().chain([spec.inputs, spec.outputs]).max().unwrap_or(1);
        // the input and each hidden layer's output
        let widths = || std::iter::once(spec.inputs).chain(spec.hidden.iter().copied());
        for (p, piece) in self.pieces.iter_mut().enumerate() {
            piece.rows = ROW_CHUNK.min(rows - p * ROW_CHUNK);
            piece.acts.resize_with(spec.hidden.len() + 1, Vec::new);
            for (a, w) in piece.acts.iter_mut().zip(widths()) {
                a.resize(piece.rows * w, T::zero());
            }
            piece.xhat.resize_with(spec.hidden.len(), Vec::new);
            piece.rstd.resize_with(spec.hidden.len(), Vec::new);
            for (l, &w) in spec.hidden.iter().enumerate() {
                let need = if spec.layer_norm { ROW_CHUNK * w } else { 0 };
                piece.xhat[l].resize(need, T::zero());
                piece.rstd[l].resize(ROW_CHUNK, T::zero());
            }
            piece.out.resize(ROW_CHUNK * spec.outputs, T::zero());
            piece.delta.resize(ROW_CHUNK * widest, T::zero());
            piece.spare.resize(ROW_CHUNK * widest, T::zero());
            piece.grad.resize(net.params.len(), T::zero());
        }
    }
}
