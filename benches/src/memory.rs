//! The peak-memory cases: each family at 10^7 rows, each in a fresh process.

use crate::*;

/// Peak resident memory of critic-lstd (lstdq, 128 RFF features: at 10^7 transitions 256 would
/// pass the CPU's work limit, `MAX_CPU_MOMENT_WORK`) fitting `n` transitions: the
/// process's high-water mark is reset once the data are built (`/proc/self/clear_refs`), so the
/// figure is the input tables plus everything the fit adds.
pub(crate) fn critic_memory(host: &Host, n: usize) -> Result<Value, String> {
    let (table, _, _) = critic_table(n, 6);
    let input_bytes = table_bytes(std::slice::from_ref(&table));
    std::fs::write("/proc/self/clear_refs", "5").map_err(|e| format!("cannot reset the peak RSS: {e}"))?;
    let before = peak_rss().ok_or("no VmHWM")?;
    let params = testing::params(&[("features", json!("rff")), ("dim", json!(64)), ("ridge", json!(1e-6))]);
    let t = Instant::now();
    let mut h = host.create("critic-lstd", &params, RunContext::default()).map_err(|e| e.to_string())?;
    h.step("fit", std::slice::from_ref(&table)).map_err(|e| e.to_string())?;
    let peak = peak_rss().ok_or("no VmHWM")?;
    Ok(json!({
        "case": "critic-lstd lstdq, 128 rff features",
        "n": n,
        "seconds": t.elapsed().as_secs_f64(),
        "input_table_bytes": input_bytes,
        "rss_after_building_the_data_bytes": before,
        "peak_rss_bytes": peak,
        "phi_would_be_bytes": n * 128 * 8,
    }))
}

/// The bytes of the tables' columns (1 per boolean, 8 per number).
pub(crate) fn table_bytes(tables: &[Table]) -> f64 {
    tables
        .iter()
        .flat_map(|t| t.columns.iter())
        .map(|(_, v)| (v.len() * if matches!(v, quiver_host::Values::Bool(_)) { 1 } else { 8 }) as f64)
        .sum()
}

/// The process's peak resident memory (VmHWM), in bytes.
pub(crate) fn peak_rss() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

/// CPU seconds this process has used so far, all threads, user and system (`/proc/self/stat`,
/// in the kernel's clock ticks of 1/100 s).
pub(crate) fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // the fields after the command name (which may hold spaces, so it ends at the last ')')
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// Peak memory of one method run through the host on `tables` (the process's high-water mark is
/// reset once the data are built), as a multiple of the input tables' bytes.
pub(crate) fn memory_of(
    host: &Host,
    name: &str,
    method: &str,
    params: &[(&str, Value)],
    tables: Vec<Table>,
) -> Result<Value, String> {
    let input = table_bytes(&tables);
    std::fs::write("/proc/self/clear_refs", "5").map_err(|e| format!("cannot reset the peak RSS: {e}"))?;
    let before = peak_rss().ok_or("no VmHWM")?;
    let t = Instant::now();
    let output = host
        .run_output_observed(method, &testing::params(params), &tables, RunContext::default(), None)
        .map_err(|e| format!("{name}: {e}"))?;
    drop(output);
    let peak = peak_rss().ok_or("no VmHWM")?;
    let added = peak - before;
    Ok(json!({"case": name, "input_bytes": input, "rss_before_bytes": before, "peak_rss_bytes": peak,
              "added_bytes": added, "added_over_input": added / input, "seconds": t.elapsed().as_secs_f64()}))
}

/// Number of cases in [`memory_cases`].
pub(crate) const MEMORY_CASES: usize = 10;

/// Peak memory of every method family at `n` rows (`cargo xtask bench`, not `--quick`), each case
/// measured in a fresh process (this binary with `--memory-case K`): memory a previous case freed
/// stays resident and would hide the next one's growth.
pub(crate) fn memory_report(n: usize) -> Result<Vec<Value>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    (0..MEMORY_CASES)
        .map(|k| {
            let out = Command::new(&exe)
                .args(["--memory-case", &k.to_string(), "--memory-rows", &n.to_string()])
                .output()
                .map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!("memory case {k}: {}", String::from_utf8_lossy(&out.stderr)));
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text.lines().last().ok_or("no output")?;
            let v: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
            println!(
                "  {:48} input {:>7.0} MB, the run adds {:>7.0} MB: {:.2}x the input",
                v["case"].as_str().unwrap_or(""),
                v["input_bytes"].as_f64().unwrap_or(0.0) / 1e6,
                v["added_bytes"].as_f64().unwrap_or(0.0) / 1e6,
                v["added_over_input"].as_f64().unwrap_or(0.0)
            );
            Ok(v)
        })
        .collect()
}

/// Memory case `k` at `n` rows, in this process: only its data are built.
pub(crate) fn memory_cases(host: &Host, n: usize, k: usize) -> Result<Value, String> {
    let mut r = ChaCha8Rng::seed_from_u64(11);
    let normal = Normal::new(0.0, 1.0).unwrap();
    let mut col = |f: &mut dyn FnMut(&mut ChaCha8Rng) -> f64| -> Vec<f64> { (0..n).map(|_| f(&mut r)).collect() };
    match k {
        0 => {
            let x = col(&mut |r| normal.sample(r));
            let y: Vec<f64> = x.iter().map(|v| v + 0.5).collect();
            let test = Table::new("test").with_f64("mu", x.clone());
            let cal = Table::new("calibration").with_f64("y", y).with_f64("mu", x);
            memory_of(host, "conformal-selection n = m", "conformal-selection", &[("c", json!(0.0))], vec![cal, test])
        }
        1 => {
            let score = col(&mut |r| r.random::<f64>());
            let err: Vec<bool> = score.iter().map(|s| *s > 0.7).collect();
            let tables = vec![
                Table::new("calibration").with_f64("score", score.clone()).with_bool("error", err),
                Table::new("test").with_f64("score", score),
            ];
            memory_of(host, "selective-risk scope n = m", "selective-risk", &[], tables)
        }
        2 | 3 | 8 | 9 => {
            let method = match k {
                3 => "xkb-monotone",
                8 => "xkb-estimated",
                _ => "xkb-grand-mean",
            };
            let x = col(&mut |r| normal.sample(r));
            let a = col(&mut |r| r.random_range(0.1..2.0));
            let tables = vec![Table::new("data").with_f64("x", x).with_f64("a", a)];
            let mut params = vec![("method", json!(method))];
            let mut name = format!("sure-normal {method}");
            if k == 9 {
                params.push(("ci", json!("robust-ebci")));
                name.push_str(" with robust-ebci");
            }
            memory_of(host, &name, "sure-normal", &params, tables)
        }
        4 => {
            let trials = col(&mut |r| r.random_range(10..500) as f64);
            let succ: Vec<f64> = trials.iter().map(|t| (t * 0.3).floor()).collect();
            let tables = vec![Table::new("data").with_f64("y", succ).with_f64("n", trials)];
            memory_of(host, "sure-binomial", "sure-binomial", &[], tables)
        }
        5 => {
            let score = col(&mut |r| r.random::<f64>());
            let tables = vec![Table::new("calibration").with_f64("score", score)];
            memory_of(host, "batch-pi order-stat (m = 10^4)", "batch-pi", &[("m", json!(10_000))], tables)
        }
        6 => {
            let mut t = Table::new("bandit");
            for (name, v) in bandit_columns(n, 10, 3) {
                t = if name == "a" {
                    t.with_i64("a", v.iter().map(|&x| x as i64).collect())
                } else {
                    t.with_f64(name, v)
                };
            }
            memory_of(host, "ope bandit, 10 actions, t intervals", "ope", &[("ci", json!("t"))], vec![t])
        }
        7 => {
            // the gradient bench's size: n / 100 rows of 10 models × 99 levels (10^8 numbers)
            let tables = aggregation_tables(None, n / 100, 10, 99, 29);
            let params = [
                ("granularity", json!("medium")),
                ("solver", json!("gradient")),
                ("max_epochs", json!(3)),
                ("monotone", json!("none")),
            ];
            memory_of(
                host,
                "quantile-aggregation gradient, 10 models x 99 levels",
                "quantile-aggregation",
                &params,
                tables,
            )
        }
        _ => Err(format!("no memory case {k}")),
    }
}
