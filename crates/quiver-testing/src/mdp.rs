//! Finite MDPs whose values are exact linear algebra, and offline data sampled from them: the
//! oracle of the critics' tests.
//!
//! Q^π solves (I − γ P_π) Q = R over the (s, a) pairs, with P_π[(s,a),(s′,a′)] =
//! (1 − term(s,a)) P(s′|s,a) π(a′|s′); V^π(s) = Σ_a π(a|s) Q^π(s, a). Solved here by Gaussian
//! elimination with partial pivoting (independent of the LAPACK the critics use).

use crate::Table;
use rand::Rng;
use rand_distr::{Distribution, Normal};

/// Solve the dense n × n system `a x = b` (row-major `a`) by Gaussian elimination with partial
/// pivoting.
pub fn solve(mut a: Vec<f64>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for col in 0..n {
        let p = (col..n).max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs())).unwrap();
        assert!(a[p * n + col].abs() > 1e-300, "singular system");
        for k in 0..n {
            a.swap(col * n + k, p * n + k);
        }
        b.swap(col, p);
        for i in col + 1..n {
            let f = a[i * n + col] / a[col * n + col];
            if f != 0.0 {
                for k in col..n {
                    a[i * n + k] -= f * a[col * n + k];
                }
                b[i] -= f * b[col];
            }
        }
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| a[i * n + k] * x[k]).sum();
        x[i] = (b[i] - s) / a[i * n + i];
    }
    x
}

/// A finite MDP with stochastic rewards and early termination.
#[derive(Debug, Clone)]
pub struct FiniteMdp {
    /// Number of states.
    pub n_states: usize,
    /// Number of actions.
    pub n_actions: usize,
    /// P(s′|s, a) at `[(s·A + a)·S + s′]`.
    pub p: Vec<f64>,
    /// Mean reward R(s, a) at `[s·A + a]`.
    pub r: Vec<f64>,
    /// Standard deviation of the reward noise.
    pub noise: f64,
    /// Probability that the episode ends after (s, a), at `[s·A + a]`.
    pub term: Vec<f64>,
    /// Discount.
    pub gamma: f64,
}

/// A policy as probabilities π(a|s) at `[s·A + a]`.
pub type Policy = Vec<f64>;

impl FiniteMdp {
    /// A random MDP: each (s, a) moves to 3 random states, rewards in [−1, 1], termination 0.02.
    pub fn random(seed: u64, n_states: usize, n_actions: usize, gamma: f64) -> FiniteMdp {
        let mut rng = crate::rng(seed);
        let mut p = vec![0.0; n_states * n_actions * n_states];
        for k in 0..n_states * n_actions {
            for _ in 0..3 {
                p[k * n_states + rng.random_range(0..n_states)] += rng.random::<f64>() + 0.2;
            }
            let total: f64 = p[k * n_states..(k + 1) * n_states].iter().sum();
            p[k * n_states..(k + 1) * n_states].iter_mut().for_each(|x| *x /= total);
        }
        let r = (0..n_states * n_actions).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect();
        FiniteMdp { n_states, n_actions, p, r, noise: 0.5, term: vec![0.02; n_states * n_actions], gamma }
    }

    /// A random policy supported on the actions where `support(s, a)` holds (each state keeps at
    /// least its first supported action).
    pub fn random_policy(&self, seed: u64, support: impl Fn(usize, usize) -> bool) -> Policy {
        let mut rng = crate::rng(seed);
        let a_n = self.n_actions;
        let mut pi = vec![0.0; self.n_states * a_n];
        for s in 0..self.n_states {
            for a in 0..a_n {
                if support(s, a) {
                    pi[s * a_n + a] = 0.2 + rng.random::<f64>();
                }
            }
            let total: f64 = pi[s * a_n..(s + 1) * a_n].iter().sum();
            assert!(total > 0.0, "state {s} has no supported action");
            pi[s * a_n..(s + 1) * a_n].iter_mut().for_each(|x| *x /= total);
        }
        pi
    }

    /// Q^π, exactly.
    pub fn q(&self, pi: &Policy) -> Vec<f64> {
        let (sn, an) = (self.n_states, self.n_actions);
        let d = sn * an;
        let mut a = vec![0.0; d * d];
        for k in 0..d {
            a[k * d + k] += 1.0;
            for s2 in 0..sn {
                let p = self.gamma * (1.0 - self.term[k]) * self.p[k * sn + s2];
                for a2 in 0..an {
                    a[k * d + s2 * an + a2] -= p * pi[s2 * an + a2];
                }
            }
        }
        solve(a, self.r.clone())
    }

    /// E[Σ_{t<H} γ^t r_t] under π from a uniform start, by backward recursion over the horizon H
    /// (an episode that terminates earns nothing more): what the OPE estimators of logs truncated
    /// at H are unbiased for.
    pub fn horizon_value(&self, pi: &Policy, horizon: usize) -> f64 {
        let (sn, an) = (self.n_states, self.n_actions);
        let mut v = vec![0.0; sn];
        for _ in 0..horizon {
            v = (0..sn)
                .map(|s| {
                    (0..an)
                        .map(|a| {
                            let k = s * an + a;
                            let next: f64 = (0..sn).map(|s2| self.p[k * sn + s2] * v[s2]).sum();
                            pi[k] * (self.r[k] + self.gamma * (1.0 - self.term[k]) * next)
                        })
                        .sum()
                })
                .collect();
        }
        v.iter().sum::<f64>() / sn as f64
    }

    /// V(s) = Σ_a π(a|s) Q(s, a).
    pub fn v(&self, pi: &Policy, q: &[f64]) -> Vec<f64> {
        let an = self.n_actions;
        (0..self.n_states).map(|s| (0..an).map(|a| pi[s * an + a] * q[s * an + a]).sum()).collect()
    }

    /// `episodes` episodes of at most `horizon` steps from uniform start states, actions from
    /// `behaviour`. An episode that reaches the horizon is truncated with `done = 0` (a time limit,
    /// not an end: the critic still bootstraps from its last s′). Columns: `episode`, `t`, `s`,
    /// `a`, `r`, `s_next`, `done`, `a_next` (the behaviour's action at s′), `mu_prob` and, with a
    /// target, `pi_prob`.
    pub fn sample(
        &self,
        seed: u64,
        behaviour: &Policy,
        target: Option<&Policy>,
        episodes: usize,
        horizon: usize,
    ) -> Table {
        let mut rng = crate::rng(seed);
        let noise = Normal::new(0.0, self.noise).expect("sd >= 0");
        let (sn, an) = (self.n_states, self.n_actions);
        let draw = |rng: &mut rand_chacha::ChaCha8Rng, probs: &[f64]| -> usize {
            let u: f64 = rng.random();
            let mut acc = 0.0;
            for (i, p) in probs.iter().enumerate() {
                acc += p;
                if u < acc {
                    return i;
                }
            }
            probs.iter().rposition(|&p| p > 0.0).expect("a distribution")
        };
        let (mut ep, mut t, mut s_col, mut a_col, mut r_col, mut sn_col, mut d_col, mut an_col, mut mu, mut pip) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        for e in 0..episodes {
            let mut s = rng.random_range(0..sn);
            let mut a = draw(&mut rng, &behaviour[s * an..(s + 1) * an]);
            for step in 0..horizon {
                let k = s * an + a;
                let s2 = draw(&mut rng, &self.p[k * sn..(k + 1) * sn]);
                let done = rng.random::<f64>() < self.term[k];
                let a2 = draw(&mut rng, &behaviour[s2 * an..(s2 + 1) * an]);
                ep.push(e as i64);
                t.push(step as i64);
                s_col.push(s as i64);
                a_col.push(a as i64);
                r_col.push(self.r[k] + noise.sample(&mut rng));
                sn_col.push(s2 as i64);
                d_col.push(done);
                an_col.push(a2 as i64);
                mu.push(behaviour[k]);
                if let Some(pi) = target {
                    pip.push(pi[k]);
                }
                if done {
                    break;
                }
                (s, a) = (s2, a2);
            }
        }
        let mut table = Table::new("transitions")
            .with_i64("episode", ep)
            .with_i64("t", t)
            .with_i64("s", s_col)
            .with_i64("a", a_col)
            .with_f64("r", r_col)
            .with_i64("s_next", sn_col)
            .with_bool("done", d_col)
            .with_i64("a_next", an_col)
            .with_f64("mu_prob", mu);
        if target.is_some() {
            table = table.with_f64("pi_prob", pip);
        }
        table
    }

    /// A `policy` table for π (rows with π(a|s) > 0).
    pub fn policy_table(&self, pi: &Policy) -> Table {
        let an = self.n_actions;
        let (mut s, mut a, mut p) = (vec![], vec![], vec![]);
        for st in 0..self.n_states {
            for act in 0..an {
                if pi[st * an + act] > 0.0 {
                    s.push(st as i64);
                    a.push(act as i64);
                    p.push(pi[st * an + act]);
                }
            }
        }
        Table::new("policy").with_i64("s", s).with_i64("a", a).with_f64("prob", p)
    }
}

/// The empirical (certainty-equivalence) model of a discrete transitions table, computed
/// independently of the critics: counts n(s, a), mean rewards, next-state frequencies
/// (continuing rows only), as dense arrays over all S·A pairs.
#[derive(Debug, Clone)]
pub struct Empirical {
    /// Number of states.
    pub n_states: usize,
    /// Number of actions.
    pub n_actions: usize,
    /// n(s, a).
    pub count: Vec<f64>,
    /// R̂(s, a) (0 without data).
    pub r: Vec<f64>,
    /// P̂(s′|s, a)·(continuing fraction), at `[(s·A + a)·S + s′]`.
    pub p: Vec<f64>,
}

fn i64_col<'t>(t: &'t Table, name: &str) -> &'t [i64] {
    match t.column(name) {
        Some(quiver_host::Values::I64(v)) => v,
        _ => panic!("column {name}"),
    }
}

impl Empirical {
    /// Count `t` (a table made by [`FiniteMdp::sample`]).
    pub fn of(t: &Table, n_states: usize, n_actions: usize) -> Empirical {
        let (s, a, s2) = (i64_col(t, "s"), i64_col(t, "a"), i64_col(t, "s_next"));
        let r = match t.column("r") {
            Some(quiver_host::Values::F64(v)) => v,
            _ => panic!("column r"),
        };
        let done = match t.column("done") {
            Some(quiver_host::Values::Bool(v)) => v,
            _ => panic!("column done"),
        };
        let d = n_states * n_actions;
        let (mut count, mut rs, mut p) = (vec![0.0; d], vec![0.0; d], vec![0.0; d * n_states]);
        for i in 0..s.len() {
            let k = s[i] as usize * n_actions + a[i] as usize;
            count[k] += 1.0;
            rs[k] += r[i];
            if !done[i] {
                p[k * n_states + s2[i] as usize] += 1.0;
            }
        }
        for k in 0..d {
            if count[k] > 0.0 {
                rs[k] /= count[k];
                p[k * n_states..(k + 1) * n_states].iter_mut().for_each(|x| *x /= count[k]);
            }
        }
        Empirical { n_states, n_actions, count, r: rs, p }
    }

    /// β̂(a|s) = n(s, a)/n(s) (0 at states without data).
    pub fn behaviour(&self) -> Policy {
        let an = self.n_actions;
        let mut b = vec![0.0; self.count.len()];
        for s in 0..self.n_states {
            let n: f64 = self.count[s * an..(s + 1) * an].iter().sum();
            if n > 0.0 {
                (0..an).for_each(|a| b[s * an + a] = self.count[s * an + a] / n);
            }
        }
        b
    }

    /// Q of the empirical model under π, over the pairs with data (others: `None`): the system
    /// (I − γP̂^π)Q = R̂ restricted to them (π must keep to pairs with data where it bootstraps).
    pub fn q(&self, pi: &Policy, gamma: f64, extra: &[f64]) -> Vec<Option<f64>> {
        let (sn, an) = (self.n_states, self.n_actions);
        let keep: Vec<usize> = (0..sn * an).filter(|&k| self.count[k] > 0.0).collect();
        let pos = |k: usize| keep.iter().position(|&x| x == k);
        let d = keep.len();
        let mut a = vec![0.0; d * d];
        let mut b = vec![0.0; d];
        for (i, &k) in keep.iter().enumerate() {
            a[i * d + i] += 1.0;
            b[i] = self.r[k] + extra[k];
            for s2 in 0..sn {
                let p = self.p[k * sn + s2];
                if p == 0.0 {
                    continue;
                }
                for a2 in 0..an {
                    let w = pi[s2 * an + a2];
                    if w > 0.0 {
                        let j = pos(s2 * an + a2).expect("pi keeps to pairs with data");
                        a[i * d + j] -= gamma * p * w;
                    }
                }
            }
        }
        let x = solve(a, b);
        let mut out = vec![None; sn * an];
        for (i, &k) in keep.iter().enumerate() {
            out[k] = Some(x[i]);
        }
        out
    }
}
