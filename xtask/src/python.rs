//! The Python package (`crates/quiver-py`): its wheel, built by maturin from PyPI with the
//! plugins inside, and its pytest suite, run against that wheel installed into `target/pyenv`.

use crate::{env, plugins_dir, root, run, target_dir, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The package crate.
fn package_dir() -> PathBuf {
    root().join("crates/quiver-py")
}

/// Where the wheels go.
pub fn wheels_dir() -> PathBuf {
    target_dir().join("wheels")
}

/// Copy the built plugins into the package (`python/quiver/plugins`, git-ignored) and build the
/// wheel into `target/wheels` for the interpreter of `target/pyenv`. Returns the wheel.
pub fn build_wheel() -> Result<PathBuf> {
    let out = wheels_dir();
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    // one wheel in the folder, the one just built: never a stale one when this build fails
    for entry in std::fs::read_dir(&out).map_err(|e| e.to_string())?.flatten() {
        if entry.file_name().to_string_lossy().starts_with("quiver-") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let py = env::python_env(&["maturin"]).map_err(|e| format!("the Python wheel needs maturin: {e}"))?;
    let bundled = package_dir().join("python/quiver/plugins");
    let _ = std::fs::remove_dir_all(&bundled);
    std::fs::create_dir_all(&bundled).map_err(|e| e.to_string())?;
    for entry in std::fs::read_dir(plugins_dir()).map_err(|e| e.to_string())?.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == std::env::consts::DLL_EXTENSION) {
            std::fs::copy(&path, bundled.join(entry.file_name())).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    run(Command::new(py.bin("maturin"))
        .current_dir(root())
        .args(["build", "--release", "--quiet", "-m"])
        .arg(package_dir().join("Cargo.toml"))
        .arg("-o")
        .arg(&out)
        .arg("-i")
        .arg(py.python()))?;
    let wheel = std::fs::read_dir(&out)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or("maturin built no wheel")?;
    println!("xtask: Python wheel -> {}", wheel.display());
    Ok(wheel)
}

/// The SCOPE-RL release `ope-assessment` is compared with.
const SCOPE_RL: &str = "scope-rl==0.2.1";

/// Install `wheel` into `target/pyenv` (with pytest, pandas, MAPIE, Dask for `quiver.dask`, and
/// matplotlib for `result.plot()`) and
/// run the package's pytest suite: every example through Python and the CLI, bad input, zero-copy,
/// a panicking plugin, MAPIE agreement, runs by parts on a local Dask cluster.
pub fn test(cli: &Path) -> Result {
    let wheel = built_wheel()?;
    let py = env::python_env(&[
        "numpy",
        "pytest",
        "pandas",
        "mapie",
        "dask[dataframe]",
        "distributed",
        "pyarrow",
        "matplotlib",
    ])
    .map_err(|e| format!("the Python tests need pytest, pandas, MAPIE, Dask and matplotlib: {e}"))?;
    // ope-assessment is checked against SCOPE-RL's own top-k code (PyTorch and d3rlpy, which
    // that code never calls, stay out)
    py.install_alone(SCOPE_RL)?;
    install(&py, &wheel)?;
    let faulty = faulty_plugin()?;
    let mut cmd = Command::new(py.python());
    cmd.current_dir(root())
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(package_dir().join("tests"))
        // the installed wheel, with its own plugins, is what is tested
        .env_remove(crate::PLUGIN_PATH_ENV)
        .env("QUIVER_CLI", cli)
        .env("QUIVER_EXAMPLES", root().join("examples"))
        .env("QUIVER_FAULTY_PLUGIN", &faulty)
        .env("QUIVER_REQUIRE_SCOPE_RL", "1");
    println!("xtask: the Python package's tests (pytest, on the installed wheel)");
    run(&mut cmd)
}

/// The wheel `cargo xtask build` left in `target/wheels`.
pub fn built_wheel() -> Result<PathBuf> {
    std::fs::read_dir(wheels_dir())
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or_else(|| "no wheel in target/wheels: run `cargo xtask build`".to_string())
}

/// Install `wheel` (over any earlier build of the same version) into `py`.
pub fn install(py: &env::PyEnv, wheel: &Path) -> Result {
    run(Command::new(py.python())
        .args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "--force-reinstall", "--no-deps"])
        .arg(wheel))
}

/// Build `tests/fixtures/faulty-plugin` (outside the workspace; its copy under
/// `target/fixtures` points at this workspace's crates and lock file). Returns its folder.
fn faulty_plugin() -> Result<PathBuf> {
    let src = root().join("tests/fixtures/faulty-plugin");
    let work = target_dir().join("fixtures/faulty-plugin");
    std::fs::create_dir_all(work.join("src")).map_err(|e| e.to_string())?;
    let toml = std::fs::read_to_string(src.join("Cargo.toml")).map_err(|e| e.to_string())?;
    // a package name of its own: a cdylib's file name carries no hash, so two packages named
    // alike in one target folder overwrite each other's library while cargo still sees its own
    // build as fresh (the CLI tests build the fixture, and variants of it, there too)
    let toml = toml
        .replace("path = \"../../../", &format!("path = \"{}/", root().display()))
        .replace("name = \"faulty-plugin\"", "name = \"faulty-plugin-py\"");
    let write_if_changed = |path: PathBuf, text: String| -> Result {
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&path, text).map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    write_if_changed(work.join("Cargo.toml"), toml)?;
    write_if_changed(
        work.join("src/lib.rs"),
        std::fs::read_to_string(src.join("src/lib.rs")).map_err(|e| e.to_string())?,
    )?;
    write_if_changed(
        work.join("Cargo.lock"),
        std::fs::read_to_string(root().join("Cargo.lock")).map_err(|e| e.to_string())?,
    )?;
    let file = crate::dylib_name("faulty_plugin_py");
    // without its library cargo builds it again (a cdylib's name carries no hash, so another
    // package of that name could have overwritten it while its fingerprint stayed fresh)
    for stale in [target_dir().join("release").join(&file), target_dir().join("release/deps").join(&file)] {
        let _ = std::fs::remove_file(stale);
    }
    run(Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(work.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir()))?;
    let dir = target_dir().join("fixtures/faulty-plugin-lib");
    // the folder holds this one plugin (an older build under another name would load too)
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::copy(target_dir().join("release").join(&file), dir.join(&file)).map_err(|e| e.to_string())?;
    Ok(dir)
}
