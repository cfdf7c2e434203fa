//! A discrete log as a neural critic sees it: states one-hot as continuous columns (`s_<k>`,
//! `s_next_<k>`), π per row (`pi_<a>`, `pi_next_<a>`), every (s, a) pair as queries — and the
//! return's exact variance in the empirical model, the distributional critics' oracle.

use crate::mdp::{solve, Policy};
use crate::Table;
use quiver_host::Values;

fn col<'t>(t: &'t Table, name: &str) -> &'t Values {
    t.column(name).unwrap_or_else(|| panic!("column {name}"))
}

/// An integer column of `t`.
pub fn ints(t: &Table, name: &str) -> Vec<i64> {
    match col(t, name) {
        Values::I64(v) => v.clone(),
        _ => panic!("column {name} is not integer"),
    }
}

/// A float column of `t`.
pub fn floats(t: &Table, name: &str) -> Vec<f64> {
    match col(t, name) {
        Values::F64(v) => v.clone(),
        _ => panic!("column {name} is not float"),
    }
}

/// A flag column of `t`.
pub fn flags(t: &Table, name: &str) -> Vec<bool> {
    match col(t, name) {
        Values::Bool(v) => v.clone(),
        _ => panic!("column {name} is not a flag"),
    }
}

/// The discrete `log` (a [`crate::mdp::FiniteMdp::sample`] table) with its `n_states` states
/// one-hot and, with a policy over `n_actions` actions, π per row.
pub fn one_hot(log: &Table, n_states: usize, pi: Option<(&Policy, usize)>) -> Table {
    let (s, s2) = (ints(log, "s"), ints(log, "s_next"));
    let mut t = Table::new("transitions")
        .with_i64("episode", ints(log, "episode"))
        .with_i64("t", ints(log, "t"))
        .with_i64("a", ints(log, "a"))
        .with_f64("r", floats(log, "r"))
        .with_bool("done", flags(log, "done"));
    for k in 0..n_states {
        t = t.with_f64(&format!("s_{k}"), s.iter().map(|&x| f64::from(x as usize == k)).collect());
        t = t.with_f64(&format!("s_next_{k}"), s2.iter().map(|&x| f64::from(x as usize == k)).collect());
    }
    if let Some((pi, an)) = pi {
        for a in 0..an {
            t = t.with_f64(&format!("pi_{a}"), s.iter().map(|&x| pi[x as usize * an + a]).collect());
            t = t.with_f64(&format!("pi_next_{a}"), s2.iter().map(|&x| pi[x as usize * an + a]).collect());
        }
    }
    t
}

/// A `queries` table of the (state, action) `pairs`, states one-hot over `n_states`.
pub fn pair_queries(pairs: &[(usize, usize)], n_states: usize) -> Table {
    let mut t = Table::new("queries").with_i64("a", pairs.iter().map(|&(_, a)| a as i64).collect());
    for j in 0..n_states {
        t = t.with_f64(&format!("s_{j}"), pairs.iter().map(|&(s, _)| f64::from(s == j)).collect());
    }
    t
}

/// A `queries` table of every state (one-hot over `n_states`) and no action: V(s).
pub fn state_queries(n_states: usize) -> Table {
    let mut t = Table::new("queries");
    for j in 0..n_states {
        t = t.with_f64(&format!("s_{j}"), (0..n_states).map(|s| f64::from(s == j)).collect());
    }
    t
}

/// Every (s, a) pair, in the order s·A + a.
pub fn all_pairs(n_states: usize, n_actions: usize) -> Vec<(usize, usize)> {
    (0..n_states * n_actions).map(|k| (k / n_actions, k % n_actions)).collect()
}

/// The return's variance per (s, a) (index s·A + a) in the empirical model of `log` under π, with
/// `q` its exact Q^π there (Sobel's variance Bellman equation on the data's rows): M = c + γ² P̂_π M,
/// c(s, a) = the mean over the pair's rows of (r + γ(1 − d)V(s′) − Q(s, a))² + γ²(1 − d) Var_π Q(s′, ·).
/// Every pair must have data.
pub fn return_variance(log: &Table, pi: &Policy, q: &[f64], n_actions: usize, gamma: f64) -> Vec<f64> {
    let an = n_actions;
    let (s, a, s2) = (ints(log, "s"), ints(log, "a"), ints(log, "s_next"));
    let (r, done) = (floats(log, "r"), flags(log, "done"));
    let d = q.len();
    let v = |x: usize| (0..an).map(|b| pi[x * an + b] * q[x * an + b]).sum::<f64>();
    let var_pi = |x: usize| (0..an).map(|b| pi[x * an + b] * q[x * an + b] * q[x * an + b]).sum::<f64>() - v(x) * v(x);
    let (mut count, mut c) = (vec![0.0; d], vec![0.0; d]);
    let mut a_mat = vec![0.0; d * d];
    for i in 0..r.len() {
        let k = s[i] as usize * an + a[i] as usize;
        let n = s2[i] as usize;
        let cont = if done[i] { 0.0 } else { gamma };
        count[k] += 1.0;
        c[k] += (r[i] + cont * v(n) - q[k]).powi(2) + cont * cont * var_pi(n);
        for b in 0..an {
            a_mat[k * d + n * an + b] -= cont * cont * pi[n * an + b];
        }
    }
    for k in 0..d {
        assert!(count[k] > 0.0, "pair {k} has no data");
        c[k] /= count[k];
        a_mat[k * d..(k + 1) * d].iter_mut().for_each(|x| *x /= count[k]);
        a_mat[k * d + k] += 1.0;
    }
    solve(a_mat, c)
}

/// The neural critics' finite test MDP: 5 states reaching the networks one-hot, 3 actions, a
/// uniform behaviour, a target policy of full support, 300 logged episodes of at most 30 steps
/// (about 8 000 rows, reward noise sd 0.5), γ = 0.9.
#[derive(Debug, Clone)]
pub struct OneHotCase {
    /// The MDP.
    pub mdp: crate::mdp::FiniteMdp,
    /// The target policy.
    pub pi: Policy,
    /// The log with discrete states.
    pub log: Table,
    /// The log as a neural critic reads it ([`one_hot`], π per row).
    pub data: Table,
}

/// The [`OneHotCase`].
pub fn one_hot_case() -> OneHotCase {
    let mdp = crate::mdp::FiniteMdp::random(7, 5, 3, 0.9);
    let pi = mdp.random_policy(8, |_, _| true);
    let log = mdp.sample(9, &vec![1.0 / 3.0; 15], None, 300, 30);
    OneHotCase { data: one_hot(&log, 5, Some((&pi, 3))), mdp, pi, log }
}

impl OneHotCase {
    /// Q^π of the log's empirical model at every pair (index s·3 + a), exactly.
    pub fn exact_q(&self) -> Vec<f64> {
        crate::mdp::Empirical::of(&self.log, 5, 3)
            .q(&self.pi, 0.9, &[0.0; 15])
            .into_iter()
            .map(|q| q.expect("every pair has data"))
            .collect()
    }
    /// The return's standard deviation at every pair in the log's empirical model, exactly.
    pub fn exact_sd(&self) -> Vec<f64> {
        return_variance(&self.log, &self.pi, &self.exact_q(), 3, 0.9).into_iter().map(f64::sqrt).collect()
    }
}
