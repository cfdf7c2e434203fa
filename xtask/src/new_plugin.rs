//! `cargo xtask new-plugin NAME --family F [--dir PATH]`: a compiling, tested plugin skeleton.
//!
//! Inside the workspace (the default, `plugins/NAME`), the crate is added to the workspace members
//! and gets a test that loads the built cdylib through the host. With `--dir` outside the
//! workspace, it is a standalone crate (its own `[workspace]`, path dependencies on this checkout).
//! Each family's skeleton holds a small but real estimator, so it runs as generated.

use std::path::{Path, PathBuf};

/// The families and the trait a plugin of each implements.
const FAMILIES: [&str; 5] = ["critic", "quantile-aggregator", "conformal-selector", "shrinkage", "batch-pi"];

pub fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let mut name = None;
    let mut family = None;
    let mut dir = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--family" => family = it.next().cloned(),
            "--dir" => dir = it.next().map(PathBuf::from),
            s if !s.starts_with('-') && name.is_none() => name = Some(s.to_string()),
            s => return Err(format!("unexpected argument '{s}'")),
        }
    }
    let name = name.ok_or("usage: cargo xtask new-plugin NAME --family F [--dir PATH]")?;
    let family = family.ok_or_else(|| format!("--family is required: one of {}", FAMILIES.join(", ")))?;
    if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') || name.starts_with('-') {
        return Err(format!("plugin name '{name}' must be kebab-case (a-z, 0-9, -)"));
    }
    let in_workspace = dir.is_none();
    let dir = dir.unwrap_or_else(|| root.join("plugins").join(&name));
    if dir.exists() {
        return Err(format!("{} already exists", dir.display()));
    }
    let files = render(&name, &family, if in_workspace { None } else { Some(root) })?;
    for (rel, text) in files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("has parent")).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if in_workspace {
        add_member(root, &format!("plugins/{name}"))?;
    }
    println!("created {} ({family} plugin '{name}')", dir.display());
    if in_workspace {
        println!("next: edit plugins/{name}/src/lib.rs, then `cargo xtask test`");
    }
    Ok(())
}

fn add_member(root: &Path, member: &str) -> Result<(), String> {
    let path = root.join("Cargo.toml");
    let toml = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    let anchor = "    \"benches\",";
    if !toml.contains(anchor) {
        return Err(format!("add \"{member}\" to the workspace members in Cargo.toml by hand"));
    }
    let toml = toml.replacen(anchor, &format!("    \"{member}\",\n{anchor}"), 1);
    std::fs::write(&path, toml).map_err(|e| e.to_string())
}

fn camel(name: &str) -> String {
    name.split('-').map(|w| w[..1].to_uppercase() + &w[1..]).collect()
}

/// The files of a skeleton: (relative path, contents). `standalone_root` gives path dependencies
/// on that checkout and an own `[workspace]`; `None` gives a workspace member.
pub fn render(name: &str, family: &str, standalone_root: Option<&Path>) -> Result<Vec<(String, String)>, String> {
    let body = match family {
        "conformal-selector" => SELECTOR,
        "batch-pi" => BATCH,
        "quantile-aggregator" => AGGREGATOR,
        "shrinkage" => SHRINKAGE,
        "critic" => CRITIC,
        other => return Err(format!("unknown family '{other}': one of {}", FAMILIES.join(", "))),
    };
    let fill = |t: &str| {
        t.replace("{{name}}", name).replace("{{Type}}", &camel(name)).replace("{{crate}}", &name.replace('-', "_"))
    };
    let cargo = match standalone_root {
        None => format!(
            "[package]\nname = \"{name}\"\nversion.workspace = true\nedition.workspace = true\nlicense.workspace = true\nrust-version.workspace = true\ndescription = \"TODO: one line on what {name} estimates.\"\n\n[lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n[dependencies]\nquiver-sdk.workspace = true\n# named by abi_stable's export macro; never `use`d\nabi_stable.workspace = true\n\n[dev-dependencies]\nquiver-host.workspace = true\n"
        ),
        Some(root) => format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n[lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n[dependencies]\nquiver-sdk = {{ path = \"{}/crates/quiver-sdk\" }}\n# named by abi_stable's export macro; never `use`d\nabi_stable = \"0.11.3\"\n\n[workspace]\n",
            root.display()
        ),
    };
    let mut files =
        vec![("Cargo.toml".to_string(), cargo), ("src/lib.rs".to_string(), fill(&format!("{HEADER}{body}")))];
    if standalone_root.is_none() {
        files.push((format!("tests/{}.rs", name.replace('-', "_")), fill(&test_for(family))));
    }
    Ok(files)
}

const HEADER: &str = r#"//! `{{name}}`: TODO — what it estimates, the formula, the paper, the guarantee.
//!
//! Generated by `cargo xtask new-plugin`; see docs/writing-a-plugin.md.

use quiver_sdk::abi::abi_stable::std_types::RVec;
use quiver_sdk::abi::*;
use quiver_sdk::{column, serde_json::json, ManifestBuilder, Params, Plugin, TableBuilder, Tables};

"#;

const SELECTOR: &str = r#"use quiver_sdk::param;

/// Split-conformal screening: accept test units whose score is at most the
/// ⌈(n+1)(1−α)⌉-th smallest calibration score.
struct {{Type}} {
    alpha: f64,
    threshold: Option<f64>,
}

impl quiver_sdk::SelectorImpl for {{Type}} {
    fn calibrate(&mut self, tables: &Tables<'_>) -> Result<(), PluginError> {
        let cal = tables.get("calibration")?;
        cal.non_empty()?;
        let mut s = cal.f64("score")?.to_vec();
        s.sort_by(f64::total_cmp);
        let k = ((s.len() as f64 + 1.0) * (1.0 - self.alpha)).ceil() as usize;
        self.threshold = Some(if k <= s.len() { s[k - 1] } else { f64::INFINITY });
        Ok(())
    }

    fn select(&self, tables: &Tables<'_>) -> Result<SelectionResult, PluginError> {
        let t = self.threshold.ok_or_else(|| quiver_sdk::state_error("select() before calibrate()"))?;
        let s = tables.get("test")?.f64("score")?;
        let selected: Vec<u64> = (0..s.len()).filter(|&j| s[j] <= t).map(|j| j as u64).collect();
        let json = json!({"method": "{{name}}", "device": "cpu", "threshold": quiver_sdk::json_f64(t)});
        Ok(SelectionResult {
            device: Device::Cpu,
            unit_values: RVec::from(s.to_vec()),
            unit_values_name: "scores".into(),
            selected: RVec::from(selected),
            selected_name: "selected".into(),
            threshold: t,
            json: json.to_string().into(),
        })
    }
}

/// The plugin.
pub struct {{Type}}Plugin;

impl Plugin for {{Type}}Plugin {
    fn manifest() -> Manifest {
        ManifestBuilder::new("{{name}}", Family::ConformalSelector)
            .version(env!("CARGO_PKG_VERSION"))
            .summary("TODO: one line")
            .guarantee("TODO: the guarantee, stated exactly")
            .param(param::float("alpha", Some(0.1), "level, in (0, 1)"))
            .table(TableBuilder::new("calibration", "labelled units").column(column::f64("score", "nonconformity score")))
            .table(TableBuilder::new("test", "units to screen").column(column::f64("score", "nonconformity score")))
            .build()
    }

    fn create(params: Params, _ctx: RunContext) -> Result<Estimator, PluginError> {
        Ok(quiver_sdk::selector({{Type}} { alpha: params.level("alpha")?, threshold: None }))
    }
}

quiver_sdk::export_plugin!({{Type}}Plugin);
"#;

const BATCH: &str = r#"use quiver_sdk::param;

/// Split-conformal bound for one future score: S_(⌈(n+1)(1−α)⌉), +∞ past n.
struct {{Type}} {
    alpha: f64,
    sorted: Option<Vec<f64>>,
}

impl quiver_sdk::BatchImpl for {{Type}} {
    fn calibrate(&mut self, tables: &Tables<'_>) -> Result<(), PluginError> {
        let cal = tables.get("calibration")?;
        cal.non_empty()?;
        let mut s = cal.f64("score")?.to_vec();
        s.sort_by(f64::total_cmp);
        self.sorted = Some(s);
        Ok(())
    }

    fn bound(&self, _tables: &Tables<'_>) -> Result<BatchResult, PluginError> {
        let s = self.sorted.as_ref().ok_or_else(|| quiver_sdk::state_error("bound() before calibrate()"))?;
        let k = ((s.len() as f64 + 1.0) * (1.0 - self.alpha)).ceil() as usize;
        let upper = if k <= s.len() { s[k - 1] } else { f64::INFINITY };
        let json = json!({"method": "{{name}}", "device": "cpu", "k": k, "bound": quiver_sdk::json_f64(upper)});
        Ok(BatchResult { device: Device::Cpu, lower: f64::NEG_INFINITY, upper, selected: RVec::new(), json: json.to_string().into() })
    }
}

/// The plugin.
pub struct {{Type}}Plugin;

impl Plugin for {{Type}}Plugin {
    fn manifest() -> Manifest {
        ManifestBuilder::new("{{name}}", Family::BatchPredictive)
            .version(env!("CARGO_PKG_VERSION"))
            .summary("TODO: one line")
            .guarantee("TODO: the guarantee, stated exactly")
            .param(param::float("alpha", Some(0.1), "level, in (0, 1)"))
            .table(TableBuilder::new("calibration", "calibration scores").column(column::f64("score", "score")))
            .build()
    }

    fn create(params: Params, _ctx: RunContext) -> Result<Estimator, PluginError> {
        Ok(quiver_sdk::batch_predictor({{Type}} { alpha: params.level("alpha")?, sorted: None }))
    }
}

quiver_sdk::export_plugin!({{Type}}Plugin);
"#;

const AGGREGATOR: &str = r#"/// Equal-weight aggregation of every `q_` column, sorted per row (non-crossing).
struct {{Type}};

impl quiver_sdk::AggregatorImpl for {{Type}} {
    fn fit(&mut self, _tables: &Tables<'_>) -> Result<(), PluginError> {
        Ok(())
    }

    fn calibrate(&mut self, _tables: &Tables<'_>) -> Result<(), PluginError> {
        Ok(())
    }

    fn predict(&self, tables: &Tables<'_>) -> Result<AggregationResult, PluginError> {
        let t = tables.get("test")?;
        let names: Vec<&str> = t.column_names().into_iter().filter(|c| c.starts_with("q_")).collect();
        let cols = names.iter().map(|c| t.f64(c)).collect::<Result<Vec<_>, _>>()?;
        let rows = t.nrows();
        let mut data = Vec::with_capacity(rows * cols.len());
        for i in 0..rows {
            let mut row: Vec<f64> = cols.iter().map(|c| c[i]).collect();
            row.sort_by(f64::total_cmp);
            data.extend(row);
        }
        let json = json!({"method": "{{name}}", "device": "cpu", "columns": names, "test_quantiles": data});
        Ok(AggregationResult { device: Device::Cpu, quantiles: OwnedMatrix { data: RVec::from(data), rows, cols: cols.len() }, json: json.to_string().into() })
    }
}

/// The plugin.
pub struct {{Type}}Plugin;

impl Plugin for {{Type}}Plugin {
    fn manifest() -> Manifest {
        let mut q = column::f64("q_", "quantile predictions, one column per model and level");
        q.prefix = true;
        ManifestBuilder::new("{{name}}", Family::QuantileAggregator)
            .version(env!("CARGO_PKG_VERSION"))
            .summary("TODO: one line")
            .guarantee("TODO: the guarantee, stated exactly")
            .table(TableBuilder::new("test", "quantile predictions").column(q))
            .build()
    }

    fn create(_params: Params, _ctx: RunContext) -> Result<Estimator, PluginError> {
        Ok(quiver_sdk::aggregator({{Type}}))
    }
}

quiver_sdk::export_plugin!({{Type}}Plugin);
"#;

const SHRINKAGE: &str = r#"use quiver_sdk::abi::abi_stable::std_types::ROption;
use quiver_sdk::param;

/// Positive-part James–Stein toward the grand mean for x_i ~ N(θ_i, σ²):
/// θ̂_i = x̄ + (1 − (p − 3)σ² / Σ(x_i − x̄)²)₊ (x_i − x̄).
struct {{Type}} {
    sigma2: f64,
}

impl quiver_sdk::ShrinkageImpl for {{Type}} {
    fn estimate(&self, tables: &Tables<'_>) -> Result<ShrinkageResult, PluginError> {
        let x = tables.get("data")?.f64("x")?;
        let p = x.len() as f64;
        if p < 4.0 {
            return Err(PluginError::input("table 'data' needs at least 4 rows"));
        }
        let mean = x.sum() / p;
        let ss: f64 = x.iter().map(|v| (v - mean).powi(2)).sum();
        let factor = (1.0 - (p - 3.0) * self.sigma2 / ss).max(0.0);
        let est: Vec<f64> = x.iter().map(|v| mean + factor * (v - mean)).collect();
        let json = json!({"method": "{{name}}", "device": "cpu", "shrinkage_factor": factor});
        Ok(ShrinkageResult { device: Device::Cpu, lambda_hat: factor, risk_estimate: f64::NAN, estimates: RVec::from(est), intervals: ROption::RNone, json: json.to_string().into() })
    }
}

/// The plugin.
pub struct {{Type}}Plugin;

impl Plugin for {{Type}}Plugin {
    fn manifest() -> Manifest {
        ManifestBuilder::new("{{name}}", Family::Shrinkage)
            .version(env!("CARGO_PKG_VERSION"))
            .summary("TODO: one line")
            .guarantee("TODO: the guarantee, stated exactly")
            .param(param::float("sigma2", Some(1.0), "known noise variance (> 0)"))
            .table(TableBuilder::new("data", "one row per unit").column(column::f64("x", "observation")))
            .build()
    }

    fn create(params: Params, _ctx: RunContext) -> Result<Estimator, PluginError> {
        let sigma2 = params.f64("sigma2")?;
        if !(sigma2 > 0.0) {
            return Err(PluginError::param(format!("parameter 'sigma2' = {sigma2} must be > 0")));
        }
        Ok(quiver_sdk::shrinkage({{Type}} { sigma2 }))
    }
}

quiver_sdk::export_plugin!({{Type}}Plugin);
"#;

const CRITIC: &str = r#"/// Mean immediate reward per discrete state (the γ = 0 value), as a starting point.
struct {{Type}} {
    values: Vec<f64>,
}

impl quiver_sdk::CriticImpl for {{Type}} {
    fn fit(&mut self, tables: &Tables<'_>) -> Result<(), PluginError> {
        let t = tables.get("transitions")?;
        t.non_empty()?;
        let (s, r) = (t.i64("s")?, t.f64("r")?);
        let states = s.iter().copied().max().unwrap_or(0).max(0) as usize + 1;
        let (mut sum, mut count) = (vec![0.0; states], vec![0.0; states]);
        for (i, &si) in s.iter().enumerate() {
            if si < 0 {
                return Err(PluginError::input(format!("table 'transitions', column 's', row {}: negative state id", i + 1)));
            }
            sum[si as usize] += r[i];
            count[si as usize] += 1.0;
        }
        self.values = sum.iter().zip(&count).map(|(a, c)| if *c > 0.0 { a / c } else { 0.0 }).collect();
        Ok(())
    }

    fn values(&self, _tables: &Tables<'_>) -> Result<CriticResult, PluginError> {
        let json = json!({"method": "{{name}}", "device": "cpu", "v": self.values});
        Ok(CriticResult { device: Device::Cpu, values: RVec::from(self.values.clone()), json: json.to_string().into() })
    }
}

/// The plugin.
pub struct {{Type}}Plugin;

impl Plugin for {{Type}}Plugin {
    fn manifest() -> Manifest {
        ManifestBuilder::new("{{name}}", Family::Critic)
            .version(env!("CARGO_PKG_VERSION"))
            .summary("TODO: one line")
            .guarantee("TODO: the guarantee, stated exactly")
            .table(TableBuilder::new("transitions", "offline data").column(column::i64("s", "state id")).column(column::f64("r", "reward")))
            .build()
    }

    fn create(_params: Params, _ctx: RunContext) -> Result<Estimator, PluginError> {
        Ok(quiver_sdk::critic({{Type}} { values: Vec::new() }))
    }
}

quiver_sdk::export_plugin!({{Type}}Plugin);
"#;

/// A test for the skeleton, through the built cdylib.
fn test_for(family: &str) -> String {
    let (call, tables, check) = match family {
        "conformal-selector" => (
            "let mut h = host.selector(\"{{name}}\", &testing::params(&[]), ctx).unwrap();\n    h.calibrate(&[cal.clone()]).unwrap();\n    let r = h.select(&[test]).unwrap();",
            "let cal = Table::new(\"calibration\").with_f64(\"score\", (1..=19).map(f64::from).collect());\n    let test = Table::new(\"test\").with_f64(\"score\", vec![1.0, 18.0, 19.5]);",
            "assert_eq!(r.selected.as_slice(), &[0, 1]);",
        ),
        "batch-pi" => (
            "let mut h = host.batch_predictor(\"{{name}}\", &testing::params(&[]), ctx).unwrap();\n    h.calibrate(&[cal.clone()]).unwrap();\n    let r = h.bound(&[]).unwrap();",
            "let cal = Table::new(\"calibration\").with_f64(\"score\", (1..=19).map(f64::from).collect());",
            "assert_eq!(r.upper, 18.0);",
        ),
        "quantile-aggregator" => (
            "let mut h = host.aggregator(\"{{name}}\", &testing::params(&[]), ctx).unwrap();\n    h.fit(&[]).unwrap();\n    h.calibrate(&[]).unwrap();\n    let r = h.predict(&[test]).unwrap();",
            "let test = Table::new(\"test\").with_f64(\"q_a_0.9\", vec![1.0]).with_f64(\"q_a_0.1\", vec![3.0]);",
            "assert_eq!(r.quantiles.data.as_slice(), &[1.0, 3.0]);",
        ),
        "shrinkage" => (
            "let h = host.shrinker(\"{{name}}\", &testing::params(&[]), ctx).unwrap();\n    let r = h.estimate(&[data]).unwrap();",
            "let data = Table::new(\"data\").with_f64(\"x\", vec![-3.0, -1.0, 0.0, 1.0, 3.0]);",
            "assert!((r.lambda_hat - 0.9).abs() < 1e-12);",
        ),
        _ => (
            "let mut h = host.critic(\"{{name}}\", &testing::params(&[]), ctx).unwrap();\n    h.fit(&[data]).unwrap();\n    let r = h.values(&[]).unwrap();",
            "let data = Table::new(\"transitions\").with_i64(\"s\", vec![0, 1, 1]).with_f64(\"r\", vec![1.0, 2.0, 4.0]);",
            "assert_eq!(r.values.as_slice(), &[1.0, 3.0]);",
        ),
    };
    format!(
        "//! `{{{{name}}}}` through the real plugin boundary (the built cdylib, loaded by the host).\n\nuse quiver_host::{{testing, DeviceRequest, RunContext, Table}};\n\n#[test]\nfn runs_through_the_host() {{\n    let host = testing::host();\n    let ctx = RunContext {{ device: DeviceRequest::Cpu, threads: 1 }};\n    {tables}\n    {call}\n    {check}\n}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_renders() {
        for f in FAMILIES {
            let files = render("my-method", f, None).unwrap();
            assert_eq!(files.len(), 3);
            assert!(files[1].1.contains("pub struct MyMethodPlugin;"));
            assert!(files[1].1.contains("quiver_sdk::export_plugin!(MyMethodPlugin);"));
            assert!(files[2].1.contains("host.") && !files[2].1.contains("{{"));
            let standalone = render("my-method", f, Some(Path::new("/q"))).unwrap();
            assert!(
                standalone[0].1.contains("path = \"/q/crates/quiver-sdk\"") && standalone[0].1.contains("[workspace]")
            );
        }
        assert!(render("x", "regression", None).is_err());
    }
}
