//! Softmax-parametrised weights fitted by Adam (Kingma & Ba, ICLR 2015) on minibatches of the fit
//! rows, with early stopping on a held-out part of them — the path for large n and for local
//! weights (Fakoor et al., JMLR 2023, §3.3 fit their aggregators by stochastic gradients).
//!
//! Rows are handled in blocks of at most [`BLOCK_ROWS`] consecutive rows (each forecast column is
//! read contiguously, a page at a time, and never copied): a seeded shuffle puts a fraction
//! `holdout` of the blocks aside, and every epoch visits the other blocks in a fresh random order,
//! `batch_rows / block` blocks per step. A step's loss is the mean pinball loss of the batch, whose subgradient in the aggregate
//! is ∂ψ_τ(y − q̂)/∂q̂ = 1{y < q̂} − τ; the chain rule through q̂_k = Σ w_w Q_c and the softmax of
//! each group (∂L/∂z_w = w_w (a_w − Σ_group w a)) gives the gradient in the logits. Global
//! weights split a step's work by output level, local weights by block; either way the partial
//! sums are added in a fixed order, so the result does not depend on the number of threads.

use crate::forecasts::Forecasts;
use crate::model::{softmax_groups, Standardizer, Structure, Weights};
use crate::AggregationError;

/// Settings of the Adam solver.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamConfig {
    /// Step size (in the logits).
    pub lr: f64,
    /// Rows per minibatch (rounded to whole blocks).
    pub batch_rows: usize,
    /// Most epochs.
    pub max_epochs: usize,
    /// Stop after this many epochs without a lower held-out loss.
    pub patience: usize,
    /// Fraction of the fit blocks held out for early stopping (0: none).
    pub holdout: f64,
    /// Seed of the shuffles.
    pub seed: u64,
}

/// What the solver did.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamReport {
    /// Epochs run.
    pub epochs: usize,
    /// The epoch whose weights are returned (1-based; the lowest held-out loss).
    pub best_epoch: usize,
    /// Held-out mean pinball loss of the returned weights (`None` without a held-out part).
    pub holdout_loss: Option<f64>,
    /// Held-out loss after each epoch.
    pub history: Vec<f64>,
    /// Rows trained on and held out.
    pub rows: (usize, usize),
    /// Rows per block.
    pub block: usize,
    /// Optimiser steps.
    pub steps: usize,
    /// Whether early stopping ended the run (else `max_epochs`).
    pub stopped_early: bool,
}

/// The loss (and its gradient in the weights) of global weights over blocks of rows: what the
/// CPU and the CUDA kernels both compute.
pub trait GlobalGradient {
    /// Σ over the blocks' rows and the levels of ψ_τ(y − q̂); when `grad` is given, add
    /// a_w = Σ_i Σ_k (1{y_i < q̂_ik} − τ_k) Q_c[i] over the terms (c, w) to it.
    fn eval(&mut self, blocks: &[usize], w: &[f64], grad: Option<&mut [f64]>) -> Result<f64, AggregationError>;
}

/// The rows of block `b`.
pub fn block_rows(b: usize, block: usize, n: usize) -> std::ops::Range<usize> {
    b * block..((b + 1) * block).min(n)
}

/// Most rows per block: 512 doubles are one 4 KiB page of a column, which the hardware
/// prefetcher streams (64-row blocks left the gradient waiting on a cache miss per column).
pub const BLOCK_ROWS: usize = 512;

/// Rows per block for n rows: [`BLOCK_ROWS`], or fewer so that small data still have ≥ 20 blocks.
pub fn block_size(n: usize) -> usize {
    (n / 20).clamp(1, BLOCK_ROWS)
}

/// The CPU path: blocks in parallel (rayon), partial sums added in block order.
pub struct CpuGradient<'a> {
    /// Structure.
    pub s: Structure,
    /// Forecast columns.
    pub q: &'a [&'a [f64]],
    /// Outcomes.
    pub y: &'a [f64],
    /// Levels.
    pub levels: &'a [f64],
    /// Rows per block.
    pub block: usize,
}

/// Up to this many terms per level are read as parallel row streams (more memory requests in
/// flight); more (the fine granularity) column by column.
const STREAMED_TERMS: usize = 32;

impl CpuGradient<'_> {
    /// Per level of `lv`: the loss over the rows of `ranges` (each at most [`BLOCK_ROWS`] rows),
    /// and (when `want_grad`) the gradient sum of each of its terms, in term order (levels after
    /// one another).
    fn levels(
        &self,
        lv: std::ops::Range<usize>,
        ranges: &[std::ops::Range<usize>],
        w: &[f64],
        want_grad: bool,
    ) -> (Vec<f64>, Vec<f64>) {
        let nt = self.s.n_terms();
        let mut grad = if want_grad { vec![0.0; lv.len() * nt] } else { Vec::new() };
        let mut losses = vec![0.0; lv.len()];
        let mut acc = [0.0f64; BLOCK_ROWS];
        let mut g = [0.0f64; BLOCK_ROWS];
        let streamed = nt <= STREAMED_TERMS;
        let mut cols: Vec<&[f64]> = Vec::with_capacity(STREAMED_TERMS);
        let mut wts: Vec<f64> = Vec::with_capacity(STREAMED_TERMS);
        let mut lanes = [[0.0f64; TILE]; STREAMED_TERMS];
        for rows in ranges {
            let rows = rows.clone();
            let len = rows.len();
            let y = &self.y[rows.clone()];
            for (li, k) in lv.clone().enumerate() {
                let tau = self.levels[k];
                let acc = &mut acc[..len];
                let mut loss = 0.0;
                if streamed {
                    cols.clear();
                    wts.clear();
                    for (c, wi) in self.s.terms(k) {
                        cols.push(&self.q[c][rows.clone()]);
                        wts.push(w[wi]);
                    }
                    // tiles of 8 rows: each term's 8 values multiply-added into 8 sums held in
                    // registers (vector instructions), the terms added in term order as before
                    let tiles = len / TILE;
                    for t in 0..tiles {
                        let mut a = [0.0f64; TILE];
                        for (col, &wv) in cols.iter().zip(&wts) {
                            let x: &[f64; TILE] = col[t * TILE..(t + 1) * TILE].try_into().expect("a tile");
                            for i in 0..TILE {
                                a[i] += wv * x[i];
                            }
                        }
                        acc[t * TILE..(t + 1) * TILE].copy_from_slice(&a);
                    }
                    for (r, a) in acc.iter_mut().enumerate().skip(tiles * TILE) {
                        *a = cols.iter().zip(&wts).map(|(col, wv)| wv * col[r]).sum();
                    }
                } else {
                    acc.iter_mut().for_each(|a| *a = 0.0);
                    for (c, wi) in self.s.terms(k) {
                        let wv = w[wi];
                        acc.iter_mut().zip(&self.q[c][rows.clone()]).for_each(|(a, q)| *a += wv * q);
                    }
                }
                for ((gi, &a), &yi) in g[..len].iter_mut().zip(acc.iter()).zip(y) {
                    let u = yi - a;
                    loss += if u >= 0.0 { tau * u } else { (tau - 1.0) * u };
                    *gi = if yi < a { 1.0 - tau } else { -tau };
                }
                losses[li] += loss;
                if !want_grad {
                    continue;
                }
                let grad = &mut grad[li * nt..(li + 1) * nt];
                if streamed {
                    // per term, 8 partial sums (row mod 8) over the block's tiles, then added
                    // pairwise: vector multiply-adds with no chain through one running sum
                    let lanes = &mut lanes[..cols.len()];
                    lanes.iter_mut().for_each(|l| *l = [0.0; TILE]);
                    let tiles = len / TILE;
                    for t in 0..tiles {
                        let gt: &[f64; TILE] = g[t * TILE..(t + 1) * TILE].try_into().expect("a tile");
                        for (l, col) in lanes.iter_mut().zip(&cols) {
                            let x: &[f64; TILE] = col[t * TILE..(t + 1) * TILE].try_into().expect("a tile");
                            for i in 0..TILE {
                                l[i] += gt[i] * x[i];
                            }
                        }
                    }
                    for r in tiles * TILE..len {
                        for (l, col) in lanes.iter_mut().zip(&cols) {
                            l[r % TILE] += g[r] * col[r];
                        }
                    }
                    grad.iter_mut().zip(lanes.iter()).for_each(|(a, l)| *a += lane_sum(l));
                } else {
                    for (gt, (c, _)) in grad.iter_mut().zip(self.s.terms(k)) {
                        *gt += dot(&g[..len], &self.q[c][rows.clone()]);
                    }
                }
            }
        }
        (losses, grad)
    }
}

/// Rows per tile of the streamed gradient: one cache line of each column, eight sums.
const TILE: usize = 8;

/// The eight partial sums added pairwise.
fn lane_sum(l: &[f64; TILE]) -> f64 {
    ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
}

/// Σ a_i b_i in eight interleaved partial sums (lanes i mod 8, added pairwise at the end): the
/// compiler turns it into vector multiply-adds, where one running sum would wait on each add.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut lanes = [0.0f64; TILE];
    let (ca, cb) = (a.chunks_exact(TILE), b.chunks_exact(TILE));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..TILE {
            lanes[i] += x[i] * y[i];
        }
    }
    for (i, (x, y)) in ra.iter().zip(rb).enumerate() {
        lanes[i] += x * y;
    }
    lane_sum(&lanes)
}

impl GlobalGradient for CpuGradient<'_> {
    fn eval(&mut self, blocks: &[usize], w: &[f64], grad: Option<&mut [f64]>) -> Result<f64, AggregationError> {
        let n = self.y.len();
        let ranges: Vec<std::ops::Range<usize>> = blocks.iter().map(|&b| block_rows(b, self.block, n)).collect();
        Ok(self.eval_ranges(&ranges, w, grad))
    }
}

impl CpuGradient<'_> {
    /// [`GlobalGradient::eval`] over row ranges of the table (each at most [`BLOCK_ROWS`] rows):
    /// one task per thread takes a run of output levels over all the ranges (reading its
    /// levels' columns as row streams); the per-level sums are added in level order, so the
    /// result does not depend on the number of threads.
    pub fn eval_ranges(&self, ranges: &[std::ops::Range<usize>], w: &[f64], grad: Option<&mut [f64]>) -> f64 {
        use rayon::prelude::*;
        let want = grad.is_some();
        let k = self.levels.len();
        let per_task = k.div_ceil(rayon::current_num_threads().max(1)).max(1);
        let tasks: Vec<std::ops::Range<usize>> =
            (0..k).step_by(per_task).map(|k0| k0..(k0 + per_task).min(k)).collect();
        let parts: Vec<(Vec<f64>, Vec<f64>)> =
            tasks.clone().into_par_iter().map(|lv| self.levels(lv, ranges, w, want)).collect();
        let nt = self.s.n_terms();
        let mut loss = 0.0;
        let mut grad = grad;
        for (lv, (losses, sums)) in tasks.into_iter().zip(&parts) {
            for (li, kk) in lv.enumerate() {
                loss += losses[li];
                if let Some(grad) = grad.as_deref_mut() {
                    for ((_, wi), v) in self.s.terms(kk).zip(&sums[li * nt..(li + 1) * nt]) {
                        grad[wi] += v;
                    }
                }
            }
        }
        loss
    }
}

/// Fisher–Yates shuffle with SplitMix64 draws (128-bit multiply maps a draw to 0..=i).
fn shuffle(v: &mut [usize], state: &mut u64) {
    for i in (1..v.len()).rev() {
        let j = ((u128::from(quiver_numerics::splitmix::next(state)) * (i as u128 + 1)) >> 64) as usize;
        v.swap(i, j);
    }
}

/// Adam moments and step.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Adam {
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
    lr: f64,
}

impl Adam {
    const B1: f64 = 0.9;
    const B2: f64 = 0.999;
    const EPS: f64 = 1e-8;
    pub(crate) fn new(p: usize, lr: f64) -> Adam {
        Adam { m: vec![0.0; p], v: vec![0.0; p], t: 0, lr }
    }
    pub(crate) fn step(&mut self, params: &mut [f64], grad: &[f64]) {
        self.t = self.t.saturating_add(1);
        let (c1, c2) = (1.0 - Self::B1.powi(self.t), 1.0 - Self::B2.powi(self.t));
        for ((p, g), (m, v)) in params.iter_mut().zip(grad).zip(self.m.iter_mut().zip(self.v.iter_mut())) {
            *m = Self::B1 * *m + (1.0 - Self::B1) * g;
            *v = Self::B2 * *v + (1.0 - Self::B2) * g * g;
            *p -= self.lr * (*m / c1) / ((*v / c2).sqrt() + Self::EPS);
        }
    }
}

/// Which of the fit rows' blocks are held out for early stopping: `round(holdout · blocks)` of
/// them (at least one, and at least one left to train on, when there are two blocks or more),
/// those a seeded pseudo-random permutation of the blocks puts first. The permutation is a
/// four-round Feistel network on the smallest even power of two ≥ the number of blocks, walked
/// until it lands inside (Black & Rogaway, "Ciphers with arbitrary finite domains", 2002), so
/// that whether block b is held out is a function of b alone: a partition of the rows decides
/// for its own blocks without the others (a run by parts holds out exactly the one-table run's).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Split {
    /// Rows of the fit table.
    pub n: usize,
    /// Rows per block ([`block_size`]).
    pub block: usize,
    /// Blocks.
    pub blocks: usize,
    /// Blocks held out.
    pub held: usize,
    /// Half the permutation's bits.
    half: u32,
    /// The keys of the four rounds.
    keys: [u64; 4],
}

impl Split {
    /// The split of `n` rows for `holdout` (a fraction in [0, 1)) and `seed`.
    pub fn new(n: usize, holdout: f64, seed: u64) -> Split {
        let block = block_size(n);
        let blocks = n.div_ceil(block);
        let held = if holdout > 0.0 && blocks >= 2 {
            ((holdout * blocks as f64).round() as usize).clamp(1, blocks - 1)
        } else {
            0
        };
        let bits = usize::BITS - blocks.saturating_sub(1).leading_zeros();
        let mut state = seed ^ 0x5EED_0FA6_6E6A_7E00;
        let keys = std::array::from_fn(|_| quiver_numerics::splitmix::next(&mut state));
        Split { n, block, blocks, held, half: bits.div_ceil(2), keys }
    }
    /// Block `b`'s place in the permutation (a bijection of 0..blocks).
    pub fn place(&self, b: usize) -> usize {
        let mask = (1u64 << self.half) - 1;
        let mut x = b as u64;
        loop {
            let (mut l, mut r) = (x >> self.half, x & mask);
            for &k in &self.keys {
                let mut h = r ^ k;
                let f = quiver_numerics::splitmix::next(&mut h) & mask;
                (l, r) = (r, l ^ f);
            }
            x = (l << self.half) | r;
            if (x as usize) < self.blocks {
                return x as usize;
            }
        }
    }
    /// Whether block `b` is held out.
    pub fn held_out(&self, b: usize) -> bool {
        self.held > 0 && self.place(b) < self.held
    }
    /// The training and the held-out blocks, each in ascending order.
    pub fn blocks(&self) -> (Vec<usize>, Vec<usize>) {
        (0..self.blocks).partition(|&b| !self.held_out(b))
    }
    /// Rows in the training and in the held-out blocks.
    pub fn rows(&self) -> (usize, usize) {
        let (train, hold) = self.blocks();
        (rows_in(&train, self.block, self.n), rows_in(&hold, self.block, self.n))
    }
    /// The training and held-out row ranges of the rows `start..start + len` of the fit table, as
    /// ranges of those rows (0 = `start`), cut at block boundaries.
    pub fn ranges(&self, start: usize, len: usize) -> (Vec<std::ops::Range<usize>>, Vec<std::ops::Range<usize>>) {
        let (mut train, mut hold) = (Vec::new(), Vec::new());
        let mut i = start;
        while i < start + len {
            let b = i / self.block;
            let end = ((b + 1) * self.block).min(start + len);
            if self.held_out(b) { &mut hold } else { &mut train }.push(i - start..end - start);
            i = end;
        }
        (train, hold)
    }
}

/// The split of the fit rows' blocks ([`Split`]) and the seeded state of the epochs' shuffles.
fn split(n: usize, cfg: &AdamConfig) -> (usize, Vec<usize>, Vec<usize>, u64) {
    let sp = Split::new(n, cfg.holdout, cfg.seed);
    let (train, hold) = sp.blocks();
    (sp.block, train, hold, cfg.seed ^ 0x0A7E_5EED_5417_FF1E)
}

/// Rows in a set of blocks.
fn rows_in(blocks: &[usize], block: usize, n: usize) -> usize {
    blocks.iter().map(|&b| block_rows(b, block, n).len()).sum()
}

/// The epoch loop both fits share: split the blocks, shuffle the training blocks every epoch,
/// call `step(state, batch, rows)` per minibatch, then `holdout(state, blocks, rows)` for the
/// held-out mean loss, keeping `snapshot(state)` of the best epoch; stop after `patience` epochs
/// without a lower held-out loss or at `max_epochs`. Returns the best snapshot (the last one
/// without a held-out part) and the report.
#[allow(clippy::type_complexity)] // the two callbacks, spelt out where they are used
fn train<S>(
    n: usize,
    cfg: &AdamConfig,
    state: &mut S,
    step: &mut dyn FnMut(&mut S, &[usize], f64) -> Result<(), AggregationError>,
    holdout: &mut dyn FnMut(&S, &[usize], f64) -> Result<f64, AggregationError>,
    snapshot: &dyn Fn(&S) -> Vec<f64>,
    progress: &mut dyn FnMut(usize) -> Result<(), AggregationError>,
) -> Result<(Vec<f64>, AdamReport), AggregationError> {
    let (block, train, hold, mut shuffler) = split(n, cfg);
    let per_batch = (cfg.batch_rows / block).max(1);
    let (hold_rows, train_rows) = (rows_in(&hold, block, n), rows_in(&train, block, n));
    let mut best = (f64::INFINITY, snapshot(state), 0usize);
    let mut report = AdamReport {
        epochs: 0,
        best_epoch: 0,
        holdout_loss: None,
        history: Vec::new(),
        rows: (train_rows, hold_rows),
        block,
        steps: 0,
        stopped_early: false,
    };
    let mut order = train;
    for epoch in 1..=cfg.max_epochs {
        shuffle(&mut order, &mut shuffler);
        for batch in order.chunks(per_batch) {
            step(state, batch, rows_in(batch, block, n) as f64)?;
            report.steps += 1;
        }
        report.epochs = epoch;
        progress(epoch)?;
        if hold.is_empty() {
            best = (f64::NAN, snapshot(state), epoch);
            continue;
        }
        let loss = holdout(state, &hold, hold_rows as f64)?;
        report.history.push(loss);
        if loss < best.0 {
            best = (loss, snapshot(state), epoch);
        } else if epoch - best.2 >= cfg.patience {
            report.stopped_early = true;
            break;
        }
    }
    report.best_epoch = best.2;
    report.holdout_loss = (!hold.is_empty()).then_some(best.0);
    Ok((best.1, report))
}

/// Fit global weights by Adam on softmax logits (all zero at the start: equal weights). `grad`
/// evaluates loss and gradient (CPU or CUDA); `scale` divides the gradient (the outcomes'
/// standard deviation, so that the step size is in standardised units); `progress(epoch)` may
/// stop the run.
pub fn fit_global(
    s: &Structure,
    n: usize,
    grad: &mut dyn GlobalGradient,
    scale: f64,
    cfg: &AdamConfig,
    progress: &mut dyn FnMut(usize) -> Result<(), AggregationError>,
) -> Result<(Vec<f64>, AdamReport), AggregationError> {
    let p = s.n_weights();
    let k = s.k as f64;
    let size = s.group_size();
    // state: logits, their softmax, Adam's moments
    let mut w = vec![0.0; p];
    softmax_groups(&mut w, size);
    let mut state = (vec![0.0; p], w, Adam::new(p, cfg.lr));
    let (mut a, mut dz) = (vec![0.0; p], vec![0.0; p]);
    let grad = std::cell::RefCell::new(grad);
    train(
        n,
        cfg,
        &mut state,
        &mut |(logits, w, adam), batch, rows| {
            a.iter_mut().for_each(|x| *x = 0.0);
            grad.borrow_mut().eval(batch, w, Some(&mut a))?;
            softmax_backward(w, &a, 1.0 / (rows * k * scale), size, &mut dz);
            adam.step(logits, &dz);
            w.copy_from_slice(logits);
            softmax_groups(w, size);
            Ok(())
        },
        &mut |(_, w, _), hold, rows| Ok(grad.borrow_mut().eval(hold, w, None)? / (rows * k)),
        &|(_, w, _)| w.clone(),
        progress,
    )
}

/// ∂L/∂z = w ⊙ (a − Σ_group w a), times `norm`.
pub(crate) fn softmax_backward(w: &[f64], a: &[f64], norm: f64, size: usize, out: &mut [f64]) {
    for ((wg, ag), og) in w.chunks(size).zip(a.chunks(size)).zip(out.chunks_mut(size)) {
        let mean: f64 = wg.iter().zip(ag).map(|(x, y)| x * y).sum();
        for ((o, &x), &y) in og.iter_mut().zip(wg).zip(ag) {
            *o = norm * x * (y - mean);
        }
    }
}

/// Local weights w(x) = softmax_group(θ + B x̃) by Adam (CPU): per row the weights, the
/// aggregate, the subgradient a_w, and ∂L/∂z_w = w_w (a_w − Σ_group w a), which adds to θ_w and,
/// times x̃, to B_w. Starts at θ = 0, B = 0 (equal weights everywhere).
pub fn fit_local(
    s: &Structure,
    f: &Forecasts<'_>,
    y: &[f64],
    levels: &[f64],
    scale: f64,
    cfg: &AdamConfig,
    progress: &mut dyn FnMut(usize) -> Result<(), AggregationError>,
) -> Result<(Weights, AdamReport), AggregationError> {
    use rayon::prelude::*;
    let n = f.n;
    let p = s.n_weights();
    let d = f.x.len();
    let standardizer = Standardizer::fit(&f.x);
    let block = block_size(n);
    let np = p * (d + 1);
    // params: θ (P) then B (P × d)
    let params = vec![0.0; np];
    let weights_of = |params: &[f64]| Weights::Local {
        theta: params[..p].to_vec(),
        b: params[p..].to_vec(),
        standardizer: standardizer.clone(),
    };
    // loss (and gradient in params) over one block
    let block_eval = |b: usize, wts: &Weights, want: bool| -> (f64, Vec<f64>) {
        let mut g = if want { vec![0.0; np] } else { Vec::new() };
        let (mut xt, mut w, mut a) = (vec![0.0; d], vec![0.0; p], vec![0.0; p]);
        let mut loss = 0.0;
        for i in block_rows(b, block, n) {
            wts.at(s, f, i, &mut xt, &mut w);
            a.iter_mut().for_each(|v| *v = 0.0);
            for (k, &tau) in levels.iter().enumerate() {
                let qh: f64 = s.terms(k).map(|(c, wi)| w[wi] * f.q[c][i]).sum();
                let u = y[i] - qh;
                loss += if u >= 0.0 { tau * u } else { (tau - 1.0) * u };
                if want {
                    let gi = if y[i] < qh { 1.0 - tau } else { -tau };
                    for (c, wi) in s.terms(k) {
                        a[wi] += gi * f.q[c][i];
                    }
                }
            }
            if want {
                for ((wg, ag), gsz) in w.chunks(s.group_size()).zip(a.chunks(s.group_size())).zip(0..) {
                    let mean: f64 = wg.iter().zip(ag).map(|(x, y)| x * y).sum();
                    for (t, (&x, &av)) in wg.iter().zip(ag).enumerate() {
                        let wi = gsz * s.group_size() + t;
                        let dz = x * (av - mean);
                        g[wi] += dz;
                        for (dd, &xv) in xt.iter().enumerate() {
                            g[p + wi * d + dd] += dz * xv;
                        }
                    }
                }
            }
        }
        (loss, g)
    };
    let k = s.k as f64;
    let mut state = (params, Adam::new(np, cfg.lr));
    let (best, report) = train(
        n,
        cfg,
        &mut state,
        &mut |(params, adam), batch, rows| {
            let wts = weights_of(params);
            let parts: Vec<(f64, Vec<f64>)> = batch.par_iter().map(|&b| block_eval(b, &wts, true)).collect();
            let mut g = vec![0.0; np];
            for (_, pg) in &parts {
                g.iter_mut().zip(pg).for_each(|(a, b)| *a += b);
            }
            let norm = 1.0 / (rows * k * scale);
            g.iter_mut().for_each(|v| *v *= norm);
            adam.step(params, &g);
            Ok(())
        },
        &mut |(params, _), hold, rows| {
            let wts = weights_of(params);
            let parts: Vec<f64> = hold.par_iter().map(|&b| block_eval(b, &wts, false).0).collect();
            Ok(parts.iter().sum::<f64>() / (rows * k))
        },
        &|(params, _)| params.clone(),
        progress,
    )?;
    Ok((weights_of(&best), report))
}
