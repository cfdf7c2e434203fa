//! The environment the build, tests and benches need, set up by the project itself:
//! a C linker (`cc`) for Rust, OpenBLAS (`libopenblas-dev`) for the critics' linear algebra, a C++
//! compiler (`g++`) for the CUDA kernels' runs on the CPU, `cargo-nextest` where available, and a Python virtual environment
//! under `target/pyenv` holding NVRTC (from PyPI, for the PTX tests) and NumPy (for the baselines).
//! What is missing is installed when possible (Debian's apt-get as root, pip into the venv);
//! otherwise the error gives the exact command to run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn found(cmd: &str, arg: &str) -> bool {
    Command::new(cmd).arg(arg).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Install Debian packages with apt-get when running as root, else explain how.
fn apt_install(packages: &[&str], why: &str) -> Result<(), String> {
    let line = format!("apt-get install -y {}", packages.join(" "));
    if !(is_root() && found("apt-get", "--version")) {
        return Err(format!("{why}: install with `sudo {line}`"));
    }
    println!("xtask: {why}; running `{line}`");
    let update = Command::new("apt-get").args(["update", "-qq"]).status();
    let install = Command::new("apt-get")
        .args(["install", "-y", "-qq"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
    match (update, install) {
        (Ok(_), Ok(s)) if s.success() => Ok(()),
        _ => Err(format!("{why}: `{line}` failed; run it by hand")),
    }
}

/// The Rust toolchain needs a C linker (Debian's rustup installs none), and the critics link
/// OpenBLAS (BLAS and LAPACK) from Debian's `libopenblas-dev`.
pub fn check_toolchain() -> Result<(), String> {
    if !found("cc", "--version") {
        apt_install(&["gcc", "libc6-dev"], "no C linker (`cc`) found")?;
    }
    if !openblas_present() {
        apt_install(&["libopenblas-dev"], "OpenBLAS (libopenblas-dev) is missing; the critics link it")?;
    }
    Ok(())
}

/// A TrueType font for the text of PNG pictures (`quiver run ... --plot x.png`, whose test renders
/// one): Debian's `fonts-dejavu-core` when the system has no font at all.
pub fn check_fonts() -> Result<(), String> {
    fn has_font(dir: &Path) -> bool {
        std::fs::read_dir(dir).into_iter().flatten().flatten().any(|e| {
            let p = e.path();
            p.is_dir() && has_font(&p) || p.extension().is_some_and(|x| x == "ttf" || x == "otf")
        })
    }
    if has_font(Path::new("/usr/share/fonts")) {
        return Ok(());
    }
    apt_install(&["fonts-dejavu-core"], "no TrueType font found; PNG pictures need one for their text")
}

/// The C++ compiler the kernel emulator builds CUDA kernels with (`quiver-cuda-emulator`; `$CXX`,
/// else `c++`): installed (`g++`) when missing, as the tests that run each kernel on the CPU
/// against its CPU twin need it.
pub fn check_cxx() -> Result<(), String> {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    if found(&cxx, "--version") {
        return Ok(());
    }
    apt_install(&["g++"], "no C++ compiler (`c++`) found; the CUDA kernels' CPU runs need one")
}

/// Whether the OpenBLAS development library is where the linker looks.
fn openblas_present() -> bool {
    let dirs = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib"];
    dirs.iter().any(|d| std::path::Path::new(d).join("libopenblas.so").exists())
}

/// Whether `cargo nextest` is installed.
pub fn has_nextest() -> bool {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The project's Python virtual environment.
pub struct PyEnv {
    dir: PathBuf,
}

impl PyEnv {
    /// Its interpreter.
    pub fn python(&self) -> PathBuf {
        self.dir.join("bin").join("python")
    }
    /// A program installed into the environment (`maturin`, `pytest`).
    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join("bin").join(name)
    }
    /// Install `pkg` without its dependencies (once): a package whose own code a test runs but
    /// whose heavy dependencies it never calls (SCOPE-RL's top-k statistics, without PyTorch).
    pub fn install_alone(&self, pkg: &str) -> Result<(), String> {
        self.pip_install_once(pkg, &["--no-deps"], &format!(".installed-alone-{pkg}"))
    }
    /// `pip install [flags] pkg` into this environment, unless the `marker` file says it was done.
    fn pip_install_once(&self, pkg: &str, flags: &[&str], marker: &str) -> Result<(), String> {
        let marker = self.dir.join(marker);
        if marker.is_file() {
            return Ok(());
        }
        let with = if flags.is_empty() { String::new() } else { format!(" ({})", flags.join(" ")) };
        println!("xtask: installing {pkg}{with} into {}", self.dir.display());
        let status = Command::new(self.python())
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
            .args(flags)
            .arg(pkg)
            .status();
        if !status.is_ok_and(|s| s.success()) {
            let flags: String = flags.iter().map(|f| format!("{f} ")).collect();
            return Err(format!("`pip install {flags}{pkg}` failed (no network to PyPI?)"));
        }
        std::fs::write(&marker, "").map_err(|e| e.to_string())
    }
    /// The folder holding libnvrtc, when the NVRTC wheel is installed.
    pub fn nvrtc_lib(&self) -> Option<PathBuf> {
        let lib = self.dir.join("lib");
        std::fs::read_dir(&lib).ok()?.filter_map(|e| e.ok()).find_map(|e| {
            let p = e.path().join("site-packages/nvidia/cuda_nvrtc/lib");
            p.is_dir().then_some(p)
        })
    }
}

/// Create (once) `target/pyenv` and pip-install `packages` into it (once each).
pub fn python_env(packages: &[&str]) -> Result<PyEnv, String> {
    python_env_in("pyenv", packages)
}

/// `target/pyenv-rliable`: rliable 1.2.0, which `rl-aggregate` is checked and timed against, in
/// an environment of its own — its pinned `arch` fails to import with pandas 3.
pub fn rliable_env() -> Result<PyEnv, String> {
    python_env_in("pyenv-rliable", &["pandas<3", "rliable==1.2.0"])
}

/// Create (once) `target/<name>` and pip-install `packages` into it (once each).
pub fn python_env_in(name: &str, packages: &[&str]) -> Result<PyEnv, String> {
    let dir = crate::root().join("target").join(name);
    let env = PyEnv { dir: dir.clone() };
    if !env.python().is_file() {
        if !found("python3", "--version") {
            apt_install(&["python3", "python3-venv"], "python3 not found")?;
        }
        let ok = |d: &Path| {
            Command::new("python3").args(["-m", "venv"]).arg(d).status().is_ok_and(|s| s.success())
                && d.join("bin/python").is_file()
        };
        if !ok(&dir) {
            let _ = std::fs::remove_dir_all(&dir);
            apt_install(&["python3-venv"], "python3 cannot create a virtual environment")?;
            if !ok(&dir) {
                return Err(format!("`python3 -m venv target/{name}` failed"));
            }
        }
    }
    for pkg in packages {
        env.pip_install_once(pkg, &[], &format!(".installed-{pkg}"))?;
    }
    Ok(env)
}

/// `dir` prepended to the PATH-like variable `var`.
pub fn prepend_path(var: &str, dir: &Path) -> std::ffi::OsString {
    let mut paths = vec![dir.to_path_buf()];
    if let Some(old) = std::env::var_os(var) {
        paths.extend(std::env::split_paths(&old));
    }
    std::env::join_paths(paths).unwrap_or_default()
}
