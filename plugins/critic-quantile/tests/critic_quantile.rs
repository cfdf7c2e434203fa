//! critic-quantile through the real plugin boundary: deterministic returns give quantiles equal to
//! the exact Q^π; with γ = 0 the quantiles are the rewards' own quantiles (κ = 0) or the minimisers
//! of the quantile-Huber loss (κ > 0, checked against a brute-force grid); quantiles rise with their
//! level, and their mean tracks the empirical model's Q^π as N grows.

use quiver_host::Table;
use quiver_testing as testing;
use quiver_testing::mdp::{Empirical, FiniteMdp};
use serde_json::{json, Value};

const METHOD: &str = "critic-quantile";

fn fit(params: &[(&str, Value)], tables: &[Table]) -> Result<Value, quiver_host::HostError> {
    let host = testing::host();
    let mut h = host.critic(METHOD, &testing::params(params), testing::cpu())?;
    h.fit(tables)?;
    Ok(serde_json::from_str(h.values(tables)?.json.as_str()).unwrap())
}

/// (s, a, quantiles) of a result.
fn quantiles(v: &Value) -> Vec<(usize, usize, Vec<f64>)> {
    let q = &v["quantiles"];
    (0..q["s"].as_array().unwrap().len())
        .map(|i| {
            let qs = q["q"][i].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            (q["s"][i].as_u64().unwrap() as usize, q["a"][i].as_u64().unwrap() as usize, qs)
        })
        .collect()
}

#[test]
fn deterministic_returns_give_the_exact_q_at_every_level() {
    // a ring: action a moves from s to s + a + 1 (mod 4), reward s - a, no noise, no end
    let (s_n, a_n) = (4, 2);
    let mut p = vec![0.0; s_n * a_n * s_n];
    for s in 0..s_n {
        for a in 0..a_n {
            p[(s * a_n + a) * s_n + (s + a + 1) % s_n] = 1.0;
        }
    }
    let mdp = FiniteMdp {
        n_states: s_n,
        n_actions: a_n,
        p,
        r: (0..s_n * a_n).map(|k| (k / a_n) as f64 - (k % a_n) as f64).collect(),
        noise: 0.0,
        term: vec![0.0; s_n * a_n],
        gamma: 0.8,
    };
    let beta = mdp.random_policy(1, |_, _| true);
    let pi: Vec<f64> = (0..s_n * a_n).map(|k| if k % a_n == (k / a_n) % 2 { 1.0 } else { 0.0 }).collect();
    let data = mdp.sample(3, &beta, None, 50, 20);
    let params = [("gamma", json!(0.8)), ("n_quantiles", json!(5)), ("tol", json!(1e-14))];
    let v = fit(&params, &[data, mdp.policy_table(&pi)]).unwrap();
    let exact = mdp.q(&pi);
    for (s, a, qs) in quantiles(&v) {
        for q in qs {
            assert!((q - exact[s * a_n + a]).abs() < 1e-9, "({s}, {a}): {q} vs {}", exact[s * a_n + a]);
        }
    }
}

fn rewards_by_pair(t: &Table) -> std::collections::HashMap<(i64, i64), Vec<f64>> {
    let col = |n: &str| match t.column(n) {
        Some(quiver_host::Values::I64(v)) => v.clone(),
        _ => panic!("{n}"),
    };
    let r = match t.column("r") {
        Some(quiver_host::Values::F64(v)) => v.clone(),
        _ => panic!("r"),
    };
    let mut out = std::collections::HashMap::<(i64, i64), Vec<f64>>::new();
    for ((s, a), r) in col("s").into_iter().zip(col("a")).zip(r) {
        out.entry((s, a)).or_default().push(r);
    }
    out
}

#[test]
fn one_step_quantiles_are_the_rewards_own() {
    let mdp = FiniteMdp::random(5, 3, 2, 0.0);
    let beta = mdp.random_policy(1, |_, _| true);
    let data = mdp.sample(4, &beta, None, 40, 10);
    let pol = mdp.policy_table(&beta);
    let by_pair = rewards_by_pair(&data);
    let n = 8;
    let levels: Vec<f64> = (1..=n).map(|j| (2 * j - 1) as f64 / (2 * n) as f64).collect();
    // kappa = 0: the smallest reward whose empirical CDF reaches the level
    let v = fit(&[("gamma", json!(0.0)), ("n_quantiles", json!(n))], &[data.clone(), pol.clone()]).unwrap();
    for (s, a, qs) in quantiles(&v) {
        let mut r = by_pair[&(s as i64, a as i64)].clone();
        r.sort_by(f64::total_cmp);
        for (q, t) in qs.iter().zip(&levels) {
            let want = r[((t * r.len() as f64).ceil() as usize).max(1) - 1];
            assert_eq!(*q, want, "({s}, {a}) at level {t}");
        }
        assert!(qs.windows(2).all(|w| w[0] <= w[1]));
    }
    // kappa > 0: the quantile-Huber minimiser, against a brute-force grid of the loss
    let kappa = 0.3;
    let v = fit(&[("gamma", json!(0.0)), ("n_quantiles", json!(n)), ("kappa", json!(kappa))], &[data, pol]).unwrap();
    let loss = |r: &[f64], t: f64, q: f64| -> f64 {
        r.iter()
            .map(|&z| {
                let u = z - q;
                let h = if u.abs() <= kappa { 0.5 * u * u } else { kappa * (u.abs() - 0.5 * kappa) };
                (t - if u < 0.0 { 1.0 } else { 0.0 }).abs() * h / kappa
            })
            .sum()
    };
    for (s, a, qs) in quantiles(&v) {
        let r = &by_pair[&(s as i64, a as i64)];
        let (lo, hi) =
            (r.iter().cloned().fold(f64::INFINITY, f64::min), r.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
        for (q, &t) in qs.iter().zip(&levels) {
            let best = (0..=20_000)
                .map(|i| lo + (hi - lo) * i as f64 / 20_000.0)
                .map(|x| loss(r, t, x))
                .fold(f64::INFINITY, f64::min);
            assert!(loss(r, t, *q) <= best + 1e-9, "({s}, {a}) at level {t}: {q}");
        }
    }
}

#[test]
fn quantiles_rise_and_their_mean_tracks_the_models_q() {
    let mdp = FiniteMdp::random(7, 4, 2, 0.9);
    let beta = mdp.random_policy(1, |_, _| true);
    let pi = mdp.random_policy(2, |_, _| true);
    let data = mdp.sample(6, &beta, None, 200, 25);
    let want = Empirical::of(&data, 4, 2).q(&pi, 0.9, &[0.0; 8]);
    let mut errs = Vec::new();
    for n in [4, 64] {
        let v =
            fit(&[("n_quantiles", json!(n)), ("tol", json!(1e-12))], &[data.clone(), mdp.policy_table(&pi)]).unwrap();
        assert_eq!(v["converged"], true);
        let mut worst: f64 = 0.0;
        for (s, a, qs) in quantiles(&v) {
            assert!(qs.windows(2).all(|w| w[0] <= w[1] + 1e-12), "({s}, {a}) not monotone");
            let mean = qs.iter().sum::<f64>() / n as f64;
            worst = worst.max((mean - want[s * 2 + a].unwrap()).abs());
        }
        errs.push(worst);
    }
    println!("largest |mean of quantiles - Q| at N = 4, 64: {errs:?}");
    // the quantile projection's bias in the mean shrinks as N grows
    assert!(errs[1] < errs[0] && errs[1] < 0.05, "{errs:?}");
}

#[test]
fn a_target_off_the_datas_support_is_refused() {
    let mdp = FiniteMdp::random(9, 3, 2, 0.9);
    let beta = mdp.random_policy(1, |s, a| !(s == 0 && a == 1));
    let data = mdp.sample(2, &beta, None, 30, 10);
    let wild = mdp.random_policy(2, |_, _| true);
    testing::expect_error(fit(&[], &[data, mdp.policy_table(&wild)]), "which the data never took there");
}
