//! `rl-aggregate` against `rliable` 1.2.0 from PyPI (`benches/baselines/rliable_baselines.py`, in
//! `target/pyenv-rliable`, which `cargo xtask test` makes and names in `QUIVER_RLIABLE_PYTHON`): on
//! 5 algorithms × 26 tasks × 3, 10 and 100 runs, the point metrics and the probability of
//! improvement equal to 1e-12, and every percentile interval end within Monte Carlo error of
//! rliable's (the two draw different resamples).
//!
//! The error of a bootstrap percentile end from B resamples is about √(q(1 − q)/B)/f(x_q); for a
//! near-normal bootstrap distribution of spread σ at q = 0.025 that is 0.0598σ at B = 2000, and the
//! difference of two independent ends √2 times it. Each end must agree to 6 such standard errors,
//! σ read off rliable's interval (its width over 3.92).

use quiver_host::Table;
use quiver_testing as testing;
use rand::Rng;
use serde_json::{json, Value};

/// The Python of `target/pyenv-rliable`, or `None` (reported) when it was not made.
fn rliable_python() -> Option<std::path::PathBuf> {
    match std::env::var_os("QUIVER_RLIABLE_PYTHON") {
        Some(p) => Some(p.into()),
        None if std::env::var_os("QUIVER_REQUIRE_RLIABLE").is_some() => {
            panic!("QUIVER_REQUIRE_RLIABLE is set but QUIVER_RLIABLE_PYTHON is not")
        }
        None => {
            eprintln!("skipped: rliable's environment not found (cargo xtask test makes target/pyenv-rliable)");
            None
        }
    }
}

/// 5 algorithms × 26 tasks × `runs`, algorithms 0.1 apart, tasks of different difficulty.
fn design(seed: u64, runs: usize) -> (Table, String) {
    let mut rng = testing::rng(seed);
    let difficulty: Vec<f64> = (0..26).map(|_| rng.random::<f64>() * 0.6 - 0.3).collect();
    let (mut alg, mut task, mut run, mut score) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut csv = String::from("algorithm,task,run,score\n");
    for a in 0..5 {
        for (t, d) in difficulty.iter().enumerate() {
            for r in 0..runs {
                // a skewed law (the square of a uniform), as RL returns often are
                let u: f64 = rng.random();
                let x = 0.3 + 0.1 * a as f64 + d + 0.8 * u * u;
                csv.push_str(&format!("alg{a},task{t},{r},{x:?}\n"));
                alg.push(format!("alg{a}"));
                task.push(format!("task{t}"));
                run.push(r as i64);
                score.push(x);
            }
        }
    }
    let t = Table::new("scores")
        .with_text("algorithm", &alg)
        .with_text("task", &task)
        .with_i64("run", run)
        .with_f64("score", score);
    (t, csv)
}

#[test]
fn agrees_with_rliable() {
    let Some(python) = rliable_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let host = testing::host();
    for (seed, runs, reps) in [(1, 3, 4000), (2, 3, 4000), (3, 10, 4000), (4, 100, 1000)] {
        let (table, csv) = design(seed, runs);
        let path = dir.path().join(format!("scores-{seed}.csv"));
        std::fs::write(&path, csv).unwrap();
        let theirs = testing::try_run_baseline(
            &python,
            "rliable_baselines.py",
            &json!({"scores": path.display().to_string(), "reps": reps, "seed": seed}),
        )
        .unwrap();
        let params = json!({"resamples": reps, "seed": seed}).as_object().unwrap().clone();
        let ours = host.run("rl-aggregate", &params, &[table], testing::cpu()).unwrap();
        let scale = (2000.0 / reps as f64).sqrt();
        for a in 0..5 {
            let name = format!("alg{a}");
            for m in ["iqm", "median", "mean", "optimality_gap"] {
                let (o, t): (&Value, &Value) = (&ours["metrics"][m][&name], &theirs["result"]["metrics"][&name][m]);
                let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{m} {name} {k}: {v}"));
                let at = format!("{runs} runs, seed {seed}, {m} of {name}");
                assert!((f(o, "estimate") - f(t, "estimate")).abs() <= 1e-12 * f(t, "estimate").abs().max(1.0), "{at}");
                let sigma = (f(t, "upper") - f(t, "lower")) / 3.92;
                let tol = 6.0 * 0.0598 * 2f64.sqrt() * sigma * scale;
                for end in ["lower", "upper"] {
                    let (x, y) = (f(o, end), f(t, end));
                    assert!((x - y).abs() <= tol, "{at}, {end}: {x} vs rliable's {y} (tolerance {tol:.2e})");
                }
            }
        }
        let (mine, theirs) =
            (ours["improvement"].as_array().unwrap(), theirs["result"]["improvement"].as_array().unwrap());
        assert_eq!(mine.len(), 10);
        for (p, q) in mine.iter().zip(theirs) {
            assert_eq!((&p["x"], &p["y"]), (&q["x"], &q["y"]));
            let (x, y) = (p["estimate"].as_f64().unwrap(), q["estimate"].as_f64().unwrap());
            assert!((x - y).abs() <= 1e-12, "P({} > {}): {x} vs {y}", p["x"], p["y"]);
        }
    }
}
