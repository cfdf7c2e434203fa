//! `critic-net-dqc`: decoupled Q-chunking (DQC) with neural networks, on continuous states — the
//! network form of `critic-chunked`. A chunk critic Q_h(s, a_t … a_{t+h−1}) regresses on the h-step
//! target y_t = Σ_{k<h′} γ^k r_{t+k} + γ^{h′}(1 − d_{t+h′−1}) V(s_{t+h′}) (h′ = min(h, steps left in the
//! episode); a partial-chunk critic Q_d(s, a_t … a_{t+h_a−1}) is the κ_d-expectile of the chunk
//! critic's (Polyak-averaged target's) values over the chunks that continue it (the decoupled
//! distillation), and V(s) the κ_b-expectile of Q_d over the partial chunks the data took at s.
//! κ_d = κ_b = 0.5 is the behaviour's value of h-step returns; higher expectiles lean toward the
//! best chunks the data took. No target policy is needed.

pub mod chunks;

use chunks::Windows;
use quiver_neural_critic::data::{self, NeuralData};
use quiver_neural_critic::qnet::{At, Head, QNet};
use quiver_neural_critic::settings::NetworkSettings;
use quiver_neural_critic::train::{self, StepReport};
use quiver_neural_critic::Scaling;
use quiver_nn::MlpSpec;
use quiver_sdk::abi::abi_stable::std_types::RVec;
use quiver_sdk::abi::{Manifest, PluginError};
use quiver_sdk::serde_json::{json, Value};
use quiver_sdk::{Context, Created, CriticImpl, CriticResult, Family, ManifestBuilder, Plugin, Tables};
use std::sync::Mutex;

const METHOD: &str = "critic-net-dqc";

quiver_sdk::config! {
    /// The parameters, checked against their declared types and ranges.
    pub struct Settings {
        /// The networks and their training.
        pub common: NetworkSettings = flatten,
        /// Chunk length h.
        pub h: usize = int(Some(4), "chunk length (actions per chunk)").at_least(1.0).at_most(64.0),
        /// Partial chunk length h_a.
        pub h_a: usize = int(Some(1), "length of the distilled partial chunk, at most h").at_least(1.0).at_most(64.0),
        /// κ_d.
        pub kappa_d: f64 = float(Some(0.5), "expectile of the distillation onto partial chunks").open(0.0, 1.0),
        /// κ_b.
        pub kappa_b: f64 = float(Some(0.5), "expectile of V over partial chunks").open(0.0, 1.0),
    }
}

impl quiver_sdk::PluginConfig for Settings {
    fn validate(&self) -> Result<(), PluginError> {
        if self.h_a > self.h {
            return Err(PluginError::param(format!("parameter 'h_a' = {} must be at most 'h' = {}", self.h_a, self.h)));
        }
        Ok(())
    }
}

/// The three networks: the chunk critic (with its target), the partial-chunk critic, V.
struct Nets {
    chunk: QNet,
    partial: QNet,
    value: QNet,
}

const NAMES: [&str; 4] = ["q_chunk", "q_chunk_target", "q_partial", "v"];

struct Fitted {
    nets: Mutex<Nets>,
    data: NeuralData,
    scaling: Scaling,
    summary: Value,
}

/// The estimator.
pub struct CriticNetDqc {
    settings: Settings,
    ctx: Context,
    fitted: Option<Fitted>,
}

fn specs(data: &NeuralData, s: &Settings) -> [MlpSpec; 3] {
    let st = &s.common;
    let spec = |inputs| MlpSpec { inputs, hidden: vec![st.hidden; st.layers], outputs: 1, layer_norm: st.layer_norm };
    let sw = chunks::slot_width(data);
    [spec(data.s.cols + s.h * sw), spec(data.s.cols + s.h_a * sw), spec(data.s.cols)]
}

impl CriticNetDqc {
    /// V (the value network) at `rows` of `states`, in the networks' unit.
    fn value(
        nets: &mut Nets,
        states: &quiver_neural_critic::data::Matrix,
        rows: &[u32],
    ) -> Result<Vec<f64>, PluginError> {
        let mut out = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(4096) {
            let x = chunks::states(states, chunk);
            out.extend(nets.value.eval_on(&x, chunk.len())?.into_iter().map(f64::from));
        }
        Ok(out)
    }
}

/// One step of the three regressions on `rows`: Q_d toward the chunk critic's target (κ_d), V
/// toward Q_d (κ_b), the chunk critic toward the h-step targets with V.
fn step(
    nets: &mut Nets,
    data: &NeuralData,
    w: &Windows,
    rows: &[u32],
    s: &Settings,
) -> Result<StepReport, PluginError> {
    let b = rows.len();
    let bf = b as f32;
    let (kd, kb) = (s.kappa_d as f32, s.kappa_b as f32);
    let full = chunks::inputs(data, w, rows, s.h);
    let part = chunks::inputs(data, w, rows, s.h_a);
    let here = chunks::states(&data.s, rows);
    let mut loss = 0.0f64;
    let expectile_step = |net: &mut QNet, x: &[f32], toward: &[f32], kappa: f32, loss: &mut f64| {
        let pred = net.online_on(x, b)?;
        let d: Vec<f32> = toward
            .iter()
            .zip(&pred)
            .map(|(&y, &p)| {
                let (l, g) = train::expectile(y - p, kappa);
                *loss += f64::from(l);
                g / bf
            })
            .collect();
        net.step_raw(&d)
    };
    let q_bar = nets.chunk.target_on(&full, b)?;
    expectile_step(&mut nets.partial, &part, &q_bar, kd, &mut loss)?;
    let q_d = nets.partial.eval_on(&part, b)?;
    expectile_step(&mut nets.value, &here, &q_d, kb, &mut loss)?;
    // the chunk critic: h-step targets bootstrapped from V at the window's last next state
    let last: Vec<u32> = rows.iter().map(|&t| w.last[t as usize]).collect();
    let v_next = nets.value.eval_on(&chunks::states(&data.s_next, &last), b)?;
    let q = nets.chunk.online_on(&full, b)?;
    let mut largest = 0.0f32;
    let d: Vec<f32> = rows
        .iter()
        .zip(q.iter().zip(&v_next))
        .map(|(&t, (&qi, &vn))| {
            let t = t as usize;
            let err = qi - (w.reward[t] + w.weight[t] * vn);
            loss += f64::from(err * err);
            largest = largest.max(qi.abs()).max(vn.abs());
            2.0 * err / bf
        })
        .collect();
    nets.chunk.step_raw(&d)?;
    nets.chunk.polyak(s.common.polyak)?;
    Ok(StepReport { loss: loss / f64::from(bf), largest })
}

impl CriticImpl for CriticNetDqc {
    fn fit(&mut self, tables: &Tables<'_>) -> Result<(), PluginError> {
        self.settings.common.preflight()?;
        let st = self.settings.common.clone();
        let mut start = quiver_neural_critic::start(&tables.get("transitions")?, &st, METHOD, data::Needs::Actions)?;
        let [c, p, v] = specs(&start.data, &self.settings);
        let seed = |k: u64| st.seed ^ k.wrapping_mul(0x9e37_79b9);
        let (chunk, chunk_target) = start.pair((NAMES[0], NAMES[1]), &c, seed(1))?;
        let partial = start.network(NAMES[2], &p, seed(2))?;
        let value = start.network(NAMES[3], &v, seed(3))?;
        // the partial-chunk and value networks have no targets (their copies are never read)
        let device = self.ctx.device();
        let mut nets = Nets {
            chunk: QNet::from_networks(Head::Value, chunk, chunk_target, &st).on(device)?,
            partial: QNet::from_networks(Head::Value, partial.clone(), partial, &st).on(device)?,
            value: QNet::from_networks(Head::Value, value.clone(), value, &st).on(device)?,
        };
        let quiver_neural_critic::Start { data, scaling, first_step, .. } = start;
        let w = chunks::windows(&data, self.settings.h, st.gamma, scaling.value_scale);
        let bound = scaling.return_bound(&data.r, st.gamma);
        let curve = quiver_numerics::with_threads(self.ctx.threads(), || {
            train::run(&st, first_step, data.n, bound, &self.ctx, |_, lr, rows| {
                for net in [&mut nets.chunk, &mut nets.partial, &mut nets.value] {
                    net.set_lr(lr);
                }
                step(&mut nets, &data, &w, rows, &self.settings)
            })
        })
        .map_err(quiver_sdk::plugin_error)??;
        for net in [&mut nets.chunk, &mut nets.partial, &mut nets.value] {
            net.to_host()?;
        }
        let last_step = first_step + st.steps as u64;
        if let Some(path) = &st.save {
            let all = [&nets.chunk.online, &nets.chunk.target, &nets.partial.online, &nets.value.online];
            let named: Vec<(&str, &quiver_nn::Mlp<f32>)> = NAMES.iter().copied().zip(all).collect();
            quiver_neural_critic::save(path, METHOD, &named, &scaling, last_step)?;
        }
        let v0 = Self::value(&mut nets, &data.s, &data.first_rows)?;
        let j = v0.iter().sum::<f64>() / v0.len().max(1) as f64 * scaling.value_scale;
        let mut summary =
            quiver_neural_critic::summary(&data, Some(j), &nets.chunk.online, &st, first_step, &curve, &scaling);
        summary["chunks"] = json!({"h": self.settings.h, "h_a": self.settings.h_a, "kappa_d": self.settings.kappa_d,
                                   "kappa_b": self.settings.kappa_b});
        summary["partial_network"] = quiver_neural_critic::network_json(&nets.partial.online);
        summary["value_network"] = quiver_neural_critic::network_json(&nets.value.online);
        self.fitted = Some(Fitted { nets: Mutex::new(nets), data, scaling, summary });
        Ok(())
    }

    fn values(&self, tables: &Tables<'_>) -> Result<CriticResult, PluginError> {
        let f = self.fitted.as_ref().ok_or_else(|| quiver_sdk::state_error("values() before fit()"))?;
        let mut out = f.summary.clone();
        let mut nets =
            f.nets.lock().map_err(|_| PluginError::new(quiver_sdk::abi::ErrorKind::Internal, "a poisoned lock"))?;
        let unit = f.scaling.value_scale;
        let values: Vec<f64> = match tables.opt("queries") {
            None => {
                let all: Vec<u32> = (0..f.data.n as u32).collect();
                Self::value(&mut nets, &f.data.s, &all)?.into_iter().map(|v| v * unit).collect()
            }
            Some(qt) => {
                let (q, at) = quiver_neural_critic::read_queries(&qt, &f.data, true)?;
                if at == At::Logged {
                    return Err(PluginError::input(
                        "critic-net-dqc answers V(s) at the queried states: give table 'queries' state columns s_<k> only",
                    ));
                }
                let all: Vec<u32> = (0..q.n as u32).collect();
                let v: Vec<f64> = Self::value(&mut nets, &q.s, &all)?.into_iter().map(|v| v * unit).collect();
                out["values"] = json!(v);
                v
            }
        };
        Ok(CriticResult { device: self.ctx.device(), values: RVec::from(values), json: self.ctx.result_text(out) })
    }
}

/// The plugin.
pub struct CriticNetDqcPlugin;

impl Plugin for CriticNetDqcPlugin {
    fn manifest() -> Manifest {
        ManifestBuilder::new(METHOD, Family::Critic)
            .version(env!("CARGO_PKG_VERSION"))
            .summary("Decoupled Q-chunking on continuous states with neural networks: a chunk critic over h-step action sequences distilled onto partial chunks and V")
            .guarantee(
                "None in general (a network's fit; divergence is an error). Where the networks can represent them, \
                 the fixed point of DQC's three regressions on the data — the exact answer of critic-chunked with \
                 one-hot states: at kappa_d = kappa_b = 0.5 the behaviour's value of h-step returns; tested against \
                 critic-chunked on a finite MDP.",
            )
            .reference(
                "Decoupled Q-chunking (DQC) for offline RL with action chunks; Kostrikov, Nair & Levine, Offline \
                 reinforcement learning with implicit Q-learning, ICLR (2022)",
            )
            .config::<Settings>()
            .table(data::transitions_table())
            .table(data::queries_table())
            .cuda()
            .build()
    }

    type Config = Settings;

    fn create(settings: Settings, ctx: Context) -> Result<Created, PluginError> {
        Ok(quiver_sdk::critic(CriticNetDqc { settings, ctx, fitted: None }))
    }
}

quiver_sdk::export_plugin!(CriticNetDqcPlugin);
