//! Time one robust critical value: `cargo run --release -p quiver-shrinkage --example time_cva`.
fn main() {
    let t = std::time::Instant::now();
    let c = quiver_shrinkage::ebci::cva(0.7, Some(3.0), 0.05).unwrap();
    println!("cva {c} in {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let r = quiver_shrinkage::ebci::rho(0.7, Some(3.0), 2.5).unwrap();
    println!("rho {r} in {:?}", t.elapsed());
}
