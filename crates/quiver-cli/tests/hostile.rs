//! Hostile input through the CLI, one test per class of defect: broken plugin files, requests
//! too large to serve, numbers at the edges of the double range, malformed tables and command
//! lines. Every case must end with a clear message and a deliberate exit code — never a signal,
//! a panic or a silently wrong number.

use quiver_testing as testing;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn quiver_in(plugins: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(args)
        .arg("--plugins")
        .arg(plugins)
        .env_remove("QUIVER_PLUGIN_PATH")
        .output()
        .expect("quiver runs")
}

fn quiver(args: &[&str]) -> Output {
    quiver_in(&testing::plugin_dir(), args)
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The process ended by exiting (not by a signal), with `code`.
fn exited(o: &Output, code: i32) {
    use std::os::unix::process::ExitStatusExt;
    assert!(o.status.signal().is_none(), "killed by signal {:?}: {}", o.status.signal(), text(o));
    assert_eq!(o.status.code(), Some(code), "{}", text(o));
    assert!(!text(o).contains("panicked"), "{}", text(o));
}

fn plugin_file(stem: &str) -> PathBuf {
    testing::plugin_dir().join(format!("lib{stem}.so"))
}

#[test]
fn truncated_or_corrupt_plugin_files_are_refused_before_they_are_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(plugin_file("ope")).unwrap();
    std::fs::write(dir.path().join("libope.so"), &good).unwrap();
    let victim = std::fs::read(plugin_file("sure_normal")).unwrap();
    let len = victim.len();
    let mut flipped = victim.clone();
    flipped[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes()); // e_phoff: program headers nowhere
    let cases: Vec<(String, Vec<u8>)> = [0, 3, 64, 4096, 100_000, len / 2, len - 4096, len - 1]
        .iter()
        .map(|&n| (format!("truncated to {n} bytes"), victim[..n].to_vec()))
        .chain([("program headers past the end".to_string(), flipped)])
        .collect();
    for (what, bytes) in cases {
        std::fs::write(dir.path().join("libsure_normal.so"), &bytes).unwrap();
        let o = quiver_in(dir.path(), &["doctor"]);
        exited(&o, 1);
        let out = text(&o);
        assert!(out.contains("ok    ope"), "{what}: the good plugin still loads: {out}");
        assert!(out.contains("FAIL  ") && out.contains("libsure_normal.so"), "{what}: {out}");
        let o = quiver_in(dir.path(), &["list"]);
        assert!(o.status.code().is_some(), "{what}: list survives");
    }
}
