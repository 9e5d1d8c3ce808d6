//! Squeeze-and-excitation closing a residual block ([`crate::graph::Op::SqueezeExcite`],
//! se.wgsl): `squeeze_excite` (one workgroup per image: channel means, fc1 + ReLU, fc2 +
//! sigmoid) writes each image's scales into the plan's scratch buffer, then `se_apply` adds
//! the scaled block output to the shortcut and applies ReLU. fc1 and fc2 are folded at load
//! as linear layers (re-laid `(C_in, C_out)`, their biases kept) under `{node}.fc1` and
//! `{node}.fc2`.

use super::fold_bn::{FoldSource, LayerWeights};
use super::node_op::{ConvChoice, NodeBuffers, NodeOp, NodeShapes, StepEnv};
use crate::error::{Error, Result};
use crate::gpu::kernels::{Binding, Constants, KernelSpec, UniformLayout};
use crate::gpu::limits::{flat_dispatch, u32_of};
use crate::gpu::step::Step;
use crate::graph::{Shape, SqueezeExcite};

// params, y, residual, fc1 weight, fc1 bias, fc2 weight, fc2 bias, scales, output
const SE_BINDINGS: &[Binding] = &[
    Binding::Uniform,
    Binding::Read,
    Binding::Read,
    Binding::Read,
    Binding::Read,
    Binding::Read,
    Binding::Read,
    Binding::ReadWrite,
    Binding::ReadWrite,
];

pub const SQUEEZE_EXCITE: KernelSpec = KernelSpec {
    name: "SqueezeExcite",
    file: "se.wgsl",
    entry: "squeeze_excite",
    bindings: SE_BINDINGS,
};

pub const SE_APPLY: KernelSpec = KernelSpec {
    name: "SeApply",
    file: "se.wgsl",
    entry: "se_apply",
    bindings: SE_BINDINGS,
};

/// The `Params` uniform of se.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SeUniform {
    pub images: u32,
    pub pixels: u32,
    pub channels: u32,
    pub reduced: u32,
    pub total: u32,
    pub _pad: [u32; 3],
}

pub const SE_UNIFORM: UniformLayout = crate::uniform_layout!(
    "se.wgsl",
    SeUniform,
    [images, pixels, channels, reduced, total]
);

/// Scratch bytes one SE node needs at output shape `y`: per image, the scales and the hidden
/// layer, `(N·T, C + C_r)` f32.
pub fn scratch_bytes(se: &SqueezeExcite, y: Shape) -> u64 {
    (y.n * y.t * (se.channels + se.reduced)) as u64 * 4
}

/// An SE node of the graph.
pub struct SqueezeExciteNode<'a>(pub &'a SqueezeExcite);

impl SqueezeExciteNode<'_> {
    fn layer<'b>(&self, b: &NodeBuffers<'b>, name: &str, fc: &str) -> Result<&'b LayerWeights> {
        b.layers
            .get(&format!("{name}.{fc}"))
            .ok_or_else(|| Error::Gpu(format!("{name}: {fc} weights not prepared")))
    }
}

impl NodeOp for SqueezeExciteNode<'_> {
    fn folds(&self, node: &str) -> Vec<(String, FoldSource)> {
        let se = self.0;
        let linear = |weight: &str, bias: &str, out_c, in_c| FoldSource {
            weight: weight.to_string(),
            bias_or_bn: bias.to_string(),
            has_bn: false,
            out_c,
            in_c,
            area: 1,
        };
        vec![
            (
                format!("{node}.fc1"),
                linear(&se.fc1_weight, &se.fc1_bias, se.reduced, se.channels),
            ),
            (
                format!("{node}.fc2"),
                linear(&se.fc2_weight, &se.fc2_bias, se.channels, se.reduced),
            ),
        ]
    }

    fn scratch_bytes(&self, shapes: &NodeShapes) -> u64 {
        scratch_bytes(self.0, shapes.output)
    }

    fn pipelines(&self, _: Option<&ConvChoice>, _: &wgpu::Limits) -> Vec<(KernelSpec, Constants)> {
        vec![(SQUEEZE_EXCITE, vec![]), (SE_APPLY, vec![])]
    }

    fn steps(
        &self,
        env: StepEnv<'_>,
        name: &str,
        shapes: &NodeShapes,
        _: Option<&ConvChoice>,
        b: &NodeBuffers<'_>,
    ) -> Result<Vec<Step>> {
        let (se, y) = (self.0, shapes.output);
        let (fc1, fc2) = (self.layer(b, name, "fc1")?, self.layer(b, name, "fc2")?);
        let scales = b
            .scratch
            .filter(|s| s.size() >= scratch_bytes(se, y))
            .ok_or_else(|| Error::Gpu(format!("{name}: no scratch buffer for the SE scales")))?;
        let images = y.n * y.t;
        let uniform = SeUniform {
            images: u32_of(name, images)?,
            pixels: (y.h * y.w) as u32,
            channels: se.channels as u32,
            reduced: se.reduced as u32,
            total: u32_of(name, y.numel())?,
            _pad: [0; 3],
        };
        let (ctx, unused) = (env.ctx, b.unused);
        let [y_in, residual] = [b.inputs[0], b.inputs[1]];
        // The small `unused` buffer fills read-only slots only: a buffer may not be bound
        // read-only and read-write in one dispatch, so the squeeze's unused output slot holds
        // the node's output, which it never touches.
        let squeeze = [
            y_in,
            unused,
            &fc1.weight,
            &fc1.bias,
            &fc2.weight,
            &fc2.bias,
            scales,
            b.output,
        ];
        let apply = [
            y_in, residual, unused, unused, unused, unused, scales, b.output,
        ];
        let step = |kernel: KernelSpec, bound: [&wgpu::Buffer; 8], workgroups, flops, bytes| {
            let uniform_buffer = env.uniform(name, &uniform);
            let mut all = vec![&uniform_buffer];
            all.extend(bound);
            Ok(Step {
                name: name.to_string(),
                kernel,
                config: format!("SE {}→{}→{}", se.channels, se.reduced, se.channels),
                output_shape: y,
                flops,
                bytes,
                pipeline: env.kernels.pipeline(&ctx.device, kernel, vec![])?,
                bind_group: env.kernels.bind(&ctx.device, kernel, name, &all)?,
                workgroups,
                _uniform: uniform_buffer,
            })
        };
        let fc_bytes = fc1.bytes() + fc2.bytes();
        let y_bytes = y.bytes_as(ctx.precision.element_bytes());
        let fc_flops = 2 * (images * se.macs_per_image()) as u64;
        Ok(vec![
            step(
                SQUEEZE_EXCITE,
                squeeze,
                flat_dispatch(images as u64, 1, &ctx.limits)?,
                fc_flops,
                y_bytes + fc_bytes + scratch_bytes(se, y),
            )?,
            step(
                SE_APPLY,
                apply,
                flat_dispatch(y.numel() as u64, 256, &ctx.limits)?,
                0,
                3 * y_bytes,
            )?,
        ])
    }
}
