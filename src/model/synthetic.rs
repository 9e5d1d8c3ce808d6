//! Synthetic weights for a named architecture (`--arch resnet50`): He-initialised convs and
//! non-trivial BatchNorm statistics, so nobody needs a checkpoint to profile, benchmark or
//! test at full width.

use std::collections::HashMap;

use super::arch::Arch;
use super::video::VideoArch;
use crate::error::Result;
use crate::weights::{serialize_f32, WeightsFile};

/// Deterministic xorshift generator; no extra dependency for synthetic data.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Approximately normal (sum of uniforms), mean 0, standard deviation `std`.
    fn normal(&mut self, std: f32) -> f32 {
        let s: f32 = (0..4).map(|_| self.uniform()).sum::<f32>() - 2.0;
        s * std * (3.0f32).sqrt()
    }
}

/// Weights for `arch` in its layout, as an in-memory safetensors file.
pub fn synthetic_weights(arch: &Arch, seed: u64) -> Result<WeightsFile> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut tensors = Vec::new();
    for (name, shape) in arch.expected_tensors() {
        // BN gamma: small on the last BN of a block, as trained networks have.
        let last = name.contains(".bn3.") || (name.contains(".bn2.") && arch.expansion() == 1);
        let data = tensor_values(&mut rng, &name, &shape, last);
        tensors.push((arch.layout.file_name(&name), shape, data));
    }
    let meta = HashMap::from([("resnet.source".to_string(), "synthetic".to_string())]);
    WeightsFile::from_bytes(
        format!("<synthetic {}>", arch.name()),
        serialize_f32(&tensors, Some(meta))?,
    )
}

/// Weights for a video `arch` (e.g. [`super::video_standard::standard_video`]) in its
/// layout's names, as an in-memory safetensors file.
pub fn synthetic_video_weights(arch: &VideoArch, seed: u64) -> Result<WeightsFile> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    // The BN of each block's last branch conv gets the small gamma.
    let lasts: Vec<&str> = arch
        .stages
        .iter()
        .flat_map(|s| &s.blocks)
        .filter_map(|b| b.branch.last().map(|c| c.bn.as_str()))
        .collect();
    let mut tensors = Vec::new();
    for (name, shape) in arch.expected_tensors() {
        let last = lasts
            .iter()
            .any(|bn| name.strip_suffix(".weight") == Some(bn));
        let data = tensor_values(&mut rng, &name, &shape, last);
        tensors.push((name, shape, data));
    }
    let meta = HashMap::from([("resnet.source".to_string(), "synthetic".to_string())]);
    WeightsFile::from_bytes(
        format!("<synthetic {}>", arch.name()),
        serialize_f32(&tensors, Some(meta))?,
    )
}

/// He-initialised conv and linear weights, BN statistics around their trained ranges, a
/// small BN gamma where `last_bn` (a block's last BN).
fn tensor_values(rng: &mut Rng, name: &str, shape: &[usize], last_bn: bool) -> Vec<f32> {
    let n: usize = shape.iter().product();
    if name.ends_with("running_var") {
        (0..n).map(|_| 0.5 + rng.uniform()).collect()
    } else if name.ends_with("running_mean") || name.ends_with(".bias") {
        (0..n).map(|_| rng.normal(0.1)).collect()
    } else if shape.len() == 1 {
        let (low, span) = if last_bn { (0.1, 0.3) } else { (0.5, 1.0) };
        (0..n).map(|_| low + span * rng.uniform()).collect()
    } else {
        let fan_in: usize = shape[1..].iter().product();
        let std = (2.0 / fan_in as f32).sqrt();
        (0..n).map(|_| rng.normal(std)).collect()
    }
}
