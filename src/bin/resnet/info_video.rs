//! `resnet info` on video weights: the model line, its clip defaults (frames, preset, class
//! names, from the weights or the layout), parameters, GFLOPs per default clip and the memory
//! plan at a chosen clip size. Needs no GPU.

use anyhow::Context;
use resnet_wgpu::graph::plan::MemoryPlan;
use resnet_wgpu::graph::Graph;
use resnet_wgpu::model::video::{VideoArch, VideoLayout};
use resnet_wgpu::video::{
    default_frames, default_preset, head_pool_clip, video_class_names, VideoPreset,
};
use resnet_wgpu::WeightsFile;

/// The clip size asked for: frames and (H, W), each defaulting to the model's own.
pub struct ClipChoice {
    pub frames: Option<usize>,
    pub size: Option<(usize, usize)>,
    pub batch: usize,
}

/// The facts `info` reports on a video model, for both the JSON and the text form.
struct VideoFacts {
    frames: (usize, String),
    preset: (VideoPreset, String),
    /// The clip (T, H, W) the GFLOPs are given for: the defaults, or what a fixed head pool
    /// covers.
    default_clip: [usize; 3],
    labels_from: Option<String>,
    parameters: usize,
    /// GFLOPs of one clip at the default frames and crop.
    gflops_default: f64,
    /// The plan's size: (N, T, H, W).
    plan_size: [usize; 4],
    plan: MemoryPlan,
    gflops: f64,
}

pub fn info(
    file: &WeightsFile,
    arch: &VideoArch,
    graph: &Graph,
    choice: ClipChoice,
    json: bool,
) -> anyhow::Result<()> {
    let facts = gather(file, arch, graph, &choice)?;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&to_json(file, arch, graph, &facts))?
        );
        return Ok(());
    }
    print_text(file, arch, graph, &facts)
}

/// GFLOPs (2 per multiply-add) of `graph` on `(n, 3, t, h, w)`.
fn gflops_at(graph: &Graph, [n, t, h, w]: [usize; 4]) -> anyhow::Result<f64> {
    let shapes = graph
        .infer_clip_shapes(n, t, h, w)
        .with_context(|| format!("planning for {n}x3x{t}x{h}x{w}"))?;
    Ok(graph
        .nodes
        .iter()
        .map(|nd| nd.op.flops(&shapes[nd.output]) as f64)
        .sum::<f64>()
        / 1e9)
}

fn gather(
    file: &WeightsFile,
    arch: &VideoArch,
    graph: &Graph,
    choice: &ClipChoice,
) -> anyhow::Result<VideoFacts> {
    let frames = default_frames(file, arch)?;
    let preset = default_preset(file, arch)?;
    // A fixed head pool takes one clip size only: that one, else the preset's crop.
    let (t, crop) = head_pool_clip(arch).unwrap_or((frames.0, preset.0.crop()));
    let default_clip = [t, crop.0, crop.1];
    let gflops_default = gflops_at(graph, [1, t, crop.0, crop.1])?;
    let (h, w) = choice.size.unwrap_or(crop);
    let plan_size = [choice.batch, choice.frames.unwrap_or(t), h, w];
    let gflops = gflops_at(graph, plan_size)?;
    let [n, t, h, w] = plan_size;
    let plan = MemoryPlan::new(graph, &graph.infer_clip_shapes(n, t, h, w)?, true);
    let labels_from = match &arch.head {
        Some(head) => Some(video_class_names(file, head.classes, None)?.1),
        None => None,
    };
    let parameters = arch
        .expected_tensors()
        .iter()
        .map(|(_, shape)| shape.iter().product::<usize>())
        .sum();
    Ok(VideoFacts {
        frames,
        preset,
        default_clip,
        labels_from,
        parameters,
        gflops_default,
        plan_size,
        plan,
        gflops,
    })
}

fn layout_name(arch: &VideoArch) -> &'static str {
    match arch.layout {
        VideoLayout::Torchvision => "torchvision video",
        VideoLayout::PyTorchVideo => "pytorchvideo",
    }
}

fn to_json(
    file: &WeightsFile,
    arch: &VideoArch,
    graph: &Graph,
    f: &VideoFacts,
) -> serde_json::Value {
    let [n, t, h, w] = f.plan_size;
    let crop = f.preset.0.crop();
    serde_json::json!({
        "file": file.path.display().to_string(),
        "architecture": arch.name(),
        "description": arch.describe(),
        "video": true,
        "layout": layout_name(arch),
        "family": format!("{:?}", arch.family).to_lowercase(),
        "depths": arch.depths(),
        "stage_outputs": arch.widths(),
        "stem_kernels": arch.stem.iter().map(|c| c.kernel).collect::<Vec<_>>(),
        "head_pool": arch.head_pool,
        "classes": arch.head.as_ref().map(|h| h.classes),
        "features": arch.features(),
        "labels": f.labels_from,
        "frames": {"default": f.frames.0, "from": f.frames.1},
        "preprocess": {"preset": f.preset.0.describe(), "crop": [crop.0, crop.1], "from": f.preset.1},
        "parameters": f.parameters,
        "stored_bytes": file.float_bytes(),
        "default_clip": f.default_clip,
        "gflops_default_clip": f.gflops_default,
        "plan": {
            "batch": n, "frames": t, "height": h, "width": w,
            "dispatches": graph.nodes.len(),
            "activation_buffers": f.plan.slot_bytes.len(),
            "peak_activation_bytes": f.plan.peak_bytes(),
            "weight_bytes": graph.folded_weight_bytes(),
            "gflops": f.gflops,
        },
        "metadata": file.metadata,
    })
}

fn print_text(
    file: &WeightsFile,
    arch: &VideoArch,
    graph: &Graph,
    f: &VideoFacts,
) -> anyhow::Result<()> {
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    outln!("file:         {}", file.path.display());
    outln!("architecture: {}", arch.describe());
    outln!(
        "stages:       depths {:?}, outputs {:?}",
        arch.depths(),
        arch.widths()
    );
    match (&arch.head, &f.labels_from) {
        (Some(h), Some(from)) => outln!("classes:      {} (names: {from})", h.classes),
        _ => outln!(
            "classes:      none (no head: outputs {} pooled features)",
            arch.features()
        ),
    }
    if let Some([t, h, w]) = arch.head_pool {
        let [_, ch, cw] = f.default_clip;
        outln!(
            "head pool:    {t}×{h}×{w} average (stride 1, then the mean of the windows): the \
             whole final map of {}x{ch}x{cw} clips, at least",
            f.default_clip[0]
        );
    }
    outln!(
        "frames:       {} per clip (from {})",
        f.frames.0,
        f.frames.1
    );
    outln!(
        "preprocess:   {} (from {})",
        f.preset.0.describe(),
        f.preset.1
    );
    outln!(
        "parameters:   {} ({:.1} MiB as stored)",
        f.parameters,
        mib(file.float_bytes())
    );
    let [t, ch, cw] = f.default_clip;
    outln!(
        "GFLOPs:       {:.2} per {t}x{ch}x{cw} clip (2 per multiply-add)",
        f.gflops_default,
    );
    let [n, t, h, w] = f.plan_size;
    outln!(
        "plan @ {n}x3x{t}x{h}x{w}: {} dispatches, {} activation buffers ({:.1} MiB), {:.1} MiB folded weights, {:.2} GFLOPs",
        graph.nodes.len(),
        f.plan.slot_bytes.len(),
        mib(f.plan.peak_bytes()),
        mib(graph.folded_weight_bytes()),
        f.gflops
    );
    if let Some(d) = file.metadata.get("resnet.description") {
        outln!("description:  {d}");
    }
    Ok(())
}
