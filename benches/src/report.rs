//! What a run reports besides the times: agreement of the two answers, the machine and its load,
//! and the speed-up plot.

use crate::*;

/// Whether two results agree: equal, except for shrinkage, where the minimised risk must agree
/// to 1e-9 relative or be lower in Quiver (its search is global, the baseline's Brent search
/// local, and both stop at slightly different λ on a flat minimum); bookkeeping counts
/// (`sweeps`, `evaluations`) are not compared.
pub(crate) fn agree(a: &Value, b: &Value) -> bool {
    if let (Some(x), Some(y)) = (a.get("estimates").and_then(Value::as_object), b.get("estimates")) {
        // every figure Quiver reports under `estimates` (point estimates; for the t intervals
        // also their ends) equals the baseline's to 1e-9 relative; text labels are not figures
        return x.iter().all(|(key, fields)| {
            fields.as_object().is_some_and(|f| {
                f.iter().all(|(end, v)| match (v.as_f64(), y[key][end].as_f64()) {
                    (Some(p), Some(q)) => (p - q).abs() <= 1e-9 * p.abs().max(q.abs()).max(1e-12),
                    // a label Quiver adds (an interval's `valid`) has no NumPy counterpart
                    _ => v.is_string(),
                })
            })
        });
    }
    if let (Some(x), Some(y)) = (a.get("objective").and_then(Value::as_f64), b.get("objective").and_then(Value::as_f64))
    {
        // aggregation: the exact LP's optimum to 1e-7 relative; Adam reaches the baseline's loss
        // (within 1e-3 relative: both run the same procedure with different shuffles)
        return if a["compare"] == "equal" { (x - y).abs() <= 1e-7 * y.abs() } else { x <= y * (1.0 + 1e-3) };
    }
    if let (Some(x), Some(y)) = (a.get("j").and_then(Value::as_f64), b.get("j").and_then(Value::as_f64)) {
        if a["compare"] == "statistical" {
            // two trainings of a network from different random draws: the same J within 5 %
            return (x - y).abs() <= 0.05 * x.abs().max(y.abs());
        }
        // the same policy value from the same features (NumPy's cos and Quiver's differ by ~1e-16)
        return (x - y).abs() <= 1e-6 * x.abs().max(1.0);
    }
    match (a.get("risk").and_then(Value::as_f64), b.get("risk").and_then(Value::as_f64)) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()) || x <= y,
        _ => a == b,
    }
}

/// The 1-, 5- and 15-minute load averages (`/proc/loadavg`), `None` where there is none.
pub(crate) fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|x| x.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// The share of the CPUs' time other processes used over one second (`/proc/stat`), taken while
/// the bench itself is idle: the load average lags by a minute (and still counts the build that
/// ran just before), this does not.
pub(crate) fn cpu_busy_now() -> Option<f64> {
    let sample = || -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal
        let idle = cpu.get(3)? + cpu.get(4).unwrap_or(&0);
        Some((cpu.iter().take(8).sum(), idle))
    };
    let (t0, i0) = sample()?;
    std::thread::sleep(std::time::Duration::from_secs(1));
    let (t1, i1) = sample()?;
    (t1 > t0).then(|| 1.0 - (i1 - i0) as f64 / (t1 - t0) as f64)
}

/// Threads and load: how many workers Quiver's cases ran on, the machine's load averages before
/// and after the timed cases, and how busy the CPUs were in the second before them — a low ratio
/// on a busy machine says little.
pub(crate) fn load_info(before: Option<[f64; 3]>, after: Option<[f64; 3]>, busy_share: Option<f64>) -> Value {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let busy = busy_share.map(|b| b > 0.25);
    json!({
        "cpu_busy_share_before": busy_share,
        // allocator settings the run inherited, if any (they change the short cases' times)
        "glibc_tunables": std::env::var("GLIBC_TUNABLES").ok(),
        // every case runs with RunContext threads = 0: each plugin's pool has one worker per core
        "quiver_threads": cores,
        "cores": cores,
        "load_average_before": before,
        "load_average_after": after,
        "busy_before": busy,
    })
}

pub(crate) fn host_info() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let rev = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let dirty = Command::new("git").args(["status", "--porcelain"]).output().is_ok_and(|o| !o.stdout.is_empty());
    json!({
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cpu_model": cpu,
        "git_revision": if dirty { format!("{rev}-dirty") } else { rev },
        "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    })
}

pub(crate) fn plot(path: &Path, rows: &[(String, f64)]) -> Result<(), String> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (960, 120 + 48 * rows.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let max = rows.iter().map(|r| r.1).fold(2.0, f64::max) * 2.0;
    let min = rows.iter().map(|r| r.1).fold(0.5, f64::min) * 0.8;
    let mut chart = ChartBuilder::on(&root)
        .caption("Quiver speed-up over the NumPy/SciPy baseline (median, same data)", ("sans-serif", 20))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(330)
        .build_cartesian_2d((min..max).log_scale(), (0..rows.len()).into_segmented())
        .map_err(|e| e.to_string())?;
    let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc("baseline time / Quiver time (log scale; the line marks 1x)")
        .x_label_formatter(&|v| format!("{v}x"))
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| {
            let color = if r.1 >= 1.0 { RGBColor(46, 125, 50) } else { RGBColor(198, 40, 40) };
            let mut bar = Rectangle::new(
                [(min, SegmentValue::Exact(i)), (r.1, SegmentValue::Exact(i + 1))],
                color.mix(0.8).filled(),
            );
            bar.set_margin(6, 6, 0, 0);
            bar
        }))
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| {
            Text::new(format!("{:.1}x", r.1), (r.1 * 1.05, SegmentValue::CenterOf(i)), ("sans-serif", 14))
        }))
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(1.0, SegmentValue::Exact(0)), (1.0, SegmentValue::Exact(rows.len()))],
            BLACK.stroke_width(2),
        )))
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
