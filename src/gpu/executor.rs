//! The executor: owns the device objects of a loaded network and, per input size, a static
//! plan — activation buffers reused by liveness, pipelines and bind groups made once — so
//! that an inference is one buffer write, one command buffer and one readback.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

mod batching;
mod readback;

pub(crate) use readback::read_u64;
use readback::{copy_out, read_buffer};

use super::context::{GpuContext, GpuOptions};
use super::flat_dispatch;
use super::kernels::{conv_constants, grouped_conv_constants, ConvTiles, Kernel, Kernels};
use super::params::{u32_of, ConvParams, LinearParams, PoolParams};
use super::weights::{bind, prepare, LayerWeights};
use crate::error::{Error, Result};
use crate::graph::plan::MemoryPlan;
use crate::graph::{Graph, Op, Shape};
use crate::model::{arch, build_graph, Arch};
use crate::weights::WeightsFile;

/// Which value an inference reads back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    /// `(N, classes)` raw logits.
    Logits,
    /// `(N, C)` pooled penultimate features (embeddings).
    Features,
}

/// One dispatch of a plan.
pub struct Step {
    pub name: String,
    pub kernel: Kernel,
    /// Human description of the specialisation (`conv 3x3/s2 tile 64x64x16`).
    pub config: String,
    pub output_shape: Shape,
    pub flops: u64,
    /// Bytes the dispatch reads and writes (activations, weights, residual), for GB/s.
    pub bytes: u64,
    pub(crate) pipeline: Arc<wgpu::ComputePipeline>,
    pub(crate) bind_group: wgpu::BindGroup,
    pub(crate) workgroups: [u32; 3],
}

impl Step {
    /// Records this dispatch into `pass`.
    pub(crate) fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }
}

/// Statistics of a plan, for `resnet info` and logs.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PlanStats {
    pub batch: usize,
    pub height: usize,
    pub width: usize,
    pub dispatches: usize,
    pub activation_buffers: usize,
    pub peak_activation_bytes: u64,
    pub weight_bytes: u64,
    pub gflops: f64,
}

/// The static plan for one (batch, H, W).
pub struct GpuPlan {
    pub shapes: Vec<Shape>,
    pub memory: MemoryPlan,
    pub steps: Vec<Step>,
    slots: Vec<wgpu::Buffer>,
    readback: wgpu::Buffer,
    input_slot: usize,
    // Keeps the per-step uniform buffers alive as long as the bind groups.
    _uniforms: Vec<wgpu::Buffer>,
}

/// (batch, height, width) of a plan.
type PlanKey = (usize, usize, usize);

/// A loaded network on one device. Shareable across threads: plans are built once per
/// input size and each runs under its own lock.
pub struct Engine {
    pub ctx: Arc<GpuContext>,
    kernels: Kernels,
    pub arch: Option<Arch>,
    pub graph: Graph,
    layers: BTreeMap<String, LayerWeights>,
    weight_bytes: u64,
    plans: Mutex<HashMap<PlanKey, SharedPlan>>,
}

/// A cached plan; each runs under its own lock, so different sizes run concurrently.
type SharedPlan = Arc<Mutex<GpuPlan>>;

// Servers share one engine between threads (`Arc<Engine>`): fail the build if a field ever
// makes it lose Send or Sync.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Engine>();
};

impl Engine {
    /// Detects the architecture of `weights`, opens a device and prepares the weights.
    pub fn load(weights: &WeightsFile, options: &GpuOptions) -> Result<Self> {
        let ctx = Arc::new(GpuContext::new(options)?);
        Self::load_on(ctx, weights)
    }

    /// Like [`Engine::load`] on an already open device.
    pub fn load_on(ctx: Arc<GpuContext>, weights: &WeightsFile) -> Result<Self> {
        let arch = arch::detect(weights)?;
        weights.check_finite()?;
        let graph = build_graph(&arch);
        let mut engine = Self::from_graph(ctx, graph, weights)?;
        engine.arch = Some(arch);
        Ok(engine)
    }

    /// Any graph over the ops (kernel tests build one-op graphs).
    pub fn from_graph(ctx: Arc<GpuContext>, graph: Graph, weights: &WeightsFile) -> Result<Self> {
        let kernels = ctx.scoped("compiling the shaders", || {
            Kernels::new(&ctx.device, ctx.checked_shaders)
        })??;
        let layers = prepare(&ctx, &kernels, &graph, weights)?;
        let weight_bytes = layers
            .values()
            .map(|l| l.weight.size() + l.bias.size())
            .sum();
        Ok(Engine {
            ctx,
            kernels,
            arch: None,
            graph,
            layers,
            weight_bytes,
            plans: Mutex::new(HashMap::new()),
        })
    }

    /// One batch through one plan: a buffer write, one command buffer, a readback. Callers
    /// go through [`Engine::run`], which splits batches that do not fit.
    fn run_batch(
        &self,
        input: &[f32],
        n: usize,
        h: usize,
        w: usize,
        output: Output,
    ) -> Result<Vec<f32>> {
        let plan = self.plan(n, h, w)?;
        let plan = plan
            .lock()
            .map_err(|_| Error::Gpu("plan lock poisoned by an earlier panic".into()))?;
        let value = match output {
            Output::Logits => self.graph.output,
            Output::Features => self.graph.features,
        };
        let bytes = plan.shapes[value].bytes();
        let ctx = &self.ctx;
        let submission = ctx.scoped("running the network", || {
            ctx.queue
                .write_buffer(&plan.slots[plan.input_slot], 0, bytemuck::cast_slice(input));
            let mut encoder = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("inference"),
                });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("network"),
                    timestamp_writes: None,
                });
                for step in &plan.steps {
                    step.encode(&mut pass);
                }
            }
            encoder.copy_buffer_to_buffer(
                &plan.slots[plan.memory.slot_of[value]],
                0,
                &plan.readback,
                0,
                bytes,
            );
            ctx.queue.submit([encoder.finish()])
        })?;
        read_buffer(ctx, &plan.readback, bytes, Some(submission))
    }

    /// The plan for `(n, h, w)`, built on first use.
    pub fn plan(&self, n: usize, h: usize, w: usize) -> Result<Arc<Mutex<GpuPlan>>> {
        let mut plans = self
            .plans
            .lock()
            .map_err(|_| Error::Gpu("plan cache poisoned".into()))?;
        if let Some(p) = plans.get(&(n, h, w)) {
            return Ok(p.clone());
        }
        let plan = Arc::new(Mutex::new(self.build_plan(n, h, w)?));
        plans.insert((n, h, w), plan.clone());
        Ok(plan)
    }

    pub fn stats(&self, n: usize, h: usize, w: usize) -> Result<PlanStats> {
        let plan = self.plan(n, h, w)?;
        let plan = plan
            .lock()
            .map_err(|_| Error::Gpu("plan lock poisoned".into()))?;
        Ok(PlanStats {
            batch: n,
            height: h,
            width: w,
            dispatches: plan.steps.len(),
            activation_buffers: plan.memory.slot_bytes.len(),
            peak_activation_bytes: plan.memory.peak_bytes(),
            weight_bytes: self.weight_bytes,
            gflops: plan.steps.iter().map(|s| s.flops as f64).sum::<f64>() / 1e9,
        })
    }

    /// The prepared (folded, re-laid) weight and bias of a node, read back for tests.
    pub fn layer_weights(&self, node: &str) -> Result<(Vec<f32>, Vec<f32>)> {
        let l = self
            .layers
            .get(node)
            .ok_or_else(|| Error::Usage(format!("no layer `{node}`")))?;
        Ok((
            copy_out(&self.ctx, &l.weight)?,
            copy_out(&self.ctx, &l.bias)?,
        ))
    }

    fn build_plan(&self, n: usize, h: usize, w: usize) -> Result<GpuPlan> {
        let ctx = &self.ctx;
        let graph = &self.graph;
        let shapes = graph.infer_shapes(n, h, w)?;
        let memory = MemoryPlan::new(graph, &shapes, true);
        self.check_limits(n, h, w, &shapes, &memory)?;
        let readback_bytes = shapes[graph.output]
            .bytes()
            .max(shapes[graph.features].bytes());
        // Out of memory here is the likeliest GPU error of all: keep it in a scope.
        let (slots, readback, dummy) = ctx.scoped("allocating activation buffers", || {
            let slots: Vec<wgpu::Buffer> = memory
                .slot_bytes
                .iter()
                .enumerate()
                .map(|(i, &bytes)| {
                    ctx.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some(&format!("activations slot {i}")),
                        size: bytes.max(4).div_ceil(4) * 4,
                        usage: wgpu::BufferUsages::STORAGE
                            | wgpu::BufferUsages::COPY_DST
                            | wgpu::BufferUsages::COPY_SRC,
                        mapped_at_creation: false,
                    })
                })
                .collect();
            let readback = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size: readback_bytes.max(4),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            // Bound where a kernel's layout has a slot the specialisation never reads.
            let dummy = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("unused binding"),
                size: 16,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            });
            (slots, readback, dummy)
        })?;
        let mut steps = Vec::new();
        let mut uniforms = Vec::new();
        ctx.scoped("building the plan", || -> Result<()> {
            for node in &graph.nodes {
                let x = shapes[node.inputs[0]];
                let y = shapes[node.output];
                let slot = |v: usize| &slots[memory.slot_of[v]];
                let uniform = |bytes: &[u8]| {
                    ctx.device
                        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                            label: Some(&node.name),
                            contents: bytes,
                            usage: wgpu::BufferUsages::UNIFORM,
                        })
                };
                let (kernel, config, pipeline, params, buffers, workgroups): (
                    Kernel,
                    String,
                    _,
                    wgpu::Buffer,
                    Vec<&wgpu::Buffer>,
                    [u32; 3],
                ) = match &node.op {
                    Op::Conv(c) => {
                        let l = &self.layers[&node.name];
                        let m = y.n * y.h * y.w;
                        let grouped = c.groups > 1;
                        let (gin, gout) = (c.group_in_channels(), c.out_channels / c.groups);
                        let k = c.kernel * c.kernel * gin;
                        // The register-only kernel on CPU adapters and for groups of 4k
                        // channels (a 4-channel slice never straddles groups); else staged.
                        let registers = if grouped {
                            gout % 4 == 0
                        } else {
                            ctx.prefer_register_kernels
                        };
                        let kernel = if registers {
                            Kernel::ConvDirect
                        } else {
                            Kernel::Conv
                        };
                        let tiles = if registers {
                            ConvTiles::for_registers(c.out_channels)
                        } else if grouped {
                            ConvTiles::for_grouped(gout)
                        } else {
                            ConvTiles::for_shape(m, c.out_channels)
                        };
                        if !tiles.is_valid()
                            || tiles.workgroup_bytes()
                                > ctx.limits.max_compute_workgroup_storage_size
                        {
                            return Err(Error::Gpu(format!(
                                "{}: conv tile configuration {tiles:?} does not fit this adapter",
                                node.name
                            )));
                        }
                        let pointwise = c.kernel == 1
                            && c.stride == 1
                            && c.pad == 0
                            && !c.input_nchw
                            && !grouped;
                        let residual = node.inputs.get(1).map(|&r| slot(r));
                        let constants = if grouped {
                            grouped_conv_constants(tiles, residual.is_some(), c.relu)
                        } else {
                            conv_constants(
                                tiles,
                                residual.is_some(),
                                c.relu,
                                c.input_nchw,
                                pointwise,
                            )
                        };
                        // Grouped: x enumerates (group, channel tile); dense: channel tiles.
                        let group_tiles = gout.div_ceil(tiles.tile_n as usize);
                        let tiles_n = if registers {
                            c.out_channels.div_ceil(tiles.tile_n as usize)
                        } else {
                            c.groups * group_tiles
                        };
                        let p = ConvParams {
                            batch: n as u32,
                            in_h: x.h as u32,
                            in_w: x.w as u32,
                            in_c: x.c as u32,
                            out_h: y.h as u32,
                            out_w: y.w as u32,
                            out_c: y.c as u32,
                            kernel: c.kernel as u32,
                            stride: c.stride as u32,
                            pad: c.pad as u32,
                            m: u32_of(&node.name, m)?,
                            k: u32_of(&node.name, k)?,
                            group_in_c: gin as u32,
                            group_out_c: gout as u32,
                            group_tiles: group_tiles as u32,
                            _pad: 0,
                        };
                        // Pixel tiles fold into y and z like any flat dispatch (the kernel
                        // reads m0 = (wid.y + wid.z·nwg.y)·TILE_M).
                        let [wy, wz, _] = flat_dispatch(
                            m.div_ceil(tiles.tile_m as usize) as u64,
                            1,
                            &ctx.limits,
                        )?;
                        let max = ctx.limits.max_compute_workgroups_per_dimension as u64;
                        if tiles_n as u64 > max {
                            return Err(Error::AdapterLimit {
                                what: format!("{} channel tiles", node.name),
                                needed: tiles_n as u64,
                                limit_name: "max_compute_workgroups_per_dimension",
                                limit: max,
                            });
                        }
                        let config = format!(
                            "conv {0}x{0}/s{1}{7}{2}{3} tile {4}x{5}x{6}",
                            c.kernel,
                            c.stride,
                            if residual.is_some() { " +res" } else { "" },
                            if c.relu { " relu" } else { "" },
                            tiles.tile_m,
                            tiles.tile_n,
                            tiles.tile_k,
                            if registers && grouped {
                                format!(" g{} registers", c.groups)
                            } else if registers {
                                " registers".to_string()
                            } else if grouped {
                                format!(" g{}", c.groups)
                            } else {
                                String::new()
                            }
                        );
                        let pipeline = self.kernels.pipeline(&ctx.device, kernel, constants)?;
                        let params = uniform(bytemuck::bytes_of(&p));
                        let buffers = vec![
                            slot(node.inputs[0]),
                            &l.weight,
                            &l.bias,
                            residual.unwrap_or(&dummy),
                            slot(node.output),
                        ];
                        (
                            kernel,
                            config,
                            pipeline,
                            params,
                            buffers,
                            [tiles_n as u32, wy, wz],
                        )
                    }
                    Op::MaxPool { .. } | Op::AvgPool { .. } | Op::GlobalAvgPool => {
                        let (kern, (k, s, p)) = match &node.op {
                            Op::MaxPool {
                                kernel,
                                stride,
                                pad,
                            } => (Kernel::MaxPool, (*kernel, *stride, *pad)),
                            // ceil_mode only sizes the output (shape inference); the kernel
                            // clips each window to the input either way.
                            Op::AvgPool {
                                kernel,
                                stride,
                                pad,
                                ..
                            } => (Kernel::AvgPool, (*kernel, *stride, *pad)),
                            _ => (Kernel::GlobalAvgPool, (0, 1, 0)),
                        };
                        if kern == Kernel::MaxPool && p >= k {
                            return Err(Error::InputShape(format!(
                                "{}: padding {p} must be smaller than the window {k}",
                                node.name
                            )));
                        }
                        let total = y.numel();
                        let params = PoolParams {
                            batch: n as u32,
                            in_h: x.h as u32,
                            in_w: x.w as u32,
                            channels: x.c as u32,
                            out_h: y.h as u32,
                            out_w: y.w as u32,
                            kernel: k as u32,
                            stride: s as u32,
                            pad: p as u32,
                            total: u32_of(&node.name, total)?,
                            _pad: [0; 2],
                        };
                        let pipeline = self.kernels.pipeline(&ctx.device, kern, vec![])?;
                        let config = match kern {
                            Kernel::MaxPool => format!("max pool {k}x{k}/s{s}/p{p}"),
                            Kernel::AvgPool => format!("avg pool {k}x{k}/s{s}/p{p}"),
                            _ => "global avg pool".to_string(),
                        };
                        (
                            kern,
                            config,
                            pipeline,
                            uniform(bytemuck::bytes_of(&params)),
                            vec![slot(node.inputs[0]), slot(node.output)],
                            flat_dispatch(total as u64, 256, &ctx.limits)?,
                        )
                    }
                    Op::Linear {
                        in_features,
                        out_features,
                        ..
                    } => {
                        let l = &self.layers[&node.name];
                        let params = LinearParams {
                            batch: n as u32,
                            in_features: *in_features as u32,
                            out_features: *out_features as u32,
                            _pad: 0,
                        };
                        if n as u64 > ctx.limits.max_compute_workgroups_per_dimension as u64 {
                            return Err(Error::AdapterLimit {
                                what: "batch for the head".into(),
                                needed: n as u64,
                                limit_name: "max_compute_workgroups_per_dimension",
                                limit: ctx.limits.max_compute_workgroups_per_dimension as u64,
                            });
                        }
                        let pipeline =
                            self.kernels.pipeline(&ctx.device, Kernel::Linear, vec![])?;
                        let config = format!("linear {in_features}→{out_features}");
                        (
                            Kernel::Linear,
                            config,
                            pipeline,
                            uniform(bytemuck::bytes_of(&params)),
                            vec![slot(node.inputs[0]), &l.weight, &l.bias, slot(node.output)],
                            [out_features.div_ceil(256) as u32, n as u32, 1],
                        )
                    }
                };
                let mut all = vec![&params];
                all.extend(buffers);
                let bind_group = bind(ctx, &self.kernels, kernel, &node.name, &all);
                let weight_bytes = self
                    .layers
                    .get(&node.name)
                    .map_or(0, |l| l.weight.size() + l.bias.size());
                steps.push(Step {
                    name: node.name.clone(),
                    kernel,
                    config,
                    output_shape: y,
                    flops: node.op.flops(&y),
                    bytes: node.inputs.iter().map(|&v| shapes[v].bytes()).sum::<u64>()
                        + y.bytes()
                        + weight_bytes,
                    pipeline,
                    bind_group,
                    workgroups,
                });
                uniforms.push(params);
            }
            Ok(())
        })??;
        let input_slot = memory.slot_of[graph.input];
        Ok(GpuPlan {
            shapes,
            memory,
            steps,
            slots,
            readback,
            input_slot,
            _uniforms: uniforms,
        })
    }
}

impl GpuOptions {
    /// Convenience for tests and the CLI: the default adapter with checks as given.
    pub fn with_checks(checked_shaders: bool) -> Self {
        GpuOptions {
            checked_shaders,
            ..Default::default()
        }
    }
}
