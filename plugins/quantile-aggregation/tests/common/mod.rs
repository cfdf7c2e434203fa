//! The forecast data sets the quantile-aggregation tests share.
#![allow(dead_code)] // each test binary uses a part

use quiver_host::Table;
use quiver_testing as testing;
use rand::Rng;
use rand_distr::{Distribution, Normal};

/// A forecast data set: J models at `levels`, rows of (y, q_jk); model j has bias and spread errors.
pub struct Data {
    pub y: Vec<f64>,
    /// q[j * K + k]
    pub q: Vec<Vec<f64>>,
    pub x: Vec<f64>,
    pub levels: Vec<f64>,
    pub j: usize,
}

pub fn data(seed: u64, n: usize, j: usize, levels: &[f64]) -> Data {
    let mut r = testing::rng(seed);
    let nd = Normal::new(0.0, 1.0).unwrap();
    let x: Vec<f64> = (0..n).map(|_| r.random::<f64>() * 4.0).collect();
    let mu: Vec<f64> = x.iter().map(|v| (v * 1.3).sin() * 2.0 + v).collect();
    let sd: Vec<f64> = x.iter().map(|v| 0.3 + 0.4 * v).collect();
    let y: Vec<f64> = (0..n).map(|i| mu[i] + sd[i] * nd.sample(&mut r)).collect();
    let z: Vec<f64> = levels.iter().map(|&t| quiver_numerics::normal_quantile(t)).collect();
    let mut q = Vec::new();
    for m in 0..j {
        let bias = 0.4 * (m as f64 - 1.0);
        let scale = 0.6 + 0.3 * m as f64;
        for &zk in &z {
            q.push((0..n).map(|i| mu[i] + bias + 0.3 * nd.sample(&mut r) + scale * sd[i] * zk).collect());
        }
    }
    Data { y, q, x, levels: levels.to_vec(), j }
}

impl Data {
    pub fn k(&self) -> usize {
        self.levels.len()
    }
    pub fn name(&self, j: usize, k: usize) -> String {
        format!("q_m{j}_{}", self.levels[k])
    }
    pub fn table(&self, role: &str, rows: std::ops::Range<usize>, with_y: bool) -> Table {
        let mut t = Table::new(role);
        if with_y {
            t = t.with_f64("y", self.y[rows.clone()].to_vec());
        }
        t = t.with_f64("x_a", self.x[rows.clone()].to_vec());
        for j in 0..self.j {
            for k in 0..self.k() {
                t = t.with_f64(&self.name(j, k), self.q[j * self.k() + k][rows.clone()].to_vec());
            }
        }
        t
    }
    /// Mean pinball loss of weights (structure as the plugin's: coarse w_j, medium w[k*J + j]).
    pub fn objective(&self, medium: bool, w: &[f64]) -> f64 {
        let (n, k) = (self.y.len(), self.k());
        let mut total = 0.0;
        for i in 0..n {
            for kk in 0..k {
                let qh: f64 =
                    (0..self.j).map(|j| w[if medium { kk * self.j + j } else { j }] * self.q[j * k + kk][i]).sum();
                let u = self.y[i] - qh;
                total += (self.levels[kk] * u).max((self.levels[kk] - 1.0) * u);
            }
        }
        total / (n * k) as f64
    }
}
