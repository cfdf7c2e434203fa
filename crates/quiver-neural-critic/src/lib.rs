//! What Quiver's neural critics share (docs/critics.md, "Neural critics"): the transitions as
//! network inputs ([`data`]), a Q network with its target and optimiser ([`qnet`]), the training
//! loop ([`train`]), and here the pieces around them — checkpoints that keep the inputs' scaling,
//! the values at a `queries` table, J, and the result's common fields.

pub mod data;
pub mod draws;
pub mod qnet;
pub mod settings;
pub mod train;

use data::{Actions, Matrix, NeuralData, Standardise};
use qnet::{At, QNet};
use quiver_nn::Mlp;
use quiver_sdk::abi::PluginError;
use quiver_sdk::serde_json::{self, json, Value};
use quiver_sdk::{plugin_error, TableRef};
use settings::NetworkSettings;
use std::collections::HashMap;
use std::path::Path;

/// What a checkpoint keeps beside its networks: how the inputs were scaled, the value scale, the
/// head, and where the training stopped.
#[derive(Debug, Clone)]
pub struct Scaling {
    /// The states' standardisation.
    pub states: Standardise,
    /// The continuous actions' standardisation.
    pub actions: Option<Standardise>,
    /// The unit of the networks' values: the root mean square reward of the data trained on.
    pub value_scale: f64,
}

impl Scaling {
    /// The scaling of `data` (its states' and continuous actions' maps) with the value unit
    /// `value_scale`.
    pub fn of(data: &NeuralData, value_scale: f64) -> Scaling {
        let actions = match &data.actions {
            Actions::Continuous { scale, .. } => Some(scale.clone()),
            Actions::Discrete { .. } => None,
        };
        Scaling { states: data.state_scale.clone(), actions, value_scale }
    }

    /// The rewards `r` in the networks' unit, divided in f64 (rewards near 1e±200 have no f32).
    pub fn rewards(&self, r: &[f64]) -> Vec<f32> {
        r.iter().map(|x| (x / self.value_scale) as f32).collect()
    }

    /// max|r|/(1 − γ) in the networks' unit: the bound [`train::run`] holds the values to.
    pub fn return_bound(&self, r: &[f64], gamma: f64) -> f64 {
        train::return_bound(r, gamma, self.value_scale)
    }

    /// As JSON (the result's `scaling`).
    pub fn to_json(&self) -> Value {
        json!({"states": self.states.to_json(), "actions": self.actions.as_ref().map(Standardise::to_json),
               "value_scale": self.value_scale})
    }
}

/// Write `networks` with `scaling`, the method and the step reached to the file `save` names.
pub fn save(
    path: &str,
    method: &str,
    networks: &[(&str, &Mlp<f32>)],
    scaling: &Scaling,
    step: u64,
) -> Result<(), PluginError> {
    let meta = HashMap::from([
        ("method".to_string(), method.to_string()),
        ("step".to_string(), step.to_string()),
        ("scaling".to_string(), scaling.to_json().to_string()),
    ]);
    quiver_nn::checkpoint::save(Path::new(path), networks, &meta).map_err(plugin_error)
}

/// A checkpoint read back.
#[derive(Debug)]
pub struct Loaded {
    /// Its networks, by name.
    pub networks: HashMap<String, Mlp<f32>>,
    /// How the inputs were scaled.
    pub scaling: Scaling,
    /// The training step it was written at.
    pub step: u64,
}

/// A checkpoint read back for `method`: its networks, scaling and step.
pub fn load(path: &str, method: &str) -> Result<Loaded, PluginError> {
    let c = quiver_nn::checkpoint::load::<f32>(Path::new(path)).map_err(plugin_error)?;
    let bad = |why: &str| PluginError::input(format!("checkpoint '{path}': {why}"));
    let written_by = c.metadata.get("method").map(String::as_str).unwrap_or("?");
    if written_by != method {
        return Err(bad(&format!("written by '{written_by}', not '{method}'")));
    }
    let step = c.metadata.get("step").and_then(|s| s.parse().ok()).ok_or_else(|| bad("no training step"))?;
    let scaling: Value =
        c.metadata.get("scaling").and_then(|s| serde_json::from_str(s).ok()).ok_or_else(|| bad("no input scaling"))?;
    let states = Standardise::from_json(&scaling["states"]).ok_or_else(|| bad("no state scaling"))?;
    let actions = if scaling["actions"].is_null() {
        None
    } else {
        Some(Standardise::from_json(&scaling["actions"]).ok_or_else(|| bad("a broken action scaling"))?)
    };
    let value_scale =
        scaling["value_scale"].as_f64().filter(|v| v.is_finite() && *v > 0.0).ok_or_else(|| bad("no value scale"))?;
    Ok(Loaded { networks: c.networks, scaling: Scaling { states, actions, value_scale }, step })
}

/// Where a training starts: the data (read with the checkpoint's scaling when the run starts from
/// `init`, so that a network trained before reads them as it did), the scaling, the first step,
/// and the checkpoint's networks.
#[derive(Debug)]
pub struct Start {
    /// The transitions.
    pub data: NeuralData,
    /// How the inputs are scaled.
    pub scaling: Scaling,
    /// The step the training starts at (the checkpoint's, else 0).
    pub first_step: u64,
    saved: Option<(String, HashMap<String, Mlp<f32>>)>,
    settings: NetworkSettings,
}

/// Read the `transitions` table `t` for `method` (needing what `needs` says) and, with
/// `settings.init`, its checkpoint.
pub fn start(
    t: &TableRef<'_>,
    settings: &NetworkSettings,
    method: &str,
    needs: data::Needs,
) -> Result<Start, PluginError> {
    let settings = settings.clone();
    match &settings.init {
        None => {
            let data = data::read_for(t, None, needs)?;
            let scaling = Scaling::of(&data, train::value_scale(&data.r));
            Ok(Start { data, scaling, first_step: 0, saved: None, settings })
        }
        Some(path) => {
            let loaded = load(path, method)?;
            let data = data::read_for(t, Some((&loaded.scaling.states, loaded.scaling.actions.as_ref())), needs)?;
            Ok(Start {
                data,
                scaling: loaded.scaling,
                first_step: loaded.step,
                saved: Some((path.clone(), loaded.networks)),
                settings,
            })
        }
    }
}

impl Start {
    /// Network `name` of shape `spec`: the checkpoint's (refused when it has another shape), or a
    /// fresh one from `seed` ([`qnet::fresh`]).
    pub fn network(&mut self, name: &str, spec: &quiver_nn::MlpSpec, seed: u64) -> Result<Mlp<f32>, PluginError> {
        match &mut self.saved {
            Some((path, networks)) => take_network(networks, name, spec, path),
            None => qnet::fresh(spec, &self.settings, seed).map_err(plugin_error),
        }
    }

    /// A network and its target: the checkpoint's two, or a fresh network and its copy.
    pub fn pair(
        &mut self,
        names: (&str, &str),
        spec: &quiver_nn::MlpSpec,
        seed: u64,
    ) -> Result<(Mlp<f32>, Mlp<f32>), PluginError> {
        let online = self.network(names.0, spec, seed)?;
        let target = match self.saved {
            Some(_) => self.network(names.1, spec, seed)?,
            None => online.clone(),
        };
        Ok((online, target))
    }
}

/// Take network `name` from a checkpoint's, checking that it has the shape the settings ask for.
pub fn take_network(
    networks: &mut HashMap<String, Mlp<f32>>,
    name: &str,
    expected: &quiver_nn::MlpSpec,
    path: &str,
) -> Result<Mlp<f32>, PluginError> {
    let net = networks
        .remove(name)
        .ok_or_else(|| PluginError::input(format!("checkpoint '{path}' has no network '{name}'")))?;
    if net.spec() != expected {
        return Err(PluginError::input(format!(
            "checkpoint '{path}': network '{name}' is {:?}, the settings and data ask for {:?} (hidden, layers and \
             layer_norm must match, and the data must have the same state and action columns)",
            net.spec(),
            expected
        )));
    }
    Ok(net)
}

/// The states (and actions) of a `queries` table, as the network reads them: Q at its rows when it
/// gives actions (`a`, or `a_<k>`), V under the target policy when it gives π (`pi_<a>`, or
/// `a_pi_<k>`) — or, for a critic with a value network of its own (`value_net`), V(s) without π;
/// the rows are checked as the transitions' are.
pub fn read_queries(qt: &TableRef<'_>, data: &NeuralData, value_net: bool) -> Result<(NeuralData, At), PluginError> {
    qt.non_empty()?;
    let s = quiver_critic_kit::read::numbered_columns(qt, "s_")?;
    if s.len() != data.s.cols {
        return Err(PluginError::input(format!(
            "table 'queries' has {} state columns s_*, the network reads {}",
            s.len(),
            data.s.cols
        )));
    }
    let n = qt.nrows();
    let (actions, at) = match &data.actions {
        Actions::Discrete { count, .. } => {
            let empty = Matrix::empty(*count);
            if let Some(a) = qt.i64_opt("a")? {
                let ids = quiver_rl::data::ids("queries", "a", a, *count).map_err(plugin_error)?;
                (Actions::Discrete { a: ids, count: *count, pi_next: empty, pi: None }, At::Logged)
            } else if value_net {
                (Actions::Discrete { a: vec![0; n], count: *count, pi_next: empty, pi: None }, At::PolicyHere)
            } else {
                let pi = quiver_critic_kit::read::numbered_columns(qt, "pi_")?;
                if pi.len() != *count {
                    return Err(PluginError::input(format!(
                        "table 'queries' needs 'a' for Q(s, a), or pi_0..pi_{} (pi(a|s) of every action) for V(s); it \
                         has {} pi_* columns",
                        count - 1,
                        pi.len()
                    )));
                }
                let pi = Matrix::from_columns(&pi, &Standardise::identity(*count));
                (Actions::Discrete { a: vec![0; n], count: *count, pi_next: empty, pi: Some(pi) }, At::PolicyHere)
            }
        }
        Actions::Continuous { a, scale, .. } => {
            let given = quiver_critic_kit::read::numbered_columns(qt, "a_")?;
            let policy = quiver_critic_kit::read::numbered_columns(qt, "a_pi_")?;
            let (cols, at) = match (given.is_empty(), policy.is_empty()) {
                (false, _) => (given, At::Logged),
                (true, false) => (policy, At::PolicyHere),
                (true, true) if value_net => (Vec::new(), At::PolicyHere),
                (true, true) => {
                    return Err(PluginError::input(
                        "table 'queries' needs a_<k> columns for Q(s, a), or a_pi_<k> (the target policy's action) for V(s)",
                    ))
                }
            };
            if cols.len() != a.cols && !(value_net && cols.is_empty()) {
                return Err(PluginError::input(format!(
                    "table 'queries' has {} action columns, the network reads {}",
                    cols.len(),
                    a.cols
                )));
            }
            let m = Matrix::from_columns(&cols, scale);
            let empty = Matrix::empty(a.cols);
            let actions = match at {
                At::Logged => Actions::Continuous { a: m, a_next: empty, a_pi: None, scale: scale.clone() },
                _ => Actions::Continuous { a: empty.clone(), a_next: empty, a_pi: Some(m), scale: scale.clone() },
            };
            (actions, at)
        }
    };
    let s = Matrix::from_columns(&s, &data.state_scale);
    let q = NeuralData {
        n,
        s_next: Matrix::empty(s.cols),
        s,
        state_scale: data.state_scale.clone(),
        actions,
        r: Vec::new(),
        done: Vec::new(),
        first_rows: Vec::new(),
    };
    Ok((q, at))
}

/// J = the mean over episodes of V(s₀) = Q(s₀, π), in the rewards' units, when the data give π at
/// the states (`pi_<a>` or `a_pi_<k>`); else `None`.
pub fn start_value(net: &mut QNet, data: &NeuralData, value_scale: f64) -> Option<f64> {
    let v = net.online_q(data, &data.s, &data.first_rows, At::PolicyHere).ok()?;
    Some(v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64 * value_scale)
}

/// The values a neural critic returns: at the `queries` table's rows when given (Q or V), else Q at
/// each logged (s, a); in the rewards' units.
pub fn answer(
    tables: &quiver_sdk::Tables<'_>,
    out: &mut Value,
    net: &mut QNet,
    data: &NeuralData,
    value_scale: f64,
) -> Result<Vec<f64>, PluginError> {
    let scale = |v: Vec<f64>| v.into_iter().map(|x| x * value_scale).collect::<Vec<f64>>();
    match tables.opt("queries") {
        None => Ok(scale(net.values(data, &data.s, At::Logged)?)),
        Some(qt) => {
            let (q, at) = read_queries(&qt, data, false)?;
            let v = scale(net.values(&q, &q.s, at)?);
            out["values"] = json!(v);
            Ok(v)
        }
    }
}

/// [`answer`] for a critic with a value network: V queries (no action columns) read `v`, with no
/// need for π.
pub fn answer_with_value(
    tables: &quiver_sdk::Tables<'_>,
    out: &mut Value,
    q: &mut QNet,
    v: &mut QNet,
    data: &NeuralData,
    value_scale: f64,
) -> Result<Vec<f64>, PluginError> {
    let Some(qt) = tables.opt("queries") else { return answer(tables, out, q, data, value_scale) };
    let (queries, at) = read_queries(&qt, data, true)?;
    // Q at given actions from the critic; V from the value network (which reads no action)
    let net = if matches!(at, At::Logged) { q } else { v };
    let values: Vec<f64> = net.values(&queries, &queries.s, at)?.into_iter().map(|x| x * value_scale).collect();
    out["values"] = json!(values);
    Ok(values)
}

/// A network asked for inputs its data do not hold (a defect of the critic, not of the input: the
/// reader has checked what each critic needs).
pub fn internal(what: &str) -> PluginError {
    PluginError::new(quiver_sdk::abi::ErrorKind::Internal, format!("the network's inputs lack {what}"))
}

/// The values of a distributional critic, whose `moments(on, rows, at)` gives the return's mean
/// and standard deviation (in the networks' unit) at `rows` of `on`: at the `queries` table's rows
/// when given (`values` and `sd` in the result), else the mean at each logged (s, a); in the
/// rewards' units.
pub fn answer_moments(
    tables: &quiver_sdk::Tables<'_>,
    out: &mut Value,
    data: &NeuralData,
    value_scale: f64,
    mut moments: impl FnMut(&NeuralData, &[u32], At) -> Result<Vec<(f64, f64)>, PluginError>,
) -> Result<Vec<f64>, PluginError> {
    let (asked, at) = match tables.opt("queries") {
        Some(qt) => {
            let (q, at) = read_queries(&qt, data, false)?;
            (Some(q), at)
        }
        None => (None, At::Logged),
    };
    let on = asked.as_ref().unwrap_or(data);
    let all: Vec<u32> = (0..on.n as u32).collect();
    let mut m = Vec::with_capacity(on.n);
    for rows in all.chunks(256) {
        m.extend(moments(on, rows, at)?);
    }
    let values: Vec<f64> = m.iter().map(|x| x.0 * value_scale).collect();
    if asked.is_some() {
        out["values"] = json!(values);
        out["sd"] = json!(m.iter().map(|x| x.1 * value_scale).collect::<Vec<f64>>());
    }
    Ok(values)
}

/// The result's fields every neural critic reports, in this order: `rows`, `episodes`, `j` (with a
/// note when the data do not give π at the first states), `network` (of `net`), `training`,
/// `scaling`, `saved`; a critic adds its own after them.
#[allow(clippy::too_many_arguments)]
pub fn summary(
    data: &NeuralData,
    j: Option<f64>,
    net: &Mlp<f32>,
    settings: &NetworkSettings,
    first_step: u64,
    curve: &train::Curve,
    scaling: &Scaling,
) -> Value {
    let mut out = json!({
        "rows": data.n,
        "episodes": data.first_rows.len(),
        "j": j,
        "network": network_json(net),
        "training": training_json(settings, first_step, curve),
        "scaling": scaling.to_json(),
        "saved": settings.save,
    });
    if j.is_none() {
        out["notes"] = json!([
            "J needs the target policy at the episodes' first states: pi_<a> columns (discrete actions) or a_pi_<k> \
             (continuous)"
        ]);
    }
    out
}

/// The result's `network` field.
pub fn network_json(net: &Mlp<f32>) -> Value {
    let spec = net.spec();
    json!({"inputs": spec.inputs, "hidden": spec.hidden, "outputs": spec.outputs, "layer_norm": spec.layer_norm,
           "parameters": net.params.len()})
}

/// The result's `training` field.
pub fn training_json(settings: &NetworkSettings, first_step: u64, curve: &train::Curve) -> Value {
    json!({
        "steps": settings.steps, "first_step": first_step, "batch": settings.batch, "lr": settings.lr,
        "polyak": settings.polyak, "seed": settings.seed,
        "final_loss": curve.loss.last(), "curve": curve.to_json(),
    })
}
