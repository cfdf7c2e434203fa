//! Timing of the robust EBCI at p = 10^7 (the bench's sure-normal data; not a test).
use std::time::Instant;
fn read(n: &str) -> Vec<f64> {
    let path = format!("{}/../../target/bench/data/sn/{n}.f64", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(path).unwrap().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
}
fn main() {
    let (x, a) = (read("x"), read("a"));
    let m = x.iter().sum::<f64>() / x.len() as f64;
    for k in [true, false] {
        let t0 = Instant::now();
        let e = quiver_shrinkage::ebci::robust_intervals(&x, |_| m, &a, 0.05, k).unwrap();
        println!("kurtosis {k}: {:.3} s (kappa {:?})", t0.elapsed().as_secs_f64(), e.kappa);
        let t0 = Instant::now();
        let _t = quiver_shrinkage::ebci::CvaTable::new(0.1, 3.0, e.kappa, 0.05).unwrap();
        println!("  table alone {:.3} s", t0.elapsed().as_secs_f64());
    }
}
