//! selective-risk through the real plugin boundary: λ̂ against a brute-force search over every
//! candidate threshold (both rules), each rule's guarantee by Monte Carlo, the BPE score, bad
//! input, and the CUDA kernel compiling to PTX.

use quiver_host::{ErrorKind, Table};
use quiver_testing as testing;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

const METHOD: &str = "selective-risk";

fn run(
    host: &quiver_host::Host,
    params: &[(&str, serde_json::Value)],
    scores: &[f64],
    errors: &[bool],
) -> (f64, serde_json::Value) {
    let mut sel = host.create(METHOD, &testing::params(params), testing::cpu()).unwrap();
    sel.step(
        "calibrate",
        &[Table::new("calibration").with_f64("score", scores.to_vec()).with_bool("error", errors.to_vec())],
    )
    .unwrap();
    let r = sel.step("select", &[Table::new("test").with_f64("score", scores.to_vec())]).unwrap();
    (r.number("lambda_hat").unwrap(), r.into_json())
}

/// Scores on a coarse grid (ties), error probability rising with the score.
fn data(seed: u64, n: usize) -> (Vec<f64>, Vec<bool>) {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let s: Vec<f64> = (0..n).map(|_| (r.random_range(0..40) as f64) / 40.0).collect();
    let e = s.iter().map(|&x| r.random::<f64>() < 0.6 * x).collect();
    (s, e)
}

/// SCOPE by definition: the sup over λ ∈ {−∞} ∪ {s_i} of Σ_i 1{s_i ≤ λ}(E_i − α) ≤ −1, the sum
/// taken term by term (α dyadic, so every sum is exact in f64).
fn brute_scope(s: &[f64], e: &[bool], alpha: f64) -> f64 {
    let mut best = f64::NEG_INFINITY;
    for &lam in s {
        let sum: f64 = s.iter().zip(e).filter(|(&si, _)| si <= lam).map(|(_, &ei)| ei as u8 as f64 - alpha).sum();
        if sum <= -1.0 && lam > best {
            best = lam;
        }
    }
    best
}

/// P(Bin(n, p) <= k) by summing the pmf (an independent algorithm from the plugin's incomplete beta).
fn binom_cdf_direct(k: usize, n: usize, p: f64) -> f64 {
    let mut pmf = (1.0 - p).powi(n as i32);
    let mut total = pmf;
    for i in 0..k {
        pmf *= (n - i) as f64 / (i + 1) as f64 * p / (1.0 - p);
        total += pmf;
    }
    total.min(1.0)
}

/// LTT by definition: candidates S_(⌈g n / G⌉), binomial test of each, Bonferroni, largest rejected.
fn brute_ltt(s: &[f64], e: &[bool], alpha: f64, delta: f64, grid: usize) -> f64 {
    let mut sorted = s.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = s.len();
    let mut cands: Vec<f64> = (1..=grid).map(|g| sorted[(g * n).div_ceil(grid) - 1]).collect();
    cands.dedup();
    let mut best = f64::NEG_INFINITY;
    for &lam in &cands {
        let acc = s.iter().filter(|&&x| x <= lam).count();
        let err = s.iter().zip(e).filter(|(&x, &ei)| x <= lam && ei).count();
        let p = if acc == 0 { 1.0 } else { binom_cdf_direct(err, acc, alpha) };
        if p <= delta / cands.len() as f64 {
            best = best.max(lam);
        }
    }
    best
}

#[test]
fn scope_threshold_equals_brute_force() {
    let host = testing::host();
    let mut nontrivial = 0;
    for seed in 0..60 {
        let (s, e) = data(seed, 20 + 5 * seed as usize);
        for alpha in [0.125, 0.25, 0.375] {
            let (lam, json) = run(&host, &[("alpha", json!(alpha))], &s, &e);
            assert_eq!(lam, brute_scope(&s, &e, alpha), "seed {seed} alpha {alpha}");
            if lam.is_finite() {
                nontrivial += 1;
                let acc: Vec<usize> = (0..s.len()).filter(|&i| s[i] <= lam).collect();
                assert_eq!(json["cal_accepted"], json!(acc.len()));
                assert_eq!(json["accepted"], json!(acc));
            } else {
                assert_eq!(json["lambda_hat"], json!("-inf"));
                assert_eq!(json["n_accepted"], json!(0));
            }
        }
    }
    assert!(nontrivial > 100, "too few finite thresholds ({nontrivial}) for the test to mean much");
}

#[test]
fn ltt_threshold_equals_brute_force() {
    let host = testing::host();
    let mut nontrivial = 0;
    for seed in 0..40 {
        let (s, e) = data(100 + seed, 50 + 10 * seed as usize);
        for (alpha, delta, grid) in [(0.1, 0.1, 20), (0.2, 0.05, 50), (0.3, 0.2, 7)] {
            let params =
                [("alpha", json!(alpha)), ("rule", json!("ltt")), ("delta", json!(delta)), ("grid", json!(grid))];
            let (lam, _) = run(&host, &params, &s, &e);
            assert_eq!(lam, brute_ltt(&s, &e, alpha, delta, grid), "seed {seed} {alpha} {delta} {grid}");
            nontrivial += lam.is_finite() as usize;
        }
    }
    assert!(nontrivial > 40, "too few finite thresholds ({nontrivial})");
}

/// Model: s ~ U(0, 1), P(error | s) = s / 2, so the selective risk at λ ∈ [0, 1] is
/// R(λ) = P(E = 1 | s ≤ λ) = λ / 4, exactly.
fn draw(rng: &mut ChaCha8Rng, n: usize) -> (Vec<f64>, Vec<bool>) {
    let s: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
    let e = s.iter().map(|&x| rng.random::<f64>() < 0.5 * x).collect();
    (s, e)
}

/// LTT: P(R(λ̂) > α) ≤ δ, within 3 binomial standard errors over 2000 calibration draws.
#[test]
fn ltt_risk_guarantee_monte_carlo() {
    let host = testing::host();
    let (alpha, delta, trials, n) = (0.1, 0.1, 2000, 5000);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut failures = 0;
    let mut lam_sum = 0.0;
    let params = testing::params(&[
        ("alpha", json!(alpha)),
        ("rule", json!("ltt")),
        ("delta", json!(delta)),
        ("grid", json!(50)),
    ]);
    let mut sel = host.create(METHOD, &params, testing::cpu()).unwrap();
    for _ in 0..trials {
        let (s, e) = draw(&mut rng, n);
        sel.step("calibrate", &[Table::new("calibration").with_f64("score", s).with_bool("error", e)]).unwrap();
        let lam = sel
            .step("select", &[Table::new("test").with_f64("score", vec![0.5])])
            .unwrap()
            .number("lambda_hat")
            .unwrap();
        let risk = if lam.is_finite() { lam.min(1.0) / 4.0 } else { 0.0 };
        failures += (risk > alpha) as usize;
        lam_sum += lam.max(0.0);
    }
    let rate = failures as f64 / trials as f64;
    let se = (delta * (1.0 - delta) / trials as f64).sqrt();
    println!(
        "ltt: P(R(lambda_hat) > alpha) = {rate:.4} (delta {delta}, se {se:.4}); mean lambda_hat {:.3} (oracle 0.4)",
        lam_sum / trials as f64
    );
    assert!(rate <= delta + 3.0 * se, "failure rate {rate}");
    assert!(lam_sum / trials as f64 > 0.25, "LTT is vacuous here");
}

/// SCOPE: the expected selective risk over calibration draws, E[R(λ̂)] (the error proportion
/// among accepted judgments of a large test batch, in expectation), is ≤ α within 3 standard
/// errors. Printed beside it, and not guaranteed: the pooled rate E[errors accepted]/E[accepted]
/// (= E[λ̂²/4]/E[λ̂] here), and P(R(λ̂) > α), the conditional risk, which exceeds α about half
/// the time — exactly what the manifest states.
#[test]
fn scope_expected_risk_guarantee_monte_carlo() {
    let host = testing::host();
    let (alpha, trials, n) = (0.1, 3000, 500);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut risk = Vec::with_capacity(trials);
    let (mut pooled_err, mut pooled_acc) = (0.0, 0.0);
    let mut sel = host.create(METHOD, &testing::params(&[("alpha", json!(alpha))]), testing::cpu()).unwrap();
    for _ in 0..trials {
        let (s, e) = draw(&mut rng, n);
        sel.step("calibrate", &[Table::new("calibration").with_f64("score", s).with_bool("error", e)]).unwrap();
        let lam = sel
            .step("select", &[Table::new("test").with_f64("score", vec![0.5])])
            .unwrap()
            .number("lambda_hat")
            .unwrap();
        let l = if lam.is_finite() { lam.clamp(0.0, 1.0) } else { 0.0 };
        risk.push(l / 4.0);
        pooled_err += l * l / 4.0;
        pooled_acc += l;
    }
    let t = trials as f64;
    let mean = risk.iter().sum::<f64>() / t;
    let se = (risk.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (t - 1.0) / t).sqrt();
    let conditional = risk.iter().filter(|&&r| r > alpha).count() as f64 / t;
    println!(
        "scope: E[R(lambda_hat)] = {mean:.4} ± {se:.4} (alpha {alpha}); pooled E[err acc]/E[acc] = {:.4}; P(R(lambda_hat) > alpha) = {conditional:.3}",
        pooled_err / pooled_acc
    );
    assert!(mean <= alpha + 3.0 * se, "expected selective risk {mean} > alpha");
    assert!(mean > 0.8 * alpha, "scope far more conservative than expected: {mean}");
    assert!(conditional > 0.2, "the conditional risk was expected to exceed alpha often: {conditional}");
}

#[test]
fn bpe_score_columns_match_precomputed_scores() {
    let host = testing::host();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let n = 300;
    let pf: Vec<f64> = (0..n).map(|_| rng.random()).collect();
    let pr: Vec<f64> = pf.iter().map(|&p| (p + rng.random_range(-0.3..0.3f64)).clamp(0.0, 1.0)).collect();
    let s: Vec<f64> = pf.iter().zip(&pr).map(|(&a, &b)| quiver_numerics::bpe_score(a, b).unwrap()).collect();
    let e: Vec<bool> = s.iter().map(|&x| rng.random::<f64>() < x / 2.0).collect();
    let (lam_scores, _) = run(&host, &[("alpha", json!(0.2))], &s, &e);
    let mut sel = host.create(METHOD, &testing::params(&[("alpha", json!(0.2))]), testing::cpu()).unwrap();
    sel.step(
        "calibrate",
        &[Table::new("calibration").with_f64("p_fwd", pf.clone()).with_f64("p_rev", pr.clone()).with_bool("error", e)],
    )
    .unwrap();
    let r = sel.step("select", &[Table::new("test").with_f64("p_fwd", pf).with_f64("p_rev", pr)]).unwrap();
    assert_eq!(r.number("lambda_hat").unwrap(), lam_scores);
    assert_eq!(r.f64s("scores").unwrap(), &s[..]);
}

#[test]
fn bad_input_gives_clear_errors() {
    let host = testing::host();
    let mut sel = host.create(METHOD, &testing::params(&[]), testing::cpu()).unwrap();
    let e = sel
        .step(
            "calibrate",
            &[Table::new("calibration").with_f64("score", vec![0.1, 0.2, 0.3]).with_i64("error", vec![0, 2, 1])],
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "table 'calibration', column 'error', row 2: value 2 is not 0 or 1");
    let e = sel.step("calibrate", &[Table::new("calibration").with_i64("error", vec![0, 1])]).unwrap_err();
    assert!(e.to_string().contains("needs a 'score' column, or 'p_fwd' and 'p_rev'"), "{e}");
    let e = sel
        .step(
            "calibrate",
            &[Table::new("calibration")
                .with_f64("p_fwd", vec![0.5, 1.5])
                .with_f64("p_rev", vec![0.5, 0.5])
                .with_i64("error", vec![0, 1])],
        )
        .unwrap_err();
    assert!(e.to_string().contains("row 2: p_fwd = 1.5 must be in [0, 1]"), "{e}");
    // the column named is the one out of range, its value written short
    let e = sel
        .step(
            "calibrate",
            &[Table::new("calibration")
                .with_f64("p_fwd", vec![0.5, 0.5])
                .with_f64("p_rev", vec![0.5, 1e300])
                .with_i64("error", vec![0, 1])],
        )
        .unwrap_err();
    assert!(e.to_string().contains("column 'p_rev', row 2: p_rev = 1e300 must be in [0, 1]"), "{e}");
    let e = sel
        .step("calibrate", &[Table::new("calibration").with_f64("score", vec![f64::NAN]).with_i64("error", vec![0])])
        .unwrap_err();
    assert!(e.to_string().contains("column 'score', row 1"), "{e}");
    for (params, needle) in [
        (testing::params(&[("alpha", json!(1.0))]), "'alpha' = 1.0 must be a number in (0, 1)"),
        (testing::params(&[("delta", json!(-0.1))]), "'delta' = -0.1 must be a number in (0, 1)"),
        (testing::params(&[("grid", json!(0))]), "'grid' = 0 must be an integer in [1, 1000000]"),
        (testing::params(&[("rule", json!("crc"))]), "one of scope | ltt"),
    ] {
        let e = host.create(METHOD, &params, testing::cpu()).err().expect("must fail");
        assert!(e.to_string().contains(needle), "{e} (wanted {needle})");
        assert_eq!(e.plugin_kind(), Some(ErrorKind::InvalidParameter));
    }
}

quiver_testing::device_test!(
    /// Through the plugin on each device: both rules' λ̂ equal the brute-force definitions, and
    /// the accepted set is every test judgment with s ≤ λ̂.
    thresholds_equal_brute_force_on_every_device,
    |device| {
        let host = testing::host();
        let (s, e) = data(1, 400);
        for (rule, want) in [("scope", brute_scope(&s, &e, 0.25)), ("ltt", brute_ltt(&s, &e, 0.25, 0.1, 50))] {
            let params = testing::params(&[("alpha", json!(0.25)), ("rule", json!(rule)), ("delta", json!(0.1))]);
            let mut sel = host.create(METHOD, &params, testing::ctx(device)).unwrap();
            sel.step("calibrate", &[Table::new("calibration").with_f64("score", s.clone()).with_bool("error", e.clone())])
                .unwrap();
            let r = sel.step("select", &[Table::new("test").with_f64("score", s.clone())]).unwrap();
            assert_eq!(r.device(), Some(device));
            assert_eq!(r.number("lambda_hat").unwrap(), want, "{rule}");
            let accepted: Vec<i64> = (0..s.len()).filter(|&j| s[j] <= want).map(|j| j as i64).collect();
            assert_eq!(r.i64s("accepted").unwrap(), &accepted[..], "{rule}");
        }
    }
);

#[test]
fn kernel_compiles_to_ptx() {
    quiver_testing::assert_kernel_compiles("threshold_counts", selective_risk::THRESHOLD_KERNEL, "threshold_counts");
}
