//! The compatibility promise of docs/abi.md, tested: a plugin built against the frozen copy of
//! ABI 0.4 (tests/fixtures/frozen-abi-0.4, which never changes) loads and runs with the current
//! host — through the CLI and through the host's API — with every kind of output it can give.
//! A change of the ABI that breaks this test breaks every plugin users have built.

use quiver_host::{Host, Table};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Build the frozen plugin (a copy, with this workspace's Cargo.lock, into the shared target
/// folder) and put it alone in a plugin folder under `work`.
fn build_frozen_plugin(work: &Path) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
    let src = work.join("src");
    copy_dir(&root.join("tests/fixtures/frozen-abi-0.4"), &src);
    std::fs::copy(root.join("Cargo.lock"), src.join("plugin/Cargo.lock")).unwrap();
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or(root.join("target"));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(src.join("plugin/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the frozen ABI 0.4 plugin failed");
    let file = format!("{}frozen_abi_plugin{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    let dir = work.join("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(target.join("release").join(&file), dir.join(&file)).unwrap();
    dir
}

#[test]
fn frozen_abi_plugin_loads_and_runs() {
    let work = tempfile::tempdir().unwrap();
    let plugins = build_frozen_plugin(work.path());
    let csv = work.path().join("x.csv");
    std::fs::write(&csv, "x\n3.0\n1.0\n2.0\n6.0\n").unwrap();
    let quiver = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_quiver")).args(args).arg("--plugins").arg(&plugins).output().unwrap()
    };

    // through the CLI: the whole lifecycle, every output type, the hidden array left out
    let input = format!("data={}", csv.display());
    let o = quiver(&["run", "frozen-mean", "--input", &input, "--json"]);
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v,
        json!({
            "method": "frozen-mean", "n": 4, "mean": 3.0,
            "centred": [0.0, -2.0, -1.0, 3.0],
            "rank": [2, 0, 1, 3],
            "above": [false, false, false, true],
            "pairs": [[3.0, 0.0], [1.0, -2.0], [2.0, -1.0], [6.0, 3.0]],
            "state": "0000000000000840",
        })
    );
    let o = quiver(&["run", "frozen-mean", "--input", &input]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && table.contains("rank") && !table.contains("scaled"), "{table}");
    // bytes are one value (a hex string), not one line entry per byte
    let state = table.lines().find(|l| l.starts_with("state")).unwrap_or_default();
    assert_eq!(state.matches("0000000000000840").count(), 1, "{table}");
    let o = quiver(&["info", "frozen-mean", "--json"]);
    let info: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(info["family"], "frozen-demo");
    assert_eq!(info["steps"][0]["name"], "fit");
    assert_eq!(info["steps"][1]["changes_state"], false);
    assert_eq!(info["properties"], json!({"fixture": true}));
    let o = quiver(&["run", "frozen-mean", "--input", &input, "--set", "scale=-1"]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));

    // through the host's API: steps by name, the hidden array, errors by kind
    let mut host = Host::new();
    host.load_dir(&plugins);
    assert!(host.failures().is_empty(), "{:?}", host.failures().iter().map(ToString::to_string).collect::<Vec<_>>());
    let params = serde_json::Map::from_iter([("scale".to_string(), json!(3.0))]);
    let mut est = host.create("frozen-mean", &params, quiver_host::RunContext::default()).unwrap();
    assert_eq!(est.family(), "frozen-demo");
    let e = est.query("summary", &[]).unwrap_err();
    assert_eq!(e.plugin_kind(), Some(quiver_host::ErrorKind::State), "{e}");
    let data = [Table::new("data").with_f64("x", vec![1.0, 5.0])];
    assert!(est.step("fit", &data).unwrap().is_empty());
    let r = est.query("summary", &[]).unwrap();
    assert_eq!(r.number("mean"), Some(3.0));
    assert_eq!(r.f64s("scaled"), Some(&[3.0, 15.0][..]));
    assert_eq!(r.i64s("rank"), Some(&[0, 1][..]));
    let e = est.step("predict", &data).unwrap_err();
    assert!(e.to_string().contains("has no step 'predict' (its steps: fit, summary)"), "{e}");
    let e = est.query("fit", &data).unwrap_err();
    assert!(e.to_string().contains("changes the estimator"), "{e}");
}
