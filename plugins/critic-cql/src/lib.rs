//! `critic-cql`: conservative policy evaluation of a target policy π on tabular data — the
//! fixed point of CQL(H)'s evaluation step with π as the push-down distribution (Kumar, Zhou,
//! Tucker & Levine, "Conservative Q-learning for offline reinforcement learning", NeurIPS 2020,
//! eq. 2 and Theorem 3.2), on the empirical model of the data:
//!
//!   Q = R̂ − α(π(a|s)/β̂(a|s) − 1) + γ P̂ Σ_a′ π(a′|s′) Q(s′, a′),   β̂(a|s) = n(s, a)/n(s).
//!
//! The penalty pushes Q down where π takes an action more often than the data did and up where
//! less; its π-average Σ_a π(π/β̂ − 1) ≥ 0 is a χ² divergence, so V^π = Σ_a π Q sits at or below the
//! unpenalised value at every state, and Q moves linearly in α. Reported beside the unpenalised
//! Q^π of the same model (α = 0) and their gap.

use quiver_critic_kit::setup::{self, policy_table, transitions_table};
use quiver_rl::tabular::{cql, EmpiricalModel};
use quiver_sdk::abi::abi_stable::std_types::RVec;
use quiver_sdk::abi::{Manifest, PluginError};
use quiver_sdk::plugin_error;
use quiver_sdk::serde_json::{json, Value};
use quiver_sdk::{Context, CriticImpl, ManifestBuilder, Plugin, Tables};
use quiver_sdk::{Created, CriticResult, Family};

/// What a fit keeps: the model, Q per pair, V per state, the summary JSON.
struct Fitted {
    model: EmpiricalModel,
    q: Vec<f64>,
    v: Vec<(u32, f64)>,
    summary: Value,
}

/// The estimator.
pub struct CriticCql {
    gamma: f64,
    alpha: f64,
    ctx: Context,
    fitted: Option<Fitted>,
}

impl CriticImpl for CriticCql {
    fn fit(&mut self, tables: &Tables<'_>) -> Result<(), PluginError> {
        let (_, data, pi) = quiver_critic_kit::read::transitions_and_policy(tables)?;
        let model = EmpiricalModel::new(&data).map_err(plugin_error)?;
        let (q, plain) = cql(&model, &pi, self.gamma, self.alpha).map_err(plugin_error)?;
        let (q, plain) = (q.to_vec(), plain.to_vec());
        setup::ensure_finite("values", q.iter().chain(&plain).copied(), &data)?;
        let v = setup::state_values(&data, &model.pairs, &q, Some(&pi))?;
        let v_plain = setup::state_values(&data, &model.pairs, &plain, Some(&pi))?;
        let gap: Vec<(u32, f64)> = v.iter().zip(&v_plain).map(|(a, b)| (a.0, a.1 - b.1)).collect();
        let summary = json!({
            "alpha": self.alpha,
            "rows": data.n,
            "episodes": data.episodes.len(),
            "pairs": model.len(),
            "q": setup::q_json(&model.pairs, |k| q[k]),
            "v": setup::v_json(&v),
            "j": setup::start_value(&data, &v),
            "q_unpenalized": setup::q_json(&model.pairs, |k| plain[k]),
            "v_unpenalized": setup::v_json(&v_plain),
            "j_unpenalized": setup::start_value(&data, &v_plain),
            "gap": setup::v_json(&gap),
        });
        self.fitted = Some(Fitted { model, q, v, summary });
        Ok(())
    }

    fn values(&self, tables: &Tables<'_>) -> Result<CriticResult, PluginError> {
        let Fitted { model, q, v, summary } =
            self.fitted.as_ref().ok_or_else(|| quiver_sdk::state_error("values() before fit()"))?;
        let mut out = summary.clone();
        let lookup: std::collections::HashMap<u32, f64> = v.iter().copied().collect();
        let values = setup::answer(
            tables,
            &mut out,
            || q.clone(),
            |qt| setup::tabular_query(qt, &model.pairs, q, |st| lookup.get(&st).copied()),
        )?;
        Ok(CriticResult { device: self.ctx.device(), values: RVec::from(values), json: self.ctx.result_text(out) })
    }
}

quiver_sdk::config! {
    /// The parameters, checked against their declared types and ranges.
    pub struct Settings {
        /// Discount γ ∈ [0, 1).
        pub gamma: f64 = float(Some(0.9), "discount").at_least(0.0).less_than(1.0),
        /// The conservative penalty's weight α.
        pub alpha: f64 = float(Some(1.0), "the conservative penalty's weight").at_least(0.0),
    }
}

impl quiver_sdk::PluginConfig for Settings {}

/// The plugin.
pub struct CriticCqlPlugin;

impl Plugin for CriticCqlPlugin {
    fn manifest() -> Manifest {
        ManifestBuilder::new("critic-cql", Family::Critic)
            .version(env!("CARGO_PKG_VERSION"))
            .summary("Conservative (CQL) evaluation of a target policy on tabular data, beside its unpenalised value")
            .guarantee(
                "Exact fixed point of CQL(H)'s policy evaluation on the empirical model: V^pi(s) at or below the \
                 unpenalised V^pi(s) of the same model at every state, Q linear in alpha; the empirical model is \
                 consistent where the data cover pi.",
            )
            .reference(
                "Kumar, Zhou, Tucker & Levine, Conservative Q-learning for offline reinforcement learning, NeurIPS (2020)",
            )
            .config::<Settings>()
            .table(transitions_table())
            .table(policy_table().required())
            .table(setup::queries_table())
            .build()
    }

    type Config = Settings;

    fn create(settings: Settings, ctx: Context) -> Result<Created, PluginError> {
        Ok(quiver_sdk::critic(CriticCql { gamma: settings.gamma, alpha: settings.alpha, ctx, fitted: None }))
    }
}

quiver_sdk::export_plugin!(CriticCqlPlugin);
