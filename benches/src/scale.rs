//! Runs by parts at scale (docs/scale.md): a bandit log of 10 actions and RL transitions written
//! as Parquet files of `n` rows, evaluated by parts (one row group at a time, as `quiver run` does
//! with a Parquet input) — and the same rows as one table in memory — each in a fresh process, with
//! its time and its peak resident memory; then `quiver.dask.run` on a `distributed.LocalCluster`
//! of two workers against one Python process on the same file.

use crate::*;
use quiver_host::PartInput;

/// Rows a row group of the bandit file holds (2^20, pyarrow's default).
const BANDIT_GROUP: usize = 1 << 20;
/// Rows a row group of the transitions file holds: whole episodes of 1000 steps.
const CRITIC_GROUP: usize = 1_024_000;
/// Features of the LSTD-Q case: random Fourier features, 40 an action (80 in all: the moments
/// of 10^7 rows are 1.3·10^11 multiply-adds, under the one-table run's limit of 2·10^11,
/// `critic_lstd::MAX_CPU_MOMENT_WORK`; a run by parts applies it to each partition, not to the sum).
const LSTD_PARAMS: [(&str, f64); 2] = [("dim", 40.0), ("ridge", 1e-6)];

/// How a scale case gets its rows.
#[derive(Clone, Copy, PartialEq)]
enum Source {
    /// By parts from the file, a row group at a time (what `quiver run` does with a Parquet input).
    ByParts,
    /// The whole file read into one table, then one run (the same bytes, all in memory at once).
    WholeFile,
    /// One table built in memory (not timed), then one run: no file at all.
    InMemory,
}

/// The scale cases: (name, method, role, source). The cases by parts read the file the bench
/// writes snappy-compressed (as pandas and pyarrow write), except the one named uncompressed
/// (the last of its method's: its file replaces the snappy one).
const SCALE_CASES: [(&str, &str, &str, Source); 7] = [
    ("ope bandit by parts from Parquet", "ope", "bandit", Source::ByParts),
    ("ope bandit, the whole file read, one run", "ope", "bandit", Source::WholeFile),
    ("ope bandit, one table already in memory", "ope", "bandit", Source::InMemory),
    ("ope bandit by parts from uncompressed Parquet", "ope", "bandit", Source::ByParts),
    ("critic-lstd lstdq by parts from Parquet", "critic-lstd", "transitions", Source::ByParts),
    ("critic-lstd lstdq, the whole file read, one run", "critic-lstd", "transitions", Source::WholeFile),
    ("critic-lstd lstdq, one table already in memory", "critic-lstd", "transitions", Source::InMemory),
];

fn groups(n: usize, size: usize) -> impl Iterator<Item = usize> {
    (0..n.div_ceil(size)).map(move |g| size.min(n - g * size))
}

/// Row group `g` of the bandit log (seeded by `g`).
fn bandit_group(g: usize, rows: usize) -> Table {
    let mut t = Table::new("bandit");
    for (name, v) in bandit_columns(rows, 10, 1000 + g as u64) {
        t = if name == "a" { t.with_i64("a", v.iter().map(|&x| x as i64).collect()) } else { t.with_f64(name, v) };
    }
    t
}

/// Row group `g` of the transitions: whole episodes, numbered after the previous groups'.
fn critic_group(g: usize, rows: usize) -> Table {
    let (mut t, _, _) = critic_table(rows, 2000 + g as u64);
    let shift = (g * CRITIC_GROUP / 1000) as i64;
    for (name, v) in t.columns.iter_mut() {
        if let (true, quiver_host::Values::I64(e)) = (name == "episode", v) {
            e.iter_mut().for_each(|x| *x += shift);
        }
    }
    t
}

fn data(method: &str, n: usize) -> Box<dyn Iterator<Item = Table>> {
    if method == "ope" {
        Box::new(groups(n, BANDIT_GROUP).enumerate().map(|(g, rows)| bandit_group(g, rows)))
    } else {
        Box::new(groups(n, CRITIC_GROUP).enumerate().map(|(g, rows)| critic_group(g, rows)))
    }
}

fn params(method: &str) -> serde_json::Map<String, Value> {
    if method == "ope" {
        testing::params(&[("ci", json!("t"))])
    } else {
        let mut p: Vec<(&str, Value)> = LSTD_PARAMS.iter().map(|(k, v)| (*k, json!(v))).collect();
        p.push(("features", json!("rff")));
        testing::params(&p)
    }
}

/// Scale case `k` in this process on `n` rows (the file at `file` for the cases read by parts):
/// one JSON line with its seconds and peak resident memory.
pub(crate) fn scale_case(host: &Host, k: usize, n: usize, file: &Path) -> Result<Value, String> {
    let (name, method, role, source) = *SCALE_CASES.get(k).ok_or(format!("no scale case {k}"))?;
    // as `quiver run` does for a run by parts (every case alike, so that they compare)
    quiver_host::retain_freed_memory();
    let params = params(method);
    let manifest = &host.get(method).map_err(|e| e.to_string())?.manifest;
    let part = || PartInput { role: role.into(), path: file.into(), row_group: None };
    let mut read_only = None;
    let ((seconds, cpu_seconds), result) = match source {
        Source::ByParts => {
            // as `quiver run` reads a Parquet input by parts: slices on every core where the
            // method may cut the table anywhere, the row groups one at a time otherwise
            let mut budget = quiver_host::InputBudget::from_limit();
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let parts =
                quiver_host::ParquetParts::open(manifest, role, file, quiver_host::SLICE_ROWS, cores, &mut budget)
                    .map_err(|e| e.to_string())?;
            let workers = if parts.sliced() { cores } else { 1 };
            // the file alone: every partition read and dropped on the same workers (what decoding costs)
            let (read, done) = timed(|| read_streams(&parts, workers));
            done?;
            read_only = Some(read.0);
            let (spent, out) =
                timed(|| host.run_streams(method, &params, Vec::new(), &parts, workers, RunContext::default(), None));
            (spent, out.map_err(|e| format!("{name}: {e}"))?.into_json())
        }
        Source::WholeFile => {
            let (spent, out) = timed(|| {
                let t = Instant::now();
                let tables = quiver_host::read_partition(manifest, &[part()]).map_err(|e| e.to_string())?;
                read_only = Some(t.elapsed().as_secs_f64());
                host.run(method, &params, &tables, RunContext::default()).map_err(|e| format!("{name}: {e}"))
            });
            (spent, out?)
        }
        Source::InMemory => {
            let mut all: Option<Table> = None;
            for part in data(method, n) {
                match &mut all {
                    None => all = Some(part),
                    Some(a) => a.append(part)?,
                }
            }
            let table = all.ok_or("no rows")?;
            let (spent, out) = timed(|| host.run(method, &params, std::slice::from_ref(&table), RunContext::default()));
            (spent, out.map_err(|e| format!("{name}: {e}"))?)
        }
    };
    let estimate = if method == "ope" { result["dr"]["estimate"].clone() } else { result["j"].clone() };
    Ok(
        json!({"case": name, "n": n, "seconds": seconds, "cpu_seconds": cpu_seconds, "read_seconds": read_only, "peak_rss_bytes": peak_rss(),
              "estimate": estimate}),
    )
}

/// `f`'s value, its seconds and the CPU seconds this process spent meanwhile (all threads).
fn timed<T>(f: impl FnOnce() -> T) -> ((f64, Option<f64>), T) {
    let (t, cpu) = (Instant::now(), cpu_seconds());
    let out = f();
    let cpu = cpu.zip(cpu_seconds()).map(|(a, b)| b - a);
    ((t.elapsed().as_secs_f64(), cpu), out)
}

/// Every partition of `streams` read and dropped, each of `workers` threads taking the next
/// stream not yet taken (as [`Host::run_streams`] does).
fn read_streams(streams: &dyn quiver_host::PartitionStreams, workers: usize) -> Result<(), String> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<(), String> {
                    loop {
                        let g = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if g >= streams.streams() {
                            return Ok(());
                        }
                        for p in streams.open(g).map_err(|e| e.to_string())? {
                            drop(p.map_err(|e| e.to_string())?);
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().map_err(|_| "a reading thread panicked".to_string())?)
    })
}

/// Bytes a row of each method's table takes in memory (23 and 14 columns of 8 bytes, give or take
/// a flag).
fn row_bytes(method: &str) -> f64 {
    if method == "ope" {
        184.0
    } else {
        112.0
    }
}

/// `quiver.dask.run` on a local cluster of two workers against one Python process, on the bandit
/// log at `file` (benches/baselines/scale_dask.py).
fn dask_comparison(python: &Path, file: &Path) -> Value {
    let spec = json!({"data": file.display().to_string(), "role": "bandit", "method": "ope", "params": {"ci": "t"}});
    match testing::try_run_baseline(python, "scale_dask.py", &spec) {
        Ok(v) => {
            println!(
                "  quiver.dask.run on 2 workers {:.2} s, one process {:.2} s: {:.2}x",
                v["dask_s"].as_f64().unwrap_or(0.0),
                v["single_s"].as_f64().unwrap_or(0.0),
                v["dask_over_single"].as_f64().unwrap_or(0.0)
            );
            v
        }
        Err(e) => json!({"skipped": e}),
    }
}

/// Write method `method`'s `n` rows as the Parquet file `file`, snappy-compressed or not.
fn write_scale_file(file: &Path, method: &str, n: usize, compressed: bool) -> Result<(), String> {
    let t = Instant::now();
    testing::parts::write_parquet_as(file, data(method, n), compressed)?;
    let bytes = std::fs::metadata(file).map_err(|e| e.to_string())?.len();
    println!("  wrote {} ({:.0} MB) in {:.0} s", file.display(), bytes as f64 / 1e6, t.elapsed().as_secs_f64());
    Ok(())
}

/// Run scale case `k` in a fresh process (this binary with `--scale-case`).
fn run_case(exe: &Path, k: usize, n: usize, file: &Path) -> Result<Value, String> {
    let name = SCALE_CASES[k].0;
    let out = Command::new(exe)
        .args(["--scale-case", &k.to_string(), "--scale-rows", &n.to_string(), "--scale-file"])
        .arg(file)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("scale case {name}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(text.lines().last().ok_or("no output")?).map_err(|e| e.to_string())?;
    println!(
        "  {:48} {:>8.2} s{}{}, peak RSS {:>6.0} MB",
        name,
        v["seconds"].as_f64().unwrap_or(0.0),
        v["read_seconds"].as_f64().map_or(String::new(), |r| format!(" (reading {r:.2} s)")),
        v["cpu_seconds"].as_f64().map_or(String::new(), |c| format!(", CPU {c:.2} s")),
        v["peak_rss_bytes"].as_f64().unwrap_or(0.0) / 1e6
    );
    Ok(v)
}

/// For each method: write its file, run its scale cases each in a fresh process (a one-table case
/// only when the host would take the table: its working copies within the memory limit), and
/// remove the file (10^7 bandit rows are 1.7 GB, 10^8 are 17 GB); then the Dask comparison on the
/// bandit file (10^7 rows at most).
pub(crate) fn scale_report(python: &Path, dir: &Path, n: usize) -> Result<Value, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cases = Vec::new();
    let mut seconds = std::collections::HashMap::new();
    let mut dask = json!({"skipped": "more than 10^7 rows"});
    for method in ["ope", "critic-lstd"] {
        let file = dir.join(format!("{method}-{n}.parquet"));
        write_scale_file(&file, method, n, true)?;
        for (k, (name, m, role, source)) in SCALE_CASES.iter().enumerate() {
            if *m != method {
                continue;
            }
            let uncompressed = name.contains("uncompressed");
            if uncompressed && method == "ope" && n <= 10_000_000 {
                // Dask on the snappy file, as pandas and pyarrow users have it
                dask = dask_comparison(python, &file);
            }
            if uncompressed {
                // the same rows, the pages written as they are (the snappy file gone first: at
                // 10^8 rows each is 17 GB)
                let _ = std::fs::remove_file(&file);
                write_scale_file(&file, method, n, false)?;
            }
            let table = n as f64 * row_bytes(method);
            // a one-table case only where the host (and the plugin) would take the table: the
            // host's own rule, its working copies within the memory limit
            let budget = quiver_host::InputBudget::from_limit();
            if *source != Source::ByParts && budget.check(table, role, &file, None).is_err() {
                println!("  {name:48} skipped: the table would take {:.1} GB", table / 1e9);
                cases.push(
                    json!({"case": name, "n": n, "skipped": format!("the table would take {:.1} GB", table / 1e9)}),
                );
                continue;
            }
            // the file goes, whatever the case gave
            let v = run_case(&exe, k, n, &file).inspect_err(|_| {
                let _ = std::fs::remove_file(&file);
            })?;
            seconds.insert(k, v["seconds"].as_f64().unwrap_or(f64::NAN));
            cases.push(v);
        }
        let _ = std::fs::remove_file(&file);
    }
    // by parts over the two one-table runs (where they ran)
    let ratio = |a: usize, b: usize| match (seconds.get(&a), seconds.get(&b)) {
        (Some(x), Some(y)) => json!(x / y),
        _ => Value::Null,
    };
    let ratios = json!({
        "ope_by_parts_over_whole_file": ratio(0, 1),
        "ope_by_parts_over_in_memory": ratio(0, 2),
        "ope_by_parts_uncompressed_over_in_memory": ratio(3, 2),
        "lstd_by_parts_over_whole_file": ratio(4, 5),
        "lstd_by_parts_over_in_memory": ratio(4, 6),
    });
    println!("  {ratios}");
    Ok(json!({"rows": n, "cases": cases, "ratios": ratios, "dask": dask}))
}
