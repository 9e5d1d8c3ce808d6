//! `resnet tune`: time every conv shape's candidate configurations on this adapter, keep
//! the fastest verified ones in the tuning cache, and report tuned against default.

use anyhow::bail;
use resnet_wgpu::gpu::tuning::cache::TuneCache;
use resnet_wgpu::graph::InputSize;
use resnet_wgpu::reference::relative_error;
use resnet_wgpu::{Engine, Error, GpuOptions, Output, Precision, TuneOptions, TuneReport};

use crate::bench::{input, ModelSource, SizeArgs};
use crate::inputs::at_least;

#[derive(clap::Args)]
pub struct TuneArgs {
    #[command(flatten)]
    model: ModelSource,
    #[arg(long, default_value_t = 1)]
    batch: usize,
    #[command(flatten)]
    size: SizeArgs,
    /// Untimed runs per configuration (at least 3).
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed runs per configuration; the median counts (at least 5).
    #[arg(long, default_value_t = 5)]
    iters: usize,
    /// Time every tile configuration, not just the local search from the defaults (slow).
    #[arg(long)]
    exhaustive: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn tune(args: TuneArgs, options: &GpuOptions) -> anyhow::Result<()> {
    at_least("--batch", args.batch, 1)?;
    // The tuner's minimums (a median of fewer runs is noise), refused like every tool's.
    at_least("--warmup", args.warmup, TuneOptions::default().warmup)?;
    at_least("--iters", args.iters, TuneOptions::default().iters)?;
    crate::ensemble_tools::refuse(args.model.weights(), "tune")?;
    let (weights, network) = args.model.open()?;
    let size = args.size.resolve(&weights, &network, args.batch)?;
    let engine = Engine::load_network(network, &weights, options)?;
    let cache_path = engine.ctx.disk_cache.dir().map(|d| TuneCache::path(&d));
    // Read the cache before the long search: a broken one is reported now, not after.
    if let Some(Err(e)) = cache_path.as_deref().map(TuneCache::load) {
        log::warn!("starting a new tuning cache: {e}");
    }
    let tune_options = TuneOptions {
        warmup: args.warmup,
        iters: args.iters,
        exhaustive: args.exhaustive,
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} conv shapes  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = engine.tune(size, tune_options, &mut |i, n, key| {
        bar.set_length(n as u64);
        bar.set_position(i as u64);
        bar.set_message(key.to_string());
    })?;
    bar.finish_and_clear();
    let network_error = check_network(&engine, &report, size)?;
    let saved = match &cache_path {
        Some(path) => {
            // Only this run's results, merged into the file as it is when saving: another
            // run may have saved its own since this one started.
            let mut cache = TuneCache::empty();
            cache.record(&engine.ctx.info, engine.ctx.precision, &report);
            cache.save_merged(path)?;
            Some(path.display().to_string())
        }
        None => None,
    };
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["network_error"] = serde_json::json!(network_error);
        value["cache"] = serde_json::json!(saved);
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    print_report(&report, size, network_error, saved)
}

/// The whole network under the tuned choices against the heuristics, on one input: the
/// relative difference, or an error (and nothing saved) beyond 1e-4 (1e-2 in f16, where a
/// different summation order can flip the f16 rounding of any layer's values, and flips
/// propagate: the bound the f16 mode keeps against PyTorch).
fn check_network(engine: &Engine, report: &TuneReport, size: InputSize) -> anyhow::Result<f64> {
    let x = input(size)?;
    engine.set_conv_configs(Default::default())?;
    let want = engine.run_at(&x, size, Output::Logits)?;
    let tuned = report
        .shapes
        .iter()
        .map(|s| (s.key.clone(), s.best))
        .collect();
    engine.set_conv_configs(tuned)?;
    let got = engine.run_at(&x, size, Output::Logits)?;
    let network_error = relative_error(&got, &want);
    let bound = match engine.ctx.precision {
        Precision::F32 => 1e-4,
        Precision::F16 => 1e-2,
    };
    if network_error > bound {
        bail!(Error::Gpu(format!(
            "the tuned network differs from the default one by {network_error:.2e}; nothing saved"
        )));
    }
    Ok(network_error)
}

fn print_report(
    report: &TuneReport,
    size: InputSize,
    network_error: f64,
    saved: Option<String>,
) -> anyhow::Result<()> {
    outln!(
        "adapter: {}  timing: {:?}  input: {}",
        report.adapter,
        report.method,
        size.describe(3)
    );
    outln!(
        "{:<40} {:>5} {:<28} {:>9} {:<28} {:>9} {:>7} {:>6}",
        "conv shape",
        "convs",
        "default",
        "ms",
        "tuned",
        "ms",
        "speedup",
        "tried"
    );
    for s in &report.shapes {
        outln!(
            "{:<40} {:>5} {:<28} {:>9.3} {:<28} {:>9.3} {:>6.2}x {:>6}",
            s.key,
            s.nodes.len(),
            s.default.describe(),
            s.default_ms,
            s.best.describe(),
            s.best_ms,
            s.default_ms / s.best_ms.max(1e-12),
            s.tried
        );
        for r in &s.rejected {
            outln!("    rejected (wrong output): {r}");
        }
    }
    let (default_ms, best_ms) = report.totals();
    outln!(
        "all convs: default {default_ms:.3} ms, tuned {best_ms:.3} ms ({:.2}x); tuned network vs default: relative difference {network_error:.1e}",
        default_ms / best_ms.max(1e-12)
    );
    match saved {
        Some(path) => outln!("saved to {path}; inference on this adapter now uses it"),
        None => outln!("not saved (--no-cache)"),
    }
    Ok(())
}
