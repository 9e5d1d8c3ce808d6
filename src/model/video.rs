//! Video ResNets (3-D convolutions over time × height × width) from their safetensors keys:
//! torchvision's `r3d_18` / `mc3_18` / `r2plus1d_18` (`stem.*`, `layerN.M.convK.*`, `fc`) and
//! pytorchvideo's `slow_r50` / `c2d_r50` / `i3d_r50` (`blocks.0.conv`, `blocks.N.res_blocks.M.
//! branch2.conv_{a,b,c}`, `blocks.N.proj`). Pure data: every conv's kernel comes from its
//! weight's shape; strides, padding and pools — which no tensor holds — from each layout's
//! fixed rules (torchvision `models/video/resnet.py`, pytorchvideo `models/resnet.py`):
//!
//! - padding is `k // 2` on every axis (both libraries);
//! - torchvision: the stem strides (1, 2, 2); the first block of layer2–4 strides 2 in space
//!   and, where its first conv has a temporal extent, 2 in time (mc3's 1×3×3 stages keep T;
//!   R(2+1)D puts the spatial stride on the 1×3×3 half and the temporal one on the 3×1×1
//!   half); the 1×1×1 shortcut takes the block's stride;
//! - pytorchvideo: the stem strides (1, 2, 2) and is followed by a (1,3,3) max pool stride
//!   (1,2,2) pad (0,1,1); the first block of stages 2–4 strides (1, 2, 2) on `conv_b`, the
//!   shortcut likewise; a `blocks.N` index holding no tensor between two stages is the (2,1,1)
//!   stride (2,1,1) max pool of c2d/i3d; the head's average pool has a fixed kernel, which
//!   [`VideoArch::head_pool`] holds (the model zoo's default for the recognised models).
//!
//! Every tensor is then checked both ways against [`VideoArch::expected_tensors`].

use std::collections::BTreeMap;
use std::ops::Bound;

use super::layout::check_both_ways;
use crate::error::{Error, Result};
use crate::weights::WeightsFile;

/// Where the keys come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoLayout {
    Torchvision,
    PyTorchVideo,
}

/// One convolution with the BatchNorm folded into it, in the file's names. ReLU placement is
/// structural: every stem conv and every branch conv but a block's last is followed by ReLU;
/// a block's last conv adds the shortcut, then applies ReLU; a shortcut conv has none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conv3d {
    /// Tensor name of the weight `(C_out, C_in, kT, kH, kW)`.
    pub weight: String,
    /// Prefix of the BatchNorm's four tensors.
    pub bn: String,
    pub in_channels: usize,
    pub out_channels: usize,
    /// (T, H, W) everywhere below.
    pub kernel: [usize; 3],
    pub stride: [usize; 3],
    pub pad: [usize; 3],
}

impl Conv3d {
    fn new(weight: String, bn: String, shape: &[usize], stride: [usize; 3]) -> Self {
        let kernel = [shape[2], shape[3], shape[4]];
        Self {
            weight,
            bn,
            in_channels: shape[1],
            out_channels: shape[0],
            kernel,
            stride,
            pad: kernel.map(|k| k / 2),
        }
    }

    /// Multiply-accumulates per output element.
    pub fn taps(&self) -> usize {
        self.kernel.iter().product::<usize>() * self.in_channels
    }
}

/// A max pool over (T, H, W) with −∞ padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool3d {
    pub kernel: [usize; 3],
    pub stride: [usize; 3],
    pub pad: [usize; 3],
}

/// One residual block: `relu(branch(x) + shortcut(x))`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoBlock {
    /// Module path (`layer2.0`, `blocks.3.res_blocks.0`).
    pub name: String,
    pub branch: Vec<Conv3d>,
    /// A projection (1×1×1 conv + BN), else the identity.
    pub shortcut: Option<Conv3d>,
}

/// A stage: its blocks, then the pool that follows it, if any (c2d/i3d's temporal pool).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoStage {
    pub blocks: Vec<VideoBlock>,
    pub pool_after: Option<Pool3d>,
}

/// The classifier: `Linear(features → classes)` on the clip's mean over T×H×W.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoHead {
    pub weight: String,
    pub bias: String,
    pub classes: usize,
}

/// The models the two libraries ship, recognised from the kernels; anything else is `Custom`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoFamily {
    /// torchvision: 3×3×3 everywhere.
    R3d,
    /// torchvision: 3-D stem and layer1, 1×3×3 convs after.
    Mc3,
    /// torchvision: every 3-D conv factorised into 1×k×k then k×1×1.
    R2Plus1d,
    /// pytorchvideo: 1×7×7 stem, temporal 3×1×1 `conv_a` only in the last two stages.
    Slow,
    /// pytorchvideo: no temporal kernel, temporal pool after stage 1.
    C2d,
    /// pytorchvideo: 5×7×7 stem, temporal `conv_a` kernels (alternating with 1×1×1 in stages
    /// 2–4), temporal pool after stage 1.
    I3d,
    Custom,
}

/// A video ResNet as detected from its weights.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoArch {
    pub layout: VideoLayout,
    pub family: VideoFamily,
    /// Stem convs, each followed by ReLU (two for R(2+1)D: 1×7×7 then 3×1×1).
    pub stem: Vec<Conv3d>,
    pub stem_pool: Option<Pool3d>,
    pub stages: Vec<VideoStage>,
    /// pytorchvideo's fixed average-pool kernel before `proj`, computed as the global
    /// average over T×H×W, which it is only when it covers the final map exactly
    /// (anything else is refused at run time). `None`: torchvision's adaptive pool.
    pub head_pool: Option<[usize; 3]>,
    /// `None`: the output is the pooled features.
    pub head: Option<VideoHead>,
}

/// Whether `w` holds a video ResNet (a 5-D stem weight in either layout).
pub fn is_video(w: &WeightsFile) -> bool {
    ["stem.0.weight", "blocks.0.conv.weight"]
        .iter()
        .any(|n| w.get(n).is_some_and(|t| t.shape.len() == 5))
}

/// Detects the architecture of a video ResNet and checks every tensor against it.
pub fn detect_video(w: &WeightsFile) -> Result<VideoArch> {
    let shapes = Shapes::of(w);
    let arch = if w.get("stem.0.weight").is_some() {
        torchvision(&shapes)?
    } else if w.get("blocks.0.conv.weight").is_some() {
        pytorchvideo(&shapes)?
    } else {
        return Err(Error::NotResnet(format!(
            "{}: no `stem.0.weight` (torchvision video) or `blocks.0.conv.weight` (pytorchvideo)",
            w.path.display()
        )));
    };
    if arch.stages.iter().any(|s| s.blocks.is_empty()) || arch.stages.is_empty() {
        return Err(Error::NotResnet(format!(
            "{}: a video ResNet needs at least one residual block per stage",
            w.path.display()
        )));
    }
    check_tensors(w, &arch)?;
    Ok(arch)
}

/// The architecture a list of `(name, shape)` conv and head weights describes, by the rules
/// [`detect_video`] applies to a file's tensors (a standard model is built from its shapes:
/// see [`super::video_standard`]).
pub fn from_shapes(shapes: &[(String, Vec<usize>)]) -> Result<VideoArch> {
    let s = Shapes(
        shapes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect(),
    );
    if s.has("stem.0.weight") {
        torchvision(&s)
    } else {
        pytorchvideo(&s)
    }
}

/// Tensor shapes by name, with the rank checked where a conv or linear is expected.
struct Shapes<'a>(BTreeMap<&'a str, &'a [usize]>);

impl<'a> Shapes<'a> {
    fn of(w: &'a WeightsFile) -> Self {
        Self(
            w.tensors
                .iter()
                .map(|(k, t)| (k.as_str(), t.shape.as_slice()))
                .collect(),
        )
    }

    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    fn has_prefix(&self, prefix: &str) -> bool {
        let dotted = format!("{prefix}.");
        self.0
            .range::<str, _>((Bound::Included(dotted.as_str()), Bound::Unbounded))
            .next()
            .is_some_and(|(k, _)| k.starts_with(&dotted))
    }

    fn require(&self, name: &str, rank: usize) -> Result<&'a [usize]> {
        let shape = *self.0.get(name).ok_or_else(|| Error::MissingTensor {
            name: name.into(),
            expected: vec![],
        })?;
        if shape.len() != rank || shape.contains(&0) {
            return Err(Error::TensorShape {
                name: name.into(),
                expected: vec![0; rank],
                found: shape.to_vec(),
            });
        }
        Ok(shape)
    }

    fn conv(&self, prefix: &str, bn: &str, stride: [usize; 3]) -> Result<Conv3d> {
        let weight = format!("{prefix}.weight");
        let shape = self.require(&weight, 5)?;
        Ok(Conv3d::new(weight, bn.to_string(), shape, stride))
    }

    fn head(&self, prefix: &str) -> Result<Option<VideoHead>> {
        let weight = format!("{prefix}.weight");
        if !self.has(&weight) {
            return Ok(None);
        }
        let classes = self.require(&weight, 2)?[0];
        Ok(Some(VideoHead {
            weight,
            bias: format!("{prefix}.bias"),
            classes,
        }))
    }
}

// ---- torchvision ---------------------------------------------------------------------------

fn torchvision(s: &Shapes) -> Result<VideoArch> {
    let mut stem = vec![s.conv("stem.0", "stem.1", [1, 2, 2])?];
    if s.has("stem.3.weight") {
        stem.push(s.conv("stem.3", "stem.4", [1, 1, 1])?);
    }
    let mut stages = Vec::new();
    for index in 1.. {
        let blocks = (0..)
            .take_while(|b| s.has_prefix(&format!("layer{index}.{b}")))
            .count();
        if blocks == 0 {
            break;
        }
        let stride = if index == 1 { 1 } else { 2 };
        let blocks = (0..blocks)
            .map(|b| {
                torchvision_block(
                    s,
                    &format!("layer{index}.{b}"),
                    if b == 0 { stride } else { 1 },
                )
            })
            .collect::<Result<_>>()?;
        stages.push(VideoStage {
            blocks,
            pool_after: None,
        });
    }
    let family = torchvision_family(&stem, &stages);
    Ok(VideoArch {
        layout: VideoLayout::Torchvision,
        family,
        stem,
        stem_pool: None,
        stages,
        head_pool: None,
        head: s.head("fc")?,
    })
}

/// `conv1` (with the block's stride) and `conv2`, each plain (`convK.0`, BN `convK.1`) or
/// factorised (`convK.0.0` spatial, BN `convK.0.1`, `convK.0.3` temporal, BN `convK.1`).
fn torchvision_block(s: &Shapes, p: &str, stride: usize) -> Result<VideoBlock> {
    let mut branch = Vec::new();
    for k in 1..=2 {
        let step = if k == 1 { stride } else { 1 };
        let unit = format!("{p}.conv{k}");
        if s.has(&format!("{unit}.0.0.weight")) {
            branch.push(s.conv(
                &format!("{unit}.0.0"),
                &format!("{unit}.0.1"),
                [1, step, step],
            )?);
            branch.push(s.conv(&format!("{unit}.0.3"), &format!("{unit}.1"), [step, 1, 1])?);
        } else {
            let conv = s.conv(&format!("{unit}.0"), &format!("{unit}.1"), [1, step, step])?;
            // A temporal extent takes the temporal stride too (Conv3DSimple); a 1×k×k conv
            // (Conv3DNoTemporal) keeps T.
            let t_step = if conv.kernel[0] > 1 { step } else { 1 };
            branch.push(Conv3d {
                stride: [t_step, step, step],
                ..conv
            });
        }
    }
    // The shortcut strides like the block: (s, s, s) unless no conv of it reaches across time.
    let t_stride = branch.iter().map(|c| c.stride[0]).max().unwrap_or(1);
    let shortcut = if s.has(&format!("{p}.downsample.0.weight")) {
        let d = format!("{p}.downsample");
        Some(s.conv(
            &format!("{d}.0"),
            &format!("{d}.1"),
            [t_stride, stride, stride],
        )?)
    } else {
        None
    };
    Ok(VideoBlock {
        name: p.to_string(),
        branch,
        shortcut,
    })
}

fn torchvision_family(stem: &[Conv3d], stages: &[VideoStage]) -> VideoFamily {
    let temporal = |b: &VideoBlock| b.branch.iter().all(|c| c.kernel[0] > 1);
    if stem.len() == 2 {
        return VideoFamily::R2Plus1d;
    }
    let per_stage: Vec<bool> = stages
        .iter()
        .map(|s| s.blocks.iter().all(temporal))
        .collect();
    let spatial_only = |s: &VideoStage| {
        s.blocks
            .iter()
            .all(|b| b.branch.iter().all(|c| c.kernel[0] == 1))
    };
    match per_stage.as_slice() {
        all if all.iter().all(|&t| t) => VideoFamily::R3d,
        [true, ..] if stages[1..].iter().all(spatial_only) => VideoFamily::Mc3,
        _ => VideoFamily::Custom,
    }
}

// ---- pytorchvideo --------------------------------------------------------------------------

fn pytorchvideo(s: &Shapes) -> Result<VideoArch> {
    let stem = vec![s.conv("blocks.0.conv", "blocks.0.norm", [1, 2, 2])?];
    let stem_pool = Some(Pool3d {
        kernel: [1, 3, 3],
        stride: [1, 2, 2],
        pad: [0, 1, 1],
    });
    let mut stages: Vec<VideoStage> = Vec::new();
    let mut index = 1;
    let head = loop {
        let b = format!("blocks.{index}");
        if s.has_prefix(&format!("{b}.res_blocks")) {
            let stage = pytorchvideo_stage(s, &b, stages.len())?;
            stages.push(stage);
        } else if !s.has_prefix(&b)
            && !stages.is_empty()
            && s.has_prefix(&format!("blocks.{}", index + 1))
        {
            // A parameter-free module between stages: c2d/i3d's temporal max pool.
            let last = stages.last_mut().expect("checked non-empty");
            last.pool_after = Some(Pool3d {
                kernel: [2, 1, 1],
                stride: [2, 1, 1],
                pad: [0, 0, 0],
            });
        } else {
            break s.head(&format!("{b}.proj"))?;
        }
        index += 1;
    };
    let family = pytorchvideo_family(&stem[0], &stages);
    let head_pool = match family {
        VideoFamily::Slow => Some([8, 7, 7]),
        VideoFamily::C2d | VideoFamily::I3d => Some([4, 7, 7]),
        _ => None,
    };
    Ok(VideoArch {
        layout: VideoLayout::PyTorchVideo,
        family,
        stem,
        stem_pool,
        stages,
        head_pool,
        head,
    })
}

/// A bottleneck stage: `branch2.conv_a` (k×1×1), `conv_b` (1×3×3, the stride), `conv_c`
/// (1×1×1), `branch1_conv` (projection) in the first block.
fn pytorchvideo_stage(s: &Shapes, prefix: &str, stage: usize) -> Result<VideoStage> {
    let count = (0..)
        .take_while(|m| s.has_prefix(&format!("{prefix}.res_blocks.{m}")))
        .count();
    let blocks = (0..count)
        .map(|m| {
            let p = format!("{prefix}.res_blocks.{m}");
            let step = if m == 0 && stage > 0 { 2 } else { 1 };
            let br = format!("{p}.branch2");
            let branch = vec![
                s.conv(&format!("{br}.conv_a"), &format!("{br}.norm_a"), [1, 1, 1])?,
                s.conv(
                    &format!("{br}.conv_b"),
                    &format!("{br}.norm_b"),
                    [1, step, step],
                )?,
                s.conv(&format!("{br}.conv_c"), &format!("{br}.norm_c"), [1, 1, 1])?,
            ];
            let shortcut = if s.has(&format!("{p}.branch1_conv.weight")) {
                Some(s.conv(
                    &format!("{p}.branch1_conv"),
                    &format!("{p}.branch1_norm"),
                    [1, step, step],
                )?)
            } else {
                None
            };
            Ok(VideoBlock {
                name: p,
                branch,
                shortcut,
            })
        })
        .collect::<Result<_>>()?;
    Ok(VideoStage {
        blocks,
        pool_after: None,
    })
}

fn pytorchvideo_family(stem: &Conv3d, stages: &[VideoStage]) -> VideoFamily {
    let stage_temporal: Vec<bool> = stages
        .iter()
        .map(|s| s.blocks.iter().any(|b| b.branch[0].kernel[0] > 1))
        .collect();
    let pooled = stages.first().is_some_and(|s| s.pool_after.is_some());
    match (stem.kernel[0], pooled, stage_temporal.as_slice()) {
        (1, false, [false, false, true, true]) => VideoFamily::Slow,
        (1, true, t) if t.iter().all(|&x| !x) => VideoFamily::C2d,
        (k, true, _) if k > 1 => VideoFamily::I3d,
        _ => VideoFamily::Custom,
    }
}

// ---- description and checks ----------------------------------------------------------------

impl VideoArch {
    /// Residual blocks per stage.
    pub fn depths(&self) -> Vec<usize> {
        self.stages.iter().map(|s| s.blocks.len()).collect()
    }

    /// Output channels of each stage.
    pub fn widths(&self) -> Vec<usize> {
        self.stages
            .iter()
            .map(|s| {
                s.blocks
                    .last()
                    .map_or(0, |b| b.branch.last().map_or(0, |c| c.out_channels))
            })
            .collect()
    }

    /// Width of the pooled clip embedding.
    pub fn features(&self) -> usize {
        self.widths().last().copied().unwrap_or(0)
    }

    /// Classes, or the feature width of a headless model.
    pub fn outputs(&self) -> usize {
        self.head.as_ref().map_or(self.features(), |h| h.classes)
    }

    /// Weighted layers the way model names count them: convs on the main path plus the head
    /// (a factorised (2+1)D pair counts once, as in `r2plus1d_18`).
    pub fn depth(&self) -> usize {
        let per_block = match self.layout {
            VideoLayout::Torchvision => 2,
            VideoLayout::PyTorchVideo => 3,
        };
        per_block * self.depths().iter().sum::<usize>() + 2
    }

    /// Every conv in execution order (stem, then each block's branch and shortcut).
    pub fn convs(&self) -> impl Iterator<Item = &Conv3d> {
        self.stem.iter().chain(self.stages.iter().flat_map(|s| {
            s.blocks
                .iter()
                .flat_map(|b| b.branch.iter().chain(b.shortcut.iter()))
        }))
    }

    /// The model's name: the library's when the widths are the released ones
    /// (`r2plus1d_18`), else the family and depth with "custom widths".
    pub fn name(&self) -> String {
        let depth = self.depth();
        let base = match self.family {
            VideoFamily::R3d => format!("r3d_{depth}"),
            VideoFamily::Mc3 => format!("mc3_{depth}"),
            VideoFamily::R2Plus1d => format!("r2plus1d_{depth}"),
            VideoFamily::Slow => format!("slow_r{depth}"),
            VideoFamily::C2d => format!("c2d_r{depth}"),
            VideoFamily::I3d => format!("i3d_r{depth}"),
            VideoFamily::Custom => format!("video resnet{depth}"),
        };
        let released = match self.layout {
            VideoLayout::Torchvision => [64, 128, 256, 512],
            VideoLayout::PyTorchVideo => [256, 512, 1024, 2048],
        };
        if self.widths() == released {
            base
        } else {
            format!("{base} (custom widths {:?})", self.widths())
        }
    }

    /// One line for `resnet info`: name, layout and what sets the model apart.
    pub fn describe(&self) -> String {
        let mut traits = vec![match self.layout {
            VideoLayout::Torchvision => "torchvision video".to_string(),
            VideoLayout::PyTorchVideo => "pytorchvideo".to_string(),
        }];
        if self.family == VideoFamily::R2Plus1d {
            // Each block's two convs share one width: listed once, in network order.
            let mut mids: Vec<usize> = self
                .convs()
                .filter(|c| c.kernel[0] == 1 && c.kernel[1] > 1)
                .map(|c| c.out_channels)
                .collect();
            mids.dedup();
            let mids: Vec<String> = mids.iter().map(usize::to_string).collect();
            traits.push(format!(
                "(2+1)D factorised, mid-channels {}",
                mids.join(", ")
            ));
        }
        let stem: Vec<String> = self.stem.iter().map(|c| kernel_text(c.kernel)).collect();
        traits.push(format!("stem {}", stem.join(" + ")));
        traits.push(format!("depths {:?}", self.depths()));
        let temporal: Vec<String> = self
            .stages
            .iter()
            .map(|s| {
                let max_t = s
                    .blocks
                    .iter()
                    .flat_map(|b| &b.branch)
                    .map(|c| c.kernel[0])
                    .max();
                max_t.unwrap_or(1).to_string()
            })
            .collect();
        traits.push(format!(
            "temporal kernels per stage [{}]",
            temporal.join(", ")
        ));
        if self.stages.iter().any(|s| s.pool_after.is_some()) {
            traits.push("temporal max pool after stage 1".into());
        }
        match &self.head {
            Some(h) => traits.push(format!("{} classes", h.classes)),
            None => traits.push("no head: outputs pooled features".into()),
        }
        format!("{} ({})", self.name(), traits.join(", "))
    }

    /// Every tensor the architecture needs, with its shape, in the file's names.
    pub fn expected_tensors(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        for c in self.convs() {
            let [kt, kh, kw] = c.kernel;
            out.push((
                c.weight.clone(),
                vec![c.out_channels, c.in_channels, kt, kh, kw],
            ));
            for p in ["weight", "bias", "running_mean", "running_var"] {
                out.push((format!("{}.{p}", c.bn), vec![c.out_channels]));
            }
        }
        if let Some(h) = &self.head {
            out.push((h.weight.clone(), vec![h.classes, self.features()]));
            out.push((h.bias.clone(), vec![h.classes]));
        }
        out
    }

    /// Channel consistency along the network: each conv reads what the previous one wrote.
    fn check_chain(&self) -> Result<()> {
        let mut channels = 3;
        let mismatch = |c: &Conv3d, want: usize| Error::TensorShape {
            name: c.weight.clone(),
            expected: vec![c.out_channels, want, c.kernel[0], c.kernel[1], c.kernel[2]],
            found: vec![
                c.out_channels,
                c.in_channels,
                c.kernel[0],
                c.kernel[1],
                c.kernel[2],
            ],
        };
        for c in &self.stem {
            if c.in_channels != channels {
                return Err(mismatch(c, channels));
            }
            channels = c.out_channels;
        }
        for b in self.stages.iter().flat_map(|s| &s.blocks) {
            let block_in = channels;
            for c in &b.branch {
                if c.in_channels != channels {
                    return Err(mismatch(c, channels));
                }
                channels = c.out_channels;
            }
            match &b.shortcut {
                Some(c) if c.in_channels != block_in => return Err(mismatch(c, block_in)),
                Some(c) if c.out_channels != channels => {
                    return Err(mismatch(c, block_in));
                }
                None if block_in != channels || b.branch.iter().any(|c| c.stride != [1, 1, 1]) => {
                    return Err(Error::MissingTensor {
                        name: format!("{}.{}", b.name, self.shortcut_name()),
                        expected: vec![channels, block_in, 1, 1, 1],
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn shortcut_name(&self) -> &'static str {
        match self.layout {
            VideoLayout::Torchvision => "downsample.0.weight",
            VideoLayout::PyTorchVideo => "branch1_conv.weight",
        }
    }
}

fn kernel_text(k: [usize; 3]) -> String {
    format!("{}×{}×{}", k[0], k[1], k[2])
}

/// The file against the architecture in both directions: nothing missing, no shape or dtype
/// wrong, nothing left over (`num_batches_tracked` aside).
fn check_tensors(w: &WeightsFile, arch: &VideoArch) -> Result<()> {
    arch.check_chain()?;
    check_both_ways(w, &arch.expected_tensors(), &arch.name())
}
