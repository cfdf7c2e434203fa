//! Logged transitions as a network's inputs: continuous states `s_<k>`, `s_next_<k>`; actions
//! either discrete (`a`, with the target policy per row as `pi_next_<a>` = π(a | s′) and,
//! optionally, `pi_<a>` = π(a | s)) or continuous (`a_<k>`, with π's action at s′ sampled as
//! `a_next_<k>` and, optionally, at s as `a_pi_<k>`). The episodes are checked as every critic's
//! are (`quiver_rl::Transitions`); states and continuous actions are standardised with the data's
//! means and standard deviations, which the result and checkpoints keep.

use quiver_critic_kit::read::{numbered_columns, policy_columns, transitions_acting};
use quiver_rl::States;
use quiver_sdk::abi::PluginError;
use quiver_sdk::{column, TableBuilder, TableRef};

/// The `transitions` table of the neural critics.
pub fn transitions_table() -> TableBuilder {
    TableBuilder::new("transitions", "logged transitions, episodes in order of t")
        .column(column::i64("episode", "episode id; each episode's rows together"))
        .column(column::i64("t", "step within the episode, rising by one"))
        .column(column::i64_opt("a", "discrete action id (or continuous actions a_<k>)"))
        .column(column::f64("r", "reward"))
        .column(column::boolean("done", "1 if the episode ends after this row (no bootstrap)"))
        .column(column::f64_prefix("s_", true, "continuous state s_0, s_1, ... and next state s_next_0, ..."))
        .column(column::f64_prefix(
            "pi_",
            false,
            "discrete actions: pi_next_<a> = pi(a|s_next); pi_<a> = pi(a|s) for V and J",
        ))
        .column(column::f64_prefix(
            "a_",
            false,
            "continuous actions a_<k>; pi's action at s_next sampled as a_next_<k>; at s as a_pi_<k> (for V and J)",
        ))
}

/// The `queries` table of the neural critics.
pub fn queries_table() -> TableBuilder {
    TableBuilder::new("queries", "states s_<k> and, for Q, actions (a or a_<k>); for V, pi_<a> or a_pi_<k>")
        .optional()
        .column(column::i64_opt("a", "discrete action id: Q(s, a)"))
        .column(column::f64_prefix("s_", false, "continuous state"))
        .column(column::f64_prefix("pi_", false, "pi_<a> = pi(a|s): V(s) for discrete actions"))
        .column(column::f64_prefix("a_", false, "a_<k>: Q(s, a); a_pi_<k>: pi's action, V(s) = Q(s, a_pi)"))
}

/// A matrix of `f32`, row-major.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Matrix {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// The values, row-major.
    pub data: Vec<f32>,
}

impl Matrix {
    /// Columns (one slice each) as a row-major matrix, each column standardised by `scale`.
    pub fn from_columns(columns: &[&[f64]], scale: &Standardise) -> Matrix {
        let rows = columns.first().map_or(0, |c| c.len());
        let cols = columns.len();
        let mut data = vec![0.0f32; rows * cols];
        for (k, c) in columns.iter().enumerate() {
            for (i, &v) in c.iter().enumerate() {
                // v/sd − mean/sd rather than (v − mean)/sd: no overflow for columns near 1e308
                data[i * cols + k] = (v / scale.sd[k] - scale.mean[k] / scale.sd[k]) as f32;
            }
        }
        Matrix { rows, cols, data }
    }
    /// A matrix of no rows and `cols` columns (what a table without the columns gives).
    pub fn empty(cols: usize) -> Matrix {
        Matrix { rows: 0, cols, data: Vec::new() }
    }
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

/// A per-column affine map x ↦ (x − mean)/sd (sd 1 for a constant column).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Standardise {
    /// Column means.
    pub mean: Vec<f64>,
    /// Column standard deviations.
    pub sd: Vec<f64>,
}

impl Standardise {
    /// The map that leaves `k` columns as they are (probabilities).
    pub fn identity(k: usize) -> Standardise {
        Standardise { mean: vec![0.0; k], sd: vec![1.0; k] }
    }
    /// The means and standard deviations of the columns of `a` and `b` together (a state and its
    /// next state share one map).
    pub fn of(a: &[&[f64]], b: &[&[f64]]) -> Standardise {
        let mut out = Standardise::default();
        for (k, col) in a.iter().enumerate() {
            let other = b.get(k).map_or(&[][..], |c| c);
            let values = col.iter().chain(other);
            let n = (col.len() + other.len()).max(1) as f64;
            // moments of x / max|x|, so that columns near 1e±300 neither overflow nor underflow
            let m = values.clone().fold(0.0f64, |m, x| m.max(x.abs()));
            let m = if m > 0.0 && m.is_finite() { m } else { 1.0 };
            let mean = values.clone().map(|x| x / m).sum::<f64>() / n;
            let var = values.map(|x| (x / m - mean) * (x / m - mean)).sum::<f64>() / n;
            let sd = var.sqrt();
            out.mean.push(mean * m);
            out.sd.push(if sd > 1e-12 * (1.0 + mean.abs()) { sd * m } else { m });
        }
        out
    }
    /// As JSON: `{"mean": [...], "sd": [...]}`.
    pub fn to_json(&self) -> quiver_sdk::serde_json::Value {
        quiver_sdk::serde_json::json!({"mean": self.mean, "sd": self.sd})
    }
    /// Back from [`Standardise::to_json`].
    pub fn from_json(v: &quiver_sdk::serde_json::Value) -> Option<Standardise> {
        let list = |k: &str| -> Option<Vec<f64>> { v.get(k)?.as_array()?.iter().map(|x| x.as_f64()).collect() };
        Some(Standardise { mean: list("mean")?, sd: list("sd")? })
    }
}

/// The actions of the data and the target policy's, as the networks see them.
#[derive(Debug, Clone)]
pub enum Actions {
    /// Action ids; the network has one output per action.
    Discrete {
        /// Each row's action.
        a: Vec<u32>,
        /// Number of actions (one more than the largest id, or the policy columns' count).
        count: usize,
        /// π(· | s′) per row (rows × count).
        pi_next: Matrix,
        /// π(· | s) per row, when given (for V and J).
        pi: Option<Matrix>,
    },
    /// Continuous actions, standardised; the network takes (s, a) and has one output.
    Continuous {
        /// Each row's action (rows × d).
        a: Matrix,
        /// π's action at s′, sampled (rows × d).
        a_next: Matrix,
        /// π's action at s, sampled, when given (for V and J).
        a_pi: Option<Matrix>,
        /// The map that standardised them.
        scale: Standardise,
    },
}

/// Transitions read for a neural critic.
#[derive(Debug, Clone)]
pub struct NeuralData {
    /// Rows.
    pub n: usize,
    /// States, standardised (rows × state dimension).
    pub s: Matrix,
    /// Next states, standardised with the same map.
    pub s_next: Matrix,
    /// The map of the states.
    pub state_scale: Standardise,
    /// The actions.
    pub actions: Actions,
    /// Rewards.
    pub r: Vec<f64>,
    /// Whether the episode ends after the row.
    pub done: Vec<bool>,
    /// The first row of each episode.
    pub first_rows: Vec<u32>,
}

/// What a critic reads of the target policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// π at the next states (`pi_next_<a>`, or `a_next_<k>`): a critic of a given target policy.
    Policy,
    /// The logged actions only: a critic of the data's own actions (IQL's expectile critic).
    Actions,
}

/// [`read_for`] a critic of a given target policy.
pub fn read(t: &TableRef<'_>, scales: Option<(&Standardise, Option<&Standardise>)>) -> Result<NeuralData, PluginError> {
    read_for(t, scales, Needs::Policy)
}

/// Read and check the `transitions` table of a neural critic (errors name the table, column and
/// row). With `scales` (from a checkpoint), states and actions are standardised with them instead
/// of the data's own, so that a network trained before reads them as it did. With
/// [`Needs::Actions`] the policy columns are neither needed nor read.
pub fn read_for(
    t: &TableRef<'_>,
    scales: Option<(&Standardise, Option<&Standardise>)>,
    needs: Needs,
) -> Result<NeuralData, PluginError> {
    t.non_empty()?;
    let continuous = t.has("a_0");
    if continuous && t.has("a") {
        return Err(PluginError::input(
            "table 'transitions' has both 'a' (discrete) and 'a_0' (continuous) action columns: give one kind",
        ));
    }
    if t.has("s") {
        return Err(PluginError::input(
            "table 'transitions' has discrete states 's': the neural critics read continuous states s_<k>, \
             s_next_<k> (write discrete states one-hot, or use critic-lstd with features=onehot)",
        ));
    }
    let a_ids = if continuous {
        vec![0; t.nrows()]
    } else {
        if !t.has("a") {
            return Err(PluginError::input(
                "table 'transitions' has no action column: give 'a' (discrete ids) or a_0, a_1, ... (continuous)",
            ));
        }
        quiver_rl::data::ids("transitions", "a", t.i64("a")?, quiver_rl::data::MAX_ACTIONS)
            .map_err(quiver_sdk::plugin_error)?
    };
    let data = transitions_acting(t, a_ids)?;
    let States::Continuous { s, s_next } = &data.states else {
        return Err(PluginError::input(
            "table 'transitions' has no state columns: give s_0, s_1, ... and s_next_0, s_next_1, ...",
        ));
    };
    let state_scale = match scales {
        Some((st, _)) => {
            if st.mean.len() != s.len() {
                return Err(PluginError::input(format!(
                    "table 'transitions' has {} state columns, the checkpoint's network reads {}",
                    s.len(),
                    st.mean.len()
                )));
            }
            st.clone()
        }
        None => Standardise::of(s, s_next),
    };
    let actions = if continuous {
        let a = numbered_columns(t, "a_")?;
        let a_next = numbered_columns(t, "a_next_")?;
        let a_pi = numbered_columns(t, "a_pi_")?;
        if needs == Needs::Policy && a_next.len() != a.len() {
            return Err(PluginError::input(format!(
                "table 'transitions' has {} action columns a_* but {} a_next_* columns: give the target policy's \
                 action at s_next as a_next_0..a_next_{}",
                a.len(),
                a_next.len(),
                a.len() - 1
            )));
        }
        if !a_pi.is_empty() && a_pi.len() != a.len() {
            return Err(PluginError::input(format!(
                "table 'transitions' has {} action columns a_* but {} a_pi_* columns",
                a.len(),
                a_pi.len()
            )));
        }
        let scale = match scales {
            Some((_, Some(sc))) if sc.mean.len() == a.len() => sc.clone(),
            Some(_) => {
                return Err(PluginError::input(
                    "the checkpoint's network was trained on other actions (discrete, or another dimension)",
                ))
            }
            None => Standardise::of(&a, &[]),
        };
        Actions::Continuous {
            a: Matrix::from_columns(&a, &scale),
            a_next: if a_next.len() == a.len() {
                Matrix::from_columns(&a_next, &scale)
            } else {
                Matrix::empty(a.len())
            },
            a_pi: (!a_pi.is_empty()).then(|| Matrix::from_columns(&a_pi, &scale)),
            scale,
        }
    } else if needs == Needs::Policy {
        let pc = policy_columns(t, &data)?;
        let count = pc.n_actions();
        let identity = Standardise::identity(count);
        Actions::Discrete {
            a: data.a.clone(),
            count,
            pi_next: Matrix::from_columns(&pc.next, &identity),
            pi: pc.current.as_ref().map(|c| Matrix::from_columns(c, &identity)),
        }
    } else {
        let count = data.n_actions;
        Actions::Discrete { a: data.a.clone(), count, pi_next: Matrix::empty(count), pi: None }
    };
    Ok(NeuralData {
        n: data.n,
        s: Matrix::from_columns(s, &state_scale),
        s_next: Matrix::from_columns(s_next, &state_scale),
        state_scale,
        actions,
        r: data.r.to_vec(),
        done: data.done.clone(),
        first_rows: data.first_rows().map(|i| i as u32).collect(),
    })
}
