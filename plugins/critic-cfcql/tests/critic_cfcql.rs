//! `critic-cfcql` through the real plugin boundary: one-step data where Q is the reward less the
//! penalty written out by hand (the oracle); with one agent it equals `critic-cql`; V at or below
//! the unpenalised V at every state; the penalty averaged under π at most CQL's joint one for 2,
//! 3 and 4 agents on random MDPs whose behaviour is a product of the agents' policies; Q linear in
//! α; the KL weights; bad input named by table, column and row.

// states, agents and actions indexed together, as the formulas write them
#![allow(clippy::needless_range_loop)]

use quiver_host::Table;
use quiver_testing as testing;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::path::Path;

const METHOD: &str = "critic-cfcql";

/// A random multi-agent MDP: `states` states, `agents` agents with `actions` each; joint
/// rewards and next-state laws; per-agent behaviour and target policies (product policies).
struct World {
    states: usize,
    agents: usize,
    actions: usize,
    reward: Vec<f64>,    // [s][joint]
    next: Vec<Vec<f64>>, // [s][joint] -> law over s'
    behaviour: Vec<Vec<Vec<f64>>>,
    target: Vec<Vec<Vec<f64>>>,
}

fn simplex(rng: &mut impl Rng, a: usize, floor: f64) -> Vec<f64> {
    let v: Vec<f64> = (0..a).map(|_| floor + rng.random::<f64>()).collect();
    let s: f64 = v.iter().sum();
    v.into_iter().map(|x| x / s).collect()
}

impl World {
    fn new(seed: u64, states: usize, agents: usize, actions: usize) -> World {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let joint = actions.pow(agents as u32);
        World {
            states,
            agents,
            actions,
            reward: (0..states * joint).map(|_| rng.random::<f64>() * 2.0 - 0.5).collect(),
            next: (0..states * joint).map(|_| simplex(&mut rng, states, 0.1)).collect(),
            behaviour: (0..agents).map(|_| (0..states).map(|_| simplex(&mut rng, actions, 0.3)).collect()).collect(),
            target: (0..agents).map(|_| (0..states).map(|_| simplex(&mut rng, actions, 0.3)).collect()).collect(),
        }
    }
    fn joint_id(&self, a: &[usize]) -> usize {
        a.iter().rev().fold(0, |acc, &x| acc * self.actions + x)
    }
    fn draw(rng: &mut impl Rng, p: &[f64]) -> usize {
        let u: f64 = rng.random();
        let mut acc = 0.0;
        p.iter()
            .position(|x| {
                acc += x;
                u < acc
            })
            .unwrap_or(p.len() - 1)
    }
    /// `episodes` episodes of `len` steps (the last one done), the agents acting independently.
    fn log(&self, seed: u64, episodes: usize, len: usize) -> Table {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let (mut ep, mut t, mut s, mut sn, mut r, mut done) = (vec![], vec![], vec![], vec![], vec![], vec![]);
        let mut acts = vec![Vec::new(); self.agents];
        for e in 0..episodes {
            let mut st = rng.random_range(0..self.states);
            for k in 0..len {
                let a: Vec<usize> = (0..self.agents).map(|i| Self::draw(&mut rng, &self.behaviour[i][st])).collect();
                let j = self.joint_id(&a);
                let next = Self::draw(&mut rng, &self.next[st * self.actions.pow(self.agents as u32) + j]);
                ep.push(e as i64);
                t.push(k as i64);
                s.push(st as i64);
                sn.push(next as i64);
                r.push(self.reward[st * self.actions.pow(self.agents as u32) + j] + 0.1 * (rng.random::<f64>() - 0.5));
                done.push(k + 1 == len);
                for i in 0..self.agents {
                    acts[i].push(a[i] as i64);
                }
                st = next;
            }
        }
        let mut table = Table::new("transitions").with_i64("episode", ep).with_i64("t", t).with_i64("s", s);
        for (i, a) in acts.into_iter().enumerate() {
            table = table.with_i64(&format!("a_{i}"), a);
        }
        table.with_f64("r", r).with_i64("s_next", sn).with_bool("done", done)
    }
    fn policy(&self) -> Table {
        let (mut s, mut agent, mut a, mut p) = (vec![], vec![], vec![], vec![]);
        for i in 0..self.agents {
            for st in 0..self.states {
                for x in 0..self.actions {
                    s.push(st as i64);
                    agent.push(i as i64);
                    a.push(x as i64);
                    p.push(self.target[i][st][x]);
                }
            }
        }
        Table::new("policy").with_i64("s", s).with_i64("agent", agent).with_i64("a", a).with_f64("prob", p)
    }
}

fn run(tables: &[Table], params: &[(&str, Value)]) -> Value {
    testing::host().run(METHOD, &testing::params(params), tables, testing::cpu()).unwrap()
}

fn arr(v: &Value, path: &[&str]) -> Vec<f64> {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_array().unwrap_or_else(|| panic!("{path:?} in {v}")).iter().map(|y| y.as_f64().unwrap()).collect()
}

#[test]
fn one_step_q_is_the_reward_less_the_counterfactual_penalty() {
    // two agents, two actions, one state, every episode one step: Q(a) = R̂(a) − α Σ_i λ_i (π_i(a_i)
    // β̂_{−i}(a_{−i})/β̂(a) − 1) with λ = 1/2, from the counts written here
    let joint: [(i64, i64, usize, f64); 4] = [(0, 0, 3, 1.0), (1, 0, 2, 0.5), (0, 1, 4, -1.0), (1, 1, 1, 2.0)];
    let (mut a0, mut a1, mut r) = (vec![], vec![], vec![]);
    for &(x, y, count, reward) in &joint {
        for _ in 0..count {
            a0.push(x);
            a1.push(y);
            r.push(reward);
        }
    }
    let n = r.len();
    let data = Table::new("transitions")
        .with_i64("episode", (0..n as i64).collect())
        .with_i64("t", vec![0; n])
        .with_i64("s", vec![0; n])
        .with_i64("a_0", a0)
        .with_i64("a_1", a1)
        .with_f64("r", r)
        .with_i64("s_next", vec![0; n])
        .with_bool("done", vec![true; n]);
    let pi = [[0.7, 0.3], [0.2, 0.8]];
    let policy = Table::new("policy")
        .with_i64("s", vec![0; 4])
        .with_i64("agent", vec![0, 0, 1, 1])
        .with_i64("a", vec![0, 1, 0, 1])
        .with_f64("prob", vec![0.7, 0.3, 0.2, 0.8]);
    let alpha = 0.6;
    let v = run(&[data, policy], &[("alpha", json!(alpha))]);
    let (q, a_0, a_1) = (arr(&v, &["q", "q"]), arr(&v, &["q", "a_0"]), arr(&v, &["q", "a_1"]));
    let total = n as f64;
    let count = |x: usize, y: usize| joint.iter().find(|j| j.0 == x as i64 && j.1 == y as i64).unwrap().2 as f64;
    let marginal0 = |x: usize| (count(x, 0) + count(x, 1)) / total; // β̂ of agent 0's action
    let marginal1 = |y: usize| (count(0, y) + count(1, y)) / total;
    for k in 0..4 {
        let (x, y) = (a_0[k] as usize, a_1[k] as usize);
        let beta = count(x, y) / total;
        let reward = joint.iter().find(|j| j.0 == x as i64 && j.1 == y as i64).unwrap().3;
        // agent 0 deviates with the data's a_1; agent 1 with the data's a_0
        let d0 = pi[0][x] * marginal1(y);
        let d1 = pi[1][y] * marginal0(x);
        let want = reward - alpha * (0.5 * d0 / beta + 0.5 * d1 / beta - 1.0);
        assert!((q[k] - want).abs() < 1e-12, "({x}, {y}): {} vs {want}", q[k]);
    }
}

#[test]
fn with_one_agent_it_is_critic_cql() {
    let world = World::new(1, 5, 1, 3);
    let data = world.log(2, 200, 6);
    let v = run(&[data.clone(), world.policy()], &[("alpha", json!(0.8))]);
    // the same log and policy in critic-cql's columns
    let mut cql_data = data.clone();
    cql_data.columns.iter_mut().for_each(|(name, _)| {
        if name == "a_0" {
            *name = "a".into()
        }
    });
    let p = world.policy();
    let cql_policy = Table { columns: p.columns.into_iter().filter(|(n, _)| n != "agent").collect(), ..p };
    let host = testing::host();
    let c = host
        .run("critic-cql", &testing::params(&[("alpha", json!(0.8))]), &[cql_data, cql_policy], testing::cpu())
        .unwrap();
    for key in ["q", "q_unpenalized"] {
        let (x, y) = (arr(&v, &[key, "q"]), arr(&c, &[key, "q"]));
        assert_eq!(x.len(), y.len());
        assert!(x.iter().zip(&y).all(|(a, b)| (a - b).abs() < 1e-10), "{key}: {x:?} vs {y:?}");
    }
    let (x, y) = (arr(&v, &["v", "v"]), arr(&c, &["v", "v"]));
    assert!(x.iter().zip(&y).all(|(a, b)| (a - b).abs() < 1e-10));
}

/// On random MDPs with 2, 3 and 4 agents acting independently: V_CF ≤ V at every state, the
/// penalty averaged under π at most CQL's χ², and Q linear in α.
#[test]
fn below_the_unpenalised_value_and_less_pessimistic_than_joint_cql() {
    for (agents, seed) in [(2usize, 3u64), (2, 4), (3, 5), (3, 6), (4, 7)] {
        let world = World::new(seed, 3, agents, 2);
        // enough episodes that every joint action is seen at every state
        let data = world.log(seed + 100, 400 * agents, 8);
        let tables = [data, world.policy()];
        let v1 = run(&tables, &[("alpha", json!(1.0))]);
        let gap = arr(&v1, &["gap", "v"]);
        assert!(gap.iter().all(|&g| g <= 1e-12), "{agents} agents: V above the unpenalised V: {gap:?}");
        let (cf, cql) = (arr(&v1, &["penalty_per_alpha", "cfcql"]), arr(&v1, &["penalty_per_alpha", "cql"]));
        for (a, b) in cf.iter().zip(&cql) {
            assert!(*a >= -1e-12 && a <= &(b + 1e-12), "{agents} agents: penalty {a} vs CQL's {b}");
        }
        // Q(2α) − Q(0) = 2 (Q(α) − Q(0))
        let q0 = arr(&v1, &["q_unpenalized", "q"]);
        let q1 = arr(&v1, &["q", "q"]);
        let q2 = arr(&run(&tables, &[("alpha", json!(2.0))]), &["q", "q"]);
        for k in 0..q0.len() {
            assert!(((q2[k] - q0[k]) - 2.0 * (q1[k] - q0[k])).abs() < 1e-9);
        }
        println!(
            "{agents} agents (seed {seed}): mean penalty per alpha CFCQL {:.3}, CQL {:.3}",
            cf.iter().sum::<f64>() / cf.len() as f64,
            cql.iter().sum::<f64>() / cql.len() as f64
        );
    }
}

#[test]
fn kl_weights_favour_the_agent_that_strays_and_sum_to_one() {
    let mut world = World::new(9, 2, 2, 3);
    // agent 1's target is far from its behaviour, agent 0's equal to it
    world.target[0] = world.behaviour[0].clone();
    world.target[1] = (0..2).map(|_| vec![0.8, 0.1, 0.1]).collect();
    world.behaviour[1] = (0..2).map(|_| vec![0.1, 0.45, 0.45]).collect();
    let tables = [world.log(10, 3000, 4), world.policy()];
    let v = run(&tables, &[("agent_weights", json!("kl")), ("temperature", json!(5.0))]);
    for w in v["penalty_per_alpha"]["agent_weights"].as_array().unwrap() {
        let w: Vec<f64> = w.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(w[1] > 0.9, "{w:?}");
    }
    // temperature 0: uniform
    let v0 = run(&tables, &[("agent_weights", json!("kl")), ("temperature", json!(0.0))]);
    let u = run(&tables, &[]);
    assert_eq!(v0["q"], u["q"]);
}

#[test]
fn bad_input_names_table_column_and_row() {
    let host = testing::host();
    let world = World::new(11, 3, 2, 2);
    let (data, policy) = (world.log(12, 300, 5), world.policy());
    let fail = |tables: &[Table], needle: &str| {
        testing::expect_error(host.run(METHOD, &testing::params(&[]), tables, testing::cpu()), needle);
    };
    let set = |t: &Table, name: &str, row: usize, v: quiver_host::Values| -> Table {
        let mut t = t.clone();
        let col = &mut t.columns.iter_mut().find(|(n, _)| n == name).unwrap().1;
        match (col, v) {
            (quiver_host::Values::I64(c), quiver_host::Values::I64(x)) => c[row] = x[0],
            (quiver_host::Values::F64(c), quiver_host::Values::F64(x)) => c[row] = x[0],
            _ => panic!("kind"),
        }
        t
    };
    fail(
        &[set(&data, "a_1", 7, quiver_host::Values::I64(vec![-2])), policy.clone()],
        "table 'transitions', column 'a_1', row 8",
    );
    fail(
        &[data.clone(), set(&policy, "agent", 3, quiver_host::Values::I64(vec![5]))],
        "table 'policy', column 'agent', row 4: value 5 is not an agent",
    );
    fail(
        &[data.clone(), set(&policy, "prob", 0, quiver_host::Values::F64(vec![0.9]))],
        "table 'policy', column 'prob', row 1: agent 0's probabilities at state 0 sum to",
    );
    let no_actions =
        Table { columns: data.columns.iter().filter(|(n, _)| !n.starts_with("a_")).cloned().collect(), ..data.clone() };
    fail(&[no_actions, policy.clone()], "a_*");
    // a target action the data never took with the other agent's logged action
    let mut rare = World::new(13, 1, 2, 2);
    rare.behaviour[0] = vec![vec![1.0, 0.0]];
    fail(&[rare.log(14, 50, 3), rare.policy()], "never took there");
}

#[test]
fn conforms() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/critic-cfcql");
    testing::conformance::check_method_with(&testing::own_plugin("critic_cfcql"), METHOD, &example);
}
