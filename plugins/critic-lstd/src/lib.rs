//! `critic-lstd`: linear value estimation of a target policy π from logged transitions.
//!
//! With features φ(s, a), Φ̄′ the next-state features the target bootstraps from (zero where the
//! episode ends), r the rewards, γ the discount and λ the ridge:
//!
//! * `lstdq` (Lagoudakis & Parr 2003): A = Φᵀ(Φ − γΦ̄′), b = Φᵀr, θ = (A + λI)⁻¹b, with
//!   φ̄′ = Σ_a′ π(a′|s′) φ(s′, a′) — the fixed point of the projected Bellman equation of π;
//! * `fqe` (Le, Voloshin & Yue 2019): θ_{k+1} = argmin ‖Φθ − (r + γΦ̄′θ_k)‖² + λ‖θ‖², iterated from
//!   θ_0 = 0 to a reported tolerance; its fixed point is `lstdq`'s θ (the same ridge);
//! * `sarsa`: `lstdq` with φ̄′ = φ(s′, a_next), the behaviour's own next action: the behaviour
//!   value.
//!
//! Features: `onehot` (discrete states; then `lstdq` is exactly the Q^π of the empirical model),
//! `rff` (random Fourier features of continuous states, one block per action), `given`
//! (`phi_<k>`, `phi_next_<k>` columns). The moments ΦᵀΦ, ΦᵀΦ̄′, Φᵀr are accumulated in chunks
//! (OpenBLAS on the CPU, cuBLAS on a GPU), never materialising Φ for the whole data set.

mod parts;

use ndarray::Array1;
use quiver_critic_kit::setup::{self, CommonParams, FeatureKind};
use quiver_rl::features::{DenseRows, NextTarget};
use quiver_rl::linear::{self, Moments, MAX_FEATURES};
use quiver_rl::{PairIndex, Policy, Rff, States, Transitions};
use quiver_sdk::abi::abi_stable::std_types::RVec;
use quiver_sdk::abi::{Device, ErrorKind, Manifest, PluginError};
use quiver_sdk::plugin_error;
use quiver_sdk::serde_json::{json, Value};
use quiver_sdk::{choices, Context, CriticImpl, ManifestBuilder, Plugin, Tables};
use quiver_sdk::{Created, CriticResult, Family};

choices! {
    /// What θ estimates.
    pub enum Target {
        /// LSTD-Q: the projected Bellman fixed point of the target policy.
        Lstdq = "lstdq",
        /// Fitted Q evaluation: iterated ridge regressions onto bootstrapped targets.
        Fqe = "fqe",
        /// SARSA: bootstrap from the logged next action (the behaviour value).
        Sarsa = "sarsa",
    }
}

quiver_sdk::config! {
    /// The parameters, checked against their declared types and ranges.
    pub struct Config {
        /// The target.
        pub target: Target = choice(Target::Lstdq, "lstdq, fqe (iterated regressions) or sarsa (behaviour value)"),
        /// The shared critic parameters.
        pub common: CommonParams = flatten,
    }
}

impl quiver_sdk::PluginConfig for Config {}

/// What the fit learned, enough to answer queries.
enum Model {
    Tabular { pairs: PairIndex, policy: Option<Policy> },
    Rff(Rff),
    Given,
}

struct Fitted {
    /// The context the fit ran in (the CPU for one-hot features, whatever the request).
    ran: Context,
    model: Model,
    theta: Array1<f64>,
    summary: Value,
}

/// Most multiply-adds the moments may take on the CPU ([`linear::moment_work`]). Measured here
/// (2 vCPUs, OpenBLAS): 20 000 rows × 4 096 features (dim = 2048, two actions) is 2.1e11 and the
/// run took about 165 s (the d × d solves as much as the moments); 10^6 rows × 256 features,
/// 4.1e10, 1.9 s.
pub const MAX_CPU_MOMENT_WORK: f64 = 2e11;

/// The estimator.
pub struct CriticLstd {
    config: Config,
    ctx: Context,
    fitted: Option<Fitted>,
}

impl CriticLstd {
    fn moments(&self, rows: &DenseRows<'_, '_>) -> Result<Moments, PluginError> {
        if rows.map.dim() > MAX_FEATURES {
            return Err(PluginError::new(
                ErrorKind::Unsupported,
                format!("{} features: at most {MAX_FEATURES} (lower dim)", rows.map.dim()),
            ));
        }
        // the moments' multiply-adds: on the CPU, past MAX_CPU_MOMENT_WORK that is minutes
        // (cuBLAS does it in seconds)
        let work = linear::moment_work(rows);
        if self.ctx.device() == Device::Cpu && work > MAX_CPU_MOMENT_WORK {
            return Err(PluginError::new(
                ErrorKind::Unsupported,
                format!(
                    "{} rows x {} features: the moments take {work:.1e} multiply-adds on the CPU (limit \
                     {MAX_CPU_MOMENT_WORK:.0e}: minutes on a small machine): lower dim (the work grows as its square), or run \
                     on a GPU (--device cuda)",
                    rows.data.n,
                    rows.map.dim()
                ),
            ));
        }
        self.ctx
            .dispatch(
                || linear::accumulate_dense(rows, &self.ctx),
                || quiver_rl::gpu::accumulate_dense_cuda(rows, &self.ctx),
            )
            .map_err(plugin_error)
    }

    fn solve(&self, mo: &Moments, summary: &mut Value) -> Result<Array1<f64>, PluginError> {
        let c = &self.config.common;
        let lstd_residual = |theta: &Array1<f64>| {
            let mut a = &mo.c - &(&mo.m * c.gamma);
            a.diag_mut().iter_mut().for_each(|x| *x += c.ridge);
            let r = &a.dot(theta) - &mo.b;
            linear::norm(&r) / linear::norm(&mo.b).max(f64::MIN_POSITIVE)
        };
        match self.config.target {
            Target::Lstdq | Target::Sarsa => {
                let sol = linear::solve_lstd(mo, c.gamma, c.ridge).map_err(plugin_error)?;
                summary["residual"] = json!(sol.residual);
                Ok(sol.theta)
            }
            Target::Fqe => {
                let it = linear::fqe(mo, c.gamma, c.ridge, c.tol, c.max_iter, &self.ctx).map_err(plugin_error)?;
                setup::report_iterations(
                    summary,
                    "fqe ",
                    it.iterations,
                    it.change,
                    c.tol,
                    c.max_iter,
                    ": raise max_iter, or use target=lstdq",
                );
                summary["residual"] = json!(lstd_residual(&it.theta));
                Ok(it.theta)
            }
        }
    }

    fn fit_tabular(
        &self,
        tables: &Tables<'_>,
        data: &Transitions<'_>,
        summary: &mut Value,
    ) -> Result<Fitted, PluginError> {
        let policy = match self.config.target {
            Target::Sarsa => None,
            _ => {
                let pi = quiver_critic_kit::read::policy(&tables.get("policy")?)?;
                pi.check_covers(data).map_err(plugin_error)?;
                Some(pi)
            }
        };
        let target = policy.as_ref().map_or(NextTarget::NextAction, NextTarget::Policy);
        let pairs = linear::onehot_index(data, target).map_err(plugin_error)?;
        let mo = linear::accumulate_onehot(data, &pairs, target);
        let theta = self.solve(&mo, summary)?;
        let q: Vec<f64> = theta.to_vec();
        let v = setup::state_values(data, &pairs, &q, policy.as_ref())?;
        summary["pairs"] = json!(pairs.len());
        summary["pairs_without_data"] = json!(pairs.len() - pairs.with_data);
        summary["q"] = setup::q_json(&pairs, |k| q[k]);
        summary["v"] = setup::v_json(&v);
        summary["j"] = json!(match self.config.target {
            Target::Sarsa => first_q(data, |i| {
                let States::Discrete { s, .. } = &data.states else { unreachable!() };
                pairs.get(s[i], data.a[i]).map(|k| q[k])
            }),
            _ => setup::start_value(data, &v),
        });
        let ran = self.ctx.on_cpu("one-hot features are accumulated sparsely on the CPU");
        Ok(Fitted { ran, model: Model::Tabular { pairs, policy }, theta, summary: summary.take() })
    }

    /// The fit with `rff` or `given` features: the contribution of all the data, finished (the
    /// code a run by parts uses, [`parts`]).
    fn fit_dense(
        &self,
        t: &quiver_sdk::TableRef<'_>,
        data: &Transitions<'_>,
        summary: &mut Value,
    ) -> Result<Fitted, PluginError> {
        let p = self.dense_partial(t, data)?;
        self.finish_dense(&p, summary)
    }
}

/// The mean over episodes of `q(first row)`.
fn first_q(data: &Transitions<'_>, q: impl Fn(usize) -> Option<f64>) -> Option<f64> {
    let v: Vec<f64> = data.first_rows().map(q).collect::<Option<Vec<f64>>>()?;
    Some(v.iter().sum::<f64>() / v.len() as f64)
}

impl CriticImpl for CriticLstd {
    fn fit(&mut self, tables: &Tables<'_>) -> Result<(), PluginError> {
        let t = tables.get("transitions")?;
        let mut data = quiver_critic_kit::read::transitions(&t)?;
        if self.config.target == Target::Sarsa {
            data.use_a_next("target=sarsa").map_err(plugin_error)?;
        }
        let c = &self.config.common;
        setup::check_features(c.features, &data.states)?;
        let mut summary = self.summary_head(data.n as u64, data.episodes.len() as u64);
        let fitted = match c.features {
            FeatureKind::OneHot => self.fit_tabular(tables, &data, &mut summary)?,
            FeatureKind::Rff | FeatureKind::Given => self.fit_dense(&t, &data, &mut summary)?,
        };
        setup::ensure_finite("values", fitted.theta.iter().copied(), &data)?;
        self.fitted = Some(fitted);
        Ok(())
    }

    fn values(&self, tables: &Tables<'_>) -> Result<CriticResult, PluginError> {
        let f = self.fitted.as_ref().ok_or_else(|| quiver_sdk::state_error("values() before fit()"))?;
        let mut out = f.summary.clone();
        out["d"] = json!(f.theta.len());
        let default = || match &f.model {
            Model::Tabular { .. } => f.theta.to_vec(),
            _ => Vec::new(),
        };
        let values = setup::answer(tables, &mut out, default, |qt| query(f, qt))?;
        Ok(CriticResult { device: f.ran.device(), values: RVec::from(values), json: f.ran.result_text(out) })
    }
}

/// Q (rows with `a`) or V (without) at the rows of a `queries` table.
fn query(f: &Fitted, qt: &quiver_sdk::TableRef<'_>) -> Result<Vec<f64>, PluginError> {
    let a = qt.i64_opt("a")?;
    match &f.model {
        Model::Tabular { pairs, policy } => {
            if a.is_none() && policy.is_none() {
                return Err(PluginError::input(
                    "target=sarsa has no policy: give column 'a' in table 'queries' to query Q(s, a)",
                ));
            }
            setup::tabular_query(qt, pairs, f.theta.as_slice().expect("contiguous"), |st| {
                linear::policy_value(policy.as_ref()?, st, |s2, a2| pairs.get(s2, a2).map(|k| f.theta[k]))
            })
        }
        Model::Rff(rff) => {
            let s = quiver_critic_kit::read::numbered_columns(qt, "s_")?;
            if s.len() != rff.state_dim {
                return Err(PluginError::input(format!(
                    "table 'queries' has {} state columns s_*, the fit had {}",
                    s.len(),
                    rff.state_dim
                )));
            }
            let pi = quiver_critic_kit::read::numbered_columns(qt, "pi_")?;
            let mut psi = vec![0.0; rff.dim];
            (0..qt.nrows())
                .map(|i| {
                    rff.psi(|k| s[k][i], &mut psi);
                    let q = |act: usize| -> f64 {
                        if act >= rff.n_actions {
                            return 0.0;
                        }
                        psi.iter()
                            .zip(f.theta.slice(ndarray::s![act * rff.dim..(act + 1) * rff.dim]))
                            .map(|(x, w)| x * w)
                            .sum()
                    };
                    match (a, pi.is_empty()) {
                        (Some(a), _) => Ok(q(a[i].max(0) as usize)),
                        (None, false) => Ok(pi.iter().enumerate().map(|(act, p)| p[i] * q(act)).sum()),
                        (None, true) => {
                            Err(qt.row_error("s_0", i, "give column 'a' for Q(s, a), or pi_<a> columns for V(s)"))
                        }
                    }
                })
                .collect()
        }
        Model::Given => {
            let phi = quiver_critic_kit::read::numbered_columns(qt, "phi_")?;
            if phi.len() != f.theta.len() {
                return Err(PluginError::input(format!(
                    "table 'queries' has {} phi_* columns, the fit had {}",
                    phi.len(),
                    f.theta.len()
                )));
            }
            Ok((0..qt.nrows()).map(|i| phi.iter().zip(f.theta.iter()).map(|(c, w)| c[i] * w).sum()).collect())
        }
    }
}

/// The plugin.
pub struct CriticLstdPlugin;

impl Plugin for CriticLstdPlugin {
    fn manifest() -> Manifest {
        ManifestBuilder::new("critic-lstd", Family::Critic)
            .version(env!("CARGO_PKG_VERSION"))
            .summary("Q and V of a target policy from logged transitions: LSTD-Q, fitted Q evaluation, SARSA")
            .guarantee(
                "lstdq returns the fixed point of the projected Bellman equation of pi on the data (with onehot \
                 features: exactly the Q of the empirical model, consistent at rate n^-1/2 for the true Q^pi \
                 where the data cover pi); fqe converges to the same point when it converges (reported); sarsa \
                 estimates the behaviour policy's value. Off-policy bootstrapping with rff or given features can \
                 be biased by the projection and, for fqe, diverge (reported as an error).",
            )
            .reference(
                "Lagoudakis & Parr, Least-squares policy iteration, JMLR (2003); Le, Voloshin & Yue, Batch policy \
                 learning under constraints, ICML (2019); Rahimi & Recht, Random features, NeurIPS (2007)",
            )
            .cuda()
            .config::<Config>()
            .table(setup::transitions_table())
            .table(setup::policy_table())
            .table(setup::queries_table())
            // rff and given features, by parts (docs/scale.md)
            .mergeable(&["transitions"])
            .build()
    }

    type Config = Config;

    fn create(config: Config, ctx: Context) -> Result<Created, PluginError> {
        let parts = parts::LstdByParts(CriticLstd { config: config.clone(), ctx: ctx.clone(), fitted: None });
        Ok(quiver_sdk::critic(CriticLstd { config, ctx: ctx.clone(), fitted: None }).mergeable(parts, &ctx))
    }
}

quiver_sdk::export_plugin!(CriticLstdPlugin);
