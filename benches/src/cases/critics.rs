//! Bench cases of the critics: LSTD-Q and FQE with random Fourier features, OPE (bandit and
//! trajectories) and the chunked critic.

use crate::*;

/// Named f64 columns, as written for the baselines.
pub(crate) type Columns = Vec<(&'static str, Vec<f64>)>;

/// Logged transitions with continuous 2-D states for the critic cases: episodes of 1000 steps of
/// a damped random walk, two actions, a target policy given per row (`pi_<a>`, `pi_next_<a>`).
pub(crate) fn critic_table(n: usize, seed: u64) -> (Table, Columns, Vec<usize>) {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0, 1.0).unwrap();
    let len = 1000;
    let (mut s0, mut s1, mut a, mut rew) = (vec![0.0; n], vec![0.0; n], vec![0i64; n], vec![0.0; n]);
    let (mut x, mut y) = (0.0f64, 0.0f64);
    for i in 0..n {
        if i % len == 0 {
            (x, y) = (normal.sample(&mut r), normal.sample(&mut r));
        }
        s0[i] = x;
        s1[i] = y;
        a[i] = r.random_range(0..2);
        let push = if a[i] == 1 { 0.3 } else { -0.3 };
        rew[i] = (x - y).tanh() + 0.2 * a[i] as f64 + 0.3 * normal.sample(&mut r);
        (x, y) = (0.9 * x + push * 0.2 + 0.3 * normal.sample(&mut r), 0.9 * y + 0.3 * normal.sample(&mut r));
    }
    // s_next: the next row's state within an episode, a fresh step past its last row
    let mut sn0 = vec![0.0; n];
    let mut sn1 = vec![0.0; n];
    for i in 0..n {
        if (i + 1) % len != 0 && i + 1 < n {
            (sn0[i], sn1[i]) = (s0[i + 1], s1[i + 1]);
        } else {
            (sn0[i], sn1[i]) = (0.9 * s0[i], 0.9 * s1[i]);
        }
    }
    let target = |x: f64| 1.0 / (1.0 + (-2.0 * x).exp());
    let pi1: Vec<f64> = s0.iter().map(|&x| target(x)).collect();
    let pin1: Vec<f64> = sn0.iter().map(|&x| target(x)).collect();
    let pi0: Vec<f64> = pi1.iter().map(|p| 1.0 - p).collect();
    let pin0: Vec<f64> = pin1.iter().map(|p| 1.0 - p).collect();
    let first: Vec<usize> = (0..n).step_by(len).collect();
    let cols: Columns = vec![
        ("s_0", s0),
        ("s_1", s1),
        ("s_next_0", sn0),
        ("s_next_1", sn1),
        ("r", rew),
        ("pi_0", pi0),
        ("pi_1", pi1),
        ("pi_next_0", pin0),
        ("pi_next_1", pin1),
    ];
    let mut t = Table::new("transitions")
        .with_i64("episode", (0..n).map(|i| (i / len) as i64).collect())
        .with_i64("t", (0..n).map(|i| (i % len) as i64).collect())
        .with_i64("a", a)
        .with_bool("done", vec![false; n]);
    for (name, v) in &cols {
        t = t.with_f64(name, v.clone());
    }
    (t, cols, first)
}

/// [`critic_table`] of `n` rows from `seed`, its columns written to `dir` for the baselines (and
/// `a`, `done`, the episodes' `first` rows); returns the table.
fn critic_files(dir: &Path, n: usize, seed: u64) -> Table {
    let (table, cols, first) = critic_table(n, seed);
    std::fs::create_dir_all(dir).unwrap();
    for (name, v) in &cols {
        write_f64(dir, name, v);
    }
    let a: Vec<f64> = match table.column("a") {
        Some(quiver_host::Values::I64(v)) => v.iter().map(|&x| x as f64).collect(),
        _ => unreachable!("built above"),
    };
    write_f64(dir, "a", &a);
    write_f64(dir, "done", &vec![0.0; n]);
    write_f64(dir, "first", &first.iter().map(|&i| i as f64).collect::<Vec<_>>());
    table
}

/// `method` with `params` on `device` (every core): fitted on `tables`, then asked for its values;
/// the result's summary.
fn fit_and_values(
    host: &Host,
    method: &str,
    params: &serde_json::Map<String, Value>,
    device: DeviceRequest,
    tables: &[Table],
) -> Result<Value, String> {
    let ctx = RunContext { device, threads: 0, ..Default::default() };
    let mut h = host.create(method, params, ctx).map_err(|e| e.to_string())?;
    h.step("fit", tables).map_err(|e| e.to_string())?;
    Ok(h.step("values", &[]).map_err(|e| e.to_string())?.summary)
}

/// critic-lstd on `n` transitions with 2 × 128 random Fourier features, `lstdq` or `fqe`,
/// against the NumPy version (benches/baselines/critic_baselines.py) on the same data and the
/// same frequencies.
pub(crate) fn critic_case(host: &Host, dir: &Path, n: usize, target: &str, device: DeviceRequest) -> Option<Case> {
    let name = format!("critic-lstd {target} {}", device_tag(device));
    if skipped(&name) {
        return None;
    }
    let table = critic_files(dir, n, 5);
    // ridge 1e-3: at 1e-6 the Gram matrix of these features has condition number ~3e10 and FQE
    // cannot reach tol = 1e-8 in floating point (it stalls near 1e-6, on either side)
    let (dim, seed, gamma, ridge, tol) = (128, 1u64, 0.9, 1e-3, 1e-8);
    let rff = quiver_rl::Rff::new(2, dim, 1.0, seed, 2);
    write_f64(dir, "w", &rff.w);
    write_f64(dir, "b", &rff.b);
    let params = testing::params(&[
        ("features", json!("rff")),
        ("dim", json!(dim)),
        ("bandwidth", json!(1.0)),
        ("seed", json!(seed)),
        ("gamma", json!(gamma)),
        ("ridge", json!(ridge)),
        ("target", json!(target)),
        ("tol", json!(tol)),
    ]);
    let host = host.clone();
    let tables = vec![table];
    Some(Case {
        name,
        sizes: json!({"n": n, "m": 2 * dim}),
        python: None,
        script: Some("critic_baselines.py"),
        baseline: json!({"target": target, "dim": dim, "state_dim": 2, "actions": 2, "gamma": gamma, "ridge": ridge,
                         "tol": tol, "max_iter": 10_000}),
        data: dir.to_path_buf(),
        repeats: Some(3),
        quiver: Box::new(move || {
            let v = fit_and_values(&host, "critic-lstd", &params, device, &tables)?;
            Ok(json!({"j": v["j"], "iterations": v["iterations"], "device": v["device"]}))
        }),
    })
}

/// A contextual-bandit log of `n` rounds and `k` actions: random logger and target
/// probabilities per round, rewards and reward-model predictions from a scalar context.
pub(crate) fn bandit_columns(n: usize, k: usize, seed: u64) -> Columns {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pi = vec![vec![0.0; n]; k];
    let mut qhat = vec![vec![0.0; n]; k];
    let (mut a, mut r, mut mu) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let mut logger = vec![0.0; k];
    let mut target = vec![0.0; k];
    for i in 0..n {
        let x: f64 = rng.random();
        for j in 0..k {
            logger[j] = rng.random::<f64>() + 0.1;
            target[j] = (x * (j + 1) as f64).sin().powi(2) + 0.01;
        }
        let (ls, ts) = (logger.iter().sum::<f64>(), target.iter().sum::<f64>());
        let u = rng.random::<f64>() * ls;
        let (mut act, mut acc) = (0, logger[0]);
        while u > acc && act + 1 < k {
            act += 1;
            acc += logger[act];
        }
        a[i] = act as f64;
        mu[i] = logger[act] / ls;
        let mean = |j: usize| (x * (j + 2) as f64).cos().abs();
        r[i] = if rng.random::<f64>() < mean(act) { 1.0 } else { 0.0 };
        for j in 0..k {
            pi[j][i] = target[j] / ts;
            qhat[j][i] = 0.9 * mean(j) + 0.05;
        }
    }
    let mut cols: Columns = vec![("a", a), ("r", r), ("mu_prob", mu)];
    let names: &'static [&'static str] =
        &["pi_0", "pi_1", "pi_2", "pi_3", "pi_4", "pi_5", "pi_6", "pi_7", "pi_8", "pi_9"];
    let qnames: &'static [&'static str] =
        &["qhat_0", "qhat_1", "qhat_2", "qhat_3", "qhat_4", "qhat_5", "qhat_6", "qhat_7", "qhat_8", "qhat_9"];
    for (j, (p, q)) in pi.into_iter().zip(qhat).enumerate() {
        cols.push((names[j], p));
        cols.push((qnames[j], q));
    }
    cols
}

/// `ope` bandit estimators (IPW, SNIPW, DM, DR, Switch-DR, DRos with t intervals) on `n` rounds
/// of 10 actions, against Open Bandit Pipeline's formulas in NumPy.
pub(crate) fn ope_bandit_case(host: &Host, dir: &Path, n: usize) -> Option<Case> {
    let name = String::from("ope bandit (6 estimators, t intervals)");
    if skipped(&name) {
        return None;
    }
    let k = 10;
    let cols = bandit_columns(n, k, 17);
    std::fs::create_dir_all(dir).unwrap();
    let mut t = Table::new("bandit");
    for (name, v) in &cols {
        write_f64(dir, name, v);
        t = if *name == "a" {
            t.with_i64("a", v.iter().map(|&x| x as i64).collect())
        } else {
            t.with_f64(name, v.clone())
        };
    }
    drop(cols);
    let (switch, dros) = (2.0, 5.0);
    let params = testing::params(&[
        ("ci", json!("t")),
        ("alpha", json!(0.05)),
        ("switch_lambda", json!(switch)),
        ("dros_lambda", json!(dros)),
    ]);
    let host = host.clone();
    let tables = vec![t];
    Some(Case {
        name,
        sizes: json!({"n": n, "m": k}),
        python: None,
        script: Some("ope_baselines.py"),
        baseline: json!({"mode": "bandit", "actions": k, "alpha": 0.05, "switch_lambda": switch, "dros_lambda": dros}),
        data: dir.to_path_buf(),
        repeats: None,
        quiver: Box::new(move || {
            let v = fit_and_values(&host, "ope", &params, DeviceRequest::Cpu, &tables)?;
            let keys = ["ipw", "snipw", "dm", "dr", "switch_dr", "dros"];
            let mut est: serde_json::Map<String, Value> = keys.iter().map(|k| (k.to_string(), v[*k].clone())).collect();
            est.insert("ess".into(), json!({"estimate": v["ess"]}));
            Ok(json!({"estimates": est}))
        }),
    })
}

/// `ope` on trajectories — TIS, PDIS, SN-PDIS, DM, DR with bootstrap intervals of `resamples`
/// resamples — on `episodes` episodes of 10 steps in a 20-state, 3-action MDP, against the same
/// estimators and SCOPE-RL's bootstrap loop in NumPy. Both get the same Q-hat (a `q` table).
pub(crate) fn ope_trajectory_case(
    host: &Host,
    dir: &Path,
    episodes: usize,
    resamples: usize,
    name: Option<&str>,
) -> Option<Case> {
    let name = name.map_or_else(|| format!("ope trajectories ({resamples} bootstrap resamples)"), str::to_string);
    if skipped(&name) {
        return None;
    }
    let (n_s, n_a, horizon) = (20, 3, 10);
    let mut mdp = testing::mdp::FiniteMdp::random(19, n_s, n_a, 0.95);
    mdp.term = vec![0.0; n_s * n_a]; // equal-length episodes (the NumPy version reshapes them)
    let beta = mdp.random_policy(1, |_, _| true);
    let pi = mdp.random_policy(2, |_, _| true);
    let data = mdp.sample(3, &beta, None, episodes, horizon);
    let q: Vec<f64> = (0..n_s * n_a).map(|k| mdp.r[k] * 3.0 + 0.5).collect();
    std::fs::create_dir_all(dir).unwrap();
    let col = |name: &str| -> Vec<f64> {
        match data.column(name) {
            Some(quiver_host::Values::I64(v)) => v.iter().map(|&x| x as f64).collect(),
            Some(quiver_host::Values::F64(v)) => v.clone(),
            _ => unreachable!("sampled above"),
        }
    };
    for name in ["s", "a", "r", "mu_prob"] {
        write_f64(dir, name, &col(name));
    }
    write_f64(dir, "policy", &pi);
    write_f64(dir, "q", &q);
    let q_table = Table::new("q")
        .with_i64("s", (0..n_s * n_a).map(|k| (k / n_a) as i64).collect())
        .with_i64("a", (0..n_s * n_a).map(|k| (k % n_a) as i64).collect())
        .with_f64("q", q);
    let (gamma, seed) = (0.95, 7);
    let params = testing::params(&[
        ("ci", json!("bootstrap")),
        ("resamples", json!(resamples)),
        ("gamma", json!(gamma)),
        ("seed", json!(seed)),
    ]);
    let host = host.clone();
    let tables = vec![data, mdp.policy_table(&pi), q_table];
    Some(Case {
        name,
        sizes: json!({"n": episodes, "m": horizon}),
        python: None,
        script: Some("ope_baselines.py"),
        baseline: json!({"mode": "trajectory", "episodes": episodes, "horizon": horizon, "states": n_s,
                         "actions": n_a, "gamma": gamma, "alpha": 0.05, "resamples": resamples, "seed": seed}),
        data: dir.to_path_buf(),
        repeats: Some(3),
        quiver: Box::new(move || {
            // `auto`: the bootstrap's resampled sums run on the GPU where there is one
            let v = fit_and_values(&host, "ope", &params, DeviceRequest::Auto, &tables)?;
            let keys = ["tis", "pdis", "sn_pdis", "dm", "dr"];
            // the estimates must agree; the intervals come from other random draws (reported)
            let est: serde_json::Map<String, Value> =
                keys.iter().map(|k| (k.to_string(), json!({"estimate": v[*k]["estimate"]}))).collect();
            let iv: serde_json::Map<String, Value> =
                keys.iter().map(|k| (k.to_string(), json!([v[*k]["lower"], v[*k]["upper"]]))).collect();
            Ok(json!({"estimates": est, "intervals": iv, "device": v["device"]}))
        }),
    })
}

/// `critic-chunked` (DQC, h = 4, κ_d = 0.7, κ_b = 0.8) to its fixed point on `episodes` episodes
/// of 10 steps of a 20-state, 3-action MDP: Quiver's time and iterations (no baseline).
pub(crate) fn dqc_case(host: &Host, episodes: usize) -> Option<Case> {
    let name = String::from("critic-chunked DQC h = 4 (fixed point)");
    if skipped(&name) {
        return None;
    }
    let mut mdp = testing::mdp::FiniteMdp::random(23, 20, 3, 0.95);
    mdp.term = vec![0.0; 60]; // episodes of exactly 10 steps: 10 rows per episode
    let beta = mdp.random_policy(4, |_, _| true);
    let data = mdp.sample(5, &beta, None, episodes, 10);
    let rows = data.nrows;
    let params = testing::params(&[
        ("h", json!(4)),
        ("h_a", json!(2)),
        ("kappa_d", json!(0.7)),
        ("kappa_b", json!(0.8)),
        ("gamma", json!(0.95)),
    ]);
    let host = host.clone();
    let tables = vec![data];
    Some(Case {
        name,
        sizes: json!({"n": rows, "m": 4}),
        python: None,
        script: None,
        baseline: Value::Null,
        data: PathBuf::new(),
        repeats: Some(3),
        quiver: Box::new(move || {
            let v = fit_and_values(&host, "critic-chunked", &params, DeviceRequest::Auto, &tables)?;
            Ok(json!({"iterations": v["iterations"], "converged": v["converged"], "j": v["j"],
                      "chunks": v["q_chunk"]["q"].as_array().map_or(0, Vec::len), "device": v["device"]}))
        }),
    })
}

/// `critic-quantile` (tabular, κ = 0, γ = 0.9, tol 1e-12) on `rows` transitions of a 2-state,
/// 2-action MDP with Gaussian reward noise (every reward its own atom), N = `n` quantiles; against
/// the operator written out in NumPy (`quantile_critic_baselines.py`) when `baseline`.
pub(crate) fn quantile_critic_case(host: &Host, dir: &Path, rows: usize, n: usize, baseline: bool) -> Option<Case> {
    let name = format!("critic-quantile tabular N = {n}{}", if baseline { "" } else { " (no baseline)" });
    if skipped(&name) {
        return None;
    }
    let (states, actions) = (2usize, 2usize);
    let mut mdp = testing::mdp::FiniteMdp::random(31, states, actions, 0.9);
    mdp.term = vec![0.0; states * actions];
    let beta = mdp.random_policy(2, |_, _| true);
    let pi = mdp.random_policy(3, |_, _| true);
    let data = mdp.sample(4, &beta, None, rows / 1000, 1000);
    let policy = mdp.policy_table(&pi);
    let col = |name: &str| -> Vec<f64> {
        match &data.columns.iter().find(|(c, _)| c == name).expect("a sampled column").1 {
            quiver_host::Values::F64(v) => v.clone(),
            quiver_host::Values::I64(v) => v.iter().map(|&x| x as f64).collect(),
            quiver_host::Values::Bool(v) => v.iter().map(|&x| f64::from(u8::from(x))).collect(),
            quiver_host::Values::Bytes { .. } => unreachable!("the sampler writes no bytes columns"),
        }
    };
    if baseline {
        std::fs::create_dir_all(dir).ok()?;
        for c in ["s", "a", "r", "s_next", "done"] {
            write_f64(dir, c, &col(c));
        }
        let t = col("t");
        let first: Vec<f64> = (0..t.len()).filter(|&i| t[i] == 0.0).map(|i| i as f64).collect();
        write_f64(dir, "first", &first);
        write_f64(dir, "pi", &pi);
    }
    let params = testing::params(&[("n_quantiles", json!(n)), ("gamma", json!(0.9)), ("tol", json!(1e-12))]);
    let host = host.clone();
    let tables = vec![data, policy];
    Some(Case {
        name,
        sizes: json!({"n": rows, "m": n}),
        python: None,
        script: baseline.then_some("quantile_critic_baselines.py"),
        baseline: if baseline {
            json!({"states": states, "actions": actions, "n_quantiles": n, "gamma": 0.9, "tol": 1e-12, "max_iter": 1000})
        } else {
            Value::Null
        },
        data: dir.to_path_buf(),
        repeats: Some(3),
        quiver: Box::new(move || {
            let v = fit_and_values(&host, "critic-quantile", &params, DeviceRequest::Cpu, &tables)?;
            Ok(json!({"j": v["j"], "iterations": v["iterations"], "device": v["device"]}))
        }),
    })
}

/// `critic-lowrank` at rank 2 on a random `states` × `actions` MDP whose behaviour takes a fifth of
/// the actions at each state (200 episodes of 1 000 steps): the reward, the continuation mass and
/// one transition slice per next state completed — on the CPU one after another, on the GPU
/// (`DeviceRequest::Cuda`) as one batch. Quiver's time alone (no baseline); the report keeps J
/// and the completed reward's leading singular value, which the two devices share.
pub(crate) fn lowrank_case(host: &Host, states: usize, actions: usize, device: DeviceRequest) -> Option<Case> {
    let name = format!("critic-lowrank {states}x{actions} rank 2 {}", device_tag(device));
    if skipped(&name) {
        return None;
    }
    let mut mdp = testing::mdp::FiniteMdp::random(41, states, actions, 0.9);
    mdp.term = vec![0.0; states * actions];
    let beta = mdp.random_policy(5, |s, a| (s + a) % 5 == 0);
    let pi = mdp.random_policy(6, |_, _| true);
    let tables = vec![mdp.sample(7, &beta, None, 200, 1000), mdp.policy_table(&pi)];
    let params = testing::params(&[("rank", json!(2)), ("ridge", json!(1e-3)), ("gamma", json!(0.9))]);
    let host = host.clone();
    Some(Case {
        name,
        sizes: json!({"n": 200_000, "states": states, "actions": actions, "rank": 2}),
        python: None,
        script: None,
        baseline: Value::Null,
        data: PathBuf::new(),
        repeats: Some(3),
        quiver: Box::new(move || {
            let v = fit_and_values(&host, "critic-lowrank", &params, device, &tables)?;
            Ok(json!({"j": v["j"], "sigma_1": v["reward_singular_values"][0], "device": v["device"]}))
        }),
    })
}

/// Name of the neural FQE case (PyTorch baseline under `--baselines full`).
pub(crate) const NEURAL_FQE: &str = "critic-net-fqe 2x256, 1e4 steps of 256";

/// `critic-net-fqe` on `n` transitions (the critic cases' data: 2-D states, two actions), a 2 ×
/// 256 MLP with layer norm trained for `steps` steps of 256 rows, against the same training loop in
/// PyTorch on the CPU (benches/baselines/neural_baselines.py) when `torch` (an interpreter with
/// PyTorch) is given. Two trainings from different random draws agree statistically: their J
/// within 5 % (`compare: statistical`).
/// On `DeviceRequest::Cuda` the case is named with ` cuda` after it and trains on the GPU. With
/// `d3rlpy`, the baseline is d3rlpy's own `DiscreteFQE` (case `fqe-d3rlpy`: the same network size,
/// step size, batch and steps, its hard target copies and sampled next actions) instead of the
/// plain PyTorch loop, and the case is named with ` vs d3rlpy FQE` after it.
pub(crate) fn neural_fqe_case(
    host: &Host,
    dir: &Path,
    (n, steps): (usize, usize),
    torch: Option<&Path>,
    device: DeviceRequest,
    d3rlpy: bool,
) -> Option<Case> {
    let name = match (device, d3rlpy) {
        (_, true) => format!("{NEURAL_FQE} vs d3rlpy FQE"),
        (DeviceRequest::Cuda, _) => format!("{NEURAL_FQE} cuda"),
        _ => NEURAL_FQE.to_string(),
    };
    if skipped(&name) {
        return None;
    }
    let table = critic_files(dir, n, 7);
    let (hidden, layers, batch, lr, polyak, gamma) = (256, 2, 256, 3e-4, 0.005, 0.9);
    let params = testing::params(&[
        ("hidden", json!(hidden)),
        ("layers", json!(layers)),
        ("steps", json!(steps)),
        ("batch", json!(batch)),
        ("lr", json!(lr)),
        ("polyak", json!(polyak)),
        ("gamma", json!(gamma)),
    ]);
    let host = host.clone();
    let tables = vec![table];
    Some(Case {
        name,
        sizes: json!({"n": n, "steps": steps, "batch": batch, "hidden": [hidden, hidden]}),
        python: torch.map(Path::to_path_buf),
        script: torch.map(|_| "neural_baselines.py"),
        baseline: json!({"case": if d3rlpy { "fqe-d3rlpy" } else { "fqe-torch" }, "state_dim": 2, "actions": 2, "hidden": hidden, "layers": layers,
                         "steps": steps, "batch": batch, "lr": lr, "polyak": polyak, "gamma": gamma, "seed": 0}),
        data: dir.to_path_buf(),
        repeats: Some(1),
        quiver: Box::new(move || {
            let v = fit_and_values(&host, "critic-net-fqe", &params, device, &tables)?;
            Ok(json!({"j": v["j"], "compare": "statistical", "device": v["device"]}))
        }),
    })
}
