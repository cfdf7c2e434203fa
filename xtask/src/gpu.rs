//! `cargo xtask gpu-bundle`: everything a GPU machine without a Rust toolchain needs to check the
//! CUDA paths, in `target/gpu/`: `bundle.tar.xz` (every test binary that holds a device test or
//! the conformance suite, the bench, the plugins, and the shared libraries they link beyond the
//! C library — OpenBLAS and its Fortran runtime — all stripped) and `run.sh` (a copy of
//! `xtask/gpu-check.sh`, which unpacks the bundle there and runs the checks in phases, each with
//! its own time limit). The folder is what the device tool carries: `carry: ["target/gpu"]`,
//! command `bash target/gpu/run.sh`.

use crate::{cargo, plugins_dir, root, run, target_dir, Result, PY_CRATE};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Libraries every Linux machine has: not bundled.
const SYSTEM_LIBS: [&str; 7] = ["linux-vdso", "libc.so", "libm.so", "libgcc_s", "ld-linux", "libpthread", "libdl"];

/// Build what the GPU check needs and pack it into `target/gpu/`.
pub fn bundle() -> Result {
    crate::build()?;
    let tests = test_binaries()?;
    run(cargo().args(["build", "--release", "-p", "quiver-bench"]))?;
    let out = target_dir().join("gpu");
    let stage = out.join("stage");
    let _ = std::fs::remove_dir_all(&out);
    for d in ["bin", "plugins", "lib"] {
        std::fs::create_dir_all(stage.join(d)).map_err(|e| e.to_string())?;
    }
    let bench = target_dir().join("release").join("quiver-bench");
    for exe in tests.iter().chain(std::iter::once(&bench)) {
        copy_into(exe, &stage.join("bin"))?;
    }
    let mut plugins: Vec<PathBuf> = std::fs::read_dir(plugins_dir())
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "so"))
        .collect();
    plugins.sort();
    for p in &plugins {
        copy_into(p, &stage.join("plugins"))?;
    }
    let mut libs = Vec::new();
    for exe in plugins.iter().chain(&tests) {
        for lib in linked_libraries(exe)? {
            if !libs.contains(&lib) {
                libs.push(lib);
            }
        }
    }
    for lib in &libs {
        copy_into(lib, &stage.join("lib"))?;
    }
    let stripped: Vec<PathBuf> = ["bin", "plugins"]
        .iter()
        .flat_map(|d| std::fs::read_dir(stage.join(d)).into_iter().flatten().flatten().map(|e| e.path()))
        .collect();
    run(Command::new("strip").args(&stripped))?;
    let archive = out.join("bundle.tar.xz");
    run(Command::new("tar").arg("-C").arg(&stage).arg("-cJf").arg(&archive).arg("."))?;
    std::fs::remove_dir_all(&stage).map_err(|e| e.to_string())?;
    // the test binaries look for the workspace (examples, baselines) where they were built
    std::fs::write(out.join("built-at"), root().display().to_string()).map_err(|e| e.to_string())?;
    let script = out.join("run.sh");
    std::fs::copy(root().join("xtask/gpu-check.sh"), &script).map_err(|e| format!("xtask/gpu-check.sh: {e}"))?;
    let size = std::fs::metadata(&archive).map_err(|e| e.to_string())?.len();
    println!(
        "xtask: {} ({:.1} MB: {} test binaries, the bench, {} plugins, {} libraries) and {}",
        archive.display(),
        size as f64 / 1e6,
        tests.len(),
        plugins.len(),
        libs.len(),
        script.display()
    );
    println!("xtask: on the GPU machine, from the repository root: bash target/gpu/run.sh (carry target/gpu)");
    Ok(())
}

/// The release test executables that hold a device test (a test named `…::cuda`) or the
/// conformance suite, built now.
fn test_binaries() -> Result<Vec<PathBuf>> {
    let out = cargo()
        .args(["test", "--release", "--workspace", "--exclude", PY_CRATE, "--no-run", "--message-format=json"])
        .output()
        .map_err(|e| format!("cargo test --no-run: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo test --no-run failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if msg["reason"] != "compiler-artifact" || msg["profile"]["test"] != true {
            continue;
        }
        let Some(exe) = msg["executable"].as_str().map(PathBuf::from) else { continue };
        let name = exe.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let bytes = std::fs::read(&exe).map_err(|e| format!("{}: {e}", exe.display()))?;
        // libtest keeps every test's full name in the binary as a string
        if name.starts_with("conformance-") || bytes.windows(6).any(|w| w == b"::cuda") {
            found.push(exe);
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

/// The shared libraries `exe` loads beyond the C library's own, as `ldd` resolves them here.
fn linked_libraries(exe: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(exe).output().map_err(|e| format!("ldd: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = Vec::new();
    for line in text.lines() {
        // "\tlibopenblas.so.0 => /lib/x86_64-linux-gnu/libopenblas.so.0 (0x...)"
        let Some((name, rest)) = line.trim().split_once(" => ") else { continue };
        if SYSTEM_LIBS.iter().any(|s| name.starts_with(s)) {
            continue;
        }
        match rest.split_whitespace().next() {
            Some(path) if path.starts_with('/') => libs.push(PathBuf::from(path)),
            _ => return Err(format!("{}: ldd cannot find {name}", exe.display())),
        }
    }
    Ok(libs)
}

/// Copy `file` (links followed) into `dir` under its own name.
fn copy_into(file: &Path, dir: &Path) -> Result {
    let name = file.file_name().ok_or_else(|| format!("{}: no file name", file.display()))?;
    std::fs::copy(file, dir.join(name)).map(|_| ()).map_err(|e| format!("copy {}: {e}", file.display()))
}
