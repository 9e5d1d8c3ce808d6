//! `resnet classify --weights A --weights B …`: images through an ensemble. Each member
//! preprocesses every image with its own preset (an image is decoded once); one submission
//! per batch for all members; the blend (--combine) gives the probabilities shown. Class names
//! come from the first member that has names.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::bail;
use resnet_wgpu::gpu::ensemble::{check_classes, Ensemble, MemberInput};
use resnet_wgpu::graph::InputSize;
use resnet_wgpu::preprocess::{decode_all, load_image_with, preprocess, ImageOptions};
use resnet_wgpu::scores::{softmax, Combine};
use resnet_wgpu::{Engine, Error, GpuContext, GpuOptions, WeightsFile};

use crate::classify::{collect_inputs, prepare, report, ClassifyArgs, Kind, Rows, Setup};

pub fn classify(args: &ClassifyArgs, options: &GpuOptions) -> anyhow::Result<()> {
    let inputs = collect_inputs(&args.inputs, false)?;
    if inputs.iter().any(|(_, k)| *k == Kind::Video) {
        bail!(Error::Usage(
            "an ensemble (several --weights) classifies images; give videos one model at a time"
                .into()
        ));
    }
    if args.features.is_some() || args.tta.is_some() {
        bail!(Error::Usage(
            "--features and --tta take one --weights; each member of an ensemble has its own \
             embedding"
                .into()
        ));
    }
    let images: Vec<PathBuf> = inputs.iter().map(|(p, _)| p.clone()).collect();
    let names: Vec<String> = args
        .weights
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut setups = Vec::new();
    let mut networks = Vec::new();
    for path in &args.weights {
        let weights = WeightsFile::open(path)?;
        if resnet_wgpu::model::video::is_video(&weights) {
            bail!(Error::Usage(format!(
                "{}: video weights; an ensemble takes image networks",
                path.display()
            )));
        }
        let (setup, network) = prepare(args, weights, images.clone())?;
        setups.push(setup);
        networks.push(network);
    }
    let classes: Vec<Option<usize>> = networks.iter().map(|n| n.model.num_classes()).collect();
    check_classes(&classes, &names)?;
    let ctx = Arc::new(GpuContext::new(options)?);
    let engines = networks
        .into_iter()
        .zip(&setups)
        .map(|(network, s)| Engine::from_network(ctx.clone(), network, &s.weights))
        .collect::<resnet_wgpu::Result<Vec<_>>>()?;
    let ensemble = Ensemble::new(
        engines,
        &names,
        args.ensemble.weights(),
        args.ensemble.combine(),
    )?;
    let options = ImageOptions {
        exif_orientation: !args.ignore_exif,
        max_pixels: args.max_pixels,
    };
    let rows = blend_all(&ensemble, &setups, &images, &options, args.batch)?;
    // Class names from the first member that has them.
    let labels = setups
        .iter()
        .find(|s| s.named)
        .unwrap_or(&setups[0])
        .labels
        .clone();
    let result = Rows {
        paths: images,
        rows,
        width: ensemble.classes(),
        classes: ensemble.classes(),
        labels,
    };
    report(args, &inputs, vec![result])
}

/// Every image's blended probabilities, `batch` images per submission: each image decoded
/// once, preprocessed for each member.
fn blend_all(
    ensemble: &Ensemble,
    setups: &[Setup],
    images: &[PathBuf],
    options: &ImageOptions,
    batch: usize,
) -> anyhow::Result<Vec<Vec<f32>>> {
    let lens: Vec<usize> = setups.iter().map(|s| s.pre.output_len()).collect();
    let mut rows = Vec::new();
    for chunk in images.chunks(batch) {
        let tensors = decode_all(chunk, &|path: &PathBuf| {
            let img = load_image_with(path, options)?;
            Ok(setups
                .iter()
                .flat_map(|s| preprocess(&img, &s.pre))
                .collect())
        });
        // Per member, the chunk's tensors one after another.
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
            .zip(setups)
            .map(|(x, s)| {
                let (h, w) = (s.pre.crop_h as usize, s.pre.crop_w as usize);
                (&x[..], InputSize::image(chunk.len(), h, w))
            })
            .collect();
        let blended = ensemble.run(&inputs)?;
        for row in blended.chunks(ensemble.classes().max(1)) {
            rows.push(match ensemble.combine {
                Combine::Probs => row.to_vec(),
                Combine::Logits => softmax(row),
            });
        }
    }
    Ok(rows)
}
