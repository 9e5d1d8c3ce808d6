//! From a video (a file or a folder of frames) to the network's input: what a video model
//! expects by default (clip length, preset, class names, read from its weights) and the
//! clips of one video as one `(K, 3, T, H, W)` batch. Shared by the CLI and the bindings, so
//! each front end samples and transforms a video the same way.

use std::path::Path;

use super::decode::{decode_frame_folder, decode_video};
use super::sampling::ClipSampling;
use super::transform::{CustomPreset, VideoPreset};
use crate::error::{Error, Result};
use crate::graph::InputSize;
use crate::metadata::{class_names, stored_preprocess, LabelSource};
use crate::model::video::{VideoArch, VideoLayout};
use crate::preprocess::Interp;
use crate::weights::WeightsFile;

/// Metadata key of the clip length a model was trained on (`"8"`).
pub const FRAMES_KEY: &str = "resnet.frames";

/// The clip length for `arch`: the weights' `resnet.frames`, else the source's training
/// length (16 for torchvision, 8 for pytorchvideo); with where it came from.
pub fn default_frames(weights: &WeightsFile, arch: &VideoArch) -> Result<(usize, String)> {
    if let Some(text) = weights.metadata.get(FRAMES_KEY) {
        let frames = text.trim().parse::<usize>().ok().filter(|&t| t > 0);
        return frames
            .map(|t| (t, format!("metadata `{FRAMES_KEY}`")))
            .ok_or_else(|| Error::Safetensors {
                path: weights.path.clone(),
                msg: format!("metadata `{FRAMES_KEY}`: `{text}` is not a frame count"),
            });
    }
    Ok(match arch.layout {
        VideoLayout::Torchvision => (ClipSampling::TORCHVISION_FRAMES, "torchvision".into()),
        VideoLayout::PyTorchVideo => (ClipSampling::PYTORCHVIDEO_FRAMES, "pytorchvideo".into()),
    })
}

/// The transform for `arch`: the weights' `resnet.preprocess` (resize, crop, mean, std; see
/// [`CustomPreset`]), else the preset of its layout; with where it came from.
pub fn default_preset(weights: &WeightsFile, arch: &VideoArch) -> Result<(VideoPreset, String)> {
    if let Some(p) = stored_preprocess(weights)? {
        if p.interp != Interp::Bilinear {
            return Err(Error::Safetensors {
                path: weights.path.clone(),
                msg: "metadata `resnet.preprocess`: video frames are resized bilinearly; \
                      another `interp` is not supported"
                    .into(),
            });
        }
        let preset = CustomPreset {
            resize: p.resize as usize,
            crop: (p.crop_h as usize, p.crop_w as usize),
            mean: p.mean,
            std: p.std,
        };
        return Ok((
            VideoPreset::Custom(preset),
            "metadata `resnet.preprocess`".into(),
        ));
    }
    Ok(match arch.layout {
        VideoLayout::Torchvision => (VideoPreset::Torchvision, "torchvision layout".into()),
        VideoLayout::PyTorchVideo => (VideoPreset::PyTorchVideo, "pytorchvideo layout".into()),
    })
}

/// Class names for a video head: `labels_file`, then the weights' metadata, then Kinetics-400's
/// names for a 400-class head, else the indices; with where they came from.
pub fn video_class_names(
    weights: &WeightsFile,
    classes: usize,
    labels_file: Option<&Path>,
) -> Result<(Vec<String>, String)> {
    let (names, source) = class_names(weights, classes, labels_file)?;
    Ok(match source {
        LabelSource::Indices if classes == crate::kinetics::NUM_KINETICS400_CLASSES => (
            crate::kinetics::kinetics400_classes()
                .into_iter()
                .map(String::from)
                .collect(),
            "Kinetics-400 (400-class head)".into(),
        ),
        LabelSource::File => (names, "--labels".into()),
        LabelSource::Metadata => (names, "metadata `resnet.labels`".into()),
        LabelSource::Indices => (names, "class indices".into()),
        LabelSource::Config | LabelSource::ImageNet => (names, format!("{source:?}")),
    })
}

/// The clips of one video, ready for the network: `(K, 3, T, H, W)` float32 and its size.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipBatch {
    pub size: InputSize,
    pub data: Vec<f32>,
    /// Frames the video (or folder) decoded to.
    pub decoded_frames: usize,
}

/// Decodes `path` (a video file, or a folder of frames), cuts its clips by `sampling` and
/// transforms each by `preset`.
pub fn load_clips(path: &Path, sampling: &ClipSampling, preset: VideoPreset) -> Result<ClipBatch> {
    let frames = if path.is_dir() {
        decode_frame_folder(path)?
    } else {
        decode_video(path)?
    };
    let clips = sampling.clip_indices(frames.frames.len())?;
    let mut data = Vec::new();
    let mut size = InputSize::clip(clips.len(), sampling.frames, 0, 0);
    for indices in &clips {
        let clip = frames.select(indices)?.to_clip(preset)?;
        (size.h, size.w) = (clip.height, clip.width);
        data.extend(clip.data);
    }
    Ok(ClipBatch {
        size,
        data,
        decoded_frames: frames.frames.len(),
    })
}

/// The clip `(T, (H, W))` whose final map a fixed head pool covers exactly — pytorchvideo's
/// `slow_r50` (head pool 8×7×7) gives 8×224×224 — or `None` for an adaptive (global) pool.
/// Each axis is the pool's extent times the network's total stride on it (stem convs and
/// pool, every block's strided convs, the pools after stages).
pub fn head_pool_clip(arch: &VideoArch) -> Option<(usize, (usize, usize))> {
    let pool = arch.head_pool?;
    let mut stride = [1usize; 3];
    let mut apply = |s: [usize; 3]| (0..3).for_each(|a| stride[a] *= s[a]);
    arch.stem.iter().for_each(|c| apply(c.stride));
    arch.stem_pool.iter().for_each(|p| apply(p.stride));
    for stage in &arch.stages {
        for block in &stage.blocks {
            block.branch.iter().for_each(|c| apply(c.stride));
        }
        stage.pool_after.iter().for_each(|p| apply(p.stride));
    }
    Some((
        pool[0] * stride[0],
        (pool[1] * stride[1], pool[2] * stride[2]),
    ))
}
