//! Multi-agent logs on the tabular model: joint actions of n agents as one id, a factorised
//! target policy π(a|s) = Π_i π_i(a_i|s), and the counterfactual conservative evaluation of π
//! (CFCQL: Shao, Qu, Chen, Zhang & Ji, "Counterfactual conservative Q learning for offline
//! multi-agent reinforcement learning", NeurIPS 2023), in the evaluation form `critic-cql` gives
//! CQL (its eq. 2 with π as the push-down distribution), on the empirical model of the data:
//!
//!   Q = R̂ − α Σ_i λ_i(s) (d_i(a|s)/β̂(a|s) − 1) + γ P̂ Σ_a′ π(a′|s′) Q(s′, a′),
//!   d_i(a|s) = π_i(a_i|s) β̂_{−i}(a_{−i}|s),
//!
//! where d_i is the counterfactual distribution — agent i's action from π_i, the others' as the
//! data took them (β̂_{−i}, the empirical law of their joint action at s) — and the weights λ_i(s)
//! sum to 1: uniform, or (the paper's choice) a softmax over the agents of τ·KL(π_i(·|s) ‖ β̂_i(·|s)),
//! which puts the weight on the agent that strays furthest from the data. CQL pushes down on the
//! joint action π takes, whose ratio π/β̂ grows exponentially with n; CFCQL pushes on one agent's
//! deviation at a time.
//!
//! Per agent and state, the π-average of d_i/β̂ is Σ_{a_{−i}} π_{−i} Σ_{a_i} π_i²/β̂_i(a_i|a_{−i}) ≥ 1
//! (Cauchy–Schwarz), so the penalty's π-average is ≥ 0 and V^π_CF ≤ V^π at every state, as for CQL;
//! with one agent it is CQL's penalty. Where the behaviour is a product of the agents' own
//! policies, the penalty's π-average is Σ_i λ_i χ²(π_i ‖ β̂_i) ≤ max_i χ²_i ≤ Π_i(1 + χ²_i) − 1, the
//! joint χ² CQL's penalty averages to.

use crate::policy::Policy;
use crate::tabular::EmpiricalModel;
use crate::RlError;
use ndarray::Array1;
use std::collections::HashMap;

/// The joint actions of n agents, agent i taking actions 0..sizes[i]: a joint action's id is
/// Σ_i a_i Π_{j<i} sizes[j] (agent 0 varies fastest).
#[derive(Debug, Clone, PartialEq)]
pub struct JointActions {
    /// Actions per agent.
    pub sizes: Vec<u32>,
}

impl JointActions {
    /// Most joint actions (the tabular model holds a value per observed (s, joint action)).
    pub const MAX_JOINT: u64 = 1 << 24;

    /// Agents with `sizes[i]` actions each; an error past [`JointActions::MAX_JOINT`] joint actions.
    pub fn new(sizes: Vec<u32>) -> Result<JointActions, RlError> {
        let total = sizes.iter().try_fold(1u64, |acc, &s| acc.checked_mul(u64::from(s.max(1))));
        match total {
            Some(t) if t <= Self::MAX_JOINT => Ok(JointActions { sizes }),
            _ => Err(RlError::input(format!(
                "{} agents with {:?} actions make more than {} joint actions: the tabular model cannot hold them",
                sizes.len(),
                sizes,
                Self::MAX_JOINT
            ))),
        }
    }
    /// Agents.
    pub fn agents(&self) -> usize {
        self.sizes.len()
    }
    /// The id of joint action `a` (one action per agent).
    pub fn encode(&self, a: &[u32]) -> u32 {
        let (mut id, mut radix) = (0u64, 1u64);
        for (&ai, &size) in a.iter().zip(&self.sizes) {
            id += u64::from(ai) * radix;
            radix *= u64::from(size.max(1));
        }
        id as u32
    }
    /// The agents' actions of joint action `id`.
    pub fn decode(&self, id: u32) -> Vec<u32> {
        let mut rest = id;
        self.sizes
            .iter()
            .map(|&size| {
                let size = size.max(1);
                let a = rest % size;
                rest /= size;
                a
            })
            .collect()
    }
    /// `id` with agent `i`'s action replaced by `ai`.
    pub fn with(&self, id: u32, i: usize, ai: u32) -> u32 {
        let mut a = self.decode(id);
        a[i] = ai;
        self.encode(&a)
    }
}

/// π(a|s) = Π_i π_i(a_i|s) as one policy over joint actions, at every state where each agent's
/// policy has a row.
pub fn joint_policy(joint: &JointActions, per_agent: &[Policy]) -> Result<Policy, RlError> {
    let states = per_agent.iter().map(|p| p.n_states()).max().unwrap_or(0);
    let (mut s_col, mut a_col, mut p_col) = (Vec::new(), Vec::new(), Vec::new());
    for s in 0..states as u32 {
        let Some(parts) = per_agent.iter().map(|p| p.at(s)).collect::<Option<Vec<_>>>() else { continue };
        // every combination of the agents' actions with positive probability
        let mut combos: Vec<(Vec<u32>, f64)> = vec![(Vec::new(), 1.0)];
        for (acts, probs) in parts {
            combos = combos
                .into_iter()
                .flat_map(|(prefix, p)| {
                    acts.iter().zip(probs).map(move |(&a, &q)| {
                        let mut next = prefix.clone();
                        next.push(a);
                        (next, p * q)
                    })
                })
                .collect();
        }
        for (a, p) in combos {
            s_col.push(i64::from(s));
            a_col.push(i64::from(joint.encode(&a)));
            p_col.push(p);
        }
    }
    Policy::from_rows(&s_col, &a_col, &p_col)
}

/// How the agents' penalties are weighted at each state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AgentWeights {
    /// λ_i = 1/n.
    Uniform,
    /// λ_i ∝ exp(τ KL(π_i(·|s) ‖ β̂_i(·|s))), τ the temperature (the paper's weighting).
    Kl(f64),
}

/// The counterfactual evaluation's result.
#[derive(Debug, Clone)]
pub struct CfcqlFit {
    /// Q_CF per observed pair (the model's order).
    pub q: Array1<f64>,
    /// The unpenalised Q^π of the same model.
    pub plain: Array1<f64>,
    /// π over joint actions ([`joint_policy`]).
    pub pi: Policy,
    /// Per state with data: (s, λ per agent, CFCQL's penalty averaged under π, CQL's joint one),
    /// both per unit of α.
    pub states: Vec<(u32, Vec<f64>, f64, f64)>,
}

fn unsupported(joint: &JointActions, s: u32, id: u32, why: &str) -> RlError {
    RlError::input(format!(
        "at state {s} {why} joint action {:?}, which the data never took there: the tabular model has no value for \
         it (collect data there, or give a target whose agents stay where the data is)",
        joint.decode(id)
    ))
}

/// CFCQL's conservative Q of π (see the module documentation), and the unpenalised Q^π beside it.
pub fn cfcql(
    model: &EmpiricalModel,
    joint: &JointActions,
    per_agent: &[Policy],
    gamma: f64,
    alpha: f64,
    weights: AgentWeights,
) -> Result<CfcqlFit, RlError> {
    let n_agents = joint.agents();
    let pi = joint_policy(joint, per_agent)?;
    // Σ_i λ_i d_i/β̂ − 1 per observed pair: the penalty is −α times it
    let mut excess = vec![0.0; model.len()];
    let mut states = Vec::new();
    let mut state_ids: Vec<u32> = model.at_state.keys().copied().collect();
    state_ids.sort_unstable();
    for s in state_ids {
        let pairs = &model.at_state[&s];
        let n_s: f64 = pairs.iter().map(|&k| model.count[k]).sum();
        let (acts, probs) = pi.at(s).ok_or_else(|| crate::tabular::missing_policy(s))?;
        let at = |id: u32| model.pairs.get(s, id);
        for &id in acts {
            if at(id).is_none() {
                return Err(unsupported(joint, s, id, "the target policy takes"));
            }
        }
        // β̂_{−i}(a_{−i}|s): the others' joint action, agent i's set to 0 as the key
        let others: Vec<HashMap<u32, f64>> = (0..n_agents)
            .map(|i| {
                let mut m = HashMap::new();
                for &k in pairs {
                    *m.entry(joint.with(model.pairs.pairs[k].1, i, 0)).or_insert(0.0) += model.count[k] / n_s;
                }
                m
            })
            .collect();
        // λ(s)
        let lambda: Vec<f64> = match weights {
            AgentWeights::Uniform => vec![1.0 / n_agents as f64; n_agents],
            AgentWeights::Kl(tau) => {
                let kl: Vec<f64> = (0..n_agents)
                    .map(|i| {
                        let (ai, pi_i) = per_agent[i].at(s).expect("the joint policy has state s");
                        ai.iter()
                            .zip(pi_i)
                            .filter(|(_, &p)| p > 0.0)
                            .map(|(&a, &p)| {
                                let beta: f64 = pairs
                                    .iter()
                                    .filter(|&&k| joint.decode(model.pairs.pairs[k].1)[i] == a)
                                    .map(|&k| model.count[k] / n_s)
                                    .sum();
                                p * (p / beta).ln()
                            })
                            .sum()
                    })
                    .collect();
                let top = kl.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(tau * b));
                let e: Vec<f64> = kl.iter().map(|&x| (tau * x - top).exp()).collect();
                let z: f64 = e.iter().sum();
                e.into_iter().map(|x| x / z).collect()
            }
        };
        for &k in pairs {
            let id = model.pairs.pairs[k].1;
            let a = joint.decode(id);
            let beta = model.count[k] / n_s;
            let mut ratio = 0.0;
            for i in 0..n_agents {
                let (ai, pi_i) = per_agent[i].at(s).expect("the joint policy has state s");
                // the counterfactual actions must have data too: the penalty reads Q there
                for (&alt, &p) in ai.iter().zip(pi_i) {
                    if p > 0.0 && at(joint.with(id, i, alt)).is_none() {
                        return Err(unsupported(
                            joint,
                            s,
                            joint.with(id, i, alt),
                            &format!("agent {i}'s counterfactual deviation from the logged {a:?} reaches"),
                        ));
                    }
                }
                let d = per_agent[i].prob(s, a[i]) * others[i][&joint.with(id, i, 0)];
                ratio += lambda[i] * d / beta;
            }
            excess[k] = ratio - 1.0;
        }
        // the penalties averaged under π: CFCQL's, and CQL's χ²(π ‖ β̂) for comparison
        let (mut cf, mut joint_chi2) = (0.0, -1.0);
        for (&id, &p) in acts.iter().zip(probs) {
            let k = at(id).expect("checked above");
            cf += p * excess[k];
            joint_chi2 += p * p / (model.count[k] / n_s);
        }
        states.push((s, lambda, cf, joint_chi2));
    }
    let penalty: Vec<f64> = excess.iter().map(|e| -alpha * e).collect();
    let plain = model.policy_q(&pi, gamma, &vec![0.0; model.len()])?;
    let q = model.policy_q(&pi, gamma, &penalty)?;
    Ok(CfcqlFit { q, plain, pi, states })
}
