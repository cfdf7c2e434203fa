//! `ope`'s finite-sample intervals (betting, empirical Bernstein, Hoeffding, from declared bounds)
//! through the real plugin boundary: coverage of the exact value by Monte Carlo at the sample
//! sizes users have — bandits with n = 200 and 1000 rows (5 actions; one design with importance
//! weights up to 30), trajectories with 100 episodes — at α = 0.1 and 0.05, each ≥ 1 − α − 2 se;
//! the mean widths are printed beside the asymptotic `t` interval's (and its coverage). Also: the
//! declared bounds are checked row by row, and a finite-sample kind without them is refused.

use quiver_host::Table;
use quiver_testing as testing;
use quiver_testing::mdp::FiniteMdp;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;

const K: usize = 5;
const FINITE: [&str; 3] = ["betting", "empirical-bernstein", "hoeffding"];

fn run(params: &[(&str, Value)], tables: &[Table]) -> Result<Value, quiver_host::HostError> {
    let host = testing::host();
    let mut h = host.create("ope", &testing::params(params), testing::cpu())?;
    h.step("fit", tables)?;
    Ok(h.step("values", tables)?.summary)
}

/// A bandit design: the logger's and the target's probabilities and the mean rewards at context
/// x ∈ [0, 1); rewards are Bernoulli.
struct Design {
    name: &'static str,
    logger: fn(f64) -> [f64; K],
    target: fn(f64) -> [f64; K],
    mean: fn(f64) -> [f64; K],
    /// max over x and k of target/logger: the declared weight bound.
    weight_max: f64,
}

fn designs() -> [Design; 2] {
    [
        Design {
            name: "mild weights (<= 4)",
            logger: |_| [0.3, 0.25, 0.2, 0.15, 0.1],
            target: |x| if x < 0.5 { [0.1, 0.1, 0.2, 0.2, 0.4] } else { [0.4, 0.3, 0.1, 0.1, 0.1] },
            mean: |x| [0.2 + 0.5 * x, 0.5, 0.7 - 0.4 * x, 0.3, 0.6 * x],
            weight_max: 4.0,
        },
        Design {
            name: "heavy weights (<= 30)",
            logger: |_| [0.4, 0.3, 0.2, 0.08, 0.02],
            target: |x| if x < 0.5 { [0.3, 0.3, 0.2, 0.1, 0.1] } else { [0.1, 0.1, 0.1, 0.1, 0.6] },
            mean: |x| [0.3, 0.4 * x, 0.5, 0.2, 0.9 * x],
            weight_max: 30.0,
        },
    ]
}

impl Design {
    /// The target's value E_x Σ_k π_k(x) mean_k(x), by the midpoint rule (the integrand is
    /// piecewise linear with its break at a cell edge, so the rule is exact up to rounding).
    fn truth(&self) -> f64 {
        let cells = 1000;
        (0..cells)
            .map(|i| {
                let x = (i as f64 + 0.5) / cells as f64;
                let (p, m) = ((self.target)(x), (self.mean)(x));
                (0..K).map(|k| p[k] * m[k]).sum::<f64>()
            })
            .sum::<f64>()
            / cells as f64
    }

    /// n logged rounds; the reward model is the truth shrunk towards 1/2 (wrong, inside [0, 1]).
    fn log(&self, seed: u64, n: usize) -> Table {
        let mut rng = testing::rng(seed);
        let mut cols: Vec<Vec<f64>> = (0..2 + 2 * K).map(|_| Vec::with_capacity(n)).collect();
        let mut a = Vec::with_capacity(n);
        for _ in 0..n {
            let x: f64 = rng.random();
            let (mu, pi, mean) = ((self.logger)(x), (self.target)(x), (self.mean)(x));
            let u: f64 = rng.random();
            let mut act = 0;
            let mut acc = mu[0];
            while u >= acc && act + 1 < K {
                act += 1;
                acc += mu[act];
            }
            a.push(act as i64);
            cols[0].push(f64::from(u8::from(rng.random::<f64>() < mean[act])));
            cols[1].push(mu[act]);
            for k in 0..K {
                cols[2 + k].push(pi[k]);
                cols[2 + K + k].push(0.5 + 0.6 * (mean[k] - 0.5));
            }
        }
        let mut t =
            Table::new("bandit").with_i64("a", a).with_f64("r", cols[0].clone()).with_f64("mu_prob", cols[1].clone());
        for k in 0..K {
            t = t.with_f64(&format!("pi_{k}"), cols[2 + k].clone());
            t = t.with_f64(&format!("qhat_{k}"), cols[2 + K + k].clone());
        }
        t
    }
}

/// Coverage and mean width per (estimator, kind), over `reps` data sets made by `data(rep)`.
#[derive(Default)]
struct Tally {
    hits: BTreeMap<String, (usize, f64, usize)>,
}

impl Tally {
    fn add(&mut self, v: &Value, kind: &str, keys: &[&str], truth: f64) {
        for key in keys {
            let (lo, hi) = (v[key]["lower"].as_f64().unwrap(), v[key]["upper"].as_f64().unwrap());
            let e = self.hits.entry(format!("{key} {kind}")).or_default();
            e.0 += usize::from(lo <= truth && truth <= hi);
            e.1 += hi - lo;
            e.2 += 1;
            let est = v[key]["estimate"].as_f64().unwrap();
            assert!(lo <= est && est <= hi, "{key} {kind}: [{lo}, {hi}] does not contain its estimate {est}");
            let want = if kind == "t" { "asymptotic" } else { "finite-sample" };
            assert_eq!(v[key]["valid"], json!(want), "{key} {kind}");
        }
    }

    /// Print the table and check every finite-sample coverage ≥ 1 − α − 2 se.
    fn check(&self, what: &str, alpha: f64) {
        for (name, &(hits, width, reps)) in &self.hits {
            let c = hits as f64 / reps as f64;
            let se = testing::binomial_se(1.0 - alpha, reps);
            println!(
                "{what}, alpha {alpha}: {name:<28} coverage {c:.3} (se {se:.3}), mean width {:.4}",
                width / reps as f64
            );
            if !name.ends_with(" t") {
                assert!(c >= 1.0 - alpha - 2.0 * se, "{what}: {name} covered {c} < 1 - {alpha} - 2 se");
            }
        }
    }
}

#[test]
fn bandit_finite_sample_intervals_cover_at_small_n() {
    let reps = 300;
    for design in designs() {
        let truth = design.truth();
        for n in [200, 1000] {
            for alpha in [0.1, 0.05] {
                let mut tally = Tally::default();
                for rep in 0..reps {
                    let log = design.log(7_000 + rep, n);
                    for kind in FINITE.iter().copied().chain(["t"]) {
                        let v = run(
                            &[
                                ("ci", json!(kind)),
                                ("alpha", json!(alpha)),
                                ("reward_range", json!("0,1")),
                                ("weight_max", json!(design.weight_max)),
                                ("resamples", json!(10)),
                            ],
                            std::slice::from_ref(&log),
                        )
                        .unwrap();
                        // betting also bounds SNIPW's target (with the weight bound); the others leave it
                        // to the bootstrap
                        let keys: &[&str] =
                            if kind == "betting" || kind == "t" { &["ipw", "dr", "snipw"] } else { &["ipw", "dr"] };
                        tally.add(&v, kind, keys, truth);
                    }
                }
                tally.check(&format!("bandit, {}, n = {n}", design.name), alpha);
            }
        }
    }
}

#[test]
fn trajectory_finite_sample_intervals_cover_at_100_episodes() {
    let (s, a, horizon) = (4, 2, 4);
    let mut mdp = FiniteMdp::random(47, s, a, 0.9);
    mdp.noise = 0.0; // rewards are the means, inside [-1, 1]
    let beta = mdp.random_policy(5, |_, _| true);
    let pi = mdp.random_policy(6, |_, _| true);
    let weight_max = (0..s * a).map(|k| pi[k] / beta[k]).fold(0.0, f64::max);
    let truth = mdp.horizon_value(&pi, horizon);
    // a reward model from elsewhere (not these data): the exact Q^π, shrunk
    let q_exact = mdp.q(&pi);
    let q = Table::new("q")
        .with_i64("s", (0..s * a).map(|k| (k / a) as i64).collect())
        .with_i64("a", (0..s * a).map(|k| (k % a) as i64).collect())
        .with_f64("q", q_exact.iter().map(|v| 0.8 * v).collect());
    let reps = 300;
    for alpha in [0.1, 0.05] {
        let mut tally = Tally::default();
        for rep in 0..reps {
            let data = mdp.sample(20_000 + rep, &beta, Some(&pi), 100, horizon);
            let tables = [data, mdp.policy_table(&pi), q.clone()];
            for kind in FINITE.iter().copied().chain(["t"]) {
                let v = run(
                    &[
                        ("ci", json!(kind)),
                        ("alpha", json!(alpha)),
                        ("reward_range", json!("-1,1")),
                        ("weight_max", json!(weight_max)),
                        ("resamples", json!(10)),
                    ],
                    &tables,
                )
                .unwrap();
                tally.add(&v, kind, &["tis", "pdis", "dr"], truth);
            }
        }
        tally.check(&format!("trajectories, 100 episodes, weights <= {weight_max:.2}"), alpha);
    }
}

#[test]
fn declared_bounds_are_required_and_checked() {
    let design = &designs()[0];
    let log = design.log(1, 50);
    let one = std::slice::from_ref(&log);
    for kind in FINITE {
        testing::expect_error(run(&[("ci", json!(kind))], one), "needs the rewards' range declared");
    }
    testing::expect_error(run(&[("ci", json!("hoeffding")), ("reward_range", json!("0,1"))], one), "needs weight_max");
    testing::expect_error(
        run(&[("ci", json!("betting")), ("reward_range", json!("1,0"))], one),
        "parameter 'reward_range' = \"1,0\" must be two finite numbers lo,hi with lo < hi",
    );
    testing::expect_error(run(&[("ci", json!("betting")), ("reward_range", json!("0,nan"))], one), "'reward_range'");
    // betting needs no weight bound for IPW; DR then falls back to the bootstrap, marked
    let v = run(&[("ci", json!("betting")), ("reward_range", json!("0,1")), ("resamples", json!(50))], one).unwrap();
    assert_eq!(v["ipw"]["valid"], json!("finite-sample"));
    assert_eq!(v["dr"]["valid"], json!("asymptotic"));
    assert_eq!(v["snipw"]["valid"], json!("asymptotic"));
    assert!(v["ci_note"].as_str().unwrap().contains("dr and snipw need weight_max"));
    // a reward outside the declared range, a weight above the bound, a reward model outside
    let bounded = [("ci", json!("betting")), ("reward_range", json!("0,0.5")), ("weight_max", json!(4.0))];
    testing::expect_error(run(&bounded, one), "column 'r', row");
    testing::expect_error(run(&bounded, one), "is outside reward_range [0, 0.5]");
    let tight = [("ci", json!("hoeffding")), ("reward_range", json!("0,1")), ("weight_max", json!(1.5))];
    testing::expect_error(run(&tight, one), "is above weight_max = 1.5: the declared bound does not hold");
    let mut wild = log.clone();
    wild.columns.iter_mut().find(|(n, _)| n == "qhat_2").unwrap().1 = quiver_host::Values::F64(vec![1.5; 50]);
    let v = run(&[("ci", json!("hoeffding")), ("reward_range", json!("0,1")), ("weight_max", json!(4.0))], &[wild])
        .unwrap();
    assert_eq!((&v["ipw"]["valid"], &v["dr"]["valid"]), (&json!("finite-sample"), &json!("asymptotic")));
    let note = v["notes"][0].as_str().unwrap();
    assert!(note.starts_with("dr: qhat_2 in row 1 is 1.5, outside reward_range [0, 1]"), "{note}");
}
