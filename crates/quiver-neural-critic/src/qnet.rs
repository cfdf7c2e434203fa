//! A Q network with its target copy and optimiser: Q(s, ·) with one output per action (discrete
//! actions) or Q(s, a) with one output (continuous actions, the state and action concatenated),
//! predicting values in units of the rewards' root mean square ([`crate::Scaling`]) — so that the
//! targets are of order one whatever the rewards' units (the fixed point is the same, divided by
//! that unit).

use crate::data::{Actions, Matrix, NeuralData};
use crate::internal;
use crate::settings::NetworkSettings;
use quiver_nn::cuda::CudaBackend;
use quiver_nn::device::{DeviceNets, Pass};
use quiver_nn::{Adam, AdamConfig, Mlp, MlpSpec, NnError, Tape};
use quiver_sdk::abi::{Device, PluginError};

/// How a network's inputs are put together and its outputs read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// Input s; one output per action.
    PerAction(usize),
    /// Input (s, a) with `d` action dimensions; one output.
    StateAction(usize),
    /// Input s; one output, a state's value V(s) (the action columns are not read).
    Value,
}

impl Head {
    /// The head of `data`'s actions.
    pub fn of(data: &NeuralData) -> Head {
        match &data.actions {
            Actions::Discrete { count, .. } => Head::PerAction(*count),
            Actions::Continuous { a, .. } => Head::StateAction(a.cols),
        }
    }
    /// The network's spec for states of `state_dim` dimensions.
    pub fn spec(self, state_dim: usize, settings: &NetworkSettings) -> MlpSpec {
        self.spec_wide(state_dim, settings, 1)
    }
    /// The spec of a network with `width` outputs per action (a distributional critic's mean and
    /// spread: 2), laid out as `width` blocks of one output per action.
    pub fn spec_wide(self, state_dim: usize, settings: &NetworkSettings, width: usize) -> MlpSpec {
        let (inputs, outputs) = match self {
            Head::PerAction(k) => (state_dim, k),
            Head::StateAction(d) => (state_dim + d, 1),
            Head::Value => (state_dim, 1),
        };
        MlpSpec {
            inputs,
            hidden: vec![settings.hidden; settings.layers],
            outputs: outputs * width,
            layer_norm: settings.layer_norm,
        }
    }
}

/// A fresh network of shape `spec` from `seed`, refused before allocating when its training (five
/// parameter-sized vectors and the batch's activations) would pass the memory limit.
pub fn fresh(spec: &MlpSpec, settings: &NetworkSettings, seed: u64) -> Result<Mlp<f32>, NnError> {
    spec.check()?;
    quiver_numerics::memory::reserve(
        spec.training_bytes(6, settings.batch, 4),
        "the network's training (parameters, gradients, Adam's moments, the target, the batch's activations)",
    )?;
    Mlp::new(spec.clone(), seed)
}

/// Which action each row of a batch is valued at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// The logged action (`a` or `a_<k>`).
    Logged,
    /// The target policy at the row's next state (`pi_next_<a>` averaged, or `a_next_<k>`).
    PolicyNext,
    /// The target policy at the row's state (`pi_<a>` averaged, or `a_pi_<k>`), when given.
    PolicyHere,
}

/// Where the networks are trained: the CPU (the parameters in [`QNet::online`] and
/// [`QNet::target`], Adam's moments and the tapes beside them) or an NVIDIA GPU (all of it on the
/// device; [`QNet::to_host`] copies the parameters back).
/// (The CPU's state is a few vectors' headers; the variants' sizes matter nothing for a handful of
/// networks a run.)
#[allow(clippy::large_enum_variant)]
enum Engine {
    Cpu { adam: Adam<f32>, tape: Tape<f32>, target_tape: Tape<f32>, eval_tape: Tape<f32>, grad: Vec<f32> },
    Cuda(Box<DeviceNets<CudaBackend>>),
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Engine::Cpu { .. } => "Engine::Cpu",
            Engine::Cuda(_) => "Engine::Cuda",
        })
    }
}

fn device_error(e: NnError) -> PluginError {
    quiver_sdk::plugin_error(e)
}

/// A Q network, its Polyak-averaged target, Adam, and the buffers of a step.
#[derive(Debug)]
pub struct QNet {
    /// The head.
    pub head: Head,
    /// The network trained (on a GPU: as of the last [`QNet::to_host`]).
    pub online: Mlp<f32>,
    /// Its target copy θ̄ (updated by Polyak averaging; on a GPU as of the last [`QNet::to_host`]).
    pub target: Mlp<f32>,
    engine: Engine,
    x: Vec<f32>,
    rows: Vec<u32>,
}

impl QNet {
    /// A network and target given (a checkpoint's), trained on the CPU.
    pub fn from_networks(head: Head, online: Mlp<f32>, target: Mlp<f32>, settings: &NetworkSettings) -> QNet {
        let adam = Adam::new(AdamConfig { lr: settings.lr, ..Default::default() }, online.params.len());
        let grad = vec![0.0; online.params.len()];
        let engine = Engine::Cpu { adam, tape: Tape::new(), target_tape: Tape::new(), eval_tape: Tape::new(), grad };
        QNet { head, online, target, engine, x: Vec::new(), rows: Vec::new() }
    }

    /// This network trained on `device`: on CUDA its parameters, target and Adam's state move to the
    /// GPU (before any step: Adam starts there at step 0).
    pub fn on(mut self, device: Device) -> Result<QNet, PluginError> {
        if device == Device::Cuda {
            let Engine::Cpu { adam, .. } = &self.engine else { return Ok(self) };
            let config = adam.config;
            let backend = CudaBackend::new().map_err(device_error)?;
            let nets = DeviceNets::new(backend, &self.online, &self.target, config).map_err(device_error)?;
            self.engine = Engine::Cuda(Box::new(nets));
        }
        Ok(self)
    }

    /// The device the networks are trained on.
    pub fn device(&self) -> Device {
        match self.engine {
            Engine::Cpu { .. } => Device::Cpu,
            Engine::Cuda(_) => Device::Cuda,
        }
    }

    /// Copy the parameters trained on a GPU into [`QNet::online`] and [`QNet::target`] (for a
    /// checkpoint or a summary); nothing to do on the CPU.
    pub fn to_host(&mut self) -> Result<(), PluginError> {
        if let Engine::Cuda(nets) = &self.engine {
            let (online, target) = nets.parameters().map_err(device_error)?;
            self.online.params = online;
            self.target.params = target;
        }
        Ok(())
    }

    /// Fill `x` with the inputs of `rows` at `states` (and, for a state-action head, their actions).
    fn inputs(&mut self, states: &Matrix, rows: &[u32], actions: Option<&Matrix>) {
        self.x.clear();
        for &i in rows {
            self.x.extend_from_slice(states.row(i as usize));
            if let Some(a) = actions {
                self.x.extend_from_slice(a.row(i as usize));
            }
        }
    }

    /// The continuous actions `at` points to, or `None` for a per-action head.
    fn action_rows<'d>(&self, data: &'d NeuralData, at: At) -> Result<Option<&'d Matrix>, &'static str> {
        let Head::StateAction(_) = self.head else { return Ok(None) };
        match (&data.actions, at) {
            (Actions::Continuous { a, .. }, At::Logged) => Ok(Some(a)),
            (Actions::Continuous { a_next, .. }, At::PolicyNext) => Ok(Some(a_next)),
            (Actions::Continuous { a_pi: Some(a), .. }, At::PolicyHere) => Ok(Some(a)),
            (Actions::Continuous { a_pi: None, .. }, At::PolicyHere) => Err("a_pi_<k> columns"),
            (Actions::Discrete { .. }, _) => Err("continuous actions"),
        }
    }

    /// Read Q at `at` from per-row outputs `out` of a forward pass over `rows`.
    fn read(&self, data: &NeuralData, out: &[f32], rows: &[u32], at: At) -> Result<Vec<f32>, &'static str> {
        let Head::PerAction(k) = self.head else { return Ok(out.to_vec()) }; // one output a row
        let Actions::Discrete { a, pi_next, pi, .. } = &data.actions else { return Err("discrete actions") };
        let weights = match at {
            At::Logged => {
                return Ok(rows.iter().enumerate().map(|(j, &i)| out[j * k + a[i as usize] as usize]).collect())
            }
            At::PolicyNext => pi_next,
            At::PolicyHere => pi.as_ref().ok_or("pi_<a> columns")?,
        };
        Ok(rows
            .iter()
            .enumerate()
            .map(|(j, &i)| weights.row(i as usize).iter().zip(&out[j * k..(j + 1) * k]).map(|(p, q)| p * q).sum())
            .collect())
    }

    /// The outputs of the network `pass` runs on inputs `x` (rows × inputs); a training pass keeps
    /// its tape for the step (and the rows it read, for [`QNet::step`]).
    fn run(&mut self, pass: Pass, x: &[f32], rows: usize) -> Result<Vec<f32>, PluginError> {
        match &mut self.engine {
            Engine::Cpu { tape, target_tape, eval_tape, .. } => Ok(match pass {
                Pass::Train => self.online.forward(tape, x, rows).to_vec(),
                Pass::Target => self.target.forward(target_tape, x, rows).to_vec(),
                Pass::Eval => self.online.forward(eval_tape, x, rows).to_vec(),
            }),
            Engine::Cuda(nets) => nets.forward(pass, x, rows).map_err(device_error),
        }
    }

    /// Every output of `pass` at `rows` of `states` with the actions `at` names.
    fn raw(
        &mut self,
        pass: Pass,
        data: &NeuralData,
        states: &Matrix,
        rows: &[u32],
        at: At,
    ) -> Result<Vec<f32>, PluginError> {
        let actions = self.action_rows(data, at).map_err(internal)?;
        self.inputs(states, rows, actions);
        if pass == Pass::Train {
            self.rows.clear();
            self.rows.extend_from_slice(rows);
        }
        let x = std::mem::take(&mut self.x);
        let out = self.run(pass, &x, rows.len());
        self.x = x;
        out
    }

    /// Q of the **online** network at `rows` of `states` and the actions `at` names, keeping the
    /// tape for [`QNet::step`].
    pub fn online_q(
        &mut self,
        data: &NeuralData,
        states: &Matrix,
        rows: &[u32],
        at: At,
    ) -> Result<Vec<f32>, PluginError> {
        let out = self.raw(Pass::Train, data, states, rows, at)?;
        self.read(data, &out, rows, at).map_err(internal)
    }

    /// Q of the **target** network at `rows` of `states` and the actions `at` names.
    pub fn target_q(
        &mut self,
        data: &NeuralData,
        states: &Matrix,
        rows: &[u32],
        at: At,
    ) -> Result<Vec<f32>, PluginError> {
        let out = self.raw(Pass::Target, data, states, rows, at)?;
        self.read(data, &out, rows, at).map_err(internal)
    }

    /// Q of the **online** network at `rows` of `states` and the actions `at` names, without
    /// touching the tape of the step under way (a value read for another network's target).
    pub fn eval_online(
        &mut self,
        data: &NeuralData,
        states: &Matrix,
        rows: &[u32],
        at: At,
    ) -> Result<Vec<f32>, PluginError> {
        let out = self.raw(Pass::Eval, data, states, rows, at)?;
        self.read(data, &out, rows, at).map_err(internal)
    }

    /// The online network's outputs at `rows` of `states` (with, for a state-action head, the
    /// actions `at` names), all of them (rows × outputs), keeping the tape for [`QNet::step_raw`].
    pub fn online_raw(
        &mut self,
        data: &NeuralData,
        states: &Matrix,
        rows: &[u32],
        at: At,
    ) -> Result<Vec<f32>, PluginError> {
        self.raw(Pass::Train, data, states, rows, at)
    }

    /// The target network's outputs at `rows`, as [`QNet::online_raw`].
    pub fn target_raw(
        &mut self,
        data: &NeuralData,
        states: &Matrix,
        rows: &[u32],
        at: At,
    ) -> Result<Vec<f32>, PluginError> {
        self.raw(Pass::Target, data, states, rows, at)
    }

    /// The online network's outputs on `rows` rows of inputs `x` the caller assembled, keeping the
    /// tape for [`QNet::step_raw`].
    pub fn online_on(&mut self, x: &[f32], rows: usize) -> Result<Vec<f32>, PluginError> {
        self.run(Pass::Train, x, rows)
    }

    /// The target network's outputs on inputs `x`, as [`QNet::online_on`].
    pub fn target_on(&mut self, x: &[f32], rows: usize) -> Result<Vec<f32>, PluginError> {
        self.run(Pass::Target, x, rows)
    }

    /// The online network's outputs on inputs `x`, without touching the step's tape.
    pub fn eval_on(&mut self, x: &[f32], rows: usize) -> Result<Vec<f32>, PluginError> {
        self.run(Pass::Eval, x, rows)
    }

    /// One Adam step along the loss whose gradient in every output of the last
    /// [`QNet::online_raw`] (or [`QNet::online_on`]) is `dout`.
    pub fn step_raw(&mut self, dout: &[f32]) -> Result<(), PluginError> {
        match &mut self.engine {
            Engine::Cpu { adam, tape, grad, .. } => {
                self.online.backward(tape, dout, grad);
                adam.step(&mut self.online.params, grad);
                Ok(())
            }
            Engine::Cuda(nets) => nets.step(dout).map_err(device_error),
        }
    }

    /// One Adam step along the loss whose gradient in the values of the last
    /// [`QNet::online_q`] (at the logged actions) is `dq`.
    pub fn step(&mut self, data: &NeuralData, dq: &[f32]) -> Result<(), PluginError> {
        let outputs = self.online.spec().outputs;
        let mut dout = vec![0.0f32; self.rows.len() * outputs];
        match (&self.head, &data.actions) {
            (Head::PerAction(k), Actions::Discrete { a, .. }) => {
                for (j, &i) in self.rows.iter().enumerate() {
                    dout[j * k + a[i as usize] as usize] = dq[j];
                }
            }
            _ => dout.copy_from_slice(dq),
        }
        self.step_raw(&dout)
    }

    /// Set Adam's step size (the schedule's, at this step).
    pub fn set_lr(&mut self, lr: f64) {
        match &mut self.engine {
            Engine::Cpu { adam, .. } => adam.set_lr(lr),
            Engine::Cuda(nets) => nets.set_lr(lr),
        }
    }

    /// θ̄ ← θ̄ + τ(θ − θ̄).
    pub fn polyak(&mut self, tau: f64) -> Result<(), PluginError> {
        match &mut self.engine {
            Engine::Cpu { .. } => {
                self.target.polyak_toward(&self.online, tau);
                Ok(())
            }
            Engine::Cuda(nets) => nets.polyak(tau).map_err(device_error),
        }
    }

    /// Q of the online network at every row of `states` (in batches), with `at`.
    pub fn values(&mut self, data: &NeuralData, states: &Matrix, at: At) -> Result<Vec<f64>, PluginError> {
        let mut out = Vec::with_capacity(states.rows);
        let all: Vec<u32> = (0..states.rows as u32).collect();
        for rows in all.chunks(4096) {
            out.extend(self.online_q(data, states, rows, at)?.into_iter().map(f64::from));
        }
        Ok(out)
    }
}
