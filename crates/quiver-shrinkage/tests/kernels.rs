//! The SURE sweep kernels (the quadratic risks' and `xkb-estimated`'s profile): compile to PTX
//! (NVRTC from PyPI in `cargo xtask test`), and equal the CPU sweeps to rounding where a GPU is
//! present.

use quiver_shrinkage::profile::ProfileSweeper;
use quiver_shrinkage::{ProfiledRisk, QuadraticRisk, Sweep, Weight};

/// The sweeps of a test on `device`.
fn sweep(device: quiver_testing::Device) -> Sweep {
    match device {
        quiver_testing::Device::Cpu => Sweep::Cpu,
        quiver_testing::Device::Cuda => Sweep::Cuda,
    }
}

#[test]
fn sweep_kernel_compiles_to_ptx() {
    quiver_testing::assert_kernel_compiles("sure_sweep", quiver_shrinkage::risk::SURE_KERNEL, "sure_sweep");
}

#[test]
fn profile_sweep_kernel_compiles_to_ptx() {
    quiver_testing::assert_kernel_compiles(
        "sure_profile_sweep",
        quiver_shrinkage::profile::PROFILE_KERNEL,
        "sure_profile_sweep",
    );
}

quiver_testing::device_test!(
    /// The sweep on each device equals the CPU sweep to rounding, and so does the minimum found.
    sweeps_equal_the_cpu_sweep_on_every_device,
    |device| {
        let p = 200_000;
        let h: Vec<f64> = (0..p).map(|i| 0.1 + (i % 97) as f64 * 0.05).collect();
        let d: Vec<f64> = (0..p).map(|i| ((i * 31) % 101) as f64 * 0.01).collect();
        for weight in [Weight::Decreasing, Weight::Increasing] {
            let risk = QuadraticRisk { e: h.clone(), d: d.clone(), h: h.clone(), c: 1.0, weight };
            let lambdas: Vec<f64> = (0..40).map(|i| 0.01 * 1.3f64.powi(i)).chain([f64::INFINITY]).collect();
            let cpu = risk.curve(&lambdas, Sweep::Cpu).unwrap();
            let got = risk.curve(&lambdas, sweep(device)).unwrap();
            for (a, b) in cpu.iter().zip(&got) {
                assert!((a - b).abs() <= 1e-12 * a.abs().max(1.0), "{a} vs {b}");
            }
            // every sum of a sweep (values, exact derivatives, both cell bounds)
            let ts: Vec<f64> = (0..=20).map(|i| i as f64 / 20.0).collect();
            let a = risk.sweep_t_cpu(&ts);
            let b = quiver_shrinkage::risk::Sweeper::new(&risk, sweep(device)).unwrap().sweep(&ts).unwrap();
            for (x, y) in [(&a.value, &b.value), (&a.slope, &b.slope), (&a.curvature, &b.curvature), (&a.cell_bound, &b.cell_bound)] {
                for (u, v) in x.iter().zip(y) {
                    assert!((u - v).abs() <= 1e-10 * u.abs().max(1.0), "{u} vs {v}");
                }
            }
            let (mc, mg) = (risk.minimize(Sweep::Cpu).unwrap(), risk.minimize(sweep(device)).unwrap());
            assert!((mc.risk - mg.risk).abs() <= 1e-12 * mc.risk.abs().max(1.0));
            assert!((mc.lower_bound - mg.lower_bound).abs() <= 1e-9 * mc.risk.abs().max(1.0));
        }
    }
);

quiver_testing::device_test!(
    /// The profile's sweep (`xkb-estimated`) on each device equals the CPU sweep to rounding —
    /// values, exact derivatives, cell bounds, a point at λ = ∞ included — and so does the
    /// certified minimum.
    profile_sweeps_equal_the_cpu_sweep_on_every_device,
    |device| {
        let p = 200_000;
        let a: Vec<f64> = (0..p).map(|i| 0.1 + (i % 97) as f64 * 0.05).collect();
        let x: Vec<f64> = (0..p).map(|i| 3.0 + ((i * 31) % 101) as f64 * 0.02 + if i % 7 == 0 { 1.5 } else { 0.0 }).collect();
        let risk = ProfiledRisk::new(&x, &a);
        let ts: Vec<f64> = (0..=20).map(|i| i as f64 / 20.0).collect();
        let cpu = risk.sweep(&ts);
        let got = ProfileSweeper::new(&risk, sweep(device)).unwrap().sweep(&ts).unwrap();
        for (u, v) in [(&cpu.value, &got.value), (&cpu.slope, &got.slope), (&cpu.curvature, &got.curvature), (&cpu.cell_bound, &got.cell_bound)] {
            for (a, b) in u.iter().zip(v) {
                assert!((a - b).abs() <= 1e-10 * a.abs().max(1.0), "{a} vs {b}");
            }
        }
        let (mc, mg) = (risk.minimize(Sweep::Cpu).unwrap(), risk.minimize(sweep(device)).unwrap());
        assert!((mc.risk - mg.risk).abs() <= 1e-12 * mc.risk.abs().max(1.0));
        assert!((mc.lambda - mg.lambda).abs() <= 1e-7 * mc.lambda.abs().max(1.0), "{} vs {}", mc.lambda, mg.lambda);
        assert!((mc.lower_bound - mg.lower_bound).abs() <= 1e-9 * mc.risk.abs().max(1.0));
    }
);
