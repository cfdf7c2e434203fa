//! Bench case of `rl-aggregate`: the stratified bootstrap of rliable's four aggregate metrics,
//! against rliable 1.2.0 itself (`rliable_baselines.py`, in `target/pyenv-rliable`).

use crate::*;

/// 5 algorithms × 26 tasks × 100 runs of skewed scores, as a table and as the CSV rliable reads.
fn suite(dir: &Path, seed: u64) -> (Table, PathBuf) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut alg, mut task, mut score) = (Vec::new(), Vec::new(), Vec::new());
    let mut csv = String::from("algorithm,task,run,score\n");
    let difficulty: Vec<f64> = (0..26).map(|_| rng.random::<f64>() * 0.6 - 0.3).collect();
    for a in 0..5 {
        for (t, d) in difficulty.iter().enumerate() {
            for r in 0..100 {
                let u: f64 = rng.random();
                let x = 0.3 + 0.1 * a as f64 + d + 0.8 * u * u;
                csv.push_str(&format!("alg{a},task{t},{r},{x:?}\n"));
                alg.push(format!("alg{a}"));
                task.push(format!("task{t}"));
                score.push(x);
            }
        }
    }
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("scores.csv");
    std::fs::write(&path, csv).unwrap();
    (Table::new("scores").with_text("algorithm", &alg).with_text("task", &task).with_f64("score", score), path)
}

/// IQM, median, mean and optimality gap with percentile intervals from `resamples` stratified
/// resamples, for 5 algorithms × 26 tasks × 100 runs; against rliable when `rliable` names its
/// Python (the point metrics must agree; the intervals come from other draws).
pub(crate) fn rl_aggregate_case(host: &Host, dir: &Path, resamples: usize, rliable: Option<&Path>) -> Option<Case> {
    let name = format!("rl-aggregate, {resamples} stratified resamples, 4 metrics");
    if skipped(&name) {
        return None;
    }
    let (table, path) = suite(dir, 31);
    let host = host.clone();
    let params = testing::params(&[("resamples", json!(resamples)), ("seed", json!(0)), ("improvement", json!(false))]);
    let tables = vec![table];
    Some(Case {
        name,
        sizes: json!({"n": 5 * 26 * 100, "m": resamples}),
        python: rliable.map(Path::to_path_buf),
        script: rliable.map(|_| "rliable_baselines.py"),
        baseline: json!({"scores": path.display().to_string(), "reps": resamples, "seed": 0, "improvement": false}),
        data: dir.to_path_buf(),
        repeats: Some(1),
        quiver: Box::new(move || {
            let v = host.run("rl-aggregate", &params, &tables, RunContext::default()).map_err(|e| e.to_string())?;
            let mut est = serde_json::Map::new();
            for m in ["iqm", "median", "mean", "optimality_gap"] {
                for a in 0..5 {
                    let key = format!("alg{a}");
                    est.insert(format!("{key}/{m}"), json!({"estimate": v["metrics"][m][&key]["estimate"]}));
                }
            }
            Ok(json!({"estimates": est}))
        }),
    })
}
