//! `ope`: off-policy evaluation — the value of a target policy π from data logged by another
//! policy μ, each estimate with a confidence interval (the formulas are in `quiver_rl::ope`).
//!
//! * From a `transitions` table (episodes): TIS, PDIS, SN-PDIS (Precup, Sutton & Singh 2000),
//!   and, for discrete states with a `policy` table, DM and per-decision DR (Jiang & Li 2016) with
//!   Q̂ from a `q` table or, by default, the one-hot LSTD-Q of π fitted on the same data.
//! * From a `bandit` table (contextual bandit logs, Open Bandit Pipeline's inputs: `a`, `r`,
//!   `mu_prob`, `pi_<k>` and `qhat_<k>` for every action k): IPW, SNIPW, DM, DR, Switch-DR
//!   (Wang, Agarwal & Dudík 2017), DRos (Su, Dimakopoulou, Krishnamurthy & Dudík 2020).
//!
//! Intervals over episodes or rows, each marked `valid: asymptotic | finite-sample`: `t` and
//! `bootstrap` (seeded, counter-based: the same draws on any number of threads and on the GPU)
//! are asymptotic; `betting`, `empirical-bernstein` and `hoeffding` hold at every n from bounds
//! the user declares — `reward_range=lo,hi` (every kind) and `weight_max` (a bound on π/μ per
//! step: always for `empirical-bernstein` and `hoeffding`, for DR under `betting`), see
//! `quiver_rl::ope_bounds`. SNIPW's `t` interval is the delta method's; SN-PDIS's (and SNIPW's
//! otherwise) the bootstrap, as are DM's, Switch-DR's and DRos's under a finite-sample kind.
//!
//! CUDA: the per-episode cumulative weights (a segmented scan) and the bootstrap's resampled sums
//! run on the GPU; the bandit estimators' single pass stays on the CPU cores.

use quiver_rl::bootstrap::Plan;
use quiver_rl::features::NextTarget;
use quiver_rl::linear;
use quiver_rl::ope::{self, BadRow, BanditInput, CiMethod, CiSpec, Interval, TrajectoryInput};
use quiver_rl::ope_bounds::{Declared, Range1};
use quiver_rl::{RlError, States};
use quiver_sdk::abi::abi_stable::std_types::RVec;
use quiver_sdk::abi::{ErrorKind, Manifest, PluginError};
use quiver_sdk::plugin_error;
use quiver_sdk::serde_json::{json, Map, Value};
use quiver_sdk::{column, Context, CriticImpl, ManifestBuilder, Plugin, TableBuilder, Tables};
use quiver_sdk::{Created, CriticResult, Family};
use std::collections::HashMap;

mod parts;

/// Most elementary steps a bootstrap may take (a request past it is refused, not served for hours).
pub const MAX_BOOTSTRAP_WORK: f64 = 5e9;

quiver_sdk::config! {
    /// The parameters as given (checked against their declared types and ranges, and against each
    /// other: the declared bounds an interval kind needs); [`Config`] is what the method computes
    /// with.
    pub struct Settings {
        /// Discount γ ∈ [0, 1].
        pub gamma: f64 = float(Some(0.9), "discount of the return").at_least(0.0).at_most(1.0),
        /// Interval kind.
        pub ci: CiMethod = choice(
            CiMethod::Bootstrap,
            "interval: bootstrap or t (asymptotic); betting, empirical-bernstein or hoeffding (finite-sample: need reward_range)"
        ),
        /// The rewards' declared range, "lo,hi".
        pub reward_range: Option<String> =
            text(None, "lo,hi: every reward lies in [lo, hi] (declared; for the finite-sample intervals)"),
        /// A declared bound on the importance weights.
        pub weight_max: Option<f64> = float(
            None,
            "a bound on pi(a|s)/mu(a|s) for every row (declared; empirical-bernstein, hoeffding, and DR under betting)"
        )
        .at_least(1.0)
        .up_to_inf(),
        /// Interval level.
        pub alpha: f64 = level(0.05, "intervals at level 1 - alpha"),
        /// Bootstrap resamples.
        pub resamples: usize = int(Some(1000), "bootstrap resamples").at_least(10.0).at_most(1e6),
        /// Bootstrap seed.
        pub seed: u64 = int(Some(0), "bootstrap seed").at_least(0.0),
        /// Switch-DR threshold λ.
        pub switch_lambda: f64 =
            float(Some(100.0), "Switch-DR: DR where the weight is at most this, DM above").at_least(0.0).up_to_inf(),
        /// DRos shrinkage λ.
        pub dros_lambda: f64 =
            float(Some(100.0), "DRos: shrunk weight lambda w / (w^2 + lambda)").at_least(0.0).up_to_inf(),
        /// Ridge of the fallback LSTD-Q.
        pub ridge: f64 = float(Some(0.0), "ridge of the fallback one-hot LSTD-Q (DM, DR)").at_least(0.0),
    }
}

impl quiver_sdk::PluginConfig for Settings {
    fn validate(&self) -> Result<(), PluginError> {
        declared_bounds(self).map(|_| ())
    }
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Discount γ ∈ [0, 1].
    pub gamma: f64,
    /// Interval method, level, resamples, seed.
    pub ci: CiSpec,
    /// Switch-DR threshold λ.
    pub switch_lambda: f64,
    /// DRos shrinkage λ.
    pub dros_lambda: f64,
    /// Ridge of the fallback LSTD-Q.
    pub ridge: f64,
}

/// The estimator.
pub struct Ope {
    config: Config,
    ctx: Context,
    result: Option<(Vec<f64>, Value)>,
}

fn interval_json(iv: &Interval) -> Value {
    json!({
        "estimate": iv.estimate,
        "lower": quiver_sdk::json_f64(iv.lower),
        "upper": quiver_sdk::json_f64(iv.upper),
        "valid": iv.valid.name(),
    })
}

/// The bandit result: the six estimates (the critic's values) and the summary's fields.
fn bandit_output(e: &ope::BanditEstimates, rows: usize, note: Option<String>) -> (Vec<f64>, Map<String, Value>) {
    let mut out = Map::new();
    out.insert("mode".into(), json!("bandit"));
    out.insert("rows".into(), json!(rows));
    let named =
        [("ipw", e.ipw), ("snipw", e.snipw), ("dm", e.dm), ("dr", e.dr), ("switch_dr", e.switch_dr), ("dros", e.dros)];
    for (name, iv) in &named {
        out.insert((*name).into(), interval_json(iv));
    }
    out.insert("ess".into(), json!(e.ess));
    if let Some(note) = note {
        out.insert("notes".into(), json!([note]));
    }
    (named.iter().map(|(_, iv)| iv.estimate).collect(), out)
}

/// `Some(())` when every estimate and interval end is finite.
fn named_finite(ivs: &[Interval]) -> Option<()> {
    ivs.iter().all(|iv| iv.estimate.is_finite() && iv.lower.is_finite() && iv.upper.is_finite()).then_some(())
}

impl Ope {
    /// The resampler of the resolved device.
    fn resample(&self, plan: &Plan<'_>) -> Result<Vec<Vec<f64>>, RlError> {
        self.ctx.dispatch(|| Ok(plan.stats_cpu()), || quiver_rl::gpu::resample_stats_cuda(plan))
    }

    /// Refuse a bootstrap past [`MAX_BOOTSTRAP_WORK`] (or the memory of its unit matrix: 12
    /// bytes per value) before it starts.
    fn check_work(&self, units: usize, entries: usize, what: &str) -> Result<(), PluginError> {
        quiver_sdk::memory::reserve(entries as f64 * 12.0, "the bootstrap's per-unit values")?;
        let c = &self.config;
        let work = c.ci.resamples as f64 * (units + entries) as f64;
        if work > MAX_BOOTSTRAP_WORK {
            return Err(PluginError::new(
                quiver_sdk::abi::ErrorKind::Unsupported,
                format!(
                    "the bootstrap would take {} resamples x ({units} {what} + {entries} values) = {work:.2e} steps \
                     (limit {MAX_BOOTSTRAP_WORK:.0e}): lower 'resamples'{}",
                    c.ci.resamples,
                    if what == "rows" { ", or use ci = t (no bootstrap)" } else { "" }
                ),
            ));
        }
        Ok(())
    }

    fn bandit(&self, t: &quiver_sdk::TableRef<'_>) -> Result<(Vec<f64>, Map<String, Value>), PluginError> {
        if t.nrows() < 2 {
            return Err(PluginError::input("table 'bandit' needs at least 2 rows for an interval"));
        }
        self.with_bandit_input(t, 0, |input, refuse| self.bandit_run(t, input, refuse))
    }

    /// Read table `t` as a bandit log and hand `f` the input and the words of a refused row.
    fn with_bandit_input<T>(
        &self,
        t: &quiver_sdk::TableRef<'_>,
        first: u64,
        f: impl FnOnce(&BanditInput<'_>, &dyn Fn(BadRow) -> RlError) -> Result<T, PluginError>,
    ) -> Result<T, PluginError> {
        let pi = quiver_critic_kit::read::numbered_columns(t, "pi_")?;
        let qhat = quiver_critic_kit::read::numbered_columns(t, "qhat_")?;
        if pi.is_empty() || pi.len() != qhat.len() {
            return Err(PluginError::input(format!(
                "table 'bandit' needs pi_0..pi_<K-1> (the target's probabilities) and as many qhat_<k> (the reward \
                 model), one of each per action; it has {} pi_ and {} qhat_",
                pi.len(),
                qhat.len()
            )));
        }
        let c = &self.config;
        let (a, r, mu) = (t.i64("a")?, t.f64("r")?, t.f64("mu_prob")?);
        let k = pi.len();
        let declared = c.ci.method.finite().and(c.ci.declared);
        let input = BanditInput {
            a,
            r,
            mu,
            pi,
            qhat,
            switch_lambda: c.switch_lambda,
            dros_lambda: c.dros_lambda,
            declared,
            first,
        };
        let refuse = |bad: BadRow| match bad {
            BadRow::Action(i) => RlError::row(
                t.role(),
                "a",
                i,
                format_args!("value {} must be an action in 0..{k} (one pi_<k> per action)", a[i]),
            ),
            BadRow::Mu(i) => RlError::row(
                t.role(),
                "mu_prob",
                i,
                format_args!("value {} is not a probability in (0, 1]", quiver_sdk::compact(mu[i])),
            ),
            BadRow::Pi(i, j) => RlError::row(
                t.role(),
                format!("pi_{j}"),
                i,
                format_args!("value {} is not a probability in [0, 1]", quiver_sdk::compact(input.pi[j][i])),
            ),
            BadRow::Sum(i, total) => {
                RlError::row(t.role(), "pi_0", i, format_args!("the pi_* columns sum to {total}, not 1"))
            }
            BadRow::Reward(i) => RlError::row(
                t.role(),
                "r",
                i,
                format_args!("value {} is outside {}", quiver_sdk::compact(r[i]), range_text(c)),
            ),
            BadRow::Weight(i, w) => RlError::row(
                t.role(),
                "mu_prob",
                i,
                format_args!(
                    "the weight pi/mu = {} is above weight_max = {}: the declared bound does not hold",
                    quiver_sdk::compact(w),
                    quiver_sdk::compact(c.ci.declared.and_then(|d| d.weight_max).unwrap_or(f64::NAN))
                ),
            ),
        };
        f(&input, &refuse)
    }

    /// The one-table bandit estimates of `input` (table `t`).
    fn bandit_run(
        &self,
        t: &quiver_sdk::TableRef<'_>,
        input: &BanditInput<'_>,
        refuse: &dyn Fn(BadRow) -> RlError,
    ) -> Result<(Vec<f64>, Map<String, Value>), PluginError> {
        let c = &self.config;
        let (a, r, mu) = (input.a, input.r, input.mu);
        if ope::bandit_needs_bootstrap(&c.ci) {
            self.check_work(t.nrows(), t.nrows() * ope::BANDIT_VALUES, "rows")?;
        }
        let e = ope::bandit(input, &c.ci, &|plan| self.resample(plan), refuse).map_err(plugin_error)?;
        if named_finite(&[e.ipw, e.snipw, e.dm, e.dr, e.switch_dr, e.dros]).is_none() {
            // name the real cause: an importance weight past the double range (a logging
            // probability near 0), or rewards too large to sum
            let weight = |i: usize| input.pi[a[i] as usize][i] / mu[i];
            let (wi, wmax) =
                (0..t.nrows())
                    .map(|i| (i, weight(i)))
                    .fold((0, 0.0f64), |b, x| if x.1 > b.1 || x.1.is_nan() { x } else { b });
            if !wmax.is_finite() || wmax > 1e100 {
                return Err(t.row_error(
                    "mu_prob",
                    wi,
                    format_args!(
                        "the importance weight pi/mu = {} (mu_prob = {}) overflows the estimates: a logging probability \
                         this close to 0 gives the row a weight no estimate survives; check mu_prob",
                        quiver_sdk::compact(wmax),
                        quiver_sdk::compact(mu[wi])
                    ),
                ));
            }
            let largest = r.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            return Err(PluginError::input(format!(
                "the estimates overflow double precision (the largest |r| in table 'bandit' is {largest:e}): rescale the rewards"
            )));
        }
        let note = e.model_outside.map(|(i, k)| model_note(c, i, k, input.qhat[k][i]));
        Ok(bandit_output(&e, t.nrows(), note))
    }

    /// Read the trajectories' tables: the transitions, the importance weights, and the model for DM
    /// and DR. `by_parts`: the tables are a partition of the episodes, and a model fitted on the
    /// data (the one-table run's, from all of them) cannot be.
    fn prepare<'t>(&self, tables: &Tables<'t>, by_parts: bool) -> Result<Prepared<'t>, PluginError> {
        let c = &self.config;
        let t = tables.get("transitions")?;
        let data = quiver_critic_kit::read::transitions(&t)?;
        let mu = data.mu_prob.ok_or_else(|| {
            PluginError::input(
                "table 'transitions' has no column 'mu_prob' (the behaviour's probability of a): OPE needs it",
            )
        })?;
        let policy = tables.opt("policy").map(|p| quiver_critic_kit::read::policy(&p)).transpose()?;
        let rho: Vec<f64> = match (&policy, data.pi_prob, &data.states) {
            (Some(pi), pi_col, States::Discrete { s, .. }) => {
                // two statements of the target's probabilities must agree: otherwise which one the
                // estimate used would be a silent choice
                if let Some(pp) = pi_col {
                    let off = (0..data.n).find(|&i| {
                        let want = pi.prob(s[i], data.a[i]);
                        (pp[i] - want).abs() > 1e-9 * want.abs().max(1e-300) && (pp[i] - want).abs() > 1e-12
                    });
                    if let Some(i) = off {
                        return Err(t.row_error(
                            "pi_prob",
                            i,
                            format_args!(
                                "value {} contradicts the 'policy' table, which gives pi({} | {}) = {}: give one of them, \
                                 or make them agree",
                                quiver_sdk::compact(pp[i]),
                                data.a[i],
                                s[i],
                                quiver_sdk::compact(pi.prob(s[i], data.a[i]))
                            ),
                        ));
                    }
                }
                (0..data.n).map(|i| pi.prob(s[i], data.a[i]) / mu[i]).collect()
            }
            (_, Some(pp), _) => (0..data.n).map(|i| pp[i] / mu[i]).collect(),
            _ => return Err(PluginError::input(
                "give the target's probability of each logged action: column 'pi_prob' in table 'transitions', or a \
                     'policy' table (discrete states)",
            )),
        };
        if let (Some(_), Some(d)) = (c.ci.method.finite(), c.ci.declared) {
            if let Some(i) = data.r.iter().position(|&x| !(x >= d.reward.0 && x <= d.reward.1)) {
                return Err(t.row_error(
                    "r",
                    i,
                    format_args!("value {} is outside {}", quiver_sdk::compact(data.r[i]), range_text(c)),
                ));
            }
            if let Some(wmax) = d.weight_max {
                if let Some(i) = rho.iter().position(|&x| x > wmax) {
                    return Err(t.row_error(
                        "mu_prob",
                        i,
                        format_args!(
                            "the ratio pi/mu = {} is above weight_max = {}: the declared bound does not hold",
                            quiver_sdk::compact(rho[i]),
                            quiver_sdk::compact(wmax)
                        ),
                    ));
                }
            }
        }
        // a model for DM and DR: discrete states and a policy table
        let mut notes = Vec::new();
        let mut model_range = None;
        let model: Option<(Vec<f64>, Vec<f64>)> = match (&policy, &data.states) {
            (Some(pi), States::Discrete { s, .. }) => {
                pi.check_covers(&data).map_err(plugin_error)?;
                let q_of: HashMap<(u32, u32), f64> = match tables.opt("q") {
                    Some(qt) => {
                        let (qs, qa, qv) = (qt.i64("s")?, qt.i64("a")?, qt.f64("q")?);
                        qt.check_each("s", qs, |x| x >= 0 && x <= u32::MAX as i64, "is not a state id")?;
                        qt.check_each("a", qa, |x| x >= 0 && x <= u32::MAX as i64, "is not an action id")?;
                        // a pair given twice is a contradiction to point out, not one to settle silently
                        let mut q_of = HashMap::with_capacity(qt.nrows());
                        for i in 0..qt.nrows() {
                            if let Some(first) = q_of.insert((qs[i] as u32, qa[i] as u32), (i, qv[i])) {
                                return Err(qt.row_error(
                                    "s",
                                    i,
                                    format_args!(
                                        "the pair (s, a) = ({}, {}) is given twice (rows {} and {}): give each once",
                                        qs[i],
                                        qa[i],
                                        first.0 + 1,
                                        i + 1
                                    ),
                                ));
                            }
                        }
                        q_of.into_iter().map(|(k, (_, v))| (k, v)).collect()
                    }
                    None if by_parts => {
                        return Err(PluginError::new(
                            ErrorKind::Unsupported,
                            "a partitioned run of trajectories with a 'policy' table needs a 'q' table (Q-hat for DM \
                             and DR): the one-table run fits Q-hat on all the episodes, which no partition sees; or \
                             give the target's probabilities as column 'pi_prob' and no policy table (TIS, PDIS, \
                             SN-PDIS)",
                        ))
                    }
                    None => {
                        let target = NextTarget::Policy(pi);
                        let pairs = linear::onehot_index(&data, target).map_err(plugin_error)?;
                        let mo = linear::accumulate_onehot(&data, &pairs, target);
                        let sol = linear::solve_lstd(&mo, c.gamma.min(1.0), c.ridge).map_err(plugin_error)?;
                        notes
                            .push("Q-hat: the one-hot LSTD-Q of the target policy fitted on the same data".to_string());
                        pairs.pairs.iter().zip(sol.theta.iter()).map(|(&k, &v)| (k, v)).collect()
                    }
                };
                // V̂ is a π-average of Q̂, so Q̂'s range over the table bounds both
                let (qlo, qhi) =
                    q_of.values().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
                model_range = Some((Range1 { a: qlo, b: qhi }, tables.opt("q").is_some()));
                let q = |st: u32, at: u32| q_of.get(&(st, at)).copied();
                let v = |st: u32| linear::policy_value(pi, st, q);
                let mut qs = Vec::with_capacity(data.n);
                let mut vs = Vec::with_capacity(data.n);
                for (&st, &at) in s.iter().zip(&data.a) {
                    let missing = |what: String| PluginError::input(what);
                    qs.push(q(st, at).ok_or_else(|| {
                        missing(format!("table 'q' has no row for (s, a) = ({st}, {at}), which the data visit"))
                    })?);
                    vs.push(v(st).ok_or_else(|| {
                        missing(format!("no value for state {st}: table 'q' lacks an action pi takes there"))
                    })?);
                }
                Some((qs, vs))
            }
            _ => {
                notes.push("dm and dr need discrete states and a 'policy' table".to_string());
                None
            }
        };
        let w = self
            .ctx
            .dispatch(
                || Ok(ope::episode_weights(&rho, &data.episodes)),
                || quiver_rl::gpu::episode_weights_cuda(&rho, &data.episodes),
            )
            .map_err(plugin_error)?;
        let ids: Vec<u64> = data.episode_ids.iter().map(|&e| e as u64).collect();
        // the unit matrix holds 4 values per episode, 2 per row and one carried weight per episode
        self.check_work(data.episodes.len(), 5 * data.episodes.len() + 2 * data.n, "episodes")?;
        Ok(Prepared { data, w, model, model_range, notes, ids })
    }

    fn trajectories(&self, tables: &Tables<'_>) -> Result<(Vec<f64>, Map<String, Value>), PluginError> {
        let c = &self.config;
        let p = self.prepare(tables, false)?;
        if p.data.episodes.len() < 2 {
            return Err(PluginError::input("table 'transitions' needs at least 2 episodes for an interval"));
        }
        let e = ope::trajectory(&p.input(), c.gamma, &c.ci, &|plan| self.resample(plan)).map_err(plugin_error)?;
        trajectory_output(&e, p.data.episodes.len(), &p.notes, |ivs| {
            quiver_critic_kit::setup::ensure_finite(
                "estimates",
                ivs.iter().flat_map(|iv| [iv.estimate, iv.lower, iv.upper]),
                &p.data,
            )
        })
    }
}

/// The trajectories' tables as read ([`Ope::prepare`]).
struct Prepared<'t> {
    data: quiver_rl::Transitions<'t>,
    w: Vec<f64>,
    model: Option<(Vec<f64>, Vec<f64>)>,
    model_range: Option<(Range1, bool)>,
    notes: Vec<String>,
    ids: Vec<u64>,
}

impl Prepared<'_> {
    fn input(&self) -> TrajectoryInput<'_> {
        TrajectoryInput {
            ids: &self.ids,
            episodes: &self.data.episodes,
            r: self.data.r,
            w: &self.w,
            model: self.model.as_ref().map(|(q, v)| (&q[..], &v[..])),
            model_range: self.model_range,
        }
    }
}

/// The trajectory result: the estimates and their intervals, after `finite` has checked them.
fn trajectory_output(
    e: &ope::TrajectoryEstimates,
    episodes: usize,
    notes: &[String],
    finite: impl FnOnce(&[Interval]) -> Result<(), PluginError>,
) -> Result<(Vec<f64>, Map<String, Value>), PluginError> {
    let all: Vec<Interval> = [Some(e.tis), Some(e.pdis), Some(e.sn_pdis), e.dm, e.dr].into_iter().flatten().collect();
    finite(&all)?;
    let mut out = Map::new();
    out.insert("mode".into(), json!("trajectory"));
    out.insert("episodes".into(), json!(episodes));
    let mut named = vec![("tis", e.tis), ("pdis", e.pdis), ("sn_pdis", e.sn_pdis)];
    if let (Some(dm), Some(dr)) = (e.dm, e.dr) {
        named.push(("dm", dm));
        named.push(("dr", dr));
    }
    for (name, iv) in &named {
        out.insert((*name).into(), interval_json(iv));
    }
    out.insert("ess".into(), json!(e.ess));
    if !notes.is_empty() {
        out.insert("notes".into(), json!(notes));
    }
    Ok((named.iter().map(|(_, iv)| iv.estimate).collect(), out))
}

/// The note of a bandit result whose reward model leaves the declared range: `qhat_k` in (0-based)
/// row `row` of the log is `value`.
fn model_note(c: &Config, row: usize, k: usize, value: f64) -> String {
    format!(
        "dr: qhat_{k} in row {} is {}, outside {}, so DR's values have no declared bound and its interval is the \
         bootstrap (asymptotic); clip the reward model to the range for a finite-sample one",
        row + 1,
        quiver_sdk::compact(value),
        range_text(c)
    )
}

/// `reward_range [lo, hi]`, for messages.
fn range_text(c: &Config) -> String {
    c.ci.declared.map_or("the reward range".into(), |d| {
        format!("reward_range [{}, {}]", quiver_sdk::compact(d.reward.0), quiver_sdk::compact(d.reward.1))
    })
}

/// What the result's intervals are, in a sentence for `ci_note`.
fn ci_note(c: &Config) -> String {
    let biased = "dm, switch_dr and dros are biased unless Q-hat is right: their intervals are for the estimator's \
                  own expectation";
    match c.ci.method {
        CiMethod::Bootstrap => format!("every interval is a percentile bootstrap (asymptotic); {biased}"),
        CiMethod::T => format!(
            "t intervals (asymptotic); sn_pdis: a bootstrap interval; snipw: the delta method's t interval; {biased}"
        ),
        m => {
            let bounded = c.ci.declared.and_then(|d| d.weight_max).is_some();
            let (valid, rest) = match (bounded, m == CiMethod::Betting) {
                (true, true) => ("ipw, snipw, dr, tis, pdis", "sn_pdis"),
                (true, false) => ("ipw, dr, tis, pdis", "snipw, sn_pdis"),
                (false, _) => ("ipw, tis, pdis (dr and snipw need weight_max for one)", "snipw, sn_pdis, dr"),
            };
            format!(
                "{m} intervals, valid at every n given reward_range (and weight_max), for {valid} (trajectory dr: with a \
                 'q' table fitted on other data; with the in-sample LSTD-Q the episodes are not independent and dr's \
                 interval is marked asymptotic); {rest}, dm, switch_dr and dros: bootstrap intervals (asymptotic); \
                 {biased}"
            )
        }
    }
}

/// The declared bounds from `reward_range` ("lo,hi") and `weight_max`, checked against the interval
/// kind: the finite-sample kinds need them, and say why when they are missing.
fn declared_bounds(s: &Settings) -> Result<Option<Declared>, PluginError> {
    let (method, weight_max) = (s.ci, s.weight_max);
    let range = match s.reward_range.as_deref() {
        None => None,
        Some(text) => {
            let parts: Vec<Option<f64>> = text.split(',').map(|p| p.trim().parse::<f64>().ok()).collect();
            match parts[..] {
                [Some(lo), Some(hi)] if lo.is_finite() && hi.is_finite() && lo < hi => Some((lo, hi)),
                _ => {
                    return Err(PluginError::param(format!(
                    "parameter 'reward_range' = \"{text}\" must be two finite numbers lo,hi with lo < hi (e.g. 0,1): \
                         every reward lies in [lo, hi]"
                )))
                }
            }
        }
    };
    if method.finite().is_none() {
        return Ok(range.map(|reward| Declared { reward, weight_max }));
    }
    let Some(reward) = range else {
        return Err(PluginError::param(format!(
            "ci = {method} is a finite-sample interval and needs the rewards' range declared before the data are seen: \
             set reward_range=lo,hi (e.g. 0,1 for clicks). The observed range is no substitute: it makes the interval \
             neither valid nor tight. (ci = t or bootstrap need no bounds, and are asymptotic.)"
        )));
    };
    if weight_max.is_none() && method.needs_weight_bound() {
        return Err(PluginError::param(format!(
            "ci = {method} needs weight_max, a bound on pi(a|s)/mu(a|s) that holds for every row (e.g. K for a \
             uniform logger over K actions, 1/eps for an eps-floor logger); ci = betting needs only reward_range for \
             ipw, tis and pdis"
        )));
    }
    Ok(Some(Declared { reward, weight_max }))
}

impl Ope {
    /// The interval settings every result reports.
    fn describe_ci(&self, out: &mut Map<String, Value>) {
        let c = &self.config;
        out.insert("ci".into(), json!(c.ci.method.to_string()));
        out.insert("alpha".into(), json!(c.ci.alpha));
        out.insert("ci_note".into(), json!(ci_note(c)));
    }
}

impl CriticImpl for Ope {
    fn fit(&mut self, tables: &Tables<'_>) -> Result<(), PluginError> {
        let (values, mut out) =
            match tables.opt("bandit") {
                Some(_) if tables.opt("transitions").is_some() => return Err(PluginError::input(
                    "tables 'bandit' and 'transitions' were both given: a run evaluates one log, contextual-bandit \
                     rounds or RL trajectories; give one of them",
                )),
                Some(b) => {
                    b.non_empty()?;
                    self.bandit(&b)?
                }
                None => self.trajectories(tables)?,
            };
        self.describe_ci(&mut out);
        self.result = Some((values, Value::Object(out)));
        Ok(())
    }

    fn values(&self, _tables: &Tables<'_>) -> Result<CriticResult, PluginError> {
        let (values, out) = self.result.as_ref().ok_or_else(|| quiver_sdk::state_error("values() before fit()"))?;
        Ok(CriticResult {
            device: self.ctx.device(),
            values: RVec::from(values.clone()),
            json: self.ctx.result_text(out.clone()),
        })
    }
}

/// The plugin.
pub struct OpePlugin;

impl Plugin for OpePlugin {
    fn manifest() -> Manifest {
        ManifestBuilder::new("ope", Family::Critic)
            .version(env!("CARGO_PKG_VERSION"))
            .summary("Off-policy evaluation with confidence intervals: TIS, PDIS, SN-PDIS, DM, DR; bandit IPW, SNIPW, DM, DR, Switch-DR, DRos")
            .guarantee(
                "TIS, PDIS and DR (for any Q-hat) are unbiased for the target's expected discounted return over the \
                 logged horizon when mu_prob > 0 wherever pi_prob > 0; IPW and DR likewise for bandits; the \
                 self-normalised estimators, DM, Switch-DR and DRos trade bias for variance. Intervals: t and \
                 bootstrap are asymptotic; betting, empirical-bernstein and hoeffding cover with probability >= \
                 1 - alpha at every n given the declared reward_range (and weight_max, the bound on pi/mu), for \
                 IPW, DR, TIS and PDIS. Each interval says which (valid).",
            )
            .reference(
                "Precup, Sutton & Singh (2000); Jiang & Li, Doubly robust off-policy value evaluation, ICML (2016); \
                 Wang, Agarwal & Dudik (2017); Su et al., Doubly robust off-policy evaluation with shrinkage, ICML \
                 (2020); Maurer & Pontil (2009); Waudby-Smith & Ramdas, Estimating means of bounded random \
                 variables by betting, JRSSB (2024); Karampatziakis, Mineiro & Ramdas, Off-policy confidence \
                 sequences, ICML (2021); Open Bandit Pipeline and SCOPE-RL (the inputs)",
            )
            .cuda()
            .config::<Settings>()
            .table(quiver_critic_kit::setup::transitions_table().optional())
            .table(quiver_critic_kit::setup::policy_table())
            .table(
                TableBuilder::new("q", "a reward model Q-hat(s, a) for DM and DR (default: one-hot LSTD-Q)")
                    .optional()
                    .column(column::i64("s", "state id"))
                    .column(column::i64("a", "action id"))
                    .column(column::f64("q", "Q-hat(s, a)")),
            )
            .table(
                TableBuilder::new("bandit", "contextual-bandit logs (instead of transitions)")
                    .optional()
                    .column(column::i64("a", "logged action"))
                    .column(column::f64("r", "reward"))
                    .column(column::f64("mu_prob", "behaviour probability of a"))
                    .column(column::f64_prefix("pi_", true, "pi_<k>: target probability of action k"))
                    .column(column::f64_prefix("qhat_", true, "qhat_<k>: the reward model's prediction for action k")),
            )
            // bandit logs with ci=t, by parts (docs/scale.md)
            .mergeable(&["bandit", "transitions"])
            .cut_anywhere(&["bandit"])
            .given_whole(&["policy", "q"])
            .build()
    }

    type Config = Settings;

    fn create(settings: Settings, ctx: Context) -> Result<Created, PluginError> {
        let config = Config {
            gamma: settings.gamma,
            ci: CiSpec {
                declared: declared_bounds(&settings)?,
                method: settings.ci,
                alpha: settings.alpha,
                resamples: settings.resamples,
                seed: settings.seed,
            },
            switch_lambda: settings.switch_lambda,
            dros_lambda: settings.dros_lambda,
            ridge: settings.ridge,
        };
        let parts = parts::OpeByParts(Ope { config: config.clone(), ctx: ctx.clone(), result: None });
        Ok(quiver_sdk::critic(Ope { config, ctx: ctx.clone(), result: None }).mergeable(parts, &ctx))
    }
}

quiver_sdk::export_plugin!(OpePlugin);
