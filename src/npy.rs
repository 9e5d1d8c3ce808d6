//! Minimal NumPy `.npy` reader and writer for float tensors (reference inputs and outputs).
//!
//! Format: <https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>.
//! The reader accepts header versions 1.0, 2.0 and 3.0, little-endian `f4`, `f8` and `f2`
//! (converted to `f32`: exactly from `f2`, rounded to nearest from `f8`, where a value beyond
//! `f32`'s range is an error), C order only; integer arrays are refused rather than guessed
//! at (raw pixels are not a normalised network input). The writer always writes version 1.0 `<f4`.
//! All parsing goes through [`from_bytes`], which never panics on malformed input, so it can
//! be fuzzed directly.

use std::path::Path;

use crate::error::{Error, Result};

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// A dense C-order array of `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Reads a `.npy` file into `f32`.
pub fn read_f32(path: &Path) -> Result<NpyArray> {
    let bytes = crate::fsutil::read_regular(path)?;
    from_bytes(&bytes, path)
}

/// Writes `data` with `shape` as a version 1.0 `<f4` `.npy` file. The file is written to a
/// temporary name in the same folder and then renamed, so a reader never sees half a file and
/// an interrupted run never leaves a truncated one under the final name.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    crate::fsutil::write_atomic(path, &to_bytes(shape, data)?)
}

/// Serialises `data` with `shape` as a `.npy` file image (version 1.0, `<f4`, C order).
///
/// Fails with [`Error::InputShape`] when the product of `shape` is not `data.len()`.
pub fn to_bytes(shape: &[usize], data: &[f32]) -> Result<Vec<u8>> {
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::InputShape(format!("shape {shape:?} overflows usize")))?;
    if count != data.len() {
        return Err(Error::InputShape(format!(
            "shape {shape:?} holds {count} values but {} were given",
            data.len()
        )));
    }
    // Python tuple syntax: a 1-tuple needs its trailing comma.
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_str = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_str}, }}");
    // Version 1.0 stores the header length in a u16; fall back to 2.0 (u32) only when a
    // pathological number of dimensions would not fit.
    let (version, len_bytes) = if header.len() + 1 + 10 <= u16::MAX as usize {
        (1u8, 2usize)
    } else {
        (2u8, 4usize)
    };
    // numpy pads with spaces and a final newline so the data starts 64-byte aligned.
    let prefix = MAGIC.len() + 2 + len_bytes;
    let total = (prefix + header.len() + 1).div_ceil(64) * 64;
    while prefix + header.len() + 1 < total {
        header.push(' ');
    }
    header.push('\n');

    let mut out = Vec::with_capacity(total + data.len() * 4);
    out.extend_from_slice(MAGIC);
    out.push(version);
    out.push(0);
    if version == 1 {
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

/// Parses a `.npy` file image; `path` only names the file in errors.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<NpyArray> {
    let err = |msg: String| Error::Npy {
        path: path.to_path_buf(),
        msg,
    };
    let (hdr, header_end) = read_header(bytes).map_err(err)?;
    let itemsize = item_size(&hdr).map_err(err)?;
    let payload = &bytes[header_end..];
    let need = payload_len(&hdr, itemsize).map_err(err)?;
    if payload.len() < need {
        return Err(err(format!(
            "truncated: shape {:?} of {} needs {need} data bytes, file has {}",
            hdr.shape,
            hdr.descr,
            payload.len()
        )));
    }
    if payload.len() > need {
        return Err(err(format!(
            "{} unexpected bytes after the data of shape {:?}",
            payload.len() - need,
            hdr.shape
        )));
    }
    let data = decode(payload, itemsize).map_err(err)?;
    Ok(NpyArray {
        shape: hdr.shape,
        data,
    })
}

/// The magic, version, header length and header dictionary; returns the parsed header and
/// where the data starts.
fn read_header(bytes: &[u8]) -> std::result::Result<(Header, usize), String> {
    if bytes.len() < 8 || &bytes[..6] != MAGIC {
        return Err("missing the \\x93NUMPY magic".into());
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (header_len, header_start) = match major {
        1 => {
            let b = bytes.get(8..10).ok_or("truncated header length")?;
            (u16::from_le_bytes([b[0], b[1]]) as usize, 10usize)
        }
        2 | 3 => {
            let b = bytes.get(8..12).ok_or("truncated header length")?;
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
        }
        _ => return Err(format!("unsupported format version {major}.{minor}")),
    };
    let header_end = header_start
        .checked_add(header_len)
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| format!("header of {header_len} bytes runs past the end of the file"))?;
    let raw = &bytes[header_start..header_end];
    // Versions 1 and 2 are latin-1, version 3 is UTF-8; the keys and values we accept are
    // ASCII either way, so decoding as latin-1 is enough to parse them.
    let header: String = if major == 3 {
        std::str::from_utf8(raw)
            .map_err(|_| "version 3.0 header is not UTF-8")?
            .to_owned()
    } else {
        raw.iter().map(|&b| b as char).collect()
    };
    let hdr =
        parse_header(&header).map_err(|m| format!("bad header {:?}: {m}", header.trim_end()))?;
    Ok((hdr, header_end))
}

/// Bytes per element of a supported dtype (little-endian float32, float64, float16), after
/// refusing Fortran order.
fn item_size(hdr: &Header) -> std::result::Result<usize, String> {
    let itemsize = match hdr.descr.as_str() {
        "<f4" => 4,
        "<f8" => 8,
        "<f2" => 2,
        d if d.starts_with('>') => {
            return Err(format!(
                "dtype {d:?} is big-endian; only little-endian is supported (use arr.astype('<f4'))"
            ))
        }
        d => {
            return Err(format!(
                "dtype {d:?} is not supported; expected float32, float64 or float16 \
                 ('<f4', '<f8', '<f2')"
            ))
        }
    };
    if hdr.fortran_order && hdr.shape.iter().filter(|&&d| d > 1).count() > 1 {
        return Err(format!(
            "array of shape {:?} is stored in Fortran order; only C order is supported \
             (save np.ascontiguousarray(arr))",
            hdr.shape
        ));
    }
    Ok(itemsize)
}

/// Data bytes the header's shape needs, or an error if counting them overflows.
fn payload_len(hdr: &Header, itemsize: usize) -> std::result::Result<usize, String> {
    hdr.shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|count| count.checked_mul(itemsize))
        .ok_or_else(|| format!("shape {:?} overflows", hdr.shape))
}

/// The elements as f32: float64 rounded to the nearest f32, as `torch.from_numpy(x).float()`
/// does, except that a finite value beyond f32's range (which would silently become
/// infinite) is an error; float16 exactly.
fn decode(payload: &[u8], itemsize: usize) -> std::result::Result<Vec<f32>, String> {
    Ok(match itemsize {
        4 => payload
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        8 => payload
            .chunks_exact(8)
            .enumerate()
            .map(|(i, c)| {
                let v = f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
                let f = v as f32;
                if v.is_finite() && f.is_infinite() {
                    return Err(format!(
                        "float64 element {i} ({v:e}) is out of float32 range"
                    ));
                }
                Ok(f)
            })
            .collect::<std::result::Result<_, _>>()?,
        _ => payload
            .chunks_exact(2)
            .map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
            .collect(),
    })
}

struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

/// Parses the Python dict literal numpy writes, e.g.
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 224, 224), }`.
/// Hand-written because it is Python syntax, not JSON (quotes, tuples, `True`).
fn parse_header(s: &str) -> std::result::Result<Header, String> {
    let mut p = Parser {
        s: s.as_bytes(),
        i: 0,
    };
    p.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        let value = p.value()?;
        match (key.as_str(), value) {
            ("descr", Value::Str(v)) => descr = Some(v),
            ("fortran_order", Value::Bool(v)) => fortran = Some(v),
            ("shape", Value::Tuple(v)) => shape = Some(v),
            ("descr" | "fortran_order" | "shape", _) => {
                return Err(format!("key '{key}' has a value of the wrong type"))
            }
            _ => return Err(format!("unexpected key '{key}'")),
        }
        p.ws();
        if !p.eat(b',') {
            p.ws();
            p.expect(b'}')?;
            break;
        }
    }
    p.ws();
    if p.i != p.s.len() {
        return Err("trailing characters after the dict".into());
    }
    Ok(Header {
        descr: descr.ok_or("missing 'descr'")?,
        fortran_order: fortran.ok_or("missing 'fortran_order'")?,
        shape: shape.ok_or("missing 'shape'")?,
    })
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at offset {}", c as char, self.i))
        }
    }
    fn string(&mut self) -> std::result::Result<String, String> {
        let q = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("expected a quoted string at offset {}", self.i)),
        };
        self.i += 1;
        let start = self.i;
        while let Some(c) = self.peek() {
            if c == q {
                let v = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                return Ok(v);
            }
            self.i += 1;
        }
        Err("unterminated string".into())
    }
    fn value(&mut self) -> std::result::Result<Value, String> {
        match self.peek() {
            Some(b'\'' | b'"') => Ok(Value::Str(self.string()?)),
            Some(b'(') => {
                self.i += 1;
                let mut dims = Vec::new();
                loop {
                    self.ws();
                    if self.eat(b')') {
                        break;
                    }
                    dims.push(self.int()?);
                    self.ws();
                    if !self.eat(b',') {
                        self.ws();
                        self.expect(b')')?;
                        break;
                    }
                }
                Ok(Value::Tuple(dims))
            }
            _ if self.s[self.i..].starts_with(b"True") => {
                self.i += 4;
                Ok(Value::Bool(true))
            }
            _ if self.s[self.i..].starts_with(b"False") => {
                self.i += 5;
                Ok(Value::Bool(false))
            }
            _ => Err(format!("unsupported value at offset {}", self.i)),
        }
    }
    fn int(&mut self) -> std::result::Result<usize, String> {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
        let v = digits
            .parse::<usize>()
            .map_err(|_| format!("expected a non-negative dimension at offset {start}"))?;
        // Python 2 era numpy wrote longs as `3L`.
        self.eat(b'L');
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("test.npy")
    }

    /// Builds a file image with an arbitrary header and payload (to forge other dtypes).
    fn forge(major: u8, header: &str, payload: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[major, 0]);
        if major == 1 {
            out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn msg(r: Result<NpyArray>) -> String {
        match r {
            Ok(a) => panic!("expected an error, got {a:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn round_trip_bytes() {
        for shape in [vec![], vec![0], vec![5], vec![2, 3], vec![1, 3, 4, 2]] {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n).map(|i| i as f32 * 0.25 - 1.0).collect();
            let bytes = to_bytes(&shape, &data).unwrap();
            assert_eq!(bytes[6], 1, "writes version 1.0");
            let hl = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
            assert_eq!((10 + hl) % 64, 0, "data is 64-byte aligned");
            let back = from_bytes(&bytes, p()).unwrap();
            assert_eq!(back.shape, shape);
            assert_eq!(back.data, data);
        }
    }

    #[test]
    fn round_trip_file_is_atomic() {
        let dir = std::env::temp_dir().join(format!("npy-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.npy");
        let data = [1.0f32, -2.5, f32::MAX, f32::MIN_POSITIVE, 0.0, -0.0];
        write_f32(&path, &[2, 3], &data).unwrap();
        let back = read_f32(&path).unwrap();
        assert_eq!(back.shape, vec![2, 3]);
        assert_eq!(
            back.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            data.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        // No temporary left behind.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.npy")]);
        // Shape mismatch is an error, and does not touch the existing file.
        assert!(matches!(
            write_f32(&path, &[4], &data),
            Err(Error::InputShape(_))
        ));
        assert_eq!(read_f32(&path).unwrap().data.len(), 6);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_numpy_written_header_variants() {
        let payload: Vec<u8> = [1.5f32, 2.5].iter().flat_map(|v| v.to_le_bytes()).collect();
        for h in [
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }          \n",
            "{\"descr\":\"<f4\",\"fortran_order\":False,\"shape\":(2L,)}\n",
            "{'shape': (1, 2), 'fortran_order': True, 'descr': '<f4'}",
        ] {
            for major in [1, 2, 3] {
                let a = from_bytes(&forge(major, h, &payload), p()).unwrap();
                assert_eq!(a.data, vec![1.5, 2.5]);
            }
        }
        let scalar = forge(
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (), }",
            &payload[..4],
        );
        let a = from_bytes(&scalar, p()).unwrap();
        assert_eq!((a.shape, a.data), (vec![], vec![1.5]));
    }

    #[test]
    fn converts_f64_and_f16() {
        let vals = [1.0f64, -0.1, 1e-40, 3.4e38, 65504.0];
        let payload: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let a = from_bytes(
            &forge(
                1,
                "{'descr': '<f8', 'fortran_order': False, 'shape': (5,), }",
                &payload,
            ),
            p(),
        )
        .unwrap();
        assert_eq!(a.data, vals.iter().map(|&v| v as f32).collect::<Vec<_>>());

        // f16 -> f32 is exact, including subnormals, infinities and negative zero.
        let bits: [u16; 6] = [0x3c00, 0xc000, 0x0001, 0x7bff, 0x7c00, 0x8000];
        let payload: Vec<u8> = bits.iter().flat_map(|v| v.to_le_bytes()).collect();
        let a = from_bytes(
            &forge(
                1,
                "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3), }",
                &payload,
            ),
            p(),
        )
        .unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        let want = [1.0f32, -2.0, 5.960_464_5e-8, 65504.0, f32::INFINITY, -0.0];
        assert_eq!(
            a.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn rejects_f64_beyond_f32_range() {
        let payload: Vec<u8> = [1.0f64, 1e39]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let m = msg(from_bytes(
            &forge(
                1,
                "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
                &payload,
            ),
            p(),
        ));
        assert!(
            m.contains("element 1") && m.contains("float32 range"),
            "{m}"
        );
    }

    #[test]
    fn rejects_fortran_order() {
        let payload = [0u8; 24];
        let m = msg(from_bytes(
            &forge(
                1,
                "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
                &payload,
            ),
            p(),
        ));
        assert!(m.contains("Fortran order"), "{m}");
    }

    #[test]
    fn rejects_truncated_and_trailing() {
        let bytes = to_bytes(&[2, 3], &[0.0; 6]).unwrap();
        let m = msg(from_bytes(&bytes[..bytes.len() - 1], p()));
        assert!(m.contains("truncated"), "{m}");
        let mut longer = bytes.clone();
        longer.push(0);
        let m = msg(from_bytes(&longer, p()));
        assert!(m.contains("unexpected bytes"), "{m}");
        // Cut inside the header.
        for cut in [0, 5, 8, 9, 20] {
            assert!(from_bytes(&bytes[..cut], p()).is_err());
        }
    }

    #[test]
    fn rejects_bad_magic_version_dtype_header() {
        let mut bytes = to_bytes(&[1], &[1.0]).unwrap();
        bytes[1] = b'X';
        assert!(msg(from_bytes(&bytes, p())).contains("magic"));
        let mut bytes = to_bytes(&[1], &[1.0]).unwrap();
        bytes[6] = 4;
        assert!(msg(from_bytes(&bytes, p())).contains("version 4.0"));
        let four = [0u8; 4];
        let m = msg(from_bytes(
            &forge(
                1,
                "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }",
                &four,
            ),
            p(),
        ));
        assert!(m.contains("big-endian"), "{m}");
        let m = msg(from_bytes(
            &forge(
                1,
                "{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }",
                &four,
            ),
            p(),
        ));
        assert!(m.contains("not supported"), "{m}");
        for h in [
            "",
            "{",
            "{'descr': '<f4', 'shape': (1,), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }",
            "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}",
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999, 99999999999), }",
        ] {
            assert!(from_bytes(&forge(1, h, &four), p()).is_err(), "{h}");
        }
        // Header length pointing past the end.
        let mut bytes = to_bytes(&[1], &[1.0]).unwrap();
        bytes[8] = 0xff;
        bytes[9] = 0xff;
        assert!(msg(from_bytes(&bytes, p())).contains("past the end"));
    }

    #[test]
    fn never_panics_on_mutations() {
        // Cheap stand-in for a fuzzer: every single-byte corruption and every prefix.
        let bytes = to_bytes(&[2, 2], &[1.0, 2.0, 3.0, 4.0]).unwrap();
        for i in 0..bytes.len() {
            for v in [0u8, b'(', b')', b',', b'9', 0xff] {
                let mut b = bytes.clone();
                b[i] = v;
                let _ = from_bytes(&b, p());
            }
            let _ = from_bytes(&bytes[..i], p());
        }
    }
}
