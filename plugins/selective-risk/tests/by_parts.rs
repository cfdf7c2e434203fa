//! `selective-risk` computed by parts through the real plugin boundary (docs/scale.md): λ̂ from
//! the calibration table every partition reads whole, the test judgments cut into 1, 2, 7 and 64
//! partitions at random (uneven, some empty) — the accepted judgments, their scores and every
//! number equal the one-table run's bit for bit, for both rules and for the BPE score; states
//! calibrated on different tables refuse to merge.

use quiver_host::Table;
use quiver_testing as testing;
use rand::Rng;
use serde_json::json;

const METHOD: &str = "selective-risk";

/// Judgments with scores in [0, 1) (tied to a hundredth; as BPE inputs p_fwd, p_rev when `bpe`),
/// wrong more often at high scores.
fn table(rng: &mut impl Rng, role: &str, k: usize, bpe: bool) -> Table {
    let s: Vec<f64> = (0..k).map(|_| (rng.random::<f64>() * 100.0).floor() / 100.0).collect();
    let mut t = if bpe {
        let f: Vec<f64> = s.iter().map(|x| 0.5 + 0.45 * x).collect();
        let r: Vec<f64> = s.iter().map(|x| 0.5 - 0.4 * x * x).collect();
        Table::new(role).with_f64("p_fwd", f).with_f64("p_rev", r)
    } else {
        Table::new(role).with_f64("score", s.clone())
    };
    if role == "calibration" {
        t = t.with_bool("error", s.iter().map(|x| rng.random::<f64>() < x * 0.3).collect());
    }
    t
}

#[test]
fn selective_risk_by_parts_equals_the_one_table_result_bit_for_bit() {
    let mut rng = testing::rng(31);
    for (n, m) in [(200usize, 40usize), (500, 333), (2_000, 2_000)] {
        for rule in ["scope", "ltt"] {
            for bpe in [false, true] {
                let cal = table(&mut rng, "calibration", n, bpe);
                let test = table(&mut rng, "test", m, bpe);
                let params = testing::params(&[("alpha", json!(0.1)), ("rule", json!(rule))]);
                let parts = |r: std::ops::Range<usize>| vec![test.rows(r)];
                testing::parts::check_partitionings(&mut rng, METHOD, &params, &[cal], (m, &[]), parts, 0.0);
            }
        }
    }
}

#[test]
fn partitions_calibrated_on_different_tables_refuse_to_merge() {
    let mut rng = testing::rng(32);
    let host = testing::host();
    let est = host.create(METHOD, &testing::params(&[("alpha", json!(0.2))]), testing::cpu()).unwrap();
    let (cal_a, cal_b) = (table(&mut rng, "calibration", 300, false), table(&mut rng, "calibration", 301, false));
    let test = table(&mut rng, "test", 50, false);
    let a = est.partial(&[cal_a, test.rows(0..25)], &[]).unwrap();
    let b = est.partial(&[cal_b, test.rows(25..50)], &[]).unwrap();
    let e = est.merge(&a, &b).unwrap_err().to_string();
    assert!(e.contains("different calibration tables"), "{e}");
}
