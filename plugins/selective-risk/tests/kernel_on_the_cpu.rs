//! The threshold kernel, run on the CPU (quiver-cuda-emulator), gives the CPU path's counts at
//! every candidate threshold (ascending or not, on ties and outside the scores' range): a change
//! to either side that the other misses fails here, without a GPU.

use quiver_cuda_emulator::{skip_or_panic, Module};
use selective_risk::{Calibrated, THRESHOLD_KERNEL};

type Kernel = unsafe extern "C" fn(*const f64, i64, *const i64, *const f64, i64, *mut i64, *mut i64);

#[test]
fn the_kernel_gives_the_cpu_counts() {
    let Some(m) = skip_or_panic(Module::compile("threshold_counts", THRESHOLD_KERNEL)) else { return };
    // SAFETY: threshold_counts's parameters (kernels/threshold_counts.cu).
    let kernel: Kernel = unsafe { m.function("threshold_counts") }.unwrap();
    let mut state = 5u64;
    let mut r = || quiver_numerics::splitmix::next(&mut state) as f64 / u64::MAX as f64;
    let n = 800;
    let scores: Vec<f64> = (0..n).map(|_| (r() * 40.0).floor() / 4.0).collect();
    let errors: Vec<bool> = (0..n).map(|_| r() < 0.3).collect();
    let c = Calibrated::new(&scores, &errors);
    let mut ascending: Vec<f64> = (0..300).map(|i| i as f64 / 30.0 - 0.5).collect();
    ascending.extend(scores.iter().take(50));
    ascending.sort_by(f64::total_cmp);
    let shuffled: Vec<f64> = (0..300).map(|_| r() * 12.0 - 1.0).collect();
    for lambdas in [ascending, shuffled] {
        let g = lambdas.len();
        let cpu = c.counts_cpu(&lambdas);
        let (mut acc, mut err) = (vec![0i64; g], vec![0i64; g]);
        let (sp, pp, lp, ap, ep) =
            (c.sorted.as_ptr(), c.error_prefix.as_ptr(), lambdas.as_ptr(), acc.as_mut_ptr(), err.as_mut_ptr());
        // SAFETY: sorted holds n scores, the prefix n + 1 counts, lambdas/acc/err g values.
        m.launch((g.div_ceil(64) as u32, 1, 1), (64, 1, 1), 0, || unsafe {
            kernel(sp, n as i64, pp, lp, g as i64, ap, ep)
        })
        .unwrap();
        let got: Vec<(i64, i64)> = acc.into_iter().zip(err).collect();
        assert_eq!(cpu, got);
    }
}
