//! Quiver's CUDA C kernels run on the CPU, for tests on machines without a GPU (CI among them).
//!
//! Each kernel has a CPU twin (the SURE sweep's sums, the Poisson bootstrap's counts, ...), and
//! the two are written separately: a change to one that the other misses is invisible to every
//! test that cannot run CUDA. The first run on a GPU found exactly that (the profile-SURE kernel
//! still took its derivatives in λ after the CPU had moved to λ/s). This crate closes the gap: a
//! [`Module`] is a kernel's own source, compiled by the host C++ compiler after a small runtime
//! (`runtime.hpp`: `threadIdx`/`blockIdx`/`blockDim`/`gridDim`, `__shared__`, `__syncthreads`,
//! `atomicAdd`, `__longlong_as_double`), and [`Module::launch`] runs a grid with the semantics
//! the kernels rely on — blocks one after another, a block's threads as coroutines with their
//! own stacks that meet at every `__syncthreads()`. A test then calls the kernel's entry point
//! with host pointers and compares what it wrote with the CPU twin.
//!
//! What it does not check: the launch code around a kernel (cudarc, cuBLAS), races between
//! blocks (they do not run at once), and the GPU's own rounding (fused multiply-adds, `cos`);
//! the `device_test!` CUDA halves check those where a GPU is present. The arithmetic is the
//! host's: sums in the kernels' order, compiled with `-ffp-contract=off`.
//!
//! The compiler is `$CXX`, else `c++`. Without one, [`Module::compile`] returns
//! [`EmulatorError::NoCompiler`]; [`skip_or_panic`] turns that into a printed skip, or a failure
//! where `QUIVER_REQUIRE_CXX` is set (as `cargo xtask test` sets it).

use std::collections::HashMap;
use std::ffi::c_void;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

/// The runtime placed before every kernel's source.
const RUNTIME: &str = include_str!("runtime.hpp");

/// What can go wrong when emulating a kernel.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// No C++ compiler could be started.
    #[error("no C++ compiler ({compiler}: {why}); install g++ or set CXX")]
    NoCompiler {
        /// The compiler tried.
        compiler: String,
        /// Why it could not be started.
        why: String,
    },
    /// The kernel did not compile as C++ with the runtime.
    #[error("kernel '{name}' did not compile on the host:\n{log}")]
    Compile {
        /// The module's name.
        name: String,
        /// The compiler's messages.
        log: String,
    },
    /// The compiled library or an entry point could not be loaded.
    #[error("kernel '{name}': {why}")]
    Load {
        /// The module's name.
        name: String,
        /// What failed.
        why: String,
    },
    /// The launch could not allocate its threads' stacks.
    #[error("launch of '{name}' with {threads} threads a block: no memory for their stacks")]
    Launch {
        /// The module's name.
        name: String,
        /// Threads a block.
        threads: u64,
    },
}

/// A kernel source compiled for the CPU and loaded.
pub struct Module {
    name: String,
    lib: Arc<libloading::Library>,
}

type LaunchFn =
    unsafe extern "C" fn(u32, u32, u32, u32, u32, u32, usize, extern "C" fn(*mut c_void), *mut c_void) -> i32;

/// One launch at a time per process: the runtime's scheduler and the kernels' `__shared__`
/// statics are global to each library, and a test harness may launch one module from several
/// threads at once.
static LAUNCH: Mutex<()> = Mutex::new(());

impl Module {
    /// Compile `source` (a kernel file of CUDA C, as given to NVRTC) with the runtime, once per
    /// process for each distinct source, and load it.
    pub fn compile(name: &str, source: &str) -> Result<Module, EmulatorError> {
        static CACHE: OnceLock<Mutex<HashMap<String, Arc<libloading::Library>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
        let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lib) = cache.get(source) {
            return Ok(Module { name: name.to_string(), lib: lib.clone() });
        }
        let lib = Arc::new(build(name, source)?);
        cache.insert(source.to_string(), lib.clone());
        Ok(Module { name: name.to_string(), lib })
    }

    /// The kernel `entry` (an `extern "C" __global__` function of the source), as a function
    /// pointer of type `F`.
    ///
    /// # Safety
    /// `F` must be `unsafe extern "C" fn(...)` with exactly the kernel's parameter types
    /// (`const double*` is `*const f64`, `long long` is `i64`, `int` is `i32`, ...).
    pub unsafe fn function<F: Copy>(&self, entry: &str) -> Result<F, EmulatorError> {
        // SAFETY: the caller states that F is the entry's signature.
        let sym: libloading::Symbol<F> = unsafe { self.lib.get(entry.as_bytes()) }.map_err(|e| {
            EmulatorError::Load { name: self.name.clone(), why: format!("no entry point '{entry}': {e}") }
        })?;
        Ok(*sym)
    }

    /// Run a grid of `grid` blocks of `block` threads, with `shared_bytes` of dynamic shared
    /// memory; every thread calls `body`, which calls the kernel (from [`Module::function`])
    /// with its arguments.
    pub fn launch(
        &self,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        shared_bytes: usize,
        mut body: impl FnMut(),
    ) -> Result<(), EmulatorError> {
        extern "C" fn trampoline(data: *mut c_void) {
            // SAFETY: `data` is the `&mut dyn FnMut()` passed below, alive for the launch.
            let body = unsafe { &mut *(data as *mut &mut dyn FnMut()) };
            // a panic must not unwind through the C++ scheduler's frames
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).is_err() {
                std::process::abort();
            }
        }
        // SAFETY: qv_launch is the runtime's, with this signature (runtime.hpp).
        let launch: LaunchFn = unsafe { self.function("qv_launch") }?;
        let mut body: &mut dyn FnMut() = &mut body;
        let data = &mut body as *mut &mut dyn FnMut() as *mut c_void;
        let _one_at_a_time = LAUNCH.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: the trampoline calls `body` only during this call, while it is borrowed here.
        let status =
            unsafe { launch(grid.0, grid.1, grid.2, block.0, block.1, block.2, shared_bytes, trampoline, data) };
        if status != 0 {
            return Err(EmulatorError::Launch {
                name: self.name.clone(),
                threads: u64::from(block.0) * u64::from(block.1) * u64::from(block.2),
            });
        }
        Ok(())
    }
}

/// `extern __shared__ T name[];` (dynamic shared memory) made a pointer into the launch's buffer.
fn rewrite_dynamic_shared(source: &str) -> String {
    source
        .lines()
        .map(|line| {
            let t = line.trim_start();
            let Some(rest) = t.strip_prefix("extern __shared__ ") else { return line.to_string() };
            // "double acc[];"
            let decl = rest.trim_end().trim_end_matches(';').trim_end();
            match decl.strip_suffix("[]").and_then(|d| d.rsplit_once(' ')) {
                Some((ty, name)) => {
                    let indent = &line[..line.len() - t.len()];
                    format!("{indent}{ty}* {name} = ({ty}*)qv_dynamic_shared;")
                }
                None => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn build(name: &str, source: &str) -> Result<libloading::Library, EmulatorError> {
    let compiler = std::env::var("CXX").unwrap_or_else(|_| "c++".to_string());
    let dir = std::env::temp_dir().join(format!("quiver-cuda-emulator-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| EmulatorError::Load { name: name.into(), why: e.to_string() })?;
    let stem: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let unique = format!("{stem}-{:016x}", fnv1a(source));
    let src: PathBuf = dir.join(format!("{unique}.cpp"));
    let lib: PathBuf = dir.join(format!("lib{unique}.so"));
    let text = format!("{RUNTIME}\n#line 1 \"{stem}.cu\"\n{}\n", rewrite_dynamic_shared(source));
    std::fs::write(&src, text).map_err(|e| EmulatorError::Load { name: name.into(), why: e.to_string() })?;
    let out = Command::new(&compiler)
        .args(["-std=c++17", "-O2", "-fPIC", "-shared", "-ffp-contract=off", "-w", "-o"])
        .arg(&lib)
        .arg(&src)
        .output()
        .map_err(|e| EmulatorError::NoCompiler { compiler: compiler.clone(), why: e.to_string() })?;
    if !out.status.success() {
        return Err(EmulatorError::Compile {
            name: name.into(),
            log: format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        });
    }
    // SAFETY: a library just compiled from the runtime and a kernel; no initialisers run beyond
    // the C++ runtime's own.
    let loaded = unsafe { libloading::Library::new(&lib) }
        .map_err(|e| EmulatorError::Load { name: name.into(), why: e.to_string() })?;
    // the loaded library stays mapped; the files and (once empty) the folder go
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&lib);
    let _ = std::fs::remove_dir(&dir);
    Ok(loaded)
}

/// FNV-1a of the source: a name per distinct source in the scratch folder.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// A module, or — when no C++ compiler is installed — `None` after printing why the test is
/// skipped; a panic instead where `QUIVER_REQUIRE_CXX` is set (`cargo xtask test` sets it, so CI
/// cannot skip these tests silently). Any other error panics.
pub fn skip_or_panic(result: Result<Module, EmulatorError>) -> Option<Module> {
    match result {
        Ok(m) => Some(m),
        Err(e @ EmulatorError::NoCompiler { .. }) if std::env::var_os("QUIVER_REQUIRE_CXX").is_none() => {
            println!("skipped: {e}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// Assert that a kernel's output equals its CPU twin's entry by entry to `rel` relative, the
/// scale of an entry being at least a millionth of the largest (sums that cancel to near zero
/// keep the rounding of their terms).
#[track_caller]
pub fn assert_close(what: &str, cpu: &[f64], kernel: &[f64], rel: f64) {
    assert_eq!(cpu.len(), kernel.len(), "{what}: lengths differ");
    let floor = 1e-6 * cpu.iter().filter(|v| v.is_finite()).fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (&a, &b)) in cpu.iter().zip(kernel).enumerate() {
        if a == b {
            continue; // infinities included
        }
        let scale = a.abs().max(b.abs()).max(floor);
        assert!((a - b).abs() <= rel * scale, "{what}[{i}]: the CPU gives {a:e}, the kernel {b:e}");
    }
}

pub use quiver_gpu::GemmArgs;

/// cuBLAS's GEMM as its documentation defines it, by a plain loop (sums in k order): what a test
/// runs where a kernel's launch code would call cuBLAS, so that the arguments the code computes —
/// transposes, leading dimensions, offsets — are checked on machines without a GPU. An argument
/// that reaches past a slice panics, as it would fault on the device.
pub fn cublas_gemm<T>(g: &GemmArgs, alpha: T, a: &[T], b: &[T], beta: T, c: &mut [T])
where
    T: Copy + Default + std::ops::Add<Output = T> + std::ops::Mul<Output = T>,
{
    for j in 0..g.n {
        for i in 0..g.m {
            let mut acc = T::default();
            for p in 0..g.k {
                let x = if g.ta { a[p + i * g.lda] } else { a[i + p * g.lda] };
                let y = if g.tb { b[j + p * g.ldb] } else { b[p + j * g.ldb] };
                acc = acc + x * y;
            }
            let at = i + j * g.ldc;
            c[at] = alpha * acc + beta * c[at];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REDUCE: &str = r#"
// one block sums its threads' values through shared memory; the grid adds the blocks' sums
extern "C" __global__ void block_sums(const double* x, long long n, double* out, int* order) {
    __shared__ double red[64];
    double acc = 0.0;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        acc += x[i];
    red[threadIdx.x] = acc;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) red[threadIdx.x] += red[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) atomicAdd(out, red[0]);
    if (threadIdx.x == 0) order[blockIdx.x] = 1;
}

extern "C" __global__ void dynamic(double* out) {
    extern __shared__ double buf[];
    buf[threadIdx.x] = (double)threadIdx.x;
    __syncthreads();
    out[blockIdx.x * blockDim.x + threadIdx.x] = buf[blockDim.x - 1 - threadIdx.x];
}

extern "C" __global__ void early_exit(long long n, long long* out) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    out[i] = i * i;
}
"#;

    fn module() -> Option<Module> {
        skip_or_panic(Module::compile("tests", REDUCE))
    }

    #[test]
    fn a_block_reduction_through_shared_memory_meets_at_every_barrier() {
        let Some(m) = module() else { return };
        type F = unsafe extern "C" fn(*const f64, i64, *mut f64, *mut i32);
        // SAFETY: the signature of block_sums.
        let f: F = unsafe { m.function("block_sums") }.unwrap();
        let x: Vec<f64> = (0..1000).map(|i| i as f64).collect();
        let mut out = 0.0;
        let mut order = [0i32; 5];
        let (xp, op, ordp) = (x.as_ptr(), &mut out as *mut f64, order.as_mut_ptr());
        // SAFETY: buffers outlive the launch and hold what the kernel indexes.
        m.launch((5, 1, 1), (64, 1, 1), 0, || unsafe { f(xp, 1000, op, ordp) }).unwrap();
        assert_eq!(out, 499_500.0);
        assert_eq!(order, [1; 5]);
    }

    #[test]
    fn dynamic_shared_memory_is_the_launchs_buffer() {
        let Some(m) = module() else { return };
        type F = unsafe extern "C" fn(*mut f64);
        // SAFETY: the signature of dynamic.
        let f: F = unsafe { m.function("dynamic") }.unwrap();
        let mut out = vec![0.0; 3 * 32];
        let op = out.as_mut_ptr();
        // SAFETY: out holds grid × block values.
        m.launch((3, 1, 1), (32, 1, 1), 32 * 8, || unsafe { f(op) }).unwrap();
        for b in 0..3 {
            for t in 0..32 {
                assert_eq!(out[b * 32 + t], (31 - t) as f64);
            }
        }
    }

    #[test]
    fn threads_past_the_end_return_early() {
        let Some(m) = module() else { return };
        type F = unsafe extern "C" fn(i64, *mut i64);
        // SAFETY: the signature of early_exit.
        let f: F = unsafe { m.function("early_exit") }.unwrap();
        let mut out = vec![-1i64; 100];
        let op = out.as_mut_ptr();
        // SAFETY: threads at i ≥ 100 write nothing.
        m.launch((4, 1, 1), (32, 1, 1), 0, || unsafe { f(100, op) }).unwrap();
        assert!(out.iter().enumerate().all(|(i, &v)| v == (i * i) as i64));
    }

    #[test]
    fn a_kernel_that_does_not_compile_says_why() {
        if skip_or_panic(Module::compile("ok", "extern \"C\" __global__ void k() {}")).is_none() {
            return;
        }
        let e = Module::compile("broken", "extern \"C\" __global__ void k() { undefined_name(); }").err().unwrap();
        assert!(e.to_string().contains("undefined_name"), "{e}");
    }
}
