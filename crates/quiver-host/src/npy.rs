//! Plain matrices in NumPy's `.npy` format (version 1–3, little-endian `f8`, `f4`, `i8`, `i4`,
//! `b1`; C or Fortran order; 1-D or 2-D), read into a table whose columns are named by the caller:
//! `--input calibration=scores.npy:score` or `--input test=features.npy:mu,c`.
//!
//! The header is parsed strictly (a Python dict literal with exactly the keys `descr`,
//! `fortran_order` and `shape`; anything else is refused), the sizes it implies are computed
//! with checked arithmetic and compared with the file and with the memory the inputs may take
//! ([`InputBudget`]) *before* any data are read, and the data are then streamed into the
//! columns: the file is never held in memory as a whole.

use crate::error::InputError;
use crate::table::{InputBudget, Table, Values};
use std::io::{BufReader, Read};
use std::path::Path;

/// The element types read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dtype {
    F8,
    F4,
    I8,
    I4,
    B1,
}

impl Dtype {
    fn parse(descr: &str) -> Option<Dtype> {
        Some(match descr {
            "<f8" => Dtype::F8,
            "<f4" => Dtype::F4,
            "<i8" => Dtype::I8,
            "<i4" => Dtype::I4,
            "|b1" => Dtype::B1,
            _ => return None,
        })
    }
    fn width(self) -> usize {
        match self {
            Dtype::F8 | Dtype::I8 => 8,
            Dtype::F4 | Dtype::I4 => 4,
            Dtype::B1 => 1,
        }
    }
}

/// What a `.npy` header says.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Header {
    descr: String,
    fortran: bool,
    shape: Vec<u64>,
}

/// One value of the header dict.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Literal {
    Str(String),
    Bool(bool),
    Tuple(Vec<u64>),
}

/// Parse the header's Python dict literal: `{'descr': '<f8', 'fortran_order': False, 'shape':
/// (3, 2), }` — string keys, and values that are strings, `True`/`False` or tuples of
/// non-negative integers; anything else is an error naming what was found.
fn parse_header(text: &str) -> Result<Header, String> {
    let mut p = Parser { s: text.trim_end().as_bytes(), at: 0 };
    p.expect(b'{')?;
    let mut descr = None;
    let mut fortran = None;
    let mut shape = None;
    loop {
        p.skip_space();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.skip_space();
        p.expect(b':')?;
        let value = p.literal()?;
        match (key.as_str(), value) {
            ("descr", Literal::Str(s)) if descr.is_none() => descr = Some(s),
            ("fortran_order", Literal::Bool(b)) if fortran.is_none() => fortran = Some(b),
            ("shape", Literal::Tuple(t)) if shape.is_none() => shape = Some(t),
            ("descr" | "fortran_order" | "shape", v) => {
                return Err(format!("header key '{key}' is repeated or has the wrong kind of value ({v:?})"))
            }
            _ => return Err(format!("header has an unknown key '{key}'")),
        }
        p.skip_space();
        if p.eat(b'}') {
            break;
        }
        p.expect(b',')?;
    }
    p.skip_space();
    if p.at != p.s.len() {
        return Err("the header has text after its closing '}'".into());
    }
    Ok(Header {
        descr: descr.ok_or("header has no 'descr'")?,
        fortran: fortran.ok_or("header has no 'fortran_order'")?,
        shape: shape.ok_or("header has no 'shape'")?,
    })
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.s.get(self.at).is_some_and(|c| c.is_ascii_whitespace()) {
            self.at += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.s.get(self.at) == Some(&c);
        self.at += usize::from(hit);
        hit
    }
    fn expect(&mut self, c: u8) -> Result<(), String> {
        self.skip_space();
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {} of the header, found {}", c as char, self.at, self.found()))
        }
    }
    fn found(&self) -> String {
        match self.s.get(self.at..(self.at + 12).min(self.s.len())) {
            Some(rest) if !rest.is_empty() => format!("'{}'", String::from_utf8_lossy(rest)),
            _ => "its end".into(),
        }
    }
    fn string(&mut self) -> Result<String, String> {
        self.skip_space();
        let quote = match self.s.get(self.at) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => {
                return Err(format!("expected a quoted name at byte {} of the header, found {}", self.at, self.found()))
            }
        };
        let start = self.at + 1;
        let len = self.s[start..].iter().position(|&c| c == quote).ok_or("an unterminated string in the header")?;
        self.at = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }
    fn literal(&mut self) -> Result<Literal, String> {
        self.skip_space();
        match self.s.get(self.at) {
            Some(b'\'' | b'"') => self.string().map(Literal::Str),
            Some(b'(') => {
                self.at += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_space();
                    if self.eat(b')') {
                        break;
                    }
                    let start = self.at;
                    while self.s.get(self.at).is_some_and(u8::is_ascii_digit) {
                        self.at += 1;
                    }
                    let digits = std::str::from_utf8(&self.s[start..self.at]).unwrap_or("");
                    let n: u64 = digits.parse().map_err(|_| {
                        format!("a shape entry must be a non-negative integer below 2^64, found {}", {
                            self.at = start;
                            self.found()
                        })
                    })?;
                    items.push(n);
                    self.skip_space();
                    if self.eat(b')') {
                        break;
                    }
                    self.expect(b',')?;
                }
                Ok(Literal::Tuple(items))
            }
            _ => {
                for (word, value) in [("True", true), ("False", false)] {
                    if self.s[self.at..].starts_with(word.as_bytes()) {
                        self.at += word.len();
                        return Ok(Literal::Bool(value));
                    }
                }
                Err(format!("expected a string, True, False or a tuple at byte {}, found {}", self.at, self.found()))
            }
        }
    }
}

/// Read `path` as a `.npy` array into a table named `role` with columns `names` (one per column
/// of a 2-D array, exactly one for a 1-D array), within the memory the inputs may take.
pub fn read_npy(path: &Path, role: &str, names: &[String]) -> Result<Table, InputError> {
    read_npy_within(path, role, names, &mut InputBudget::from_limit())
}

/// [`read_npy`], taking the table's memory from `budget` (refused, before any data are read,
/// when the header asks for more).
pub fn read_npy_within(
    path: &Path,
    role: &str,
    names: &[String],
    budget: &mut InputBudget,
) -> Result<Table, InputError> {
    let err = |reason: String| InputError::File { table: role.into(), path: path.into(), reason };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let meta = file.metadata().map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        return Err(err("not a regular file (a .npy input must be a file: its size is checked before reading)".into()));
    }
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut preamble = [0u8; 10];
    reader.read_exact(&mut preamble).map_err(|_| err("not a .npy file (shorter than its preamble)".into()))?;
    if &preamble[..6] != b"\x93NUMPY" {
        return Err(err("not a .npy file (bad magic string)".into()));
    }
    let (header_len, start) = match preamble[6] {
        1 => (u64::from(u16::from_le_bytes([preamble[8], preamble[9]])), 10u64),
        2 | 3 => {
            let mut more = [0u8; 2];
            reader.read_exact(&mut more).map_err(|_| err("truncated header".into()))?;
            (u64::from(u32::from_le_bytes([preamble[8], preamble[9], more[0], more[1]])), 12)
        }
        v => return Err(err(format!("unsupported .npy version {v}"))),
    };
    if start + header_len > meta.len() {
        return Err(err(format!("truncated header: it says {header_len} bytes, the file has {}", meta.len())));
    }
    let mut header = vec![0u8; header_len as usize];
    reader.read_exact(&mut header).map_err(|_| err("truncated header".into()))?;
    let header = std::str::from_utf8(&header).map_err(|_| err("header is not text".into()))?;
    let header = parse_header(header).map_err(|e| err(format!("bad header: {e}")))?;
    let dtype = Dtype::parse(&header.descr).ok_or_else(|| {
        err(format!("unsupported dtype '{}' (use little-endian f8, f4, i8, i4 or bool)", header.descr))
    })?;
    let (rows, cols) = match header.shape.as_slice() {
        [n] => (*n, 1u64),
        [n, k] => (*n, *k),
        s => return Err(err(format!("expected a 1-D or 2-D array, got shape {s:?}"))),
    };
    if cols == 0 {
        // no columns is no table — and rows without bytes would be counted one by one
        return Err(err(format!("the array has no columns (shape {:?})", header.shape)));
    }
    if names.len() as u64 != cols {
        return Err(err(format!(
            "the array has {cols} column(s) but {} name(s) were given (write PATH:name1,name2,...)",
            names.len()
        )));
    }
    // every size the shape implies, checked: a shape whose product overflows is refused by size
    let values = rows.checked_mul(cols);
    let needed = values.and_then(|v| v.checked_mul(dtype.width() as u64));
    let data_len = meta.len() - start - header_len;
    match needed {
        Some(n) if n <= data_len => {}
        Some(n) => return Err(err(format!("data holds {data_len} bytes, the shape {rows} x {cols} needs {n}"))),
        None => {
            return Err(err(format!(
                "the shape {rows} x {cols} needs more than 2^64 bytes of data; the file has {data_len}"
            )))
        }
    }
    let (rows, cols) = (rows as usize, cols as usize);
    budget.take(rows as f64 * cols as f64 * 8.0, role, path, None)?;
    let alloc_err = |_| err(format!("the system refused the memory for {rows} x {cols} values"));
    let width = dtype.width();
    // typed columns filled a block of rows at a time: no column of raw bytes beside them
    let mut columns: Vec<Values> = Vec::with_capacity(cols);
    for _ in 0..cols {
        columns.push(dtype.empty_column(rows).map_err(alloc_err)?);
    }
    let short = |_| err("the data ended early".into());
    let block_rows = (1 << 16).min(rows.max(1));
    if header.fortran || cols == 1 {
        // column after column
        let mut block = vec![0u8; block_rows * width];
        for column in columns.iter_mut() {
            let mut done = 0;
            while done < rows {
                let n = block_rows.min(rows - done);
                let bytes = &mut block[..n * width];
                reader.read_exact(bytes).map_err(short)?;
                dtype.extend(column, bytes.chunks_exact(width));
                done += n;
            }
        }
    } else {
        // C order: rows of `cols` values, scattered into the columns a block of rows at a time
        let mut block = vec![0u8; block_rows * cols * width];
        let mut done = 0;
        while done < rows {
            let n = block_rows.min(rows - done);
            let bytes = &mut block[..n * cols * width];
            reader.read_exact(bytes).map_err(short)?;
            for (c, column) in columns.iter_mut().enumerate() {
                dtype.extend(column, bytes.chunks_exact(width).skip(c).step_by(cols));
            }
            done += n;
        }
    }
    let mut table = Table::new(role);
    table.nrows = rows;
    table.columns = names.iter().cloned().zip(columns).collect();
    Ok(table)
}

impl Dtype {
    /// An empty column of this dtype's table type with room for `rows` values.
    fn empty_column(self, rows: usize) -> Result<Values, std::collections::TryReserveError> {
        fn reserved<T>(rows: usize) -> Result<Vec<T>, std::collections::TryReserveError> {
            let mut v = Vec::new();
            v.try_reserve_exact(rows)?;
            Ok(v)
        }
        Ok(match self {
            Dtype::F8 | Dtype::F4 => Values::F64(reserved(rows)?),
            Dtype::I8 | Dtype::I4 => Values::I64(reserved(rows)?),
            Dtype::B1 => Values::Bool(reserved(rows)?),
        })
    }

    /// Append the values stored little-endian in `raw` (one slice of this dtype's width each).
    fn extend<'a>(self, column: &mut Values, raw: impl Iterator<Item = &'a [u8]>) {
        fn bytes<const N: usize>(b: &[u8]) -> [u8; N] {
            b.try_into().expect("a value's width")
        }
        match (self, column) {
            (Dtype::F8, Values::F64(v)) => v.extend(raw.map(|b| f64::from_le_bytes(bytes(b)))),
            (Dtype::F4, Values::F64(v)) => v.extend(raw.map(|b| f32::from_le_bytes(bytes(b)) as f64)),
            (Dtype::I8, Values::I64(v)) => v.extend(raw.map(|b| i64::from_le_bytes(bytes(b)))),
            (Dtype::I4, Values::I64(v)) => v.extend(raw.map(|b| i32::from_le_bytes(bytes(b)) as i64)),
            (Dtype::B1, Values::Bool(v)) => v.extend(raw.map(|b| b[0] != 0)),
            _ => unreachable!("a column is made by its dtype's empty_column"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use quiver_testing::npy_bytes as npy;

    #[test]
    fn reads_matrices_in_either_order() {
        let dir = tempfile::tempdir().unwrap();
        let vals = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0];
        let payload: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let names = vec!["a".to_string(), "b".to_string()];
        let p = dir.path().join("c.npy");
        std::fs::write(&p, npy("<f8", "False", "(3, 2)", &payload)).unwrap();
        let t = read_npy(&p, "test", &names).unwrap();
        assert_eq!(t.column("a"), Some(&Values::F64(vec![1.0, 3.0, 5.0])));
        assert_eq!(t.column("b"), Some(&Values::F64(vec![2.0, 4.0, 6.0])));
        std::fs::write(&p, npy("<f8", "True", "(3, 2)", &payload)).unwrap();
        let t = read_npy(&p, "test", &names).unwrap();
        assert_eq!(t.column("a"), Some(&Values::F64(vec![1.0, 2.0, 3.0])));
        let ints: Vec<u8> = [7i32, -8].iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&p, npy("<i4", "True", "(2,)", &ints)).unwrap();
        let t = read_npy(&p, "test", &["n".to_string()]).unwrap();
        assert_eq!(t.column("n"), Some(&Values::I64(vec![7, -8])));
        // every dtype, in both orders, over more rows than one block of the reader (2^16)
        let rows = (1usize << 16) + 3;
        let value = |i: usize, c: usize| (i * 3 + c) as f64 - 7.0;
        for (descr, width) in [("<f8", 8usize), ("<f4", 4), ("<i8", 8), ("<i4", 4), ("|b1", 1)] {
            for fortran in [false, true] {
                let at = |k: usize| if fortran { (k % rows, k / rows) } else { (k / 2, k % 2) };
                let payload: Vec<u8> = (0..2 * rows)
                    .flat_map(|k| {
                        let (i, c) = at(k);
                        let v = value(i, c);
                        match descr {
                            "<f8" => v.to_le_bytes().to_vec(),
                            "<f4" => (v as f32).to_le_bytes().to_vec(),
                            "<i8" => (v as i64).to_le_bytes().to_vec(),
                            "<i4" => (v as i32).to_le_bytes().to_vec(),
                            _ => vec![(v as i64 % 2 != 0) as u8],
                        }
                    })
                    .collect();
                assert_eq!(payload.len(), 2 * rows * width);
                let order = if fortran { "True" } else { "False" };
                let m = dir.path().join("m.npy");
                std::fs::write(&m, npy(descr, order, &format!("({rows}, 2)"), &payload)).unwrap();
                let t = read_npy(&m, "test", &names).unwrap();
                for (c, name) in ["a", "b"].into_iter().enumerate() {
                    let want = match descr {
                        "<f8" | "<f4" => Values::F64((0..rows).map(|i| value(i, c)).collect()),
                        "<i8" | "<i4" => Values::I64((0..rows).map(|i| value(i, c) as i64).collect()),
                        _ => Values::Bool((0..rows).map(|i| value(i, c) as i64 % 2 != 0).collect()),
                    };
                    assert!(t.column(name) == Some(&want), "{descr}, fortran {fortran}, column {name}");
                }
            }
        }
        // errors name the table and file
        assert!(read_npy(&p, "test", &names).unwrap_err().to_string().contains("1 column(s) but 2 name(s)"));
        std::fs::write(&p, b"not numpy").unwrap();
        assert!(read_npy(&p, "test", &names).unwrap_err().to_string().contains("table 'test'"));
    }

    /// Shapes whose sizes overflow, malformed literals, truncated files: refused with a message,
    /// never a panic or an allocation.
    #[test]
    fn hostile_headers_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h.npy");
        let one = |descr: &str, fortran: &str, shape: &str, payload: &[u8], names: &[&str]| {
            std::fs::write(&p, npy(descr, fortran, shape, payload)).unwrap();
            let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            read_npy(&p, "test", &names).unwrap_err().to_string()
        };
        let e = one("<f8", "False", "(4611686018427387904, 4)", &[0; 64], &["a", "b", "c", "d"]);
        assert!(e.contains("more than 2^64 bytes"), "{e}");
        let e = one("<f8", "False", "(2305843009213693952, 2)", &[0; 64], &["a", "b"]);
        assert!(e.contains("more than 2^64 bytes"), "{e}");
        let e = one("<i4", "True", "(4611686018427387904,)", &[0; 64], &["a"]);
        assert!(e.contains("more than 2^64 bytes"), "{e}");
        // no columns: refused at once (2^61 rows of nothing were counted one block at a time)
        let e = one("<f8", "False", "(2305843009213693952, 0)", &[], &[]);
        assert!(e.contains("the array has no columns"), "{e}");
        let e = one("|b1", "True", "(0, 0)", &[], &[]);
        assert!(e.contains("the array has no columns"), "{e}");
        let e = one("<f8", "False", "(1000000000000, 2)", &[0; 64], &["a", "b"]);
        assert!(e.contains("data holds 64 bytes"), "{e}");
        let e = one("<f8", "Flase", "(2,)", &[0; 16], &["a"]);
        assert!(e.contains("bad header") && e.contains("Flase"), "{e}");
        let e = one("<f8", "False", "(2, -1)", &[0; 16], &["a", "b"]);
        assert!(e.contains("non-negative integer"), "{e}");
        let e = one("<f8", "False", "(99999999999999999999999,)", &[0; 16], &["a"]);
        assert!(e.contains("non-negative integer"), "{e}");
        let e = one(">f8", "False", "(2,)", &[0; 16], &["a"]);
        assert!(e.contains("unsupported dtype '>f8'"), "{e}");
        let e = one("<f8", "False", "(2, 2, 2)", &[0; 64], &["a"]);
        assert!(e.contains("1-D or 2-D"), "{e}");
        // a header that lies about its length
        let mut bytes = npy("<f8", "False", "(2,)", &[0; 16]);
        bytes[8] = 0xff;
        bytes[9] = 0xff;
        std::fs::write(&p, &bytes).unwrap();
        let e = read_npy(&p, "test", &["a".to_string()]).unwrap_err().to_string();
        assert!(e.contains("truncated header"), "{e}");
        // unknown and repeated keys, trailing text
        assert!(parse_header("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'extra': 1}").is_err());
        assert!(parse_header("{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (2,)}").is_err());
        assert!(parse_header("{'descr': '<f8', 'fortran_order': False, 'shape': (2,)} x").is_err());
        let h = parse_header("{'descr': '<f4', 'fortran_order': True, 'shape': (), }").unwrap();
        assert_eq!((h.descr.as_str(), h.fortran, h.shape.len()), ("<f4", true, 0));
    }

    /// The memory a table would take is refused from the header, before its data are read.
    #[test]
    fn the_memory_limit_binds_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.npy");
        let payload = vec![0u8; 8 * 1000];
        std::fs::write(&p, npy("<f8", "False", "(1000,)", &payload)).unwrap();
        let mut budget = InputBudget::with_bytes(4000.0);
        let e = read_npy_within(&p, "data", &["x".to_string()], &mut budget).unwrap_err().to_string();
        assert!(e.contains("past the limit"), "{e}");
        let mut budget = InputBudget::with_bytes(8000.0);
        assert_eq!(read_npy_within(&p, "data", &["x".to_string()], &mut budget).unwrap().nrows, 1000);
    }
}
