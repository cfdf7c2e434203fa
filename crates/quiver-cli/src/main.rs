//! `quiver`: list, inspect and run estimator plugins.
//!
//! ```text
//! quiver list [--json]
//! quiver info METHOD [--json]
//! quiver run METHOD --input ROLE=PATH ... [--set KEY=VALUE ...] [--device auto|cpu|cuda] [--json] [--output PATH]
//! quiver doctor
//! ```
//! The CLI is generic: it reads each method's manifest, never per-method code.

use clap::{Parser, Subcommand, ValueEnum};
mod by_parts;

use quiver_host::{manifest_json, DeviceRequest, ErrorKind, Host, HostError, Progress, RunContext};
use serde_json::Value;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Parser)]
#[command(name = "quiver", version, about = "Statistical estimators with guarantees, as plugins")]
struct Cli {
    /// Plugin folder (default: $QUIVER_PLUGIN_PATH, else `plugins/` next to the binary or `target/plugins`).
    #[arg(long, global = true)]
    plugins: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum DeviceArg {
    Auto,
    Cpu,
    Cuda,
}

#[derive(Subcommand)]
enum Command {
    /// List the methods of every loaded plugin.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a method's parameters, tables, guarantee and devices.
    Info {
        /// Method name.
        method: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a method on CSV inputs.
    Run {
        /// Method name.
        method: String,
        /// An input table, ROLE=PATH (CSV with a header row).
        #[arg(long = "input", value_name = "ROLE=PATH")]
        inputs: Vec<String>,
        /// A parameter, KEY=VALUE.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Device.
        #[arg(long, value_enum, default_value = "auto")]
        device: DeviceArg,
        /// Worker threads (0 = one per core).
        #[arg(long, default_value_t = 0)]
        threads: u32,
        /// Print the full JSON result.
        #[arg(long)]
        json: bool,
        /// Also write the JSON result to this file.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Also draw the result's picture into this SVG or PNG file, after the result is printed
        /// (every method has one: docs/<family>.md shows them).
        #[arg(long, value_name = "FILE.svg|FILE.png")]
        plot: Option<PathBuf>,
        /// Most memory the method may plan to use (bytes, or 512M, 8G, ...; default: 80% of the
        /// machine's memory, or $QUIVER_MAX_MEMORY). Larger requests are refused before they start.
        #[arg(long, value_name = "SIZE")]
        max_memory: Option<String>,
    },
    /// Check the installation: plugin folders, every plugin found (loaded or why not), GPU status.
    Doctor,
}

/// `println!` that survives a closed or failing stdout: a closed pipe (`quiver ... | head`) ends
/// the process quietly with success, as ripgrep does; any other write error is one clear line on
/// stderr and exit code 74 (EX_IOERR).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            output_failed(e);
        }
    }};
}

fn output_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write the output: {e}");
    std::process::exit(74);
}

/// Set by the first Ctrl-C: long fits stop at their next checkpoint.
static CANCELLED: AtomicBool = AtomicBool::new(false);

/// Whether standard output was closed when the process started (`quiver ... >&-`). Rust's
/// runtime reopens a closed standard descriptor on `/dev/null` (read-write) before `main`, so the
/// output would be lost with exit code 0. Such a descriptor is told from a user's `> /dev/null`
/// (opened write-only by the shell) by its access mode in `/proc/self/fdinfo` (Linux); where that
/// cannot be read, stdout is taken as open.
fn stdout_closed() -> bool {
    let target = std::fs::read_link("/proc/self/fd/1");
    if target.map_or(true, |t| t != std::path::Path::new("/dev/null")) {
        return false;
    }
    let Ok(info) = std::fs::read_to_string("/proc/self/fdinfo/1") else { return false };
    let flags = info.lines().find_map(|l| l.strip_prefix("flags:")).and_then(|f| u32::from_str_radix(f.trim(), 8).ok());
    // O_ACCMODE = 3, O_RDWR = 2
    flags.is_some_and(|f| f & 3 == 2)
}

/// The first argument that is not valid UTF-8, shown with its bad bytes replaced (clap's own
/// message does not say which argument it was).
fn non_utf8_argument() -> Option<(usize, String)> {
    std::env::args_os()
        .enumerate()
        .skip(1)
        .find_map(|(i, a)| a.to_str().is_none().then(|| (i, a.to_string_lossy().into_owned())))
}

fn main() -> ExitCode {
    if let Some((i, shown)) = non_utf8_argument() {
        eprintln!("error: argument {i} is not valid UTF-8: '{shown}' (paths and values must be UTF-8 text)");
        return ExitCode::from(2);
    }
    if stdout_closed() {
        eprintln!("error: standard output is closed: quiver writes its results there, and they would be lost");
        return ExitCode::from(74);
    }
    let cli = Cli::parse();
    // (`doctor` reports a missing folder itself, beside everything else it checks)
    if let Some(dir) = cli.plugins.as_deref().filter(|d| !d.is_dir() && !matches!(cli.command, Command::Doctor)) {
        let what = if dir.exists() { "is not a folder" } else { "does not exist" };
        eprintln!("error: the plugin folder {} given with --plugins {what}", dir.display());
        return ExitCode::from(2);
    }
    let host = Host::discover(cli.plugins.as_deref());
    match run(&cli.command, &host) {
        Ok(code) => code,
        Err(e) if e.plugin_kind() == Some(ErrorKind::Cancelled) => {
            eprintln!("cancelled (Ctrl-C): {e}");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// The progress observer of `quiver run`: a bar on a terminal (none when stderr is piped or the
/// result goes out as JSON), and Ctrl-C: the first press asks the plugin to stop at its next
/// checkpoint, a second one ends the process at once.
fn observer(show: bool) -> Progress {
    let _ = ctrlc::set_handler(|| {
        if CANCELLED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping at the next checkpoint (Ctrl-C again to abort at once)");
    });
    let bar = if show && std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(0)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:>24} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    Progress::new(move |done, total, label| {
        if total == 0 {
            bar.set_length(done.max(1));
        } else {
            bar.set_length(total);
        }
        bar.set_position(done);
        bar.set_message(label.to_string());
        if total > 0 && done >= total {
            bar.finish_and_clear();
        }
        !CANCELLED.load(Ordering::SeqCst)
    })
}

fn warn_failures(host: &Host) {
    for f in host.failures() {
        eprintln!("warning: {f}");
    }
}

/// Expand the wildcards (`*`, `?`, `[...]`) of `ROLE=PATH` inputs into every matching file, in
/// name order (`--input 'bandit=logs/part-*.csv'`), and a directory into its CSV and Parquet
/// files; a pattern that matches nothing, or a directory without such files, is an error.
fn expand_globs(inputs: Vec<(String, PathBuf)>) -> Result<Vec<(String, PathBuf)>, HostError> {
    let mut out = Vec::new();
    for (role, path) in inputs {
        let text = path.to_string_lossy();
        let bad = |why: String| HostError::Parameter(format!("--input {role}={text}: {why}"));
        if path.is_dir() {
            // a directory: its CSV and Parquet files, in name order (a dataset written in parts)
            let mut found: Vec<PathBuf> = std::fs::read_dir(&path)
                .map_err(|e| bad(format!("cannot list the directory ({e})")))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .filter(|p| quiver_host::is_parquet(p) || p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")))
                .collect();
            if found.is_empty() {
                return Err(bad("the directory holds no .csv or .parquet file".into()));
            }
            found.sort();
            out.extend(found.into_iter().map(|p| (role.clone(), p)));
            continue;
        }
        if !text.contains(['*', '?', '[']) || path.exists() {
            out.push((role, path));
            continue;
        }
        let mut found: Vec<PathBuf> = glob::glob(&text)
            .map_err(|e| bad(format!("not a file pattern ({e})")))?
            .collect::<Result<_, _>>()
            .map_err(|e| bad(format!("cannot read {}", e.path().display())))?;
        if found.is_empty() {
            return Err(bad("no file matches".into()));
        }
        found.sort();
        out.extend(found.into_iter().map(|p| (role.clone(), p)));
    }
    Ok(out)
}

/// Say which non-numeric columns were ignored: a count and the first few names (a file of 10^5
/// text columns is one line, not 10^5 names).
fn note_ignored(tables: &[quiver_host::Table]) {
    for t in tables.iter().filter(|t| !t.ignored.is_empty()) {
        let shown: Vec<&str> = t.ignored.iter().take(5).map(String::as_str).collect();
        let more = t.ignored.len() - shown.len();
        eprintln!(
            "note: table '{}': ignored {} non-numeric column(s) {}{}",
            t.role,
            t.ignored.len(),
            shown.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        );
    }
}

fn run(command: &Command, host: &Host) -> Result<ExitCode, HostError> {
    match command {
        Command::List { json } => {
            warn_failures(host);
            if *json {
                let all: Vec<Value> = host.plugins().iter().map(|p| manifest_json(&p.manifest)).collect();
                say!("{}", serde_json::to_string_pretty(&all).expect("json"));
            } else if host.plugins().is_empty() {
                say!("no plugins found (searched: {})", display_paths(host.searched()));
            } else {
                let width = host.plugins().iter().map(|p| p.name().len()).max().unwrap_or(0);
                for p in host.plugins() {
                    let devices: Vec<&str> = p.manifest.devices.iter().map(|d| d.name()).collect();
                    say!(
                        "{:width$}  {:20}  [{}]  {}",
                        p.name(),
                        p.manifest.family.as_str(),
                        devices.join(","),
                        p.manifest.summary
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Info { method, json } => {
            let p = host.get(method)?;
            if *json {
                say!("{}", serde_json::to_string_pretty(&manifest_json(&p.manifest)).expect("json"));
            } else {
                print_info(p);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { method, inputs, sets, device, threads, json, output, plot, max_memory } => {
            if let Some(size) = max_memory {
                let bytes = quiver_sdk::memory::parse_size(size).ok_or_else(|| {
                    HostError::Parameter(format!("--max-memory '{size}' is not a size (bytes, or e.g. 512M, 8G)"))
                })?;
                // the plugins run in this process and read the limit from its environment
                std::env::set_var(quiver_sdk::memory::MAX_MEMORY_ENV, bytes.to_string());
            }
            let plugin = host.get(method)?;
            let params = quiver_host::params_from_pairs(&plugin.manifest, sets)?;
            let inputs = inputs
                .iter()
                .map(|s| {
                    s.split_once('=')
                        .map(|(r, p)| (r.trim().to_string(), PathBuf::from(p.trim())))
                        .ok_or_else(|| HostError::Parameter(format!("--input '{s}' is not ROLE=PATH")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let inputs = expand_globs(inputs)?;
            let device = match device {
                DeviceArg::Auto => DeviceRequest::Auto,
                DeviceArg::Cpu => DeviceRequest::Cpu,
                DeviceArg::Cuda => DeviceRequest::Cuda,
            };
            let progress = observer(!*json);
            let ctx = RunContext { device, threads: *threads, ..Default::default() };
            let by_parts = plugin.manifest.step("partial").is_some();
            let whole = quiver_host::whole_roles(&plugin.manifest);
            let (given_whole, parts) = by_parts::partitions(&inputs, by_parts, &whole)?;
            let by_parts_result = if by_parts {
                by_parts::run(host, plugin, &params, &inputs, (&given_whole, &parts), ctx, &progress)?
            } else {
                None
            };
            // the tables a picture may show beside the result: all of them, or those read whole
            let (result, read_tables) = match by_parts_result {
                Some(result) => {
                    let whole = match plot {
                        Some(_) => quiver_host::read_partition(&plugin.manifest, &given_whole).unwrap_or_default(),
                        None => Vec::new(),
                    };
                    (result, whole)
                }
                None => {
                    let tables = quiver_host::read_inputs(&plugin.manifest, &inputs)?;
                    note_ignored(&tables);
                    (host.run_output_observed(method, &params, &tables, ctx, Some(&progress))?, tables)
                }
            };
            if let Some(notice) = result.summary.get("notice").and_then(Value::as_str) {
                eprintln!("{notice}");
            }
            // written as it is serialised: a result of 10^7 per-unit values is never one big
            // string or JSON value
            if let Some(path) = output {
                let write = || -> std::io::Result<()> {
                    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
                    result.write_json(&mut f)?;
                    std::io::Write::flush(&mut f)
                };
                write().map_err(|e| HostError::Parameter(format!("cannot write {}: {e}", path.display())))?;
            }
            if *json {
                let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                if let Err(e) = result.write_json(&mut out).and_then(|_| std::io::Write::flush(&mut out)) {
                    output_failed(e);
                }
            } else {
                print_result(&result);
            }
            // the picture comes after the result: a bad path loses nothing already computed
            if let Some(path) = plot {
                let array = |name: &str| result.matrix(name).map(|(_, cols, v)| (v.to_vec(), cols.max(1)));
                let input = |role: &str, column: &str| input_column(&read_tables, role, column);
                let source = quiver_figure::Source { summary: &result.summary, array: &array, input: &input };
                match quiver_plot::plot(method, &source, path) {
                    Ok(drawn) => eprintln!("picture: {} ({})", path.display(), drawn.panels.join("; ")),
                    Err(e) => {
                        eprintln!("error: --plot: {e}");
                        return Ok(ExitCode::from(2));
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor => Ok(doctor(host)),
    }
}

/// A numeric column of the table `role` the run read (flags as 0 and 1), for a picture.
fn input_column(tables: &[quiver_host::Table], role: &str, column: &str) -> Option<Vec<f64>> {
    let t = tables.iter().find(|t| t.role == role)?;
    match &t.columns.iter().find(|(name, _)| name == column)?.1 {
        quiver_host::Values::F64(v) => Some(v.clone()),
        quiver_host::Values::I64(v) => Some(v.iter().map(|&x| x as f64).collect()),
        quiver_host::Values::Bool(v) => Some(v.iter().map(|&b| f64::from(u8::from(b))).collect()),
        quiver_host::Values::Bytes { .. } => None,
    }
}

fn display_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "no plugin folder exists; run `cargo xtask build`".into();
    }
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

fn print_info(p: &quiver_host::LoadedPlugin) {
    let m = &p.manifest;
    say!("{} {} ({})", m.name, m.version, m.family);
    say!("  {}", m.summary);
    say!("guarantee: {}", m.guarantee);
    say!("reference: {}", m.reference);
    let devices: Vec<&str> = m.devices.iter().map(|d| d.name()).collect();
    say!("devices:   {}", devices.join(", "));
    say!("file:      {} (SDK {})", p.path.display(), p.sdk_version);
    say!("parameters:");
    let width = m.params.iter().map(|p| p.name.len()).max().unwrap_or(0);
    for prm in m.params.iter() {
        let default =
            if prm.default_json.as_str() == "null" { "unset".to_string() } else { prm.default_json.to_string() };
        say!("  {:width$}  {} (default {default})", prm.name, prm.doc);
        say!("  {:width$}    {}", "", prm.requirement());
    }
    say!("tables:");
    for t in m.tables.iter() {
        say!("  {}{}: {}", t.role, if t.required { "" } else { " (optional)" }, t.doc);
        for c in t.columns.iter() {
            let name = if c.prefix { format!("{}*", c.name) } else { c.name.to_string() };
            say!(
                "    {:10} {:4} {:9} {}",
                name,
                c.kind.name(),
                if c.required { "required" } else { "optional" },
                c.doc
            );
        }
    }
}

/// Human-readable rendering of any result: scalars as a two-column table, arrays by length and
/// their first entries.
fn print_result(result: &quiver_host::RunOutput) {
    let v = &result.summary;
    let Some(obj) = v.as_object() else {
        say!("{v}");
        return;
    };
    let shown: Vec<&(String, quiver_host::OutputArray)> =
        result.arrays.iter().filter(|(n, a)| a.in_json && !obj.contains_key(n)).collect();
    // the names printed: the fields, a table of tables' `field.key` lines, the arrays
    let nested = obj.iter().flat_map(|(k, v)| {
        table_of_tables(v).into_iter().flat_map(move |o| o.keys().map(move |k2| k.len() + 1 + k2.len()))
    });
    let width = obj.keys().chain(shown.iter().map(|(n, _)| n)).map(String::len).chain(nested).max().unwrap_or(0);
    let list = |len: usize, item: &dyn Fn(usize) -> String| {
        let head: Vec<String> = (0..len.min(8)).map(item).collect();
        format!("[{len} values] {}{}", head.join(", "), if len > 8 { ", ..." } else { "" })
    };
    for (k, val) in obj {
        // a table of tables (an evaluator's metrics per algorithm): one line per inner key
        if let Some(o) = table_of_tables(val) {
            for (k2, v2) in o {
                let inner = v2.as_object().expect("checked").iter();
                let line = inner.map(|(k3, v3)| format!("{k3}={}", short(v3))).collect::<Vec<_>>().join("  ");
                say!("{:width$}  {line}", format!("{k}.{k2}"));
            }
            continue;
        }
        let shown = match val {
            Value::Array(a) => list(a.len(), &|i| short(&a[i])),
            Value::Object(o) => o.iter().map(|(k, v)| format!("{k}={}", short(v))).collect::<Vec<_>>().join(" "),
            Value::Null => continue,
            Value::String(_) if k == "notice" => continue,
            other => short(other),
        };
        say!("{k:width$}  {shown}");
    }
    // the per-unit arrays follow the summary's fields, as in the JSON
    for (k, a) in shown {
        if a.is_single() {
            say!("{k:width$}  {}", short(&a.to_json()));
        } else {
            say!("{k:width$}  {}", list(a.len(), &|i| short(&a.get_json(i))));
        }
    }
}

/// `v` as a table of tables — an object whose every field is an object that is not an estimate
/// (an evaluator's metrics per algorithm) — printed one line per field.
fn table_of_tables(v: &Value) -> Option<&serde_json::Map<String, Value>> {
    v.as_object().filter(|o| !o.is_empty() && o.values().all(|x| x.is_object() && estimate(x).is_none()))
}

/// An estimate with its interval — `{"estimate": e, "lower": l, "upper": u}` and any labels beside
/// them — as `labels e [l, u]`.
fn estimate(v: &Value) -> Option<String> {
    let o = v.as_object()?;
    let e = o.get("estimate").filter(|e| e.is_number())?;
    let labels: Vec<String> =
        o.iter().filter(|(_, x)| x.is_string()).map(|(k, x)| format!("{k}={}", short(x))).collect();
    let interval = match (o.get("lower"), o.get("upper")) {
        (Some(l), Some(u)) => format!(" [{}, {}]", short(l), short(u)),
        _ => String::new(),
    };
    let head = if labels.is_empty() { String::new() } else { format!("{} ", labels.join(" ")) };
    Some(format!("{head}{}{interval}", short(e)))
}

fn short(v: &Value) -> String {
    if let Some(e) = estimate(v) {
        return e;
    }
    match v {
        Value::Number(n) => match n.as_f64() {
            // very small and very large values in scientific notation (shortest round-trip form),
            // the rest to 6 decimals: 1e-300 must not print as 0
            Some(x) if n.is_f64() && x != 0.0 && !(1e-4..1e9).contains(&x.abs()) => format!("{x:e}"),
            Some(x) if n.is_f64() => format!("{x:.6}").trim_end_matches('0').trim_end_matches('.').to_string(),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        // nested results (per-model metrics) stay readable: long ones are left to --json
        Value::Array(a) if a.len() > 8 => format!("[{} values]", a.len()),
        Value::Array(a) if a.iter().all(|x| !x.is_array() && !x.is_object()) => {
            format!("[{}]", a.iter().map(short).collect::<Vec<_>>().join(", "))
        }
        other => {
            let text = other.to_string();
            if text.chars().count() > 80 {
                "{...} (see --json)".to_string()
            } else {
                text
            }
        }
    }
}

fn doctor(host: &Host) -> ExitCode {
    say!("quiver {} (ABI {})", env!("CARGO_PKG_VERSION"), quiver_host::ABI_VERSION);
    say!("plugin folders: {}", display_paths(host.searched()));
    for p in host.plugins() {
        say!("  ok    {:24} {} (SDK {})", p.name(), p.path.display(), p.sdk_version);
    }
    for f in host.failures() {
        say!("  FAIL  {f}");
    }
    for dir in host.searched().iter().filter(|d| !d.is_dir()) {
        say!("  FAIL  {}: no such folder", dir.display());
    }
    if host.plugins().is_empty() {
        say!("  no plugins found: build them with `cargo xtask build`, or give their folder with --plugins DIR");
    }
    // Each plugin probes CUDA for itself; the doctor reports whether the libraries are there.
    let gpu = gpu_status();
    say!("gpu: {gpu}");
    if host.failures().is_empty() && !host.plugins().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn gpu_status() -> String {
    let (driver, nvrtc) = quiver_host::cuda_libraries();
    match (driver, nvrtc) {
        (true, true) => {
            "NVIDIA driver and NVRTC found: `--device auto` uses CUDA where a method has a CUDA path".into()
        }
        (true, false) => "NVIDIA driver found but no NVRTC (libnvrtc): kernels cannot compile; CPU only".into(),
        (false, true) => "NVRTC found (kernels compile to PTX) but no NVIDIA driver: CPU only".into(),
        (false, false) => "no NVIDIA driver: CPU only (`--device auto` falls back to the CPU)".into(),
    }
}
