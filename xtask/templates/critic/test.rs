//! `my-method` through the real plugin boundary: its own cdylib, loaded by the host.

use quiver_testing::{conformance, cpu, own_plugin, params, Table};
use std::path::Path;

const METHOD: &str = "my-method";

#[test]
fn value_is_the_mean_reward_of_each_state() {
    let host = own_plugin("my_method");
    let mut h = host.critic(METHOD, &params(&[]), cpu()).unwrap();
    h.fit(&[Table::new("transitions").with_i64("s", vec![0, 2, 2]).with_f64("r", vec![1.0, 2.0, 4.0])]).unwrap();
    // state 1 is never visited: the `unseen` value, 0
    assert_eq!(h.values(&[]).unwrap().values.as_slice(), &[1.0, 0.0, 3.0]);
}

#[test]
fn conforms() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("EXAMPLE_DIR");
    conformance::check_method_with(&own_plugin("my_method"), METHOD, &example);
}
