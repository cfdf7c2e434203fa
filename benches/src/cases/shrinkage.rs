//! Bench cases of SURE shrinkage: `sure-normal` and `sure-binomial` at p = 10^7.

use crate::*;

/// A shrinkage case at p units: `sure-normal` with `variant` (its `method`, `xkb-grand-mean` when
/// none) or `sure-binomial`.
pub(crate) fn shrinkage_case(
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
    let mut h = host
        .create(method, &testing::params(&params), RunContext { device, threads: 0, ..Default::default() })
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
            let r = h.step("estimate", std::slice::from_ref(&table)).map_err(|e| e.to_string())?;
            let v: Value = r.summary.clone();
            // xkb-estimated's search minimises XKB's profile SURE, reported as `sure_xkb` (its risk
            // estimate is the unbiased one of the estimator returned)
            let risk = v.get("sure_xkb").and_then(Value::as_f64).or(r.number("sure")).or(r.number("ure"));
            Ok(json!({"risk": risk, "sweeps": v["sweeps"], "device": v["device"]}))
        }),
    })
}
