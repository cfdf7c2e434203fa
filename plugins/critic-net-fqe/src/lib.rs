//! `critic-net-fqe`: fitted Q evaluation with a neural network (Le, Voloshin & Yue, "Batch policy
//! learning under constraints", ICML 2019; the deep-RL form of Fu et al., "Benchmarks for deep
//! off-policy evaluation", ICLR 2021): Q_θ regresses on the bootstrapped targets
//! y = r + γ(1 − d) Q_θ̄(s′, π), minibatch by minibatch, with θ̄ a Polyak-averaged copy of θ —
//! `critic-lstd target=fqe` with the features learned rather than fixed. Q_θ(s′, π) is
//! Σ_a′ π(a′|s′) Q_θ̄(s′, a′) for discrete actions (`pi_next_<a>` columns) and Q_θ̄(s′, a′) at the
//! sampled a′ (`a_next_<k>`) for continuous ones.

use quiver_neural_critic::data::{self, NeuralData};
use quiver_neural_critic::qnet::{At, Head, QNet};
use quiver_neural_critic::settings::NetworkSettings;
use quiver_neural_critic::train::{self, StepReport};
use quiver_neural_critic::{internal, Scaling};
use quiver_sdk::abi::abi_stable::std_types::RVec;
use quiver_sdk::abi::{Manifest, PluginError};
use quiver_sdk::serde_json::Value;
use quiver_sdk::{Context, Created, CriticImpl, CriticResult, Family, ManifestBuilder, Plugin, Tables};
use std::sync::Mutex;

const METHOD: &str = "critic-net-fqe";

quiver_sdk::config! {
    /// The parameters, checked against their declared types and ranges.
    pub struct Settings {
        /// The network and its training.
        pub common: NetworkSettings = flatten,
    }
}

impl quiver_sdk::PluginConfig for Settings {}

struct Fitted {
    net: Mutex<QNet>,
    data: NeuralData,
    scaling: Scaling,
    summary: Value,
}

/// The estimator.
pub struct CriticNetFqe {
    settings: Settings,
    ctx: Context,
    fitted: Option<Fitted>,
}

impl CriticImpl for CriticNetFqe {
    fn fit(&mut self, tables: &Tables<'_>) -> Result<(), PluginError> {
        self.settings.common.preflight()?;
        let st = self.settings.common.clone();
        let mut start = quiver_neural_critic::start(&tables.get("transitions")?, &st, METHOD, data::Needs::Policy)?;
        let head = Head::of(&start.data);
        let (online, target) = start.pair(("q", "q_target"), &head.spec(start.data.s.cols, &st), st.seed)?;
        let mut net = QNet::from_networks(head, online, target, &st).on(self.ctx.device())?;
        let quiver_neural_critic::Start { data, scaling, first_step, .. } = start;
        let gamma = st.gamma as f32;
        let reward = scaling.rewards(&data.r);
        let bound = scaling.return_bound(&data.r, st.gamma);
        let curve = quiver_numerics::with_threads(self.ctx.threads(), || {
            train::run(&st, first_step, data.n, bound, &self.ctx, |_, lr, rows| {
                net.set_lr(lr);
                let q = net.online_q(&data, &data.s, rows, At::Logged)?;
                let next = net.target_q(&data, &data.s_next, rows, At::PolicyNext)?;
                let b = rows.len() as f32;
                let (mut loss, mut largest) = (0.0f64, 0.0f32);
                let dq: Vec<f32> = rows
                    .iter()
                    .zip(q.iter().zip(&next))
                    .map(|(&i, (&qi, &ni))| {
                        let i = i as usize;
                        let boot = if data.done[i] { 0.0 } else { gamma * ni };
                        let err = qi - (reward[i] + boot);
                        loss += f64::from(err * err);
                        largest = largest.max(qi.abs());
                        2.0 * err / b
                    })
                    .collect();
                net.step(&data, &dq)?;
                net.polyak(st.polyak)?;
                Ok(StepReport { loss: loss / f64::from(b), largest })
            })
        })
        .map_err(quiver_sdk::plugin_error)??;
        net.to_host()?;
        let last_step = first_step + st.steps as u64;
        if let Some(path) = &st.save {
            quiver_neural_critic::save(
                path,
                METHOD,
                &[("q", &net.online), ("q_target", &net.target)],
                &scaling,
                last_step,
            )?;
        }
        let j = quiver_neural_critic::start_value(&mut net, &data, scaling.value_scale);
        let summary = quiver_neural_critic::summary(&data, j, &net.online, &st, first_step, &curve, &scaling);
        self.fitted = Some(Fitted { net: Mutex::new(net), data, scaling, summary });
        Ok(())
    }

    fn values(&self, tables: &Tables<'_>) -> Result<CriticResult, PluginError> {
        let f = self.fitted.as_ref().ok_or_else(|| quiver_sdk::state_error("values() before fit()"))?;
        let mut out = f.summary.clone();
        let mut net = f.net.lock().map_err(|_| internal("an unpoisoned lock"))?;
        let values = quiver_neural_critic::answer(tables, &mut out, &mut net, &f.data, f.scaling.value_scale)?;
        Ok(CriticResult { device: self.ctx.device(), values: RVec::from(values), json: self.ctx.result_text(out) })
    }
}

/// The plugin.
pub struct CriticNetFqePlugin;

impl Plugin for CriticNetFqePlugin {
    fn manifest() -> Manifest {
        ManifestBuilder::new(METHOD, Family::Critic)
            .version(env!("CARGO_PKG_VERSION"))
            .summary("Q and V of a target policy on continuous states by fitted Q evaluation with a neural network")
            .guarantee(
                "None in general (a neural network's fitted evaluation can be biased and, off-policy, diverge; a \
                 divergence is an error). Where the network can represent Q^pi of the empirical model (e.g. states \
                 that identify finitely many cells), the training converges to it as the steps grow; tested against \
                 the exact Q^pi of a finite MDP (within 2%) and the exact quadratic V of a linear-quadratic system.",
            )
            .reference(
                "Le, Voloshin & Yue, Batch policy learning under constraints, ICML (2019); Fu et al., Benchmarks for \
                 deep off-policy evaluation, ICLR (2021); Ba, Kiros & Hinton, Layer normalization (2016)",
            )
            .config::<Settings>()
            .table(data::transitions_table())
            .table(data::queries_table())
            .cuda()
            .build()
    }

    type Config = Settings;

    fn create(settings: Settings, ctx: Context) -> Result<Created, PluginError> {
        Ok(quiver_sdk::critic(CriticNetFqe { settings, ctx, fitted: None }))
    }
}

quiver_sdk::export_plugin!(CriticNetFqePlugin);
