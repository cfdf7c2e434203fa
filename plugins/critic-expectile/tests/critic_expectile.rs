//! critic-expectile through the real plugin boundary, on a finite MDP whose behaviour never takes
//! some actions: at τ = 0.5 it is the empirical model's behaviour value; as τ → 1 its gap to the
//! model's best in-support value shrinks; the linear (IRLS) path with one-hot features given as
//! columns reproduces the exact tabular path.

use quiver_host::Table;
use quiver_testing as testing;
use quiver_testing::mdp::{Empirical, FiniteMdp, Policy};
use serde_json::{json, Value};

const METHOD: &str = "critic-expectile";
const S: usize = 6;
const A: usize = 3;

fn world() -> (FiniteMdp, Policy, Table) {
    let mdp = FiniteMdp::random(21, S, A, 0.9);
    let beta = mdp.random_policy(4, |s, a| !(s < 3 && a == 0));
    let data = mdp.sample(8, &beta, None, 300, 25);
    (mdp, beta, data)
}

fn fit(params: &[(&str, Value)], tables: &[Table]) -> Value {
    let host = testing::host();
    let mut h = host.create(METHOD, &testing::params(params), testing::cpu()).unwrap();
    h.step("fit", tables).unwrap();
    h.step("values", tables).unwrap().summary
}

fn state_values(v: &Value) -> Vec<(usize, f64)> {
    let vs = &v["v"];
    (0..vs["s"].as_array().unwrap().len())
        .map(|i| (vs["s"][i].as_u64().unwrap() as usize, vs["v"][i].as_f64().unwrap()))
        .collect()
}

#[test]
fn tau_one_half_is_the_behaviour_value_of_the_empirical_model() {
    let (_, _, data) = world();
    let v = fit(&[("tau", json!(0.5)), ("tol", json!(1e-14))], std::slice::from_ref(&data));
    assert_eq!(v["converged"], true);
    let emp = Empirical::of(&data, S, A);
    let want = emp.q(&emp.behaviour(), 0.9, &[0.0; S * A]);
    let q = &v["q"];
    for i in 0..q["q"].as_array().unwrap().len() {
        let (s, a) = (q["s"][i].as_u64().unwrap() as usize, q["a"][i].as_u64().unwrap() as usize);
        let w = want[s * A + a].unwrap();
        assert!((q["q"][i].as_f64().unwrap() - w).abs() < 1e-9 * w.abs().max(1.0), "({s}, {a})");
    }
}

/// The best in-support value of the empirical model: V(s) = max over actions with data.
fn in_support_optimum(emp: &Empirical, gamma: f64) -> Vec<f64> {
    let mut v = vec![0.0; S];
    for _ in 0..2000 {
        v = (0..S)
            .map(|s| {
                (0..A)
                    .filter(|&a| emp.count[s * A + a] > 0.0)
                    .map(|a| {
                        let k = s * A + a;
                        emp.r[k] + gamma * (0..S).map(|s2| emp.p[k * S + s2] * v[s2]).sum::<f64>()
                    })
                    .fold(f64::NEG_INFINITY, f64::max)
            })
            .collect();
    }
    v
}

#[test]
fn gap_to_the_in_support_optimum_shrinks_as_tau_goes_to_one() {
    let (_, _, data) = world();
    let best = in_support_optimum(&Empirical::of(&data, S, A), 0.9);
    let gaps: Vec<f64> = [0.5, 0.7, 0.9, 0.99, 0.999]
        .iter()
        .map(|&tau| {
            let v = fit(&[("tau", json!(tau)), ("tol", json!(1e-13))], std::slice::from_ref(&data));
            state_values(&v).iter().map(|&(s, x)| best[s] - x).fold(f64::NEG_INFINITY, f64::max)
        })
        .collect();
    println!("max gap to the in-support optimum at tau = 0.5, 0.7, 0.9, 0.99, 0.999: {gaps:?}");
    for w in gaps.windows(2) {
        assert!(w[1] < w[0], "the gap must shrink: {gaps:?}");
    }
    assert!(gaps.iter().all(|&g| g > -1e-9), "V never exceeds the in-support optimum: {gaps:?}");
    assert!(gaps[4] < 0.02 * best.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1.0), "{gaps:?}");
}

#[test]
fn linear_path_with_one_hot_columns_equals_the_tabular_path() {
    let (_, _, data) = world();
    // phi = one-hot (s, a), psi = one-hot s, psi_next = one-hot s' (zero where done)
    let col = |name: &str| match data.column(name) {
        Some(quiver_host::Values::I64(v)) => v.clone(),
        _ => panic!("{name}"),
    };
    let (s, a, s2) = (col("s"), col("a"), col("s_next"));
    let done = match data.column("done") {
        Some(quiver_host::Values::Bool(v)) => v.clone(),
        _ => panic!("done"),
    };
    let mut pairs: Vec<(i64, i64)> = s.iter().copied().zip(a.iter().copied()).collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut given = data.clone();
    for (k, &(ps, pa)) in pairs.iter().enumerate() {
        given = given.with_f64(
            &format!("phi_{k}"),
            s.iter().zip(&a).map(|(&x, &y)| ((x, y) == (ps, pa)) as u8 as f64).collect(),
        );
    }
    for st in 0..S as i64 {
        given = given.with_f64(&format!("psi_{st}"), s.iter().map(|&x| (x == st) as u8 as f64).collect());
        given = given.with_f64(
            &format!("psi_next_{st}"),
            s2.iter().zip(&done).map(|(&x, &d)| (x == st && !d) as u8 as f64).collect(),
        );
    }
    for tau in [0.5, 0.8] {
        let tab = fit(&[("tau", json!(tau)), ("tol", json!(1e-13))], std::slice::from_ref(&data));
        let lin = fit(
            &[("tau", json!(tau)), ("tol", json!(1e-13)), ("features", json!("given"))],
            std::slice::from_ref(&given),
        );
        let w: Vec<f64> = lin["w"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        for (st, v) in state_values(&tab) {
            assert!((w[st] - v).abs() < 1e-8 * v.abs().max(1.0), "tau {tau}, state {st}: {} vs {v}", w[st]);
        }
        assert!((lin["j"].as_f64().unwrap() - tab["j"].as_f64().unwrap()).abs() < 1e-8);
    }
}
