//! Timing of the SURE sweeps and the certified search at p = 10^7 (not a test):
//! `cargo run --release -p quiver-shrinkage --example sweep_timing`. Also times the bench's
//! `sure-normal` data (`target/bench/data/sn`) when `cargo xtask bench` has written it.
use quiver_shrinkage::{QuadraticRisk, Sweep, Weight};
use std::time::Instant;

fn main() {
    let p = 10_000_000;
    let mut s = 1u64;
    let mut r = move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let h: Vec<f64> = (0..p).map(|_| 0.1 + 2.0 * r()).collect();
    let d: Vec<f64> = (0..p).map(|_| 3.0 * r() * r()).collect();
    let risk = QuadraticRisk { e: h.clone(), d, h, c: 1.0, weight: Weight::Decreasing };
    for k in [1usize, 16, 24] {
        let ts: Vec<f64> = (0..k).map(|i| (i as f64 + 0.5) / k as f64).collect();
        let _ = risk.sweep_t_cpu(&ts);
        let t0 = Instant::now();
        let _ = risk.sweep_t_cpu(&ts);
        println!("sweep of {k:2} points: {:.3} s", t0.elapsed().as_secs_f64());
    }
    profile_sweeps();
    search("synthetic", &risk);
    if let Some(risk) = bench_data() {
        search("bench sure-normal data", &risk);
    }
    if let (Some(x), Some(a)) = (read("x"), read("a")) {
        let profile = quiver_shrinkage::ProfiledRisk::new(&x, &a);
        let t0 = Instant::now();
        let m = profile.minimize(Sweep::Cpu).unwrap();
        println!(
            "bench data, xkb-estimated profile: minimize {:.3} s, {} sweeps, {} points, gap {:e}",
            t0.elapsed().as_secs_f64(),
            m.sweeps,
            m.evaluations,
            m.risk - m.lower_bound
        );
    }
}

fn search(name: &str, risk: &QuadraticRisk) {
    let t0 = Instant::now();
    let m = risk.minimize(Sweep::Cpu).unwrap();
    println!(
        "{name}: minimize {:.3} s, {} sweeps, {} points, gap {:e}",
        t0.elapsed().as_secs_f64(),
        m.sweeps,
        m.evaluations,
        m.risk - m.lower_bound
    );
}

/// A column of the bench's sure-normal data, when `cargo xtask bench` has written it.
fn read(n: &str) -> Option<Vec<f64>> {
    let path = format!("{}/../../target/bench/data/sn/{n}.f64", env!("CARGO_MANIFEST_DIR"));
    let b = std::fs::read(path).ok()?;
    Some(b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect())
}

/// The bench's sure-normal data as `xkb-grand-mean` sees it, when present.
fn bench_data() -> Option<QuadraticRisk> {
    let (x, a) = (read("x")?, read("a")?);
    let p = x.len() as f64;
    let xbar = x.iter().sum::<f64>() / p;
    Some(QuadraticRisk {
        d: x.iter().map(|xi| (xi - xbar).powi(2)).collect(),
        e: a.iter().map(|ai| (1.0 - 1.0 / p) * ai).collect(),
        h: a.clone(),
        c: a.iter().sum(),
        weight: Weight::Decreasing,
    })
}

/// The profile sweep's cost at 1 and 8 points (cells cost nothing beyond their points).
fn profile_sweeps() {
    if let (Some(x), Some(a)) = (read("x"), read("a")) {
        let profile = quiver_shrinkage::ProfiledRisk::new(&x, &a);
        for k in [1usize, 8] {
            let ts: Vec<f64> = (0..k).map(|i| (i as f64 + 0.5) / k as f64).collect();
            let _ = profile.sweep(&ts);
            let t0 = Instant::now();
            let _ = profile.sweep(&ts);
            println!("profile sweep of {k} points: {:.3} s", t0.elapsed().as_secs_f64());
        }
    }
}
