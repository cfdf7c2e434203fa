//! `ope` computed by parts through the real plugin boundary (docs/scale.md): a bandit log cut into
//! 1, 2, 7 and 64 partitions — at random, uneven, some empty — gives the one-table result to
//! 1e-12 (relative) in every number; states refuse what is not theirs; kinds of interval that
//! cannot be merged are refused with the reason.

use quiver_host::{HostError, Table};
use quiver_testing as testing;
use quiver_testing::mdp::FiniteMdp;
use rand::Rng;
use serde_json::{json, Value};

const METHOD: &str = "ope";

/// A bandit log with 3 actions: columns a, r, mu_prob, pi_0..2, qhat_0..2.
struct Log {
    a: Vec<i64>,
    f: Vec<(String, Vec<f64>)>,
}

fn log(seed: u64, n: usize) -> Log {
    let mut rng = testing::rng(seed);
    let mut f: Vec<(String, Vec<f64>)> = ["r", "mu_prob", "pi_0", "pi_1", "pi_2", "qhat_0", "qhat_1", "qhat_2"]
        .iter()
        .map(|c| (c.to_string(), Vec::with_capacity(n)))
        .collect();
    let mut a = Vec::with_capacity(n);
    for _ in 0..n {
        let x: f64 = rng.random();
        let logger = [0.4, 0.35, 0.25];
        let target = if x < 0.5 { [0.7, 0.2, 0.1] } else { [0.1, 0.2, 0.7] };
        let u: f64 = rng.random();
        let act = usize::from(u >= 0.4) + usize::from(u >= 0.75);
        let mean = [x, 0.5, 1.0 - x];
        let row = [
            mean[act] + rng.random::<f64>() - 0.5,
            logger[act],
            target[0],
            target[1],
            target[2],
            mean[0] + 0.1,
            mean[1] - 0.05,
            mean[2] * 0.9,
        ];
        a.push(act as i64);
        for (c, v) in f.iter_mut().zip(row) {
            c.1.push(v);
        }
    }
    Log { a, f }
}

fn table(l: &Log, rows: std::ops::Range<usize>) -> Table {
    let mut t = Table::new("bandit").with_i64("a", l.a[rows.clone()].to_vec());
    for (name, v) in &l.f {
        t = t.with_f64(name, v[rows.clone()].to_vec());
    }
    t
}

#[test]
fn bandit_by_parts_equals_the_one_table_result() {
    let params = testing::params(&[("ci", json!("t")), ("alpha", json!(0.1))]);
    let mut rng = testing::rng(11);
    for (seed, n) in [(1u64, 40usize), (2, 333), (3, 2_000)] {
        let l = log(seed, n);
        let parts = |r: std::ops::Range<usize>| vec![table(&l, r)];
        testing::parts::check_partitionings(
            &mut rng,
            METHOD,
            &params,
            &[],
            (n, &(0..=n).collect::<Vec<_>>()),
            parts,
            1e-12,
        );
    }
}

#[test]
fn states_refuse_what_is_not_theirs_and_unmergeable_kinds_say_why() {
    let host = testing::host();
    let l = log(5, 100);
    let t = |p: &[(&str, Value)]| host.create(METHOD, &testing::params(p), testing::cpu()).unwrap();
    let at_10 = t(&[("ci", json!("t")), ("alpha", json!(0.1))]);
    let at_05 = t(&[("ci", json!("t")), ("alpha", json!(0.05))]);
    let a = at_10.partial(&[table(&l, 0..50)], &[]).unwrap();
    let b = at_05.partial(&[table(&l, 50..100)], &[]).unwrap();
    let e = at_10.merge(&a, &b).unwrap_err().to_string();
    assert!(e.contains("a state made with other parameters"), "{e}");
    let mut broken = a.clone();
    let mid = broken.len() / 2;
    broken[mid] ^= 1;
    let e = at_10.merge(&a, &broken).unwrap_err().to_string();
    assert!(e.contains("corrupted or truncated"), "{e}");
    let e = at_10.finish(&a[..a.len() - 3]).unwrap_err().to_string();
    assert!(e.contains("corrupted or truncated"), "{e}");
    // the merged state of both halves finishes to the one-table result
    let b10 = at_10.partial(&[table(&l, 50..100)], &[]).unwrap();
    let merged = at_10.finish(&at_10.merge(&a, &b10).unwrap()).unwrap().into_json();
    let one = host
        .run(
            METHOD,
            &testing::params(&[("ci", json!("t")), ("alpha", json!(0.1))]),
            &[table(&l, 0..100)],
            testing::cpu(),
        )
        .unwrap();
    testing::parts::assert_json_close(&one, &merged, 1e-12, "two halves");

    let betting = t(&[("ci", json!("betting")), ("reward_range", json!("-1,2"))]);
    let e = betting.partial(&[table(&l, 0..50)], &[]).unwrap_err().to_string();
    assert!(e.contains("ci=betting is not computed by parts") && e.contains("takes ci=t, bootstrap"), "{e}");
    // the observer hears of each partition and may stop the run between two
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log_of = seen.clone();
    let stop = quiver_host::Progress::new(move |done, total, label| {
        log_of.lock().unwrap().push((done, total, label.to_string()));
        done < 2
    });
    let params = testing::params(&[("ci", json!("t"))]);
    let parts = (0..4).map(|k| Ok(vec![table(&l, k * 25..(k + 1) * 25)]));
    let e = host.run_partitioned(METHOD, &params, Vec::new(), parts, testing::cpu(), Some(&stop)).unwrap_err();
    assert_eq!(e.plugin_kind(), Some(quiver_host::ErrorKind::Cancelled), "{e}");
    assert!(e.to_string().contains("cancelled after 2 partition(s)"), "{e}");
    assert_eq!(
        seen.lock().unwrap().iter().filter(|s| s.2 == "partitions").map(|s| (s.0, s.1)).collect::<Vec<_>>(),
        [(0, 4), (1, 4), (2, 4)]
    );
    let e = host
        .run_partitioned(
            "batch-pi",
            &serde_json::Map::new(),
            Vec::new(),
            std::iter::empty::<Result<Vec<Table>, HostError>>(),
            testing::cpu(),
            None,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot be computed by parts"), "{e}");
    let info = host.get(METHOD).unwrap();
    let props: Value = serde_json::from_str(info.manifest.properties_json.as_str()).unwrap();
    assert_eq!(props["mergeable"], json!(true));
}

/// The bootstrap by parts: each unit's Poisson count is keyed by its place in the log (a bandit
/// row) or its id (an episode), so every partition resamples its own units and the partitions'
/// resampled sums add up to the whole's — every interval equals the one-table run's to 1e-12.
#[test]
fn the_bootstrap_and_trajectories_by_parts_equal_the_one_table_result() {
    let mut rng = testing::rng(12);
    let boot = testing::params(&[("ci", json!("bootstrap")), ("resamples", json!(200)), ("seed", json!(5))]);
    for (seed, n) in [(4u64, 40usize), (5, 700)] {
        let l = log(seed, n);
        let rows: Vec<usize> = (0..=n).collect();
        testing::parts::check_partitionings(&mut rng, METHOD, &boot, &[], (n, &rows), |r| vec![table(&l, r)], 1e-12);
    }
    // trajectories of uneven length (episodes end at random), cut between episodes
    let mdp = FiniteMdp::random(43, 4, 2, 0.9);
    let (beta, pi) = (mdp.random_policy(1, |_, _| true), mdp.random_policy(2, |_, _| true));
    let data = mdp.sample(7, &beta, Some(&pi), 60, 9);
    let n = data.nrows;
    let Some(quiver_host::Values::I64(t)) = data.column("t") else { panic!("a t column") };
    let starts: Vec<usize> = (0..n).filter(|&i| t[i] == 0).chain([n]).collect();
    let q = Table::new("q")
        .with_i64("s", (0..8).map(|k| k / 2).collect())
        .with_i64("a", (0..8).map(|k| k % 2).collect())
        .with_f64("q", (0..8).map(|k| 1.0 + 0.3 * k as f64).collect());
    for ci in ["t", "bootstrap"] {
        let params = testing::params(&[
            ("ci", json!(ci)),
            ("resamples", json!(200)),
            ("seed", json!(3)),
            ("gamma", json!(0.95)),
        ]);
        let parts = |r: std::ops::Range<usize>| vec![data.rows(r)];
        // TIS, PDIS and SN-PDIS from pi_prob; then DM and DR too, with the policy and Q-hat whole
        testing::parts::check_partitionings(&mut rng, METHOD, &params, &[], (n, &starts), parts, 1e-12);
        let whole = [mdp.policy_table(&pi), q.clone()];
        testing::parts::check_partitionings(&mut rng, METHOD, &params, &whole, (n, &starts), parts, 1e-12);
    }
    // the finite-sample kinds that need only sums: Hoeffding and empirical Bernstein, from the
    // declared bounds (a range holding every reward, a bound on every ratio)
    let col = |name: &str| match data.column(name) {
        Some(quiver_host::Values::F64(v)) => v.clone(),
        _ => panic!("column {name}"),
    };
    let (r, mu, pp) = (col("r"), col("mu_prob"), col("pi_prob"));
    let (lo, hi) = r.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    let wmax = mu.iter().zip(&pp).map(|(m, p)| p / m).fold(0.0f64, f64::max);
    for ci in ["hoeffding", "empirical-bernstein"] {
        let params = testing::params(&[
            ("ci", json!(ci)),
            ("reward_range", json!(format!("{},{}", lo - 0.1, hi + 0.1))),
            ("weight_max", json!(wmax * 1.01)),
        ]);
        let parts = |r: std::ops::Range<usize>| vec![data.rows(r)];
        let whole = [mdp.policy_table(&pi), q.clone()];
        testing::parts::check_partitionings(&mut rng, METHOD, &params, &whole, (n, &starts), parts, 1e-12);
        // bandit rows, one of whose reward model values leaves the range: DR keeps the bootstrap's
        // interval, and the note names the row of the whole log
        let mut l = log(9, 300);
        l.f.iter_mut().find(|(c, _)| c == "qhat_1").unwrap().1[123] = 7.0;
        let params = testing::params(&[
            ("ci", json!(ci)),
            ("reward_range", json!("-0.5,1.5")),
            ("weight_max", json!(3.0)),
            ("resamples", json!(100)),
        ]);
        let rows: Vec<usize> = (0..=300).collect();
        testing::parts::check_partitionings(
            &mut rng,
            METHOD,
            &params,
            &[],
            (300, &rows),
            |r| vec![table(&l, r)],
            1e-12,
        );
        let one = host_run(&params, &[table(&l, 0..300)]);
        assert!(one["notes"][0].as_str().unwrap().contains("qhat_1 in row 124 is 7"), "{one}");
        assert_eq!(one["ipw"]["valid"], "finite-sample", "{one}");
    }
    // a policy table without Q-hat: the one-table run fits Q-hat on every episode, which no
    // partition sees
    let host = testing::host();
    let est = host.create(METHOD, &testing::params(&[("ci", json!("t"))]), testing::cpu()).unwrap();
    let e = est.partial(&[data.rows(0..starts[5]), mdp.policy_table(&pi)], &[]).unwrap_err().to_string();
    assert!(e.contains("needs a 'q' table"), "{e}");
    // partitions cut inside an episode: refused when merged, naming the episode
    let cut = (0..n).find(|&i| !starts.contains(&i) && i > starts[3]).unwrap();
    let (a, b) = (est.partial(&[data.rows(0..cut)], &[]).unwrap(), est.partial(&[data.rows(cut..n)], &[]).unwrap());
    let e = est.merge(&a, &b).unwrap_err().to_string();
    assert!(e.contains("is cut between two partitions"), "{e}");
}

fn host_run(params: &serde_json::Map<String, Value>, tables: &[Table]) -> Value {
    testing::host().run(METHOD, params, tables, testing::cpu()).unwrap()
}
