//! Time the exact pieces of `mean` mode at the paper's drug–target scale (n = 2000, m = 100):
//! `cargo run --release -p batch-pi --example time_mean`.
use std::time::Instant;

fn main() {
    let (n, m) = (2000u64, 100u64);
    let alpha = quiver_numerics::exact::Level::from_f64(0.1).unwrap();
    let t = Instant::now();
    let q = batch_pi::ranks::mean(n, m, &alpha);
    let tq = t.elapsed();
    let mut vals: Vec<f64> = (0..n).map(|i| ((i * 7919) % 2000) as f64 / 2000.0).collect();
    vals.sort_by(f64::total_cmp);
    vals.push(1.0);
    let t = Instant::now();
    let b = batch_pi::dp::max_compose_cpu(&vals, m as usize, q as usize, batch_pi::dp::Compose::Sum);
    let td = t.elapsed();
    println!("Q = {q} ({tq:?}), bound = {} ({td:?})", b / m as f64);
    let t = Instant::now();
    let k = batch_pi::ranks::order_stat(100_000, 10_000, 5_000, &alpha);
    let (z, kp) = batch_pi::ranks::pac(100_000, 10_000, &alpha, &alpha);
    println!("order-stat k = {k}, pac zeta = {z} k = {kp} ({:?})", t.elapsed());
}
