//! Hostile input through the CLI, one test per class of defect: broken plugin files, requests
//! too large to serve, numbers at the edges of the double range, malformed tables and command
//! lines. Every case must end with a clear message and a deliberate exit code — never a signal,
//! a panic or a silently wrong number.

mod common;

use common::{example, exited, quiver, quiver_in, text, write};
use quiver_testing as testing;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// A `.npy` file with `shape` and `payload` in `dir`; its path.
fn npy(dir: &Path, name: &str, descr: &str, fortran: &str, shape: &str, payload: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, testing::npy_bytes(descr, fortran, shape, payload)).unwrap();
    p.display().to_string()
}

/// `.npy` headers whose sizes overflow, or that are not the literal NumPy writes: refused with
/// the file named, before any allocation — never a "capacity overflow" panic.
#[test]
fn npy_headers_of_any_shape_are_sized_with_checked_arithmetic() {
    let dir = tempfile::tempdir().unwrap();
    let cal = format!("calibration={}", example("conformal-selection/calibration.csv"));
    let cases = [
        ("<f8", "False", "(4611686018427387904, 4)", "mu,a,b,c", "more than 2^64 bytes"),
        ("<f8", "False", "(2305843009213693952, 2)", "mu,a", "more than 2^64 bytes"),
        ("<i4", "True", "(4611686018427387904,)", "mu", "more than 2^64 bytes"),
        ("<f8", "False", "(1000000000000, 2)", "mu,a", "data holds 64 bytes"),
        ("<f8", "Flase", "(8,)", "mu", "bad header"),
        ("<f8", "False", "(8, -1)", "mu", "non-negative integer"),
    ];
    for (k, (descr, fortran, shape, names, needle)) in cases.iter().enumerate() {
        let file = npy(dir.path(), &format!("h{k}.npy"), descr, fortran, shape, &[0u8; 64]);
        let test = format!("test={file}:{names}");
        let o = quiver(&["run", "conformal-selection", "--input", &cal, "--input", &test]);
        exited(&o, 2);
        assert!(text(&o).contains(needle) && text(&o).contains("table 'test'"), "{shape}: {}", text(&o));
    }
}

/// The peak resident memory of a running child, polled from `/proc` until it exits (the kernel
/// keeps the high-water mark, so the last reading is the peak up to the last poll).
fn run_measured(args: &[&str]) -> (Output, u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(args)
        .arg("--plugins")
        .arg(testing::plugin_dir())
        .env_remove("QUIVER_PLUGIN_PATH")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    while child.try_wait().unwrap().is_none() {
        if let Ok(s) = std::fs::read_to_string(&status) {
            if let Some(kib) = s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)) {
                peak_kib = peak_kib.max(kib.parse().unwrap_or(0));
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    (child.wait_with_output().unwrap(), peak_kib * 1024)
}

/// `--max-memory` binds while the inputs are read, not after: a 64 MiB `.npy` is refused from its
/// header and a 24 MiB CSV as soon as its values pass the limit, the process never holding much
/// more than the limit (the peak resident memory is measured).
#[test]
fn the_memory_limit_binds_while_inputs_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let cal = format!("calibration={}", example("conformal-selection/calibration.csv"));
    let n = 8 << 20;
    let payload: Vec<u8> = (0..n).flat_map(|i| (i as f64).to_le_bytes()).collect();
    let big = npy(dir.path(), "big.npy", "<f8", "False", &format!("({n},)"), &payload);
    let test = format!("test={big}:mu");
    let (o, peak) =
        run_measured(&["run", "conformal-selection", "--input", &cal, "--input", &test, "--max-memory", "16M"]);
    exited(&o, 2);
    assert!(text(&o).contains("past the limit of 16.0 MiB"), "{}", text(&o));
    assert!(peak < 48 << 20, "peak resident memory {} MiB for a 64 MiB file refused from its header", peak >> 20);
    // a CSV is refused while it is read: the limit, not the file, bounds the memory
    let mut body = String::from("mu\n");
    for i in 0..2_000_000 {
        body.push_str(&format!("{}.{:06}\n", i % 1000, i % 999_983));
    }
    let csv = dir.path().join("big.csv");
    std::fs::write(&csv, body).unwrap();
    let test = format!("test={}", csv.display());
    let (o, peak) =
        run_measured(&["run", "conformal-selection", "--input", &cal, "--input", &test, "--max-memory", "12M"]);
    exited(&o, 2);
    assert!(
        text(&o).contains("where reading stopped") && text(&o).contains("past the limit of 12.0 MiB"),
        "{}",
        text(&o)
    );
    assert!(peak < 48 << 20, "peak resident memory {} MiB reading a 24 MiB CSV under a 12 MiB limit", peak >> 20);
    // under the limit it runs
    let small = npy(dir.path(), "small.npy", "<f8", "True", "(4,)", &[0u8; 32]);
    let test = format!("test={small}:mu");
    let o = quiver(&["run", "conformal-selection", "--input", &cal, "--input", &test, "--max-memory", "16M"]);
    exited(&o, 0);
}

/// Wide tables cost what their size costs: 2 rows and 200 000 text columns are read, their
/// duplicate check done by hash, and the note about the ignored columns is one line with a count.
#[test]
fn wide_tables_are_read_in_time_proportional_to_their_size() {
    let dir = tempfile::tempdir().unwrap();
    let cal = format!("calibration={}", example("conformal-selection/calibration.csv"));
    let k = 200_000;
    let mut header = String::from("mu");
    let mut row = String::from("0.5");
    for j in 0..k {
        header.push_str(&format!(",c{j}"));
        row.push_str(",x");
    }
    let csv = dir.path().join("wide.csv");
    std::fs::write(&csv, format!("{header}\n{row}\n{row}\n")).unwrap();
    let test = format!("test={}", csv.display());
    let o = quiver(&["run", "conformal-selection", "--input", &cal, "--input", &test]);
    exited(&o, 0);
    let note = text(&o).lines().find(|l| l.contains("table 'test': ignored")).unwrap_or_default().to_string();
    assert!(
        note.contains(&format!("ignored {k} non-numeric column(s) c0, c1, c2, c3, c4 and {} more", k - 5)),
        "{note}"
    );
    // duplicates are still found
    std::fs::write(&csv, format!("{header},c17\n{row},x\n")).unwrap();
    let o = quiver(&["run", "conformal-selection", "--input", &cal, "--input", &test]);
    exited(&o, 2);
    assert!(text(&o).contains("column 'c17' appears twice"), "{}", text(&o));
}

/// The command line itself: a plugin folder that does not exist, an argument that is not UTF-8,
/// a closed standard output and a stream as input are each a clear answer.
#[test]
fn command_line_edges_are_errors_with_their_cause() {
    let o = quiver_in(Path::new("/nonexistent/plugins"), &["list"]);
    exited(&o, 2);
    assert!(text(&o).contains("/nonexistent/plugins given with --plugins does not exist"), "{}", text(&o));
    {
        use std::os::unix::ffi::OsStrExt;
        let bad = std::ffi::OsStr::from_bytes(b"caf\xe9.csv");
        let o = Command::new(env!("CARGO_BIN_EXE_quiver")).args(["info"]).arg(bad).output().unwrap();
        exited(&o, 2);
        assert!(text(&o).contains("argument 2 is not valid UTF-8: 'caf\u{FFFD}.csv'"), "{}", text(&o));
    }
    // `>&-`: the output would be lost; a closed stdout is an error, as a full disk is
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!("'{}' list --plugins '{}' >&-", env!("CARGO_BIN_EXE_quiver"), testing::plugin_dir().display()))
        .output()
        .unwrap();
    exited(&o, 74);
    assert!(text(&o).contains("standard output is closed"), "{}", text(&o));
    // a CSV from a pipe (`/dev/stdin`) is read, not refused with "Illegal seek"
    let cal = example("conformal-selection/calibration.csv");
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf 'mu\\n0.5\\n1.5\\n' | '{}' run conformal-selection --input calibration='{cal}' --input test=/dev/stdin --json --plugins '{}'",
            env!("CARGO_BIN_EXE_quiver"),
            testing::plugin_dir().display()
        ))
        .output()
        .unwrap();
    exited(&o, 0);
    assert!(text(&o).contains("\"p_values\""), "{}", text(&o));
}

/// Values the method cannot use are refused with the row: a shrinkage target outside the range
/// of what it shrinks (a proportion, a difference of two).
#[test]
fn targets_outside_their_range_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = write(dir.path(), "d.csv", "y,n,m\n3,10,0.2\n4,12,1.5\n5,9,0.4\n");
    let o = quiver(&["run", "sure-binomial", "--input", &format!("data={data}")]);
    exited(&o, 2);
    assert!(text(&o).contains("column 'm', row 2: value 1.5 is not a proportion, in [0, 1]"), "{}", text(&o));
    let data = write(dir.path(), "d2.csv", "y1,n1,y2,n2,m\n3,10,2,10,0.1\n4,12,6,12,-1.5\n5,9,5,9,0\n");
    let o = quiver(&["run", "sure-binomial", "--input", &format!("data={data}"), "--set", "sample=two"]);
    exited(&o, 2);
    assert!(text(&o).contains("value -1.5 is not a difference of proportions, in [-1, 1]"), "{}", text(&o));
}

/// A policy that leaves the data's support where the critic has no value is refused, naming the
/// state and the action — never a result with an empty V and a null J.
#[test]
fn policies_outside_the_data_are_refused_not_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let t = write(dir.path(), "t.csv", "episode,t,s,a,r,s_next,done\n0,0,0,0,1.0,0,1\n1,0,0,0,2.0,0,1\n");
    let p = write(dir.path(), "p.csv", "s,a,prob\n0,0,0.5\n0,1,0.5\n");
    for method in ["critic-lstd", "critic-cql"] {
        let o = quiver(&["run", method, "--input", &format!("transitions={t}"), "--input", &format!("policy={p}")]);
        exited(&o, 2);
        assert!(
            text(&o).contains("takes action 1 at state 0, which the data never took there"),
            "{method}: {}",
            text(&o)
        );
    }
}

/// Two statements of one thing that disagree are refused, naming both: a `pi_prob` column against
/// the `policy` table, a pair twice in a reward model, a bandit log beside trajectories.
#[test]
fn contradictory_inputs_are_refused_not_settled_silently() {
    let dir = tempfile::tempdir().unwrap();
    let transitions = std::fs::read_to_string(example("ope/transitions.csv")).unwrap();
    let mut lines: Vec<String> = transitions.lines().map(String::from).collect();
    // row 3's pi_prob, the last field, made to contradict the policy table
    let fields: Vec<&str> = lines[3].split(',').collect();
    let changed = format!("{},0.99", fields[..fields.len() - 1].join(","));
    lines[3] = changed;
    let t = write(dir.path(), "t.csv", &(lines.join("\n") + "\n"));
    let policy = format!("policy={}", example("ope/policy.csv"));
    let o = quiver(&["run", "ope", "--input", &format!("transitions={t}"), "--input", &policy]);
    exited(&o, 2);
    assert!(text(&o).contains("column 'pi_prob', row 3: value 0.99 contradicts the 'policy' table"), "{}", text(&o));
    // the example as it is runs
    let good = format!("transitions={}", example("ope/transitions.csv"));
    let o = quiver(&["run", "ope", "--input", &good, "--input", &policy]);
    exited(&o, 0);
    let q = write(dir.path(), "q.csv", "s,a,q\n0,0,1.0\n0,1,2.0\n0,0,3.0\n");
    let o = quiver(&["run", "ope", "--input", &good, "--input", &policy, "--input", &format!("q={q}")]);
    exited(&o, 2);
    assert!(text(&o).contains("the pair (s, a) = (0, 0) is given twice (rows 1 and 3)"), "{}", text(&o));
    let bandit = write(
        dir.path(),
        "b.csv",
        "a,r,mu_prob,pi_0,pi_1,qhat_0,qhat_1\n0,1,0.5,0.5,0.5,0.5,0.5\n1,0,0.5,0.5,0.5,0.5,0.5\n",
    );
    let o = quiver(&["run", "ope", "--input", &good, "--input", &policy, "--input", &format!("bandit={bandit}")]);
    exited(&o, 2);
    assert!(text(&o).contains("'bandit' and 'transitions' were both given"), "{}", text(&o));
}

/// Importance weights near the end of the double range: the effective sample size stays a
/// number, and a weight past the range is named as the cause (not the rewards).
#[test]
fn extreme_importance_weights_give_numbers_or_name_the_weight() {
    let dir = tempfile::tempdir().unwrap();
    let rows = |mu: &str| {
        let mut body = String::from("a,r,mu_prob,pi_0,pi_1,qhat_0,qhat_1\n");
        body.push_str(&format!("0,1,{mu},0.5,0.5,0.5,0.5\n"));
        for i in 0..30 {
            body.push_str(&format!("{},{},0.5,0.5,0.5,0.5,0.5\n", i % 2, (i % 3) as f64 / 2.0));
        }
        body
    };
    // a weight of 5e299 beside weights of 1: the effective sample size is 1, a number
    let b = write(dir.path(), "b.csv", &rows("1e-300"));
    let o = quiver(&["run", "ope", "--input", &format!("bandit={b}"), "--set", "ci=bootstrap", "--json"]);
    let out = text(&o);
    if o.status.success() {
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(v["ess"].as_f64().is_some_and(|e| (1.0..1.0 + 1e-9).contains(&e)), "ess {}", v["ess"]);
    } else {
        // where the estimates themselves overflow, the weight is named as the cause
        exited(&o, 2);
        assert!(out.contains("the importance weight pi/mu") && out.contains("mu_prob = 1e-300"), "{out}");
    }
    let b = write(dir.path(), "b2.csv", &rows("1e-320"));
    let o = quiver(&["run", "ope", "--input", &format!("bandit={b}"), "--set", "ci=t"]);
    exited(&o, 2);
    assert!(text(&o).contains("column 'mu_prob', row 1: the importance weight pi/mu"), "{}", text(&o));
}

/// Data of subnormal size (1e-320) keep too few digits to standardise: refused with the row,
/// not a fit whose weights never left their start (and a null loss) with exit 0.
#[test]
fn subnormal_forecasts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let scaled = |name: &str| {
        let text = std::fs::read_to_string(example(&format!("quantile-aggregation/{name}"))).unwrap();
        let mut lines = text.lines();
        let mut out = format!("{}\n", lines.next().unwrap());
        for l in lines.take(200) {
            let row: Vec<String> =
                l.split(',').map(|v| v.parse::<f64>().map_or(v.to_string(), |x| format!("{:e}", x * 1e-320))).collect();
            out.push_str(&(row.join(",") + "\n"));
        }
        write(dir.path(), name, &out)
    };
    let (fit, test) = (scaled("fit.csv"), scaled("test.csv"));
    let o = quiver(&[
        "run",
        "quantile-aggregation",
        "--input",
        &format!("fit={fit}"),
        "--input",
        &format!("test={test}"),
        "--set",
        "solver=gradient",
    ]);
    exited(&o, 2);
    assert!(text(&o).contains("is subnormal") && text(&o).contains("table 'fit'"), "{}", text(&o));
}

/// A figure the result promises is a number at any scale the method accepts: the relative
/// residual of LSTD at rewards near 1e300 (its norms are scaled as LAPACK's nrm2 scales them).
#[test]
fn promised_figures_are_numbers_at_extreme_scales() {
    let dir = tempfile::tempdir().unwrap();
    let text_of = std::fs::read_to_string(example("critic-lstd/transitions.csv")).unwrap();
    let mut lines = text_of.lines();
    let header = lines.next().unwrap();
    let r_col = header.split(',').position(|c| c == "r").unwrap();
    let mut out = format!("{header}\n");
    for l in lines.take(400) {
        let mut f: Vec<String> = l.split(',').map(String::from).collect();
        f[r_col] = format!("{:e}", f[r_col].parse::<f64>().unwrap() * 1e300);
        out.push_str(&(f.join(",") + "\n"));
    }
    let t = write(dir.path(), "t.csv", &out);
    let policy = format!("policy={}", example("critic-lstd/policy.csv"));
    for target in ["lstdq", "fqe"] {
        let o = quiver(&[
            "run",
            "critic-lstd",
            "--input",
            &format!("transitions={t}"),
            "--input",
            &policy,
            "--set",
            &format!("target={target}"),
            "--json",
        ]);
        exited(&o, 0);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(v["residual"].as_f64().is_some_and(|r| r < 1e-6), "{target}: residual {}", v["residual"]);
        assert!(v["j"].as_f64().is_some_and(f64::is_finite), "{target}: j {}", v["j"]);
    }
}

/// Robust EB intervals are centred at AKP's shrinkage, not at the estimates they are printed
/// beside: the result says how many estimates lie outside their interval, and why, when any do.
#[test]
fn intervals_say_where_they_stand_against_the_estimates() {
    let data = format!("data={}", example("sure-normal/baseball.csv"));
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "sure-normal", "--input", data.as_str(), "--set", "ci=robust-ebci", "--json"];
        args.extend_from_slice(extra);
        let o = quiver(&args);
        exited(&o, 0);
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let v = run(&["--set", "lambda=0.01"]);
    let outside = v["ebci"]["estimates_outside"].as_u64().unwrap();
    let (est, lo, hi) = (&v["estimates"], &v["lower"], &v["upper"]);
    let counted = (0..18)
        .filter(|&i| {
            let e = est[i].as_f64().unwrap();
            !(lo[i].as_f64().unwrap() <= e && e <= hi[i].as_f64().unwrap())
        })
        .count() as u64;
    assert!(outside > 0 && outside == counted, "{outside} vs {counted}");
    assert!(v["ebci"]["note"].as_str().unwrap().contains(&format!("{outside} of 18 estimates lie outside")));
    let v = run(&[]);
    assert_eq!(v["ebci"]["estimates_outside"], 0);
    assert!(v["ebci"].get("note").is_none());
}

/// SURE on data of subnormal size: refused with the row and the reason, not a result whose
/// certificate is null or a message about overflow.
#[test]
fn subnormal_means_are_refused_by_sure() {
    let dir = tempfile::tempdir().unwrap();
    let d = write(dir.path(), "d.csv", "x,a\n1e-320,1\n2e-320,1\n3e-320,1\n-1e-320,1\n");
    for method in ["xkb-estimated", "xkb-grand-mean"] {
        let o = quiver(&["run", "sure-normal", "--input", &format!("data={d}"), "--set", &format!("method={method}")]);
        exited(&o, 2);
        assert!(text(&o).contains("column 'x', row 1: value 1e-320 is subnormal"), "{method}: {}", text(&o));
    }
}

/// A table that a step of the run cannot do without (the manifest's `requires`) is asked for
/// before any step starts — not after the whole fit — through the CLI and the library alike; a
/// method lists what each step requires.
#[test]
fn tables_a_step_requires_are_checked_before_any_work() {
    let fit = example("quantile-aggregation/fit.csv");
    let o = quiver(&["run", "quantile-aggregation", "--input", &format!("fit={fit}"), "--set", "granularity=fine"]);
    exited(&o, 2);
    assert!(
        text(&o)
            .contains("needs a 'test' table for its step 'predict' (give it with --input test=PATH); nothing was run"),
        "{}",
        text(&o)
    );
    let info = quiver(&["info", "quantile-aggregation", "--json"]);
    let m: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(
        m["properties"]["requires"]["predict"],
        serde_json::json!([{"role": "test", "unless": {"granularity": "none"}}]),
        "{m}"
    );
    // the mode that does without it (scores the fit table) still runs
    exited(&quiver(&["run", "quantile-aggregation", "--input", &format!("fit={fit}"), "--set", "granularity=none"]), 0);
    // the library refuses it the same way, with the step named
    let host = quiver_testing::host();
    let tables = [quiver_host::read_csv(std::path::Path::new(&fit), "fit", None).unwrap()];
    let e = host.run("quantile-aggregation", &serde_json::Map::new(), &tables, quiver_testing::cpu()).unwrap_err();
    assert!(e.to_string().contains("for its step 'predict'"), "{e}");
}

/// OPE's intervals scale with the rewards down to the smallest normal numbers: at rewards near
/// 1e-200 the `t` and empirical-Bernstein intervals (whose variances underflow there) are those at
/// rewards near 1 times 1e-200, not of zero width — bandit and trajectory estimators alike.
#[test]
fn ope_intervals_scale_with_rewards_near_the_smallest_normals() {
    let dir = tempfile::tempdir().unwrap();
    let bandit = |scale: f64| {
        let mut out = String::from("a,r,mu_prob,pi_0,pi_1,qhat_0,qhat_1\n");
        for i in 0..200u64 {
            let a = i % 2;
            let r = ((i * 37) % 11) as f64 / 10.0;
            let mu = if a == 0 { 0.6 } else { 0.4 };
            out += &format!("{a},{:e},{mu},0.3,0.7,{:e},{:e}\n", r * scale, 0.4 * scale, 0.6 * scale);
        }
        write(dir.path(), &format!("bandit-{scale:e}.csv"), &out)
    };
    let transitions = |scale: f64| {
        let text = std::fs::read_to_string(example("ope/transitions.csv")).unwrap();
        let mut lines = text.lines();
        let header = lines.next().unwrap();
        let r = header.split(',').position(|c| c == "r").unwrap();
        let mut out = format!("{header}\n");
        for l in lines {
            let mut v: Vec<String> = l.split(',').map(str::to_string).collect();
            v[r] = format!("{:e}", v[r].parse::<f64>().unwrap() * scale);
            out += &(v.join(",") + "\n");
        }
        write(dir.path(), &format!("transitions-{scale:e}.csv"), &out)
    };
    let policy = example("ope/policy.csv");
    let run = |inputs: Vec<String>, ci: &str, range: &str| {
        let mut args = vec!["run".to_string(), "ope".into(), "--json".into(), "--set".into(), format!("ci={ci}")];
        for i in inputs {
            args.extend(["--input".into(), i]);
        }
        if !range.is_empty() {
            args.extend(["--set".into(), format!("reward_range={range}"), "--set".into(), "weight_max=10".into()]);
        }
        let o = quiver(&args.iter().map(String::as_str).collect::<Vec<_>>());
        exited(&o, 0);
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let cases: [(&str, &str, &[&str]); 4] = [
        ("bandit", "t", &["ipw", "snipw", "dm", "dr"]),
        ("bandit", "empirical-bernstein", &["ipw", "dr"]),
        ("transitions", "t", &["tis", "pdis", "sn_pdis"]),
        ("transitions", "empirical-bernstein", &["tis", "pdis"]),
    ];
    for (kind, ci, names) in cases {
        let at = |scale: f64| {
            let range = if ci == "t" { String::new() } else { format!("{:e},{:e}", -100.0 * scale, 100.0 * scale) };
            let inputs = match kind {
                "bandit" => vec![format!("bandit={}", bandit(scale))],
                _ => vec![format!("transitions={}", transitions(scale)), format!("policy={policy}")],
            };
            run(inputs, ci, &range)
        };
        let (one, tiny) = (at(1.0), at(1e-200));
        for name in names {
            for end in ["estimate", "lower", "upper"] {
                let (a, b) = (one[name][end].as_f64().unwrap(), tiny[name][end].as_f64().unwrap());
                assert!(
                    (b / 1e-200 - a).abs() <= 1e-9 * a.abs().max(1e-300),
                    "{kind} {ci} {name}.{end}: {b:e} at 1e-200, {a:e} at 1: {}",
                    tiny[name]
                );
            }
            let width = tiny[name]["upper"].as_f64().unwrap() - tiny[name]["lower"].as_f64().unwrap();
            assert!(width > 0.0, "{kind} {ci} {name}: zero width at 1e-200");
        }
    }
}

/// Random Fourier features whose phases w·s leave the range where cos(w·s + b) still depends on
/// the state — a bandwidth of 1e-300, or states near 1e308 — are refused naming the bandwidth and
/// the states, for every critic with `features=rff` (they were reported as divergence, or as
/// rewards to rescale).
#[test]
fn fourier_features_without_a_phase_name_the_bandwidth() {
    let dir = tempfile::tempdir().unwrap();
    let rows = |state_scale: f64| -> String {
        let mut s = String::from("episode,t,s_0,a,r,s_next_0,done,pi_0,pi_1,pi_next_0,pi_next_1\n");
        for e in 0..10 {
            for t in 0..6 {
                let x = ((e * 6 + t) as f64 * 0.37).sin() * state_scale;
                let next = ((e * 6 + t + 1) as f64 * 0.37).sin() * state_scale;
                s += &format!("{e},{t},{x:e},{},{},{next:e},{},0.5,0.5,0.5,0.5\n", t % 2, x.signum(), u8::from(t == 5));
            }
        }
        s
    };
    let plain = format!("transitions={}", write(dir.path(), "plain.csv", &rows(1.0)));
    let huge = format!("transitions={}", write(dir.path(), "huge.csv", &rows(1e308)));
    for method in ["critic-lstd", "critic-expectile", "critic-quantile", "critic-chunked"] {
        for (input, bandwidth) in [(&plain, "1e-300"), (&huge, "1")] {
            let mut args = vec!["run", method, "--input", input, "--set", "features=rff", "--set", "dim=8"];
            let bw = format!("bandwidth={bandwidth}");
            args.extend_from_slice(&["--set", &bw]);
            if method == "critic-lstd" {
                args.extend_from_slice(&["--set", "target=fqe"]);
            }
            if method == "critic-quantile" {
                args.extend_from_slice(&["--set", "kappa=1"]);
            }
            let o = quiver(&args);
            exited(&o, 2);
            let t = text(&o);
            assert!(t.contains("features=rff: with bandwidth = ") && t.contains("set bandwidth near"), "{method}: {t}");
        }
        // a sensible bandwidth on the same states runs
        let mut args =
            vec!["run", method, "--input", &plain, "--set", "features=rff", "--set", "dim=8", "--set", "ridge=1e-3"];
        if method == "critic-quantile" {
            args.extend_from_slice(&["--set", "kappa=1"]);
        }
        let o = quiver(&args);
        assert!(o.status.success(), "{method}: {}", text(&o));
    }
}

/// Work the parameters make enormous is estimated from the sizes and refused before it starts,
/// with the estimate and what to change: LSTD's moments with thousands of random Fourier features
/// on the CPU (one block of C and one block row of M a row), and the exact LP of fine quantile aggregation over many models and levels
/// (the interior point's n·Σ_k terms(k)² per iteration). Both ran for minutes before.
#[test]
fn enormous_work_is_estimated_and_refused_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = String::from("episode,t,s_0,a,r,s_next_0,done,pi_0,pi_1,pi_next_0,pi_next_1\n");
    for i in 0..20_000 {
        let (e, t) = (i / 10, i % 10);
        let x = (i as f64 * 0.37).sin();
        let next = ((i + 1) as f64 * 0.37).sin();
        body += &format!("{e},{t},{x:.4},{},{:.4},{next:.4},{},0.5,0.5,0.5,0.5\n", t % 2, x, u8::from(t == 9));
    }
    let transitions = format!("transitions={}", write(dir.path(), "t.csv", &body));
    let o = quiver(&[
        "run",
        "critic-lstd",
        "--input",
        &transitions,
        "--set",
        "features=rff",
        "--set",
        "dim=2048",
        "--set",
        "target=fqe",
        "--set",
        "ridge=1e-3",
        "--device",
        "cpu",
    ]);
    exited(&o, 2);
    assert!(
        text(&o).contains("20000 rows x 4096 features: the moments take 2.1e11 multiply-adds on the CPU")
            && text(&o).contains("lower dim"),
        "{}",
        text(&o)
    );

    let (models, levels) = (40, 19);
    let taus: Vec<String> = (1..=levels).map(|k| format!("{}", k as f64 / 20.0)).collect();
    let mut header = vec!["y".to_string()];
    for j in 0..models {
        header.extend(taus.iter().map(|t| format!("q_m{j}_{t}")));
    }
    let mut body = header.join(",") + "\n";
    for i in 0..500 {
        let y = (i as f64 * 0.61).sin();
        let row: Vec<String> =
            std::iter::once(format!("{y:.3}"))
                .chain((0..models).flat_map(|j| {
                    (1..=levels).map(move |k| format!("{:.3}", (k as f64 - 10.0) / 5.0 + j as f64 * 0.01))
                }))
                .collect();
        body += &(row.join(",") + "\n");
    }
    let fit = write(dir.path(), "fit.csv", &body);
    let o = quiver(&[
        "run",
        "quantile-aggregation",
        "--input",
        &format!("fit={fit}"),
        "--input",
        &format!("test={fit}"),
        "--set",
        "granularity=fine",
        "--set",
        "solver=exact",
    ]);
    exited(&o, 2);
    assert!(
        text(&o).contains("the exact LP would take 5.5e9 multiply-adds per interior-point iteration")
            && text(&o).contains("use solver=gradient"),
        "{}",
        text(&o)
    );
}
