//! The dispatches of one convolution: the conv itself and, under split-K, the reduction that
//! adds its partial sums and applies the epilogue. Shared by the plan builder and the tuner,
//! so what `resnet tune` times is exactly what a plan runs.

use wgpu::util::DeviceExt;

use super::Step;
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::conv_config::{ConvConfig, ConvProblem};
use crate::gpu::flat_dispatch;
use crate::gpu::kernels::{Kernel, Kernels};
use crate::gpu::params::{u32_of, ConvParams};
use crate::gpu::weights::bind;
use crate::graph::Shape;

/// The buffers one conv reads and writes.
pub(crate) struct ConvBuffers<'a> {
    /// (N, H, W, C_in), or (N, C_in, H, W) for the stem.
    pub input: &'a wgpu::Buffer,
    /// (kH·kW·C_in/G, C_out), BatchNorm folded.
    pub weight: &'a wgpu::Buffer,
    /// (C_out)
    pub bias: &'a wgpu::Buffer,
    /// (N, H_out, W_out, C_out), when the epilogue adds a shortcut.
    pub residual: Option<&'a wgpu::Buffer>,
    /// (N, H_out, W_out, C_out)
    pub output: &'a wgpu::Buffer,
    /// (split_k, M, C_out) partial sums; needed when the configuration splits K.
    pub scratch: Option<&'a wgpu::Buffer>,
    /// Bound where a layout has a slot the specialisation never reads.
    pub unused: &'a wgpu::Buffer,
}

/// The problem a graph conv node solves at input shape `x` and output shape `y`.
pub(crate) fn conv_problem(
    c: &crate::graph::Conv,
    x: Shape,
    y: Shape,
    residual: bool,
) -> ConvProblem {
    ConvProblem {
        batch: y.n,
        in_h: x.h,
        in_w: x.w,
        in_c: x.c,
        out_h: y.h,
        out_w: y.w,
        out_c: y.c,
        kernel: c.kernel,
        stride: c.stride,
        pad: c.pad,
        groups: c.groups,
        input_nchw: c.input_nchw,
        residual,
        relu: c.relu,
    }
}

/// Builds the dispatches of conv `name` (one, or two under split-K).
pub(crate) fn conv_steps(
    ctx: &GpuContext,
    kernels: &Kernels,
    name: &str,
    p: &ConvProblem,
    config: &ConvConfig,
    b: &ConvBuffers<'_>,
) -> Result<Vec<Step>> {
    config
        .check(p, &crate::gpu::conv_config::DeviceFit::of(&ctx.limits))
        .map_err(|why| {
            Error::Gpu(format!(
                "{name}: conv configuration {} cannot run: {why}",
                config.describe()
            ))
        })?;
    let m = p.m();
    let split = config.split_k > 1;
    let scratch = match (split, b.scratch) {
        (false, _) => None,
        (true, Some(s)) if s.size() >= config.scratch_bytes(p) => Some(s),
        (true, _) => {
            return Err(Error::Gpu(format!(
                "{name}: split-K needs a scratch buffer of {} bytes",
                config.scratch_bytes(p)
            )))
        }
    };
    let params = ConvParams {
        batch: p.batch as u32,
        in_h: p.in_h as u32,
        in_w: p.in_w as u32,
        in_c: p.in_c as u32,
        out_h: p.out_h as u32,
        out_w: p.out_w as u32,
        out_c: p.out_c as u32,
        kernel: p.kernel as u32,
        stride: p.stride as u32,
        pad: p.pad as u32,
        m: u32_of(name, m)?,
        k: u32_of(name, p.k())?,
        group_in_c: p.group_in_c() as u32,
        group_out_c: p.group_out_c() as u32,
        group_tiles: p.group_out_c().div_ceil(config.tiles.tile_n as usize) as u32,
        k_split: config.k_per_split(p) as u32,
    };
    if split {
        u32_of(name, m * p.out_c * config.split_k as usize)?;
    }
    let uniform = ctx
        .device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(name),
            contents: bytemuck::bytes_of(&params),
            usage: wgpu::BufferUsages::UNIFORM,
        });
    // Pixel tiles fold into y and z like any flat dispatch (the kernel reads
    // m0 = (wid.y + wid.z·nwg.y)·TILE_M); x holds channel tiles (× slices).
    let [wy, wz, _] = flat_dispatch(
        m.div_ceil(config.tiles.tile_m as usize) as u64,
        1,
        &ctx.limits,
    )?;
    let wx = (config.channel_tiles(p) * config.split_k as usize) as u32;
    let kernel = config.kernel();
    let epilogue = format!(
        "{}{}",
        if p.residual { " +res" } else { "" },
        if p.relu { " relu" } else { "" }
    );
    let shape = format!(
        "conv {0}x{0}/s{1}{2}",
        p.kernel,
        p.stride,
        if p.grouped() {
            format!(" g{}", p.groups)
        } else {
            String::new()
        }
    );
    let out_shape = Shape {
        n: p.batch,
        h: p.out_h,
        w: p.out_w,
        c: p.out_c,
    };
    let conv_output = scratch.unwrap_or(b.output);
    let conv_bind = bind(
        ctx,
        kernels,
        kernel,
        name,
        &[
            &uniform,
            b.input,
            b.weight,
            b.bias,
            b.residual.filter(|_| !split).unwrap_or(b.unused),
            conv_output,
        ],
    );
    let io_bytes =
        (p.batch * p.in_h * p.in_w * p.in_c) as u64 * 4 + b.weight.size() + b.bias.size();
    let out_bytes = out_shape.bytes();
    let mut steps = vec![Step {
        name: name.to_string(),
        kernel,
        config: format!(
            "{shape}{} {}",
            if split { "" } else { &epilogue },
            config.describe()
        ),
        output_shape: out_shape,
        flops: p.flops(),
        bytes: io_bytes
            + if split {
                config.scratch_bytes(p)
            } else {
                out_bytes + if p.residual { out_bytes } else { 0 }
            },
        pipeline: kernels.pipeline(&ctx.device, kernel, config.constants(p))?,
        bind_group: conv_bind,
        workgroups: [wx, wy, wz],
        _uniform: uniform.clone(),
    }];
    if let Some(scratch) = scratch {
        let reduce_bind = bind(
            ctx,
            kernels,
            Kernel::ConvReduce,
            name,
            &[
                &uniform,
                scratch,
                b.unused,
                b.bias,
                b.residual.unwrap_or(b.unused),
                b.output,
            ],
        );
        let elements = (m * p.out_c) as u64;
        steps.push(Step {
            name: format!("{name} (split-K sum)"),
            kernel: Kernel::ConvReduce,
            config: format!("split-K sum of {}{epilogue}", config.split_k),
            output_shape: out_shape,
            flops: elements * config.split_k as u64,
            bytes: config.scratch_bytes(p)
                + out_bytes * if p.residual { 2 } else { 1 }
                + b.bias.size(),
            pipeline: kernels.pipeline(
                &ctx.device,
                Kernel::ConvReduce,
                ConvConfig::reduce_constants(p),
            )?,
            bind_group: reduce_bind,
            workgroups: flat_dispatch(elements, 256, &ctx.limits)?,
            _uniform: uniform,
        });
    }
    Ok(steps)
}
