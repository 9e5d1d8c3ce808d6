//! `config.json` beside a weights file, as Hugging Face and timm hub snapshots ship it
//! (`model.safetensors` + `config.json`): the architecture fields the tensors cannot show
//! (transformers' stride placement), class names and the preprocessing of the weights.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::Value;

use super::layout::Layout;
use crate::error::{Error, Result};
use crate::preprocess::{CropRounding, Interp, Preprocess};
use crate::weights::WeightsFile;

/// The transformers `ResNetConfig` fields that shape the network.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HfConfig {
    pub layer_type: Option<String>,
    pub depths: Option<Vec<usize>>,
    pub hidden_sizes: Option<Vec<usize>>,
    pub embedding_size: Option<usize>,
    pub hidden_act: Option<String>,
    /// Stride 2 on the first 1×1 of a stage's first bottleneck instead of on the 3×3.
    pub downsample_in_bottleneck: Option<bool>,
    /// Stride 2 in the first stage too.
    pub downsample_in_first_stage: Option<bool>,
}

/// What a `config.json` (and, for transformers, `preprocessor_config.json`) says.
#[derive(Clone, Debug, Default)]
pub struct SourceConfig {
    pub path: PathBuf,
    /// Present when the file is a transformers ResNet config (`model_type` "resnet").
    pub hf: Option<HfConfig>,
    /// transformers `id2label`, or timm's `label_names`; transformers' generic `LABEL_i` names
    /// (`LABEL_0`, `LABEL_1`, …) count as none.
    pub labels: Option<Vec<String>>,
    /// timm's `pretrained_cfg`, or transformers' `preprocessor_config.json`.
    pub preprocess: Option<Preprocess>,
}

impl SourceConfig {
    /// Reads `config.json` in the folder of `weights`, if there is one. Only a real file on
    /// disk has a folder; in-memory weights have no config.
    pub fn beside(weights: &Path) -> Result<Option<SourceConfig>> {
        let Some(dir) = weights.parent().filter(|_| weights.is_file()) else {
            return Ok(None);
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let path = dir.join("config.json");
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let mut config = Self::parse(&path, &text)?;
        if config.hf.is_some() {
            let pre = dir.join("preprocessor_config.json");
            if pre.is_file() {
                let text = std::fs::read_to_string(&pre).map_err(|e| Error::io(&pre, e))?;
                config.preprocess = Self::parse_preprocessor(&pre, &text)?;
            }
        }
        Ok(Some(config))
    }

    /// [`SourceConfig::beside`] the file of `w`. A broken `config.json` is an error for a
    /// transformers checkpoint (it needs its config); beside a torchvision/timm file it may
    /// be anything, so it is ignored with a warning.
    pub fn for_weights(w: &WeightsFile) -> Result<Option<SourceConfig>> {
        match Self::beside(&w.path) {
            Ok(c) => Ok(c),
            Err(e) => {
                let names = w.tensors.keys().map(String::as_str);
                if matches!(Layout::of_names(names), Some(Layout::HuggingFace { .. })) {
                    return Err(e);
                }
                warn_once(format!("ignoring {e}"));
                Ok(None)
            }
        }
    }

    /// Parses the text of a transformers `preprocessor_config.json`; `path` names it in
    /// errors. `None`: it describes no crop this crate has a preset for.
    pub fn parse_preprocessor(path: &Path, text: &str) -> Result<Option<Preprocess>> {
        hf_preprocessor(path, text)
    }

    /// Parses the text of a `config.json`; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<SourceConfig> {
        let bad = |msg: String| Error::Config {
            path: path.to_path_buf(),
            msg,
        };
        let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        if !v.is_object() {
            return Err(bad("expected a JSON object".into()));
        }
        let is_hf = v.get("model_type").and_then(Value::as_str) == Some("resnet")
            || v.get("hidden_sizes").is_some();
        let hf = if is_hf {
            Some(hf_fields(&v).map_err(bad)?)
        } else {
            None
        };
        let labels = labels(&v).map_err(bad)?;
        let preprocess = match v.get("pretrained_cfg") {
            Some(cfg) => timm_preprocess(cfg).map_err(|m| bad(format!("`pretrained_cfg`: {m}")))?,
            None => None,
        };
        Ok(SourceConfig {
            path: path.to_path_buf(),
            hf,
            labels,
            preprocess,
        })
    }
}

/// Logs `message` as a warning unless this process has logged it already: a command may
/// read the config and detect the architecture more than once (the CLI's checks, then the
/// engine), and each warning is worth reading once.
pub(crate) fn warn_once(message: String) {
    static SEEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let first = SEEN
        .lock()
        .map(|mut seen| seen.insert(message.clone()))
        .unwrap_or(true);
    if first {
        log::warn!("{message}");
    }
}

/// The transformers `ResNetConfig` fields of a config.
fn hf_fields(v: &Value) -> std::result::Result<HfConfig, String> {
    let list = |key: &str| -> std::result::Result<Option<Vec<usize>>, String> {
        match v.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x
                .as_array()
                .and_then(|a| a.iter().map(|e| e.as_u64().map(|u| u as usize)).collect())
                .map(Some)
                .ok_or_else(|| format!("`{key}` must be a list of integers")),
        }
    };
    let flag = |key: &str| -> std::result::Result<Option<bool>, String> {
        match v.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x
                .as_bool()
                .map(Some)
                .ok_or_else(|| format!("`{key}` must be true or false")),
        }
    };
    let text = |key: &str| v.get(key).and_then(Value::as_str).map(String::from);
    Ok(HfConfig {
        layer_type: text("layer_type"),
        depths: list("depths")?,
        hidden_sizes: list("hidden_sizes")?,
        embedding_size: v
            .get("embedding_size")
            .and_then(Value::as_u64)
            .map(|u| u as usize),
        hidden_act: text("hidden_act"),
        downsample_in_bottleneck: flag("downsample_in_bottleneck")?,
        downsample_in_first_stage: flag("downsample_in_first_stage")?,
    })
}

/// transformers' `id2label` (generic `LABEL_i` names count as none) or timm's `label_names`.
fn labels(v: &Value) -> std::result::Result<Option<Vec<String>>, String> {
    Ok(match (v.get("id2label"), v.get("label_names")) {
        (Some(map), _) => {
            let names = parse_labels(&map.to_string()).map_err(|m| format!("`id2label`: {m}"))?;
            let generic = names
                .iter()
                .enumerate()
                .all(|(i, n)| *n == format!("LABEL_{i}"));
            (!generic).then_some(names)
        }
        (None, Some(list)) => {
            Some(parse_labels(&list.to_string()).map_err(|m| format!("`label_names`: {m}"))?)
        }
        (None, None) => None,
    })
}

fn triple(v: &Value, key: &str) -> std::result::Result<Option<[f32; 3]>, String> {
    let Some(x) = v.get(key) else { return Ok(None) };
    let a: Vec<f32> = x
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_f64)
                .map(|e| e as f32)
                .collect()
        })
        .unwrap_or_default();
    match a[..] {
        [r, g, b] => Ok(Some([r, g, b])),
        _ => Err(format!("`{key}` must be 3 numbers")),
    }
}

/// timm's eval transform from a `pretrained_cfg`: `Resize(floor(size / crop_pct))` with the
/// cfg's interpolation (bicubic when absent, as `resolve_data_config` does), `CenterCrop(size)`.
fn timm_preprocess(cfg: &Value) -> std::result::Result<Option<Preprocess>, String> {
    let size = match cfg.get("input_size").and_then(Value::as_array) {
        Some(s) if s.len() == 3 => s[1].as_u64().zip(s[2].as_u64()),
        _ => None,
    };
    let Some((h, w)) = size else { return Ok(None) };
    // Checked before any cast: 2³² + 224 must not wrap to 224.
    let side = |v: u64| {
        u32::try_from(v)
            .ok()
            .filter(|&v| v > 0 && v <= crate::preprocess::MAX_SIDE)
            .ok_or_else(|| {
                format!(
                    "`input_size` {h}x{w} is not a size between 1 and {}",
                    crate::preprocess::MAX_SIDE
                )
            })
    };
    let (h, w) = (side(h)?, side(w)?);
    let crop_pct = match cfg.get("crop_pct") {
        None | Some(Value::Null) => 0.875,
        Some(x) => x
            .as_f64()
            .ok_or_else(|| format!("`crop_pct` {x} is not a number"))?,
    };
    let interp = match cfg.get("interpolation").and_then(Value::as_str) {
        Some("bilinear") => Interp::Bilinear,
        Some("bicubic") | None => Interp::Bicubic,
        Some(other) => return Err(format!("interpolation `{other}` is not supported")),
    };
    let mut p = crate::preprocess::presets::timm(crop_pct)?;
    p.crop_h = h;
    p.crop_w = w;
    p.resize = (h.min(w) as f64 / crop_pct).floor() as u32;
    p.interp = interp;
    if let Some(m) = triple(cfg, "mean")? {
        p.mean = m;
    }
    if let Some(s) = triple(cfg, "std")? {
        p.std = s;
    }
    p.validate().map_err(|e| e.to_string())?;
    Ok(Some(p))
}

/// transformers' ConvNext image processor (what the ResNet checkpoints use): below 384 the
/// shorter side goes to `int(shortest_edge / crop_pct)`, then a centre crop with floor
/// offsets. At 384 and above it warps without cropping, which is not a preset here.
fn hf_preprocessor(path: &Path, text: &str) -> Result<Option<Preprocess>> {
    let bad = |msg: String| Error::Config {
        path: path.to_path_buf(),
        msg,
    };
    let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let edge = match v.get("size") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(s) => s.get("shortest_edge").and_then(Value::as_u64),
        None => None,
    };
    let Some(edge) = edge else { return Ok(None) };
    if edge >= 384 {
        log::warn!(
            "{}: shortest_edge {edge} ≥ 384 means a warp without crop, which has no preset; \
             using the Hugging Face preset instead",
            path.display()
        );
        return Ok(None);
    }
    if edge == 0 {
        return Err(bad("`shortest_edge` 0 is not a size".into()));
    }
    let crop_pct = match v.get("crop_pct") {
        None | Some(Value::Null) => 224.0 / 256.0,
        Some(x) => x
            .as_f64()
            .filter(|&f| f > 0.0 && f <= 4.0)
            .ok_or_else(|| bad(format!("`crop_pct` {x} must be a number in (0, 4]")))?,
    };
    let mut p = crate::preprocess::presets::hugging_face();
    p.crop_h = edge as u32;
    p.crop_w = edge as u32;
    p.resize = (edge as f64 / crop_pct) as u32;
    p.crop_rounding = CropRounding::Floor;
    p.interp = match v.get("resample").and_then(Value::as_u64) {
        Some(2) => Interp::Bilinear,
        Some(3) | None => Interp::Bicubic,
        Some(other) => return Err(bad(format!("resample {other} is not supported"))),
    };
    if let Some(m) = triple(&v, "image_mean").map_err(bad)? {
        p.mean = m;
    }
    if let Some(s) = triple(&v, "image_std").map_err(bad)? {
        p.std = s;
    }
    p.validate().map_err(|e| bad(e.to_string()))?;
    Ok(Some(p))
}

/// A JSON array of names, a JSON object `{"0": "cat", …}`, or plain text with one name per line.
pub fn parse_labels(text: &str) -> std::result::Result<Vec<String>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        return match value {
            serde_json::Value::Array(items) => items
                .into_iter()
                .map(|v| {
                    v.as_str()
                        .map(String::from)
                        .ok_or_else(|| "labels must be strings".to_string())
                })
                .collect(),
            serde_json::Value::Object(map) => {
                let mut pairs: Vec<(usize, String)> = map
                    .into_iter()
                    .map(|(k, v)| {
                        Ok((
                            k.parse::<usize>()
                                .map_err(|_| format!("key `{k}` is not a class index"))?,
                            v.as_str().ok_or("labels must be strings")?.to_string(),
                        ))
                    })
                    .collect::<std::result::Result<_, String>>()?;
                pairs.sort();
                if pairs.iter().enumerate().any(|(i, (k, _))| i != *k) {
                    return Err("class indices must run 0, 1, 2 … without gaps".into());
                }
                Ok(pairs.into_iter().map(|(_, v)| v).collect())
            }
            _ => Err("expected an array or an object".into()),
        };
    }
    Ok(text
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .filter(|l| !l.is_empty())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transformers_config_fields() {
        let text = r#"{"model_type": "resnet", "layer_type": "bottleneck", "depths": [3, 4, 6, 3],
            "hidden_sizes": [256, 512, 1024, 2048], "embedding_size": 64, "hidden_act": "relu",
            "downsample_in_bottleneck": true, "id2label": {"0": "LABEL_0", "1": "LABEL_1"}}"#;
        let c = SourceConfig::parse(Path::new("config.json"), text).unwrap();
        let hf = c.hf.unwrap();
        assert_eq!(hf.depths, Some(vec![3, 4, 6, 3]));
        assert_eq!(hf.downsample_in_bottleneck, Some(true));
        assert_eq!(hf.downsample_in_first_stage, None);
        assert!(c.labels.is_none(), "generic LABEL_i names are no labels");
        let named = r#"{"model_type": "resnet", "id2label": {"1": "dog", "0": "cat"}}"#;
        let c = SourceConfig::parse(Path::new("c.json"), named).unwrap();
        assert_eq!(c.labels, Some(vec!["cat".to_string(), "dog".to_string()]));
        assert!(matches!(
            SourceConfig::parse(Path::new("c.json"), "{\"depths\": 3, \"hidden_sizes\": []}"),
            Err(Error::Config { .. })
        ));
    }

    #[test]
    fn timm_pretrained_cfg_gives_the_eval_transform() {
        let text = r#"{"architecture": "resnet50d", "num_classes": 1000,
            "pretrained_cfg": {"input_size": [3, 224, 224], "crop_pct": 0.95,
            "interpolation": "bicubic", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
            "label_names": ["a", "b"]}"#;
        let c = SourceConfig::parse(Path::new("config.json"), text).unwrap();
        assert!(c.hf.is_none());
        let p = c.preprocess.unwrap();
        assert_eq!((p.resize, p.crop_h, p.interp), (235, 224, Interp::Bicubic));
        assert_eq!(p.crop_rounding, CropRounding::HalfToEven);
        assert_eq!(p.mean, [0.5; 3]);
        assert_eq!(c.labels.unwrap().len(), 2);
    }
}
