//! The GPU training step (`DeviceNets`) against the CPU network, on every device: on the CPU its
//! kernels run through quiver-cuda-emulator (the kernels' own CUDA source built by the host
//! compiler) and its products through a plain loop that reads cuBLAS's column-major arguments as
//! cuBLAS documents them — so the layout of every product, every kernel argument and the order of
//! the backward pass are checked without a GPU; the `cuda` halves run the same on cuBLAS and the
//! NVRTC-compiled kernels where a GPU is present. Plus: each kernel compiles to PTX for sm_90.

use quiver_cuda_emulator::{cublas_gemm, skip_or_panic, Module};
use quiver_nn::device::{Backend, DeviceNets, GemmArgs, Pass, RowOp, MLP_KERNELS, ROW_THREADS};
use quiver_nn::{Adam, AdamConfig, AdamScalars, Mlp, MlpSpec, NnError, Tape};
use quiver_testing::Device;

/// The emulated device: host vectors, the kernels on the CPU, products by a column-major loop.
struct Emulated {
    module: Module,
}

fn rows_grid(rows: usize) -> (u32, u32, u32) {
    (rows as u32, 1, 1)
}

fn threads() -> (u32, u32, u32) {
    (ROW_THREADS, 1, 1)
}

/// The grid the CUDA backend gives an element-wise kernel over `n` (its `grid_stride`).
fn stride_grid(n: usize) -> (u32, u32, u32) {
    (n.div_ceil(256).clamp(1, 4096) as u32, 1, 1)
}

impl Backend for Emulated {
    type Buf = Vec<f32>;

    fn alloc(&self, len: usize) -> Result<Vec<f32>, NnError> {
        Ok(vec![0.0; len.max(1)])
    }

    fn upload(&self, host: &[f32], to: &mut Vec<f32>) -> Result<(), NnError> {
        to[..host.len()].copy_from_slice(host);
        Ok(())
    }

    fn download(&self, from: &Vec<f32>, len: usize) -> Result<Vec<f32>, NnError> {
        Ok(from[..len].to_vec())
    }

    fn gemm(
        &self,
        g: GemmArgs,
        beta: f32,
        (a, a_at): (&Vec<f32>, usize),
        (b, b_at): (&Vec<f32>, usize),
        (c, c_at): (&mut Vec<f32>, usize),
    ) -> Result<(), NnError> {
        cublas_gemm(&g, 1.0, &a[a_at..], &b[b_at..], beta, &mut c[c_at..]);
        Ok(())
    }

    fn bias_norm_relu(
        &self,
        z: &mut Vec<f32>,
        params: &Vec<f32>,
        op: RowOp,
        norm: Option<(&mut Vec<f32>, &mut Vec<f32>)>,
    ) -> Result<(), NnError> {
        type K = unsafe extern "C" fn(*mut f32, *const f32, *const f32, i32, i32, i32, i32, *mut f32, *mut f32);
        // SAFETY: bias_norm_relu's parameters (mlp.cu).
        let k: K = unsafe { self.module.function("bias_norm_relu") }.unwrap();
        let mut unused = [0.0f32; 1];
        let (xhat, rstd) = match norm {
            Some((x, r)) => (x.as_mut_ptr(), r.as_mut_ptr()),
            None => (unused.as_mut_ptr(), unused.as_mut_ptr()),
        };
        assert!(z.len() >= op.rows * op.width && params.len() >= op.bias + op.width);
        let (zp, bias, gains) =
            (z.as_mut_ptr(), params[op.bias..].as_ptr(), params[op.norm.unwrap_or(op.bias)..].as_ptr());
        let (has, relu) = (i32::from(op.norm.is_some()), i32::from(op.relu));
        // SAFETY: the buffers hold what the kernel reads and writes (DeviceNets sizes them).
        self.module
            .launch(rows_grid(op.rows), threads(), 0, || unsafe {
                k(zp, bias, gains, has, relu, op.rows as i32, op.width as i32, xhat, rstd)
            })
            .unwrap();
        Ok(())
    }

    fn norm_backward(
        &self,
        delta: &mut Vec<f32>,
        act: &Vec<f32>,
        xhat: &Vec<f32>,
        rstd: &Vec<f32>,
        params: &Vec<f32>,
        op: RowOp,
        masked: &mut Vec<f32>,
    ) -> Result<(), NnError> {
        type K =
            unsafe extern "C" fn(*mut f32, *const f32, *const f32, *const f32, *const f32, i32, i32, i32, *mut f32);
        // SAFETY: norm_backward's parameters (mlp.cu).
        let k: K = unsafe { self.module.function("norm_backward") }.unwrap();
        let n = op.rows * op.width;
        assert!(delta.len() >= n && act.len() >= n && masked.len() >= n);
        if op.norm.is_some() {
            assert!(xhat.len() >= n && rstd.len() >= op.rows);
        }
        let (d, a, x, r, g, m) = (
            delta.as_mut_ptr(),
            act.as_ptr(),
            xhat.as_ptr(),
            rstd.as_ptr(),
            params[op.norm.unwrap_or(op.bias)..].as_ptr(),
            masked.as_mut_ptr(),
        );
        let has = i32::from(op.norm.is_some());
        // SAFETY: as asserted above.
        self.module
            .launch(rows_grid(op.rows), threads(), 0, || unsafe {
                k(d, a, x, r, g, has, op.rows as i32, op.width as i32, m)
            })
            .unwrap();
        Ok(())
    }

    fn column_sums(
        &self,
        x: &Vec<f32>,
        y: Option<&Vec<f32>>,
        rows: usize,
        width: usize,
        (out, at): (&mut Vec<f32>, usize),
    ) -> Result<(), NnError> {
        type K = unsafe extern "C" fn(*const f32, *const f32, i32, i32, i32, *mut f32);
        // SAFETY: column_sums's parameters (mlp.cu).
        let k: K = unsafe { self.module.function("column_sums") }.unwrap();
        assert!(x.len() >= rows * width && y.is_none_or(|y| y.len() >= rows * width) && out.len() >= at + width);
        let (xp, yp, op) = (x.as_ptr(), y.unwrap_or(x).as_ptr(), out[at..].as_mut_ptr());
        let use_y = i32::from(y.is_some());
        // SAFETY: as asserted above.
        self.module
            .launch((width.div_ceil(256) as u32, 1, 1), (256, 1, 1), 0, || unsafe {
                k(xp, yp, use_y, rows as i32, width as i32, op)
            })
            .unwrap();
        Ok(())
    }

    fn adam(
        &self,
        params: &mut Vec<f32>,
        grad: &Vec<f32>,
        (m, v): (&mut Vec<f32>, &mut Vec<f32>),
        n: usize,
        s: AdamScalars<f32>,
    ) -> Result<(), NnError> {
        type K = unsafe extern "C" fn(*mut f32, *const f32, *mut f32, *mut f32, i64, f32, f32, f32, f32, f32, f32);
        // SAFETY: adam's parameters (mlp.cu).
        let k: K = unsafe { self.module.function("adam") }.unwrap();
        assert!(params.len() >= n && grad.len() >= n && m.len() >= n && v.len() >= n);
        let (p, g, mp, vp) = (params.as_mut_ptr(), grad.as_ptr(), m.as_mut_ptr(), v.as_mut_ptr());
        // SAFETY: as asserted above.
        self.module
            .launch(stride_grid(n), (256, 1, 1), 0, || unsafe {
                k(p, g, mp, vp, n as i64, s.b1, s.b2, s.scale, s.eps, s.step_size, s.sqrt_bc2)
            })
            .unwrap();
        Ok(())
    }

    fn polyak(&self, target: &mut Vec<f32>, online: &Vec<f32>, n: usize, tau: f32) -> Result<(), NnError> {
        type K = unsafe extern "C" fn(*mut f32, *const f32, i64, f32);
        // SAFETY: polyak's parameters (mlp.cu).
        let k: K = unsafe { self.module.function("polyak") }.unwrap();
        assert!(target.len() >= n && online.len() >= n);
        let (t, o) = (target.as_mut_ptr(), online.as_ptr());
        // SAFETY: as asserted above.
        self.module.launch(stride_grid(n), (256, 1, 1), 0, || unsafe { k(t, o, n as i64, tau) }).unwrap();
        Ok(())
    }

    fn sum_squares(&self, g: &Vec<f32>, n: usize) -> Result<f64, NnError> {
        type K = unsafe extern "C" fn(*const f32, i64, *mut f64);
        // SAFETY: sum_squares's parameters (mlp.cu).
        let k: K = unsafe { self.module.function("sum_squares") }.unwrap();
        assert!(g.len() >= n);
        let mut out = 0.0f64;
        let (gp, op) = (g.as_ptr(), &mut out as *mut f64);
        // SAFETY: as asserted above; one block.
        self.module.launch((1, 1, 1), threads(), 0, || unsafe { k(gp, n as i64, op) }).unwrap();
        Ok(out)
    }
}

fn draws(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| ((quiver_numerics::splitmix::next(&mut s) >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32)
        .collect()
}

/// Entry by entry within `rel` of the largest |entry| (f32 sums in another order).
#[track_caller]
fn assert_near(what: &str, cpu: &[f32], device: &[f32], rel: f32) {
    assert_eq!(cpu.len(), device.len(), "{what}: lengths");
    let scale = cpu.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE);
    let worst = cpu.iter().zip(device).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max) / scale;
    assert!(worst <= rel, "{what}: largest difference {worst:e} of the largest entry (allowed {rel:e})");
}

/// A step as every critic takes it: forward on the online network, forward of the target on
/// other inputs, a loss gradient from both (a regression on the target's outputs), an Adam step,
/// Polyak averaging — `steps` times, on the CPU network and on the device, compared after the
/// first step (outputs, gradient) and at the end (parameters).
fn compare<B: Backend>(backend: B, spec: MlpSpec, rows: usize, steps: usize, config: AdamConfig) {
    let online = Mlp::<f32>::new(spec.clone(), 3).unwrap();
    let mut target = Mlp::<f32>::new(spec.clone(), 4).unwrap();
    // move the layer norms off their start, so that their gradients are general
    target.params.iter_mut().zip(draws(8, online.params.len())).for_each(|(p, d)| *p += 0.2 * d);
    let mut cpu = (online.clone(), target.clone(), Adam::<f32>::new(config, online.params.len()));
    let mut dev = DeviceNets::new(backend, &online, &target, config).unwrap();
    let (mut tape, mut target_tape) = (Tape::new(), Tape::new());
    let mut grad = vec![0.0f32; online.params.len()];
    for step in 0..steps {
        let x = draws(10 + step as u64, rows * spec.inputs);
        let x_next = draws(100 + step as u64, rows * spec.inputs);
        let lr = 1e-2 / (1.0 + step as f64);
        let q = cpu.0.forward(&mut tape, &x, rows).to_vec();
        let t = cpu.1.forward(&mut target_tape, &x_next, rows).to_vec();
        let dq = dev.forward(Pass::Train, &x, rows).unwrap();
        let dt = dev.forward(Pass::Target, &x_next, rows).unwrap();
        let de = dev.forward(Pass::Eval, &x_next, rows).unwrap();
        let dout: Vec<f32> = q.iter().zip(&t).map(|(a, b)| 2.0 * (a - 0.9 * b - 0.5) / rows as f32).collect();
        cpu.0.backward(&mut tape, &dout, &mut grad);
        cpu.2.set_lr(lr);
        cpu.2.step(&mut cpu.0.params, &grad);
        cpu.1.polyak_toward(&cpu.0, 0.05);
        dev.set_lr(lr);
        dev.step(&dout).unwrap();
        dev.polyak(0.05).unwrap();
        if step == 0 {
            let mut eval_tape = Tape::new();
            assert_near("online outputs", &q, &dq, 1e-5);
            assert_near("target outputs", &t, &dt, 1e-5);
            assert_near("eval outputs", online.forward(&mut eval_tape, &x_next, rows), &de, 1e-5);
            assert_near("gradient", &grad, &dev.gradient().unwrap(), 1e-4);
        }
    }
    let (on, tg) = dev.parameters().unwrap();
    assert_near("online parameters after the steps", &cpu.0.params, &on, 1e-4);
    assert_near("target parameters after the steps", &cpu.1.params, &tg, 1e-4);
}

fn on_device(device: Device, check: impl Fn(&dyn Fn(MlpSpec, usize, usize, AdamConfig))) {
    match device {
        Device::Cpu => {
            if skip_or_panic(Module::compile("mlp", MLP_KERNELS)).is_none() {
                return;
            }
            // compiled once per process: this takes the cached library
            let emulated = || Emulated { module: Module::compile("mlp", MLP_KERNELS).unwrap() };
            check(&|spec, rows, steps, config| compare(emulated(), spec, rows, steps, config));
        }
        Device::Cuda => check(&|spec, rows, steps, config| {
            compare(quiver_nn::cuda::CudaBackend::new().unwrap(), spec, rows, steps, config)
        }),
    }
}

quiver_testing::device_test!(a_training_step_equals_the_cpu_step_on_every_device, |device| {
    on_device(device, |run| {
        // widths below and above a block's 256 threads; batches that are not multiples of 64
        run(MlpSpec::new(3, &[40, 29], 2), 37, 4, AdamConfig::default());
        run(MlpSpec::new(5, &[300], 3), 9, 2, AdamConfig { lr: 1e-2, ..Default::default() });
        // without layer norm, and with clipping (the squared norm on the device)
        let plain = MlpSpec { inputs: 4, hidden: vec![33, 17], outputs: 1, layer_norm: false };
        run(plain, 21, 3, AdamConfig { max_grad_norm: Some(0.05), ..Default::default() });
        run(MlpSpec::new(4, &[33, 17], 1), 21, 3, AdamConfig { max_grad_norm: Some(0.05), ..Default::default() });
    });
});

#[test]
fn the_kernels_compile_to_ptx() {
    for entry in ["bias_norm_relu", "norm_backward", "column_sums", "adam", "polyak", "sum_squares"] {
        quiver_testing::assert_kernel_compiles("mlp", MLP_KERNELS, entry);
    }
}

#[test]
fn a_backward_pass_before_a_forward_pass_is_an_error() {
    let Some(module) = skip_or_panic(Module::compile("mlp", MLP_KERNELS)) else { return };
    let net = Mlp::<f32>::new(MlpSpec::new(2, &[8], 1), 0).unwrap();
    let mut dev = DeviceNets::new(Emulated { module }, &net, &net, AdamConfig::default()).unwrap();
    assert!(matches!(dev.step(&[0.0]), Err(NnError::Size(_))));
    dev.forward(Pass::Train, &[0.5, -0.5], 1).unwrap();
    assert!(matches!(dev.step(&[0.0, 1.0]), Err(NnError::Size(_))), "two output gradients for one row");
    assert!(matches!(dev.forward(Pass::Train, &[0.5], 1), Err(NnError::Size(_))), "one input for a row of two");
}
