//! `critic-net-dqc` through the real plugin boundary: on a finite MDP whose states reach the
//! networks one-hot, V converges to the exact fixed point `critic-chunked` computes on the same
//! data (tabular), at κ_d = κ_b = 0.5 (the behaviour's value of h-step returns) and at higher
//! expectiles; checkpoints; settings; the example conforms.

use quiver_host::Table;
use quiver_testing as testing;
use quiver_testing::embed::{one_hot_case, state_queries};
use serde_json::{json, Value};
use std::path::Path;

const METHOD: &str = "critic-net-dqc";

fn run(tables: &[Table], params: &[(&str, Value)]) -> Result<Value, quiver_host::HostError> {
    run_on(testing::Device::Cpu, tables, params)
}

fn run_on(
    device: testing::Device,
    tables: &[Table],
    params: &[(&str, Value)],
) -> Result<Value, quiver_host::HostError> {
    testing::host().run(METHOD, &testing::params(params), tables, testing::ctx(device))
}

fn values(v: &Value) -> Vec<f64> {
    v["values"].as_array().expect("values").iter().map(|x| x.as_f64().unwrap()).collect()
}

quiver_testing::device_test!(
    /// h = 2, h_a = 1: V per state within 2 % of max|V| of `critic-chunked`'s exact tabular fixed point,
    /// at (κ_d, κ_b) = (0.5, 0.5) and (0.7, 0.9) (measured 0.6 % and 1.2 %); the higher
    /// expectiles give a higher V at every state.
    it_reaches_the_exact_fixed_point_of_the_chunked_critic,
    |device| {
        let c = one_hot_case();
        let mut previous: Option<Vec<f64>> = None;
        for (kd, kb) in [(0.5, 0.5), (0.7, 0.9)] {
            let chunk = [("h", json!(2)), ("h_a", json!(1)), ("kappa_d", json!(kd)), ("kappa_b", json!(kb))];
            let mut tabular = chunk.to_vec();
            tabular.push(("tol", json!(1e-12)));
            let exact = testing::host()
                .run("critic-chunked", &testing::params(&tabular), std::slice::from_ref(&c.log), testing::cpu())
                .unwrap();
            let want: Vec<f64> = (0..5)
                .map(|s| {
                    let k = (0..5).find(|&i| exact["v"]["s"][i] == json!(s)).expect("the state");
                    exact["v"]["v"][k].as_f64().unwrap()
                })
                .collect();
            let mut params = chunk.to_vec();
            params.extend([
                ("hidden", json!(64)),
                ("steps", json!(3000)),
                ("batch", json!(1024)),
                ("lr", json!(1e-3)),
                ("polyak", json!(0.02)),
            ]);
            let data = quiver_testing::embed::one_hot(&c.log, 5, None);
            let fitted = run_on(device, &[data, state_queries(5)], &params).unwrap();
            assert_eq!(fitted["device"], json!(device.name()), "the result names the device it trained on");
            let v = values(&fitted);
            let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            let gap = v.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(gap <= 0.02 * scale, "kappa ({kd}, {kb}): largest error {gap} of {scale}: {v:?} vs {want:?}");
            if let Some(lower) = &previous {
                assert!(v.iter().zip(lower).all(|(hi, lo)| hi > lo), "{v:?} not above {lower:?}");
            }
            previous = Some(v);
        }
    }
);

#[test]
fn checkpoints_and_settings() {
    let c = one_hot_case();
    let data = quiver_testing::embed::one_hot(&c.log, 5, None);
    let dir = tempfile::tempdir().unwrap();
    let p = json!(dir.path().join("dqc.safetensors").to_str().unwrap());
    let base = [("hidden", json!(32)), ("h", json!(3)), ("h_a", json!(2))];
    let with = |extra: &[(&'static str, Value)]| -> Vec<(&'static str, Value)> {
        base.iter().cloned().chain(extra.iter().cloned()).collect()
    };
    let saved = run(&[data.clone(), state_queries(5)], &with(&[("steps", json!(100)), ("save", p.clone())])).unwrap();
    let again = run(&[data.clone(), state_queries(5)], &with(&[("steps", json!(0)), ("init", p.clone())])).unwrap();
    assert_eq!(saved["values"], again["values"]);
    // a checkpoint of other chunk lengths is refused; h_a above h is refused
    let e =
        run(std::slice::from_ref(&data), &[("hidden", json!(32)), ("h", json!(4)), ("steps", json!(0)), ("init", p)])
            .unwrap_err();
    assert!(e.to_string().contains("dqc.safetensors"), "{e}");
    let e = run(std::slice::from_ref(&data), &[("h", json!(2)), ("h_a", json!(3))]).unwrap_err();
    assert!(e.to_string().contains("h_a"), "{e}");
    // queries of Q are not answered: V only
    let e =
        run(&[data, quiver_testing::embed::pair_queries(&[(0, 1)], 5)], &with(&[("steps", json!(10))])).unwrap_err();
    assert!(e.to_string().contains("V(s)"), "{e}");
}

#[test]
fn conforms() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/critic-net-dqc");
    testing::conformance::check_method_with(&testing::own_plugin("critic_net_dqc"), METHOD, &example);
}
