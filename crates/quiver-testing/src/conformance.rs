//! The conformance suite: what every loaded method must do, whatever its family.
//!
//! [`check_method`] runs each check on one method and panics naming the method and the check:
//! * its manifest is complete and renders (`quiver info`'s JSON), every parameter's default is
//!   valid (the estimator builds with no parameters given);
//! * bad parameters are refused before the plugin runs, with one message format naming the
//!   parameter, the value and what is allowed: a value of the wrong type, each side of the range,
//!   `inf` where only finite numbers are allowed, an unknown choice, an unknown name;
//! * the device contract: `cuda` for a method without a CUDA path is refused by the host, `auto`
//!   runs on the CPU (with a notice when the method has a CUDA path this machine cannot run);
//! * its built-in example runs, and every result's JSON carries `method`, `version`, `device`,
//!   `notice` and `parameters` (every manifest parameter, as used);
//! * each required table of the example, given with its columns but no rows, is refused with an
//!   input error naming the table — never a panic, never a result.

use crate::examples::{example_dir, runs_in, ExampleRun};
use quiver_host::{
    has_cuda_path, manifest_json, params_from_pairs, read_inputs, DeviceRequest, ErrorKind, Host, HostError, Manifest,
    ParamKind, RunContext, Table, Values,
};
use serde_json::{json, Map, Value};

fn run_ctx(device: DeviceRequest) -> RunContext {
    RunContext { device, threads: 1, ..Default::default() }
}

/// Every check of this module on `method`, with its example in the workspace's
/// `examples/METHOD/`.
pub fn check_method(host: &Host, method: &str) {
    check_method_with(host, method, &example_dir(method));
}

/// Every check of this module on `method`, with its example in `example` (a folder holding
/// `demo.txt` and its data).
pub fn check_method_with(host: &Host, method: &str, example: &std::path::Path) {
    let plugin = host.get(method).unwrap_or_else(|e| panic!("{e}"));
    let m = &plugin.manifest;
    manifest_is_complete(m);
    defaults_are_valid(host, m);
    bad_parameters_are_refused(host, m);
    let runs = runs_in(example).unwrap_or_else(|| {
        panic!("{method}: no built-in example: add {}/demo.txt (see docs/writing-a-plugin.md)", example.display())
    });
    for run in &runs {
        results_carry_the_common_fields(host, m, run);
    }
    device_contract(host, m, &runs[0]);
    empty_tables_are_refused(host, m, &runs[0]);
    magnitudes_never_mislead(host, m, &runs[0]);
}

/// The example with every float column scaled by 10^-300 … 10^300 either runs with every number
/// of the unscaled result still a number (none turned null or "nan"), or is refused with an
/// input, parameter or unsupported-request error — never a panic, an internal error, or a
/// silently missing number.
pub fn magnitudes_never_mislead(host: &Host, m: &Manifest, run: &ExampleRun) {
    let method = m.name.as_str();
    let (params, tables) = example_tables(m, run);
    let base = host
        .run(method, &params, &tables, run_ctx(DeviceRequest::Cpu))
        .unwrap_or_else(|e| panic!("{method}: the example fails: {e}"));
    for scale in [1e-300, 1e-150, 1e-20, 1e20, 1e150, 1e300] {
        let scaled: Vec<Table> = tables
            .iter()
            .map(|t| {
                let mut t = t.clone();
                for (_, v) in t.columns.iter_mut() {
                    if let Values::F64(x) = v {
                        x.iter_mut().for_each(|x| *x *= scale);
                    }
                }
                t
            })
            .collect();
        match host.run(method, &params, &scaled, run_ctx(DeviceRequest::Cpu)) {
            Ok(v) => {
                if let Some(path) = lost_number(&base, &v, String::new()) {
                    panic!(
                        "{method}: inputs scaled by {scale:e} give a result whose '{path}' is no longer a number: {v}"
                    );
                }
            }
            Err(e) => {
                let kind = e.plugin_kind();
                assert!(
                    !matches!(kind, Some(ErrorKind::Panic) | Some(ErrorKind::Internal)),
                    "{method}: inputs scaled by {scale:e}: {e}"
                );
                assert!(!e.to_string().trim().is_empty(), "{method}: an empty error at scale {scale:e}");
            }
        }
    }
}

/// The path of the first place where `base` holds a number and `other` holds null or "nan".
fn lost_number(base: &Value, other: &Value, path: String) -> Option<String> {
    match (base, other) {
        (Value::Number(_), Value::Null) => Some(path),
        (Value::Number(_), Value::String(s)) if s == "nan" => Some(path),
        (Value::Object(a), Value::Object(b)) => {
            a.iter().find_map(|(k, va)| b.get(k).and_then(|vb| lost_number(va, vb, format!("{path}.{k}"))))
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            a.iter().zip(b).enumerate().find_map(|(i, (x, y))| lost_number(x, y, format!("{path}[{i}]")))
        }
        _ => None,
    }
}

/// The manifest names, documents and renders everything the CLI shows.
pub fn manifest_is_complete(m: &Manifest) {
    let name = m.name.as_str();
    for (what, text) in [("summary", &m.summary), ("guarantee", &m.guarantee), ("reference", &m.reference)] {
        assert!(!text.trim().is_empty(), "{name}: the manifest's {what} is empty");
    }
    assert!(m.devices.contains(&quiver_host::Device::Cpu), "{name}: every method has a CPU path");
    let v = manifest_json(m);
    let text = serde_json::to_string_pretty(&v).expect("manifest JSON renders");
    let back: Value = serde_json::from_str(&text).expect("manifest JSON parses");
    assert_eq!(back["name"], name);
    for (i, p) in m.params.iter().enumerate() {
        let pname = p.name.as_str();
        assert!(!p.doc.trim().is_empty(), "{name}: parameter '{pname}' has no doc");
        assert_eq!(back["parameters"][i]["allowed"], p.requirement(), "{name}: parameter '{pname}'");
        if p.kind == ParamKind::Choice {
            assert!(!p.choices.is_empty(), "{name}: choice parameter '{pname}' has no choices");
        }
        assert!(
            m.params.iter().filter(|q| q.name == p.name).count() == 1,
            "{name}: parameter '{pname}' is declared twice"
        );
    }
    assert!(!m.tables.is_empty(), "{name}: the manifest declares no table");
    for t in m.tables.iter() {
        assert!(!t.role.is_empty() && !t.doc.trim().is_empty(), "{name}: a table without role or doc");
        assert!(!t.columns.is_empty(), "{name}: table '{}' declares no column", t.role);
    }
}

/// The estimator builds from the defaults alone: every default satisfies its own range.
pub fn defaults_are_valid(host: &Host, m: &Manifest) {
    if let Err(e) = host.create(m.name.as_str(), &Map::new(), run_ctx(DeviceRequest::Cpu)) {
        panic!("{}: the defaults do not build an estimator: {e}", m.name);
    }
}

/// Values just outside a numeric parameter's range (and `±inf` where only finite values are
/// allowed), each with its JSON.
fn outside_range(p: &quiver_host::ParamSpec) -> Vec<Value> {
    let mut out = Vec::new();
    let as_json = |x: f64| -> Value {
        if x.is_finite() {
            if p.kind == ParamKind::Int {
                json!(x as i64)
            } else {
                json!(x)
            }
        } else {
            json!(if x > 0.0 { "inf" } else { "-inf" })
        }
    };
    for (b, dir) in [(p.lower, -1.0), (p.upper, 1.0)] {
        if b.value.is_finite() {
            // the end itself when it is open, one unit past it when closed
            out.push(as_json(if b.inclusive { b.value + dir } else { b.value }));
        } else if !b.inclusive {
            out.push(as_json(b.value));
        }
    }
    if p.kind == ParamKind::Int {
        out.push(json!(0.5 + p.lower.value.clamp(0.0, 1e9)));
    }
    out
}

/// Wrong types, out-of-range values, unknown choices and names: each refused, as
/// [`ErrorKind::InvalidParameter`], naming the parameter, the value and what is allowed.
pub fn bad_parameters_are_refused(host: &Host, m: &Manifest) {
    let method = m.name.as_str();
    for p in m.params.iter() {
        let pname = p.name.as_str();
        let mut bad = vec![match p.kind {
            ParamKind::Float | ParamKind::Int => json!("not-a-number"),
            ParamKind::Bool => json!("maybe"),
            ParamKind::Choice => json!("no-such-choice"),
            ParamKind::Text => json!(12345),
        }];
        if matches!(p.kind, ParamKind::Float | ParamKind::Int) {
            bad.extend(outside_range(p));
        }
        for value in bad {
            let given: Map<String, Value> = [(pname.to_string(), value.clone())].into_iter().collect();
            match host.create(method, &given, run_ctx(DeviceRequest::Cpu)) {
                Ok(_) => panic!("{method}: parameter '{pname}' = {value} was accepted; allowed: {}", p.requirement()),
                Err(e) => {
                    assert_eq!(e.plugin_kind(), Some(ErrorKind::InvalidParameter), "{method}: {e}");
                    let msg = e.to_string();
                    let want = format!("parameter '{pname}' = {value} must be {}", p.requirement());
                    assert!(msg.contains(&want), "{method}: wanted '{want}', got '{msg}'");
                }
            }
        }
    }
    let unknown: Map<String, Value> = [("no_such_parameter".to_string(), json!(1))].into_iter().collect();
    let e = host.create(method, &unknown, run_ctx(DeviceRequest::Cpu)).err().expect("unknown parameter accepted");
    assert!(e.to_string().contains("unknown parameter 'no_such_parameter'"), "{method}: {e}");
}

/// The parameters and input tables of an example run, read as the method's manifest declares them.
pub fn example_tables(m: &Manifest, run: &ExampleRun) -> (Map<String, Value>, Vec<Table>) {
    let params = params_from_pairs(m, &run.sets).unwrap_or_else(|e| panic!("{}: example parameters: {e}", m.name));
    let tables = read_inputs(m, &run.inputs).unwrap_or_else(|e| panic!("{}: example inputs: {e}", m.name));
    (params, tables)
}

/// The example runs, and its JSON starts with the fields every method reports.
pub fn results_carry_the_common_fields(host: &Host, m: &Manifest, run: &ExampleRun) {
    let method = m.name.as_str();
    let (params, tables) = example_tables(m, run);
    let v = host
        .run(method, &params, &tables, run_ctx(DeviceRequest::Cpu))
        .unwrap_or_else(|e| panic!("{method}: the example {:?} fails: {e}", run.sets));
    common_fields(m, &v, "cpu");
}

fn common_fields(m: &Manifest, v: &Value, device: &str) {
    let method = m.name.as_str();
    let keys: Vec<&str> = v.as_object().expect("a JSON object").keys().map(String::as_str).collect();
    assert_eq!(&keys[..5], ["method", "version", "device", "notice", "parameters"], "{method}: leading fields");
    assert_eq!(v["method"], method);
    assert_eq!(v["version"], m.version.as_str(), "{method}");
    assert_eq!(v["device"], device, "{method}");
    for p in m.params.iter() {
        assert!(v["parameters"].get(p.name.as_str()).is_some(), "{method}: parameters lack '{}'", p.name);
    }
}

/// `cuda` without a CUDA path is the host's error; `auto` runs on the CPU where CUDA cannot, with
/// a notice when the method has a CUDA path.
pub fn device_contract(host: &Host, m: &Manifest, run: &ExampleRun) {
    let method = m.name.as_str();
    let (params, tables) = example_tables(m, run);
    let cuda = host.create(method, &params, run_ctx(DeviceRequest::Cuda));
    match (has_cuda_path(m), crate::gpu_unusable()) {
        (false, _) => {
            let e = cuda.err().unwrap_or_else(|| panic!("{method}: cuda accepted without a CUDA path"));
            assert!(matches!(e, HostError::NoCudaPath { .. }), "{method}: {e}");
        }
        (true, Some(why)) => {
            let e = cuda.err().unwrap_or_else(|| panic!("{method}: cuda accepted without a GPU"));
            assert_eq!(e.plugin_kind(), Some(ErrorKind::Device), "{method}: {e}");
            assert!(e.to_string().contains(&why), "{method}: the reason ({why}) is missing from: {e}");
        }
        (true, None) => assert!(cuda.is_ok(), "{method}: cuda refused on a machine with a GPU"),
    }
    if !has_cuda_path(m) || crate::gpu_unusable().is_some() {
        let v = host
            .run(method, &params, &tables, run_ctx(DeviceRequest::Auto))
            .unwrap_or_else(|e| panic!("{method}: auto fails: {e}"));
        common_fields(m, &v, "cpu");
        if has_cuda_path(m) {
            assert!(v["notice"].as_str().is_some_and(|n| n.contains("running on the CPU")), "{method}: {v}");
        } else {
            assert!(v["notice"].is_null(), "{method}: a CPU-only method has nothing to fall back from");
        }
    }
}

/// Each required table of the example, with its columns and no rows, is an input error naming
/// the table.
pub fn empty_tables_are_refused(host: &Host, m: &Manifest, run: &ExampleRun) {
    let method = m.name.as_str();
    let (params, tables) = example_tables(m, run);
    for spec in m.tables.iter().filter(|t| t.required) {
        let role = spec.role.as_str();
        let emptied: Vec<Table> = tables
            .iter()
            .map(|t| {
                if t.role != role {
                    return t.clone();
                }
                let columns = t
                    .columns
                    .iter()
                    .map(|(name, v)| {
                        let empty = match v {
                            Values::F64(_) => Values::F64(Vec::new()),
                            Values::I64(_) => Values::I64(Vec::new()),
                            Values::Bool(_) => Values::Bool(Vec::new()),
                            Values::Bytes { .. } => Values::Bytes { data: Vec::new(), offsets: vec![0] },
                        };
                        (name.clone(), empty)
                    })
                    .collect();
                Table { columns, nrows: 0, ..t.clone() }
            })
            .collect();
        match host.run(method, &params, &emptied, run_ctx(DeviceRequest::Cpu)) {
            Ok(v) => panic!("{method}: an empty '{role}' table gave a result: {v}"),
            Err(e) => {
                assert_ne!(e.plugin_kind(), Some(ErrorKind::Panic), "{method}: {e}");
                let input = matches!(e, HostError::Input(_)) || e.plugin_kind() == Some(ErrorKind::InvalidInput);
                assert!(input, "{method}: an empty '{role}' table is an input error, got: {e}");
                assert!(e.to_string().contains(&format!("'{role}'")), "{method}: the message must name '{role}': {e}");
            }
        }
    }
}
