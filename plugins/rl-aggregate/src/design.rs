//! The scores as `rliable` holds them — per algorithm, per task, the runs' normalised scores —
//! read from the `scores` table (`algorithm`, `task`, optional `run`, `score`) and the optional
//! `normalization` table (`task`, `low`, `high`: score ↦ (score − low)/(high − low)), with every
//! defect named by table, column and row.

use quiver_evaluation::Labels;
use quiver_sdk::abi::PluginError;
use quiver_sdk::{TableRef, Tables};
use std::collections::HashMap;

/// Per algorithm, per task, the runs' normalised scores (algorithms and tasks in the order they
/// first appear in `scores`).
#[derive(Debug, Clone)]
pub struct Design {
    /// Algorithm labels.
    pub algorithms: Vec<String>,
    /// Task labels.
    pub tasks: Vec<String>,
    /// `runs[a][t]`: algorithm a's runs on task t.
    pub runs: Vec<Vec<Vec<f64>>>,
    /// Whether the scores were normalised by a `normalization` table.
    pub normalised: bool,
}

impl Design {
    /// Read and check the tables.
    pub fn read(tables: &Tables<'_>) -> Result<Design, PluginError> {
        let t = tables.get("scores")?;
        t.non_empty()?;
        let (alg_col, task_col) = (t.texts("algorithm")?, t.texts("task")?);
        let score = t.f64("score")?;
        let run = t.i64_opt("run")?;
        let scale = match tables.opt("normalization") {
            Some(n) => Some(Self::normalization(&n)?),
            None => None,
        };
        let (mut algorithms, mut tasks) = (Labels::new(), Labels::new());
        let mut cells: Vec<Vec<Vec<f64>>> = Vec::new();
        // (algorithm, task, run) → the row that first named it
        let mut runs_seen: HashMap<(usize, usize, i64), usize> = HashMap::new();
        for i in 0..t.nrows() {
            let a = algorithms.intern(alg_col[i]);
            let k = tasks.intern(task_col[i]);
            if let Some(r) = run {
                if let Some(first) = runs_seen.insert((a, k, r[i]), i) {
                    return Err(t.row_error(
                        "run",
                        i,
                        format!(
                            "run {} of algorithm '{}' on task '{}' is also in row {}: one row per run",
                            r[i],
                            algorithms.names()[a],
                            tasks.names()[k],
                            first + 1
                        ),
                    ));
                }
            }
            let x = match &scale {
                None => score[i],
                Some(by_task) => {
                    let Some(&(low, high)) = by_task.get(&tasks.names()[k]) else {
                        return Err(t.row_error(
                            "task",
                            i,
                            format!(
                                "task '{}' has no row in table 'normalization' (task, low, high)",
                                tasks.names()[k]
                            ),
                        ));
                    };
                    (score[i] - low) / (high - low)
                }
            };
            if !x.is_finite() {
                return Err(t.row_error(
                    "score",
                    i,
                    format!("normalises to {x} (the score or its task's range overflows)"),
                ));
            }
            if cells.len() <= a {
                cells.resize_with(a + 1, Vec::new);
            }
            if cells[a].len() <= k {
                cells[a].resize_with(k + 1, Vec::new);
            }
            cells[a][k].push(x);
        }
        for (a, per_task) in cells.iter_mut().enumerate() {
            per_task.resize_with(tasks.len(), Vec::new);
            for (k, r) in per_task.iter().enumerate() {
                match r.len() {
                    0 => {
                        return Err(PluginError::input(format!(
                            "table 'scores': algorithm '{}' has no run on task '{}': every algorithm needs runs on \
                             every task (the metrics aggregate over the same tasks)",
                            algorithms.names()[a],
                            tasks.names()[k]
                        )))
                    }
                    1 => {
                        return Err(PluginError::input(format!(
                            "table 'scores': algorithm '{}' has one run on task '{}': the stratified bootstrap \
                             resamples each task's runs, so each needs at least 2",
                            algorithms.names()[a],
                            tasks.names()[k]
                        )))
                    }
                    _ => {}
                }
            }
        }
        Ok(Design {
            algorithms: algorithms.into_names(),
            tasks: tasks.into_names(),
            runs: cells,
            normalised: scale.is_some(),
        })
    }

    /// The `normalization` table: task → (low, high), high ≠ low, one row per task.
    fn normalization(n: &TableRef<'_>) -> Result<HashMap<String, (f64, f64)>, PluginError> {
        let col = n.texts("task")?;
        let (low, high) = (n.f64("low")?, n.f64("high")?);
        let mut out: HashMap<String, (f64, f64)> = HashMap::new();
        let mut rows: HashMap<String, usize> = HashMap::new();
        for i in 0..n.nrows() {
            let task = col[i].to_string();
            if low[i] == high[i] {
                return Err(n.row_error(
                    "high",
                    i,
                    format!("equals low ({}): task '{task}' has no range to normalise by", low[i]),
                ));
            }
            if let Some(first) = rows.insert(task.clone(), i) {
                return Err(n.row_error(
                    "task",
                    i,
                    format!("task '{task}' is also in row {}: one row per task", first + 1),
                ));
            }
            out.insert(task, (low[i], high[i]));
        }
        Ok(out)
    }
}
