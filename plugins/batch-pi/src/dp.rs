//! The max-sum dynamic program for compositional batch statistics (Lee et al., 2024, §4):
//!
//! dp\[0\]\[0\] = e, dp\[i\]\[j\] = max_{1 ≤ r ≤ min(n+1, j)} h(dp\[i−1\]\[j−r\], S_(r)),
//! bound = max_{j ≤ Q} dp\[m\]\[j\],
//!
//! the largest value of f = h(…h(h(e, s_1), s_2)…, s_m) over all rank multisets with rank sum
//! ≤ Q, for h nondecreasing in both arguments: h = + with e = 0 (sums, means) or h = max with
//! e = −∞. The naive recurrence costs O(m·Q·(n+1)); this one computes the same number with less:
//!
//! * Prefix maxima. g\[i\]\[j\] = max_{j' ≤ j} dp\[i\]\[j'\] obeys the same recurrence,
//!   g\[i\]\[j\] = max_r h(g\[i−1\]\[j−r\], S_(r)) (h is monotone, so the maxima commute), and the bound is
//!   g\[m\]\[Q\]. So row i is needed only on the window j ∈ \[Q − (m−i)(n+1), Q − (m−i)\]: each later
//!   item adds between 1 and n+1 to the rank sum.
//! * Saturation. For j ≥ i(n+1) every rank vector is allowed, so g\[i\]\[j\] = v_i, the composition of
//!   i copies of S_(n+1) (floating-point addition and max are monotone, so that chain is the
//!   largest value any chain reaches).
//!
//! At the paper's scale (n = 2000, m = 100, α = 0.1) this halves the work of the naive DP. Each
//! window cell is a max-plus reduction over two contiguous slices with eight independent
//! accumulators, so it vectorises (AVX2 when the CPU has it); cells are split across threads. The
//! result is the maximum of identically rounded values, so every evaluation order, and the CUDA
//! kernel, give the same bits.

use rayon::prelude::*;

/// The composition h.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compose {
    /// h(a, s) = a + s, e = 0.
    Sum,
    /// h(a, s) = max(a, s), e = −∞.
    Max,
}

impl Compose {
    fn identity(self) -> f64 {
        match self {
            Compose::Sum => 0.0,
            Compose::Max => f64::NEG_INFINITY,
        }
    }
    fn code(self) -> i32 {
        match self {
            Compose::Sum => 0,
            Compose::Max => 1,
        }
    }
}

#[inline(always)]
fn maxf(a: f64, b: f64) -> f64 {
    if a > b {
        a
    } else {
        b
    }
}

/// max_t h(a[t], b[t]) over two equal-length slices.
#[inline(always)]
fn reduce(a: &[f64], b: &[f64], op: Compose) -> f64 {
    const L: usize = 8;
    let mut acc = [f64::NEG_INFINITY; L];
    let (ca, cb) = (a.chunks_exact(L), b.chunks_exact(L));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    match op {
        Compose::Sum => {
            for (x, y) in ca.zip(cb) {
                for l in 0..L {
                    acc[l] = maxf(x[l] + y[l], acc[l]);
                }
            }
        }
        Compose::Max => {
            for (x, y) in ca.zip(cb) {
                for l in 0..L {
                    acc[l] = maxf(maxf(x[l], y[l]), acc[l]);
                }
            }
        }
    }
    let mut best = acc.iter().copied().fold(f64::NEG_INFINITY, maxf);
    for (x, y) in ra.iter().zip(rb) {
        let v = match op {
            Compose::Sum => x + y,
            Compose::Max => maxf(*x, *y),
        };
        best = maxf(v, best);
    }
    best
}

/// The window of row i: (first j, last j), inclusive.
fn window(i: usize, m: usize, n: usize, q: usize) -> (usize, usize) {
    (i.max(q.saturating_sub((m - i) * (n + 1))), q - (m - i))
}

/// g[i][j] for one j below saturation: max over t ∈ [max(i−1, j−n−1), j−1] of h(g[i−1][t], S_(j−t)).
#[inline(always)]
fn cell(prev: &[f64], w: &[f64], n: usize, i: usize, j: usize, op: Compose) -> f64 {
    let lo = (i - 1).max(j.saturating_sub(n + 1));
    reduce(&prev[lo..j], &w[n + 1 + lo - j..=n], op)
}

/// One row of the DP: row i on its window [lo, hi], reading the previous row.
#[derive(Clone, Copy)]
struct RowTask<'a> {
    prev: &'a [f64],
    w: &'a [f64],
    n: usize,
    i: usize,
    lo: usize,
    hi: usize,
    /// v_i, the value from j = i(n+1) on.
    full: f64,
    op: Compose,
}

#[inline(always)]
fn row_body(t: RowTask<'_>, cur: &mut [f64]) {
    const CHUNK: usize = 256;
    let saturated = t.i * (t.n + 1);
    cur[t.lo..=t.hi].par_chunks_mut(CHUNK).enumerate().for_each(|(c, out)| {
        for (o, slot) in out.iter_mut().enumerate() {
            let j = t.lo + c * CHUNK + o;
            *slot = if j >= saturated { t.full } else { cell(t.prev, t.w, t.n, t.i, j, t.op) };
        }
    });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn row_avx2(t: RowTask<'_>, cur: &mut [f64]) {
    row_body(t, cur)
}

fn row(t: RowTask<'_>, cur: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { row_avx2(t, cur) };
    }
    row_body(t, cur)
}

/// `vals[r − 1] = S_(r)` for r = 1..=n+1 (the n sorted calibration scores, then the upper bound):
/// the scores reversed, as both devices read them.
pub fn reversed(vals: &[f64]) -> Vec<f64> {
    vals.iter().rev().copied().collect()
}

/// v_i for i = 1..=m: the composition of i copies of S_(n+1), in the DP's order.
fn saturation_values(top: f64, m: usize, op: Compose) -> Vec<f64> {
    let mut v = op.identity();
    (0..m)
        .map(|_| {
            v = match op {
                Compose::Sum => v + top,
                Compose::Max => maxf(v, top),
            };
            v
        })
        .collect()
}

/// The DP on the CPU: max over rank multisets of size m with rank sum ≤ q of the composed
/// statistic. `vals` as in [`reversed`]; `q ≥ m`.
pub fn max_compose_cpu(vals: &[f64], m: usize, q: usize, op: Compose) -> f64 {
    let n = vals.len() - 1;
    let w = reversed(vals);
    let sat = saturation_values(vals[n], m, op);
    // g[0][t] = e for every t ≥ 0
    let mut prev = vec![op.identity(); q + 1];
    let mut cur = vec![f64::NEG_INFINITY; q + 1];
    for i in 1..=m {
        let (lo, hi) = window(i, m, n, q);
        row(RowTask { prev: &prev, w: &w, n, i, lo, hi, full: sat[i - 1], op }, &mut cur);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[q]
}

/// CUDA source of the row kernel.
pub const MEAN_DP_KERNEL: &str = include_str!("kernels/mean_dp.cu");

/// The DP on the GPU, one kernel launch per row window; equals [`max_compose_cpu`] exactly.
pub fn max_compose_cuda(vals: &[f64], m: usize, q: usize, op: Compose) -> Result<f64, quiver_gpu::GpuError> {
    use quiver_gpu::cudarc::driver::PushKernelArg;
    let f = quiver_gpu::kernel("mean_dp_row", MEAN_DP_KERNEL, "mean_dp_row")?;
    let stream = quiver_gpu::stream()?;
    let n = vals.len() - 1;
    let sat = saturation_values(vals[n], m, op);
    let d_w = stream.clone_htod(&reversed(vals))?;
    let mut d_prev = stream.clone_htod(&vec![op.identity(); q + 1])?;
    let mut d_cur = stream.clone_htod(&vec![f64::NEG_INFINITY; q + 1])?;
    let (n64, code) = (n as i64, op.code());
    for i in 1..=m {
        let (lo, hi) = window(i, m, n, q);
        let (i64_, lo64, hi64, full) = (i as i64, lo as i64, hi as i64, sat[i - 1]);
        let mut launch = stream.launch_builder(&f);
        launch.arg(&d_prev).arg(&d_w).arg(&n64).arg(&i64_).arg(&lo64).arg(&hi64).arg(&full).arg(&code).arg(&mut d_cur);
        // SAFETY: arguments match the kernel; prev/cur hold q + 1 values and w holds n + 1; the
        // kernel reads prev[t] for 0 ≤ t < hi ≤ q and w[n+1−d] for 1 ≤ d ≤ n + 1; launch_config's
        // blocks of 256 threads fit its shared tiles (TILE = 256).
        unsafe { launch.launch(quiver_gpu::launch_config(hi + 1 - lo)) }?;
        std::mem::swap(&mut d_prev, &mut d_cur);
    }
    let last = stream.clone_dtoh(&d_prev)?;
    Ok(last[q])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The row kernel, run on the CPU (quiver-cuda-emulator) one launch per row window as
    /// [`max_compose_cuda`] launches it, gives [`max_compose_cpu`]'s value exactly, for sums and
    /// maxima, with ties among the scores, in blocks of 32 and 64 threads, with n + 1 from below
    /// one block to several (the kernel's shared-memory tiles over the offsets). The scores are
    /// negative, so that a staged value the kernel should not read (0) would win if it were read.
    #[test]
    fn the_row_kernel_gives_the_cpu_dp() {
        let Some(module) =
            quiver_cuda_emulator::skip_or_panic(quiver_cuda_emulator::Module::compile("mean_dp_row", MEAN_DP_KERNEL))
        else {
            return;
        };
        type Kernel = unsafe extern "C" fn(*const f64, *const f64, i64, i64, i64, i64, f64, i32, *mut f64);
        // SAFETY: mean_dp_row's parameters (kernels/mean_dp.cu).
        let kernel: Kernel = unsafe { module.function("mean_dp_row") }.unwrap();
        let mut state = 3u64;
        // (n, threads per block): n + 1 = block + 1 needs a last tile of one offset
        let shapes = [(5, 32), (32, 32), (18, 64), (64, 64), (44, 32), (31, 64), (96, 32), (63, 64)];
        for (case, (&(n, block), op)) in shapes.iter().flat_map(|s| [(s, Compose::Sum), (s, Compose::Max)]).enumerate()
        {
            let mut vals: Vec<f64> =
                (0..n).map(|_| (quiver_numerics::splitmix::next(&mut state) % 9) as f64 * 0.5 - 20.0).collect();
            vals.sort_by(f64::total_cmp);
            vals.push(vals[n - 1] + 1.0);
            let m = 2 + (case / 2) % 3;
            let q = m * (n + 1) / 2;
            let cpu = max_compose_cpu(&vals, m, q, op);
            let (w, sat) = (reversed(&vals), saturation_values(vals[n], m, op));
            let (mut prev, mut cur) = (vec![op.identity(); q + 1], vec![f64::NEG_INFINITY; q + 1]);
            for i in 1..=m {
                let (lo, hi) = window(i, m, n, q);
                let (pp, wp, cp) = (prev.as_ptr(), w.as_ptr(), cur.as_mut_ptr());
                let threads = hi + 1 - lo;
                // SAFETY: prev and cur hold q + 1 values, w n + 1; one thread per j in [lo, hi].
                module
                    .launch((threads.div_ceil(block) as u32, 1, 1), (block as u32, 1, 1), 0, || unsafe {
                        kernel(pp, wp, n as i64, i as i64, lo as i64, hi as i64, sat[i - 1], op.code(), cp)
                    })
                    .unwrap();
                // every cell of the window, not only the one the bound reads
                let mut expect = vec![f64::NEG_INFINITY; q + 1];
                row(RowTask { prev: &prev, w: &w, n, i, lo, hi, full: sat[i - 1], op }, &mut expect);
                assert_eq!(cur[lo..=hi], expect[lo..=hi], "row {i}: n = {n}, m = {m}, {op:?}");
                std::mem::swap(&mut prev, &mut cur);
            }
            assert_eq!(prev[q], cpu, "n = {n}, m = {m}, {op:?}");
        }
    }

    /// The naive DP, written straight from the recurrence (None = no rank vector reaches j).
    fn naive(vals: &[f64], m: usize, q: usize, op: Compose) -> f64 {
        let n = vals.len() - 1;
        let h = |a: f64, s: f64| match op {
            Compose::Sum => a + s,
            Compose::Max => a.max(s),
        };
        let mut dp = vec![vec![None; q + 1]; m + 1];
        dp[0][0] = Some(op.identity());
        for i in 1..=m {
            for j in 0..=q {
                for r in 1..=(n + 1).min(j) {
                    if let Some(a) = dp[i - 1][j - r] {
                        let v = h(a, vals[r - 1]);
                        if dp[i][j].is_none_or(|b: f64| v > b) {
                            dp[i][j] = Some(v);
                        }
                    }
                }
            }
        }
        dp[m].iter().flatten().copied().fold(f64::NEG_INFINITY, f64::max)
    }

    #[test]
    fn fast_dp_equals_the_recurrence() {
        let mut x = 0.3f64;
        for n in [1usize, 2, 5, 13, 40] {
            let mut vals: Vec<f64> = (0..n)
                .map(|_| {
                    x = (x * 997.0 + 0.123).fract();
                    x * 10.0 - 3.0
                })
                .collect();
            vals.sort_by(f64::total_cmp);
            vals.push(12.0);
            for m in 1..=5 {
                for q in m..=(m * (n + 1)).min(m + 60) {
                    for op in [Compose::Sum, Compose::Max] {
                        assert_eq!(
                            max_compose_cpu(&vals, m, q, op),
                            naive(&vals, m, q, op),
                            "n={n} m={m} q={q} {op:?}"
                        );
                    }
                }
            }
        }
    }
}
