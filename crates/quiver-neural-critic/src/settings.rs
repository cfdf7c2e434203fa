//! The settings every neural critic shares (embedded with `common: NetworkSettings = flatten`).

quiver_sdk::choices! {
    /// How Adam's step size moves over a run.
    pub enum Schedule {
        /// lr · (1 + cos(π k/K))/2 at step k of K (Loshchilov & Hutter, SGDR, ICLR 2017, without
        /// restarts).
        Cosine = "cosine",
        /// lr throughout.
        Constant = "constant",
    }
}

quiver_sdk::config! {
    /// The network, its training and its checkpoints.
    pub struct NetworkSettings {
        /// Discount γ ∈ [0, 1).
        pub gamma: f64 = float(Some(0.9), "discount").at_least(0.0).less_than(1.0),
        /// Units per hidden layer.
        pub hidden: usize = int(Some(256), "units per hidden layer").at_least(1.0).at_most(65536.0),
        /// Hidden layers.
        pub layers: usize = int(Some(2), "hidden layers").at_least(1.0).at_most(64.0),
        /// Whether hidden layers are normalised (LayerNorm) before their ReLU.
        pub layer_norm: bool = boolean(true, "layer norm on each hidden layer"),
        /// Gradient steps.
        pub steps: usize = int(Some(10_000), "gradient steps (0: evaluate the network of 'init' as it is)").at_least(0.0).at_most(1e9),
        /// Rows per minibatch.
        pub batch: usize = int(Some(256), "rows per minibatch, drawn with replacement").at_least(1.0).at_most(1e7),
        /// Adam's step size.
        pub lr: f64 = float(Some(3e-4), "Adam's step size").greater_than(0.0).at_most(1.0),
        /// How the step size moves over the run.
        pub schedule: Schedule = choice(Schedule::Cosine, "step size over the run: cosine (from lr down to 0, so that the last steps average the minibatches' noise away) or constant"),
        /// Polyak rate of the target networks.
        pub polyak: f64 = float(Some(0.005), "target networks: theta_bar += polyak (theta - theta_bar) after each step").greater_than(0.0).at_most(1.0),
        /// Seed of the initial weights and the minibatches.
        pub seed: u64 = int(Some(0), "seed of the initial weights and the minibatches").at_least(0.0),
        /// Where to write the trained networks.
        pub save: Option<String> = text(None, "write the trained networks to this safetensors file"),
        /// Where to read networks to start from.
        pub init: Option<String> = text(None, "start from the networks of this safetensors file (written by 'save')"),
    }
}

impl NetworkSettings {
    /// The step size at step `k` (0-based) of this run's `steps`.
    pub fn lr_at(&self, k: u64) -> f64 {
        match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::Cosine => {
                0.5 * self.lr * (1.0 + (std::f64::consts::PI * k as f64 / self.steps.max(1) as f64).cos())
            }
        }
    }
}

impl NetworkSettings {
    /// What can be refused before any data are read: `steps = 0` without a network to start from
    /// (it would report an untrained network's guesses), and a `save` file whose folder does not
    /// exist (found before the training, not after it).
    pub fn preflight(&self) -> Result<(), quiver_sdk::abi::PluginError> {
        use quiver_sdk::abi::PluginError;
        if self.steps == 0 && self.init.is_none() {
            return Err(PluginError::param(
                "parameter 'steps' = 0 evaluates the network of 'init' as it is: give 'init', or steps of training",
            ));
        }
        if let Some(path) = &self.save {
            let p = std::path::Path::new(path);
            let folder = p.parent().filter(|f| !f.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            if !folder.is_dir() || p.is_dir() {
                return Err(PluginError::param(format!(
                    "parameter 'save' = '{path}': {}",
                    if p.is_dir() { "is a folder; name a file" } else { "its folder does not exist" }
                )));
            }
        }
        Ok(())
    }
}
