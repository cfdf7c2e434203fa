//! critic-cql through the real plugin boundary: at α = 0 the empirical model's Q^π; its values
//! sit below the unpenalised ones at every state; Q moves linearly in α; a target that takes an
//! action the data never took is refused.

use quiver_host::Table;
use quiver_testing as testing;
use quiver_testing::mdp::{Empirical, FiniteMdp, Policy};
use serde_json::{json, Value};

const METHOD: &str = "critic-cql";
const S: usize = 5;
const A: usize = 3;

fn world() -> (FiniteMdp, Policy, Policy, Table) {
    let mdp = FiniteMdp::random(31, S, A, 0.9);
    let support = |s: usize, a: usize| !(s == 1 && a == 2);
    let beta = mdp.random_policy(5, support);
    let pi = mdp.random_policy(6, support);
    let data = mdp.sample(2, &beta, Some(&pi), 200, 25);
    (mdp, beta, pi, data)
}

fn fit(alpha: f64, tables: &[Table]) -> Result<Value, quiver_host::HostError> {
    let host = testing::host();
    let mut h = host.create(METHOD, &testing::params(&[("alpha", json!(alpha))]), testing::cpu())?;
    h.step("fit", tables)?;
    Ok(h.step("values", tables)?.summary)
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn alpha_zero_is_the_empirical_models_q() {
    let (mdp, _, pi, data) = world();
    let v = fit(0.0, &[data.clone(), mdp.policy_table(&pi)]).unwrap();
    let want = Empirical::of(&data, S, A).q(&pi, 0.9, &[0.0; S * A]);
    let q = &v["q"];
    for (i, got) in nums(&q["q"]).iter().enumerate() {
        let (s, a) = (q["s"][i].as_u64().unwrap() as usize, q["a"][i].as_u64().unwrap() as usize);
        let w = want[s * A + a].unwrap();
        assert!((got - w).abs() < 1e-9 * w.abs().max(1.0));
    }
    assert_eq!(nums(&v["q"]["q"]), nums(&v["q_unpenalized"]["q"]));
}

#[test]
fn values_sit_below_the_unpenalised_ones_and_move_linearly_in_alpha() {
    let (mdp, _, pi, data) = world();
    let tables = [data, mdp.policy_table(&pi)];
    let q = |alpha: f64| nums(&fit(alpha, &tables).unwrap()["q"]["q"]);
    let (q0, q1, q2) = (q(0.0), q(0.5), q(1.0));
    for k in 0..q0.len() {
        assert!(((q2[k] - q0[k]) - 2.0 * (q1[k] - q0[k])).abs() < 1e-9 * q0[k].abs().max(1.0), "pair {k}");
    }
    for alpha in [0.5, 2.0] {
        let v = fit(alpha, &tables).unwrap();
        let gap = nums(&v["gap"]["v"]);
        assert!(gap.iter().all(|&g| g <= 1e-12), "alpha {alpha}: gaps {gap:?}");
        assert!(gap.iter().any(|&g| g < -1e-6), "the penalty bites where pi differs from the data");
        assert!(v["j"].as_f64().unwrap() <= v["j_unpenalized"].as_f64().unwrap() + 1e-12);
    }
}

#[test]
fn a_target_off_the_datas_support_is_refused() {
    let (mdp, _, _, data) = world();
    let wild = mdp.random_policy(7, |_, _| true);
    let e = testing::expect_error(fit(1.0, &[data, mdp.policy_table(&wild)]), "which the data never took there");
    assert!(e.to_string().contains("action 2 at state 1"), "{e}");
}
