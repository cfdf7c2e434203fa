//! `critic-quantile`: a distributional critic — N quantiles of the discounted return of a target
//! policy π per (s, a), at the fixed point of quantile temporal-difference learning (Dabney,
//! Rowland, Bellemare & Munos, "Distributional reinforcement learning with quantile regression",
//! AAAI 2018; its dynamic-programming form analysed by Rowland et al., "An analysis of quantile
//! temporal-difference learning", JMLR 2024), on tabular (discrete) data.
//!
//! For each pair (s, a) with data, the target distribution is the mixture over the pair's logged
//! rows i (weight 1/n(s, a)) of: a point mass at r_i where the episode ends, else the point masses
//! r_i + γ θ_{j′}(s′_i, a′) with weight π(a′|s′_i)/N for every action a′ and quantile j′. The new
//! θ_j(s, a) minimises the quantile-Huber loss Σ w ρ^κ_{τ̂_j}(z − θ) over the target's atoms z, at
//! the levels τ̂_j = (2j − 1)/2N: with κ = 0 the τ̂_j-quantile of the atoms (the smallest z with
//! F(z) ≥ τ̂_j), with κ > 0 the root of Σ w |τ̂_j − 1{z < θ}| clamp(z − θ, −κ, κ) by bisection. The
//! map is iterated from θ = 0 to a relative change ≤ `tol`. Rewards enter one row at a time, so the
//! reward noise is part of the distribution.
//!
//! With κ = 0 (the default) the target's atoms — rows × actions × N of them a pair — are never
//! written out: each quantile is selected from the pair's rows grouped by next state, rewards
//! sorted once, inside a bracket the contraction gives, and once an iteration picks the same atoms
//! as the one before, the fixed point of the affine map they define is tried and, where T keeps
//! it, is the answer (`quiver_rl::quantile_dp`). 40 000 transitions, N = 128: 3.7 s (the sorted
//! iteration took 13 minutes); 10^6 transitions, N = 64: 3.1 s. κ > 0 keeps the sorted atoms.
//!
//! Outputs per pair the N quantiles and their mean, per state under π the quantiles of the mixture
//! Σ_a π(a|s) (the pair's distribution), and J = the mean over the episodes' first states of the
//! state distributions' means.

use quiver_critic_kit::setup::{self, policy_table, transitions_table, CommonParams, FeatureKind};
use quiver_rl::distributional::{self, QuantileRows};
use quiver_rl::quantile_dp;
use quiver_rl::tabular::EmpiricalModel;
use quiver_rl::Rff;
use quiver_rl::{Policy, States, Transitions};
use quiver_sdk::abi::abi_stable::std_types::RVec;
use quiver_sdk::abi::{ErrorKind, Manifest, PluginError};
use quiver_sdk::plugin_error;
use quiver_sdk::serde_json::{json, Value};
use quiver_sdk::{Context, CriticImpl, ManifestBuilder, Plugin, Tables};
use quiver_sdk::{Created, CriticResult, Family};

/// Most target atoms one iteration may visit with κ > 0 (a request past it is refused, not served
/// for hours).
pub const MAX_ATOMS_PER_ITERATION: f64 = 5e7;

/// Most search steps one iteration may take with κ = 0 (about a second's work on one core).
pub const MAX_SEARCH_STEPS_PER_ITERATION: f64 = 2e9;

/// The θ minimising Σ w ρ^κ_τ(z − θ) over weighted atoms `(z, w)` sorted by z.
pub fn quantile_huber(atoms: &[(f64, f64)], tau: f64, kappa: f64) -> f64 {
    let total: f64 = atoms.iter().map(|a| a.1).sum();
    if kappa == 0.0 {
        let mut acc = 0.0;
        for &(z, w) in atoms {
            acc += w;
            if acc >= tau * total * (1.0 - 1e-12) {
                return z;
            }
        }
        return atoms.last().map_or(0.0, |a| a.0);
    }
    // g(θ) = Σ w |τ − 1{z < θ}| clamp(z − θ, −κ, κ) is continuous and decreasing in θ
    let g = |theta: f64| -> f64 {
        atoms.iter().map(|&(z, w)| w * if z < theta { 1.0 - tau } else { tau } * (z - theta).clamp(-kappa, kappa)).sum()
    };
    quiver_numerics::bisect_decreasing(atoms[0].0, atoms[atoms.len() - 1].0, g)
}

pub use quiver_rl::distributional::levels;

/// The estimator.
pub struct CriticQuantile {
    gamma: f64,
    n: usize,
    kappa: f64,
    tol: f64,
    max_iter: usize,
    common: CommonParams,
    ctx: Context,
    fitted: Option<(Vec<f64>, Value)>,
}

impl CriticQuantile {
    /// One application of the projected distributional Bellman operator.
    fn step(&self, model: &Rows<'_>, theta: &[Vec<f64>], pi: &Policy, tau: &[f64]) -> Vec<Vec<f64>> {
        (0..theta.len())
            .map(|k| {
                let mut atoms: Vec<(f64, f64)> = Vec::new();
                let rows = &model.rows[k];
                let w_row = 1.0 / rows.len() as f64;
                for &i in rows {
                    let r = model.data.r[i];
                    if model.data.done[i] {
                        atoms.push((r, w_row));
                        continue;
                    }
                    let s2 = model.s_next[i];
                    let (acts, probs) = pi.at(s2).expect("policy coverage checked");
                    for (&a2, &p) in acts.iter().zip(probs) {
                        if p == 0.0 {
                            continue;
                        }
                        let k2 = model.model.pairs.get(s2, a2).expect("support checked");
                        let w = w_row * p / self.n as f64;
                        atoms.extend(theta[k2].iter().map(|&q| (r + self.gamma * q, w)));
                    }
                }
                atoms.sort_by(|a, b| a.0.total_cmp(&b.0));
                tau.iter().map(|&t| quantile_huber(&atoms, t, self.kappa)).collect()
            })
            .collect()
    }
}

/// The rows of each pair, and the next states.
struct Rows<'a> {
    data: &'a Transitions<'a>,
    model: &'a EmpiricalModel,
    rows: Vec<Vec<usize>>,
    s_next: &'a [u32],
}

impl CriticImpl for CriticQuantile {
    fn fit(&mut self, tables: &Tables<'_>) -> Result<(), PluginError> {
        match self.common.features {
            FeatureKind::OneHot => self.fit_tabular(tables),
            FeatureKind::Rff => self.fit_rff(tables),
            FeatureKind::Given => Err(PluginError::param(
                "features=given is not available for critic-quantile: the distributional target needs the features \
                 of every action at the next state; use features=rff (continuous states) or onehot (discrete)",
            )),
        }
    }

    fn values(&self, _tables: &Tables<'_>) -> Result<CriticResult, PluginError> {
        let (means, summary) = self.fitted.as_ref().ok_or_else(|| quiver_sdk::state_error("values() before fit()"))?;
        Ok(CriticResult {
            device: self.ctx.device(),
            values: RVec::from(means.clone()),
            json: self.ctx.result_text(summary.clone()),
        })
    }
}

impl CriticQuantile {
    /// Random Fourier features of continuous states: the linear quantile TD fixed point
    /// ([`quiver_rl::distributional`]); values are the per-row means of θ(s_i, a_i).
    fn fit_rff(&mut self, tables: &Tables<'_>) -> Result<(), PluginError> {
        let t = tables.get("transitions")?;
        let data = quiver_critic_kit::read::transitions(&t)?;
        setup::check_features(FeatureKind::Rff, &data.states)?;
        if self.kappa <= 0.0 {
            return Err(PluginError::param(
                "features=rff needs kappa > 0 (the quantile-Huber loss; e.g. --set kappa=1 in the rewards' units): \
                 kappa = 0, the exact quantile, is available with features=onehot",
            ));
        }
        // the quantile-Huber score is bounded by κ: against returns many orders of magnitude larger
        // the ridge, not the data, sets the fit (it "converges" far from the returns); refuse that
        let largest = data.r.iter().fold(0.0f64, |m, r| m.max(r.abs())) / (1.0 - self.gamma);
        if largest > 1e8 * self.kappa {
            return Err(PluginError::param(format!(
                "kappa = {} is negligible against returns up to {largest:.3e} (the largest |r| / (1 - gamma)): the \
                 quantile-Huber fit would be set by the ridge, not the data; set kappa in the returns' units (e.g. \
                 their standard deviation) or rescale the rewards",
                self.kappa
            )));
        }
        let States::Continuous { s, s_next } = &data.states else { unreachable!("checked above") };
        let pcols = quiver_critic_kit::read::policy_columns(&t, &data)?;
        let c = &self.common;
        let rff = Rff::new(s.len(), c.dim, c.bandwidth, c.seed, pcols.n_actions());
        rff.check_phases(c.bandwidth, s, s_next).map_err(plugin_error)?;
        let (psi, psi_next) = quiver_rl::features::rff_matrices(&rff, s, s_next, &data.done).map_err(plugin_error)?;
        let rows = QuantileRows { psi, psi_next, a: &data.a, pi_next: &pcols.next, done: &data.done, r: data.r };
        let fit =
            distributional::fit(&rows, self.n, self.kappa, self.gamma, c.ridge, self.tol, self.max_iter, &self.ctx)
                .map_err(plugin_error)?;
        setup::ensure_finite("quantiles", fit.theta.iter().copied(), &data)?;
        let n_q = self.n;
        let means: Vec<f64> = (0..data.n)
            .map(|i| {
                let q = fit.quantiles(rows.psi.row(i).as_slice().expect("row"), data.a[i] as usize, n_q);
                q.iter().sum::<f64>() / n_q as f64
            })
            .collect();
        let tau = levels(n_q);
        // the return from the episodes' first states under pi: a mixture over those states and pi
        let start = pcols.current.as_ref().map(|cur| {
            let firsts: Vec<usize> = data.first_rows().collect();
            let mut atoms = Vec::new();
            for &i in &firsts {
                let psi_i = rows.psi.row(i);
                for (a, p) in cur.iter().enumerate() {
                    if p[i] > 0.0 {
                        let w = p[i] / firsts.len() as f64;
                        atoms.extend(fit.quantiles(psi_i.as_slice().expect("row"), a, n_q).into_iter().map(|q| (q, w)));
                    }
                }
            }
            atoms.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mean = atoms.iter().map(|(q, w)| q * w).sum::<f64>() / n_q as f64;
            (tau.iter().map(|&t| quantile_huber(&atoms, t, 0.0)).collect::<Vec<f64>>(), mean)
        });
        let mut summary = json!({
            "features": "rff",
            "dim": rff.dim,
            "n_quantiles": n_q,
            "levels": tau,
            "kappa": self.kappa,
            "rows": data.n,
            "episodes": data.episodes.len(),
            "theta": fit.theta.outer_iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
            "theta_layout": "theta[k][a * n_quantiles + j]: feature k, action a, quantile j",
            "start_quantiles": start.as_ref().map(|x| x.0.clone()),
            "j": start.as_ref().map(|x| x.1),
        });
        if start.is_none() {
            summary["notes"] = json!(["j and start_quantiles need pi_<a> = pi(a|s) columns in table 'transitions'"]);
        }
        setup::report_iterations(&mut summary, "", fit.iterations, fit.change, self.tol, self.max_iter, "");
        self.fitted = Some((means, summary));
        Ok(())
    }

    /// Discrete states: the exact tabular fixed point on the empirical model.
    fn fit_tabular(&mut self, tables: &Tables<'_>) -> Result<(), PluginError> {
        let (t, data, pi) = quiver_critic_kit::read::transitions_and_policy(tables)?;
        let model = EmpiricalModel::new(&data).map_err(plugin_error)?;
        let States::Discrete { s, s_next, .. } = &data.states else { unreachable!("EmpiricalModel checked") };
        // the target must keep to pairs with data where it bootstraps
        for (i, (&s2, &d)) in s_next.iter().zip(&data.done).enumerate() {
            if d {
                continue;
            }
            let (acts, probs) = pi.at(s2).expect("coverage checked");
            if let Some((&a2, _)) =
                acts.iter().zip(probs).find(|(&a2, &p)| p > 0.0 && model.pairs.get(s2, a2).is_none())
            {
                return Err(t.row_error(
                    "s_next",
                    i,
                    format_args!("the target policy takes action {a2} at state {s2}, which the data never took there"),
                ));
            }
        }
        let mut rows = vec![Vec::new(); model.len()];
        for i in 0..data.n {
            rows[model.pairs.get(s[i], data.a[i]).expect("pair with data")].push(i);
        }
        // κ = 0: the operator by selection over grouped rows (quiver_rl::quantile_dp), the same
        // atoms the sorted path would pick; κ > 0: the quantile-Huber root over all atoms
        let grouped = (self.kappa == 0.0).then(|| quantile_dp::group_rows(&rows, data.r, &data.done, s_next));
        let (work, limit, what) = match &grouped {
            Some((pairs, states)) => (
                quantile_dp::search_steps(pairs, |i| pi.at(states[i]).map_or(0, |x| x.0.len()), self.n),
                MAX_SEARCH_STEPS_PER_ITERATION,
                "search steps per iteration (pairs x n_quantiles x next atoms x log rows)",
            ),
            None => {
                let support = data
                    .done
                    .iter()
                    .zip(s_next)
                    .map(|(&d, &s2)| if d { 1 } else { pi.at(s2).map_or(0, |x| x.0.len()) });
                (
                    support.map(|x| x as f64).sum::<f64>() * self.n as f64,
                    MAX_ATOMS_PER_ITERATION,
                    "target atoms per iteration (rows x actions x n_quantiles)",
                )
            }
        };
        if work > limit {
            return Err(PluginError::new(
                ErrorKind::Unsupported,
                format!("{work:.2e} {what}, past the limit of {limit:.0e}: lower n_quantiles"),
            ));
        }
        let tau = levels(self.n);
        let mut theta = vec![vec![0.0; self.n]; model.len()];
        let r = Rows { data: &data, model: &model, rows, s_next };
        let pair_of = |s2: u32, a2: u32| model.pairs.get(s2, a2).expect("support checked");
        let mut fast = grouped
            .as_ref()
            .map(|(pairs, states)| quantile_dp::Iteration::new(pairs, states, &pi, &pair_of, self.gamma, &tau));
        let (mut change, mut iterations) = (f64::INFINITY, 0);
        while iterations < self.max_iter {
            let next = match &mut fast {
                Some(it) => it.next(&theta),
                None => self.step(&r, &theta, &pi, &tau),
            };
            (change, _) = quiver_numerics::convergence::relative_change(
                next.iter().flatten().zip(theta.iter().flatten()).map(|(a, b)| (*a, *b)),
            );
            theta = next;
            iterations += 1;
            self.ctx.progress(iterations as u64, self.max_iter as u64, "quantile iterations")?;
            if change <= self.tol {
                break;
            }
        }
        setup::ensure_finite("quantiles", theta.iter().flatten().copied(), &data)?;
        let means: Vec<f64> = theta.iter().map(|q| q.iter().sum::<f64>() / self.n as f64).collect();
        // per state under π: quantiles of the mixture of its pairs' distributions
        let mut states: Vec<u32> = model.at_state.keys().copied().collect();
        states.sort_unstable();
        let mut state_q = Vec::new();
        let mut state_mean = Vec::new();
        let mut state_ids = Vec::new();
        for &st in &states {
            let Some((acts, probs)) = pi.at(st) else { continue };
            let ks: Option<Vec<(usize, f64)>> = acts
                .iter()
                .zip(probs)
                .filter(|x| *x.1 > 0.0)
                .map(|(&a, &p)| model.pairs.get(st, a).map(|k| (k, p)))
                .collect();
            let Some(ks) = ks else { continue };
            let mut atoms: Vec<(f64, f64)> =
                ks.iter().flat_map(|&(k, p)| theta[k].iter().map(move |&q| (q, p))).collect();
            atoms.sort_by(|a, b| a.0.total_cmp(&b.0));
            state_q.push(tau.iter().map(|&t| quantile_huber(&atoms, t, 0.0)).collect::<Vec<f64>>());
            state_mean.push(ks.iter().map(|&(k, p)| p * means[k]).sum::<f64>());
            state_ids.push(st);
        }
        let v: Vec<(u32, f64)> = state_ids.iter().copied().zip(state_mean.iter().copied()).collect();
        let (ps, pa): (Vec<u32>, Vec<u32>) = model.pairs.pairs.iter().copied().unzip();
        let mut summary = json!({
            "n_quantiles": self.n,
            "levels": tau,
            "kappa": self.kappa,
            "rows": data.n,
            "episodes": data.episodes.len(),
            "quantiles": {"s": ps, "a": pa, "q": theta},
            "q": setup::q_json(&model.pairs, |k| means[k]),
            "state_quantiles": {"s": state_ids, "q": state_q},
            "v": setup::v_json(&v),
            "j": setup::start_value(&data, &v),
        });
        setup::report_iterations(&mut summary, "", iterations, change, self.tol, self.max_iter, "");
        self.fitted = Some((means, summary));
        Ok(())
    }
}

quiver_sdk::config! {
    /// The parameters, checked against their declared types and ranges.
    pub struct Settings {
        /// N, the number of quantiles.
        pub n_quantiles: usize = int(Some(32), "N, the quantiles at levels (2j - 1)/2N").at_least(1.0).at_most(10_000.0),
        /// The quantile-Huber threshold κ.
        pub kappa: f64 =
            float(Some(0.0), "quantile-Huber threshold (0: pure quantile regression; rff needs > 0)").at_least(0.0),
        /// The shared critic parameters.
        pub common: CommonParams = flatten,
    }
}

impl quiver_sdk::PluginConfig for Settings {}

/// The plugin.
pub struct CriticQuantilePlugin;

impl Plugin for CriticQuantilePlugin {
    fn manifest() -> Manifest {
        ManifestBuilder::new("critic-quantile", Family::Critic)
            .version(env!("CARGO_PKG_VERSION"))
            .summary("Quantiles of the return of a target policy per (state, action): quantile TD at its fixed point, tabular")
            .guarantee(
                "Returns the fixed point of the quantile-projected distributional Bellman operator of pi on the data's \
                 empirical model (rows' rewards kept individually), to the reported tolerance; quantiles are \
                 nondecreasing in their level. They are the quantile TD fixed point, which approximates the return \
                 distribution's quantiles (exactly for deterministic returns) and whose mean approaches Q^pi as N grows.",
            )
            .reference(
                "Dabney, Rowland, Bellemare & Munos, Distributional RL with quantile regression, AAAI (2018); \
                 Rowland et al., An analysis of quantile temporal-difference learning, JMLR (2024)",
            )
            .config::<Settings>()
            .table(transitions_table())
            .table(policy_table())
            .build()
    }

    type Config = Settings;

    fn create(settings: Settings, ctx: Context) -> Result<Created, PluginError> {
        let common = settings.common;
        Ok(quiver_sdk::critic(CriticQuantile {
            gamma: common.gamma,
            n: settings.n_quantiles,
            kappa: settings.kappa,
            tol: common.tol,
            max_iter: common.max_iter,
            common,
            ctx,
            fitted: None,
        }))
    }
}

quiver_sdk::export_plugin!(CriticQuantilePlugin);
