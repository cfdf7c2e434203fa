//! critic-quantile through the real plugin boundary: deterministic returns give quantiles equal to
//! the exact Q^π; with γ = 0 the quantiles are the rewards' own quantiles (κ = 0) or the minimisers
//! of the quantile-Huber loss (κ > 0, checked against a brute-force grid); quantiles rise with their
//! level, and their mean tracks the empirical model's Q^π as N grows.

use quiver_host::Table;
use quiver_testing as testing;
use quiver_testing::mdp::{Empirical, FiniteMdp};
use rand::Rng;
use serde_json::{json, Value};

const METHOD: &str = "critic-quantile";

fn fit(params: &[(&str, Value)], tables: &[Table]) -> Result<Value, quiver_host::HostError> {
    let host = testing::host();
    let mut h = host.create(METHOD, &testing::params(params), testing::cpu())?;
    h.step("fit", tables)?;
    Ok(h.step("values", tables)?.summary)
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

/// The discrete data as continuous columns: s_0 = the state id, s_next_0, and the target policy
/// per row (pi_<a> at s, pi_next_<a> at s_next).
fn as_continuous(data: &Table, pi: &[f64], n_actions: usize) -> Table {
    let ints = |name: &str| match data.column(name) {
        Some(quiver_host::Values::I64(v)) => v.clone(),
        _ => panic!("column {name}"),
    };
    let (s, s_next) = (ints("s"), ints("s_next"));
    let mut t = data.clone();
    t.columns.retain(|(n, _)| n != "s" && n != "s_next" && n != "a_next");
    t = t
        .with_f64("s_0", s.iter().map(|&x| x as f64).collect())
        .with_f64("s_next_0", s_next.iter().map(|&x| x as f64).collect());
    for a in 0..n_actions {
        t = t.with_f64(&format!("pi_{a}"), s.iter().map(|&x| pi[x as usize * n_actions + a]).collect());
        t = t.with_f64(&format!("pi_next_{a}"), s_next.iter().map(|&x| pi[x as usize * n_actions + a]).collect());
    }
    t
}

#[test]
fn rff_features_that_span_the_states_reproduce_the_tabular_fixed_point() {
    // with 4 states and 8 random Fourier features of the state id, the linear critic can take any
    // value at each (state, action): its fixed point is the tabular one (same kappa)
    let mut mdp = FiniteMdp::random(31, 4, 2, 0.8);
    mdp.noise = 0.5;
    let beta = mdp.random_policy(1, |_, _| true);
    let pi = mdp.random_policy(2, |_, _| true);
    let data = mdp.sample(5, &beta, None, 100, 12);
    let common = [("gamma", json!(0.8)), ("n_quantiles", json!(6)), ("kappa", json!(0.7)), ("tol", json!(1e-12))];
    let host = testing::host();
    let run = |extra: &[(&str, Value)], tables: &[Table]| {
        let params: Vec<(&str, Value)> = common.iter().cloned().chain(extra.iter().cloned()).collect();
        let mut h = host.create(METHOD, &testing::params(&params), testing::cpu()).unwrap();
        h.step("fit", tables).unwrap();
        let r = h.step("values", tables).unwrap();
        (r.summary.clone(), r.f64s("values").unwrap().to_vec())
    };
    let (tab, _) = run(&[], &[data.clone(), mdp.policy_table(&pi)]);
    let cont = as_continuous(&data, &pi, 2);
    let (lin, row_means) = run(
        &[("features", json!("rff")), ("dim", json!(8)), ("bandwidth", json!(0.7)), ("ridge", json!(1e-10))],
        &[cont],
    );
    assert_eq!(lin["converged"], json!(true), "{lin}");
    let pair_mean: std::collections::HashMap<(usize, usize), f64> =
        quantiles(&tab).into_iter().map(|(s, a, q)| ((s, a), q.iter().sum::<f64>() / q.len() as f64)).collect();
    let (s, a) = match (data.column("s"), data.column("a")) {
        (Some(quiver_host::Values::I64(s)), Some(quiver_host::Values::I64(a))) => (s.clone(), a.clone()),
        _ => unreachable!(),
    };
    for i in 0..row_means.len() {
        let want = pair_mean[&(s[i] as usize, a[i] as usize)];
        assert!((row_means[i] - want).abs() < 1e-6, "row {i}: {} vs tabular {want}", row_means[i]);
    }
    let (jl, jt) = (lin["j"].as_f64().unwrap(), tab["j"].as_f64().unwrap());
    assert!((jl - jt).abs() < 1e-6, "J: {jl} vs {jt}");
}

#[test]
fn quantiles_match_the_exact_return_distribution_monte_carlo() {
    // two steps: from state 0 (reward 1 + N(0, 0.5^2)) to state 1 or 2 (prob 0.3 / 0.7), whose one
    // action ends the episode with reward N(2, 1) or N(-1, 0.5^2). The return from state 0 is
    // 1 + e0 + gamma R1 with R1 the mixture: its exact quantiles by bisection on the mixture's CDF.
    let (gamma, n_q, episodes): (f64, usize, usize) = (0.9, 20, 20_000);
    let mut rng = testing::rng(77);
    let normal = |rng: &mut rand_chacha::ChaCha8Rng| -> f64 {
        // Box-Muller
        let (u, v): (f64, f64) = (rng.random(), rng.random());
        (-2.0 * (1.0 - u).ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    };
    let (mut ep, mut t, mut s, mut a, mut r, mut sn, mut done) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for e in 0..episodes {
        let next = if rng.random::<f64>() < 0.3 { 1 } else { 2 };
        let last = if next == 1 { 2.0 + normal(&mut rng) } else { -1.0 + 0.5 * normal(&mut rng) };
        for (step, (st, rew, s2, d)) in
            [(0, 1.0 + 0.5 * normal(&mut rng), next, false), (next, last, 0, true)].into_iter().enumerate()
        {
            ep.push(e as i64);
            t.push(step as i64);
            s.push(st);
            a.push(0);
            r.push(rew);
            sn.push(s2);
            done.push(d);
        }
    }
    let data = Table::new("transitions")
        .with_i64("episode", ep)
        .with_i64("t", t)
        .with_i64("s", s)
        .with_i64("a", a)
        .with_f64("r", r)
        .with_i64("s_next", sn)
        .with_bool("done", done);
    let policy =
        Table::new("policy").with_i64("s", vec![0, 1, 2]).with_i64("a", vec![0, 0, 0]).with_f64("prob", vec![1.0; 3]);
    let v =
        fit(&[("gamma", json!(gamma)), ("n_quantiles", json!(n_q)), ("tol", json!(1e-13))], &[data, policy]).unwrap();
    // exact: the return G = 1 + 0.5 Z0 + gamma (0.3 N(2, 1) + 0.7 N(-1, 0.25)) is a mixture of two
    // normals: N(1 + 2 gamma, 0.25 + gamma^2) w.p. 0.3 and N(1 - gamma, 0.25 + 0.25 gamma^2) w.p. 0.7
    let phi = |x: f64| 0.5 * libm::erfc(-x / std::f64::consts::SQRT_2);
    let comps = [
        (0.3, 1.0 + 2.0 * gamma, (0.25 + gamma * gamma).sqrt()),
        (0.7, 1.0 - gamma, (0.25 + 0.25 * gamma * gamma).sqrt()),
    ];
    let cdf = |x: f64| comps.iter().map(|&(w, m, sd)| w * phi((x - m) / sd)).sum::<f64>();
    let pdf = |x: f64| {
        comps
            .iter()
            .map(|&(w, m, sd)| w * (-0.5 * ((x - m) / sd).powi(2)).exp() / (sd * (std::f64::consts::TAU).sqrt()))
            .sum::<f64>()
    };
    let (_, _, q0) = quantiles(&v).into_iter().find(|(s, _, _)| *s == 0).unwrap();
    for (j, &q) in q0.iter().enumerate() {
        let tau = (2 * j + 1) as f64 / (2 * n_q) as f64;
        let (mut lo, mut hi) = (-20.0, 20.0);
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if cdf(mid) < tau {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let exact = 0.5 * (lo + hi);
        // Monte Carlo: a sample quantile's standard error sqrt(tau (1 - tau) / n) / f(q), plus the
        // N-atom projection of the next states' distributions (half an atom's probability 1/2N)
        let se = (tau * (1.0 - tau) / episodes as f64).sqrt() / pdf(exact);
        let projection = gamma * 0.5 / n_q as f64 / pdf(exact);
        assert!((q - exact).abs() < 4.0 * se + projection, "tau {tau}: {q} vs exact {exact} (se {se:.4})");
    }
    // and their mean is Q(0, 0) = 1 + gamma (0.3 * 2 - 0.7 * 1), within Monte Carlo error
    let mean = q0.iter().sum::<f64>() / n_q as f64;
    let q_exact = 1.0 + gamma * (0.3 * 2.0 - 0.7);
    // (the return's sd is about 1.47: 4 standard errors are 0.042; the N-point quantile average
    // misses the tails by a little more)
    assert!((mean - q_exact).abs() < 0.06, "mean {mean} vs {q_exact}");
}

#[test]
fn linear_features_refuse_what_they_cannot_do() {
    let mdp = FiniteMdp::random(31, 4, 2, 0.8);
    let pi = mdp.random_policy(2, |_, _| true);
    let cont = as_continuous(&mdp.sample(5, &pi, None, 10, 5), &pi, 2);
    let rff = [("features", json!("rff"))];
    testing::expect_error(fit(&rff, std::slice::from_ref(&cont)), "features=rff needs kappa > 0");
    testing::expect_error(
        fit(&[("features", json!("given")), ("kappa", json!(1.0))], std::slice::from_ref(&cont)),
        "features=given is not available for critic-quantile",
    );
    // discrete states need the policy table
    testing::expect_error(fit(&[], &[mdp.sample(5, &pi, None, 10, 5)]), "'policy'");
}

#[test]
fn oversized_linear_requests_are_refused_before_they_run() {
    let mdp = FiniteMdp::random(31, 4, 2, 0.8);
    let pi = mdp.random_policy(2, |_, _| true);
    let cont = as_continuous(&mdp.sample(5, &pi, None, 200, 10), &pi, 2);
    testing::expect_error(
        fit(&[("features", json!("rff")), ("kappa", json!(1.0)), ("n_quantiles", json!(5000))], &[cont]),
        "lower n_quantiles",
    );
}

/// The quantile DP operator written out by hand — every atom of every pair's target, sorted,
/// accumulated — iterated from 0 to a change of 1e-15: the plugin's fixed point (found by
/// selection and policy iteration on the picked atoms) is that one, to 1e-10, with rewards
/// drawn on a grid (ties) and continuous, on episodes that end and that are cut.
#[test]
fn the_fixed_point_equals_the_written_out_operator_iterated() {
    for (seed, grid) in [(3u64, false), (4, true)] {
        let (s_n, a_n, n) = (3usize, 2usize, 5usize);
        let mut mdp = FiniteMdp::random(seed, s_n, a_n, 0.8);
        mdp.term = vec![0.1; s_n * a_n];
        let beta = mdp.random_policy(seed + 1, |_, _| true);
        let pi = mdp.random_policy(seed + 2, |_, _| true);
        let mut data = mdp.sample(seed + 3, &beta, None, 60, 10);
        if grid {
            for (name, col) in data.columns.iter_mut() {
                if let (true, quiver_host::Values::F64(r)) = (name == "r", col) {
                    r.iter_mut().for_each(|x| *x = (*x * 2.0).round() / 2.0);
                }
            }
        }
        let col = |name: &str| data.columns.iter().find(|(c, _)| c == name).unwrap().1.clone();
        let (s, a, s2) = match (col("s"), col("a"), col("s_next")) {
            (quiver_host::Values::I64(s), quiver_host::Values::I64(a), quiver_host::Values::I64(s2)) => (s, a, s2),
            _ => unreachable!(),
        };
        let (quiver_host::Values::F64(r), quiver_host::Values::Bool(done)) = (col("r"), col("done")) else {
            unreachable!()
        };
        let tau: Vec<f64> = (1..=n).map(|j| (2 * j - 1) as f64 / (2 * n) as f64).collect();
        let k = |s: i64, a: i64| (s as usize) * a_n + a as usize;
        let mut theta = vec![vec![0.0; n]; s_n * a_n];
        for _ in 0..2000 {
            let next: Vec<Vec<f64>> = (0..s_n * a_n)
                .map(|pair| {
                    let rows: Vec<usize> = (0..r.len()).filter(|&i| k(s[i], a[i]) == pair).collect();
                    if rows.is_empty() {
                        return vec![0.0; n];
                    }
                    let mut atoms = Vec::new();
                    for &i in &rows {
                        let w = 1.0 / rows.len() as f64;
                        if done[i] {
                            atoms.push((r[i], w));
                            continue;
                        }
                        for a2 in 0..a_n {
                            let p = pi[s2[i] as usize * a_n + a2];
                            atoms
                                .extend(theta[k(s2[i], a2 as i64)].iter().map(|&q| (r[i] + 0.8 * q, w * p / n as f64)));
                        }
                    }
                    atoms.sort_by(|x, y| x.0.total_cmp(&y.0));
                    tau.iter()
                        .map(|&t| {
                            let mut acc = 0.0;
                            for &(z, w) in &atoms {
                                acc += w;
                                if acc >= t * (1.0 - 1e-12) {
                                    return z;
                                }
                            }
                            atoms.last().unwrap().0
                        })
                        .collect()
                })
                .collect();
            let change =
                next.iter().flatten().zip(theta.iter().flatten()).fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
            theta = next;
            if change < 1e-15 {
                break;
            }
        }
        let v = fit(
            &[("n_quantiles", json!(n)), ("gamma", json!(0.8)), ("tol", json!(1e-12))],
            &[data.clone(), mdp.policy_table(&pi)],
        )
        .unwrap();
        assert_eq!(quantiles(&v).len(), s_n * a_n, "every pair has data");
        for (st, act, qs) in quantiles(&v) {
            for (got, want) in qs.iter().zip(&theta[st * a_n + act]) {
                assert!(
                    (got - want).abs() <= 1e-10 * want.abs().max(1.0),
                    "seed {seed} ({st}, {act}): {got} vs {want}"
                );
            }
        }
    }
}
