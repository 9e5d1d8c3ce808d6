//! The engine: a loaded network on one device. It owns the prepared weights and, per input
//! size, a static plan (`plan`) — activation buffers reused by liveness, pipelines and bind
//! groups made once — so that an inference is one buffer write, one command buffer and one
//! readback. A batch that does not fit the adapter runs as the fewest sub-batches that do.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use super::context::{GpuContext, GpuOptions};
use super::kernels::{CompileStats, Kernels};
use super::ops;
use super::ops::conv::{ConvConfig, ConvProblem, DeviceFit};
use super::ops::fold_bn::{prepare, prepare_pre_acts, LayerWeights};
use super::pipeline_cache::PipelineCacheState;
use super::plan::{check_limits, conv_problems, GpuPlan, PlanInputs, PlanStats};
use super::precision::Precision;
use super::readback::{copy_out, copy_out_stored, read_stored};
use super::tuning::cache::TuneCache;
use crate::error::{Error, Result};
use crate::graph::plan::MemoryPlan;
use crate::graph::{Graph, InputSize};
use crate::model::{Model, Network};
use crate::platform::{self, Instant};
use crate::weights::WeightsFile;

/// Which value an inference reads back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    /// `(N, classes)` raw logits.
    Logits,
    /// `(N, C)` pooled penultimate features (embeddings).
    Features,
}

/// A cached plan; each runs under its own lock, so different sizes run concurrently.
type SharedPlan = Arc<Mutex<GpuPlan>>;

/// A loaded network on one device. Shareable across threads: plans are built once per
/// input size and each runs under its own lock.
pub struct Engine {
    pub ctx: Arc<GpuContext>,
    pub(crate) kernels: Kernels,
    /// What the weights were detected as (`None` for a bare graph).
    pub model: Option<Model>,
    pub graph: Graph,
    pub(crate) layers: BTreeMap<String, LayerWeights>,
    /// Per pre-activating node, its BatchNorm's `[scale; C] ++ [shift; C]`.
    pub(crate) pre_acts: BTreeMap<String, wgpu::Buffer>,
    weight_bytes: u64,
    plans: Mutex<HashMap<InputSize, SharedPlan>>,
    /// Tuned conv configurations for this adapter, by [`ConvProblem::key`].
    tuned: Mutex<BTreeMap<String, ConvConfig>>,
}

// Servers share one engine between threads (`Arc<Engine>`): fail the build if a field ever
// makes it lose Send or Sync.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Engine>();
};

impl Engine {
    /// Detects the architecture of `weights` (with the `config.json` beside it), checks
    /// every value is finite, opens a device and prepares the weights.
    pub fn load(weights: &WeightsFile, options: &GpuOptions) -> Result<Self> {
        let network = Network::detect(weights)?;
        Self::load_network(network, weights, options)
    }

    /// Like [`Engine::load`] on an already open device.
    pub fn load_on(ctx: Arc<GpuContext>, weights: &WeightsFile) -> Result<Self> {
        Self::from_network(ctx, Network::detect(weights)?, weights)
    }

    /// Opens a device for a network the caller has already detected and checked
    /// ([`Network::detect`]): nothing is detected or scanned again.
    pub fn load_network(
        network: Network,
        weights: &WeightsFile,
        options: &GpuOptions,
    ) -> Result<Self> {
        let ctx = Arc::new(GpuContext::new(options)?);
        Self::from_network(ctx, network, weights)
    }

    /// [`Engine::load_network`] without blocking: the way to load in a browser.
    pub async fn load_network_async(
        network: Network,
        weights: &WeightsFile,
        options: &GpuOptions,
    ) -> Result<Self> {
        let ctx = Arc::new(GpuContext::new_async(options).await?);
        Self::from_network_async(ctx, network, weights).await
    }

    /// [`Engine::from_network`] without blocking: the GPU work of loading is queued at once,
    /// and its errors (known only later in a browser) are awaited before this returns.
    pub async fn from_network_async(
        ctx: Arc<GpuContext>,
        network: Network,
        weights: &WeightsFile,
    ) -> Result<Self> {
        let engine = Self::from_network(ctx, network, weights)?;
        engine.ctx.settle().await?;
        Ok(engine)
    }

    /// Like [`Engine::load_network`] on an already open device.
    pub fn from_network(
        ctx: Arc<GpuContext>,
        network: Network,
        weights: &WeightsFile,
    ) -> Result<Self> {
        let mut engine = Self::from_graph(ctx, network.graph, weights)?;
        engine.model = Some(network.model);
        Ok(engine)
    }

    /// Any graph over the ops (kernel tests build one-op graphs).
    pub fn from_graph(ctx: Arc<GpuContext>, graph: Graph, weights: &WeightsFile) -> Result<Self> {
        let kernels = ctx.scoped("compiling the shaders", || {
            Kernels::new(&ctx, &ops::all_kernels())
        })??;
        let start = Instant::now();
        let layers = prepare(&ctx, &kernels, &ops::folds(&graph), weights)?;
        let pre_acts = prepare_pre_acts(&ctx, &graph, weights)?;
        // The fold pipelines reach disk with the first plan's (`plan` saves the cache).
        log_compiles("weights prepared", start, &kernels, CompileStats::default());
        let tuned = TuneCache::tuned_for(&ctx);
        let weight_bytes = layers.values().map(LayerWeights::bytes).sum();
        Ok(Engine {
            ctx,
            kernels,
            model: None,
            graph,
            layers,
            pre_acts,
            weight_bytes,
            plans: Mutex::new(HashMap::new()),
            tuned: Mutex::new(tuned),
        })
    }

    /// Runs one inference on an NCHW input `(n, C_in, h, w)` and returns the requested output,
    /// row-major `(n, features)`.
    ///
    /// A batch whose plan would exceed the adapter's buffer limits is split into the fewest
    /// sub-batches that fit, of near-equal sizes (so at most two plans); every image is
    /// computed exactly as in one batch, so the result is the same. A single image that does
    /// not fit is an [`Error::AdapterLimit`] naming the limit.
    pub fn run(
        &self,
        input: &[f32],
        n: usize,
        h: usize,
        w: usize,
        output: Output,
    ) -> Result<Vec<f32>> {
        self.run_at(input, InputSize::image(n, h, w), output)
    }

    /// [`Engine::run`] at any input size: images `(n, C_in, h, w)` or clips
    /// `(n, C_in, t, h, w)` (NCTHW), split into sub-batches of whole clips when needed.
    pub fn run_at(&self, input: &[f32], size: InputSize, output: Output) -> Result<Vec<f32>> {
        platform::block_on(self.run_async(input, size, output), "Engine::run_async")
    }

    /// [`Engine::run_at`] without blocking: the way to run in a browser. Natively it never
    /// yields (the wait for the GPU blocks inside), so it may hold a plan's lock throughout.
    pub async fn run_async(
        &self,
        input: &[f32],
        size: InputSize,
        output: Output,
    ) -> Result<Vec<f32>> {
        let c = self.graph.input_channels;
        let per_item = [size.t, size.h, size.w]
            .into_iter()
            .try_fold(c, |acc, d| acc.checked_mul(d));
        let expected = per_item.and_then(|v| v.checked_mul(size.n));
        if expected != Some(input.len()) {
            return Err(Error::InputShape(format!(
                "input has {} values, expected {}",
                input.len(),
                size.describe(c)
            )));
        }
        let per_item = per_item.unwrap_or(0);
        let sizes = self.sub_batches(size)?;
        if sizes.len() == 1 {
            return self.run_batch(input, size, output).await;
        }
        log::info!(
            "batch {} exceeds the adapter's limits; running {sizes:?}",
            size.describe(c)
        );
        let mut out = Vec::new();
        let mut start = 0;
        for n in sizes {
            let part = &input[start * per_item..(start + n) * per_item];
            out.extend(self.run_batch(part, size.with_batch(n), output).await?);
            start += n;
        }
        Ok(out)
    }

    /// The sub-batches [`Engine::run_at`] splits a batch into: `[n]` when it fits, else the
    /// fewest that fit, of near-equal sizes, larger first.
    pub fn sub_batches(&self, size: InputSize) -> Result<Vec<usize>> {
        let n = size.n;
        let fit = self.max_batch(size)?;
        let chunks = n.div_ceil(fit.max(1));
        let (base, extra) = (n / chunks, n % chunks);
        Ok((0..chunks).map(|i| base + usize::from(i < extra)).collect())
    }

    /// The largest batch, at most `size.n`, whose plan fits the adapter's limits. Found on
    /// the CPU from shapes and memory plans alone, without allocating anything.
    pub fn max_batch(&self, size: InputSize) -> Result<usize> {
        let n = size.n;
        if n == 0 {
            // No batch to split: the shape error says so.
            self.graph.shapes_for(size)?;
        }
        if self.check_fits(size).is_ok() {
            return Ok(n);
        }
        // One image (clip) must fit; if it does not, its error names the limit.
        self.check_fits(size.with_batch(1))?;
        // Every buffer grows with the batch, so fitting is monotonic: bisect.
        let (mut lo, mut hi) = (1, n);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.check_fits(size.with_batch(mid)).is_ok() {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Whether the plan for `size` fits the adapter's limits, from the CPU memory plan
    /// alone; if not, the error names the limit.
    pub(crate) fn check_fits(&self, size: InputSize) -> Result<()> {
        let shapes = self.graph.shapes_for(size)?;
        let memory = MemoryPlan::with_element_bytes(
            &self.graph,
            &shapes,
            true,
            self.ctx.precision.element_bytes(),
        );
        check_limits(&self.ctx, size, &shapes, &memory)
    }

    /// One batch through one plan: a buffer write, one command buffer, a readback. Callers
    /// go through [`Engine::run_async`], which splits batches that do not fit.
    ///
    /// The plan's lock is held until its readback buffer is unmapped: another inference on the
    /// same plan would write its buffers meanwhile. Natively the future never yields while
    /// holding it (the wait blocks); in a page an overlapping call is refused.
    #[allow(clippy::await_holding_lock)]
    async fn run_batch(&self, input: &[f32], size: InputSize, output: Output) -> Result<Vec<f32>> {
        let plan = self.plan(size)?;
        let plan = platform::lock_across_await(&plan, "an inference on this engine")?;
        let ctx = &self.ctx;
        let (submission, stored) = ctx.scoped("running the network", || {
            let mut encoder = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("inference"),
                });
            let bytes = self.encode_batch(&plan, input, output, &mut encoder);
            (ctx.queue.submit([encoder.finish()]), bytes)
        })?;
        read_stored(ctx, &plan.readback, stored, Some(submission)).await
    }

    /// Writes `input` into `plan`'s input buffer and records its pass and the copy of
    /// `output` into its readback buffer; returns the bytes to read back once submitted and
    /// the values they hold (stored in the context's precision: [`Precision::decode`]). The
    /// input is converted to that precision here. An ensemble records every member's batch
    /// into one encoder: one submission for all.
    pub(crate) fn encode_batch(
        &self,
        plan: &GpuPlan,
        input: &[f32],
        output: Output,
        encoder: &mut wgpu::CommandEncoder,
    ) -> (u64, usize) {
        let value = match output {
            Output::Logits => self.graph.output,
            Output::Features => self.graph.features,
        };
        let precision = self.ctx.precision;
        let len = plan.shapes[value].numel();
        let bytes = precision.bytes(len as u64);
        let stored = match precision {
            Precision::F32 => std::borrow::Cow::Borrowed(bytemuck::cast_slice(input)),
            Precision::F16 => std::borrow::Cow::Owned(precision.encode(input)),
        };
        self.ctx
            .queue
            .write_buffer(&plan.slots[plan.input_slot], 0, &stored);
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("network"),
                timestamp_writes: None,
            });
            for step in &plan.steps {
                step.encode(&mut pass);
            }
        }
        encoder.copy_buffer_to_buffer(plan.slot_of(value), 0, &plan.readback, 0, bytes);
        (bytes, len)
    }

    /// The plan for `size`, built on first use.
    pub fn plan(&self, size: InputSize) -> Result<Arc<Mutex<GpuPlan>>> {
        let mut plans = self
            .plans
            .lock()
            .map_err(|_| Error::Gpu("plan cache poisoned".into()))?;
        if let Some(p) = plans.get(&size) {
            return Ok(p.clone());
        }
        let plan = Arc::new(Mutex::new(self.build_plan(size)?));
        plans.insert(size, plan.clone());
        Ok(plan)
    }

    /// Builds a plan, logs what compiling its pipelines cost (`-v`) and saves the pipeline
    /// cache if anything new was compiled.
    fn build_plan(&self, size: InputSize) -> Result<GpuPlan> {
        let (start, before) = (Instant::now(), self.kernels.compile_stats());
        let inputs = PlanInputs {
            ctx: &self.ctx,
            kernels: &self.kernels,
            graph: &self.graph,
            layers: &self.layers,
            pre_acts: &self.pre_acts,
        };
        let plan = GpuPlan::build(&inputs, size, &|p| self.conv_config(p))?;
        log_compiles(
            &format!("plan {} built", size.describe(self.graph.input_channels)),
            start,
            &self.kernels,
            before,
        );
        self.kernels.save_pipeline_cache();
        Ok(plan)
    }

    pub fn stats(&self, size: InputSize) -> Result<PlanStats> {
        let plan = self.plan(size)?;
        let plan = plan
            .lock()
            .map_err(|_| Error::Gpu("plan lock poisoned".into()))?;
        Ok(PlanStats {
            batch: size.n,
            frames: size.t,
            height: size.h,
            width: size.w,
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
        ConvConfig::default_for(p, ctx, &fit)
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

    /// Every conv of the network at `size`: node name and problem, in graph order.
    pub fn conv_problems(&self, size: InputSize) -> Result<Vec<(String, ConvProblem)>> {
        let shapes = self.graph.shapes_for(size)?;
        Ok(self
            .graph
            .nodes
            .iter()
            .zip(conv_problems(&self.graph, &shapes))
            .filter_map(|(node, p)| Some((node.name.clone(), p?)))
            .collect())
    }

    /// Whether compiled pipelines are kept on disk between runs, and where.
    pub fn pipeline_cache(&self) -> &PipelineCacheState {
        self.kernels.pipeline_cache()
    }

    /// The prepared (folded, re-laid) weight and bias of a node, read back for tests.
    pub fn layer_weights(&self, node: &str) -> Result<(Vec<f32>, Vec<f32>)> {
        let l = self.layer(node)?;
        Ok((
            copy_out_stored(&self.ctx, &l.weight, l.len)?,
            copy_out(&self.ctx, &l.bias)?,
        ))
    }

    /// The prepared weights of a node.
    pub(crate) fn layer(&self, node: &str) -> Result<&LayerWeights> {
        self.layers
            .get(node)
            .ok_or_else(|| Error::Usage(format!("no layer `{node}`")))
    }
}

/// Logs how long a load step took and what of it went into compiling pipelines: the part
/// of a cold start that caches and parallel compilation address.
fn log_compiles(what: &str, start: Instant, kernels: &Kernels, before: CompileStats) {
    let now = kernels.compile_stats();
    log::info!(
        "{what} in {:.1} ms; {} pipelines compiled, {:.1} ms in creation calls",
        start.elapsed().as_secs_f64() * 1e3,
        now.pipelines - before.pipelines,
        (now.time - before.time).as_secs_f64() * 1e3
    );
}
