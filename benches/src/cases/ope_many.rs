//! Bench case of `ope-many`: K target policies evaluated from one bandit log, IPW and DR with the
//! policies' importance weights as control variates, against the same formulas in NumPy.

use crate::*;

/// A log of `n` rounds over 10 actions and `k` target policies: policy j moves the logger a share
/// m_j ∈ [0.1, 0.9] of the way to its own favourite action (which depends on the context), so its
/// weights are 1 − m_j + m_j 1{a = favourite}/μ: K distinct directions. Columns `r`, `mu_prob`,
/// `target_<j>`, `vhat_<j>` (a click model's value of policy j) and `qhat`, as `ope-many` reads
/// them, each also written for the baseline.
fn many_policy_log(dir: &Path, n: usize, k: usize, seed: u64) -> Table {
    let actions = 10;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut r, mut mu, mut q) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let (mut target, mut vhat) = (vec![vec![0.0; n]; k], vec![vec![0.0; n]; k]);
    let mut logger = vec![0.0; actions];
    let mix = |j: usize| 0.1 + 0.8 * j as f64 / k.max(2) as f64;
    for i in 0..n {
        let x: f64 = rng.random();
        logger.iter_mut().for_each(|p| *p = rng.random::<f64>() + 0.1);
        let total: f64 = logger.iter().sum();
        let u = rng.random::<f64>() * total;
        let (mut a, mut acc) = (0, logger[0]);
        while u > acc && a + 1 < actions {
            a += 1;
            acc += logger[a];
        }
        let click = |b: usize| 0.05 + 0.9 * (x * (b + 2) as f64).cos().abs();
        mu[i] = logger[a] / total;
        r[i] = f64::from(u8::from(rng.random::<f64>() < click(a)));
        q[i] = 0.9 * click(a) + 0.03;
        let logged_value: f64 = (0..actions).map(|b| logger[b] / total * (0.9 * click(b) + 0.03)).sum();
        for j in 0..k {
            let favourite = ((x + j as f64 / k as f64) * actions as f64) as usize % actions;
            let m = mix(j);
            target[j][i] = (1.0 - m) * mu[i] + if a == favourite { m } else { 0.0 };
            vhat[j][i] = (1.0 - m) * logged_value + m * (0.9 * click(favourite) + 0.03);
        }
    }
    std::fs::create_dir_all(dir).unwrap();
    let mut t = Table::new("bandit");
    for (name, v) in [("r", r), ("mu_prob", mu)] {
        write_f64(dir, name, &v);
        t = t.with_f64(name, v);
    }
    for (prefix, cols) in [("target_", target), ("vhat_", vhat)] {
        for (j, v) in cols.into_iter().enumerate() {
            let name = format!("{prefix}{j}");
            write_f64(dir, &name, &v);
            t = t.with_f64(&name, v);
        }
    }
    write_f64(dir, "qhat", &q);
    t.with_f64("qhat", q)
}

/// `ope-many` on `n` rounds and `k` policies (IPW, DR, each plain and with control variates, t
/// intervals), against NumPy (`ope_baselines.py`, mode `many`).
pub(crate) fn ope_many_case(host: &Host, dir: &Path, n: usize, k: usize) -> Option<Case> {
    let name = format!("ope-many, {k} policies, control-variate DR");
    if skipped(&name) {
        return None;
    }
    let tables = vec![many_policy_log(dir, n, k, 23)];
    let host = host.clone();
    let params = testing::params(&[("alpha", json!(0.05))]);
    Some(Case {
        name,
        sizes: json!({"n": n, "m": k}),
        python: None,
        script: Some("ope_baselines.py"),
        baseline: json!({"mode": "many", "policies": k, "alpha": 0.05}),
        data: dir.to_path_buf(),
        repeats: Some(3),
        quiver: Box::new(move || {
            // `auto`: the co-moments on the GPU where there is one
            let ctx = RunContext { device: DeviceRequest::Auto, threads: 0, ..Default::default() };
            let v = host.run("ope-many", &params, &tables, ctx).map_err(|e| e.to_string())?;
            // every policy's four estimates, with their intervals, keyed as the baseline keys them
            let mut est = serde_json::Map::new();
            for key in ["ipw", "ipw_cv", "dr", "dr_cv"] {
                for j in 0..k {
                    let field = |f: &str| v[key][f][j].clone();
                    est.insert(
                        format!("{key}_{j}"),
                        json!({"estimate": field("estimate"), "lower": field("lower"), "upper": field("upper")}),
                    );
                }
            }
            Ok(json!({"estimates": est, "rank": v["controls"]["rank"], "device": v["device"]}))
        }),
    })
}
