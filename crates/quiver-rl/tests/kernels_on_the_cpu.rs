//! quiver-rl's CUDA kernels run on the CPU (quiver-cuda-emulator) against their CPU twins, so a
//! change to either side that the other misses fails here, on machines without a GPU: the
//! segmented scans (`episode_weights`, `nstep_returns`), the Poisson bootstrap (`bootstrap_counts`
//! equal to the CPU's counts bit for bit; `resample_sums` with and without shared memory), and
//! the random Fourier features (`rff_rows`). The `device_test!` CUDA halves check the same on a
//! GPU, with its own rounding and the launch code around the kernels.

use quiver_cuda_emulator::{assert_close, skip_or_panic, Module};
use quiver_rl::bootstrap::{resample_counts, Plan, UnitKeys, UnitMatrix};
use quiver_rl::features::Rff;
use std::ops::Range;

fn lcg(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed;
    move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn ope_module() -> Option<Module> {
    skip_or_panic(Module::compile("ope", quiver_rl::gpu::ope_kernel()))
}

/// Episodes of 1 to 12 rows covering `n` rows.
fn episodes(n: usize, r: &mut impl FnMut() -> f64) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < n {
        let end = (start + 1 + (r() * 12.0) as usize).min(n);
        out.push(start..end);
        start = end;
    }
    out
}

#[test]
fn episode_weights_kernel_is_the_cpu_scan() {
    let Some(m) = ope_module() else { return };
    type K = unsafe extern "C" fn(*const f64, *const i64, *const i64, i64, *mut f64);
    // SAFETY: episode_weights's parameters (ope.cu).
    let k: K = unsafe { m.function("episode_weights") }.unwrap();
    let mut r = lcg(1);
    let n = 3000;
    let rho: Vec<f64> = (0..n).map(|_| 0.2 + 2.0 * r()).collect();
    let eps = episodes(n, &mut r);
    let cpu = quiver_rl::ope::episode_weights(&rho, &eps);
    let (start, end): (Vec<i64>, Vec<i64>) = eps.iter().map(|e| (e.start as i64, e.end as i64)).unzip();
    let mut w = vec![0.0; n];
    let (rp, sp, ep, wp, ne) = (rho.as_ptr(), start.as_ptr(), end.as_ptr(), w.as_mut_ptr(), eps.len() as i64);
    // SAFETY: one thread per episode; every episode lies inside rho and w.
    m.launch((eps.len().div_ceil(64) as u32, 1, 1), (64, 1, 1), 0, || unsafe { k(rp, sp, ep, ne, wp) }).unwrap();
    assert_eq!(cpu, w, "the same products in the same order");
}

#[test]
fn nstep_returns_kernel_is_the_cpu_scan() {
    let Some(m) = ope_module() else { return };
    type K = unsafe extern "C" fn(*const f64, *const i64, i64, i32, f64, *mut f64, *mut i32);
    // SAFETY: nstep_returns's parameters (ope.cu).
    let k: K = unsafe { m.function("nstep_returns") }.unwrap();
    let mut r = lcg(2);
    let n = 2000;
    let rewards: Vec<f64> = (0..n).map(|_| r() - 0.3).collect();
    let eps = episodes(n, &mut r);
    let mut ends = vec![0i64; n];
    for e in &eps {
        ends[e.clone()].iter_mut().for_each(|x| *x = e.end as i64);
    }
    for h in [1usize, 4, 50] {
        let (cpu_ret, cpu_len) = quiver_rl::data::nstep_returns_in(&rewards, &eps, h, 0.97);
        let (mut ret, mut len) = (vec![0.0; n], vec![0i32; n]);
        let (rp, ep, op, lp) = (rewards.as_ptr(), ends.as_ptr(), ret.as_mut_ptr(), len.as_mut_ptr());
        // SAFETY: one thread per row; r, ends, ret and len hold n values.
        m.launch((n.div_ceil(128) as u32, 1, 1), (128, 1, 1), 0, || unsafe {
            k(rp, ep, n as i64, h as i32, 0.97, op, lp)
        })
        .unwrap();
        assert_eq!(cpu_len, len, "h = {h}");
        assert_eq!(cpu_ret, ret, "h = {h}: the same sums in the same order");
    }
}

/// A units × slots matrix of `n` units with up to three entries each.
fn unit_matrix(n: usize, width: usize, r: &mut impl FnMut() -> f64) -> UnitMatrix {
    let mut x = UnitMatrix::new(width);
    for _ in 0..n {
        let k = (r() * 4.0) as usize;
        let mut slots: Vec<usize> = (0..k).map(|_| (r() * width as f64) as usize).collect();
        slots.sort();
        slots.dedup();
        x.push_unit(slots.into_iter().map(|s| (s, 10.0 * r() - 3.0)));
    }
    x
}

#[test]
fn bootstrap_kernels_draw_the_cpu_counts_and_add_the_cpu_sums() {
    let Some(m) = ope_module() else { return };
    type Counts = unsafe extern "C" fn(u64, u64, i64, *const u64, u64, *mut u32);
    type Sums = unsafe extern "C" fn(*const u32, *const i64, *const u32, *const f64, i64, i32, i32, *mut f64);
    // SAFETY: the parameters of bootstrap_counts and resample_sums (ope.cu).
    let (counts_k, sums_k): (Counts, Sums) =
        unsafe { (m.function("bootstrap_counts").unwrap(), m.function("resample_sums").unwrap()) };
    let mut r = lcg(3);
    let (n, width, resamples, seed) = (700usize, 9usize, 6usize, 42u64);
    let x = unit_matrix(n, width, &mut r);
    let ids: Vec<u64> = (0..n as u64).map(|i| i * 7919 + 13).collect();
    let stat = |s: &[f64], _: f64| s.to_vec();
    for (keys, key_ptr, first) in
        [(UnitKeys::From(1000), std::ptr::null(), 1000u64), (UnitKeys::Ids(&ids), ids.as_ptr(), 0)]
    {
        // the counts, bit for bit
        let mut counts = vec![0u32; resamples * n];
        let cp = counts.as_mut_ptr();
        // SAFETY: n units × `resamples` rows of counts; keys null or n ids.
        m.launch((n.div_ceil(64) as u32, resamples as u32, 1), (64, 1, 1), 0, || unsafe {
            counts_k(seed, 0, n as i64, key_ptr, first, cp)
        })
        .unwrap();
        let mut cpu_row = vec![0u32; n];
        for b in 0..resamples {
            resample_counts(seed, b as u64, keys, &mut cpu_row);
            assert_eq!(cpu_row, counts[b * n..(b + 1) * n], "resample {b}: the counts differ");
        }
        // the sums and sizes, through shared memory and straight to global memory
        let plan = Plan { x: &x, keys, resamples, seed, stat: &stat };
        let cpu = plan.sums_cpu();
        let offsets: Vec<i64> = x.offsets.iter().map(|&o| o as i64).collect();
        for use_shared in [1, 0] {
            let mut sums = vec![0.0; resamples * (width + 1)];
            let (cp, op, sp, vp, outp) =
                (counts.as_ptr(), offsets.as_ptr(), x.slots.as_ptr(), x.values.as_ptr(), sums.as_mut_ptr());
            let shared = if use_shared == 1 { (width + 1) * 8 } else { 0 };
            // SAFETY: counts hold `resamples` rows of n; offsets n + 1 entries bounding slots and
            // values; sums `resamples` rows of width + 1; the shared buffer width + 1 doubles.
            m.launch((3, resamples as u32, 1), (64, 1, 1), shared, || unsafe {
                sums_k(cp, op, sp, vp, n as i64, width as i32, use_shared, outp)
            })
            .unwrap();
            assert_close(&format!("resampled sums (shared memory: {use_shared})"), &cpu.sums, &sums, 1e-12);
        }
    }
}

#[test]
fn rff_rows_kernel_builds_the_cpu_features() {
    let Some(m) = skip_or_panic(Module::compile("rff_rows", quiver_rl::gpu::RFF_KERNEL)) else { return };
    type K = unsafe extern "C" fn(
        *const f64,
        *const f64,
        *const i64,
        *const f64,
        *const f64,
        *const f64,
        i32,
        i32,
        i32,
        i32,
        f64,
        *mut f64,
        *mut f64,
    );
    // SAFETY: rff_rows's parameters (rff_rows.cu).
    let k: K = unsafe { m.function("rff_rows") }.unwrap();
    let mut r = lcg(4);
    let (rows, state_dim, dim, actions) = (300usize, 3usize, 16usize, 3usize);
    let rff = Rff::new(state_dim, dim, 0.7, 11, actions);
    let s: Vec<f64> = (0..rows * state_dim).map(|_| 4.0 * r() - 2.0).collect();
    let s_next: Vec<f64> = (0..rows * state_dim).map(|_| 4.0 * r() - 2.0).collect();
    let a: Vec<i64> = (0..rows).map(|_| (r() * actions as f64) as i64).collect();
    // the target's probabilities at s′, zero on rows whose episode ends
    let pnext: Vec<f64> = (0..rows * actions).map(|i| if (i / actions) % 5 == 0 { 0.0 } else { r() }).collect();
    let d = dim * actions;
    let (mut phi, mut next) = (vec![0.0; rows * d], vec![0.0; rows * d]);
    let args = (s.as_ptr(), s_next.as_ptr(), a.as_ptr(), pnext.as_ptr(), rff.w.as_ptr(), rff.b.as_ptr());
    let (pp, np) = (phi.as_mut_ptr(), next.as_mut_ptr());
    // SAFETY: one thread per (row, feature); the buffers hold the sizes the kernel indexes.
    m.launch(((rows * dim).div_ceil(128) as u32, 1, 1), (128, 1, 1), 0, || unsafe {
        k(
            args.0,
            args.1,
            args.2,
            args.3,
            args.4,
            args.5,
            rows as i32,
            state_dim as i32,
            dim as i32,
            actions as i32,
            rff.scale,
            pp,
            np,
        )
    })
    .unwrap();
    // the CPU's ψ, laid out as the kernel lays it out: e_a ⊗ ψ(s) and Σ_q p_q e_q ⊗ ψ(s′)
    let (mut cpu_phi, mut cpu_next) = (vec![0.0; rows * d], vec![0.0; rows * d]);
    let mut psi = vec![0.0; dim];
    for i in 0..rows {
        rff.psi(|c| s[i * state_dim + c], &mut psi);
        let ai = a[i] as usize;
        cpu_phi[i * d + ai * dim..i * d + (ai + 1) * dim].copy_from_slice(&psi);
        rff.psi(|c| s_next[i * state_dim + c], &mut psi);
        for q in 0..actions {
            for j in 0..dim {
                cpu_next[i * d + q * dim + j] = pnext[i * actions + q] * psi[j];
            }
        }
    }
    // the CPU's own cos (features::cos) and the C library's agree to ~1e-15
    let abs = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
    assert!(abs(&cpu_phi, &phi) <= 1e-13, "phi: {}", abs(&cpu_phi, &phi));
    assert!(abs(&cpu_next, &next) <= 1e-13, "next: {}", abs(&cpu_next, &next));
}

/// `ope-many`'s chunk kernels — `many_rows` builds [C | Y], `column_sums` and `centre` centre it
/// and sum the responses' squares — run on the CPU give the CPU pass's means and sums of
/// squares exactly (the same sums in the same order), and with the product of the centred chunk
/// its co-moments.
#[test]
fn ope_many_chunk_kernels_give_the_cpu_co_moments() {
    use quiver_rl::ope_many::{co_moments, ManyInput, OPE_MANY_KERNEL};
    let Some(m) = skip_or_panic(Module::compile("ope_many", OPE_MANY_KERNEL)) else { return };
    type Rows = unsafe extern "C" fn(*const f64, *const f64, *const f64, *const f64, *const f64, i64, i32, *mut f64);
    type Sums = unsafe extern "C" fn(*const f64, i64, i32, *mut f64);
    type Centre = unsafe extern "C" fn(*mut f64, i64, i32, i32, *const f64, *mut f64);
    // SAFETY: the kernels' parameters (ope_many.cu).
    let (rows_k, sums_k, centre_k): (Rows, Sums, Centre) = unsafe {
        (m.function("many_rows").unwrap(), m.function("column_sums").unwrap(), m.function("centre").unwrap())
    };
    let mut rng = lcg(5);
    let (n, k) = (500usize, 4usize);
    let r: Vec<f64> = (0..n).map(|_| rng()).collect();
    let mu: Vec<f64> = (0..n).map(|_| 0.1 + 0.8 * rng()).collect();
    let t: Vec<Vec<f64>> = (0..k).map(|_| (0..n).map(|_| rng()).collect()).collect();
    let v: Vec<Vec<f64>> = (0..k).map(|_| (0..n).map(|_| rng()).collect()).collect();
    let q: Vec<f64> = (0..n).map(|_| rng()).collect();
    let input = ManyInput {
        r: &r,
        mu: &mu,
        targets: t.iter().map(Vec::as_slice).collect(),
        model: Some((v.iter().map(Vec::as_slice).collect(), &q)),
    };
    let cpu = co_moments(&input);
    let width = 3 * k;
    let (tc, vc): (Vec<f64>, Vec<f64>) = (t.concat(), v.concat());
    let mut z = vec![0.0; n * width];
    let ptrs = (r.as_ptr(), mu.as_ptr(), tc.as_ptr(), vc.as_ptr(), q.as_ptr(), z.as_mut_ptr());
    // SAFETY: columns of n values (k of them for the targets and vhat), z n × width.
    m.launch(((n * k).div_ceil(64) as u32, 1, 1), (64, 1, 1), 0, || unsafe {
        rows_k(ptrs.0, ptrs.1, ptrs.2, ptrs.3, ptrs.4, n as i64, k as i32, ptrs.5)
    })
    .unwrap();
    let mut sums = vec![0.0; width];
    let (zp, sp) = (z.as_ptr(), sums.as_mut_ptr());
    // SAFETY: z n × width, sums width; one thread per column.
    m.launch((1, 1, 1), (64, 1, 1), 0, || unsafe { sums_k(zp, n as i64, width as i32, sp) }).unwrap();
    let means: Vec<f64> = sums.iter().map(|s| s / n as f64).collect();
    let mut sumsq = vec![0.0; 2 * k];
    let (zp, mp, qp) = (z.as_mut_ptr(), means.as_ptr(), sumsq.as_mut_ptr());
    // SAFETY: z n × width, means width, sumsq width − k; one thread per column.
    m.launch((1, 1, 1), (64, 1, 1), 0, || unsafe { centre_k(zp, n as i64, width as i32, k as i32, mp, qp) }).unwrap();
    assert_eq!(cpu.mean_c, means[..k], "the means, bit for bit");
    assert_eq!(cpu.mean_y, means[k..]);
    assert_eq!(cpu.yy, sumsq, "the sums of squares, bit for bit");
    // the product cuBLAS computes, here by loops: S_CC and S_CY from the centred chunk
    let dot = |a: usize, b: usize| (0..n).map(|i| z[i * width + a] * z[i * width + b]).sum::<f64>();
    let cc: Vec<f64> = (0..k * k).map(|x| dot(x / k, x % k)).collect();
    let cy: Vec<f64> = (0..k * 2 * k).map(|x| dot(x / (2 * k), k + x % (2 * k))).collect();
    assert_close("S_CC", &cpu.cc, &cc, 1e-12);
    assert_close("S_CY", &cpu.cy, &cy, 1e-12);
}

/// Three matrices of one 12 × 7 shape on one random mask (about 40 % observed), each from its
/// spectral start.
fn als_case(seed: u64) -> (Vec<ndarray::Array2<f64>>, ndarray::Array2<bool>) {
    let mut r = lcg(seed);
    let observed = ndarray::Array2::from_shape_fn((12, 7), |_| r() < 0.4);
    let ms = (0..3).map(|_| ndarray::Array2::from_shape_fn((12, 7), |_| r() * 2.0 - 0.5)).collect();
    (ms, observed)
}

fn als_module() -> Option<Module> {
    skip_or_panic(Module::compile("als", quiver_rl::low_rank_cuda::ALS_KERNEL))
}

type AlsLines = unsafe extern "C" fn(
    *const f64,
    *const u8,
    *const f64,
    *mut f64,
    *const i32,
    *const f64,
    i32,
    i32,
    i32,
    i32,
    *mut i32,
);

/// One sweep of `als_lines` (rows, then columns) over a batch, as the GPU path launches it.
#[allow(clippy::too_many_arguments)]
fn als_sweep_on_the_emulator(
    m: &Module,
    y: &[f64],
    mask: &[u8],
    (u, v): (&mut [f64], &mut [f64]),
    active: &[i32],
    rho: &[f64],
    (rows, cols, rank): (usize, usize, usize),
    failed: &mut i32,
) {
    // SAFETY: als_lines's parameters (als.cu).
    let k: AlsLines = unsafe { m.function("als_lines") }.unwrap();
    let batch = active.len();
    let shared = quiver_rl::low_rank_cuda::shared_bytes(rank) as usize;
    for by_rows in [1, 0] {
        let (n, other, mine) =
            if by_rows == 1 { (rows, v.as_ptr(), u.as_mut_ptr()) } else { (cols, u.as_ptr(), v.as_mut_ptr()) };
        let (yp, mp, ap, rp, fp) = (y.as_ptr(), mask.as_ptr(), active.as_ptr(), rho.as_ptr(), failed as *mut i32);
        let threads = quiver_rl::low_rank_cuda::ALS_THREADS;
        // SAFETY: y holds batch × rows × cols values, the mask rows × cols, the factors
        // batch × lines × rank.
        m.launch((n as u32, batch as u32, 1), (threads, 1, 1), shared, || unsafe {
            k(yp, mp, other, mine, ap, rp, rows as i32, cols as i32, rank as i32, by_rows, fp)
        })
        .unwrap();
    }
}

#[test]
fn als_lines_kernel_is_a_sweep_of_the_cpu_least_squares() {
    let Some(m) = als_module() else { return };
    for (seed, rank, ridge) in [(21, 1, 1e-6), (22, 2, 1e-6), (23, 3, 1e-3)] {
        let (ms, observed) = als_case(seed);
        let (rows, cols) = observed.dim();
        let mask: Vec<u8> = observed.iter().map(|&o| u8::from(o)).collect();
        let (mut y, mut u, mut v, mut rho, mut cpu) = (vec![], vec![], vec![], vec![], vec![]);
        for mat in &ms {
            let (u0, v0) = quiver_rl::low_rank::spectral_start(mat, &observed, rank).unwrap();
            y.extend(mat.iter().copied());
            u.extend(u0.iter().copied());
            v.extend(v0.iter().copied());
            let scale = mat.iter().zip(observed.iter()).filter(|(_, &o)| o).fold(0.0f64, |a, (x, _)| a.max(x.abs()));
            rho.push(ridge * scale);
            // two sweeps on the CPU
            cpu.push(quiver_rl::low_rank::alternate(mat, &observed, u0, v0, 2, ridge).unwrap());
        }
        // the second matrix stopped: its factors stay as they were
        let active = [1, 0, 1];
        let (u_start, v_start) = (u.clone(), v.clone());
        let mut failed = 0;
        for _ in 0..2 {
            als_sweep_on_the_emulator(&m, &y, &mask, (&mut u, &mut v), &active, &rho, (rows, cols, rank), &mut failed);
        }
        assert_eq!(failed, 0);
        for (b, (cu, cv)) in cpu.iter().enumerate() {
            let (us, vs) = (b * rows * rank..(b + 1) * rows * rank, b * cols * rank..(b + 1) * cols * rank);
            if active[b] == 0 {
                assert_eq!(u[us.clone()], u_start[us], "a stopped matrix's U moved");
                assert_eq!(v[vs.clone()], v_start[vs], "a stopped matrix's V moved");
                continue;
            }
            // the same normal equations in the same order, the same Cholesky: the same bits
            assert_eq!(cu.as_slice().unwrap(), &u[us], "rank {rank}, matrix {b}: U");
            assert_eq!(cv.as_slice().unwrap(), &v[vs], "rank {rank}, matrix {b}: V");
        }
    }
}

#[test]
fn als_lines_kernel_reports_singular_normal_equations() {
    let Some(m) = als_module() else { return };
    // a row with no observed cell and no ridge: its normal equations are 0
    let (rows, cols, rank) = (3, 3, 1);
    let mask = [1u8, 1, 0, 0, 0, 0, 1, 0, 1];
    let y = vec![1.0; 9];
    let (mut u, mut v) = (vec![1.0; 3], vec![1.0; 3]);
    let mut failed = 0;
    als_sweep_on_the_emulator(&m, &y, &mask, (&mut u, &mut v), &[1], &[0.0], (rows, cols, rank), &mut failed);
    assert_eq!(failed, 1);
}

#[test]
fn als_converged_kernel_stops_each_matrix_by_the_cpu_rule() {
    let Some(m) = als_module() else { return };
    type K = unsafe extern "C" fn(*const f64, *mut f64, *mut i32, i64);
    // SAFETY: als_converged's parameters (als.cu).
    let k: K = unsafe { m.function("als_converged") }.unwrap();
    let cells = 300; // more than a block's threads
    let base: Vec<f64> = (0..cells).map(|i| (i as f64 * 0.37).sin() * 4.0).collect();
    let scale = base.iter().fold(0.0f64, |a, x| a.max(x.abs()));
    // change of 0.5e-12, 2e-12 of the scale, 0 — and a matrix already stopped (its L untouched)
    let moves = [0.5e-12 * scale, 2e-12 * scale, 0.0, 1.0];
    let mut z = Vec::new();
    let mut last = Vec::new();
    for &d in &moves {
        last.extend(base.iter().copied());
        z.extend(base.iter().enumerate().map(|(i, &x)| if i == 250 { x + d } else { x }));
    }
    let mut active = vec![1, 1, 1, 0];
    let (zp, lp, ap) = (z.as_ptr(), last.as_mut_ptr(), active.as_mut_ptr());
    // SAFETY: z and last hold 4 × cells values, active 4 flags; a block per matrix.
    m.launch((4, 1, 1), (quiver_rl::low_rank_cuda::ALS_THREADS, 1, 1), 0, || unsafe { k(zp, lp, ap, cells as i64) })
        .unwrap();
    assert_eq!(active, vec![0, 1, 0, 0]);
    assert_eq!(last[..3 * cells], z[..3 * cells], "L takes the new product");
    assert_eq!(last[3 * cells..], base[..], "a stopped matrix's L is kept");
}

#[test]
fn the_completion_product_config_is_u_times_v_transposed() {
    use quiver_cuda_emulator::{cublas_gemm, GemmArgs};
    let (rows, cols, rank, batch) = (5, 4, 3, 2);
    let mut r = lcg(31);
    let u: Vec<f64> = (0..batch * rows * rank).map(|_| r()).collect();
    let v: Vec<f64> = (0..batch * cols * rank).map(|_| r()).collect();
    let c = quiver_rl::low_rank_cuda::product_config(rows, cols, rank, batch).unwrap();
    let (g, args) = (c.gemm, GemmArgs::of(&c.gemm));
    // A is V, B is U (the launch code passes them so)
    let mut z = vec![0.0; batch * rows * cols];
    for b in 0..c.batch_size as usize {
        let (sa, sb, sc) = (c.stride_a as usize * b, c.stride_b as usize * b, c.stride_c as usize * b);
        cublas_gemm(&args, g.alpha, &v[sa..], &u[sb..], g.beta, &mut z[sc..]);
    }
    for b in 0..batch {
        let ub = ndarray::ArrayView2::from_shape((rows, rank), &u[b * rows * rank..(b + 1) * rows * rank]).unwrap();
        let vb = ndarray::ArrayView2::from_shape((cols, rank), &v[b * cols * rank..(b + 1) * cols * rank]).unwrap();
        let want = ub.dot(&vb.t());
        assert_close("U V^T", want.as_slice().unwrap(), &z[b * rows * cols..(b + 1) * rows * cols], 1e-15);
    }
}
