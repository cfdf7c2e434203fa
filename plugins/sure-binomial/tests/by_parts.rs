//! `sure-binomial` computed by parts, in rounds, through the real plugin boundary
//! (docs/scale.md): units cut at random into 1, 2, 7 and 64 partitions (uneven, some empty) give
//! the one-table result — the pooled target, λ̂, URE, the certificate, the curve and every
//! estimate — for one and two samples, toward the pooled mean or a column m, λ searched or
//! fixed. The pooled mean is a ratio of sums of whole numbers (exact in any order); the sweeps'
//! sums agree to rounding: 1e-12 relative here (the certified gap, a difference of two risks,
//! to 1e-15 absolute).

use quiver_host::{RunContext, Table};
use quiver_testing as testing;
use rand::Rng;
use serde_json::json;

/// `p` units: trials from 2 to 40, proportions from a mixture, a target column m.
fn units(seed: u64, p: usize) -> Vec<(&'static str, Vec<f64>)> {
    let mut rng = testing::rng(seed);
    let mut cols: Vec<(&'static str, Vec<f64>)> =
        ["y", "n", "y1", "n1", "y2", "n2", "m"].into_iter().map(|c| (c, Vec::with_capacity(p))).collect();
    for _ in 0..p {
        let prob = if rng.random::<f64>() < 0.5 { 0.2 } else { 0.6 } + 0.1 * rng.random::<f64>();
        for g in 0..3 {
            let n = rng.random_range(2..=40) as f64;
            let y = (0..n as usize).filter(|_| rng.random::<f64>() < prob).count() as f64;
            cols[2 * g].1.push(y);
            cols[2 * g + 1].1.push(n);
        }
        cols[6].1.push((prob + 0.05 * (rng.random::<f64>() - 0.5)).clamp(0.0, 1.0));
    }
    cols
}

fn table(cols: &[(&'static str, Vec<f64>)], names: &[&str], rows: std::ops::Range<usize>) -> Vec<Table> {
    let mut t = Table::new("data");
    for (c, v) in cols.iter().filter(|(c, _)| names.contains(c)) {
        t = t.with_f64(c, v[rows.clone()].to_vec());
    }
    vec![t]
}

#[test]
fn by_parts_equals_one_table() {
    let mut rng = testing::rng(8);
    let cols = units(21, 250);
    let boundaries: Vec<usize> = (0..250).collect();
    for (params, names) in [
        (json!({}), &["y", "n"][..]),
        (json!({"curve": 70}), &["y", "n", "m"][..]),
        (json!({"sample": "two", "lambda": 12.5, "curve": 4}), &["y1", "n1", "y2", "n2"][..]),
        (json!({"sample": "two"}), &["y1", "n1", "y2", "n2", "m"][..]),
    ] {
        let params = params.as_object().unwrap().clone();
        testing::parts::check_partitionings(
            &mut rng,
            "sure-binomial",
            &params,
            &[],
            (250, &boundaries),
            |rows| table(&cols, names, rows),
            // the certified gap is a difference of two risks: their rounding, not its own size
            testing::parts::Close { rel: 1e-12, abs: 1e-15 },
        );
    }
}

/// Intervals are refused by parts by name; partitions that disagree on the column m are refused;
/// a bad count is named by its row and where its partition starts.
#[test]
fn refusals_name_what_and_where() {
    let host = testing::host();
    let mut cols = units(4, 30);
    let run = |params: serde_json::Value, cols: &[(&'static str, Vec<f64>)], second: &[&str]| {
        let parts =
            || Ok([(0..12, &["y", "n"][..]), (12..30, second)].into_iter().map(|(r, names)| Ok(table(cols, names, r))));
        host.run_in_rounds("sure-binomial", params.as_object().unwrap(), vec![], parts, RunContext::default(), None)
            .unwrap_err()
            .to_string()
    };
    let e = run(json!({"ci": "robust-ebci"}), &cols, &["y", "n"]);
    assert!(e.contains("ci=robust-ebci is not computed by parts"), "{e}");
    let e = run(json!({}), &cols, &["y", "n", "m"]);
    assert!(e.contains("1 partition(s) have a column m and 1 do not"), "{e}");
    cols[0].1[14] = cols[1].1[14] + 1.0;
    let e = run(json!({}), &cols, &["y", "n"]);
    assert!(e.contains("row 3") && e.contains("from row 13 of all the data"), "{e}");
}
