//! Times the pieces of a conformal p-value computation at n = m = 10^6 (or the first argument):
//! the calibration sort and the counts below each test score. `cargo run --release -p
//! quiver-numerics --example counts_time -- 1000000`.

use quiver_numerics::ranks;
use std::time::Instant;

fn normals(n: usize, seed: u64) -> Vec<f64> {
    let mut st = seed;
    let mut uniform = move || {
        st = quiver_numerics::splitmix::mix(st);
        ((st >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n).map(|_| (-2.0 * uniform().ln()).sqrt() * (std::f64::consts::TAU * uniform()).cos()).collect()
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let cal = normals(n, 1);
    let test = normals(n, 2);
    for round in 0..9 {
        let t = Instant::now();
        let sorted = ranks::into_sorted(cal.clone());
        let sort = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let p = ranks::counts_below_by(&sorted, n, |j| test[j], |_, lt, le| (lt + le) as f64);
        let counts = t.elapsed().as_secs_f64();
        let check: f64 = p.iter().sum();
        let t = Instant::now();
        let index = ranks::SortedIndex::new(&sorted);
        let build = t.elapsed().as_secs_f64();
        std::hint::black_box(&index);
        println!(
            "round {round}: sort {:.1} ms, counts {:.1} ms, of which the index {:.1} ms (check {check})",
            sort * 1e3,
            counts * 1e3,
            build * 1e3
        );
    }
}
