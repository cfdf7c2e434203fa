//! quantile-aggregation through the real plugin boundary: exact weights against an independent
//! LP (microlp's dense simplex) and a brute-force simplex grid, the gradient solver against the
//! exact optimum, CQR coverage by Monte Carlo, the CUDA gradient against the CPU's, and bad input.

use microlp::{ComparisonOp, OptimizationDirection, Problem};
use quiver_host::{Device, Host, Table};
use quiver_testing as testing;
use rand::Rng;
use serde_json::{json, Value};

const METHOD: &str = "quantile-aggregation";

mod common;
use common::{data, Data};

/// The independent solve: the same problem in microlp (dense primal simplex), variables u⁺, u⁻
/// per (row, level) with y − q̂ = u⁺ − u⁻; `fine`: per output level over all (j, k′).
/// Returns (weights as the plugin lays them out, objective).
fn microlp_solve(d: &Data, granularity: &str, noncross: bool) -> (Vec<f64>, f64) {
    let (n, k, j) = (d.y.len(), d.k(), d.j);
    let mut lp = Problem::new(OptimizationDirection::Minimize);
    let (p, gsize) = match granularity {
        "coarse" => (j, j),
        "medium" => (j * k, j),
        _ => (j * k * k, j * k),
    };
    let w: Vec<_> = (0..p).map(|_| lp.add_var(0.0, (0.0, f64::INFINITY))).collect();
    for g in 0..p / gsize {
        let row: Vec<_> = (0..gsize).map(|t| (w[g * gsize + t], 1.0)).collect();
        lp.add_constraint(&row, ComparisonOp::Eq, 1.0);
    }
    let terms = |kk: usize| -> Vec<(usize, usize)> {
        match granularity {
            "coarse" => (0..j).map(|jj| (jj * k + kk, jj)).collect(),
            "medium" => (0..j).map(|jj| (jj * k + kk, kk * j + jj)).collect(),
            _ => (0..j * k).map(|c| (c, kk * j * k + c)).collect(),
        }
    };
    let norm = 1.0 / (n * k) as f64;
    for i in 0..n {
        for kk in 0..k {
            let tau = d.levels[kk];
            let up = lp.add_var(tau * norm, (0.0, f64::INFINITY));
            let um = lp.add_var((1.0 - tau) * norm, (0.0, f64::INFINITY));
            let mut row: Vec<_> = terms(kk).into_iter().map(|(c, wi)| (w[wi], d.q[c][i])).collect();
            row.push((up, 1.0));
            row.push((um, -1.0));
            lp.add_constraint(&row, ComparisonOp::Eq, d.y[i]);
            if noncross && kk + 1 < k {
                let mut nc: Vec<(microlp::Variable, f64)> =
                    terms(kk).into_iter().map(|(c, wi)| (w[wi], d.q[c][i])).collect();
                nc.extend(terms(kk + 1).into_iter().map(|(c, wi)| (w[wi], -d.q[c][i])));
                lp.add_constraint(&nc, ComparisonOp::Le, 0.0);
            }
        }
    }
    let sol = lp.solve().expect("microlp solves the LP").into_solution().expect("an optimal solution");
    (w.iter().map(|&v| sol[v]).collect(), sol.objective())
}

fn fit(host: &Host, d: &Data, params: &[(&str, Value)]) -> Value {
    let n = d.y.len();
    let h = &mut host.create(METHOD, &testing::params(params), testing::cpu()).unwrap();
    let tables = [d.table("fit", 0..n, true), d.table("test", 0..n, true)];
    h.step("fit", &tables).unwrap();
    h.step("calibrate", &tables).unwrap();
    let r = h.step("predict", &tables).unwrap();
    assert_eq!((testing::quantiles(&r).rows, testing::quantiles(&r).cols), (n, d.k()));
    r.summary.clone()
}

/// The plugin's weights in the layout of [`microlp_solve`].
fn weights_of(v: &Value, d: &Data, granularity: &str) -> Vec<f64> {
    let w = &v["weights"];
    let k = d.k();
    match granularity {
        "coarse" => (0..d.j).map(|j| w[format!("m{j}")].as_f64().unwrap()).collect(),
        "medium" => (0..k * d.j).map(|c| w[format!("m{}", c % d.j)][c / d.j].as_f64().unwrap()).collect::<Vec<f64>>(),
        _ => {
            let mut out = Vec::new();
            for kk in 0..k {
                for j in 0..d.j {
                    out.extend(
                        w[kk]["weights"][format!("m{j}")].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()),
                    );
                }
            }
            out
        }
    }
}

const LEVELS3: [f64; 3] = [0.1, 0.5, 0.9];

#[test]
fn exact_weights_equal_an_independent_lp() {
    let host = testing::host();
    for (seed, granularity) in [(1, "coarse"), (2, "medium"), (3, "coarse"), (4, "medium")] {
        let d = data(seed, 40, 3, &LEVELS3);
        let v = fit(
            &host,
            &d,
            &[("granularity", json!(granularity)), ("solver", json!("exact")), ("monotone", json!("none"))],
        );
        let (w_ref, obj_ref) = microlp_solve(&d, granularity, false);
        let w = weights_of(&v, &d, granularity);
        for (a, b) in w.iter().zip(&w_ref) {
            assert!((a - b).abs() < 1e-6, "{granularity} seed {seed}: weights {w:?} vs microlp {w_ref:?}");
        }
        let obj = v["objective"].as_f64().unwrap();
        assert!((obj - obj_ref).abs() <= 1e-9 * obj_ref, "{granularity}: objective {obj} vs {obj_ref}");
        assert!((d.objective(granularity == "medium", &w) - obj).abs() <= 1e-12 * obj);
        assert_eq!(v["fit_loss"], v["objective"], "no monotone step: the fit loss is the objective");
        // with a monotone step the objective is still the LP's optimum, and the repaired
        // aggregate's loss has its own name (it may be lower: sort and PAVA never raise a loss)
        for monotone in ["sort", "pava"] {
            let m = fit(
                &host,
                &d,
                &[("granularity", json!(granularity)), ("solver", json!("exact")), ("monotone", json!(monotone))],
            );
            let (o, l) = (m["objective"].as_f64().unwrap(), m["fit_loss"].as_f64().unwrap());
            assert!((o - obj_ref).abs() <= 1e-9 * obj_ref, "{granularity} {monotone}: objective {o} vs LP {obj_ref}");
            assert!(l <= o * (1.0 + 1e-15), "{granularity} {monotone}: fit loss {l} above the objective {o}");
        }
    }
}

/// The pinball loss is homogeneous in (y, q), so the weights do not depend on the data's scale:
/// the same problem times 10^±200, also with one fit row (no spread of y to scale by: forecasts
/// near 1e224 stopped the interior point with a numerical error, and near 1e-200 Adam's steps
/// vanished below its ε, leaving the uniform weights), gives the same weights — exact and Adam.
#[test]
fn weights_do_not_depend_on_the_scale() {
    let host = testing::host();
    let cases = [(40, "coarse", "exact"), (40, "medium", "exact"), (1, "coarse", "exact"), (1, "medium", "exact")]
        .into_iter()
        .chain([(40, "coarse", "gradient"), (1, "coarse", "gradient"), (1, "medium", "gradient")]);
    for (n, granularity, solver) in cases {
        let d = data(21, n, 3, &LEVELS3);
        let params = [
            ("granularity", json!(granularity)),
            ("solver", json!(solver)),
            ("monotone", json!("none")),
            ("holdout", json!(0.0)),
            ("max_epochs", json!(50)),
        ];
        let base = weights_of(&fit(&host, &d, &params), &d, granularity);
        for c in [1e-200, 1e200] {
            let scaled = Data {
                y: d.y.iter().map(|v| v * c).collect(),
                q: d.q.iter().map(|col| col.iter().map(|v| v * c).collect()).collect(),
                x: d.x.clone(),
                levels: d.levels.clone(),
                j: d.j,
            };
            let w = weights_of(&fit(&host, &scaled, &params), &scaled, granularity);
            for (a, b) in w.iter().zip(&base) {
                assert!((a - b).abs() < 1e-6, "{granularity} {solver}, n = {n}, × {c:e}: {w:?} vs {base:?}");
            }
        }
    }
}

#[test]
fn fine_and_noncrossing_objectives_equal_an_independent_lp() {
    let host = testing::host();
    let d = data(5, 30, 2, &LEVELS3);
    let v = fit(&host, &d, &[("granularity", json!("fine")), ("solver", json!("exact")), ("monotone", json!("none"))]);
    let (_, obj_ref) = microlp_solve(&d, "fine", false);
    let obj = v["objective"].as_f64().unwrap();
    assert!((obj - obj_ref).abs() <= 1e-9 * obj_ref, "fine: {obj} vs {obj_ref}");
    // a fine weight vector is not unique; but it must lie on the simplex and give the objective
    let w = weights_of(&v, &d, "fine");
    for g in w.chunks(d.j * d.k()) {
        assert!(g.iter().all(|&x| x >= 0.0) && (g.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
    // noncross: crossing models (levels swapped in one) force the constraint to bind
    let mut d = data(6, 30, 3, &LEVELS3);
    d.q.swap(0, 2);
    for granularity in ["medium", "fine"] {
        let params = [
            ("granularity", json!(granularity)),
            ("solver", json!("exact")),
            ("noncross", json!(true)),
            ("monotone", json!("none")),
        ];
        let v = fit(&host, &d, &params);
        let (_, obj_ref) = microlp_solve(&d, granularity, true);
        let obj = v["objective"].as_f64().unwrap();
        assert!((obj - obj_ref).abs() <= 1e-9 * obj_ref, "{granularity} noncross: {obj} vs {obj_ref}");
        assert_eq!(v["fit_metrics"]["aggregate"]["crossing_rows"], json!(0), "{granularity}");
        let free =
            fit(&host, &d, &params[..2].iter().cloned().chain([("monotone", json!("none"))]).collect::<Vec<_>>());
        assert!(free["objective"].as_f64().unwrap() <= obj + 1e-12, "the constraint can only cost");
    }
}

#[test]
fn exact_coarse_weights_beat_a_brute_force_simplex_grid() {
    // J = 3: every grid point (i/200, j/200, 1 − …) is feasible, none may beat the LP, and the
    // best grid point lies within the grid's resolution of the LP weights' objective
    let host = testing::host();
    let d = data(7, 60, 3, &[0.25, 0.5, 0.75]);
    let v =
        fit(&host, &d, &[("granularity", json!("coarse")), ("solver", json!("exact")), ("monotone", json!("none"))]);
    let obj = v["objective"].as_f64().unwrap();
    let steps = 200;
    let mut best = f64::INFINITY;
    for a in 0..=steps {
        for b in 0..=steps - a {
            let w = [a as f64 / steps as f64, b as f64 / steps as f64, (steps - a - b) as f64 / steps as f64];
            let o = d.objective(false, &w);
            assert!(o >= obj - 1e-12, "grid point {w:?} beats the LP: {o} < {obj}");
            best = best.min(o);
        }
    }
    assert!(best - obj < 2e-3 * obj, "grid best {best} vs LP {obj}");
}

#[test]
fn gradient_reaches_the_exact_optimum() {
    let host = testing::host();
    for (seed, granularity) in [(11, "coarse"), (12, "medium")] {
        let d = data(seed, 400, 3, &[0.05, 0.25, 0.5, 0.75, 0.95]);
        let exact = fit(
            &host,
            &d,
            &[("granularity", json!(granularity)), ("solver", json!("exact")), ("monotone", json!("none"))],
        );
        let params = [
            ("granularity", json!(granularity)),
            ("solver", json!("gradient")),
            ("monotone", json!("none")),
            ("holdout", json!(0.0)),
            ("batch_rows", json!(400)),
            ("lr", json!(0.02)),
            ("max_epochs", json!(3000)),
        ];
        let grad = fit(&host, &d, &params);
        let (e, g) = (exact["objective"].as_f64().unwrap(), grad["objective"].as_f64().unwrap());
        assert!(g >= e - 1e-12, "no point beats the LP optimum: {g} < {e}");
        assert!((g - e) / e < 1e-3, "{granularity}: gradient {g} vs exact {e} ({:.2e} relative)", (g - e) / e);
        assert_eq!(grad["solver_details"]["epochs"], json!(3000));
    }
}

#[test]
fn gradient_with_early_stopping_reports_its_run_and_is_reproducible() {
    let host = testing::host();
    let d = data(13, 3000, 3, &[0.1, 0.5, 0.9]);
    let params = [("granularity", json!("medium")), ("solver", json!("gradient")), ("seed", json!(4))];
    let a = fit(&host, &d, &params);
    let b = fit(&host, &d, &params);
    assert_eq!(a["weights"], b["weights"], "same seed, same weights");
    let s = &a["solver_details"];
    assert_eq!(s["train_rows"].as_u64().unwrap() + s["holdout_rows"].as_u64().unwrap(), 3000);
    let history = s["holdout_history"].as_array().unwrap();
    assert_eq!(history.len() as u64, s["epochs"].as_u64().unwrap());
    let best = s["holdout_loss"].as_f64().unwrap();
    assert!(history.iter().all(|h| h.as_f64().unwrap() >= best));
    assert_eq!(history[s["best_epoch"].as_u64().unwrap() as usize - 1].as_f64().unwrap(), best);
    // local weights: a feature that decides which model is right gives a lower loss than global
    let mut d = data(14, 3000, 2, &[0.1, 0.5, 0.9]);
    for i in 0..3000 {
        // model 1 is the truth where x > 2, model 0 elsewhere
        let good = if d.x[i] > 2.0 { 1 } else { 0 };
        for k in 0..3 {
            d.q[(1 - good) * 3 + k][i] += 3.0;
        }
    }
    let global = fit(&host, &d, &[("granularity", json!("coarse")), ("solver", json!("exact"))]);
    let local = fit(&host, &d, &[("granularity", json!("coarse")), ("weights", json!("local")), ("lr", json!(0.1))]);
    let (g, l) = (global["objective"].as_f64().unwrap(), local["objective"].as_f64().unwrap());
    assert!(l < 0.8 * g, "local weights {l} should beat the best global ones {g}");
}

/// CQR: over many draws of (calibration, test), the test coverage of each central interval is
/// ≥ 1 − α and ≤ 1 − α + 1/(n_cal + 1), within the Monte Carlo error.
#[test]
fn cqr_covers_as_promised() {
    let host = testing::host();
    let levels = [0.05, 0.1, 0.5, 0.9, 0.95];
    let (n_fit, n_cal, n_test, reps) = (200, 39, 50, 300);
    let mut cover = [0.0f64; 2];
    let mut per_rep: Vec<[f64; 2]> = Vec::new();
    for rep in 0..reps {
        let d = data(1000 + rep, n_fit + n_cal + n_test, 3, &levels);
        let h = &mut host
            .create(
                METHOD,
                &testing::params(&[("granularity", json!("medium")), ("conformal", json!("cqr"))]),
                testing::cpu(),
            )
            .unwrap();
        let tables = [
            d.table("fit", 0..n_fit, true),
            d.table("calibration", n_fit..n_fit + n_cal, true),
            d.table("test", n_fit + n_cal..n_fit + n_cal + n_test, false),
        ];
        h.step("fit", &tables).unwrap();
        h.step("calibrate", &tables).unwrap();
        let r = h.step("predict", &tables).unwrap();
        let q = &testing::quantiles(&r).data;
        let mut c = [0.0; 2];
        for t in 0..n_test {
            let y = d.y[n_fit + n_cal + t];
            let row = &q[t * 5..(t + 1) * 5];
            c[0] += f64::from(u8::from(row[0] <= y && y <= row[4])) / n_test as f64;
            c[1] += f64::from(u8::from(row[1] <= y && y <= row[3])) / n_test as f64;
        }
        cover[0] += c[0] / reps as f64;
        cover[1] += c[1] / reps as f64;
        per_rep.push(c);
    }
    for (i, alpha) in [0.1, 0.2].into_iter().enumerate() {
        let vals: Vec<f64> = per_rep.iter().map(|c| c[i]).collect();
        let (mean, se) = testing::mean_se(&vals);
        assert!((mean - cover[i]).abs() < 1e-12);
        let (lo, hi) = (1.0 - alpha, 1.0 - alpha + 1.0 / (n_cal as f64 + 1.0));
        assert!(mean >= lo - 4.0 * se, "alpha {alpha}: coverage {mean:.4} < {lo} (se {se:.4})");
        assert!(mean <= hi + 4.0 * se, "alpha {alpha}: coverage {mean:.4} > {hi:.4} (se {se:.4})");
    }
}

#[test]
fn too_small_calibration_gives_infinite_ends_not_an_error() {
    let host = testing::host();
    let d = data(21, 120, 2, &[0.01, 0.5, 0.99]);
    let h = &mut host.create(METHOD, &testing::params(&[("conformal", json!("cqr"))]), testing::cpu()).unwrap();
    // α = 0.02 needs ⌈0.98 (n + 1)⌉ ≤ n: n ≥ 49; give 20
    let tables = [d.table("fit", 0..80, true), d.table("calibration", 80..100, true), d.table("test", 100..120, false)];
    h.step("fit", &tables).unwrap();
    h.step("calibrate", &tables).unwrap();
    let r = h.step("predict", &tables).unwrap();
    let v: Value = r.summary.clone();
    assert_eq!(v["cqr_adjustments"][0]["adjustment"], json!("inf"));
    assert!(v["notes"][0].as_str().unwrap().contains("too small"));
    assert!(testing::quantiles(&r).data[0] == f64::NEG_INFINITY && testing::quantiles(&r).data[2] == f64::INFINITY);
    let out = r.clone().into_json();
    assert_eq!(out["test_quantiles"][0][0], json!("-inf"));
}

#[test]
fn scoring_only_and_baselines() {
    let host = testing::host();
    let d = data(31, 200, 3, &[0.1, 0.5, 0.9]);
    // granularity=none: the given forecasts' metrics per model, no quantile set
    let h = &mut host.create(METHOD, &testing::params(&[("granularity", json!("none"))]), testing::cpu()).unwrap();
    let tables = [d.table("test", 0..200, true)];
    h.step("fit", &tables).unwrap();
    h.step("calibrate", &tables).unwrap();
    let r = h.step("predict", &tables).unwrap();
    assert_eq!(testing::quantiles(&r).rows, 0);
    let v: Value = r.summary.clone();
    let m1 = &v["metrics"]["test"]["models"]["m1"];
    let want: f64 = (0..200)
        .map(|i| {
            let u = d.y[i] - d.q[3][i];
            (0.1 * u).max(-0.9 * u)
        })
        .sum::<f64>()
        / 200.0;
    assert!((m1["pinball"]["0.1"].as_f64().unwrap() - want).abs() < 1e-12);
    // mean and median baselines: the mean / median of the three models' quantiles
    for (g, f) in [("mean", 0usize), ("median", 1)] {
        let h = &mut host
            .create(METHOD, &testing::params(&[("granularity", json!(g)), ("monotone", json!("none"))]), testing::cpu())
            .unwrap();
        let tables = [d.table("fit", 0..200, true), d.table("test", 0..200, false)];
        h.step("fit", &tables).unwrap();
        h.step("calibrate", &tables).unwrap();
        let r = h.step("predict", &tables).unwrap();
        for i in [0, 57, 199] {
            let mut v = [d.q[1][i], d.q[4][i], d.q[7][i]];
            v.sort_by(f64::total_cmp);
            let want = if f == 0 { v.iter().sum::<f64>() / 3.0 } else { v[1] };
            assert!((testing::quantiles(&r).data[i * 3 + 1] - want).abs() < 1e-12, "{g}");
        }
    }
}

/// Forecasts at the edge of double precision: the mean and median baselines stay finite (the
/// sum of two values near 1.8e308 overflows; halves first), and the aggregate is checked on
/// every table (an error naming the row, never an "inf" quantile with exit 0).
#[test]
fn baselines_stay_finite_near_the_largest_doubles() {
    let host = testing::host();
    let fit = table_of(&[("y", vec![1.0, 2.0]), ("q_a_0.5", vec![0.5, 1.5]), ("q_b_0.5", vec![1.5, 2.5])], "fit");
    let test = table_of(&[("q_a_0.5", vec![1.5e308, -1.7e308]), ("q_b_0.5", vec![1.7e308, -1.6e308])], "test");
    for (g, want) in [("mean", [1.6e308, -1.65e308]), ("median", [1.6e308, -1.65e308])] {
        let h = &mut host.create(METHOD, &testing::params(&[("granularity", json!(g))]), testing::cpu()).unwrap();
        let tables = [fit.clone(), test.clone()];
        h.step("fit", &tables).unwrap();
        h.step("calibrate", &tables).unwrap();
        let r = h.step("predict", &tables).unwrap();
        for (a, b) in testing::quantiles(&r).data.iter().zip(want) {
            assert!((a - b).abs() <= 1e-15 * b.abs(), "{g}: {a} vs {b}");
        }
    }
}

fn table_of(cols: &[(&str, Vec<f64>)], role: &str) -> Table {
    cols.iter().fold(Table::new(role), |t, (n, v)| t.with_f64(n, v.clone()))
}

#[test]
fn bad_input_is_named_and_never_panics() {
    let host = testing::host();
    let run = |params: &[(&str, Value)], tables: &[Table]| -> Result<(), quiver_host::HostError> {
        let h = &mut host.create(METHOD, &testing::params(params), testing::cpu())?;
        h.step("fit", tables)?;
        h.step("calibrate", tables)?;
        h.step("predict", tables).map(|_| ())
    };
    let y = vec![1.0, 2.0, 3.0, 4.0];
    let c = |v: f64| vec![v, v + 1.0, v + 2.0, v + 3.0];
    let good = |role: &str| {
        table_of(
            &[("y", y.clone()), ("q_a_0.1", c(0.0)), ("q_a_0.9", c(2.0)), ("q_b_0.1", c(0.5)), ("q_b_0.9", c(1.5))],
            role,
        )
    };
    let ok = [good("fit"), good("calibration"), good("test")];
    run(&[], &ok).unwrap();
    // a level missing for one model
    let t = table_of(&[("y", y.clone()), ("q_a_0.1", c(0.0)), ("q_a_0.9", c(2.0)), ("q_b_0.1", c(0.5))], "fit");
    testing::expect_error(run(&[], &[t, good("test")]), "model 'b' has no column for level 0.9");
    // a single model
    let t = table_of(&[("y", y.clone()), ("q_a_0.1", c(0.0)), ("q_a_0.9", c(2.0))], "fit");
    testing::expect_error(run(&[], &[t, good("test")]), "one model ('a')");
    // a level outside (0, 1), a name without a level, a level that is not a number
    for (name, needle) in
        [("q_b_1.5", "outside (0, 1)"), ("q_b", "no '_' before the level"), ("q_b_high", "'high' is not a number")]
    {
        let t = table_of(&[("y", y.clone()), ("q_a_0.1", c(0.0)), (name, c(1.0))], "fit");
        let e = testing::expect_error(run(&[], &[t, good("test")]), needle);
        assert!(e.to_string().contains(&format!("column '{name}'")), "{e}");
    }
    // the same model and level twice
    let t = table_of(&[("y", y.clone()), ("q_a_0.1", c(0.0)), ("q_a_0.10", c(0.0)), ("q_b_0.1", c(1.0))], "fit");
    testing::expect_error(run(&[], &[t, good("test")]), "is also column 'q_a_0.1'");
    // alphas without a pair of levels
    testing::expect_error(
        run(&[("conformal", json!("cqr")), ("alphas", json!("0.5"))], &ok),
        "alphas: 0.5 has no pair",
    );
    testing::expect_error(run(&[("alphas", json!("0.2"))], &ok), "set conformal=cqr");
    testing::expect_error(run(&[("conformal", json!("cqr")), ("alphas", json!("0.2,x"))], &ok), "'x' is not a number");
    // a NaN forecast: table, column and row
    let mut bad = c(0.5);
    bad[2] = f64::NAN;
    let t = table_of(
        &[("y", y.clone()), ("q_a_0.1", c(0.0)), ("q_a_0.9", c(2.0)), ("q_b_0.1", bad), ("q_b_0.9", c(1.5))],
        "fit",
    );
    testing::expect_error(run(&[], &[t, good("test")]), "table 'fit', column 'q_b_0.1', row 3");
    // no y on fit; cqr without calibration; test missing a column; test spelling a level otherwise
    let t = table_of(&[("q_a_0.1", c(0.0)), ("q_a_0.9", c(2.0)), ("q_b_0.1", c(0.5)), ("q_b_0.9", c(1.5))], "fit");
    testing::expect_error(run(&[], &[t, good("test")]), "table 'fit' has no column 'y'");
    testing::expect_error(
        run(&[("conformal", json!("cqr"))], &[good("fit"), good("test")]),
        "needs the 'calibration' table",
    );
    let t = table_of(&[("q_a_0.1", c(0.0)), ("q_a_0.9", c(2.0)), ("q_b_0.1", c(0.5))], "test");
    testing::expect_error(run(&[], &[good("fit"), t]), "table 'test' has no column 'q_b_0.9'");
    let t = table_of(&[("q_a_0.1", c(0.0)), ("q_a_0.9", c(2.0)), ("q_b_0.1", c(0.5)), ("q_b_0.90", c(1.5))], "test");
    testing::expect_error(run(&[], &[good("fit"), t]), "column 'q_b_0.90' must be spelt 'q_b_0.9'");
    // local weights: need features (and the gradient solver); noncross needs the LP
    testing::expect_error(run(&[("weights", json!("local"))], &ok), "needs feature columns x_<name>");
    let with_x = |role: &str| good(role).with_f64("x_t", c(0.0));
    let okx = [with_x("fit"), with_x("test")];
    run(&[("weights", json!("local"))], &okx).unwrap();
    testing::expect_error(run(&[("weights", json!("local")), ("solver", json!("exact"))], &okx), "solver=gradient");
    testing::expect_error(
        run(&[("weights", json!("local"))], &[with_x("fit"), good("test")]),
        "no feature column 'x_t'",
    );
    testing::expect_error(run(&[("noncross", json!(true)), ("solver", json!("gradient"))], &ok), "use solver=exact");
    // empty tables, no forecast columns, huge values
    let t = table_of(&[("y", vec![]), ("q_a_0.1", vec![]), ("q_b_0.1", vec![])], "fit");
    testing::expect_error(run(&[], &[t, good("test")]), "is empty");
    let t = table_of(&[("y", y.clone())], "fit");
    testing::expect_error(run(&[], &[t, good("test")]), "has no column 'q_*'");
    let huge = |v: f64| vec![v, -v, v, -v];
    let t = table_of(&[("y", huge(1e300)), ("q_a_0.1", huge(1e300)), ("q_b_0.1", huge(-1e300))], "fit");
    let mut test = t.clone();
    test.role = "test".into();
    let r = run(&[("solver", json!("gradient"))], &[t, test]);
    if let Err(e) = r {
        assert_ne!(e.plugin_kind(), Some(quiver_host::ErrorKind::Panic), "{e}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, ..Default::default() })]
    /// Random small problems with extreme values and every option: a result or a clean error,
    /// never a panic; a result has one row of K quantiles per test row, non-decreasing with
    /// `monotone=sort`, and weights on the simplex.
    #[test]
    fn random_problems_never_panic(
        n in 1usize..40,
        j in 1usize..4,
        k in 1usize..5,
        scale_exp in -300i32..300,
        seed in 0u64..1000,
        option in 0usize..8,
    ) {
        let host = testing::host();
        let mut r = testing::rng(seed);
        let scale = 10f64.powi(scale_exp);
        let mut levels: Vec<f64> = (0..k).map(|_| r.random::<f64>() * 0.98 + 0.01).collect();
        levels.sort_by(f64::total_cmp);
        levels.dedup();
        let mut t = Table::new("fit").with_f64("y", (0..n).map(|_| (r.random::<f64>() - 0.5) * scale).collect());
        t = t.with_f64("x_a", (0..n).map(|_| r.random::<f64>() * scale).collect());
        for m in 0..j {
            for l in &levels {
                t = t.with_f64(&format!("q_m{m}_{l}"), (0..n).map(|_| (r.random::<f64>() - 0.5) * scale).collect());
            }
        }
        let mut test = t.clone();
        test.role = "test".into();
        let mut cal = t.clone();
        cal.role = "calibration".into();
        let params: Vec<(&str, Value)> = match option {
            0 => vec![],
            1 => vec![("granularity", json!("coarse")), ("solver", json!("exact")), ("noncross", json!(true))],
            2 => vec![("granularity", json!("fine")), ("solver", json!("gradient")), ("max_epochs", json!(5))],
            3 => vec![("weights", json!("local")), ("max_epochs", json!(5)), ("monotone", json!("pava"))],
            4 => vec![("conformal", json!("cqr"))],
            5 => vec![("granularity", json!("median")), ("conformal", json!("cqr"))],
            6 => vec![("granularity", json!("none"))],
            _ => vec![("granularity", json!("medium")), ("solver", json!("exact")), ("monotone", json!("none"))],
        };
        let sorted = !params.iter().any(|(key, _)| *key == "monotone");
        let tables = [t, cal, test];
        let out = (|| {
            let h = &mut host.create(METHOD, &testing::params(&params), testing::cpu())?;
            h.step("fit", &tables)?;
            h.step("calibrate", &tables)?;
            h.step("predict", &tables)
        })();
        match out {
            Err(e) => proptest::prop_assert_ne!(e.plugin_kind(), Some(quiver_host::ErrorKind::Panic), "{}", e),
            Ok(res) => {
                let q = &testing::quantiles(&res);
                if option != 6 {
                    proptest::prop_assert_eq!((q.rows, q.cols), (n, levels.len()));
                    if sorted && option != 4 && option != 5 {
                        for row in q.data.chunks(q.cols) {
                            proptest::prop_assert!(row.windows(2).all(|w| w[0] <= w[1]), "{:?}", row);
                        }
                    }
                }
                let v: Value = res.summary.clone();
                if let Some(w) = v["weights"].as_object() {
                    if option == 1 {
                        let total: f64 = w.values().filter_map(Value::as_f64).sum();
                        proptest::prop_assert!((total - 1.0).abs() < 1e-9, "{:?}", w);
                    }
                }
            }
        }
    }
}

quiver_testing::device_test!(
    /// The gradient solver on each device: the CUDA pinball kernel computes the CPU's loss and
    /// gradient, so the fitted weights agree (to the order of the sums).
    gradient_weights_equal_the_cpu_path_on_every_device,
    |device| {
        let host = testing::host();
        let d = data(41, 5000, 4, &[0.05, 0.25, 0.5, 0.75, 0.95]);
        let params = testing::params(&[("granularity", json!("medium")), ("solver", json!("gradient")), ("max_epochs", json!(20))]);
        let go = |dev: Device| {
            let h = &mut host.create(METHOD, &params, testing::ctx(dev)).unwrap();
            let tables = [d.table("fit", 0..5000, true), d.table("test", 0..100, false)];
            h.step("fit", &tables).unwrap();
            h.step("calibrate", &tables).unwrap();
            let r = h.step("predict", &tables).unwrap();
            assert_eq!(r.device(), Some(dev));
            let v: Value = r.summary.clone();
            (testing::quantiles(&r).data.to_vec(), v)
        };
        let (q_dev, v_dev) = go(device);
        let (q_cpu, v_cpu) = go(Device::Cpu);
        assert_eq!(v_dev["solver_details"]["gradient_device"], json!(device.name()));
        assert_eq!(v_dev["solver_details"]["epochs"], v_cpu["solver_details"]["epochs"]);
        for (a, b) in q_dev.iter().zip(&q_cpu) {
            assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
);

#[test]
fn the_pinball_kernel_compiles() {
    testing::assert_kernel_compiles("pinball", quiver_aggregation::gpu::PINBALL_KERNEL, "pinball_grad");
}
