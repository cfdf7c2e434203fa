//! `quantile-aggregation` computed by parts, in rounds, through the real plugin boundary
//! (docs/scale.md): fit rows cut at random into 1, 2, 7 and 64 partitions (uneven, some empty),
//! the calibration and test tables given whole, give the one-table result with full-batch Adam —
//! the weights, the fit's report (epochs, best epoch, every held-out loss), every metric, the CQR
//! adjustments and the test quantiles. The gradient's sums are added in another order than the
//! one-table run adds them, and Adam takes up to 60 steps on them, so they agree to rounding
//! grown by the steps: 1e-10 relative.

mod common;

use common::{data, Data};
use quiver_host::{Finished, RunContext, Table};
use quiver_testing as testing;
use serde_json::{json, Map, Value};

const METHOD: &str = "quantile-aggregation";

fn params(pairs: &[(&str, Value)]) -> Map<String, Value> {
    testing::params(pairs)
}

/// The whole tables of `d` after its first `n_fit` rows: 80 calibration rows and 40 test rows.
fn whole(d: &Data, n_fit: usize) -> Vec<Table> {
    vec![d.table("calibration", n_fit..n_fit + 80, true), d.table("test", n_fit + 80..n_fit + 120, true)]
}

#[test]
fn by_parts_equals_one_table() {
    let mut rng = testing::rng(8);
    let levels = [0.05, 0.25, 0.5, 0.75, 0.95];
    let full = ("batch_rows", json!(1_000_000_000));
    for (n, settings) in [
        // early stopping on a held-out tenth, CQR on the calibration table
        (
            1000,
            vec![
                ("granularity", json!("coarse")),
                ("solver", json!("gradient")),
                full.clone(),
                ("max_epochs", json!(60)),
                ("patience", json!(4)),
                ("conformal", json!("cqr")),
            ],
        ),
        // every row trained on, PAVA, blocks of 512 rows (n > 10 240) split between partitions
        (
            12_000,
            vec![
                ("granularity", json!("medium")),
                ("solver", json!("gradient")),
                full.clone(),
                ("max_epochs", json!(25)),
                ("holdout", json!(0.0)),
                ("monotone", json!("pava")),
                ("lr", json!(0.2)),
            ],
        ),
        (
            700,
            vec![
                ("granularity", json!("fine")),
                ("solver", json!("gradient")),
                full.clone(),
                ("max_epochs", json!(30)),
                ("holdout", json!(0.3)),
                ("seed", json!(5)),
            ],
        ),
        // the baselines have no weights: a count pass and the last
        (500, vec![("granularity", json!("median")), ("conformal", json!("cqr")), ("alphas", json!("0.1"))]),
        (500, vec![("granularity", json!("mean")), ("monotone", json!("none"))]),
    ] {
        let d = data(40 + n as u64, n + 120, 3, &levels);
        let boundaries: Vec<usize> = (0..n).collect();
        testing::parts::check_partitionings(
            &mut rng,
            METHOD,
            &params(&settings),
            &whole(&d, n),
            (n, &boundaries),
            |rows| vec![d.table("fit", rows, true)],
            1e-10,
        );
    }
}

/// Run by parts over `parts` (pieces of the fit rows) and return the error's text.
fn refusal(settings: &[(&str, Value)], d: &Data, parts: &[std::ops::Range<usize>], n_fit: usize) -> String {
    let host = testing::host();
    let partitions = || Ok(parts.iter().map(|r| Ok(vec![d.table("fit", r.clone(), true)])));
    host.run_in_rounds(METHOD, &params(settings), whole(d, n_fit), partitions, testing::cpu(), None)
        .map(|_| String::from("no error"))
        .unwrap_or_else(|e| e.to_string())
}

#[test]
fn what_is_not_computed_by_parts_is_refused_by_name() {
    let d = data(3, 3120, 2, &[0.1, 0.5, 0.9]);
    let halves = [0..1500, 1500..3000];
    let full = ("batch_rows", json!(1_000_000));
    for (settings, expect) in [
        (vec![("solver", json!("exact"))], "solver=exact solves one linear program"),
        (vec![("noncross", json!(true))], "solver=exact solves one linear program"),
        (vec![], "solver=auto solves the exact linear program for 3000 fit rows"),
        (vec![("solver", json!("gradient"))], "set batch_rows to at least 3000 (the fit rows) — now 1024"),
        (vec![("solver", json!("gradient")), full.clone(), ("max_epochs", json!(20_000))], "at most 9990 epochs"),
        (vec![("weights", json!("local")), ("solver", json!("gradient"))], "weights=local are not computed by parts"),
        (vec![("granularity", json!("none"))], "granularity=none scores the given tables whole"),
    ] {
        let e = refusal(&settings, &d, &halves, 3000);
        assert!(e.contains(expect), "{settings:?}: {e}");
    }
    // the tables the last pass reads whole are asked for in the first
    let host = testing::host();
    let settings = params(&[("solver", json!("gradient")), full.clone(), ("conformal", json!("cqr"))]);
    for (given, missing) in
        [(vec![], "no 'test' table"), (vec![d.table("test", 3000..3120, true)], "no 'calibration' table")]
    {
        let partitions = || Ok(halves.iter().map(|r| Ok(vec![d.table("fit", r.clone(), true)])));
        let e = host.run_in_rounds(METHOD, &settings, given, partitions, testing::cpu(), None).unwrap_err().to_string();
        assert!(e.contains(missing) && e.contains("given whole to every partition"), "{e}");
    }
    // a bad value is named by its row in the partition and where the partition starts
    let mut bad = data(3, 3120, 2, &[0.1, 0.5, 0.9]);
    bad.q[1][1520] = f64::NAN;
    let e = refusal(&[("solver", json!("gradient")), full.clone()], &bad, &halves, 3000);
    assert!(e.contains("column 'q_m0_0.5', row 21:") && e.contains("table 'fit' from row 1501 of all the data"), "{e}");
    // partitions with other columns refuse to merge
    let host = testing::host();
    let other = data(4, 3120, 3, &[0.1, 0.5, 0.9]);
    let partitions =
        || Ok([d.table("fit", 0..1500, true), other.table("fit", 1500..3000, true)].into_iter().map(|t| Ok(vec![t])));
    let e = host
        .run_in_rounds(
            METHOD,
            &params(&[("solver", json!("gradient")), full]),
            whole(&d, 3000),
            partitions,
            testing::cpu(),
            None,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("the partitions' forecast columns differ"), "{e}");
}

/// The passes by hand: the count, centre and spread passes, an epoch per pass, the last pass;
/// partitions that both claim the first row, an epoch's pass given fewer rows than the first, and
/// states of two passes are refused.
#[test]
fn the_passes_are_checked() {
    let host = testing::host();
    let settings = params(&[
        ("granularity", json!("coarse")),
        ("solver", json!("gradient")),
        ("batch_rows", json!(100_000)),
        ("max_epochs", json!(3)),
    ]);
    let est = host.create(METHOD, &settings, RunContext::default()).unwrap();
    assert!(est.in_rounds() && est.is_mergeable());
    let d = data(9, 420, 2, &[0.1, 0.5, 0.9]);
    let w = whole(&d, 300);
    let part = |r: std::ops::Range<usize>| -> Vec<Table> {
        let mut t = w.clone();
        t.push(d.table("fit", r, true));
        t
    };
    let offsets = |k: u64| vec![("fit".to_string(), k)];
    let pass = |b: Option<&[u8]>| -> Vec<u8> {
        let s1 = est.partial_in_round(&part(0..100), &offsets(0), b).unwrap();
        let s2 = est.partial_in_round(&part(100..300), &offsets(100), b).unwrap();
        est.merge(&s1, &s2).unwrap()
    };
    let mut b: Option<Vec<u8>> = None;
    let mut passes = 0;
    let result = loop {
        passes += 1;
        let state = pass(b.as_deref());
        if passes == 2 {
            let count = est.partial_in_round(&part(0..100), &offsets(0), None).unwrap();
            let e = est.merge(&count, &state).unwrap_err().to_string();
            assert!(e.contains("round 0 and one of round 1"), "{e}");
        }
        match est.finish_round(&state, b.as_deref()).unwrap() {
            Finished::Again(next) => {
                if passes == 4 {
                    // an epoch pass given 250 of the 300 rows
                    let s1 = est.partial_in_round(&part(0..100), &offsets(0), Some(&next)).unwrap();
                    let s2 = est.partial_in_round(&part(100..250), &offsets(100), Some(&next)).unwrap();
                    let e = est.finish_round(&est.merge(&s1, &s2).unwrap(), Some(&next)).unwrap_err().to_string();
                    assert!(e.contains("this pass saw 250 rows in its partitions, the first pass 300"), "{e}");
                }
                b = Some(next);
            }
            Finished::Result(r) => break r,
        }
        assert!(passes < 20, "the passes do not end");
    };
    // count, centre, spread, three epochs and the held-out loss of the last, the last pass
    assert_eq!(passes, 3 + 4 + 1);
    let one = host.run(METHOD, &settings, &part(0..300), testing::cpu()).unwrap();
    testing::parts::assert_json_close(&one, &result.into_json(), 1e-12, "by hand");
    // partitions without their offsets are refused in the first pass
    let s1 = est.partial_in_round(&part(0..100), &offsets(0), None).unwrap();
    let s2 = est.partial_in_round(&part(100..300), &offsets(0), None).unwrap();
    let e = est.merge(&s1, &s2).unwrap_err().to_string();
    assert!(e.contains("a partition of fit rows 0..100 merged with one of rows 0..200"), "{e}");
    // the last pass with both partitions at row 0
    let last = b.unwrap();
    let s1 = est.partial_in_round(&part(0..100), &offsets(0), Some(&last)).unwrap();
    let s2 = est.partial_in_round(&part(100..300), &offsets(0), Some(&last)).unwrap();
    let e = est.merge(&s1, &s2).unwrap_err().to_string();
    assert!(e.contains("two partitions start at row 0 of table 'fit'"), "{e}");
}
