//! Target policies: a `policy` table (`s`, `a`, `prob`) for discrete states, or per-row action
//! probability columns (`pi_<a>` at s, `pi_next_<a>` at s′) for continuous ones.

use crate::data::{check_each, States, Transitions, MAX_ACTIONS, MAX_STATES};
use crate::RlError;

/// Tolerance on Σ_a π(a|s) = 1 (decimal files round: 1/3 written as 0.333333).
pub const SUM_TOLERANCE: f64 = 1e-6;

/// A discrete policy π(a|s), stored by state (compressed rows), each state's probabilities
/// normalised to sum to 1.
#[derive(Debug, Clone)]
pub struct Policy {
    offsets: Vec<u32>,
    actions: Vec<u32>,
    probs: Vec<f64>,
}

impl Policy {
    /// Check the rows (s, a, π(a|s)) of a `policy` table: ids in range, probabilities in [0, 1],
    /// no (s, a) twice, each state's rows summing to 1 (within [`SUM_TOLERANCE`]); rows with
    /// probability 0 are dropped (π never takes those actions). Errors name the column and row.
    pub fn from_rows(s: &[i64], a: &[i64], p: &[f64]) -> Result<Policy, RlError> {
        if s.is_empty() {
            return Err(RlError::input("table 'policy' is empty (no data rows)"));
        }
        if a.len() != s.len() || p.len() != s.len() {
            return Err(RlError::input("table 'policy': its columns differ in length"));
        }
        check_each(
            "policy",
            "s",
            s,
            |x| x >= 0 && (x as u64) < MAX_STATES as u64,
            &format!("must be a state id in 0..{MAX_STATES}"),
        )?;
        check_each(
            "policy",
            "a",
            a,
            |x| x >= 0 && (x as u64) < MAX_ACTIONS as u64,
            &format!("must be an action id in 0..{MAX_ACTIONS}"),
        )?;
        check_each("policy", "prob", p, |x| (0.0..=1.0).contains(&x), "is not a probability in [0, 1]")?;
        let n_states = s.iter().max().map_or(0, |&m| m as usize + 1);
        let mut order: Vec<usize> = (0..s.len()).collect();
        order.sort_by_key(|&i| (s[i], a[i]));
        let mut offsets = vec![0u32; n_states + 1];
        for &si in s {
            offsets[si as usize + 1] += 1;
        }
        for k in 0..n_states {
            offsets[k + 1] += offsets[k];
        }
        let actions: Vec<u32> = order.iter().map(|&i| a[i] as u32).collect();
        let mut probs: Vec<f64> = order.iter().map(|&i| p[i]).collect();
        for w in order.windows(2) {
            if s[w[0]] == s[w[1]] && a[w[0]] == a[w[1]] {
                return Err(RlError::row(
                    "policy",
                    "a",
                    w[1].max(w[0]),
                    format_args!("(s, a) = ({}, {}) appears twice", s[w[0]], a[w[0]]),
                ));
            }
        }
        for k in 0..n_states {
            let range = offsets[k] as usize..offsets[k + 1] as usize;
            if range.is_empty() {
                continue;
            }
            let total: f64 = probs[range.clone()].iter().sum();
            if (total - 1.0).abs() > SUM_TOLERANCE {
                let row = order[range.start];
                return Err(RlError::row(
                    "policy",
                    "prob",
                    row,
                    format_args!("the probabilities of state {k} sum to {total}, not 1"),
                ));
            }
            probs[range].iter_mut().for_each(|x| *x /= total);
        }
        // a row with prob = 0 (a π matrix written out in full) reaches nothing: drop it, so no
        // critic counts (s, a) as a pair π takes
        let mut kept = Policy { offsets: vec![0; n_states + 1], actions: Vec::new(), probs: Vec::new() };
        for k in 0..n_states {
            for j in offsets[k] as usize..offsets[k + 1] as usize {
                if probs[j] > 0.0 {
                    kept.actions.push(actions[j]);
                    kept.probs.push(probs[j]);
                }
            }
            kept.offsets[k + 1] = kept.actions.len() as u32;
        }
        Ok(kept)
    }

    /// π(·|s) as (actions, probabilities), or `None` when the table has no row for `s`.
    pub fn at(&self, s: u32) -> Option<(&[u32], &[f64])> {
        let s = s as usize;
        if s + 1 >= self.offsets.len() {
            return None;
        }
        let r = self.offsets[s] as usize..self.offsets[s + 1] as usize;
        (!r.is_empty()).then(|| (&self.actions[r.clone()], &self.probs[r]))
    }

    /// π(a|s) (0 where the table has no row).
    pub fn prob(&self, s: u32, a: u32) -> f64 {
        self.at(s).and_then(|(acts, ps)| acts.iter().position(|&x| x == a).map(|i| ps[i])).unwrap_or(0.0)
    }

    /// One more than the largest state id with a row.
    pub fn n_states(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// One more than the largest action id with a row.
    pub fn n_actions(&self) -> usize {
        self.actions.iter().max().map_or(0, |&m| m as usize + 1)
    }

    /// Check that π is defined wherever the critic bootstraps: at `s_next` of every row with
    /// `done = 0`. The error names the transitions row and the policy table.
    pub fn check_covers(&self, data: &Transitions<'_>) -> Result<(), RlError> {
        let States::Discrete { s_next, .. } = &data.states else { return Ok(()) };
        for (i, (&sn, &d)) in s_next.iter().zip(&data.done).enumerate() {
            if !d && self.at(sn).is_none() {
                return Err(RlError::input(format!(
                    "table 'policy' has no row for state {sn}, the s_next of table 'transitions', row {} (done = 0): \
                     the critic needs pi(.|{sn}) to bootstrap there",
                    i + 1
                )));
            }
        }
        Ok(())
    }
}

/// π as per-row columns (continuous states): `pi_next_<a>` = π(a|s′) on every row, and
/// optionally `pi_<a>` = π(a|s) (for V and the policy value J).
#[derive(Debug, Clone)]
pub struct PolicyColumns<'a> {
    /// π(a|s′), one slice per action.
    pub next: Vec<&'a [f64]>,
    /// π(a|s), one slice per action, when given.
    pub current: Option<Vec<&'a [f64]>>,
}

fn check_rows(cols: &[&[f64]], prefix: &str, skip: Option<&[bool]>) -> Result<(), RlError> {
    for (k, c) in cols.iter().enumerate() {
        check_each(
            "transitions",
            format!("{prefix}{k}"),
            c,
            |p| (0.0..=1.0).contains(&p),
            "is not a probability in [0, 1]",
        )?;
    }
    let n = cols.first().map_or(0, |c| c.len());
    for i in 0..n {
        if skip.is_some_and(|d| d[i]) {
            continue;
        }
        let total: f64 = cols.iter().map(|c| c[i]).sum();
        if (total - 1.0).abs() > SUM_TOLERANCE {
            return Err(RlError::row(
                "transitions",
                format!("{prefix}0"),
                i,
                format_args!("the {prefix}* columns sum to {total}, not 1"),
            ));
        }
    }
    Ok(())
}

impl<'a> PolicyColumns<'a> {
    /// Check the columns `pi_next_<a>` (`next`: required, one per action, summing to 1 on rows
    /// with `done = 0`) and `pi_<a>` (`current`: optional, empty when not given) of the
    /// transitions table.
    pub fn new(
        next: Vec<&'a [f64]>,
        current: Vec<&'a [f64]>,
        data: &Transitions<'_>,
    ) -> Result<PolicyColumns<'a>, RlError> {
        if next.is_empty() {
            return Err(RlError::input(
                "table 'transitions' has no 'pi_next_0' column: with continuous states the target policy is given \
                 per row as pi_next_<a> = pi(a | s_next) for every action a (and pi_<a> = pi(a | s) for V and J)",
            ));
        }
        if next.len() < data.n_actions {
            return Err(RlError::input(format!(
                "table 'transitions' has pi_next_0..pi_next_{} but actions up to {}: give one column per action",
                next.len() - 1,
                data.n_actions - 1
            )));
        }
        check_rows(&next, "pi_next_", Some(&data.done))?;
        let current = if current.is_empty() {
            None
        } else {
            if current.len() != next.len() {
                return Err(RlError::input(format!(
                    "table 'transitions' has {} pi_* columns and {} pi_next_* columns: give one of each per action",
                    current.len(),
                    next.len()
                )));
            }
            check_rows(&current, "pi_", None)?;
            Some(current)
        };
        Ok(PolicyColumns { next, current })
    }
    /// Number of actions the columns cover.
    pub fn n_actions(&self) -> usize {
        self.next.len()
    }
}
