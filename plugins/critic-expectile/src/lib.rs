//! `critic-expectile`: IQL's expectile critic (Kostrikov, Nair & Levine, "Offline reinforcement
//! learning with implicit Q-learning", ICLR 2022), at the exact fixed point of its two losses
//! rather than after a fixed number of gradient steps:
//!
//!   Q(s, a) = r + γ(1 − d)V(s′) in the least-squares sense,
//!   V(s)    = the τ-expectile of Q(s, a) over the data's actions at s.
//!
//! τ = 0.5 gives the behaviour policy's value; as τ → 1, V tends to the value of the best action
//! the data took at each state (the in-support optimum) — without ever querying an action the
//! data did not take.
//!
//! * `onehot` (discrete states): on the empirical model, V(s) = the τ-expectile of Q(s, ·) under
//!   β̂(·|s), solved exactly per state; the fixed point is a γ-contraction, iterated to `tol`.
//! * `rff` / `given`: linear Q = φᵀθ and V = ψᵀw (ψ the state's random Fourier features, or
//!   `psi_<k>` / `psi_next_<k>` columns); ridge regressions for Q and iteratively reweighted least
//!   squares for the expectile regression of V, alternated to `tol`.

use ndarray::Array2;
use quiver_critic_kit::setup::{self, CommonParams, FeatureKind};
use quiver_rl::expectile::ExpectileRows;
use quiver_rl::tabular::{expectile_fit, EmpiricalModel};
use quiver_rl::{Rff, States, Transitions};
use quiver_sdk::abi::abi_stable::std_types::RVec;
use quiver_sdk::abi::{Manifest, PluginError};
use quiver_sdk::plugin_error;
use quiver_sdk::serde_json::{json, Value};
use quiver_sdk::{Context, CriticImpl, ManifestBuilder, Plugin, Tables};
use quiver_sdk::{Created, CriticResult, Family};

quiver_sdk::config! {
    /// The parameters, checked against their declared types and ranges.
    pub struct Config {
        /// The expectile τ.
        pub tau: f64 =
            float(Some(0.7), "the expectile: 0.5 behaviour value, toward 1 the best in-support action").open(0.0, 1.0),
        /// The shared critic parameters.
        pub common: CommonParams = flatten,
    }
}

impl quiver_sdk::PluginConfig for Config {}

enum Model {
    Tabular { model: EmpiricalModel, q: Vec<f64>, v: Vec<(u32, f64)> },
    Linear { rff: Option<Rff>, theta: Vec<f64>, w: Vec<f64> },
}

/// The estimator.
pub struct CriticExpectile {
    config: Config,
    ctx: Context,
    fitted: Option<(Model, Value)>,
}

impl CriticExpectile {
    fn fit_tabular(&self, data: &Transitions<'_>, summary: &mut Value) -> Result<Model, PluginError> {
        let c = &self.config.common;
        let model = EmpiricalModel::new(data).map_err(plugin_error)?;
        let fit =
            expectile_fit(&model, c.gamma, self.config.tau, c.tol, c.max_iter, &self.ctx).map_err(plugin_error)?;
        setup::ensure_finite("values", fit.q.iter().copied().chain(fit.v.iter().map(|x| x.1)), data)?;
        setup::report_iterations(summary, "", fit.iterations, fit.change, c.tol, c.max_iter, "");
        summary["q"] = setup::q_json(&model.pairs, |k| fit.q[k]);
        summary["v"] = setup::v_json(&fit.v);
        summary["j"] = json!(setup::start_value(data, &fit.v));
        let dead = model.dead_ends();
        if !dead.is_empty() {
            summary["dead_ends"] = json!(dead);
            summary["dead_ends_note"] = json!("next states with no data of their own: their value is taken as 0");
        }
        Ok(Model::Tabular { model, q: fit.q, v: fit.v })
    }

    fn fit_linear(
        &self,
        t: &quiver_sdk::TableRef<'_>,
        data: &Transitions<'_>,
        summary: &mut Value,
    ) -> Result<Model, PluginError> {
        let c = &self.config.common;
        let n = data.n;
        let (rows, rff) = match c.features {
            FeatureKind::Rff => {
                let States::Continuous { s, s_next } = &data.states else {
                    unreachable!("setup::check_features admits rff only with continuous states")
                };
                let rff = Rff::new(s.len(), c.dim, c.bandwidth, c.seed, data.n_actions);
                rff.check_phases(c.bandwidth, s, s_next).map_err(plugin_error)?;
                let (dd, d) = (rff.dim, rff.dim * rff.n_actions);
                if n * (d + 2 * dd) > quiver_rl::expectile::MAX_CACHE {
                    return Err(PluginError::new(
                        quiver_sdk::abi::ErrorKind::Unsupported,
                        format!("{n} rows × {} features: too many for the linear expectile fit; lower dim", d + 2 * dd),
                    ));
                }
                let (psi, psi_next) =
                    quiver_rl::features::rff_matrices(&rff, s, s_next, &data.done).map_err(plugin_error)?;
                // φ(s, a) = e_a ⊗ ψ(s): the row's own action block
                let mut phi = Array2::zeros((n, d));
                for i in 0..n {
                    let a = data.a[i] as usize;
                    phi.row_mut(i).iter_mut().skip(a * dd).take(dd).zip(psi.row(i)).for_each(|(o, v)| *o = *v);
                }
                (ExpectileRows { phi, psi, psi_next, r: data.r }, Some(rff))
            }
            _ => {
                let cols = |prefix: &str| quiver_critic_kit::read::numbered_columns(t, prefix);
                let (phi, psi, psi_next) = (cols("phi_")?, cols("psi_")?, cols("psi_next_")?);
                if phi.is_empty() || psi.is_empty() || psi.len() != psi_next.len() {
                    return Err(PluginError::input(format!(
                        "features=given for the expectile critic needs phi_<k> (Q features), psi_<k> and psi_next_<k> \
                         (V features at s and s_next, as many of each); table 'transitions' has {} phi_, {} psi_, {} psi_next_",
                        phi.len(),
                        psi.len(),
                        psi_next.len()
                    )));
                }
                let dense = |cols: &[&[f64]], skip_done: bool| {
                    Array2::from_shape_fn(
                        (n, cols.len()),
                        |(i, k)| if skip_done && data.done[i] { 0.0 } else { cols[k][i] },
                    )
                };
                (
                    ExpectileRows {
                        phi: dense(&phi, false),
                        psi: dense(&psi, false),
                        psi_next: dense(&psi_next, true),
                        r: data.r,
                    },
                    None,
                )
            }
        };
        let fit = quiver_rl::expectile::fit(&rows, c.gamma, self.config.tau, c.ridge, c.tol, c.max_iter, &self.ctx)
            .map_err(plugin_error)?;
        setup::ensure_finite("values", fit.theta.iter().chain(fit.w.iter()).copied(), data)?;
        setup::report_iterations(summary, "", fit.iterations, fit.change, c.tol, c.max_iter, "");
        let v_start: Vec<f64> = data.first_rows().map(|i| rows.psi.row(i).dot(&fit.w)).collect();
        summary["j"] = json!(v_start.iter().sum::<f64>() / v_start.len() as f64);
        summary["theta"] = json!(fit.theta.to_vec());
        summary["w"] = json!(fit.w.to_vec());
        Ok(Model::Linear { rff, theta: fit.theta.to_vec(), w: fit.w.to_vec() })
    }
}

impl CriticImpl for CriticExpectile {
    fn fit(&mut self, tables: &Tables<'_>) -> Result<(), PluginError> {
        let t = tables.get("transitions")?;
        let data = quiver_critic_kit::read::transitions(&t)?;
        let c = &self.config.common;
        setup::check_features(c.features, &data.states)?;
        let mut summary = json!({
            "features": c.features.to_string(),
            "tau": self.config.tau,
            "rows": data.n,
            "episodes": data.episodes.len(),
        });
        let model = match c.features {
            FeatureKind::OneHot => self.fit_tabular(&data, &mut summary)?,
            _ => self.fit_linear(&t, &data, &mut summary)?,
        };
        self.fitted = Some((model, summary));
        Ok(())
    }

    fn values(&self, tables: &Tables<'_>) -> Result<CriticResult, PluginError> {
        let (model, summary) = self.fitted.as_ref().ok_or_else(|| quiver_sdk::state_error("values() before fit()"))?;
        let mut out = summary.clone();
        let default = || match model {
            Model::Tabular { q, .. } => q.clone(),
            Model::Linear { .. } => Vec::new(),
        };
        let values = setup::answer(tables, &mut out, default, |qt| match model {
            Model::Tabular { model, q, v } => {
                let lookup: std::collections::HashMap<u32, f64> = v.iter().copied().collect();
                setup::tabular_query(qt, &model.pairs, q, |st| lookup.get(&st).copied())
            }
            Model::Linear { rff, theta, w } => {
                let rff = rff.as_ref().ok_or_else(|| {
                    PluginError::input(
                        "queries of a critic fitted on given features: evaluate psi_<k>ᵀw from the result's w",
                    )
                })?;
                let s = quiver_critic_kit::read::numbered_columns(qt, "s_")?;
                if s.len() != rff.state_dim {
                    return Err(PluginError::input(format!("table 'queries' needs s_0..s_{}", rff.state_dim - 1)));
                }
                let a = qt.i64_opt("a")?;
                let mut psi = vec![0.0; rff.dim];
                Ok((0..qt.nrows())
                    .map(|i| {
                        rff.psi(|k| s[k][i], &mut psi);
                        let dot = |wt: &[f64]| psi.iter().zip(wt).map(|(x, y)| x * y).sum::<f64>();
                        match a {
                            Some(a) => {
                                let act = a[i].clamp(0, rff.n_actions as i64 - 1) as usize;
                                dot(&theta[act * rff.dim..(act + 1) * rff.dim])
                            }
                            None => dot(w),
                        }
                    })
                    .collect())
            }
        })?;
        Ok(CriticResult { device: self.ctx.device(), values: RVec::from(values), json: self.ctx.result_text(out) })
    }
}

/// The plugin.
pub struct CriticExpectilePlugin;

impl Plugin for CriticExpectilePlugin {
    fn manifest() -> Manifest {
        ManifestBuilder::new("critic-expectile", Family::Critic)
            .version(env!("CARGO_PKG_VERSION"))
            .summary(
                "IQL's expectile critic at its exact fixed point: V is the tau-expectile of Q over the data's actions",
            )
            .guarantee(
                "Returns the fixed point of IQL's expectile and Q regressions on the data (tabular: on the empirical \
                 model, to the reported tolerance). tau = 0.5 gives the behaviour value of the empirical model; as \
                 tau -> 1 V increases to the best in-support action value. No action outside the data is queried.",
            )
            .reference("Kostrikov, Nair & Levine, Offline reinforcement learning with implicit Q-learning, ICLR (2022)")
            .config::<Config>()
            .table(setup::transitions_table().column(quiver_sdk::column::f64_prefix(
                "psi_",
                false,
                "given V features psi_<k> and psi_next_<k>",
            )))
            .table(setup::queries_table())
            .build()
    }

    type Config = Config;

    fn create(config: Config, ctx: Context) -> Result<Created, PluginError> {
        Ok(quiver_sdk::critic(CriticExpectile { config, ctx, fitted: None }))
    }
}

quiver_sdk::export_plugin!(CriticExpectilePlugin);
