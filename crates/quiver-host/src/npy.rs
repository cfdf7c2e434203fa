//! Plain matrices in NumPy's `.npy` format (version 1–3, little-endian `f8`, `f4`, `i8`, `i4`,
//! `b1`; C or Fortran order; 1-D or 2-D), read into a table whose columns are named by the caller:
//! `--input calibration=scores.npy:score` or `--input test=features.npy:mu,c`.

use crate::error::InputError;
use crate::table::{Table, Values};
use std::path::Path;

fn header_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    Some(rest)
}

/// Read `path` as a `.npy` array into a table named `role` with columns `names` (one per column
/// of a 2-D array, exactly one for a 1-D array).
pub fn read_npy(path: &Path, role: &str, names: &[String]) -> Result<Table, InputError> {
    let err = |reason: String| InputError::File { table: role.into(), path: path.into(), reason };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(err("not a .npy file (bad magic string)".into()));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(err(format!("unsupported .npy version {v}"))),
    };
    let header =
        std::str::from_utf8(bytes.get(start..start + header_len).ok_or_else(|| err("truncated header".into()))?)
            .map_err(|_| err("header is not text".into()))?;
    let descr = header_value(header, "descr").ok_or_else(|| err("header has no 'descr'".into()))?;
    let descr = descr.trim_start_matches('\'').split('\'').next().unwrap_or("");
    let fortran = header_value(header, "fortran_order").is_some_and(|v| v.starts_with("True"));
    let shape_text = header_value(header, "shape").ok_or_else(|| err("header has no 'shape'".into()))?;
    let shape_text = shape_text.trim_start_matches('(');
    let shape_text = &shape_text[..shape_text.find(')').ok_or_else(|| err("bad shape".into()))?];
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| err(format!("bad shape entry '{s}'"))))
        .collect::<Result<_, _>>()?;
    let (rows, cols) = match shape.as_slice() {
        [n] => (*n, 1),
        [n, k] => (*n, *k),
        _ => return Err(err(format!("expected a 1-D or 2-D array, got shape {shape:?}"))),
    };
    if names.len() != cols {
        return Err(err(format!(
            "the array has {cols} column(s) but {} name(s) were given (write PATH:name1,name2,...)",
            names.len()
        )));
    }
    let data = &bytes[start + header_len..];
    let width = match descr {
        "<f8" | "<i8" => 8,
        "<f4" | "<i4" => 4,
        "|b1" => 1,
        other => return Err(err(format!("unsupported dtype '{other}' (use little-endian f8, f4, i8, i4 or bool)"))),
    };
    if data.len() < rows * cols * width {
        return Err(err(format!("data holds {} bytes, the shape needs {}", data.len(), rows * cols * width)));
    }
    let at = |r: usize, c: usize| if fortran { c * rows + r } else { r * cols + c } * width;
    let mut table = Table::new(role);
    table.nrows = rows;
    for (c, name) in names.iter().enumerate() {
        let cell = |r: usize| &data[at(r, c)..at(r, c) + width];
        let values = match descr {
            "<f8" => Values::F64((0..rows).map(|r| f64::from_le_bytes(cell(r).try_into().expect("8 bytes"))).collect()),
            "<f4" => Values::F64(
                (0..rows).map(|r| f32::from_le_bytes(cell(r).try_into().expect("4 bytes")) as f64).collect(),
            ),
            "<i8" => Values::I64((0..rows).map(|r| i64::from_le_bytes(cell(r).try_into().expect("8 bytes"))).collect()),
            "<i4" => Values::I64(
                (0..rows).map(|r| i32::from_le_bytes(cell(r).try_into().expect("4 bytes")) as i64).collect(),
            ),
            _ => Values::Bool((0..rows).map(|r| cell(r)[0] != 0).collect()),
        };
        table.columns.push((name.clone(), values));
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, fortran: bool, shape: &str, payload: &[u8]) -> Vec<u8> {
        let mut header = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(payload);
        out
    }

    #[test]
    fn reads_matrices_in_either_order() {
        let dir = tempfile::tempdir().unwrap();
        let vals = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0];
        let payload: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let names = vec!["a".to_string(), "b".to_string()];
        let p = dir.path().join("c.npy");
        std::fs::write(&p, npy("<f8", false, "(3, 2)", &payload)).unwrap();
        let t = read_npy(&p, "test", &names).unwrap();
        assert_eq!(t.column("a"), Some(&Values::F64(vec![1.0, 3.0, 5.0])));
        assert_eq!(t.column("b"), Some(&Values::F64(vec![2.0, 4.0, 6.0])));
        std::fs::write(&p, npy("<f8", true, "(3, 2)", &payload)).unwrap();
        let t = read_npy(&p, "test", &names).unwrap();
        assert_eq!(t.column("a"), Some(&Values::F64(vec![1.0, 2.0, 3.0])));
        let ints: Vec<u8> = [7i64, 8].iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&p, npy("<i8", false, "(2,)", &ints)).unwrap();
        let t = read_npy(&p, "test", &["n".to_string()]).unwrap();
        assert_eq!(t.column("n"), Some(&Values::I64(vec![7, 8])));
        // errors name the table and file
        assert!(read_npy(&p, "test", &names).unwrap_err().to_string().contains("1 column(s) but 2 name(s)"));
        std::fs::write(&p, b"not numpy").unwrap();
        assert!(read_npy(&p, "test", &names).unwrap_err().to_string().contains("table 'test'"));
    }
}
