//! Video input: decoding (system `ffmpeg`, or a folder of frames), clip sampling, and the
//! video models' evaluation transforms. Produces `(3, T, H, W)` clips; batching them into the
//! network's `(N, 3, T, H, W)` input is the caller's.

pub mod clips;
pub mod decode;
pub mod sampling;
pub mod transform;

pub use clips::{
    default_frames, default_preset, head_pool_clip, load_clips, video_class_names, ClipBatch,
    FRAMES_KEY,
};
pub use decode::{decode_frame_folder, decode_video, is_video_file};
pub use sampling::ClipSampling;
pub use transform::{ClipTensor, CustomPreset, Frames, VideoPreset};

impl Frames {
    /// The frames at `indices` (a clip from [`ClipSampling::clip_indices`]).
    pub fn select(&self, indices: &[usize]) -> crate::Result<Frames> {
        let frames = indices
            .iter()
            .map(|&i| {
                self.frames.get(i).cloned().ok_or_else(|| {
                    crate::Error::InputShape(format!(
                        "frame {i} of a {}-frame video",
                        self.frames.len()
                    ))
                })
            })
            .collect::<crate::Result<_>>()?;
        Ok(Frames {
            height: self.height,
            width: self.width,
            frames,
        })
    }
}
