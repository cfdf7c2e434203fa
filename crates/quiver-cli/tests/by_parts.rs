//! Runs by parts through the CLI (docs/scale.md): a table given as several files (the role
//! repeated, or a file pattern), and Parquet input — read through Arrow with only the columns the
//! method declares; a method computed by parts streams it row group by row group and gives the
//! one-table result; nulls are errors naming their row; other methods read the whole file and give
//! what the same data as CSV give.

use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
mod common;

use common::{quiver, text, write};
use quiver_testing as testing;
use std::path::Path;
use std::sync::Arc;

/// Write `columns` as a Parquet file of row groups of `group` rows.
fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>, group: usize) {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let props = WriterProperties::builder().set_max_row_group_size(group).build();
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// A bandit log of `n` rows: (a, r, mu_prob, pi_0, pi_1, qhat_0, qhat_1), as columns and as CSV.
fn bandit(n: usize) -> (Vec<i64>, Vec<[f64; 6]>, String) {
    let mut csv = String::from("a,r,mu_prob,pi_0,pi_1,qhat_0,qhat_1\n");
    let (mut a, mut rest) = (Vec::new(), Vec::new());
    for i in 0..n as u64 {
        let act = i64::from(i * 7 % 5 < 3);
        let row = [((i * 37) % 11) as f64 / 10.0, if act == 0 { 0.4 } else { 0.6 }, 0.3, 0.7, 0.4, 0.6];
        csv += &format!("{act},{},{},{},{},{},{}\n", row[0], row[1], row[2], row[3], row[4], row[5]);
        a.push(act);
        rest.push(row);
    }
    (a, rest, csv)
}

fn bandit_columns(a: &[i64], rest: &[[f64; 6]], r_null_at: Option<usize>) -> Vec<(&'static str, ArrayRef)> {
    let col = |k: usize| Arc::new(Float64Array::from(rest.iter().map(|r| r[k]).collect::<Vec<_>>())) as ArrayRef;
    let r: ArrayRef = Arc::new(Float64Array::from(
        rest.iter().enumerate().map(|(i, x)| (Some(i) != r_null_at).then_some(x[0])).collect::<Vec<_>>(),
    ));
    vec![
        ("a", Arc::new(Int64Array::from(a.to_vec())) as ArrayRef),
        ("r", r),
        ("mu_prob", col(1)),
        ("pi_0", col(2)),
        ("pi_1", col(3)),
        ("qhat_0", col(4)),
        ("qhat_1", col(5)),
        ("note", Arc::new(StringArray::from(vec!["x"; a.len()])) as ArrayRef),
    ]
}

#[test]
fn parquet_row_groups_run_by_parts_and_give_the_one_table_result() {
    let dir = tempfile::tempdir().unwrap();
    let (a, rest, csv) = bandit(300);
    let csv_path = dir.path().join("log.csv");
    std::fs::write(&csv_path, csv).unwrap();
    let pq = dir.path().join("log.parquet");
    write_parquet(&pq, bandit_columns(&a, &rest, None), 64);
    let run = |input: &Path| {
        let o = quiver(&["run", "ope", "--json", "--set", "ci=t", "--input", &format!("bandit={}", input.display())]);
        assert!(o.status.success(), "{}", text(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let (one, by_groups) = (run(&csv_path), run(&pq));
    testing::parts::assert_json_close(&one, &by_groups, 1e-12, "parquet row groups against the CSV");
    // a file `quiver run ope` refuses: its message
    let refused = |input: &Path| {
        let o = quiver(&["run", "ope", "--set", "ci=t", "--input", &format!("bandit={}", input.display())]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        text(&o)
    };

    // a null is named with its row, counted from the file's first
    let bad = dir.path().join("bad.parquet");
    write_parquet(&bad, bandit_columns(&a, &rest, Some(200)), 64);
    let e = refused(&bad);
    assert!(e.contains("table 'bandit', column 'r', row 201: a null (missing) value in column 'r'"), "{e}");
    // a NaN in a later row group: its row counted from the file's first too
    let mut nan = rest.clone();
    nan[130][0] = f64::NAN;
    let late = dir.path().join("late.parquet");
    write_parquet(&late, bandit_columns(&a, &nan, None), 64);
    let e = refused(&late);
    assert!(e.contains("table 'bandit', column 'r', row 131: value NaN is not finite"), "{e}");
    // a file with a schema and no row group at all is an empty table, not a crash
    let none = dir.path().join("none.parquet");
    write_parquet(&none, bandit_columns(&[], &[], None), 64);
    assert_eq!(
        parquet::file::reader::FileReader::num_row_groups(
            &parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&none).unwrap()).unwrap()
        ),
        0
    );
    let e = refused(&none);
    assert!(e.contains("table 'bandit' is empty"), "{e}");
    // a declared column of text, where the method reads numbers: named with both types, not
    // reported missing
    let mut text_r = bandit_columns(&a, &rest, None);
    text_r[1].1 = Arc::new(StringArray::from(vec!["0.5"; a.len()]));
    let texty = dir.path().join("texty.parquet");
    write_parquet(&texty, text_r, 64);
    let e = refused(&texty);
    assert!(e.contains("column 'r' holds Utf8 values, and the method reads numbers from it (f64)"), "{e}");
    // not a Parquet file
    let fake = dir.path().join("fake.parquet");
    std::fs::write(&fake, "a,b\n1,2\n").unwrap();
    let e = refused(&fake);
    assert!(e.contains("not a Parquet file"), "{e}");
}

#[test]
fn methods_not_computed_by_parts_read_the_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let csv = std::fs::read_to_string(testing::workspace_root().join("examples/sure-normal/baseball.csv")).unwrap();
    let (mut player, mut x, mut v) = (Vec::new(), Vec::new(), Vec::new());
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        player.push(f[0].to_string());
        x.push(f[1].parse::<f64>().unwrap());
        v.push(f[2].parse::<f64>().unwrap());
    }
    let pq = dir.path().join("baseball.parquet");
    write_parquet(
        &pq,
        vec![
            ("player", Arc::new(StringArray::from(player)) as ArrayRef),
            ("x", Arc::new(Float64Array::from(x)) as ArrayRef),
            ("a", Arc::new(Float64Array::from(v)) as ArrayRef),
            ("flag", Arc::new(BooleanArray::from(vec![true; 18])) as ArrayRef),
        ],
        5,
    );
    let run = |method: &str, input: String| {
        let o = quiver(&["run", "sure-normal", "--json", "--set", method, "--input", &input]);
        assert!(o.status.success(), "{}", text(&o));
        (serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap(), text(&o))
    };
    let csv = format!("data={}", testing::workspace_root().join("examples/sure-normal/baseball.csv").display());
    let (from_csv, _) = run("method=xkb-monotone", csv.clone());
    // a method computed by parts that refuses these settings by parts (xkb-monotone: an isotonic
    // regression over all units) reads the one file whole, and says so
    let (from_parquet, said) = run("method=xkb-monotone", format!("data={}", pq.display()));
    assert_eq!(from_csv, from_parquet);
    assert!(said.contains("is not computed by parts") && said.contains("reading the whole file instead"), "{said}");
    // the same file in rounds, by row group: the one-table answer to rounding
    let (whole, _) = run("method=xkb-grand-mean", csv);
    let (parts, _) = run("method=xkb-grand-mean", format!("data={}", pq.display()));
    testing::parts::assert_json_within(&whole, &parts, testing::parts::Close { rel: 1e-12, abs: 1e-15 }, "baseball");
}

/// A table given in parts — the role repeated, or a file pattern — runs a mergeable method by
/// parts, one partition read at a time, and gives the one-table result (docs/scale.md); a method
/// that cannot be computed by parts, or parts that do not line up, are clear errors.
#[test]
fn tables_given_in_parts_run_by_parts() {
    let dir = tempfile::tempdir().unwrap();
    let header = "a,r,mu_prob,pi_0,pi_1,qhat_0,qhat_1\n";
    let rows: Vec<String> = (0..300u64)
        .map(|i| {
            let a = (i * 7 % 5 < 3) as u64;
            let r = ((i * 37) % 11) as f64 / 10.0;
            format!("{a},{r},{},0.3,0.7,0.4,0.6\n", if a == 0 { 0.4 } else { 0.6 })
        })
        .collect();
    let whole = write(dir.path(), "whole.csv", &(header.to_string() + &rows.concat()));
    std::fs::create_dir(dir.path().join("parts")).unwrap();
    for (k, chunk) in [0..10, 10..10, 10..170, 170..300].into_iter().enumerate() {
        let body = header.to_string() + &rows[chunk].concat();
        std::fs::write(dir.path().join(format!("parts/part-{k}.csv")), body).unwrap();
    }
    let json = |inputs: &[String], ci: &str| {
        let mut args = vec!["run", "ope", "--json", "--set", ci];
        for i in inputs {
            args.extend(["--input", i.as_str()]);
        }
        let o = quiver(&args);
        (o.status.code(), text(&o), serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
    };
    let (code, _, one) = json(&[format!("bandit={whole}")], "ci=t");
    assert_eq!(code, Some(0));
    let one = one.unwrap();
    let pattern = format!("bandit={}/parts/part-*.csv", dir.path().display());
    let listed: Vec<String> = (0..4).map(|k| format!("bandit={}/parts/part-{k}.csv", dir.path().display())).collect();
    for inputs in [vec![pattern.clone()], listed] {
        let (code, out, parts) = json(&inputs, "ci=t");
        assert_eq!(code, Some(0), "{out}");
        let parts = parts.unwrap();
        for key in ["ipw", "snipw", "dm", "dr", "switch_dr", "dros"] {
            for end in ["estimate", "lower", "upper"] {
                let (a, b) = (one[key][end].as_f64().unwrap(), parts[key][end].as_f64().unwrap());
                assert!((a - b).abs() <= 1e-12 * a.abs().max(1e-300), "{key}.{end}: {a} vs {b}");
            }
        }
        assert_eq!(one["rows"], parts["rows"]);
    }
    let o = quiver(&["run", "ope", "--set", "ci=betting", "--set", "reward_range=0,1.1", "--input", &pattern]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("ci=betting is not computed by parts"), "{}", text(&o));
    // the bootstrap by parts: the same intervals as from one file
    let (_, _, one_boot) = json(&[format!("bandit={whole}")], "ci=bootstrap");
    let (code, out, parts_boot) = json(std::slice::from_ref(&pattern), "ci=bootstrap");
    assert_eq!(code, Some(0), "{out}");
    let (one_boot, parts_boot) = (one_boot.unwrap(), parts_boot.unwrap());
    for key in ["ipw", "snipw", "dr"] {
        for end in ["lower", "upper"] {
            let (a, b) = (one_boot[key][end].as_f64().unwrap(), parts_boot[key][end].as_f64().unwrap());
            assert!((a - b).abs() <= 1e-12 * a.abs().max(1e-300), "bootstrap {key}.{end}: {a} vs {b}");
        }
    }
    // a directory is its files, in name order
    let (code, out, parts) = json(&[format!("bandit={}/parts", dir.path().display())], "ci=t");
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(parts.unwrap()["rows"], one["rows"]);
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, out, _) = json(&[format!("bandit={}", empty.display())], "ci=t");
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("the directory holds no .csv or .parquet file"), "{out}");
    // a value the plugin refuses in a later part: its row is the part's own, and the message says
    // where that part starts in the whole log
    std::fs::create_dir(dir.path().join("bad")).unwrap();
    for (k, chunk) in [0..10, 10..170, 170..300].into_iter().enumerate() {
        let mut body = header.to_string() + &rows[chunk].concat();
        if k == 2 {
            body = body.replacen("\n0,", "\n7,", 1).replacen("\n1,", "\n7,", 1);
        }
        std::fs::write(dir.path().join(format!("bad/part-{k}.csv")), body).unwrap();
    }
    let (code, out, _) = json(&[format!("bandit={}/bad", dir.path().display())], "ci=t");
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("column 'a', row 1: value 7")
            && out.contains("partition 3 of the run by parts, which holds table 'bandit' from row 171 of all the data"),
        "{out}"
    );
    let nothing = format!("bandit={}/parts/none-*.csv", dir.path().display());
    let (code, out, _) = json(&[nothing], "ci=t");
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("no file matches"), "{out}");
}

/// A selector by parts: the calibration table given once is read whole by every partition, the
/// test units given in parts — CSV files by pattern, or a Parquet file's row groups — and the
/// result (p-values, selection) equals the one-table run's exactly; a calibration table given in
/// parts is refused.
#[test]
fn a_selector_reads_its_calibration_whole_and_its_test_units_by_parts() {
    let dir = tempfile::tempdir().unwrap();
    let example = |f: &str| testing::workspace_root().join("examples/conformal-selection").join(f);
    let calibration = format!("calibration={}", example("calibration.csv").display());
    let test = std::fs::read_to_string(example("test.csv")).unwrap();
    let (header, rows) = test.split_once('\n').unwrap();
    let rows: Vec<&str> = rows.lines().collect();
    let cut = [0, rows.len() / 3, rows.len() / 3, rows.len()];
    for k in 0..3 {
        let body = format!("{header}\n{}\n", rows[cut[k]..cut[k + 1]].join("\n"));
        std::fs::write(dir.path().join(format!("test-{k}.csv")), body).unwrap();
    }
    let names: Vec<&str> = header.split(',').collect();
    let columns: Vec<(&str, ArrayRef)> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let cells: Vec<&str> = rows.iter().map(|r| r.split(',').nth(i).unwrap()).collect();
            match cells.iter().map(|c| c.parse::<f64>()).collect::<Result<Vec<f64>, _>>() {
                Ok(v) => (*name, Arc::new(Float64Array::from(v)) as ArrayRef),
                Err(_) => (*name, Arc::new(StringArray::from(cells)) as ArrayRef),
            }
        })
        .collect();
    let pq = dir.path().join("test.parquet");
    write_parquet(&pq, columns, rows.len() / 4 + 1);
    let run = |inputs: &[String]| {
        let mut args = vec!["run", "conformal-selection", "--json", "--set", "q=0.2"];
        for i in inputs {
            args.extend(["--input", i.as_str()]);
        }
        let o = quiver(&args);
        (o.status.code(), text(&o), serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
    };
    let (code, out, one) = run(&[calibration.clone(), format!("test={}", example("test.csv").display())]);
    assert_eq!(code, Some(0), "{out}");
    let one = one.unwrap();
    assert!(one["n_selected"].as_u64().unwrap() > 0, "{one}");
    for test in [format!("test={}/test-*.csv", dir.path().display()), format!("test={}", pq.display())] {
        let (code, out, parts) = run(&[calibration.clone(), test.clone()]);
        assert_eq!(code, Some(0), "{test}: {out}");
        assert_eq!(parts.unwrap(), one, "{test}");
    }
    // a bad value in a later part: its row counts from that file's first, and the file is named
    let nan = write(dir.path(), "nan.csv", &format!("{header}\nN9,1.0\nN10,nan\n"));
    let (code, out, _) =
        run(&[calibration.clone(), format!("test={}/test-0.csv", dir.path().display()), format!("test={nan}")]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("row 2 (line 3): value NaN is not finite (in ")
            && out.contains("nan.csv: partition 2 of the run by parts)"),
        "{out}"
    );
    let (code, out, _) = run(&[calibration.clone(), calibration, format!("test={}/test-*.csv", dir.path().display())]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("table 'calibration' is read whole by every partition: give it once"), "{out}");
}

/// A partition's bootstrap state (resamples × slots, the slots growing with the horizon) past the
/// memory limit is refused before it is allocated, naming what would take the memory.
#[test]
fn a_bootstrap_state_past_the_memory_limit_is_refused_before_it_is_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let episode = |id: u32| {
        let mut body = String::from("episode,t,s,a,r,s_next,done,mu_prob,pi_prob\n");
        for t in 0..2000 {
            body.push_str(&format!("{id},{t},0,0,1.0,0,0,0.5,0.5\n"));
        }
        write(dir.path(), &format!("ep-{id}.csv"), &body)
    };
    let (a, b) = (episode(0), episode(1));
    let (a, b) = (format!("transitions={a}"), format!("transitions={b}"));
    let o = quiver(&[
        "run",
        "ope",
        "--set",
        "ci=bootstrap",
        "--set",
        "resamples=1000000",
        "--max-memory",
        "1G",
        "--input",
        &a,
        "--input",
        &b,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("the bootstrap's resampled sums of a partition"), "{}", text(&o));
}

/// Text columns (labels) from Parquet: rl-aggregate's `algorithm` and `task` as string columns,
/// in row groups of 7 rows (a label column cut across groups), give the CSV file's result; a
/// null label is named by its row.
#[test]
fn text_columns_read_from_parquet_as_from_csv() {
    let dir = tempfile::tempdir().unwrap();
    let example = testing::workspace_root().join("examples/rl-aggregate");
    let csv = std::fs::read_to_string(example.join("scores.csv")).unwrap();
    let (mut alg, mut task, mut run, mut score) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        alg.push(f[0].to_string());
        task.push(f[1].to_string());
        run.push(f[2].parse::<i64>().unwrap());
        score.push(f[3].parse::<f64>().unwrap());
    }
    let pq = dir.path().join("scores.parquet");
    let columns = |task: Vec<Option<String>>| {
        vec![
            ("algorithm", Arc::new(StringArray::from(alg.clone())) as ArrayRef),
            ("task", Arc::new(StringArray::from(task)) as ArrayRef),
            ("run", Arc::new(Int64Array::from(run.clone())) as ArrayRef),
            ("score", Arc::new(Float64Array::from(score.clone())) as ArrayRef),
        ]
    };
    write_parquet(&pq, columns(task.iter().cloned().map(Some).collect()), 7);
    let norm = format!("normalization={}", example.join("normalization.csv").display());
    let run_on = |scores: String| {
        quiver(&["run", "rl-aggregate", "--json", "--set", "resamples=300", "--input", &scores, "--input", &norm])
    };
    let from_csv = run_on(format!("scores={}", example.join("scores.csv").display()));
    let from_parquet = run_on(format!("scores={}", pq.display()));
    assert!(from_parquet.status.success(), "{}", text(&from_parquet));
    assert_eq!(from_csv.stdout, from_parquet.stdout);
    let mut with_null: Vec<Option<String>> = task.iter().cloned().map(Some).collect();
    with_null[9] = None;
    write_parquet(&pq, columns(with_null), 7);
    let o = run_on(format!("scores={}", pq.display()));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("row 10") && text(&o).contains("a null (missing) value in column 'task'"),
        "{}",
        text(&o)
    );
}

/// `quantile-aggregation` fits its weights by parts (full-batch Adam, one pass of the files an
/// epoch) from CSV parts and from a Parquet file's row groups, the calibration and test tables
/// read whole: the one-table run's result, to rounding. With `solver=auto` the parts are refused
/// by name (the exact LP needs every row), and one Parquet file is then read whole instead.
#[test]
fn quantile_aggregation_fits_its_weights_by_parts() {
    let dir = tempfile::tempdir().unwrap();
    let example = |f: &str| testing::workspace_root().join("examples/quantile-aggregation").join(f);
    let whole = [
        format!("calibration={}", example("calibration.csv").display()),
        format!("test={}", example("test.csv").display()),
    ];
    let fit = std::fs::read_to_string(example("fit.csv")).unwrap();
    let (header, rows) = fit.split_once('\n').unwrap();
    let rows: Vec<&str> = rows.lines().collect();
    let cut = [0, 500, 1400, rows.len()];
    for k in 0..3 {
        let body = format!("{header}\n{}\n", rows[cut[k]..cut[k + 1]].join("\n"));
        std::fs::write(dir.path().join(format!("fit-{k}.csv")), body).unwrap();
    }
    let columns: Vec<(&str, ArrayRef)> = header
        .split(',')
        .enumerate()
        .map(|(i, name)| {
            let v: Vec<f64> = rows.iter().map(|r| r.split(',').nth(i).unwrap().parse().unwrap()).collect();
            (name, Arc::new(Float64Array::from(v)) as ArrayRef)
        })
        .collect();
    let pq = dir.path().join("fit.parquet");
    write_parquet(&pq, columns, 600);
    let run = |settings: &[&str], fit: String| {
        let mut args = vec!["run", "quantile-aggregation", "--json", "--set", "conformal=cqr"];
        for s in settings {
            args.extend(["--set", s]);
        }
        let fit = format!("fit={fit}");
        for i in whole.iter().chain([&fit]) {
            args.extend(["--input", i.as_str()]);
        }
        let o = quiver(&args);
        (o.status.code(), text(&o), serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
    };
    let gradient = ["solver=gradient", "batch_rows=100000", "max_epochs=40"];
    let (code, out, one) = run(&gradient, example("fit.csv").display().to_string());
    assert_eq!(code, Some(0), "{out}");
    let one = one.unwrap();
    for fit in [format!("{}/fit-*.csv", dir.path().display()), pq.display().to_string()] {
        let (code, out, parts) = run(&gradient, fit.clone());
        assert_eq!(code, Some(0), "{fit}: {out}");
        testing::parts::assert_json_close(&one, &parts.unwrap(), 1e-10, &fit);
    }
    let (code, out, _) = run(&[], format!("{}/fit-*.csv", dir.path().display()));
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("solver=auto solves the exact linear program for 2000 fit rows"), "{out}");
    let (code, out, exact) = run(&[], pq.display().to_string());
    assert_eq!(code, Some(0), "{out}");
    let (_, _, one_exact) = run(&[], example("fit.csv").display().to_string());
    assert_eq!(exact.unwrap(), one_exact.unwrap());
}
