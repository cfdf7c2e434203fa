//! `critic-lowrank`: Q^π of a target policy on a (state × action) grid where the data observed
//! only some cells, by low-rank matrix estimation (Shah, Song, Xu & Yang, "Sample efficient
//! reinforcement learning via low-rank matrix estimation", NeurIPS 2020), from logged data: the
//! empirical model's rewards and transition laws, seen on the observed cells, are completed to the
//! whole grid at rank r (spectral start from a truncated SVD, then alternating least squares), and
//! π is evaluated exactly on the completed model (`quiver_rl::low_rank`). Observed cells keep their
//! data — so with every cell observed the answer is the tabular Q^π of the empirical model. On a GPU
//! (`--device cuda`) the completions run together there (`quiver_rl::low_rank_cuda`).

use quiver_critic_kit::setup::{self, policy_table, transitions_table};
use quiver_rl::low_rank::{self, Completion, LowRankFit};
use quiver_rl::low_rank_cuda::MAX_GPU_RANK;
use quiver_rl::tabular::EmpiricalModel;
use quiver_sdk::abi::abi_stable::std_types::RVec;
use quiver_sdk::abi::{Device, Manifest, PluginError};
use quiver_sdk::serde_json::{json, Value};
use quiver_sdk::{plugin_error, Context, CriticImpl, ManifestBuilder, Plugin, Tables};
use quiver_sdk::{Created, CriticResult, Family};

quiver_sdk::config! {
    /// The parameters, checked against their declared types and ranges.
    pub struct Settings {
        /// Discount γ ∈ [0, 1).
        pub gamma: f64 = float(Some(0.9), "discount").at_least(0.0).less_than(1.0),
        /// The model's rank r.
        pub rank: usize = int(Some(1), "the rank of the completed reward and transition matrices (Q's can be one more); 0: chosen by 5-fold cross-validation of the observed rewards, up to 10").at_least(0.0).at_most(10_000.0),
        /// The completions' ridge, relative to the largest observed value.
        pub ridge: f64 = float(
            Some(quiver_rl::low_rank::DEFAULT_RIDGE),
            "ridge of the completions' least squares, relative to the largest observed value (raise it, e.g. to 1e-3, when the rank may be higher than the model's)"
        )
        .at_least(0.0)
        .at_most(1.0),
        /// Tolerance on the relative change of Q between sweeps.
        pub tol: f64 = float(Some(1e-10), "stop when Q moves by less than this, relative").greater_than(0.0).less_than(1.0),
        /// Most value-iteration sweeps on the completed model.
        pub max_iter: usize = int(Some(5000), "most value-iteration sweeps on the completed model").at_least(1.0).at_most(1e7),
    }
}

impl quiver_sdk::PluginConfig for Settings {}

/// The estimator.
pub struct CriticLowRank {
    settings: Settings,
    ctx: Context,
    fitted: Option<(Vec<f64>, Value)>,
}

/// The grid as JSON columns: every (state, action) cell, its Q and whether the data observed it.
fn grid_json(fit: &LowRankFit) -> Value {
    let (n, actions) = fit.q.dim();
    let (mut s, mut a, mut q, mut seen) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        for j in 0..actions {
            s.push(fit.states[i]);
            a.push(j);
            q.push(fit.q[(i, j)]);
            seen.push(fit.observed[(i, j)]);
        }
    }
    json!({"s": s, "a": a, "q": q, "observed": seen})
}

impl CriticImpl for CriticLowRank {
    fn fit(&mut self, tables: &Tables<'_>) -> Result<(), PluginError> {
        let (_, data, pi) = quiver_critic_kit::read::transitions_and_policy(tables)?;
        let model = EmpiricalModel::new(&data).map_err(plugin_error)?;
        let actions = (data.n_actions).max(pi.n_actions());
        let st = &self.settings;
        // the completions on the GPU up to its largest rank; the result reports where they ran
        if self.ctx.device() == Device::Cuda && st.rank > MAX_GPU_RANK {
            self.ctx = self.ctx.on_cpu(&format!("rank {} is past the GPU completion's {MAX_GPU_RANK}", st.rank));
        }
        let completion = match self.ctx.device() {
            Device::Cuda => Completion::Cuda,
            Device::Cpu => Completion::Cpu,
        };
        let (ctx, st) = (&self.ctx, &self.settings);
        let fit = quiver_numerics::with_threads(ctx.threads(), || {
            low_rank::fit(&model, &pi, actions, st.gamma, st.rank, st.ridge, st.tol, st.max_iter, completion, ctx)
        })
        .map_err(plugin_error)?
        .map_err(plugin_error)?;
        let q: Vec<f64> = fit.q.iter().copied().collect();
        setup::ensure_finite("values", q.iter().copied(), &data)?;
        let cells = fit.observed.len();
        let seen = fit.observed.iter().filter(|&&b| b).count();
        let mut summary = json!({
            "rank": fit.rank,
            "grid": {"states": fit.states.len(), "actions": actions, "cells": cells, "observed": seen,
                     "observed_share": seen as f64 / cells as f64},
            "reward_singular_values": fit.reward_singular_values,
            "rows": data.n,
            "episodes": data.episodes.len(),
            "q": grid_json(&fit),
            "v": setup::v_json(&fit.v),
            "j": setup::start_value(&data, &fit.v),
        });
        if let Some(errors) = &fit.rank_errors {
            summary["rank_chosen_by"] = json!({
                "method": "5-fold cross-validation of the observed rewards: the smallest rank within 1% of the least \
                           held-out mean squared error",
                "errors": errors,
            });
        }
        setup::report_iterations(&mut summary, "the evaluation ", fit.iterations, fit.change, st.tol, st.max_iter, "");
        let dead = model.dead_ends();
        if !dead.is_empty() {
            summary["notes"] = json!([format!(
                "states {dead:?} are reached with no data of their own: their value is taken as 0 (dead ends)"
            )]);
        }
        self.fitted = Some((q, summary));
        Ok(())
    }

    fn values(&self, tables: &Tables<'_>) -> Result<CriticResult, PluginError> {
        let (q, summary) = self.fitted.as_ref().ok_or_else(|| quiver_sdk::state_error("values() before fit()"))?;
        if tables.opt("queries").is_some() {
            return Err(PluginError::input(
                "critic-lowrank answers no queries table: its result lists Q at every cell of the grid",
            ));
        }
        Ok(CriticResult {
            device: self.ctx.device(),
            values: RVec::from(q.clone()),
            json: self.ctx.result_text(summary.clone()),
        })
    }
}

/// The plugin.
pub struct CriticLowRankPlugin;

impl Plugin for CriticLowRankPlugin {
    fn manifest() -> Manifest {
        ManifestBuilder::new("critic-lowrank", Family::Critic)
            .version(env!("CARGO_PKG_VERSION"))
            .summary(
                "Q of a target policy on a state x action grid of which the data saw some cells, completed at low rank",
            )
            .guarantee(
                "The exact Q^pi (to the reported tolerance) of the empirical model with its unobserved cells' \
                 rewards and transition laws completed at rank r; with every cell observed, the tabular Q^pi of the \
                 empirical model. Close to the truth where rewards and dynamics are near rank r and the observed \
                 cells pin them down (enough per state and per action); the error falls with the data.",
            )
            .reference(
                "Shah, Song, Xu & Yang, Sample efficient reinforcement learning via low-rank matrix estimation, \
                 NeurIPS (2020); Mazumder, Hastie & Tibshirani, Spectral regularization algorithms for learning \
                 large incomplete matrices, JMLR (2010)",
            )
            .config::<Settings>()
            .table(transitions_table())
            .table(policy_table().required())
            .cuda()
            .build()
    }

    type Config = Settings;

    fn create(settings: Settings, ctx: Context) -> Result<Created, PluginError> {
        Ok(quiver_sdk::critic(CriticLowRank { settings, ctx, fitted: None }))
    }
}

quiver_sdk::export_plugin!(CriticLowRankPlugin);
