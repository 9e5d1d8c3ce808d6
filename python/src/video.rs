//! `Engine.classify` on videos (files, or folders of frames) for a video network, as
//! `resnet classify` does them: each video's clips cut and transformed by the library
//! (`video::load_clips`), a batch of clips per run, a video's scores the softmax
//! probabilities averaged over its clips.

use resnet::model::video::VideoArch;
use resnet::scores::{scored, softmax, Prediction};
use resnet::video::{default_frames, default_preset, load_clips, ClipSampling, VideoPreset};
use resnet::{Error, Output, WeightsFile};

use crate::images::{Item, Source};

/// `classify`'s clip arguments: frames per clip (default: the weights' own), clips per
/// video, frame stride.
pub struct Clips {
    pub frames: Option<usize>,
    pub clips: usize,
    pub frame_stride: usize,
}

impl Clips {
    /// Refuses clip arguments given to an image network.
    pub fn only_for_videos(&self) -> resnet::Result<()> {
        if self.frames.is_some() || self.clips != 1 || self.frame_stride != 1 {
            return Err(Error::Usage(
                "frames, clips and frame_stride apply to a video network; this is an image \
                 network"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// A video network's defaults, settled from its weights at load.
pub struct VideoFeed {
    frames: usize,
    preset: VideoPreset,
}

impl VideoFeed {
    pub fn for_weights(weights: &WeightsFile, arch: &VideoArch) -> resnet::Result<Self> {
        Ok(VideoFeed {
            frames: default_frames(weights, arch)?.0,
            preset: default_preset(weights, arch)?.0,
        })
    }

    /// Each video's top_k, its clips `batch` at a time.
    pub fn predict(
        &self,
        engine: &resnet::Engine,
        items: &[Item],
        labels: &[String],
        (top_k, batch): (usize, usize),
        clips: Clips,
    ) -> resnet::Result<Vec<Prediction>> {
        let frames = clips.frames.unwrap_or(self.frames);
        let sampling = ClipSampling::new(frames, clips.clips, clips.frame_stride)?;
        let mut predictions = Vec::with_capacity(items.len());
        for item in items {
            let Source::Path(path) = &item.source else {
                return Err(Error::Usage(format!(
                    "{}: a video network classifies videos given by path (a video file or a \
                     folder of frames)",
                    item.name
                )));
            };
            let batch_of_clips = load_clips(path, &sampling, self.preset)?;
            let probs = mean_probabilities(engine, &batch_of_clips, batch)?;
            predictions.push(Prediction {
                image: item.name.clone(),
                top: scored(&probs, labels, top_k),
            });
        }
        Ok(predictions)
    }
}

/// The softmax probabilities of a video's clips averaged over them, accumulated in f64 (as
/// the CLI does).
fn mean_probabilities(
    engine: &resnet::Engine,
    clips: &resnet::video::ClipBatch,
    batch: usize,
) -> resnet::Result<Vec<f32>> {
    let per_clip = clips.data.len() / clips.size.n;
    let mut sum: Vec<f64> = Vec::new();
    for chunk in clips.data.chunks(batch * per_clip) {
        let n = chunk.len() / per_clip;
        let y = engine.run_at(chunk, clips.size.with_batch(n), Output::Logits)?;
        let width = y.len() / n;
        sum.resize(width, 0.0);
        for row in y.chunks(width) {
            sum.iter_mut()
                .zip(softmax(row))
                .for_each(|(s, v)| *s += v as f64);
        }
    }
    let count = clips.size.n as f64;
    Ok(sum.into_iter().map(|s| (s / count) as f32).collect())
}
