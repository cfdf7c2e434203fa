//! `critic-cfcql`: counterfactual conservative evaluation of a multi-agent target policy on
//! tabular data — CFCQL (Shao, Qu, Chen, Zhang & Ji, NeurIPS 2023) in the evaluation form
//! `critic-cql` gives CQL, on the empirical model of the data (`quiver_rl::multi_agent`):
//!
//!   Q = R̂ − α Σ_i λ_i(s) (π_i(a_i|s) β̂_{−i}(a_{−i}|s) / β̂(a|s) − 1) + γ P̂ Σ_a′ π(a′|s′) Q(s′, a′),
//!
//! with π(a|s) = Π_i π_i(a_i|s) factorised over the agents and each agent's deviation penalised
//! with the others' actions as the data took them. CQL's joint penalty grows exponentially with
//! the number of agents; this one stays an average of the agents' own. Reported beside the
//! unpenalised Q^π of the same model, with each state's penalties (CFCQL's and CQL's, per unit
//! of α) and agent weights.

use quiver_critic_kit::setup;
use quiver_rl::multi_agent::{cfcql, AgentWeights, JointActions};
use quiver_rl::tabular::EmpiricalModel;
use quiver_sdk::abi::abi_stable::std_types::RVec;
use quiver_sdk::abi::{Manifest, PluginError};
use quiver_sdk::serde_json::{json, Value};
use quiver_sdk::{column, plugin_error, Context, CriticImpl, ManifestBuilder, Plugin, TableBuilder, Tables};
use quiver_sdk::{Created, CriticResult, Family};

quiver_sdk::choices! {
    /// How the agents' penalties are weighted at a state.
    pub enum Weighting {
        /// λ_i = 1/n.
        Uniform = "uniform",
        /// λ_i ∝ exp(τ KL(π_i ‖ β̂_i)) (the paper's choice: weight on the agent that strays furthest).
        Kl = "kl",
    }
}

quiver_sdk::config! {
    /// The parameters, checked against their declared types and ranges.
    pub struct Settings {
        /// Discount γ ∈ [0, 1).
        pub gamma: f64 = float(Some(0.9), "discount").at_least(0.0).less_than(1.0),
        /// The conservative penalty's weight α.
        pub alpha: f64 = float(Some(1.0), "the conservative penalty's weight").at_least(0.0),
        /// The agents' weights.
        pub agent_weights: Weighting = choice(
            Weighting::Uniform,
            "uniform (1/n each) or kl (a softmax of temperature x KL(pi_i || the data's action law of agent i))"
        ),
        /// The softmax's temperature τ (`agent_weights=kl`).
        pub temperature: f64 = float(Some(1.0), "agent_weights=kl: the softmax's temperature").at_least(0.0).at_most(1e6),
    }
}

impl quiver_sdk::PluginConfig for Settings {}

/// What a fit keeps: V per state and the summary JSON.
struct Fitted {
    v: Vec<(u32, f64)>,
    summary: Value,
}

/// The estimator.
pub struct CriticCfcql {
    settings: Settings,
    ctx: Context,
    fitted: Option<Fitted>,
}

/// Q as JSON over the observed (state, joint action) pairs, each joint action also per agent.
fn q_json(model: &EmpiricalModel, joint: &JointActions, q: &[f64]) -> Value {
    let mut out = setup::q_json(&model.pairs, |k| q[k]);
    for i in 0..joint.agents() {
        let col: Vec<u32> = model.pairs.pairs.iter().map(|&(_, a)| joint.decode(a)[i]).collect();
        out[format!("a_{i}")] = json!(col);
    }
    out
}

impl CriticImpl for CriticCfcql {
    fn fit(&mut self, tables: &Tables<'_>) -> Result<(), PluginError> {
        let (data, joint, per_agent) = quiver_critic_kit::read::multi_agent(tables)?;
        let model = EmpiricalModel::new(&data).map_err(plugin_error)?;
        let weights = match self.settings.agent_weights {
            Weighting::Uniform => AgentWeights::Uniform,
            Weighting::Kl => AgentWeights::Kl(self.settings.temperature),
        };
        let fit = cfcql(&model, &joint, &per_agent, self.settings.gamma, self.settings.alpha, weights)
            .map_err(plugin_error)?;
        let (q, plain) = (fit.q.to_vec(), fit.plain.to_vec());
        setup::ensure_finite("values", q.iter().chain(&plain).copied(), &data)?;
        let v = setup::state_values(&data, &model.pairs, &q, Some(&fit.pi))?;
        let v_plain = setup::state_values(&data, &model.pairs, &plain, Some(&fit.pi))?;
        let gap: Vec<(u32, f64)> = v.iter().zip(&v_plain).map(|(a, b)| (a.0, a.1 - b.1)).collect();
        let penalties = json!({
            "s": fit.states.iter().map(|x| x.0).collect::<Vec<_>>(),
            "cfcql": fit.states.iter().map(|x| x.2).collect::<Vec<_>>(),
            "cql": fit.states.iter().map(|x| x.3).collect::<Vec<_>>(),
            "agent_weights": fit.states.iter().map(|x| x.1.clone()).collect::<Vec<_>>(),
        });
        let summary = json!({
            "alpha": self.settings.alpha,
            "agents": joint.agents(),
            "actions_per_agent": joint.sizes,
            "rows": data.n,
            "episodes": data.episodes.len(),
            "pairs": model.len(),
            "q": q_json(&model, &joint, &q),
            "v": setup::v_json(&v),
            "j": setup::start_value(&data, &v),
            "q_unpenalized": q_json(&model, &joint, &plain),
            "v_unpenalized": setup::v_json(&v_plain),
            "j_unpenalized": setup::start_value(&data, &v_plain),
            "gap": setup::v_json(&gap),
            "penalty_per_alpha": penalties,
        });
        self.fitted = Some(Fitted { v, summary });
        Ok(())
    }

    fn values(&self, tables: &Tables<'_>) -> Result<CriticResult, PluginError> {
        let Fitted { v, summary, .. } =
            self.fitted.as_ref().ok_or_else(|| quiver_sdk::state_error("values() before fit()"))?;
        if tables.opt("queries").is_some() {
            return Err(PluginError::input(
                "critic-cfcql answers no queries table: its result lists Q at every observed (state, joint action) \
                 and V at every state",
            ));
        }
        // the critic's values: V per state with data, in state order (Q is in the summary)
        let values: Vec<f64> = v.iter().map(|x| x.1).collect();
        Ok(CriticResult {
            device: self.ctx.device(),
            values: RVec::from(values),
            json: self.ctx.result_text(summary.clone()),
        })
    }
}

/// The plugin.
pub struct CriticCfcqlPlugin;

impl Plugin for CriticCfcqlPlugin {
    fn manifest() -> Manifest {
        ManifestBuilder::new("critic-cfcql", Family::Critic)
            .version(env!("CARGO_PKG_VERSION"))
            .summary("Counterfactual conservative (CFCQL) evaluation of a factorised multi-agent policy on tabular data, beside its unpenalised value")
            .guarantee(
                "Exact fixed point of CFCQL's policy evaluation on the empirical model: V^pi(s) at or below the \
                 unpenalised V^pi(s) at every state; with one agent it is CQL's; where the behaviour is a product \
                 of the agents' policies, the penalty averaged under pi is at most CQL's joint one.",
            )
            .reference(
                "Shao, Qu, Chen, Zhang & Ji, Counterfactual conservative Q learning for offline multi-agent \
                 reinforcement learning, NeurIPS (2023); Kumar, Zhou, Tucker & Levine, Conservative Q-learning for \
                 offline reinforcement learning, NeurIPS (2020)",
            )
            .config::<Settings>()
            .table(
                TableBuilder::new("transitions", "logged multi-agent transitions, episodes in order of t")
                    .column(column::i64("episode", "episode id; each episode's rows together"))
                    .column(column::i64("t", "step within the episode, rising by one"))
                    .column(column::i64("s", "discrete state id"))
                    .column(column::i64_prefix("a_", true, "a_<i>: agent i's action id (a_0, a_1, ...)"))
                    .column(column::f64("r", "the team's reward"))
                    .column(column::i64("s_next", "discrete next state id"))
                    .column(column::boolean("done", "1 if the episode ends after this row (no bootstrap)")),
            )
            .table(
                TableBuilder::new("policy", "the agents' target policies pi_i(a|s)")
                    .column(column::i64("s", "state id"))
                    .column(column::i64("agent", "agent i"))
                    .column(column::i64("a", "agent i's action"))
                    .column(column::f64("prob", "pi_i(a|s); each agent's rows at a state sum to 1")),
            )
            .build()
    }

    type Config = Settings;

    fn create(settings: Settings, ctx: Context) -> Result<Created, PluginError> {
        Ok(quiver_sdk::critic(CriticCfcql { settings, ctx, fitted: None }))
    }
}

quiver_sdk::export_plugin!(CriticCfcqlPlugin);
