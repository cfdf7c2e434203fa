//! Helpers for tests that go through the real plugin boundary.

use crate::{Host, PLUGIN_PATH_ENV};
use std::path::PathBuf;

/// The folder of built plugins: the first entry of `QUIVER_PLUGIN_PATH` (set by
/// `cargo xtask test`), else the workspace's `target/plugins`.
pub fn plugin_dir() -> PathBuf {
    if let Some(first) = std::env::var_os(PLUGIN_PATH_ENV).and_then(|p| std::env::split_paths(&p).next()) {
        return first;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/plugins")
}

/// A host with every built plugin loaded; panics with the command to run when there are none,
/// or when one failed to load.
pub fn host() -> Host {
    let dir = plugin_dir();
    let mut host = Host::new();
    host.load_dir(&dir);
    assert!(
        !host.plugins().is_empty(),
        "no plugins in {}: run the tests with `cargo xtask test` (or `cargo xtask build` first)",
        dir.display()
    );
    assert!(host.failures().is_empty(), "plugins failed to load: {:?}", host.failures());
    host
}

/// Parameters from `(name, JSON value)` pairs.
pub fn params(pairs: &[(&str, serde_json::Value)]) -> serde_json::Map<String, serde_json::Value> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}
