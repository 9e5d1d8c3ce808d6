//! `resnet info`: what a weights file holds — layout and variant, stem, shortcut, widths and
//! groups, head and class names, preprocessing, what detection assumed — and the plan's
//! statistics at a given input size. Needs no GPU.

use std::path::Path;

use anyhow::{bail, Context};
use resnet_wgpu::graph::plan::MemoryPlan;
use resnet_wgpu::metadata::{class_names_with, default_preprocess, LabelSource};
use resnet_wgpu::model::{build_graph, detect_with, Shortcut, SourceConfig, Stem};
use resnet_wgpu::preprocess::presets;
use resnet_wgpu::Error;

use crate::open_weights;

pub fn info(
    weights: Option<&Path>,
    (h, w): (usize, usize),
    batch: usize,
    json: bool,
) -> anyhow::Result<()> {
    if batch == 0 {
        bail!(Error::Usage("--batch must be at least 1".into()));
    }
    let file = open_weights(weights)?;
    let config = SourceConfig::for_weights(&file)?;
    let a = detect_with(&file, config.as_ref()).with_context(|| file.path.display().to_string())?;
    file.check_finite()?;
    let graph = build_graph(&a);
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
    let plan = MemoryPlan::new(&graph, &shapes, true);
    let weight_bytes = graph.folded_weight_bytes();
    let (pre, pre_from) = default_preprocess(&file, Some(&a), config.as_ref())?;
    let labels = match a.num_classes {
        Some(c) => Some(class_names_with(&file, c, None, config.as_ref())?),
        None => None,
    };
    let labels_from = labels.as_ref().map(|(_, s)| match s {
        LabelSource::File => "--labels",
        LabelSource::Metadata => "metadata `resnet.labels`",
        LabelSource::Config => "config.json",
        LabelSource::ImageNet => "ImageNet (1000-class head)",
        LabelSource::Indices => "class indices",
    });
    let stem = match a.stem {
        Stem::Plain { width } => format!("7×7 conv → {width}"),
        Stem::Deep { widths: [x, y, z] } => format!("3×3 convs → {x} → {y} → {z}"),
    };
    let shortcut = match a.shortcut {
        Shortcut::Conv => "1×1 conv with the stage stride + BN",
        Shortcut::AvgPool => "2×2 avg pool (ceil, no padding in the divisor) + 1×1 conv + BN",
    };
    let value = serde_json::json!({
        "file": file.path.display().to_string(),
        "architecture": a.name(),
        "description": a.describe(),
        "layout": a.layout.describe(a.num_classes.is_some()),
        "block": format!("{:?}", a.block).to_lowercase(),
        "depths": a.depths(),
        "stem": stem,
        "stem_width": a.stem.out_channels(),
        "shortcut": shortcut,
        "stage_widths": a.stages.iter().map(|s| s.inner_width).collect::<Vec<_>>(),
        "stage_outputs": a.stages.iter().map(|s| s.out_channels).collect::<Vec<_>>(),
        "groups": a.groups(),
        "stage_strides": a.stages.iter().map(|s| s.stride).collect::<Vec<_>>(),
        "stride_on_1x1": a.stages.iter().any(|s| s.stride_on_1x1),
        "classes": a.num_classes,
        "labels": labels_from,
        "config": config.as_ref().map(|c| c.path.display().to_string()),
        "assumptions": a.assumptions,
        "preprocess": {
            "resize": pre.resize, "crop": [pre.crop_h, pre.crop_w],
            "interp": format!("{:?}", pre.interp).to_lowercase(),
            "rounding": format!("{:?}", pre.crop_rounding).to_lowercase(),
            "mean": pre.mean, "std": pre.std, "from": pre_from,
        },
        "parameters": a.parameter_count(),
        "stored_bytes": file.float_bytes(),
        "gflops_224": gflops_224,
        "plan": {
            "batch": batch, "height": h, "width": w,
            "dispatches": graph.nodes.len(),
            "activation_buffers": plan.slot_bytes.len(),
            "peak_activation_bytes": plan.peak_bytes(),
            "weight_bytes": weight_bytes,
            "gflops": flops_at(batch, h, w)?,
        },
        "metadata": file.metadata,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!("file:         {}", file.path.display());
    println!("architecture: {}", a.describe());
    println!(
        "blocks:       {}, depths {:?}",
        format!("{:?}", a.block).to_lowercase(),
        a.depths()
    );
    println!("stem:         {stem}");
    println!("shortcut:     {shortcut}");
    println!(
        "widths:       inner {:?}, outputs {:?}, groups {:?}",
        a.stages.iter().map(|s| s.inner_width).collect::<Vec<_>>(),
        a.stages.iter().map(|s| s.out_channels).collect::<Vec<_>>(),
        a.groups()
    );
    match (a.num_classes, labels_from) {
        (Some(c), Some(from)) => println!("classes:      {c} (names: {from})"),
        _ => println!(
            "classes:      none (no head: outputs {} pooled features)",
            a.features()
        ),
    }
    if let Some(c) = &config {
        println!("config:       {}", c.path.display());
    }
    for assumed in &a.assumptions {
        println!("assumed:      {assumed}");
    }
    println!(
        "preprocess:   {} (from {pre_from})",
        presets::describe(&pre)
    );
    println!(
        "parameters:   {} ({:.1} MiB as stored)",
        a.parameter_count(),
        mib(file.float_bytes())
    );
    println!("GFLOPs @224:  {gflops_224:.2} (per image, 2 per multiply-add)");
    println!("plan @ {batch}x3x{h}x{w}: {} dispatches, {} activation buffers ({:.1} MiB), {:.1} MiB folded weights", graph.nodes.len(), plan.slot_bytes.len(), mib(plan.peak_bytes()), mib(weight_bytes));
    if let Some(d) = file.metadata.get("resnet.description") {
        println!("description:  {d}");
    }
    Ok(())
}
