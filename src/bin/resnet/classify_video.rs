//! `resnet classify` on videos (files, or folders of frames): each video's clips, sampled and
//! transformed by the library (`video::load_clips`), run through the network a batch of clips
//! at a time; a video's scores are the softmax probabilities averaged over its clips (its
//! features, the pooled clip embeddings averaged over its clips).

use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use resnet_wgpu::model::video::VideoArch;
use resnet_wgpu::video::{
    default_frames, default_preset, load_clips, video_class_names, ClipSampling, VideoPreset,
};
use resnet_wgpu::{Engine, Error, GpuOptions, Network, Output, WeightsFile};

use crate::classify::{ClassifyArgs, Scores};
use crate::inputs::naming_file;
use resnet_wgpu::scores::softmax;

/// What classifying videos settles before the GPU: the network and how to feed it.
pub struct VideoSetup {
    weights: WeightsFile,
    network: Network,
    sampling: ClipSampling,
    preset: VideoPreset,
    /// 0 for a network without a head (features only).
    pub classes: usize,
    pub labels: Vec<String>,
}

/// Checks the video weights and settles clip sampling, preset and class names from the
/// flags, else from the weights (see `video::default_frames` / `default_preset`).
pub fn prepare(args: &ClassifyArgs, weights: WeightsFile) -> anyhow::Result<VideoSetup> {
    if args.preprocess.is_some() {
        anyhow::bail!(Error::Usage(
            "--preprocess applies to images; a video model's transform comes from its weights \
             (metadata `resnet.preprocess`, else its layout's preset)"
                .into()
        ));
    }
    let network = Network::detect(&weights).map_err(|e| naming_file(&weights, e))?;
    let arch: &VideoArch = network.model.video().ok_or_else(|| {
        Error::Usage(format!(
            "{}: an image network, given videos",
            weights.path.display()
        ))
    })?;
    let (frames, frames_from) = match args.frames {
        Some(t) => (t, "--frames".to_string()),
        None => default_frames(&weights, arch)?,
    };
    let sampling = ClipSampling::new(frames, args.clips, args.frame_stride)?;
    let (preset, preset_from) = default_preset(&weights, arch)?;
    log::info!(
        "{}: {frames} frames per clip (from {frames_from}), {} clip(s), stride {}; {} (from {preset_from})",
        arch.name(),
        sampling.clips,
        sampling.frame_stride,
        preset.describe()
    );
    let classes = match (&arch.head, &args.features) {
        (Some(h), _) => h.classes,
        (None, Some(_)) => 0,
        (None, None) => anyhow::bail!(Error::Usage(
            "these video weights have no classification head; use --features FILE for \
             embeddings"
                .into()
        )),
    };
    let labels = match classes {
        0 => vec![],
        c => video_class_names(&weights, c, args.labels.as_deref())?.0,
    };
    Ok(VideoSetup {
        weights,
        network,
        sampling,
        preset,
        classes,
        labels,
    })
}

/// Runs every video and returns one row per video: the clip-averaged softmax probabilities
/// (`Output::Logits`) or features (`Output::Features`), and the row width.
pub fn run(
    setup: VideoSetup,
    videos: &[PathBuf],
    batch: usize,
    which: Output,
    options: &GpuOptions,
) -> anyhow::Result<(Vec<Scores>, usize)> {
    let spinner = ProgressBar::new_spinner().with_message(format!(
        "uploading weights ({:.1} MiB)",
        setup.weights.float_bytes() as f64 / (1 << 20) as f64
    ));
    spinner.enable_steady_tick(Duration::from_millis(100));
    let engine = Engine::load_network(setup.network, &setup.weights, options)?;
    spinner.finish_and_clear();
    let clips = setup.sampling.clips;
    let bar = if videos.len() > 1 || clips > batch {
        ProgressBar::new((videos.len() * clips) as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} clips, {msg} {elapsed} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut rows = Vec::with_capacity(videos.len());
    for (i, path) in videos.iter().enumerate() {
        bar.set_message(format!("video {}/{}", i + 1, videos.len()));
        let clips = load_clips(path, &setup.sampling, setup.preset)?;
        log::info!(
            "{}: {} frames decoded, {} clip(s) of {}",
            path.display(),
            clips.decoded_frames,
            clips.size.n,
            clips.size.describe(3)
        );
        rows.push(run_clips(&engine, &clips, batch, which, &bar)?);
    }
    bar.finish_and_clear();
    let width = rows.first().map_or(0, Vec::len);
    Ok((rows, width))
}

/// One video's clips, `batch` per run: the mean over clips of their softmax probabilities
/// (logits) or of their features.
fn run_clips(
    engine: &Engine,
    clips: &resnet_wgpu::video::ClipBatch,
    batch: usize,
    which: Output,
    bar: &ProgressBar,
) -> anyhow::Result<Scores> {
    let per_clip = clips.data.len() / clips.size.n;
    let mut sum: Vec<f64> = Vec::new();
    for chunk in clips.data.chunks(batch * per_clip) {
        let n = chunk.len() / per_clip;
        let y = engine.run_at(chunk, clips.size.with_batch(n), which)?;
        let width = y.len() / n;
        sum.resize(width, 0.0);
        for row in y.chunks(width) {
            let row = match which {
                Output::Logits => softmax(row),
                Output::Features => row.to_vec(),
            };
            sum.iter_mut().zip(row).for_each(|(s, v)| *s += v as f64);
        }
        bar.inc(n as u64);
    }
    let count = clips.size.n as f64;
    Ok(sum.into_iter().map(|s| (s / count) as f32).collect())
}
