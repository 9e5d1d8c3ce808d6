//! The fully connected head (linear.wgsl): `y = x·Wᵀ + b` on the pooled features, one
//! thread per (sample, class). Its weight is re-laid `(C_in, C_out)` at load time by the fold
//! kernel (without a BatchNorm).

use super::fold_bn::FoldSource;
use super::node_op::{ConvChoice, NodeBuffers, NodeOp, NodeShapes, StepEnv};
use crate::error::{Error, Result};
use crate::gpu::kernels::{Binding, Constants, KernelSpec, UniformLayout};
use crate::gpu::limits::check_head_batch;
use crate::gpu::step::Step;

pub const LINEAR: KernelSpec = KernelSpec {
    name: "Linear",
    file: "linear.wgsl",
    entry: "main",
    // params, x, weight, bias, y
    bindings: &[
        Binding::Uniform,
        Binding::Read,
        Binding::Read,
        Binding::Read,
        Binding::ReadWrite,
    ],
};

/// The `Params` uniform of linear.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LinearUniform {
    pub batch: u32,
    pub in_features: u32,
    pub out_features: u32,
    pub _pad: u32,
}

pub const LINEAR_UNIFORM: UniformLayout = crate::uniform_layout!(
    "linear.wgsl",
    LinearUniform,
    [batch, in_features, out_features]
);

/// A linear layer of the graph: its tensors and sizes.
pub struct Linear<'a> {
    pub weight: &'a str,
    pub bias: &'a str,
    pub in_features: usize,
    pub out_features: usize,
}

impl NodeOp for Linear<'_> {
    fn fold(&self) -> Option<FoldSource> {
        Some(FoldSource {
            weight: self.weight.to_string(),
            bias_or_bn: self.bias.to_string(),
            has_bn: false,
            out_c: self.out_features,
            in_c: self.in_features,
            area: 1,
        })
    }

    fn pipelines(&self, _: Option<&ConvChoice>, _: &wgpu::Limits) -> Vec<(KernelSpec, Constants)> {
        vec![(LINEAR, vec![])]
    }

    fn steps(
        &self,
        env: StepEnv<'_>,
        name: &str,
        shapes: &NodeShapes,
        _: Option<&ConvChoice>,
        buffers: &NodeBuffers<'_>,
    ) -> Result<Vec<Step>> {
        let (x, y) = (shapes.inputs[0], shapes.output);
        let n = y.n;
        let weights = buffers
            .weights
            .ok_or_else(|| Error::Gpu(format!("{name}: weights not prepared")))?;
        // The grid's y is the sample.
        check_head_batch(env.ctx, n)?;
        let uniform = env.uniform(
            name,
            &LinearUniform {
                batch: n as u32,
                in_features: self.in_features as u32,
                out_features: self.out_features as u32,
                _pad: 0,
            },
        );
        let ctx = env.ctx;
        let bind_group = env.kernels.bind(
            &ctx.device,
            LINEAR,
            name,
            &[
                &uniform,
                buffers.inputs[0],
                &weights.weight,
                &weights.bias,
                buffers.output,
            ],
        )?;
        Ok(vec![Step {
            name: name.to_string(),
            kernel: LINEAR,
            config: format!("linear {}→{}", self.in_features, self.out_features),
            output_shape: y,
            flops: 2 * (y.numel() * self.in_features) as u64,
            bytes: (x.numel() + y.numel()) as u64 * ctx.precision.element_bytes() + weights.bytes(),
            pipeline: env.kernels.pipeline(&ctx.device, LINEAR, vec![])?,
            bind_group,
            workgroups: [self.out_features.div_ceil(256) as u32, n as u32, 1],
            _uniform: uniform,
        }])
    }
}
