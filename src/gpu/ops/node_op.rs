//! What every op family implements for the plan: the weights it folds at load time, the
//! pipelines it needs, and its dispatches for one graph node.

use std::collections::BTreeMap;

use wgpu::util::DeviceExt;

use super::conv::{ConvConfig, ConvProblem};
use super::fold_bn::{FoldSource, LayerWeights};
use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::{Constants, KernelSpec, Kernels};
use crate::gpu::step::Step;
use crate::graph::Shape;

/// How a conv node runs, decided once per plan: buffer sizes, compilation and dispatch agree
/// even if the tuned table changes meanwhile.
pub type ConvChoice = (ConvProblem, ConvConfig);

/// The shapes around one node: its inputs (`x`, then the residual if any) and its output.
pub struct NodeShapes {
    pub inputs: Vec<Shape>,
    pub output: Shape,
}

/// The buffers a node's dispatches bind.
pub struct NodeBuffers<'a> {
    /// One per node input, in order.
    pub inputs: Vec<&'a wgpu::Buffer>,
    pub output: &'a wgpu::Buffer,
    /// The node's prepared weights (conv and linear).
    pub weights: Option<&'a LayerWeights>,
    /// Every prepared layer, for ops with several (named as their [`NodeOp::folds`] names).
    pub layers: &'a BTreeMap<String, LayerWeights>,
    /// The pre-activation's `[scale; C] ++ [shift; C]`, for nodes that apply one.
    pub pre_act: Option<&'a wgpu::Buffer>,
    /// Scratch shared by the plan's nodes (they run in order): split-K partial sums, SE
    /// scales; sized for the largest [`NodeOp::scratch_bytes`].
    pub scratch: Option<&'a wgpu::Buffer>,
    /// Bound where a kernel's layout has a slot the specialisation never reads.
    pub unused: &'a wgpu::Buffer,
    /// Bound where a layout has a writable slot the specialisation never writes: WebGPU
    /// forbids a writable binding that aliases any other binding of the same dispatch.
    pub unused_writable: &'a wgpu::Buffer,
}

/// The device and kernels steps are built with.
#[derive(Clone, Copy)]
pub struct StepEnv<'a> {
    pub ctx: &'a GpuContext,
    pub kernels: &'a Kernels,
}

impl StepEnv<'_> {
    /// A uniform buffer holding `value`, labelled with the node's name.
    pub fn uniform<T: bytemuck::Pod>(&self, label: &str, value: &T) -> wgpu::Buffer {
        self.ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::bytes_of(value),
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }
}

/// One op family's part in a plan. `ops::of` maps each graph op to one of these.
pub trait NodeOp {
    /// The tensors folded into this node's weights at load time, if it has weights.
    fn fold(&self) -> Option<FoldSource> {
        None
    }

    /// The layers prepared for node `node`: its [`NodeOp::fold`] under the node's name (an
    /// op with several layers names each `{node}.{layer}`).
    fn folds(&self, node: &str) -> Vec<(String, FoldSource)> {
        self.fold()
            .map(|f| (node.to_string(), f))
            .into_iter()
            .collect()
    }

    /// Scratch bytes the node's dispatches use at these shapes besides the split-K partial
    /// sums (which depend on the conv configuration: [`ConvConfig::scratch_bytes`]).
    ///
    /// [`ConvConfig::scratch_bytes`]: super::conv::ConvConfig::scratch_bytes
    fn scratch_bytes(&self, _shapes: &NodeShapes) -> u64 {
        0
    }

    /// The conv problem at these shapes, for ops whose configuration is chosen per shape.
    fn conv_problem(&self, _shapes: &NodeShapes) -> Option<ConvProblem> {
        None
    }

    /// The pipelines [`NodeOp::steps`] will use, so that a plan creates them all together.
    /// A configuration that cannot run yields none: `steps` says why.
    fn pipelines(
        &self,
        conv: Option<&ConvChoice>,
        limits: &wgpu::Limits,
    ) -> Vec<(KernelSpec, Constants)>;

    /// The node's dispatches, in order.
    fn steps(
        &self,
        env: StepEnv<'_>,
        name: &str,
        shapes: &NodeShapes,
        conv: Option<&ConvChoice>,
        buffers: &NodeBuffers<'_>,
    ) -> Result<Vec<Step>>;
}
