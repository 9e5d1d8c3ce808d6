//! The architecture, inferred from the tensors of a weights file (torchvision layout): block
//! type from the presence of `conv3`, stage depths from the block indices, widths, groups and
//! class count from the shapes. No flag is needed and nothing is assumed that the file does
//! not show.

use crate::error::{Error, Result};
use crate::weights::WeightsFile;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3×3 convs (expansion 1): ResNet-18/34.
    Basic,
    /// 1×1 → 3×3 (stride here, "V1.5") → 1×1 ×4 (expansion 4): ResNet-50/101/152.
    Bottleneck,
}

/// One residual stage (`layer{index}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    /// 1-based, as in `layer1`.
    pub index: usize,
    pub blocks: usize,
    /// Stride of the first block (1 for stage 1, else 2).
    pub stride: usize,
    /// Width of the inner convs (bottleneck `conv1`/`conv2`; basic: equal to `out_channels`).
    pub inner_width: usize,
    /// Channels the stage outputs.
    pub out_channels: usize,
    /// Groups of the 3×3 conv (ResNeXt > 1).
    pub groups: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arch {
    pub block: BlockKind,
    pub stem_width: usize,
    pub stages: Vec<Stage>,
    pub num_classes: usize,
}

impl Arch {
    pub fn expansion(&self) -> usize {
        match self.block {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }

    pub fn features(&self) -> usize {
        self.stages
            .last()
            .map_or(self.stem_width, |s| s.out_channels)
    }

    pub fn depths(&self) -> Vec<usize> {
        self.stages.iter().map(|s| s.blocks).collect()
    }

    /// Total conv + fc layers, the "depth" in the name (ResNet-50 has 50).
    pub fn depth(&self) -> usize {
        let per_block = match self.block {
            BlockKind::Basic => 2,
            BlockKind::Bottleneck => 3,
        };
        2 + per_block * self.stages.iter().map(|s| s.blocks).sum::<usize>()
    }

    /// `resnet50`, `resnet18`…; narrow or otherwise non-standard widths are said so.
    pub fn name(&self) -> String {
        let base = format!("resnet{}", self.depth());
        // Four stages first: a file may have any number, and `64 << i` must not overflow.
        let standard = self.stem_width == 64
            && self.stages.len() == 4
            && self.stages.iter().enumerate().all(|(i, s)| {
                s.inner_width == 64 << i
                    && s.out_channels == (64 << i) * self.expansion()
                    && s.groups == 1
            });
        if standard {
            base
        } else {
            format!(
                "{base} (custom widths: stem {}, stages {:?})",
                self.stem_width,
                self.stages
                    .iter()
                    .map(|s| s.out_channels)
                    .collect::<Vec<_>>()
            )
        }
    }

    /// Every tensor the architecture needs, with its shape, in torchvision naming. The
    /// loader checks the file against this list in both directions.
    pub fn expected_tensors(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let bn = |out: &mut Vec<(String, Vec<usize>)>, prefix: &str, c: usize| {
            for p in ["weight", "bias", "running_mean", "running_var"] {
                out.push((format!("{prefix}.{p}"), vec![c]));
            }
        };
        out.push(("conv1.weight".into(), vec![self.stem_width, 3, 7, 7]));
        bn(&mut out, "bn1", self.stem_width);
        let mut cin = self.stem_width;
        for st in &self.stages {
            for b in 0..st.blocks {
                let p = format!("layer{}.{b}", st.index);
                let (w, o, g) = (st.inner_width, st.out_channels, st.groups);
                match self.block {
                    BlockKind::Basic => {
                        out.push((format!("{p}.conv1.weight"), vec![o, cin, 3, 3]));
                        bn(&mut out, &format!("{p}.bn1"), o);
                        out.push((format!("{p}.conv2.weight"), vec![o, o, 3, 3]));
                        bn(&mut out, &format!("{p}.bn2"), o);
                    }
                    BlockKind::Bottleneck => {
                        out.push((format!("{p}.conv1.weight"), vec![w, cin, 1, 1]));
                        bn(&mut out, &format!("{p}.bn1"), w);
                        out.push((format!("{p}.conv2.weight"), vec![w, w / g, 3, 3]));
                        bn(&mut out, &format!("{p}.bn2"), w);
                        out.push((format!("{p}.conv3.weight"), vec![o, w, 1, 1]));
                        bn(&mut out, &format!("{p}.bn3"), o);
                    }
                }
                if b == 0 && (st.stride != 1 || cin != o) {
                    out.push((format!("{p}.downsample.0.weight"), vec![o, cin, 1, 1]));
                    bn(&mut out, &format!("{p}.downsample.1"), o);
                }
                cin = o;
            }
        }
        out.push(("fc.weight".into(), vec![self.num_classes, cin]));
        out.push(("fc.bias".into(), vec![self.num_classes]));
        out
    }

    /// Parameter count (BatchNorm affine parameters included, running statistics not), the
    /// way torchvision's `num_params` counts.
    pub fn parameter_count(&self) -> usize {
        self.expected_tensors()
            .iter()
            .filter(|(n, _)| !n.ends_with("running_mean") && !n.ends_with("running_var"))
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }
}

fn shape_of<'a>(w: &'a WeightsFile, name: &str) -> Option<&'a [usize]> {
    w.get(name).map(|t| t.shape.as_slice())
}

fn require<'a>(w: &'a WeightsFile, name: &str, rank: usize) -> Result<&'a [usize]> {
    let shape = shape_of(w, name).ok_or_else(|| Error::MissingTensor {
        name: name.into(),
        expected: vec![],
    })?;
    if shape.len() != rank {
        return Err(Error::TensorShape {
            name: name.into(),
            expected: vec![0; rank],
            found: shape.to_vec(),
        });
    }
    Ok(shape)
}

/// Infers the architecture from a torchvision-layout file and checks every tensor: missing,
/// unexpected, mis-shaped and mis-typed tensors are errors that name the tensor.
pub fn detect(w: &WeightsFile) -> Result<Arch> {
    if w.get("conv1.weight").is_none() || w.get("fc.weight").is_none() {
        let sample: Vec<_> = w.tensors.keys().take(4).cloned().collect();
        return Err(Error::NotResnet(format!(
            "{}: no `conv1.weight`/`fc.weight` (torchvision layout); found {} tensors, e.g. {:?}",
            w.path.display(),
            w.tensors.len(),
            sample
        )));
    }
    let stem = require(w, "conv1.weight", 4)?[0];
    let block = if w.get("layer1.0.conv3.weight").is_some() {
        BlockKind::Bottleneck
    } else {
        BlockKind::Basic
    };
    let mut stages = Vec::new();
    for index in 1.. {
        let blocks = (0..)
            .take_while(|b| w.get(&format!("layer{index}.{b}.conv1.weight")).is_some())
            .count();
        if blocks == 0 {
            break;
        }
        let p = format!("layer{index}.0");
        let (inner_width, out_channels, groups) = match block {
            BlockKind::Basic => {
                let c1 = require(w, &format!("{p}.conv1.weight"), 4)?;
                (c1[0], c1[0], 1)
            }
            BlockKind::Bottleneck => {
                let c2 = require(w, &format!("{p}.conv2.weight"), 4)?;
                let c3 = require(w, &format!("{p}.conv3.weight"), 4)?;
                let groups = if c2[1] == 0 || c2[0] % c2[1] != 0 {
                    1
                } else {
                    c2[0] / c2[1]
                };
                (c2[0], c3[0], groups)
            }
        };
        stages.push(Stage {
            index,
            blocks,
            stride: if index == 1 { 1 } else { 2 },
            inner_width,
            out_channels,
            groups,
        });
    }
    if stages.is_empty() {
        return Err(Error::NotResnet(format!(
            "{}: no `layer1.0.conv1.weight`",
            w.path.display()
        )));
    }
    if stages.iter().any(|s| s.groups != 1) {
        return Err(Error::NotResnet(format!(
            "{}: grouped 3×3 convolutions (ResNeXt) are not supported yet",
            w.path.display()
        )));
    }
    let num_classes = require(w, "fc.weight", 2)?[0];
    let arch = Arch {
        block,
        stem_width: stem,
        stages,
        num_classes,
    };
    // Zero-width layers pass the shape checks with empty tensors but give no network.
    if arch.stem_width == 0
        || arch.num_classes == 0
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
    check_tensors(w, &arch)?;
    Ok(arch)
}

fn check_tensors(w: &WeightsFile, arch: &Arch) -> Result<()> {
    let expected = arch.expected_tensors();
    for (name, shape) in &expected {
        let t = w.get(name).ok_or_else(|| Error::MissingTensor {
            name: name.clone(),
            expected: shape.clone(),
        })?;
        if &t.shape != shape {
            return Err(Error::TensorShape {
                name: name.clone(),
                expected: shape.clone(),
                found: t.shape.clone(),
            });
        }
        if t.dtype.is_none() {
            return Err(Error::TensorDtype {
                name: name.clone(),
                found: t.dtype_name.clone(),
            });
        }
    }
    let known: std::collections::HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    for (name, t) in &w.tensors {
        // `num_batches_tracked` is a training-only counter; ignore it wherever a BN is.
        if let Some(bn) = name.strip_suffix(".num_batches_tracked") {
            if known.contains(format!("{bn}.running_mean").as_str()) {
                continue;
            }
        }
        if !known.contains(name.as_str()) {
            return Err(Error::UnexpectedTensor {
                name: name.clone(),
                shape: t.shape.clone(),
                arch: arch.name(),
            });
        }
    }
    Ok(())
}

/// The standard torchvision architectures by name, for synthetic weights (`--arch`).
pub fn standard(name: &str, num_classes: usize) -> Option<Arch> {
    let (block, depths): (BlockKind, [usize; 4]) = match name {
        "resnet18" => (BlockKind::Basic, [2, 2, 2, 2]),
        "resnet34" => (BlockKind::Basic, [3, 4, 6, 3]),
        "resnet50" => (BlockKind::Bottleneck, [3, 4, 6, 3]),
        "resnet101" => (BlockKind::Bottleneck, [3, 4, 23, 3]),
        "resnet152" => (BlockKind::Bottleneck, [3, 8, 36, 3]),
        _ => return None,
    };
    Some(with_widths(block, &depths, 64, num_classes))
}

/// A torchvision-style architecture with stem width `base` and stage planes `base·2^i`.
pub fn with_widths(block: BlockKind, depths: &[usize], base: usize, num_classes: usize) -> Arch {
    let exp = if block == BlockKind::Basic { 1 } else { 4 };
    Arch {
        block,
        stem_width: base,
        stages: depths
            .iter()
            .enumerate()
            .map(|(i, &blocks)| Stage {
                index: i + 1,
                blocks,
                stride: if i == 0 { 1 } else { 2 },
                inner_width: base << i,
                out_channels: (base << i) * exp,
                groups: 1,
            })
            .collect(),
        num_classes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_parameter_counts_match_torchvision() {
        // Published torchvision num_params.
        assert_eq!(
            standard("resnet18", 1000).unwrap().parameter_count(),
            11_689_512
        );
        assert_eq!(
            standard("resnet34", 1000).unwrap().parameter_count(),
            21_797_672
        );
        assert_eq!(
            standard("resnet50", 1000).unwrap().parameter_count(),
            25_557_032
        );
        assert_eq!(
            standard("resnet101", 1000).unwrap().parameter_count(),
            44_549_160
        );
        assert_eq!(
            standard("resnet152", 1000).unwrap().parameter_count(),
            60_192_808
        );
    }

    #[test]
    fn state_dict_tensor_counts_match_torchvision() {
        // torchvision state_dict sizes minus one num_batches_tracked per BatchNorm.
        let bns = |a: &Arch| {
            a.expected_tensors()
                .iter()
                .filter(|(n, _)| n.ends_with("running_var"))
                .count()
        };
        for (name, total) in [("resnet18", 122), ("resnet50", 320), ("resnet152", 932)] {
            let a = standard(name, 1000).unwrap();
            assert_eq!(a.expected_tensors().len() + bns(&a), total, "{name}");
            assert_eq!(a.name(), name);
        }
    }
}
