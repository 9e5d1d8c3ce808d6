//! `Engine([path, path, …])`: an ensemble on one device, as `resnet run` / `resnet classify`
//! with several --weights: every member fed each batch in one submission, the blend (the
//! weighted mean of probabilities or logits) returned; classify preprocesses each image with
//! each member's own preset.

use std::sync::Arc;

use pyo3::prelude::*;
use resnet::gpu::ensemble::{check_classes, Ensemble, MemberInput};
use resnet::graph::InputSize;
use resnet::metadata::{class_names_with, default_preprocess, LabelSource};
use resnet::model::SourceConfig;
use resnet::preprocess::{decode_all, preprocess, ImageOptions, Preprocess};
use resnet::scores::{scored, softmax, Combine, Prediction};
use resnet::{GpuContext, GpuOptions, Network, WeightsFile};

use crate::engine::{info_json, WeightsArg};
use crate::errors::{bad_input, naming_file, to_py};
use crate::images::Item;

/// How the members' outputs are blended: `combine=` and `ensemble_weights=`.
#[derive(Clone)]
pub struct Blend {
    pub combine: Option<Combine>,
    pub weights: Option<Vec<f64>>,
}

impl Blend {
    pub fn new(combine: Option<&str>, weights: Option<Vec<f64>>) -> PyResult<Self> {
        let combine = match combine {
            None => None,
            Some("probs") => Some(Combine::Probs),
            Some("logits") => Some(Combine::Logits),
            Some(other) => {
                return Err(bad_input(format!(
                    "combine must be \"probs\" or \"logits\", not {other:?}"
                )))
            }
        };
        Ok(Blend { combine, weights })
    }
}

/// The loaded ensemble and each member's preprocessing, in member order.
pub struct Members {
    pub ensemble: Ensemble,
    pres: Vec<Preprocess>,
}

/// One member read from its file, before the GPU.
struct Opened {
    file: WeightsFile,
    network: Network,
    pre: Preprocess,
    labels: Vec<String>,
    /// Whether the labels are names (not class indices).
    named: bool,
}

fn open_member(arg: WeightsArg) -> PyResult<Opened> {
    let file = arg.open().map_err(to_py)?;
    let named_err = |e| naming_file(&file, e);
    let config = SourceConfig::for_weights(&file).map_err(named_err)?;
    let network = Network::detect_with(&file, config.as_ref()).map_err(named_err)?;
    if network.model.is_video() {
        return Err(bad_input(format!(
            "{}: video weights; an ensemble takes image networks",
            file.path.display()
        )));
    }
    let (pre, _) =
        default_preprocess(&file, network.model.image(), config.as_ref()).map_err(named_err)?;
    pre.validate().map_err(to_py)?;
    let (labels, source) = match network.model.num_classes() {
        Some(c) => class_names_with(&file, c, None, config.as_ref()).map_err(named_err)?,
        None => (vec![], LabelSource::Indices),
    };
    Ok(Opened {
        file,
        network,
        pre,
        labels,
        named: source != LabelSource::Indices,
    })
}

/// Opens every member, checks they agree on the classes (naming both files and counts),
/// loads them on one device. Returns the members, the labels (the first member's that has
/// names) and `info` as JSON.
pub fn load_members(
    args: Vec<WeightsArg>,
    options: &GpuOptions,
    blend: Blend,
) -> PyResult<(Members, Vec<String>, String)> {
    let opened = args
        .into_iter()
        .map(open_member)
        .collect::<PyResult<Vec<_>>>()?;
    let names: Vec<String> = opened
        .iter()
        .map(|o| o.file.path.display().to_string())
        .collect();
    let classes: Vec<Option<usize>> = opened
        .iter()
        .map(|o| o.network.model.num_classes())
        .collect();
    check_classes(&classes, &names).map_err(to_py)?;
    let labels = opened
        .iter()
        .find(|o| o.named)
        .unwrap_or(&opened[0])
        .labels
        .clone();
    let ctx = Arc::new(GpuContext::new(options).map_err(to_py)?);
    let mut engines = Vec::new();
    let mut member_info = Vec::new();
    let mut pres = Vec::new();
    for o in opened {
        let engine =
            resnet::Engine::from_network(ctx.clone(), o.network, &o.file).map_err(to_py)?;
        member_info.push(info_json(&engine, &o.file, &o.pre, &o.labels));
        pres.push(o.pre);
        engines.push(engine);
    }
    let combine = blend.combine.unwrap_or_default();
    let ensemble = Ensemble::new(engines, &names, blend.weights, combine).map_err(to_py)?;
    let info = serde_json::json!({
        "architecture": "ensemble",
        "classes": labels.len(),
        "labels": labels,
        "combine": match combine { Combine::Probs => "probs", Combine::Logits => "logits" },
        "ensemble_weights": ensemble.weights,
        "members": member_info,
        "adapter": ctx.info,
    })
    .to_string();
    Ok((Members { ensemble, pres }, labels, info))
}

impl Members {
    /// The blend of every member fed the same `(N, 3, H, W)` batch: probabilities under
    /// combine="probs", logits under "logits" (as `resnet run`).
    pub fn run(&self, x: &[f32], size: InputSize) -> PyResult<Vec<f32>> {
        let inputs: Vec<MemberInput<'_>> = vec![(x, size); self.ensemble.members.len()];
        self.ensemble.run(&inputs).map_err(to_py)
    }

    /// `items` ranked by the blend, `batch` images per submission: each image decoded once
    /// and preprocessed for each member (as `resnet classify` with several --weights).
    pub fn predict(
        &self,
        items: &[Item],
        labels: &[String],
        top_k: usize,
        batch: usize,
    ) -> resnet::Result<Vec<Prediction>> {
        let options = ImageOptions::default();
        let lens: Vec<usize> = self.pres.iter().map(Preprocess::output_len).collect();
        let mut predictions = Vec::with_capacity(items.len());
        for chunk in items.chunks(batch) {
            let tensors = decode_all(chunk, &|item: &Item| {
                let img = item.decode(&options)?;
                Ok(self.pres.iter().flat_map(|p| preprocess(&img, p)).collect())
            });
            let mut per_member: Vec<Vec<f32>> = lens.iter().map(|_| Vec::new()).collect();
            for t in tensors {
                let t = t?;
                let mut rest = &t[..];
                for (acc, &len) in per_member.iter_mut().zip(&lens) {
                    acc.extend_from_slice(&rest[..len]);
                    rest = &rest[len..];
                }
            }
            let inputs: Vec<MemberInput<'_>> = per_member
                .iter()
                .zip(&self.pres)
                .map(|(x, p)| {
                    let (h, w) = (p.crop_h as usize, p.crop_w as usize);
                    (&x[..], InputSize::image(chunk.len(), h, w))
                })
                .collect();
            let blended = self.ensemble.run(&inputs)?;
            let rows = blended.chunks(self.ensemble.classes().max(1));
            predictions.extend(chunk.iter().zip(rows).map(|(item, row)| {
                let probs = match self.ensemble.combine {
                    Combine::Probs => row.to_vec(),
                    Combine::Logits => softmax(row),
                };
                Prediction {
                    image: item.name.clone(),
                    top: scored(&probs, labels, top_k),
                }
            }));
        }
        Ok(predictions)
    }
}
