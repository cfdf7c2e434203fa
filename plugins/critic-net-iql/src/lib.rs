//! `critic-net-iql`: Implicit Q-learning's critics with neural networks (Kostrikov, Nair & Levine,
//! "Offline reinforcement learning with implicit Q-learning", ICLR 2022): a value network V_ψ(s)
//! fitted to the τ-expectile of the target critic over the data's actions,
//! L_V = E[|τ − 1(u < 0)| u²] with u = Q_θ̄(s, a) − V_ψ(s), and a critic Q_θ(s, a) regressed on
//! r + γ(1 − d) V_ψ(s′), with θ̄ a Polyak-averaged copy of θ. τ = 0.5 gives the behaviour policy's
//! value; τ → 1 the best value the data's actions reach, without querying an action the data never
//! took. The advantage-weighted regression weights exp(β (Q_θ̄(s, a) − V_ψ(s))), capped at 100, that
//! IQL's policy extraction would use are reported. `critic-expectile` computes the same fixed
//! point exactly for tabular and linear features.

use quiver_neural_critic::data::{self, NeuralData};
use quiver_neural_critic::qnet::{At, Head, QNet};
use quiver_neural_critic::settings::NetworkSettings;
use quiver_neural_critic::train::{self, StepReport};
use quiver_neural_critic::{internal, Scaling};
use quiver_sdk::abi::abi_stable::std_types::RVec;
use quiver_sdk::abi::{Manifest, PluginError};
use quiver_sdk::serde_json::{json, Value};
use quiver_sdk::{Context, Created, CriticImpl, CriticResult, Family, ManifestBuilder, Plugin, Tables};
use std::sync::Mutex;

const METHOD: &str = "critic-net-iql";
/// IQL's cap on the advantage weights.
const WEIGHT_CAP: f64 = 100.0;

quiver_sdk::config! {
    /// The parameters, checked against their declared types and ranges.
    pub struct Settings {
        /// The networks and their training.
        pub common: NetworkSettings = flatten,
        /// The expectile τ.
        pub tau: f64 = float(Some(0.7), "expectile of V: 0.5 the behaviour value, toward 1 the best in-support value").greater_than(0.0).less_than(1.0),
        /// The inverse temperature β of the advantage weights.
        pub beta: f64 = float(Some(3.0), "inverse temperature of the reported advantage weights exp(beta A), capped at 100").at_least(0.0).at_most(1000.0),
    }
}

impl quiver_sdk::PluginConfig for Settings {}

struct Fitted {
    nets: Mutex<(QNet, QNet)>,
    data: NeuralData,
    scaling: Scaling,
    summary: Value,
}

/// The estimator.
pub struct CriticNetIql {
    settings: Settings,
    ctx: Context,
    fitted: Option<Fitted>,
}

impl CriticImpl for CriticNetIql {
    fn fit(&mut self, tables: &Tables<'_>) -> Result<(), PluginError> {
        self.settings.common.preflight()?;
        let st = self.settings.common.clone();
        let mut start = quiver_neural_critic::start(&tables.get("transitions")?, &st, METHOD, data::Needs::Actions)?;
        let (head, dim) = (Head::of(&start.data), start.data.s.cols);
        let (online, target) = start.pair(("q", "q_target"), &head.spec(dim, &st), st.seed)?;
        let mut q = QNet::from_networks(head, online, target, &st).on(self.ctx.device())?;
        // the value network's own stream of initial weights (it has no target)
        let v_net = start.network("v", &Head::Value.spec(dim, &st), st.seed ^ 0x5641_4c55_4500_0000)?;
        let mut v = QNet::from_networks(Head::Value, v_net.clone(), v_net, &st).on(self.ctx.device())?;
        let quiver_neural_critic::Start { data, scaling, first_step, .. } = start;
        let (gamma, tau) = (st.gamma as f32, self.settings.tau as f32);
        let reward = scaling.rewards(&data.r);
        let bound = scaling.return_bound(&data.r, st.gamma);
        let curve = quiver_numerics::with_threads(self.ctx.threads(), || {
            train::run(&st, first_step, data.n, bound, &self.ctx, |_, lr, rows| {
                q.set_lr(lr);
                v.set_lr(lr);
                let b = rows.len() as f32;
                // V: the τ-expectile of the target critic at the logged actions
                let q_bar = q.target_q(&data, &data.s, rows, At::Logged)?;
                let vs = v.online_q(&data, &data.s, rows, At::Logged)?;
                let mut v_loss = 0.0f64;
                let dv: Vec<f32> = q_bar
                    .iter()
                    .zip(&vs)
                    .map(|(&qb, &vv)| {
                        let (l, g) = train::expectile(qb - vv, tau);
                        v_loss += f64::from(l);
                        g / b
                    })
                    .collect();
                v.step(&data, &dv)?;
                // Q: regressed on r + γ(1 − d) V(s′), with the updated V
                let v_next = v.eval_online(&data, &data.s_next, rows, At::Logged)?;
                let qs = q.online_q(&data, &data.s, rows, At::Logged)?;
                let (mut q_loss, mut largest) = (0.0f64, 0.0f32);
                let dq: Vec<f32> = rows
                    .iter()
                    .zip(qs.iter().zip(&v_next))
                    .map(|(&i, (&qi, &vn))| {
                        let i = i as usize;
                        let boot = if data.done[i] { 0.0 } else { gamma * vn };
                        let err = qi - (reward[i] + boot);
                        q_loss += f64::from(err * err);
                        largest = largest.max(qi.abs()).max(vn.abs());
                        2.0 * err / b
                    })
                    .collect();
                q.step(&data, &dq)?;
                q.polyak(st.polyak)?;
                Ok(StepReport { loss: (q_loss + v_loss) / f64::from(b), largest })
            })
        })
        .map_err(quiver_sdk::plugin_error)??;
        q.to_host()?;
        v.to_host()?;
        let last_step = first_step + st.steps as u64;
        if let Some(path) = &st.save {
            quiver_neural_critic::save(
                path,
                METHOD,
                &[("q", &q.online), ("q_target", &q.target), ("v", &v.online)],
                &scaling,
                last_step,
            )?;
        }
        let weights = advantage_weights(&mut q, &mut v, &data, self.settings.beta)?;
        let v0 = v.eval_online(&data, &data.s, &data.first_rows, At::Logged)?;
        let j = v0.iter().map(|&x| f64::from(x)).sum::<f64>() / v0.len().max(1) as f64 * scaling.value_scale;
        let mut summary = quiver_neural_critic::summary(&data, Some(j), &q.online, &st, first_step, &curve, &scaling);
        summary["tau"] = json!(self.settings.tau);
        summary["awr_weights"] = weights;
        summary["value_network"] = quiver_neural_critic::network_json(&v.online);
        self.fitted = Some(Fitted { nets: Mutex::new((q, v)), data, scaling, summary });
        Ok(())
    }

    fn values(&self, tables: &Tables<'_>) -> Result<CriticResult, PluginError> {
        let f = self.fitted.as_ref().ok_or_else(|| quiver_sdk::state_error("values() before fit()"))?;
        let mut out = f.summary.clone();
        let mut nets = f.nets.lock().map_err(|_| internal("an unpoisoned lock"))?;
        let (q, v) = &mut *nets;
        let values = quiver_neural_critic::answer_with_value(tables, &mut out, q, v, &f.data, f.scaling.value_scale)?;
        Ok(CriticResult { device: self.ctx.device(), values: RVec::from(values), json: self.ctx.result_text(out) })
    }
}

/// The advantage weights exp(β (Q_θ̄(s, a) − V(s))) over the logged rows, capped at
/// [`WEIGHT_CAP`] (advantages in the rewards' units): their mean, largest, share capped, and
/// quantiles.
fn advantage_weights(q: &mut QNet, v: &mut QNet, data: &NeuralData, beta: f64) -> Result<Value, PluginError> {
    let all: Vec<u32> = (0..data.n as u32).collect();
    let mut w = Vec::with_capacity(data.n);
    for rows in all.chunks(4096) {
        let qb = q.target_q(data, &data.s, rows, At::Logged)?;
        let vs = v.eval_online(data, &data.s, rows, At::Logged)?;
        w.extend(qb.iter().zip(&vs).map(|(&a, &b)| (beta * f64::from(a - b)).exp().min(WEIGHT_CAP)));
    }
    let capped = w.iter().filter(|&&x| x >= WEIGHT_CAP).count();
    let mean = w.iter().sum::<f64>() / w.len().max(1) as f64;
    let mut sorted = w;
    sorted.sort_by(f64::total_cmp);
    let at = |p: f64| sorted.get(((sorted.len() - 1) as f64 * p).round() as usize).copied();
    Ok(json!({
        "beta": beta, "cap": WEIGHT_CAP, "mean": mean, "max": sorted.last(),
        "share_capped": capped as f64 / sorted.len().max(1) as f64,
        "quantiles": {"levels": [0.1, 0.5, 0.9], "values": [at(0.1), at(0.5), at(0.9)]},
    }))
}

/// The plugin.
pub struct CriticNetIqlPlugin;

impl Plugin for CriticNetIqlPlugin {
    fn manifest() -> Manifest {
        ManifestBuilder::new(METHOD, Family::Critic)
            .version(env!("CARGO_PKG_VERSION"))
            .summary(
                "IQL's expectile value and critic on continuous states with neural networks, and its advantage weights",
            )
            .guarantee(
                "None in general (a network's fit; divergence is an error). Where the networks can represent it, the \
                 fixed point of IQL's two regressions on the data: at tau = 0.5 the behaviour policy's value, rising \
                 toward the best value the data's actions reach as tau -> 1, never valuing an action the data did not \
                 take; tested against the exact fixed point on a finite MDP.",
            )
            .reference("Kostrikov, Nair & Levine, Offline reinforcement learning with implicit Q-learning, ICLR (2022)")
            .config::<Settings>()
            .table(data::transitions_table())
            .table(data::queries_table())
            .cuda()
            .build()
    }

    type Config = Settings;

    fn create(settings: Settings, ctx: Context) -> Result<Created, PluginError> {
        Ok(quiver_sdk::critic(CriticNetIql { settings, ctx, fitted: None }))
    }
}

quiver_sdk::export_plugin!(CriticNetIqlPlugin);
