//! Project automation (the cargo-xtask convention; run as `cargo xtask <command>`):
//!
//! * `build`      — every plugin in release, copied to `target/plugins/`, each checked for the
//!   identity and root-module symbols, then loaded once by `quiver doctor`.
//! * `test`       — set up the test environment (NVRTC from PyPI for the PTX tests), build, then the
//!   whole test suite through the real plugin boundary (`cargo nextest`, or
//!   `cargo test` where nextest is missing).
//! * `demo`       — build, then run every installed method on its built-in example and print what
//!   it found, checked against the held-back truth.
//! * `bench`      — build, then run the benchmark harness (Quiver and the NumPy baselines side by
//!   side) and write `target/bench/report.json` and `target/bench/report.svg`.
//! * `new-plugin NAME --family F` — a compiling, tested plugin skeleton under `plugins/NAME`.
//!
//! Plain `std::process::Command`, few dependencies, so it compiles fast.

mod env;
mod new_plugin;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Symbol of the C-ABI identity function every plugin exports (`quiver_abi::IDENTITY_SYMBOL`).
const IDENTITY_SYMBOL: &str = "quiver_plugin_identity";
/// abi_stable's root-module symbol (`abi_stable::library::ROOT_MODULE_LOADER_NAME`; a test in
/// quiver-abi keeps the two equal).
const ROOT_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build") => build().map(|_| ()),
        Some("test") => test(&args[1..]),
        Some("demo") => demo(),
        Some("bench") => bench(&args[1..]),
        Some("new-plugin") => new_plugin::run(&root(), &args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n  build                       build plugins into target/plugins\n  test [ARGS]                 the whole test suite through the plugin boundary (ARGS go to nextest)\n  demo                        run every installed method on its built-in example\n  bench [--quick]             benchmarks against the NumPy baselines -> target/bench/report.json\n  new-plugin NAME --family F  a plugin skeleton (F: critic, quantile-aggregator, conformal-selector, shrinkage, batch-pi)"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}

fn plugins_dir() -> PathBuf {
    target_dir().join("plugins")
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Run a command, failing with its description.
pub fn run(cmd: &mut Command) -> Result {
    let status = cmd.status().map_err(|e| format!("could not start {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed ({status})"))
    }
}

/// The plugin crates of the workspace: (package name, library file stem).
fn workspace_plugins() -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let dir = root().join("plugins");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    entries.sort();
    for p in entries {
        let toml = std::fs::read_to_string(p.join("Cargo.toml")).map_err(|e| e.to_string())?;
        let name = toml
            .lines()
            .find_map(|l| l.trim().strip_prefix("name = ").map(|s| s.trim_matches('"').to_string()))
            .ok_or_else(|| format!("{}: no package name", p.display()))?;
        out.push((name.clone(), name.replace('-', "_")));
    }
    Ok(out)
}

fn dylib_name(stem: &str) -> String {
    format!("{}{stem}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX)
}

/// Check that `path` exports the identity and root-module symbols.
fn check_symbols(path: &Path) -> Result {
    // SAFETY: loading our own freshly built plugin to look up two symbols.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| format!("{}: {e}", path.display()))?;
    for sym in [IDENTITY_SYMBOL, ROOT_SYMBOL] {
        // SAFETY: only the address is looked up, nothing is called.
        let found: std::result::Result<libloading::Symbol<*const u8>, _> = unsafe { lib.get(sym.as_bytes()) };
        if found.is_err() {
            return Err(format!(
                "{}: missing symbol `{sym}`; does the crate call quiver_sdk::export_plugin!?",
                path.display()
            ));
        }
    }
    Ok(())
}

/// Build the workspace in release and install the plugins into `target/plugins`.
fn build() -> Result<PathBuf> {
    env::check_toolchain()?;
    run(cargo().args(["build", "--release", "--workspace"]))?;
    let dest = plugins_dir();
    std::fs::create_dir_all(&dest).map_err(|e| e.to_string())?;
    let release = target_dir().join("release");
    let plugins = workspace_plugins()?;
    // the folder holds exactly the workspace's plugins: remove stale libraries (renamed or
    // deleted plugins, fixtures) that would otherwise be loaded too
    let wanted: Vec<String> = plugins.iter().map(|(_, stem)| dylib_name(stem)).collect();
    for entry in std::fs::read_dir(&dest).map_err(|e| e.to_string())?.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.extension().is_some_and(|e| e == std::env::consts::DLL_EXTENSION) && !wanted.contains(&name) {
            println!("xtask: removing stale {}", path.display());
            std::fs::remove_file(&path).map_err(|e| e.to_string())?;
        }
    }
    for (name, stem) in plugins {
        let file = dylib_name(&stem);
        let src = release.join(&file);
        if !src.is_file() {
            return Err(format!("plugin {name}: {} was not built (is crate-type cdylib?)", src.display()));
        }
        let dst = dest.join(&file);
        // replace, never overwrite in place: a loaded copy of the old file may be mapped
        let _ = std::fs::remove_file(&dst);
        std::fs::copy(&src, &dst).map_err(|e| format!("copy {}: {e}", src.display()))?;
        check_symbols(&dst)?;
        println!("xtask: plugin {name:24} -> {}", dst.display());
    }
    let quiver = release.join(format!("quiver{}", std::env::consts::EXE_SUFFIX));
    run(Command::new(&quiver).arg("doctor").arg("--plugins").arg(&dest))?;
    Ok(quiver)
}

fn test(args: &[String]) -> Result {
    let nvrtc = env::python_env(&["nvidia-cuda-nvrtc-cu12"]);
    build()?;
    let mut cmd = cargo();
    if env::has_nextest() {
        cmd.args(["nextest", "run", "--release", "--workspace", "--no-fail-fast"]);
    } else {
        println!("xtask: cargo-nextest not found; using cargo test (install it with `cargo install cargo-nextest`)");
        cmd.args(["test", "--release", "--workspace", "--no-fail-fast"]);
    }
    cmd.args(args);
    cmd.env("QUIVER_PLUGIN_PATH", plugins_dir());
    match &nvrtc {
        Ok(py) => {
            if let Some(lib) = py.nvrtc_lib() {
                cmd.env("LD_LIBRARY_PATH", env::prepend_path("LD_LIBRARY_PATH", &lib));
                cmd.env("QUIVER_REQUIRE_NVRTC", "1");
                println!("xtask: NVRTC from PyPI at {}: CUDA kernels are compiled to PTX in the tests", lib.display());
            }
        }
        Err(why) => println!("xtask: NVRTC unavailable ({why}); the PTX tests will be skipped with this reason"),
    }
    run(&mut cmd)
}

fn bench(args: &[String]) -> Result {
    let py = env::python_env(&["numpy", "scipy"])
        .map_err(|e| format!("the NumPy baselines need a Python environment: {e}"))?;
    build()?;
    let mut cmd = cargo();
    cmd.args(["run", "--release", "-p", "quiver-bench", "--"]);
    cmd.args(args);
    cmd.arg("--python").arg(py.python());
    cmd.arg("--out").arg(target_dir().join("bench"));
    cmd.env("QUIVER_PLUGIN_PATH", plugins_dir());
    run(&mut cmd)
}

fn demo() -> Result {
    let quiver = build()?;
    println!();
    let listing = Command::new(&quiver)
        .args(["list", "--json", "--plugins"])
        .arg(plugins_dir())
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&listing.stdout);
    let methods: Vec<String> = text
        .lines()
        // top-level manifest fields sit 4 spaces deep in the pretty JSON; parameters deeper
        .filter_map(|l| l.strip_prefix("    \"name\": \""))
        .map(|s| s.trim_end_matches(['"', ',']).to_string())
        .collect();
    for method in methods {
        let dir = root().join("examples").join(&method);
        let script = dir.join("demo.txt");
        if !script.is_file() {
            println!("== {method}: no built-in example (add examples/{method}/demo.txt)\n");
            continue;
        }
        demo_one(&quiver, &method, &dir, &script)?;
    }
    Ok(())
}

/// Run one example. `demo.txt` holds blocks separated by `---` lines; each block has `story:`
/// lines, `input: ROLE=FILE`, `set: KEY=VALUE` and `check: KIND FILE` lines (`fdp-power`,
/// `accepted-error`, `batch-mean` or `batch-pac`, with the truth file). Inputs carry over to
/// later blocks; each block is one `quiver run`.
fn demo_one(quiver: &Path, method: &str, dir: &Path, script: &Path) -> Result {
    let text = std::fs::read_to_string(script).map_err(|e| e.to_string())?;
    println!("== {method} ==");
    let mut inputs = Vec::new();
    for block in text.split("\n---\n") {
        let mut cmd = Command::new(quiver);
        cmd.args(["run", method, "--plugins"]).arg(plugins_dir());
        let mut sets = Vec::new();
        let mut checks = Vec::new();
        for line in block.lines() {
            if let Some(s) = line.strip_prefix("story:") {
                println!("{}", s.trim());
            } else if let Some(s) = line.strip_prefix("input:") {
                let (role, file) = s.trim().split_once('=').ok_or("bad input line")?;
                inputs.push(format!("{role}={}", dir.join(file).display()));
            } else if let Some(s) = line.strip_prefix("set:") {
                sets.push(s.trim().to_string());
            } else if let Some(s) = line.strip_prefix("check:") {
                checks.push(s.trim().to_string());
            }
        }
        for i in &inputs {
            cmd.args(["--input", i]);
        }
        for s in &sets {
            cmd.args(["--set", s]);
        }
        println!("\n$ quiver run {method} {}", sets.iter().map(|s| format!("--set {s}")).collect::<Vec<_>>().join(" "));
        let human = cmd.output().map_err(|e| e.to_string())?;
        if !human.status.success() {
            return Err(format!("{method}: {}", String::from_utf8_lossy(&human.stderr)));
        }
        print!("{}", String::from_utf8_lossy(&human.stdout));
        let json_out = cmd.arg("--json").output().map_err(|e| e.to_string())?;
        let json = String::from_utf8_lossy(&json_out.stdout).to_string();
        for check in checks {
            let (kind, file) = check.split_once(' ').ok_or("bad check line")?;
            let raw = read_column(&dir.join(file), "raw").ok();
            println!(
                "\ntruth check: {}",
                truth_check(kind, &read_column(&dir.join(file), "truth")?, raw.as_deref(), &json)?
            );
        }
        println!();
    }
    Ok(())
}

/// Compare a result with the held-back truth; one line for the reader.
fn truth_check(kind: &str, truth: &[f64], raw: Option<&[f64]>, json: &str) -> Result<String> {
    let count = |f: &dyn Fn(f64) -> bool| truth.iter().filter(|&&t| f(t)).count();
    Ok(match kind {
        "fdp-power" => {
            let selected = json_index_list(json, "selected");
            let false_sel = selected.iter().filter(|&&j| truth[j] == 0.0).count();
            let hits = count(&|t| t == 1.0);
            let true_sel = selected.len() - false_sel;
            format!(
                "{} selected, {false_sel} of them false -> false discovery proportion {:.3} (FDR <= q bounds its average over repetitions); found {true_sel} of {hits} real hits (power {:.3})",
                selected.len(),
                false_sel as f64 / selected.len().max(1) as f64,
                true_sel as f64 / hits.max(1) as f64
            )
        }
        "accepted-error" => {
            let accepted = json_index_list(json, "accepted");
            let errors = accepted.iter().filter(|&&j| truth[j] == 1.0).count();
            format!(
                "accepted {} of {} judgments; {errors} of the accepted were wrong (error rate {:.3}); error rate without deferral {:.3}",
                accepted.len(),
                truth.len(),
                errors as f64 / accepted.len().max(1) as f64,
                count(&|t| t == 1.0) as f64 / truth.len().max(1) as f64
            )
        }
        "batch-mean" => {
            let bound = json_number(json, "bound").ok_or("no bound in the result")?;
            let mean = truth.iter().sum::<f64>() / truth.len().max(1) as f64;
            let verdict = if mean <= bound { "covered" } else { "not covered (probability at most alpha)" };
            format!("the batch's realised mean is {mean:.4}, the bound {bound:.4}: {verdict}")
        }
        "batch-pac" => {
            let bound = json_number(json, "bound").ok_or("no bound in the result")?;
            let zeta = json_number(json, "zeta").ok_or("no zeta in the result")? as usize;
            let below = count(&|t| t <= bound);
            let verdict = if below >= zeta { "covered" } else { "not covered (probability at most alpha)" };
            format!(
                "{below} of the batch's {} realised scores are <= {bound:.4} (needed: {zeta}): {verdict}",
                truth.len()
            )
        }
        "shrinkage-mse" => {
            let est = json_float_list(json, "estimates");
            if est.len() != truth.len() {
                return Err(format!("{} estimates for {} truths", est.len(), truth.len()));
            }
            let raw = raw.ok_or("the truth file needs a 'raw' column for shrinkage-mse")?;
            let mse = |v: &[f64]| v.iter().zip(truth).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / truth.len() as f64;
            let (m_raw, m_est) = (mse(raw), mse(&est));
            format!(
                "mean squared error against the held-back truth: raw {m_raw:.6}, shrunk {m_est:.6} ({:.1}x smaller)",
                m_raw / m_est
            )
        }
        other => return Err(format!("unknown check '{other}'")),
    })
}

/// The numbers of the top-level JSON array `"key": [...]` (our own pretty-printed output).
fn json_float_list(json: &str, key: &str) -> Vec<f64> {
    let pat = format!("\n  \"{key}\": [");
    let Some(start) = json.find(&pat) else { return Vec::new() };
    let rest = &json[start + pat.len()..];
    let end = rest.find(']').unwrap_or(0);
    rest[..end].split(',').filter_map(|s| s.trim().parse().ok()).collect()
}

fn read_column(path: &Path, name: &str) -> Result<Vec<f64>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let col =
        header.iter().position(|h| h.trim() == name).ok_or_else(|| format!("{}: no column {name}", path.display()))?;
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split(',')
                .nth(col)
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| format!("{}: bad row {l}", path.display()))
        })
        .collect()
}

/// The number under the top-level `"key": ` (our own pretty-printed output: top-level keys are
/// indented by two spaces, nested ones deeper).
fn json_number(json: &str, key: &str) -> Option<f64> {
    let pat = format!("\n  \"{key}\": ");
    let rest = &json[json.find(&pat)? + pat.len()..];
    rest.split([',', '\n']).next()?.trim().parse().ok()
}

/// The integers of the top-level JSON array `"key": [...]` (our own pretty-printed output).
fn json_index_list(json: &str, key: &str) -> Vec<usize> {
    let pat = format!("\n  \"{key}\": [");
    let Some(start) = json.find(&pat) else { return Vec::new() };
    let rest = &json[start + pat.len()..];
    let end = rest.find(']').unwrap_or(0);
    rest[..end].split(',').filter_map(|s| s.trim().parse().ok()).collect()
}
