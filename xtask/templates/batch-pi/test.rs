//! `my-method` through the real plugin boundary: its own cdylib, loaded by the host.

use quiver_testing::{conformance, cpu, own_plugin, params, Table};
use std::path::Path;

const METHOD: &str = "my-method";

#[test]
fn bound_is_the_conformal_quantile() {
    let host = own_plugin("my_method");
    let mut h = host.batch_predictor(METHOD, &params(&[]), cpu()).unwrap();
    h.calibrate(&[Table::new("calibration").with_f64("score", (1..=19).map(f64::from).collect())]).unwrap();
    // n = 19, alpha = 0.1: k = ceil(20 * 0.9) = 18
    assert_eq!(h.bound(&[]).unwrap().upper, 18.0);
}

#[test]
fn conforms() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("EXAMPLE_DIR");
    conformance::check_method_with(&own_plugin("my_method"), METHOD, &example);
}
