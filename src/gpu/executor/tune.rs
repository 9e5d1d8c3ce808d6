//! The autotuner behind `resnet tune`: for each distinct conv shape of a network, time the
//! candidate configurations with GPU timestamps and keep the fastest one that also matches
//! the CPU reference.
//!
//! Search, per shape: a local search from the heuristic choice of each kernel (register-only
//! and tiled) over tile sizes and split-K, one step (halve or double a dimension) at a time;
//! or, with `exhaustive`, every tile configuration and then split-K of the three fastest tiled
//! ones. Each candidate is screened with one warm-up and one timed run; those within
//! `SCREEN_FACTOR` of the best so far get the full measurement (≥ 3 warm-ups, median of ≥ 5). The winner's output is checked against
//! [`crate::reference::conv_rows`] on sampled pixels; a winner that fails is reported and the
//! next fastest is checked instead.

use serde::Serialize;

use super::conv_step::{conv_steps, ConvBuffers};
use super::{copy_out, Engine};
use crate::error::{Error, Result};
use crate::gpu::conv_config::{ConvAlgo, ConvConfig, ConvProblem, DeviceFit, SPLITS};
use crate::gpu::profile::{median, time_repeated, TimingMethod};
use crate::gpu::weights::check_size;
use crate::reference::{conv_rows, relative_error, sample_rows};

/// A candidate whose screening run is slower than this multiple of the best so far is
/// dropped without the full measurement.
const SCREEN_FACTOR: f64 = 1.5;
/// Pixels checked against the CPU reference per winner.
const VERIFY_ROWS: usize = 48;
/// Largest `max|got − want| / max|want|` a winner may have (f32 against f64).
const VERIFY_TOL: f64 = 1e-4;
/// Local search: most moves from a starting point, and the least gain worth a move.
const MAX_MOVES: usize = 8;
const MIN_GAIN: f64 = 0.02;
/// Alternating default/winner measurements that confirm a winner.
const CONFIRM_ROUNDS: usize = 3;

#[derive(Clone, Copy, Debug)]
pub struct TuneOptions {
    /// Untimed runs before the timed ones (at least 3).
    pub warmup: usize,
    /// Timed runs whose median counts (at least 5).
    pub iters: usize,
    /// Time every tile configuration (and split-K of the best tiled ones) instead of the
    /// local search from the heuristic choices.
    pub exhaustive: bool,
}

impl Default for TuneOptions {
    fn default() -> Self {
        TuneOptions {
            warmup: 3,
            iters: 5,
            exhaustive: false,
        }
    }
}

/// The outcome for one distinct conv shape.
#[derive(Clone, Debug, Serialize)]
pub struct ShapeTuning {
    /// [`ConvProblem::key`]
    pub key: String,
    /// The network's convs of this shape.
    pub nodes: Vec<String>,
    pub gflop: f64,
    pub default: ConvConfig,
    pub default_ms: f64,
    pub best: ConvConfig,
    pub best_ms: f64,
    /// Configurations timed (screened or measured).
    pub tried: usize,
    /// The winner's error against the CPU reference on sampled pixels.
    pub verify_error: f64,
    /// Fast configurations whose output did not match the reference (kernel bugs).
    pub rejected: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TuneReport {
    pub adapter: String,
    pub method: TimingMethod,
    pub batch: usize,
    pub height: usize,
    pub width: usize,
    pub shapes: Vec<ShapeTuning>,
}

impl TuneReport {
    /// GPU ms of all convs under the defaults and under the tuned choices (each shape
    /// counted once per conv of that shape).
    pub fn totals(&self) -> (f64, f64) {
        self.shapes.iter().fold((0.0, 0.0), |(d, b), s| {
            let n = s.nodes.len() as f64;
            (d + n * s.default_ms, b + n * s.best_ms)
        })
    }
}

/// One measured configuration.
struct Timed {
    config: ConvConfig,
    ms: f64,
}

impl Engine {
    /// Tunes every distinct conv shape of the network at `(n, h, w)`. `progress` hears
    /// `(shape index, shape count, key)` before each shape.
    pub fn tune(
        &self,
        n: usize,
        h: usize,
        w: usize,
        options: TuneOptions,
        progress: &mut dyn FnMut(usize, usize, &str),
    ) -> Result<TuneReport> {
        let options = TuneOptions {
            warmup: options.warmup.max(3),
            iters: options.iters.max(5),
            ..options
        };
        // Distinct shapes in network order, with every node that has them.
        let mut shapes: Vec<(ConvProblem, Vec<String>)> = Vec::new();
        for (name, p) in self.conv_problems(n, h, w)? {
            match shapes.iter_mut().find(|(q, _)| q.key() == p.key()) {
                Some((_, nodes)) => nodes.push(name),
                None => shapes.push((p, vec![name])),
            }
        }
        let mut report = TuneReport {
            adapter: self.ctx.info.to_string(),
            method: TimingMethod::for_device(&self.ctx.device),
            batch: n,
            height: h,
            width: w,
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
        let ctx = &self.ctx;
        let fit = DeviceFit::of(&ctx.limits);
        let node = &nodes[0];
        let layer = &self.layers[node];
        // Seeded inputs: runs are repeatable, and the check below needs the values.
        let in_len = p.batch * p.in_h * p.in_w * p.in_c;
        let out_len = p.m() * p.out_c;
        let x = seeded(in_len, 1);
        let residual = p.residual.then(|| seeded(out_len, 2));
        let candidates = ConvConfig::candidates(p, &fit);
        // Partial sums for the largest split that fits a binding (the search may reach any
        // split whatever the tiles); none for grouped convs, which never split.
        let max_scratch = SPLITS[1..]
            .iter()
            .rev()
            .map(|&s| s as u64 * out_len as u64 * 4)
            .find(|&bytes| bytes <= fit.binding_bytes)
            .filter(|_| !p.grouped())
            .unwrap_or(0);
        let buffers = ctx.scoped("allocating tuning buffers", || -> Result<_> {
            let storage = |label: &str, bytes: u64, data: Option<&[f32]>| -> Result<wgpu::Buffer> {
                check_size(ctx, label, bytes)?;
                let b = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: bytes.max(16),
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_DST
                        | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                });
                if let Some(d) = data {
                    ctx.queue.write_buffer(&b, 0, bytemuck::cast_slice(d));
                }
                Ok(b)
            };
            Ok((
                storage("tuning input", in_len as u64 * 4, Some(&x))?,
                residual
                    .as_deref()
                    .map(|r| storage("tuning residual", out_len as u64 * 4, Some(r)))
                    .transpose()?,
                storage("tuning output", out_len as u64 * 4, None)?,
                (max_scratch > 0)
                    .then(|| storage("tuning partial sums", max_scratch, None))
                    .transpose()?,
                storage("unused binding", 16, None)?,
            ))
        })??;
        let (input, res, output, scratch, unused) = &buffers;
        let bufs = ConvBuffers {
            input,
            weight: &layer.weight,
            bias: &layer.bias,
            residual: res.as_ref(),
            output,
            scratch: scratch.as_ref(),
            unused,
        };
        // Full measurement: median GPU ms, or None when the adapter rejects the pipeline.
        let measure = |config: &ConvConfig, warmup: usize, iters: usize| -> Result<Option<f64>> {
            if config.scratch_bytes(p) > max_scratch {
                return Ok(None);
            }
            let steps = match conv_steps(ctx, &self.kernels, node, p, config, &bufs) {
                Ok(s) => s,
                Err(Error::Shader { name, msg }) => {
                    log::info!(
                        "{}: {name} rejected by the adapter: {msg}",
                        config.describe()
                    );
                    return Ok(None);
                }
                Err(e) => return Err(e),
            };
            let refs: Vec<_> = steps.iter().collect();
            let (_, mut ms) = time_repeated(ctx, &refs, warmup, iters)?;
            Ok(Some(median(&mut ms)))
        };

        let default = ConvConfig::heuristic(p, ctx.prefer_register_kernels, !ctx.is_cpu(), &fit);
        let default_ms = measure(&default, options.warmup, options.iters)?.ok_or_else(|| {
            Error::Gpu(format!(
                "{node}: the default configuration does not compile"
            ))
        })?;
        let mut timed = vec![Timed {
            config: default,
            ms: default_ms,
        }];
        let best_ms = |t: &[Timed]| t.iter().map(|t| t.ms).fold(f64::INFINITY, f64::min);
        let seen = std::cell::RefCell::new(std::collections::HashSet::new());
        let consider = |config: ConvConfig, timed: &mut Vec<Timed>| -> Result<()> {
            if timed.iter().any(|t| t.config == config) || !seen.borrow_mut().insert(config) {
                return Ok(());
            }
            let Some(screen) = measure(&config, 1, 1)? else {
                return Ok(());
            };
            if screen > SCREEN_FACTOR * best_ms(timed) {
                log::debug!("{}: screened out at {screen:.3} ms", config.describe());
                return Ok(());
            }
            if let Some(ms) = measure(&config, options.warmup, options.iters)? {
                log::debug!("{}: {ms:.3} ms", config.describe());
                timed.push(Timed { config, ms });
            }
            Ok(())
        };
        // Compiles a round's candidates in parallel before they are timed one by one. A
        // failure here only means some candidate does not compile: `measure` skips it.
        let precompile = |configs: &[ConvConfig]| {
            let requests: Vec<_> = configs.iter().flat_map(|c| c.pipelines(p)).collect();
            if let Err(e) = self.kernels.create_pipelines(&ctx.device, &requests) {
                log::debug!("{}: some candidates do not compile: {e}", p.key());
            }
        };
        if options.exhaustive {
            precompile(&candidates);
            for c in candidates {
                consider(c, &mut timed)?;
            }
            // Split-K on top of the fastest tiled configurations.
            let mut tiled: Vec<&Timed> = timed
                .iter()
                .filter(|t| t.config.algo == ConvAlgo::Tiled && t.config.split_k == 1)
                .collect();
            tiled.sort_by(|a, b| a.ms.total_cmp(&b.ms));
            let splits: Vec<ConvConfig> = tiled
                .iter()
                .take(3)
                .flat_map(|t| t.config.splits_of(p, &fit))
                .collect();
            precompile(&splits);
            for c in splits {
                consider(c, &mut timed)?;
            }
        } else {
            // Local search from each kernel's heuristic choice: measure every neighbour of
            // the current point, move to the fastest while it gains, stop at a local optimum.
            let starts = [
                ConvConfig::heuristic(p, true, !ctx.is_cpu(), &fit),
                ConvConfig::heuristic(p, false, !ctx.is_cpu(), &fit),
            ];
            for start in starts {
                if start.check(p, &fit).is_err() {
                    continue;
                }
                consider(start, &mut timed)?;
                let mut current = start;
                for _ in 0..MAX_MOVES {
                    let Some(here) = timed.iter().find(|t| t.config == current).map(|t| t.ms)
                    else {
                        break;
                    };
                    let neighbours = current.neighbours(p, &fit);
                    precompile(&neighbours);
                    for c in neighbours {
                        consider(c, &mut timed)?;
                    }
                    let next = current
                        .neighbours(p, &fit)
                        .into_iter()
                        .filter_map(|c| timed.iter().find(|t| t.config == c))
                        .min_by(|a, b| a.ms.total_cmp(&b.ms));
                    match next {
                        Some(t) if t.ms < here * (1.0 - MIN_GAIN) => current = t.config,
                        _ => break,
                    }
                }
            }
        }
        timed.sort_by(|a, b| a.ms.total_cmp(&b.ms));

        // The fastest configuration that matches the reference wins.
        let (w_kc, bias) = (copy_out(ctx, &layer.weight)?, copy_out(ctx, &layer.bias)?);
        let rows = sample_rows(p.m(), VERIFY_ROWS);
        let want = conv_rows(p, &x, &w_kc, &bias, residual.as_deref(), &rows);
        let mut rejected = Vec::new();
        // Set when the fastest verified configuration did not beat the default again.
        let mut only_default = false;
        for t in &timed {
            if only_default && t.config != default {
                continue;
            }
            // One more run on the seeded input, then compare the sampled pixels.
            if measure(&t.config, 0, 1)?.is_none() {
                continue;
            }
            let out = copy_out(ctx, output)?;
            let got: Vec<f32> = rows
                .iter()
                .flat_map(|&m| out[m * p.out_c..(m + 1) * p.out_c].iter().copied())
                .collect();
            let err = relative_error(&got, &want);
            if err > VERIFY_TOL {
                log::error!(
                    "{}: {} is wrong on {node} (relative error {err:.2e}); not used",
                    p.key(),
                    t.config.describe()
                );
                rejected.push(t.config.describe());
                continue;
            }
            let (mut default_ms, mut best_ms) = (default_ms, t.ms);
            if t.config != default {
                // Confirm against the default, alternating, so a burst of load on the machine
                // during the search cannot crown a configuration that is not faster.
                let (mut d, mut b) = (Vec::new(), Vec::new());
                for _ in 0..CONFIRM_ROUNDS {
                    d.extend(measure(&default, 1, options.iters)?);
                    b.extend(measure(&t.config, 1, options.iters)?);
                }
                (default_ms, best_ms) = (median(&mut d), median(&mut b));
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
            return Ok(ShapeTuning {
                key: p.key(),
                gflop: p.flops() as f64 / 1e9,
                nodes,
                default,
                default_ms,
                best: t.config,
                best_ms,
                tried: seen.borrow().len() + 1,
                verify_error: err,
                rejected,
            });
        }
        Err(Error::Gpu(format!(
            "{node}: no configuration matches the CPU reference (tried {rejected:?})"
        )))
    }
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
