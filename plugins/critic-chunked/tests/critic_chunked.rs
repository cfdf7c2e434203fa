//! critic-chunked through the real plugin boundary: with h = 1 it is the expectile critic; with
//! κ_d = κ_b = 0.5 its V solves the data's h-step behaviour equations (an independent linear
//! solve); raising κ_b raises V; per-row targets come typed; bad parameters are refused.

use quiver_host::Table;
use quiver_testing as testing;
use quiver_testing::mdp::{solve, FiniteMdp};
use serde_json::{json, Value};

const S: usize = 5;

fn data() -> Table {
    let mdp = FiniteMdp::random(13, S, 3, 0.9);
    let beta = mdp.random_policy(2, |s, a| !(s == 0 && a == 2));
    mdp.sample(4, &beta, None, 150, 20)
}

fn fit(method: &str, params: &[(&str, Value)], t: &Table) -> Result<(Value, Vec<f64>), quiver_host::HostError> {
    let host = testing::host();
    let mut h = host.create(method, &testing::params(params), testing::cpu())?;
    h.step("fit", std::slice::from_ref(t))?;
    let r = h.step("values", std::slice::from_ref(t))?;
    Ok((r.summary.clone(), r.f64s("values").unwrap().to_vec()))
}

fn v_of(v: &Value) -> Vec<f64> {
    let mut out = vec![f64::NAN; S];
    for (i, s) in v["v"]["s"].as_array().unwrap().iter().enumerate() {
        out[s.as_u64().unwrap() as usize] = v["v"]["v"][i].as_f64().unwrap();
    }
    out
}

#[test]
fn one_step_chunks_are_the_expectile_critic() {
    let t = data();
    for kappa in [0.5, 0.8] {
        let (chunked, _) =
            fit("critic-chunked", &[("h", json!(1)), ("kappa_b", json!(kappa)), ("tol", json!(1e-13))], &t).unwrap();
        let (iql, _) = fit("critic-expectile", &[("tau", json!(kappa)), ("tol", json!(1e-13))], &t).unwrap();
        for (a, b) in v_of(&chunked).iter().zip(v_of(&iql)) {
            assert!((a - b).abs() < 1e-9 * b.abs().max(1.0), "kappa {kappa}: {a} vs {b}");
        }
    }
}

#[test]
fn behaviour_value_of_h_step_returns_by_an_independent_solve() {
    let t = data();
    let col = |n: &str| match t.column(n) {
        Some(quiver_host::Values::I64(v)) => v.clone(),
        _ => panic!("{n}"),
    };
    let (ep, s, s2) = (col("episode"), col("s"), col("s_next"));
    let r = match t.column("r") {
        Some(quiver_host::Values::F64(v)) => v.clone(),
        _ => panic!("r"),
    };
    let done = match t.column("done") {
        Some(quiver_host::Values::Bool(v)) => v.clone(),
        _ => panic!("done"),
    };
    let (h, gamma) = (3usize, 0.9);
    let n = r.len();
    // V(s) = (1/n_s) Σ_{rows t at s} [G_t + γ^{h'} (1 − d) V(s_{t+h'})]  ⇔  (I − M) V = g
    let (mut m, mut g, mut count) = (vec![0.0; S * S], vec![0.0; S], vec![0.0; S]);
    for i in 0..n {
        let mut steps = 0;
        while steps < h && i + steps < n && ep[i + steps] == ep[i] {
            steps += 1;
        }
        let st = s[i] as usize;
        let mut f = 1.0;
        for rj in &r[i..i + steps] {
            g[st] += f * rj;
            f *= gamma;
        }
        let last = i + steps - 1;
        if !done[last] {
            m[st * S + s2[last] as usize] += f;
        }
        count[st] += 1.0;
    }
    let mut a = vec![0.0; S * S];
    for i in 0..S {
        for j in 0..S {
            a[i * S + j] = (i == j) as u8 as f64 - m[i * S + j] / count[i];
        }
        g[i] /= count[i];
    }
    let want = solve(a, g);
    for h_a in [1, 2, 3] {
        let params = [("h", json!(h)), ("h_a", json!(h_a)), ("gamma", json!(gamma)), ("tol", json!(1e-13))];
        let (v, targets) = fit("critic-chunked", &params, &t).unwrap();
        assert_eq!(targets.len(), n);
        for (x, w) in v_of(&v).iter().zip(&want) {
            assert!((x - w).abs() < 1e-9 * w.abs().max(1.0), "h_a {h_a}: {x} vs {w}");
        }
    }
}

#[test]
fn a_higher_behaviour_expectile_raises_v() {
    let t = data();
    let at = |kb: f64| {
        v_of(
            &fit(
                "critic-chunked",
                &[("h", json!(3)), ("h_a", json!(2)), ("kappa_d", json!(0.7)), ("kappa_b", json!(kb))],
                &t,
            )
            .unwrap()
            .0,
        )
    };
    let (lo, hi) = (at(0.5), at(0.9));
    assert!(lo.iter().zip(&hi).all(|(a, b)| b >= a), "{lo:?} vs {hi:?}");
    assert!(lo.iter().zip(&hi).any(|(a, b)| b - a > 1e-3));
}

#[test]
fn bad_parameters_are_refused() {
    let t = data();
    testing::expect_error(
        fit("critic-chunked", &[("h", json!(2)), ("h_a", json!(3))], &t),
        "'h_a' = 3 must be at most 'h' = 2",
    );
    testing::expect_error(
        fit("critic-chunked", &[("kappa_d", json!(1.0))], &t),
        "parameter 'kappa_d' = 1.0 must be a number in (0, 1)",
    );
}

quiver_testing::device_test!(
    /// The h-step reward sums computed on each device (a segmented scan per episode) give the
    /// CPU's targets and values (the CUDA half runs where a GPU is present).
    targets_equal_the_cpu_path_on_every_device,
    |device| {
        let t = data();
        let host = testing::host();
        let params = testing::params(&[("h", json!(3)), ("h_a", json!(2)), ("kappa_b", json!(0.7))]);
        let fit_on = |ctx| {
            let mut h = host.create("critic-chunked", &params, ctx).unwrap();
            h.step("fit", std::slice::from_ref(&t)).unwrap();
            let r = h.step("values", std::slice::from_ref(&t)).unwrap();
            (r.summary.clone(), r.f64s("values").unwrap().to_vec())
        };
        let ((cpu, cpu_targets), (other, targets)) = (fit_on(testing::cpu()), fit_on(testing::ctx(device)));
        assert_eq!(cpu_targets.len(), targets.len());
        for (a, b) in cpu_targets.iter().zip(&targets).chain(v_of(&cpu).iter().zip(&v_of(&other))) {
            assert!((a - b).abs() <= 1e-12 * a.abs().max(1.0), "cpu {a} vs {b}");
        }
    }
);

#[test]
fn targets_equal_a_direct_computation_on_uneven_episodes() {
    // episodes of lengths 1, 2 and 5, one ending (done) and one truncated: h = 3 windows stop at
    // each episode's end
    let t = Table::new("transitions")
        .with_i64("episode", vec![0, 1, 1, 2, 2, 2, 2, 2])
        .with_i64("t", vec![0, 0, 1, 0, 1, 2, 3, 4])
        .with_i64("s", vec![0, 1, 0, 2, 1, 0, 1, 2])
        .with_i64("a", vec![0, 1, 0, 1, 1, 0, 0, 1])
        .with_f64("r", vec![1.0, 2.0, -1.0, 0.5, 0.25, 3.0, -2.0, 4.0])
        .with_i64("s_next", vec![1, 0, 2, 1, 0, 1, 2, 0])
        .with_bool("done", vec![false, false, true, false, false, false, false, false]);
    let gamma: f64 = 0.8;
    let (v, targets) = fit("critic-chunked", &[("h", json!(3)), ("gamma", json!(gamma))], &t).unwrap();
    let vs = v_of(&v);
    let r = [1.0, 2.0, -1.0, 0.5, 0.25, 3.0, -2.0, 4.0];
    let (ends, done, s_next) =
        ([1, 3, 3, 8, 8, 8, 8, 8], [false, false, true, false, false, false, false, false], [1, 0, 2, 1, 0, 1, 2, 0]);
    for i in 0..8 {
        let stop = ends[i].min(i + 3);
        let g: f64 = (i..stop).map(|k| gamma.powi((k - i) as i32) * r[k]).sum();
        let boot = if done[stop - 1] { 0.0 } else { gamma.powi((stop - i) as i32) * vs[s_next[stop - 1]] };
        assert!((targets[i] - (g + boot)).abs() < 1e-12, "row {i}: {} vs {}", targets[i], g + boot);
    }
}

/// The data with continuous states: s_0 = the state id plus a small per-row jitter.
fn continuous(t: &Table) -> Table {
    let ints = |name: &str| match t.column(name) {
        Some(quiver_host::Values::I64(v)) => v.clone(),
        _ => panic!("column {name}"),
    };
    let (s, s_next) = (ints("s"), ints("s_next"));
    let mut c = t.clone();
    c.columns.retain(|(n, _)| n != "s" && n != "s_next" && n != "a_next");
    c.with_f64("s_0", s.iter().enumerate().map(|(i, &x)| x as f64 + 0.6 * ((i * 7919 % 13) as f64 / 13.0)).collect())
        .with_f64("s_next_0", s_next.iter().map(|&x| x as f64).collect())
}

#[test]
fn rff_one_step_chunks_are_the_linear_expectile_critic() {
    let t = continuous(&data());
    let features = [("features", json!("rff")), ("dim", json!(4)), ("bandwidth", json!(2.0)), ("ridge", json!(1e-9))];
    for kappa in [0.5, 0.8] {
        let with = |extra: &[(&'static str, Value)]| -> Vec<(&'static str, Value)> {
            features.iter().cloned().chain(extra.iter().cloned()).collect()
        };
        let (chunked, _) = fit(
            "critic-chunked",
            &with(&[("h", json!(1)), ("kappa_b", json!(kappa)), ("kappa_d", json!(0.3)), ("tol", json!(1e-10))]),
            &t,
        )
        .unwrap();
        let (iql, _) = fit("critic-expectile", &with(&[("tau", json!(kappa)), ("tol", json!(1e-10))]), &t).unwrap();
        assert_eq!(chunked["converged"], json!(true), "{chunked}");
        let (a, b) = (chunked["j"].as_f64().unwrap(), iql["j"].as_f64().unwrap());
        // Q_d refits Q_h on the same features: exact but for the ridge, negligible with 4 well-
        // conditioned features (with many near-collinear ones the ridge alone would set the gap)
        assert!((a - b).abs() < 1e-6 * b.abs().max(1.0), "kappa {kappa}: J {a} vs the expectile critic's {b}");
    }
    // longer chunks with kappa = 0.5 and a higher kappa_b raises the value
    let (low, targets) = fit("critic-chunked", &[features.to_vec(), vec![("h", json!(3))]].concat(), &t).unwrap();
    let (high, _) =
        fit("critic-chunked", &[features.to_vec(), vec![("h", json!(3)), ("kappa_b", json!(0.9))]].concat(), &t)
            .unwrap();
    assert_eq!(targets.len(), t.nrows);
    assert!(high["j"].as_f64().unwrap() > low["j"].as_f64().unwrap());
}

#[test]
fn oversized_linear_requests_are_refused_before_they_run() {
    // long chunks of three actions: nearly every row its own chunk, each with 2 x 1024^2 values
    let t = continuous(&data());
    testing::expect_error(
        fit("critic-chunked", &[("features", json!("rff")), ("dim", json!(1024)), ("h", json!(12))], &t),
        "lower h or dim",
    );
    testing::expect_error(
        fit("critic-chunked", &[("features", json!("given"))], &t),
        "features=given is not available",
    );
}
