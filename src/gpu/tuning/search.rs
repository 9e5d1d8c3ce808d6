//! The autotuner behind `resnet tune`: for each distinct conv shape of a network, time the
//! candidate configurations with GPU timestamps and keep the fastest one that also matches
//! the CPU reference.
//!
//! Search, per shape: a local search from the heuristic choice of each kernel (register-only
//! and tiled), for eligible 1×1 convs from both GEMM kernels' defaults, and for stride-1 3×3
//! dense convs from Winograd F(2×2) and F(4×4) — so the algorithm is chosen per shape — over tile
//! sizes, split-K and the Winograd tile side, one step (halve or double a dimension) at a time;
//! or, with `exhaustive`, every tile configuration and then split-K of the three fastest tiled
//! ones. Each candidate is screened with one warm-up and one timed run; those within
//! `SCREEN_FACTOR` of the best so far get the full measurement (≥ 3 warm-ups, median of ≥ 5).
//! The winner's output is checked against [`crate::reference::conv_rows`] on sampled pixels;
//! a winner that fails is reported and the next fastest is checked instead.

use std::collections::HashSet;

use super::{ShapeTuning, TuneOptions, TuneReport};
use crate::error::{Error, Result};
use crate::gpu::engine::Engine;
use crate::gpu::limits::check_size;
use crate::gpu::ops::conv::steps::{conv_steps, ConvBuffers};
use crate::gpu::ops::conv::{ConvAlgo, ConvConfig, ConvProblem, DeviceFit, SPLITS};
use crate::gpu::ops::fold_bn::LayerWeights;
use crate::gpu::ops::node_op::StepEnv;
use crate::gpu::precision::Precision;
use crate::gpu::readback::{copy_out, copy_out_stored};
use crate::gpu::timing::{median, time_repeated, TimingMethod};
use crate::graph::InputSize;
use crate::reference::{conv_rows, relative_error, sample_rows, scale_shift_relu};

/// A candidate whose screening run is slower than this multiple of the best so far is
/// dropped without the full measurement.
const SCREEN_FACTOR: f64 = 1.5;
/// Pixels checked against the CPU reference per winner.
const VERIFY_ROWS: usize = 48;
/// Largest `max|got − want| / max|want|` a winner may have (f32 against f64).
const VERIFY_TOL: f64 = 1e-4;
/// The same in f16: the reference reads the very f16 values the kernel reads (input,
/// residual and weight rounded alike), so what remains is the f16 rounding of the output,
/// at most 2⁻¹¹ ≈ 4.9e-4 of each value, and f32 summation order: twice that bound.
const VERIFY_TOL_F16: f64 = 1e-3;
/// Local search: most moves from a starting point, and the least gain worth a move.
const MAX_MOVES: usize = 8;
const MIN_GAIN: f64 = 0.02;
/// Alternating default/winner measurements that confirm a winner.
const CONFIRM_ROUNDS: usize = 3;

/// One measured configuration.
struct Timed {
    config: ConvConfig,
    ms: f64,
}

impl Engine {
    /// Tunes every distinct conv shape of the network at `size`. `progress` hears
    /// `(shape index, shape count, key)` before each shape.
    pub fn tune(
        &self,
        size: InputSize,
        options: TuneOptions,
        progress: &mut dyn FnMut(usize, usize, &str),
    ) -> Result<TuneReport> {
        // The whole network must fit at this size: refused before anything is allocated.
        self.check_fits(size)?;
        let options = TuneOptions {
            warmup: options.warmup.max(3),
            iters: options.iters.max(5),
            ..options
        };
        // Distinct shapes in network order, with every node that has them.
        let mut shapes: Vec<(ConvProblem, Vec<String>)> = Vec::new();
        for (name, p) in self.conv_problems(size)? {
            match shapes.iter_mut().find(|(q, _)| q.key() == p.key()) {
                Some((_, nodes)) => nodes.push(name),
                None => shapes.push((p, vec![name])),
            }
        }
        let mut report = TuneReport {
            adapter: self.ctx.info.to_string(),
            method: TimingMethod::for_device(&self.ctx.device),
            batch: size.n,
            frames: size.t,
            height: size.h,
            width: size.w,
            shapes: Vec::new(),
        };
        let count = shapes.len();
        for (i, (p, nodes)) in shapes.into_iter().enumerate() {
            progress(i, count, &p.key());
            report.shapes.push(self.tune_shape(&p, nodes, options)?);
        }
        Ok(report)
    }

    fn tune_shape(
        &self,
        p: &ConvProblem,
        nodes: Vec<String>,
        options: TuneOptions,
    ) -> Result<ShapeTuning> {
        let node = nodes[0].clone();
        let bench = Bench::new(self, p, &node)?;
        let fit = &bench.fit;
        let ctx = &self.ctx;
        let default = ConvConfig::default_for(p, ctx, fit);
        let default_ms = bench
            .measure(&default, options.warmup, options.iters)?
            .ok_or_else(|| {
                Error::Gpu(format!(
                    "{}: the default configuration does not compile",
                    bench.node
                ))
            })?;
        let mut search = Search {
            bench: &bench,
            options,
            timed: vec![Timed {
                config: default,
                ms: default_ms,
            }],
            seen: HashSet::new(),
        };
        if options.exhaustive {
            search.exhaustive()?;
        } else {
            search.local()?;
        }
        search.timed.sort_by(|a, b| a.ms.total_cmp(&b.ms));
        let tried = search.seen.len() + 1;
        let winner = bench.verified_winner(&search.timed, default, default_ms, options)?;
        Ok(ShapeTuning {
            key: p.key(),
            gflop: p.flops() as f64 / 1e9,
            nodes,
            default,
            default_ms: winner.default_ms,
            best: winner.config,
            best_ms: winner.ms,
            tried,
            verify_error: winner.error,
            rejected: winner.rejected,
        })
    }
}

/// Device buffers for timing one conv shape, on seeded inputs (runs are repeatable, and
/// the winner's check needs the values).
struct Bench<'a> {
    engine: &'a Engine,
    p: &'a ConvProblem,
    /// The first node of this shape: its weights are the ones timed.
    node: &'a str,
    layer: &'a LayerWeights,
    /// The node's pre-activation `[scale; C] ++ [shift; C]`, when it has one.
    pre_act: Option<&'a wgpu::Buffer>,
    fit: DeviceFit,
    x: Vec<f32>,
    residual: Option<Vec<f32>>,
    /// Partial sums for the largest split that fits a binding.
    max_scratch: u64,
    input: wgpu::Buffer,
    residual_buffer: Option<wgpu::Buffer>,
    output: wgpu::Buffer,
    scratch: Option<wgpu::Buffer>,
    unused: wgpu::Buffer,
    unused_writable: wgpu::Buffer,
}

impl<'a> Bench<'a> {
    fn new(engine: &'a Engine, p: &'a ConvProblem, node: &'a str) -> Result<Self> {
        let ctx = &engine.ctx;
        let fit = DeviceFit::of(&ctx.limits);
        let (in_len, out_len) = (p.input_numel(), p.m() * p.out_c);
        // Sizes are checked before any host data is made: a shape too large for the
        // adapter is refused, not built in host memory first.
        let stored = |len: usize| ctx.precision.bytes(len as u64);
        check_size(ctx, "tuning input", stored(in_len))?;
        check_size(ctx, "tuning output", stored(out_len))?;
        // The search may reach any split whatever the tiles; grouped convs never split.
        let max_scratch = SPLITS[1..]
            .iter()
            .rev()
            .map(|&s| s as u64 * out_len as u64 * 4)
            .find(|&bytes| bytes <= fit.binding_bytes)
            .filter(|_| !p.grouped())
            .unwrap_or(0)
            .max(winograd_scratch(p, &fit));
        check_size(ctx, "tuning partial sums", max_scratch)?;
        // Rounded to the stored precision, so the CPU reference reads what the kernel reads.
        let x = ctx.precision.round(&seeded(in_len, 1));
        let residual = p.residual.then(|| ctx.precision.round(&seeded(out_len, 2)));
        let storage = |label: &str, bytes: u64, data: Option<&[f32]>| {
            let b = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes.max(16),
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            if let Some(d) = data {
                ctx.queue.write_buffer(&b, 0, &ctx.precision.encode(d));
            }
            b
        };
        let (input, residual_buffer, output, scratch, unused, unused_writable) =
            ctx.scoped("allocating tuning buffers", || {
                (
                    storage("tuning input", stored(in_len), Some(&x)),
                    residual
                        .as_deref()
                        .map(|r| storage("tuning residual", stored(out_len), Some(r))),
                    storage("tuning output", stored(out_len), None),
                    (max_scratch > 0).then(|| storage("tuning partial sums", max_scratch, None)),
                    storage("unused binding", 16, None),
                    storage("unused writable binding", 16, None),
                )
            })?;
        Ok(Bench {
            engine,
            p,
            node,
            layer: engine.layer(node)?,
            pre_act: engine.pre_acts.get(node),
            fit,
            x,
            residual,
            max_scratch,
            input,
            residual_buffer,
            output,
            scratch,
            unused,
            unused_writable,
        })
    }

    /// Median GPU ms of `config` over `iters` runs after `warmup`, or None when the adapter
    /// rejects its pipeline (or its partial sums do not fit).
    fn measure(&self, config: &ConvConfig, warmup: usize, iters: usize) -> Result<Option<f64>> {
        if config.scratch_bytes(self.p) > self.max_scratch {
            return Ok(None);
        }
        let buffers = ConvBuffers {
            input: &self.input,
            weight: &self.layer.weight,
            bias: &self.layer.bias,
            residual: self.residual_buffer.as_ref(),
            output: &self.output,
            scratch: self.scratch.as_ref(),
            pre_act: self.pre_act,
            unused: &self.unused,
            unused_writable: &self.unused_writable,
            winograd: Some(&self.layer.winograd),
        };
        let env = StepEnv {
            ctx: &self.engine.ctx,
            kernels: &self.engine.kernels,
        };
        let steps = match conv_steps(env, self.node, self.p, config, &buffers) {
            Ok(s) => s,
            Err(Error::Shader { name, msg }) => {
                let what = config.describe();
                log::info!("{what}: {name} rejected by the adapter: {msg}");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let refs: Vec<_> = steps.iter().collect();
        let (_, mut ms) = time_repeated(&self.engine.ctx, &refs, warmup, iters)?;
        Ok(Some(median(&mut ms)))
    }

    /// Compiles a round's candidates in parallel before they are timed one by one. A
    /// failure here only means some candidate does not compile: `measure` skips it.
    fn precompile(&self, configs: &[ConvConfig]) {
        let requests: Vec<_> = configs.iter().flat_map(|c| c.pipelines(self.p)).collect();
        let engine = self.engine;
        if let Err(e) = engine
            .kernels
            .create_pipelines(&engine.ctx.device, &requests)
        {
            log::debug!("{}: some candidates do not compile: {e}", self.p.key());
        }
    }

    /// The fastest of `timed` (sorted, fastest first) that matches the CPU reference and,
    /// unless it is the default, beats the default again in alternating runs.
    fn verified_winner(
        &self,
        timed: &[Timed],
        default: ConvConfig,
        default_ms: f64,
        options: TuneOptions,
    ) -> Result<Winner> {
        let ctx = &self.engine.ctx;
        let p = self.p;
        let (w_kc, bias) = (
            copy_out_stored(ctx, &self.layer.weight, self.layer.len)?,
            copy_out(ctx, &self.layer.bias)?,
        );
        let rows = sample_rows(p.m(), VERIFY_ROWS);
        // The conv reads the pre-activated input: so does the reference.
        let x = match self.pre_act {
            Some(buffer) => scale_shift_relu(&self.x, p.in_c, &copy_out(ctx, buffer)?),
            None => self.x.clone(),
        };
        let want = conv_rows(p, &x, &w_kc, &bias, self.residual.as_deref(), &rows);
        let mut rejected = Vec::new();
        // Set when the fastest verified configuration did not beat the default again.
        let mut only_default = false;
        for t in timed {
            if only_default && t.config != default {
                continue;
            }
            let Some(error) = self.error_against(&t.config, &rows, &want)? else {
                continue;
            };
            let tolerance = match ctx.precision {
                Precision::F32 => VERIFY_TOL,
                Precision::F16 => VERIFY_TOL_F16,
            };
            if error > tolerance {
                log::error!(
                    "{}: {} is wrong on {} (relative error {error:.2e}); not used",
                    p.key(),
                    t.config.describe(),
                    self.node
                );
                rejected.push(t.config.describe());
                continue;
            }
            let (mut default_ms, mut best_ms) = (default_ms, t.ms);
            if t.config != default {
                (default_ms, best_ms) = self.confirm(&default, &t.config, options.iters)?;
                if best_ms >= default_ms * (1.0 - MIN_GAIN) {
                    log::info!(
                        "{}: {} ({best_ms:.3} ms) not confirmed against the default ({default_ms:.3} ms)",
                        p.key(),
                        t.config.describe()
                    );
                    only_default = true;
                    continue;
                }
            }
            return Ok(Winner {
                config: t.config,
                ms: best_ms,
                default_ms,
                error,
                rejected,
            });
        }
        Err(Error::Gpu(format!(
            "{}: no configuration matches the CPU reference (tried {rejected:?})",
            self.node
        )))
    }

    /// One more run of `config` on the seeded input, compared with the reference on the
    /// sampled pixel `rows`; None when the configuration does not run.
    fn error_against(
        &self,
        config: &ConvConfig,
        rows: &[usize],
        want: &[f32],
    ) -> Result<Option<f64>> {
        if self.measure(config, 0, 1)?.is_none() {
            return Ok(None);
        }
        let c = self.p.out_c;
        let out = copy_out_stored(&self.engine.ctx, &self.output, self.p.m() * c)?;
        let got: Vec<f32> = rows
            .iter()
            .flat_map(|&m| out[m * c..(m + 1) * c].iter().copied())
            .collect();
        Ok(Some(relative_error(&got, want)))
    }

    /// Medians of the default and a challenger measured alternately, so a burst of load on
    /// the machine during the search cannot crown a configuration that is not faster.
    fn confirm(
        &self,
        default: &ConvConfig,
        challenger: &ConvConfig,
        iters: usize,
    ) -> Result<(f64, f64)> {
        let (mut d, mut b) = (Vec::new(), Vec::new());
        for _ in 0..CONFIRM_ROUNDS {
            d.extend(self.measure(default, 1, iters)?);
            b.extend(self.measure(challenger, 1, iters)?);
        }
        Ok((median(&mut d), median(&mut b)))
    }
}

/// The verified fastest configuration of a shape.
struct Winner {
    config: ConvConfig,
    ms: f64,
    default_ms: f64,
    /// Its error against the CPU reference on sampled pixels.
    error: f64,
    /// Faster configurations whose output did not match the reference.
    rejected: Vec<String>,
}

/// The configurations timed so far for one shape.
struct Search<'a> {
    bench: &'a Bench<'a>,
    options: TuneOptions,
    timed: Vec<Timed>,
    seen: HashSet<ConvConfig>,
}

impl Search<'_> {
    fn best_ms(&self) -> f64 {
        self.timed
            .iter()
            .map(|t| t.ms)
            .fold(f64::INFINITY, f64::min)
    }

    fn ms_of(&self, config: &ConvConfig) -> Option<f64> {
        self.timed
            .iter()
            .find(|t| t.config == *config)
            .map(|t| t.ms)
    }

    /// Screens `config` with one run and measures it fully if it is within reach of the
    /// best so far. Each configuration is timed once.
    fn consider(&mut self, config: ConvConfig) -> Result<()> {
        if self.ms_of(&config).is_some() || !self.seen.insert(config) {
            return Ok(());
        }
        let Some(screen) = self.bench.measure(&config, 1, 1)? else {
            return Ok(());
        };
        if screen > SCREEN_FACTOR * self.best_ms() {
            log::debug!("{}: screened out at {screen:.3} ms", config.describe());
            return Ok(());
        }
        let (warmup, iters) = (self.options.warmup, self.options.iters);
        if let Some(ms) = self.bench.measure(&config, warmup, iters)? {
            log::debug!("{}: {ms:.3} ms", config.describe());
            self.timed.push(Timed { config, ms });
        }
        Ok(())
    }

    fn consider_all(&mut self, configs: Vec<ConvConfig>) -> Result<()> {
        self.bench.precompile(&configs);
        configs.into_iter().try_for_each(|c| self.consider(c))
    }

    /// Every tile configuration, then split-K on top of the three fastest tiled ones.
    fn exhaustive(&mut self) -> Result<()> {
        let bench = self.bench;
        let (p, fit) = (bench.p, &bench.fit);
        self.consider_all(ConvConfig::candidates(p, fit))?;
        let mut tiled: Vec<&Timed> = self
            .timed
            .iter()
            .filter(|t| t.config.algo == ConvAlgo::Tiled && t.config.split_k == 1)
            .collect();
        tiled.sort_by(|a, b| a.ms.total_cmp(&b.ms));
        let splits: Vec<ConvConfig> = tiled
            .iter()
            .take(3)
            .flat_map(|t| t.config.splits_of(p, fit))
            .collect();
        self.consider_all(splits)
    }

    /// From each starting point ([`ConvConfig::starting_points`]: every kernel's default,
    /// Winograd's tile sides included): measure every neighbour of the current point,
    /// move to the fastest while it gains, stop at a local optimum.
    fn local(&mut self) -> Result<()> {
        let bench = self.bench;
        let (p, fit) = (bench.p, &bench.fit);
        let gpu = !bench.engine.ctx.is_cpu();
        for start in ConvConfig::starting_points(p, gpu, fit) {
            self.consider(start)?;
            let mut current = start;
            for _ in 0..MAX_MOVES {
                let Some(here) = self.ms_of(&current) else {
                    break;
                };
                self.consider_all(current.neighbours(p, fit))?;
                let next = current
                    .neighbours(p, fit)
                    .into_iter()
                    .filter_map(|c| self.timed.iter().find(|t| t.config == c))
                    .min_by(|a, b| a.ms.total_cmp(&b.ms));
                match next {
                    Some(t) if t.ms < here * (1.0 - MIN_GAIN) => current = t.config,
                    _ => break,
                }
            }
        }
        Ok(())
    }
}

/// Scratch for the largest Winograd configuration of `p` that fits a binding (0 when `p`
/// is not eligible).
fn winograd_scratch(p: &ConvProblem, fit: &DeviceFit) -> u64 {
    ConvConfig::winograd_starts(p, fit)
        .iter()
        .map(|c| c.scratch_bytes(p))
        .max()
        .unwrap_or(0)
}

/// Deterministic values in [-1, 1) (a 64-bit LCG), so tuning runs are repeatable.
fn seeded(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}
