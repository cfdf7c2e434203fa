//! `critic-net-flow`: a flow-matching critic of a given target policy on continuous states
//! (after Agrawalla et al., "What does flow matching bring to TD learning?", 2026, and floq,
//! Agrawalla, Nauman, Agrawal & Kumar 2025): the critic is a velocity field over the scalar return,
//! its value read out by integrating the field from noise ([`flow`]), trained by flow matching at
//! several interpolants toward TD targets read out from a Polyak-averaged copy. The read-out is a
//! distribution: its mean is Q, its spread is reported beside it.

pub mod flow;

use flow::{integrate, Integrator, Which};
use quiver_neural_critic::data::{self, Actions, NeuralData};
use quiver_neural_critic::draws::uniform;
use quiver_neural_critic::qnet::{At, Head, QNet};
use quiver_neural_critic::settings::NetworkSettings;
use quiver_neural_critic::train::{self, StepReport};
use quiver_neural_critic::{internal, Scaling};
use quiver_nn::MlpSpec;
use quiver_numerics::Choice;
use quiver_sdk::abi::abi_stable::std_types::RVec;
use quiver_sdk::abi::{Manifest, PluginError};
use quiver_sdk::serde_json::{json, Value};
use quiver_sdk::{Context, Created, CriticImpl, CriticResult, Family, ManifestBuilder, Plugin, Tables};
use std::sync::Mutex;

const METHOD: &str = "critic-net-flow";

quiver_sdk::config! {
    /// The parameters, checked against their declared types and ranges.
    pub struct Settings {
        /// The network and its training.
        pub common: NetworkSettings = flatten,
        /// Integration steps of a read-out.
        pub flow_steps: usize = int(Some(10), "integration steps from noise (t = 0) to the return (t = 1)").at_least(1.0).at_most(1000.0),
        /// The integrator.
        pub integrator: Integrator = choice(Integrator::Midpoint, "midpoint (two evaluations a step, second order: keeps the spread) or euler (one; at few steps it narrows the read-out distribution, not its mean)"),
        /// Interpolants per row and step.
        pub interpolants: usize = int(Some(4), "flow-matching interpolants t per row and step (stratified on (0, 1))").at_least(1.0).at_most(64.0),
        /// Noise draws averaged in a reported value.
        pub samples: usize = int(Some(16), "read-outs averaged in a reported value (the noise at the standard normal's stratified quantiles)").at_least(1.0).at_most(4096.0),
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
pub struct CriticNetFlow {
    settings: Settings,
    ctx: Context,
    fitted: Option<Fitted>,
}

/// The velocity network's shape: inputs [s, action, t, x], one output.
fn spec(data: &NeuralData, st: &NetworkSettings) -> MlpSpec {
    MlpSpec {
        inputs: data.s.cols + flow::action_width(data) + 2,
        hidden: vec![st.hidden; st.layers],
        outputs: 1,
        layer_norm: st.layer_norm,
    }
}

impl CriticNetFlow {
    /// Mean and standard deviation of the read-outs at `rows` of `on` (its states, and its actions
    /// as `at` names: Q at given actions, V under π), in the networks' unit.
    fn read_out(&self, net: &mut QNet, on: &NeuralData, rows: &[u32], at: At) -> Result<Vec<(f64, f64)>, PluginError> {
        let m = self.settings.samples;
        let z: Vec<f32> =
            (0..m).map(|k| quiver_numerics::normal_quantile((k as f64 + 0.5) / m as f64) as f32).collect();
        // (action fixed or not, weight per row) terms: one for Q or continuous V, one per action for
        // discrete V (weights π(a|s))
        let terms: Vec<(Option<usize>, Which)> = match (&on.actions, at) {
            (_, At::Logged) => vec![(None, Which::Logged)],
            (Actions::Discrete { count, .. }, _) => (0..*count).map(|k| (Some(k), Which::Logged)).collect(),
            (Actions::Continuous { .. }, _) => vec![(None, Which::Here)],
        };
        let (mut first, mut second) = (vec![0.0f64; rows.len()], vec![0.0f64; rows.len()]);
        for (fixed, which) in terms {
            let weights: Vec<f64> = match (&on.actions, fixed) {
                (Actions::Discrete { pi: Some(pi), .. }, Some(k)) => {
                    rows.iter().map(|&i| f64::from(pi.row(i as usize)[k])).collect()
                }
                (_, Some(_)) => return Err(internal("pi_<a> columns")),
                (_, None) => vec![1.0; rows.len()],
            };
            let one = flow::inputs(on, &on.s, rows, which, fixed, 0, 0).map_err(internal)?;
            let mut base: Vec<f32> = Vec::with_capacity(one.len() * m);
            (0..m).for_each(|_| base.extend_from_slice(&one));
            let x0: Vec<f32> = z.iter().flat_map(|&zk| std::iter::repeat_n(zk, rows.len())).collect();
            let x1 = integrate(
                |x, n| net.eval_on(x, n),
                &mut base,
                &x0,
                self.settings.flow_steps,
                self.settings.integrator,
            )?;
            for (j, w) in weights.iter().enumerate() {
                for k in 0..m {
                    let v = f64::from(x1[k * rows.len() + j]);
                    first[j] += w * v / m as f64;
                    second[j] += w * v * v / m as f64;
                }
            }
        }
        Ok(first.into_iter().zip(second).map(|(a, b)| (a, (b - a * a).max(0.0).sqrt())).collect())
    }

    /// [`CriticNetFlow::read_out`] over every row of `on`, in chunks.
    fn read_all(&self, net: &mut QNet, on: &NeuralData, rows: &[u32], at: At) -> Result<Vec<(f64, f64)>, PluginError> {
        let mut out = Vec::with_capacity(rows.len());
        // at most 2^16 read-outs at once (rows × samples), whatever the samples
        for chunk in rows.chunks((65_536 / self.settings.samples).max(1)) {
            out.extend(self.read_out(net, on, chunk, at)?);
        }
        Ok(out)
    }
}

impl CriticImpl for CriticNetFlow {
    fn fit(&mut self, tables: &Tables<'_>) -> Result<(), PluginError> {
        self.settings.common.preflight()?;
        let st = self.settings.common.clone();
        let mut start = quiver_neural_critic::start(&tables.get("transitions")?, &st, METHOD, data::Needs::Policy)?;
        let (online, target) = start.pair(("v", "v_target"), &spec(&start.data, &st), st.seed)?;
        let mut net = QNet::from_networks(Head::Value, online, target, &st).on(self.ctx.device())?;
        let quiver_neural_critic::Start { data, scaling, first_step, .. } = start;
        // a step trains on batch × interpolants rows: refused before allocating past the limit
        let rows = st.batch.saturating_mul(self.settings.interpolants);
        quiver_numerics::memory::reserve(
            net.online.spec().training_bytes(6, rows, 4),
            "the velocity network's training (batch x interpolants rows)",
        )
        .map_err(quiver_sdk::plugin_error)?;
        let gamma = st.gamma as f32;
        let (steps, integrator, n_t) = (self.settings.flow_steps, self.settings.integrator, self.settings.interpolants);
        let reward = scaling.rewards(&data.r);
        let bound = scaling.return_bound(&data.r, st.gamma);
        let key = quiver_numerics::splitmix::mix(st.seed ^ 0x666c_6f77_0000_0000);
        let curve = quiver_numerics::with_threads(self.ctx.threads(), || {
            train::run(&st, first_step, data.n, bound, &self.ctx, |step, lr, rows| {
                net.set_lr(lr);
                let b = rows.len();
                let c0 = step.wrapping_mul(64 * b as u64);
                // TD targets: a draw of the next return, read out by the target network at π's action
                let mut base = flow::inputs(&data, &data.s_next, rows, Which::Next, None, key, c0).map_err(internal)?;
                let x0: Vec<f32> = (0..b).map(|j| flow::normal(key, c0 + (b + j) as u64)).collect();
                let next = integrate(|x, n| net.target_on(x, n), &mut base, &x0, steps, integrator)?;
                let y: Vec<f32> = rows
                    .iter()
                    .zip(&next)
                    .map(|(&i, &v)| reward[i as usize] + if data.done[i as usize] { 0.0 } else { gamma * v })
                    .collect();
                // flow matching at n_t stratified interpolants a row
                let one = flow::inputs(&data, &data.s, rows, Which::Logged, None, key, 0).map_err(internal)?;
                let width = one.len() / b;
                let mut x = Vec::with_capacity(one.len() * n_t);
                let mut want = Vec::with_capacity(b * n_t);
                for k in 0..n_t {
                    for j in 0..b {
                        let c = c0 + (2 * b + k * b + j) as u64;
                        let t = ((k as f64 + uniform(key, 2 * c + 1)) / n_t as f64) as f32;
                        let z = flow::normal(key, c + (32 * b) as u64);
                        x.extend_from_slice(&one[j * width..(j + 1) * width]);
                        let len = x.len();
                        x[len - 2] = t;
                        x[len - 1] = (1.0 - t) * z + t * y[j];
                        want.push(y[j] - z);
                    }
                }
                let v = net.online_on(&x, b * n_t)?;
                let scale = 2.0 / (b * n_t) as f32;
                let mut loss = 0.0f64;
                let dout: Vec<f32> = v
                    .iter()
                    .zip(&want)
                    .map(|(v, w)| {
                        loss += f64::from((v - w) * (v - w));
                        scale * (v - w)
                    })
                    .collect();
                net.step_raw(&dout)?;
                net.polyak(st.polyak)?;
                let largest = next.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                Ok(StepReport { loss: loss / (b * n_t) as f64, largest })
            })
        })
        .map_err(quiver_sdk::plugin_error)??;
        net.to_host()?;
        let last_step = first_step + st.steps as u64;
        if let Some(path) = &st.save {
            quiver_neural_critic::save(
                path,
                METHOD,
                &[("v", &net.online), ("v_target", &net.target)],
                &scaling,
                last_step,
            )?;
        }
        let start = self.read_all(&mut net, &data, &data.first_rows, At::PolicyHere).ok();
        let unit = scaling.value_scale;
        let j = start.as_ref().map(|m| m.iter().map(|x| x.0).sum::<f64>() / m.len() as f64 * unit);
        let mut summary = quiver_neural_critic::summary(&data, j, &net.online, &st, first_step, &curve, &scaling);
        summary["start_sd"] = json!(start.as_ref().map(|m| m.iter().map(|x| x.1).sum::<f64>() / m.len() as f64 * unit));
        summary["flow"] = json!({"steps": steps, "integrator": integrator.name(), "interpolants": n_t,
                                 "samples": self.settings.samples});
        self.fitted = Some(Fitted { net: Mutex::new(net), data, scaling, summary });
        Ok(())
    }

    fn values(&self, tables: &Tables<'_>) -> Result<CriticResult, PluginError> {
        let f = self.fitted.as_ref().ok_or_else(|| quiver_sdk::state_error("values() before fit()"))?;
        let mut out = f.summary.clone();
        let mut net = f.net.lock().map_err(|_| internal("an unpoisoned lock"))?;
        let values =
            quiver_neural_critic::answer_moments(tables, &mut out, &f.data, f.scaling.value_scale, |on, rows, at| {
                self.read_all(&mut net, on, rows, at)
            })?;
        Ok(CriticResult { device: self.ctx.device(), values: RVec::from(values), json: self.ctx.result_text(out) })
    }
}

/// The plugin.
pub struct CriticNetFlowPlugin;

impl Plugin for CriticNetFlowPlugin {
    fn manifest() -> Manifest {
        ManifestBuilder::new(METHOD, Family::Critic)
            .version(env!("CARGO_PKG_VERSION"))
            .summary("A flow-matching critic of a target policy on continuous states: the return read out by integrating a learned velocity field from noise")
            .guarantee(
                "None in general (a network's fit; divergence is an error). Where the network can represent it, \
                 the read-out's mean converges to Q^pi of the data (flow matching transports the noise to the TD \
                 targets' distribution, whose mean is the Bellman backup), up to the integrator's error; tested \
                 against the exact Q^pi of a finite MDP.",
            )
            .reference(
                "Agrawalla et al., What does flow matching bring to TD learning? (2026); Agrawalla, Nauman, Agrawal \
                 & Kumar, floq: training critics via flow matching (2025); Lipman et al., Flow matching for \
                 generative modeling, ICLR (2023)",
            )
            .config::<Settings>()
            .table(data::transitions_table())
            .table(data::queries_table())
            .cuda()
            .build()
    }

    type Config = Settings;

    fn create(settings: Settings, ctx: Context) -> Result<Created, PluginError> {
        Ok(quiver_sdk::critic(CriticNetFlow { settings, ctx, fitted: None }))
    }
}

quiver_sdk::export_plugin!(CriticNetFlowPlugin);
