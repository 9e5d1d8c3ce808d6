//! Everything that touches wgpu: device, kernels, weight preparation and the executor.

pub mod context;
pub mod conv_config;
pub mod disk_cache;
pub mod executor;
pub mod kernels;
mod params;
pub mod pipeline_cache;
pub mod profile;
pub mod tune_cache;
pub mod weights;

use crate::error::{Error, Result};

/// Workgroup counts for `threads` invocations in workgroups of `size`, folded into two
/// dimensions when one would exceed the per-dimension limit. Kernels recover the flat index
/// as `(wid.y · nwg.x + wid.x) · size + lid.x` and guard it against their total.
pub fn flat_dispatch(threads: u64, size: u64, limits: &wgpu::Limits) -> Result<[u32; 3]> {
    let groups = threads.div_ceil(size).max(1);
    let max = limits.max_compute_workgroups_per_dimension as u64;
    let x = groups.min(max);
    let y = groups.div_ceil(x);
    if y > max {
        return Err(Error::AdapterLimit {
            what: "a dispatch".into(),
            needed: groups,
            limit_name: "max_compute_workgroups_per_dimension²",
            limit: max * max,
        });
    }
    Ok([x as u32, y as u32, 1])
}
