//! The training core against exact answers: the backward pass against central finite differences
//! (f64), Adam's first steps in closed form, Polyak averaging, bit-identical steps on 1 and 2
//! threads, minibatch draws, checkpoints that round-trip and refuse broken files, and a network that
//! learns a smooth function.

use quiver_nn::batches::minibatch;
use quiver_nn::checkpoint::{load, save};
use quiver_nn::{Adam, AdamConfig, Mlp, MlpSpec, Tape};
use std::collections::HashMap;

fn draws(seed: u64, n: usize) -> Vec<f64> {
    let mut s = seed;
    (0..n).map(|_| (quiver_numerics::splitmix::next(&mut s) >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0).collect()
}

/// L = Σ c ⊙ f(x): its gradient in the outputs is c.
fn loss(net: &Mlp<f64>, x: &[f64], rows: usize, c: &[f64]) -> f64 {
    let mut tape = Tape::new();
    net.forward(&mut tape, x, rows).iter().zip(c).map(|(o, c)| o * c).sum()
}

fn gradient_check(layer_norm: bool) {
    let spec = MlpSpec { inputs: 3, hidden: vec![7, 5], outputs: 2, layer_norm };
    let rows = 70; // two pieces: 64 + 6 rows
    let mut net = Mlp::<f64>::new(spec, 11).unwrap();
    // move the layer norms off their start (gain 1, shift 0) so that their gradients are general
    let perturb = draws(5, net.params.len());
    net.params.iter_mut().zip(&perturb).for_each(|(p, d)| *p += 0.3 * d);
    let x = draws(1, rows * 3);
    let c = draws(2, rows * 2);
    let mut tape = Tape::new();
    net.forward(&mut tape, &x, rows);
    let mut grad = vec![0.0; net.params.len()];
    net.backward(&mut tape, &c, &mut grad);
    let h = 1e-6;
    let mut worst: f64 = 0.0;
    for (i, &g) in grad.iter().enumerate() {
        let mut up = net.clone();
        up.params[i] += h;
        let mut down = net.clone();
        down.params[i] -= h;
        let fd = (loss(&up, &x, rows, &c) - loss(&down, &x, rows, &c)) / (2.0 * h);
        worst = worst.max((fd - g).abs() / (1.0 + fd.abs()));
    }
    assert!(worst < 1e-7, "largest error of the backward pass against finite differences: {worst:e}");
}

#[test]
fn the_backward_pass_equals_finite_differences_with_layer_norm() {
    gradient_check(true);
}

#[test]
fn the_backward_pass_equals_finite_differences_without_layer_norm() {
    gradient_check(false);
}

#[test]
fn f32_and_f64_networks_agree() {
    let spec = MlpSpec::new(4, &[32, 32], 3);
    let n64 = Mlp::<f64>::new(spec.clone(), 3).unwrap();
    let n32 = Mlp::<f32>::from_params(spec, n64.params.iter().map(|&p| p as f32).collect()).unwrap();
    let x = draws(4, 100 * 4);
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let (mut t64, mut t32) = (Tape::new(), Tape::new());
    let o64 = n64.forward(&mut t64, &x, 100).to_vec();
    let o32 = n32.forward(&mut t32, &x32, 100);
    for (a, b) in o64.iter().zip(o32) {
        assert!((a - *b as f64).abs() < 1e-5 * (1.0 + a.abs()), "{a} vs {b}");
    }
}

fn one_step(threads: usize) -> Vec<f32> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        let mut net = Mlp::<f32>::new(MlpSpec::new(6, &[64, 64], 4), 9).unwrap();
        let x: Vec<f32> = draws(6, 300 * 6).iter().map(|&v| v as f32).collect();
        let c: Vec<f32> = draws(7, 300 * 4).iter().map(|&v| v as f32).collect();
        let mut adam = Adam::new(AdamConfig { lr: 1e-3, ..Default::default() }, net.params.len());
        let mut tape = Tape::new();
        let mut grad = vec![0.0f32; net.params.len()];
        for _ in 0..3 {
            net.forward(&mut tape, &x, 300);
            net.backward(&mut tape, &c, &mut grad);
            adam.step(&mut net.params, &grad);
        }
        net.params
    })
}

#[test]
fn training_steps_give_the_same_bits_on_one_and_two_threads() {
    assert_eq!(one_step(1), one_step(2));
}

#[test]
fn adam_takes_its_first_steps_in_closed_form() {
    let config = AdamConfig { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, max_grad_norm: None };
    let mut adam = Adam::<f64>::new(config, 2);
    let mut p = vec![1.0, -2.0];
    adam.step(&mut p, &[0.5, -4.0]);
    // m̂ = g, v̂ = g²: the first step is lr · g/(|g| + ε)
    assert!((p[0] - (1.0 - 0.1 * 0.5 / (0.5 + 1e-8))).abs() < 1e-15);
    assert!((p[1] - (-2.0 + 0.1 * 4.0 / (4.0 + 1e-8))).abs() < 1e-15);
    // second step by the formulas
    let g2 = [1.0, 1.0];
    let m = [0.9 * 0.05 + 0.1 * 1.0, 0.9 * -0.4 + 0.1 * 1.0];
    let v = [0.999 * 0.00025 + 0.001, 0.999 * 0.016 + 0.001];
    let (b1, b2) = (1.0 - 0.9f64.powi(2), 1.0 - 0.999f64.powi(2));
    let expect: Vec<f64> = (0..2).map(|i| p[i] - 0.1 * (m[i] / b1) / ((v[i] / b2).sqrt() + 1e-8)).collect();
    adam.step(&mut p, &g2);
    for i in 0..2 {
        assert!((p[i] - expect[i]).abs() < 1e-14, "{} vs {}", p[i], expect[i]);
    }
    // clipping scales the gradient to the largest norm
    let mut clipped = Adam::<f64>::new(AdamConfig { max_grad_norm: Some(1.0), ..config }, 1);
    let mut q = vec![0.0];
    assert_eq!(clipped.step(&mut q, &[10.0]), 10.0);
    assert!((q[0] + 0.1).abs() < 1e-6);
}

#[test]
fn polyak_averaging_moves_the_target_by_tau() {
    let spec = MlpSpec::new(2, &[3], 1);
    let online = Mlp::<f64>::new(spec.clone(), 1).unwrap();
    let mut target = Mlp::<f64>::new(spec, 2).unwrap();
    let before = target.params.clone();
    target.polyak_toward(&online, 0.25);
    for ((t, b), o) in target.params.iter().zip(&before).zip(&online.params) {
        assert!((t - (b + 0.25 * (o - b))).abs() < 1e-15);
    }
}

#[test]
fn minibatches_depend_only_on_seed_step_and_n() {
    let mut a = vec![0u32; 256];
    let mut b = vec![0u32; 256];
    minibatch(3, 17, 1000, &mut a);
    minibatch(3, 17, 1000, &mut b);
    assert_eq!(a, b);
    minibatch(3, 18, 1000, &mut b);
    assert_ne!(a, b);
    minibatch(4, 17, 1000, &mut b);
    assert_ne!(a, b);
    // uniform over 0..n: a χ² test over 10 bins of 256 000 draws (9 degrees of freedom; 27.9 is the
    // 0.999 quantile)
    let mut counts = [0u64; 10];
    for step in 0..1000 {
        minibatch(5, step, 10, &mut a);
        a.iter().for_each(|&r| counts[r as usize] += 1);
    }
    let e = 25_600.0;
    let chi2: f64 = counts.iter().map(|&c| (c as f64 - e).powi(2) / e).sum();
    assert!(chi2 < 27.9, "chi-square {chi2} over {counts:?}");
}

#[test]
fn checkpoints_round_trip_and_refuse_broken_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.safetensors");
    let q = Mlp::<f32>::new(MlpSpec::new(3, &[8, 8], 2), 1).unwrap();
    let v = Mlp::<f32>::new(MlpSpec { inputs: 3, hidden: vec![4], outputs: 1, layer_norm: false }, 2).unwrap();
    let meta = HashMap::from([("step".to_string(), "42".to_string())]);
    save(&path, &[("q", &q), ("v", &v)], &meta).unwrap();
    let back = load::<f32>(&path).unwrap();
    assert_eq!(back.networks["q"], q);
    assert_eq!(back.networks["v"], v);
    assert_eq!(back.metadata, meta);
    // a file of another dtype
    let e = load::<f64>(&path).unwrap_err().to_string();
    assert!(e.contains("F32") && e.contains("net.safetensors"), "{e}");
    // cut short, and not a checkpoint at all
    let bytes = std::fs::read(&path).unwrap();
    for (name, content) in
        [("cut", &bytes[..bytes.len() - 10]), ("text", b"hello, world".as_slice()), ("empty", &[][..])]
    {
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        let e = load::<f32>(&p).unwrap_err().to_string();
        assert!(e.contains(name), "{e}");
    }
    let e = load::<f32>(&dir.path().join("absent")).unwrap_err().to_string();
    assert!(e.contains("absent"), "{e}");
}

#[test]
fn oversized_networks_are_refused_before_allocating() {
    let e = Mlp::<f32>::new(MlpSpec::new(3, &[65_536, 65_536, 65_536], 1), 0).unwrap_err().to_string();
    assert!(e.contains("memory") || e.contains("limit"), "{e}");
    let e = Mlp::<f32>::new(MlpSpec::new(3, &[0], 1), 0).unwrap_err().to_string();
    assert!(e.contains("width = 0"), "{e}");
    let e = Mlp::<f32>::new(MlpSpec::new(3, &[1 << 20], 1), 0).unwrap_err().to_string();
    assert!(e.contains("65536"), "{e}");
}

#[test]
fn a_network_learns_a_smooth_function() {
    let mut net = Mlp::<f32>::new(MlpSpec::new(1, &[64, 64], 1), 0).unwrap();
    let mut adam = Adam::new(AdamConfig { lr: 3e-3, ..Default::default() }, net.params.len());
    let n = 512;
    let xs: Vec<f32> = (0..n).map(|i| -3.0 + 6.0 * i as f32 / (n - 1) as f32).collect();
    let ys: Vec<f32> = xs.iter().map(|x| x.sin()).collect();
    let (mut tape, mut grad) = (Tape::new(), vec![0.0f32; net.params.len()]);
    let (mut rows, mut x, mut dout) = (vec![0u32; 128], vec![0.0f32; 128], vec![0.0f32; 128]);
    for step in 0..2000 {
        minibatch(1, step, n, &mut rows);
        rows.iter().zip(&mut x).for_each(|(&r, v)| *v = xs[r as usize]);
        let out = net.forward(&mut tape, &x, 128);
        for ((d, o), &r) in dout.iter_mut().zip(out).zip(&rows) {
            *d = 2.0 * (o - ys[r as usize]) / 128.0;
        }
        net.backward(&mut tape, &dout, &mut grad);
        adam.step(&mut net.params, &grad);
    }
    let out = net.forward(&mut tape, &xs, n);
    let mse: f32 = out.iter().zip(&ys).map(|(o, y)| (o - y).powi(2)).sum::<f32>() / n as f32;
    assert!(mse < 1e-3, "mean squared error {mse}");
}
