//! The critics' tables, read from the ABI's views into `quiver-rl`'s types without copying the
//! columns.

use quiver_rl::data::{ids, MAX_ACTIONS, MAX_STATES};
use quiver_rl::features::GivenColumns;
use quiver_rl::multi_agent::JointActions;
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

fn id_column(t: &TableRef<'_>, column: &str, limit: usize) -> Result<Vec<u32>, PluginError> {
    ids("transitions", column, t.i64(column)?, limit).map_err(plugin_error)
}

/// Read and check a `transitions` table: `episode`, `t`, `a`, `r`, `done`, and either discrete
/// `s`, `s_next` or continuous `s_<k>`, `s_next_<k>` (or neither, when the features are given as
/// columns); optional `a_next`, `mu_prob`, `pi_prob` ([`Transitions::new`] checks the episodes).
/// Every error names the table, column and row.
pub fn transitions<'a>(t: &TableRef<'a>) -> Result<Transitions<'a>, PluginError> {
    // an empty table is refused as empty before any column is read (transitions_acting checks again)
    t.non_empty()?;
    let a = id_column(t, "a", MAX_ACTIONS)?;
    transitions_acting(t, a)
}

/// [`transitions`] with each row's action given (a multi-agent log's joint action ids).
pub fn transitions_acting<'a>(t: &TableRef<'a>, a: Vec<u32>) -> Result<Transitions<'a>, PluginError> {
    t.non_empty()?;
    let episode = t.i64("episode")?;
    let step = t.i64("t")?;
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

/// A multi-agent log: the `transitions` table with one action column per agent, `a_0 … a_{n−1}`
/// (each an id in 0..[`MAX_ACTIONS`]), and a `policy` table of the agents' own policies (`s`,
/// `agent`, `a`, `prob`: π_i(a|s), each agent's rows summing to 1 at a state). Returns the data
/// with each row's joint action id, the joint actions' layout and each agent's policy.
pub fn multi_agent<'a>(tables: &Tables<'a>) -> Result<(Transitions<'a>, JointActions, Vec<Policy>), PluginError> {
    let t = tables.get("transitions")?;
    t.non_empty()?;
    let mut columns = Vec::new();
    while t.has(&format!("a_{}", columns.len())) {
        let name = format!("a_{}", columns.len());
        columns.push(id_column(&t, &name, MAX_ACTIONS)?);
    }
    if columns.is_empty() {
        return Err(PluginError::input(format!(
            "table 'transitions' needs one action column per agent, a_0, a_1, ... (columns: {})",
            t.column_names().join(", ")
        )));
    }
    let p = tables.get("policy")?;
    p.non_empty()?;
    let (ps, agent, pa, prob) = (p.i64("s")?, p.i64("agent")?, p.i64("a")?, p.f64("prob")?);
    let n = columns.len();
    p.check_each("agent", agent, |x| (0..n as i64).contains(&x), &format!("is not an agent of the data (0..{n})"))?;
    p.check_each("s", ps, |x| x >= 0 && (x as u64) < MAX_STATES as u64, &format!("must be an id in 0..{MAX_STATES}"))?;
    p.check_each(
        "a",
        pa,
        |x| x >= 0 && (x as u64) < MAX_ACTIONS as u64,
        &format!("must be an id in 0..{MAX_ACTIONS}"),
    )?;
    p.check_each("prob", prob, |x| (0.0..=1.0).contains(&x), "is not a probability in [0, 1]")?;
    // each (agent, s, a) once, and each agent's probabilities at a state summing to 1: checked
    // here on the whole table, so that the rows named are the table's
    let mut seen = std::collections::HashMap::new();
    let mut sums: std::collections::BTreeMap<(i64, i64), (f64, usize)> = std::collections::BTreeMap::new();
    for r in 0..agent.len() {
        if let Some(first) = seen.insert((agent[r], ps[r], pa[r]), r) {
            return Err(p.row_error(
                "a",
                r,
                format!(
                    "agent {}, state {}, action {} is given twice (first at row {})",
                    agent[r],
                    ps[r],
                    pa[r],
                    first + 1
                ),
            ));
        }
        let e = sums.entry((agent[r], ps[r])).or_insert((0.0, r));
        e.0 += prob[r];
    }
    for ((i, st), (total, row)) in sums {
        if (total - 1.0).abs() > quiver_rl::policy::SUM_TOLERANCE {
            return Err(p.row_error(
                "prob",
                row,
                format!("agent {i}'s probabilities at state {st} sum to {}, not 1", quiver_sdk::compact(total)),
            ));
        }
    }
    let mut policies = Vec::with_capacity(n);
    for i in 0..n {
        let rows: Vec<usize> = (0..agent.len()).filter(|&r| agent[r] == i as i64).collect();
        if rows.is_empty() {
            return Err(PluginError::input(format!("table 'policy' has no row for agent {i}")));
        }
        let pick = |v: &[i64]| rows.iter().map(|&r| v[r]).collect::<Vec<i64>>();
        let probs: Vec<f64> = rows.iter().map(|&r| prob[r]).collect();
        policies.push(Policy::from_rows(&pick(ps), &pick(pa), &probs).map_err(plugin_error)?);
    }
    let sizes: Vec<u32> = columns
        .iter()
        .zip(&policies)
        .map(|(c, pi)| (c.iter().max().map_or(0, |&m| m + 1)).max(pi.n_actions() as u32))
        .collect();
    let joint = JointActions::new(sizes).map_err(plugin_error)?;
    let ids: Vec<u32> =
        (0..t.nrows()).map(|r| joint.encode(&columns.iter().map(|c| c[r]).collect::<Vec<u32>>())).collect();
    let data = transitions_acting(&t, ids)?;
    // every agent's policy where the data bootstraps
    for pi in &policies {
        pi.check_covers(&data).map_err(plugin_error)?;
    }
    Ok((data, joint, policies))
}
