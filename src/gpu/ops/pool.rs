//! Pooling on channels-last activations (pool.wgsl): the stem's max pool (−∞ padding), the
//! average pool of timm's ResNet-D shortcut (PyTorch's ceil-mode output size, windows
//! clipped to the input, `count_include_pad=False`) and the global average pool. One thread
//! per output element.

use super::node_op::{ConvChoice, NodeBuffers, NodeOp, NodeShapes, StepEnv};
use crate::error::{Error, Result};
use crate::gpu::kernels::{Binding, Constants, KernelSpec, UniformLayout};
use crate::gpu::limits::{flat_dispatch, u32_of};
use crate::gpu::step::Step;

// params, input, output
const POOL_BINDINGS: &[Binding] = &[Binding::Uniform, Binding::Read, Binding::ReadWrite];

pub const MAX_POOL: KernelSpec = KernelSpec {
    name: "MaxPool",
    file: "pool.wgsl",
    entry: "max_pool",
    bindings: POOL_BINDINGS,
};

pub const AVG_POOL: KernelSpec = KernelSpec {
    name: "AvgPool",
    file: "pool.wgsl",
    entry: "avg_pool",
    bindings: POOL_BINDINGS,
};

pub const GLOBAL_AVG_POOL: KernelSpec = KernelSpec {
    name: "GlobalAvgPool",
    file: "pool.wgsl",
    entry: "global_avg_pool",
    bindings: POOL_BINDINGS,
};

/// The `Params` uniform of pool.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PoolUniform {
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

pub const POOL_UNIFORM: UniformLayout = crate::uniform_layout!(
    "pool.wgsl",
    PoolUniform,
    [batch, in_h, in_w, channels, out_h, out_w, kernel, stride, pad, total]
);

/// Which pooling, and its window (the global pool's is the whole input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    Max {
        kernel: usize,
        stride: usize,
        pad: usize,
    },
    /// `ceil_mode` only sizes the output (shape inference); the kernel clips each window to
    /// the input either way.
    Avg {
        kernel: usize,
        stride: usize,
        pad: usize,
    },
    GlobalAvg,
}

impl Pool {
    fn kernel(&self) -> KernelSpec {
        match self {
            Pool::Max { .. } => MAX_POOL,
            Pool::Avg { .. } => AVG_POOL,
            Pool::GlobalAvg => GLOBAL_AVG_POOL,
        }
    }

    /// (kernel, stride, pad) as the uniform carries them.
    fn window(&self) -> (usize, usize, usize) {
        match *self {
            Pool::Max {
                kernel,
                stride,
                pad,
            }
            | Pool::Avg {
                kernel,
                stride,
                pad,
            } => (kernel, stride, pad),
            Pool::GlobalAvg => (0, 1, 0),
        }
    }

    fn describe(&self) -> String {
        let (k, s, p) = self.window();
        match self {
            Pool::Max { .. } => format!("max pool {k}x{k}/s{s}/p{p}"),
            Pool::Avg { .. } => format!("avg pool {k}x{k}/s{s}/p{p}"),
            Pool::GlobalAvg => "global avg pool".to_string(),
        }
    }
}

impl NodeOp for Pool {
    fn pipelines(&self, _: Option<&ConvChoice>, _: &wgpu::Limits) -> Vec<(KernelSpec, Constants)> {
        vec![(self.kernel(), vec![])]
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
        let (k, s, p) = self.window();
        if matches!(self, Pool::Max { .. }) && p >= k {
            return Err(Error::InputShape(format!(
                "{name}: padding {p} must be smaller than the window {k}"
            )));
        }
        let total = y.numel();
        let uniform = env.uniform(
            name,
            &PoolUniform {
                batch: y.n as u32,
                in_h: x.h as u32,
                in_w: x.w as u32,
                channels: x.c as u32,
                out_h: y.h as u32,
                out_w: y.w as u32,
                kernel: k as u32,
                stride: s as u32,
                pad: p as u32,
                total: u32_of(name, total)?,
                _pad: [0; 2],
            },
        );
        let (ctx, kernel) = (env.ctx, self.kernel());
        let bind_group = env.kernels.bind(
            &ctx.device,
            kernel,
            name,
            &[&uniform, buffers.inputs[0], buffers.output],
        )?;
        Ok(vec![Step {
            name: name.to_string(),
            kernel,
            config: self.describe(),
            output_shape: y,
            // No multiply-adds (as `graph::Op::flops` counts them).
            flops: 0,
            bytes: x.bytes() + y.bytes(),
            pipeline: env.kernels.pipeline(&ctx.device, kernel, vec![])?,
            bind_group,
            workgroups: flat_dispatch(total as u64, 256, &ctx.limits)?,
            _uniform: uniform,
        }])
    }
}
