//! `critic-lowrank` through the real plugin boundary: with every cell observed it is the tabular
//! Q^π of the empirical model (`critic-cql` at α = 0 computes that by exact linear algebra); on a
//! 40 × 20 grid whose model has rank 1 (so Q^π rank 2), with 20 % of the cells observed, the
//! completed cells are close to the exact values and far closer than filling each state's
//! unobserved cells with its observed mean; their error halves when the data quadruple (it is
//! statistical); an over-specified rank is held by a larger ridge; the parameters and the support
//! are checked.

// states and actions indexed together, as the formulas write them
#![allow(clippy::needless_range_loop)]

use quiver_host::Table;
use quiver_testing as testing;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::path::Path;

const METHOD: &str = "critic-lowrank";

/// A grid MDP whose Q^π has rank ≤ 2: rewards u_s v_a (rank 1) and dynamics that do not depend on
/// the action (so γ P V is constant across a state's actions).
struct Grid {
    s: usize,
    a: usize,
    reward: Vec<Vec<f64>>,
    next: Vec<Vec<f64>>,
    /// The actions the behaviour takes at each state (uniformly).
    support: Vec<Vec<usize>>,
    target: Vec<Vec<f64>>,
    gamma: f64,
}

impl Grid {
    fn new(seed: u64, s: usize, a: usize, per_state: usize) -> Grid {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let u: Vec<f64> = (0..s).map(|_| 0.5 + rng.random::<f64>()).collect();
        let v: Vec<f64> = (0..a).map(|_| rng.random::<f64>() * 2.0 - 0.5).collect();
        let reward = (0..s).map(|i| (0..a).map(|j| u[i] * v[j]).collect()).collect();
        let next = (0..s)
            .map(|_| {
                let w: Vec<f64> = (0..s).map(|_| rng.random::<f64>().powi(3)).collect();
                let t: f64 = w.iter().sum();
                w.into_iter().map(|x| x / t).collect()
            })
            .collect();
        let support = (0..s)
            .map(|_| {
                let mut acts: Vec<usize> = (0..a).collect();
                for i in (1..a).rev() {
                    acts.swap(i, rng.random_range(0..=i));
                }
                acts.truncate(per_state);
                acts
            })
            .collect();
        let target = (0..s)
            .map(|_| {
                let w: Vec<f64> = (0..a).map(|_| 0.2 + rng.random::<f64>()).collect();
                let t: f64 = w.iter().sum();
                w.into_iter().map(|x| x / t).collect()
            })
            .collect();
        Grid { s, a, reward, next, support, target, gamma: 0.9 }
    }
    /// Exact Q^π by value iteration to 1e-14.
    fn exact(&self) -> Vec<Vec<f64>> {
        let mut v = vec![0.0; self.s];
        for _ in 0..2000 {
            v = (0..self.s)
                .map(|i| {
                    let cont: f64 = self.next[i].iter().zip(&v).map(|(p, x)| p * x).sum();
                    (0..self.a).map(|j| self.target[i][j] * (self.reward[i][j] + self.gamma * cont)).sum()
                })
                .collect();
        }
        (0..self.s)
            .map(|i| {
                let cont: f64 = self.next[i].iter().zip(&v).map(|(p, x)| p * x).sum();
                (0..self.a).map(|j| self.reward[i][j] + self.gamma * cont).collect()
            })
            .collect()
    }
    fn log(&self, seed: u64, episodes: usize, len: usize, noise: f64) -> Table {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let (mut ep, mut t, mut st, mut a, mut r, mut sn) = (vec![], vec![], vec![], vec![], vec![], vec![]);
        for e in 0..episodes {
            let mut s = rng.random_range(0..self.s);
            for k in 0..len {
                let act = self.support[s][rng.random_range(0..self.support[s].len())];
                let u: f64 = rng.random();
                let mut acc = 0.0;
                let s2 = self.next[s]
                    .iter()
                    .position(|p| {
                        acc += p;
                        u < acc
                    })
                    .unwrap_or(self.s - 1);
                ep.push(e as i64);
                t.push(k as i64);
                st.push(s as i64);
                a.push(act as i64);
                r.push(self.reward[s][act] + noise * (rng.random::<f64>() - 0.5));
                sn.push(s2 as i64);
                s = s2;
            }
        }
        let n = r.len();
        Table::new("transitions")
            .with_i64("episode", ep)
            .with_i64("t", t)
            .with_i64("s", st)
            .with_i64("a", a)
            .with_f64("r", r)
            .with_i64("s_next", sn)
            .with_bool("done", vec![false; n])
    }
    fn policy(&self) -> Table {
        let (mut s, mut a, mut p) = (vec![], vec![], vec![]);
        for i in 0..self.s {
            for j in 0..self.a {
                s.push(i as i64);
                a.push(j as i64);
                p.push(self.target[i][j]);
            }
        }
        Table::new("policy").with_i64("s", s).with_i64("a", a).with_f64("prob", p)
    }
}

fn run(tables: &[Table], params: &[(&str, Value)]) -> Value {
    testing::host().run(METHOD, &testing::params(params), tables, testing::cpu()).unwrap()
}

fn grid(v: &Value) -> Vec<(usize, usize, f64, bool)> {
    let q = &v["q"];
    (0..q["q"].as_array().unwrap().len())
        .map(|i| {
            (
                q["s"][i].as_u64().unwrap() as usize,
                q["a"][i].as_u64().unwrap() as usize,
                q["q"][i].as_f64().unwrap(),
                q["observed"][i].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn with_every_cell_observed_it_is_the_tabular_q() {
    let world = Grid::new(1, 6, 4, 4);
    let tables = [world.log(2, 200, 10, 0.3), world.policy()];
    let v = run(&tables, &[("rank", json!(2)), ("tol", json!(1e-13))]);
    let cql =
        testing::host().run("critic-cql", &testing::params(&[("alpha", json!(0.0))]), &tables, testing::cpu()).unwrap();
    let q = &cql["q"];
    for (s, a, x, seen) in grid(&v) {
        assert!(seen);
        let k = (0..q["q"].as_array().unwrap().len())
            .find(|&i| q["s"][i] == json!(s) && q["a"][i] == json!(a))
            .expect("the pair");
        let y = q["q"][k].as_f64().unwrap();
        assert!((x - y).abs() < 1e-9 * y.abs().max(1.0), "({s}, {a}): {x} vs {y}");
    }
    assert_eq!(v["grid"]["observed_share"], 1.0);
}

/// 40 states × 20 actions, each state's behaviour taking 4 actions (20 % of the cells), a model
/// of rank 1 (Q^π of rank 2): the completed cells within 5 % of Q's spread of the exact values
/// (root mean square; measured 0.0104 against a spread of 0.57), and at least 5 times closer than
/// each state's observed mean (measured 60 times). At rank 2 — one more than the model's — with
/// `ridge=1e-3`, still within 5 % (measured 0.024); without that ridge the surplus direction is
/// fitted to noise.
#[test]
fn a_fifth_of_the_cells_complete_a_rank_two_q() {
    let world = Grid::new(3, 40, 20, 4);
    let exact = world.exact();
    let v = run(&[world.log(4, 400, 50, 0.2), world.policy()], &[("rank", json!(1))]);
    assert_eq!(v["converged"], true, "{}", v["warnings"]);
    let cells = grid(&v);
    let all: Vec<f64> = exact.iter().flatten().copied().collect();
    let mean = all.iter().sum::<f64>() / all.len() as f64;
    let spread = (all.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / all.len() as f64).sqrt();
    // each state's observed cells' mean, the naive fill
    let mut row_mean = vec![(0.0, 0usize); 40];
    for &(s, _, x, seen) in &cells {
        if seen {
            row_mean[s].0 += x;
            row_mean[s].1 += 1;
        }
    }
    let (mut err, mut naive, mut count) = (0.0, 0.0, 0usize);
    for &(s, a, x, seen) in &cells {
        if !seen {
            err += (x - exact[s][a]).powi(2);
            naive += (row_mean[s].0 / row_mean[s].1 as f64 - exact[s][a]).powi(2);
            count += 1;
        }
    }
    let (rmse, naive_rmse) = ((err / count as f64).sqrt(), (naive / count as f64).sqrt());
    println!(
        "unobserved cells: RMSE {rmse:.4} (naive fill {naive_rmse:.4}), Q spread {spread:.3}, the completed rewards' singular values {}",
        v["reward_singular_values"]
    );
    assert!(count >= 600, "{count} unobserved cells");
    assert!(rmse <= 0.05 * spread, "RMSE {rmse} vs spread {spread}");
    assert!(rmse * 5.0 <= naive_rmse, "RMSE {rmse} vs the naive fill's {naive_rmse}");
    // the rank chosen by cross-validation of the observed rewards: the model's (1), and the same Q
    let auto = run(&[world.log(4, 400, 50, 0.2), world.policy()], &[("rank", json!(0))]);
    println!("rank chosen: {} (errors {})", auto["rank"], auto["rank_chosen_by"]["errors"]);
    assert_eq!(auto["rank"], 1, "{}", auto["rank_chosen_by"]);
    assert_eq!(auto["q"], v["q"]);
    // one rank more than the model's, held by a larger ridge
    let v2 = run(&[world.log(4, 400, 50, 0.2), world.policy()], &[("rank", json!(2)), ("ridge", json!(1e-3))]);
    let errs: Vec<f64> = grid(&v2).iter().filter(|c| !c.3).map(|&(s, a, x, _)| (x - exact[s][a]).powi(2)).collect();
    let rmse2 = (errs.iter().sum::<f64>() / errs.len() as f64).sqrt();
    println!("rank 2 with ridge 1e-3: RMSE {rmse2:.4}");
    assert!(rmse2 <= 0.05 * spread, "rank 2: RMSE {rmse2} vs spread {spread}");
}

#[test]
fn rank_and_support_are_checked() {
    let host = testing::host();
    let world = Grid::new(5, 5, 4, 2);
    let tables = [world.log(6, 100, 10, 0.1), world.policy()];
    testing::expect_error(
        host.run(METHOD, &testing::params(&[("rank", json!(5))]), &tables, testing::cpu()),
        "rank 5 is above min(states, actions) = 4",
    );
    // an action no state's data ever took
    let mut narrow = Grid::new(7, 5, 4, 2);
    narrow.support = vec![vec![0, 1]; 5];
    testing::expect_error(
        host.run(METHOD, &testing::params(&[]), &[narrow.log(8, 100, 10, 0.1), narrow.policy()], testing::cpu()),
        "the data never took action 2 at any state",
    );
    // rewards the completion's squares would overflow: refused with the scale, not a LAPACK error
    let mut huge = world.log(6, 100, 10, 0.1);
    if let Some((_, quiver_host::Values::F64(r))) = huge.columns.iter_mut().find(|(n, _)| n == "r") {
        r.iter_mut().for_each(|x| *x *= 1e300);
    }
    testing::expect_error(
        host.run(METHOD, &testing::params(&[]), &[huge, world.policy()], testing::cpu()),
        "rescale the rewards",
    );
    // one tried action per state, rank 2 and no ridge: each state's least squares is singular —
    // a parameter error that says what to change, not a solver's failure
    let mut sparse = Grid::new(9, 6, 4, 1);
    sparse.support = vec![vec![0], vec![1], vec![2], vec![3], vec![0], vec![1]];
    let err = host
        .run(
            METHOD,
            &testing::params(&[("rank", json!(2)), ("ridge", json!(0.0))]),
            &[sparse.log(10, 100, 10, 0.1), sparse.policy()],
            testing::cpu(),
        )
        .unwrap_err();
    assert_eq!(err.plugin_kind(), Some(testing::ErrorKind::InvalidParameter), "{err}");
    assert!(err.to_string().contains("raise 'ridge'"), "{err}");
}

#[test]
fn conforms() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/critic-lowrank");
    testing::conformance::check_method_with(&testing::own_plugin("critic_lowrank"), METHOD, &example);
}

/// More data, smaller error on the cells the data never saw: the completion's error is
/// statistical, not a bias of the method (measured: RMSE 0.0104 at 400 episodes, 0.0054 at 1600,
/// the 1/√n of four times the data).
#[test]
fn the_error_on_unobserved_cells_falls_with_more_data() {
    let world = Grid::new(3, 40, 20, 4);
    let exact = world.exact();
    let rmse = |episodes: usize| {
        let v = run(&[world.log(4, episodes, 50, 0.2), world.policy()], &[("rank", json!(1))]);
        let errs: Vec<f64> = grid(&v).iter().filter(|c| !c.3).map(|&(s, a, x, _)| (x - exact[s][a]).powi(2)).collect();
        (errs.iter().sum::<f64>() / errs.len() as f64).sqrt()
    };
    let (small, large) = (rmse(400), rmse(1600));
    println!("unobserved RMSE: {small:.4} at 400 episodes, {large:.4} at 1600");
    assert!(large < 0.65 * small, "{small} -> {large}");
}

quiver_testing::device_test!(
    /// The completions on each device give the CPU's Q: the same normal equations, solved by
    /// Cholesky on the GPU and by LAPACK's LU on the CPU, so equal to 1e-8 of Q's scale (the CUDA
    /// half runs where a GPU is present; its batch is the rewards, the mass and 40 transition slices).
    completions_equal_the_cpu_path_on_every_device,
    |device| {
        let world = Grid::new(3, 40, 20, 4);
        let tables = [world.log(4, 400, 50, 0.2), world.policy()];
        for params in [vec![("rank", json!(1))], vec![("rank", json!(2)), ("ridge", json!(1e-3))]] {
            let cpu = grid(&run(&tables, &params));
            let got =
                testing::host().run(METHOD, &testing::params(&params), &tables, testing::ctx(device)).unwrap();
            assert_eq!(got["device"], json!(device.name()), "the result names the device the completions ran on");
            let scale = cpu.iter().fold(0.0f64, |m, c| m.max(c.2.abs()));
            for ((s, a, x, _), (_, _, y, _)) in grid(&got).into_iter().zip(cpu) {
                assert!((x - y).abs() <= 1e-8 * scale, "({s}, {a}): {x} on {device:?}, {y} on the CPU");
            }
        }
    }
);

#[test]
fn the_completion_kernels_compile_to_ptx() {
    for entry in ["als_lines", "als_converged"] {
        testing::assert_kernel_compiles("als", quiver_rl::low_rank_cuda::ALS_KERNEL, entry);
    }
}
