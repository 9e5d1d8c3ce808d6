//! The uniform parameter blocks of the kernels, laid out exactly as their WGSL `Params`
//! structs (u32 fields, padded to a multiple of 16 bytes), and the u32 index check.

use crate::error::{Error, Result};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ConvParams {
    pub batch: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub in_c: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub out_c: u32,
    pub kernel: u32,
    pub stride: u32,
    pub pad: u32,
    pub m: u32,
    pub k: u32,
    pub group_in_c: u32,
    pub group_out_c: u32,
    pub group_tiles: u32,
    /// K elements per split-K slice (= k without a split).
    pub k_split: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PoolParams {
    pub batch: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub channels: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub kernel: u32,
    pub stride: u32,
    pub pad: u32,
    pub total: u32,
    pub _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LinearParams {
    pub batch: u32,
    pub in_features: u32,
    pub out_features: u32,
    pub _pad: u32,
}

pub fn u32_of(what: &str, v: usize) -> Result<u32> {
    // Kernels index with u32: every element count must fit, with room for the last index.
    u32::try_from(v)
        .ok()
        .filter(|&x| x < u32::MAX / 2)
        .ok_or_else(|| Error::AdapterLimit {
            what: what.into(),
            needed: v as u64,
            limit_name: "u32 indexing (elements)",
            limit: (u32::MAX / 2) as u64,
        })
}
