//! What every critic plugin shares: its common parameters and tables in the manifest, reading
//! them back, and the policy-value summaries of a fitted tabular Q.

use quiver_rl::features::PairIndex;
use quiver_rl::policy::Policy;
use quiver_rl::{States, Transitions};
use quiver_sdk::abi::PluginError;
use quiver_sdk::serde_json::{json, Value};
use quiver_sdk::{choices, column, TableBuilder};

choices! {
    /// The feature map of a linear critic.
    pub enum FeatureKind {
        /// One indicator per (state, action) pair (discrete states): the tabular critic.
        OneHot = "onehot",
        /// Random Fourier features of continuous states, one block per action.
        Rff = "rff",
        /// The columns phi_<k> and phi_next_<k>.
        Given = "given",
    }
}

quiver_sdk::config! {
    /// The parameters every critic shares, embedded in each critic's configuration
    /// (`common: CommonParams = flatten`).
    pub struct CommonParams {
        /// Discount γ ∈ [0, 1).
        pub gamma: f64 = float(Some(0.9), "discount").at_least(0.0).less_than(1.0),
        /// Feature map.
        pub features: FeatureKind =
            choice(FeatureKind::OneHot, "onehot (discrete states), rff (continuous), given (phi_ columns)"),
        /// `rff`: features per action block D.
        pub dim: usize = int(Some(64), "rff: features per action").at_least(1.0).at_most(4096.0),
        /// `rff`: kernel bandwidth h.
        pub bandwidth: f64 = float(Some(1.0), "rff: kernel bandwidth h, in the state's units").greater_than(0.0),
        /// `rff`: seed of the frequencies.
        pub seed: u64 = int(Some(0), "rff: seed of the random frequencies").at_least(0.0),
        /// Ridge λ ≥ 0.
        pub ridge: f64 = float(Some(0.0), "ridge lambda added to the linear system").at_least(0.0),
        /// Tolerance of iterative fits: a relative change, so below 1 (at 1 or above the first
        /// iterate would pass for converged).
        pub tol: f64 = float(Some(1e-10), "iterative fits: stop when the relative change is at most this")
            .greater_than(0.0)
            .less_than(1.0),
        /// Iteration cap of iterative fits.
        pub max_iter: usize = int(Some(10_000), "iterative fits: most iterations").at_least(1.0).at_most(1e7),
    }
}

/// The `transitions` table every critic reads.
pub fn transitions_table() -> TableBuilder {
    TableBuilder::new("transitions", "logged transitions, episodes in order of t")
        .column(column::i64("episode", "episode id; each episode's rows together"))
        .column(column::i64("t", "step within the episode, rising by one"))
        .column(column::i64_opt("s", "discrete state id"))
        .column(column::i64("a", "action id"))
        .column(column::f64("r", "reward"))
        .column(column::i64_opt("s_next", "discrete next state id"))
        .column(column::boolean("done", "1 if the episode ends after this row (no bootstrap)"))
        .column(column::id_or_none("a_next", "the next action taken (sarsa); -1 or empty on done = 1 rows"))
        .column(column::f64_opt("mu_prob", "behaviour probability of a"))
        .column(column::f64_opt("pi_prob", "target probability of a"))
        .column(column::f64_prefix("s_", false, "continuous state s_0, s_1, ... and next state s_next_0, ..."))
        .column(column::f64_prefix("pi_", false, "pi_<a> = pi(a|s), pi_next_<a> = pi(a|s_next) (continuous states)"))
        .column(column::f64_prefix("phi_", false, "given features phi_<k> and phi_next_<k>"))
}

/// The `policy` table of discrete target policies.
pub fn policy_table() -> TableBuilder {
    TableBuilder::new("policy", "the target policy pi(a|s) of discrete states")
        .optional()
        .column(column::i64("s", "state id"))
        .column(column::i64("a", "action id"))
        .column(column::f64("prob", "pi(a|s); each state's rows sum to 1"))
}

/// The `queries` table: where to evaluate the fitted critic.
pub fn queries_table() -> TableBuilder {
    TableBuilder::new("queries", "states (s, or s_<k>) and optionally actions (a) to evaluate")
        .optional()
        .column(column::i64_opt("s", "discrete state id"))
        .column(column::i64_opt("a", "action id: Q(s, a); without it V(s)"))
        .column(column::f64_prefix("s_", false, "continuous state"))
        .column(column::f64_prefix("pi_", false, "pi_<a> = pi(a|s), for V at continuous states"))
        .column(column::f64_prefix("phi_", false, "given features phi_<k>"))
}

/// The JSON of a tabular Q: `{"s": [...], "a": [...], "q": [...]}` over the pairs.
pub fn q_json(pairs: &PairIndex, q: impl Fn(usize) -> f64) -> Value {
    let (s, a): (Vec<u32>, Vec<u32>) = pairs.pairs.iter().copied().unzip();
    let v: Vec<f64> = (0..pairs.len()).map(q).collect();
    json!({"s": s, "a": a, "q": v})
}

/// The JSON of V per state: `{"s": [...], "v": [...]}`.
pub fn v_json(v: &[(u32, f64)]) -> Value {
    let (s, vals): (Vec<u32>, Vec<f64>) = v.iter().copied().unzip();
    json!({"s": s, "v": vals})
}

/// V(s) = Σ_a w(a|s) Q(s, a) over the pairs at each state with data, w = π (from a policy table)
/// or, without one, β̂ (the data's own action frequencies: the behaviour value). A state where π
/// takes an action the critic has no value for is an error naming both: its V (and J) would
/// otherwise be left out silently.
pub fn state_values(
    data: &Transitions<'_>,
    pairs: &PairIndex,
    q: &[f64],
    pi: Option<&Policy>,
) -> Result<Vec<(u32, f64)>, PluginError> {
    let States::Discrete { s, .. } = &data.states else { return Ok(Vec::new()) };
    let mut states: Vec<u32> = s.to_vec();
    states.sort_unstable();
    states.dedup();
    match pi {
        Some(pi) => states
            .into_iter()
            .map(|st| {
                quiver_rl::linear::policy_value(pi, st, |s2, a2| pairs.get(s2, a2).map(|k| q[k]))
                    .map(|v| (st, v))
                    .ok_or_else(|| {
                        let a =
                            pi.at(st).and_then(|(acts, _)| acts.iter().copied().find(|&a| pairs.get(st, a).is_none()));
                        PluginError::input(match a {
                            Some(a) => format!(
                                "the target policy takes action {a} at state {st}, which the data never took there: \
                                 the critic has no value for it, so V({st}) and J are not estimable (collect data \
                                 there, or use a policy that stays in the data's support)"
                            ),
                            None => format!("table 'policy' has no row for state {st}, which the data reaches"),
                        })
                    })
            })
            .collect(),
        None => {
            // β̂(a|s) = n(s, a)/n(s), summed in one pass over the rows
            let mut total = std::collections::HashMap::<u32, f64>::new();
            for &st in s {
                *total.entry(st).or_default() += 1.0;
            }
            let mut v = std::collections::HashMap::<u32, f64>::new();
            for (&st, &at) in s.iter().zip(&data.a) {
                *v.entry(st).or_default() += q[pairs.get(st, at).expect("pair with data")] / total[&st];
            }
            Ok(states.into_iter().map(|st| (st, v[&st])).collect())
        }
    }
}

/// J = the mean of V over the episodes' first states (the d₀-weighted value), from a per-state V.
pub fn start_value(data: &Transitions<'_>, v: &[(u32, f64)]) -> Option<f64> {
    let States::Discrete { s, .. } = &data.states else { return None };
    let lookup: std::collections::HashMap<u32, f64> = v.iter().copied().collect();
    let firsts: Vec<f64> = data.first_rows().map(|i| lookup.get(&s[i]).copied()).collect::<Option<Vec<f64>>>()?;
    Some(firsts.iter().sum::<f64>() / firsts.len() as f64)
}

/// The values a critic's `values()` returns: at the rows of the `queries` table when one is given
/// (`query` computes them; they also go into `out["values"]`), else `default`.
pub fn answer(
    tables: &quiver_sdk::Tables<'_>,
    out: &mut Value,
    default: impl FnOnce() -> Vec<f64>,
    query: impl FnOnce(&quiver_sdk::TableRef<'_>) -> Result<Vec<f64>, PluginError>,
) -> Result<Vec<f64>, PluginError> {
    match tables.opt("queries") {
        None => Ok(default()),
        Some(qt) => {
            qt.non_empty()?;
            let v = query(&qt)?;
            out["values"] = json!(v);
            Ok(v)
        }
    }
}

/// Q(s, a) (when the `queries` table has a column `a`) or V(s) (`v(s)`, without it) of a tabular
/// critic at each row of `qt`; a pair or state without a value is an error naming the row.
pub fn tabular_query(
    qt: &quiver_sdk::TableRef<'_>,
    pairs: &PairIndex,
    q: &[f64],
    v: impl Fn(u32) -> Option<f64>,
) -> Result<Vec<f64>, PluginError> {
    let s = qt.i64("s")?;
    let a = qt.i64_opt("a")?;
    let id = |x: i64| u32::try_from(x).unwrap_or(u32::MAX);
    (0..qt.nrows())
        .map(|i| {
            let st = id(s[i]);
            match a {
                Some(a) => pairs.get(st, id(a[i])).map(|k| q[k]).ok_or_else(|| {
                    qt.row_error(
                        "a",
                        i,
                        format_args!("no value for (s, a) = ({}, {}): the fit has no such pair", s[i], a[i]),
                    )
                }),
                None => v(st).ok_or_else(|| qt.row_error("s", i, format_args!("no value for state {}", s[i]))),
            }
        })
        .collect()
}

/// An error unless every value is finite: a fit whose numbers overflowed double precision (rewards
/// near 1e300, a discount near 1) must not leave as nulls with success.
pub fn ensure_finite(
    what: &str,
    values: impl IntoIterator<Item = f64>,
    data: &Transitions<'_>,
) -> Result<(), PluginError> {
    ensure_finite_given(what, values, || largest_reward(data.r))
}

/// The largest |r|.
pub fn largest_reward(r: &[f64]) -> f64 {
    r.iter().fold(0.0f64, |m, r| m.max(r.abs()))
}

/// [`ensure_finite`] where the largest |r| is known (`largest`) rather than read from the data.
pub fn ensure_finite_given(
    what: &str,
    values: impl IntoIterator<Item = f64>,
    largest: impl FnOnce() -> f64,
) -> Result<(), PluginError> {
    if values.into_iter().all(f64::is_finite) {
        return Ok(());
    }
    let largest = largest();
    Err(PluginError::input(format!(
        "the {what} overflow double precision (the largest |r| in table 'transitions' is {largest:e}): rescale the \
         rewards, e.g. divide them by {largest:e}"
    )))
}

/// Record how an iterative fit ended in its summary: `iterations`, `change`, `converged`, and,
/// when the tolerance was not met, a warning (`what stopped at max_iter = … {advice}`).
pub fn report_iterations(
    summary: &mut Value,
    what: &str,
    iterations: usize,
    change: f64,
    tol: f64,
    max_iter: usize,
    advice: &str,
) {
    let converged = change <= tol;
    summary["iterations"] = json!(iterations);
    summary["change"] = json!(change);
    summary["converged"] = json!(converged);
    if !converged {
        summary["warnings"] = json!([format!(
            "{what}stopped at max_iter = {max_iter} with relative change {change:.3e} > tol = {tol:.1e}{advice}"
        )]);
    }
}

/// An error when the feature map does not fit the table's states (one-hot needs discrete ids,
/// rff continuous columns; given features fit any).
pub fn check_features(features: FeatureKind, states: &States<'_>) -> Result<(), PluginError> {
    let msg = match (features, states) {
        (FeatureKind::OneHot, States::Discrete { .. }) | (FeatureKind::Rff, States::Continuous { .. }) => return Ok(()),
        (FeatureKind::Given, _) => return Ok(()),
        (FeatureKind::OneHot, _) => {
            "features=onehot needs discrete states: columns 's' and 's_next' (continuous s_<k> columns take features=rff)"
        }
        (FeatureKind::Rff, _) => {
            "features=rff needs continuous states: columns s_0, s_1, ... and s_next_0, ... (discrete ids take features=onehot)"
        }
    };
    Err(PluginError::input(format!("table 'transitions': {msg}")))
}
