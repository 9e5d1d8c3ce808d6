//! `resnet info`: what a weights file holds — layout and variant, stem, shortcut, widths and
//! groups, head and class names, preprocessing, what detection assumed — and the plan's
//! statistics at a given input size. Needs no GPU.

use std::path::Path;

use anyhow::Context;
use resnet_wgpu::graph::plan::MemoryPlan;
use resnet_wgpu::graph::Graph;
use resnet_wgpu::metadata::{class_names_with, default_preprocess, LabelSource};
use resnet_wgpu::model::preact::{PreActArch, PreActLayout};
use resnet_wgpu::model::{Arch, Shortcut, SourceConfig, Stem};
use resnet_wgpu::preprocess::{presets, Preprocess};
use resnet_wgpu::{Error, Model, Network, Precision, WeightsFile};

use crate::info_video::{self as info_video, ClipChoice};
use crate::inputs::{at_least, naming_file, open_weights};

/// The facts `info` reports, gathered once for both the JSON and the text form.
struct Facts {
    file: WeightsFile,
    arch: Arch,
    config: Option<SourceConfig>,
    graph: Graph,
    plan: MemoryPlan,
    pre: Preprocess,
    pre_from: String,
    /// Where the class names come from, naming the file; `None` without a head.
    labels_from: Option<String>,
    gflops_224: f64,
    gflops: f64,
    /// The storage precision the plan's sizes are for (`--precision`).
    precision: Precision,
}

pub fn info(
    weights: Option<&Path>,
    size: Option<(usize, usize)>,
    frames: Option<usize>,
    batch: usize,
    json: bool,
    precision: Precision,
) -> anyhow::Result<()> {
    at_least("--batch", batch, 1)?;
    if let Some(t) = frames {
        at_least("--frames", t, 1)?;
    }
    let file = open_weights(weights)?;
    let config = SourceConfig::for_weights(&file)?;
    let Network { model, graph } =
        Network::detect_with(&file, config.as_ref()).map_err(|e| naming_file(&file, e))?;
    let arch = match model {
        Model::Image(arch) => arch,
        Model::Video(arch) => {
            let choice = ClipChoice {
                frames,
                size,
                batch,
            };
            return info_video::info(&file, &arch, &graph, choice, json);
        }
        Model::PreAct(arch) => {
            refuse_frames(&file, frames)?;
            // Wide ResNets are CIFAR networks (their head pool covers an 8×8 map).
            let (h, w) = size.unwrap_or(match arch.layout {
                PreActLayout::RobustBench => (32, 32),
                _ => (224, 224),
            });
            return preact_info(&file, &arch, &graph, (batch, h, w), json);
        }
    };
    refuse_frames(&file, frames)?;
    let (h, w) = size.unwrap_or((224, 224));
    let facts = gather(file, config, arch, graph, (batch, h, w), precision)?;
    if json {
        let value = to_json(&facts, batch, h, w);
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    print_text(&facts, batch, h, w)
}

fn gather(
    file: WeightsFile,
    config: Option<SourceConfig>,
    arch: Arch,
    graph: Graph,
    (batch, h, w): (usize, usize, usize),
    precision: Precision,
) -> anyhow::Result<Facts> {
    let flops_at = |n, h, w| -> anyhow::Result<f64> {
        let shapes = graph.infer_shapes(n, h, w)?;
        Ok(graph
            .nodes
            .iter()
            .map(|nd| nd.op.flops(&shapes[nd.output]) as f64)
            .sum::<f64>()
            / 1e9)
    };
    let gflops_224 = flops_at(1, 224, 224)?;
    let shapes = graph
        .infer_shapes(batch, h, w)
        .with_context(|| format!("planning for {batch}x3x{h}x{w}"))?;
    let plan = MemoryPlan::with_element_bytes(&graph, &shapes, true, precision.element_bytes());
    let gflops = flops_at(batch, h, w)?;
    let (pre, pre_from) = default_preprocess(&file, Some(&arch), config.as_ref())?;
    let labels_from = match arch.num_classes {
        Some(c) => Some(label_source(
            class_names_with(&file, c, None, config.as_ref())?.1,
            config.as_ref(),
        )),
        None => None,
    };
    Ok(Facts {
        file,
        arch,
        config,
        graph,
        plan,
        pre,
        pre_from,
        labels_from,
        gflops_224,
        gflops,
        precision,
    })
}

/// Where class names came from, with the file that holds them.
fn label_source(source: LabelSource, config: Option<&SourceConfig>) -> String {
    match (source, config) {
        (LabelSource::File, _) => "--labels".into(),
        // The weights file itself, which `file` names.
        (LabelSource::Metadata, _) => "metadata `resnet.labels`".into(),
        (LabelSource::Config, Some(c)) => c.path.display().to_string(),
        (LabelSource::Config, None) => "config.json".into(),
        (LabelSource::ImageNet, _) => "ImageNet (1000-class head)".into(),
        (LabelSource::Indices, _) => "class indices".into(),
    }
}

fn stem_text(a: &Arch) -> String {
    match a.stem {
        Stem::Plain { width } => format!("7×7 conv → {width}"),
        Stem::Deep { widths: [x, y, z] } => format!("3×3 convs → {x} → {y} → {z}"),
    }
}

fn shortcut_text(a: &Arch) -> &'static str {
    match a.shortcut {
        Shortcut::Conv => "1×1 conv with the stage stride + BN",
        Shortcut::AvgPool => "2×2 avg pool (ceil, no padding in the divisor) + 1×1 conv + BN",
    }
}

fn to_json(f: &Facts, batch: usize, h: usize, w: usize) -> serde_json::Value {
    let (a, pre) = (&f.arch, &f.pre);
    serde_json::json!({
        "file": f.file.path.display().to_string(),
        "architecture": a.name(),
        "description": a.describe(),
        "layout": a.layout.describe(a.num_classes.is_some()),
        "block": format!("{:?}", a.block).to_lowercase(),
        "depths": a.depths(),
        "stem": stem_text(a),
        "stem_width": a.stem.out_channels(),
        "shortcut": shortcut_text(a),
        "stage_widths": a.stages.iter().map(|s| s.inner_width).collect::<Vec<_>>(),
        "stage_outputs": a.stages.iter().map(|s| s.out_channels).collect::<Vec<_>>(),
        "groups": a.groups(),
        "stage_strides": a.stages.iter().map(|s| s.stride).collect::<Vec<_>>(),
        "stride_on_1x1": a.stages.iter().any(|s| s.stride_on_1x1),
        "classes": a.num_classes,
        "labels": f.labels_from,
        "config": f.config.as_ref().map(|c| c.path.display().to_string()),
        "assumptions": a.assumptions,
        "preprocess": {
            "resize": pre.resize, "crop": [pre.crop_h, pre.crop_w],
            "interp": format!("{:?}", pre.interp).to_lowercase(),
            "rounding": format!("{:?}", pre.crop_rounding).to_lowercase(),
            "mean": pre.mean, "std": pre.std, "from": f.pre_from,
        },
        "parameters": a.parameter_count(),
        "stored_bytes": f.file.float_bytes(),
        "gflops_224": f.gflops_224,
        "plan": {
            "batch": batch, "height": h, "width": w,
            "dispatches": f.graph.nodes.len(),
            "activation_buffers": f.plan.slot_bytes.len(),
            "peak_activation_bytes": f.plan.peak_bytes(),
            "weight_bytes": f.graph.folded_weight_bytes_as(f.precision.element_bytes()),
            "precision": f.precision,
            "gflops": f.gflops,
        },
        "metadata": f.file.metadata,
    })
}

fn print_text(f: &Facts, batch: usize, h: usize, w: usize) -> anyhow::Result<()> {
    let a = &f.arch;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    outln!("file:         {}", f.file.path.display());
    outln!("architecture: {}", a.describe());
    outln!(
        "blocks:       {}, depths {:?}",
        format!("{:?}", a.block).to_lowercase(),
        a.depths()
    );
    outln!("stem:         {}", stem_text(a));
    outln!("shortcut:     {}", shortcut_text(a));
    outln!(
        "widths:       inner {:?}, outputs {:?}, groups {:?}",
        a.stages.iter().map(|s| s.inner_width).collect::<Vec<_>>(),
        a.stages.iter().map(|s| s.out_channels).collect::<Vec<_>>(),
        a.groups()
    );
    match (a.num_classes, &f.labels_from) {
        (Some(c), Some(from)) => outln!("classes:      {c} (names: {from})"),
        _ => outln!(
            "classes:      none (no head: outputs {} pooled features)",
            a.features()
        ),
    }
    if let Some(c) = &f.config {
        outln!("config:       {}", c.path.display());
    }
    for assumed in &a.assumptions {
        outln!("assumed:      {assumed}");
    }
    outln!(
        "preprocess:   {} (from {})",
        presets::describe(&f.pre),
        f.pre_from
    );
    outln!(
        "parameters:   {} ({:.1} MiB as stored)",
        a.parameter_count(),
        mib(f.file.float_bytes())
    );
    outln!(
        "GFLOPs @224:  {:.2} (per image, 2 per multiply-add)",
        f.gflops_224
    );
    outln!(
        "plan @ {batch}x3x{h}x{w}: {} dispatches, {} activation buffers ({:.1} MiB), {:.1} MiB folded weights ({})",
        f.graph.nodes.len(),
        f.plan.slot_bytes.len(),
        mib(f.plan.peak_bytes()),
        mib(f.graph.folded_weight_bytes_as(f.precision.element_bytes())),
        f.precision
    );
    if let Some(d) = f.file.metadata.get("resnet.description") {
        outln!("description:  {d}");
    }
    Ok(())
}

/// `info` for a pre-activation ResNet (Wide ResNet, timm ResNetV2): its description, where
/// the BatchNorm + ReLU pairs are fused, and the plan at the requested size — or why it cannot
/// run there (a WRN's fixed 8×8 head pool).
/// `--frames` is for video weights only.
fn refuse_frames(file: &WeightsFile, frames: Option<usize>) -> anyhow::Result<()> {
    if frames.is_some() {
        anyhow::bail!(Error::Usage(format!(
            "{}: an image network; --frames applies to video weights",
            file.path.display()
        )));
    }
    Ok(())
}

fn preact_info(
    file: &WeightsFile,
    arch: &PreActArch,
    graph: &Graph,
    (batch, h, w): (usize, usize, usize),
    json: bool,
) -> anyhow::Result<()> {
    let pre_acts = graph
        .nodes
        .iter()
        .filter(|n| n.op.pre_act().is_some())
        .count();
    let fused = format!("BatchNorm + ReLU applied as read by {pre_acts} ops");
    let plan = graph.infer_shapes(batch, h, w).map(|shapes| {
        let gflops = graph
            .nodes
            .iter()
            .map(|n| n.op.flops(&shapes[n.output]) as f64);
        let plan = MemoryPlan::new(graph, &shapes, true);
        (plan, gflops.sum::<f64>() / 1e9)
    });
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    if json {
        let plan = match &plan {
            Ok((p, gflops)) => serde_json::json!({
                "batch": batch, "height": h, "width": w, "dispatches": graph.nodes.len(),
                "activation_buffers": p.slot_bytes.len(), "peak_activation_bytes": p.peak_bytes(),
                "weight_bytes": graph.folded_weight_bytes(), "gflops": gflops,
            }),
            Err(e) => serde_json::json!({ "error": e.to_string() }),
        };
        let value = serde_json::json!({
            "file": file.path.display().to_string(), "architecture": arch.name(),
            "description": arch.describe(), "pre_activation": fused, "depths": arch.depths(),
            "stage_outputs": arch.widths(), "classes": arch.head.as_ref().map(|h| h.classes),
            "stored_bytes": file.float_bytes(), "plan": plan, "metadata": file.metadata,
        });
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    outln!("file:         {}", file.path.display());
    outln!("architecture: {}", arch.describe());
    outln!("pre-act:      {fused}");
    outln!(
        "widths:       outputs {:?}, depths {:?}",
        arch.widths(),
        arch.depths()
    );
    outln!("stored:       {:.1} MiB", mib(file.float_bytes()));
    match plan {
        Ok((p, gflops)) => outln!(
            "plan @ {batch}x3x{h}x{w}: {} dispatches, {} activation buffers ({:.1} MiB), \
             {:.1} MiB folded weights, {gflops:.2} GFLOPs",
            graph.nodes.len(),
            p.slot_bytes.len(),
            mib(p.peak_bytes()),
            mib(graph.folded_weight_bytes())
        ),
        Err(e) => outln!("plan @ {batch}x3x{h}x{w}: cannot run at this size: {e}"),
    }
    Ok(())
}
