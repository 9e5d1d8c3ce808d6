//! The executor: owns the device objects of a loaded network and, per input size, a static
//! plan — activation buffers reused by liveness, pipelines and bind groups made once — so
//! that an inference is one buffer write, one command buffer and one readback.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

mod batching;
mod conv_step;
mod pipelines;
mod readback;
mod tune;

use pipelines::log_compiles;
pub(crate) use readback::read_u64;
use readback::{copy_out, read_buffer};

use super::context::{GpuContext, GpuOptions};
use super::conv_config::{ConvConfig, ConvProblem, DeviceFit};
use super::flat_dispatch;
use super::kernels::{CompileStats, Kernel, Kernels};
use super::params::{u32_of, LinearParams, PoolParams};
use super::pipeline_cache::PipelineCacheState;
use super::tune_cache::TuneCache;
use super::weights::{bind, prepare, LayerWeights};
use crate::error::{Error, Result};
use crate::graph::plan::MemoryPlan;
use crate::graph::{Graph, Op, Shape};
use crate::model::{arch, build_graph, Arch};
use crate::weights::WeightsFile;
pub(crate) use conv_step::{conv_problem, conv_steps, ConvBuffers};
pub use tune::{ShapeTuning, TuneOptions, TuneReport};

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
    // The step's parameters, alive as long as its bind group.
    pub(crate) _uniform: wgpu::Buffer,
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
    /// Split-K partial sums (0 when no conv splits).
    pub scratch_bytes: u64,
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
    /// Split-K partial sums, shared by every split conv of the plan (they run in order).
    scratch: Option<wgpu::Buffer>,
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
    /// Tuned conv configurations for this adapter, by [`ConvProblem::key`].
    tuned: Mutex<BTreeMap<String, ConvConfig>>,
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
        let kernels = ctx.scoped("compiling the shaders", || Kernels::new(&ctx))??;
        let start = std::time::Instant::now();
        let layers = prepare(&ctx, &kernels, &graph, weights)?;
        // The fold pipelines reach disk with the first plan's (`plan` saves the cache).
        log_compiles("weights prepared", start, &kernels, CompileStats::default());
        let tuned = load_tuned(&ctx);
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
            tuned: Mutex::new(tuned),
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
        let plan = Arc::new(Mutex::new(self.build_plan_and_cache(n, h, w)?));
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
            scratch_bytes: plan.scratch.as_ref().map_or(0, |b| b.size()),
            weight_bytes: self.weight_bytes,
            gflops: plan.steps.iter().map(|s| s.flops as f64).sum::<f64>() / 1e9,
        })
    }

    /// How a conv runs: the tuned configuration for this adapter and shape when there is a
    /// valid one (and no kernel was forced), else the heuristic.
    pub fn conv_config(&self, p: &ConvProblem) -> ConvConfig {
        let ctx = &self.ctx;
        let fit = DeviceFit::of(&ctx.limits);
        if !ctx.conv_kernel_forced {
            let tuned = self
                .tuned
                .lock()
                .ok()
                .and_then(|t| t.get(&p.key()).copied());
            match tuned.map(|c| (c, c.check(p, &fit))) {
                Some((c, Ok(()))) => return c,
                Some((c, Err(why))) => log::warn!(
                    "tuned {} for `{}` cannot run here ({why}); using the heuristic",
                    c.describe(),
                    p.key()
                ),
                None => {}
            }
        }
        ConvConfig::heuristic(p, ctx.prefer_register_kernels, !ctx.is_cpu(), &fit)
    }

    /// Replaces the tuned conv configurations (by [`ConvProblem::key`]) and drops the plans
    /// built so far, so the next inference uses them.
    pub fn set_conv_configs(&self, configs: BTreeMap<String, ConvConfig>) -> Result<()> {
        *self
            .tuned
            .lock()
            .map_err(|_| Error::Gpu("tuning table poisoned".into()))? = configs;
        self.plans
            .lock()
            .map_err(|_| Error::Gpu("plan cache poisoned".into()))?
            .clear();
        Ok(())
    }

    /// Every conv of the network at `(n, h, w)`: node name and problem, in graph order.
    pub fn conv_problems(
        &self,
        n: usize,
        h: usize,
        w: usize,
    ) -> Result<Vec<(String, ConvProblem)>> {
        let shapes = self.graph.infer_shapes(n, h, w)?;
        Ok(self
            .graph
            .nodes
            .iter()
            .zip(self.node_problems(&shapes))
            .filter_map(|(node, p)| Some((node.name.clone(), p?)))
            .collect())
    }

    /// Per node, the conv problem at these shapes (`None` for other ops).
    fn node_problems(&self, shapes: &[Shape]) -> Vec<Option<ConvProblem>> {
        self.graph
            .nodes
            .iter()
            .map(|node| match &node.op {
                Op::Conv(c) => Some(conv_problem(
                    c,
                    shapes[node.inputs[0]],
                    shapes[node.output],
                    node.inputs.len() > 1,
                )),
                _ => None,
            })
            .collect()
    }

    /// Per node, the conv problem and the configuration it runs under (`None` for other ops).
    fn conv_choices(&self, shapes: &[Shape]) -> Vec<Option<(ConvProblem, ConvConfig)>> {
        self.node_problems(shapes)
            .into_iter()
            .map(|p| p.map(|p| (p, self.conv_config(&p))))
            .collect()
    }

    /// Whether compiled pipelines are kept on disk between runs, and where.
    pub fn pipeline_cache(&self) -> &PipelineCacheState {
        self.kernels.pipeline_cache()
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
        // How each conv runs, decided once: buffer sizes, compilation and dispatch agree
        // even if the tuned table changes meanwhile.
        let convs = self.conv_choices(&shapes);
        // Every pipeline of the plan at once, in parallel: the steps below find them made.
        self.create_pipelines(&convs)?;
        let readback_bytes = shapes[graph.output]
            .bytes()
            .max(shapes[graph.features].bytes());
        // Split-K convs share one partial-sum buffer, sized for the largest.
        let scratch_bytes = convs
            .iter()
            .flatten()
            .map(|(p, config)| config.scratch_bytes(p))
            .max()
            .unwrap_or(0);
        // Out of memory here is the likeliest GPU error of all: keep it in a scope.
        let (slots, readback, dummy, scratch) =
            ctx.scoped("allocating activation buffers", || {
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
                let scratch = (scratch_bytes > 0).then(|| {
                    ctx.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("split-K partial sums"),
                        size: scratch_bytes,
                        usage: wgpu::BufferUsages::STORAGE,
                        mapped_at_creation: false,
                    })
                });
                (slots, readback, dummy, scratch)
            })?;
        let mut steps = Vec::new();
        ctx.scoped("building the plan", || -> Result<()> {
            for (index, node) in graph.nodes.iter().enumerate() {
                let x = shapes[node.inputs[0]];
                let y = shapes[node.output];
                let slot = |v: usize| &slots[memory.slot_of[v]];
                if let Some((p, config)) = &convs[index] {
                    let l = &self.layers[&node.name];
                    let buffers = ConvBuffers {
                        input: slot(node.inputs[0]),
                        weight: &l.weight,
                        bias: &l.bias,
                        residual: node.inputs.get(1).map(|&r| slot(r)),
                        output: slot(node.output),
                        scratch: scratch.as_ref(),
                        unused: &dummy,
                    };
                    steps.extend(conv_steps(
                        ctx,
                        &self.kernels,
                        &node.name,
                        p,
                        config,
                        &buffers,
                    )?);
                    continue;
                }
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
                    Op::Conv(_) => unreachable!("convolutions are built above"),
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
                    _uniform: params,
                });
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
            scratch,
        })
    }
}

/// The tuned configurations for this adapter from the disk cache, if any. A cache that
/// cannot be read is a warning: inference goes on with the heuristics.
fn load_tuned(ctx: &GpuContext) -> BTreeMap<String, ConvConfig> {
    let Some(dir) = ctx.disk_cache.dir() else {
        return BTreeMap::new();
    };
    match TuneCache::load(&TuneCache::path(&dir)) {
        Ok(cache) => {
            let tuned = cache.configs_for(&TuneCache::adapter_key(&ctx.info));
            if !tuned.is_empty() {
                log::info!("{} tuned conv shapes from {}", tuned.len(), dir.display());
            }
            tuned
        }
        Err(e) => {
            log::warn!("ignoring the tuning cache: {e}");
            BTreeMap::new()
        }
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
