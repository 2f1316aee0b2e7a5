//! Minimal `.npy` reader/writer for float arrays: golden fixtures from the Python peer and
//! debug dumps. Reads little-endian `<f4` and `<f8` (converted to f32), C order, header
//! versions 1.0, 2.0 and 3.0; writes `<f4` version 1.0.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

const MAGIC: &[u8] = b"\x93NUMPY";

/// Reads a float32 (or float64, converted) `.npy` file: `(shape, data)` in C order.
pub fn read_f32(path: impl AsRef<Path>) -> Result<(Vec<usize>, Vec<f32>)> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&bytes).map_err(|reason| Error::Npy {
        path: path.to_path_buf(),
        reason,
    })
}

/// Same as [`read_f32`] for a `.npy` image in memory (e.g. a member of an `.npz` zip).
pub fn read_f32_bytes(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>)> {
    parse(bytes).map_err(|reason| Error::Npy {
        path: PathBuf::from("<npy bytes>"),
        reason,
    })
}

/// Writes `data` with `shape` as a little-endian float32 C-order `.npy` (version 1.0).
pub fn write_f32(path: impl AsRef<Path>, shape: &[usize], data: &[f32]) -> Result<()> {
    let path = path.as_ref();
    let count: usize = shape.iter().product();
    if count != data.len() {
        return Err(Error::InvalidArgument(format!(
            "npy::write_f32 {}: shape {shape:?} holds {count} values but {} were given",
            path.display(),
            data.len()
        )));
    }
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    // A 1-D shape needs the trailing comma of a Python tuple: (n,).
    let shape_txt = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is padded to a multiple of 64.
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let header_len = u16::try_from(header.len()).map_err(|_| {
        Error::InvalidArgument(format!(
            "npy::write_f32: shape {shape:?} makes too long a header"
        ))
    })?;
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + 4 * data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, out).map_err(|e| Error::io(path, e))
}

fn parse(bytes: &[u8]) -> std::result::Result<(Vec<usize>, Vec<f32>), String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("missing the \\x93NUMPY magic; is it a .npy file (not .npz or text)?".into());
    }
    let major = bytes[6];
    let (header_len, header_start): (usize, usize) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err("truncated header".into());
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(format!("unsupported format version {v}.{}", bytes[7])),
    };
    let data_start = header_start
        .checked_add(header_len)
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| format!("header of {header_len} bytes runs past the end of the file"))?;
    let header = std::str::from_utf8(&bytes[header_start..data_start])
        .map_err(|_| "header is not text".to_string())?;

    let descr = dict_value(header, "descr").ok_or("header has no 'descr'")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let width = match descr {
        "<f4" => 4,
        "<f8" => 8,
        other => {
            return Err(format!(
                "dtype {other} not supported (only little-endian float32 '<f4' or float64 '<f8'); \
                 convert with arr.astype('<f4')"
            ))
        }
    };
    let fortran = dict_value(header, "fortran_order").ok_or("header has no 'fortran_order'")?;
    if fortran.trim() != "False" {
        return Err(
            "Fortran-ordered arrays are not supported; save np.ascontiguousarray(arr)".into(),
        );
    }
    let shape_txt = dict_value(header, "shape").ok_or("header has no 'shape'")?;
    let shape = shape_txt
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad shape {shape_txt}"))
        })
        .collect::<std::result::Result<Vec<usize>, String>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} overflows"))?;

    let body = &bytes[data_start..];
    let needed = count
        .checked_mul(width)
        .ok_or_else(|| format!("shape {shape:?} overflows"))?;
    if body.len() < needed {
        return Err(format!(
            "shape {shape:?} needs {needed} bytes of data but only {} are present (truncated?)",
            body.len()
        ));
    }
    let data = if width == 4 {
        body[..needed]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        body[..needed]
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("chunk of 8")) as f32)
            .collect()
    };
    Ok((shape, data))
}

/// The raw text of `key`'s value in numpy's header dict (`{'descr': '<f4', 'shape': (2, 3), }`).
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    // A tuple value ends at its ')', anything else at the next ',' or '}'.
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}'])?
    };
    Some(rest[..end].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_shapes() {
        let dir = tempfile::tempdir().unwrap();
        for shape in [vec![], vec![3], vec![2, 3], vec![2, 0, 4]] {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 1.0).collect();
            let p = dir.path().join("a.npy");
            write_f32(&p, &shape, &data).unwrap();
            let bytes = std::fs::read(&p).unwrap();
            let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
            assert_eq!((10 + header_len) % 64, 0);
            assert_eq!(read_f32(&p).unwrap(), (shape, data));
        }
    }

    #[test]
    fn reads_f8_and_version_2() {
        let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }\n";
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&[2, 0]);
        b.extend_from_slice(&(header.len() as u32).to_le_bytes());
        b.extend_from_slice(header.as_bytes());
        b.extend_from_slice(&1.5f64.to_le_bytes());
        b.extend_from_slice(&(-2.25f64).to_le_bytes());
        assert_eq!(read_f32_bytes(&b).unwrap(), (vec![2], vec![1.5, -2.25]));
    }

    #[test]
    fn bad_files_are_errors() {
        let err = |b: &[u8]| read_f32_bytes(b).unwrap_err().to_string();
        assert!(err(b"hello world").contains("magic"));
        assert!(err(b"\x93NUMPY\x01\x00\xff\x00{").contains("runs past"));
        let h = |d: &str, shape: &str| {
            let header =
                format!("{{'descr': '{d}', 'fortran_order': False, 'shape': {shape}, }}\n");
            let mut b = MAGIC.to_vec();
            b.extend_from_slice(&[1, 0]);
            b.extend_from_slice(&(header.len() as u16).to_le_bytes());
            b.extend_from_slice(header.as_bytes());
            b
        };
        assert!(err(&h("<i4", "(1,)")).contains("not supported"));
        assert!(err(&h(">f4", "(1,)")).contains("not supported"));
        let mut short = h("<f4", "(3,)");
        short.extend_from_slice(&[0; 8]);
        assert!(err(&short).contains("truncated"));
        assert!(err(&h("<f4", "(a,)")).contains("bad shape"));
        assert!(read_f32("/nonexistent/x.npy").is_err());
    }
}
