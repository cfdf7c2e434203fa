//! `critic-net-dsac`: DSAC-T's distributional critic (Duan et al. 2023) evaluating a given target
//! policy on continuous states — twin Gaussian return distributions per (s, a), trained with the
//! paper's three refinements (expected-value substitution, twin value distributions,
//! variance-based gradient adjustment; see [`gaussian`]). It reports Q (the twins' mean), the
//! return's standard deviation beside it, V and J; the soft (entropy) term of DSAC-T's actor-critic
//! is left out: this is the critic of a fixed policy.

pub mod gaussian;

use gaussian::{head, head_actions};
use quiver_neural_critic::data::{self, Actions, NeuralData};
use quiver_neural_critic::qnet::{At, Head, QNet};
use quiver_neural_critic::settings::NetworkSettings;
use quiver_neural_critic::train::{self, StepReport};
use quiver_neural_critic::{internal, Scaling};
use quiver_sdk::abi::abi_stable::std_types::RVec;
use quiver_sdk::abi::{Manifest, PluginError};
use quiver_sdk::serde_json::{json, Value};
use quiver_sdk::{Context, Created, CriticImpl, CriticResult, Family, ManifestBuilder, Plugin, Tables};
use std::sync::Mutex;

const METHOD: &str = "critic-net-dsac";
const NAMES: [&str; 2] = ["q1", "q2"];
const TARGETS: [&str; 2] = ["q1_target", "q2_target"];

quiver_sdk::config! {
    /// The parameters, checked against their declared types and ranges.
    pub struct Settings {
        /// The networks and their training.
        pub common: NetworkSettings = flatten,
        /// Whether two critics are trained, each row's target taken from the more pessimistic.
        pub twin: bool = boolean(true, "twin value distributions: the target of each row from the critic whose mean value at s_next is the smaller"),
        /// The clip of the sampled targets, in moving-average standard deviations.
        pub clip: f64 = float(Some(3.0), "sampled target returns clipped to Q +- clip x the moving-average sd (0: no clip)").at_least(0.0).at_most(1000.0),
    }
}

impl quiver_sdk::PluginConfig for Settings {}

struct Fitted {
    critics: Mutex<Vec<QNet>>,
    data: NeuralData,
    scaling: Scaling,
    summary: Value,
}

/// The estimator.
pub struct CriticNetDsac {
    settings: Settings,
    ctx: Context,
    fitted: Option<Fitted>,
}

/// Mean and standard deviation of the return at `rows` of `states`: at the actions `at` names
/// (discrete: the logged/queried action, or π's mixture when `at` is the policy at s), averaged
/// over the critics; in the networks' unit.
fn moments(critics: &mut [QNet], data: &NeuralData, rows: &[u32], at: At) -> Result<Vec<(f64, f64)>, PluginError> {
    let k = head_actions(data);
    let raws: Vec<Vec<f32>> =
        critics.iter_mut().map(|c| c.online_raw(data, &data.s, rows, at)).collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for (j, &i) in rows.iter().enumerate() {
        let i = i as usize;
        let (mut mean, mut second) = (0.0f64, 0.0f64);
        for raw in &raws {
            let (m, v) = match (&data.actions, at) {
                (Actions::Discrete { a, .. }, At::Logged) => {
                    let (m, sd, _) = head(raw, j, a[i] as usize, k);
                    (f64::from(m), f64::from(sd * sd))
                }
                (Actions::Discrete { pi: Some(pi), .. }, At::PolicyHere) => {
                    // the π-mixture of the actions' Gaussians: its mean and variance
                    let p = pi.row(i);
                    let (mut m1, mut m2) = (0.0f64, 0.0f64);
                    for (x, &w) in p.iter().enumerate() {
                        let (m, sd, _) = head(raw, j, x, k);
                        m1 += f64::from(w) * f64::from(m);
                        m2 += f64::from(w) * f64::from(sd * sd + m * m);
                    }
                    (m1, m2 - m1 * m1)
                }
                (Actions::Discrete { .. }, _) => return Err(internal("pi_<a> columns")),
                (Actions::Continuous { .. }, _) => {
                    let (m, sd, _) = head(raw, j, 0, k);
                    (f64::from(m), f64::from(sd * sd))
                }
            };
            mean += m;
            second += v + m * m;
        }
        let n = raws.len() as f64;
        let (mean, second) = (mean / n, second / n);
        out.push((mean, (second - mean * mean).max(0.0).sqrt()));
    }
    Ok(out)
}

impl CriticImpl for CriticNetDsac {
    fn fit(&mut self, tables: &Tables<'_>) -> Result<(), PluginError> {
        self.settings.common.preflight()?;
        let st = self.settings.common.clone();
        let mut start = quiver_neural_critic::start(&tables.get("transitions")?, &st, METHOD, data::Needs::Policy)?;
        let head = Head::of(&start.data);
        let spec = head.spec_wide(start.data.s.cols, &st, 2);
        let count = if self.settings.twin { 2 } else { 1 };
        let mut critics = Vec::with_capacity(count);
        for c in 0..count {
            let (online, target) = start.pair((NAMES[c], TARGETS[c]), &spec, st.seed ^ (c as u64 * 0x7477_696e))?;
            critics.push(QNet::from_networks(head, online, target, &st).on(self.ctx.device())?);
        }
        let quiver_neural_critic::Start { data, scaling, first_step, .. } = start;
        let (gamma, clip, twin) = (st.gamma as f32, self.settings.clip as f32, self.settings.twin);
        let reward = scaling.rewards(&data.r);
        let bound = scaling.return_bound(&data.r, st.gamma);
        let key = quiver_numerics::splitmix::mix(st.seed ^ 0x6473_6163_2d74_0000);
        let mut omega: Option<f32> = None;
        let curve = quiver_numerics::with_threads(self.ctx.threads(), || {
            train::run(&st, first_step, data.n, bound, &self.ctx, |step, lr, rows| {
                let t = gaussian::targets(&mut critics, &data, rows, &reward, gamma, twin, key, step)?;
                let (mut nll, mut variance, mut largest) = (0.0, 0.0, 0.0f32);
                let w = omega.unwrap_or(1.0);
                for critic in critics.iter_mut() {
                    critic.set_lr(lr);
                    let s = gaussian::step(critic, &data, rows, &t, w, clip)?;
                    critic.polyak(st.polyak)?;
                    (nll, variance, largest) = (nll + s.nll, variance + s.variance, largest.max(s.largest));
                }
                let n = critics.len() as f64;
                let batch_variance = (variance / n) as f32;
                // ω: a moving average of σ² (Polyak's rate), started at the first batch's
                omega = Some(match omega {
                    None => batch_variance,
                    Some(o) => o + st.polyak as f32 * (batch_variance - o),
                });
                Ok(StepReport { loss: nll / n, largest })
            })
        })
        .map_err(quiver_sdk::plugin_error)??;
        for critic in &mut critics {
            critic.to_host()?;
        }
        let last_step = first_step + st.steps as u64;
        if let Some(path) = &st.save {
            let mut nets = Vec::new();
            for (c, critic) in critics.iter().enumerate() {
                nets.push((NAMES[c], &critic.online));
                nets.push((TARGETS[c], &critic.target));
            }
            quiver_neural_critic::save(path, METHOD, &nets, &scaling, last_step)?;
        }
        let start = moments(&mut critics, &data, &data.first_rows, At::PolicyHere).ok();
        let unit = scaling.value_scale;
        let j = start.as_ref().map(|m| m.iter().map(|x| x.0).sum::<f64>() / m.len() as f64 * unit);
        let mut summary =
            quiver_neural_critic::summary(&data, j, &critics[0].online, &st, first_step, &curve, &scaling);
        summary["start_sd"] = json!(start.as_ref().map(|m| m.iter().map(|x| x.1).sum::<f64>() / m.len() as f64 * unit));
        summary["twin"] = json!(twin);
        summary["moving_sd"] = json!(omega.map(|o| f64::from(o).sqrt() * unit));
        self.fitted = Some(Fitted { critics: Mutex::new(critics), data, scaling, summary });
        Ok(())
    }

    fn values(&self, tables: &Tables<'_>) -> Result<CriticResult, PluginError> {
        let f = self.fitted.as_ref().ok_or_else(|| quiver_sdk::state_error("values() before fit()"))?;
        let mut out = f.summary.clone();
        let mut critics = f.critics.lock().map_err(|_| internal("an unpoisoned lock"))?;
        let values =
            quiver_neural_critic::answer_moments(tables, &mut out, &f.data, f.scaling.value_scale, |on, rows, at| {
                moments(&mut critics, on, rows, at)
            })?;
        Ok(CriticResult { device: self.ctx.device(), values: RVec::from(values), json: self.ctx.result_text(out) })
    }
}

/// The plugin.
pub struct CriticNetDsacPlugin;

impl Plugin for CriticNetDsacPlugin {
    fn manifest() -> Manifest {
        ManifestBuilder::new(METHOD, Family::Critic)
            .version(env!("CARGO_PKG_VERSION"))
            .summary("DSAC-T's distributional critic of a target policy on continuous states: the return's mean and standard deviation")
            .guarantee(
                "None in general (a network's fit; divergence is an error). Where the networks can represent them, \
                 the mean converges to Q^pi of the data and the spread to the return's variance in the empirical \
                 model (the variance Bellman equation); the twin critics' minimum makes the mean err low while the \
                 training is noisy. Tested against both, computed exactly, on a finite MDP.",
            )
            .reference(
                "Duan et al., Distributional soft actor-critic with three refinements, arXiv:2310.05858 (2023); \
                 Sobel, The variance of discounted Markov decision processes, J. Appl. Prob. (1982)",
            )
            .config::<Settings>()
            .table(data::transitions_table())
            .table(data::queries_table())
            .cuda()
            .build()
    }

    type Config = Settings;

    fn create(settings: Settings, ctx: Context) -> Result<Created, PluginError> {
        Ok(quiver_sdk::critic(CriticNetDsac { settings, ctx, fitted: None }))
    }
}

quiver_sdk::export_plugin!(CriticNetDsacPlugin);
