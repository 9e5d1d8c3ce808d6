//! `resnet profile` and `resnet bench`: where the GPU time goes, and how fast a network runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use resnet_wgpu::gpu::profile::{median, Profile};
use resnet_wgpu::graph::InputSize;
use resnet_wgpu::model::arch;
use resnet_wgpu::model::synthetic::{synthetic_video_weights, synthetic_weights};
use resnet_wgpu::model::video_standard::{standard_video, STANDARD_VIDEO};
use resnet_wgpu::{Engine, Error, GpuContext, GpuOptions, Network, Output, WeightsFile};

use crate::ensemble::EnsembleArgs;
use crate::ensemble_tools;
use crate::inputs::{at_least, check_output_path, check_weights, parse_size, run_size};

/// Where the weights come from: a file, or synthetic weights for a named architecture.
#[derive(clap::Args, Clone)]
pub struct ModelSource {
    /// safetensors weights. Given several times (bench and profile): an ensemble, each
    /// member at its preset's crop unless --size is given.
    #[arg(long, conflicts_with = "arch")]
    weights: Vec<PathBuf>,
    /// A standard architecture with synthetic weights: resnet18/34/50/101/152, or the video
    /// ResNets r3d_18, mc3_18, r2plus1d_18 (torchvision), slow_r50, c2d_r50, i3d_r50
    /// (pytorchvideo) with 400 classes.
    #[arg(long)]
    arch: Option<String>,
}

/// The input each timing command runs: batch, clip length (video) and size.
#[derive(clap::Args, Clone)]
pub struct SizeArgs {
    /// Input size HxW (default 224x224; for video models, their preset's crop, or the clip
    /// a fixed head pool covers).
    #[arg(long, value_parser = parse_size)]
    size: Option<(usize, usize)>,
    /// Frames per clip, video models only (default: the weights' own, else 16 for
    /// torchvision and 8 for pytorchvideo).
    #[arg(long)]
    frames: Option<usize>,
}

impl ModelSource {
    /// The `--weights` given (several: an ensemble).
    pub fn weights(&self) -> &[PathBuf] {
        &self.weights
    }

    /// The weights and the network detected (and checked) from them, once.
    pub fn open(&self) -> anyhow::Result<(WeightsFile, Network)> {
        match (self.weights.first(), &self.arch) {
            (Some(w), _) => {
                let file = WeightsFile::open(w)?;
                let network = check_weights(&file)?;
                Ok((file, network))
            }
            (None, Some(name)) => {
                if let Some(v) = standard_video(name, 400) {
                    let file = synthetic_video_weights(&v, 0)?;
                    let network = Network::from_video(v, &file)?;
                    return Ok((file, network));
                }
                let a = arch::standard(name, 1000).ok_or_else(|| {
                    Error::Usage(format!(
                        "unknown architecture `{name}` (resnet18, resnet34, resnet50, resnet101, \
                         resnet152, {})",
                        STANDARD_VIDEO.join(", ")
                    ))
                })?;
                let file = synthetic_weights(&a, 0)?;
                let network = Network::from_arch(a, &file)?;
                Ok((file, network))
            }
            (None, None) => bail!(Error::Usage("give --weights FILE or --arch NAME".into())),
        }
    }
}

#[derive(clap::Args)]
pub struct ProfileArgs {
    #[command(flatten)]
    model: ModelSource,
    #[command(flatten)]
    ensemble: EnsembleArgs,
    #[arg(long, default_value_t = 1)]
    batch: usize,
    #[command(flatten)]
    size: SizeArgs,
    /// Timed runs (the median is reported).
    #[arg(long, default_value_t = 5)]
    iters: usize,
    #[arg(long)]
    json: bool,
    /// Draw per-layer GPU times as an SVG bar chart.
    #[arg(long)]
    chart: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelSource,
    #[command(flatten)]
    ensemble: EnsembleArgs,
    /// Batch sizes, comma separated.
    #[arg(long, default_value = "1", value_delimiter = ',')]
    batch: Vec<usize>,
    #[command(flatten)]
    size: SizeArgs,
    /// Timed runs per batch size (the median is reported).
    #[arg(long, default_value_t = 10)]
    iters: usize,
    #[arg(long)]
    json: bool,
}

impl SizeArgs {
    /// The input of `batch` items for `network`: see [`run_size`].
    pub fn resolve(
        &self,
        weights: &WeightsFile,
        network: &Network,
        batch: usize,
    ) -> anyhow::Result<InputSize> {
        run_size(weights, &network.model, batch, self.frames, self.size)
    }
}

/// A synthetic input of `size` (3 channels).
pub fn input(size: InputSize) -> anyhow::Result<Vec<f32>> {
    // Refuse what cannot be held rather than abort on a failed allocation.
    let len = [size.n, 3, size.t, size.h, size.w]
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d));
    let mut x = Vec::new();
    if len.is_none_or(|len| x.try_reserve_exact(len).is_err()) {
        bail!(Error::InputShape(format!(
            "a {} input does not fit in this machine's memory",
            size.describe(3)
        )));
    }
    // A smooth deterministic pattern: the values do not change the work done.
    x.extend((0..len.unwrap_or(0)).map(|i| ((i % 251) as f32 / 125.0) - 1.0));
    Ok(x)
}

pub fn profile(args: ProfileArgs, options: &GpuOptions) -> anyhow::Result<()> {
    at_least("--batch", args.batch, 1)?;
    at_least("--iters", args.iters, 1)?;
    if args.model.weights.len() > 1 {
        if args.chart.is_some() || args.size.frames.is_some() {
            bail!(Error::Usage(
                "--chart and --frames take one --weights, not an ensemble".into()
            ));
        }
        let what = (args.batch, args.iters, args.json);
        return ensemble_tools::profile(
            &args.model.weights,
            &args.ensemble,
            args.size.size,
            what,
            options,
        );
    }
    if let Some(path) = &args.chart {
        check_output_path(
            path,
            &args
                .model
                .weights
                .iter()
                .map(PathBuf::as_path)
                .collect::<Vec<_>>(),
        )?;
    }
    let (weights, network) = args.model.open()?;
    let size = args.size.resolve(&weights, &network, args.batch)?;
    let engine = Engine::load_network(network, &weights, options)?;
    let x = input(size)?;
    let p = engine.profile(&x, size, 3, args.iters)?;
    if let Some(path) = &args.chart {
        write_chart(path, &p)?;
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&p)?);
        return Ok(());
    }
    print_profile(&p, size, &sub_batch_note(&engine, size)?)
}

/// The profile as a table: a row per dispatch, the totals, the five slowest.
pub(crate) fn print_profile(p: &Profile, size: InputSize, note: &str) -> anyhow::Result<()> {
    outln!(
        "adapter: {}  timing: {:?}  input: {}{note}",
        p.adapter,
        p.method,
        size.describe(3),
    );
    outln!(
        "{:<22} {:<44} {:>18} {:>8} {:>9} {:>9} {:>9} {:>8}",
        "layer",
        "kernel",
        if size.t > 1 {
            "output (NTHWC)"
        } else {
            "output (NHWC)"
        },
        "GFLOP",
        "MB",
        "GPU ms",
        "GFLOP/s",
        "GB/s"
    );
    for l in &p.layers {
        let dims: Vec<String> = l.output_shape.iter().map(usize::to_string).collect();
        let shape = dims.join("x");
        outln!(
            "{:<22} {:<44} {:>18} {:>8.3} {:>9.2} {:>9.3} {:>9.1} {:>8.1}",
            l.name,
            l.config,
            shape,
            l.gflop,
            l.bytes as f64 / 1e6,
            l.gpu_ms,
            l.gflops,
            l.gbps
        );
    }
    let gflop: f64 = p.layers.iter().map(|l| l.gflop).sum();
    outln!(
        "total GPU {:.3} ms ({:.1} GFLOP/s), end-to-end wall {:.3} ms per inference",
        p.total_gpu_ms,
        gflop / (p.total_gpu_ms / 1e3).max(1e-12),
        p.wall_ms
    );
    let mut top: Vec<_> = p.layers.iter().collect();
    top.sort_by(|a, b| b.gpu_ms.total_cmp(&a.gpu_ms));
    outln!("top offenders:");
    for l in top.iter().take(5) {
        outln!(
            "  {:<22} {:>9.3} ms ({:>4.1}%)  {}",
            l.name,
            l.gpu_ms,
            100.0 * l.gpu_ms / p.total_gpu_ms.max(1e-12),
            l.config
        );
    }
    Ok(())
}

fn write_chart(path: &Path, p: &Profile) -> anyhow::Result<()> {
    let (bar_h, label_w, plot_w) = (14.0, 190.0, 600.0);
    let max = p.layers.iter().map(|l| l.gpu_ms).fold(1e-9, f64::max);
    let height = 40.0 + bar_h * p.layers.len() as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"monospace\" font-size=\"11\">\n<text x=\"4\" y=\"16\">GPU ms per dispatch, {} on {} (total {:.3} ms)</text>\n",
        label_w + plot_w + 90.0,
        InputSize::clip(p.batch, p.frames, p.height, p.width).describe(3),
        xml_escape(&p.adapter),
        p.total_gpu_ms
    );
    for (i, l) in p.layers.iter().enumerate() {
        let y = 28.0 + bar_h * i as f64;
        let wbar = plot_w * l.gpu_ms / max;
        svg += &format!(
            "<text x=\"4\" y=\"{:.1}\">{}</text><rect x=\"{label_w}\" y=\"{y:.1}\" width=\"{wbar:.1}\" height=\"{:.1}\" fill=\"#4a7ab5\"/><text x=\"{:.1}\" y=\"{:.1}\">{:.3}</text>\n",
            y + 11.0,
            xml_escape(&l.name),
            bar_h - 2.0,
            label_w + wbar + 4.0,
            y + 11.0,
            l.gpu_ms
        );
    }
    svg += "</svg>\n";
    resnet_wgpu::fsutil::write_atomic(path, svg.as_bytes())?;
    Ok(())
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[derive(serde::Serialize)]
struct BenchRow {
    batch: usize,
    ms: f64,
    /// Images, or clips for a video model.
    images_per_second: f64,
    cold_ms: f64,
    peak_gpu_bytes: u64,
    /// How the batch runs: one entry, or the sub-batches the adapter's limits need.
    sub_batches: Vec<usize>,
}

/// `, in sub-batches [24, 24]` when `size` is over the adapter's limits, else nothing.
fn sub_batch_note(engine: &Engine, size: InputSize) -> anyhow::Result<String> {
    let parts = engine.sub_batches(size)?;
    Ok(match parts.len() {
        1 => String::new(),
        _ => format!(", in sub-batches {parts:?}"),
    })
}

pub fn bench(args: BenchArgs, options: &GpuOptions) -> anyhow::Result<()> {
    for &n in &args.batch {
        at_least("--batch", n, 1)?;
    }
    at_least("--iters", args.iters, 1)?;
    if args.model.weights.len() > 1 {
        if args.size.frames.is_some() {
            bail!(Error::Usage(
                "--frames takes one --weights, not an ensemble".into()
            ));
        }
        let what = (&args.batch[..], args.iters, args.json);
        return ensemble_tools::bench(
            &args.model.weights,
            &args.ensemble,
            args.size.size,
            what,
            options,
        );
    }
    let (weights, network) = args.model.open()?;
    let one = args.size.resolve(&weights, &network, 1)?;
    let start = Instant::now();
    let ctx = Arc::new(GpuContext::new(options)?);
    let engine = Engine::from_network(ctx, network, &weights)?;
    let mut rows = Vec::new();
    for (i, &n) in args.batch.iter().enumerate() {
        // Cold: from launch (device, weights, pipelines) for the first size; plan build and
        // first run for later sizes.
        let t = if i == 0 { start } else { Instant::now() };
        rows.push(bench_batch(&engine, one.with_batch(n), args.iters, t)?);
    }
    let name = engine.model.as_ref().map(|a| a.name()).unwrap_or_default();
    let item = if one.t > 1 || engine.model.as_ref().is_some_and(|m| m.is_video()) {
        "clips"
    } else {
        "images"
    };
    let (h, w) = (one.h, one.w);
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"adapter": engine.ctx.info.to_string(), "arch": name, "frames": one.t, "height": h, "width": w, "iters": args.iters, "results": rows})
            )?
        );
        return Ok(());
    }
    let clip = match item {
        "clips" => format!("{}x{h}x{w} clips", one.t),
        _ => format!("{h}x{w}"),
    };
    outln!("{name} at {clip} on {}", engine.ctx.info);
    outln!(
        "{:>6} {:>12} {:>12} {:>12} {:>14}  {}",
        "batch",
        "ms/batch",
        format!("{item}/s"),
        "cold ms",
        "peak GPU MiB",
        "sub-batches"
    );
    for r in rows {
        outln!(
            "{:>6} {:>12.2} {:>12.1} {:>12.0} {:>14.1}  {}",
            r.batch,
            r.ms,
            r.images_per_second,
            r.cold_ms,
            r.peak_gpu_bytes as f64 / (1 << 20) as f64,
            format!("{:?}", r.sub_batches)
        );
    }
    Ok(())
}

/// Times one batch size: a cold run (from `cold_start`), two warm-ups, then the median of
/// `iters` runs.
fn bench_batch(
    engine: &Engine,
    size: InputSize,
    iters: usize,
    cold_start: Instant,
) -> anyhow::Result<BenchRow> {
    let n = size.n;
    let x = input(size)?;
    engine
        .run_at(&x, size, Output::Logits)
        .with_context(|| format!("batch {n}"))?;
    let cold_ms = cold_start.elapsed().as_secs_f64() * 1e3;
    for _ in 0..2 {
        engine.run_at(&x, size, Output::Logits)?;
    }
    let mut times: Vec<f64> = (0..iters)
        .map(|_| {
            let t = Instant::now();
            engine
                .run_at(&x, size, Output::Logits)
                .map(|_| t.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<Result<_, _>>()?;
    let ms = median(&mut times);
    // A batch over the adapter's limits runs in sub-batches; what is resident is the plan of
    // the largest.
    let sub_batches = engine.sub_batches(size)?;
    let stats = engine.stats(size.with_batch(sub_batches[0]))?;
    Ok(BenchRow {
        batch: n,
        ms,
        images_per_second: n as f64 / (ms / 1e3),
        cold_ms,
        peak_gpu_bytes: stats.peak_activation_bytes + stats.scratch_bytes + stats.weight_bytes,
        sub_batches,
    })
}
