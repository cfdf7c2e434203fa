//! The p-value kernel, run on the CPU (quiver-cuda-emulator), equals the CPU path bit for bit,
//! unweighted and weighted, with ties between test and calibration scores: a change to either
//! side that the other misses fails here, without a GPU.

use conformal_selection::{Calibrated, PVALUE_KERNEL};
use quiver_cuda_emulator::{skip_or_panic, Module};

type Kernel = unsafe extern "C" fn(*const f64, i64, *const f64, *const f64, *const f64, *const f64, i64, *mut f64);

#[test]
fn the_kernel_gives_the_cpu_p_values() {
    let Some(m) = skip_or_panic(Module::compile("conformal_pvalues", PVALUE_KERNEL)) else { return };
    // SAFETY: conformal_pvalues's parameters (kernels/pvalues.cu).
    let kernel: Kernel = unsafe { m.function("conformal_pvalues") }.unwrap();
    let mut state = 11u64;
    let mut r = || quiver_numerics::splitmix::next(&mut state) as f64 / u64::MAX as f64;
    let (n, tests) = (400, 900);
    // scores on a grid of 50 values: ties within and across the two tables
    let cal: Vec<f64> = (0..n).map(|_| (r() * 50.0).floor() / 10.0).collect();
    let test: Vec<f64> = (0..tests).map(|_| (r() * 55.0).floor() / 10.0 - 0.2).collect();
    let u: Vec<f64> = (0..tests).map(|_| r()).collect();
    let (cal_w, test_w): (Vec<f64>, Vec<f64>) =
        ((0..n).map(|_| 0.1 + r()).collect(), (0..tests).map(|_| 0.1 + r()).collect());
    for weighted in [false, true] {
        let c = Calibrated::new(cal.clone(), weighted.then_some(&cal_w[..]));
        let tw: Option<Vec<f64>> = weighted.then(|| test_w.iter().map(|w| w / c.weight_scale).collect());
        let cpu = c.p_values_cpu(&test, tw.as_deref(), &u);
        let mut out = vec![0.0; tests];
        let wp = c.weight_prefix.as_ref().map_or(std::ptr::null(), |w| w.as_ptr());
        let twp = tw.as_ref().map_or(std::ptr::null(), |w| w.as_ptr());
        let (sp, tp, up, op) = (c.sorted.as_ptr(), test.as_ptr(), u.as_ptr(), out.as_mut_ptr());
        // SAFETY: sorted holds n scores, the prefix n + 1 sums (or null), test/u/out `tests` values.
        m.launch((tests.div_ceil(128) as u32, 1, 1), (128, 1, 1), 0, || unsafe {
            kernel(sp, n as i64, wp, tp, twp, up, tests as i64, op)
        })
        .unwrap();
        assert_eq!(cpu, out, "weighted: {weighted}");
    }
}
