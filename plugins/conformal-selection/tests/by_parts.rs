//! `conformal-selection` computed by parts through the real plugin boundary (docs/scale.md): the
//! calibration table given whole to every partition, the test units cut into 1, 2, 7 and 64
//! partitions at random (uneven, some empty) — the p-values, the selection and every number equal
//! the one-table run's bit for bit, with random tie-breaking (each unit's uniform drawn for its
//! place in the whole table), conservative tie-breaking, ties among the scores, and weights; states
//! scored against different calibration tables refuse to merge.

use quiver_host::Table;
use quiver_testing as testing;
use rand::Rng;
use serde_json::{json, Value};

const METHOD: &str = "conformal-selection";

/// Calibration and test units whose scores tie often (rounded to a tenth), a fifth of them
/// above the threshold 0; with weights when `weighted`.
fn tables(seed: u64, n: usize, m: usize, weighted: bool) -> (Table, Table) {
    let mut rng = testing::rng(seed);
    let mut draw = |k: usize| -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mu: Vec<f64> = (0..k).map(|_| (rng.random::<f64>() * 20.0).round() / 10.0 - 1.0).collect();
        let y: Vec<f64> = mu.iter().map(|m| m + (rng.random::<f64>() - 0.7)).collect();
        let w: Vec<f64> = (0..k).map(|_| 0.5 + rng.random::<f64>()).collect();
        (mu, y, w)
    };
    let (mu, y, w) = draw(n);
    let mut cal = Table::new("calibration").with_f64("y", y).with_f64("mu", mu);
    let (mu_t, _, w_t) = draw(m);
    let mut test = Table::new("test").with_f64("mu", mu_t);
    if weighted {
        cal = cal.with_f64("w", w);
        test = test.with_f64("w", w_t);
    }
    (cal, test)
}

#[test]
fn selection_by_parts_equals_the_one_table_selection_bit_for_bit() {
    let mut rng = testing::rng(21);
    for (seed, n, m) in [(1u64, 200usize, 40usize), (2, 50, 333), (3, 200, 2_000)] {
        for weighted in [false, true] {
            for tie_break in ["random", "conservative"] {
                let (cal, test) = tables(seed, n, m, weighted);
                let params = testing::params(&[("q", json!(0.2)), ("tie_break", json!(tie_break)), ("seed", json!(7))]);
                let parts = |r: std::ops::Range<usize>| vec![test.rows(r)];
                testing::parts::check_partitionings(&mut rng, METHOD, &params, &[cal], (m, &[]), parts, 0.0);
            }
        }
    }
}

#[test]
fn partitions_scored_against_different_calibrations_refuse_to_merge() {
    let host = testing::host();
    let est = host.create(METHOD, &testing::params(&[]), testing::cpu()).unwrap();
    let (cal_a, test) = tables(4, 100, 60, false);
    let (cal_b, _) = tables(5, 100, 60, false);
    let a = est.partial(&[cal_a.clone(), test.rows(0..30)], &[("test".into(), 0)]).unwrap();
    let b = est.partial(&[cal_b, test.rows(30..60)], &[("test".into(), 30)]).unwrap();
    let e = est.merge(&a, &b).unwrap_err().to_string();
    assert!(e.contains("different calibration tables"), "{e}");
    // the same calibration merges, and finishes to the one-table result
    let b = est.partial(&[cal_a.clone(), test.rows(30..60)], &[("test".into(), 30)]).unwrap();
    let merged: Value = est.finish(&est.merge(&a, &b).unwrap()).unwrap().into_json();
    let one = host.run(METHOD, &testing::params(&[]), &[cal_a, test], testing::cpu()).unwrap();
    testing::parts::assert_json_close(&one, &merged, 0.0, "two halves");
}
