//! The adapter limits every op and plan is checked against before anything is allocated or
//! dispatched: buffer sizes, u32 indexing, workgroup counts.

use super::context::GpuContext;
use crate::error::{Error, Result};

/// An element count as the u32 the kernels index with, with room for the last index.
pub fn u32_of(what: &str, v: usize) -> Result<u32> {
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

/// Checks one buffer against the adapter's binding and buffer limits.
pub fn check_size(ctx: &GpuContext, what: &str, bytes: u64) -> Result<()> {
    let binding = ctx.limits.max_storage_buffer_binding_size;
    if bytes > binding {
        return Err(Error::AdapterLimit {
            what: what.into(),
            needed: bytes,
            limit_name: "max_storage_buffer_binding_size",
            limit: binding,
        });
    }
    if bytes > ctx.limits.max_buffer_size {
        return Err(Error::AdapterLimit {
            what: what.into(),
            needed: bytes,
            limit_name: "max_buffer_size",
            limit: ctx.limits.max_buffer_size,
        });
    }
    Ok(())
}

/// The batch the head (one workgroup row per image) can take.
pub fn check_head_batch(ctx: &GpuContext, n: usize) -> Result<()> {
    let max_groups = ctx.limits.max_compute_workgroups_per_dimension as u64;
    if n as u64 > max_groups {
        return Err(Error::AdapterLimit {
            what: "batch for the head".into(),
            needed: n as u64,
            limit_name: "max_compute_workgroups_per_dimension",
            limit: max_groups,
        });
    }
    Ok(())
}

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
