//! Test utilities shared by every Quiver plugin's tests (a dev-dependency):
//!
//! * the built plugins through the real boundary: [`host`] loads every cdylib of
//!   `target/plugins` (what `cargo xtask test` builds), [`own_plugin`] the calling crate's own
//!   cdylib (what a plugin crate outside the workspace tests with);
//! * [`params`], [`ctx`], [`rng`]: parameters, run contexts and seeded random streams;
//! * [`device_test!`]: one test body run on every device — the CUDA half is reported as
//!   *ignored* where no GPU is assumed, so the runner's summary says what ran;
//! * Monte Carlo standard errors ([`binomial_se`], [`mean_se`]) for tolerances set from the
//!   simulation's own error;
//! * [`mdp`]: finite MDPs whose values are exact linear algebra, and offline data from them;
//! * [`conformance`]: the checks every loaded method must pass (its manifest renders, bad
//!   parameters and empty tables are refused with clear errors, results carry the common fields,
//!   the device contract holds).

pub mod conformance;
pub mod embed;
pub mod examples;
pub mod mdp;
pub mod parts;

pub use quiver_host::{Device, DeviceRequest, ErrorKind, Host, HostError, RunContext, Table};

use rand::SeedableRng;
use std::path::{Path, PathBuf};

/// A Python interpreter with NumPy and SciPy, for tests that check Quiver against reference
/// formulas written in NumPy (`benches/baselines/*.py`): `QUIVER_PYTHON` (what `cargo xtask
/// test` sets, its virtual environment with both installed), else `python3` when it imports
/// both. `None` otherwise: the caller prints that it skipped, and why.
pub fn python_with_numpy() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("QUIVER_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let ok = std::process::Command::new("python3")
        .args(["-c", "import numpy, scipy"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| PathBuf::from("python3"))
}

/// Run `benches/baselines/<script>` with `python` on the JSON `spec` and parse the JSON line it
/// prints (the baselines pick their own BLAS core type: `OPENBLAS_CORETYPE` is not passed on).
pub fn try_run_baseline(python: &Path, script: &str, spec: &serde_json::Value) -> Result<serde_json::Value, String> {
    let path = workspace_root().join("benches/baselines").join(script);
    let out = std::process::Command::new(python)
        .arg(&path)
        .arg(spec.to_string())
        .env_remove("OPENBLAS_CORETYPE")
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed: {}", path.display(), String::from_utf8_lossy(&out.stderr)));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{}: {e}", path.display()))
}

/// [`try_run_baseline`], panicking with the script's error output when it fails (for tests).
pub fn run_baseline(python: &Path, script: &str, spec: &serde_json::Value) -> serde_json::Value {
    try_run_baseline(python, script, spec).unwrap_or_else(|e| panic!("{e}"))
}

/// Write `values` as raw little-endian f64 to `dir/<name>.f64` (the baselines' input format).
pub fn write_f64(dir: &Path, name: &str, values: &[f64]) {
    let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(dir.join(format!("{name}.f64")), bytes).expect("write a baseline input");
}

/// The folder of built plugins: the first entry of `QUIVER_PLUGIN_PATH` (set by
/// `cargo xtask test`), else the workspace's `target/plugins`.
pub fn plugin_dir() -> PathBuf {
    if let Some(first) = std::env::var_os(quiver_host::PLUGIN_PATH_ENV).and_then(|p| std::env::split_paths(&p).next()) {
        return first;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/plugins")
}

/// A host with every built plugin loaded; panics with the command to run when there are none,
/// or when one failed to load. The plugins are loaded once per test process (libraries are never
/// unloaded, and a Monte Carlo test that loaded all of them for each of its thousands of runs
/// spent 95 % of its time doing so); each call returns a copy of that registry.
pub fn host() -> Host {
    static LOADED: std::sync::OnceLock<Host> = std::sync::OnceLock::new();
    LOADED.get_or_init(load_host).clone()
}

fn load_host() -> Host {
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

/// The build folder of the running test binary (`target/<profile>`, the parent of its `deps/`).
fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps = exe.parent().expect("the test binary lives in a folder");
    if deps.ends_with("deps") {
        deps.parent().expect("deps has a parent").to_path_buf()
    } else {
        deps.to_path_buf()
    }
}

/// A host with exactly one plugin loaded: the cdylib of the library crate `crate_name`
/// (underscores) that cargo built beside the running test binary. A plugin crate's
/// integration tests use this to go through the real boundary with no build step of their own.
/// A test binary shipped without its build folder (`cargo xtask gpu-bundle`) finds the plugin in
/// the folders of `QUIVER_PLUGIN_PATH` instead.
pub fn own_plugin(crate_name: &str) -> Host {
    let file = format!("{}{crate_name}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    // deps/ first: a test build writes the cdylib there and copies it up to target/<profile>/
    // only when the library itself is a build root, so the copy above can be stale
    let mut candidates = vec![build_dir().join("deps").join(&file), build_dir().join(&file)];
    if let Some(dirs) = std::env::var_os("QUIVER_PLUGIN_PATH") {
        candidates.extend(std::env::split_paths(&dirs).map(|d| d.join(&file)));
    }
    let path = candidates.iter().find(|p| p.is_file()).unwrap_or_else(|| {
        panic!("{} was not built: is the crate's crate-type [\"cdylib\", \"rlib\"]?", candidates[0].display())
    });
    let mut host = Host::new();
    if let Err(e) = host.load_file(path) {
        panic!("{e}");
    }
    host
}

/// Parameters from `(name, JSON value)` pairs.
pub fn params(pairs: &[(&str, serde_json::Value)]) -> serde_json::Map<String, serde_json::Value> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// A run context on `device` with one worker thread (tests run in parallel already).
pub fn ctx(device: Device) -> RunContext {
    let device = match device {
        Device::Cpu => DeviceRequest::Cpu,
        Device::Cuda => DeviceRequest::Cuda,
    };
    RunContext { device, threads: 1, ..Default::default() }
}

/// [`ctx`] on the CPU.
pub fn cpu() -> RunContext {
    ctx(Device::Cpu)
}

/// A seeded random stream (ChaCha8: the same numbers on every platform).
pub fn rng(seed: u64) -> rand_chacha::ChaCha8Rng {
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}

/// Why CUDA cannot run here, or `None` when a GPU is usable.
pub fn gpu_unusable() -> Option<String> {
    let s = quiver_gpu::probe();
    (!s.usable()).then(|| s.reason.clone().unwrap_or_else(|| "unknown reason".into()))
}

/// Panic, naming the reason, unless a GPU is usable: the CUDA half of a [`device_test!`] was
/// asked to run (`--run-ignored`) on a machine that cannot run it, which must not pass silently.
pub fn require_gpu() {
    if let Some(why) = gpu_unusable() {
        panic!("this CUDA test was asked to run, but no GPU is usable: {why}");
    }
}

/// Run one test body on every device (candle's `test_device!` is the model):
///
/// ```ignore
/// quiver_testing::device_test!(p_values_equal_the_direct_formula, |device| {
///     let host = quiver_testing::host();
///     let r = host.create("conformal-selection", &params, quiver_testing::ctx(device)) ...;
///     assert_eq!(r.device, device);
/// });
/// ```
///
/// expands to a module with two tests, `NAME::cpu` and `NAME::cuda`. The CUDA one is
/// `#[ignore]`d ("needs a usable GPU; ..."), so a machine without a GPU reports it as
/// skipped rather than passed; `cargo xtask test` runs the ignored `::cuda` tests where it finds a
/// GPU, and there [`require_gpu`] makes a missing one a failure.
#[macro_export]
macro_rules! device_test {
    ($(#[$meta:meta])* $name:ident, |$device:ident| $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body($device: $crate::Device) $body

            #[test]
            fn cpu() {
                body($crate::Device::Cpu)
            }

            #[test]
            #[ignore = "needs a usable GPU; `cargo xtask test` runs it where one is found"]
            fn cuda() {
                $crate::require_gpu();
                body($crate::Device::Cuda)
            }
        }
    };
}

/// Assert that the CUDA kernel source `src` compiles to PTX for sm_90 and defines `entry`
/// (no GPU needed: NVRTC alone, which `cargo xtask test` installs and then requires). Where
/// NVRTC is missing and not required, prints why and returns.
#[track_caller]
pub fn assert_kernel_compiles(name: &str, src: &str, entry: &str) {
    match quiver_gpu::check_kernel_compiles(name, src, entry) {
        Ok(quiver_gpu::PtxCheck::Compiled { bytes }) => println!("{name}: {bytes} bytes of PTX"),
        Ok(quiver_gpu::PtxCheck::Skipped(why)) => println!("{name}: not compiled: {why}"),
        Err(e) => panic!("{e}"),
    }
}

/// Standard error of a proportion estimated from `trials` Bernoulli(p) draws: √(p(1 − p)/trials).
pub fn binomial_se(p: f64, trials: usize) -> f64 {
    (p * (1.0 - p) / trials as f64).sqrt()
}

/// Mean and standard error of the mean of `values` (sample variance with n − 1).
pub fn mean_se(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, (var / n).sqrt())
}

/// Assert that `result` failed with a message containing `needle` (not a caught panic), and
/// return the error for further checks.
#[track_caller]
pub fn expect_error<T>(result: Result<T, HostError>, needle: &str) -> HostError {
    let Err(e) = result else { panic!("expected an error containing '{needle}', got a result") };
    assert_ne!(e.plugin_kind(), Some(ErrorKind::Panic), "the plugin panicked: {e}");
    assert!(e.to_string().contains(needle), "wanted '{needle}' in: {e}");
    e
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_errors() {
        assert!((binomial_se(0.1, 10_000) - 0.003).abs() < 1e-12);
        let (m, se) = mean_se(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, 2.5);
        assert!((se - (5.0f64 / 3.0 / 4.0).sqrt()).abs() < 1e-12);
    }
}

/// A shrinkage result's interval ends as one vector, the `lower` ends then the `upper` ends (the
/// layout the SDK's `ShrinkageResult::intervals` has); `None` when no intervals were computed.
pub fn interval_ends(r: &quiver_host::RunOutput) -> Option<Vec<f64>> {
    Some([r.f64s("lower")?, r.f64s("upper")?].concat())
}

/// A quantile aggregator's `test_quantiles` as a matrix (the layout of the SDK's
/// `AggregationResult::quantiles`): 0 x 0 when the result has none (scoring only).
pub fn quantiles(r: &quiver_host::RunOutput) -> Quantiles {
    match r.matrix("test_quantiles") {
        Some((rows, cols, data)) => Quantiles { rows, cols, data: data.to_vec() },
        None => Quantiles { rows: 0, cols: 0, data: Vec::new() },
    }
}

/// A row-major matrix of test quantiles ([`quantiles`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Quantiles {
    /// Test rows.
    pub rows: usize,
    /// Levels.
    pub cols: usize,
    /// `rows * cols` values, row-major.
    pub data: Vec<f64>,
}

/// The bytes of a version-1 `.npy` file: the header dict literal as NumPy writes it, with
/// `fortran_order` and `shape` given as their literal text (so that tests can also write the
/// malformed ones), padded to a multiple of 64 bytes, then `payload`.
pub fn npy_bytes(descr: &str, fortran_order: &str, shape: &str, payload: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': {fortran_order}, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(payload);
    out
}
