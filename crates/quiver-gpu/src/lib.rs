//! GPU support for Quiver's algorithm crates and plugins: a CUDA probe that never panics, an NVRTC
//! compile cache (PTX compiled once per process per kernel source), and cuBLAS handles.
//!
//! cudarc panics when libcuda or libnvrtc is missing, so every entry point here first checks that
//! the libraries can be loaded (`is_culib_present`) and runs cudarc calls under `catch_unwind`.
//! Each plugin is its own cdylib with its own statics, so each keeps its own cache.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};

pub use cudarc;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream};
use cudarc::nvrtc::{CompileOptions, Ptx};
use thiserror::Error;

/// Errors of the GPU layer.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum GpuError {
    /// No usable CUDA driver / GPU.
    #[error("CUDA is not available: {0}")]
    Unavailable(String),
    /// NVRTC is missing or failed to compile a kernel.
    #[error("NVRTC could not compile kernel '{name}': {log}")]
    Compile {
        /// Kernel source name.
        name: String,
        /// Compiler log or load error.
        log: String,
    },
    /// A driver call failed.
    #[error("CUDA driver error: {0}")]
    Driver(String),
}

/// What the probe found.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuStatus {
    /// libcuda could be loaded.
    pub driver_library: bool,
    /// libnvrtc could be loaded.
    pub nvrtc_library: bool,
    /// Name and compute capability of device 0, when a context could be created.
    pub device: Option<(String, (i32, i32))>,
    /// Why CUDA is not usable, when it is not.
    pub reason: Option<String>,
}

impl GpuStatus {
    /// Whether kernels can run.
    pub fn usable(&self) -> bool {
        self.device.is_some() && self.nvrtc_library
    }
}

/// Whether libnvrtc can be loaded (enough to compile kernels to PTX without a GPU).
pub fn nvrtc_present() -> bool {
    // SAFETY: only tries to open the NVRTC library (dlopen); panics are caught.
    catch_unwind(|| unsafe { cudarc::nvrtc::sys::is_culib_present() }).unwrap_or(false)
}

/// Whether libcuda can be loaded.
pub fn driver_present() -> bool {
    // SAFETY: only tries to open the driver library (dlopen); panics are caught.
    catch_unwind(|| unsafe { cudarc::driver::sys::is_culib_present() }).unwrap_or(false)
}

/// Probe for CUDA without panicking. Cached per process.
pub fn probe() -> &'static GpuStatus {
    static STATUS: OnceLock<GpuStatus> = OnceLock::new();
    STATUS.get_or_init(|| {
        let driver_library = driver_present();
        let nvrtc_library = nvrtc_present();
        let mut status = GpuStatus { driver_library, nvrtc_library, device: None, reason: None };
        if !driver_library {
            status.reason = Some("libcuda (the NVIDIA driver library) was not found".into());
            return status;
        }
        match context() {
            Ok(ctx) => {
                let name = ctx.name().unwrap_or_else(|_| "unknown".into());
                let cc = ctx.compute_capability().unwrap_or((0, 0));
                status.device = Some((name, cc));
                if !nvrtc_library {
                    status.reason = Some("libnvrtc (CUDA's runtime compiler) was not found".into());
                }
            }
            Err(e) => status.reason = Some(e.to_string()),
        }
        status
    })
}

impl quiver_numerics::Classify for GpuError {
    fn class(&self) -> quiver_numerics::ErrorClass {
        quiver_numerics::ErrorClass::Device
    }
}

fn context() -> Result<Arc<CudaContext>, GpuError> {
    static CTX: OnceLock<Result<Arc<CudaContext>, GpuError>> = OnceLock::new();
    CTX.get_or_init(|| {
        if !driver_present() {
            return Err(GpuError::Unavailable("libcuda was not found".into()));
        }
        match catch_unwind(|| CudaContext::new(0)) {
            Ok(Ok(ctx)) => Ok(ctx),
            Ok(Err(e)) => Err(GpuError::Unavailable(format!("{e:?}"))),
            Err(_) => Err(GpuError::Unavailable("the CUDA driver panicked on initialisation".into())),
        }
    })
    .clone()
}

/// The process's CUDA context on device 0 and its default stream.
pub fn stream() -> Result<Arc<CudaStream>, GpuError> {
    Ok(context()?.default_stream())
}

/// Compile CUDA C `src` to PTX with NVRTC for `arch` (e.g. `"compute_90"`), with no GPU needed.
pub fn compile_ptx(name: &str, src: &str, arch: Option<&'static str>) -> Result<Ptx, GpuError> {
    if !nvrtc_present() {
        return Err(GpuError::Compile { name: name.into(), log: "libnvrtc was not found".into() });
    }
    // fmad=false: no fused multiply-adds, so kernels round exactly like the CPU path and CUDA
    // results can be compared to CPU results bit for bit.
    let opts = CompileOptions { arch, fmad: Some(false), name: Some(format!("{name}.cu")), ..Default::default() };
    match catch_unwind(AssertUnwindSafe(|| cudarc::nvrtc::compile_ptx_with_opts(src, opts))) {
        Ok(Ok(ptx)) => Ok(ptx),
        Ok(Err(e)) => Err(GpuError::Compile { name: name.into(), log: format!("{e:?}") }),
        Err(_) => Err(GpuError::Compile { name: name.into(), log: "NVRTC panicked".into() }),
    }
}

/// Outcome of [`check_kernel_compiles`].
#[derive(Debug)]
pub enum PtxCheck {
    /// Compiled; the PTX defines the entry point.
    Compiled {
        /// PTX size in bytes.
        bytes: usize,
    },
    /// NVRTC is not installed here; the reason to print.
    Skipped(String),
}

/// Test helper: compile `src` to PTX for sm_90 (H100/H200) and check it defines `entry`.
/// Skips (with a reason) where NVRTC is missing, unless `QUIVER_REQUIRE_NVRTC=1` — what
/// `cargo xtask test` sets once it has installed NVRTC — in which case that is an error.
pub fn check_kernel_compiles(name: &str, src: &str, entry: &str) -> Result<PtxCheck, GpuError> {
    if !nvrtc_present() {
        let why = "libnvrtc not found (cargo xtask test installs it from PyPI)".to_string();
        if std::env::var("QUIVER_REQUIRE_NVRTC").is_ok_and(|v| v == "1") {
            return Err(GpuError::Compile { name: name.into(), log: format!("QUIVER_REQUIRE_NVRTC=1 but {why}") });
        }
        return Ok(PtxCheck::Skipped(why));
    }
    let ptx = compile_ptx(name, src, Some("compute_90"))?.to_src();
    if !ptx.contains(&format!(".entry {entry}")) {
        return Err(GpuError::Compile { name: name.into(), log: format!("PTX has no entry point {entry}") });
    }
    Ok(PtxCheck::Compiled { bytes: ptx.len() })
}

/// Load `src` (compiled once per process and cached by `name`) and return kernel `function`.
pub fn kernel(name: &'static str, src: &'static str, function: &str) -> Result<CudaFunction, GpuError> {
    static MODULES: OnceLock<Mutex<HashMap<&'static str, Arc<CudaModule>>>> = OnceLock::new();
    let ctx = context()?;
    let mut cache = MODULES.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    let module = match cache.get(name) {
        Some(m) => m.clone(),
        None => {
            // compile for this device's architecture (NVRTC's default is older than sm_60, which
            // lacks e.g. atomicAdd on doubles); the string lives for the process, once per kernel
            let (major, minor) = ctx.compute_capability().map_err(driver_err)?;
            let arch: &'static str = Box::leak(format!("compute_{major}{minor}").into_boxed_str());
            let ptx = compile_ptx(name, src, Some(arch))?;
            let m = ctx.load_module(ptx).map_err(|e| GpuError::Driver(format!("{e:?}")))?;
            cache.insert(name, m.clone());
            m
        }
    };
    module.load_function(function).map_err(|e| GpuError::Driver(format!("{e:?}")))
}

/// A cuBLAS handle on the process's default stream (for the GEMM-heavy families).
pub fn cublas() -> Result<Arc<cudarc::cublas::CudaBlas>, GpuError> {
    static BLAS: OnceLock<Result<Arc<cudarc::cublas::CudaBlas>, GpuError>> = OnceLock::new();
    BLAS.get_or_init(|| {
        let s = stream()?;
        catch_unwind(AssertUnwindSafe(|| cudarc::cublas::CudaBlas::new(s)))
            .map_err(|_| GpuError::Unavailable("cuBLAS panicked on initialisation".into()))?
            .map(Arc::new)
            .map_err(|e| GpuError::Unavailable(format!("cuBLAS: {e:?}")))
    })
    .clone()
}

impl From<cudarc::driver::DriverError> for GpuError {
    /// A CUDA driver error, so kernel launch code uses `?`.
    fn from(e: cudarc::driver::DriverError) -> Self {
        GpuError::Driver(format!("{e:?}"))
    }
}

/// Map a driver error into [`GpuError::Driver`].
pub fn driver_err<E: std::fmt::Debug>(e: E) -> GpuError {
    GpuError::Driver(format!("{e:?}"))
}

/// The arguments of a cuBLAS GEMM (`cublas<t>gemm`), column-major: C = α op(A) op(B) + β C with
/// op(A) m × k, op(B) k × n and C m × n, leading dimensions `lda`, `ldb`, `ldc`; `ta`/`tb`
/// transpose A/B. Launch code computes these (the transposes and leading dimensions that make
/// row-major data column-major), checks the extents against its buffers, and hands cuBLAS
/// [`GemmArgs::config`]; tests run the same arguments through cuBLAS's definition on the CPU
/// (quiver-cuda-emulator's `cublas_gemm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemmArgs {
    /// Transpose A.
    pub ta: bool,
    /// Transpose B.
    pub tb: bool,
    /// Rows of op(A) and C.
    pub m: usize,
    /// Columns of op(B) and C.
    pub n: usize,
    /// Columns of op(A), rows of op(B).
    pub k: usize,
    /// Leading dimension of A.
    pub lda: usize,
    /// Leading dimension of B.
    pub ldb: usize,
    /// Leading dimension of C.
    pub ldc: usize,
}

impl GemmArgs {
    /// Floats of A, B and C the product reads or writes from their starts (0 for an empty operand).
    pub fn extents(&self) -> [usize; 3] {
        let extent =
            |rows: usize, cols: usize, ld: usize| if cols == 0 || rows == 0 { 0 } else { (cols - 1) * ld + rows };
        let (ar, ac) = if self.ta { (self.k, self.m) } else { (self.m, self.k) };
        let (br, bc) = if self.tb { (self.n, self.k) } else { (self.k, self.n) };
        [extent(ar, ac, self.lda), extent(br, bc, self.ldb), extent(self.m, self.n, self.ldc)]
    }

    /// An error unless each leading dimension covers its operand's rows and each operand, from its
    /// offset, lies inside its buffer: `(length, offset)` of A, B and C.
    pub fn check(&self, buffers: [(usize, usize); 3]) -> Result<(), GpuError> {
        let rows = [if self.ta { self.k } else { self.m }, if self.tb { self.n } else { self.k }, self.m];
        for ((((len, at), need), (ld, rows)), what) in buffers
            .into_iter()
            .zip(self.extents())
            .zip([self.lda, self.ldb, self.ldc].into_iter().zip(rows))
            .zip(["A", "B", "C"])
        {
            if ld < rows.max(1) || at.checked_add(need).is_none_or(|end| end > len) {
                return Err(GpuError::Driver(format!(
                    "GEMM operand {what}: {need} values from offset {at} in a buffer of {len}, leading dimension {ld} for {rows} rows"
                )));
            }
        }
        Ok(())
    }

    /// cuBLAS's configuration with `alpha` and `beta` (an error past its 32-bit sizes).
    pub fn config<T>(&self, alpha: T, beta: T) -> Result<cudarc::cublas::GemmConfig<T>, GpuError> {
        use cudarc::cublas::sys::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
        let int = |x: usize| i32::try_from(x).map_err(|_| GpuError::Driver(format!("GEMM size {x} past 2^31")));
        Ok(cudarc::cublas::GemmConfig {
            transa: if self.ta { CUBLAS_OP_T } else { CUBLAS_OP_N },
            transb: if self.tb { CUBLAS_OP_T } else { CUBLAS_OP_N },
            m: int(self.m)?,
            n: int(self.n)?,
            k: int(self.k)?,
            alpha,
            lda: int(self.lda)?,
            ldb: int(self.ldb)?,
            beta,
            ldc: int(self.ldc)?,
        })
    }

    /// The arguments of a cuBLAS configuration.
    pub fn of<T>(c: &cudarc::cublas::GemmConfig<T>) -> GemmArgs {
        use cudarc::cublas::sys::cublasOperation_t::CUBLAS_OP_N;
        let size = |x: i32| usize::try_from(x).unwrap_or(0);
        GemmArgs {
            ta: c.transa != CUBLAS_OP_N,
            tb: c.transb != CUBLAS_OP_N,
            m: size(c.m),
            n: size(c.n),
            k: size(c.k),
            lda: size(c.lda),
            ldb: size(c.ldb),
            ldc: size(c.ldc),
        }
    }
}

/// One thread per element launch configuration for `n` elements (256 threads a block).
pub fn launch_config(n: usize) -> cudarc::driver::LaunchConfig {
    let blocks = n.div_ceil(256).max(1) as u32;
    cudarc::driver::LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_never_panics() {
        let s = probe();
        assert_eq!(s.usable(), s.device.is_some() && s.nvrtc_library);
        if !s.usable() {
            assert!(s.reason.is_some());
        }
    }

    #[test]
    fn gemm_arguments_are_checked_against_their_buffers_and_round_trip() {
        // C (4 × 3) = Aᵀ (A stored 2 × 4, ld 2) · B (2 × 3, ld 2)
        let g = GemmArgs { ta: true, tb: false, m: 4, n: 3, k: 2, lda: 2, ldb: 2, ldc: 4 };
        assert_eq!(g.extents(), [8, 6, 12]);
        assert!(g.check([(8, 0), (6, 0), (12, 0)]).is_ok());
        assert!(g.check([(8, 1), (6, 0), (12, 0)]).is_err(), "A from offset 1 passes its buffer");
        assert!(g.check([(8, 0), (6, 0), (11, 0)]).is_err(), "C one short");
        assert!(GemmArgs { ldc: 3, ..g }.check([(8, 0), (6, 0), (100, 0)]).is_err(), "ldc below C's rows");
        assert!(g.check([(8, usize::MAX), (6, 0), (12, 0)]).is_err(), "an offset that overflows");
        assert_eq!(GemmArgs::of(&g.config(1.0f64, 0.0).unwrap()), g);
        assert!(GemmArgs { m: 1 << 31, ..g }.config(1.0f64, 0.0).is_err());
    }

    #[test]
    fn bad_kernel_is_an_error_not_a_panic() {
        match compile_ptx("broken", "extern \"C\" __global__ void k() { this is not C }", Some("compute_90")) {
            Err(GpuError::Compile { log, .. }) => {
                assert!(!log.is_empty());
                if nvrtc_present() {
                    // a real compiler diagnostic, not a missing library
                    assert!(!log.contains("not found"), "{log}");
                }
            }
            Ok(_) => panic!("a broken kernel compiled"),
            Err(e) => panic!("unexpected error {e}"),
        }
    }
}
