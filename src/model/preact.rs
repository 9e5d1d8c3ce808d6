//! Pre-activation ResNets (He et al.'s "identity mappings", v2: BN → ReLU → conv inside each
//! block) from their safetensors keys, and their graph:
//!
//! - RobustBench's original Wide ResNet (`model_zoo/architectures/wide_resnet.py`): `conv1`
//!   (3×3, stride 1, no BN, no max pool), `block{1,2,3}.layer.{i}.{bn1, conv1, bn2, conv2}`,
//!   `convShortcut` where a block changes width, final `bn1`, `fc`; its head pool is
//!   `F.avg_pool2d(out, 8)`, the global average only on an 8×8 final map;
//! - timm's `ResNetV2` with BatchNorm (`resnetv2_18/34/50/101/152[d|t]`): `stem.conv` (7×7,
//!   stride 2) or the deep stem `stem.conv1/norm1/conv2/norm2/conv3`, a 3×3 max pool,
//!   `stages.i.blocks.j.{norm1, conv1, norm2, conv2[, norm3, conv3], downsample.conv}`, final
//!   `norm`, head `head.fc` stored as a 1×1 conv.
//!
//! Both share one structure: a block pre-activates its input with its first norm; its
//! projection shortcut (when it has one) reads that activated input, an identity shortcut the
//! raw one; every branch conv but the last is followed by a BatchNorm + ReLU, which folds into
//! it; the last conv has no norm and adds the shortcut, with no ReLU. Strides, padding and
//! pools, which no tensor holds, follow the libraries' fixed rules: the first block of every
//! stage after the first strides 2 (on the 3×3 conv), padding is `k // 2`. timm stores its
//! conv and avg-pool shortcuts under the same key (`downsample.conv`; the pool has no
//! tensor): every registered BatchNorm variant pairs the deep stem with the avg-pool shortcut
//! (`resnetv2_*d`, `resnetv2_50t`) and the 7×7 stem with the conv one, and so does detection.
//!
//! Every tensor is then checked both ways against [`PreActArch::expected_tensors`].

use std::collections::BTreeMap;
use std::ops::Bound;

use super::layout::check_both_ways;
use crate::error::{Error, Result};
use crate::graph::{Conv, Graph, HeadWindow, Op, ValueId, Window};
use crate::weights::WeightsFile;

/// Where the keys come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreActLayout {
    /// RobustBench's / the original Wide ResNet.
    RobustBench,
    /// timm's `ResNetV2` with BatchNorm.
    TimmV2,
}

/// One convolution in the file's names, and the BatchNorm that directly follows it (folded
/// into it at load, then ReLU), if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreActConv {
    /// Module path (`block1.layer.0.conv1`, `stages.0.blocks.0.conv2`).
    pub name: String,
    /// `None`: nothing follows but the next block's pre-activation (a branch's last conv, a
    /// shortcut, the stem's last conv): the raw sum is what the residual stream carries.
    pub bn: Option<String>,
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
}

impl PreActConv {
    fn weight(&self) -> String {
        format!("{}.weight", self.name)
    }
}

/// A block's shortcut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PreActShortcut {
    /// The raw block input.
    Identity,
    /// A 1×1 conv with the block's stride on the activated input.
    Conv(PreActConv),
    /// timm's `DownsampleAvg`: a 2×2 average pool (ceil mode, no padding in the divisor) with
    /// the block's stride on the activated input, then a 1×1 conv.
    PoolConv(PreActConv),
}

/// One residual block: `branch(act(x)) + shortcut`, `act = relu(norm(x))`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreActBlock {
    /// Module path (`block2.layer.0`, `stages.1.blocks.0`).
    pub name: String,
    /// The pre-activation BatchNorm (`bn1` / `norm1`).
    pub norm: String,
    pub branch: Vec<PreActConv>,
    pub shortcut: PreActShortcut,
    /// The block's stride (on its first conv for WRN and basic blocks, the 3×3 otherwise).
    pub stride: usize,
}

impl PreActBlock {
    /// The shortcut's conv, if it has one.
    pub fn projection(&self) -> Option<&PreActConv> {
        match &self.shortcut {
            PreActShortcut::Identity => None,
            PreActShortcut::Conv(c) | PreActShortcut::PoolConv(c) => Some(c),
        }
    }
}

/// The classifier on the activated, pooled features.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreActHead {
    pub weight: String,
    pub bias: String,
    pub classes: usize,
    /// timm stores it as a 1×1 conv: `(classes, C, 1, 1)`.
    pub conv_shaped: bool,
}

/// A pre-activation ResNet as detected from its weights.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreActArch {
    pub layout: PreActLayout,
    /// Stem convs: every one but the last followed by its BatchNorm + ReLU.
    pub stem: Vec<PreActConv>,
    /// timm's 3×3 stride-2 max pool after the stem (on the stem's raw output).
    pub stem_pool: bool,
    pub stages: Vec<Vec<PreActBlock>>,
    /// The final norm, applied with ReLU to the last block's output as the pool reads it.
    pub final_norm: String,
    /// `None`: the output is the pooled features (timm with `num_classes=0`).
    pub head: Option<PreActHead>,
}

/// Whether `w` holds a pre-activation ResNet's keys (or a timm ResNetV2 this module refuses
/// with a clear error).
pub fn is_preact(w: &WeightsFile) -> bool {
    w.tensors
        .keys()
        .any(|k| k.starts_with("block1.layer.0.") || k.starts_with("stages.0.blocks.0."))
}

/// Detects the architecture of a pre-activation ResNet and checks every tensor against it.
pub fn detect_preact(w: &WeightsFile) -> Result<PreActArch> {
    let s = Shapes::of(w);
    let arch = if s.has_prefix("block1.layer.0") {
        robustbench(&s)?
    } else {
        refuse_timm_variants(&s, w)?;
        timm_v2(&s)?
    };
    if arch.stages.is_empty() || arch.stages.iter().any(Vec::is_empty) {
        return Err(Error::NotResnet(format!(
            "{}: a pre-activation ResNet needs at least one block per stage",
            w.path.display()
        )));
    }
    check_tensors(w, &arch)?;
    Ok(arch)
}

/// Tensor shapes by name.
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

    /// How many `{prefix}{i}` modules exist, counting from 0.
    fn count(&self, prefix: &str) -> usize {
        (0..)
            .take_while(|i| self.has_prefix(&format!("{prefix}{i}")))
            .count()
    }

    /// A conv weight `(C_out, C_in, k, k)` with the kernel the library gives that conv; its
    /// BatchNorm's shapes and the channels along the network are checked later.
    fn conv(&self, name: &str, bn: Option<String>, [k, stride]: [usize; 2]) -> Result<PreActConv> {
        let weight = format!("{name}.weight");
        let shape = *self
            .0
            .get(weight.as_str())
            .ok_or_else(|| Error::MissingTensor {
                name: weight.clone(),
                expected: vec![0, 0, k, k],
            })?;
        if shape.len() != 4 || shape[..2].contains(&0) || shape[2..] != [k, k] {
            let (o, i) = (shape.first().copied(), shape.get(1).copied());
            return Err(Error::TensorShape {
                name: weight,
                expected: vec![o.unwrap_or(0), i.unwrap_or(0), k, k],
                found: shape.to_vec(),
            });
        }
        Ok(PreActConv {
            name: name.to_string(),
            bn,
            in_channels: shape[1],
            out_channels: shape[0],
            kernel: k,
            stride,
        })
    }

    /// The classes of a head weight of rank 2 (`Linear`) or 4 (1×1 conv).
    fn head(&self, prefix: &str, conv_shaped: bool) -> Result<Option<PreActHead>> {
        let weight = format!("{prefix}.weight");
        let Some(shape) = self.0.get(weight.as_str()) else {
            return Ok(None);
        };
        let rank = if conv_shaped { 4 } else { 2 };
        if shape.len() != rank {
            return Err(Error::TensorRank {
                name: weight,
                expected: rank,
                found: shape.to_vec(),
            });
        }
        Ok(Some(PreActHead {
            classes: shape[0],
            weight,
            bias: format!("{prefix}.bias"),
            conv_shaped,
        }))
    }
}

// ---- RobustBench ---------------------------------------------------------------------------

fn robustbench(s: &Shapes) -> Result<PreActArch> {
    let stem = vec![s.conv("conv1", None, [3, 1])?];
    let mut stages = Vec::new();
    for index in 1.. {
        let prefix = format!("block{index}.layer.");
        let blocks = s.count(&prefix);
        if blocks == 0 {
            break;
        }
        let stage_stride = if index == 1 { 1 } else { 2 };
        let blocks = (0..blocks)
            .map(|b| {
                let stride = if b == 0 { stage_stride } else { 1 };
                robustbench_block(s, &format!("{prefix}{b}"), stride)
            })
            .collect::<Result<_>>()?;
        stages.push(blocks);
    }
    Ok(PreActArch {
        layout: PreActLayout::RobustBench,
        stem,
        stem_pool: false,
        stages,
        final_norm: "bn1".into(),
        head: Some(s.head("fc", false)?.ok_or_else(|| Error::MissingTensor {
            name: "fc.weight".into(),
            expected: vec![],
        })?),
    })
}

/// `BasicBlock`: `convShortcut` exists exactly when the block changes width.
fn robustbench_block(s: &Shapes, p: &str, stride: usize) -> Result<PreActBlock> {
    let conv1 = s.conv(&format!("{p}.conv1"), Some(format!("{p}.bn2")), [3, stride])?;
    let conv2 = s.conv(&format!("{p}.conv2"), None, [3, 1])?;
    let shortcut = match s.has(&format!("{p}.convShortcut.weight")) {
        true => PreActShortcut::Conv(s.conv(&format!("{p}.convShortcut"), None, [1, stride])?),
        false => PreActShortcut::Identity,
    };
    Ok(PreActBlock {
        name: p.to_string(),
        norm: format!("{p}.bn1"),
        branch: vec![conv1, conv2],
        shortcut,
        stride,
    })
}

// ---- timm ResNetV2 -------------------------------------------------------------------------

/// The timm ResNetV2 variants this module cannot run, named.
fn refuse_timm_variants(s: &Shapes, w: &WeightsFile) -> Result<()> {
    let refuse = |what: String| Err(Error::NotResnet(format!("{}: {what}", w.path.display())));
    let norm = "stages.0.blocks.0.norm1";
    if s.has(&format!("{norm}.weight")) && !s.has(&format!("{norm}.running_mean")) {
        return refuse(format!(
            "`{norm}` has no running statistics: a GroupNorm / weight-standardised ResNetV2 \
             (BiT `resnetv2_*x*_bit`, `resnetv2_50d_gn`, or EvoNorm/FRN `resnetv2_50d_evos` / \
             `_frn`); only the BatchNorm variants (`resnetv2_18/34/50/101/152[d|t]`) are supported"
        ));
    }
    if s.has("stem.norm.weight") || s.has("stem.norm3.weight") {
        return refuse(
            "a ResNetV2 without pre-activation (`preact=False`: `stem.norm`, BN after each \
             conv), as in timm's ViT hybrid backbones; not supported"
                .into(),
        );
    }
    Ok(())
}

fn timm_v2(s: &Shapes) -> Result<PreActArch> {
    let deep = s.has("stem.conv1.weight");
    let stem = if deep {
        vec![
            s.conv("stem.conv1", Some("stem.norm1".into()), [3, 2])?,
            s.conv("stem.conv2", Some("stem.norm2".into()), [3, 1])?,
            s.conv("stem.conv3", None, [3, 1])?,
        ]
    } else {
        vec![s.conv("stem.conv", None, [7, 2])?]
    };
    let mut stages = Vec::new();
    for index in 0.. {
        let prefix = format!("stages.{index}.blocks.");
        let blocks = s.count(&prefix);
        if blocks == 0 {
            break;
        }
        let stage_stride = if index == 0 { 1 } else { 2 };
        let blocks = (0..blocks)
            .map(|b| {
                let stride = if b == 0 { stage_stride } else { 1 };
                timm_block(s, &format!("{prefix}{b}"), stride, deep)
            })
            .collect::<Result<_>>()?;
        stages.push(blocks);
    }
    Ok(PreActArch {
        layout: PreActLayout::TimmV2,
        stem,
        stem_pool: true,
        stages,
        final_norm: "norm".into(),
        head: s.head("head.fc", true)?,
    })
}

/// `PreActBottleneck` (with `conv3`; stride on the 3×3) or `PreActBasic` (stride on conv1).
fn timm_block(s: &Shapes, p: &str, stride: usize, avg_down: bool) -> Result<PreActBlock> {
    // conv i is followed by norm i+1 except the last.
    let conv = |i: usize, last: bool, kernel_stride: [usize; 2]| {
        let bn = (!last).then(|| format!("{p}.norm{}", i + 1));
        s.conv(&format!("{p}.conv{i}"), bn, kernel_stride)
    };
    let branch = if s.has(&format!("{p}.conv3.weight")) {
        vec![
            conv(1, false, [1, 1])?,
            conv(2, false, [3, stride])?,
            conv(3, true, [1, 1])?,
        ]
    } else {
        vec![conv(1, false, [3, stride])?, conv(2, true, [3, 1])?]
    };
    let d = format!("{p}.downsample.conv");
    let shortcut = match (s.has(&format!("{d}.weight")), avg_down) {
        (false, _) => PreActShortcut::Identity,
        (true, false) => PreActShortcut::Conv(s.conv(&d, None, [1, stride])?),
        (true, true) => PreActShortcut::PoolConv(s.conv(&d, None, [1, 1])?),
    };
    Ok(PreActBlock {
        name: p.to_string(),
        norm: format!("{p}.norm1"),
        branch,
        shortcut,
        stride,
    })
}

// ---- description and checks ----------------------------------------------------------------

impl PreActArch {
    /// Residual blocks per stage.
    pub fn depths(&self) -> Vec<usize> {
        self.stages.iter().map(Vec::len).collect()
    }

    /// Output channels of each stage.
    pub fn widths(&self) -> Vec<usize> {
        self.stages
            .iter()
            .map(|s| s.last().and_then(|b| b.branch.last()))
            .map(|c| c.map_or(0, |c| c.out_channels))
            .collect()
    }

    /// Width of the pooled embedding.
    pub fn features(&self) -> usize {
        self.widths().last().copied().unwrap_or(0)
    }

    /// Classes, or the feature width of a headless model.
    pub fn outputs(&self) -> usize {
        self.head.as_ref().map_or(self.features(), |h| h.classes)
    }

    fn is_bottleneck(&self) -> bool {
        self.stages.iter().flatten().any(|b| b.branch.len() == 3)
    }

    fn stem_widths(&self) -> Vec<usize> {
        self.stem.iter().map(|c| c.out_channels).collect()
    }

    /// `WRN-28-10` when the network is one (three stages of n blocks, widths 16k/32k/64k
    /// after a 16-channel stem), `resnetv2_50d` for timm's (with "custom widths" when they are
    /// not the released ones), else what it is.
    pub fn name(&self) -> String {
        let widths = self.widths();
        match self.layout {
            PreActLayout::RobustBench => {
                let n = self.stages.first().map_or(0, Vec::len);
                let k = widths.first().map_or(0, |w| w / 16);
                let wrn = self.depths() == [n; 3]
                    && widths == [16 * k, 32 * k, 64 * k]
                    && self.stem_widths() == [16];
                match wrn && k > 0 {
                    true => format!("WRN-{}-{k}", 6 * n + 4),
                    false => format!("WideResNet (custom widths {widths:?})"),
                }
            }
            PreActLayout::TimmV2 => {
                let per_block = if self.is_bottleneck() { 3 } else { 2 };
                let depth = per_block * self.depths().iter().sum::<usize>() + 2;
                let suffix = match self.stem_widths()[..] {
                    [_] => "",
                    [a, b, c] if a == c / 2 && b == c / 2 => "d",
                    [a, b, c] if a == 3 * c / 8 && b == c / 2 => "t",
                    _ => "-custom-stem",
                };
                let released: [usize; 4] = match self.is_bottleneck() {
                    true => [256, 512, 1024, 2048],
                    false => [64, 128, 256, 512],
                };
                let stem_released = self.stem.last().map(|c| c.out_channels) == Some(64);
                match widths == released && stem_released {
                    true => format!("resnetv2_{depth}{suffix}"),
                    false => format!("resnetv2_{depth}{suffix} (custom widths {widths:?})"),
                }
            }
        }
    }

    /// One line for `resnet info`: name, layout, "pre-activation" and what sets it apart.
    pub fn describe(&self) -> String {
        let mut traits = vec![];
        match self.layout {
            PreActLayout::RobustBench => {
                traits.push("RobustBench WideResNet, pre-activation".to_string());
                let n = self.stages.first().map_or(0, Vec::len);
                traits.push(format!("blocks per stage {n}"));
                traits.push(format!("widths {:?}", self.widths()));
            }
            PreActLayout::TimmV2 => {
                traits.push("timm ResNetV2, pre-activation".to_string());
                let block = if self.is_bottleneck() {
                    "bottleneck"
                } else {
                    "basic"
                };
                traits.push(format!("{block} blocks"));
                let widths: Vec<String> = self.stem_widths().iter().map(usize::to_string).collect();
                let kernel = self.stem.first().map_or(0, |c| c.kernel);
                let convs = if widths.len() == 1 { "conv" } else { "convs" };
                traits.push(format!(
                    "stem {kernel}×{kernel} {convs} → {}",
                    widths.join(" → ")
                ));
                traits.push(self.shortcut_text().to_string());
                traits.push(format!("depths {:?}", self.depths()));
            }
        }
        match &self.head {
            Some(h) => traits.push(format!("{} classes", h.classes)),
            None => traits.push("no head: outputs pooled features".into()),
        }
        format!("{} ({})", self.name(), traits.join(", "))
    }

    fn shortcut_text(&self) -> &'static str {
        let blocks = || self.stages.iter().flatten();
        if blocks().any(|b| matches!(b.shortcut, PreActShortcut::PoolConv(_))) {
            "avg pool + 1×1 conv shortcut"
        } else {
            "1×1 conv shortcut"
        }
    }

    /// Every conv in network order (stem, then each block's shortcut and branch).
    fn convs(&self) -> impl Iterator<Item = &PreActConv> {
        self.stem.iter().chain(
            self.stages
                .iter()
                .flatten()
                .flat_map(|b| b.projection().into_iter().chain(&b.branch)),
        )
    }

    /// Every tensor the architecture needs, with its shape, in the file's names.
    pub fn expected_tensors(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let norm = |out: &mut Vec<(String, Vec<usize>)>, prefix: &str, c: usize| {
            for p in ["weight", "bias", "running_mean", "running_var"] {
                out.push((format!("{prefix}.{p}"), vec![c]));
            }
        };
        for c in self.convs() {
            let k = c.kernel;
            out.push((c.weight(), vec![c.out_channels, c.in_channels, k, k]));
            if let Some(bn) = &c.bn {
                norm(&mut out, bn, c.out_channels);
            }
        }
        for b in self.stages.iter().flatten() {
            norm(&mut out, &b.norm, b.branch[0].in_channels);
        }
        norm(&mut out, &self.final_norm, self.features());
        if let Some(h) = &self.head {
            let weight = match h.conv_shaped {
                true => vec![h.classes, self.features(), 1, 1],
                false => vec![h.classes, self.features()],
            };
            out.push((h.weight.clone(), weight));
            out.push((h.bias.clone(), vec![h.classes]));
        }
        out
    }

    /// Channel consistency along the network: each conv reads what the previous one wrote,
    /// and an identity shortcut only where the block keeps its shape.
    fn check_chain(&self) -> Result<()> {
        let mismatch = |c: &PreActConv, want: usize| Error::TensorShape {
            name: c.weight(),
            expected: vec![c.out_channels, want, c.kernel, c.kernel],
            found: vec![c.out_channels, c.in_channels, c.kernel, c.kernel],
        };
        let mut channels = 3;
        for c in &self.stem {
            if c.in_channels != channels {
                return Err(mismatch(c, channels));
            }
            channels = c.out_channels;
        }
        for b in self.stages.iter().flatten() {
            let block_in = channels;
            for c in &b.branch {
                if c.in_channels != channels {
                    return Err(mismatch(c, channels));
                }
                channels = c.out_channels;
            }
            match &b.shortcut {
                PreActShortcut::Conv(c) | PreActShortcut::PoolConv(c)
                    if c.in_channels != block_in || c.out_channels != channels =>
                {
                    return Err(Error::TensorShape {
                        name: c.weight(),
                        expected: vec![channels, block_in, 1, 1],
                        found: vec![c.out_channels, c.in_channels, 1, 1],
                    });
                }
                PreActShortcut::Identity if block_in != channels || b.stride != 1 => {
                    return Err(Error::MissingTensor {
                        name: format!("{}.{}", b.name, self.shortcut_name()),
                        expected: vec![channels, block_in, 1, 1],
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn shortcut_name(&self) -> &'static str {
        match self.layout {
            PreActLayout::RobustBench => "convShortcut.weight",
            PreActLayout::TimmV2 => "downsample.conv.weight",
        }
    }
}

/// The file against the architecture in both directions: nothing missing, no shape or dtype
/// wrong, nothing left over (`num_batches_tracked` aside).
fn check_tensors(w: &WeightsFile, arch: &PreActArch) -> Result<()> {
    arch.check_chain()?;
    check_both_ways(w, &arch.expected_tensors(), &arch.name())
}

// ---- graph ---------------------------------------------------------------------------------

/// Builds the inference graph. A BatchNorm that follows a conv folds into it (with ReLU); a
/// block's pre-activation becomes the `pre_act` of each op that reads the activated input
/// (its first conv, and its projection shortcut's conv or avg pool); a conv followed by no
/// norm has an empty `bn` (the weight as stored, no bias); the final norm is the global
/// pool's `pre_act`. WRN's `avg_pool2d(8)` is the global average only on an 8×8 map, so the
/// pool `covers` exactly that and any other map is refused.
pub fn build_preact_graph(arch: &PreActArch) -> Graph {
    let mut g = Graph::default();
    g.input = g.new_value();
    g.input_channels = 3;
    let mut x = g.input;
    for (i, c) in arch.stem.iter().enumerate() {
        let conv = Conv {
            input_nchw: i == 0,
            ..graph_conv(c, None)
        };
        x = g.push(&c.name, Op::Conv(conv), vec![x]);
    }
    if arch.stem_pool {
        let pool = Op::MaxPool {
            kernel: 3,
            stride: 2,
            pad: 1,
            temporal: Window::POINT,
        };
        x = g.push("stem.pool", pool, vec![x]);
    }
    for block in arch.stages.iter().flatten() {
        x = push_block(&mut g, block, x);
    }
    let window = match arch.layout {
        PreActLayout::RobustBench => HeadWindow::Exactly([1, 8, 8]),
        _ => HeadWindow::Whole,
    };
    let pool = Op::GlobalAvgPool {
        window,
        pre_act: Some(arch.final_norm.clone()),
    };
    let pooled = g.push("avgpool", pool, vec![x]);
    g.features = pooled;
    g.output = match &arch.head {
        Some(h) => {
            let fc = Op::Linear {
                weight: h.weight.clone(),
                bias: h.bias.clone(),
                in_features: arch.features(),
                out_features: h.classes,
            };
            g.push("fc", fc, vec![pooled])
        }
        None => pooled,
    };
    g
}

/// A conv of the graph: its following BatchNorm folded (then ReLU), or none (empty `bn`, no
/// ReLU); `pre_act` the norm applied with ReLU to its input as read.
fn graph_conv(c: &PreActConv, pre_act: Option<&str>) -> Conv {
    Conv {
        weight: c.weight(),
        bn: c.bn.clone().unwrap_or_default(),
        in_channels: c.in_channels,
        out_channels: c.out_channels,
        groups: 1,
        kernel: c.kernel,
        stride: c.stride,
        pad: c.kernel / 2,
        temporal: Window::POINT,
        relu: c.bn.is_some(),
        input_nchw: false,
        pre_act: pre_act.map(str::to_string),
    }
}

/// Block `b` on `x`: the shortcut first, then the branch, whose last conv adds it.
fn push_block(g: &mut Graph, b: &PreActBlock, x: ValueId) -> ValueId {
    let norm = Some(b.norm.as_str());
    let shortcut = match &b.shortcut {
        PreActShortcut::Identity => x,
        PreActShortcut::Conv(c) => g.push(&c.name, Op::Conv(graph_conv(c, norm)), vec![x]),
        // timm's pool is an identity at stride 1: the conv then reads the activated input.
        PreActShortcut::PoolConv(c) if b.stride == 1 => {
            g.push(&c.name, Op::Conv(graph_conv(c, norm)), vec![x])
        }
        PreActShortcut::PoolConv(c) => {
            let pool = Op::AvgPool {
                kernel: 2,
                stride: b.stride,
                pad: 0,
                ceil_mode: true,
                pre_act: Some(b.norm.clone()),
            };
            let pooled = g.push(format!("{}.downsample.pool", b.name), pool, vec![x]);
            g.push(&c.name, Op::Conv(graph_conv(c, None)), vec![pooled])
        }
    };
    let mut y = x;
    for (i, c) in b.branch.iter().enumerate() {
        let pre_act = if i == 0 { norm } else { None };
        let inputs = match i + 1 == b.branch.len() {
            true => vec![y, shortcut],
            false => vec![y],
        };
        y = g.push(&c.name, Op::Conv(graph_conv(c, pre_act)), inputs);
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    type Keys = Vec<(String, Vec<usize>)>;

    fn conv(keys: &mut Keys, name: &str, shape: [usize; 4]) {
        keys.push((format!("{name}.weight"), shape.to_vec()));
    }

    fn norm(keys: &mut Keys, name: &str, c: usize) {
        for p in ["weight", "bias", "running_mean", "running_var"] {
            keys.push((format!("{name}.{p}"), vec![c]));
        }
    }

    /// RobustBench's `WideResNet(depth, 10, widen)` state dict, shapes only.
    fn wrn_keys(depth: usize, k: usize) -> Keys {
        let (n, widths) = ((depth - 4) / 6, [16, 16 * k, 32 * k, 64 * k]);
        let mut keys = vec![];
        conv(&mut keys, "conv1", [16, 3, 3, 3]);
        for s in 1..=3 {
            for i in 0..n {
                let (p, out) = (format!("block{s}.layer.{i}"), widths[s]);
                let cin = if i == 0 { widths[s - 1] } else { out };
                norm(&mut keys, &format!("{p}.bn1"), cin);
                conv(&mut keys, &format!("{p}.conv1"), [out, cin, 3, 3]);
                norm(&mut keys, &format!("{p}.bn2"), out);
                conv(&mut keys, &format!("{p}.conv2"), [out, out, 3, 3]);
                if cin != out {
                    conv(&mut keys, &format!("{p}.convShortcut"), [out, cin, 1, 1]);
                }
            }
        }
        norm(&mut keys, "bn1", 64 * k);
        keys.push(("fc.weight".into(), vec![10, 64 * k]));
        keys.push(("fc.bias".into(), vec![10]));
        keys
    }

    /// timm's `resnetv2_50` (or `resnetv2_50d` with `deep`) state dict, shapes only.
    fn resnetv2_50_keys(deep: bool) -> Keys {
        let mut keys = vec![];
        match deep {
            true => {
                conv(&mut keys, "stem.conv1", [32, 3, 3, 3]);
                norm(&mut keys, "stem.norm1", 32);
                conv(&mut keys, "stem.conv2", [32, 32, 3, 3]);
                norm(&mut keys, "stem.norm2", 32);
                conv(&mut keys, "stem.conv3", [64, 32, 3, 3]);
            }
            false => conv(&mut keys, "stem.conv", [64, 3, 7, 7]),
        }
        let mut cin = 64;
        for (s, blocks) in [3, 4, 6, 3].into_iter().enumerate() {
            let (out, mid) = (256 << s, 64 << s);
            for b in 0..blocks {
                let p = format!("stages.{s}.blocks.{b}");
                if b == 0 {
                    conv(&mut keys, &format!("{p}.downsample.conv"), [out, cin, 1, 1]);
                }
                norm(&mut keys, &format!("{p}.norm1"), cin);
                conv(&mut keys, &format!("{p}.conv1"), [mid, cin, 1, 1]);
                norm(&mut keys, &format!("{p}.norm2"), mid);
                conv(&mut keys, &format!("{p}.conv2"), [mid, mid, 3, 3]);
                norm(&mut keys, &format!("{p}.norm3"), mid);
                conv(&mut keys, &format!("{p}.conv3"), [out, mid, 1, 1]);
                cin = out;
            }
        }
        norm(&mut keys, "norm", 2048);
        keys.push(("head.fc.weight".into(), vec![1000, 2048, 1, 1]));
        keys.push(("head.fc.bias".into(), vec![1000]));
        keys
    }

    fn shapes(keys: &Keys) -> Shapes<'_> {
        Shapes(
            keys.iter()
                .map(|(k, s)| (k.as_str(), s.as_slice()))
                .collect(),
        )
    }

    /// The architecture's tensors are exactly the keys; returns its parameter count (what
    /// PyTorch's `parameters()` counts: no running statistics) and its multiply-adds.
    fn params_and_macs(arch: &PreActArch, keys: &Keys, side: usize) -> (usize, u64) {
        let mut want = keys.clone();
        let mut got = arch.expected_tensors();
        want.sort();
        got.sort();
        assert_eq!(got, want);
        arch.check_chain().unwrap();
        let params = keys
            .iter()
            .filter(|(k, _)| !k.ends_with("running_mean") && !k.ends_with("running_var"))
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        let g = build_preact_graph(arch);
        let shapes = g.infer_shapes(1, side, side).unwrap();
        let flops: u64 = g.nodes.iter().map(|n| n.op.flops(&shapes[n.output])).sum();
        (params, flops / 2)
    }

    #[test]
    fn full_size_wide_resnets_are_named_and_counted_as_published() {
        // Parameter and multiply-add counts from RobustBench's module itself (forward hooks
        // on conv and linear at 32×32): 36.5 M and 5.24 GMAC for WRN-28-10.
        let keys = wrn_keys(28, 10);
        let arch = robustbench(&shapes(&keys)).unwrap();
        assert_eq!(arch.name(), "WRN-28-10");
        assert_eq!(
            params_and_macs(&arch, &keys, 32),
            (36_479_194, 5_243_328_768)
        );
        for (depth, k) in [(34, 10), (70, 16), (16, 2), (10, 1)] {
            let arch = robustbench(&shapes(&wrn_keys(depth, k))).unwrap();
            assert_eq!(arch.name(), format!("WRN-{depth}-{k}"));
        }
    }

    #[test]
    fn full_size_resnetv2_are_named_and_counted_as_published() {
        // Counted on timm's resnetv2_50 / resnetv2_50d at 224 with forward hooks.
        for (deep, name, counts) in [
            (false, "resnetv2_50", (25_549_352, 4_089_184_256)),
            (true, "resnetv2_50d", (25_568_584, 4_328_824_832)),
        ] {
            let keys = resnetv2_50_keys(deep);
            let arch = timm_v2(&shapes(&keys)).unwrap();
            assert_eq!(arch.name(), name);
            assert_eq!(params_and_macs(&arch, &keys, 224), counts, "{name}");
        }
    }
}
