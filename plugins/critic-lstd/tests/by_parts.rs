//! `critic-lstd` computed by parts through the real plugin boundary (docs/scale.md): transitions
//! cut at random episode boundaries into 1, 2, 7 and 64 partitions (uneven, some empty) give the
//! one-table result — θ, its residual or iterations, J — for every target with `rff` and `given`
//! features. The moments are sums (equal to rounding); θ comes from a linear solve, so it agrees
//! to the solve's conditioning times that rounding: 1e-9 relative here.

use quiver_host::Table;
use quiver_testing as testing;
use rand::Rng;
use serde_json::{json, Value};

/// Continuous transitions: episodes of 3–12 steps, a 2-d state, 2 actions, π columns, and three
/// given features per (s, a).
fn transitions(seed: u64, episodes: usize) -> (Table, Vec<usize>) {
    let mut rng = testing::rng(seed);
    let mut cols: Vec<(String, Vec<f64>)> = [
        "s_0",
        "s_1",
        "s_next_0",
        "s_next_1",
        "r",
        "pi_0",
        "pi_1",
        "pi_next_0",
        "pi_next_1",
        "phi_0",
        "phi_1",
        "phi_2",
        "phi_next_0",
        "phi_next_1",
        "phi_next_2",
    ]
    .iter()
    .map(|c| (c.to_string(), Vec::new()))
    .collect();
    let (mut ep, mut t, mut a, mut a_next, mut done, mut starts) = (vec![], vec![], vec![], vec![], vec![], vec![]);
    for e in 0..episodes {
        let len = rng.random_range(3..=12);
        starts.push(ep.len());
        let mut s = [rng.random::<f64>() * 2.0 - 1.0, rng.random::<f64>() * 2.0 - 1.0];
        let mut act = rng.random_range(0..2i64);
        for k in 0..len {
            let next = [0.8 * s[0] + 0.3 * s[1] + 0.1 * rng.random::<f64>(), -0.3 * s[0] + 0.7 * s[1]];
            let next_act = rng.random_range(0..2i64);
            let p = 0.5 + 0.4 * s[0].tanh();
            let pn = 0.5 + 0.4 * next[0].tanh();
            let row = [
                s[0],
                s[1],
                next[0],
                next[1],
                s[0] - 0.5 * act as f64 + 0.1 * rng.random::<f64>(),
                p,
                1.0 - p,
                pn,
                1.0 - pn,
                s[0],
                s[1] * act as f64,
                1.0,
                next[0],
                next[1] * next_act as f64,
                1.0,
            ];
            for (c, v) in cols.iter_mut().zip(row) {
                c.1.push(v);
            }
            ep.push(e as i64);
            t.push(k as i64);
            a.push(act);
            a_next.push(next_act);
            done.push(k + 1 == len);
            (s, act) = (next, next_act);
        }
    }
    let mut table = Table::new("transitions")
        .with_i64("episode", ep)
        .with_i64("t", t)
        .with_i64("a", a)
        .with_i64("a_next", a_next)
        .with_bool("done", done);
    for (name, v) in cols {
        table = table.with_f64(&name, v);
    }
    (table, starts)
}

#[test]
fn lstd_by_parts_equals_the_one_table_result() {
    let host = testing::host();
    let (table, starts) = transitions(3, 60);
    let n = table.nrows;
    let mut rng = testing::rng(17);
    let settings: [&[(&str, Value)]; 4] = [
        &[("features", json!("rff")), ("dim", json!(16)), ("target", json!("lstdq")), ("ridge", json!(1e-3))],
        &[("features", json!("rff")), ("dim", json!(16)), ("target", json!("fqe")), ("ridge", json!(1e-2))],
        &[("features", json!("rff")), ("dim", json!(8)), ("target", json!("sarsa")), ("ridge", json!(1e-3))],
        &[("features", json!("given")), ("target", json!("sarsa")), ("ridge", json!(1e-6))],
    ];
    for p in settings {
        let params = testing::params(p);
        let one = host.run("critic-lstd", &params, std::slice::from_ref(&table), testing::cpu()).unwrap();
        assert!(one["j"].is_number(), "{p:?}: J is estimable here: {one}");
        for parts in [1, 2, 7, 64] {
            let ranges = testing::parts::random_partitions(&mut rng, n, &starts, parts);
            let partitions = ranges.iter().map(|r| Ok(vec![table.rows(r.clone())]));
            let by_parts = host
                .run_partitioned("critic-lstd", &params, Vec::new(), partitions, testing::cpu(), None)
                .unwrap()
                .into_json();
            // the residual and FQE's last change are rounding-sized relative numbers: compared
            // as such, the rest number by number
            let (mut a, mut b) = (one.clone(), by_parts.clone());
            for key in ["residual", "change"] {
                let (x, y) = (a[key].take(), b[key].take());
                if let (Some(x), Some(y)) = (x.as_f64(), y.as_f64()) {
                    assert!((x - y).abs() <= 1e-9, "{p:?}, {parts} partitions: {key} {x} vs {y}");
                }
            }
            testing::parts::assert_json_close(&a, &b, 1e-9, &format!("{p:?}, {parts} partitions"));
        }
    }
    // one-hot features index the data's own pairs: refused by parts, with the reason
    let e = host
        .run_partitioned(
            "critic-lstd",
            &testing::params(&[("features", json!("onehot"))]),
            Vec::new(),
            [Ok(vec![table.rows(0..10)])],
            testing::cpu(),
            None,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("features=onehot is not computed by parts"), "{e}");
    // partitions cut inside an episode: refused when merged, naming the episode
    let est = host.create("critic-lstd", &testing::params(&[("features", json!("rff"))]), testing::cpu()).unwrap();
    let cut = starts[2] + 1;
    let (a, b) = (est.partial(&[table.rows(0..cut)], &[]).unwrap(), est.partial(&[table.rows(cut..n)], &[]).unwrap());
    let e = est.merge(&a, &b).unwrap_err().to_string();
    assert!(e.contains("is cut between two partitions"), "{e}");
}
