//! Temporary minimal .npy reader (replaced by the full module).
use crate::error::{Error, Result};
use std::path::Path;
pub struct NpyArray { pub shape: Vec<usize>, pub data: Vec<f32> }
pub fn read_f32(path: &Path) -> Result<NpyArray> {
    let b = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
    let h = std::str::from_utf8(&b[10..10 + hl]).unwrap();
    let s = h.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape: Vec<usize> = s.split(',').filter(|x| !x.trim().is_empty()).map(|x| x.trim().parse().unwrap()).collect();
    let data = b[10 + hl..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok(NpyArray { shape, data })
}
