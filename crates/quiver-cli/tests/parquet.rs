//! Parquet input through the CLI: a file is read through Arrow with only the columns the method
//! declares; a method computed by parts streams it row group by row group (docs/scale.md) and
//! gives the one-table result; nulls are errors naming their row; other methods read the whole
//! file and give what the same data as CSV give.

use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use quiver_testing as testing;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

fn quiver(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["--plugins", testing::plugin_dir().to_str().unwrap()])
        .args(args)
        .output()
        .expect("quiver runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

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

    // a null is named with its row, counted from the file's first
    let bad = dir.path().join("bad.parquet");
    write_parquet(&bad, bandit_columns(&a, &rest, Some(200)), 64);
    let o = quiver(&["run", "ope", "--set", "ci=t", "--input", &format!("bandit={}", bad.display())]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("table 'bandit', column 'r', row 201: a null (missing) value in column 'r'"),
        "{}",
        text(&o)
    );
    // not a Parquet file
    let fake = dir.path().join("fake.parquet");
    std::fs::write(&fake, "a,b\n1,2\n").unwrap();
    let o = quiver(&["run", "ope", "--input", &format!("bandit={}", fake.display())]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not a Parquet file"), "{}", text(&o));
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
    let run = |input: String| {
        let o = quiver(&["run", "sure-normal", "--json", "--set", "method=xkb-grand-mean", "--input", &input]);
        assert!(o.status.success(), "{}", text(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let from_csv =
        run(format!("data={}", testing::workspace_root().join("examples/sure-normal/baseball.csv").display()));
    let from_parquet = run(format!("data={}", pq.display()));
    assert_eq!(from_csv, from_parquet);
}
