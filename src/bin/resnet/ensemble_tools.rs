//! `resnet info | bench | profile --weights A --weights B …`: an ensemble's members and the
//! whole. Each member runs at its own preset's crop (as `classify` feeds it) unless `--size`
//! is given; `bench` and `profile` time the ensemble as it runs (`Ensemble`: one submission
//! per batch for every member) beside each member alone, alternating them so that a change
//! in the machine's load hits both alike.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::bail;
use resnet_wgpu::gpu::ensemble::{check_classes, Ensemble, MemberInput};
use resnet_wgpu::gpu::profile::{median, Profile};
use resnet_wgpu::graph::InputSize;
use resnet_wgpu::metadata::default_preprocess;
use resnet_wgpu::model::SourceConfig;
use resnet_wgpu::preprocess::{presets, Preprocess};
use resnet_wgpu::scores::Combine;
use resnet_wgpu::{Engine, Error, GpuContext, GpuOptions, Network, Output, WeightsFile};

use crate::bench::{input, print_profile};
use crate::ensemble::EnsembleArgs;
use crate::inputs::{at_least, naming_file};

/// One member as read from its file, before the GPU: its network, preset and input size.
struct Member {
    path: PathBuf,
    file: WeightsFile,
    network: Network,
    pre: Preprocess,
    /// `(h, w)`: `--size` if given, else the preset's crop.
    size: (usize, usize),
}

/// Reads every member (image networks only) and checks they agree on the classes.
fn open_members(paths: &[PathBuf], size: Option<(usize, usize)>) -> anyhow::Result<Vec<Member>> {
    let mut members = Vec::new();
    for path in paths {
        let file = WeightsFile::open(path)?;
        let config = SourceConfig::for_weights(&file)?;
        let network =
            Network::detect_with(&file, config.as_ref()).map_err(|e| naming_file(&file, e))?;
        if network.model.is_video() {
            bail!(Error::Usage(format!(
                "{}: video weights; an ensemble takes image networks",
                path.display()
            )));
        }
        let (pre, _) = default_preprocess(&file, network.model.image(), config.as_ref())?;
        let crop = (pre.crop_h as usize, pre.crop_w as usize);
        members.push(Member {
            path: path.clone(),
            file,
            network,
            pre,
            size: size.unwrap_or(crop),
        });
    }
    let classes: Vec<Option<usize>> = members
        .iter()
        .map(|m| m.network.model.num_classes())
        .collect();
    check_classes(&classes, &names(&members))?;
    Ok(members)
}

fn names(members: &[Member]) -> Vec<String> {
    members
        .iter()
        .map(|m| m.path.display().to_string())
        .collect()
}

fn combine_name(c: Combine) -> &'static str {
    match c {
        Combine::Probs => "probs",
        Combine::Logits => "logits",
    }
}

/// The members on one device, as one ensemble.
fn load(members: Vec<Member>, args: &EnsembleArgs, options: &GpuOptions) -> anyhow::Result<Loaded> {
    let names = names(&members);
    let ctx = Arc::new(GpuContext::new(options)?);
    let mut engines = Vec::new();
    let mut sizes = Vec::new();
    for m in members {
        sizes.push(m.size);
        engines.push(Engine::from_network(ctx.clone(), m.network, &m.file)?);
    }
    let ensemble = Ensemble::new(engines, &names, args.weights(), args.combine())?;
    Ok(Loaded {
        ensemble,
        names,
        sizes,
    })
}

struct Loaded {
    ensemble: Ensemble,
    names: Vec<String>,
    sizes: Vec<(usize, usize)>,
}

impl Loaded {
    /// Each member's input size for a batch of `n`.
    fn sizes(&self, n: usize) -> Vec<InputSize> {
        self.sizes
            .iter()
            .map(|&(h, w)| InputSize::image(n, h, w))
            .collect()
    }
}

/// `resnet info` with several `--weights`: each member and the blend. Needs no GPU.
pub fn info(
    paths: &[PathBuf],
    args: &EnsembleArgs,
    size: Option<(usize, usize)>,
    json: bool,
) -> anyhow::Result<()> {
    let members = open_members(paths, size)?;
    // Weights are checked as `Ensemble::new` checks them, without opening a device.
    let weights = args.weights().unwrap_or_else(|| vec![1.0; members.len()]);
    if weights.len() != members.len() || weights.iter().any(|w| !(w.is_finite() && *w >= 0.0)) {
        bail!(Error::Usage(format!(
            "{} ensemble weights for {} members: give one non-negative weight per member",
            weights.len(),
            members.len()
        )));
    }
    let classes = members[0].network.model.num_classes().unwrap_or(0);
    let combine = combine_name(args.combine());
    let rows: Vec<serde_json::Value> = members
        .iter()
        .zip(&weights)
        .map(|(m, w)| {
            serde_json::json!({
                "file": m.path.display().to_string(),
                "architecture": m.network.model.name(),
                "classes": m.network.model.num_classes(),
                "preprocess": presets::describe(&m.pre),
                "input": [m.size.0, m.size.1],
                "weight": w,
            })
        })
        .collect();
    if json {
        let value = serde_json::json!({
            "members": rows, "classes": classes, "combine": combine, "weights": weights,
        });
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    outln!(
        "ensemble:     {} members, {classes} classes, combine {combine} (weights {weights:?})",
        members.len()
    );
    for (i, (m, w)) in members.iter().zip(&weights).enumerate() {
        outln!("member {i}:     {}", m.path.display());
        outln!("  architecture: {}", m.network.model.name());
        outln!("  classes:      {classes}");
        outln!("  preprocess:   {}", presets::describe(&m.pre));
        outln!("  input:        {}x{}  weight {w}", m.size.0, m.size.1);
    }
    Ok(())
}

/// Synthetic inputs, one per member, each at its member's size for a batch of `n`.
fn member_inputs(loaded: &Loaded, n: usize) -> anyhow::Result<Vec<(Vec<f32>, InputSize)>> {
    loaded
        .sizes(n)
        .into_iter()
        .map(|s| Ok((input(s)?, s)))
        .collect()
}

fn as_inputs(xs: &[(Vec<f32>, InputSize)]) -> Vec<MemberInput<'_>> {
    xs.iter().map(|(x, s)| (&x[..], *s)).collect()
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

#[derive(serde::Serialize)]
struct Timing {
    /// A member's file, or `ensemble` for the whole.
    name: String,
    ms: f64,
    images_per_second: f64,
    peak_gpu_bytes: u64,
}

#[derive(serde::Serialize)]
struct EnsembleBenchRow {
    batch: usize,
    members: Vec<Timing>,
    ensemble: Timing,
    /// What running the members one after another took (sum of their medians), to set
    /// against the ensemble's one submission.
    members_sum_ms: f64,
}

/// `resnet bench` with several `--weights`.
pub fn bench(
    paths: &[PathBuf],
    args: &EnsembleArgs,
    size: Option<(usize, usize)>,
    (batches, iters, json): (&[usize], usize, bool),
    options: &GpuOptions,
) -> anyhow::Result<()> {
    let loaded = load(open_members(paths, size)?, args, options)?;
    let mut rows = Vec::new();
    for &n in batches {
        rows.push(bench_batch(&loaded, n, iters)?);
    }
    let adapter = loaded.ensemble.members[0].ctx.info.to_string();
    if json {
        let value = serde_json::json!({
            "adapter": adapter, "combine": combine_name(loaded.ensemble.combine),
            "weights": loaded.ensemble.weights, "iters": iters, "results": rows,
        });
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    outln!(
        "ensemble of {} on {adapter}, combine {}",
        paths.len(),
        combine_name(loaded.ensemble.combine)
    );
    outln!(
        "{:>6} {:<40} {:>12} {:>12} {:>14}",
        "batch",
        "member",
        "ms/batch",
        "images/s",
        "peak GPU MiB"
    );
    for r in &rows {
        for t in r.members.iter().chain([&r.ensemble]) {
            outln!(
                "{:>6} {:<40} {:>12.2} {:>12.1} {:>14.1}",
                r.batch,
                t.name,
                t.ms,
                t.images_per_second,
                t.peak_gpu_bytes as f64 / (1 << 20) as f64
            );
        }
        outln!(
            "{:>6} {:<40} {:>12.2}",
            r.batch,
            "(members one by one, summed)",
            r.members_sum_ms
        );
    }
    Ok(())
}

/// Times each member alone and the whole ensemble at batch `n`: two warm-ups, then `iters`
/// rounds of (every member, the ensemble), medians.
fn bench_batch(loaded: &Loaded, n: usize, iters: usize) -> anyhow::Result<EnsembleBenchRow> {
    let e = &loaded.ensemble;
    let xs = member_inputs(loaded, n)?;
    let inputs = as_inputs(&xs);
    for _ in 0..2 {
        e.run(&inputs)?;
    }
    let mut member_ms = vec![Vec::new(); e.members.len()];
    let mut whole_ms = Vec::new();
    for _ in 0..iters {
        for (times, (m, (x, s))) in member_ms.iter_mut().zip(e.members.iter().zip(&inputs)) {
            let t = Instant::now();
            m.run_at(x, *s, Output::Logits)?;
            times.push(ms_since(t));
        }
        let t = Instant::now();
        e.run(&inputs)?;
        whole_ms.push(ms_since(t));
    }
    let mut members = Vec::new();
    let mut total_bytes = 0;
    for ((m, (_, s)), (times, name)) in e
        .members
        .iter()
        .zip(&inputs)
        .zip(member_ms.iter_mut().zip(&loaded.names))
    {
        let bytes = peak_bytes(m, *s)?;
        total_bytes += bytes;
        members.push(timing(name.clone(), median(times), n, bytes));
    }
    let members_sum_ms = members.iter().map(|t| t.ms).sum();
    Ok(EnsembleBenchRow {
        batch: n,
        members,
        ensemble: timing("ensemble".into(), median(&mut whole_ms), n, total_bytes),
        members_sum_ms,
    })
}

/// What a member holds on the GPU at `size`: the plan of its largest sub-batch.
fn peak_bytes(m: &Engine, size: InputSize) -> anyhow::Result<u64> {
    let first = m.sub_batches(size)?[0];
    let stats = m.stats(size.with_batch(first))?;
    Ok(stats.peak_activation_bytes + stats.scratch_bytes + stats.weight_bytes)
}

fn timing(name: String, ms: f64, n: usize, bytes: u64) -> Timing {
    Timing {
        name,
        ms,
        images_per_second: n as f64 / (ms / 1e3),
        peak_gpu_bytes: bytes,
    }
}

/// `resnet profile` with several `--weights`: each member's dispatches (named
/// `m<i>.<layer>`), then the whole: the members' GPU time summed and the ensemble's own
/// wall time per batch (one submission for all members).
pub fn profile(
    paths: &[PathBuf],
    args: &EnsembleArgs,
    size: Option<(usize, usize)>,
    (batch, iters, json): (usize, usize, bool),
    options: &GpuOptions,
) -> anyhow::Result<()> {
    at_least("--batch", batch, 1)?;
    let loaded = load(open_members(paths, size)?, args, options)?;
    let e = &loaded.ensemble;
    let xs = member_inputs(&loaded, batch)?;
    let mut profiles = Vec::new();
    for (i, (m, (x, s))) in e.members.iter().zip(&xs).enumerate() {
        let mut p = m.profile(x, *s, 3, iters)?;
        for l in &mut p.layers {
            l.name = format!("m{i}.{}", l.name);
        }
        profiles.push(p);
    }
    let inputs = as_inputs(&xs);
    e.run(&inputs)?;
    let mut wall = Vec::new();
    for _ in 0..iters {
        let t = Instant::now();
        e.run(&inputs)?;
        wall.push(ms_since(t));
    }
    let wall_ms = median(&mut wall);
    let total_gpu_ms: f64 = profiles.iter().map(|p| p.total_gpu_ms).sum();
    if json {
        let members: Vec<serde_json::Value> = loaded
            .names
            .iter()
            .zip(&profiles)
            .map(|(name, p)| serde_json::json!({"file": name, "profile": p}))
            .collect();
        let value = serde_json::json!({
            "members": members, "total_gpu_ms": total_gpu_ms, "ensemble_wall_ms": wall_ms,
            "batch": batch, "combine": combine_name(e.combine),
        });
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    for (i, (name, p)) in loaded.names.iter().zip(&profiles).enumerate() {
        outln!("member {i}: {name}");
        let size = InputSize::image(batch, p.height, p.width);
        print_profile(p, size, "")?;
        outln!("");
    }
    print_whole(&loaded.names, &profiles, total_gpu_ms, wall_ms)
}

fn print_whole(
    names: &[String],
    profiles: &[Profile],
    total_gpu_ms: f64,
    wall_ms: f64,
) -> anyhow::Result<()> {
    outln!("ensemble of {}:", names.len());
    for (i, (name, p)) in names.iter().zip(profiles).enumerate() {
        outln!(
            "  m{i} {:<40} {:>4} dispatches {:>10.3} GPU ms {:>10.3} wall ms",
            name,
            p.layers.len(),
            p.total_gpu_ms,
            p.wall_ms
        );
    }
    let dispatches: usize = profiles.iter().map(|p| p.layers.len()).sum();
    outln!(
        "  total {dispatches} dispatches, {total_gpu_ms:.3} GPU ms; ensemble wall {wall_ms:.3} ms \
         per batch (one submission)"
    );
    Ok(())
}

/// `--weights` given several times where a command takes one.
pub fn refuse(paths: &[PathBuf], command: &str) -> anyhow::Result<()> {
    if paths.len() > 1 {
        bail!(Error::Usage(format!(
            "{command} takes one --weights (got {}); ensembles are for run, classify, info, \
             bench and profile",
            paths.len()
        )));
    }
    Ok(())
}
