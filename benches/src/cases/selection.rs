//! Bench cases of the conformal selectors and batch predictive inference: conformal selection
//! (plain, weighted, through Python, on the GPU), selective risk (`scope`, `ltt`) and `batch-pi`.

use crate::*;

/// The same selection as `conformal-selection cpu`, called from Python through the `quiver`
/// wheel (the baseline interpreter has it installed): the ratio is what the Python package costs
/// over the Rust host.
pub(crate) fn python_api_case(host: &Host, dir: &Path, n: usize) -> Option<Case> {
    let mut case = selection_case(host, dir, n, n, false, DeviceRequest::Cpu, Some(PYTHON_API))?;
    case.script = Some("python_api_baselines.py");
    Some(case)
}

/// The name of the Python-package case.
pub(crate) const PYTHON_API: &str = "conformal-selection from python";

/// `conformal-selection` at n calibration and m test units (named `name` when given).
pub(crate) fn selection_case(
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
        .create("conformal-selection", &params, RunContext { device, threads: 0, ..Default::default() })
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
            sel.step("calibrate", std::slice::from_ref(&cal)).map_err(|e| e.to_string())?;
            let r = sel.step("select", std::slice::from_ref(&test)).map_err(|e| e.to_string())?;
            let selected = r.i64s("selected").ok_or("no selected units")?;
            let sum: i64 = selected.iter().sum();
            let k: usize = selected.len();
            Ok(json!({"k_star": k, "n_selected": k, "selected_sum": sum, "device": r.summary["device"]}))
        }),
    })
}

pub(crate) fn selective_case(host: &Host, dir: &Path, n: usize, rule: &str) -> Option<Case> {
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
        .create("selective-risk", &params, RunContext { device: DeviceRequest::Cpu, threads: 0, ..Default::default() })
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
            sel.step("calibrate", std::slice::from_ref(&cal)).map_err(|e| e.to_string())?;
            let r = sel.step("select", std::slice::from_ref(&test)).map_err(|e| e.to_string())?;
            let accepted = r.i64s("accepted").ok_or("no accepted units")?;
            Ok(json!({"lambda_hat": r.number("lambda_hat"), "n_accepted": accepted.len()}))
        }),
    })
}

/// batch-pi: `mean` at the paper's drug–target scale, or the order-statistic / PAC ranks.
pub(crate) fn batch_case(
    host: &Host,
    dir: &Path,
    mode: &str,
    n: usize,
    m: usize,
    device: DeviceRequest,
) -> Option<Case> {
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
        .create("batch-pi", &testing::params(&params), RunContext { device, threads: 0, ..Default::default() })
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
            h.step("calibrate", std::slice::from_ref(&cal)).map_err(|e| e.to_string())?;
            let r = h.step("bound", &[]).map_err(|e| e.to_string())?;
            let v: Value = r.summary.clone();
            let mut out = match mode_owned.as_str() {
                "mean" => json!({"Q": v["Q"], "bound": v["bound"]}),
                "pac" => json!({"zeta": v["zeta"], "k": v["k"]}),
                _ => json!({"k": v["k"]}),
            };
            out["device"] = v["device"].clone();
            Ok(out)
        }),
    })
}
