//! The floating-point types a network computes in: `f32` for training (OpenBLAS `sgemm`) and `f64`
//! for the exact checks of the backward pass (`dgemm`), behind one trait.

use cblas_sys::{CBLAS_LAYOUT, CBLAS_TRANSPOSE};

/// A float a network can be built of: arithmetic ([`num_traits::Float`]) and a row-major GEMM.
pub trait Real:
    num_traits::Float + num_traits::FromPrimitive + Default + Send + Sync + std::fmt::Debug + std::iter::Sum + 'static
{
    /// The safetensors dtype of this float.
    const DTYPE: safetensors::Dtype;
    /// C ← α·op(A)·op(B) + β·C for row-major A (m × k after `op`), B (k × n after `op`), C (m × n)
    /// with leading dimensions `lda`, `ldb`, `ldc`; `op` transposes when `ta`/`tb`.
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        ta: bool,
        tb: bool,
        mnk: (usize, usize, usize),
        alpha: Self,
        a: (&[Self], usize),
        b: (&[Self], usize),
        beta: Self,
        c: (&mut [Self], usize),
    );
    /// This float as little-endian bytes (a checkpoint's tensor data).
    fn to_le(self, out: &mut Vec<u8>);
    /// A float from `size_of::<Self>()` little-endian bytes.
    fn from_le(bytes: &[u8]) -> Self;
}

fn op(t: bool) -> CBLAS_TRANSPOSE {
    if t {
        CBLAS_TRANSPOSE::CblasTrans
    } else {
        CBLAS_TRANSPOSE::CblasNoTrans
    }
}

/// The extents GEMM reads and writes, checked before OpenBLAS is handed raw pointers.
fn check_extents(ta: bool, tb: bool, (m, n, k): (usize, usize, usize), lens: [usize; 3], lds: [usize; 3]) {
    let (ar, ac) = if ta { (k, m) } else { (m, k) };
    let (br, bc) = if tb { (n, k) } else { (k, n) };
    for ((rows, cols), (len, ld)) in [(ar, ac), (br, bc), (m, n)].into_iter().zip(lens.into_iter().zip(lds)) {
        assert!(ld >= cols.max(1), "gemm: leading dimension {ld} below {cols} columns");
        assert!(rows == 0 || (rows - 1) * ld + cols <= len, "gemm: a {rows} x {cols} operand past its slice");
    }
    assert!(i32::try_from(m.max(n).max(k).max(lds[0]).max(lds[1]).max(lds[2])).is_ok(), "gemm: sizes past i32");
}

macro_rules! real {
    ($t:ty, $gemm:ident, $dtype:expr) => {
        impl Real for $t {
            const DTYPE: safetensors::Dtype = $dtype;
            fn gemm(
                ta: bool,
                tb: bool,
                (m, n, k): (usize, usize, usize),
                alpha: Self,
                (a, lda): (&[Self], usize),
                (b, ldb): (&[Self], usize),
                beta: Self,
                (c, ldc): (&mut [Self], usize),
            ) {
                if m == 0 || n == 0 {
                    return;
                }
                check_extents(ta, tb, (m, n, k), [a.len(), b.len(), c.len()], [lda, ldb, ldc]);
                single_threaded_blas();
                // SAFETY: every operand's extent was checked against its slice just above, and the
                // sizes fit OpenBLAS's 32-bit integers.
                unsafe {
                    cblas_sys::$gemm(
                        CBLAS_LAYOUT::CblasRowMajor,
                        op(ta),
                        op(tb),
                        m as i32,
                        n as i32,
                        k as i32,
                        alpha,
                        a.as_ptr(),
                        lda as i32,
                        b.as_ptr(),
                        ldb as i32,
                        beta,
                        c.as_mut_ptr(),
                        ldc as i32,
                    )
                }
            }
            fn to_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn from_le(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().expect("a float's bytes"))
            }
        }
    };
}

real!(f32, cblas_sgemm, safetensors::Dtype::F32);
real!(f64, cblas_dgemm, safetensors::Dtype::F64);

extern "C" {
    fn openblas_set_num_threads(n: std::os::raw::c_int);
}

/// OpenBLAS on one thread (set by the first GEMM): the network's work is split into fixed pieces
/// on rayon's workers (so that its sums do not depend on the thread count), and OpenBLAS threads
/// inside them would oversubscribe the cores. quiver-rl's moments set the same.
fn single_threaded_blas() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: a plain setter of OpenBLAS's global thread count, called once per process.
    ONCE.call_once(|| unsafe { openblas_set_num_threads(1) });
}
