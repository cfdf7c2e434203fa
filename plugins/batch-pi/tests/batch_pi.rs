//! batch-pi through the real plugin boundary: every mode against brute-force enumeration of all
//! C(n+m, m) rank multisets, split conformal at m = 1 and the exact ties, each guarantee by Monte
//! Carlo, bad input, and the CUDA kernel compiling to PTX.

use quiver_host::{ErrorKind, Table};
use quiver_testing as testing;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

/// The upper end of a result's set: `upper` (two-sided) or the one-sided `bound`.
fn upper(r: &quiver_host::RunOutput) -> f64 {
    r.number("upper").or_else(|| r.number("bound")).expect("an upper end")
}

/// The lower end of a result's set (-inf for a one-sided bound).
fn lower(r: &quiver_host::RunOutput) -> f64 {
    r.number("lower").unwrap_or(f64::NEG_INFINITY)
}

/// The selected test units of a selection-mode result.
fn selected_units(r: &quiver_host::RunOutput) -> Vec<usize> {
    r.summary["selected"].as_array().expect("selected").iter().map(|j| j.as_u64().unwrap() as usize).collect()
}

const METHOD: &str = "batch-pi";

fn run(host: &quiver_host::Host, params: &[(&str, Value)], scores: &[f64]) -> Value {
    let mut h = host.create(METHOD, &testing::params(params), testing::cpu()).unwrap();
    h.step("calibrate", &[Table::new("calibration").with_f64("score", scores.to_vec())]).unwrap();
    h.step("bound", &[]).unwrap().summary
}

fn multisets(n: usize, m: usize) -> Vec<Vec<usize>> {
    quiver_numerics::exact::rank_multisets(n as u64, m)
        .into_iter()
        .map(|r| r.into_iter().map(|k| k as usize).collect())
        .collect()
}

/// Smallest k with #{multisets : r_(ζ) ≤ k} ≥ level·total, level = num/den (exact integers).
fn brute_k(all: &[Vec<usize>], n: usize, zeta: usize, num: usize, den: usize) -> usize {
    (1..=n + 1).find(|&k| all.iter().filter(|r| r[zeta - 1] <= k).count() * den >= num * all.len()).unwrap()
}

fn sorted_scores(seed: u64, n: usize) -> Vec<f64> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let mut s: Vec<f64> = (0..n).map(|_| (r.random::<f64>() * 100.0).round() / 100.0).collect();
    s.sort_by(f64::total_cmp);
    s
}

#[test]
fn every_mode_equals_brute_force_enumeration() {
    let host = testing::host();
    let mut checked = 0;
    for n in 1..=7usize {
        for m in 1..=4usize {
            let all = multisets(n, m);
            let s = sorted_scores(n as u64 * 10 + m as u64, n);
            let order = |k: usize| {
                if k == 0 {
                    f64::NEG_INFINITY
                } else if k > n {
                    1.0
                } else {
                    s[k - 1]
                }
            };
            // alpha as num/100 so the brute force compares exact integers
            for alpha_pct in [5usize, 10, 20, 50] {
                let alpha = alpha_pct as f64 / 100.0;
                let base = [("alpha", json!(alpha)), ("m", json!(m)), ("upper_bound", json!(1.0))];
                for zeta in 1..=m {
                    let k = brute_k(&all, n, zeta, 100 - alpha_pct, 100);
                    let mut p = base.to_vec();
                    p.extend([("mode", json!("order-stat")), ("zeta", json!(zeta))]);
                    let v = run(&host, &p, &s);
                    assert_eq!(v["k"], json!(k), "order-stat n={n} m={m} zeta={zeta} alpha={alpha}");
                    assert_eq!(v["bound"], json!(order(k)));
                    // two-sided: α/2 in each tail (α/2 = alpha_pct/200)
                    let ku = brute_k(&all, n, zeta, 200 - alpha_pct, 200);
                    let kl = brute_k(&all, n, zeta, alpha_pct, 200) - 1;
                    p[3] = ("mode", json!("two-sided"));
                    let v = run(&host, &p, &s);
                    assert_eq!(
                        (v["k_lower"].clone(), v["k_upper"].clone()),
                        (json!(kl), json!(ku)),
                        "two-sided n={n} m={m} zeta={zeta}"
                    );
                }
                // pac with δ = 0.25: ζ = ⌈0.75 m⌉
                let zeta = (3 * m).div_ceil(4).max(1);
                let mut p = base.to_vec();
                p.extend([("mode", json!("pac")), ("delta", json!(0.25))]);
                let v = run(&host, &p, &s);
                assert_eq!(
                    (v["zeta"].clone(), v["k"].clone()),
                    (json!(zeta), json!(brute_k(&all, n, zeta, 100 - alpha_pct, 100)))
                );
                // mean / max / clipped mean: Q from the enumerated rank-sum law, bound = sup over A
                let sum = |r: &Vec<usize>| r.iter().sum::<usize>();
                let q = (m..=m * (n + 1))
                    .find(|&q| all.iter().filter(|r| sum(r) <= q).count() * 100 >= (100 - alpha_pct) * all.len())
                    .unwrap();
                for (stat, f) in [
                    (
                        "mean",
                        Box::new(|r: &Vec<usize>| r.iter().fold(0.0, |a, &k| a + order(k)) / m as f64)
                            as Box<dyn Fn(&Vec<usize>) -> f64>,
                    ),
                    ("max", Box::new(|r: &Vec<usize>| r.iter().fold(f64::NEG_INFINITY, |a, &k| a.max(order(k))))),
                    (
                        "clipped-mean",
                        Box::new(|r: &Vec<usize>| r.iter().fold(0.0, |a, &k| a + order(k).min(0.5)) / m as f64),
                    ),
                ] {
                    let mut p = base.to_vec();
                    p.extend([("mode", json!("mean")), ("statistic", json!(stat)), ("clip", json!(0.5))]);
                    let v = run(&host, &p, &s);
                    let want = all.iter().filter(|r| sum(r) <= q).map(&f).fold(f64::NEG_INFINITY, f64::max);
                    assert_eq!(v["Q"], json!(q), "mean Q n={n} m={m} alpha={alpha}");
                    let got = v["bound"].as_f64().unwrap();
                    // the DP composes in rank order, the brute force in multiset order: equal up to rounding
                    assert!((got - want).abs() <= 1e-12, "{stat} n={n} m={m} alpha={alpha}: {got} vs {want}");
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 7 * 4 * 4 * 3);
}

#[test]
fn split_conformal_at_m_1_and_exact_ties() {
    let host = testing::host();
    for n in [5usize, 19, 20, 99, 100, 250] {
        let s: Vec<f64> = (1..=n).map(|i| i as f64).collect();
        for alpha_pct in [1usize, 5, 10, 20, 50, 95] {
            let v = run(&host, &[("alpha", json!(alpha_pct as f64 / 100.0)), ("m", json!(1))], &s);
            // ⌈(n+1)(1−α)⌉ in integers
            let k = ((n + 1) * (100 - alpha_pct)).div_ceil(100).max(1);
            assert_eq!(v["k"], json!(k), "n={n} alpha={alpha_pct}%");
            assert_eq!(v["bound"], if k > n { json!("inf") } else { json!(k as f64) });
        }
    }
    // CDF(1) = 1/20 = 1 − 0.95 exactly: k = 1, not 2
    let s: Vec<f64> = (1..=19).map(f64::from).collect();
    assert_eq!(run(&host, &[("alpha", json!(0.95)), ("m", json!(1))], &s)["k"], json!(1));
    // n = m = 100, ζ = 1: P(R_(1) ≤ 1) = 1/2 = 1 − 0.5 exactly
    let s: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(run(&host, &[("alpha", json!(0.5)), ("m", json!(100)), ("zeta", json!(1))], &s)["k"], json!(1));
    // too little calibration data: an infinite bound is a result, not an error
    let v = run(&host, &[("alpha", json!(0.01)), ("m", json!(1))], &[1.0, 2.0]);
    assert_eq!(v["bound"], json!("inf"));
}

/// Monte Carlo coverage of every mode (fixed seed; bound 1 − α − 3 standard errors).
#[test]
fn coverage_monte_carlo() {
    let host = testing::host();
    let (n, m, trials, alpha) = (40usize, 6usize, 3000usize, 0.1);
    let se = (alpha * (1.0 - alpha) / trials as f64).sqrt();
    let cases: Vec<(&str, Vec<(&str, Value)>)> = vec![
        ("order-stat", vec![("mode", json!("order-stat")), ("zeta", json!(3))]),
        ("two-sided", vec![("mode", json!("two-sided")), ("zeta", json!(3)), ("lower_bound", json!(0.0))]),
        ("pac", vec![("mode", json!("pac")), ("delta", json!(0.34))]),
        ("mean", vec![("mode", json!("mean"))]),
        ("max", vec![("mode", json!("mean")), ("statistic", json!("max"))]),
        ("clipped-mean", vec![("mode", json!("mean")), ("statistic", json!("clipped-mean")), ("clip", json!(0.7))]),
    ];
    for (name, extra) in cases {
        let mut rng = ChaCha8Rng::seed_from_u64(99);
        let mut params = vec![("alpha", json!(alpha)), ("m", json!(m)), ("upper_bound", json!(1.0))];
        params.extend(extra);
        let mut h = host.create(METHOD, &testing::params(&params), testing::cpu()).unwrap();
        let mut covered = 0;
        for _ in 0..trials {
            let cal: Vec<f64> = (0..n).map(|_| rng.random()).collect();
            let mut t: Vec<f64> = (0..m).map(|_| rng.random()).collect();
            t.sort_by(f64::total_cmp);
            h.step("calibrate", &[Table::new("calibration").with_f64("score", cal)]).unwrap();
            let r = h.step("bound", &[]).unwrap();
            let ok = match name {
                "order-stat" => t[2] <= upper(&r),
                "two-sided" => lower(&r) <= t[2] && t[2] <= upper(&r),
                "pac" => t.iter().filter(|&&x| x <= upper(&r)).count() >= 4, // ⌈0.66·6⌉
                "mean" => t.iter().sum::<f64>() / m as f64 <= upper(&r),
                "max" => t[m - 1] <= upper(&r),
                _ => t.iter().map(|x| x.min(0.7)).sum::<f64>() / m as f64 <= upper(&r),
            };
            covered += ok as usize;
        }
        let cov = covered as f64 / trials as f64;
        println!("{name}: coverage {cov:.4} (target {:.2}, se {se:.4})", 1.0 - alpha);
        assert!(cov >= 1.0 - alpha - 3.0 * se, "{name}: coverage {cov}");
        // the rank-sum set holds a multiset with one rank above every calibration score, so the
        // max through it is the upper bound itself (documented; order-stat with ζ = m is sharp)
        if name != "max" {
            assert!(cov < 1.0, "{name}: coverage 1 means the bound is vacuous");
        }
    }
}

/// Selection: P(more than η false selections) ≤ α. Model x ~ N(0,1) via Box–Muller,
/// y = x + N(0,1), μ = x, c = 0.
#[test]
fn selection_error_control_monte_carlo() {
    let host = testing::host();
    let (n, m, eta, alpha, trials) = (200usize, 30usize, 2usize, 0.1, 3000usize);
    let params = testing::params(&[
        ("mode", json!("selection")),
        ("alpha", json!(alpha)),
        ("eta", json!(eta)),
        ("c", json!(0.0)),
    ]);
    let mut h = host.create(METHOD, &params, testing::cpu()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut normal = move || {
        let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    };
    let (mut failures, mut selected) = (0, 0);
    for _ in 0..trials {
        let xc: Vec<f64> = (0..n).map(|_| normal()).collect();
        let yc: Vec<f64> = xc.iter().map(|x| x + normal()).collect();
        let xt: Vec<f64> = (0..m).map(|_| normal()).collect();
        let yt: Vec<f64> = xt.iter().map(|x| x + normal()).collect();
        h.step("calibrate", &[Table::new("calibration").with_f64("mu", xc).with_f64("y", yc)]).unwrap();
        let r = h.step("bound", &[Table::new("test").with_f64("mu", xt)]).unwrap();
        let chosen = selected_units(&r);
        let false_sel = chosen.iter().filter(|&&j| yt[j] <= 0.0).count();
        failures += (false_sel > eta) as usize;
        selected += chosen.len();
    }
    let rate = failures as f64 / trials as f64;
    let se = (alpha * (1.0 - alpha) / trials as f64).sqrt();
    println!(
        "selection: P(false > eta) = {rate:.4} (alpha {alpha}); mean selected {:.1}",
        selected as f64 / trials as f64
    );
    assert!(rate <= alpha + 3.0 * se, "rate {rate}");
    assert!(selected as f64 / trials as f64 > 1.0, "selection is vacuous");
}

#[test]
fn bad_input_gives_clear_errors() {
    let host = testing::host();
    let cal = || Table::new("calibration").with_f64("score", vec![0.1, 0.2, 0.3]);
    let fails = |params: &[(&str, Value)], tables: Vec<Table>| -> quiver_host::HostError {
        let mut h = match host.create(METHOD, &testing::params(params), testing::cpu()) {
            Ok(h) => h,
            Err(e) => return e,
        };
        if let Err(e) = h.step("calibrate", &[cal()]) {
            return e;
        }
        h.step("bound", &tables).expect_err("must fail")
    };
    // (parameters, tables given to bound(), expected message)
    type Case<'a> = (Vec<(&'a str, Value)>, Vec<Table>, &'a str);
    let cases: Vec<Case> = vec![
        (vec![("m", json!(0))], vec![], "'m' = 0 must be an integer in [1, inf)"),
        (vec![], vec![], "parameter 'm' (the batch size) must be set"),
        (vec![("m", json!(3)), ("zeta", json!(4))], vec![], "'zeta' = 4 must be in 1..=m (m = 3)"),
        (vec![("m", json!(3)), ("zeta", json!(0))], vec![], "'zeta' = 0 must be an integer in [1, inf)"),
        (vec![("alpha", json!(1.0)), ("m", json!(3))], vec![], "'alpha' = 1.0 must be a number in (0, 1)"),
        (vec![("delta", json!(0.0)), ("m", json!(3))], vec![], "'delta' = 0.0 must be a number in (0, 1)"),
        (vec![("mode", json!("mean")), ("m", json!(3))], vec![], "mode 'mean' needs a finite 'upper_bound'"),
        (
            vec![
                ("mode", json!("mean")),
                ("m", json!(3)),
                ("statistic", json!("clipped-mean")),
                ("upper_bound", json!(1.0)),
            ],
            vec![],
            "needs the parameter 'clip'",
        ),
        (
            vec![("m", json!(3)), ("upper_bound", json!(0.25))],
            vec![],
            "column 'score', row 3: value 0.3 is outside [lower_bound, upper_bound]",
        ),
        (
            vec![("lower_bound", json!(2.0)), ("upper_bound", json!(1.0)), ("m", json!(2))],
            vec![],
            "must satisfy lower < upper",
        ),
        (
            vec![("mode", json!("selection")), ("eta", json!(1))],
            vec![Table::new("test").with_f64("mu", vec![1.0])],
            "has no column 'mu'",
        ),
    ];
    for (params, tables, needle) in cases {
        let e = fails(&params, tables);
        assert!(e.to_string().contains(needle), "{params:?}: wanted '{needle}', got: {e}");
    }
    // selection mode: eta must leave at least one
    let params = testing::params(&[("mode", json!("selection")), ("eta", json!(1))]);
    let mut h = host.create(METHOD, &params, testing::cpu()).unwrap();
    h.step("calibrate", &[Table::new("calibration").with_f64("mu", vec![0.5, 1.0]).with_f64("y", vec![0.0, 2.0])])
        .unwrap();
    let e = h.step("bound", &[Table::new("test").with_f64("mu", vec![1.0])]).unwrap_err();
    assert!(e.to_string().contains("'eta' = 1 must be < m = 1"), "{e}");
    // NaN in the scores
    let mut h = host.create(METHOD, &testing::params(&[("m", json!(2))]), testing::cpu()).unwrap();
    let e = h.step("calibrate", &[Table::new("calibration").with_f64("score", vec![0.1, f64::NAN])]).unwrap_err();
    assert!(e.to_string().contains("column 'score', row 2: value NaN is not finite"), "{e}");
    // bound before calibrate
    let mut h = host.create(METHOD, &testing::params(&[("m", json!(2))]), testing::cpu()).unwrap();
    assert_eq!(h.step("bound", &[]).unwrap_err().plugin_kind(), Some(ErrorKind::State));
}

quiver_testing::device_test!(
    /// Through the plugin on each device: the mean and max bounds equal the max-plus DP computed
    /// directly on the CPU, bit for bit (no fused multiply-adds in the kernel).
    mean_bounds_equal_the_cpu_dp_on_every_device,
    |device| {
        let host = testing::host();
        let (n, m) = (500usize, 40usize);
        let scores = sorted_scores(1, n);
        let alpha = quiver_numerics::exact::Level::from_f64(0.1).unwrap();
        let q = batch_pi::ranks::mean(n as u64, m as u64, &alpha) as usize;
        let mut vals = scores.clone();
        vals.push(1.0);
        for (statistic, op, scale) in
            [("mean", batch_pi::dp::Compose::Sum, m as f64), ("max", batch_pi::dp::Compose::Max, 1.0)]
        {
            let params = testing::params(&[
                ("mode", json!("mean")),
                ("m", json!(m)),
                ("alpha", json!(0.1)),
                ("upper_bound", json!(1.0)),
                ("statistic", json!(statistic)),
            ]);
            let mut h = host.create(METHOD, &params, testing::ctx(device)).unwrap();
            h.step("calibrate", &[Table::new("calibration").with_f64("score", scores.clone())]).unwrap();
            let r = h.step("bound", &[]).unwrap();
            assert_eq!(r.device(), Some(device));
            let want = batch_pi::dp::max_compose_cpu(&vals, m, q, op) / scale;
            assert_eq!(upper(&r).to_bits(), want.to_bits(), "{statistic}: {} vs {want}", upper(&r));
        }
    }
);

#[test]
fn kernel_compiles_to_ptx() {
    quiver_testing::assert_kernel_compiles("mean_dp_row", batch_pi::dp::MEAN_DP_KERNEL, "mean_dp_row");
}
