//! `my-method` through the real plugin boundary: its own cdylib, loaded by the host.

use quiver_testing::{conformance, cpu, own_plugin, params, Table};
use std::path::Path;

const METHOD: &str = "my-method";

#[test]
fn shrinks_by_the_james_stein_factor() {
    let host = own_plugin("my_method");
    let h = host.shrinker(METHOD, &params(&[]), cpu()).unwrap();
    let r = h.estimate(&[Table::new("data").with_f64("x", vec![-3.0, -1.0, 0.0, 1.0, 3.0])]).unwrap();
    // p = 5, mean 0, sum of squares 20: factor 1 - 2/20 = 0.9
    for (e, want) in r.estimates.iter().zip([-2.7, -0.9, 0.0, 0.9, 2.7]) {
        assert!((e - want).abs() < 1e-12, "{e} vs {want}");
    }
}

#[test]
fn conforms() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("EXAMPLE_DIR");
    conformance::check_method_with(&own_plugin("my_method"), METHOD, &example);
}
