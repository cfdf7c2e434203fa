//! Hostile input through the CLI, one test per class of defect: broken plugin files, requests
//! too large to serve, numbers at the edges of the double range, malformed tables and command
//! lines. Every case must end with a clear message and a deliberate exit code — never a signal,
//! a panic or a silently wrong number.

use quiver_testing as testing;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn quiver_in(plugins: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(args)
        .arg("--plugins")
        .arg(plugins)
        .env_remove("QUIVER_PLUGIN_PATH")
        .output()
        .expect("quiver runs")
}

fn quiver(args: &[&str]) -> Output {
    quiver_in(&testing::plugin_dir(), args)
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The process ended by exiting (not by a signal), with `code` (1: `doctor` found a problem;
/// 2: the request was refused with an error).
fn exited(o: &Output, code: i32) {
    use std::os::unix::process::ExitStatusExt;
    assert!(o.status.signal().is_none(), "killed by signal {:?}: {}", o.status.signal(), text(o));
    assert_eq!(o.status.code(), Some(code), "{}", text(o));
    assert!(!text(o).contains("panicked"), "{}", text(o));
}

fn plugin_file(stem: &str) -> PathBuf {
    testing::plugin_dir().join(format!("lib{stem}.so"))
}

#[test]
fn truncated_or_corrupt_plugin_files_are_refused_before_they_are_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(plugin_file("ope")).unwrap();
    std::fs::write(dir.path().join("libope.so"), &good).unwrap();
    let victim = std::fs::read(plugin_file("sure_normal")).unwrap();
    let len = victim.len();
    let mut flipped = victim.clone();
    flipped[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes()); // e_phoff: program headers nowhere
    let cases: Vec<(String, Vec<u8>)> = [0, 3, 64, 4096, 100_000, len / 2, len - 4096, len - 1]
        .iter()
        .map(|&n| (format!("truncated to {n} bytes"), victim[..n].to_vec()))
        .chain([("program headers past the end".to_string(), flipped)])
        .collect();
    for (what, bytes) in cases {
        std::fs::write(dir.path().join("libsure_normal.so"), &bytes).unwrap();
        let o = quiver_in(dir.path(), &["doctor"]);
        exited(&o, 1);
        let out = text(&o);
        assert!(out.contains("ok    ope"), "{what}: the good plugin still loads: {out}");
        assert!(out.contains("FAIL  ") && out.contains("libsure_normal.so"), "{what}: {out}");
        let o = quiver_in(dir.path(), &["list"]);
        assert!(o.status.code().is_some(), "{what}: list survives");
    }
}

fn example(path: &str) -> String {
    testing::workspace_root().join("examples").join(path).display().to_string()
}

#[test]
fn requests_are_sized_before_they_are_served() {
    let cal = format!("calibration={}", example("batch-pi/calibration.csv"));
    let cases: &[(&[&str], &str)] = &[
        (&["--set", "mode=mean", "--set", "m=1000000", "--set", "upper_bound=10"], "the exact DP needs more than"),
        (&["--set", "mode=pac", "--set", "m=1000000000000"], "lower m"),
        (&["--set", "mode=two-sided", "--set", "m=1000000000000", "--set", "zeta=500000000000"], "lower m"),
        (
            &["--set", "mode=mean", "--set", "m=30", "--set", "upper_bound=10", "--max-memory", "1K"],
            "past the limit of 1.0 KiB",
        ),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["run", "batch-pi", "--input", cal.as_str()];
        args.extend_from_slice(extra);
        let o = quiver(&args);
        exited(&o, 2);
        assert!(text(&o).contains(needle), "{extra:?}: {}", text(&o));
    }
    let o = quiver(&["run", "batch-pi", "--input", cal.as_str(), "--max-memory", "lots"]);
    exited(&o, 2);
    assert!(text(&o).contains("--max-memory 'lots' is not a size"), "{}", text(&o));
}

#[test]
fn repeated_roles_and_bad_npy_names_are_errors() {
    let cal = format!("calibration={}", example("batch-pi/calibration.csv"));
    let o = quiver(&["run", "batch-pi", "--input", cal.as_str(), "--input", cal.as_str()]);
    exited(&o, 2);
    assert!(text(&o).contains("table 'calibration' is given twice"), "{}", text(&o));
    let o = quiver(&["run", "batch-pi", "--input", cal.as_str(), "--set", "alpha=0.1", "--set", "alpha=0.2"]);
    exited(&o, 2);
    assert!(text(&o).contains("parameter 'alpha' is set twice"), "{}", text(&o));
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("m.npy");
    // a 2 x 2 little-endian f64 matrix
    let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }";
    let mut h = header.to_string();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(h.len() as u16).to_le_bytes());
    bytes.extend_from_slice(h.as_bytes());
    for x in [1.0f64, 2.0, 3.0, 4.0] {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(&npy, bytes).unwrap();
    for (names, needle) in [("y,y", "'y' is given twice"), ("y,", "is empty")] {
        let arg = format!("calibration={}:{names}", npy.display());
        let o = quiver(&["run", "batch-pi", "--input", arg.as_str()]);
        exited(&o, 2);
        assert!(text(&o).contains(needle), "{names}: {}", text(&o));
    }
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

#[test]
fn numbers_at_the_edges_of_the_double_range_never_mislead() {
    let dir = tempfile::tempdir().unwrap();
    // SURE on means near 1e200 with unit variances: the risk overflows; refused, not "sure": null
    let big = write(dir.path(), "big.csv", "x,a\n1e200,1\n2e200,1\n3e200,1\n4e200,1\n5e200,1\n");
    let o = quiver(&["run", "sure-normal", "--input", &format!("data={big}"), "--set", "method=xkb-grand-mean"]);
    exited(&o, 2);
    assert!(text(&o).contains("overflows double precision"), "{}", text(&o));
    // conformal selection: all-zero weights are refused; weights of 1e308 give the unweighted answer
    let rows = |w: &str, cal: bool| -> String {
        let mut s = if cal { "y,mu,w\n".to_string() } else { "mu,w\n".to_string() };
        for i in 0..40 {
            let (y, mu) = ((i as f64 * 0.37).sin() * 2.0, (i as f64 * 0.11).cos());
            s += &if cal { format!("{y},{mu},{w}\n") } else { format!("{},{w}\n", mu + 1.5) };
        }
        s
    };
    let zero = [
        "calibration=".to_string() + &write(dir.path(), "c0.csv", &rows("0", true)),
        "test=".to_string() + &write(dir.path(), "t0.csv", &rows("0", false)),
    ];
    let o = quiver(&["run", "conformal-selection", "--input", &zero[0], "--input", &zero[1]]);
    exited(&o, 2);
    assert!(text(&o).contains("every weight is 0"), "{}", text(&o));
    let json = |w: &str| -> serde_json::Value {
        let c = "calibration=".to_string() + &write(dir.path(), &format!("c{w}.csv"), &rows(w, true));
        let t = "test=".to_string() + &write(dir.path(), &format!("t{w}.csv"), &rows(w, false));
        let o = quiver(&["run", "conformal-selection", "--input", &c, "--input", &t, "--set", "q=0.5", "--json"]);
        exited(&o, 0);
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let (one, huge) = (json("1"), json("1e308"));
    assert_eq!(one["p_values"], huge["p_values"]);
    assert_eq!(one["selected"], huge["selected"]);
}

#[test]
fn malformed_tables_name_their_exact_place() {
    let dir = tempfile::tempdir().unwrap();
    let test = "test=".to_string() + &write(dir.path(), "t.csv", "mu\n1\n");
    let cases: &[(&str, &[u8], &str)] = &[
        ("blank lines", b"y,mu\n1,2\n\n\n3,4\n5,abc\n", "column 'mu', row 3 (line 6): 'abc' is not a number"),
        ("ragged row", b"y,mu\n1,2\n\n\n3,4\n5,6,7\n", "row 3 (line 6) has 3 fields, but the header has 2"),
        ("quoted newline", b"name,y,mu\n\"a\nb\",1,2\nc,3,x\n", "column 'mu', row 2 (line 4): 'x' is not a number"),
        ("semicolons", b"y;mu\n1;2\n", "(it has: y;mu; the header was read with ',' between columns but contains ';'"),
        ("overflow", b"y,mu\n1e400,2\n3,4\n", "'1e400' overflows double precision"),
        ("NUL bytes", &[0u8; 100_000], "not a text CSV file (a NUL byte at offset 0)"),
        ("unnamed column", b"y,,mu\n1,2,3\n", "column 2 of the header has no name"),
    ];
    for (what, body, needle) in cases {
        let path = dir.path().join("c.csv");
        std::fs::write(&path, body).unwrap();
        let cal = format!("calibration={}", path.display());
        let o = quiver(&["run", "conformal-selection", "--input", &cal, "--input", &test]);
        exited(&o, 2);
        assert!(text(&o).contains(needle), "{what}: {}", text(&o));
    }
    // a folder that does not exist is named, not just a failing exit code
    let o = quiver_in(Path::new("/nonexistent/quiver-plugins"), &["doctor"]);
    exited(&o, 1);
    assert!(text(&o).contains("/nonexistent/quiver-plugins: no such folder"), "{}", text(&o));
}

#[test]
fn absurd_thread_counts_are_capped() {
    let (cal, test) = (
        format!("calibration={}", example("conformal-selection/calibration.csv")),
        format!("test={}", example("conformal-selection/test.csv")),
    );
    let run = |threads: &str| {
        let o =
            quiver(&["run", "conformal-selection", "--input", &cal, "--input", &test, "--threads", threads, "--json"]);
        exited(&o, 0);
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["selected"].clone()
    };
    // uncapped, 100000 threads took minutes to spawn; capped at the cores this returns at once
    assert_eq!(run("100000"), run("1"));
}

#[test]
fn linear_critics_refuse_rewards_beyond_their_scale() {
    let dir = tempfile::tempdir().unwrap();
    let rows = |scale: f64| -> String {
        let mut s = String::from("episode,t,s_0,a,r,s_next_0,done,pi_0,pi_1,pi_next_0,pi_next_1\n");
        for e in 0..20 {
            for t in 0..8 {
                let x = ((e * 8 + t) as f64 * 0.37).sin();
                let next = ((e * 8 + t + 1) as f64 * 0.37).sin();
                s += &format!("{e},{t},{x},{},{},{next},{},0.5,0.5,0.5,0.5\n", t % 2, x * scale, u8::from(t == 7));
            }
        }
        s
    };
    let huge = format!("transitions={}", write(dir.path(), "huge.csv", &rows(1e300)));
    let rff = ["--set", "features=rff", "--set", "dim=8", "--set", "ridge=1e-6"];
    // κ = 1 against returns near 1e301: the ridge, not the data, would set the quantiles
    let mut args = vec!["run", "critic-quantile", "--input", &huge, "--set", "kappa=1"];
    args.extend_from_slice(&rff);
    let o = quiver(&args);
    exited(&o, 2);
    assert!(text(&o).contains("kappa = 1 is negligible against returns"), "{}", text(&o));
    // values past 1e150 from rewards that large: the rewards are named, not the ridge
    for method in ["critic-chunked", "critic-quantile"] {
        let mut args = vec!["run", method, "--input", &huge];
        if method == "critic-quantile" {
            args.extend_from_slice(&["--set", "kappa=1e299"]);
        }
        args.extend_from_slice(&rff);
        let o = quiver(&args);
        exited(&o, 2);
        assert!(text(&o).contains("rescale the rewards"), "{method}: {}", text(&o));
    }
}
