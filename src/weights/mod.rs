//! Weights files: safetensors read into memory, tensors kept as stored (F32, F16, BF16) so
//! they can be uploaded to the GPU byte for byte and converted there.
//!
//! Files are read with ordinary reads, never memory-mapped: a mapped file that another
//! process truncates faults (SIGBUS) on the next access, which no error handling can catch.
//! A read sees the file as it was at each moment; a size that changes while reading is an
//! error, and whatever bytes were read are then validated like any others.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors};

use crate::error::{Error, Result};

/// Element type of a stored tensor, as the GPU conversion shaders understand it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoredDtype {
    F32 = 0,
    F16 = 1,
    BF16 = 2,
}

impl StoredDtype {
    pub fn size(self) -> usize {
        match self {
            StoredDtype::F32 => 4,
            StoredDtype::F16 | StoredDtype::BF16 => 2,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            StoredDtype::F32 => "F32",
            StoredDtype::F16 => "F16",
            StoredDtype::BF16 => "BF16",
        }
    }
}

/// Where one tensor lives in the file.
#[derive(Clone, Debug)]
pub struct TensorEntry {
    /// `None` for dtypes we never read (e.g. the I64 `num_batches_tracked`).
    pub dtype: Option<StoredDtype>,
    pub dtype_name: String,
    pub shape: Vec<usize>,
    /// Byte range inside the file.
    pub start: usize,
    pub end: usize,
}

/// Where the bytes come from: a file read into memory (or synthetic weights, fuzzing), or
/// bytes compiled in (the embedded default model).
enum Backing {
    Owned(Vec<u8>),
    Static(&'static [u8]),
}

/// The trained default model (see scripts/train_default.py), compiled in so the CLI and the
/// Python package work from anywhere without a weights file.
pub const DEFAULT_WEIGHTS: &[u8] = include_bytes!("../../weights/default.safetensors");

/// A validated safetensors file.
pub struct WeightsFile {
    pub path: PathBuf,
    backing: Backing,
    pub tensors: BTreeMap<String, TensorEntry>,
    pub metadata: HashMap<String, String>,
}

impl std::fmt::Debug for WeightsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightsFile")
            .field("path", &self.path)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl WeightsFile {
    /// Reads and validates a safetensors file (see the module docs on why it is not mapped).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let bytes = crate::fsutil::read_regular(&path)?;
        if bytes.is_empty() {
            return Err(Error::Safetensors {
                path,
                msg: "the file is empty".into(),
            });
        }
        Self::from_backing(path, Backing::Owned(bytes))
    }

    /// Parses safetensors bytes held in memory; `label` names them in errors.
    pub fn from_bytes(label: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Self> {
        Self::from_backing(label.into(), Backing::Owned(bytes))
    }

    /// Parses safetensors bytes compiled into the binary.
    pub fn from_static(label: impl Into<PathBuf>, bytes: &'static [u8]) -> Result<Self> {
        Self::from_backing(label.into(), Backing::Static(bytes))
    }

    /// The embedded default model ([`DEFAULT_WEIGHTS`]).
    pub fn default_model() -> Result<Self> {
        Self::from_static("<embedded default model>", DEFAULT_WEIGHTS)
    }

    fn from_backing(path: PathBuf, backing: Backing) -> Result<Self> {
        let bytes: &[u8] = match &backing {
            Backing::Owned(v) => v,
            Backing::Static(s) => s,
        };
        let bad = |msg: String| Error::Safetensors {
            path: path.clone(),
            msg,
        };
        let (header_len, meta) =
            SafeTensors::read_metadata(bytes).map_err(|e| bad(describe_safetensors_error(&e)))?;
        let st =
            SafeTensors::deserialize(bytes).map_err(|e| bad(describe_safetensors_error(&e)))?;
        let data_start = 8 + header_len;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.iter() {
            let info = meta
                .info(name)
                .ok_or_else(|| bad(format!("tensor `{name}` vanished")))?;
            let (s, e) = info.data_offsets;
            let dtype = match view.dtype() {
                Dtype::F32 => Some(StoredDtype::F32),
                Dtype::F16 => Some(StoredDtype::F16),
                Dtype::BF16 => Some(StoredDtype::BF16),
                _ => None,
            };
            tensors.insert(
                name.to_string(),
                TensorEntry {
                    dtype,
                    dtype_name: format!("{:?}", view.dtype()),
                    shape: view.shape().to_vec(),
                    start: data_start + s,
                    end: data_start + e,
                },
            );
        }
        let metadata = meta.metadata().clone().unwrap_or_default();
        Ok(WeightsFile {
            path,
            backing,
            tensors,
            metadata,
        })
    }

    fn bytes_all(&self) -> &[u8] {
        match &self.backing {
            Backing::Owned(v) => v,
            Backing::Static(s) => s,
        }
    }

    pub fn get(&self, name: &str) -> Option<&TensorEntry> {
        self.tensors.get(name)
    }

    /// The tensor's bytes exactly as stored (little endian).
    pub fn raw(&self, name: &str) -> Option<&[u8]> {
        self.tensors
            .get(name)
            .map(|t| &self.bytes_all()[t.start..t.end])
    }

    /// The tensor converted to f32 on the CPU (for the reference path and for tests).
    pub fn to_f32(&self, name: &str) -> Option<Vec<f32>> {
        let t = self.tensors.get(name)?;
        let raw = &self.bytes_all()[t.start..t.end];
        Some(decode_f32(raw, t.dtype?))
    }

    /// Refuses NaN and ±Inf in any float tensor: such a network answers NaN for every
    /// input, which is better reported at load time, naming the tensor, than discovered in
    /// the logits. Checked on the stored bits (exponent all ones), without converting.
    /// Also refuses a negative BatchNorm `running_var` (see [`negative`]).
    pub fn check_finite(&self) -> Result<()> {
        for (name, t) in &self.tensors {
            let Some(dtype) = t.dtype else { continue };
            let raw = &self.bytes_all()[t.start..t.end];
            if let Some((first, count)) = non_finite(raw, dtype) {
                return Err(Error::NonFinite {
                    path: self.path.clone(),
                    name: name.clone(),
                    count,
                    first,
                });
            }
            if name == "running_var" || name.ends_with(".running_var") {
                if let Some((first, count, value)) = negative(raw, dtype) {
                    return Err(Error::NegativeVariance {
                        path: self.path.clone(),
                        name: name.clone(),
                        count,
                        first,
                        value,
                    });
                }
            }
        }
        Ok(())
    }

    /// Total bytes of the float tensors as stored.
    pub fn float_bytes(&self) -> u64 {
        self.tensors
            .values()
            .filter(|t| t.dtype.is_some())
            .map(|t| (t.end - t.start) as u64)
            .sum()
    }
}

/// `(first index, count)` of the NaN/Inf elements of stored little-endian data, if any.
fn non_finite(raw: &[u8], dtype: StoredDtype) -> Option<(usize, usize)> {
    let (mut first, mut count) = (None, 0usize);
    let mut note = |i: usize| {
        first.get_or_insert(i);
        count += 1;
    };
    // An all-ones exponent is Inf or NaN in each of the three formats.
    match dtype {
        StoredDtype::F32 => raw
            .chunks_exact(4)
            .enumerate()
            .filter(|(_, c)| {
                u32::from_le_bytes([c[0], c[1], c[2], c[3]]) & 0x7f80_0000 == 0x7f80_0000
            })
            .for_each(|(i, _)| note(i)),
        StoredDtype::F16 => raw
            .chunks_exact(2)
            .enumerate()
            .filter(|(_, c)| u16::from_le_bytes([c[0], c[1]]) & 0x7c00 == 0x7c00)
            .for_each(|(i, _)| note(i)),
        StoredDtype::BF16 => raw
            .chunks_exact(2)
            .enumerate()
            .filter(|(_, c)| u16::from_le_bytes([c[0], c[1]]) & 0x7f80 == 0x7f80)
            .for_each(|(i, _)| note(i)),
    }
    first.map(|f| (f, count))
}

/// `(first index, count, first value)` of the negative elements of a stored variance, if
/// any. A variance is never negative, so one is corruption; below −eps PyTorch's
/// `sqrt(running_var + eps)` is NaN (at −eps a division by zero), and every logit with it.
/// Any negative value is refused rather than only those, so the rule does not depend on eps.
fn negative(raw: &[u8], dtype: StoredDtype) -> Option<(usize, usize, f32)> {
    let values = decode_f32(raw, dtype);
    let first = values.iter().position(|&v| v < 0.0)?;
    let count = values.iter().filter(|&&v| v < 0.0).count();
    Some((first, count, values[first]))
}

/// Decodes little-endian stored elements to f32 (exact for F16 and BF16).
pub fn decode_f32(raw: &[u8], dtype: StoredDtype) -> Vec<f32> {
    match dtype {
        StoredDtype::F32 => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        StoredDtype::F16 => raw
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        StoredDtype::BF16 => raw
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
    }
}

fn describe_safetensors_error(e: &safetensors::SafeTensorError) -> String {
    use safetensors::SafeTensorError as E;
    match e {
        E::HeaderTooSmall => "shorter than the 8-byte header length".into(),
        E::HeaderTooLarge => "header length beyond the 100 MB safetensors limit".into(),
        E::InvalidHeaderLength => "header length runs past the end of the file (truncated?)".into(),
        E::InvalidHeader(_) => "header is not UTF-8".into(),
        E::InvalidHeaderDeserialization(m) => format!("header is not valid safetensors JSON ({m})"),
        E::InvalidOffset(n) => {
            format!("tensor `{n}` has overlapping, gapped or out-of-range offsets")
        }
        E::TensorInvalidInfo => "a tensor's byte range does not match its shape and dtype".into(),
        E::MetadataIncompleteBuffer => {
            "data section length does not match the header (truncated or trailing bytes)".into()
        }
        E::ValidationOverflow => "tensor sizes overflow".into(),
        other => other.to_string(),
    }
}

/// Writes tensors (all F32) with metadata to safetensors bytes; used for synthetic weights
/// and by tests that build their own files.
pub fn serialize_f32(
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>> {
    use safetensors::tensor::TensorView;
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, d)| bytemuck::cast_slice(d).to_vec())
        .collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::Usage(format!("bad synthetic tensor {n}: {e}")))
        })
        .collect::<Result<_>>()?;
    safetensors::tensor::serialize(views, metadata).map_err(|e| Error::Usage(e.to_string()))
}
