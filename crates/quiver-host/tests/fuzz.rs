//! A bounded fuzz harness for everything Quiver reads from a user: CSV and `.npy` files and
//! `--set` parameters. Property tests (proptest, a fixed number of cases so `cargo xtask test`
//! stays bounded) feed arbitrary and structured inputs and require an answer — a table or an
//! error — never a panic; structured CSVs must come back exactly, and a bad value must be named
//! at its exact row and line. The corpus in `tests/corpus/` (files that once broke a reader, and
//! files that must read) runs first.

use proptest::prelude::*;
use quiver_host::{npy::read_npy, read_csv, Values};
use quiver_testing as testing;
use std::path::Path;

fn spec() -> quiver_host::TableSpec {
    let host = testing::host();
    let m = &host.get("conformal-selection").unwrap().manifest;
    m.tables.iter().find(|t| t.role.as_str() == "calibration").unwrap().clone()
}

fn check_table(t: &quiver_host::Table) {
    for (name, v) in &t.columns {
        assert_eq!(v.len(), t.nrows, "column {name}");
    }
}

#[test]
fn the_corpus_reads_or_is_refused_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let spec = spec();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let result = if name.ends_with(".npy") {
            read_npy(&path, "calibration", &["y".into(), "mu".into()])
        } else {
            read_csv(&path, "calibration", Some(&spec))
        };
        match (&result, name.starts_with("ok_")) {
            (Ok(t), _) => check_table(t),
            (Err(e), false) => assert!(!e.to_string().is_empty()),
            (Err(e), true) => panic!("{name} must read: {e}"),
        }
        seen += 1;
    }
    assert!(seen >= 10, "the corpus is in tests/corpus");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_csv_reader(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(t) = read_csv(&path, "calibration", None) {
            check_table(&t);
        }
    }

    #[test]
    fn csv_like_text_never_panics_the_reader(
        text in "[a-z,;\"\n\r 0-9.eE+-]{0,300}"
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        std::fs::write(&path, text.as_bytes()).unwrap();
        if let Ok(t) = read_csv(&path, "calibration", Some(&spec())) {
            check_table(&t);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_npy_reader(
        header in "[ -~]{0,120}",
        data in proptest::collection::vec(any::<u8>(), 0..200),
        names in proptest::collection::vec("[a-z]{0,3}", 0..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&data);
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(t) = read_npy(&path, "calibration", &names) {
            check_table(&t);
        }
    }

    /// Well-formed `.npy` headers with arbitrary shapes — 0 to 3 dimensions, each anything from 0
    /// to u64::MAX (products that overflow 64 bits among them), any dtype and order — and a
    /// payload of any length: a table whose size matches the payload, or an error; never a panic
    /// or an allocation the header alone asked for.
    #[test]
    fn npy_headers_of_any_shape_are_read_or_refused(
        dims in proptest::collection::vec(
            prop_oneof![
                0u64..6,
                Just(1u64 << 61),
                Just(1u64 << 62),
                Just(4611686018427387904u64),
                Just(u64::MAX),
                any::<u64>(),
            ],
            0..4,
        ),
        descr in prop_oneof![Just("<f8"), Just("<i8"), Just("|b1"), Just("<i4"), Just(">f8"), Just("<f4"), Just("|u1"), Just("<c16")],
        fortran in any::<bool>(),
        payload in proptest::collection::vec(any::<u8>(), 0..160),
        exact in any::<bool>(),
        names in proptest::collection::vec("[a-z]{1,3}", 0..4),
    ) {
        // half the time a payload of exactly the size the header declares, when that is small
        let item: u64 = descr[2..].parse().unwrap();
        let declared = dims.iter().try_fold(item, |acc, &d| acc.checked_mul(d));
        let mut payload = payload;
        if let Some(size) = declared.filter(|&b| exact && b <= 160) {
            payload.resize(size as usize, 0x3f);
        }
        let shape = match dims.len() {
            0 => "()".to_string(),
            1 => format!("({},)", dims[0]),
            _ => format!("({})", dims.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")),
        };
        let fortran = if fortran { "True" } else { "False" };
        let mut header = format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&payload);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(t) = read_npy(&path, "calibration", &names) {
            check_table(&t);
            // what was read is what the payload holds: never more values than its bytes
            let values: usize = t.columns.iter().map(|(_, v)| v.len()).sum();
            prop_assert!(values <= payload.len(), "{values} values from {} bytes ({header})", payload.len());
        }
    }

    /// Numbers written with blank lines and quoting come back exactly; one bad token is named
    /// at its exact row and file line.
    #[test]
    fn structured_csvs_round_trip_and_bad_values_name_their_line(
        rows in proptest::collection::vec((-1e6f64..1e6, -1e6f64..1e6, 0usize..3, any::<bool>(), 0usize..3), 1..30),
        bad in proptest::option::of(0usize..30),
        trailing_newline in any::<bool>(),
    ) {
        let mut text = String::from("name,y,mu\n");
        let mut line = 1u64;
        let mut lines = Vec::new();
        let bad = bad.filter(|&b| b < rows.len());
        for (i, &(y, mu, blanks, quoted, breaks)) in rows.iter().enumerate() {
            for _ in 0..blanks {
                text.push('\n');
                line += 1;
            }
            line += 1;
            lines.push(line);
            // a quoted name spanning `breaks` extra lines
            let name = format!("\"unit{}{i}\"", "\n".repeat(breaks));
            line += breaks as u64;
            let mu_text = if bad == Some(i) { "oops".to_string() } else { format!("{mu:e}") };
            if quoted {
                text += &format!("{name},\"{y:e}\",\"{mu_text}\"\n");
            } else {
                text += &format!("{name},{y:e},{mu_text}\n");
            }
        }
        if !trailing_newline {
            text.pop();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        std::fs::write(&path, text.as_bytes()).unwrap();
        match (read_csv(&path, "calibration", Some(&spec())), bad) {
            (Ok(t), None) => {
                prop_assert_eq!(t.nrows, rows.len());
                let Some(Values::F64(y)) = t.column("y") else { panic!("y") };
                let Some(Values::F64(mu)) = t.column("mu") else { panic!("mu") };
                for (i, r) in rows.iter().enumerate() {
                    prop_assert_eq!(y[i], r.0);
                    prop_assert_eq!(mu[i], r.1);
                    prop_assert_eq!(t.line_of(i) as u64, lines[i]);
                }
            }
            (Err(e), Some(b)) => {
                let want = format!("column 'mu', row {} (line {}): 'oops' is not a number", b + 1, lines[b]);
                prop_assert!(e.to_string().contains(&want), "{} does not contain {}", e, want);
            }
            (r, b) => prop_assert!(false, "bad row {:?}: {:?}", b, r.map(|t| t.nrows)),
        }
    }

    /// `--set` text for every parameter of every method: an error or a value, never a panic, and
    /// creating the method with it never panics or fails internally.
    #[test]
    fn parameter_text_never_panics(value in "[ -~]{0,12}", which in 0usize..1000) {
        let host = testing::host();
        let plugins = host.plugins();
        let p = &plugins[which % plugins.len()];
        let params = &p.manifest.params;
        let prm = &params[which % params.len()];
        let pair = format!("{}={value}", prm.name);
        if let Ok(map) = quiver_host::params_from_pairs(&p.manifest, &[pair]) {
            if let Err(e) = host.create(p.name(), &map, testing::cpu()) {
                let kind = e.plugin_kind();
                prop_assert!(
                    !matches!(kind, Some(quiver_host::ErrorKind::Panic) | Some(quiver_host::ErrorKind::Internal)),
                    "{}: {}", p.name(), e
                );
            }
        }
    }
}
