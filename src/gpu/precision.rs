//! The storage precision of activations and weights. Arithmetic stays f32 in every kernel
//! (accumulation, workgroup memory, biases, uniforms, split-K partial sums, pre-activation
//! scale and shift); only the arrays holding activations and weights change type.
//!
//! Every shader file's first non-comment line is exactly `alias Act = f32;` and its
//! activation and weight arrays are `array<Act>`, loaded with `f32(x[i])` and stored with
//! `Act(v)`. The f16 module of a file is that source with the line replaced by
//! `enable f16;` + `alias Act = f16;` (see [`Precision::shader_source`]), so a kernel
//! written this way gets f16 without a second copy.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The line every shader file starts with (after its comments).
pub const ACT_F32: &str = "alias Act = f32;";
/// What replaces it in the f16 module of a file.
pub const ACT_F16: &str = "enable f16;\nalias Act = f16;";

/// How activations and weights are stored on the GPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Precision {
    /// 32-bit floats everywhere (the default; matches PyTorch to 1e-4).
    #[default]
    F32,
    /// IEEE half floats for activations and weights, f32 arithmetic; needs the adapter's
    /// `SHADER_F16` feature. Half the memory traffic; matches PyTorch f32 to about 1e-2.
    F16,
}

impl Precision {
    pub const ALL: [Precision; 2] = [Precision::F32, Precision::F16];

    /// Bytes of one stored activation or weight element.
    pub fn element_bytes(self) -> u64 {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 2,
        }
    }

    /// Bytes of `elements` stored values, rounded up to the 4 bytes a storage binding must
    /// span.
    pub fn bytes(self, elements: u64) -> u64 {
        (elements * self.element_bytes()).div_ceil(4) * 4
    }

    /// `values` as stored in this precision (f16: rounded to nearest), padded with zeros to
    /// the 4-byte multiple buffer writes need.
    pub fn encode(self, values: &[f32]) -> Vec<u8> {
        let mut bytes = match self {
            Precision::F32 => bytemuck::cast_slice(values).to_vec(),
            Precision::F16 => values
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
        };
        bytes.resize(bytes.len().div_ceil(4) * 4, 0);
        bytes
    }

    /// The first `len` values stored in `bytes`, as f32 (exactly: every f16 is an f32).
    pub fn decode(self, bytes: &[u8], len: usize) -> Vec<f32> {
        match self {
            Precision::F32 => bytes
                .chunks_exact(4)
                .take(len)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Precision::F16 => bytes
                .chunks_exact(2)
                .take(len)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        }
    }

    /// `values` rounded to what this precision stores: what a kernel reads back from an
    /// upload of them (the CPU checks of the tuner compare against exactly that).
    pub fn round(self, values: &[f32]) -> Vec<f32> {
        self.decode(&self.encode(values), values.len())
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }

    /// The WGSL of a shader file in this precision: the source itself in f32; in f16 its
    /// `alias Act = f32;` line (the first that is not a comment) replaced by
    /// [`ACT_F16`]. A file without that line is an error, so no kernel silently stays f32.
    pub fn shader_source(self, file: &str, source: &'static str) -> Result<Cow<'static, str>> {
        let Some((start, line)) = first_code_line(source) else {
            return Err(missing_alias(file));
        };
        if line.trim_end() != ACT_F32 {
            return Err(missing_alias(file));
        }
        Ok(match self {
            Precision::F32 => Cow::Borrowed(source),
            Precision::F16 => Cow::Owned(format!(
                "{}{ACT_F16}{}",
                &source[..start],
                &source[start + line.len()..]
            )),
        })
    }
}

/// The byte offset and text (without its newline) of the first line that is neither blank
/// nor a `//` comment.
fn first_code_line(source: &str) -> Option<(usize, &str)> {
    let mut offset = 0;
    for line in source.split_inclusive('\n') {
        let text = line.trim_end_matches(['\n', '\r']);
        let trimmed = text.trim_start();
        if !trimmed.is_empty() && !trimmed.starts_with("//") {
            return Some((offset, text));
        }
        offset += line.len();
    }
    None
}

fn missing_alias(file: &str) -> Error {
    Error::Gpu(format!(
        "{file}: its first non-comment line must be `{ACT_F32}` (the precision convention)"
    ))
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(Precision::F32),
            "f16" => Ok(Precision::F16),
            other => Err(Error::Usage(format!(
                "unknown precision `{other}` (expected f32 or f16)"
            ))),
        }
    }
}

impl serde::Serialize for Precision {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "// a kernel\n\n// more\nalias Act = f32;\n@group(0) @binding(0) var<storage> x: array<Act>;\n";

    #[test]
    fn f16_replaces_only_the_alias_line() {
        let f16 = Precision::F16.shader_source("k.wgsl", SOURCE).unwrap();
        assert_eq!(
            f16,
            "// a kernel\n\n// more\nenable f16;\nalias Act = f16;\n@group(0) @binding(0) var<storage> x: array<Act>;\n"
        );
        assert_eq!(
            Precision::F32.shader_source("k.wgsl", SOURCE).unwrap(),
            SOURCE
        );
    }

    #[test]
    fn a_file_without_the_alias_first_is_refused() {
        let late = "// k\nconst X = 1u;\nalias Act = f32;\n";
        for p in Precision::ALL {
            assert!(p.shader_source("k.wgsl", late).is_err());
            assert!(p.shader_source("k.wgsl", "// only comments\n").is_err());
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        let v = [1.0f32, -2.5, 0.1, 65504.0, 3.0];
        assert_eq!(Precision::F32.round(&v), v);
        let h = Precision::F16.encode(&v);
        assert_eq!(h.len(), 12, "5 halves padded to 12 bytes");
        let back = Precision::F16.decode(&h, v.len());
        assert_eq!(back.len(), 5);
        assert_eq!(back[0], 1.0);
        assert_eq!(back[3], 65504.0);
        assert!((back[2] - 0.1).abs() < 1e-4 && back[2] != 0.1);
    }

    #[test]
    fn sizes_and_names() {
        assert_eq!(Precision::F16.bytes(3), 8);
        assert_eq!(Precision::F32.bytes(3), 12);
        assert_eq!("F16".parse::<Precision>().unwrap(), Precision::F16);
        assert!("bf16".parse::<Precision>().is_err());
    }
}
