//! Key layouts. Everything inside the engine speaks one canonical naming, torchvision's
//! (`conv1`, `layer1.0.conv1`, `layer1.0.downsample.0`, `fc`), extended by timm's
//! (`conv1.{0,1,3,4,6}` for deep stems, `downsample.{1,2}` behind the avg pool). timm's plain
//! ResNets use exactly torchvision's keys, so one layout serves both; Hugging Face
//! transformers names the same modules differently and is mapped here, in both directions.

use std::collections::{BTreeMap, HashSet};

use crate::error::{Error, Result};
use crate::weights::{TensorEntry, WeightsFile};

/// How the tensors of a file are named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// torchvision and timm (`conv1.weight`, `layer1.0.bn1.weight`, `fc.weight`).
    Torchvision,
    /// transformers `ResNetForImageClassification` (`prefixed`: keys under `resnet.`, head
    /// `classifier.1`) or a bare `ResNetModel` / `ResNetBackbone` (no prefix, no head).
    HuggingFace { prefixed: bool },
}

/// The BatchNorm parameters every folded conv reads, after the module path.
pub const BN_PARAMS: [&str; 5] = [
    "weight",
    "bias",
    "running_mean",
    "running_var",
    "num_batches_tracked",
];

impl Layout {
    /// The file's name for a canonical tensor or module path (`layer1.0.bn1.running_var`
    /// or `layer1.0.bn1`).
    pub fn file_name(self, canonical: &str) -> String {
        let Layout::HuggingFace { prefixed } = self else {
            return canonical.to_string();
        };
        let p = if prefixed { "resnet." } else { "" };
        let parts: Vec<&str> = canonical.split('.').collect();
        // The module path is everything but a trailing parameter name.
        let (module, param) = match parts.last() {
            Some(last) if BN_PARAMS.contains(last) => (&parts[..parts.len() - 1], Some(*last)),
            _ => (&parts[..], None),
        };
        let mapped = match module {
            ["conv1"] => format!("{p}embedder.embedder.convolution"),
            ["bn1"] => format!("{p}embedder.embedder.normalization"),
            ["fc"] => "classifier.1".to_string(),
            [layer, block, rest @ ..] if layer.starts_with("layer") => {
                let stage = layer["layer".len()..]
                    .parse::<usize>()
                    .unwrap_or(1)
                    .saturating_sub(1);
                let base = format!("{p}encoder.stages.{stage}.layers.{block}");
                match rest {
                    ["downsample", "0"] => format!("{base}.shortcut.convolution"),
                    ["downsample", "1"] => format!("{base}.shortcut.normalization"),
                    [m] if m.starts_with("conv") => {
                        format!("{base}.layer.{}.convolution", index_after(m, "conv") - 1)
                    }
                    [m] if m.starts_with("bn") => {
                        format!("{base}.layer.{}.normalization", index_after(m, "bn") - 1)
                    }
                    _ => module.join("."),
                }
            }
            _ => module.join("."),
        };
        match param {
            Some(param) => format!("{mapped}.{param}"),
            None => mapped,
        }
    }

    /// The canonical name of a file's tensor, or `None` if the layout has no such tensor.
    /// Indices must be written as Python writes them (`0`, `12`; never `00`, `+1`), so two
    /// keys never name one module.
    pub fn canonical_name(self, file: &str) -> Option<String> {
        let Layout::HuggingFace { prefixed } = self else {
            let numbers_canonical = file
                .split('.')
                .filter(|part| part.starts_with(|c: char| c.is_ascii_digit() || c == '+'))
                .all(|part| index(part).is_some());
            return numbers_canonical.then(|| file.to_string());
        };
        if let Some(param) = file.strip_prefix("classifier.1.") {
            return matches!(param, "weight" | "bias").then(|| format!("fc.{param}"));
        }
        let rest = if prefixed {
            file.strip_prefix("resnet.")?
        } else {
            file
        };
        let parts: Vec<&str> = rest.split('.').collect();
        let (module, param) = parts.split_at(parts.len().checked_sub(1)?);
        let param = param[0];
        let is_conv = |m: &str| m == "convolution" && param == "weight";
        let is_bn = |m: &str| m == "normalization" && BN_PARAMS.contains(&param);
        let module = match module {
            ["embedder", "embedder", m] if is_conv(m) => "conv1".to_string(),
            ["embedder", "embedder", m] if is_bn(m) => "bn1".to_string(),
            ["encoder", "stages", s, "layers", b, tail @ ..] => {
                let (s, b) = (index(s)?, index(b)?);
                let base = format!("layer{}.{b}", s + 1);
                match tail {
                    ["shortcut", m] if is_conv(m) => format!("{base}.downsample.0"),
                    ["shortcut", m] if is_bn(m) => format!("{base}.downsample.1"),
                    ["layer", i, m] if is_conv(m) => {
                        format!("{base}.conv{}", index(i)? + 1)
                    }
                    ["layer", i, m] if is_bn(m) => {
                        format!("{base}.bn{}", index(i)? + 1)
                    }
                    _ => return None,
                }
            }
            _ => return None,
        };
        Some(format!("{module}.{param}"))
    }

    /// Recognises the layout from the tensor names.
    pub fn of_names<'a>(mut names: impl Iterator<Item = &'a str>) -> Option<Layout> {
        let mut torchvision = false;
        let found = names.find_map(|n| {
            if n.starts_with("resnet.embedder.embedder.") || n.starts_with("resnet.encoder.") {
                Some(Layout::HuggingFace { prefixed: true })
            } else if n.starts_with("embedder.embedder.") || n.starts_with("encoder.stages.") {
                Some(Layout::HuggingFace { prefixed: false })
            } else {
                torchvision |= n == "conv1.weight" || n == "conv1.0.weight";
                None
            }
        });
        found.or(torchvision.then_some(Layout::Torchvision))
    }

    pub fn describe(self, has_head: bool) -> &'static str {
        match (self, has_head) {
            (Layout::Torchvision, _) => "torchvision/timm",
            (Layout::HuggingFace { .. }, true) => "Hugging Face ResNetForImageClassification",
            (Layout::HuggingFace { .. }, false) => "Hugging Face ResNetModel",
        }
    }
}

/// The file's tensors under canonical names, each with its name in the file. Like PyTorch's
/// strict `load_state_dict`, every key must map to exactly one slot and back: a key the
/// layout has no slot for is an unexpected tensor, and so is one that names a slot another
/// key already holds, or whose slot maps back to another name (`stages.00.` beside
/// `stages.0.`), since the loader reads each slot by its one name.
pub fn canonical_tensors(
    layout: Layout,
    tensors: &BTreeMap<String, TensorEntry>,
) -> Result<BTreeMap<String, (&str, &TensorEntry)>> {
    let unexpected = |file: &str, t: &TensorEntry, why: String| Error::UnexpectedTensor {
        name: file.to_string(),
        shape: t.shape.clone(),
        arch: why,
    };
    let mut out = BTreeMap::new();
    for (file, t) in tensors {
        let canonical = layout
            .canonical_name(file)
            .ok_or_else(|| unexpected(file, t, format!("{} layout", layout.describe(true))))?;
        let back = layout.file_name(&canonical);
        if &back != file {
            return Err(unexpected(
                file,
                t,
                format!(
                    "the {} layout names this slot `{back}`",
                    layout.describe(true)
                ),
            ));
        }
        if let Some((other, _)) = out.insert(canonical, (file.as_str(), t)) {
            return Err(unexpected(file, t, format!("the same slot as `{other}`")));
        }
    }
    Ok(out)
}

/// A module index as PyTorch writes it in a key: decimal digits, no sign, no leading zero.
fn index(part: &str) -> Option<usize> {
    let canonical = !part.is_empty()
        && part.bytes().all(|b| b.is_ascii_digit())
        && (part == "0" || !part.starts_with('0'));
    canonical.then(|| part.parse().ok()).flatten()
}

fn index_after(module: &str, prefix: &str) -> usize {
    module[prefix.len()..].parse::<usize>().unwrap_or(1).max(1)
}

/// The file against an architecture's `expected` tensors in both directions, as PyTorch's
/// strict loading: nothing missing, no shape or dtype wrong, nothing left over (a
/// BatchNorm's `num_batches_tracked` aside). `arch` names the architecture in errors.
pub(crate) fn check_both_ways(
    w: &WeightsFile,
    expected: &[(String, Vec<usize>)],
    arch: &str,
) -> Result<()> {
    for (name, shape) in expected {
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
    let known: HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    for (name, t) in &w.tensors {
        let tracked = name
            .strip_suffix(".num_batches_tracked")
            .is_some_and(|bn| known.contains(format!("{bn}.running_mean").as_str()));
        if !tracked && !known.contains(name.as_str()) {
            return Err(Error::UnexpectedTensor {
                name: name.clone(),
                shape: t.shape.clone(),
                arch: arch.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hugging_face_names_round_trip() {
        let hf = Layout::HuggingFace { prefixed: true };
        for (canonical, file) in [
            (
                "conv1.weight",
                "resnet.embedder.embedder.convolution.weight",
            ),
            (
                "bn1.running_var",
                "resnet.embedder.embedder.normalization.running_var",
            ),
            (
                "layer3.1.conv2.weight",
                "resnet.encoder.stages.2.layers.1.layer.1.convolution.weight",
            ),
            (
                "layer1.0.bn3.bias",
                "resnet.encoder.stages.0.layers.0.layer.2.normalization.bias",
            ),
            (
                "layer2.0.downsample.0.weight",
                "resnet.encoder.stages.1.layers.0.shortcut.convolution.weight",
            ),
            (
                "layer2.0.downsample.1.num_batches_tracked",
                "resnet.encoder.stages.1.layers.0.shortcut.normalization.num_batches_tracked",
            ),
            ("fc.weight", "classifier.1.weight"),
            ("fc.bias", "classifier.1.bias"),
        ] {
            assert_eq!(hf.file_name(canonical), file);
            assert_eq!(
                hf.canonical_name(file).as_deref(),
                Some(canonical),
                "{file}"
            );
        }
        // Module paths (BN prefixes) map too.
        assert_eq!(
            hf.file_name("layer4.2.bn1"),
            "resnet.encoder.stages.3.layers.2.layer.0.normalization"
        );
        let bare = Layout::HuggingFace { prefixed: false };
        assert_eq!(
            bare.file_name("conv1.weight"),
            "embedder.embedder.convolution.weight"
        );
        assert_eq!(
            bare.canonical_name("encoder.stages.0.layers.0.layer.0.convolution.weight")
                .as_deref(),
            Some("layer1.0.conv1.weight")
        );
        for junk in [
            "resnet.encoder.stages.0.layers.0.layer.0.convolution.bias",
            "resnet.pooler.weight",
            "classifier.0.weight",
            "encoder.stages.0.layers.0.layer.0.convolution.weight",
        ] {
            assert_eq!(hf.canonical_name(junk), None, "{junk}");
        }
    }

    #[test]
    fn layouts_are_recognised_from_names() {
        let of = |names: &[&str]| Layout::of_names(names.iter().copied());
        assert_eq!(
            of(&["fc.weight", "conv1.weight"]),
            Some(Layout::Torchvision)
        );
        assert_eq!(of(&["conv1.0.weight"]), Some(Layout::Torchvision));
        assert_eq!(
            of(&[
                "classifier.1.weight",
                "resnet.embedder.embedder.convolution.weight"
            ]),
            Some(Layout::HuggingFace { prefixed: true })
        );
        assert_eq!(
            of(&["embedder.embedder.convolution.weight"]),
            Some(Layout::HuggingFace { prefixed: false })
        );
        assert_eq!(of(&["model.weight"]), None);
    }
}
