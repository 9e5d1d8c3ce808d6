//! What a weights file says about itself in its safetensors metadata: class names and
//! preprocessing. Keys written by our exporters (`resnet.labels`, `resnet.preprocess`,
//! `resnet.source`). A `config.json` beside the file (transformers, timm) comes next, then
//! defaults that follow the detected source.

use std::path::Path;

use crate::error::{Error, Result};
pub use crate::model::config::parse_labels;
use crate::model::{Arch, Layout, Shortcut, SourceConfig, Stem};
use crate::preprocess::{presets, CropRounding, Interp, Preprocess};
use crate::weights::WeightsFile;

pub const LABELS_KEY: &str = "resnet.labels";
pub const PREPROCESS_KEY: &str = "resnet.preprocess";
/// `torchvision:resnet50/IMAGENET1K_V2`, `timm:resnet50d.ra2_in1k`,
/// `transformers:microsoft/resnet-50`: where the weights came from.
pub const SOURCE_KEY: &str = "resnet.source";

/// Where class names came from, for `--json` and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelSource {
    File,
    Metadata,
    /// `id2label` / `label_names` in the `config.json` beside the weights.
    Config,
    ImageNet,
    Indices,
}

/// Class names for a head with `classes` outputs: `--labels FILE` (one per line, or a JSON
/// array / `{index: name}` object), then the file's metadata, then ImageNet's names when the
/// head has 1000 classes, else the indices.
pub fn class_names(
    weights: &WeightsFile,
    classes: usize,
    labels_file: Option<&Path>,
) -> Result<(Vec<String>, LabelSource)> {
    class_names_with(weights, classes, labels_file, None)
}

/// [`class_names`] with the checkpoint's `config.json`, whose names come after the file's
/// metadata and before ImageNet's.
pub fn class_names_with(
    weights: &WeightsFile,
    classes: usize,
    labels_file: Option<&Path>,
    config: Option<&SourceConfig>,
) -> Result<(Vec<String>, LabelSource)> {
    if let Some(path) = labels_file {
        let text = String::from_utf8(crate::fsutil::read_regular(path)?)
            .map_err(|_| Error::Usage(format!("{}: labels are not UTF-8 text", path.display())))?;
        let names = parse_labels(&text)
            .map_err(|msg| Error::Usage(format!("{}: {msg}", path.display())))?;
        return check_count(names, classes, path.display().to_string())
            .map(|n| (n, LabelSource::File));
    }
    if let Some(text) = weights.metadata.get(LABELS_KEY) {
        let names = parse_labels(text).map_err(|msg| Error::Safetensors {
            path: weights.path.clone(),
            msg: format!("metadata `{LABELS_KEY}`: {msg}"),
        })?;
        return check_count(
            names,
            classes,
            format!("{} metadata", weights.path.display()),
        )
        .map(|n| (n, LabelSource::Metadata));
    }
    if let Some((c, names)) = config.and_then(|c| c.labels.as_ref().map(|l| (c, l))) {
        return check_count(names.clone(), classes, c.path.display().to_string())
            .map(|n| (n, LabelSource::Config));
    }
    if classes == 1000 {
        return Ok((
            crate::imagenet::imagenet_classes()
                .into_iter()
                .map(String::from)
                .collect(),
            LabelSource::ImageNet,
        ));
    }
    Ok((
        (0..classes).map(|i| i.to_string()).collect(),
        LabelSource::Indices,
    ))
}

fn check_count(names: Vec<String>, classes: usize, what: String) -> Result<Vec<String>> {
    if names.len() != classes {
        return Err(Error::Usage(format!(
            "{what}: {} class names for a head with {classes} classes",
            names.len()
        )));
    }
    Ok(names)
}

/// The preprocessing stored in the file's metadata, else torchvision's V1 preset
/// (resize 256, center crop 224, bilinear, ImageNet mean/std).
pub fn preprocess_for(weights: &WeightsFile) -> Result<Preprocess> {
    Ok(stored_preprocess(weights)?.unwrap_or_else(Preprocess::torchvision_v1))
}

/// The checkpoint's preprocessing and where it came from: the metadata's
/// `resnet.preprocess`, then the `config.json` beside it (timm `pretrained_cfg`, transformers
/// `preprocessor_config.json`), then the preset of the source (`resnet.source`, else the
/// layout: transformers → `hf`, timm-only stems and shortcuts → `timm`, else torchvision V1).
pub fn default_preprocess(
    weights: &WeightsFile,
    arch: Option<&Arch>,
    config: Option<&SourceConfig>,
) -> Result<(Preprocess, String)> {
    if let Some(p) = stored_preprocess(weights)? {
        return Ok((p, format!("metadata `{PREPROCESS_KEY}`")));
    }
    if let Some((c, p)) = config.and_then(|c| c.preprocess.map(|p| (c, p))) {
        return Ok((p, c.path.display().to_string()));
    }
    let source = weights.metadata.get(SOURCE_KEY).map(String::as_str);
    let by_source = source.and_then(|s| match s.split(':').next() {
        Some("timm") => Some("timm"),
        Some("transformers" | "hf") => Some("hf"),
        Some("torchvision") if s.contains("V2") => Some("torchvision-v2"),
        Some("torchvision") => Some("torchvision"),
        _ => None,
    });
    if let Some(name) = by_source {
        let p = presets::by_name(name).unwrap_or_else(Preprocess::torchvision_v1);
        return Ok((p, format!("`{name}` preset (metadata `{SOURCE_KEY}`)")));
    }
    let name = match arch {
        Some(a) if matches!(a.layout, Layout::HuggingFace { .. }) => "hf",
        Some(a) if matches!(a.stem, Stem::Deep { .. }) || a.shortcut == Shortcut::AvgPool => "timm",
        _ => "torchvision",
    };
    let p = presets::by_name(name).unwrap_or_else(Preprocess::torchvision_v1);
    Ok((p, format!("`{name}` preset (detected layout)")))
}

/// The preprocessing in the file's `resnet.preprocess` metadata, if any: a JSON object with
/// any of `resize`, `crop`, `interp`, `mean`, `std`, `rounding` (`even` or `floor`) over
/// torchvision's V1 values.
pub fn stored_preprocess(weights: &WeightsFile) -> Result<Option<Preprocess>> {
    let Some(text) = weights.metadata.get(PREPROCESS_KEY) else {
        return Ok(None);
    };
    let bad = |msg: String| Error::Safetensors {
        path: weights.path.clone(),
        msg: format!("metadata `{PREPROCESS_KEY}`: {msg}"),
    };
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let mut p = Preprocess::torchvision_v1();
    // A size that is present must be valid: ignoring it would silently use another.
    let size = |key: &str| -> Result<Option<u32>> {
        let Some(x) = v.get(key) else { return Ok(None) };
        x.as_u64()
            .filter(|&x| x > 0 && x <= crate::preprocess::MAX_SIDE as u64)
            .map(|x| Some(x as u32))
            .ok_or_else(|| {
                bad(format!(
                    "`{key}` is {x}, not a size between 1 and {}",
                    crate::preprocess::MAX_SIDE
                ))
            })
    };
    if let Some(r) = size("resize")? {
        p.resize = r;
    }
    if let Some(c) = size("crop")? {
        p.crop_h = c;
        p.crop_w = c;
    }
    if let Some(i) = v.get("interp").and_then(|x| x.as_str()) {
        p.interp = match i {
            "bilinear" => Interp::Bilinear,
            "bicubic" => Interp::Bicubic,
            other => return Err(bad(format!("unknown interpolation `{other}`"))),
        };
    }
    if let Some(r) = v.get("rounding").and_then(|x| x.as_str()) {
        p.crop_rounding = match r {
            "even" => CropRounding::HalfToEven,
            "floor" => CropRounding::Floor,
            other => return Err(bad(format!("unknown rounding `{other}` (even or floor)"))),
        };
    }
    let triple = |key: &str| -> Result<Option<[f32; 3]>> {
        match v.get(key) {
            None => Ok(None),
            Some(x) => {
                let a: Vec<f32> = x
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|e| e.as_f64())
                            .map(|e| e as f32)
                            .collect()
                    })
                    .unwrap_or_default();
                if a.len() != 3 {
                    return Err(bad(format!("`{key}` must be 3 numbers")));
                }
                Ok(Some([a[0], a[1], a[2]]))
            }
        }
    };
    if let Some(m) = triple("mean")? {
        p.mean = m;
    }
    if let Some(s) = triple("std")? {
        if s.iter().any(|&x| x <= 0.0) {
            return Err(bad("`std` must be positive".into()));
        }
        p.std = s;
    }
    p.validate().map_err(|e| bad(e.to_string()))?;
    Ok(Some(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_in_three_formats() {
        assert_eq!(parse_labels("cat\ndog\n").unwrap(), vec!["cat", "dog"]);
        assert_eq!(
            parse_labels(r#"["cat", "dog"]"#).unwrap(),
            vec!["cat", "dog"]
        );
        assert_eq!(
            parse_labels(r#"{"1": "dog", "0": "cat"}"#).unwrap(),
            vec!["cat", "dog"]
        );
        assert!(parse_labels(r#"{"0": "cat", "2": "dog"}"#).is_err());
    }
}
