//! Adam on global softmax weights with **full-batch** steps, driven from outside one pass over
//! the data at a time: the fit of a run by parts (docs/scale.md), where the rows live in
//! partitions and each pass sums the partitions' gradients.
//!
//! The run is the one [`crate::adam::fit_global`] makes when a minibatch holds every training
//! block (`batch_rows` ≥ the training rows): one step per epoch with the gradient of all the
//! training rows, then the held-out loss of the new weights, early stopping after `patience`
//! epochs without a lower one, the best epoch's weights returned. Here each pass evaluates, at the
//! weights [`FullBatch::weights`] gives, the training rows' gradient sums and the held-out rows'
//! loss ([`crate::adam::CpuGradient::eval_ranges`] over [`Split::ranges`]), and
//! [`FullBatch::advance`] takes their totals: it records the held-out loss of the epoch just
//! ended, stops or steps. The driver's whole state is this serialisable value, so it can travel
//! with the next pass's instructions.

use crate::adam::{softmax_backward, Adam, AdamConfig, AdamReport, Split};
use crate::model::{softmax_groups, Structure};
use serde::{Deserialize, Serialize};

/// The state of a full-batch fit between two passes over the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FullBatch {
    /// Which blocks train and which are held out.
    pub split: Split,
    /// Rows trained on and held out.
    pub rows: (usize, usize),
    /// The gradient's divisor: the problem's scale ([`crate::model::problem_scale`]).
    pub scale: f64,
    group: usize,
    levels: usize,
    max_epochs: usize,
    patience: usize,
    logits: Vec<f64>,
    w: Vec<f64>,
    adam: Adam,
    /// Epochs done (steps taken): the weights are those after this many.
    epoch: usize,
    history: Vec<f64>,
    best: (f64, Vec<f64>, usize),
    stopped_early: bool,
    done: bool,
}

impl FullBatch {
    /// Equal weights (logits 0) before the first step; `n` fit rows, `scale` as in
    /// [`crate::adam::fit_global`].
    pub fn new(s: &Structure, n: usize, scale: f64, cfg: &AdamConfig) -> FullBatch {
        let split = Split::new(n, cfg.holdout, cfg.seed);
        let p = s.n_weights();
        let mut w = vec![0.0; p];
        softmax_groups(&mut w, s.group_size());
        FullBatch {
            split,
            rows: split.rows(),
            scale,
            group: s.group_size(),
            levels: s.k,
            max_epochs: cfg.max_epochs,
            patience: cfg.patience,
            logits: vec![0.0; p],
            best: (f64::INFINITY, w.clone(), 0),
            w,
            adam: Adam::new(p, cfg.lr),
            epoch: 0,
            history: Vec::new(),
            stopped_early: false,
            done: false,
        }
    }
    /// The weights the next pass evaluates the rows at.
    pub fn weights(&self) -> &[f64] {
        &self.w
    }
    /// Whether the next pass needs the training rows' gradient (not after the last step).
    pub fn wants_gradient(&self) -> bool {
        self.epoch < self.max_epochs
    }
    /// Epochs done.
    pub fn epochs(&self) -> usize {
        self.epoch
    }
    /// Whether the fit has ended.
    pub fn done(&self) -> bool {
        self.done
    }
    /// Take one pass's totals at [`FullBatch::weights`]: the gradient sums a_w of the training rows
    /// (`None` when not [`FullBatch::wants_gradient`]) and the held-out rows' summed pinball loss.
    /// Records the loss of the epoch just ended, then stops (patience, or `max_epochs`) or steps.
    pub fn advance(&mut self, gradient: Option<&[f64]>, holdout_loss: f64) {
        if self.done {
            return;
        }
        let (train_rows, hold_rows) = self.rows;
        if self.epoch > 0 {
            if hold_rows == 0 {
                self.best = (f64::NAN, self.w.clone(), self.epoch);
            } else {
                let loss = holdout_loss / (hold_rows as f64 * self.levels as f64);
                self.history.push(loss);
                if loss < self.best.0 {
                    self.best = (loss, self.w.clone(), self.epoch);
                } else if self.epoch - self.best.2 >= self.patience {
                    self.stopped_early = true;
                    self.done = true;
                    return;
                }
            }
        }
        let Some(a) = gradient.filter(|_| self.wants_gradient()) else {
            self.done = true;
            return;
        };
        let mut dz = vec![0.0; self.w.len()];
        let norm = 1.0 / (train_rows as f64 * self.levels as f64 * self.scale);
        softmax_backward(&self.w, a, norm, self.group, &mut dz);
        self.adam.step(&mut self.logits, &dz);
        self.w.copy_from_slice(&self.logits);
        softmax_groups(&mut self.w, self.group);
        self.epoch += 1;
    }
    /// The best epoch's weights and the report, as [`crate::adam::fit_global`] gives them.
    pub fn result(&self) -> (Vec<f64>, AdamReport) {
        let hold = self.rows.1 > 0;
        let report = AdamReport {
            epochs: self.epoch,
            best_epoch: self.best.2,
            holdout_loss: hold.then_some(self.best.0),
            history: self.history.clone(),
            rows: self.rows,
            block: self.split.block,
            steps: self.epoch,
            stopped_early: self.stopped_early,
        };
        (self.best.1.clone(), report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adam::{fit_global, CpuGradient};
    use crate::model::Granularity;

    /// Forecasts of three models at three levels for n rows: the outcome plus each model's bias
    /// and a spread, so that the best weights are not the equal ones.
    fn data(n: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
        let mut s = 11u64;
        let mut u = || (quiver_numerics::splitmix::next(&mut s) >> 11) as f64 / (1u64 << 53) as f64;
        let y: Vec<f64> = (0..n).map(|_| u() * 4.0 - 2.0).collect();
        let mut q = Vec::new();
        for (bias, spread) in [(0.3, 1.0), (-0.1, 0.6), (0.8, 2.0)] {
            for z in [-1.28, 0.0, 1.28] {
                q.push(y.iter().map(|v| v + bias + spread * z + 0.5 * (u() - 0.5)).collect());
            }
        }
        (y, q)
    }

    /// Driven over the rows cut into a few uneven pieces, the full-batch fit ends where
    /// `fit_global` ends when one minibatch holds every training block.
    #[test]
    fn the_driven_fit_is_fit_global_with_one_batch() {
        for (n, holdout, patience) in [(3000, 0.2, 3), (700, 0.0, 5), (5000, 0.1, 1000)] {
            let (y, q) = data(n);
            let cols: Vec<&[f64]> = q.iter().map(Vec::as_slice).collect();
            let levels = [0.1, 0.5, 0.9];
            let s = Structure::new(Granularity::Medium, 3, 3).unwrap();
            let cfg = AdamConfig { lr: 0.05, batch_rows: usize::MAX, max_epochs: 60, patience, holdout, seed: 4 };
            let block = crate::adam::block_size(n);
            let mut g = CpuGradient { s, q: &cols, y: &y, levels: &levels, block };
            let (w1, r1) = fit_global(&s, n, &mut g, 1.7, &cfg, &mut |_| Ok(())).unwrap();
            let mut fb = FullBatch::new(&s, n, 1.7, &cfg);
            let cuts = [0, n / 7, n / 7, n / 2 + 13, n];
            while !fb.done() {
                let mut grad = vec![0.0; s.n_weights()];
                let mut hold = 0.0;
                for c in cuts.windows(2) {
                    let (train, held) = fb.split.ranges(c[0], c[1] - c[0]);
                    let part = CpuGradient { s, q: &cols, y: &y[c[0]..c[1]], levels: &levels, block };
                    let cols_part: Vec<&[f64]> = cols.iter().map(|col| &col[c[0]..c[1]]).collect();
                    let part = CpuGradient { q: &cols_part, ..part };
                    if fb.wants_gradient() {
                        part.eval_ranges(&train, fb.weights(), Some(&mut grad));
                    }
                    hold += part.eval_ranges(&held, fb.weights(), None);
                }
                let want = fb.wants_gradient();
                fb.advance(want.then_some(grad.as_slice()), hold);
            }
            let (w2, r2) = fb.result();
            assert_eq!(
                (r1.epochs, r1.best_epoch, r1.rows, r1.stopped_early),
                (r2.epochs, r2.best_epoch, r2.rows, r2.stopped_early)
            );
            assert_eq!(r1.history.len(), r2.history.len());
            for (a, b) in r1.history.iter().zip(&r2.history).chain(w1.iter().zip(&w2)) {
                assert!((a - b).abs() <= 1e-12 * a.abs().max(1e-3), "{a} vs {b}");
            }
        }
    }

    /// The split holds out the stated number of blocks, each block decides alone, and the row
    /// ranges of any piece of the rows agree with the blocks.
    #[test]
    fn the_split_is_a_permutation_decided_block_by_block() {
        for (n, holdout, seed) in [(1, 0.1, 0), (20, 0.5, 1), (10_239, 0.1, 2), (1 << 20, 0.25, 3), (5 << 20, 0.1, 9)] {
            let sp = Split::new(n, holdout, seed);
            let mut seen = vec![false; sp.blocks];
            for b in 0..sp.blocks {
                let p = sp.place(b);
                assert!(!seen[p], "place {p} twice");
                seen[p] = true;
            }
            let (train, hold) = sp.blocks();
            assert_eq!(hold.len(), sp.held);
            assert_eq!(train.len() + hold.len(), sp.blocks);
            let (tr, ho) = sp.ranges(0, n);
            assert_eq!(tr.iter().map(|r| r.len()).sum::<usize>(), sp.rows().0);
            assert_eq!(ho.iter().map(|r| r.len()).sum::<usize>(), sp.rows().1);
            let start = n / 3;
            let (tr, ho) = sp.ranges(start, n - start);
            for r in tr.iter().chain(&ho) {
                assert!(
                    r.len() <= crate::adam::BLOCK_ROWS
                        && (r.start + start) / sp.block == (r.end + start - 1) / sp.block
                );
            }
            for r in &ho {
                assert!(sp.held_out((r.start + start) / sp.block));
            }
        }
        // a tenth of 2 000 blocks, different for another seed
        let (a, b) = (Split::new(1 << 20, 0.1, 1), Split::new(1 << 20, 0.1, 2));
        assert_eq!(a.blocks().1.len(), 205);
        assert_ne!(a.blocks().1, b.blocks().1);
    }
}
