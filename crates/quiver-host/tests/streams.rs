//! A Parquet file read by parts on several workers (docs/scale.md), through the real plugins: a
//! table a method may cut anywhere is read in slices — within and across row groups of uneven
//! size — and gives the one-table result on any number of workers, bit for bit across worker
//! counts; a table cut only at its row groups (an RL log's episodes) keeps them; a method in
//! rounds reads the file once a pass; a bad value is named by its row in the file, the first in
//! the file whatever worker finds it; the observer can stop the run; a damaged file is an error.

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use quiver_host::{Host, HostError, InputBudget, ParquetParts, PartitionStreams, Progress, Table};
use quiver_testing as testing;
use rand::Rng;
use serde_json::{json, Map, Value};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A bandit log of `n` rounds over 3 actions.
fn bandit(seed: u64, n: usize) -> Table {
    let mut rng = testing::rng(seed);
    let mut cols: Vec<Vec<f64>> = vec![Vec::new(); 8];
    let mut a = Vec::new();
    for _ in 0..n {
        let mu = [0.2, 0.3, 0.5];
        let u: f64 = rng.random();
        let act = if u < 0.2 {
            0
        } else if u < 0.5 {
            1
        } else {
            2
        };
        let pi = [0.5, 0.25, 0.25];
        let q = [rng.random::<f64>(), rng.random::<f64>(), rng.random::<f64>()];
        let r = q[act] + rng.random::<f64>() - 0.5;
        a.push(act as i64);
        for (k, v) in [r, mu[act], pi[0], pi[1], pi[2], q[0], q[1], q[2]].into_iter().enumerate() {
            cols[k].push(v);
        }
    }
    let names = ["r", "mu_prob", "pi_0", "pi_1", "pi_2", "qhat_0", "qhat_1", "qhat_2"];
    names.iter().zip(cols).fold(Table::new("bandit").with_i64("a", a), |t, (n, c)| t.with_f64(n, c))
}

/// Transitions of `episodes` episodes of 25 steps: a 2-d state, 2 actions, the target's π.
fn transitions(episodes: usize) -> Table {
    let mut rng = testing::rng(4);
    let names = ["s_0", "s_1", "s_next_0", "s_next_1", "r", "pi_0", "pi_1", "pi_next_0", "pi_next_1"];
    let mut cols: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let (mut ep, mut t, mut a, mut a_next, mut done) = (vec![], vec![], vec![], vec![], vec![]);
    for e in 0..episodes {
        let mut s = [rng.random::<f64>() * 2.0 - 1.0, rng.random::<f64>() * 2.0 - 1.0];
        let mut act = rng.random_range(0..2i64);
        for k in 0..25 {
            let next = [0.8 * s[0] + 0.3 * s[1] + 0.1 * rng.random::<f64>(), -0.3 * s[0] + 0.7 * s[1]];
            let next_act = rng.random_range(0..2i64);
            let (p, pn) = (0.5 + 0.4 * s[0].tanh(), 0.5 + 0.4 * next[0].tanh());
            let r = s[0] - 0.5 * act as f64 + 0.1 * rng.random::<f64>();
            for (c, v) in cols.iter_mut().zip([s[0], s[1], next[0], next[1], r, p, 1.0 - p, pn, 1.0 - pn]) {
                c.push(v);
            }
            ep.push(e as i64);
            t.push(k as i64);
            a.push(act);
            a_next.push(next_act);
            done.push(k == 24);
            (s, act) = (next, next_act);
        }
    }
    let table = Table::new("transitions")
        .with_i64("episode", ep)
        .with_i64("t", t)
        .with_i64("a", a)
        .with_i64("a_next", a_next)
        .with_bool("done", done);
    names.iter().zip(cols).fold(table, |t, (n, c)| t.with_f64(n, c))
}

/// `table` as a Parquet file of row groups of the given sizes (nullable columns, as pyarrow
/// writes them), with the value of `null_at` = (column, row) left out.
fn write(path: &Path, table: &Table, groups: &[usize], null_at: Option<(&str, usize)>) {
    let arrays: Vec<(String, ArrayRef)> = table
        .columns
        .iter()
        .map(|(name, v)| {
            let null = |i: usize| null_at.is_some_and(|(c, r)| c == name && r == i);
            let array: ArrayRef = match v {
                quiver_host::Values::F64(v) => Arc::new(Float64Array::from(
                    v.iter().enumerate().map(|(i, &x)| (!null(i)).then_some(x)).collect::<Vec<_>>(),
                )),
                quiver_host::Values::I64(v) => Arc::new(Int64Array::from(
                    v.iter().enumerate().map(|(i, &x)| (!null(i)).then_some(x)).collect::<Vec<_>>(),
                )),
                quiver_host::Values::Bool(v) => Arc::new(arrow_array::BooleanArray::from(v.clone())),
                _ => unreachable!("no bytes columns here"),
            };
            (name.clone(), array)
        })
        .collect();
    let batch = RecordBatch::try_from_iter(arrays).unwrap();
    let props = WriterProperties::builder().set_max_row_group_size(usize::MAX).build();
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
    let mut at = 0;
    for &g in groups {
        w.write(&batch.slice(at, g)).unwrap();
        w.flush().unwrap(); // one row group
        at += g;
    }
    assert_eq!(at, table.nrows);
    w.close().unwrap();
}

fn parts(host: &Host, method: &str, role: &str, path: &Path, slice: usize) -> ParquetParts {
    let manifest = &host.get(method).unwrap().manifest;
    ParquetParts::open(manifest, role, path, slice, 3, &mut InputBudget::from_limit()).unwrap()
}

fn by_parts(
    host: &Host,
    method: &str,
    params: &Map<String, Value>,
    whole: Vec<Table>,
    file: &ParquetParts,
    workers: usize,
) -> Result<Value, HostError> {
    host.run_streams(method, params, whole, file, workers, testing::cpu(), None).map(|o| o.into_json())
}

#[test]
fn slices_on_any_number_of_workers_give_the_one_table_result() {
    let host = testing::host();
    let dir = tempfile::tempdir().unwrap();
    let log = bandit(1, 2_000);
    let path = dir.path().join("log.parquet");
    write(&path, &log, &[700, 1, 699, 600], None);
    for ci in [json!("t"), json!("bootstrap")] {
        let params = testing::params(&[("ci", ci.clone()), ("resamples", json!(200)), ("seed", json!(3))]);
        let one = host.run("ope", &params, std::slice::from_ref(&log), testing::cpu()).unwrap();
        for slice in [1usize, 64, 333, 5_000] {
            let file = parts(&host, "ope", "bandit", &path, slice);
            assert!(file.sliced());
            let expected: usize = [700usize, 1, 699, 600].iter().map(|g| g.div_ceil(slice)).sum();
            assert_eq!((0..file.streams()).map(|g| file.partitions(g)).sum::<usize>(), expected);
            let first = by_parts(&host, "ope", &params, Vec::new(), &file, 1).unwrap();
            testing::parts::assert_json_close(&one, &first, 1e-12, &format!("ci={ci}, slices of {slice}"));
            for workers in [2, 3, 8] {
                let again = by_parts(&host, "ope", &params, Vec::new(), &file, workers).unwrap();
                assert_eq!(first, again, "ci={ci}, slices of {slice}: {workers} workers against one");
            }
        }
    }
}

#[test]
fn a_selector_reads_its_test_units_in_slices_bit_for_bit_and_sure_its_passes() {
    let host = testing::host();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = testing::rng(8);
    let mut draw =
        |k: usize| -> Vec<f64> { (0..k).map(|_| (rng.random::<f64>() * 20.0).round() / 10.0 - 1.0).collect() };
    let (mu, noise, mu_t) = (draw(300), draw(300), draw(1_000));
    let y: Vec<f64> = mu.iter().zip(&noise).map(|(m, e)| m + 0.4 * e).collect();
    let cal = Table::new("calibration").with_f64("y", y).with_f64("mu", mu);
    let test = Table::new("test").with_f64("mu", mu_t);
    let path = dir.path().join("test.parquet");
    write(&path, &test, &[400, 600], None);
    let params = testing::params(&[("q", json!(0.2)), ("seed", json!(7))]);
    let one = host.run("conformal-selection", &params, &[cal.clone(), test], testing::cpu()).unwrap();
    let file = parts(&host, "conformal-selection", "test", &path, 77);
    let got = by_parts(&host, "conformal-selection", &params, vec![cal], &file, 2).unwrap();
    assert_eq!(one, got, "the selection in slices of 77 against the one table");

    // sure-normal, in rounds: every pass reads the file again, in the same slices
    let x: Vec<f64> = (0..500).map(|i| ((i * 37) % 101) as f64 / 25.0).collect();
    let a: Vec<f64> = (0..500).map(|i| 0.5 + ((i * 13) % 7) as f64 / 4.0).collect();
    let data = Table::new("data").with_f64("x", x).with_f64("a", a);
    let path = dir.path().join("data.parquet");
    write(&path, &data, &[250, 250], None);
    let params = testing::params(&[("curve", json!(5))]);
    let one = host.run("sure-normal", &params, &[data], testing::cpu()).unwrap();
    let file = parts(&host, "sure-normal", "data", &path, 60);
    let got = by_parts(&host, "sure-normal", &params, Vec::new(), &file, 2).unwrap();
    testing::parts::assert_json_close(&one, &got, 1e-12, "sure-normal in slices of 60");
}

#[test]
fn episodes_keep_their_row_groups() {
    let host = testing::host();
    let dir = tempfile::tempdir().unwrap();
    // 40 episodes of 25 steps: row groups of whole episodes
    let table = transitions(40);
    let path = dir.path().join("transitions.parquet");
    write(&path, &table, &[250, 500, 250], None);
    let params = testing::params(&[("features", json!("rff")), ("dim", json!(8)), ("ridge", json!(1e-6))]);
    let one = host.run("critic-lstd", &params, std::slice::from_ref(&table), testing::cpu()).unwrap();
    let file = parts(&host, "critic-lstd", "transitions", &path, 7);
    assert!(!file.sliced(), "a table whose rows belong together is not cut in slices");
    assert_eq!((0..file.streams()).map(|g| file.partitions(g)).collect::<Vec<_>>(), vec![1, 1, 1]);
    let got = by_parts(&host, "critic-lstd", &params, Vec::new(), &file, 2).unwrap();
    // θ from a linear solve: its conditioning times the sums' rounding; the residual is itself
    // rounding-sized, so compared absolutely
    let close = testing::parts::Close { rel: 1e-9, abs: 1e-12 };
    testing::parts::assert_json_within(&one, &got, close, "critic-lstd by row groups");
}

#[test]
fn the_first_bad_value_in_the_file_is_named_whatever_worker_finds_it() {
    let host = testing::host();
    let dir = tempfile::tempdir().unwrap();
    let mut log = bandit(2, 1_500);
    // a NaN late in the file (row 1 401), a null early (row 301), each in another row group
    if let Some((_, quiver_host::Values::F64(r))) = log.columns.iter_mut().find(|(n, _)| n == "r") {
        r[1_400] = f64::NAN;
    }
    let path = dir.path().join("bad.parquet");
    write(&path, &log, &[500, 500, 500], Some(("qhat_1", 300)));
    let params = testing::params(&[("ci", json!("t"))]);
    for workers in [1, 2, 3] {
        let file = parts(&host, "ope", "bandit", &path, 100);
        let e = by_parts(&host, "ope", &params, Vec::new(), &file, workers).unwrap_err().to_string();
        assert!(
            e.contains("table 'bandit', column 'qhat_1', row 301: a null (missing) value"),
            "{workers} workers: {e}"
        );
    }
    // the null gone, the NaN is next
    write(&path, &log, &[500, 500, 500], None);
    let file = parts(&host, "ope", "bandit", &path, 100);
    let e = by_parts(&host, "ope", &params, Vec::new(), &file, 3).unwrap_err().to_string();
    assert!(e.contains("table 'bandit', column 'r', row 1401: value NaN is not finite"), "{e}");
}

#[test]
fn the_observer_stops_the_workers_and_a_damaged_file_is_an_error() {
    let host = testing::host();
    let dir = tempfile::tempdir().unwrap();
    let log = bandit(3, 3_000);
    let path = dir.path().join("log.parquet");
    write(&path, &log, &[1_000, 1_000, 1_000], None);
    let params = testing::params(&[("ci", json!("t"))]);
    let file = parts(&host, "ope", "bandit", &path, 50);
    let heard = Arc::new(AtomicU64::new(0));
    let seen = heard.clone();
    let stop = Progress::new(move |done, total, label| {
        if label.starts_with("partitions") {
            assert_eq!(total, 60);
            seen.fetch_max(done, Ordering::Relaxed);
            return done < 5;
        }
        true
    });
    let e = host.run_streams("ope", &params, Vec::new(), &file, 3, testing::cpu(), Some(&stop)).unwrap_err();
    assert_eq!(e.plugin_kind(), Some(quiver_host::ErrorKind::Cancelled), "{e}");
    assert_eq!(heard.load(Ordering::Relaxed), 5);

    // the second row group overwritten across several columns (their page headers too): an error
    // naming the file, not a crash
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle..middle + 20_000].iter_mut().for_each(|b| *b = 0xA5);
    let damaged = dir.path().join("damaged.parquet");
    std::fs::write(&damaged, bytes).unwrap();
    let file = parts(&host, "ope", "bandit", &damaged, 50);
    let e = by_parts(&host, "ope", &params, Vec::new(), &file, 2).unwrap_err().to_string();
    assert!(e.contains("damaged.parquet") || e.contains("reading part"), "{e}");
}
