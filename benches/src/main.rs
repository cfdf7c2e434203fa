//! The benchmark harness behind `cargo xtask bench`.
//!
//! Each case generates its data once (seeded), runs Quiver through the real plugin boundary (the
//! built cdylib loaded by the host) and the NumPy/SciPy baseline (`benches/baselines/*.py`, the same
//! formulas vectorised) on the same data in the same run, checks that both computed the same
//! answer, and records the median times. Writes `report.json` (host, device, git revision, per
//! case: sizes, Quiver's median, the baseline's, the ratio) and `report.svg` (speed-ups).
//!
//! Usage: `quiver-bench --python PATH --out DIR [--quick] [--repeats N] [--only SUBSTRING]` (xtask
//! passes the first two; `--only` keeps the cases whose name contains SUBSTRING, and builds only
//! their data).

use indicatif::{ProgressBar, ProgressStyle};
use quiver_host::{DeviceRequest, Host, RunContext, Table};
use quiver_testing as testing;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

struct Args {
    python: PathBuf,
    out: PathBuf,
    quick: bool,
    repeats: usize,
    only: Option<String>,
    /// `--baselines full`: the interpreter with SCOPE-RL installed.
    python_full: Option<PathBuf>,
    /// Internal: measure memory case K in this process (and its row count).
    memory_case: Option<(usize, usize)>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        python: "python3".into(),
        out: "target/bench".into(),
        quick: false,
        repeats: 7,
        only: None,
        python_full: None,
        memory_case: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--python" => a.python = it.next().ok_or("--python needs a path")?.into(),
            "--out" => a.out = it.next().ok_or("--out needs a path")?.into(),
            "--quick" => a.quick = true,
            "--only" => a.only = Some(it.next().ok_or("--only needs a case name (a substring)")?),
            "--baselines" => match it.next().as_deref() {
                Some("full") | Some("numpy") => {}
                _ => return Err("--baselines takes numpy (the default) or full".into()),
            },
            "--python-full" => a.python_full = Some(it.next().ok_or("--python-full needs a path")?.into()),
            "--memory-case" => {
                let k = it.next().and_then(|k| k.parse().ok()).ok_or("--memory-case needs a number")?;
                a.memory_case = Some((k, a.memory_case.map_or(10_000_000, |m| m.1)));
            }
            "--memory-rows" => {
                let n = it.next().and_then(|k| k.parse().ok()).ok_or("--memory-rows needs a number")?;
                a.memory_case = Some((a.memory_case.map_or(0, |m| m.0), n));
            }
            "--repeats" => a.repeats = it.next().and_then(|r| r.parse().ok()).ok_or("--repeats needs a number")?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

use testing::write_f64;

fn median(mut t: Vec<f64>) -> f64 {
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// One benchmark case: a name, its sizes, Quiver's timed closure, the baseline's script and spec,
/// the folder of its data, and (for slow baselines) fewer repetitions.
struct Case {
    name: String,
    sizes: Value,
    /// The baseline script; `None` for a case that reports Quiver's time alone.
    script: Option<&'static str>,
    /// The interpreter of the baseline when not the default one (SCOPE-RL's environment).
    python: Option<PathBuf>,
    baseline: Value,
    data: PathBuf,
    repeats: Option<usize>,
    quiver: Box<dyn FnMut() -> Result<Value, String>>,
}

/// The `--only` filter, set once by `real_main`.
static ONLY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Whether `--only` leaves out the case named `name` (its data are then not built).
fn skipped(name: &str) -> bool {
    ONLY.get().and_then(Option::as_deref).is_some_and(|o| !name.contains(o))
}

/// The device part of a case's name.
fn device_tag(device: DeviceRequest) -> &'static str {
    if device == DeviceRequest::Cuda {
        "cuda"
    } else {
        "cpu"
    }
}

/// The same selection as `conformal-selection cpu`, called from Python through the `quiver`
/// wheel (the baseline interpreter has it installed): the ratio is what the Python package costs
/// over the Rust host.
fn python_api_case(host: &Host, dir: &Path, n: usize) -> Option<Case> {
    let mut case = selection_case(host, dir, n, n, false, DeviceRequest::Cpu, Some(PYTHON_API))?;
    case.script = Some("python_api_baselines.py");
    Some(case)
}

/// The name of the Python-package case.
const PYTHON_API: &str = "conformal-selection from python";

/// `conformal-selection` at n calibration and m test units (named `name` when given).
fn selection_case(
    host: &Host,
    dir: &Path,
    n: usize,
    m: usize,
    weighted: bool,
    device: DeviceRequest,
    name: Option<&str>,
) -> Option<Case> {
    let name = match name {
        Some(name) => name.to_string(),
        None => format!("conformal-selection{} {}", if weighted { " weighted" } else { "" }, device_tag(device)),
    };
    if skipped(&name) {
        return None;
    }
    let mut r = ChaCha8Rng::seed_from_u64(1 + weighted as u64);
    let normal = Normal::new(0.0, 1.0).unwrap();
    let x: Vec<f64> = (0..n).map(|_| normal.sample(&mut r)).collect();
    let y: Vec<f64> = x.iter().map(|xi| xi + normal.sample(&mut r)).collect();
    let mu_t: Vec<f64> = (0..m).map(|_| normal.sample(&mut r)).collect();
    let u: Vec<f64> = (0..m).map(|_| r.random()).collect();
    let w: Vec<f64> = (0..n).map(|_| r.random_range(0.5..2.0)).collect();
    let w_t: Vec<f64> = (0..m).map(|_| r.random_range(0.5..2.0)).collect();
    std::fs::create_dir_all(dir).unwrap();
    for (name, v) in [("y", &y), ("mu", &x), ("mu_test", &mu_t), ("u", &u), ("w", &w), ("w_test", &w_t)] {
        write_f64(dir, name, v);
    }
    let mut cal = Table::new("calibration").with_f64("y", y).with_f64("mu", x);
    let mut test = Table::new("test").with_f64("mu", mu_t).with_f64("u", u);
    if weighted {
        cal = cal.with_f64("w", w);
        test = test.with_f64("w", w_t);
    }
    let params = testing::params(&[("q", json!(0.1)), ("c", json!(0.0))]);
    let mut sel = host
        .selector("conformal-selection", &params, RunContext { device, threads: 0, ..Default::default() })
        .expect("plugin");
    Some(Case {
        name,
        sizes: json!({"n": n, "m": m}),
        python: None,
        script: Some("selector_baselines.py"),
        baseline: json!({"case": "conformal-selection", "q": 0.1, "c": 0.0, "clip_m": 1e6, "weighted": weighted}),
        data: dir.to_path_buf(),
        repeats: None,
        quiver: Box::new(move || {
            sel.calibrate(std::slice::from_ref(&cal)).map_err(|e| e.to_string())?;
            let r = sel.select(std::slice::from_ref(&test)).map_err(|e| e.to_string())?;
            let sum: u64 = r.selected.iter().sum();
            let k: usize = r.selected.len();
            Ok(json!({"k_star": k, "n_selected": k, "selected_sum": sum}))
        }),
    })
}

fn selective_case(host: &Host, dir: &Path, n: usize, rule: &str) -> Option<Case> {
    let name = format!("selective-risk {rule} cpu");
    if skipped(&name) {
        return None;
    }
    let mut r = ChaCha8Rng::seed_from_u64(3);
    let s: Vec<f64> = (0..n).map(|_| r.random()).collect();
    let e: Vec<f64> = s.iter().map(|&x| (r.random::<f64>() < 0.5 * x) as u8 as f64).collect();
    let s_t: Vec<f64> = (0..n).map(|_| r.random()).collect();
    std::fs::create_dir_all(dir).unwrap();
    write_f64(dir, "score", &s);
    write_f64(dir, "error", &e);
    write_f64(dir, "score_test", &s_t);
    let cal = Table::new("calibration").with_f64("score", s).with_bool("error", e.iter().map(|&x| x == 1.0).collect());
    let test = Table::new("test").with_f64("score", s_t);
    let params =
        testing::params(&[("alpha", json!(0.1)), ("rule", json!(rule)), ("delta", json!(0.1)), ("grid", json!(50))]);
    let mut sel = host
        .selector(
            "selective-risk",
            &params,
            RunContext { device: DeviceRequest::Cpu, threads: 0, ..Default::default() },
        )
        .expect("plugin");
    Some(Case {
        name,
        sizes: json!({"n": n, "m": n}),
        python: None,
        script: Some("selector_baselines.py"),
        baseline: json!({"case": "selective-risk", "alpha": 0.1, "rule": rule, "delta": 0.1, "grid": 50}),
        data: dir.to_path_buf(),
        repeats: None,
        quiver: Box::new(move || {
            sel.calibrate(std::slice::from_ref(&cal)).map_err(|e| e.to_string())?;
            let r = sel.select(std::slice::from_ref(&test)).map_err(|e| e.to_string())?;
            Ok(json!({"lambda_hat": r.threshold, "n_accepted": r.selected.len()}))
        }),
    })
}

/// batch-pi: `mean` at the paper's drug–target scale, or the order-statistic / PAC ranks.
fn batch_case(host: &Host, dir: &Path, mode: &str, n: usize, m: usize, device: DeviceRequest) -> Option<Case> {
    let name = format!("batch-pi {mode} {}", device_tag(device));
    if skipped(&name) {
        return None;
    }
    let mut r = ChaCha8Rng::seed_from_u64(4);
    let s: Vec<f64> = (0..n).map(|_| r.random::<f64>()).collect();
    std::fs::create_dir_all(dir).unwrap();
    write_f64(dir, "score", &s);
    let cal = Table::new("calibration").with_f64("score", s);
    let mut params = vec![("mode", json!(mode)), ("alpha", json!(0.1)), ("m", json!(m)), ("upper_bound", json!(1.0))];
    if mode == "order-stat" {
        params.push(("zeta", json!(m / 2)));
    }
    let mut h = host
        .batch_predictor("batch-pi", &testing::params(&params), RunContext { device, threads: 0, ..Default::default() })
        .expect("plugin");
    let mode_owned = mode.to_string();
    Some(Case {
        name,
        sizes: json!({"n": n, "m": m}),
        python: None,
        script: Some("batch_baselines.py"),
        baseline: json!({"mode": mode, "n": n, "m": m, "alpha": 0.1, "zeta": m / 2, "delta": 0.1, "upper_bound": 1.0}),
        data: dir.to_path_buf(),
        repeats: (mode == "mean").then_some(3),
        quiver: Box::new(move || {
            h.calibrate(std::slice::from_ref(&cal)).map_err(|e| e.to_string())?;
            let r = h.bound(&[]).map_err(|e| e.to_string())?;
            let v: Value = serde_json::from_str(r.json.as_str()).map_err(|e| e.to_string())?;
            Ok(match mode_owned.as_str() {
                "mean" => json!({"Q": v["Q"], "bound": v["bound"]}),
                "pac" => json!({"zeta": v["zeta"], "k": v["k"]}),
                _ => json!({"k": v["k"]}),
            })
        }),
    })
}

/// sure-normal (XKB toward the grand mean) or sure-binomial (one sample) at p units: time to λ̂
/// and the estimates.
/// A shrinkage case at p units: `sure-normal` with `variant` (its `method`, `xkb-grand-mean` when
/// none) or `sure-binomial`.
fn shrinkage_case(
    host: &Host,
    dir: &Path,
    method: &str,
    variant: Option<&str>,
    p: usize,
    device: DeviceRequest,
) -> Option<Case> {
    let name = match variant {
        Some(v) => format!("{method} {v} {}", device_tag(device)),
        None => format!("{method} {}", device_tag(device)),
    };
    if skipped(&name) {
        return None;
    }
    let mut r = ChaCha8Rng::seed_from_u64(5);
    let normal = Normal::new(0.0, 1.0).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let (table, params) = if method == "sure-normal" {
        let a: Vec<f64> = (0..p).map(|_| r.random_range(0.1..2.0)).collect();
        let x: Vec<f64> = a.iter().map(|ai| normal.sample(&mut r) * 0.7 + ai.sqrt() * normal.sample(&mut r)).collect();
        write_f64(dir, "x", &x);
        write_f64(dir, "a", &a);
        (
            Table::new("data").with_f64("x", x).with_f64("a", a),
            vec![("method", json!(variant.unwrap_or("xkb-grand-mean")))],
        )
    } else {
        let n: Vec<f64> = (0..p).map(|_| r.random_range(10..500) as f64).collect();
        let y: Vec<f64> = n
            .iter()
            .map(|&n| {
                let pi: f64 = r.random_range(0.05..0.5);
                rand_distr::Binomial::new(n as u64, pi).unwrap().sample(&mut r) as f64
            })
            .collect();
        write_f64(dir, "y", &y);
        write_f64(dir, "n", &n);
        (Table::new("data").with_f64("y", y).with_f64("n", n), vec![])
    };
    let h = host
        .shrinker(method, &testing::params(&params), RunContext { device, threads: 0, ..Default::default() })
        .expect("plugin");
    Some(Case {
        name,
        sizes: json!({"n": p, "m": 0}),
        python: None,
        script: Some("shrinkage_baselines.py"),
        baseline: json!({"case": method, "variant": variant}),
        data: dir.to_path_buf(),
        repeats: Some(3),
        quiver: Box::new(move || {
            let r = h.estimate(std::slice::from_ref(&table)).map_err(|e| e.to_string())?;
            let v: Value = serde_json::from_str(r.json.as_str()).map_err(|e| e.to_string())?;
            // xkb-estimated's search minimises XKB's profile SURE, reported as `sure_xkb` (its risk
            // estimate is the unbiased one of the estimator returned)
            let risk = v.get("sure_xkb").and_then(Value::as_f64).or(r.risk_estimate.into_option());
            Ok(json!({"risk": risk, "sweeps": v["sweeps"]}))
        }),
    })
}

/// Named f64 columns, as written for the baselines.
type Columns = Vec<(&'static str, Vec<f64>)>;

/// Logged transitions with continuous 2-D states for the critic cases: episodes of 1000 steps of
/// a damped random walk, two actions, a target policy given per row (`pi_<a>`, `pi_next_<a>`).
fn critic_table(n: usize, seed: u64) -> (Table, Columns, Vec<usize>) {
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

/// critic-lstd on `n` transitions with 2 × 128 random Fourier features, `lstdq` or `fqe`,
/// against the NumPy version (benches/baselines/critic_baselines.py) on the same data and the
/// same frequencies.
fn critic_case(host: &Host, dir: &Path, n: usize, target: &str, device: DeviceRequest) -> Option<Case> {
    let name = format!("critic-lstd {target} {}", device_tag(device));
    if skipped(&name) {
        return None;
    }
    let (table, cols, first) = critic_table(n, 5);
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
    let ctx = RunContext { device, threads: 0, ..Default::default() };
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
            let mut h = host.critic("critic-lstd", &params, ctx).map_err(|e| e.to_string())?;
            h.fit(&tables).map_err(|e| e.to_string())?;
            let v: Value = serde_json::from_str(h.values(&[]).map_err(|e| e.to_string())?.json.as_str())
                .map_err(|e| e.to_string())?;
            Ok(json!({"j": v["j"], "iterations": v["iterations"]}))
        }),
    })
}

/// A contextual-bandit log of `n` rounds and `k` actions: random logger and target
/// probabilities per round, rewards and reward-model predictions from a scalar context.
fn bandit_columns(n: usize, k: usize, seed: u64) -> Columns {
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
fn ope_bandit_case(host: &Host, dir: &Path, n: usize) -> Option<Case> {
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
            let mut h = host.critic("ope", &params, RunContext::default()).map_err(|e| e.to_string())?;
            h.fit(&tables).map_err(|e| e.to_string())?;
            let v: Value = serde_json::from_str(h.values(&[]).map_err(|e| e.to_string())?.json.as_str())
                .map_err(|e| e.to_string())?;
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
fn ope_trajectory_case(host: &Host, dir: &Path, episodes: usize, resamples: usize, name: Option<&str>) -> Option<Case> {
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
            let mut h = host.critic("ope", &params, RunContext::default()).map_err(|e| e.to_string())?;
            h.fit(&tables).map_err(|e| e.to_string())?;
            let v: Value = serde_json::from_str(h.values(&[]).map_err(|e| e.to_string())?.json.as_str())
                .map_err(|e| e.to_string())?;
            let keys = ["tis", "pdis", "sn_pdis", "dm", "dr"];
            // the estimates must agree; the intervals come from other random draws (reported)
            let est: serde_json::Map<String, Value> =
                keys.iter().map(|k| (k.to_string(), json!({"estimate": v[*k]["estimate"]}))).collect();
            let iv: serde_json::Map<String, Value> =
                keys.iter().map(|k| (k.to_string(), json!([v[*k]["lower"], v[*k]["upper"]]))).collect();
            Ok(json!({"estimates": est, "intervals": iv}))
        }),
    })
}

/// `critic-chunked` (DQC, h = 4, κ_d = 0.7, κ_b = 0.8) to its fixed point on `episodes` episodes
/// of 10 steps of a 20-state, 3-action MDP: Quiver's time and iterations (no baseline).
fn dqc_case(host: &Host, episodes: usize) -> Option<Case> {
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
            let mut h = host.critic("critic-chunked", &params, RunContext::default()).map_err(|e| e.to_string())?;
            h.fit(&tables).map_err(|e| e.to_string())?;
            let v: Value = serde_json::from_str(h.values(&[]).map_err(|e| e.to_string())?.json.as_str())
                .map_err(|e| e.to_string())?;
            Ok(json!({"iterations": v["iterations"], "converged": v["converged"], "j": v["j"],
                      "chunks": v["q_chunk"]["q"].as_array().map_or(0, Vec::len)}))
        }),
    })
}

/// Peak resident memory of critic-lstd (lstdq, 256 RFF features) fitting `n` transitions: the
/// process's high-water mark is reset once the data are built (`/proc/self/clear_refs`), so the
/// figure is the input tables plus everything the fit adds.
/// Forecasts of J models at K equispaced levels for n rows (model j: bias from −1 to 1, spread
/// 0.4 + 0.2 j times the truth's, noise 0.3), as host tables; the columns also go to `dir` for
/// the baselines (`q` column-major, column j·K + k). Tables: `fit`, and `test` = the first
/// 1000 rows' forecasts.
fn aggregation_tables(dir: Option<&Path>, n: usize, j: usize, k: usize, seed: u64) -> Vec<Table> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0, 1.0).unwrap();
    let levels: Vec<f64> = (1..=k).map(|i| i as f64 / (k + 1) as f64).collect();
    let x: Vec<f64> = (0..n).map(|_| r.random::<f64>() * 4.0).collect();
    let mu: Vec<f64> = x.iter().map(|v| (v * 1.3).sin() * 2.0 + v).collect();
    let sd: Vec<f64> = x.iter().map(|v| 0.3 + 0.4 * v).collect();
    let y: Vec<f64> = (0..n).map(|i| mu[i] + sd[i] * normal.sample(&mut r)).collect();
    let z: Vec<f64> = levels.iter().map(|&t| quiver_numerics::normal_quantile(t)).collect();
    let mut t = Table::new("fit").with_f64("y", y.clone());
    let mut test = Table::new("test");
    let mut file = dir.map(|d| {
        std::fs::create_dir_all(d).unwrap();
        write_f64(d, "y", &y);
        write_f64(d, "levels", &levels);
        std::io::BufWriter::new(std::fs::File::create(d.join("q.f64")).unwrap())
    });
    for m in 0..j {
        // models differ enough that the weights matter: biases −1..1 sd, spreads 0.4..2.2
        let bias = 2.0 * (m as f64 / (j - 1).max(1) as f64 - 0.5);
        let scale = 0.4 + 0.2 * m as f64;
        for (kk, &zk) in z.iter().enumerate() {
            let col: Vec<f64> =
                (0..n).map(|i| mu[i] + bias + 0.3 * normal.sample(&mut r) + scale * sd[i] * zk).collect();
            if let Some(f) = file.as_mut() {
                use std::io::Write;
                for v in &col {
                    f.write_all(&v.to_le_bytes()).unwrap();
                }
            }
            let name = format!("q_m{m}_{}", levels[kk]);
            test = test.with_f64(&name, col[..n.min(1000)].to_vec());
            t = t.with_f64(&name, col);
        }
    }
    vec![t, test]
}

const AGG_EXACT: &str = "quantile-aggregation exact coarse vs SciPy HiGHS";
const AGG_ADAM: &str = "quantile-aggregation gradient medium (Adam)";
const AGG_TORCH: &str = "quantile-aggregation gradient medium vs PyTorch CPU";
const AGG_ADAM_CUDA: &str = "quantile-aggregation gradient medium cuda";

/// `quantile-aggregation`, global weights: `exact` coarse against SciPy's HiGHS (`linprog`,
/// interior point) on the same LP, or `gradient` medium against the same Adam procedure in
/// NumPy (and PyTorch with `--baselines full`).
fn aggregation_case(
    host: &Host,
    dir: &Path,
    tables: Arc<Vec<Table>>,
    solver: &str,
    torch: Option<&Path>,
    device: DeviceRequest,
) -> Case {
    let (j, k) = (10, 99);
    let n = tables[0].nrows;
    let adam = json!({"lr": 0.05, "batch_rows": 1024, "max_epochs": 30, "patience": 30, "holdout": 0.1, "seed": 0, "block": 512});
    let (granularity, params) = if solver == "exact" {
        (
            "coarse",
            testing::params(&[
                ("granularity", json!("coarse")),
                ("solver", json!("exact")),
                ("monotone", json!("none")),
            ]),
        )
    } else {
        let mut p = testing::params(&[
            ("granularity", json!("medium")),
            ("solver", json!("gradient")),
            ("monotone", json!("none")),
        ]);
        for (key, v) in adam.as_object().unwrap().iter().filter(|(key, _)| *key != "block") {
            p.insert(key.clone(), v.clone());
        }
        ("medium", p)
    };
    let host = host.clone();
    let compare = if solver == "exact" { "equal" } else { "at-most" };
    let (case, script_case) = match (solver, torch, device) {
        ("exact", ..) => (AGG_EXACT, "lp"),
        (_, None, DeviceRequest::Cuda) => (AGG_ADAM_CUDA, "adam"),
        (_, None, _) => (AGG_ADAM, "adam"),
        (_, Some(_), _) => (AGG_TORCH, "adam-torch"),
    };
    Case {
        name: case.into(),
        sizes: json!({"n": n, "models": j, "levels": k, "granularity": granularity}),
        python: torch.map(Path::to_path_buf),
        script: Some("aggregation_baselines.py"),
        baseline: json!({"case": script_case, "adam": adam}),
        data: dir.to_path_buf(),
        repeats: Some(1),
        quiver: Box::new(move || {
            let mut h =
                host.aggregator("quantile-aggregation", &params, RunContext::default()).map_err(|e| e.to_string())?;
            h.fit(&tables).map_err(|e| e.to_string())?;
            h.calibrate(&tables).map_err(|e| e.to_string())?;
            let r = h.predict(&tables).map_err(|e| e.to_string())?;
            let v: Value = serde_json::from_str(r.json.as_str()).map_err(|e| e.to_string())?;
            Ok(json!({"objective": v["objective"], "compare": compare, "solver_details": v["solver_details"]}))
        }),
    }
}

fn critic_memory(host: &Host, n: usize) -> Result<Value, String> {
    let (table, _, _) = critic_table(n, 6);
    let input_bytes = table_bytes(std::slice::from_ref(&table));
    std::fs::write("/proc/self/clear_refs", "5").map_err(|e| format!("cannot reset the peak RSS: {e}"))?;
    let before = peak_rss().ok_or("no VmHWM")?;
    let params = testing::params(&[("features", json!("rff")), ("dim", json!(128)), ("ridge", json!(1e-6))]);
    let t = Instant::now();
    let mut h = host.critic("critic-lstd", &params, RunContext::default()).map_err(|e| e.to_string())?;
    h.fit(std::slice::from_ref(&table)).map_err(|e| e.to_string())?;
    let peak = peak_rss().ok_or("no VmHWM")?;
    Ok(json!({
        "case": "critic-lstd lstdq, 256 rff features",
        "n": n,
        "seconds": t.elapsed().as_secs_f64(),
        "input_table_bytes": input_bytes,
        "rss_after_building_the_data_bytes": before,
        "peak_rss_bytes": peak,
        "phi_would_be_bytes": n * 256 * 8,
    }))
}

/// The bytes of the tables' columns (1 per boolean, 8 per number).
fn table_bytes(tables: &[Table]) -> f64 {
    tables
        .iter()
        .flat_map(|t| t.columns.iter())
        .map(|(_, v)| (v.len() * if matches!(v, quiver_host::Values::Bool(_)) { 1 } else { 8 }) as f64)
        .sum()
}

/// The process's peak resident memory (VmHWM), in bytes.
fn peak_rss() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

/// Peak memory of one method run through the host on `tables` (the process's high-water mark is
/// reset once the data are built), as a multiple of the input tables' bytes.
fn memory_of(
    host: &Host,
    name: &str,
    method: &str,
    params: &[(&str, Value)],
    tables: Vec<Table>,
) -> Result<Value, String> {
    let input = table_bytes(&tables);
    std::fs::write("/proc/self/clear_refs", "5").map_err(|e| format!("cannot reset the peak RSS: {e}"))?;
    let before = peak_rss().ok_or("no VmHWM")?;
    let t = Instant::now();
    let output = host
        .run_output_observed(method, &testing::params(params), &tables, RunContext::default(), None)
        .map_err(|e| format!("{name}: {e}"))?;
    drop(output);
    let peak = peak_rss().ok_or("no VmHWM")?;
    let added = peak - before;
    Ok(json!({"case": name, "input_bytes": input, "rss_before_bytes": before, "peak_rss_bytes": peak,
              "added_bytes": added, "added_over_input": added / input, "seconds": t.elapsed().as_secs_f64()}))
}

/// Number of cases in [`memory_cases`].
const MEMORY_CASES: usize = 10;

/// Peak memory of every method family at `n` rows (`cargo xtask bench`, not `--quick`), each case
/// measured in a fresh process (this binary with `--memory-case K`): memory a previous case freed
/// stays resident and would hide the next one's growth.
fn memory_report(n: usize) -> Result<Vec<Value>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    (0..MEMORY_CASES)
        .map(|k| {
            let out = Command::new(&exe)
                .args(["--memory-case", &k.to_string(), "--memory-rows", &n.to_string()])
                .output()
                .map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!("memory case {k}: {}", String::from_utf8_lossy(&out.stderr)));
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text.lines().last().ok_or("no output")?;
            let v: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
            println!(
                "  {:48} input {:>7.0} MB, the run adds {:>7.0} MB: {:.2}x the input",
                v["case"].as_str().unwrap_or(""),
                v["input_bytes"].as_f64().unwrap_or(0.0) / 1e6,
                v["added_bytes"].as_f64().unwrap_or(0.0) / 1e6,
                v["added_over_input"].as_f64().unwrap_or(0.0)
            );
            Ok(v)
        })
        .collect()
}

/// Memory case `k` at `n` rows, in this process: only its data are built.
fn memory_cases(host: &Host, n: usize, k: usize) -> Result<Value, String> {
    let mut r = ChaCha8Rng::seed_from_u64(11);
    let normal = Normal::new(0.0, 1.0).unwrap();
    let mut col = |f: &mut dyn FnMut(&mut ChaCha8Rng) -> f64| -> Vec<f64> { (0..n).map(|_| f(&mut r)).collect() };
    match k {
        0 => {
            let x = col(&mut |r| normal.sample(r));
            let y: Vec<f64> = x.iter().map(|v| v + 0.5).collect();
            let test = Table::new("test").with_f64("mu", x.clone());
            let cal = Table::new("calibration").with_f64("y", y).with_f64("mu", x);
            memory_of(host, "conformal-selection n = m", "conformal-selection", &[("c", json!(0.0))], vec![cal, test])
        }
        1 => {
            let score = col(&mut |r| r.random::<f64>());
            let err: Vec<bool> = score.iter().map(|s| *s > 0.7).collect();
            let tables = vec![
                Table::new("calibration").with_f64("score", score.clone()).with_bool("error", err),
                Table::new("test").with_f64("score", score),
            ];
            memory_of(host, "selective-risk scope n = m", "selective-risk", &[], tables)
        }
        2 | 3 | 8 | 9 => {
            let method = match k {
                3 => "xkb-monotone",
                8 => "xkb-estimated",
                _ => "xkb-grand-mean",
            };
            let x = col(&mut |r| normal.sample(r));
            let a = col(&mut |r| r.random_range(0.1..2.0));
            let tables = vec![Table::new("data").with_f64("x", x).with_f64("a", a)];
            let mut params = vec![("method", json!(method))];
            let mut name = format!("sure-normal {method}");
            if k == 9 {
                params.push(("ci", json!("robust-ebci")));
                name.push_str(" with robust-ebci");
            }
            memory_of(host, &name, "sure-normal", &params, tables)
        }
        4 => {
            let trials = col(&mut |r| r.random_range(10..500) as f64);
            let succ: Vec<f64> = trials.iter().map(|t| (t * 0.3).floor()).collect();
            let tables = vec![Table::new("data").with_f64("y", succ).with_f64("n", trials)];
            memory_of(host, "sure-binomial", "sure-binomial", &[], tables)
        }
        5 => {
            let score = col(&mut |r| r.random::<f64>());
            let tables = vec![Table::new("calibration").with_f64("score", score)];
            memory_of(host, "batch-pi order-stat (m = 10^4)", "batch-pi", &[("m", json!(10_000))], tables)
        }
        6 => {
            let mut t = Table::new("bandit");
            for (name, v) in bandit_columns(n, 10, 3) {
                t = if name == "a" {
                    t.with_i64("a", v.iter().map(|&x| x as i64).collect())
                } else {
                    t.with_f64(name, v)
                };
            }
            memory_of(host, "ope bandit, 10 actions, t intervals", "ope", &[("ci", json!("t"))], vec![t])
        }
        7 => {
            // the gradient bench's size: n / 100 rows of 10 models × 99 levels (10^8 numbers)
            let tables = aggregation_tables(None, n / 100, 10, 99, 29);
            let params = [
                ("granularity", json!("medium")),
                ("solver", json!("gradient")),
                ("max_epochs", json!(3)),
                ("monotone", json!("none")),
            ];
            memory_of(
                host,
                "quantile-aggregation gradient, 10 models x 99 levels",
                "quantile-aggregation",
                &params,
                tables,
            )
        }
        _ => Err(format!("no memory case {k}")),
    }
}

/// Whether two results agree: equal, except for shrinkage, where the minimised risk must agree
/// to 1e-9 relative or be lower in Quiver (its search is global, the baseline's Brent search
/// local, and both stop at slightly different λ on a flat minimum); bookkeeping counts
/// (`sweeps`, `evaluations`) are not compared.
fn agree(a: &Value, b: &Value) -> bool {
    if let (Some(x), Some(y)) = (a.get("estimates").and_then(Value::as_object), b.get("estimates")) {
        // every figure Quiver reports under `estimates` (point estimates; for the t intervals
        // also their ends) equals the baseline's to 1e-9 relative
        return x.iter().all(|(key, fields)| {
            fields.as_object().is_some_and(|f| {
                f.iter().all(|(end, v)| match (v.as_f64(), y[key][end].as_f64()) {
                    (Some(p), Some(q)) => (p - q).abs() <= 1e-9 * p.abs().max(q.abs()).max(1e-12),
                    _ => false,
                })
            })
        });
    }
    if let (Some(x), Some(y)) = (a.get("objective").and_then(Value::as_f64), b.get("objective").and_then(Value::as_f64))
    {
        // aggregation: the exact LP's optimum to 1e-7 relative; Adam reaches the baseline's loss
        // (within 1e-3 relative: both run the same procedure with different shuffles)
        return if a["compare"] == "equal" { (x - y).abs() <= 1e-7 * y.abs() } else { x <= y * (1.0 + 1e-3) };
    }
    if let (Some(x), Some(y)) = (a.get("j").and_then(Value::as_f64), b.get("j").and_then(Value::as_f64)) {
        // the same policy value from the same features (NumPy's cos and Quiver's differ by ~1e-16)
        return (x - y).abs() <= 1e-6 * x.abs().max(1.0);
    }
    match (a.get("risk").and_then(Value::as_f64), b.get("risk").and_then(Value::as_f64)) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()) || x <= y,
        _ => a == b,
    }
}

/// The 1-, 5- and 15-minute load averages (`/proc/loadavg`), `None` where there is none.
fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|x| x.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// The share of the CPUs' time other processes used over one second (`/proc/stat`), taken while
/// the bench itself is idle: the load average lags by a minute (and still counts the build that
/// ran just before), this does not.
fn cpu_busy_now() -> Option<f64> {
    let sample = || -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal
        let idle = cpu.get(3)? + cpu.get(4).unwrap_or(&0);
        Some((cpu.iter().take(8).sum(), idle))
    };
    let (t0, i0) = sample()?;
    std::thread::sleep(std::time::Duration::from_secs(1));
    let (t1, i1) = sample()?;
    (t1 > t0).then(|| 1.0 - (i1 - i0) as f64 / (t1 - t0) as f64)
}

/// Threads and load: how many workers Quiver's cases ran on, the machine's load averages before
/// and after the timed cases, and how busy the CPUs were in the second before them — a low ratio
/// on a busy machine says little.
fn load_info(before: Option<[f64; 3]>, after: Option<[f64; 3]>, busy_share: Option<f64>) -> Value {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let busy = busy_share.map(|b| b > 0.25);
    json!({
        "cpu_busy_share_before": busy_share,
        // allocator settings the run inherited, if any (they change the short cases' times)
        "glibc_tunables": std::env::var("GLIBC_TUNABLES").ok(),
        // every case runs with RunContext threads = 0: each plugin's pool has one worker per core
        "quiver_threads": cores,
        "cores": cores,
        "load_average_before": before,
        "load_average_after": after,
        "busy_before": busy,
    })
}

fn host_info() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let rev = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let dirty = Command::new("git").args(["status", "--porcelain"]).output().is_ok_and(|o| !o.stdout.is_empty());
    json!({
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cpu_model": cpu,
        "git_revision": if dirty { format!("{rev}-dirty") } else { rev },
        "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    })
}

fn plot(path: &Path, rows: &[(String, f64)]) -> Result<(), String> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (960, 120 + 48 * rows.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let max = rows.iter().map(|r| r.1).fold(2.0, f64::max) * 2.0;
    let min = rows.iter().map(|r| r.1).fold(0.5, f64::min) * 0.8;
    let mut chart = ChartBuilder::on(&root)
        .caption("Quiver speed-up over the NumPy/SciPy baseline (median, same data)", ("sans-serif", 20))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(330)
        .build_cartesian_2d((min..max).log_scale(), (0..rows.len()).into_segmented())
        .map_err(|e| e.to_string())?;
    let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc("baseline time / Quiver time (log scale; the line marks 1x)")
        .x_label_formatter(&|v| format!("{v}x"))
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| {
            let color = if r.1 >= 1.0 { RGBColor(46, 125, 50) } else { RGBColor(198, 40, 40) };
            let mut bar = Rectangle::new(
                [(min, SegmentValue::Exact(i)), (r.1, SegmentValue::Exact(i + 1))],
                color.mix(0.8).filled(),
            );
            bar.set_margin(6, 6, 0, 0);
            bar
        }))
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| {
            Text::new(format!("{:.1}x", r.1), (r.1 * 1.05, SegmentValue::CenterOf(i)), ("sans-serif", 14))
        }))
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(1.0, SegmentValue::Exact(0)), (1.0, SegmentValue::Exact(rows.len()))],
            BLACK.stroke_width(2),
        )))
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("quiver-bench: {e}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<(), String> {
    let args = parse_args()?;
    ONLY.set(args.only.clone()).expect("set once");
    let host = testing::host();
    if let Some((k, n)) = args.memory_case {
        println!("{}", memory_cases(&host, n, k)?);
        return Ok(());
    }
    if let Some(only) = &args.only {
        if only == "memory" {
            let report = json!({"memory": memory_report(10_000_000)?, "host": host_info()});
            std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
            let path = args.out.join("memory.json");
            std::fs::write(&path, serde_json::to_string_pretty(&report).expect("json")).map_err(|e| e.to_string())?;
            println!("report: {}", path.display());
            return Ok(());
        }
    }
    let data = args.out.join("data");
    let (load_before, busy_before) = (load_average(), cpu_busy_now());
    let (n_sel, n_risk) = if args.quick { (100_000, 100_000) } else { (1_000_000, 1_000_000) };
    // a case left out by --only is not built (nor its data)
    let mut cases: Vec<Case> = [
        selection_case(&host, &data.join("cs"), n_sel, n_sel, false, DeviceRequest::Cpu, None),
        selection_case(&host, &data.join("csw"), n_sel, n_sel, true, DeviceRequest::Cpu, None),
        selective_case(&host, &data.join("sr"), n_risk, "scope"),
        selective_case(&host, &data.join("sr"), n_risk, "ltt"),
        python_api_case(&host, &data.join("cs"), n_sel),
    ]
    .into_iter()
    .flatten()
    .collect();
    let (bn, bm, rn, rm) = if args.quick { (500, 50, 10_000, 1_000) } else { (2000, 100, 100_000, 10_000) };
    cases.extend(batch_case(&host, &data.join("bm"), "mean", bn, bm, DeviceRequest::Cpu));
    cases.extend(batch_case(&host, &data.join("bo"), "order-stat", rn, rm, DeviceRequest::Cpu));
    cases.extend(batch_case(&host, &data.join("bp"), "pac", rn, rm, DeviceRequest::Cpu));
    let sp = if args.quick { 1_000_000 } else { 10_000_000 };
    cases.extend(shrinkage_case(&host, &data.join("sn"), "sure-normal", None, sp, DeviceRequest::Cpu));
    cases.extend(shrinkage_case(
        &host,
        &data.join("sne"),
        "sure-normal",
        Some("xkb-estimated"),
        sp,
        DeviceRequest::Cpu,
    ));
    cases.extend(shrinkage_case(&host, &data.join("sb"), "sure-binomial", None, sp, DeviceRequest::Cpu));
    let cn = if args.quick { 100_000 } else { 1_000_000 };
    cases.extend(critic_case(&host, &data.join("cl"), cn, "lstdq", DeviceRequest::Cpu));
    // the NumPy FQE holds the feature matrices and sweeps them every iteration (~290 here): a
    // fifth of the rows keeps its run near half a minute
    cases.extend(critic_case(&host, &data.join("cf"), cn / 5, "fqe", DeviceRequest::Cpu));
    let (bandit_n, episodes) = if args.quick { (1_000_000, 10_000) } else { (10_000_000, 100_000) };
    cases.extend(ope_bandit_case(&host, &data.join("ob"), bandit_n));
    cases.extend(ope_trajectory_case(&host, &data.join("ot"), episodes, 1000, None));
    if let Some(py) = &args.python_full {
        // the same data and Quiver run, against SCOPE-RL's estimators and bootstrap
        let name = "ope trajectories vs SCOPE-RL (1000 bootstrap resamples)";
        if let Some(mut case) = ope_trajectory_case(&host, &data.join("ot-scope"), episodes, 1000, Some(name)) {
            case.script = Some("scope_rl_baselines.py");
            case.python = Some(py.clone());
            cases.push(case);
        }
    }
    cases.extend(dqc_case(&host, episodes));
    let (agg_exact, agg_grad) = if args.quick { (1_000, 10_000) } else { (10_000, 100_000) };
    let (qa_lp, qa_adam) = (data.join("qa-lp"), data.join("qa-adam"));
    // these data are large (10^8 numbers): built only when a case of theirs is wanted
    let wanted = |names: &[&str]| args.only.as_ref().is_none_or(|o| names.iter().any(|n| n.contains(o.as_str())));
    if wanted(&[AGG_EXACT]) {
        let lp_tables = Arc::new(aggregation_tables(Some(&qa_lp), agg_exact, 10, 99, 23));
        cases.push(aggregation_case(&host, &qa_lp, lp_tables, "exact", None, DeviceRequest::Cpu));
    }
    let gpu_usable = host
        .selector(
            "conformal-selection",
            &testing::params(&[]),
            RunContext { device: DeviceRequest::Cuda, threads: 0, ..Default::default() },
        )
        .is_ok();
    if wanted(&[AGG_ADAM, AGG_TORCH, AGG_ADAM_CUDA]) {
        let adam_tables = Arc::new(aggregation_tables(Some(&qa_adam), agg_grad, 10, 99, 29));
        let cpu = DeviceRequest::Cpu;
        cases.push(aggregation_case(&host, &qa_adam, adam_tables.clone(), "gradient", None, cpu));
        if let Some(py) = &args.python_full {
            cases.push(aggregation_case(&host, &qa_adam, adam_tables.clone(), "gradient", Some(py), cpu));
        }
        if gpu_usable {
            cases.push(aggregation_case(&host, &qa_adam, adam_tables, "gradient", None, DeviceRequest::Cuda));
        }
    }
    if gpu_usable {
        let n = if args.quick { 1_000_000 } else { 10_000_000 };
        cases.extend(selection_case(&host, &data.join("csg"), n, n, false, DeviceRequest::Cuda, None));
        cases.extend(batch_case(&host, &data.join("bmg"), "mean", bn, bm, DeviceRequest::Cuda));
        cases.extend(shrinkage_case(&host, &data.join("sng"), "sure-normal", None, sp, DeviceRequest::Cuda));
        cases.extend(shrinkage_case(
            &host,
            &data.join("sneg"),
            "sure-normal",
            Some("xkb-estimated"),
            sp,
            DeviceRequest::Cuda,
        ));
        cases.extend(critic_case(&host, &data.join("clg"), cn, "lstdq", DeviceRequest::Cuda));
    }
    if let Some(only) = &args.only {
        cases.retain(|c| c.name.contains(only.as_str()));
    }
    let bar = ProgressBar::new((cases.len() * 2) as u64);
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}").map_err(|e| e.to_string())?);
    let mut report_cases = Vec::new();
    let mut numpy_version = Value::Null;
    for case in cases.iter_mut() {
        bar.set_message(format!("{} (quiver)", case.name));
        let mut times = Vec::new();
        let mut result = Value::Null;
        let repeats = case.repeats.unwrap_or(args.repeats).min(args.repeats);
        (case.quiver)()?; // warm-up: first-touch allocations, kernel compilation
        for _ in 0..repeats {
            let t = Instant::now();
            result = (case.quiver)()?;
            times.push(t.elapsed().as_secs_f64());
        }
        bar.inc(1);
        let Some(script) = case.script else {
            bar.inc(1);
            report_cases.push(json!({
                "case": case.name,
                "sizes": case.sizes,
                "quiver_median_s": median(times.clone()),
                "quiver_times_s": times,
                "baseline": null,
                "quiver_result": result,
            }));
            continue;
        };
        bar.set_message(format!("{} (numpy)", case.name));
        let mut spec = case.baseline.clone();
        spec["data"] = json!(case.data.display().to_string());
        spec["repeats"] = json!(repeats);
        let base = testing::try_run_baseline(case.python.as_ref().unwrap_or(&args.python), script, &spec)?;
        numpy_version = base["numpy"].clone();
        bar.inc(1);
        let base_times: Vec<f64> =
            base["times"].as_array().ok_or("baseline times")?.iter().filter_map(Value::as_f64).collect();
        let agree = agree(&result, &base["result"]);
        let (q, b) = (median(times.clone()), median(base_times.clone()));
        let mut row = json!({
            "case": case.name,
            "sizes": case.sizes,
            "quiver_median_s": q,
            "quiver_times_s": times,
            "baseline": match (case.python.is_some(), script) {
                (_, "python_api_baselines.py") => format!("Quiver from Python (benches/baselines/{script})"),
                (true, "scope_rl_baselines.py") => format!("SCOPE-RL (benches/baselines/{script})"),
                (true, _) => format!("PyTorch on the CPU (benches/baselines/{script})"),
                _ => format!("NumPy/SciPy (benches/baselines/{script})"),
            },
            "baseline_median_s": b,
            "baseline_times_s": base_times,
            "ratio_baseline_over_quiver": b / q,
            "results_agree": agree,
            "quiver_result": result,
            "baseline_result": base["result"],
        });
        if case.name == AGG_ADAM_CUDA {
            // the forecasts are read once per epoch (training blocks and the held-out ones)
            let sd = &result["solver_details"];
            let rows = sd["train_rows"].as_f64().unwrap_or(0.0) + sd["holdout_rows"].as_f64().unwrap_or(0.0);
            let bytes = rows * sd["epochs"].as_f64().unwrap_or(0.0) * 10.0 * 99.0 * 8.0;
            row["effective_gb_per_s"] = json!(bytes / q / 1e9);
        }
        if case.name == PYTHON_API {
            // the Python package over the Rust host: 0.03 = 3 % slower; and with glibc keeping
            // 64 MiB of freed heap (M_TOP_PAD) in the Python process
            row["python_overhead"] = json!(b / q - 1.0);
            if let Some(t) = base["times_top_pad"].as_array() {
                let padded = median(t.iter().filter_map(Value::as_f64).collect());
                row["python_top_pad_median_s"] = json!(padded);
                row["python_overhead_top_pad"] = json!(padded / q - 1.0);
            }
        }
        if case.name == "conformal-selection cuda" {
            let n = case.sizes["n"].as_f64().unwrap_or(0.0);
            // bytes the p-value step must move at least: sorted calibration, test scores, u, p
            row["effective_gb_per_s"] = json!(8.0 * (n + 3.0 * n) / q / 1e9);
        }
        if !agree {
            bar.abandon();
            return Err(format!("{}: Quiver and the baseline disagree: {result} vs {}", case.name, base["result"]));
        }
        report_cases.push(row);
    }
    bar.finish_and_clear();
    // the memory cases run with the whole bench (or alone with `--only memory`), not with a
    // subset of the timed cases
    let memory = if args.quick || args.only.is_some() {
        Value::Null
    } else {
        println!("peak memory at 10^7 rows ...");
        let mut all = memory_report(10_000_000)?;
        all.push(critic_memory(&host, 10_000_000)?);
        json!(all)
    };
    let load = load_info(load_before, load_average(), busy_before);
    println!(
        "threads: {} on {} cores; other processes used {} of the CPUs in the second before the cases; load \
         average (1, 5, 15 min) before {:?}, after {:?}{}",
        load["quiver_threads"],
        load["cores"],
        busy_before.map_or("?".to_string(), |b| format!("{:.0} %", 100.0 * b)),
        load_before,
        load_average(),
        if load["busy_before"] == json!(true) { " — the machine was busy: read the ratios with care" } else { "" }
    );
    let report = json!({
        "memory": memory,
        "load": load,
        "host": host_info(),
        "device": if gpu_usable { "cpu + cuda" } else { "cpu (no usable GPU)" },
        "numpy": numpy_version,
        "repeats": args.repeats,
        "quick": args.quick,
        "threads": "all cores (Quiver); NumPy single-threaded except inside BLAS (the critic cases: matrix products on all cores)",
        "cases": report_cases,
    });
    std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
    let json_path = args.out.join("report.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&report).expect("json")).map_err(|e| e.to_string())?;
    let rows: Vec<(String, f64)> = report["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter(|c| !c["baseline"].is_null())
        .map(|c| {
            (
                format!("{} (n={})", c["case"].as_str().unwrap_or(""), c["sizes"]["n"]),
                c["ratio_baseline_over_quiver"].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    let svg = args.out.join("report.svg");
    plot(&svg, &rows)?;
    println!("{:44} {:>12} {:>12} {:>8}", "case", "quiver (s)", "numpy (s)", "ratio");
    for c in report["cases"].as_array().expect("cases") {
        if c["baseline"].is_null() {
            println!(
                "{:44} {:>12.4} {:>12} {:>8}",
                format!("{} n={}", c["case"].as_str().unwrap_or(""), c["sizes"]["n"]),
                c["quiver_median_s"].as_f64().unwrap_or(0.0),
                "-",
                "-"
            );
            continue;
        }
        println!(
            "{:44} {:>12.4} {:>12.4} {:>7.2}x",
            format!("{} n={}", c["case"].as_str().unwrap_or(""), c["sizes"]["n"]),
            c["quiver_median_s"].as_f64().unwrap_or(0.0),
            c["baseline_median_s"].as_f64().unwrap_or(0.0),
            c["ratio_baseline_over_quiver"].as_f64().unwrap_or(0.0)
        );
    }
    println!("report: {} and {}", json_path.display(), svg.display());
    Ok(())
}
