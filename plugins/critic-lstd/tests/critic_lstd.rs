//! critic-lstd through the real plugin boundary, against finite MDPs whose values are exact
//! linear algebra: one-hot LSTD-Q is the empirical model's Q^π, its error falls as n^(−1/2),
//! FQE converges to it, SARSA is the behaviour's value, RFF LSTD converges to the population
//! fixed point; bad input of every kind gives an error naming the table, column and row.

use quiver_host::{Device, ErrorKind, Table};
use quiver_testing as testing;
use quiver_testing::mdp::{Empirical, FiniteMdp, Policy};
use serde_json::{json, Value};

const METHOD: &str = "critic-lstd";
const S: usize = 6;
const A: usize = 3;

/// The MDP, a behaviour that never takes action 2 in states 0 and 1, and a target on the same
/// support.
fn world(gamma: f64) -> (FiniteMdp, Policy, Policy) {
    let mdp = FiniteMdp::random(11, S, A, gamma);
    let support = |s: usize, a: usize| !(s < 2 && a == 2);
    (mdp.clone(), mdp.random_policy(1, support), mdp.random_policy(2, support))
}

fn fit_on(
    device: Device,
    params: &[(&str, Value)],
    tables: &[Table],
) -> Result<(Value, Vec<f64>), quiver_host::HostError> {
    let host = testing::host();
    let mut h = host.create(METHOD, &testing::params(params), testing::ctx(device))?;
    h.step("fit", tables)?;
    let r = h.step("values", tables)?;
    assert_eq!(r.device(), Some(device));
    Ok((r.summary.clone(), r.f64s("values").unwrap().to_vec()))
}

fn fit(params: &[(&str, Value)], tables: &[Table]) -> (Value, Vec<f64>) {
    fit_on(Device::Cpu, params, tables).unwrap()
}

/// (s, a, q) triples of a tabular result.
fn q_triples(v: &Value) -> Vec<(usize, usize, f64)> {
    let q = &v["q"];
    (0..q["q"].as_array().unwrap().len())
        .map(|i| {
            (q["s"][i].as_u64().unwrap() as usize, q["a"][i].as_u64().unwrap() as usize, q["q"][i].as_f64().unwrap())
        })
        .collect()
}

#[test]
fn onehot_lstdq_is_the_empirical_models_q_to_round_off() {
    let (mdp, beta, pi) = world(0.9);
    for seed in 0..3 {
        let data = mdp.sample(seed, &beta, Some(&pi), 200, 25);
        let (v, values) = fit(&[("gamma", json!(0.9))], &[data.clone(), mdp.policy_table(&pi)]);
        let want = Empirical::of(&data, S, A).q(&pi, 0.9, &[0.0; S * A]);
        let got = q_triples(&v);
        assert_eq!(got.len(), 16, "every pair in the behaviour's support has data");
        for &(s, a, q) in &got {
            let w = want[s * A + a].unwrap();
            assert!((q - w).abs() <= 1e-9 * w.abs().max(1.0), "({s}, {a}): {q} vs {w}");
        }
        assert_eq!(values.len(), got.len());
        assert!(v["residual"].as_f64().unwrap() < 1e-12);
        // V and J from Q and π
        let vs = &v["v"];
        for (i, s) in vs["s"].as_array().unwrap().iter().enumerate() {
            let s = s.as_u64().unwrap() as usize;
            let want_v: f64 =
                (0..A).filter(|&a| pi[s * A + a] > 0.0).map(|a| pi[s * A + a] * want[s * A + a].unwrap()).sum();
            assert!((vs["v"][i].as_f64().unwrap() - want_v).abs() < 1e-9);
        }
        assert!(v["j"].as_f64().is_some());
    }
}

#[test]
fn lstdq_error_to_the_true_q_falls_as_one_over_root_n() {
    let (mdp, beta, pi) = world(0.8);
    let truth = mdp.q(&pi);
    let rmse = |episodes: usize| -> f64 {
        let errs: Vec<f64> = (0..6)
            .map(|seed| {
                let data = mdp.sample(100 + seed, &beta, Some(&pi), episodes, 25);
                let (v, _) = fit(&[("gamma", json!(0.8))], &[data, mdp.policy_table(&pi)]);
                let e = q_triples(&v);
                (e.iter().map(|&(s, a, q)| (q - truth[s * A + a]).powi(2)).sum::<f64>() / e.len() as f64).sqrt()
            })
            .collect();
        errs.iter().sum::<f64>() / errs.len() as f64
    };
    let e: Vec<f64> = [40, 160, 640].iter().map(|&n| rmse(n)).collect();
    println!("RMSE of Q at 40, 160, 640 episodes: {e:?}");
    // each 4x more data halves the error (ratio 0.5), within the Monte Carlo spread of 6 seeds
    for w in e.windows(2) {
        let ratio = w[1] / w[0];
        assert!((0.3..0.75).contains(&ratio), "errors {e:?}: ratio {ratio}");
    }
}

#[test]
fn fqe_converges_to_lstdq() {
    let (mdp, beta, pi) = world(0.9);
    let data = mdp.sample(5, &beta, Some(&pi), 150, 25);
    let tables = [data, mdp.policy_table(&pi)];
    for ridge in [0.0, 0.5] {
        let (lstd, _) = fit(&[("gamma", json!(0.9)), ("ridge", json!(ridge))], &tables);
        let (fqe, _) = fit(
            &[("gamma", json!(0.9)), ("ridge", json!(ridge)), ("target", json!("fqe")), ("tol", json!(1e-13))],
            &tables,
        );
        assert_eq!(fqe["converged"], true);
        assert!(fqe["iterations"].as_u64().unwrap() > 10);
        for (a, b) in q_triples(&lstd).iter().zip(q_triples(&fqe)) {
            assert!((a.2 - b.2).abs() < 1e-9 * a.2.abs().max(1.0), "{a:?} vs {b:?}");
        }
    }
    // max_iter reached is a warning in the result, not silence
    let (v, _) = fit(&[("target", json!("fqe")), ("max_iter", json!(3))], &tables);
    assert_eq!(v["converged"], false);
    assert!(v["warnings"][0].as_str().unwrap().contains("max_iter = 3"), "{v}");
}

#[test]
fn sarsa_is_the_behaviour_value() {
    let (mdp, beta, _) = world(0.8);
    let data = mdp.sample(9, &beta, None, 2000, 25);
    let (v, _) = fit(&[("gamma", json!(0.8)), ("target", json!("sarsa"))], std::slice::from_ref(&data));
    // exactly: the empirical model with the logged next actions' frequencies
    let emp = Empirical::of(&data, S, A);
    let next_beta = emp.behaviour();
    let want = emp.q(&next_beta, 0.8, &[0.0; S * A]);
    let truth = mdp.q(&beta);
    for (s, a, q) in q_triples(&v) {
        // the logged a_next is a draw from beta: the two agree up to sampling error
        assert!((q - want[s * A + a].unwrap()).abs() < 0.05, "({s}, {a}): {q} vs the empirical {:?}", want[s * A + a]);
        assert!((q - truth[s * A + a]).abs() < 0.25, "({s}, {a}): {q} vs the true {}", truth[s * A + a]);
    }
    let j = v["j"].as_f64().unwrap();
    let true_j = mdp.v(&beta, &truth).iter().sum::<f64>() / S as f64;
    assert!((j - true_j).abs() < 0.25, "J {j} vs {true_j}");
}

/// States on a circle, transitions drawn i.i.d. from (uniform s) × β × P: the population
/// moments are exact sums, so θ̂ → θ* = A_pop⁻¹ b_pop.
fn circle(s: usize) -> [f64; 2] {
    let t = std::f64::consts::TAU * s as f64 / S as f64;
    [1.5 * t.cos(), 1.5 * t.sin()]
}

fn iid_table(mdp: &FiniteMdp, beta: &Policy, pi: &Policy, n: usize, seed: u64) -> Table {
    use rand::Rng;
    let mut rng = testing::rng(seed);
    let draw = |rng: &mut rand_chacha::ChaCha8Rng, p: &[f64]| {
        let u: f64 = rng.random();
        let mut acc = 0.0;
        p.iter()
            .position(|&x| {
                acc += x;
                u < acc
            })
            .unwrap_or(p.len() - 1)
    };
    let mut cols: Vec<Vec<f64>> = vec![Vec::new(); 4 + 2 * A];
    let (mut a_col, mut r, mut done) = (vec![], vec![], vec![]);
    for _ in 0..n {
        let s = rng.random_range(0..S);
        let a = draw(&mut rng, &beta[s * A..(s + 1) * A]);
        let k = s * A + a;
        let s2 = draw(&mut rng, &mdp.p[k * S..(k + 1) * S]);
        let (x, x2) = (circle(s), circle(s2));
        cols[0].push(x[0]);
        cols[1].push(x[1]);
        cols[2].push(x2[0]);
        cols[3].push(x2[1]);
        for q in 0..A {
            cols[4 + q].push(pi[s * A + q]);
            cols[4 + A + q].push(pi[s2 * A + q]);
        }
        a_col.push(a as i64);
        r.push(mdp.r[k] + 0.5 * (rng.random::<f64>() - 0.5));
        done.push(rng.random::<f64>() < mdp.term[k]);
    }
    let mut t = Table::new("transitions")
        .with_i64("episode", (0..n as i64).collect())
        .with_i64("t", vec![0; n])
        .with_i64("a", a_col)
        .with_f64("r", r)
        .with_bool("done", done);
    let names = ["s_0", "s_1", "s_next_0", "s_next_1"];
    for (i, c) in cols.into_iter().enumerate() {
        let name = if i < 4 {
            names[i].to_string()
        } else if i < 4 + A {
            format!("pi_{}", i - 4)
        } else {
            format!("pi_next_{}", i - 4 - A)
        };
        t = t.with_f64(&name, c);
    }
    t
}

#[test]
fn rff_lstdq_converges_to_the_population_fixed_point() {
    let (mdp, beta, pi) = world(0.9);
    let rff = quiver_rl::Rff::new(2, 4, 1.0, 3, A);
    let d = 4 * A;
    let phi = |s: usize, a: usize| -> Vec<f64> {
        let mut psi = vec![0.0; 4];
        let x = circle(s);
        rff.psi(|k| x[k], &mut psi);
        let mut f = vec![0.0; d];
        f[a * 4..(a + 1) * 4].copy_from_slice(&psi);
        f
    };
    let (mut a_pop, mut b_pop) = (vec![0.0; d * d], vec![0.0; d]);
    for s in 0..S {
        for a in 0..A {
            let w = beta[s * A + a] / S as f64;
            if w == 0.0 {
                continue;
            }
            let k = s * A + a;
            let f = phi(s, a);
            let mut next = vec![0.0; d];
            for s2 in 0..S {
                for a2 in 0..A {
                    let p = (1.0 - mdp.term[k]) * mdp.p[k * S + s2] * pi[s2 * A + a2];
                    phi(s2, a2).iter().zip(next.iter_mut()).for_each(|(x, n)| *n += p * x);
                }
            }
            for i in 0..d {
                b_pop[i] += w * f[i] * mdp.r[k];
                for j in 0..d {
                    a_pop[i * d + j] += w * f[i] * (f[j] - 0.9 * next[j]);
                }
            }
        }
    }
    let star = quiver_testing::mdp::solve(a_pop, b_pop);
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let params = [("features", json!("rff")), ("dim", json!(4)), ("bandwidth", json!(1.0)), ("seed", json!(3))];
    let errs: Vec<f64> = [2_000usize, 8_000, 32_000, 128_000]
        .iter()
        .map(|&n| {
            let (v, _) = fit(&params, &[iid_table(&mdp, &beta, &pi, n, n as u64)]);
            let theta: Vec<f64> = v["theta"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            norm(&theta.iter().zip(&star).map(|(a, b)| a - b).collect::<Vec<_>>()) / norm(&star)
        })
        .collect();
    println!("relative error of theta at n = 2k, 8k, 32k, 128k: {errs:?}");
    assert!(errs[3] < 0.1 && errs[3] < errs[0] / 3.0, "relative errors {errs:?}");
}

/// Q at every (state, action) of the test MDP's six states, from an RFF fit on `tables`
/// (`queries` appended), and the fitted θ.
fn rff_q_at_the_states(device: Device, params: &[(&str, Value)], data: &Table) -> (Vec<f64>, Vec<f64>) {
    let points: Vec<[f64; 2]> = (0..S).map(circle).collect();
    let queries = Table::new("queries")
        .with_f64("s_0", (0..S * A).map(|i| points[i / A][0]).collect())
        .with_f64("s_1", (0..S * A).map(|i| points[i / A][1]).collect())
        .with_i64("a", (0..S * A).map(|i| (i % A) as i64).collect());
    let (v, q) = fit_on(device, params, &[data.clone(), queries]).unwrap();
    (q, v["theta"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect())
}

/// The largest |x − y| over the largest |x|.
fn max_rel_diff(x: &[f64], y: &[f64]) -> f64 {
    let scale = x.iter().map(|v| v.abs()).fold(0.0, f64::max);
    x.iter().zip(y).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max) / scale
}

quiver_testing::device_test!(
    /// RFF moments on each device give the CPU's Q and θ to within what the order of the sums
    /// moves them. That order is not free of consequence here: six states give 18 distinct
    /// feature rows of 96, so C = ΦᵀΦ is rank-deficient and θ is pinned by the ridge along the
    /// rest — the CPU's own θ moves by ~1e-9 (relative) when the rows are merely rotated, and its
    /// Q by ~4e-11. A device sums in another order again (cuBLAS's blocking, the GPU's `cos`), so
    /// it must agree to a small multiple of that rotation's change, which the test measures
    /// rather than assumes; a defect (a wrong row, a lost chunk) moves Q by orders more.
    rff_lstdq_equals_the_cpu_path_on_every_device,
    |device| {
        let (mdp, beta, pi) = world(0.9);
        let n = 50_000;
        let data = iid_table(&mdp, &beta, &pi, n, 3);
        let params = [("features", json!("rff")), ("dim", json!(32)), ("ridge", json!(1e-3))];
        let (q_cpu, theta_cpu) = rff_q_at_the_states(Device::Cpu, &params, &data);
        let mut rotated = data.rows(20_001..n);
        rotated.append(data.rows(0..20_001)).unwrap();
        let (q_rot, theta_rot) = rff_q_at_the_states(Device::Cpu, &params, &rotated);
        let (q_dev, theta_dev) = rff_q_at_the_states(device, &params, &data);
        let (dq, dtheta) = (max_rel_diff(&q_cpu, &q_rot), max_rel_diff(&theta_cpu, &theta_rot));
        let (gq, gtheta) = (max_rel_diff(&q_cpu, &q_dev), max_rel_diff(&theta_cpu, &theta_dev));
        println!("{device:?}: Q differs by {gq:.1e}, θ by {gtheta:.1e}; rotating the rows moves them {dq:.1e}, {dtheta:.1e}");
        assert!(gq <= 1e-12 + 50.0 * dq, "Q: {gq:e} against {dq:e} from the rotation: {q_cpu:?} vs {q_dev:?}");
        assert!(gtheta <= 1e-12 + 50.0 * dtheta, "θ: {gtheta:e} against {dtheta:e} from the rotation");
        // and the rotation itself is small: the comparison is not with noise
        assert!(dq < 1e-8 && dtheta < 1e-6, "{dq:e} {dtheta:e}");
    }
);

#[test]
fn rff_kernel_compiles_to_ptx() {
    testing::assert_kernel_compiles("rff_rows", quiver_rl::gpu::RFF_KERNEL, "rff_rows");
}

fn small() -> (Table, Table) {
    let t = Table::new("transitions")
        .with_i64("episode", vec![0, 0, 0, 1, 1])
        .with_i64("t", vec![0, 1, 2, 0, 1])
        .with_i64("s", vec![0, 1, 0, 1, 0])
        .with_i64("a", vec![0, 1, 1, 0, 1])
        .with_f64("r", vec![1.0, 0.0, 0.5, 1.0, 0.0])
        .with_i64("s_next", vec![1, 0, 1, 0, 1])
        .with_bool("done", vec![false, false, true, false, false])
        .with_f64("mu_prob", vec![0.5; 5]);
    let p = Table::new("policy")
        .with_i64("s", vec![0, 0, 1, 1])
        .with_i64("a", vec![0, 1, 0, 1])
        .with_f64("prob", vec![0.5; 4]);
    (t, p)
}

fn replace(t: &Table, name: &str, v: quiver_host::Values) -> Table {
    let mut t = t.clone();
    t.columns.iter_mut().find(|(n, _)| n == name).unwrap().1 = v;
    t
}

/// The deadly triad is an error, and the rewards' units are not: with one given feature φ = 1
/// and φ̄′ = 2 (Tsitsiklis & Van Roy's counterexample) FQE's iterates grow by 1 + 0.9·8/5 a step
/// and the fit says it diverges; on a benign problem FQE's values scale with the rewards from
/// 1e-200 to 1e200 (its convergence test was absolute below 1, and its divergence test fired
/// above 1e150: at 1e-200 it stopped after an iteration, at 1e200 it called the fit divergent).
#[test]
fn fqe_divergence_is_an_error_and_the_reward_scale_is_not() {
    let (t, p) = small();
    let triad = t.clone().with_f64("phi_0", vec![1.0; 5]).with_f64("phi_next_0", vec![2.0; 5]);
    let params = [("target", json!("fqe")), ("features", json!("given")), ("gamma", json!(0.9))];
    let e = testing::expect_error(fit_on(Device::Cpu, &params, std::slice::from_ref(&triad)), "FQE diverges");
    assert_eq!(e.plugin_kind(), Some(ErrorKind::InvalidInput), "{e}");
    let params = [("target", json!("fqe")), ("gamma", json!(0.9))];
    let (base, _) = fit(&params, &[t.clone(), p.clone()]);
    let j = base["j"].as_f64().unwrap();
    for c in [1e-200, 1e200] {
        let r = match &t.columns.iter().find(|(n, _)| n == "r").unwrap().1 {
            quiver_host::Values::F64(v) => v.iter().map(|x| x * c).collect(),
            _ => unreachable!(),
        };
        let (v, _) = fit(&params, &[replace(&t, "r", quiver_host::Values::F64(r)), p.clone()]);
        let jc = v["j"].as_f64().unwrap() / c;
        assert!((jc - j).abs() <= 1e-12 * j.abs(), "rewards × {c:e}: J/c = {jc}, J = {j}");
    }
}

#[test]
fn bad_input_names_table_column_and_row() {
    use quiver_host::Values::{Bool, F64, I64};
    let (t, p) = small();
    let run = |params: &[(&str, Value)], tables: &[Table]| fit_on(Device::Cpu, params, tables).map(|_| ());
    run(&[], &[t.clone(), p.clone()]).expect("the base case fits");
    /// (tables, parameters, what the error must say)
    type BadCase<'a> = (Vec<Table>, Vec<(&'a str, Value)>, &'a str);
    let cases: Vec<BadCase> = vec![
        (
            vec![replace(&t, "episode", I64(vec![0, 0, 1, 0, 0])), p.clone()],
            vec![],
            "column 'episode', row 4: episode 0 starts again",
        ),
        (vec![replace(&t, "t", I64(vec![0, 1, 3, 0, 1])), p.clone()], vec![], "column 't', row 3: t = 3 follows t = 1"),
        (
            vec![replace(&t, "done", Bool(vec![false, true, false, false, false])), p.clone()],
            vec![],
            "column 'done', row 2: done = 1 before the last row of episode 0",
        ),
        (
            vec![replace(&t, "mu_prob", F64(vec![0.5, 1.5, 0.5, 0.5, 0.5])), p.clone()],
            vec![],
            "column 'mu_prob', row 2: value 1.5 is not a probability",
        ),
        (
            vec![t.clone(), replace(&p, "prob", F64(vec![0.5, 0.6, 0.5, 0.5]))],
            vec![],
            "table 'policy', column 'prob', row 1: the probabilities of state 0 sum to 1.1",
        ),
        (
            vec![
                t.clone(),
                Table::new("policy").with_i64("s", vec![0]).with_i64("a", vec![0]).with_f64("prob", vec![1.0]),
            ],
            vec![],
            "table 'policy' has no row for state 1, the s_next of table 'transitions', row 1",
        ),
        (vec![t.clone()], vec![], "no 'policy' table was given"),
        (
            vec![replace(&t, "s_next", I64(vec![1, 1, 1, 0, 1])), p.clone()],
            vec![],
            "column 's_next', row 2: s_next = 1 but the episode's next row has s = 0",
        ),
        (vec![t.clone(), p.clone()], vec![("gamma", json!(1.0))], "parameter 'gamma' = 1.0 must be a number in [0, 1)"),
        (vec![replace(&t, "r", F64(vec![1.7e308; 5])), p.clone()], vec![], "the values overflow double precision"),
        (vec![t.clone(), p.clone()], vec![("features", json!("rff"))], "features=rff needs continuous states"),
        (vec![t.clone()], vec![("target", json!("sarsa"))], "no column 'a_next', which target=sarsa needs"),
        (
            vec![t
                .clone()
                .with_f64("phi_0", vec![1.0; 5])
                .with_f64("phi_1", vec![2.0; 5])
                .with_f64("phi_next_0", vec![1.0; 5])
                .with_f64("phi_next_1", vec![2.0; 5])],
            vec![("features", json!("given"))],
            "the LSTD system is singular: set a ridge > 0",
        ),
        (
            vec![t
                .clone()
                .with_f64("phi_0", vec![1.0; 5])
                .with_f64("phi_1", vec![0.5; 5])
                .with_f64("phi_next_0", vec![1.0; 5])],
            vec![("features", json!("given"))],
            "2 phi_* columns but 1 phi_next_* columns",
        ),
    ];
    for (tables, params, needle) in cases {
        let e = testing::expect_error(run(&params, &tables), needle);
        assert!(
            matches!(e.plugin_kind(), Some(ErrorKind::InvalidInput | ErrorKind::InvalidParameter))
                || matches!(e, quiver_host::HostError::Input(_)),
            "{e}"
        );
    }
    // values before fit is a state error
    let host = testing::host();
    let mut h = host.create(METHOD, &testing::params(&[]), testing::cpu()).unwrap();
    assert_eq!(h.step("values", &[]).unwrap_err().plugin_kind(), Some(ErrorKind::State));
}

#[test]
fn a_progress_observer_follows_the_fit_and_can_stop_it() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let (mdp, beta, pi) = world(0.9);
    let tables = [mdp.sample(5, &beta, Some(&pi), 150, 25), mdp.policy_table(&pi)];
    let host = testing::host();
    let params = testing::params(&[("target", json!("fqe")), ("tol", json!(1e-14))]);
    let fit_with = |stop_at: usize| {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let progress = quiver_host::Progress::new(move |done, total, label| {
            seen.fetch_add(1, Ordering::SeqCst);
            assert!(label == "fqe iterations" && total == 10_000, "{label} {total}");
            (done as usize) < stop_at
        });
        let mut h = host.create_observed(METHOD, &params, testing::cpu(), Some(&progress)).unwrap();
        drop(progress); // the estimator keeps the observer alive
        (h.step("fit", &tables), calls.load(Ordering::SeqCst))
    };
    let (ok, calls) = fit_with(usize::MAX);
    assert!(ok.is_ok() && calls > 10, "{calls} progress reports");
    let (stopped, calls) = fit_with(5);
    let e = testing::expect_error(stopped, "stopped on request during 'fqe iterations' (5 of 10000 done)");
    assert_eq!(e.plugin_kind(), Some(ErrorKind::Cancelled));
    assert_eq!(calls, 5);
}

#[test]
fn queries_return_q_and_v_where_asked() {
    let (mdp, beta, pi) = world(0.9);
    let data = mdp.sample(3, &beta, Some(&pi), 100, 25);
    let policy = mdp.policy_table(&pi);
    let (v, _) = fit(&[], &[data.clone(), policy.clone()]);
    let q = q_triples(&v);
    let (s0, a0, q0) = q[0];
    let vs = &v["v"];
    let v_of = |s: usize| {
        (0..vs["s"].as_array().unwrap().len()).find(|&i| vs["s"][i] == s).map(|i| vs["v"][i].as_f64().unwrap())
    };
    let queries = Table::new("queries").with_i64("s", vec![s0 as i64]).with_i64("a", vec![a0 as i64]);
    let (_, values) = fit(&[], &[data.clone(), policy.clone(), queries]);
    assert_eq!(values, vec![q0]);
    let queries = Table::new("queries").with_i64("s", vec![0, 3]);
    let (out, values) = fit(&[], &[data.clone(), policy.clone(), queries]);
    assert_eq!(values, vec![v_of(0).unwrap(), v_of(3).unwrap()]);
    assert_eq!(out["values"].as_array().unwrap().len(), 2);
    // a pair the fit never saw (action 2 in state 0 is outside the behaviour's support)
    let queries = Table::new("queries").with_i64("s", vec![1, 0]).with_i64("a", vec![0, 2]);
    testing::expect_error(
        fit_on(Device::Cpu, &[], &[data, policy, queries]),
        "table 'queries', column 'a', row 2: no value for (s, a) = (0, 2)",
    );
}
