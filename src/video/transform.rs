//! The video models' evaluation transforms, as the sources compute them.
//!
//! - torchvision (`R3D_18_Weights.KINETICS400_V1.transforms()`, the `VideoClassification`
//!   preset): uint8 frames resized to exactly 128×171 by `F.resize(..., antialias=False)` —
//!   bilinear, `align_corners=False`, computed in float32, rounded half to even, clamped,
//!   back to uint8 — centre crop 112, /255, normalised per channel.
//! - pytorchvideo's Kinetics eval transform (its tutorials): /255, normalise (0.45, 0.225),
//!   short side to 256 by float bilinear interpolation (no antialias, no rounding: the frames
//!   are already float), centre crop 256.
//!
//! Bilinear interpolation follows ATen's `upsample_bilinear2d` (CPU): source coordinate
//! `scale·(dst + 0.5) − 0.5` with `scale = in/out` in float32, clamped at 0, the upper
//! neighbour clamped to the edge, and the value `(x00·w0 + x01·w1)·h0 + (x10·w0 + x11·w1)·h1`
//! where each `a·w0 + b·w1` is `fma(a, w0, b·w1)`: PyTorch's CPU kernels for AVX2 and newer
//! are compiled with FMA and the compiler contracts these sums. Without the fused step one
//! value in 131,328 of the resize fixture differs by 1 (a sum landing on .5); with it every
//! value matches. A PyTorch running its non-FMA kernel (a CPU without AVX2) may differ there.

/// RGB frames, each `(H, W, 3)` row-major, all the same size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frames {
    pub height: usize,
    pub width: usize,
    pub frames: Vec<Vec<u8>>,
}

/// A normalised clip, PyTorch's `(3, T, H, W)` layout.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipTensor {
    pub frames: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

/// Which source's evaluation transform to apply.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VideoPreset {
    /// torchvision's video preset: 128×171, crop 112.
    Torchvision,
    /// pytorchvideo's Kinetics eval: short side 256, crop 256.
    PyTorchVideo,
    /// A model's own (its `resnet.preprocess` metadata, as the default video model has).
    Custom(CustomPreset),
}

/// A transform in torchvision's video preset's steps with other sizes: the uint8 frames'
/// short side resized to `resize` (bilinear without antialias, as [`resize_u8`]; the long
/// side `floor(long · resize / short)`, as torchvision's `Resize(int)`), centre crop, /255,
/// normalised per channel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CustomPreset {
    pub resize: usize,
    /// (H, W).
    pub crop: (usize, usize),
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl VideoPreset {
    /// One line for logs and `resnet info`.
    pub fn describe(&self) -> String {
        let list = |v: [f32; 3]| format!("[{}, {}, {}]", v[0], v[1], v[2]);
        match self {
            VideoPreset::Torchvision => format!(
                "torchvision video: resize 128x171 (bilinear, no antialias), crop 112, mean {}, std {}",
                list(TORCHVISION_MEAN),
                list(TORCHVISION_STD)
            ),
            VideoPreset::PyTorchVideo => format!(
                "pytorchvideo Kinetics eval: short side 256 (bilinear), crop 256, mean \
                 {PYTORCHVIDEO_MEAN}, std {PYTORCHVIDEO_STD}"
            ),
            VideoPreset::Custom(p) => format!(
                "short side {} (bilinear, no antialias), crop {}x{}, mean {}, std {}",
                p.resize,
                p.crop.0,
                p.crop.1,
                list(p.mean),
                list(p.std)
            ),
        }
    }

    /// The clip's (H, W) after the transform, for frames of any size.
    pub fn crop(&self) -> (usize, usize) {
        match self {
            VideoPreset::Torchvision => (112, 112),
            VideoPreset::PyTorchVideo => (256, 256),
            VideoPreset::Custom(p) => p.crop,
        }
    }
}

pub const TORCHVISION_MEAN: [f32; 3] = [0.43216, 0.394666, 0.37645];
pub const TORCHVISION_STD: [f32; 3] = [0.22803, 0.22145, 0.216989];
pub const PYTORCHVIDEO_MEAN: f32 = 0.45;
pub const PYTORCHVIDEO_STD: f32 = 0.225;

/// One axis of a bilinear resize: for each output index, the two source indices and weights.
struct AxisWeights {
    lo: Vec<usize>,
    hi: Vec<usize>,
    w_lo: Vec<f32>,
    w_hi: Vec<f32>,
}

impl AxisWeights {
    /// ATen's `compute_indices_weights_linear` with `align_corners=False` in float32.
    fn new(input: usize, output: usize) -> Self {
        let scale = input as f32 / output as f32;
        let mut a = Self {
            lo: Vec::with_capacity(output),
            hi: Vec::with_capacity(output),
            w_lo: Vec::with_capacity(output),
            w_hi: Vec::with_capacity(output),
        };
        for dst in 0..output {
            let src = (scale * (dst as f32 + 0.5) - 0.5).max(0.0);
            let lo = (src.floor() as usize).min(input - 1);
            let lambda = (src - lo as f32).clamp(0.0, 1.0);
            a.lo.push(lo);
            a.hi.push(if lo < input - 1 { lo + 1 } else { lo });
            a.w_lo.push(1.0 - lambda);
            a.w_hi.push(lambda);
        }
        a
    }
}

/// Bilinear resize of one interleaved `(H, W, C)` float image.
pub fn resize_bilinear(
    src: &[f32],
    (h, w): (usize, usize),
    c: usize,
    (oh, ow): (usize, usize),
) -> Vec<f32> {
    let (ys, xs) = (AxisWeights::new(h, oh), AxisWeights::new(w, ow));
    let mut out = vec![0f32; oh * ow * c];
    for oy in 0..oh {
        let (r0, r1) = (ys.lo[oy] * w, ys.hi[oy] * w);
        for ox in 0..ow {
            let (x0, x1) = (xs.lo[ox], xs.hi[ox]);
            for ch in 0..c {
                let at = |row: usize, col: usize| src[(row + col) * c + ch];
                let blend = |a: f32, wa: f32, b: f32, wb: f32| a.mul_add(wa, b * wb);
                let top = blend(at(r0, x0), xs.w_lo[ox], at(r0, x1), xs.w_hi[ox]);
                let bottom = blend(at(r1, x0), xs.w_lo[ox], at(r1, x1), xs.w_hi[ox]);
                out[(oy * ow + ox) * c + ch] = blend(top, ys.w_lo[oy], bottom, ys.w_hi[oy]);
            }
        }
    }
    out
}

/// torchvision's `resize(uint8, antialias=False)`: float bilinear, round half to even,
/// clamp, back to uint8.
pub fn resize_u8(src: &[u8], size: (usize, usize), c: usize, out: (usize, usize)) -> Vec<u8> {
    let float: Vec<f32> = src.iter().map(|&v| v as f32).collect();
    resize_bilinear(&float, size, c, out)
        .into_iter()
        .map(|v| v.round_ties_even().clamp(0.0, 255.0) as u8)
        .collect()
}

/// Offset of a centre crop along one axis: torchvision's `int(round((len − crop) / 2))`,
/// half to even.
pub fn crop_offset(len: usize, crop: usize) -> usize {
    let twice = len - crop;
    let (q, odd) = (twice / 2, twice % 2 == 1);
    if odd && q % 2 == 1 {
        q + 1
    } else {
        q
    }
}

/// Size after pytorchvideo's `ShortSideScale(size)`: the short side becomes `size`, the long
/// side `floor(long / short · size)` in double precision.
pub fn short_side_size(h: usize, w: usize, size: usize) -> (usize, usize) {
    if w < h {
        (((h as f64 / w as f64) * size as f64).floor() as usize, size)
    } else {
        (size, ((w as f64 / h as f64) * size as f64).floor() as usize)
    }
}

/// Size after torchvision's `Resize(size)` (an int): the short side becomes `size`, the long
/// side `int(size · long / short)`.
pub fn torchvision_resize_size(h: usize, w: usize, size: usize) -> (usize, usize) {
    if h <= w {
        (size, size * w / h)
    } else {
        (size * h / w, size)
    }
}

impl Frames {
    /// Applies `preset` to every frame (any frame size: both presets resize before cropping).
    pub fn to_clip(&self, preset: VideoPreset) -> crate::Result<ClipTensor> {
        if self.frames.is_empty() || self.height == 0 || self.width == 0 {
            return Err(crate::Error::InputShape(
                "a clip needs at least one non-empty frame".into(),
            ));
        }
        match preset {
            VideoPreset::Torchvision => Ok(self.torchvision()),
            VideoPreset::PyTorchVideo => Ok(self.pytorchvideo()),
            VideoPreset::Custom(p) => self.custom(&p),
        }
    }

    fn custom(&self, p: &CustomPreset) -> crate::Result<ClipTensor> {
        let resized = torchvision_resize_size(self.height, self.width, p.resize);
        let (ch, cw) = p.crop;
        if ch > resized.0 || cw > resized.1 || ch == 0 || cw == 0 {
            return Err(crate::Error::InputShape(format!(
                "a {ch}x{cw} crop of frames resized to {}x{}: the crop must fit",
                resized.0, resized.1
            )));
        }
        let (top, left) = (crop_offset(resized.0, ch), crop_offset(resized.1, cw));
        let planes: Vec<Vec<f32>> = self
            .frames
            .iter()
            .map(|f| {
                let small = resize_u8(f, (self.height, self.width), 3, resized);
                crop_hwc(&small, resized.1, (top, left), (ch, cw), |c, v| {
                    (v as f32 / 255.0 - p.mean[c]) / p.std[c]
                })
            })
            .collect();
        Ok(to_cthw(&planes, (ch, cw)))
    }

    fn torchvision(&self) -> ClipTensor {
        let (crop, resized) = (112, (128, 171));
        let (top, left) = (crop_offset(resized.0, crop), crop_offset(resized.1, crop));
        let planes: Vec<Vec<f32>> = self
            .frames
            .iter()
            .map(|f| {
                let small = resize_u8(f, (self.height, self.width), 3, resized);
                // ToDtype(float, scale=True) divides by 255 in float32, then Normalize.
                crop_hwc(&small, resized.1, (top, left), (crop, crop), |ch, v| {
                    (v as f32 / 255.0 - TORCHVISION_MEAN[ch]) / TORCHVISION_STD[ch]
                })
            })
            .collect();
        to_cthw(&planes, (crop, crop))
    }

    fn pytorchvideo(&self) -> ClipTensor {
        let crop = 256;
        let size = short_side_size(self.height, self.width, crop);
        let (top, left) = (crop_offset(size.0, crop), crop_offset(size.1, crop));
        let planes: Vec<Vec<f32>> = self
            .frames
            .iter()
            .map(|f| {
                let norm: Vec<f32> = f
                    .iter()
                    .map(|&v| (v as f32 / 255.0 - PYTORCHVIDEO_MEAN) / PYTORCHVIDEO_STD)
                    .collect();
                let big = resize_bilinear(&norm, (self.height, self.width), 3, size);
                crop_hwc(&big, size.1, (top, left), (crop, crop), |_, v| v)
            })
            .collect();
        to_cthw(&planes, (crop, crop))
    }
}

/// The `crop_h`×`crop_w` window at `(top, left)` of an `(H, width, 3)` image, each value
/// mapped by `f(channel, value)`, as `(3, crop_h, crop_w)` planes.
fn crop_hwc<T: Copy>(
    img: &[T],
    width: usize,
    (top, left): (usize, usize),
    (crop_h, crop_w): (usize, usize),
    f: impl Fn(usize, T) -> f32,
) -> Vec<f32> {
    let mut out = vec![0f32; 3 * crop_h * crop_w];
    for y in 0..crop_h {
        for x in 0..crop_w {
            for ch in 0..3 {
                out[(ch * crop_h + y) * crop_w + x] =
                    f(ch, img[((top + y) * width + left + x) * 3 + ch]);
            }
        }
    }
    out
}

/// Per-frame `(3, H, W)` planes to one `(3, T, H, W)` tensor.
fn to_cthw(planes: &[Vec<f32>], (height, width): (usize, usize)) -> ClipTensor {
    let (t, plane) = (planes.len(), height * width);
    let mut data = vec![0f32; 3 * t * plane];
    for (i, p) in planes.iter().enumerate() {
        for ch in 0..3 {
            data[(ch * t + i) * plane..][..plane].copy_from_slice(&p[ch * plane..][..plane]);
        }
    }
    ClipTensor {
        frames: t,
        height,
        width,
        data,
    }
}
