//! What the CLI's test files share: running the built `quiver` on the built plugins, reading its
//! output, writing input files.

#![allow(dead_code)] // each test file uses its own subset

use quiver_testing as testing;
use std::path::Path;
use std::process::{Command, Output};

/// `quiver ARGS --plugins PLUGINS`, with no plugin path from the environment.
pub fn quiver_in(plugins: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(args)
        .arg("--plugins")
        .arg(plugins)
        .env_remove("QUIVER_PLUGIN_PATH")
        .output()
        .expect("quiver runs")
}

/// `quiver ARGS` on the workspace's built plugins.
pub fn quiver(args: &[&str]) -> Output {
    quiver_in(&testing::plugin_dir(), args)
}

/// Standard output and standard error, together.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The process ended by exiting (not by a signal), with `code` (1: `doctor` found a problem;
/// 2: the request was refused with an error), and without a panic.
pub fn exited(o: &Output, code: i32) {
    use std::os::unix::process::ExitStatusExt;
    assert!(o.status.signal().is_none(), "killed by signal {:?}: {}", o.status.signal(), text(o));
    assert_eq!(o.status.code(), Some(code), "{}", text(o));
    assert!(!text(o).contains("panicked"), "{}", text(o));
}

/// The path of the example file `path` (under `examples/`).
pub fn example(path: &str) -> String {
    testing::workspace_root().join("examples").join(path).display().to_string()
}

/// Write `body` to `dir/name`; its path.
pub fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}
