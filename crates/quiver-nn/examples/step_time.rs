//! Time training steps of a 2 × 256 MLP (layer norm) on batches of 256 rows:
//! `cargo run --release -p quiver-nn --example step_time [-- STEPS]`.
use quiver_nn::{Adam, AdamConfig, Mlp, MlpSpec, Tape};

fn main() {
    let steps: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let mut net = Mlp::<f32>::new(MlpSpec::new(4, &[256, 256], 1), 0).expect("network");
    let mut adam = Adam::new(AdamConfig::default(), net.params.len());
    let x: Vec<f32> = (0..256 * 4).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    let mut tape = Tape::new();
    let mut grad = vec![0.0f32; net.params.len()];
    let mut dout = vec![0.0f32; 256];
    let t = std::time::Instant::now();
    for _ in 0..steps {
        let out = net.forward(&mut tape, &x, 256);
        dout.iter_mut().zip(out).for_each(|(d, o)| *d = 2.0 * (o - 0.5) / 256.0);
        net.backward(&mut tape, &dout, &mut grad);
        adam.step(&mut net.params, &grad);
    }
    let s = t.elapsed().as_secs_f64();
    println!("{steps} steps in {s:.3} s: {:.3} ms a step", 1e3 * s / steps as f64);
}
