//! Adam (Kingma & Ba, "Adam: A method for stochastic optimization", ICLR 2015) on a flat parameter
//! vector, with the bias-corrected moments m̂ = m/(1 − β₁ᵗ), v̂ = v/(1 − β₂ᵗ) and the step
//! θ ← θ − lr · m̂/(√v̂ + ε), as `torch.optim.Adam` computes it; optionally the gradient is first
//! scaled to a largest global norm (`torch.nn.utils.clip_grad_norm_`).

use crate::Real;
use rayon::prelude::*;

/// Adam's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Step size.
    pub lr: f64,
    /// Decay of the first moment, β₁.
    pub beta1: f64,
    /// Decay of the second moment, β₂.
    pub beta2: f64,
    /// ε added to √v̂.
    pub eps: f64,
    /// Largest global L2 norm of a gradient (it is scaled down to it); `None`: no clipping.
    pub max_grad_norm: Option<f64>,
}

impl Default for AdamConfig {
    fn default() -> AdamConfig {
        AdamConfig { lr: 3e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, max_grad_norm: None }
    }
}

/// The scalars of Adam's t-th step, in the network's float: the decays β₁, β₂, the clipping
/// scale, ε, the bias-corrected step size lr/(1 − β₁ᵗ) and √(1 − β₂ᵗ) — one computation for the
/// CPU step and the GPU kernel, so that both round alike.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamScalars<T> {
    /// β₁.
    pub b1: T,
    /// β₂.
    pub b2: T,
    /// The factor the gradient is scaled by (clipping; 1 without).
    pub scale: T,
    /// ε.
    pub eps: T,
    /// lr/(1 − β₁ᵗ).
    pub step_size: T,
    /// √(1 − β₂ᵗ).
    pub sqrt_bc2: T,
}

impl AdamConfig {
    /// The factor a gradient of global norm `norm` is scaled by: max/(norm + 1e-6) past
    /// `max_grad_norm` (as `torch.nn.utils.clip_grad_norm_`), else 1.
    pub fn clip_scale(&self, norm: f64) -> f64 {
        match self.max_grad_norm {
            Some(max) if norm > max => max / (norm + 1e-6),
            _ => 1.0,
        }
    }

    /// The scalars of step `t` (1-based) with the gradient scaled by `scale`.
    pub fn scalars<T: Real>(&self, t: u64, scale: f64) -> AdamScalars<T> {
        let t = i32::try_from(t).unwrap_or(i32::MAX);
        let (bc1, bc2) = (1.0 - self.beta1.powi(t), 1.0 - self.beta2.powi(t));
        let f = |x: f64| T::from_f64(x).unwrap_or_else(T::zero);
        AdamScalars {
            b1: f(self.beta1),
            b2: f(self.beta2),
            scale: f(scale),
            eps: f(self.eps),
            step_size: f(self.lr / bc1),
            sqrt_bc2: f(bc2.sqrt()),
        }
    }
}

/// Adam's state for one parameter vector.
#[derive(Debug, Clone)]
pub struct Adam<T> {
    /// The settings.
    pub config: AdamConfig,
    m: Vec<T>,
    v: Vec<T>,
    steps: u64,
}

const CHUNK: usize = 4096;

impl<T: Real> Adam<T> {
    /// Adam for `count` parameters, its moments at zero.
    pub fn new(config: AdamConfig, count: usize) -> Adam<T> {
        Adam { config, m: vec![T::zero(); count], v: vec![T::zero(); count], steps: 0 }
    }

    /// Set the step size (a schedule's).
    pub fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// One step of `params` along `grad`; returns the gradient's global norm (before clipping).
    pub fn step(&mut self, params: &mut [T], grad: &[T]) -> f64 {
        assert_eq!(params.len(), self.m.len(), "adam: parameter count changed");
        assert_eq!(grad.len(), params.len(), "adam: gradient of another size");
        // the norm's partial sums in a fixed order: the same on any number of threads
        let partial: Vec<f64> =
            grad.par_chunks(CHUNK).map(|g| g.iter().map(|&x| x.to_f64().unwrap_or(f64::NAN).powi(2)).sum()).collect();
        let norm = partial.iter().sum::<f64>().sqrt();
        self.steps += 1;
        let AdamScalars { b1, b2, scale, eps, step_size, sqrt_bc2 } =
            self.config.scalars::<T>(self.steps, self.config.clip_scale(norm));
        let one = T::one();
        params
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .zip(self.m.par_chunks_mut(CHUNK).zip(self.v.par_chunks_mut(CHUNK)))
            .for_each(|((p, g), (m, v))| {
                for i in 0..p.len() {
                    let gi = g[i] * scale;
                    m[i] = b1 * m[i] + (one - b1) * gi;
                    v[i] = b2 * v[i] + (one - b2) * gi * gi;
                    p[i] = p[i] - step_size * m[i] / (v[i].sqrt() / sqrt_bc2 + eps);
                }
            });
        norm
    }
}
