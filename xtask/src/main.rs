//! Project automation (the cargo-xtask convention; run as `cargo xtask <command>`):
//!
//! * `build`      — every plugin in release, copied to `target/plugins/`, each checked for the
//!   identity and root-module symbols, then loaded once by `quiver doctor`.
//! * `test`       — set up the test environment (NVRTC from PyPI for the PTX tests), build, then the
//!   whole test suite through the real plugin boundary (`cargo nextest`, or `cargo test` where
//!   nextest is missing); where a GPU driver is found, a second pass runs the CUDA halves of the
//!   device tests, which are otherwise reported as skipped.
//! * `demo`       — build, then run every installed method on its built-in example and print what
//!   it found, checked against the held-back truth.
//! * `bench`      — build, then run the benchmark harness (Quiver and the NumPy baselines side by
//!   side) and write `target/bench/report.json` and `target/bench/report.svg`.
//! * `new-plugin NAME --family F` — a plugin skeleton that passes fmt, clippy and its own tests.
//! * `gpu-bundle` — the test binaries, bench, plugins and libraries a GPU machine without Rust
//!   needs, packed into `target/gpu/` beside the script that runs the CUDA checks there.
//!
//! Plain `std::process::Command`, `cargo metadata` for the workspace's shape, few dependencies.

mod env;
mod gpu;
mod new_plugin;
mod python;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Symbol of the C-ABI identity function every plugin exports (`quiver_abi::IDENTITY_SYMBOL`).
const IDENTITY_SYMBOL: &str = "quiver_plugin_identity";
/// abi_stable's root-module symbol (`abi_stable::library::ROOT_MODULE_LOADER_NAME`; a test in
/// quiver-abi keeps the two equal).
const ROOT_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

type Result<T = ()> = std::result::Result<T, String>;

/// The plugin-folder variable the host reads (`quiver_host::PLUGIN_PATH_ENV`).
const PLUGIN_PATH_ENV: &str = "QUIVER_PLUGIN_PATH";

/// The Python package's crate: built by maturin (`python::build_wheel`), not by the workspace
/// build, whose Python configuration would differ and rebuild it each time.
const PY_CRATE: &str = "quiver-py";

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Quiver's project automation")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

/// Whether to run the CUDA halves of the device tests.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Gpu {
    /// Where an NVIDIA driver library is found.
    Auto,
    /// Always (they fail, naming the reason, where no GPU is usable).
    Yes,
    /// Never (they are reported as skipped).
    No,
}

#[derive(Subcommand)]
enum Task {
    /// Build the workspace in release and install the plugins into target/plugins.
    Build,
    /// The whole test suite through the plugin boundary.
    Test {
        /// Run the CUDA halves of the device tests.
        #[arg(long, value_enum, default_value = "auto")]
        gpu: Gpu,
        /// Passed on to `cargo nextest run` (or `cargo test`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run every installed method on its built-in example (pictures into target/demo).
    Demo,
    /// Run the demo and copy its pictures into docs/pictures, where the docs show them.
    Pictures,
    /// Benchmarks against the NumPy/SciPy baselines -> target/bench/report.json and report.svg.
    Bench {
        /// Passed on to the benchmark harness (`--quick`, `--repeats N`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// A plugin skeleton: rustfmt- and clippy-clean, with a test and a built-in example.
    NewPlugin(new_plugin::Args),
    /// Pack what a GPU machine without Rust needs for the CUDA checks into target/gpu/.
    GpuBundle,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Task::Build => build().map(|_| ()),
        Task::Test { gpu, args } => test(gpu, &args),
        Task::Demo => demo(),
        Task::Pictures => pictures(),
        Task::Bench { args } => bench(&args),
        Task::NewPlugin(args) => new_plugin::run(&root(), &args),
        Task::GpuBundle => gpu::bundle(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: the parent of xtask's own folder, as `cargo run` tells it at run time
/// (`CARGO_MANIFEST_DIR`), else as it was at build time. (Several checkouts may share one target
/// folder, and with it one xtask binary.)
pub fn root() -> PathBuf {
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    manifest_dir.parent().expect("xtask lives in the workspace").to_path_buf()
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

/// `cargo metadata` of the workspace (no dependencies).
fn metadata() -> Result<Value> {
    let out = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata: {e}"))
}

/// The plugin crates of the workspace, (package name, library file stem): the members under
/// `plugins/` whose library target builds a cdylib.
fn workspace_plugins() -> Result<Vec<(String, String)>> {
    let meta = metadata()?;
    let plugins_dir = root().join("plugins");
    let mut out = Vec::new();
    for pkg in meta["packages"].as_array().ok_or("cargo metadata: no packages")? {
        let manifest = PathBuf::from(pkg["manifest_path"].as_str().unwrap_or_default());
        if !manifest.starts_with(&plugins_dir) {
            continue;
        }
        let name = pkg["name"].as_str().unwrap_or_default().to_string();
        let lib = pkg["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["crate_types"].as_array().is_some_and(|c| c.iter().any(|c| c == "cdylib")));
        match lib {
            Some(t) => out.push((name, t["name"].as_str().unwrap_or_default().replace('-', "_"))),
            None => return Err(format!("plugin {name}: its library must have crate-type [\"cdylib\", \"rlib\"]")),
        }
    }
    out.sort();
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
    run(cargo().args(["build", "--release", "--workspace", "--exclude", PY_CRATE]))?;
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
    // the CLI and plugins are usable without the wheel (e.g. without PyPI): a failed wheel is a
    // warning here, and `cargo xtask test` then fails on its Python suite, saying why
    if let Err(e) = python::build_wheel() {
        println!("xtask: warning: the Python wheel was not built: {e}");
    }
    Ok(quiver)
}

/// Whether an NVIDIA driver library can be loaded here.
fn gpu_driver_present() -> bool {
    // SAFETY: opening the CUDA driver library only to test its presence; dropped at once.
    unsafe { libloading::Library::new("libcuda.so.1") }.is_ok()
}

fn test(gpu: Gpu, args: &[String]) -> Result {
    let nvrtc = env::python_env(&["nvidia-cuda-nvrtc-cu12"]);
    // NumPy and SciPy run the reference formulas some tests compare against (benches/baselines)
    let numpy = env::python_env(&["numpy", "scipy"]);
    if let Err(why) = &numpy {
        println!("xtask: NumPy unavailable ({why}); the tests against NumPy reference formulas will be skipped");
    }
    let rliable = env::rliable_env();
    if let Err(why) = &rliable {
        println!("xtask: rliable unavailable ({why}); rl-aggregate's comparison with it will be skipped");
    }
    let quiver = build()?;
    // the PNG pictures' text (a test renders one)
    env::check_fonts()?;
    // the kernels' CPU runs (quiver-cuda-emulator) then fail rather than skip
    let cxx = env::check_cxx();
    if let Err(why) = &cxx {
        println!("xtask: {why}; the CUDA kernels' runs on the CPU will be skipped");
    }
    let nextest = env::has_nextest();
    let suite = |extra: &[&str]| {
        let mut cmd = cargo();
        if nextest {
            cmd.args(["nextest", "run", "--release", "--workspace", "--exclude", PY_CRATE, "--no-fail-fast"]);
            cmd.args(extra);
        } else {
            cmd.args(["test", "--release", "--workspace", "--exclude", PY_CRATE, "--no-fail-fast"]);
            if !extra.is_empty() {
                cmd.args(["--", "--ignored", "::cuda"]);
            }
        }
        cmd.args(args);
        cmd.env("QUIVER_PLUGIN_PATH", plugins_dir());
        if cxx.is_ok() {
            cmd.env("QUIVER_REQUIRE_CXX", "1");
        }
        if let Ok(py) = &numpy {
            cmd.env("QUIVER_PYTHON", py.python());
        }
        if let Ok(py) = &rliable {
            cmd.env("QUIVER_RLIABLE_PYTHON", py.python()).env("QUIVER_REQUIRE_RLIABLE", "1");
        }
        if let Ok(py) = &nvrtc {
            if let Some(lib) = py.nvrtc_lib() {
                cmd.env("LD_LIBRARY_PATH", env::prepend_path("LD_LIBRARY_PATH", &lib));
                cmd.env("QUIVER_REQUIRE_NVRTC", "1");
            }
        }
        cmd
    };
    if !nextest {
        println!("xtask: cargo-nextest not found; using cargo test (install it with `cargo install cargo-nextest`)");
    }
    match &nvrtc {
        Ok(py) => match py.nvrtc_lib() {
            Some(lib) => {
                println!("xtask: NVRTC from PyPI at {}: CUDA kernels are compiled to PTX in the tests", lib.display())
            }
            None => println!("xtask: NVRTC wheel without its library; the PTX tests will be skipped"),
        },
        Err(why) => println!("xtask: NVRTC unavailable ({why}); the PTX tests will be skipped with this reason"),
    }
    let rust = run(&mut suite(&[]));
    // the Python suite runs even when a Rust test failed: both reports are wanted
    let python = python::test(&quiver);
    rust?;
    python?;
    let cuda = match gpu {
        Gpu::Yes => true,
        Gpu::No => false,
        Gpu::Auto => gpu_driver_present(),
    };
    if cuda {
        println!("xtask: an NVIDIA driver is present: running the CUDA halves of the device tests");
        run(&mut suite(&["--run-ignored", "only", "-E", "test(/::cuda$/)"]))
    } else {
        println!("xtask: no NVIDIA driver: the CUDA halves of the device tests were reported as skipped");
        Ok(())
    }
}

fn bench(args: &[String]) -> Result {
    // Dask and pyarrow for the runs by parts on a local cluster (benches/baselines/scale_dask.py)
    let py = env::python_env(&["numpy", "scipy", "dask[dataframe]", "distributed", "pyarrow"])
        .map_err(|e| format!("the NumPy baselines need a Python environment: {e}"))?;
    // `--baselines full` adds SCOPE-RL (PyPI `scope-rl`, with PyTorch): a virtual environment of its own
    let full = args.windows(2).any(|w| w[0] == "--baselines" && w[1] == "full");
    let full_py = if full {
        println!(
            "xtask: --baselines full: SCOPE-RL (and PyTorch) into target/pyenv-full; the first time takes a while"
        );
        Some(env::python_env_in("pyenv-full", &["scope-rl"]).map_err(|e| format!("SCOPE-RL baseline: {e}"))?)
    } else {
        None
    };
    let rliable = env::rliable_env();
    if let Err(why) = &rliable {
        println!("xtask: rliable unavailable ({why}); rl-aggregate's case runs without its baseline");
    }
    build()?;
    // the Python-package case calls the wheel just built from the baseline interpreter
    python::install(&py, &python::built_wheel()?)?;
    let mut cmd = cargo();
    cmd.args(["run", "--release", "-p", "quiver-bench", "--"]);
    cmd.args(args);
    if let Ok(py) = &rliable {
        cmd.arg("--python-rliable").arg(py.python());
    }
    if let Some(py) = &full_py {
        cmd.arg("--python-full").arg(py.python());
    }
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
    let listing: Value =
        serde_json::from_slice(&listing.stdout).map_err(|e| format!("`quiver list --json` is not JSON: {e}"))?;
    let methods: Vec<String> = listing
        .as_array()
        .ok_or("`quiver list --json` is not a list")?
        .iter()
        .filter_map(|m| m["name"].as_str().map(String::from))
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

/// `cargo xtask demo`, then every picture it drew copied into docs/pictures (the docs pages show
/// them; they are checked in, and this is how they are made again).
fn pictures() -> Result {
    demo()?;
    let (from, to) = (root().join("target/demo"), root().join("docs/pictures"));
    std::fs::create_dir_all(&to).map_err(|e| e.to_string())?;
    let mut copied = 0;
    for entry in std::fs::read_dir(&from).map_err(|e| e.to_string())?.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "svg") {
            std::fs::copy(&path, to.join(entry.file_name())).map_err(|e| e.to_string())?;
            copied += 1;
        }
    }
    println!("xtask: {copied} pictures -> {}", to.display());
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
    let blocks = text.split("\n---\n").count();
    for (b, block) in text.split("\n---\n").enumerate() {
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
        // the JSON run also draws the method's picture, where it has one, into target/demo
        let demo_dir = root().join("target/demo");
        std::fs::create_dir_all(&demo_dir).map_err(|e| e.to_string())?;
        let picture =
            demo_dir.join(format!("{method}{}.svg", if blocks > 1 { format!("-{}", b + 1) } else { String::new() }));
        let json_out = cmd.arg("--json").arg("--plot").arg(&picture).output().map_err(|e| e.to_string())?;
        let json: Value = serde_json::from_slice(&json_out.stdout)
            .map_err(|e| format!("{method}: `quiver run --json` printed no JSON: {e}"))?;
        let said = String::from_utf8_lossy(&json_out.stderr);
        if json_out.status.success() {
            println!("picture: {}", picture.display());
        } else if said.contains("has no picture") || said.contains("the picture of") {
            // a method of the user's own without a picture, or one whose picture needs a column
            // this example does not have: said, not a failure of the demo
            println!("no picture: {}", said.lines().find(|l| l.starts_with("error:")).unwrap_or(&said).trim());
        } else {
            return Err(format!("{method}: --plot {}: {said}", picture.display()));
        }
        for check in checks {
            let (kind, file) = check.split_once(' ').ok_or("bad check line")?;
            let raw = read_column(&dir.join(file), "raw").ok();
            println!(
                "\ntruth check: {}",
                truth_check(kind, &read_column(&dir.join(file), "truth")?, raw.as_deref(), &json, dir)?
            );
        }
        println!();
    }
    Ok(())
}

/// Compare a result with the held-back truth; one line for the reader.
fn truth_check(kind: &str, truth: &[f64], raw: Option<&[f64]>, json: &Value, dir: &Path) -> Result<String> {
    let count = |f: &dyn Fn(f64) -> bool| truth.iter().filter(|&&t| f(t)).count();
    Ok(match kind {
        "fdp-power" => {
            let selected = index_list(&json["selected"]);
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
            let accepted = index_list(&json["accepted"]);
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
            let bound = json["bound"].as_f64().ok_or("no bound in the result")?;
            let mean = truth.iter().sum::<f64>() / truth.len().max(1) as f64;
            let verdict = if mean <= bound { "covered" } else { "not covered (probability at most alpha)" };
            format!("the batch's realised mean is {mean:.4}, the bound {bound:.4}: {verdict}")
        }
        "batch-pac" => {
            let bound = json["bound"].as_f64().ok_or("no bound in the result")?;
            let zeta = json["zeta"].as_f64().ok_or("no zeta in the result")? as usize;
            let below = count(&|t| t <= bound);
            let verdict = if below >= zeta { "covered" } else { "not covered (probability at most alpha)" };
            format!(
                "{below} of the batch's {} realised scores are <= {bound:.4} (needed: {zeta}): {verdict}",
                truth.len()
            )
        }
        "shrinkage-mse" => {
            let est: Vec<f64> = json["estimates"].as_array().into_iter().flatten().filter_map(Value::as_f64).collect();
            if est.len() != truth.len() {
                return Err(format!("{} estimates for {} truths", est.len(), truth.len()));
            }
            let raw = raw.ok_or("the truth file needs a 'raw' column for shrinkage-mse")?;
            let mse = |v: &[f64]| v.iter().zip(truth).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / truth.len() as f64;
            let (m_raw, m_est) = (mse(raw), mse(&est));
            let ends =
                |k: &str| -> Vec<f64> { json[k].as_array().into_iter().flatten().filter_map(Value::as_f64).collect() };
            let (lower, upper) = (ends("lower"), ends("upper"));
            let held = if lower.len() == truth.len() && upper.len() == truth.len() {
                let inside = (0..truth.len()).filter(|&i| lower[i] <= truth[i] && truth[i] <= upper[i]).count();
                format!(
                    "; the intervals hold {inside} of the {} held-back values (themselves noisy estimates of the \
                     true means the intervals are for)",
                    truth.len()
                )
            } else {
                String::new()
            };
            format!(
                "mean squared error against the held-back truth: raw {m_raw:.6}, shrunk {m_est:.6} ({:.1}x smaller){held}",
                m_raw / m_est
            )
        }
        "critic-v" => {
            let (states, values) = (&json["v"]["s"], &json["v"]["v"]);
            let n = states.as_array().map_or(0, Vec::len);
            let errors: Vec<f64> =
                (0..n).filter_map(|i| Some(values[i].as_f64()? - truth.get(states[i].as_u64()? as usize)?)).collect();
            if errors.is_empty() {
                return Err("the result has no per-state values 'v' to check".into());
            }
            let worst = errors.iter().fold(0.0f64, |m, e| m.max(e.abs()));
            let below = errors.iter().filter(|&&e| e < 0.0).count();
            format!(
                "V per state against the exact values: largest error {worst:.3} (values {:.2} to {:.2}), below the \
                 truth at {below} of {} states; J (mean V of the journeys' first states) {:.3}",
                truth.iter().cloned().fold(f64::INFINITY, f64::min),
                truth.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                errors.len(),
                json["j"].as_f64().unwrap_or(f64::NAN)
            )
        }
        "critic-j" => {
            let exact = *truth.first().ok_or("truth.csv holds no value")?;
            let j = json["j"].as_f64().ok_or("the result has no J")?;
            format!(
                "J {j:.4} against the exact {exact:.4}: {:.2} % off (after {} gradient steps)",
                100.0 * (j - exact).abs() / exact.abs(),
                json["training"]["steps"],
            )
        }
        "ope-j" => {
            let exact = *truth.first().ok_or("truth.csv holds no value")?;
            let parts: Vec<String> = ["tis", "pdis", "sn_pdis", "dm", "dr", "ipw", "snipw", "switch_dr", "dros"]
                .iter()
                .filter_map(|k| {
                    let e = &json[*k];
                    let (x, lo, hi) = (e["estimate"].as_f64()?, e["lower"].as_f64()?, e["upper"].as_f64()?);
                    Some(format!(
                        "{k} {x:.2} [{lo:.2}, {hi:.2}]{}",
                        if lo <= exact && exact <= hi { "" } else { " (misses)" }
                    ))
                })
                .collect();
            format!("exact value {exact:.3}; {}", parts.join("; "))
        }
        "ope-many" => {
            // every policy's control-variate estimate and interval against its exact value
            let key = json["values_are"].as_str().ok_or("no values_are")?;
            let e = &json[key];
            let col =
                |c: &str| -> Vec<f64> { e[c].as_array().into_iter().flatten().filter_map(Value::as_f64).collect() };
            let (est, lo, hi) = (col("estimate"), col("lower"), col("upper"));
            // how much the control variates take out of IPW's variance (DR's own model already
            // takes most of what they would)
            let ratio: Vec<f64> =
                json["ipw_cv"]["variance_ratio"].as_array().into_iter().flatten().filter_map(Value::as_f64).collect();
            let covered = (0..truth.len()).filter(|&k| lo.get(k) <= truth.get(k) && truth.get(k) <= hi.get(k)).count();
            let best = |v: &[f64]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap_or(0);
            format!(
                "{key}: {covered} of {} intervals hold the exact value; the best policy is {} (exact {:.3}), the \
                 estimates pick {} ({:.3} [{:.3}, {:.3}]); IPW's variance over IPW-CV's {:.2} to {:.2}",
                truth.len(),
                best(truth),
                truth[best(truth)],
                best(&est),
                est.get(best(&est)).copied().unwrap_or(f64::NAN),
                lo.get(best(&est)).copied().unwrap_or(f64::NAN),
                hi.get(best(&est)).copied().unwrap_or(f64::NAN),
                ratio.iter().copied().fold(f64::INFINITY, f64::min),
                ratio.iter().copied().fold(0.0, f64::max),
            )
        }
        "aggregation" => aggregation_check(truth, json, &dir.join("test.csv"))?,
        other => return Err(format!("unknown check '{other}'")),
    })
}

/// The test rows' realised outcomes against the aggregate's `test_quantiles` and each base
/// model's own quantiles (read from test.csv): WIS (= 2 × mean pinball over the symmetric
/// levels) and the coverage of the central intervals.
fn aggregation_check(truth: &[f64], json: &Value, test_csv: &Path) -> Result<String> {
    let levels: Vec<f64> = json["levels"].as_array().ok_or("no levels")?.iter().filter_map(Value::as_f64).collect();
    let k = levels.len();
    let rows: Vec<Vec<f64>> = json["test_quantiles"]
        .as_array()
        .ok_or("the result has no test_quantiles")?
        .iter()
        .map(|r| r.as_array().into_iter().flatten().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect())
        .collect();
    if rows.len() != truth.len() {
        return Err(format!("{} test rows for {} outcomes", rows.len(), truth.len()));
    }
    let wis = |q: &dyn Fn(usize, usize) -> f64| {
        let total: f64 = (0..truth.len())
            .map(|i| {
                levels
                    .iter()
                    .enumerate()
                    .map(|(kk, &t)| {
                        let u = truth[i] - q(i, kk);
                        (t * u).max((t - 1.0) * u)
                    })
                    .sum::<f64>()
            })
            .sum();
        2.0 * total / (k * truth.len()) as f64
    };
    let mut parts = Vec::new();
    for m in json["models"].as_array().ok_or("no models")?.iter().filter_map(Value::as_str) {
        let cols: Vec<Vec<f64>> =
            levels.iter().map(|t| read_column(test_csv, &format!("q_{m}_{t}"))).collect::<Result<_>>()?;
        parts.push(format!("{m} {:.4}", wis(&|i, kk| cols[kk][i])));
    }
    let agg = wis(&|i, kk| rows[i][kk]);
    let coverage: Vec<String> = (0..k / 2)
        .map(|lo| {
            let hi = k - 1 - lo;
            let c = (0..truth.len()).filter(|&i| rows[i][lo] <= truth[i] && truth[i] <= rows[i][hi]).count();
            format!("{:.0}% interval {:.3}", (levels[hi] - levels[lo]) * 100.0, c as f64 / truth.len() as f64)
        })
        .collect();
    Ok(format!(
        "test WIS against the realised demand (lower is better): {}; aggregate {agg:.4}. Coverage: {}",
        parts.join(", "),
        coverage.join(", ")
    ))
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

/// The indices of a JSON array of integers (empty when absent).
fn index_list(v: &Value) -> Vec<usize> {
    v.as_array().into_iter().flatten().filter_map(|x| x.as_u64().map(|x| x as usize)).collect()
}
