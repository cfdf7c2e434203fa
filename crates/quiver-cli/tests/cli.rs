//! The `quiver` binary end to end: listing, inspecting and running the built plugins on CSV files,
//! clear errors for bad input, and plugins built outside the workspace (a real one, one that
//! panics, one built against another ABI version).

use quiver_testing as testing;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn quiver(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(args)
        .arg("--plugins")
        .arg(testing::plugin_dir())
        .env_remove("QUIVER_PLUGIN_PATH")
        .output()
        .expect("quiver runs")
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn csv(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().write_all(body.as_bytes()).unwrap();
    p.display().to_string()
}

fn selection_files(dir: &Path) -> (String, String) {
    let mut cal = String::from("y,mu\n");
    for i in 0..60 {
        let x = (i as f64 * 0.37).sin() * 2.0;
        cal.push_str(&format!("{},{}\n", x + (i as f64 * 1.7).cos(), x));
    }
    let mut test = String::from("id,mu\n");
    for j in 0..20 {
        test.push_str(&format!("unit{j},{}\n", j as f64 * 0.3 - 2.0));
    }
    (csv(dir, "cal.csv", &cal), csv(dir, "test.csv", &test))
}

#[test]
fn list_info_and_doctor() {
    let o = quiver(&["list"]);
    let (out, _) = text(&o);
    assert!(o.status.success());
    assert!(out.contains("conformal-selection") && out.contains("selective-risk"), "{out}");
    let o = quiver(&["list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v.as_array().unwrap().len() >= 2);
    let o = quiver(&["info", "selective-risk", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["family"], "conformal-selector");
    assert_eq!(v["parameters"][0]["name"], "alpha");
    let o = quiver(&["info", "conformal-selection"]);
    let (out, _) = text(&o);
    assert!(out.contains("guarantee: FDR <= q"), "{out}");
    let o = quiver(&["doctor"]);
    let (out, _) = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("ok    conformal-selection") && out.contains("gpu:"), "{out}");
}

#[test]
fn run_on_csv_human_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let (cal, test) = selection_files(dir.path());
    let out_file = dir.path().join("result.json");
    let o = quiver(&[
        "run",
        "conformal-selection",
        "--input",
        &format!("calibration={cal}"),
        "--input",
        &format!("test={test}"),
        "--set",
        "q=0.2",
        "--device",
        "cpu",
        "--json",
        "--output",
        out_file.to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("ignored 1 non-numeric column(s) id"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["method"], "conformal-selection");
    assert_eq!(v["device"], "cpu");
    assert_eq!(v["parameters"]["q"], 0.2);
    assert_eq!(v["p_values"].as_array().unwrap().len(), 20);
    assert_eq!(std::fs::read_to_string(&out_file).unwrap().trim(), out.trim());
    let o = quiver(&[
        "run",
        "conformal-selection",
        "--input",
        &format!("calibration={cal}"),
        "--input",
        &format!("test={test}"),
    ]);
    let (out, _) = text(&o);
    assert!(o.status.success());
    assert!(out.contains("k_star") && out.contains("[20 values]"), "{out}");
}

#[test]
fn bad_input_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (cal, test) = selection_files(dir.path());
    let nan = csv(dir.path(), "nan.csv", "y,mu\n1,0\n2,nan\n");
    let text_cell = csv(dir.path(), "text.csv", "y,mu\n1,0\n2,abc\n");
    let cal_arg = format!("calibration={cal}");
    let test_arg = format!("test={test}");
    // `quiver run conformal-selection` with these inputs and extra arguments
    let run = |inputs: &[&str], extra: &[&str]| -> Vec<String> {
        let mut v = vec!["run".to_string(), "conformal-selection".to_string()];
        for i in inputs {
            v.push("--input".into());
            v.push(i.to_string());
        }
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let both = [cal_arg.as_str(), test_arg.as_str()];
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["run".into(), "nope".into()], "unknown method 'nope'"),
        (
            run(&[&format!("calibration={nan}"), &test_arg], &[]),
            "table 'calibration', column 'mu', row 2 (line 3): value NaN is not finite",
        ),
        (
            run(&[&format!("calibration={text_cell}"), &test_arg], &[]),
            "table 'calibration', column 'mu', row 2 (line 3): 'abc' is not a number",
        ),
        (run(&[&test_arg], &[]), "needs a 'calibration' table"),
        (run(&[&cal_arg, &format!("fit={cal}")], &[]), "reads no 'fit' table"),
        (run(&[&cal_arg, "test=/does/not/exist.csv"], &[]), "table 'test' (/does/not/exist.csv)"),
        (run(&both, &["--set", "q=lots"]), "parameter 'q' = \"lots\" must be a number in (0, 1)"),
        (run(&both, &["--set", "q=2"]), "parameter 'q' = 2 must be a number in (0, 1)"),
        (run(&both, &["--set", "q=0.1", "--set", "q=0.2"]), "parameter 'q' is set twice"),
        (run(&both, &["--device", "cuda"]), "CUDA"),
        (run(&both, &["--set", "gamma=1"]), "unknown parameter 'gamma'"),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = quiver(&args);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: wanted '{needle}', got: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// Build a fixture crate from tests/fixtures outside the workspace: copied to a temporary folder
/// (with this workspace's Cargo.lock and its path dependencies pointed here) and built into the
/// shared target folder. Returns the built cdylib, copied into `work`.
fn build_fixture(work: &Path, name: &str, lib_stem: &str, features: &[&str]) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
    let src = root.join("tests/fixtures").join(name);
    let work = work.join(format!("{name}{}", features.join("-")));
    std::fs::create_dir_all(work.join("src")).unwrap();
    let toml = std::fs::read_to_string(src.join("Cargo.toml")).unwrap();
    let toml = toml.replace("path = \"../../../", &format!("path = \"{}/", root.display()));
    std::fs::write(work.join("Cargo.toml"), toml).unwrap();
    std::fs::copy(src.join("src/lib.rs"), work.join("src/lib.rs")).unwrap();
    std::fs::copy(root.join("Cargo.lock"), work.join("Cargo.lock")).unwrap();
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or(root.join("target"));
    let file = format!("{}{lib_stem}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    // a cdylib's file name carries no hash: the variants of a fixture (features, other copies)
    // share it, and cargo takes a build whose fingerprint matches as fresh even when another
    // variant has overwritten its library since. Without the file it builds again.
    for stale in [target.join("release").join(&file), target.join("release/deps").join(&file)] {
        let _ = std::fs::remove_file(stale);
    }
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(work.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target);
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "building fixture {name} failed");
    // each build gets its own copy: the next build of the same crate overwrites the file
    let out = work.join(&file);
    std::fs::copy(target.join("release").join(&file), &out).unwrap();
    out
}

fn run_with(plugin_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quiver")).args(args).arg("--plugins").arg(plugin_dir).output().unwrap()
}

/// One test for all fixture builds (they share cargo's build lock).
#[test]
fn plugins_built_outside_the_workspace() {
    let data = tempfile::tempdir().unwrap();
    let (cal, test) = selection_files(data.path());
    let ext = std::env::consts::DLL_EXTENSION;

    // 1. a real plugin written against the SDK alone, loaded through the CLI
    let scratch = tempfile::tempdir().unwrap();
    let external = build_fixture(scratch.path(), "external-plugin", "bonferroni_selection", &[]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&external, dir.path().join(format!("libbonferroni_selection.{ext}"))).unwrap();
    let o = run_with(
        dir.path(),
        &[
            "run",
            "bonferroni-selection",
            "--input",
            &format!("calibration={cal}"),
            "--input",
            &format!("test={test}"),
            "--json",
        ],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["method"], "bonferroni-selection");
    assert_eq!(v["p_values"].as_array().unwrap().len(), 20);
    // the device contract: a CPU-only method refuses cuda before it runs, and auto uses the CPU
    let args =
        ["run", "bonferroni-selection", "--input", &format!("calibration={cal}"), "--input", &format!("test={test}")];
    let o = run_with(dir.path(), &[&args[..], &["--device", "cuda"]].concat());
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("method 'bonferroni-selection' has no CUDA path (its devices: cpu)"), "{err}");
    let o = run_with(dir.path(), &[&args[..], &["--device", "auto", "--json"]].concat());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((v["device"].as_str(), v["notice"].is_null()), (Some("cpu"), true));

    // 2. a plugin that panics inside `select`: a clear error, exit code 2, no abort
    let faulty = build_fixture(scratch.path(), "faulty-plugin", "faulty_plugin", &[]);
    std::fs::copy(&faulty, dir.path().join(format!("libfaulty.{ext}"))).unwrap();
    let o = run_with(
        dir.path(),
        &["run", "faulty", "--input", &format!("calibration={cal}"), "--input", &format!("test={test}")],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("error: faulty: plugin panicked in select:") && err.contains("index out of bounds"), "{err}");
    // the other plugin in the folder still works in the same listing
    let o = run_with(dir.path(), &["list"]);
    assert!(text(&o).0.contains("bonferroni-selection") && text(&o).0.contains("faulty"));

    // 3. a plugin built against another ABI version: refused with both versions, others load
    let wrong = build_fixture(scratch.path(), "faulty-plugin", "faulty_plugin", &["wrong-abi"]);
    std::fs::remove_file(dir.path().join(format!("libfaulty.{ext}"))).unwrap();
    std::fs::copy(&wrong, dir.path().join(format!("libwrong_abi.{ext}"))).unwrap();
    let o = run_with(dir.path(), &["doctor"]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("ok    bonferroni-selection"), "{out}");
    assert!(
        out.contains("libwrong_abi")
            && out.contains(&format!(
                "built against Quiver ABI 0.999 (SDK 0.999.0), this host speaks ABI {}",
                quiver_host::ABI_VERSION
            )),
        "{out}"
    );
}

const FAMILIES: [&str; 5] = ["critic", "quantile-aggregator", "conformal-selector", "shrinkage", "batch-pi"];

fn cargo_in(dir: &Path, target: &Path, args: &[&str]) -> Output {
    let o = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(dir)
        .args(args)
        .env("CARGO_TARGET_DIR", target)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    assert!(o.status.success(), "`cargo {}` in {} failed:\n{}", args.join(" "), dir.display(), text(&o).1);
    o
}

/// The algorithm crates stand on their own: none depends, directly or through another crate, on
/// the plugin SDK, the ABI or the host — what lets the neural critics' training core and outside
/// users reuse them — while the plugins that wrap them do (through their kit crates).
#[test]
fn algorithm_crates_depend_on_neither_the_sdk_nor_the_abi() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or(root.join("target"));
    let tree = |krate: &str| {
        let o = cargo_in(&root, &target, &["tree", "--offline", "-e", "normal", "--prefix", "none", "-p", krate]);
        let out = text(&o).0;
        let mut names: Vec<String> =
            out.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_string).collect();
        names.sort();
        names.dedup();
        names
    };
    for krate in
        ["quiver-numerics", "quiver-gpu", "quiver-rl", "quiver-shrinkage", "quiver-aggregation", "quiver-evaluation"]
    {
        let deps = tree(krate);
        assert!(deps.iter().any(|d| d == krate), "{krate}: `cargo tree` lists the crate itself: {deps:?}");
        for forbidden in ["quiver-sdk", "quiver-abi", "quiver-host", "abi_stable"] {
            assert!(!deps.iter().any(|d| d == forbidden), "{krate} depends on {forbidden}: {deps:?}");
        }
    }
    assert!(tree("critic-lstd").iter().any(|d| d == "quiver-abi"), "the check sees a plugin's ABI");
}

/// `cargo xtask new-plugin` for every family, standalone (outside the workspace): each crate as
/// generated passes `cargo fmt --check`, `cargo clippy -D warnings` and its own tests (which load
/// its cdylib through the host and run the conformance suite on it), and the `quiver` CLI runs its
/// built-in example.
#[test]
fn standalone_skeletons_pass_fmt_clippy_and_their_tests() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or(root.join("target"));
    let work = tempfile::tempdir().unwrap();
    let plugins = tempfile::tempdir().unwrap();
    for family in FAMILIES {
        let name = format!("gen-{family}");
        let dir = work.path().join(&name);
        cargo_in(
            &root,
            &target,
            &[
                "run",
                "--quiet",
                "-p",
                "xtask",
                "--",
                "new-plugin",
                &name,
                "--family",
                family,
                "--dir",
                dir.to_str().unwrap(),
            ],
        );
        let toml = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(toml.contains("path = \"../") && !toml.contains("path = \"/"), "{family}: relative paths: {toml}");
        assert!(dir.join("Cargo.lock").is_file(), "{family}: a lockfile");
        cargo_in(&dir, &target, &["fmt", "--check"]);
        cargo_in(
            &dir,
            &target,
            &["clippy", "--release", "--all-targets", "--locked", "--quiet", "--", "-D", "warnings"],
        );
        let o = cargo_in(&dir, &target, &["test", "--release", "--locked"]);
        let out = text(&o).0;
        assert!(out.contains("test conforms ... ok"), "{family}: {out}");
        let file =
            format!("{}{}{}", std::env::consts::DLL_PREFIX, name.replace('-', "_"), std::env::consts::DLL_SUFFIX);
        std::fs::copy(target.join("release/deps").join(&file), plugins.path().join(&file)).unwrap();
        let mut args = vec!["run".to_string(), name.clone(), "--json".to_string()];
        for line in std::fs::read_to_string(dir.join("example/demo.txt")).unwrap().lines() {
            if let Some((role, file)) = line.strip_prefix("input: ").and_then(|l| l.split_once('=')) {
                args.extend(["--input".to_string(), format!("{role}={}", dir.join("example").join(file).display())]);
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = run_with(plugins.path(), &args);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{family}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["method"], name.as_str());
    }
}

/// `cargo xtask new-plugin` for every family inside a temporary copy of this workspace: the new
/// members keep `cargo fmt --all --check` and clippy clean, and their tests pass. (Named `ws-*`:
/// the standalone test builds `gen-*` into the same target folder at the same time.)
#[test]
fn workspace_skeletons_pass_fmt_clippy_and_their_tests() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or(root.join("target"));
    let copy = tempfile::tempdir().unwrap();
    for item in
        ["Cargo.toml", "Cargo.lock", "rustfmt.toml", ".cargo", "crates", "plugins", "xtask", "benches", "examples"]
    {
        let from = root.join(item);
        if from.is_dir() {
            copy_dir(&from, &copy.path().join(item));
        } else {
            std::fs::copy(&from, copy.path().join(item)).unwrap();
        }
    }
    let mut packages = Vec::new();
    for family in FAMILIES {
        let name = format!("ws-{family}");
        cargo_in(
            copy.path(),
            &target,
            &["run", "--quiet", "-p", "xtask", "--", "new-plugin", &name, "--family", family],
        );
        assert!(copy.path().join("examples").join(&name).join("demo.txt").is_file());
        packages.extend(["-p".to_string(), name]);
    }
    let toml = std::fs::read_to_string(copy.path().join("Cargo.toml")).unwrap();
    assert!(toml.contains("\"plugins/ws-critic\","), "{toml}");
    let p: Vec<&str> = packages.iter().map(String::as_str).collect();
    cargo_in(copy.path(), &target, &["fmt", "--all", "--check"]);
    cargo_in(
        copy.path(),
        &target,
        &[&["clippy", "--release", "--all-targets", "--quiet"][..], &p, &["--", "-D", "warnings"]].concat(),
    );
    let o = cargo_in(copy.path(), &target, &[&["test", "--release"][..], &p].concat());
    assert_eq!(text(&o).0.matches("test conforms ... ok").count(), 5, "{}", text(&o).0);
    assert!(!root.join("plugins/ws-critic").exists(), "xtask wrote into the real checkout, not the copy");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// A plugin compiled against an interface whose layout differs (a field added to a result
/// struct) while claiming the same ABI version: abi_stable's layout check refuses it, and the host
/// reports the file, the version and the tail of abi_stable's explanation.
#[test]
fn plugin_built_against_a_changed_interface_is_refused() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or(root.join("target"));
    let work = tempfile::tempdir().unwrap();
    // The copies live under `changed/`, not `crates/`: Cargo names a path package's artifacts by
    // its name and its path relative to the workspace root, and judges them fresh by the
    // sources at that relative path. Under `crates/` the changed quiver-abi would replace the
    // real one's artifacts in the shared target folder, and a later `cargo build -p <plugin>`
    // there would link it into a plugin the host refuses.
    const COPIED: [&str; 4] = ["quiver-abi", "quiver-sdk", "quiver-gpu", "quiver-numerics"];
    for c in COPIED {
        copy_dir(&root.join("crates").join(c), &work.path().join("changed").join(c));
    }
    copy_dir(&root.join("tests/fixtures/faulty-plugin"), &work.path().join("faulty"));
    // one more field in what every step returns: a layout change abi_stable must catch
    let abi = work.path().join("changed/quiver-abi/src/estimator.rs");
    let src = std::fs::read_to_string(&abi).unwrap();
    let changed = src
        .replacen(
            "    pub arrays: RVec<NamedArray>,\n}",
            "    pub arrays: RVec<NamedArray>,\n    /// added\n    pub extra: f64,\n}",
            1,
        )
        .replacen("StepOutput { json, arrays }", "StepOutput { json, arrays, extra: 0.0 }", 1);
    assert_eq!(changed.matches("extra").count(), 2, "the ABI source changed shape; update this test");
    std::fs::write(&abi, changed).unwrap();
    let toml = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let start = toml.find("members = [").unwrap();
    let end = start + toml[start..].find(']').unwrap() + 1;
    let mut toml = format!(
        "{}members = [{}, \"faulty\"]{}",
        &toml[..start],
        COPIED.map(|c| format!("\"changed/{c}\"")).join(", "),
        &toml[end..]
    );
    for c in COPIED {
        let dep = format!("{c} = {{ path = \"crates/{c}\" }}");
        assert!(toml.contains(&dep), "the workspace's dependency on {c} changed shape; update this test");
        toml = toml.replace(&dep, &format!("{c} = {{ path = \"changed/{c}\" }}"));
    }
    std::fs::write(work.path().join("Cargo.toml"), toml.replace("exclude = [\"tests/fixtures\"]\n", "")).unwrap();
    let faulty = work.path().join("faulty/Cargo.toml");
    let ft = std::fs::read_to_string(&faulty)
        .unwrap()
        .replace("../../../crates/", "../changed/")
        .replace("\n[workspace]\n", "\n")
        // a name of its own: its library must not overwrite the unchanged fixture's in the
        // shared target folder while another test builds and copies that one
        .replace("name = \"faulty-plugin\"", "name = \"faulty-plugin-changed\"");
    std::fs::write(&faulty, ft).unwrap();
    std::fs::copy(root.join("Cargo.lock"), work.path().join("Cargo.lock")).unwrap();
    let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(work.path())
        .args(["build", "--release", "--quiet", "-p", "faulty-plugin-changed", "--target-dir"])
        .arg(&target)
        .status()
        .unwrap();
    assert!(st.success());
    let plugins = tempfile::tempdir().unwrap();
    let file = format!("{}faulty_plugin_changed{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    std::fs::copy(target.join("release").join(&file), plugins.path().join(&file)).unwrap();
    let o = run_with(plugins.path(), &["doctor"]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "its interface does not match this host's (ABI {}); abi_stable reports:",
            quiver_host::ABI_VERSION
        )),
        "{out}"
    );
    assert!(out.contains("too many fields"), "{out}");
    assert!(out.lines().count() < 40, "the report must be short: {out}");
}

/// A little-endian f64 `.npy` file in C order.
fn write_npy(path: &Path, rows: usize, cols: usize, values: &[f64]) {
    let shape = if cols == 1 { format!("({rows},)") } else { format!("({rows}, {cols})") };
    let payload: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, testing::npy_bytes("<f8", "False", &shape, &payload)).unwrap();
}

#[test]
fn npy_matrices_with_named_columns() {
    let dir = tempfile::tempdir().unwrap();
    let (cal_csv, test_csv) = selection_files(dir.path());
    // the same data as the CSV files, as matrices
    let read = |p: &str| -> Vec<Vec<f64>> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').filter_map(|v| v.parse().ok()).collect())
            .collect()
    };
    let cal: Vec<f64> = read(&cal_csv).into_iter().flatten().collect();
    let test: Vec<f64> = read(&test_csv).into_iter().flatten().collect();
    let (cal_npy, test_npy) = (dir.path().join("cal.npy"), dir.path().join("test.npy"));
    write_npy(&cal_npy, cal.len() / 2, 2, &cal);
    write_npy(&test_npy, test.len(), 1, &test);
    let from_csv = quiver(&[
        "run",
        "conformal-selection",
        "--input",
        &format!("calibration={cal_csv}"),
        "--input",
        &format!("test={test_csv}"),
        "--json",
    ]);
    let from_npy = quiver(&[
        "run",
        "conformal-selection",
        "--input",
        &format!("calibration={}:y,mu", cal_npy.display()),
        "--input",
        &format!("test={}:mu", test_npy.display()),
        "--json",
    ]);
    assert!(from_npy.status.success(), "{}", text(&from_npy).1);
    let (a, b): (serde_json::Value, serde_json::Value) =
        (serde_json::from_slice(&from_csv.stdout).unwrap(), serde_json::from_slice(&from_npy.stdout).unwrap());
    assert_eq!(a["p_values"], b["p_values"]);
    let o = quiver(&["run", "conformal-selection", "--input", &format!("calibration={}", cal_npy.display())]);
    assert!(text(&o).1.contains("name the columns of a .npy matrix"), "{}", text(&o).1);
}

/// `--plot FILE.svg` (or `.png`) draws the picture after printing the result; a path it cannot
/// write (a missing folder, a folder in the file's place) or a format it does not draw is an
/// error (exit 2) after the result, never instead of it.
#[test]
fn plots_follow_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let ex = testing::workspace_root().join("examples/ope-assessment");
    let inputs = [
        format!("estimates={}", ex.join("estimates.csv").display()),
        format!("truth={}", ex.join("truth.csv").display()),
    ];
    let run =
        |plot: &str| quiver(&["run", "ope-assessment", "--input", &inputs[0], "--input", &inputs[1], "--plot", plot]);
    let svg = dir.path().join("sharpe.svg");
    let o = run(&svg.display().to_string());
    assert!(o.status.success(), "{:?}", text(&o));
    let body = std::fs::read_to_string(&svg).unwrap();
    assert!(body.trim_start().starts_with("<svg") && body.trim_end().ends_with("</svg>"));
    assert!(body.contains("SharpeRatio@k"));
    let taken = dir.path().join("taken.svg");
    std::fs::create_dir(&taken).unwrap();
    for (bad, why) in [
        (dir.path().join("missing/x.svg"), "no folder"),
        (dir.path().join("x.jpg"), "write an .svg or a .png file"),
        (taken, "could not write the picture"),
    ] {
        let o = run(&bad.display().to_string());
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(out.contains("estimators.dr"), "the result is printed first: {out}");
        assert!(err.contains(why), "{err}");
    }
    // a PNG, at 800 x 500 a panel: the shrinkage picture (one panel without a curve)
    let baseball = testing::workspace_root().join("examples/sure-normal/baseball.csv");
    let png = dir.path().join("shrinkage.png");
    let o = quiver(&[
        "run",
        "sure-normal",
        "--input",
        &format!("data={}", baseball.display()),
        "--plot",
        &png.display().to_string(),
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    assert_eq!(
        (u32::from_be_bytes(bytes[16..20].try_into().unwrap()), u32::from_be_bytes(bytes[20..24].try_into().unwrap())),
        (800, 500)
    );
}
