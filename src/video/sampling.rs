//! Which frames of a video make each clip (issue 12's rules, the ones pytorchvideo's and
//! torchvision's evaluation samplers follow):
//!
//! 1. `--frame-stride S` first keeps every S-th frame (0, S, 2S, …): `F` frames become ⌈F/S⌉.
//! 2. Of those `F` frames, clip `i` of `K` starts at `round(i·(F−T)/(K−1))` (half to even,
//!    as Python's `round`); one clip (`K = 1`) is the centre clip, start `(F−T)//2`.
//! 3. A video shorter than `T` frames repeats frames: indices `floor(linspace(0, F−1, T))`,
//!    the same for every clip.
//!
//! Indices are returned in the original video's numbering.

use crate::error::{Error, Result};

/// How clips are cut from a video.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClipSampling {
    /// Frames per clip (`T`).
    pub frames: usize,
    /// Clips per video (`K`).
    pub clips: usize,
    /// Keep every `frame_stride`-th frame before cutting clips (`S`).
    pub frame_stride: usize,
}

impl ClipSampling {
    /// Default clip length when the weights' metadata names none: torchvision's video
    /// models were trained on 16-frame clips, pytorchvideo's ResNet-50s on 8.
    pub const TORCHVISION_FRAMES: usize = 16;
    pub const PYTORCHVIDEO_FRAMES: usize = 8;

    pub fn new(frames: usize, clips: usize, frame_stride: usize) -> Result<Self> {
        for (flag, v) in [
            ("--frames", frames),
            ("--clips", clips),
            ("--frame-stride", frame_stride),
        ] {
            if v == 0 {
                return Err(Error::Usage(format!("{flag} must be at least 1")));
            }
        }
        Ok(Self {
            frames,
            clips,
            frame_stride,
        })
    }

    /// The frame indices of every clip (`clips` lists of `frames` indices) of a video with
    /// `total_frames` frames.
    pub fn clip_indices(&self, total_frames: usize) -> Result<Vec<Vec<usize>>> {
        if total_frames == 0 {
            return Err(Error::InputShape("the video has no frames".into()));
        }
        let kept = total_frames.div_ceil(self.frame_stride);
        let original = |i: usize| i * self.frame_stride;
        let (t, k) = (self.frames, self.clips);
        if kept < t {
            let stretched: Vec<usize> = (0..t)
                .map(|i| original(linspace_floor(kept, t, i)))
                .collect();
            return Ok(vec![stretched; k]);
        }
        let clips = (0..k)
            .map(|i| {
                let start = clip_start(kept - t, k, i);
                (start..start + t).map(original).collect()
            })
            .collect();
        Ok(clips)
    }
}

/// Start of clip `i` of `k` when `slack = F − T` frames are left over.
fn clip_start(slack: usize, k: usize, i: usize) -> usize {
    if k == 1 {
        return slack / 2;
    }
    round_half_even(i * slack, k - 1)
}

/// `round(num / den)` with ties to even, in exact integer arithmetic.
fn round_half_even(num: usize, den: usize) -> usize {
    let (q, r) = (num / den, num % den);
    match (2 * r).cmp(&den) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q % 2),
    }
}

/// `floor(linspace(0, f − 1, t)[i])` computed exactly (`i·(f−1)/(t−1)`, integer division);
/// NumPy's float version agrees wherever its rounding does not cross an integer.
fn linspace_floor(f: usize, t: usize, i: usize) -> usize {
    if t == 1 {
        0
    } else {
        i * (f - 1) / (t - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_round_to_even() {
        assert_eq!(round_half_even(1, 2), 0);
        assert_eq!(round_half_even(3, 2), 2);
        assert_eq!(round_half_even(5, 2), 2);
        assert_eq!(round_half_even(7, 3), 2);
        assert_eq!(round_half_even(8, 3), 3);
    }
}
