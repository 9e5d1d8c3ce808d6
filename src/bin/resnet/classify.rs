//! `resnet classify`: images and videos (files and folders) → top-k classes, as a table,
//! JSON or CSV, or pooled features as .npy. Images run here; videos in `classify_video`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use resnet_wgpu::metadata::{class_names_with, default_preprocess, LabelSource};
use resnet_wgpu::model::SourceConfig;
use resnet_wgpu::preprocess::{
    decode_all, load_and_preprocess_with, mirrored, presets, ImageOptions, Preprocess,
    MAX_IMAGE_PIXELS,
};
use resnet_wgpu::scores::{scored, softmax, Prediction};
use resnet_wgpu::video::{is_video_file, ClipSampling};
use resnet_wgpu::{npy, Engine, Error, GpuOptions, Network, Output, WeightsFile};

use crate::classify_video;
use crate::inputs::{at_least, check_output_path, naming_file, open_video_weights, open_weights};

const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "webp", "bmp", "jfif"];

#[derive(clap::Args)]
pub struct ClassifyArgs {
    /// Image files, video files (mp4, webm, mkv, avi, mov, gif, …) or folders, searched
    /// recursively for both. With video weights, a folder holding no video file is one
    /// video: its images, sorted by name, are the frames.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// safetensors weights; without it, the embedded default models: handwritten digits for
    /// images, a digit's direction of motion for videos (each input with its own kind's model).
    /// Given several times (images): an ensemble, each member with its own preprocessing,
    /// blended by --combine.
    #[arg(long)]
    pub weights: Vec<PathBuf>,
    #[command(flatten)]
    pub ensemble: crate::ensemble::EnsembleArgs,
    /// How many classes to show per image or video.
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// Images (for videos: clips) per GPU batch.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Class names: one per line, or a JSON array/object; overrides the file's own.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Frames per clip (videos; default: the weights' `resnet.frames`, else 16 for
    /// torchvision and 8 for pytorchvideo weights). A video shorter than this repeats frames.
    #[arg(long)]
    pub frames: Option<usize>,
    /// Clips per video, spread evenly from its first frame to its last (one: the centre
    /// clip); a video's scores are the softmax probabilities averaged over its clips.
    #[arg(long, default_value_t = 1)]
    pub clips: usize,
    /// Keep every S-th frame of a video before cutting clips.
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub frame_stride: usize,
    /// Print one JSON array of {image, top: [{class, label, prob}]}.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print CSV: image,rank,class,label,prob.
    #[arg(long)]
    csv: bool,
    /// Write the pooled penultimate features (N, C) to this .npy instead of class scores;
    /// for a video, its clips' pooled embeddings averaged over the clips.
    #[arg(long)]
    pub features: Option<PathBuf>,
    /// Preprocessing: a preset (torchvision, torchvision-v2, timm, hf) and/or
    /// key=value changes (resize, crop, crop_pct, interp, mean, std, rounding), e.g.
    /// `timm,crop_pct=0.95` or `resize=232,crop=224`. Default: the weights' own
    /// (metadata, config.json), else the preset of the detected source.
    #[arg(long, value_name = "NAME|key=value,…")]
    pub preprocess: Option<String>,
    /// Ignore EXIF orientation and decode exactly as PIL.Image.open (torchvision) does. By
    /// default photos are turned upright first, as image viewers show them.
    #[arg(long)]
    pub ignore_exif: bool,
    /// Refuse images with more pixels than this, from their header, before decoding.
    #[arg(long, default_value_t = MAX_IMAGE_PIXELS)]
    pub max_pixels: u64,
    /// Test-time augmentation (images): `flip` also classifies each image mirrored left to
    /// right, in the same batch, and averages the two softmax probabilities (features: the
    /// two embeddings).
    #[arg(long, value_enum)]
    pub tta: Option<Tta>,
}

/// Test-time augmentations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Tta {
    /// The image and its horizontal mirror.
    Flip,
}

/// One output row: an image's logits or features, a video's clip-averaged probabilities or
/// features.
pub type Scores = Vec<f32>;

/// What an input is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Image,
    /// A video file or a folder of frames.
    Video,
}

/// Expands folders (recursively, sorted) into image and video files; explicit files are kept
/// as given. With `frame_folders` (video weights), a folder given that holds no video file is
/// itself one video, of its images. Links to folders are followed, each folder once: one
/// reached again (a link loop, or a second link to it) is skipped with a warning naming it,
/// so no file is listed twice and no loop makes the walk endless.
pub(crate) fn collect_inputs(
    inputs: &[PathBuf],
    frame_folders: bool,
) -> anyhow::Result<Vec<(PathBuf, Kind)>> {
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    for input in inputs {
        if input.is_dir() {
            let mut here = Vec::new();
            walk(input, &mut seen, &mut here)?;
            if frame_folders && !here.iter().any(|(_, k)| *k == Kind::Video) {
                found.push((input.clone(), Kind::Video));
                continue;
            }
            if here.is_empty() {
                bail!(Error::Usage(format!(
                    "{}: no images (png, jpg, webp, bmp) or videos (mp4, webm, mkv, avi, mov, \
                     gif) in this folder",
                    input.display()
                )));
            }
            found.extend(here);
        } else if input.exists() {
            let kind = if is_video_file(input) {
                Kind::Video
            } else {
                Kind::Image
            };
            found.push((input.clone(), kind));
        } else {
            bail!(Error::io(
                input,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder")
            ));
        }
    }
    Ok(found)
}

/// Adds the images and videos under `dir` to `out`, sorted, skipping folders in `seen` (by
/// their canonical path).
fn walk(
    dir: &Path,
    seen: &mut HashSet<PathBuf>,
    out: &mut Vec<(PathBuf, Kind)>,
) -> anyhow::Result<()> {
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
        } else if is_video_file(&p) {
            out.push((p, Kind::Video));
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push((p, Kind::Image));
        }
    }
    Ok(())
}

/// What `classify` settles before the GPU: the images, the network and how to feed it.
pub(crate) struct Setup {
    pub(crate) images: Vec<PathBuf>,
    pub(crate) weights: resnet_wgpu::WeightsFile,
    pub(crate) pre: Preprocess,
    /// 0 for a network without a head (features only).
    pub(crate) classes: usize,
    pub(crate) labels: Vec<String>,
    /// Whether `labels` are names (from a file, metadata, config or ImageNet), not indices.
    pub(crate) named: bool,
}

/// One kind's results: a row per input (in the order given), the names for its classes.
pub(crate) struct Rows {
    pub(crate) paths: Vec<PathBuf>,
    /// Probabilities (or features with `--features`).
    pub(crate) rows: Vec<Scores>,
    pub(crate) width: usize,
    pub(crate) classes: usize,
    pub(crate) labels: Vec<String>,
}

pub fn classify(args: ClassifyArgs, options: &GpuOptions) -> anyhow::Result<()> {
    at_least("--batch", args.batch, 1)?;
    at_least("--top-k", args.top_k, 1)?;
    // The clip flags are refused up front, even for images only.
    ClipSampling::new(args.frames.unwrap_or(1), args.clips, args.frame_stride)?;
    if args.weights.len() > 1 {
        return crate::classify_ensemble::classify(&args, options);
    }
    let given = args.weights.first().map(WeightsFile::open).transpose()?;
    let video_weights = given
        .as_ref()
        .is_some_and(resnet_wgpu::model::video::is_video);
    let inputs = collect_inputs(&args.inputs, video_weights)?;
    let of = |kind| -> Vec<PathBuf> {
        inputs
            .iter()
            .filter(|(_, k)| *k == kind)
            .map(|(p, _)| p.clone())
            .collect()
    };
    let (images, videos) = (of(Kind::Image), of(Kind::Video));
    check_kinds(&args, &images, &videos, given.is_some(), video_weights)?;
    if let Some(path) = &args.features {
        let mut read: Vec<&Path> = inputs.iter().map(|(p, _)| p.as_path()).collect();
        read.extend(args.weights.iter().map(PathBuf::as_path));
        read.extend(args.labels.as_deref());
        check_output_path(path, &read)?;
    }
    let which = if args.features.is_some() {
        Output::Features
    } else {
        Output::Logits
    };
    // Given weights serve their own kind (check_kinds refused the other); without, each
    // kind has its embedded default.
    let (mut for_images, mut for_videos) = match given {
        Some(w) if video_weights => (None, Some(w)),
        Some(w) => (Some(w), None),
        None => (None, None),
    };
    let mut results = Vec::new();
    if !images.is_empty() {
        let weights = match for_images.take() {
            Some(w) => w,
            None => open_weights(None)?,
        };
        results.push(classify_images(&args, weights, images, which, options)?);
    }
    if !videos.is_empty() {
        let weights = match for_videos.take() {
            Some(w) => w,
            None => open_video_weights()?,
        };
        let setup = classify_video::prepare(&args, weights)?;
        let (classes, labels) = (setup.classes, setup.labels.clone());
        let (rows, width) = classify_video::run(setup, &videos, args.batch, which, options)?;
        results.push(Rows {
            paths: videos.clone(),
            rows,
            width,
            classes,
            labels,
        });
    }
    report(&args, &inputs, results)
}
/// Refuses inputs the weights cannot take (images for video weights, videos for image
/// weights), and features of both kinds at once (their widths differ).
fn check_kinds(
    args: &ClassifyArgs,
    images: &[PathBuf],
    videos: &[PathBuf],
    given: bool,
    video_weights: bool,
) -> anyhow::Result<()> {
    let weights = args
        .weights
        .first()
        .map_or(Path::new(""), PathBuf::as_path)
        .display();
    if given && video_weights {
        if let Some(image) = images.first() {
            bail!(Error::Usage(format!(
                "{}: an image, but {weights} is a video model; give it videos (or folders of \
                 frames)",
                image.display()
            )));
        }
    } else if given {
        if let Some(video) = videos.first() {
            bail!(Error::Usage(format!(
                "{}: a video, but {weights} is an image network; give it images",
                video.display()
            )));
        }
    }
    if args.tta.is_some() && !videos.is_empty() {
        bail!(Error::Usage(
            "--tta applies to images; for videos, average over clips with --clips".into()
        ));
    }
    if args.features.is_some() && !images.is_empty() && !videos.is_empty() {
        bail!(Error::Usage(
            "--features with both images and videos: their default models' features differ in \
             width; write each kind's features separately"
                .into()
        ));
    }
    Ok(())
}

/// Runs the images through their network: logits turned into probabilities (or features).
fn classify_images(
    args: &ClassifyArgs,
    weights: WeightsFile,
    images: Vec<PathBuf>,
    which: Output,
    options: &GpuOptions,
) -> anyhow::Result<Rows> {
    let (setup, network) = prepare(args, weights, images)?;
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
    let run = Batching {
        batch: args.batch,
        flip: args.tta == Some(Tta::Flip),
        which,
    };
    let views = run.views();
    let (outputs, width) = infer_all(&engine, &setup, &image_options, run)?;
    // Each image's views (itself, and its mirror under --tta flip) are consecutive rows:
    // their probabilities (or features) are averaged.
    let rows = outputs
        .chunks(width.max(1) * views)
        .map(|rows| {
            let per_view: Vec<Vec<f32>> = rows
                .chunks(width.max(1))
                .map(|row| match which {
                    Output::Logits => softmax(row),
                    Output::Features => row.to_vec(),
                })
                .collect();
            mean_rows(&per_view)
        })
        .collect();
    Ok(Rows {
        paths: setup.images,
        rows,
        width,
        classes: setup.classes,
        labels: setup.labels,
    })
}

/// The results of every kind in the order the inputs were found: features written to their
/// .npy, or the top classes printed.
pub(crate) fn report(
    args: &ClassifyArgs,
    inputs: &[(PathBuf, Kind)],
    results: Vec<Rows>,
) -> anyhow::Result<()> {
    let mut by_path: Vec<(&PathBuf, &Scores, &Rows)> = results
        .iter()
        .flat_map(|r| r.paths.iter().zip(&r.rows).map(move |(p, row)| (p, row, r)))
        .collect();
    by_path.sort_by_key(|(p, _, _)| inputs.iter().position(|(q, _)| q == *p));
    if let Some(path) = &args.features {
        let width = results.first().map_or(0, |r| r.width);
        let flat: Vec<f32> = by_path
            .iter()
            .flat_map(|(_, row, _)| row.iter().copied())
            .collect();
        let what = match inputs.first().map(|(_, k)| *k) {
            Some(Kind::Video) => "videos",
            _ => "images",
        };
        npy::write_f32(path, &[by_path.len(), width], &flat)?;
        errln!(
            "wrote features ({}, {width}) for {} {what} to {}",
            by_path.len(),
            by_path.len(),
            path.display()
        );
        for (i, (p, _, _)) in by_path.iter().enumerate() {
            outln!("{i}\t{}", p.display());
        }
        return Ok(());
    }
    let predictions: Vec<Prediction> = by_path
        .iter()
        .map(|(p, probs, r)| prediction(p, probs, &r.labels, args.top_k.min(r.classes)))
        .collect();
    print_predictions(&predictions, args.json, args.csv)
}

/// Everything checked and decided before the GPU is opened for images: the network (its
/// tensors, NaN/Inf), preprocessing and class names.
pub(crate) fn prepare(
    args: &ClassifyArgs,
    weights: WeightsFile,
    images: Vec<PathBuf>,
) -> anyhow::Result<(Setup, Network)> {
    let config = SourceConfig::for_weights(&weights)?;
    // Detected, checked (NaN/Inf refused) and built before the GPU is opened; preprocessing
    // (and a bad --preprocess) is settled before the weights go to the GPU too.
    let network =
        Network::detect_with(&weights, config.as_ref()).map_err(|e| naming_file(&weights, e))?;
    let arch = network.model.image();
    let (mut pre, from) = default_preprocess(&weights, arch, config.as_ref())?;
    if let Some(spec) = &args.preprocess {
        pre = presets::parse(spec, pre)
            .map_err(|e| Error::Usage(format!("--preprocess `{spec}`: {e}")))?;
    } else {
        log::info!("preprocess: {} (from {from})", presets::describe(&pre));
    }
    let classes = match (network.model.num_classes(), &args.features) {
        (Some(c), _) => c,
        (None, Some(_)) => 0,
        (None, None) => bail!(Error::Usage(
            "these weights have no classification head (a bare ResNetModel or a timm model \
             without fc); use --features FILE for embeddings"
                .into()
        )),
    };
    let (labels, source) = if classes > 0 {
        class_names_with(&weights, classes, args.labels.as_deref(), config.as_ref())?
    } else {
        (vec![], LabelSource::Indices)
    };
    let setup = Setup {
        images,
        weights,
        pre,
        classes,
        labels,
        named: source != LabelSource::Indices,
    };
    Ok((setup, network))
}

/// How images go through the network: at most `batch` rows per run, each image as itself
/// and, with `flip`, its mirror in the next row; reading `which` output.
#[derive(Clone, Copy)]
struct Batching {
    batch: usize,
    flip: bool,
    which: Output,
}

impl Batching {
    /// Rows per image.
    fn views(&self) -> usize {
        1 + usize::from(self.flip)
    }
}

/// The element-wise mean of equal-length rows.
fn mean_rows(rows: &[Vec<f32>]) -> Vec<f32> {
    let n = rows.len().max(1) as f64;
    (0..rows.first().map_or(0, Vec::len))
        .map(|i| (rows.iter().map(|r| r[i] as f64).sum::<f64>() / n) as f32)
        .collect()
}

/// Runs every image through the network, with a progress bar when there is more than one
/// batch. Returns the outputs, `views` rows of `width` per image.
fn infer_all(
    engine: &Engine,
    setup: &Setup,
    image_options: &ImageOptions,
    run: Batching,
) -> anyhow::Result<(Vec<f32>, usize)> {
    let (pre, images) = (&setup.pre, &setup.images);
    let (h, w) = (pre.crop_h as usize, pre.crop_w as usize);
    let views = run.views();
    let batch = (run.batch / views).max(1);
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
        let rows = chunk.len() * views;
        let mut x = Vec::with_capacity(rows * 3 * h * w);
        for t in tensors {
            let t = t?;
            let flipped = run.flip.then(|| mirrored(&t, w));
            x.extend(t);
            x.extend(flipped.into_iter().flatten());
        }
        let y = engine.run(&x, rows, h, w, run.which)?;
        width = y.len() / rows;
        outputs.extend(y);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok((outputs, width))
}

/// The `k` most probable classes of one image or video, from its probabilities.
fn prediction(path: &Path, probs: &[f32], labels: &[String], k: usize) -> Prediction {
    Prediction {
        image: path.display().to_string(),
        top: scored(probs, labels, k),
    }
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
