//! `critic-chunked`: a chunked critic with decoupled distillation (after Decoupled Q-Chunking),
//! on tabular (discrete) data.
//!
//! Each row t starts a chunk of h′ = min(h, rows left in its episode) logged actions; its h-step
//! target is y_t = Σ_{k<h′} γ^k r_{t+k} + γ^{h′}(1 − d_{t+h′−1}) V(s_{t+h′}). With one-hot keys:
//! * Q_h(s, a_t … a_{t+h′−1}) = the mean of y over the rows with that chunk (least squares);
//! * Q_d(s, a_t … a_{t+h_a−1}) = the κ_d-expectile of Q_h over the chunks that continue that
//!   partial chunk, weighted by their rows (the decoupled distillation of the chunk critic onto
//!   its first h_a actions);
//! * V(s) = the κ_b-expectile of Q_d over the partial chunks at s, weighted by their rows.
//!
//! The three are iterated from V = 0 to a relative change ≤ `tol` (a contraction: every target
//! bootstraps at least one discount factor ahead). κ_d = κ_b = 0.5 gives the behaviour value of
//! the data's h-step returns; κ → 1 moves toward the best chunk the data contain. With h = 1 this is
//! the expectile critic with τ = κ_b.
//!
//! Q_h is affine in V, so the data are read once: the chunks' mean reward sums and, per (chunk,
//! bootstrap state), the summed γ^{h′}(1 − d) of its rows; an iteration then costs the number of
//! such pairs, not the number of rows. CUDA: the h-step reward sums (a segmented scan per episode)
//! run on the GPU; the small tabular fixed point stays on the CPU.

use ndarray::{Array1, Array2, Axis};
use quiver_critic_kit::setup::{self, transitions_table, CommonParams, FeatureKind};
use quiver_rl::expectile::{expectile_regression, ridge_solve};
use quiver_rl::tabular::expectile;
use quiver_rl::Rff;
use quiver_rl::{States, Transitions};
use quiver_sdk::abi::abi_stable::std_types::RVec;
use quiver_sdk::abi::{Manifest, PluginError};
use quiver_sdk::plugin_error;
use quiver_sdk::serde_json::{json, Value};
use quiver_sdk::{Context, CriticImpl, ManifestBuilder, Plugin, Tables};
use quiver_sdk::{Created, CriticResult, Family};
use std::collections::HashMap;

/// Most ids the chunk keys may hold together (rows × (h + h_a + 2); 4 bytes each plus the maps).
pub const MAX_KEY_IDS: f64 = 1e8;

quiver_sdk::config! {
    /// The parameters as given (checked against their declared types and ranges, and against each
    /// other); [`Config`] is what the method computes with.
    pub struct Settings {
        /// Chunk length h.
        pub h: usize = int(Some(4), "chunk length (actions per chunk)").at_least(1.0).at_most(256.0),
        /// Distilled (partial) chunk length h_a ≤ h.
        pub h_a: usize = int(Some(1), "length of the distilled partial chunk, at most h").at_least(1.0).at_most(256.0),
        /// Expectile of the distillation onto partial chunks.
        pub kappa_d: f64 = float(Some(0.5), "expectile of the distillation onto partial chunks").open(0.0, 1.0),
        /// Expectile of V over partial chunks.
        pub kappa_b: f64 = float(Some(0.5), "expectile of V over partial chunks").open(0.0, 1.0),
        /// The shared critic parameters.
        pub common: CommonParams = flatten,
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

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Discount.
    pub gamma: f64,
    /// Chunk length h.
    pub h: usize,
    /// Distilled (partial) chunk length h_a ≤ h.
    pub h_a: usize,
    /// Expectile of the distillation onto partial chunks.
    pub kappa_d: f64,
    /// Expectile of V over partial chunks.
    pub kappa_b: f64,
    /// Tolerance.
    pub tol: f64,
    /// Iteration cap.
    pub max_iter: usize,
    /// The shared critic parameters (features, and for `rff` dim, bandwidth, seed, ridge).
    pub common: CommonParams,
}

/// The estimator.
pub struct CriticChunked {
    config: Config,
    ctx: Context,
    fitted: Option<(Vec<f64>, Value)>,
}

/// The memory a fit may take at most, in bytes, for `n` rows and chunks of `h` (partial chunks of
/// `h_a`) actions: every row may open a chunk and a partial chunk of its own. A key of L ids costs
/// its hash-map entry and list slot with their allocations (about 104 + 8L bytes); a row, its
/// window, bootstrap and target arrays and its (chunk, state) pair (about 200 bytes); and the
/// result lists every key with its value, as JSON values and then text (about 48 bytes an id).
pub fn chunked_bytes(n: usize, h: usize, h_a: usize) -> f64 {
    let key = |len: usize| 104.0 + 8.0 * len as f64 + 48.0 * (len + 1) as f64;
    n as f64 * (key(h + 1) + key(h_a + 1) + 200.0)
}

/// Index of keys (state, actions…) in first-seen order.
#[derive(Default)]
struct Keys {
    index: HashMap<Vec<u32>, usize>,
    keys: Vec<Vec<u32>>,
    rows: Vec<f64>,
}

impl Keys {
    fn add(&mut self, key: &[u32]) -> usize {
        let k = match self.index.get(key) {
            Some(&k) => k,
            None => {
                let k = self.keys.len();
                self.index.insert(key.to_vec(), k);
                self.keys.push(key.to_vec());
                self.rows.push(0.0);
                k
            }
        };
        self.rows[k] += 1.0;
        k
    }
}

fn keys_json(keys: &Keys, values: &[f64]) -> Value {
    json!({
        "s": keys.keys.iter().map(|k| k[0]).collect::<Vec<_>>(),
        "actions": keys.keys.iter().map(|k| k[1..].to_vec()).collect::<Vec<_>>(),
        "q": values,
    })
}

/// Every row's h-step window: its discounted reward sum and length (a segmented scan, on the GPU
/// when asked), its chunk and its partial chunk — keyed by the window's actions, after the state
/// id when `state` is given (tabular data).
struct Windows {
    g: Vec<f64>,
    steps: Vec<i32>,
    chunks: Keys,
    partials: Keys,
    chunk_of: Vec<usize>,
    partial_of: Vec<usize>,
}

impl CriticChunked {
    fn windows(&self, data: &Transitions<'_>, state: Option<&[u32]>) -> Result<Windows, PluginError> {
        let c = &self.config;
        let n = data.n;
        let (g, steps) = self
            .ctx
            .dispatch(
                || Ok(data.nstep_returns(c.h, c.gamma)),
                || quiver_rl::gpu::nstep_returns_cuda(data.r, &data.episode_ends(), c.h, c.gamma),
            )
            .map_err(plugin_error)?;
        let (mut chunks, mut partials) = (Keys::default(), Keys::default());
        let (mut chunk_of, mut partial_of) = (vec![0usize; n], vec![0usize; n]);
        let mut key = Vec::with_capacity(c.h + 1);
        let lead = usize::from(state.is_some());
        for i in 0..n {
            let w = steps[i] as usize;
            key.clear();
            key.extend(state.map(|s| s[i]));
            key.extend(&data.a[i..i + w]);
            chunk_of[i] = chunks.add(&key);
            partial_of[i] = partials.add(&key[..lead + c.h_a.min(w)]);
        }
        Ok(Windows { g, steps, chunks, partials, chunk_of, partial_of })
    }

    /// The fields every chunked result starts with.
    fn summary_head(&self, data: &Transitions<'_>) -> Value {
        let c = &self.config;
        json!({
            "h": c.h,
            "h_a": c.h_a,
            "kappa_d": c.kappa_d,
            "kappa_b": c.kappa_b,
            "rows": data.n,
            "episodes": data.episodes.len(),
        })
    }
}

impl CriticChunked {
    /// Continuous states: the same three regressions with features — Q_h(s, chunk) =
    /// ψ(s)ᵀθ_chunk (one weight block per action sequence), Q_d(s, partial) = ψ(s)ᵀθ_partial, V(s) =
    /// ψ(s)ᵀw, ψ random Fourier features — iterated until V at the data's states changes by at
    /// most `tol` (relative). Q_h's least squares is affine in w, so its normal equations are
    /// accumulated once: θ_c = (G_c + λI)⁻¹(b_c + M_c w) with G_c = Σ_{i∈c} ψ_iψ_iᵀ, b_c =
    /// Σ_{i∈c} ψ_i g_i and M_c = Σ_{i∈c} γ^{h′}(1 − d) ψ_i ψ(s_{t+h′})ᵀ.
    fn fit_rff(&self, data: &Transitions<'_>) -> Result<(Vec<f64>, Value), PluginError> {
        let c = &self.config;
        let States::Continuous { s, s_next } = &data.states else { unreachable!("checked by the caller") };
        let n = data.n;
        let rff = Rff::new(s.len(), c.common.dim, c.common.bandwidth, c.common.seed, 1);
        rff.check_phases(c.common.bandwidth, s, s_next).map_err(plugin_error)?;
        let d = rff.dim;
        if n * 3 * d > quiver_rl::expectile::MAX_CACHE {
            return Err(PluginError::new(
                quiver_sdk::abi::ErrorKind::Unsupported,
                format!("{n} rows x 3 x {d} features exceed what the linear chunked fit holds: lower dim"),
            ));
        }
        let (psi, psi_next) = quiver_rl::features::rff_matrices(&rff, s, s_next, &data.done).map_err(plugin_error)?;
        let Windows { g, steps, chunks, partials, chunk_of, partial_of } = self.windows(data, None)?;
        let mut boot = Array2::<f64>::zeros((n, d)); // γ^{h′}(1 − d) ψ(s_{t+h′})
        for (i, &w) in steps.iter().enumerate() {
            let w = w as usize;
            let last = i + w - 1;
            if !data.done[last] {
                let f = c.gamma.powi(w as i32);
                boot.row_mut(i).iter_mut().zip(psi_next.row(last)).for_each(|(o, x)| *o = f * x);
            }
        }
        // the normal equations hold two D × D matrices per chunk
        let held = (chunks.keys.len() + partials.keys.len()) as f64 * 2.0 * (d * d) as f64;
        if held > quiver_rl::expectile::MAX_CACHE as f64 {
            return Err(PluginError::new(
                quiver_sdk::abi::ErrorKind::Unsupported,
                format!(
                    "{} distinct action chunks x 2 x {d}^2 values of normal equations (limit {}): lower h or dim",
                    chunks.keys.len(),
                    quiver_rl::expectile::MAX_CACHE
                ),
            ));
        }
        let members = |of: &[usize], k: usize| -> Vec<Vec<usize>> {
            let mut m = vec![Vec::new(); k];
            of.iter().enumerate().for_each(|(i, &x)| m[x].push(i));
            m
        };
        let (chunk_rows, partial_rows) =
            (members(&chunk_of, chunks.keys.len()), members(&partial_of, partials.keys.len()));
        // the normal equations of each chunk block, once
        let g_all = Array1::from(g);
        let normal: Vec<(Array2<f64>, Array1<f64>, Array2<f64>)> = chunk_rows
            .iter()
            .map(|idx| {
                let x = psi.select(Axis(0), idx);
                let bx = boot.select(Axis(0), idx);
                let gi: Array1<f64> = idx.iter().map(|&i| g_all[i]).collect();
                (x.t().dot(&x), x.t().dot(&gi), x.t().dot(&bx))
            })
            .collect();
        let partial_x: Vec<Array2<f64>> = partial_rows.iter().map(|idx| psi.select(Axis(0), idx)).collect();
        let (mut w, mut theta_c, mut theta_p) = (
            Array1::<f64>::zeros(d),
            vec![Array1::<f64>::zeros(d); chunk_rows.len()],
            vec![Array1::<f64>::zeros(d); partial_rows.len()],
        );
        let mut v_prev = psi.dot(&w);
        let (mut change, mut iterations) = (f64::INFINITY, 0);
        let ridge = c.common.ridge;
        while iterations < c.max_iter {
            let mut q_h = Array1::<f64>::zeros(n);
            for (k, (gram, b, m)) in normal.iter().enumerate() {
                theta_c[k] =
                    ridge_solve(gram.clone(), &(b + &m.dot(&w)), ridge, "Q_h (chunk)").map_err(plugin_error)?;
                for &i in &chunk_rows[k] {
                    q_h[i] = psi.row(i).dot(&theta_c[k]);
                }
            }
            let mut q_d = Array1::<f64>::zeros(n);
            for (p, idx) in partial_rows.iter().enumerate() {
                let y: Array1<f64> = idx.iter().map(|&i| q_h[i]).collect();
                theta_p[p] = expectile_regression(partial_x[p].view(), &y, c.kappa_d, ridge, &theta_p[p])
                    .map_err(plugin_error)?;
                for &i in idx {
                    q_d[i] = psi.row(i).dot(&theta_p[p]);
                }
            }
            w = expectile_regression(psi.view(), &q_d, c.kappa_b, ridge, &w).map_err(plugin_error)?;
            let v = psi.dot(&w);
            let scale;
            (change, scale) =
                quiver_numerics::convergence::relative_change(v.iter().zip(&v_prev).map(|(a, b)| (*a, *b)));
            v_prev = v;
            iterations += 1;
            if !change.is_finite() || scale > 1e150 {
                return Err(plugin_error(quiver_rl::RlError::diverged(
                    "the chunked critic",
                    scale,
                    iterations,
                    data.r,
                )));
            }
            self.ctx.progress(iterations as u64, c.max_iter as u64, "chunked iterations")?;
            if change <= c.tol {
                break;
            }
        }
        let targets: Vec<f64> = (0..n).map(|i| g_all[i] + boot.row(i).dot(&w)).collect();
        setup::ensure_finite("values", targets.iter().chain(w.iter()).copied(), data)?;
        let firsts: Vec<usize> = data.first_rows().collect();
        let j = firsts.iter().map(|&i| v_prev[i]).sum::<f64>() / firsts.len() as f64;
        let weights = |keys: &Keys, th: &[Array1<f64>]| json!({"actions": keys.keys, "theta": th.iter().map(|t| t.to_vec()).collect::<Vec<_>>()});
        let mut summary = self.summary_head(data);
        summary["features"] = json!("rff");
        summary["dim"] = json!(d);
        let rest = json!({
            "q_chunk": weights(&chunks, &theta_c),
            "q_d": weights(&partials, &theta_p),
            "w": w.to_vec(),
            "j": j,
        });
        for (k, v) in rest.as_object().expect("an object") {
            summary[k] = v.clone();
        }
        setup::report_iterations(&mut summary, "", iterations, change, c.tol, c.max_iter, "");
        Ok((targets, summary))
    }
}

impl CriticImpl for CriticChunked {
    fn fit(&mut self, tables: &Tables<'_>) -> Result<(), PluginError> {
        let c = self.config.clone();
        let t = tables.get("transitions")?;
        let data = quiver_critic_kit::read::transitions(&t)?;
        let key_ids = data.n as f64 * (c.h + c.h_a + 2) as f64;
        if key_ids > MAX_KEY_IDS {
            return Err(PluginError::new(
                quiver_sdk::abi::ErrorKind::Unsupported,
                format!(
                    "{} rows x chunks of {} actions: {key_ids:.2e} ids in the chunk keys (limit {MAX_KEY_IDS:.0e}): lower h",
                    data.n, c.h
                ),
            ));
        }
        quiver_sdk::memory::reserve(chunked_bytes(data.n, c.h, c.h_a), "the chunk keys, their values and the result")?;
        match c.common.features {
            FeatureKind::OneHot => {}
            FeatureKind::Rff => {
                setup::check_features(FeatureKind::Rff, &data.states)?;
                let fitted = self.fit_rff(&data)?;
                self.fitted = Some(fitted);
                return Ok(());
            }
            FeatureKind::Given => {
                return Err(PluginError::param(
                    "features=given is not available for critic-chunked: use onehot (discrete states) or rff \
                     (continuous states)",
                ))
            }
        }
        let States::Discrete { s, s_next, .. } = &data.states else {
            return Err(PluginError::input(
                "table 'transitions': features=onehot needs discrete states: columns 's' and 's_next' (continuous \
                 states s_<k>: features=rff)",
            ));
        };
        // per row: its window (keys after the state id), γ^{h′}(1 − d) and s_{t+h′}
        let n = data.n;
        let Windows { g, steps, chunks, partials, chunk_of, partial_of } = self.windows(&data, Some(s))?;
        let (mut disc, mut boot) = (vec![0.0; n], vec![0u32; n]);
        for i in 0..n {
            let w = steps[i] as usize;
            let last = i + w - 1;
            disc[i] = if data.done[last] { 0.0 } else { c.gamma.powi(w as i32) };
            boot[i] = s_next[last];
        }
        // which chunks continue each partial chunk, and the partial chunks at each state
        let mut continuations: Vec<Vec<usize>> = vec![Vec::new(); partials.keys.len()];
        let mut seen = std::collections::HashSet::new();
        for i in 0..n {
            if seen.insert((partial_of[i], chunk_of[i])) {
                continuations[partial_of[i]].push(chunk_of[i]);
            }
        }
        let mut at_state: HashMap<u32, Vec<usize>> = HashMap::new();
        for (p, key) in partials.keys.iter().enumerate() {
            at_state.entry(key[0]).or_default().push(p);
        }
        let mut states: Vec<u32> = at_state.keys().copied().collect();
        states.sort_unstable();
        let slot: HashMap<u32, usize> = states.iter().enumerate().map(|(i, &st)| (st, i)).collect();
        // Q_h is affine in V: Q_h[k] = mean_k g + Σ_j coef[k, j] V[j], coef the rows' γ^{h′}(1 − d)
        // summed per (chunk, bootstrap state) over the chunk's rows; one pass over the data here,
        // then each iteration costs the number of such pairs, not the number of rows
        let boot_slot: Vec<Option<usize>> = boot.iter().map(|b| slot.get(b).copied()).collect();
        let mut g_mean = vec![0.0; chunks.keys.len()];
        let mut pair_index: HashMap<(usize, usize), usize> = HashMap::new();
        let mut pairs: Vec<(usize, usize, f64)> = Vec::new();
        for i in 0..n {
            let k = chunk_of[i];
            g_mean[k] += g[i] / chunks.rows[k];
            if let (Some(j), true) = (boot_slot[i], disc[i] != 0.0) {
                let next = pairs.len();
                let p = *pair_index.entry((k, j)).or_insert(next);
                if p == next {
                    pairs.push((k, j, 0.0));
                }
                pairs[p].2 += disc[i] / chunks.rows[k];
            }
        }
        drop(pair_index);
        let mut v = vec![0.0; states.len()];
        let (mut q_h, mut q_d) = (vec![0.0; chunks.keys.len()], vec![0.0; partials.keys.len()]);
        let mut targets = vec![0.0; n];
        let (mut change, mut iterations) = (f64::INFINITY, 0);
        while iterations < c.max_iter {
            q_h.copy_from_slice(&g_mean);
            for &(k, j, coef) in &pairs {
                q_h[k] += coef * v[j];
            }
            for (p, conts) in continuations.iter().enumerate() {
                let vals: Vec<f64> = conts.iter().map(|&k| q_h[k]).collect();
                let ws: Vec<f64> = conts.iter().map(|&k| chunks.rows[k]).collect();
                q_d[p] = expectile(&vals, &ws, c.kappa_d);
            }
            let mut delta: f64 = 0.0;
            let mut scale: f64 = 0.0;
            for (j, st) in states.iter().enumerate() {
                let ps = &at_state[st];
                let vals: Vec<f64> = ps.iter().map(|&p| q_d[p]).collect();
                let ws: Vec<f64> = ps.iter().map(|&p| partials.rows[p]).collect();
                let new = expectile(&vals, &ws, c.kappa_b);
                delta = delta.max((new - v[j]).abs());
                scale = scale.max(new.abs());
                v[j] = new;
            }
            iterations += 1;
            // relative to the values (a floor of 1 made tiny reward scales look converged at once)
            change = quiver_numerics::convergence::relative(delta, scale);
            self.ctx.progress(iterations as u64, c.max_iter as u64, "chunked iterations")?;
            if change <= c.tol {
                break;
            }
        }
        for i in 0..n {
            targets[i] = g[i] + disc[i] * boot_slot[i].map_or(0.0, |j| v[j]);
        }
        setup::ensure_finite("values", targets.iter().chain(&v).copied(), &data)?;
        let vs: Vec<(u32, f64)> = states.iter().copied().zip(v.iter().copied()).collect();
        let mut summary = self.summary_head(&data);
        summary["q_chunk"] = keys_json(&chunks, &q_h);
        summary["q_d"] = keys_json(&partials, &q_d);
        summary["v"] = setup::v_json(&vs);
        summary["j"] = json!(setup::start_value(&data, &vs));
        setup::report_iterations(&mut summary, "", iterations, change, c.tol, c.max_iter, "");
        self.fitted = Some((targets, summary));
        Ok(())
    }

    fn values(&self, _tables: &Tables<'_>) -> Result<CriticResult, PluginError> {
        let (targets, summary) =
            self.fitted.as_ref().ok_or_else(|| quiver_sdk::state_error("values() before fit()"))?;
        // the per-row h-step targets travel typed (`values`), not in the JSON text
        Ok(CriticResult {
            device: self.ctx.device(),
            values: RVec::from(targets.clone()),
            json: self.ctx.result_text(summary.clone()),
        })
    }
}

/// The plugin.
pub struct CriticChunkedPlugin;

impl Plugin for CriticChunkedPlugin {
    fn manifest() -> Manifest {
        ManifestBuilder::new("critic-chunked", Family::Critic)
            .version(env!("CARGO_PKG_VERSION"))
            .summary("Chunked critic with decoupled distillation: h-step targets, expectile distillation to partial chunks and V")
            .guarantee(
                "Returns the fixed point of the chunked critic's three regressions on the data, to the reported \
                 tolerance: with kappa_d = kappa_b = 0.5, the behaviour value of the data's h-step returns; with \
                 h = 1, the expectile critic with tau = kappa_b. Only chunks the data contain are ever evaluated.",
            )
            .reference("Decoupled Q-chunking (DQC) for offline RL with action chunks; Kostrikov et al., IQL, ICLR (2022)")
            .cuda()
            .config::<Settings>()
            .table(transitions_table())
            .build()
    }

    type Config = Settings;

    fn create(settings: Settings, ctx: Context) -> Result<Created, PluginError> {
        let common = settings.common;
        let config = Config {
            gamma: common.gamma,
            h: settings.h,
            h_a: settings.h_a,
            kappa_d: settings.kappa_d,
            kappa_b: settings.kappa_b,
            tol: common.tol,
            max_iter: common.max_iter,
            common,
        };
        Ok(quiver_sdk::critic(CriticChunked { config, ctx, fitted: None }))
    }
}

quiver_sdk::export_plugin!(CriticChunkedPlugin);
