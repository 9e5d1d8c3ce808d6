//! Pooling on channels-last activations (pool.wgsl): the stem's max pool (−∞ padding; a
//! window over frames too in video networks), the average pool of timm's ResNet-D shortcut
//! (PyTorch's ceil-mode output size, windows clipped to the input, `count_include_pad=False`)
//! and the global average pool (over T×H×W). One thread per output element.

use super::node_op::{ConvChoice, NodeBuffers, NodeOp, NodeShapes, StepEnv};
use crate::error::{Error, Result};
use crate::gpu::kernels::{Binding, Constants, KernelSpec, UniformLayout};
use crate::gpu::limits::{flat_dispatch, u32_of};
use crate::gpu::step::Step;
use crate::graph::{HeadWindow, Shape, Window};

// params, input, output, pre-activation
const POOL_BINDINGS: &[Binding] = &[
    Binding::Uniform,
    Binding::Read,
    Binding::ReadWrite,
    Binding::Read,
];

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
    pub in_t: u32,
    pub out_t: u32,
    pub kernel_t: u32,
    pub stride_t: u32,
    pub pad_t: u32,
    /// The window's width where it differs from its height (the head's window).
    pub kernel_w: u32,
}

pub const POOL_UNIFORM: UniformLayout = crate::uniform_layout!(
    "pool.wgsl",
    PoolUniform,
    [
        batch, in_h, in_w, channels, out_h, out_w, kernel, stride, pad, total, in_t, out_t,
        kernel_t, stride_t, pad_t, kernel_w
    ]
);

/// Which pooling, and its window (the global pool's is the whole input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    Max {
        kernel: usize,
        stride: usize,
        pad: usize,
        /// Along T; [`Window::POINT`] pools each frame on its own.
        temporal: Window,
    },
    /// `ceil_mode` only sizes the output (shape inference); the kernel clips each window to
    /// the input either way.
    Avg {
        kernel: usize,
        stride: usize,
        pad: usize,
        pre_act: bool,
    },
    /// `pre_act`: the input is read pre-activated (BatchNorm + ReLU).
    GlobalAvg { pre_act: bool, window: HeadWindow },
}

impl Pool {
    fn kernel(&self) -> KernelSpec {
        match self {
            Pool::Max { .. } => MAX_POOL,
            Pool::Avg { .. } => AVG_POOL,
            Pool::GlobalAvg { .. } => GLOBAL_AVG_POOL,
        }
    }

    fn pre_act(&self) -> bool {
        match *self {
            Pool::Avg { pre_act, .. } | Pool::GlobalAvg { pre_act, .. } => pre_act,
            Pool::Max { .. } => false,
        }
    }

    /// The average pools specialise on whether they pre-activate; the max pool never does.
    fn constants(&self) -> Constants {
        match self {
            Pool::Max { .. } => vec![],
            _ => vec![("PRE_ACT", self.pre_act() as u32 as f64)],
        }
    }

    /// (kernel, stride, pad) as the uniform carries them.
    fn window(&self) -> (usize, usize, usize) {
        match *self {
            Pool::Max {
                kernel,
                stride,
                pad,
                ..
            }
            | Pool::Avg {
                kernel,
                stride,
                pad,
                ..
            } => (kernel, stride, pad),
            Pool::GlobalAvg { .. } => (0, 1, 0),
        }
    }

    /// The temporal window and the frames in and out as the kernel reads them: frames count
    /// as images (one frame each) unless the window spans frames or the pool is global.
    fn frames(&self, x: Shape, y: Shape) -> (Window, usize, usize) {
        match *self {
            Pool::Max { temporal, .. } if !temporal.is_point() => (temporal, x.t, y.t),
            Pool::GlobalAvg { .. } => (Window::POINT, x.t, 1),
            _ => (Window::POINT, 1, 1),
        }
    }

    fn describe(&self) -> String {
        let (k, s, p) = self.window();
        match self {
            Pool::Max { temporal: t, .. } if !t.is_point() => format!(
                "max pool {}x{k}x{k}/s{}x{s}/p{}x{p}",
                t.kernel, t.stride, t.pad
            ),
            Pool::Max { .. } => format!("max pool {k}x{k}/s{s}/p{p}"),
            Pool::Avg { .. } => format!("avg pool {k}x{k}/s{s}/p{p}"),
            Pool::GlobalAvg { .. } => "global avg pool".to_string(),
        }
    }

    /// The uniform for input `x` and output `y`: the window, and the frames as the kernel
    /// reads them.
    fn uniform(&self, name: &str, x: Shape, y: Shape) -> Result<PoolUniform> {
        let (k, s, p) = self.window();
        let (tw, in_t, out_t) = self.frames(x, y);
        if matches!(self, Pool::Max { .. }) && (p >= k || tw.pad >= tw.kernel) {
            return Err(Error::InputShape(format!(
                "{name}: padding {p} (frames: {}) must be smaller than the window {k} ({})",
                tw.pad, tw.kernel
            )));
        }
        // The global pool's window: the whole map, or the head's fixed window.
        let [kt, kh, kw] = match self {
            Pool::GlobalAvg { window, .. } => window
                .on([x.t, x.h, x.w])
                .map_err(|why| Error::InputShape(format!("{name}: {why}")))?,
            _ => [tw.kernel, k, k],
        };
        Ok(PoolUniform {
            batch: (y.n * y.t / out_t) as u32,
            in_h: x.h as u32,
            in_w: x.w as u32,
            channels: x.c as u32,
            out_h: y.h as u32,
            out_w: y.w as u32,
            kernel: kh as u32,
            stride: s as u32,
            pad: p as u32,
            total: u32_of(name, y.numel())?,
            in_t: in_t as u32,
            out_t: out_t as u32,
            kernel_t: kt as u32,
            stride_t: tw.stride as u32,
            pad_t: tw.pad as u32,
            kernel_w: kw as u32,
        })
    }
}

impl NodeOp for Pool {
    fn pipelines(&self, _: Option<&ConvChoice>, _: &wgpu::Limits) -> Vec<(KernelSpec, Constants)> {
        vec![(self.kernel(), self.constants())]
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
        let total = y.numel();
        let uniform = env.uniform(name, &self.uniform(name, x, y)?);
        let (ctx, kernel) = (env.ctx, self.kernel());
        let pre_act = match (self.pre_act(), buffers.pre_act) {
            (false, _) => buffers.unused,
            (true, Some(b)) if b.size() == 2 * x.c as u64 * 4 => b,
            (true, _) => {
                return Err(Error::Gpu(format!(
                    "{name}: the pre-activation needs a scale and shift for each of {} channels",
                    x.c
                )))
            }
        };
        let bind_group = env.kernels.bind(
            &ctx.device,
            kernel,
            name,
            &[&uniform, buffers.inputs[0], buffers.output, pre_act],
        )?;
        Ok(vec![Step {
            name: name.to_string(),
            kernel,
            config: self.describe(),
            output_shape: y,
            // No multiply-adds (as `graph::Op::flops` counts them).
            flops: 0,
            bytes: (x.numel() + y.numel()) as u64 * ctx.precision.element_bytes(),
            pipeline: env
                .kernels
                .pipeline(&ctx.device, kernel, self.constants())?,
            bind_group,
            workgroups: flat_dispatch(total as u64, 256, &ctx.limits)?,
            _uniform: uniform,
        }])
    }
}
