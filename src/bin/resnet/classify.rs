//! `resnet classify`: images (files and folders) → top-k classes, as a table, JSON or CSV,
//! or pooled features as .npy.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use resnet_wgpu::metadata::{class_names_with, default_preprocess};
use resnet_wgpu::model::SourceConfig;
use resnet_wgpu::predict::{self, Prediction};
use resnet_wgpu::preprocess::{
    decode_all, load_and_preprocess_with, presets, ImageOptions, Preprocess, MAX_IMAGE_PIXELS,
};
use resnet_wgpu::{npy, Engine, Error, GpuOptions, Network, Output};

use crate::inputs::{at_least, check_output_path, naming_file, open_weights};

const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "webp", "bmp", "jfif"];

#[derive(clap::Args)]
pub struct ClassifyArgs {
    /// Image files or folders (searched recursively for png, jpg, webp, bmp).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// safetensors weights; without it, the embedded default model (handwritten digits).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// Images per GPU batch.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Class names: one per line, or a JSON array/object; overrides the file's own.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Print one JSON array of {image, top: [{class, label, prob}]}.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print CSV: image,rank,class,label,prob.
    #[arg(long)]
    csv: bool,
    /// Write the pooled penultimate features (N, C) to this .npy instead of class scores.
    #[arg(long)]
    features: Option<PathBuf>,
    /// Preprocessing: a preset (torchvision, torchvision-v2, timm, hf) and/or
    /// key=value changes (resize, crop, crop_pct, interp, mean, std, rounding), e.g.
    /// `timm,crop_pct=0.95` or `resize=232,crop=224`. Default: the weights' own
    /// (metadata, config.json), else the preset of the detected source.
    #[arg(long, value_name = "NAME|key=value,…")]
    preprocess: Option<String>,
    /// Ignore EXIF orientation and decode exactly as PIL.Image.open (torchvision) does. By
    /// default photos are turned upright first, as image viewers show them.
    #[arg(long)]
    ignore_exif: bool,
    /// Refuse images with more pixels than this, from their header, before decoding.
    #[arg(long, default_value_t = MAX_IMAGE_PIXELS)]
    max_pixels: u64,
}

/// Expands folders (recursively, sorted) into image files; explicit files are kept as given.
/// Links to folders are followed, each folder once: one reached again (a link loop, or a
/// second link to it) is skipped with a warning naming it, so no image is listed twice and
/// no loop makes the walk endless.
pub fn collect_images(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut images = Vec::new();
    let mut seen = HashSet::new();
    for input in inputs {
        if input.is_dir() {
            let before = images.len();
            walk(input, &mut seen, &mut images)?;
            if images.len() == before {
                bail!(Error::Usage(format!(
                    "{}: no images (png, jpg, webp, bmp) in this folder",
                    input.display()
                )));
            }
        } else if input.exists() {
            images.push(input.clone());
        } else {
            bail!(Error::io(
                input,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder")
            ));
        }
    }
    Ok(images)
}

/// Adds the images under `dir` to `out`, sorted, skipping folders in `seen` (by their
/// canonical path).
fn walk(dir: &Path, seen: &mut HashSet<PathBuf>, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let real = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
    if !seen.insert(real.clone()) {
        log::warn!(
            "skipped {}: the folder {} is listed already (a link loop or a second link)",
            dir.display(),
            real.display()
        );
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, seen, out)?;
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(p);
        }
    }
    Ok(())
}

/// What `classify` settles before the GPU: the images, the network and how to feed it.
struct Setup {
    images: Vec<PathBuf>,
    weights: resnet_wgpu::WeightsFile,
    pre: Preprocess,
    /// 0 for a network without a head (features only).
    classes: usize,
    labels: Vec<String>,
}

pub fn classify(args: ClassifyArgs, options: &GpuOptions) -> anyhow::Result<()> {
    let (setup, network) = prepare(&args)?;
    let image_options = ImageOptions {
        exif_orientation: !args.ignore_exif,
        max_pixels: args.max_pixels,
    };
    let spinner = ProgressBar::new_spinner().with_message(format!(
        "uploading weights ({:.1} MiB)",
        setup.weights.float_bytes() as f64 / (1 << 20) as f64
    ));
    spinner.enable_steady_tick(Duration::from_millis(100));
    let engine = Engine::load_network(network, &setup.weights, options)?;
    spinner.finish_and_clear();
    let which = if args.features.is_some() {
        Output::Features
    } else {
        Output::Logits
    };
    let (outputs, width) = infer_all(&engine, &setup, &image_options, args.batch, which)?;
    let images = &setup.images;
    if let Some(path) = &args.features {
        npy::write_f32(path, &[images.len(), width], &outputs)?;
        errln!(
            "wrote features ({}, {width}) for {} images to {}",
            images.len(),
            images.len(),
            path.display()
        );
        for (i, p) in images.iter().enumerate() {
            outln!("{i}\t{}", p.display());
        }
        return Ok(());
    }
    let predictions = top_k(&setup, &outputs, args.top_k);
    print_predictions(&predictions, args.json, args.csv)
}

/// Everything checked and decided before the GPU is opened: counts, images, the output path,
/// the network (its tensors, NaN/Inf), preprocessing and class names.
fn prepare(args: &ClassifyArgs) -> anyhow::Result<(Setup, Network)> {
    at_least("--batch", args.batch, 1)?;
    at_least("--top-k", args.top_k, 1)?;
    let images = collect_images(&args.inputs)?;
    if let Some(path) = &args.features {
        let mut inputs: Vec<&Path> = images.iter().map(PathBuf::as_path).collect();
        inputs.extend(args.weights.as_deref());
        inputs.extend(args.labels.as_deref());
        check_output_path(path, &inputs)?;
    }
    let weights = open_weights(args.weights.as_deref())?;
    let config = SourceConfig::for_weights(&weights)?;
    // Detection is cheap: settle preprocessing (and reject a bad --preprocess) before the
    // weights go to the GPU.
    let arch = resnet_wgpu::model::detect_with(&weights, config.as_ref())
        .map_err(|e| naming_file(&weights, e))?;
    let (mut pre, from) = default_preprocess(&weights, Some(&arch), config.as_ref())?;
    if let Some(spec) = &args.preprocess {
        pre = presets::parse(spec, pre)
            .map_err(|e| Error::Usage(format!("--preprocess `{spec}`: {e}")))?;
    } else {
        log::info!("preprocess: {} (from {from})", presets::describe(&pre));
    }
    let classes = match (arch.num_classes, &args.features) {
        (Some(c), _) => c,
        (None, Some(_)) => 0,
        (None, None) => bail!(Error::Usage(
            "these weights have no classification head (a bare ResNetModel or a timm model \
             without fc); use --features FILE for embeddings"
                .into()
        )),
    };
    let labels = if classes > 0 {
        class_names_with(&weights, classes, args.labels.as_deref(), config.as_ref())?.0
    } else {
        vec![]
    };
    // NaN/Inf weights are refused before the GPU is opened; the engine takes the network
    // as built here.
    let network = Network::from_arch(arch, &weights)?;
    let setup = Setup {
        images,
        weights,
        pre,
        classes,
        labels,
    };
    Ok((setup, network))
}

/// Runs every image through the network, `batch` at a time, with a progress bar when there
/// is more than one batch. Returns the outputs, one row of `width` per image.
fn infer_all(
    engine: &Engine,
    setup: &Setup,
    image_options: &ImageOptions,
    batch: usize,
    which: Output,
) -> anyhow::Result<(Vec<f32>, usize)> {
    let (pre, images) = (&setup.pre, &setup.images);
    let (h, w) = (pre.crop_h as usize, pre.crop_w as usize);
    let bar = if images.len() > batch {
        ProgressBar::new(images.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images {elapsed} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut outputs: Vec<f32> = Vec::new();
    let mut width = 0;
    for chunk in images.chunks(batch) {
        let tensors = decode_all(chunk, &|p: &PathBuf| {
            load_and_preprocess_with(p, pre, image_options)
        });
        let mut x = Vec::with_capacity(chunk.len() * 3 * h * w);
        for t in tensors {
            x.extend(t?);
        }
        let y = engine.run(&x, chunk.len(), h, w, which)?;
        width = y.len() / chunk.len();
        outputs.extend(y);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok((outputs, width))
}

/// The `k` most probable classes of each image, from its logits.
fn top_k(setup: &Setup, outputs: &[f32], k: usize) -> Vec<Prediction> {
    setup
        .images
        .iter()
        .zip(outputs.chunks(setup.classes.max(1)))
        .map(|(path, logits)| Prediction {
            image: path.display().to_string(),
            top: predict::top_k(logits, &setup.labels, k),
        })
        .collect()
}

fn print_predictions(predictions: &[Prediction], json: bool, csv: bool) -> anyhow::Result<()> {
    if json {
        outln!("{}", serde_json::to_string_pretty(predictions)?);
        return Ok(());
    }
    if csv {
        outln!("image,rank,class,label,prob");
        let quote = |s: &str| {
            if s.contains([',', '"', '\n']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        };
        for p in predictions {
            for (rank, s) in p.top.iter().enumerate() {
                outln!(
                    "{},{},{},{},{:.6}",
                    quote(&p.image),
                    rank + 1,
                    s.class,
                    quote(&s.label),
                    s.prob
                );
            }
        }
        return Ok(());
    }
    // Human table: one row per image, the top-k as "label prob%" columns.
    let cells: Vec<Vec<String>> = predictions
        .iter()
        .map(|p| {
            p.top
                .iter()
                .map(|s| format!("{} {:.1}%", s.label, 100.0 * s.prob))
                .collect()
        })
        .collect();
    let image_w = predictions
        .iter()
        .map(|p| p.image.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    let k = cells.first().map_or(0, Vec::len);
    let col_w: Vec<usize> = (0..k)
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .max()
                .unwrap_or(0)
                .max(6)
        })
        .collect();
    let mut header = format!("{:image_w$}", "IMAGE");
    for (i, wd) in col_w.iter().enumerate() {
        header.push_str(&format!("  {:wd$}", format!("TOP-{}", i + 1)));
    }
    outln!("{}", header.trim_end());
    for (p, c) in predictions.iter().zip(&cells) {
        let mut line = format!("{:image_w$}", p.image);
        for (cell, wd) in c.iter().zip(&col_w) {
            line.push_str(&format!("  {cell:wd$}"));
        }
        outln!("{}", line.trim_end());
    }
    Ok(())
}
