//! `sure-normal` computed by parts, in rounds, through the real plugin boundary (docs/scale.md):
//! units cut at random into 1, 2, 7 and 64 partitions (uneven, some empty) give the one-table
//! result — λ̂, SURE, the search's certificate, the curve and every estimate. The sweeps' sums
//! are added in another order than the one-table run adds them, so they agree to rounding, and
//! the search takes the same path on them: 1e-12 relative here (the certified gap, a difference
//! of two risks, to 1e-15 absolute).

use quiver_host::{Finished, RunContext, Table};
use quiver_testing as testing;
use rand::Rng;
use serde_json::json;

/// `p` units with variances from 0.1 to 4 and means spread around 1.
fn units(seed: u64, p: usize) -> (Vec<f64>, Vec<f64>) {
    let mut rng = testing::rng(seed);
    let a: Vec<f64> = (0..p).map(|_| 0.1 + 3.9 * rng.random::<f64>()).collect();
    let x: Vec<f64> =
        a.iter().map(|ai| 1.0 + 2.0 * (rng.random::<f64>() - 0.5) + ai.sqrt() * (rng.random::<f64>() - 0.5)).collect();
    (x, a)
}

fn table(x: &[f64], a: &[f64], rows: std::ops::Range<usize>) -> Vec<Table> {
    vec![Table::new("data").with_f64("x", x[rows.clone()].to_vec()).with_f64("a", a[rows].to_vec())]
}

#[test]
fn by_parts_equals_one_table() {
    let mut rng = testing::rng(5);
    let (x, a) = units(17, 300);
    let boundaries: Vec<usize> = (0..x.len()).collect();
    for params in [
        json!({"method": "xkb-grand-mean"}),
        json!({"method": "xkb-location", "location": 0.5, "curve": 70}),
        json!({"method": "xkb-grand-mean", "lambda": 0.7, "curve": 5}),
        json!({"method": "xkb-location", "location": -3.0}),
    ] {
        let params = params.as_object().unwrap().clone();
        testing::parts::check_partitionings(
            &mut rng,
            "sure-normal",
            &params,
            &[],
            (x.len(), &boundaries),
            |rows| table(&x, &a, rows),
            // the certified gap is a difference of two risks: their rounding, not its own size
            testing::parts::Close { rel: 1e-12, abs: 1e-15 },
        );
    }
}

/// The passes, driven by hand: the first partial takes no broadcast, every finish but the last
/// answers with one, and the last gives the result; states of different passes, a broadcast
/// given to the wrong pass, and the same data given short in the last pass are refused.
#[test]
fn rounds_are_driven_by_broadcasts_and_checked() {
    let host = testing::host();
    let params = json!({"method": "xkb-grand-mean"}).as_object().unwrap().clone();
    let est = host.create("sure-normal", &params, RunContext::default()).unwrap();
    assert!(est.in_rounds() && est.is_mergeable());
    let (x, a) = units(3, 50);
    let (first, second) = (table(&x, &a, 0..20), table(&x, &a, 20..50));
    let offsets = |k: u64| vec![("data".to_string(), k)];
    let pass = |b: Option<&[u8]>| -> Vec<u8> {
        let s1 = est.partial_in_round(&first, &offsets(0), b).unwrap();
        let s2 = est.partial_in_round(&second, &offsets(20), b).unwrap();
        est.merge(&s1, &s2).unwrap()
    };
    let moments = pass(None);
    let Finished::Again(b1) = est.finish_round(&moments, None).unwrap() else { panic!("a second pass") };
    // one-shot finish of a method computed in rounds says what to do instead
    let e = est.finish(&moments).unwrap_err().to_string();
    assert!(e.contains("needs another pass"), "{e}");
    let sweep = pass(Some(&b1));
    let e = est.merge(&moments, &sweep).unwrap_err().to_string();
    assert!(e.contains("round 0 and one of round 1"), "{e}");
    let e = est.finish_round(&sweep, None).unwrap_err().to_string();
    assert!(e.contains("the broadcast of round 0 with a state of round 1"), "{e}");
    let e = est.partial_in_round(&first, &offsets(0), Some(&moments)).unwrap_err().to_string();
    assert!(e.contains("a state where a broadcast belongs"), "{e}");
    let mut b = b1;
    let mut passes = 1;
    let result = loop {
        passes += 1;
        assert!(passes < 100, "the search ends");
        let state = pass(Some(&b));
        match est.finish_round(&state, Some(&b)).unwrap() {
            Finished::Again(next) => b = next,
            Finished::Result(out) => break out.into_json(),
        }
    };
    let one = host.run("sure-normal", &params, &table(&x, &a, 0..50), RunContext::default()).unwrap();
    testing::parts::assert_json_close(&one, &result, 1e-9, "by hand");
    // the estimates pass given a partition short
    let last = b;
    let s1 = est.partial_in_round(&first, &offsets(0), Some(&last)).unwrap();
    let e = est.finish_round(&s1, Some(&last)).unwrap_err().to_string();
    assert!(e.contains("20 units in the last pass, 50 in the first"), "{e}");
}

/// What is not computed by parts is refused by name, and a run by parts names a bad row with
/// where its partition starts.
#[test]
fn refusals_name_what_and_where() {
    let host = testing::host();
    let (x, mut a) = units(9, 40);
    let run = |params: serde_json::Value, a: &[f64]| {
        let parts = || Ok([0..15, 15..40].into_iter().map(|r| Ok(table(&x, a, r))));
        host.run_in_rounds("sure-normal", params.as_object().unwrap(), vec![], parts, RunContext::default(), None)
            .unwrap_err()
            .to_string()
    };
    let e = run(json!({"method": "xkb-monotone"}), &a);
    assert!(e.contains("method 'xkb-monotone' is not computed by parts"), "{e}");
    let e = run(json!({"method": "xkb-grand-mean", "ci": "robust-ebci"}), &a);
    assert!(e.contains("ci=robust-ebci is not computed by parts"), "{e}");
    a[22] = -1.0;
    let e = run(json!({"method": "xkb-grand-mean"}), &a);
    assert!(e.contains("column 'a', row 8") && e.contains("from row 16 of all the data"), "{e}");
    // partitions read once cannot serve a method computed in rounds
    a[22] = 1.0;
    let once = [0..15, 15..40].into_iter().map(|r| Ok(table(&x, &a, r)));
    let params = json!({"method": "xkb-grand-mean"}).as_object().unwrap().clone();
    let e = host.run_partitioned("sure-normal", &params, vec![], once, RunContext::default(), None).unwrap_err();
    assert!(e.to_string().contains("can be read only once"), "{e}");
}
