//! Bench cases of quantile aggregation: the exact LP against HiGHS, Adam against NumPy and PyTorch.

use crate::*;

/// Forecasts of J models at K equispaced levels for n rows (model j: bias from −1 to 1, spread
/// 0.4 + 0.2 j times the truth's, noise 0.3), as host tables; the columns also go to `dir` for
/// the baselines (`q` column-major, column j·K + k). Tables: `fit`, and `test` = the first
/// 1000 rows' forecasts.
pub(crate) fn aggregation_tables(dir: Option<&Path>, n: usize, j: usize, k: usize, seed: u64) -> Vec<Table> {
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

pub(crate) const AGG_EXACT: &str = "quantile-aggregation exact coarse vs SciPy HiGHS";
pub(crate) const AGG_ADAM: &str = "quantile-aggregation gradient medium (Adam)";
pub(crate) const AGG_TORCH: &str = "quantile-aggregation gradient medium vs PyTorch CPU";
pub(crate) const AGG_ADAM_CUDA: &str = "quantile-aggregation gradient medium cuda";

/// `quantile-aggregation`, global weights: `exact` coarse against SciPy's HiGHS (`linprog`,
/// interior point) on the same LP, or `gradient` medium against the same Adam procedure in
/// NumPy (and PyTorch with `--baselines full`).
pub(crate) fn aggregation_case(
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
            let mut h = host
                .create("quantile-aggregation", &params, RunContext { device, threads: 0, ..Default::default() })
                .map_err(|e| e.to_string())?;
            h.step("fit", &tables).map_err(|e| e.to_string())?;
            h.step("calibrate", &tables).map_err(|e| e.to_string())?;
            let r = h.step("predict", &tables).map_err(|e| e.to_string())?;
            let v: Value = r.summary.clone();
            Ok(json!({"objective": v["objective"], "compare": compare, "solver_details": v["solver_details"],
                      "device": v["device"]}))
        }),
    }
}
