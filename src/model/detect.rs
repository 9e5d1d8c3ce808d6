//! Architecture detection: the layout from the key names, then everything else from the
//! tensors seen through canonical names — block type from `conv3`, stage depths from block
//! indices, widths, groups and classes from shapes, stem and shortcut kind from which keys
//! exist. What shapes cannot show (transformers' stride placement) comes from `config.json`
//! beside the file, or is assumed with a warning. Every tensor is then checked against the
//! architecture in both directions.

use std::collections::BTreeMap;

use super::arch::{Arch, BlockKind, Shortcut, Stage, Stem};
use super::config::{HfConfig, SourceConfig};
use super::layout::Layout;
use crate::error::{Error, Result};
use crate::weights::{TensorEntry, WeightsFile};

/// The file's tensors under canonical names (`file` keeps the name for error messages).
struct View<'a> {
    tensors: BTreeMap<String, (&'a str, &'a TensorEntry)>,
}

impl View<'_> {
    fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The shape of a 4-D conv weight (or 2-D linear), or an error naming the file tensor.
    fn require(&self, name: &str, rank: usize) -> Result<&[usize]> {
        let (file, t) = self.tensors.get(name).ok_or_else(|| Error::MissingTensor {
            name: name.into(),
            expected: vec![],
        })?;
        if t.shape.len() != rank {
            return Err(Error::TensorRank {
                name: file.to_string(),
                expected: rank,
                found: t.shape.clone(),
            });
        }
        Ok(&t.shape)
    }
}

/// Infers the architecture of `w`, reading `config.json` beside it when there is one.
pub fn detect(w: &WeightsFile) -> Result<Arch> {
    detect_with(w, SourceConfig::for_weights(w)?.as_ref())
}

/// Infers the architecture of `w` with an explicit (or no) `config.json`.
pub fn detect_with(w: &WeightsFile, config: Option<&SourceConfig>) -> Result<Arch> {
    // timm's `seresnet*` (`layerN.M.se.fc1/fc2`) are read below; the legacy SENet layout
    // (`se_module.fc1`, from Cadene's pretrainedmodels) is not.
    if let Some(se) = w.tensors.keys().find(|n| n.contains(".se_")) {
        return Err(Error::NotResnet(format!(
            "{}: tensor `{se}` belongs to a legacy SENet squeeze-and-excitation block, which is \
             not supported (timm's `seresnet*`/`seresnext*` layout, `….se.fc1.weight`, is)",
            w.path.display()
        )));
    }
    let Some(layout) = Layout::of_names(w.tensors.keys().map(String::as_str)) else {
        let sample: Vec<_> = w.tensors.keys().take(4).cloned().collect();
        return Err(Error::NotResnet(format!(
            "{}: no `conv1.weight`/`conv1.0.weight` (torchvision/timm) or \
             `[resnet.]embedder.embedder.convolution.weight` (Hugging Face); found {} tensors, e.g. {:?}",
            w.path.display(),
            w.tensors.len(),
            sample
        )));
    };
    let view = View {
        tensors: super::layout::canonical_tensors(layout, &w.tensors)?,
    };
    let hf = config.and_then(|c| c.hf.as_ref());
    let arch = infer(&view, layout, hf, w)?;
    if let (Layout::HuggingFace { .. }, Some(hf)) = (layout, hf) {
        check_hf_config(&arch, hf, config.map(|c| c.path.display().to_string()))?;
    }
    for a in &arch.assumptions {
        super::config::warn_once(format!("{}: {a}", w.path.display()));
    }
    // Zero-width layers pass the shape checks with empty tensors but give no network.
    let stem_width = match arch.stem {
        Stem::Plain { width } => width,
        Stem::Deep { widths } => widths.iter().copied().min().unwrap_or(0),
    };
    if stem_width == 0
        || arch.num_classes == Some(0)
        || arch
            .stages
            .iter()
            .any(|s| s.inner_width == 0 || s.out_channels == 0)
    {
        return Err(Error::NotResnet(format!(
            "{}: a layer has zero channels or the head zero classes",
            w.path.display()
        )));
    }
    check_tensors(&view, &arch)?;
    Ok(arch)
}

fn infer(view: &View, layout: Layout, hf: Option<&HfConfig>, w: &WeightsFile) -> Result<Arch> {
    let stem = infer_stem(view)?;
    let block = if view.has("layer1.0.conv3.weight") {
        BlockKind::Bottleneck
    } else {
        BlockKind::Basic
    };
    let shortcut = if view.tensors.keys().any(|n| n.contains(".downsample.2.")) {
        Shortcut::AvgPool
    } else {
        Shortcut::Conv
    };
    let mut hints = Hints {
        hf,
        hf_layout: matches!(layout, Layout::HuggingFace { .. }),
        assumptions: Vec::new(),
    };
    let stride_on_1x1 = hints.stride_on_1x1(block);
    let mut stages = Vec::new();
    let mut cin = stem.out_channels();
    for index in 1.. {
        let blocks = (0..)
            .take_while(|b| view.has(&format!("layer{index}.{b}.conv1.weight")))
            .count();
        if blocks == 0 {
            break;
        }
        let p = format!("layer{index}.0");
        let (inner_width, out_channels, groups) = stage_widths(view, &p, block)?;
        let projection = view.has(&format!("{p}.downsample.0.weight"))
            || view.has(&format!("{p}.downsample.1.weight"));
        let stride = hints.stage_stride(index, projection, cin == out_channels);
        // Every block's SE is checked against this width with the other tensors.
        let se = format!("{p}.se.fc1.weight");
        let se_reduced = if view.has(&se) {
            Some(view.require(&se, 4)?[0])
        } else {
            None
        };
        stages.push(Stage {
            index,
            blocks,
            stride,
            inner_width,
            out_channels,
            groups,
            stride_on_1x1,
            se_reduced,
        });
        cin = out_channels;
    }
    if stages.is_empty() {
        return Err(Error::NotResnet(format!(
            "{}: no `layer1.0.conv1.weight` ({})",
            w.path.display(),
            layout.file_name("layer1.0.conv1.weight")
        )));
    }
    let num_classes = if view.has("fc.weight") {
        Some(view.require("fc.weight", 2)?[0])
    } else {
        None
    };
    Ok(Arch {
        layout,
        block,
        stem,
        shortcut,
        stages,
        num_classes,
        assumptions: hints.assumptions,
    })
}

fn infer_stem(view: &View) -> Result<Stem> {
    Ok(if view.has("conv1.0.weight") {
        let a = view.require("conv1.0.weight", 4)?[0];
        let b = view.require("conv1.3.weight", 4)?[0];
        let c = view.require("conv1.6.weight", 4)?[0];
        Stem::Deep { widths: [a, b, c] }
    } else {
        Stem::Plain {
            width: view.require("conv1.weight", 4)?[0],
        }
    })
}

/// `(inner width, output channels, groups)` of the stage whose first block is `p`.
fn stage_widths(view: &View, p: &str, block: BlockKind) -> Result<(usize, usize, usize)> {
    Ok(match block {
        BlockKind::Basic => {
            let c1 = view.require(&format!("{p}.conv1.weight"), 4)?;
            (c1[0], c1[0], 1)
        }
        BlockKind::Bottleneck => {
            let c2 = view.require(&format!("{p}.conv2.weight"), 4)?;
            let c3 = view.require(&format!("{p}.conv3.weight"), 4)?;
            // Groups from the weight: (C_out, C_in/G, 3, 3) of a C_out→C_out conv.
            let groups = if c2[1] == 0 || c2[0] % c2[1] != 0 {
                1
            } else {
                c2[0] / c2[1]
            };
            (c2[0], c3[0], groups)
        }
    })
}

/// What the shapes cannot show comes from transformers' config when there is one; otherwise
/// it is assumed, and for a transformers layout the assumption is recorded.
struct Hints<'a> {
    hf: Option<&'a HfConfig>,
    hf_layout: bool,
    assumptions: Vec<String>,
}

impl Hints<'_> {
    fn stride_on_1x1(&mut self, block: BlockKind) -> bool {
        match self.hf.and_then(|c| c.downsample_in_bottleneck) {
            Some(v) => v && block == BlockKind::Bottleneck,
            None => {
                if self.hf_layout && block == BlockKind::Bottleneck {
                    self.assumptions.push(
                        "no `downsample_in_bottleneck` in a config.json beside the weights: \
                         assumed false (stride on the 3×3, transformers' default); the shapes \
                         cannot tell"
                            .to_string(),
                    );
                }
                false
            }
        }
    }

    /// The stride of stage `index`'s first block, which has a `projection` shortcut or not
    /// and keeps its input width (`same_width`) or not.
    fn stage_stride(&mut self, index: usize, projection: bool, same_width: bool) -> usize {
        if index > 1 {
            return 2;
        }
        match self.hf.and_then(|c| c.downsample_in_first_stage) {
            Some(v) => 1 + v as usize,
            // A projection without a change of width exists only to stride.
            None if projection && same_width => 2,
            None => {
                if self.hf_layout && projection {
                    self.assumptions.push(
                        "no `downsample_in_first_stage` in a config.json beside the weights: \
                         assumed false (stage 1 keeps the resolution, transformers' default)"
                            .to_string(),
                    );
                }
                1
            }
        }
    }
}

/// The config must describe the network the tensors hold; a mismatch names the field.
fn check_hf_config(arch: &Arch, hf: &HfConfig, path: Option<String>) -> Result<()> {
    let path = path.unwrap_or_default();
    let mismatch = |field: &str, config: String, tensors: String| {
        Err(Error::NotResnet(format!(
            "{path}: `{field}` is {config} but the weights hold {tensors}"
        )))
    };
    if let Some(act) = hf.hidden_act.as_deref().filter(|a| *a != "relu") {
        return Err(Error::NotResnet(format!(
            "{path}: `hidden_act` is `{act}`; only relu is supported"
        )));
    }
    let kind = match arch.block {
        BlockKind::Basic => "basic",
        BlockKind::Bottleneck => "bottleneck",
    };
    if let Some(t) = hf.layer_type.as_deref().filter(|t| *t != kind) {
        return mismatch("layer_type", format!("`{t}`"), format!("{kind} layers"));
    }
    if let Some(d) = hf.depths.as_ref().filter(|d| **d != arch.depths()) {
        return mismatch("depths", format!("{d:?}"), format!("{:?}", arch.depths()));
    }
    let outs: Vec<usize> = arch.stages.iter().map(|s| s.out_channels).collect();
    if let Some(h) = hf.hidden_sizes.as_ref().filter(|h| **h != outs) {
        return mismatch("hidden_sizes", format!("{h:?}"), format!("{outs:?}"));
    }
    let stem = arch.stem.out_channels();
    if let Some(e) = hf.embedding_size.filter(|e| *e != stem) {
        return mismatch("embedding_size", e.to_string(), stem.to_string());
    }
    Ok(())
}

fn check_tensors(view: &View, arch: &Arch) -> Result<()> {
    let layout = arch.layout;
    let expected = arch.expected_tensors();
    for (name, shape) in &expected {
        let (_, t) = view.tensors.get(name).ok_or_else(|| Error::MissingTensor {
            name: layout.file_name(name),
            expected: shape.clone(),
        })?;
        if &t.shape != shape {
            return Err(Error::TensorShape {
                name: layout.file_name(name),
                expected: shape.clone(),
                found: t.shape.clone(),
            });
        }
        if t.dtype.is_none() {
            return Err(Error::TensorDtype {
                name: layout.file_name(name),
                found: t.dtype_name.clone(),
            });
        }
    }
    let known: std::collections::HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    for (name, (file, t)) in &view.tensors {
        // `num_batches_tracked` is a training-only counter; ignore it wherever a BN is.
        if let Some(bn) = name.strip_suffix(".num_batches_tracked") {
            if known.contains(format!("{bn}.running_mean").as_str()) {
                continue;
            }
        }
        if !known.contains(name.as_str()) {
            return Err(Error::UnexpectedTensor {
                name: file.to_string(),
                shape: t.shape.clone(),
                arch: arch.name(),
            });
        }
    }
    Ok(())
}
