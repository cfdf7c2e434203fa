//! Logged transitions, checked once: episodes, states (discrete ids or continuous columns),
//! actions, rewards, ends, next-row lookups and n-step windows. Errors name the `transitions`
//! table's column and row.

use crate::RlError;
use quiver_numerics::compact;
use std::ops::Range;

/// Largest discrete state id + 1 accepted (ids index dense per-state arrays).
pub const MAX_STATES: usize = 10_000_000;
/// Largest action id + 1 accepted.
pub const MAX_ACTIONS: usize = 10_000;

/// The state columns of a transitions table.
#[derive(Debug, Clone)]
pub enum States<'a> {
    /// Discrete ids `s`, `s_next` (0-based), and one more than the largest id seen.
    Discrete {
        /// State of each row.
        s: Vec<u32>,
        /// Next state of each row.
        s_next: Vec<u32>,
        /// One more than the largest id in `s` and `s_next`.
        n_states: usize,
    },
    /// Continuous columns `s_0 … s_{k−1}` and `s_next_0 … s_next_{k−1}` (borrowed).
    Continuous {
        /// `s_<k>`, one slice per dimension.
        s: Vec<&'a [f64]>,
        /// `s_next_<k>`, one slice per dimension.
        s_next: Vec<&'a [f64]>,
    },
    /// No state columns (features given as columns).
    Absent,
}

impl States<'_> {
    /// Whether the states are discrete ids.
    pub fn is_discrete(&self) -> bool {
        matches!(self, States::Discrete { .. })
    }
    /// The dimension of continuous states (0 otherwise).
    pub fn dim(&self) -> usize {
        match self {
            States::Continuous { s, .. } => s.len(),
            _ => 0,
        }
    }
}

/// The first and last episode ids of a partition of transitions (runs by parts, docs/scale.md):
/// two partitions in order whose boundary falls inside an episode — the first one's last id is the
/// next one's first — are refused when merged, as the one-table run refuses an episode that starts
/// again.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpisodeSpan {
    /// The id of the partition's first episode.
    pub first: i64,
    /// The id of its last.
    pub last: i64,
}

impl EpisodeSpan {
    /// The span of `data`'s episodes (`None` for no rows).
    pub fn of(data: &Transitions<'_>) -> Option<EpisodeSpan> {
        Some(EpisodeSpan { first: *data.episode_ids.first()?, last: *data.episode_ids.last()? })
    }
    /// The span of two partitions in order (`a`'s rows first), or the episode their boundary cuts.
    pub fn merge(a: Option<EpisodeSpan>, b: Option<EpisodeSpan>) -> Result<Option<EpisodeSpan>, crate::RlError> {
        Ok(match (a, b) {
            (Some(a), Some(b)) if a.last == b.first => {
                return Err(crate::RlError::input(format!(
                    "table 'transitions': episode {} is cut between two partitions (its rows are in both): cut the \
                     data between episodes",
                    a.last
                )))
            }
            (Some(a), Some(b)) => Some(EpisodeSpan { first: a.first, last: b.last }),
            (a, b) => a.or(b),
        })
    }
}

/// Logged transitions: rows grouped in episodes, each row (s, a, r, s′, done).
#[derive(Debug, Clone)]
pub struct Transitions<'a> {
    /// Number of rows.
    pub n: usize,
    /// States.
    pub states: States<'a>,
    /// Action of each row.
    pub a: Vec<u32>,
    /// The next action (`a_next`), once a method that uses it has checked it
    /// ([`Transitions::use_a_next`]; methods that do not use it never look at it).
    pub a_next: Option<Vec<u32>>,
    /// The `a_next` column as given, unchecked.
    a_next_raw: Option<&'a [i64]>,
    /// One more than the largest action id in `a` (and `a_next`, once checked).
    pub n_actions: usize,
    /// Rewards.
    pub r: &'a [f64],
    /// Whether the episode ends after the row (no bootstrap from s′).
    pub done: Vec<bool>,
    /// Behaviour probability of the logged action, when given.
    pub mu_prob: Option<&'a [f64]>,
    /// Target probability of the logged action, when given.
    pub pi_prob: Option<&'a [f64]>,
    /// Row ranges of the episodes, in table order.
    pub episodes: Vec<Range<usize>>,
    /// The id of each episode (its `episode` value), in the same order.
    pub episode_ids: Vec<i64>,
}

/// An h-step window from a row, inside its episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NStep {
    /// First row (the window's start).
    pub start: usize,
    /// Steps actually taken, h′ = min(h, rows left in the episode from `start`).
    pub steps: usize,
    /// Whether the episode ended inside the window (`done` on its last row).
    pub ended: bool,
}

/// Check that every value of `column` of `table` is an id in `0..limit` and convert them.
pub fn ids(table: &'static str, column: &str, values: &[i64], limit: usize) -> Result<Vec<u32>, RlError> {
    check_each(
        table,
        column,
        values,
        |x| x >= 0 && (x as u64) < limit as u64,
        &format!("must be an id in 0..{limit}"),
    )?;
    Ok(values.iter().map(|&x| x as u32).collect())
}

/// The first value of `column` for which `ok` is false, as `table 'T', column 'C', row R: value V
/// {requirement}`.
pub fn check_each<T: Copy + std::fmt::Display + std::fmt::Debug>(
    table: &'static str,
    column: impl Into<String>,
    values: &[T],
    ok: impl Fn(T) -> bool,
    requirement: &str,
) -> Result<(), RlError> {
    match values.iter().position(|&v| !ok(v)) {
        Some(row) => Err(RlError::row(table, column, row, format!("value {} {requirement}", compact(values[row])))),
        None => Ok(()),
    }
}

impl<'a> States<'a> {
    /// Discrete states from checked ids (each below [`MAX_STATES`]).
    pub fn discrete(s: Vec<u32>, s_next: Vec<u32>) -> States<'a> {
        let n_states = s.iter().chain(&s_next).max().map_or(0, |&m| m as usize + 1);
        States::Discrete { s, s_next, n_states }
    }
}

/// The columns of a `transitions` table, as read: what [`Transitions::new`] checks and groups.
#[derive(Debug, Clone)]
pub struct TransitionColumns<'a> {
    /// Episode id of each row; each episode's rows together, in order of `t`.
    pub episode: &'a [i64],
    /// Step within the episode, rising by one.
    pub t: &'a [i64],
    /// The states ([`States::discrete`], continuous columns, or none when features are given).
    pub states: States<'a>,
    /// Action of each row (ids below [`MAX_ACTIONS`]: [`ids`]).
    pub a: Vec<u32>,
    /// The next action, as given (checked by [`Transitions::use_a_next`] when a method uses it).
    pub a_next: Option<&'a [i64]>,
    /// Rewards.
    pub r: &'a [f64],
    /// Whether the episode ends after the row.
    pub done: Vec<bool>,
    /// Behaviour probability of the logged action.
    pub mu_prob: Option<&'a [f64]>,
    /// Target probability of the logged action.
    pub pi_prob: Option<&'a [f64]>,
}

impl<'a> Transitions<'a> {
    /// Check and group logged transitions: probabilities in [0, 1] (`mu_prob` > 0), and episodes
    /// as contiguous blocks of rows with `t` rising by one, `done` only on an episode's last row,
    /// and (discrete states) `s_next` equal to the next row's `s`. Every error names the column
    /// and row of table `transitions`.
    pub fn new(c: TransitionColumns<'a>) -> Result<Transitions<'a>, RlError> {
        let TransitionColumns { episode, t: step, states, a, a_next, r, done, mu_prob, pi_prob } = c;
        let n = r.len();
        if [episode.len(), step.len(), a.len(), done.len()].iter().any(|&k| k != n) {
            return Err(RlError::input("table 'transitions': its columns differ in length"));
        }
        let probability = |name: &'static str, v: Option<&[f64]>| match v {
            Some(v) => {
                check_each("transitions", name, v, |p| (0.0..=1.0).contains(&p), "is not a probability in [0, 1]")
            }
            None => Ok(()),
        };
        probability("mu_prob", mu_prob)?;
        if let Some(mu) = mu_prob {
            check_each("transitions", "mu_prob", mu, |p| p > 0.0, "must be > 0: the behaviour took this action")?;
        }
        probability("pi_prob", pi_prob)?;
        let row = |column: &'static str, i: usize, message: String| RlError::row("transitions", column, i, message);
        let n_actions = a.iter().max().map_or(0, |&m| m as usize + 1);
        // episodes: contiguous blocks of rows, t rising by one, done only on the last row
        let mut episodes: Vec<Range<usize>> = Vec::new();
        let mut seen = std::collections::HashMap::new();
        let mut start = 0;
        for i in 0..n {
            let last = i + 1 == n || episode[i + 1] != episode[i];
            if i > start && step[i - 1].checked_add(1) != Some(step[i]) {
                return Err(row(
                    "t",
                    i,
                    format!(
                        "t = {} follows t = {} in episode {}: steps must rise by one (a gap or a reordering)",
                        step[i],
                        step[i - 1],
                        episode[i]
                    ),
                ));
            }
            if done[i] && !last {
                return Err(row(
                    "done",
                    i,
                    format!("done = 1 before the last row of episode {} (it goes on at row {})", episode[i], i + 2),
                ));
            }
            if !last {
                if let States::Discrete { s, s_next, .. } = &states {
                    if s_next[i] != s[i + 1] {
                        return Err(row(
                            "s_next",
                            i,
                            format!("s_next = {} but the episode's next row has s = {}", s_next[i], s[i + 1]),
                        ));
                    }
                }
            }
            if last {
                if let Some(first) = seen.insert(episode[i], start) {
                    return Err(row(
                        "episode",
                        start,
                        format!(
                            "episode {} starts again here after rows {}..: keep each episode's rows together, in order of t",
                            episode[i],
                            first + 1
                        ),
                    ));
                }
                episodes.push(start..i + 1);
                start = i + 1;
            }
        }
        Ok(Transitions {
            n,
            states,
            a,
            a_next: None,
            a_next_raw: a_next,
            n_actions,
            r,
            done,
            mu_prob,
            pi_prob,
            episode_ids: episodes.iter().map(|e| episode[e.start]).collect(),
            episodes,
        })
    }

    /// The row after `row` in its episode, if any.
    pub fn next_row(&self, row: usize) -> Option<usize> {
        let e = self.episode_of(row);
        (row + 1 < self.episodes[e].end).then_some(row + 1)
    }

    /// The index of the episode holding `row`.
    pub fn episode_of(&self, row: usize) -> usize {
        self.episodes.partition_point(|e| e.end <= row)
    }

    /// The h-step window from `row`: h′ = min(h, rows left in the episode) steps.
    pub fn n_step(&self, row: usize, h: usize) -> NStep {
        let end = self.episodes[self.episode_of(row)].end;
        let steps = h.min(end - row);
        NStep { start: row, steps, ended: steps > 0 && self.done[row + steps - 1] }
    }

    /// The end (exclusive) of each row's episode.
    pub fn episode_ends(&self) -> Vec<i64> {
        let mut ends = vec![0i64; self.n];
        for e in &self.episodes {
            ends[e.clone()].iter_mut().for_each(|x| *x = e.end as i64);
        }
        ends
    }

    /// Per row i, the discounted reward sum of its h-step window, Σ_{k<h′} γ^k r_{i+k}, and h′ =
    /// min(h, rows left in the episode) — [`nstep_returns_in`] over this table's episodes.
    pub fn nstep_returns(&self, h: usize, gamma: f64) -> (Vec<f64>, Vec<i32>) {
        nstep_returns_in(self.r, &self.episodes, h, gamma)
    }

    /// The first row of each episode (its initial state: the start distribution d₀).
    pub fn first_rows(&self) -> impl Iterator<Item = usize> + '_ {
        self.episodes.iter().map(|e| e.start)
    }

    /// Check the `a_next` column for a method that uses it (`what` names the method in errors)
    /// and keep it in [`Transitions::a_next`]. On a row with `done = 1` there is no next action:
    /// any value is accepted there (-1 or an empty cell by convention) and never read. Elsewhere
    /// it must be an action id and, where the episode goes on, the action of its next row.
    pub fn use_a_next(&mut self, what: &str) -> Result<&[u32], RlError> {
        let raw = self
            .a_next_raw
            .ok_or_else(|| RlError::input(format!("table 'transitions' has no column 'a_next', which {what} needs")))?;
        let mut ids = Vec::with_capacity(self.n);
        for (i, &x) in raw.iter().enumerate() {
            if self.done[i] {
                ids.push(0);
                continue;
            }
            if !(x >= 0 && (x as u64) < MAX_ACTIONS as u64) {
                return Err(RlError::row(
                    "transitions",
                    "a_next",
                    i,
                    format_args!(
                        "value {x} must be an action id in 0..{MAX_ACTIONS} (done = 0: {what} bootstraps from it)"
                    ),
                ));
            }
            if self.next_row(i).is_some_and(|j| i64::from(self.a[j]) != x) {
                return Err(RlError::row(
                    "transitions",
                    "a_next",
                    i,
                    format_args!("a_next = {x} but the episode's next row has a = {}", self.a[i + 1]),
                ));
            }
            ids.push(x as u32);
        }
        self.n_actions = self.n_actions.max(ids.iter().max().map_or(0, |&m| m as usize + 1));
        Ok(self.a_next.insert(ids))
    }
}

/// Per row i of `r`, the discounted reward sum of its h-step window inside its episode (one of
/// `episodes`, contiguous row ranges), Σ_{k<h′} γ^k r_{i+k}, and h′ = min(h, rows left in the
/// episode): a segmented scan, the CPU twin of the `nstep_returns` kernel
/// ([`crate::gpu::nstep_returns_cuda`]). Rows outside every episode get 0 and 0.
pub fn nstep_returns_in(r: &[f64], episodes: &[Range<usize>], h: usize, gamma: f64) -> (Vec<f64>, Vec<i32>) {
    let (mut ret, mut len) = (vec![0.0; r.len()], vec![0i32; r.len()]);
    for e in episodes {
        for i in e.clone() {
            let stop = e.end.min(i + h);
            let (mut acc, mut disc) = (0.0, 1.0);
            for rk in &r[i..stop] {
                acc += disc * rk;
                disc *= gamma;
            }
            ret[i] = acc;
            len[i] = (stop - i) as i32;
        }
    }
    (ret, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns<'a>(ep: &'a [i64], t: &'a [i64], r: &'a [f64], done: &[bool]) -> TransitionColumns<'a> {
        TransitionColumns {
            episode: ep,
            t,
            states: States::discrete(vec![0, 1, 2, 0, 2], vec![1, 2, 0, 2, 1]),
            a: vec![0, 1, 0, 1, 1],
            a_next: None,
            r,
            done: done.to_vec(),
            mu_prob: None,
            pi_prob: None,
        }
    }

    #[test]
    fn episodes_windows_and_errors() {
        let r = [1.0, 0.0, 2.0, 1.0, 0.5];
        let d = [false, false, true, false, false];
        let tr = Transitions::new(columns(&[0, 0, 0, 1, 1], &[0, 1, 2, 5, 6], &r, &d)).unwrap();
        assert_eq!(tr.episodes, vec![0..3, 3..5]);
        assert_eq!((tr.n_actions, tr.states.is_discrete()), (2, true));
        assert_eq!(tr.next_row(1), Some(2));
        assert_eq!(tr.next_row(2), None);
        assert_eq!(tr.n_step(1, 5), NStep { start: 1, steps: 2, ended: true });
        assert_eq!(tr.n_step(3, 1), NStep { start: 3, steps: 1, ended: false });
        assert_eq!(tr.first_rows().collect::<Vec<_>>(), vec![0, 3]);

        let e = Transitions::new(columns(&[0, 0, 0, 1, 1], &[0, 1, 3, 5, 6], &r, &d)).unwrap_err().to_string();
        assert!(e.contains("table 'transitions', column 't', row 3: t = 3 follows t = 1"), "{e}");

        let e = Transitions::new(columns(&[0, 0, 1, 0, 0], &[0, 1, 0, 2, 3], &r, &[false; 5])).unwrap_err().to_string();
        assert!(e.contains("column 'episode', row 4: episode 0 starts again"), "{e}");

        let mut c = columns(&[0, 0, 0, 1, 1], &[0, 1, 2, 5, 6], &r, &d);
        c.mu_prob = Some(&[0.5, 0.5, 0.0, 1.0, 1.0]);
        let e = Transitions::new(c).unwrap_err().to_string();
        assert_eq!(
            e,
            "table 'transitions', column 'mu_prob', row 3: value 0 must be > 0: the behaviour took this action"
        );
        assert_eq!(
            ids("transitions", "a", &[0, 3, -1], 10).unwrap_err().to_string(),
            "table 'transitions', column 'a', row 3: value -1 must be an id in 0..10"
        );
    }
}
