//! `my-method` through the real plugin boundary: its own cdylib, loaded by the host.

use quiver_testing::{conformance, cpu, own_plugin, params, Table};
use std::path::Path;

const METHOD: &str = "my-method";

#[test]
fn averages_each_level_and_sorts_the_row() {
    let host = own_plugin("my_method");
    let mut h = host.aggregator(METHOD, &params(&[]), cpu()).unwrap();
    h.fit(&[]).unwrap();
    h.calibrate(&[]).unwrap();
    let test = Table::new("test")
        .with_f64("q_a_0.1", vec![1.0])
        .with_f64("q_a_0.9", vec![3.0])
        .with_f64("q_b_0.1", vec![5.0])
        .with_f64("q_b_0.9", vec![4.0]);
    let r = h.predict(&[test]).unwrap();
    // level 0.1: (1 + 5) / 2 = 3; level 0.9: (3 + 4) / 2 = 3.5
    assert_eq!(r.quantiles.data.as_slice(), &[3.0, 3.5]);
}

#[test]
fn conforms() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("EXAMPLE_DIR");
    conformance::check_method_with(&own_plugin("my_method"), METHOD, &example);
}
