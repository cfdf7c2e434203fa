//! Feature maps φ(s, a) of the linear critics, and the next-state features the targets need:
//!
//! * `onehot` — one indicator per (s, a) pair that the data or the target policy reaches
//!   (discrete states): the tabular critic, handled sparsely ([`PairIndex`]);
//! * `rff` — random Fourier features of the continuous state, one block per action:
//!   φ(s, a) = e_a ⊗ ψ(s), ψ_j(s) = √(2/D) cos(w_jᵀ s / h + b_j), w_j ~ N(0, I), b_j ~ U(0, 2π)
//!   (Rahimi & Recht 2007: ψ(s)ᵀψ(s′) → exp(−‖s − s′‖² / 2h²) as D grows);
//! * `given` — the columns `phi_<k>` (φ(s, a)) and `phi_next_<k>` (what the target bootstraps
//!   from: Σ_a′ π(a′|s′) φ(s′, a′) for policy evaluation, φ(s′, a′) for SARSA).

use crate::data::{States, Transitions};
use crate::policy::{Policy, PolicyColumns};
use crate::RlError;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use std::collections::HashMap;

/// cos(x) to within 1e-15 absolute for |x| < 4e8, branch-free so that loops over slices
/// vectorise: x is reduced to r ∈ [−π, π] by a three-part 2π (Cody–Waite: the first two parts
/// have 26-bit mantissas, so k·part is exact for |k| < 2^26), c = cos(r/2) from its Taylor series
/// to degree 22 (|r/2| ≤ π/2), and cos x = 2c² − 1.
#[inline(always)]
pub fn cos(x: f64) -> f64 {
    const INV_TWO_PI: f64 = 0.159_154_943_091_895_35;
    const TWO_PI_1: f64 = 6.283_185_243_606_567;
    const TWO_PI_2: f64 = 6.357_301_884_918_343e-8;
    const TWO_PI_3: f64 = 2.449_293_598_294_706_4e-16;
    const ROUND: f64 = 6_755_399_441_055_744.0; // 1.5 · 2^52: adding and subtracting rounds to an integer
    let k = (x * INV_TWO_PI + ROUND) - ROUND;
    let r = ((x - k * TWO_PI_1) - k * TWO_PI_2) - k * TWO_PI_3;
    let y = 0.5 * r;
    let z = y * y;
    // cos y = Σ (−1)^n z^n / (2n)!, n = 0..=11, by Horner
    let mut c = -1.0 / 1_124_000_727_777_607_680_000.0;
    c = c * z + 1.0 / 2_432_902_008_176_640_000.0;
    c = c * z - 1.0 / 6_402_373_705_728_000.0;
    c = c * z + 1.0 / 20_922_789_888_000.0;
    c = c * z - 1.0 / 87_178_291_200.0;
    c = c * z + 1.0 / 479_001_600.0;
    c = c * z - 1.0 / 3_628_800.0;
    c = c * z + 1.0 / 40_320.0;
    c = c * z - 1.0 / 720.0;
    c = c * z + 1.0 / 24.0;
    c = c * z - 0.5;
    c = c * z + 1.0;
    2.0 * c * c - 1.0
}

/// The indices of the (s, a) pairs of a one-hot critic: every pair with data, then every pair
/// the target reaches at a bootstrapped next state (so that Q is defined wherever it is read).
#[derive(Debug, Clone, Default)]
pub struct PairIndex {
    index: HashMap<(u32, u32), u32>,
    /// The pairs, in index order.
    pub pairs: Vec<(u32, u32)>,
    /// How many of them have data (the first ones).
    pub with_data: usize,
}

impl PairIndex {
    /// The index of (s, a), adding it when new.
    pub fn insert(&mut self, s: u32, a: u32) -> usize {
        let next = self.pairs.len() as u32;
        let k = *self.index.entry((s, a)).or_insert(next);
        if k == next {
            self.pairs.push((s, a));
        }
        k as usize
    }
    /// The index of (s, a), if present.
    pub fn get(&self, s: u32, a: u32) -> Option<usize> {
        self.index.get(&(s, a)).map(|&k| k as usize)
    }
    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }
    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// Random Fourier features of a continuous state, one block of D per action.
#[derive(Debug, Clone)]
pub struct Rff {
    /// Features per action block, D.
    pub dim: usize,
    /// State dimension k.
    pub state_dim: usize,
    /// Number of actions (blocks).
    pub n_actions: usize,
    /// w_j / h, row-major D × k.
    pub w: Vec<f64>,
    /// b_j, D values.
    pub b: Vec<f64>,
    /// √(2/D).
    pub scale: f64,
}

impl Rff {
    /// Draw the frequencies and phases from `seed` (ChaCha8: the same features on every
    /// platform and device).
    pub fn new(state_dim: usize, dim: usize, bandwidth: f64, seed: u64, n_actions: usize) -> Rff {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let w = (0..dim * state_dim)
            .map(|_| {
                let z: f64 = StandardNormal.sample(&mut rng);
                z / bandwidth
            })
            .collect();
        let b = (0..dim).map(|_| rng.random::<f64>() * std::f64::consts::TAU).collect();
        Rff { dim, state_dim, n_actions, w, b, scale: (2.0 / dim as f64).sqrt() }
    }
    /// The largest phase |w·s| the features can reach, at most 1e15: past it, double precision
    /// keeps no fraction of a turn and cos(w·s + b) no longer depends on the state (a bandwidth of
    /// 1e-300, or states near 1e308, gave "diverges" or "rescale the rewards" before). `s` and
    /// `s_next`: the state columns, one slice per dimension.
    pub fn check_phases(&self, bandwidth: f64, s: &[&[f64]], s_next: &[&[f64]]) -> Result<(), RlError> {
        const MAX_PHASE: f64 = 1e15;
        let k = self.state_dim;
        let (mut top, mut spread) = (vec![0.0f64; k], 0.0f64);
        for (j, t) in top.iter_mut().enumerate() {
            let (lo, hi) = s
                .iter()
                .chain(s_next)
                .skip(j)
                .step_by(k.max(1))
                .flat_map(|c| c.iter())
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)));
            if lo <= hi {
                *t = lo.abs().max(hi.abs());
                spread = spread.max(hi - lo);
            }
        }
        let phase =
            (0..self.dim).map(|d| (0..k).map(|j| self.w[d * k + j].abs() * top[j]).sum::<f64>()).fold(0.0f64, f64::max);
        if phase.is_finite() && phase <= MAX_PHASE {
            return Ok(());
        }
        let largest = top.iter().fold(0.0f64, |m, &x| m.max(x));
        Err(RlError::Parameter(format!(
            "features=rff: with bandwidth = {bandwidth:e} and states up to |s| = {largest:e}, the features' phases w·s \
             reach {phase:.1e}, past {MAX_PHASE:.0e}, where cos(w·s + b) keeps nothing of the state: set bandwidth near \
             the states' spread ({spread:e} here) or rescale the states"
        )))
    }

    /// ψ(s) into `out` (D values), s given as `state(k)`.
    #[inline]
    pub fn psi(&self, state: impl Fn(usize) -> f64, out: &mut [f64]) {
        let k = self.state_dim;
        // the state read once into a stack buffer (a heap one past 16 dimensions)
        let mut small = [0.0f64; 16];
        let mut large = Vec::new();
        let x: &mut [f64] = if k <= small.len() {
            &mut small[..k]
        } else {
            large.resize(k, 0.0);
            &mut large
        };
        x.iter_mut().enumerate().for_each(|(c, v)| *v = state(c));
        for (j, o) in out.iter_mut().enumerate() {
            let w = &self.w[j * k..(j + 1) * k];
            // b_j + (Σ_c w_jc x_c), summed in this order on both devices
            *o = self.b[j] + w.iter().zip(x.iter()).fold(0.0, |acc, (a, b)| acc + a * b);
        }
        for o in out.iter_mut() {
            *o = self.scale * cos(*o);
        }
    }
}

/// The feature map of a linear critic.
#[derive(Debug, Clone)]
pub enum FeatureMap {
    /// One indicator per (s, a) pair (discrete states).
    OneHot(PairIndex),
    /// Random Fourier features (continuous states).
    Rff(Rff),
    /// `phi_<k>` / `phi_next_<k>` columns, K of them.
    Given(usize),
}

impl FeatureMap {
    /// The number of features d.
    pub fn dim(&self) -> usize {
        match self {
            FeatureMap::OneHot(p) => p.len(),
            FeatureMap::Rff(r) => r.dim * r.n_actions,
            FeatureMap::Given(k) => *k,
        }
    }
}

/// What the target bootstraps from at s′.
#[derive(Debug, Clone, Copy)]
pub enum NextTarget<'p, 'a> {
    /// Σ_a′ π(a′|s′) φ(s′, a′), π from a policy table (discrete states).
    Policy(&'p Policy),
    /// Σ_a′ π(a′|s′) φ(s′, a′), π from `pi_next_<a>` columns (continuous states).
    Columns(&'p PolicyColumns<'a>),
    /// φ(s′, a_next) (SARSA: the behaviour's own next action).
    NextAction,
}

/// The given feature columns of a transitions table.
#[derive(Debug, Clone)]
pub struct GivenColumns<'a> {
    /// `phi_<k>`.
    pub phi: Vec<&'a [f64]>,
    /// `phi_next_<k>`.
    pub phi_next: Vec<&'a [f64]>,
}

impl<'a> GivenColumns<'a> {
    /// The columns `phi_<k>` and `phi_next_<k>` of the transitions table: at least one, the same
    /// number of each.
    pub fn new(phi: Vec<&'a [f64]>, phi_next: Vec<&'a [f64]>) -> Result<GivenColumns<'a>, RlError> {
        if phi.is_empty() {
            return Err(RlError::input(
                "features=given needs columns phi_0, phi_1, ... (phi(s, a)) and phi_next_0, ... in table 'transitions'",
            ));
        }
        if phi.len() != phi_next.len() {
            return Err(RlError::input(format!(
                "table 'transitions' has {} phi_* columns but {} phi_next_* columns: give phi_next_0..phi_next_{} \
                 to match phi_0..phi_{}",
                phi.len(),
                phi_next.len(),
                phi.len() - 1,
                phi.len() - 1
            )));
        }
        Ok(GivenColumns { phi, phi_next })
    }
}

/// Fills dense feature rows for a range of transitions: φ(s_i, a_i) and the next-state features
/// of the target (zero on rows with `done`).
pub struct DenseRows<'x, 'a> {
    /// The data.
    pub data: &'x Transitions<'a>,
    /// The feature map (`Rff` or `Given`).
    pub map: &'x FeatureMap,
    /// The given columns, for `Given`.
    pub given: Option<&'x GivenColumns<'a>>,
    /// The target at s′.
    pub target: NextTarget<'x, 'a>,
}

impl DenseRows<'_, '_> {
    /// Write rows `rows` of Φ into `phi` and of Φ̄′ into `next` (both row-major, d columns).
    pub fn fill(&self, rows: std::ops::Range<usize>, phi: &mut [f64], next: &mut [f64]) {
        let d = self.map.dim();
        phi.fill(0.0);
        next.fill(0.0);
        match self.map {
            FeatureMap::Given(_) => {
                let g = self.given.expect("given columns for the given feature map");
                for (row, i) in rows.enumerate() {
                    for k in 0..d {
                        phi[row * d + k] = g.phi[k][i];
                        if !self.data.done[i] {
                            next[row * d + k] = g.phi_next[k][i];
                        }
                    }
                }
            }
            FeatureMap::Rff(rff) => {
                let dd = rff.dim;
                let mut psi = vec![0.0; dd];
                for (row, i) in rows.enumerate() {
                    let a = self.data.a[i] as usize;
                    self.rff_row(rff, i, &mut psi, &mut next[row * d..(row + 1) * d]);
                    phi[row * d + a * dd..row * d + (a + 1) * dd].copy_from_slice(&psi);
                }
            }
            FeatureMap::OneHot(_) => unreachable!("one-hot features are accumulated sparsely"),
        }
    }

    /// The action blocks of random Fourier features, (actions, D): φ(s, a) = e_a ⊗ ψ(s) is zero
    /// outside block a, so the moments can be accumulated block by block ([`DenseRows::fill_by_action`]).
    pub fn action_blocks(&self) -> Option<(usize, usize)> {
        match self.map {
            FeatureMap::Rff(rff) => Some((rff.n_actions, rff.dim)),
            _ => None,
        }
    }

    /// Rows `rows` of RFF features grouped by action (stable within an action): ψ(s_i) into `psi`
    /// (D columns), the target's next-state features into `next` (d columns) and r_i into `r`, in
    /// the same order; returns the first position of each action's rows (actions + 1 entries).
    pub fn fill_by_action(
        &self,
        rows: std::ops::Range<usize>,
        psi: &mut [f64],
        next: &mut [f64],
        r: &mut [f64],
    ) -> Vec<usize> {
        let FeatureMap::Rff(rff) = self.map else { unreachable!("action blocks are RFF's") };
        let (d, dd) = (self.map.dim(), rff.dim);
        let mut starts = vec![0usize; rff.n_actions + 1];
        for i in rows.clone() {
            starts[self.data.a[i] as usize + 1] += 1;
        }
        for a in 0..rff.n_actions {
            starts[a + 1] += starts[a];
        }
        let mut at = starts.clone();
        next[..rows.len() * d].fill(0.0);
        for i in rows {
            let a = self.data.a[i] as usize;
            let row = at[a];
            at[a] += 1;
            self.rff_row(rff, i, &mut psi[row * dd..(row + 1) * dd], &mut next[row * d..(row + 1) * d]);
            r[row] = self.data.r[i];
        }
        starts
    }

    /// ψ(s_i) into `psi`, and the target's features at s′_i into `next` (d values, zero on
    /// entry; left zero where the episode ends).
    fn rff_row(&self, rff: &Rff, i: usize, psi: &mut [f64], next: &mut [f64]) {
        let States::Continuous { s, s_next } = &self.data.states else {
            unreachable!("rff features are built only for continuous states")
        };
        let dd = rff.dim;
        if self.data.done[i] {
            rff.psi(|k| s[k][i], psi);
            return;
        }
        rff.psi(|k| s_next[k][i], psi);
        match self.target {
            NextTarget::Columns(pc) => {
                for (a2, col) in pc.next.iter().enumerate().take(rff.n_actions) {
                    let p = col[i];
                    if p != 0.0 {
                        next[a2 * dd..(a2 + 1) * dd].iter_mut().zip(psi.iter()).for_each(|(o, v)| *o = p * v);
                    }
                }
            }
            NextTarget::NextAction => {
                let a2 = self.data.a_next.as_ref().expect("a_next checked")[i] as usize;
                next[a2 * dd..(a2 + 1) * dd].copy_from_slice(psi);
            }
            NextTarget::Policy(_) => unreachable!("continuous states take the policy from columns"),
        }
        rff.psi(|k| s[k][i], psi);
    }
}

/// ψ(s_i) and ψ(s′_i) of every row as n × D matrices (rows in parallel); ψ(s′_i) is zero where
/// the episode ends (nothing is bootstrapped there). `s` and `s_next` are the state columns.
pub fn rff_matrices(
    rff: &Rff,
    s: &[&[f64]],
    s_next: &[&[f64]],
    done: &[bool],
) -> Result<(ndarray::Array2<f64>, ndarray::Array2<f64>), RlError> {
    use rayon::prelude::*;
    let (n, d) = (done.len(), rff.dim);
    let what = "the random Fourier features of every state and next state";
    quiver_numerics::memory::reserve(2.0 * (n * d) as f64 * 8.0, what)?;
    let (mut psi, mut psi_next) =
        (quiver_numerics::memory::try_vec(n * d, 0.0, what)?, quiver_numerics::memory::try_vec(n * d, 0.0, what)?);
    psi.par_chunks_mut(d.max(1)).zip(psi_next.par_chunks_mut(d.max(1))).enumerate().for_each(|(i, (row, row_next))| {
        rff.psi(|k| s[k][i], row);
        if !done[i] {
            rff.psi(|k| s_next[k][i], row_next);
        }
    });
    let shape = |v| ndarray::Array2::from_shape_vec((n, d), v).expect("n × D");
    Ok((shape(psi), shape(psi_next)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_cos_matches_libm() {
        let mut worst: f64 = 0.0;
        for i in 0..200_001 {
            let x = -1000.0 + i as f64 * 0.01 + 1e-3 * (i as f64).sin();
            worst = worst.max((cos(x) - x.cos()).abs());
        }
        for x in [0.0, 1e-300, std::f64::consts::PI, 1e6 + 0.5, -3e8] {
            worst = worst.max((cos(x) - x.cos()).abs());
        }
        assert!(worst < 1e-15, "{worst}");
    }

    #[test]
    fn rff_kernel_approximation() {
        // ψ(x)ᵀψ(y) → exp(−‖x − y‖² / 2h²) as D grows (Rahimi & Recht)
        let rff = Rff::new(2, 20_000, 1.5, 7, 1);
        let (x, y) = ([0.3, -0.2], [0.9, 0.4]);
        let (mut px, mut py) = (vec![0.0; 20_000], vec![0.0; 20_000]);
        rff.psi(|k| x[k], &mut px);
        rff.psi(|k| y[k], &mut py);
        let dot: f64 = px.iter().zip(&py).map(|(a, b)| a * b).sum();
        let d2 = (0.6f64).powi(2) + (0.6f64).powi(2);
        assert!((dot - (-d2 / (2.0 * 1.5 * 1.5)).exp()).abs() < 0.02, "{dot}");
    }
}
