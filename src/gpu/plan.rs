//! The static plan for one input size: activation buffers from the CPU memory plan, every
//! pipeline created up front, and each node's dispatches asked of its op. Building a plan
//! allocates; running it (in `engine`) only writes, encodes and reads back.

use std::collections::BTreeMap;

use super::context::GpuContext;
use super::kernels::Kernels;
use super::limits::{check_head_batch, check_size, u32_of};
use super::ops::fold_bn::LayerWeights;
use super::ops::node_op::{ConvChoice, NodeBuffers, NodeShapes, StepEnv};
use super::ops::{self, NodeOp};
use super::step::Step;
use crate::error::Result;
use crate::gpu::ops::conv::ConvConfig;
use crate::graph::plan::MemoryPlan;
use crate::graph::problem::ConvProblem;
use crate::graph::{Graph, InputSize, Node, Shape};

/// Statistics of a plan, for `resnet info` and logs.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PlanStats {
    pub batch: usize,
    /// Frames per clip (1 for images).
    pub frames: usize,
    pub height: usize,
    pub width: usize,
    pub dispatches: usize,
    pub activation_buffers: usize,
    pub peak_activation_bytes: u64,
    /// Scratch: split-K partial sums and SE scales (0 when no conv splits and no SE).
    pub scratch_bytes: u64,
    pub weight_bytes: u64,
    pub gflops: f64,
}

/// The static plan for one input size (batch, frames, H, W).
pub struct GpuPlan {
    pub shapes: Vec<Shape>,
    pub memory: MemoryPlan,
    pub steps: Vec<Step>,
    pub(crate) slots: Vec<wgpu::Buffer>,
    pub(crate) readback: wgpu::Buffer,
    pub(crate) input_slot: usize,
    /// Scratch shared by the plan's nodes (they run in order): split-K partial sums, SE
    /// scales.
    pub(crate) scratch: Option<wgpu::Buffer>,
}

/// What a plan is built from: the device, its kernels, the network and its weights.
pub struct PlanInputs<'a> {
    pub ctx: &'a GpuContext,
    pub kernels: &'a Kernels,
    pub graph: &'a Graph,
    pub layers: &'a BTreeMap<String, LayerWeights>,
    pub pre_acts: &'a BTreeMap<String, wgpu::Buffer>,
}

/// The shapes around `node`.
pub fn node_shapes(node: &Node, shapes: &[Shape]) -> NodeShapes {
    NodeShapes {
        inputs: node.inputs.iter().map(|&v| shapes[v]).collect(),
        output: shapes[node.output],
    }
}

/// Per node, the conv problem at these shapes (`None` for other ops).
pub fn conv_problems(graph: &Graph, shapes: &[Shape]) -> Vec<Option<ConvProblem>> {
    graph
        .nodes
        .iter()
        .map(|node| ops::of(&node.op).conv_problem(&node_shapes(node, shapes)))
        .collect()
}

/// Every batch-dependent limit a plan must respect: each buffer against the binding and
/// buffer size limits, element counts against u32 indexing, and the batch against the
/// head's dispatch size. Found from the CPU memory plan alone, so `Engine::run` can split a
/// batch without allocating anything.
pub fn check_limits(
    ctx: &GpuContext,
    size: InputSize,
    shapes: &[Shape],
    memory: &MemoryPlan,
) -> Result<()> {
    let frames = match size.t {
        1 => String::new(),
        t => format!("{t}×"),
    };
    for (i, &bytes) in memory.slot_bytes.iter().enumerate() {
        let what = format!(
            "activation buffer {i} for batch {} at {frames}{}×{}",
            size.n, size.h, size.w
        );
        check_size(ctx, &what, bytes)?;
    }
    for s in shapes {
        u32_of("activation", s.numel())?;
    }
    check_head_batch(ctx, size.n)
}

/// The buffers of a plan besides the weights.
struct Buffers {
    slots: Vec<wgpu::Buffer>,
    readback: wgpu::Buffer,
    /// Bound where a kernel's layout has a slot the specialisation never reads.
    unused: wgpu::Buffer,
    /// Bound where a layout has a writable slot the specialisation never writes: WebGPU
    /// forbids a writable binding that aliases any other binding of the same dispatch.
    unused_writable: wgpu::Buffer,
    scratch: Option<wgpu::Buffer>,
}

impl GpuPlan {
    /// Builds the plan for `size`; `conv_config` says how each conv runs.
    pub fn build(
        inputs: &PlanInputs<'_>,
        size: InputSize,
        conv_config: &dyn Fn(&ConvProblem) -> ConvConfig,
    ) -> Result<Self> {
        let PlanInputs { ctx, graph, .. } = *inputs;
        let shapes = graph.shapes_for(size)?;
        let memory =
            MemoryPlan::with_element_bytes(graph, &shapes, true, ctx.precision.element_bytes());
        check_limits(ctx, size, &shapes, &memory)?;
        let node_ops: Vec<Box<dyn NodeOp + '_>> =
            graph.nodes.iter().map(|node| ops::of(&node.op)).collect();
        // How each conv runs, decided once: buffer sizes, compilation and dispatch agree
        // even if the tuned table changes meanwhile.
        let convs: Vec<Option<ConvChoice>> = conv_problems(graph, &shapes)
            .into_iter()
            .map(|p| p.map(|p| (p, conv_config(&p))))
            .collect();
        // Every pipeline of the plan at once, in parallel: the steps below find them made.
        ctx.check()?;
        let requests: Vec<_> = node_ops
            .iter()
            .zip(&convs)
            .flat_map(|(op, conv)| op.pipelines(conv.as_ref(), &ctx.limits))
            .collect();
        inputs.kernels.create_pipelines(&ctx.device, &requests)?;
        let buffers = allocate(ctx, graph, &shapes, &memory, &convs, &node_ops)?;
        let steps = ctx.scoped("building the plan", || {
            build_steps(inputs, &shapes, &memory, &node_ops, &convs, &buffers)
        })??;
        Ok(GpuPlan {
            input_slot: memory.slot_of[graph.input],
            shapes,
            memory,
            steps,
            slots: buffers.slots,
            readback: buffers.readback,
            scratch: buffers.scratch,
        })
    }

    /// The buffer holding value `v` of the graph.
    pub(crate) fn slot_of(&self, v: usize) -> &wgpu::Buffer {
        &self.slots[self.memory.slot_of[v]]
    }
}

/// Activation slots, the readback buffer and the split-K scratch, inside an error scope:
/// out of memory here is the likeliest GPU error of all.
fn allocate(
    ctx: &GpuContext,
    graph: &Graph,
    shapes: &[Shape],
    memory: &MemoryPlan,
    convs: &[Option<ConvChoice>],
    node_ops: &[Box<dyn NodeOp + '_>],
) -> Result<Buffers> {
    let stored = |v: usize| ctx.precision.bytes(shapes[v].numel() as u64);
    let readback_bytes = stored(graph.output).max(stored(graph.features));
    // Split-K convs and SE nodes share one scratch buffer (nodes run in order), sized for
    // the largest.
    let split_k = convs
        .iter()
        .flatten()
        .map(|(p, config)| config.scratch_bytes(p));
    let others = graph
        .nodes
        .iter()
        .zip(node_ops)
        .map(|(node, op)| op.scratch_bytes(&node_shapes(node, shapes)));
    let scratch_bytes = split_k.chain(others).max().unwrap_or(0);
    let buffer = |label: &str, size: u64, usage| {
        ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage,
            mapped_at_creation: false,
        })
    };
    use wgpu::BufferUsages as U;
    ctx.scoped("allocating activation buffers", || Buffers {
        slots: memory
            .slot_bytes
            .iter()
            .enumerate()
            .map(|(i, &bytes)| {
                buffer(
                    &format!("activations slot {i}"),
                    bytes.max(4).div_ceil(4) * 4,
                    U::STORAGE | U::COPY_DST | U::COPY_SRC,
                )
            })
            .collect(),
        readback: buffer("readback", readback_bytes.max(4), U::MAP_READ | U::COPY_DST),
        unused: buffer("unused binding", 16, U::STORAGE),
        unused_writable: buffer("unused writable binding", 16, U::STORAGE),
        scratch: (scratch_bytes > 0).then(|| {
            buffer(
                "scratch (split-K sums, SE scales)",
                scratch_bytes,
                U::STORAGE,
            )
        }),
    })
}

/// Every node's dispatches, in graph order, asked of its op.
fn build_steps(
    inputs: &PlanInputs<'_>,
    shapes: &[Shape],
    memory: &MemoryPlan,
    node_ops: &[Box<dyn NodeOp + '_>],
    convs: &[Option<ConvChoice>],
    buffers: &Buffers,
) -> Result<Vec<Step>> {
    let env = StepEnv {
        ctx: inputs.ctx,
        kernels: inputs.kernels,
    };
    let slot = |v: usize| &buffers.slots[memory.slot_of[v]];
    let mut steps = Vec::new();
    for ((node, op), conv) in inputs.graph.nodes.iter().zip(node_ops).zip(convs) {
        let node_buffers = NodeBuffers {
            inputs: node.inputs.iter().map(|&v| slot(v)).collect(),
            output: slot(node.output),
            weights: inputs.layers.get(&node.name),
            layers: inputs.layers,
            pre_act: inputs.pre_acts.get(&node.name),
            scratch: buffers.scratch.as_ref(),
            unused: &buffers.unused,
            unused_writable: &buffers.unused_writable,
        };
        let io = node_shapes(node, shapes);
        steps.extend(op.steps(env, &node.name, &io, conv.as_ref(), &node_buffers)?);
    }
    Ok(steps)
}
