//! The dispatches of one convolution: the conv itself and, under split-K, the sum that adds
//! its partial sums and applies the epilogue. Shared by plans (through [`ConvNode`]) and the
//! tuner, so what `resnet tune` times is exactly what a plan runs.

use super::gemm::gemm_steps;
use super::winograd::{self, TransformedWeights};
use super::{ConvAlgo, ConvConfig, ConvProblem, ConvUniform, DeviceFit, SPLIT_K_SUM};
use crate::error::{Error, Result};
use crate::gpu::kernels::{Constants, KernelSpec};
use crate::gpu::limits::{flat_dispatch, u32_of};
use crate::gpu::ops::fold_bn::FoldSource;
use crate::gpu::ops::node_op::{ConvChoice, NodeBuffers, NodeOp, NodeShapes, StepEnv};
use crate::gpu::step::Step;
use crate::graph::Conv;

/// The buffers one conv reads and writes.
pub struct ConvBuffers<'a> {
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
    /// `[scale; C_in] ++ [shift; C_in]` of the pre-activation, when the conv applies one.
    pub pre_act: Option<&'a wgpu::Buffer>,
    /// Bound where a layout has a slot the specialisation never reads.
    pub unused: &'a wgpu::Buffer,
    /// Bound where a layout has a writable slot the specialisation never writes: WebGPU
    /// forbids a writable binding that aliases any other binding of the same dispatch.
    pub unused_writable: &'a wgpu::Buffer,
    /// Where the node's Winograd weights are made and kept, for Winograd configurations.
    pub winograd: Option<&'a TransformedWeights>,
}

/// A graph conv node (BatchNorm folded, epilogue fused) as an op of the plan.
pub struct ConvNode<'a>(pub &'a Conv);

impl NodeOp for ConvNode<'_> {
    fn fold(&self) -> Option<FoldSource> {
        let c = self.0;
        // A weight is (C_out, C_in/G, [kT,] k, k); re-laid as (kT·k²·C_in/G, C_out), each
        // group's GEMM reads its column block (see conv.wgsl).
        Some(FoldSource {
            weight: c.weight.clone(),
            bias_or_bn: c.bn.clone(),
            has_bn: !c.bn.is_empty(),
            out_c: c.out_channels,
            in_c: c.group_in_channels(),
            area: c.temporal.kernel * c.kernel * c.kernel,
        })
    }

    fn conv_problem(&self, shapes: &NodeShapes) -> Option<ConvProblem> {
        let residual = shapes.inputs.len() > 1;
        Some(ConvProblem::of(
            self.0,
            shapes.inputs[0],
            shapes.output,
            residual,
        ))
    }

    fn pipelines(
        &self,
        conv: Option<&ConvChoice>,
        limits: &wgpu::Limits,
    ) -> Vec<(KernelSpec, Constants)> {
        match conv {
            Some((p, config)) if config.check(p, &DeviceFit::of(limits)).is_ok() => {
                config.pipelines(p)
            }
            _ => vec![],
        }
    }

    fn steps(
        &self,
        env: StepEnv<'_>,
        name: &str,
        _: &NodeShapes,
        conv: Option<&ConvChoice>,
        b: &NodeBuffers<'_>,
    ) -> Result<Vec<Step>> {
        let (p, config) =
            conv.ok_or_else(|| Error::Gpu(format!("{name}: no conv configuration chosen")))?;
        let weights = b
            .weights
            .ok_or_else(|| Error::Gpu(format!("{name}: weights not prepared")))?;
        let buffers = ConvBuffers {
            input: b.inputs[0],
            weight: &weights.weight,
            bias: &weights.bias,
            residual: b.inputs.get(1).copied(),
            output: b.output,
            scratch: b.scratch,
            pre_act: b.pre_act,
            unused: b.unused,
            unused_writable: b.unused_writable,
            winograd: Some(&weights.winograd),
        };
        conv_steps(env, name, p, config, &buffers)
    }
}

/// Builds the dispatches of conv `name` (one, two under split-K, three for Winograd).
pub fn conv_steps(
    env: StepEnv<'_>,
    name: &str,
    p: &ConvProblem,
    config: &ConvConfig,
    b: &ConvBuffers<'_>,
) -> Result<Vec<Step>> {
    let ctx = env.ctx;
    config
        .check(p, &DeviceFit::of(&ctx.limits))
        .map_err(|why| {
            Error::Gpu(format!(
                "{name}: conv configuration {} cannot run: {why}",
                config.describe()
            ))
        })?;
    if matches!(config.algo, ConvAlgo::Gemm | ConvAlgo::GemmTiled) {
        return gemm_steps(env, name, p, config, b);
    }
    let split = config.split_k > 1 && !config.algo.is_winograd();
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
    if split {
        u32_of(name, p.m() * p.out_c * config.split_k as usize)?;
    }
    let pre_act = match (p.pre_act, b.pre_act) {
        (false, _) => b.unused,
        (true, Some(buffer)) if buffer.size() == 2 * p.in_c as u64 * 4 => buffer,
        (true, _) => {
            return Err(Error::Gpu(format!(
                "{name}: the pre-activation needs a scale and shift for each of {} channels",
                p.in_c
            )))
        }
    };
    if config.algo.is_winograd() {
        let describe = format!("{}{} {}", describe_shape(p), epilogue(p), config.describe());
        return winograd::steps(env, name, p, config, b, pre_act, &describe);
    }
    let uniform = env.uniform(name, &conv_uniform(name, p, config)?);
    let kernel = config.kernel();
    let conv_bind = env.kernels.bind(
        &ctx.device,
        kernel,
        name,
        &[
            &uniform,
            b.input,
            b.weight,
            b.bias,
            b.residual.filter(|_| !split).unwrap_or(b.unused),
            b.output,
            pre_act,
            scratch.unwrap_or(b.unused_writable),
        ],
    )?;
    let element = ctx.precision.element_bytes();
    let out_bytes = p.output_shape().bytes_as(element);
    let input_bytes = p.input_numel() as u64 * element;
    let written = match split {
        true => config.scratch_bytes(p),
        false => out_bytes * if p.residual { 2 } else { 1 },
    };
    let mut steps = vec![Step {
        name: name.to_string(),
        kernel,
        config: match split {
            true => format!("{} {}", describe_shape(p), config.describe()),
            false => format!("{}{} {}", describe_shape(p), epilogue(p), config.describe()),
        },
        output_shape: p.output_shape(),
        flops: p.flops(),
        bytes: input_bytes + b.weight.size() + b.bias.size() + written,
        pipeline: env
            .kernels
            .pipeline(&ctx.device, kernel, config.constants(p))?,
        bind_group: conv_bind,
        workgroups: conv_workgroups(env, p, config)?,
        _uniform: uniform.clone(),
    }];
    if let Some(scratch) = scratch {
        steps.push(split_k_sum(env, name, p, config, b, scratch, uniform)?);
    }
    Ok(steps)
}

/// The conv's uniform: its shape, GEMM sizes and split.
fn conv_uniform(name: &str, p: &ConvProblem, config: &ConvConfig) -> Result<ConvUniform> {
    Ok(ConvUniform {
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
        m: u32_of(name, p.m())?,
        k: u32_of(name, p.k())?,
        group_in_c: p.group_in_c() as u32,
        group_out_c: p.group_out_c() as u32,
        group_tiles: p.group_out_c().div_ceil(config.tiles.tile_n as usize) as u32,
        k_split: config.k_per_split(p) as u32,
        in_t: p.in_t as u32,
        out_t: p.out_t as u32,
        kernel_t: p.kernel_t as u32,
        stride_t: p.stride_t as u32,
        pad_t: p.pad_t as u32,
        _pad: [0; 3],
    })
}

/// Pixel tiles fold into y and z like any flat dispatch (the kernel reads
/// m0 = (wid.y + wid.z·nwg.y)·TILE_M); x holds channel tiles (× slices).
fn conv_workgroups(env: StepEnv<'_>, p: &ConvProblem, config: &ConvConfig) -> Result<[u32; 3]> {
    let pixel_tiles = p.m().div_ceil(config.tiles.tile_m as usize) as u64;
    let [wy, wz, _] = flat_dispatch(pixel_tiles, 1, &env.ctx.limits)?;
    let wx = (config.channel_tiles(p) * config.split_k as usize) as u32;
    Ok([wx, wy, wz])
}

/// The split-K sum: adds the slices' partial sums in order and applies the epilogue.
fn split_k_sum(
    env: StepEnv<'_>,
    name: &str,
    p: &ConvProblem,
    config: &ConvConfig,
    b: &ConvBuffers<'_>,
    scratch: &wgpu::Buffer,
    uniform: wgpu::Buffer,
) -> Result<Step> {
    let ctx = env.ctx;
    let bind_group = env.kernels.bind(
        &ctx.device,
        SPLIT_K_SUM,
        name,
        &[
            &uniform,
            b.unused,
            b.unused,
            b.bias,
            b.residual.unwrap_or(b.unused),
            b.output,
            b.unused,
            scratch,
        ],
    )?;
    let elements = (p.m() * p.out_c) as u64;
    let out_bytes = p.output_shape().bytes_as(ctx.precision.element_bytes());
    Ok(Step {
        name: format!("{name} (split-K sum)"),
        kernel: SPLIT_K_SUM,
        config: format!("split-K sum of {}{}", config.split_k, epilogue(p)),
        output_shape: p.output_shape(),
        flops: elements * config.split_k as u64,
        bytes: config.scratch_bytes(p) + out_bytes * if p.residual { 2 } else { 1 } + b.bias.size(),
        pipeline: env.kernels.pipeline(
            &ctx.device,
            SPLIT_K_SUM,
            ConvConfig::reduce_constants(p),
        )?,
        bind_group,
        workgroups: flat_dispatch(elements, 256, &ctx.limits)?,
        _uniform: uniform,
    })
}

/// `conv 3x3/s2`, `conv 3x3/s1 g32`, `conv 3x3x3/s1x2` (T×H×W, over frames).
pub(super) fn describe_shape(p: &ConvProblem) -> String {
    let groups = match p.grouped() {
        true => format!(" g{}", p.groups),
        false => String::new(),
    };
    match p.temporal() {
        true => format!(
            "conv {0}x{1}x{1}/s{2}x{3}{groups}",
            p.kernel_t, p.kernel, p.stride_t, p.stride
        ),
        false => format!("conv {0}x{0}/s{1}{groups}", p.kernel, p.stride),
    }
}

/// ` +res relu`, as far as the epilogue has them.
pub(super) fn epilogue(p: &ConvProblem) -> String {
    format!(
        "{}{}",
        if p.residual { " +res" } else { "" },
        if p.relu { " relu" } else { "" }
    )
}
