//! The critics' tables, read from the ABI's views into `quiver-rl`'s types without copying the
//! columns.

use quiver_rl::data::{ids, MAX_ACTIONS, MAX_STATES};
use quiver_rl::features::GivenColumns;
use quiver_rl::policy::{Policy, PolicyColumns};
use quiver_rl::{States, TransitionColumns, Transitions};
use quiver_sdk::abi::PluginError;
use quiver_sdk::{plugin_error, TableRef, Tables};

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

fn id_column(t: &TableRef<'_>, column: &'static str, limit: usize) -> Result<Vec<u32>, PluginError> {
    ids("transitions", column, t.i64(column)?, limit).map_err(plugin_error)
}

/// Read and check a `transitions` table: `episode`, `t`, `a`, `r`, `done`, and either discrete
/// `s`, `s_next` or continuous `s_<k>`, `s_next_<k>` (or neither, when the features are given as
/// columns); optional `a_next`, `mu_prob`, `pi_prob` ([`Transitions::new`] checks the episodes).
/// Every error names the table, column and row.
pub fn transitions<'a>(t: &TableRef<'a>) -> Result<Transitions<'a>, PluginError> {
    t.non_empty()?;
    let episode = t.i64("episode")?;
    let step = t.i64("t")?;
    let a = id_column(t, "a", MAX_ACTIONS)?;
    let a_next = t.i64_opt("a_next")?;
    let r = t.f64("r")?;
    let done = t.flags("done")?;
    let mu_prob = t.f64_opt("mu_prob")?;
    let pi_prob = t.f64_opt("pi_prob")?;
    let states = match (t.has("s"), t.has("s_0")) {
        (true, true) => {
            return Err(PluginError::input(format!(
                "table '{}' has both 's' (discrete) and 's_0' (continuous) state columns: give one kind",
                t.role()
            )))
        }
        (true, false) => States::discrete(id_column(t, "s", MAX_STATES)?, id_column(t, "s_next", MAX_STATES)?),
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
    Transitions::new(TransitionColumns { episode, t: step, states, a, a_next, r, done, mu_prob, pi_prob })
        .map_err(plugin_error)
}

/// Read and check a `policy` table (`s`, `a`, `prob`: [`Policy::from_rows`]).
pub fn policy(t: &TableRef<'_>) -> Result<Policy, PluginError> {
    t.non_empty()?;
    Policy::from_rows(t.i64("s")?, t.i64("a")?, t.f64("prob")?).map_err(plugin_error)
}

/// Read the per-row policy columns `pi_next_<a>` and `pi_<a>` of the transitions table
/// ([`PolicyColumns::new`]).
pub fn policy_columns<'a>(t: &TableRef<'a>, data: &Transitions<'_>) -> Result<PolicyColumns<'a>, PluginError> {
    let next = numbered_columns(t, "pi_next_")?;
    let current = numbered_columns(t, "pi_")?;
    PolicyColumns::new(next, current, data).map_err(plugin_error)
}

/// Read the given feature columns `phi_<k>` and `phi_next_<k>` ([`GivenColumns::new`]).
pub fn given_columns<'a>(t: &TableRef<'a>) -> Result<GivenColumns<'a>, PluginError> {
    GivenColumns::new(numbered_columns(t, "phi_")?, numbered_columns(t, "phi_next_")?).map_err(plugin_error)
}

/// The `transitions` table, read and checked, and the `policy` table, checked to cover every
/// state the data bootstrap from: what every critic of a discrete target policy starts with.
pub fn transitions_and_policy<'a>(tables: &Tables<'a>) -> Result<(TableRef<'a>, Transitions<'a>, Policy), PluginError> {
    let t = tables.get("transitions")?;
    let data = transitions(&t)?;
    let pi = policy(&tables.get("policy")?)?;
    pi.check_covers(&data).map_err(plugin_error)?;
    Ok((t, data, pi))
}
