//! conformal-selection through the real plugin boundary (the built cdylib loaded by the host):
//! the oracle (a direct O(n·m) evaluation of the p-value formula and textbook BH), the FDR
//! guarantee by Monte Carlo, bad input, and the CUDA kernel compiling to PTX.

use quiver_host::{ErrorKind, Table};
use quiver_testing as testing;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde_json::json;

const METHOD: &str = "conformal-selection";

/// p_j by the formula, one pair (i, j) at a time.
fn direct_p_values(
    cal_v: &[f64],
    cal_w: Option<&[f64]>,
    test_v: &[f64],
    test_w: Option<&[f64]>,
    u: &[f64],
) -> Vec<f64> {
    let n = cal_v.len();
    (0..test_v.len())
        .map(|j| {
            let (mut below, mut equal, mut total) = (0.0, 0.0, 0.0);
            for i in 0..n {
                let w = cal_w.map_or(1.0, |w| w[i]);
                total += w;
                if cal_v[i] < test_v[j] {
                    below += w;
                } else if cal_v[i] == test_v[j] {
                    equal += w;
                }
            }
            match test_w {
                None => (below + u[j] * (1.0 + equal)) / (n as f64 + 1.0),
                Some(tw) => (below + (tw[j] + equal) * u[j]) / (tw[j] + total),
            }
        })
        .collect()
}

/// Textbook BH: sort, find the largest k with p_(k) <= q k / m.
fn textbook_bh(p: &[f64], q: f64) -> Vec<i64> {
    let m = p.len();
    let mut sorted = p.to_vec();
    sorted.sort_by(f64::total_cmp);
    let k = (1..=m).rev().find(|&k| sorted[k - 1] <= q * k as f64 / m as f64).unwrap_or(0);
    (0..m).filter(|&j| k > 0 && p[j] <= q * k as f64 / m as f64).map(|j| j as i64).collect()
}

struct Case {
    y: Vec<f64>,
    mu_cal: Vec<f64>,
    c_cal: Vec<f64>,
    w_cal: Vec<f64>,
    mu_test: Vec<f64>,
    c_test: Vec<f64>,
    w_test: Vec<f64>,
    u: Vec<f64>,
}

/// Scores on a 0.5 grid (many ties), thresholds in {0, 0.5}, integer weights (exact sums in
/// any order, so the oracle must match bit for bit).
fn case(seed: u64, n: usize, m: usize) -> Case {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let grid = |r: &mut ChaCha8Rng| (r.random_range(-4..=4) as f64) * 0.5;
    Case {
        y: (0..n).map(|_| grid(&mut r)).collect(),
        mu_cal: (0..n).map(|_| grid(&mut r)).collect(),
        c_cal: (0..n).map(|_| if r.random::<bool>() { 0.0 } else { 0.5 }).collect(),
        w_cal: (0..n).map(|_| r.random_range(1..=4) as f64).collect(),
        mu_test: (0..m).map(|_| grid(&mut r)).collect(),
        c_test: (0..m).map(|_| if r.random::<bool>() { 0.0 } else { 0.5 }).collect(),
        w_test: (0..m).map(|_| r.random_range(1..=4) as f64).collect(),
        u: (0..m).map(|_| r.random::<f64>()).collect(),
    }
}

#[test]
fn p_values_and_selection_equal_the_direct_formula() {
    let host = testing::host();
    let clip_m = 100.0;
    let mut checked = 0;
    for seed in 0..12u64 {
        let (n, m) = (5 + 7 * seed as usize, 3 + 5 * seed as usize);
        let k = case(seed, n, m);
        for score in ["clip", "res"] {
            for weighted in [false, true] {
                for per_unit_c in [false, true] {
                    for tie in ["random", "conservative", "column"] {
                        let c_param = 0.5;
                        let c_cal: Vec<f64> = if per_unit_c { k.c_cal.clone() } else { vec![c_param; n] };
                        let c_test: Vec<f64> = if per_unit_c { k.c_test.clone() } else { vec![c_param; m] };
                        let mut cal =
                            Table::new("calibration").with_f64("y", k.y.clone()).with_f64("mu", k.mu_cal.clone());
                        let mut test = Table::new("test").with_f64("mu", k.mu_test.clone());
                        if per_unit_c {
                            cal = cal.with_f64("c", c_cal.clone());
                            test = test.with_f64("c", c_test.clone());
                        }
                        if weighted {
                            cal = cal.with_f64("w", k.w_cal.clone());
                            test = test.with_f64("w", k.w_test.clone());
                        }
                        if tie == "column" {
                            test = test.with_f64("u", k.u.clone());
                        }
                        let q = 0.1 + 0.05 * seed as f64;
                        let params = testing::params(&[
                            ("q", json!(q)),
                            ("c", json!(c_param)),
                            ("score", json!(score)),
                            ("clip_m", json!(clip_m)),
                            ("tie_break", json!(if tie == "conservative" { "conservative" } else { "random" })),
                            ("seed", json!(seed)),
                        ]);
                        let mut sel = host.create(METHOD, &params, testing::cpu()).unwrap();
                        sel.step("calibrate", &[cal]).unwrap();
                        let got = sel.step("select", &[test]).unwrap();

                        let cal_v: Vec<f64> = (0..n)
                            .map(|i| match score {
                                "res" => k.y[i] - k.mu_cal[i],
                                _ => (if k.y[i] > c_cal[i] { clip_m } else { c_cal[i] }) - k.mu_cal[i],
                            })
                            .collect();
                        let test_v: Vec<f64> = (0..m).map(|j| c_test[j] - k.mu_test[j]).collect();
                        let u = match tie {
                            "conservative" => vec![1.0; m],
                            "column" => k.u.clone(),
                            // the documented stream: ChaCha8 seeded with `seed`, in test order
                            _ => conformal_selection::tie_break_uniforms(
                                0,
                                m,
                                conformal_selection::TieBreak::Random,
                                seed,
                            ),
                        };
                        let want = direct_p_values(
                            &cal_v,
                            weighted.then_some(&k.w_cal[..]),
                            &test_v,
                            weighted.then_some(&k.w_test[..]),
                            &u,
                        );
                        assert_eq!(
                            got.f64s("p_values").unwrap(),
                            &want[..],
                            "seed {seed} {score} w={weighted} c={per_unit_c} {tie}"
                        );
                        assert_eq!(got.i64s("selected").unwrap(), &textbook_bh(&want, q)[..]);
                        assert_eq!(got.summary["k_star"], json!(got.i64s("selected").unwrap().len()));
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, 12 * 2 * 2 * 2 * 3);
}

/// The selection does not depend on the data's units: y, μ and c times 10^-200 … 10^200 select
/// the same units with the same p-values (the clip score's default M = ∞; a default of 10^6
/// selected nothing once c − μ passed it).
#[test]
fn the_selection_does_not_depend_on_the_units() {
    let host = testing::host();
    let mut r = ChaCha8Rng::seed_from_u64(5);
    let nd = Normal::new(0.0, 1.0).unwrap();
    let (n, m) = (300, 100);
    let x: Vec<f64> = (0..n + m).map(|_| nd.sample(&mut r)).collect();
    let y: Vec<f64> = x[..n].iter().map(|v| v + nd.sample(&mut r)).collect();
    let run = |c: f64| {
        let mut sel = host.create(METHOD, &testing::params(&[("c", json!(0.5 * c))]), testing::cpu()).unwrap();
        let scaled = |v: &[f64]| v.iter().map(|a| a * c).collect::<Vec<f64>>();
        sel.step("calibrate", &[Table::new("calibration").with_f64("y", scaled(&y)).with_f64("mu", scaled(&x[..n]))])
            .unwrap();
        let out = sel.step("select", &[Table::new("test").with_f64("mu", scaled(&x[n..]))]).unwrap();
        (out.i64s("selected").unwrap().to_vec(), out.f64s("p_values").unwrap().to_vec())
    };
    let (sel1, p1) = run(1.0);
    assert!(!sel1.is_empty(), "the base case selects some units");
    for c in [1e-200, 1e-10, 1e10, 1e200] {
        let (sel_c, p_c) = run(c);
        assert_eq!(sel_c, sel1, "× {c:e}");
        assert_eq!(p_c, p1, "× {c:e}");
    }
}

#[test]
fn calibrate_once_select_many_times() {
    let host = testing::host();
    let k = case(99, 50, 20);
    let mut sel = host.create(METHOD, &testing::params(&[]), testing::cpu()).unwrap();
    sel.step("calibrate", &[Table::new("calibration").with_f64("y", k.y).with_f64("mu", k.mu_cal)]).unwrap();
    let t = Table::new("test").with_f64("mu", k.mu_test);
    let a = sel.step("select", std::slice::from_ref(&t)).unwrap();
    let b = sel.query("select", &[t]).unwrap();
    assert_eq!(a.f64s("p_values").unwrap(), b.f64s("p_values").unwrap());
}

/// FDR <= q by Monte Carlo. Model: x ~ N(0,1), y = x + N(0,1), prediction mu = x, c = 0, so
/// about half the test units are nulls (y <= 0). 3000 trials with n = 200, m = 100; the bound is
/// q + 3 standard errors of the mean FDP.
#[test]
fn fdr_is_controlled_monte_carlo() {
    let host = testing::host();
    let normal = Normal::new(0.0, 1.0).unwrap();
    for q in [0.1, 0.2, 0.5] {
        let mut rng = ChaCha8Rng::seed_from_u64(2023);
        let trials = 3000;
        let (n, m) = (200, 100);
        let mut fdp = Vec::with_capacity(trials);
        let mut selected_total = 0usize;
        let mut sel = host.create(METHOD, &testing::params(&[("q", json!(q))]), testing::cpu()).unwrap();
        for t in 0..trials {
            let draw = |rng: &mut ChaCha8Rng, k: usize| -> (Vec<f64>, Vec<f64>) {
                let x: Vec<f64> = (0..k).map(|_| normal.sample(rng)).collect();
                let y = x.iter().map(|xi| xi + normal.sample(rng)).collect();
                (x, y)
            };
            let (xc, yc) = draw(&mut rng, n);
            let (xt, yt) = draw(&mut rng, m);
            sel.step("calibrate", &[Table::new("calibration").with_f64("y", yc).with_f64("mu", xc)]).unwrap();
            let test = Table::new("test").with_f64("mu", xt).with_f64("u", (0..m).map(|_| rng.random()).collect());
            let _ = t;
            let r = sel.step("select", &[test]).unwrap();
            let selected = r.i64s("selected").unwrap();
            let false_sel = selected.iter().filter(|&&j| yt[j as usize] <= 0.0).count();
            selected_total += selected.len();
            fdp.push(false_sel as f64 / selected.len().max(1) as f64);
        }
        let mean = fdp.iter().sum::<f64>() / trials as f64;
        let var = fdp.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / (trials - 1) as f64;
        let se = (var / trials as f64).sqrt();
        println!(
            "q = {q}: FDR estimate {mean:.4} ± {se:.4}, mean selections {:.1}",
            selected_total as f64 / trials as f64
        );
        assert!(mean <= q + 3.0 * se, "q = {q}: FDR {mean} > q + 3 se ({se})");
        // not vacuous: the procedure selects, and spends a fair part of its error budget
        assert!(selected_total as f64 / trials as f64 > 5.0);
        assert!(mean > 0.5 * q, "q = {q}: FDR {mean} suspiciously far below q");
    }
}

#[test]
fn bad_input_gives_clear_errors() {
    let host = testing::host();
    let ok_cal = || Table::new("calibration").with_f64("y", vec![1.0, 2.0, 3.0]).with_f64("mu", vec![0.5, 1.0, 2.0]);
    let p = testing::params(&[]);

    // NaN in a column: table, column and row named
    let mut sel = host.create(METHOD, &p, testing::cpu()).unwrap();
    let e = sel
        .step(
            "calibrate",
            &[Table::new("calibration").with_f64("y", vec![1.0, f64::NAN]).with_f64("mu", vec![0.0, 0.0])],
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "table 'calibration', column 'y', row 2: value NaN is not finite");
    let e = sel
        .step(
            "calibrate",
            &[Table::new("calibration").with_f64("y", vec![1.0, 2.0]).with_f64("mu", vec![0.0, f64::INFINITY])],
        )
        .unwrap_err();
    assert!(e.to_string().contains("column 'mu', row 2"), "{e}");

    // missing column
    let e = sel.step("calibrate", &[Table::new("calibration").with_f64("y", vec![1.0])]).unwrap_err();
    assert!(e.to_string().contains("has no column 'mu'"), "{e}");

    // empty table
    let e =
        sel.step("calibrate", &[Table::new("calibration").with_f64("y", vec![]).with_f64("mu", vec![])]).unwrap_err();
    assert!(e.to_string().contains("'calibration' is empty"), "{e}");

    // lengths that disagree
    let e = sel
        .step("calibrate", &[Table::new("calibration").with_f64("y", vec![1.0, 2.0]).with_f64("mu", vec![1.0])])
        .unwrap_err();
    assert!(e.to_string().contains("column 'mu' has 1 values, expected 2"), "{e}");

    // missing table
    let e = sel.step("calibrate", &[]).unwrap_err();
    assert!(e.to_string().contains("no 'calibration' table"), "{e}");

    // select before calibrate is a state error, not a crash
    let mut fresh = host.create(METHOD, &p, testing::cpu()).unwrap();
    let e = fresh.step("select", &[Table::new("test").with_f64("mu", vec![1.0])]).unwrap_err();
    assert_eq!(e.plugin_kind(), Some(ErrorKind::State));

    // weights on one side only; negative weight; u outside [0, 1]
    sel.step("calibrate", &[ok_cal()]).unwrap();
    let e = sel.step("select", &[Table::new("test").with_f64("mu", vec![1.0]).with_f64("w", vec![1.0])]).unwrap_err();
    assert!(e.to_string().contains("give both or neither"), "{e}");
    let e = sel.step("select", &[Table::new("test").with_f64("mu", vec![1.0]).with_f64("u", vec![1.5])]).unwrap_err();
    assert!(e.to_string().contains("column 'u', row 1"), "{e}");
    let e = sel.step("calibrate", &[ok_cal().with_f64("w", vec![1.0, -1.0, 1.0])]).unwrap_err();
    assert!(e.to_string().contains("column 'w', row 2: value -1 must be >= 0 (a weight)"), "{e}");

    // parameters: out of range, wrong type, unknown name, unknown choice
    for (params, needle) in [
        (testing::params(&[("q", json!(0.0))]), "'q' = 0.0 must be a number in (0, 1)"),
        (testing::params(&[("q", json!(1.5))]), "'q' = 1.5 must be a number in (0, 1)"),
        (testing::params(&[("q", json!("high"))]), "'q' = \"high\" must be a number"),
        (testing::params(&[("score", json!("abs"))]), "must be one of clip | res"),
        (testing::params(&[("clip_m", json!(-1.0))]), "'clip_m' = -1.0 must be a number in (0, inf]"),
    ] {
        let e = host.create(METHOD, &params, testing::cpu()).err().expect("must fail");
        assert!(e.to_string().contains(needle), "{e} (wanted {needle})");
        assert_eq!(e.plugin_kind(), Some(ErrorKind::InvalidParameter));
    }
    let e = host.create(METHOD, &testing::params(&[("alpha", json!(0.1))]), testing::cpu()).err().unwrap();
    assert_eq!(e.plugin_kind(), Some(ErrorKind::InvalidParameter));
    assert!(e.to_string().contains("unknown parameter 'alpha'"), "{e}");

    // unknown method, wrong family
    let e = host.create("conformal-selektion", &p, testing::cpu()).err().unwrap();
    assert!(e.to_string().contains("unknown method 'conformal-selektion'"), "{e}");
    let e = host.create_as(METHOD, "shrinkage", &p, testing::cpu()).err().unwrap();
    assert!(e.to_string().contains("is of family 'conformal-selector', not 'shrinkage'"), "{e}");
}

quiver_testing::device_test!(
    /// Through the plugin on each device: p-values equal the direct O(n·m) formula bit for bit
    /// (scores on a grid with ties, integer weights, so every sum is exact), and the selection is
    /// textbook BH on them.
    p_values_equal_the_direct_formula_on_every_device,
    |device| {
        let host = testing::host();
        for weighted in [false, true] {
            let k = case(7, 3000, 2000);
            let mut cal = Table::new("calibration").with_f64("y", k.y.clone()).with_f64("mu", k.mu_cal.clone());
            let mut test = Table::new("test").with_f64("mu", k.mu_test.clone()).with_f64("u", k.u.clone());
            if weighted {
                cal = cal.with_f64("w", k.w_cal.clone());
                test = test.with_f64("w", k.w_test.clone());
            }
            let mut sel = host.create(METHOD, &testing::params(&[("q", json!(0.2))]), testing::ctx(device)).unwrap();
            sel.step("calibrate", &[cal]).unwrap();
            let r = sel.step("select", &[test]).unwrap();
            assert_eq!(r.device(), Some(device));
            let cal_v =
                conformal_selection::calibration_scores(&k.y, &k.mu_cal, &|_| 0.0, conformal_selection::Score::Clip, 1e6);
            let test_v: Vec<f64> = k.mu_test.iter().map(|m| 0.0 - m).collect();
            let (cw, tw) = (weighted.then_some(&k.w_cal[..]), weighted.then_some(&k.w_test[..]));
            let want = direct_p_values(&cal_v, cw, &test_v, tw, &k.u);
            assert_eq!(r.f64s("p_values").unwrap(), &want[..], "weighted = {weighted}");
            assert_eq!(r.i64s("selected").unwrap(), &textbook_bh(&want, 0.2)[..], "weighted = {weighted}");
        }
    }
);

#[test]
fn kernel_compiles_to_ptx() {
    quiver_testing::assert_kernel_compiles(
        "conformal_pvalues",
        conformal_selection::PVALUE_KERNEL,
        "conformal_pvalues",
    );
}
