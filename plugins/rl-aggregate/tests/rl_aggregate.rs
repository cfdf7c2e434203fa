//! `rl-aggregate` through the real plugin boundary: point metrics against the formulas by hand,
//! intervals reproducible for a seed on any number of threads, stratified resamples, the
//! probability of improvement, profiles, and bad input named by table, column and row.

use quiver_host::{RunContext, Table};
use quiver_testing as testing;
use rand::Rng;
use serde_json::{json, Value};
use std::path::Path;

const METHOD: &str = "rl-aggregate";

/// `algorithms` × `tasks` × `runs` scores: algorithm a's runs on task t around 0.5 + 0.2a.
fn scores(seed: u64, algorithms: usize, tasks: usize, runs: usize) -> (Table, Vec<Vec<Vec<f64>>>) {
    let mut rng = testing::rng(seed);
    let (mut alg, mut task, mut run, mut score) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut cells = vec![vec![Vec::new(); tasks]; algorithms];
    for (a, cell) in cells.iter_mut().enumerate() {
        for (t, c) in cell.iter_mut().enumerate() {
            for r in 0..runs {
                let x = 0.5 + 0.2 * a as f64 + (rng.random::<f64>() - 0.5) * (1.0 + t as f64 * 0.1);
                alg.push(format!("algo-{a}"));
                task.push(format!("task {t}"));
                run.push(r as i64);
                score.push(x);
                c.push(x);
            }
        }
    }
    let t = Table::new("scores")
        .with_text("algorithm", &alg)
        .with_text("task", &task)
        .with_i64("run", run)
        .with_f64("score", score);
    (t, cells)
}

fn run(params: Value, tables: &[Table]) -> Result<Value, String> {
    let host = testing::host();
    host.run(METHOD, params.as_object().unwrap(), tables, testing::cpu()).map_err(|e| e.to_string())
}

fn trimmed_mean(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let cut = v.len() / 4;
    let kept = &v[cut..v.len() - cut];
    kept.iter().sum::<f64>() / kept.len() as f64
}

#[test]
fn point_metrics_are_the_formulas_by_hand() {
    let (t, cells) = scores(3, 3, 5, 7);
    let r = run(json!({"resamples": 200, "gamma": 0.8}), &[t]).unwrap();
    for (a, cell) in cells.iter().enumerate() {
        let name = format!("algo-{a}");
        let all: Vec<f64> = cell.iter().flatten().copied().collect();
        let mean = all.iter().sum::<f64>() / all.len() as f64;
        let mut task_means: Vec<f64> = cell.iter().map(|c| c.iter().sum::<f64>() / c.len() as f64).collect();
        task_means.sort_by(f64::total_cmp);
        let median = task_means[2];
        let gap = 0.8 - all.iter().map(|x| x.min(0.8)).sum::<f64>() / all.len() as f64;
        let close = |m: &str, want: f64| {
            let got = r["metrics"][m][&name]["estimate"].as_f64().unwrap();
            assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "{m} of {name}: {got} vs {want}");
            let (lo, hi) =
                (r["metrics"][m][&name]["lower"].as_f64().unwrap(), r["metrics"][m][&name]["upper"].as_f64().unwrap());
            assert!(lo <= hi, "{m} of {name}: [{lo}, {hi}]");
        };
        close("iqm", trimmed_mean(all.clone()));
        close("mean", mean);
        close("median", median);
        close("optimality_gap", gap);
    }
    assert_eq!(r["algorithms"], json!(["algo-0", "algo-1", "algo-2"]));
    assert_eq!(r["tasks"], 5);
    assert_eq!(r["runs"]["algo-1"], 35);
}

/// The intervals: the same for a seed on one thread and on all, different for another seed; the
/// point inside its percentile interval here; BCa differs from the percentile interval.
#[test]
fn intervals_are_reproducible_and_thread_independent() {
    let (t, _) = scores(5, 2, 6, 5);
    let host = testing::host();
    let params = json!({"resamples": 500, "seed": 11}).as_object().unwrap().clone();
    let one = host.run(METHOD, &params, std::slice::from_ref(&t), RunContext { threads: 1, ..testing::cpu() }).unwrap();
    let all = host.run(METHOD, &params, std::slice::from_ref(&t), testing::cpu()).unwrap();
    assert_eq!(one, all);
    let other = run(json!({"resamples": 500, "seed": 12}), std::slice::from_ref(&t)).unwrap();
    assert_ne!(one["metrics"], other["metrics"]);
    let iqm = &one["metrics"]["iqm"]["algo-0"];
    assert!(iqm["lower"].as_f64() <= iqm["estimate"].as_f64() && iqm["estimate"].as_f64() <= iqm["upper"].as_f64());
    let bca = run(json!({"resamples": 500, "seed": 11, "interval": "bca"}), &[t]).unwrap();
    assert_eq!(bca["metrics"]["iqm"]["algo-0"]["estimate"], iqm["estimate"]);
    assert_ne!(bca["metrics"]["iqm"]["algo-0"]["lower"], iqm["lower"]);
}

/// The percentile interval of the mean covers the true mean of the runs' law at the rate the
/// stratified bootstrap predicts: 300 designs of 4 tasks × 5 runs, uniform scores of known mean.
#[test]
fn the_mean_interval_covers_at_about_its_level() {
    let mut rng = testing::rng(17);
    let (reps, mut covered) = (300, 0);
    for rep in 0..reps {
        let (mut alg, mut task, mut score) = (Vec::new(), Vec::new(), Vec::new());
        for t in 0..4 {
            for _ in 0..5 {
                alg.push("a".to_string());
                task.push(format!("t{t}"));
                score.push(rng.random::<f64>() + t as f64 * 0.1);
            }
        }
        let table = Table::new("scores").with_text("algorithm", &alg).with_text("task", &task).with_f64("score", score);
        let r = run(json!({"resamples": 400, "seed": rep, "metrics": "mean", "alpha": 0.1}), &[table]).unwrap();
        let (lo, hi) = (
            r["metrics"]["mean"]["a"]["lower"].as_f64().unwrap(),
            r["metrics"]["mean"]["a"]["upper"].as_f64().unwrap(),
        );
        // the law's mean: 0.5 + the tasks' shifts 0, 0.1, 0.2, 0.3 averaged
        covered += usize::from(lo <= 0.65 && 0.65 <= hi);
    }
    // resampling 5 runs within each task shrinks the mean's variance by 4/5 (the bootstrap's
    // (n − 1)/n per stratum), so the 90% percentile interval is √0.8 too narrow: it covers about
    // 2Φ(1.645·√0.8) − 1 = 0.859 — the small-n shortfall rliable's intervals share; 3 standard
    // errors of 300 trials either side (and 0.01 for the normal approximation)
    let rate = covered as f64 / reps as f64;
    let se = (0.859f64 * 0.141 / reps as f64).sqrt();
    assert!((rate - 0.859).abs() < 3.0 * se + 0.01, "coverage {rate}");
}

#[test]
fn improvement_and_profiles() {
    let (t, cells) = scores(8, 2, 4, 6);
    let r = run(json!({"resamples": 300, "profile": 4}), &[t]).unwrap();
    // P(algo-0 > algo-1) by hand: per task the pairs won (ties ½) over 36, averaged
    let mut by_hand = 0.0;
    for (x, y) in cells[0].iter().zip(&cells[1]) {
        let won: f64 = x
            .iter()
            .map(|a| {
                y.iter()
                    .map(|b| {
                        if a > b {
                            1.0
                        } else if a == b {
                            0.5
                        } else {
                            0.0
                        }
                    })
                    .sum::<f64>()
            })
            .sum();
        by_hand += won / 36.0;
    }
    by_hand /= 4.0;
    let p = &r["improvement"][0];
    assert_eq!((p["x"].as_str(), p["y"].as_str()), (Some("algo-0"), Some("algo-1")));
    assert!((p["estimate"].as_f64().unwrap() - by_hand).abs() < 1e-12);
    // the profiles: 5 τ from the lowest to the highest score; the fraction above the lowest is
    // below 1 only by the runs at it, above the highest 0
    let tau = r["profile"]["tau"].as_array().unwrap();
    assert_eq!(tau.len(), 5);
    let f = r["profile"]["run_score"]["algo-1"]["fraction"].as_array().unwrap();
    assert_eq!(f[4], 0.0);
    assert!(f.windows(2).all(|w| w[0].as_f64() >= w[1].as_f64()));
    // identical algorithms: P = 0.5 exactly
    let (_, one) = scores(8, 1, 3, 4);
    let (mut alg, mut task, mut score) = (Vec::new(), Vec::new(), Vec::new());
    for name in ["p", "q"] {
        for (t, runs) in one[0].iter().enumerate() {
            for x in runs {
                alg.push(name.to_string());
                task.push(format!("t{t}"));
                score.push(*x);
            }
        }
    }
    let twins = Table::new("scores").with_text("algorithm", &alg).with_text("task", &task).with_f64("score", score);
    let r = run(json!({"resamples": 50}), &[twins]).unwrap();
    assert_eq!(r["improvement"][0]["estimate"], 0.5);
}

/// Scores of both signs near the largest double: the profile's τ grid and the intervals stay
/// numbers (a probe found the grid null with success).
#[test]
fn scores_near_the_largest_double_stay_numbers() {
    let t = Table::new("scores")
        .with_text("algorithm", &["a", "a", "a", "a"])
        .with_text("task", &["x", "x", "y", "y"])
        .with_f64("score", vec![-1.5e308, 1.5e308, 1.0, 2.0]);
    let r = run(json!({"resamples": 20, "profile": 4}), &[t]).unwrap();
    let tau: Vec<f64> = r["profile"]["tau"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!((tau[0], tau[4]), (-1.5e308, 1.5e308));
    assert!(tau.windows(2).all(|w| w[0] < w[1]), "{tau:?}");
    for m in ["iqm", "median", "mean", "optimality_gap"] {
        for end in ["estimate", "lower", "upper"] {
            assert!(r["metrics"][m]["a"][end].is_f64(), "{m} {end}: {}", r["metrics"][m]["a"]);
        }
    }
}

#[test]
fn normalization_maps_each_task() {
    let (t, cells) = scores(4, 1, 2, 3);
    let norm = Table::new("normalization")
        .with_text("task", &["task 1".to_string(), "task 0".to_string()])
        .with_f64("low", vec![1.0, -1.0])
        .with_f64("high", vec![3.0, 1.0]);
    let r = run(json!({"resamples": 20, "metrics": "mean"}), &[t, norm]).unwrap();
    let n: Vec<f64> =
        cells[0][0].iter().map(|x| (x + 1.0) / 2.0).chain(cells[0][1].iter().map(|x| (x - 1.0) / 2.0)).collect();
    let want = n.iter().sum::<f64>() / 6.0;
    assert!((r["metrics"]["mean"]["algo-0"]["estimate"].as_f64().unwrap() - want).abs() < 1e-12);
    assert_eq!(r["normalised"], true);
}

#[test]
fn bad_input_is_named() {
    let text = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let table = |alg: &[&str], task: &[&str], score: Vec<f64>| {
        Table::new("scores").with_text("algorithm", &text(alg)).with_text("task", &text(task)).with_f64("score", score)
    };
    let e = run(json!({}), &[table(&["a", "a", "a"], &["x", "x", "y"], vec![1.0, 2.0, 3.0])]).unwrap_err();
    assert!(e.contains("algorithm 'a' has one run on task 'y'"), "{e}");
    let e = run(json!({}), &[table(&["a", "a", "b", "b", "b", "b"], &["x", "x", "x", "x", "y", "y"], vec![1.0; 6])])
        .unwrap_err();
    assert!(e.contains("algorithm 'a' has no run on task 'y'"), "{e}");
    let e = run(json!({}), &[table(&["a", "a"], &["x", "x"], vec![1.0, f64::NAN])]).unwrap_err();
    assert!(e.contains("table 'scores'") && e.contains("column 'score'") && e.contains("row 2"), "{e}");
    let norm = Table::new("normalization")
        .with_text("task", &text(&["x"]))
        .with_f64("low", vec![1.0])
        .with_f64("high", vec![1.0]);
    let e = run(json!({}), &[table(&["a", "a"], &["x", "x"], vec![1.0, 2.0]), norm]).unwrap_err();
    assert!(e.contains("table 'normalization', column 'high', row 1") && e.contains("no range"), "{e}");
    let norm = Table::new("normalization")
        .with_text("task", &text(&["z"]))
        .with_f64("low", vec![0.0])
        .with_f64("high", vec![1.0]);
    let e = run(json!({}), &[table(&["a", "a"], &["x", "x"], vec![1.0, 2.0]), norm]).unwrap_err();
    assert!(e.contains("task 'x' has no row in table 'normalization'"), "{e}");
    let dup = table(&["a", "a", "a"], &["x", "x", "x"], vec![1.0, 2.0, 3.0]).with_i64("run", vec![0, 1, 0]);
    let e = run(json!({}), &[dup]).unwrap_err();
    assert!(e.contains("column 'run', row 3") && e.contains("also in row 1"), "{e}");
    let e = run(json!({"metrics": "iqm,best"}), &[table(&["a", "a"], &["x", "x"], vec![1.0, 2.0])]).unwrap_err();
    assert!(e.contains("'best' is not one of"), "{e}");
    let e =
        run(json!({"resamples": 10_000_000, "profile": 10_000}), &[table(&["a", "a"], &["x", "x"], vec![1.0, 2.0])])
            .unwrap_err();
    assert!(e.contains("limit"), "{e}");
}

#[test]
fn conforms() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/rl-aggregate");
    testing::conformance::check_method_with(&testing::own_plugin("rl_aggregate"), METHOD, &example);
}
