//! The empirical (certainty-equivalence) model of discrete data, over the (s, a) pairs with
//! data: n(s, a), R̂(s, a) = mean reward, P̂(s′|s, a) = the fraction of the pair's rows that go
//! on to s′ (rows with `done` go nowhere), β̂(a|s) = n(s, a)/n(s). The expectile (IQL) and
//! conservative (CQL) critics are fixed points on it.

use crate::data::{States, Transitions};
use crate::features::PairIndex;
use crate::linear::MAX_FEATURES;
use crate::policy::Policy;
use crate::RlError;
use ndarray::{Array1, Array2};
use ndarray_linalg::Solve;
use quiver_numerics::{checkpoint, Progress};
use std::collections::HashMap;

/// The empirical model of discrete transitions.
#[derive(Debug, Clone)]
pub struct EmpiricalModel {
    /// The pairs with data.
    pub pairs: PairIndex,
    /// n(s, a).
    pub count: Vec<f64>,
    /// R̂(s, a).
    pub reward: Vec<f64>,
    /// P̂(·|s, a): (s′, probability) for the continuing rows.
    pub next: Vec<Vec<(u32, f64)>>,
    /// The pairs at each state with data.
    pub at_state: HashMap<u32, Vec<usize>>,
}

impl EmpiricalModel {
    /// Count the data.
    pub fn new(data: &Transitions<'_>) -> Result<EmpiricalModel, RlError> {
        let States::Discrete { s, s_next, .. } = &data.states else {
            return Err(RlError::Parameter("a tabular critic needs discrete states: columns 's' and 's_next'".into()));
        };
        let mut pairs = PairIndex::default();
        let mut count = Vec::new();
        let mut reward = Vec::new();
        let mut next: Vec<HashMap<u32, f64>> = Vec::new();
        for i in 0..data.n {
            let k = pairs.insert(s[i], data.a[i]);
            if k == count.len() {
                count.push(0.0);
                reward.push(0.0);
                next.push(HashMap::new());
            }
            if pairs.len() > MAX_FEATURES {
                return Err(RlError::Unsupported(format!(
                    "more than {MAX_FEATURES} (state, action) pairs with data: too many for a tabular critic"
                )));
            }
            count[k] += 1.0;
            reward[k] += data.r[i];
            if !data.done[i] {
                *next[k].entry(s_next[i]).or_insert(0.0) += 1.0;
            }
        }
        pairs.with_data = pairs.len();
        let mut at_state: HashMap<u32, Vec<usize>> = HashMap::new();
        for (k, &(st, _)) in pairs.pairs.iter().enumerate() {
            at_state.entry(st).or_default().push(k);
        }
        let next = next
            .into_iter()
            .zip(&count)
            .map(|(m, &n)| {
                let mut v: Vec<(u32, f64)> = m.into_iter().map(|(s2, c)| (s2, c / n)).collect();
                v.sort_by_key(|x| x.0);
                v
            })
            .collect();
        reward.iter_mut().zip(&count).for_each(|(r, n)| *r /= n);
        Ok(EmpiricalModel { pairs, count, reward, next, at_state })
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.count.len()
    }

    /// Whether there is no pair.
    pub fn is_empty(&self) -> bool {
        self.count.is_empty()
    }

    /// β̂(a|s) of pair k.
    pub fn behaviour(&self, k: usize) -> f64 {
        let s = self.pairs.pairs[k].0;
        self.count[k] / self.at_state[&s].iter().map(|&j| self.count[j]).sum::<f64>()
    }

    /// The states reached as s′ that have no data of their own (their value is taken as 0).
    pub fn dead_ends(&self) -> Vec<u32> {
        let mut v: Vec<u32> =
            self.next.iter().flatten().map(|x| x.0).filter(|s| !self.at_state.contains_key(s)).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Q^π of the model: (I − γP̂^π)Q = R̂ + extra, over the pairs with data, where π must put
    /// its mass at every bootstrapped state on pairs with data.
    pub fn policy_q(&self, pi: &Policy, gamma: f64, extra: &[f64]) -> Result<Array1<f64>, RlError> {
        let d = self.len();
        let mut a = Array2::<f64>::eye(d);
        for k in 0..d {
            for &(s2, p) in &self.next[k] {
                let (acts, probs) = pi.at(s2).ok_or_else(|| missing_policy(s2))?;
                for (&a2, &q) in acts.iter().zip(probs) {
                    if q == 0.0 {
                        continue;
                    }
                    let j = self.pairs.get(s2, a2).ok_or_else(|| unsupported(s2, a2))?;
                    a[[k, j]] -= gamma * p * q;
                }
            }
        }
        let rhs = Array1::from_iter(self.reward.iter().zip(extra).map(|(r, e)| r + e));
        a.solve_into(rhs).map_err(|e| RlError::Internal(format!("model solve: {e}")))
    }
}

/// The error of a state the data reaches where the `policy` table has no row.
pub(crate) fn missing_policy(s: u32) -> RlError {
    RlError::input(format!("table 'policy' has no row for state {s}, which the data reaches"))
}

fn unsupported(s: u32, a: u32) -> RlError {
    RlError::input(format!(
        "the target policy takes action {a} at state {s}, which the data never took there: the tabular model has no \
         value for it (collect data there, or use critic-lstd with a ridge)"
    ))
}

/// The τ-expectile of the weighted values: the v with
/// τ Σ w_i (q_i − v)₊ = (1 − τ) Σ w_i (v − q_i)₊, exactly (sort, then solve the linear piece).
/// τ = 0.5 gives the weighted mean; τ → 1 the maximum.
pub fn expectile(values: &[f64], weights: &[f64], tau: f64) -> f64 {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let (q, w): (Vec<f64>, Vec<f64>) = order.iter().map(|&i| (values[i], weights[i])).unzip();
    let (total_w, total_wq) = (w.iter().sum::<f64>(), w.iter().zip(&q).map(|(a, b)| a * b).sum::<f64>());
    // with the first j values below v: g(v) = τ(Wq_hi − v W_hi) − (1 − τ)(v W_lo − Wq_lo); the root
    // of the piece whose interval holds it (a hair of rounding allowed at the breakpoints)
    let slack = 1e-12 * q.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let (mut w_lo, mut wq_lo) = (0.0, 0.0);
    for j in 0..=q.len() {
        let (w_hi, wq_hi) = (total_w - w_lo, total_wq - wq_lo);
        let v = (tau * wq_hi + (1.0 - tau) * wq_lo) / (tau * w_hi + (1.0 - tau) * w_lo);
        let lo = if j == 0 { f64::NEG_INFINITY } else { q[j - 1] };
        let hi = if j == q.len() { f64::INFINITY } else { q[j] };
        if v >= lo - slack && v <= hi + slack {
            return v.clamp(q[0], q[q.len() - 1]);
        }
        if j < q.len() {
            w_lo += w[j];
            wq_lo += w[j] * q[j];
        }
    }
    // rounding left no piece holding its root: bisect g, continuous and decreasing, on [min, max]
    let g = |v: f64| -> f64 {
        q.iter().zip(&w).map(|(&qi, &wi)| wi * if qi > v { tau * (qi - v) } else { -(1.0 - tau) * (v - qi) }).sum()
    };
    quiver_numerics::bisect_decreasing(q[0], q[q.len() - 1], g)
}

/// The fixed point of IQL's two losses on the empirical model: Q(s, a) = R̂ + γ Σ P̂(s′)V(s′),
/// V(s) = the τ-expectile of Q(s, ·) under β̂(·|s); a γ-contraction in the sup norm, iterated
/// from V = 0 until ‖ΔV‖_∞ ≤ tol·‖V‖_∞ (relative, whatever the rewards' units).
pub struct ExpectileFit {
    /// Q per pair.
    pub q: Vec<f64>,
    /// V per state with data (sorted by state).
    pub v: Vec<(u32, f64)>,
    /// Iterations run.
    pub iterations: usize,
    /// Final relative change.
    pub change: f64,
    /// Whether the tolerance was met.
    pub converged: bool,
}

/// Q(s, a) = R̂(s, a) + γ Σ_s′ P̂(s′|s, a) V(s′), with V = 0 at states without data.
fn backup(model: &EmpiricalModel, gamma: f64, slot: &HashMap<u32, usize>, v: &[f64], q: &mut [f64]) {
    for ((qk, r), next) in q.iter_mut().zip(&model.reward).zip(&model.next) {
        *qk = r + gamma * next.iter().map(|&(s2, p)| slot.get(&s2).map_or(0.0, |&j| p * v[j])).sum::<f64>();
    }
}

/// Solve the tabular expectile critic (see [`ExpectileFit`]).
pub fn expectile_fit(
    model: &EmpiricalModel,
    gamma: f64,
    tau: f64,
    tol: f64,
    max_iter: usize,
    progress: &dyn Progress,
) -> Result<ExpectileFit, RlError> {
    let mut states: Vec<u32> = model.at_state.keys().copied().collect();
    states.sort_unstable();
    let slot: HashMap<u32, usize> = states.iter().enumerate().map(|(i, &s)| (s, i)).collect();
    let mut v = vec![0.0; states.len()];
    let mut q = vec![0.0; model.len()];
    let (mut change, mut iterations) = (f64::INFINITY, 0);
    while iterations < max_iter {
        backup(model, gamma, &slot, &v, &mut q);
        let mut delta: f64 = 0.0;
        let mut scale: f64 = 0.0;
        for (j, s) in states.iter().enumerate() {
            let ks = &model.at_state[s];
            let vals: Vec<f64> = ks.iter().map(|&k| q[k]).collect();
            let ws: Vec<f64> = ks.iter().map(|&k| model.count[k]).collect();
            let new = expectile(&vals, &ws, tau);
            delta = delta.max((new - v[j]).abs());
            scale = scale.max(new.abs());
            v[j] = new;
        }
        iterations += 1;
        // relative to the values (a floor of 1 made tiny reward scales look converged at once)
        change = quiver_numerics::convergence::relative(delta, scale);
        checkpoint(progress, iterations as u64, max_iter as u64, "expectile iterations")?;
        if change <= tol {
            break;
        }
    }
    // Q from the final V, so that Q and V are consistent
    backup(model, gamma, &slot, &v, &mut q);
    Ok(ExpectileFit { q, v: states.into_iter().zip(v).collect(), iterations, change, converged: change <= tol })
}

/// CQL(H)'s conservative evaluation of π on the empirical model:
/// Q = R̂ − α(π(a|s)/β̂(a|s) − 1) + γP̂^πQ, and the unpenalised Q^π (α = 0) beside it.
pub fn cql(model: &EmpiricalModel, pi: &Policy, gamma: f64, alpha: f64) -> Result<(Array1<f64>, Array1<f64>), RlError> {
    let mut penalty = vec![0.0; model.len()];
    for (k, &(s, a)) in model.pairs.pairs.iter().enumerate() {
        let (acts, probs) = pi.at(s).ok_or_else(|| missing_policy(s))?;
        for (&a2, &p) in acts.iter().zip(probs) {
            if p > 0.0 && model.pairs.get(s, a2).is_none() {
                return Err(unsupported(s, a2));
            }
        }
        penalty[k] = -alpha * (pi.prob(s, a) / model.behaviour(k) - 1.0);
    }
    let plain = model.policy_q(pi, gamma, &vec![0.0; model.len()])?;
    let conservative = model.policy_q(pi, gamma, &penalty)?;
    Ok((conservative, plain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectile_limits_and_definition() {
        let q = [3.0, -1.0, 2.0, 10.0];
        let w = [1.0, 2.0, 1.0, 0.5];
        let mean = q.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() / w.iter().sum::<f64>();
        assert!((expectile(&q, &w, 0.5) - mean).abs() < 1e-12);
        for tau in [0.1, 0.3, 0.7, 0.9, 0.99] {
            let v = expectile(&q, &w, tau);
            let g: f64 = q
                .iter()
                .zip(&w)
                .map(|(&qi, &wi)| wi * if qi > v { tau * (qi - v) } else { -(1.0 - tau) * (v - qi) })
                .sum();
            assert!(g.abs() < 1e-9, "tau {tau}: g = {g}");
        }
        assert!(expectile(&q, &w, 0.999_999) > 9.99);
        assert_eq!(expectile(&[4.0], &[2.0], 0.9), 4.0);
    }
}
