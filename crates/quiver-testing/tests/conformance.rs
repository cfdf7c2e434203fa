//! The conformance suite over every built plugin: each loaded method, whatever its family, must
//! pass every check of `quiver_testing::conformance` (see there for the list).

use quiver_testing::conformance;

#[test]
fn every_loaded_method_conforms() {
    let host = quiver_testing::host();
    let methods: Vec<String> = host.plugins().iter().map(|p| p.name().to_string()).collect();
    assert!(methods.len() >= 5, "expected the workspace's plugins, found {methods:?}");
    for method in &methods {
        conformance::check_method(&host, method);
        println!("{method}: conforms");
    }
}
