//! The `transitions` table, read and checked once: episodes, states (discrete ids or continuous
//! columns), actions, rewards, ends, next-row lookups and n-step windows.

use quiver_sdk::abi::PluginError;
use quiver_sdk::TableRef;
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

fn ids(t: &TableRef<'_>, column: &str, limit: usize) -> Result<Vec<u32>, PluginError> {
    let v = t.i64(column)?;
    t.check_each(column, v, |x| x >= 0 && (x as u64) < limit as u64, &format!("must be an id in 0..{limit}"))?;
    Ok(v.iter().map(|&x| x as u32).collect())
}

/// The numbered columns `{prefix}0, {prefix}1, …` of a table (stopping at the first gap), and an
/// error if a higher-numbered one exists past the gap.
pub fn numbered_columns<'a>(t: &TableRef<'a>, prefix: &str) -> Result<Vec<&'a [f64]>, PluginError> {
    let found = t.numbered_f64(prefix)?;
    let run = found.iter().enumerate().take_while(|(i, (k, _))| i == k).count();
    if let Some((k, _)) = found.get(run) {
        return Err(PluginError::input(format!(
            "table '{}': column '{prefix}{k}' but no '{prefix}{run}': number the {prefix}* columns from 0 without gaps",
            t.role(),
        )));
    }
    Ok(found.into_iter().map(|(_, c)| c).collect())
}

impl<'a> Transitions<'a> {
    /// Read and check a `transitions` table: `episode`, `t`, `a`, `r`, `done`, and either
    /// discrete `s`, `s_next` or continuous `s_<k>`, `s_next_<k>` (or neither, when the features
    /// are given as columns); optional `a_next`, `mu_prob`, `pi_prob`. Every error names the
    /// table, column and row.
    pub fn read(t: &TableRef<'a>) -> Result<Transitions<'a>, PluginError> {
        t.non_empty()?;
        let n = t.nrows();
        let episode = t.i64("episode")?;
        let step = t.i64("t")?;
        let a = ids(t, "a", MAX_ACTIONS)?;
        let a_next_raw = t.i64_opt("a_next")?;
        let r = t.f64("r")?;
        let done = t.flags("done")?;
        let probability = |name: &str| -> Result<Option<&'a [f64]>, PluginError> {
            let v = t.f64_opt(name)?;
            if let Some(v) = v {
                t.check_each(name, v, |p| (0.0..=1.0).contains(&p), "is not a probability in [0, 1]")?;
            }
            Ok(v)
        };
        let mu_prob = probability("mu_prob")?;
        if let Some(mu) = mu_prob {
            t.check_each("mu_prob", mu, |p| p > 0.0, "must be > 0: the behaviour took this action")?;
        }
        let pi_prob = probability("pi_prob")?;
        let states = match (t.has("s"), t.has("s_0")) {
            (true, true) => {
                return Err(PluginError::input(format!(
                    "table '{}' has both 's' (discrete) and 's_0' (continuous) state columns: give one kind",
                    t.role()
                )))
            }
            (true, false) => {
                let s = ids(t, "s", MAX_STATES)?;
                let s_next = ids(t, "s_next", MAX_STATES)?;
                let n_states = s.iter().chain(&s_next).max().map_or(0, |&m| m as usize + 1);
                States::Discrete { s, s_next, n_states }
            }
            (false, true) => {
                let s = numbered_columns(t, "s_")?;
                let s_next = numbered_columns(t, "s_next_")?;
                if s_next.len() != s.len() {
                    return Err(PluginError::input(format!(
                        "table '{}': {} state columns s_* but {} next-state columns s_next_*: give s_next_0..s_next_{}",
                        t.role(),
                        s.len(),
                        s_next.len(),
                        s.len() - 1
                    )));
                }
                States::Continuous { s, s_next }
            }
            (false, false) => States::Absent,
        };
        let n_actions = a.iter().max().map_or(0, |&m| m as usize + 1);
        // episodes: contiguous blocks of rows, t rising by one, done only on the last row
        let mut episodes: Vec<Range<usize>> = Vec::new();
        let mut seen = std::collections::HashMap::new();
        let mut start = 0;
        for i in 0..n {
            let last = i + 1 == n || episode[i + 1] != episode[i];
            if i > start && step[i - 1].checked_add(1) != Some(step[i]) {
                return Err(t.row_error(
                    "t",
                    i,
                    format_args!(
                        "t = {} follows t = {} in episode {}: steps must rise by one (a gap or a reordering)",
                        step[i],
                        step[i - 1],
                        episode[i]
                    ),
                ));
            }
            if done[i] && !last {
                return Err(t.row_error(
                    "done",
                    i,
                    format_args!(
                        "done = 1 before the last row of episode {} (it goes on at row {})",
                        episode[i],
                        i + 2
                    ),
                ));
            }
            if !last {
                if let States::Discrete { s, s_next, .. } = &states {
                    if s_next[i] != s[i + 1] {
                        return Err(t.row_error(
                            "s_next",
                            i,
                            format_args!("s_next = {} but the episode's next row has s = {}", s_next[i], s[i + 1]),
                        ));
                    }
                }
            }
            if last {
                if let Some(first) = seen.insert(episode[i], start) {
                    return Err(t.row_error(
                        "episode",
                        start,
                        format_args!(
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
        Ok(Transitions { n, states, a, a_next: None, a_next_raw, n_actions, r, done, mu_prob, pi_prob, episodes })
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
    /// min(h, rows left in the episode) — a segmented scan ([`crate::gpu::nstep_returns_cuda`] is
    /// the same on the GPU).
    pub fn nstep_returns(&self, h: usize, gamma: f64) -> (Vec<f64>, Vec<i32>) {
        let (mut ret, mut len) = (vec![0.0; self.n], vec![0i32; self.n]);
        for e in &self.episodes {
            for i in e.clone() {
                let stop = e.end.min(i + h);
                let (mut acc, mut disc) = (0.0, 1.0);
                for k in i..stop {
                    acc += disc * self.r[k];
                    disc *= gamma;
                }
                ret[i] = acc;
                len[i] = (stop - i) as i32;
            }
        }
        (ret, len)
    }

    /// The first row of each episode (its initial state: the start distribution d₀).
    pub fn first_rows(&self) -> impl Iterator<Item = usize> + '_ {
        self.episodes.iter().map(|e| e.start)
    }

    /// Check the `a_next` column for a method that uses it (`what` names the method in errors)
    /// and keep it in [`Transitions::a_next`]. On a row with `done = 1` there is no next action:
    /// any value is accepted there (-1 or an empty cell by convention) and never read. Elsewhere
    /// it must be an action id and, where the episode goes on, the action of its next row.
    pub fn use_a_next(&mut self, t: &TableRef<'_>, what: &str) -> Result<&[u32], PluginError> {
        let raw = self.a_next_raw.ok_or_else(|| {
            PluginError::input(format!("table 'transitions' has no column 'a_next', which {what} needs"))
        })?;
        let mut ids = Vec::with_capacity(self.n);
        for (i, &x) in raw.iter().enumerate() {
            if self.done[i] {
                ids.push(0);
                continue;
            }
            if !(x >= 0 && (x as u64) < MAX_ACTIONS as u64) {
                return Err(t.row_error(
                    "a_next",
                    i,
                    format_args!(
                        "value {x} must be an action id in 0..{MAX_ACTIONS} (done = 0: {what} bootstraps from it)"
                    ),
                ));
            }
            if self.next_row(i).is_some_and(|j| i64::from(self.a[j]) != x) {
                return Err(t.row_error(
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

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_sdk::abi::{ColumnData, ColumnView, TableView};

    fn table_with<'a>(cols: &'a [ColumnView<'a>], n: usize) -> TableView<'a> {
        TableView::new("transitions", n, cols)
    }

    #[test]
    fn episodes_windows_and_errors() {
        let ep = [0i64, 0, 0, 1, 1];
        let t = [0i64, 1, 2, 5, 6];
        let s = [0i64, 1, 2, 0, 2];
        let sn = [1i64, 2, 0, 2, 1];
        let a = [0i64, 1, 0, 1, 1];
        let r = [1.0, 0.0, 2.0, 1.0, 0.5];
        let d = [false, false, true, false, false];
        let cols = [
            ColumnView::new("episode", ColumnData::i64(&ep)),
            ColumnView::new("t", ColumnData::i64(&t)),
            ColumnView::new("s", ColumnData::i64(&s)),
            ColumnView::new("s_next", ColumnData::i64(&sn)),
            ColumnView::new("a", ColumnData::i64(&a)),
            ColumnView::new("r", ColumnData::f64(&r)),
            ColumnView::new("done", ColumnData::bool(&d)),
        ];
        let views = [table_with(&cols, 5)];
        let tables = quiver_sdk::Tables::from_slice(&views);
        let tr = Transitions::read(&tables.get("transitions").unwrap()).unwrap();
        assert_eq!(tr.episodes, vec![0..3, 3..5]);
        assert_eq!((tr.n_actions, tr.states.is_discrete()), (2, true));
        assert_eq!(tr.next_row(1), Some(2));
        assert_eq!(tr.next_row(2), None);
        assert_eq!(tr.n_step(1, 5), NStep { start: 1, steps: 2, ended: true });
        assert_eq!(tr.n_step(3, 1), NStep { start: 3, steps: 1, ended: false });
        assert_eq!(tr.first_rows().collect::<Vec<_>>(), vec![0, 3]);

        let bad_t = [0i64, 1, 3, 5, 6];
        let mut c2 = cols;
        c2[1] = ColumnView::new("t", ColumnData::i64(&bad_t));
        let views = [table_with(&c2, 5)];
        let e = Transitions::read(&quiver_sdk::Tables::from_slice(&views).get("transitions").unwrap()).unwrap_err();
        assert!(e.message.contains("column 't', row 3: t = 3 follows t = 1"), "{}", e.message);

        let bad_ep = [0i64, 0, 1, 0, 0];
        let bad_t2 = [0i64, 1, 0, 2, 3];
        let mut c3 = cols;
        c3[0] = ColumnView::new("episode", ColumnData::i64(&bad_ep));
        c3[1] = ColumnView::new("t", ColumnData::i64(&bad_t2));
        c3[6] = ColumnView::new("done", ColumnData::bool(&[false; 5]));
        let views = [table_with(&c3, 5)];
        let e = Transitions::read(&quiver_sdk::Tables::from_slice(&views).get("transitions").unwrap()).unwrap_err();
        assert!(e.message.contains("column 'episode', row 4: episode 0 starts again"), "{}", e.message);
    }
}
