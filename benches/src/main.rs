//! The benchmark harness behind `cargo xtask bench`.
//!
//! Each case generates its data once (seeded), runs Quiver through the real plugin boundary (the
//! built cdylib loaded by the host) and the NumPy/SciPy baseline (`benches/baselines/*.py`, the same
//! formulas vectorised) on the same data in the same run, checks that both computed the same
//! answer, and records the median times. Writes `report.json` (host, device, git revision, per
//! case: sizes, Quiver's median, the baseline's, the ratio) and `report.svg` (speed-ups).
//!
//! Usage: `quiver-bench --python PATH --out DIR [--quick] [--repeats N] [--only SUBSTRING]
//! [--baselines numpy|full|none] [--scale-rows N]` (xtask passes the first two; `--only` keeps
//! the cases whose name contains SUBSTRING, or any of several separated by commas, and builds
//! only their data; `--only memory` and `--only scale` run the peak-memory cases and the runs by
//! parts alone, the latter on `--scale-rows` rows, 10^7 by default; `--baselines none` times
//! Quiver alone).

use indicatif::{ProgressBar, ProgressStyle};
use quiver_host::{DeviceRequest, Host, RunContext, Table};
use quiver_testing as testing;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

mod cases;
mod memory;
mod report;
mod scale;

use cases::aggregation::*;
use cases::critics::*;
use cases::evaluation::*;
use cases::ope_many::*;
use cases::selection::*;
use cases::shrinkage::*;
use memory::*;
use report::*;
use scale::*;

struct Args {
    python: PathBuf,
    out: PathBuf,
    quick: bool,
    repeats: usize,
    only: Option<String>,
    /// `--baselines full`: the interpreter with SCOPE-RL installed.
    python_full: Option<PathBuf>,
    python_rliable: Option<PathBuf>,
    /// `--baselines none`: time Quiver alone (the CPU twins of a GPU run, whose baselines an
    /// earlier run on the same machine already timed).
    no_baselines: bool,
    /// Internal: measure memory case K in this process (and its row count).
    memory_case: Option<(usize, usize)>,
    /// Internal: run scale case K in this process (`--scale-case`, on `--scale-file`).
    scale_case: Option<usize>,
    /// Rows of the scale cases (`--scale-rows`; 10^7 by default).
    scale_rows: usize,
    scale_file: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        python: "python3".into(),
        out: "target/bench".into(),
        quick: false,
        repeats: 7,
        only: None,
        python_full: None,
        python_rliable: None,
        no_baselines: false,
        memory_case: None,
        scale_case: None,
        scale_rows: 10_000_000,
        scale_file: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--python" => a.python = it.next().ok_or("--python needs a path")?.into(),
            "--out" => a.out = it.next().ok_or("--out needs a path")?.into(),
            "--quick" => a.quick = true,
            "--only" => a.only = Some(it.next().ok_or("--only needs a case name (a substring)")?),
            "--baselines" => match it.next().as_deref() {
                Some("full") | Some("numpy") => {}
                Some("none") => a.no_baselines = true,
                _ => return Err("--baselines takes numpy (the default), full or none".into()),
            },
            "--python-full" => a.python_full = Some(it.next().ok_or("--python-full needs a path")?.into()),
            "--python-rliable" => a.python_rliable = Some(it.next().ok_or("--python-rliable needs a path")?.into()),
            "--memory-case" => {
                let k = it.next().and_then(|k| k.parse().ok()).ok_or("--memory-case needs a number")?;
                a.memory_case = Some((k, a.memory_case.map_or(10_000_000, |m| m.1)));
            }
            "--memory-rows" => {
                let n = it.next().and_then(|k| k.parse().ok()).ok_or("--memory-rows needs a number")?;
                a.memory_case = Some((a.memory_case.map_or(0, |m| m.0), n));
            }
            "--scale-case" => {
                a.scale_case = Some(it.next().and_then(|k| k.parse().ok()).ok_or("--scale-case needs a number")?)
            }
            "--scale-rows" => {
                a.scale_rows = it.next().and_then(|k| k.parse().ok()).ok_or("--scale-rows needs a number")?
            }
            "--scale-file" => a.scale_file = Some(it.next().ok_or("--scale-file needs a path")?.into()),
            "--repeats" => a.repeats = it.next().and_then(|r| r.parse().ok()).ok_or("--repeats needs a number")?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

use testing::write_f64;

fn median(mut t: Vec<f64>) -> f64 {
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// One benchmark case: a name, its sizes, Quiver's timed closure, the baseline's script and spec,
/// the folder of its data, and (for slow baselines) fewer repetitions.
struct Case {
    name: String,
    sizes: Value,
    /// The baseline script; `None` for a case that reports Quiver's time alone.
    script: Option<&'static str>,
    /// The interpreter of the baseline when not the default one (SCOPE-RL's environment).
    python: Option<PathBuf>,
    baseline: Value,
    data: PathBuf,
    repeats: Option<usize>,
    quiver: Box<dyn FnMut() -> Result<Value, String>>,
}

/// The `--only` filter, set once by `real_main`.
static ONLY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Whether the `--only` filter keeps the case named `name`: it names one substring or several
/// separated by commas (`--only "conformal-selection,critic-lstd lstdq"`), and a case is kept
/// when its name contains any of them.
fn only_keeps(only: &str, name: &str) -> bool {
    only.split(',').any(|o| name.contains(o))
}

/// Whether `--only` leaves out the case named `name` (its data are then not built).
fn skipped(name: &str) -> bool {
    ONLY.get().and_then(Option::as_deref).is_some_and(|o| !only_keeps(o, name))
}

/// The device part of a case's name.
fn device_tag(device: DeviceRequest) -> &'static str {
    if device == DeviceRequest::Cuda {
        "cuda"
    } else {
        "cpu"
    }
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("quiver-bench: {e}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<(), String> {
    let args = parse_args()?;
    ONLY.set(args.only.clone()).expect("set once");
    let host = testing::host();
    if let Some((k, n)) = args.memory_case {
        println!("{}", memory_cases(&host, n, k)?);
        return Ok(());
    }
    if let Some(k) = args.scale_case {
        let file = args.scale_file.clone().unwrap_or_default();
        println!("{}", scale_case(&host, k, args.scale_rows, &file)?);
        return Ok(());
    }
    if let Some(only) = &args.only {
        if only == "scale" {
            println!("runs by parts at {} rows ...", args.scale_rows);
            let report = json!({"scale": scale_report(&args.python, &args.out.join("data"), args.scale_rows)?,
                                "host": host_info()});
            std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
            let path = args.out.join("scale.json");
            std::fs::write(&path, serde_json::to_string_pretty(&report).expect("json")).map_err(|e| e.to_string())?;
            println!("report: {}", path.display());
            return Ok(());
        }
        if only == "memory" {
            let report = json!({"memory": memory_report(10_000_000)?, "host": host_info()});
            std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
            let path = args.out.join("memory.json");
            std::fs::write(&path, serde_json::to_string_pretty(&report).expect("json")).map_err(|e| e.to_string())?;
            println!("report: {}", path.display());
            return Ok(());
        }
    }
    let data = args.out.join("data");
    let (load_before, busy_before) = (load_average(), cpu_busy_now());
    let (n_sel, n_risk) = if args.quick { (100_000, 100_000) } else { (1_000_000, 1_000_000) };
    // a case left out by --only is not built (nor its data)
    let mut cases: Vec<Case> = [
        selection_case(&host, &data.join("cs"), n_sel, n_sel, false, DeviceRequest::Cpu, None),
        selection_case(&host, &data.join("csw"), n_sel, n_sel, true, DeviceRequest::Cpu, None),
        selective_case(&host, &data.join("sr"), n_risk, "scope"),
        selective_case(&host, &data.join("sr"), n_risk, "ltt"),
        python_api_case(&host, &data.join("cs"), n_sel),
    ]
    .into_iter()
    .flatten()
    .collect();
    let (bn, bm, rn, rm) = if args.quick { (500, 50, 10_000, 1_000) } else { (2000, 100, 100_000, 10_000) };
    cases.extend(batch_case(&host, &data.join("bm"), "mean", bn, bm, DeviceRequest::Cpu));
    cases.extend(batch_case(&host, &data.join("bo"), "order-stat", rn, rm, DeviceRequest::Cpu));
    cases.extend(batch_case(&host, &data.join("bp"), "pac", rn, rm, DeviceRequest::Cpu));
    let sp = if args.quick { 1_000_000 } else { 10_000_000 };
    cases.extend(shrinkage_case(&host, &data.join("sn"), "sure-normal", None, sp, DeviceRequest::Cpu));
    cases.extend(shrinkage_case(
        &host,
        &data.join("sne"),
        "sure-normal",
        Some("xkb-estimated"),
        sp,
        DeviceRequest::Cpu,
    ));
    cases.extend(shrinkage_case(&host, &data.join("sb"), "sure-binomial", None, sp, DeviceRequest::Cpu));
    let cn = if args.quick { 100_000 } else { 1_000_000 };
    cases.extend(critic_case(&host, &data.join("cl"), cn, "lstdq", DeviceRequest::Cpu));
    // the NumPy FQE holds the feature matrices and sweeps them every iteration (~290 here): a
    // fifth of the rows keeps its run near half a minute
    cases.extend(critic_case(&host, &data.join("cf"), cn / 5, "fqe", DeviceRequest::Cpu));
    let (bandit_n, episodes) = if args.quick { (1_000_000, 10_000) } else { (10_000_000, 100_000) };
    cases.extend(ope_bandit_case(&host, &data.join("ob"), bandit_n));
    cases.extend(ope_trajectory_case(&host, &data.join("ot"), episodes, 1000, None));
    cases.extend(ope_many_case(&host, &data.join("om"), if args.quick { 100_000 } else { 1_000_000 }, 100));
    // the neural critic: Quiver's time alone without PyTorch, beside it with `--baselines full`
    let neural_steps = if args.quick { 1_000 } else { 10_000 };
    let lowrank_states = if args.quick { 100 } else { 300 };
    cases.extend(lowrank_case(&host, lowrank_states, 20, DeviceRequest::Cpu));
    let neural = (100_000, neural_steps);
    let torch = args.python_full.as_deref();
    cases.extend(neural_fqe_case(&host, &data.join("nf"), neural, torch, DeviceRequest::Cpu, false));
    if torch.is_some() {
        // d3rlpy's own FQE (installed with SCOPE-RL) on the same data
        cases.extend(neural_fqe_case(&host, &data.join("nf"), neural, torch, DeviceRequest::Cpu, true));
    }
    if let Some(py) = &args.python_full {
        // the same data and Quiver run, against SCOPE-RL's estimators and bootstrap
        let name = "ope trajectories vs SCOPE-RL (1000 bootstrap resamples)";
        if let Some(mut case) = ope_trajectory_case(&host, &data.join("ot-scope"), episodes, 1000, Some(name)) {
            case.script = Some("scope_rl_baselines.py");
            case.python = Some(py.clone());
            cases.push(case);
        }
    }
    cases.extend(rl_aggregate_case(
        &host,
        &data.join("rl"),
        if args.quick { 5_000 } else { 50_000 },
        args.python_rliable.as_deref(),
    ));
    cases.extend(dqc_case(&host, episodes));
    // the quantile critic: side by side with the written-out operator at N = 16 (NumPy sorts 1.3·10^6
    // atoms an iteration, ~230 iterations), and Quiver alone where the goals are (N = 128; 10^6
    // transitions at N = 64)
    let qc_rows = if args.quick { 10_000 } else { 40_000 };
    cases.extend(quantile_critic_case(&host, &data.join("qc"), qc_rows, 16, true));
    cases.extend(quantile_critic_case(&host, &data.join("qc"), qc_rows, 128, false));
    cases.extend(quantile_critic_case(
        &host,
        &data.join("qc-big"),
        if args.quick { 100_000 } else { 1_000_000 },
        64,
        false,
    ));
    let (agg_exact, agg_grad) = if args.quick { (1_000, 10_000) } else { (10_000, 100_000) };
    let (qa_lp, qa_adam) = (data.join("qa-lp"), data.join("qa-adam"));
    // these data are large (10^8 numbers): built only when a case of theirs is wanted
    let wanted = |names: &[&str]| args.only.as_ref().is_none_or(|o| names.iter().any(|n| only_keeps(o, n)));
    if wanted(&[AGG_EXACT]) {
        let lp_tables = Arc::new(aggregation_tables(Some(&qa_lp), agg_exact, 10, 99, 23));
        cases.push(aggregation_case(&host, &qa_lp, lp_tables, "exact", None, DeviceRequest::Cpu));
    }
    let gpu_usable = host
        .create(
            "conformal-selection",
            &testing::params(&[]),
            RunContext { device: DeviceRequest::Cuda, threads: 0, ..Default::default() },
        )
        .is_ok();
    if wanted(&[AGG_ADAM, AGG_TORCH, AGG_ADAM_CUDA]) {
        let adam_tables = Arc::new(aggregation_tables(Some(&qa_adam), agg_grad, 10, 99, 29));
        let cpu = DeviceRequest::Cpu;
        cases.push(aggregation_case(&host, &qa_adam, adam_tables.clone(), "gradient", None, cpu));
        if let Some(py) = &args.python_full {
            cases.push(aggregation_case(&host, &qa_adam, adam_tables.clone(), "gradient", Some(py), cpu));
        }
        if gpu_usable {
            cases.push(aggregation_case(&host, &qa_adam, adam_tables, "gradient", None, DeviceRequest::Cuda));
        }
    }
    if gpu_usable {
        let n = if args.quick { 1_000_000 } else { 10_000_000 };
        cases.extend(selection_case(&host, &data.join("csg"), n, n, false, DeviceRequest::Cuda, None));
        cases.extend(batch_case(&host, &data.join("bmg"), "mean", bn, bm, DeviceRequest::Cuda));
        cases.extend(shrinkage_case(&host, &data.join("sng"), "sure-normal", None, sp, DeviceRequest::Cuda));
        cases.extend(shrinkage_case(
            &host,
            &data.join("sneg"),
            "sure-normal",
            Some("xkb-estimated"),
            sp,
            DeviceRequest::Cuda,
        ));
        cases.extend(critic_case(&host, &data.join("clg"), cn, "lstdq", DeviceRequest::Cuda));
        cases.extend(lowrank_case(&host, lowrank_states, 20, DeviceRequest::Cuda));
        let steps = if args.quick { 1_000 } else { 10_000 };
        let torch = args.python_full.as_deref();
        cases.extend(neural_fqe_case(&host, &data.join("nfg"), (100_000, steps), torch, DeviceRequest::Cuda, false));
    }
    if let Some(only) = &args.only {
        cases.retain(|c| only_keeps(only, &c.name));
    }
    let bar = ProgressBar::new((cases.len() * 2) as u64);
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}").map_err(|e| e.to_string())?);
    let mut report_cases = Vec::new();
    let mut numpy_version = Value::Null;
    // cases whose Quiver run failed or whose answer differs from the baseline's
    let mut disagreements: Vec<String> = Vec::new();
    for case in cases.iter_mut() {
        bar.set_message(format!("{} (quiver)", case.name));
        let mut times = Vec::new();
        let mut result = Value::Null;
        let repeats = case.repeats.unwrap_or(args.repeats).min(args.repeats);
        // warm-up (first-touch allocations, kernel compilation), then the timed runs; a case that
        // fails is reported and the run goes on to the next
        let timed = (case.quiver)().and_then(|_| {
            for _ in 0..repeats {
                let t = Instant::now();
                result = (case.quiver)()?;
                times.push(t.elapsed().as_secs_f64());
            }
            Ok(())
        });
        bar.inc(1);
        if let Err(e) = timed {
            bar.println(format!("{}: Quiver failed: {e}", case.name));
            bar.inc(1);
            report_cases.push(json!({"case": case.name, "sizes": case.sizes, "error": e, "baseline": null}));
            disagreements.push(format!("{} (failed)", case.name));
            continue;
        }
        // the device the run used, where the case reports it (a case given `auto` may land on either)
        let device = result.as_object_mut().and_then(|o| o.remove("device")).unwrap_or(Value::Null);
        let Some(script) = case.script.filter(|_| !args.no_baselines) else {
            bar.inc(1);
            report_cases.push(json!({
                "case": case.name,
                "sizes": case.sizes,
                "device": device,
                "quiver_median_s": median(times.clone()),
                "quiver_times_s": times,
                "baseline": null,
                "quiver_result": result,
            }));
            continue;
        };
        bar.set_message(format!("{} (numpy)", case.name));
        let mut spec = case.baseline.clone();
        spec["data"] = json!(case.data.display().to_string());
        spec["repeats"] = json!(repeats);
        let base = testing::try_run_baseline(case.python.as_ref().unwrap_or(&args.python), script, &spec)?;
        numpy_version = base["numpy"].clone();
        bar.inc(1);
        let base_times: Vec<f64> =
            base["times"].as_array().ok_or("baseline times")?.iter().filter_map(Value::as_f64).collect();
        let agree = agree(&result, &base["result"]);
        let (q, b) = (median(times.clone()), median(base_times.clone()));
        let mut row = json!({
            "case": case.name,
            "sizes": case.sizes,
            "device": device,
            "quiver_median_s": q,
            "quiver_times_s": times,
            "baseline": match (case.python.is_some(), script) {
                (_, "python_api_baselines.py") => format!("Quiver from Python (benches/baselines/{script})"),
                (true, "scope_rl_baselines.py") => format!("SCOPE-RL (benches/baselines/{script})"),
                (true, "rliable_baselines.py") => format!("rliable 1.2.0 (benches/baselines/{script})"),
                (true, _) if case.baseline["case"] == "fqe-d3rlpy" => {
                    format!("d3rlpy's DiscreteFQE, PyTorch on the CPU (benches/baselines/{script})")
                }
                (true, _) => format!("PyTorch on the CPU (benches/baselines/{script})"),
                _ => format!("NumPy/SciPy (benches/baselines/{script})"),
            },
            "baseline_median_s": b,
            "baseline_times_s": base_times,
            "ratio_baseline_over_quiver": b / q,
            "results_agree": agree,
            "quiver_result": result,
            "baseline_result": base["result"],
        });
        if case.name == AGG_ADAM_CUDA {
            // the forecasts are read once per epoch (training blocks and the held-out ones)
            let sd = &result["solver_details"];
            let rows = sd["train_rows"].as_f64().unwrap_or(0.0) + sd["holdout_rows"].as_f64().unwrap_or(0.0);
            let bytes = rows * sd["epochs"].as_f64().unwrap_or(0.0) * 10.0 * 99.0 * 8.0;
            row["effective_gb_per_s"] = json!(bytes / q / 1e9);
        }
        if case.name == PYTHON_API {
            // the Python package over the Rust host: 0.03 = 3 % slower; and with glibc keeping
            // 64 MiB of freed heap (M_TOP_PAD) in the Python process
            row["python_overhead"] = json!(b / q - 1.0);
            // what a Python user gains over NumPy: the NumPy time of the same selection (the
            // `conformal-selection cpu` case, on the same data) over the package's
            let numpy = report_cases
                .iter()
                .find(|c| c["case"] == "conformal-selection cpu")
                .and_then(|c| c["baseline_median_s"].as_f64());
            if let Some(numpy) = numpy {
                row["ratio_numpy_over_python"] = json!(numpy / b);
                println!("  the Python package on DataFrames: {:.2}x NumPy", numpy / b);
            }
            if let Some(t) = base["times_top_pad"].as_array() {
                let padded = median(t.iter().filter_map(Value::as_f64).collect());
                row["python_top_pad_median_s"] = json!(padded);
                row["python_overhead_top_pad"] = json!(padded / q - 1.0);
            }
        }
        if case.name == "conformal-selection cuda" {
            let n = case.sizes["n"].as_f64().unwrap_or(0.0);
            // bytes the p-value step must move at least: sorted calibration, test scores, u, p
            row["effective_gb_per_s"] = json!(8.0 * (n + 3.0 * n) / q / 1e9);
        }
        if !agree {
            // the other cases still run and the report is still written (a GPU lease is short:
            // one wrong case must not cost the timings of the rest); the run fails at the end
            bar.println(format!("{}: Quiver and the baseline disagree: {result} vs {}", case.name, base["result"]));
            disagreements.push(case.name.clone());
        }
        report_cases.push(row);
    }
    bar.finish_and_clear();
    // the memory cases run with the whole bench (or alone with `--only memory`), not with a
    // subset of the timed cases
    let memory = if args.quick || args.only.is_some() {
        Value::Null
    } else {
        println!("peak memory at 10^7 rows ...");
        let mut all = memory_report(10_000_000)?;
        all.push(critic_memory(&host, 10_000_000)?);
        json!(all)
    };
    let scale = if args.quick || args.only.is_some() {
        Value::Null
    } else {
        println!("runs by parts at {} rows ...", args.scale_rows);
        scale_report(&args.python, &data, args.scale_rows)?
    };
    let load = load_info(load_before, load_average(), busy_before);
    println!(
        "threads: {} on {} cores; other processes used {} of the CPUs in the second before the cases; load \
         average (1, 5, 15 min) before {:?}, after {:?}{}",
        load["quiver_threads"],
        load["cores"],
        busy_before.map_or("?".to_string(), |b| format!("{:.0} %", 100.0 * b)),
        load_before,
        load_average(),
        if load["busy_before"] == json!(true) { " — the machine was busy: read the ratios with care" } else { "" }
    );
    let report = json!({
        "memory": memory,
        "scale": scale,
        "load": load,
        "host": host_info(),
        "device": if gpu_usable { "cpu + cuda" } else { "cpu (no usable GPU)" },
        "numpy": numpy_version,
        "repeats": args.repeats,
        "quick": args.quick,
        "threads": "all cores (Quiver); NumPy single-threaded except inside BLAS (the critic cases: matrix products on all cores)",
        "cases": report_cases,
    });
    std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
    let json_path = args.out.join("report.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&report).expect("json")).map_err(|e| e.to_string())?;
    let rows: Vec<(String, f64)> = report["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter(|c| !c["baseline"].is_null())
        .map(|c| {
            (
                format!("{} (n={})", c["case"].as_str().unwrap_or(""), c["sizes"]["n"]),
                c["ratio_baseline_over_quiver"].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    let svg = args.out.join("report.svg");
    plot(&svg, &rows)?;
    println!("{:44} {:>12} {:>12} {:>8}", "case", "quiver (s)", "numpy (s)", "ratio");
    for c in report["cases"].as_array().expect("cases") {
        if let Some(e) = c["error"].as_str() {
            println!("{:44} failed: {e}", c["case"].as_str().unwrap_or(""));
            continue;
        }
        let label = match c["device"].as_str() {
            Some(d) => format!("{} n={} [{d}]", c["case"].as_str().unwrap_or(""), c["sizes"]["n"]),
            None => format!("{} n={}", c["case"].as_str().unwrap_or(""), c["sizes"]["n"]),
        };
        if c["baseline"].is_null() {
            println!("{:44} {:>12.4} {:>12} {:>8}", label, c["quiver_median_s"].as_f64().unwrap_or(0.0), "-", "-");
            continue;
        }
        println!(
            "{:44} {:>12.4} {:>12.4} {:>7.2}x",
            label,
            c["quiver_median_s"].as_f64().unwrap_or(0.0),
            c["baseline_median_s"].as_f64().unwrap_or(0.0),
            c["ratio_baseline_over_quiver"].as_f64().unwrap_or(0.0)
        );
    }
    println!("report: {} and {}", json_path.display(), svg.display());
    if disagreements.is_empty() {
        Ok(())
    } else {
        Err(format!("cases that failed or disagree with their baseline: {}", disagreements.join("; ")))
    }
}
