//! Image file -> normalised CHW `f32` tensor, bit-for-bit equal to torchvision's
//! `Compose([Resize(256), CenterCrop(224), ToTensor(), Normalize(mean, std)])` applied to
//! `PIL.Image.open(path).convert("RGB")`.
//!
//! torchvision resizes PIL images with Pillow, whose `Image.resize` always antialiases. The
//! resampler below is a port of Pillow's `src/libImaging/Resample.c` (8-bit path, Pillow 13):
//! separable, the filter's support widened by the downscale factor, coefficients normalised in
//! `f64` then rounded to fixed point with 22 fractional bits, and a rounded, clipped `u8` image
//! between the passes. Each step keeps Pillow's exact floating-point expressions and evaluation
//! order, because a different rounding anywhere changes output bytes.
//!
//! Pass order: horizontal first, except that Pillow 13 (python-pillow/Pillow#9549) runs the
//! vertical pass first when the height shrinks by more than twice as many pixels as the
//! width. With torchvision's `Resize(n)` that happens for downscaled portrait images more than
//! twice as tall as wide. Pillow 12 and older always went horizontal first, and differ on such
//! images (bilinear: by 1 level, in up to a fifth of the pixels of a noisy image; bicubic: by
//! more, where the clipping of overshoot between passes differs). This follows Pillow 13.
//!
//! Only the pixels that survive the centre crop are computed: in Pillow each output pixel
//! depends only on its own coefficients and on input pixels, so skipping the others changes no
//! value and keeps huge upscales (a 1-pixel-high panorama) cheap.

use std::ops::Range;
use std::path::Path;

use image::RgbImage;

use crate::error::{Error, Result};

mod decode;
mod parallel;
pub mod presets;
pub use decode::{decode_image, load_image, load_image_with, ImageOptions, MAX_IMAGE_PIXELS};
pub use parallel::decode_all;

/// Resampling filter, as Pillow defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interp {
    /// Triangle filter, support 1 (`PIL.Image.BILINEAR`, torchvision's default).
    Bilinear,
    /// Keys cubic with a = -0.5, support 2 (`PIL.Image.BICUBIC`).
    Bicubic,
}

/// How the centre crop's offset `(size − crop) / 2` is rounded when it is not whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CropRounding {
    /// torchvision's `int(round((size − crop) / 2.0))`: Python rounds half to even.
    HalfToEven,
    /// Hugging Face's `(size − crop) // 2`: floor, also when the crop pads (negative).
    Floor,
}

/// Preprocessing parameters: resize the shorter side, centre-crop, normalise per channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preprocess {
    /// Target length of the shorter side (`transforms.Resize(resize)`).
    pub resize: u32,
    pub crop_h: u32,
    pub crop_w: u32,
    pub interp: Interp,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub crop_rounding: CropRounding,
}

/// Crops larger than this many pixels are refused rather than allocated.
const MAX_CROP_PIXELS: u64 = 1 << 26;
/// The longest resize or crop side accepted (what `--preprocess` accepts), far beyond any
/// network's input and small enough that no size computation can overflow.
pub const MAX_SIDE: u32 = 1 << 14;
/// The largest magnitude a normalised pixel may reach, `max(|0 − mean|, |1 − mean|) / |std|`.
/// Trained networks see values within a few units; a million means a mistyped `std` (≈ 0)
/// whose tensor would be ±Inf or so large that every answer is noise.
pub const MAX_NORMALISED: f32 = 1e6;

impl Preprocess {
    /// torchvision's `IMAGENET1K_V1` transform: Resize(256, bilinear), CenterCrop(224),
    /// ImageNet mean and std.
    pub fn torchvision_v1() -> Self {
        // torch stores Normalize's Python floats as float32 tensors, i.e. the f64 value
        // rounded to f32; casting from f64 reproduces that rounding exactly.
        Preprocess {
            resize: 256,
            crop_h: 224,
            crop_w: 224,
            interp: Interp::Bilinear,
            mean: [0.485f64 as f32, 0.456f64 as f32, 0.406f64 as f32],
            std: [0.229f64 as f32, 0.224f64 as f32, 0.225f64 as f32],
            crop_rounding: CropRounding::HalfToEven,
        }
    }

    /// Rejects parameters torchvision would reject (zero sizes, zero std), and those that
    /// would give a non-finite or absurd tensor: sides beyond [`MAX_SIDE`], crops beyond
    /// 2²⁶ pixels, a mean or std that is not finite, and normalised values beyond
    /// [`MAX_NORMALISED`] (a std ≈ 0). Each error names the setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |setting: &str, msg: String| {
            Err(Error::InputShape(format!(
                "preprocessing `{setting}`: {msg}"
            )))
        };
        for (setting, value) in [
            ("resize", self.resize),
            ("crop", self.crop_h),
            ("crop", self.crop_w),
        ] {
            if value == 0 || value > MAX_SIDE {
                return bad(
                    setting,
                    format!("{value} is not a size between 1 and {MAX_SIDE}"),
                );
            }
        }
        if self.crop_h as u64 * self.crop_w as u64 > MAX_CROP_PIXELS {
            return bad(
                "crop",
                format!(
                    "{}x{} is larger than {MAX_CROP_PIXELS} pixels",
                    self.crop_h, self.crop_w
                ),
            );
        }
        if self.mean.iter().any(|m| !m.is_finite()) {
            return bad("mean", format!("{:?} is not finite", self.mean));
        }
        if self.std.iter().any(|&s| s == 0.0 || !s.is_finite()) {
            return bad("std", format!("{:?} must be finite and non-zero", self.std));
        }
        let largest = (0..3)
            .map(|c| (0.0 - self.mean[c]).abs().max((1.0 - self.mean[c]).abs()) / self.std[c].abs())
            .fold(0.0f32, f32::max);
        // Negated on purpose: a NaN `largest` must be refused too.
        #[allow(clippy::neg_cmp_op_on_partial_ord)]
        if !(largest <= MAX_NORMALISED) {
            return bad(
                "std",
                format!(
                    "{:?} with mean {:?} scales pixels to {largest:e}, beyond ±{MAX_NORMALISED:e} \
                     (a std of about 0?)",
                    self.std, self.mean
                ),
            );
        }
        Ok(())
    }

    /// Size `(w, h)` after `transforms.Resize(self.resize)`: the shorter side becomes
    /// `resize`, the longer `int(resize * long / short)` (Python true division, truncated).
    pub fn resized_size(&self, w: u32, h: u32) -> (u32, u32) {
        let (short, long) = if w <= h { (w, h) } else { (h, w) };
        if short == 0 {
            return (w, h);
        }
        // Exact integer product, then one correctly rounded division, as Python does.
        let new_long = ((self.resize as u64 * long as u64) as f64 / short as f64) as u32;
        if w <= h {
            (self.resize, new_long)
        } else {
            (new_long, self.resize)
        }
    }

    /// Output length: `3 * crop_h * crop_w`.
    pub fn output_len(&self) -> usize {
        3 * self.crop_h as usize * self.crop_w as usize
    }
}

/// `load_image` then `preprocess`, after checking the parameters.
pub fn load_and_preprocess(path: &Path, p: &Preprocess) -> Result<Vec<f32>> {
    load_and_preprocess_with(path, p, &ImageOptions::default())
}

/// `load_image_with` then `preprocess`, after checking the parameters.
pub fn load_and_preprocess_with(
    path: &Path,
    p: &Preprocess,
    options: &ImageOptions,
) -> Result<Vec<f32>> {
    p.validate()?;
    let img = load_image_with(path, options)?;
    Ok(preprocess(&img, p))
}

/// `decode_image` then `preprocess`, after checking the parameters: [`load_and_preprocess_with`]
/// on an image file's bytes in memory (in a browser), `label` naming it in errors.
pub fn decode_and_preprocess(
    bytes: &[u8],
    label: &Path,
    p: &Preprocess,
    options: &ImageOptions,
) -> Result<Vec<f32>> {
    p.validate()?;
    let img = decode_image(bytes, label, options)?;
    Ok(preprocess(&img, p))
}

/// The horizontal mirror of a CHW tensor with rows of `w` values (test-time augmentation:
/// each image is also classified mirrored).
pub fn mirrored(chw: &[f32], w: usize) -> Vec<f32> {
    chw.chunks(w.max(1))
        .flat_map(|row| row.iter().rev().copied())
        .collect()
}

/// Resize (shorter side), centre-crop and normalise `img`; returns CHW `f32` of shape
/// `(3, crop_h, crop_w)`.
///
/// Where the crop is larger than the resized image, torchvision pads with black before
/// normalising, and so does this. Parameters are expected to pass [`Preprocess::validate`];
/// if they do not (or the image is empty), the function still returns without panicking,
/// skipping the resize and padding as needed.
pub fn preprocess(img: &RgbImage, p: &Preprocess) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let (rw, rh) = if w == 0 || h == 0 || p.resize == 0 {
        (w, h)
    } else {
        p.resized_size(w, h)
    };
    // Crop window in resized-image coordinates (a negative start is padding), and the part of
    // it that lies inside the resized image.
    let (cx, cy) = (
        crop_start(rw, p.crop_w, p.crop_rounding),
        crop_start(rh, p.crop_h, p.crop_rounding),
    );
    let (cw, ch) = (p.crop_w as i64, p.crop_h as i64);
    let inside = |start: i64, len: i64, size: u32| {
        let lo = start.max(0);
        lo as usize..(start + len).min(size as i64).max(lo) as usize
    };
    let (cols, rows) = (inside(cx, cw, rw), inside(cy, ch, rh));
    let px = resize_region(
        img,
        rw as usize,
        rh as usize,
        p.interp,
        rows.clone(),
        cols.clone(),
    );

    let plane = (ch * cw) as usize;
    let mut out = vec![0f32; 3 * plane];
    for (c, dst) in out.chunks_exact_mut(plane.max(1)).enumerate().take(3) {
        // ToTensor divides by 255 in f32; Normalize subtracts then divides, in f32.
        let lut: Vec<f32> = (0..=255u8)
            .map(|v| (v as f32 / 255.0 - p.mean[c]) / p.std[c])
            .collect();
        for (i, d) in dst.iter_mut().enumerate() {
            let (sy, sx) = (i as i64 / cw + cy, i as i64 % cw + cx);
            let (sy, sx) = (sy as usize, sx as usize); // negative wraps to huge: outside
            let v = if rows.contains(&sy) && cols.contains(&sx) {
                px[((sy - rows.start) * cols.len() + sx - cols.start) * 3 + c]
            } else {
                0 // torchvision's pad fill
            };
            *d = lut[v as usize];
        }
    }
    out
}

/// The centre crop's offset along one axis. torchvision: `int(round((size - crop) / 2.0))`
/// with Python's round-half-to-even, or minus the left/top padding `(crop - size) // 2`.
/// Hugging Face: `(size - crop) // 2` in both cases (its padding puts the extra row on top).
fn crop_start(size: u32, crop: u32, rounding: CropRounding) -> i64 {
    if rounding == CropRounding::Floor {
        return (size as i64 - crop as i64).div_euclid(2);
    }
    if crop > size {
        -(((crop - size) / 2) as i64)
    } else {
        ((size - crop) as f64 / 2.0).round_ties_even() as i64
    }
}

/// Resizes the whole image with Pillow's algorithm (`img.resize((w, h), filter)`).
pub fn resize_pil(img: &RgbImage, out_w: u32, out_h: u32, interp: Interp) -> RgbImage {
    let (w, h) = (out_w as usize, out_h as usize);
    let px = resize_region(img, w, h, interp, 0..h, 0..w);
    // Cannot fail: the buffer has exactly out_w * out_h * 3 bytes.
    RgbImage::from_raw(out_w, out_h, px).unwrap_or_else(|| RgbImage::new(out_w, out_h))
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Per output index: the first input index and the fixed-point weights.
type Taps = Vec<(usize, Vec<i32>)>;

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for output indices `range` of an
/// axis resized from `in_size` to `out_size`.
fn taps(in_size: usize, out_size: usize, interp: Interp, range: Range<usize>) -> Taps {
    // Pillow passes the box as floats (0, in_size) and computes (in1 - in0) in f32.
    let scale = (in_size as f32 - 0.0f32) as f64 / out_size as f64;
    let filterscale = if scale < 1.0 { 1.0 } else { scale };
    let (support, filter): (f64, fn(f64) -> f64) = match interp {
        Interp::Bilinear => (1.0, bilinear_filter),
        Interp::Bicubic => (2.0, bicubic_filter),
    };
    let support = support * filterscale;
    let ss = 1.0 / filterscale;
    let one = (1i64 << PRECISION_BITS) as f64;
    range
        .map(|xx| {
            let center = 0.0f64 + (xx as f64 + 0.5) * scale;
            // `(int)` in C truncates toward zero, as `as` does.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
            let w: Vec<f64> = (xmin..xmax)
                .map(|x| filter((x as f64 - center + 0.5) * ss))
                .collect();
            // Sequential sum, in Pillow's order.
            let ww = w.iter().fold(0.0f64, |a, &v| a + v);
            let k = w
                .into_iter()
                .map(|v| if ww != 0.0 { v / ww } else { v })
                // Round half away from zero, then truncate, as normalize_coeffs_8bpc does.
                .map(|v| {
                    if v < 0.0 {
                        (-0.5 + v * one) as i32
                    } else {
                        (0.5 + v * one) as i32
                    }
                })
                .collect();
            (xmin as usize, k)
        })
        .collect()
}

fn bilinear_filter(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

fn bicubic_filter(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// One output pixel of one pass: `k.len()` RGB samples `stride` bytes apart from `base`, with
/// Pillow's rounding bias up front and `clip8` (shift, clamp) at the end.
#[inline]
fn convolve(src: &[u8], base: usize, stride: usize, k: &[i32], out: &mut [u8]) {
    let mut ss = [1i32 << (PRECISION_BITS - 1); 3];
    for (t, &kt) in k.iter().enumerate() {
        let p = base + t * stride;
        for c in 0..3 {
            // Wrapping mirrors C's int arithmetic; normalised weights cannot overflow anyway.
            ss[c] = ss[c].wrapping_add((src[p + c] as i32).wrapping_mul(kt));
        }
    }
    for c in 0..3 {
        out[c] = (ss[c] >> PRECISION_BITS).clamp(0, 255) as u8;
    }
}

/// Input indices a table reads. Bounds grow monotonically; min/max keeps this obviously safe.
fn span(t: &Taps) -> Range<usize> {
    let lo = t.iter().map(|(m, _)| *m).min().unwrap_or(0);
    lo..t
        .iter()
        .map(|(m, k)| m + k.len())
        .max()
        .unwrap_or(0)
        .max(lo)
}

/// Horizontal pass over `rows` of a packed image `stride` pixels wide whose first column is
/// input column `col0`. Output: `rows.len()` rows of `t.len()` pixels.
fn hpass(src: &[u8], stride: usize, rows: Range<usize>, t: &Taps, col0: usize) -> Vec<u8> {
    let mut out = vec![0u8; rows.len() * t.len() * 3];
    for (i, y) in rows.enumerate() {
        for (j, (xmin, k)) in t.iter().enumerate() {
            let o = (i * t.len() + j) * 3;
            convolve(
                src,
                (y * stride + xmin - col0) * 3,
                3,
                k,
                &mut out[o..o + 3],
            );
        }
    }
    out
}

/// Vertical pass over columns `cols` of a packed image `stride` pixels wide whose first row is
/// input row `row0`. Output: `t.len()` rows of `cols.len()` pixels.
fn vpass(src: &[u8], stride: usize, cols: Range<usize>, t: &Taps, row0: usize) -> Vec<u8> {
    let mut out = vec![0u8; t.len() * cols.len() * 3];
    for (i, (ymin, k)) in t.iter().enumerate() {
        for (j, x) in cols.clone().enumerate() {
            let o = (i * cols.len() + j) * 3;
            convolve(
                src,
                ((ymin - row0) * stride + x) * 3,
                stride * 3,
                k,
                &mut out[o..o + 3],
            );
        }
    }
    out
}

fn copy_block(src: &[u8], stride: usize, rows: Range<usize>, cols: Range<usize>) -> Vec<u8> {
    rows.flat_map(|y| &src[(y * stride + cols.start) * 3..(y * stride + cols.end) * 3])
        .copied()
        .collect()
}

/// Output rows `rows` and columns `cols` (inside `out_w x out_h`) of `img` resized with
/// Pillow's `ImagingResampleInner`, as packed RGB bytes.
fn resize_region(
    img: &RgbImage,
    out_w: usize,
    out_h: usize,
    interp: Interp,
    rows: Range<usize>,
    cols: Range<usize>,
) -> Vec<u8> {
    let (in_w, in_h) = (img.width() as usize, img.height() as usize);
    let src = img.as_raw();
    if rows.is_empty() || cols.is_empty() || in_w == 0 || in_h == 0 {
        return vec![0u8; rows.len() * cols.len() * 3];
    }
    // Pillow skips a pass whose size does not change (and copies when neither does).
    let htab = (out_w != in_w).then(|| taps(in_w, out_w, interp, cols.clone()));
    let vtab = (out_h != in_h).then(|| taps(in_h, out_h, interp, rows.clone()));
    // Pillow 13 runs the vertical pass first "if height is being scaled down more than
    // twice the amount the width is"; the u8 rounding between passes makes the order visible.
    let (dh, dw) = (in_h as i64 - out_h as i64, in_w as i64 - out_w as i64);
    if !(dh > 0 && dh > dw * 2) {
        let src_rows = vtab.as_ref().map_or(rows.clone(), span);
        let tmp = match &htab {
            Some(t) => hpass(src, in_w, src_rows.clone(), t, 0),
            None => copy_block(src, in_w, src_rows.clone(), cols.clone()),
        };
        match &vtab {
            Some(t) => vpass(&tmp, cols.len(), 0..cols.len(), t, src_rows.start),
            None => tmp,
        }
    } else {
        let src_cols = htab.as_ref().map_or(cols.clone(), span);
        let tmp = match &vtab {
            Some(t) => vpass(src, in_w, src_cols.clone(), t, 0),
            None => copy_block(src, in_w, rows.clone(), src_cols.clone()),
        };
        match &htab {
            Some(t) => hpass(&tmp, src_cols.len(), 0..rows.len(), t, src_cols.start),
            None => tmp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npy;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/preprocess")
            .join(name)
    }

    fn png(name: &str) -> RgbImage {
        load_image(&fixture(name)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The page decodes bytes, the CLI reads files: one decoder, the same tensor.
    #[test]
    fn bytes_and_files_give_the_same_tensor() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/3_0045.png");
        let bytes = std::fs::read(&path).unwrap();
        let p = Preprocess::torchvision_v1();
        let options = ImageOptions::default();
        let from_file = load_and_preprocess_with(&path, &p, &options).unwrap();
        let from_bytes = decode_and_preprocess(&bytes, Path::new("3_0045.png"), &p, &options);
        assert_eq!(from_bytes.unwrap(), from_file);
        let empty = decode_and_preprocess(&[], Path::new("empty.png"), &p, &options);
        assert!(empty.unwrap_err().to_string().contains("empty.png"));
    }

    /// The tensor torchvision derives from an 8-bit crop (ToTensor + Normalize in f32).
    fn normalize(img: &RgbImage, p: &Preprocess) -> Vec<f32> {
        let norm = |c: usize| {
            img.pixels()
                .map(move |px| (px.0[c] as f32 / 255.0 - p.mean[c]) / p.std[c])
        };
        (0..3).flat_map(norm).collect()
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// Checks `preprocess(src)` against the crop PNG the fixture script saved.
    fn check_case(src: &str, expected_png: &str, p: &Preprocess) {
        let want = png(expected_png);
        assert_eq!(want.dimensions(), (p.crop_w, p.crop_h), "{expected_png}");
        let d = max_abs_diff(&preprocess(&png(src), p), &normalize(&want, p));
        assert!(d <= 1e-5, "{src} vs {expected_png}: max abs diff {d}");
    }

    #[test]
    fn v1_tensor_matches_torchvision_bit_for_bit() {
        let p = Preprocess::torchvision_v1();
        let want = npy::read_f32(&fixture("rgb_301x257.v1.npy")).unwrap();
        assert_eq!(want.shape, vec![3, 224, 224]);
        let got = load_and_preprocess(&fixture("rgb_301x257.png"), &p).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let d = max_abs_diff(&got, &want.data);
        assert!(bits(&got) == bits(&want.data), "max abs diff {d}");
        // The crop PNG encodes the same tensor, which the other cases rely on.
        assert!(bits(&normalize(&png("rgb_301x257.v1.png"), &p)) == bits(&want.data));
    }

    #[test]
    fn v1_matches_torchvision_on_each_image_kind() {
        let p = Preprocess::torchvision_v1();
        for name in [
            "gray_180x240",
            "rgba_250x260",
            "wide_300x20",
            "short256_256x260",
            "tall_260x530",
        ] {
            check_case(&format!("{name}.png"), &format!("{name}.v1.png"), &p);
        }
        // Resampling PIL's own JPEG decode is exact; the decoders are compared below.
        check_case("photo_200x311.pil.png", "photo_200x311.pil.v1.png", &p);
    }

    #[test]
    fn bicubic_matches_torchvision() {
        let p = Preprocess {
            interp: Interp::Bicubic,
            ..Preprocess::torchvision_v1()
        };
        check_case("rgb_301x257.png", "rgb_301x257.bicubic.png", &p);
    }

    #[test]
    fn padding_non_square_crop_and_half_to_even_offset() {
        let v1 = Preprocess::torchvision_v1();
        let p = Preprocess {
            resize: 199,
            crop_h: 224,
            crop_w: 180,
            ..v1
        };
        assert_eq!(p.resized_size(301, 257), (233, 199));
        let even = CropRounding::HalfToEven;
        assert_eq!(crop_start(233, 180, even), 26, "26.5 rounds to even");
        assert_eq!(crop_start(235, 180, even), 28, "27.5 rounds to even");
        assert_eq!(crop_start(199, 224, even), -12, "pads 12 above, 13 below");
        // Hugging Face floors: 27.5 → 27, and pads 13 above.
        let floor = CropRounding::Floor;
        assert_eq!(crop_start(235, 180, floor), 27);
        assert_eq!(crop_start(233, 180, floor), 26);
        assert_eq!(crop_start(199, 224, floor), -13);
        check_case("rgb_301x257.png", "rgb_301x257.r199c224x180.png", &p);
        // Resize(256): long side int(256 * long / short).
        assert_eq!(v1.resized_size(301, 257), (299, 256));
        assert_eq!(v1.resized_size(200, 311), (256, 398));
        assert_eq!(v1.resized_size(300, 20), (3840, 256));
        assert_eq!(v1.resized_size(256, 256), (256, 256));
    }

    #[test]
    fn whole_image_resize_matches_pil() {
        let src = png("resize_97x61.png");
        let horizontal_first = [(40, 25), (150, 61), (200, 131), (13, 7), (1, 1), (2, 300)];
        let vertical_first = [(97, 30), (300, 2), (96, 20), (194, 30)];
        for (w, h) in horizontal_first.into_iter().chain(vertical_first) {
            for (name, interp) in [("bilinear", Interp::Bilinear), ("bicubic", Interp::Bicubic)] {
                let want = png(&format!("resize_97x61.{name}.{w}x{h}.png"));
                let got = resize_pil(&src, w, h, interp);
                let bad = got
                    .pixels()
                    .zip(want.pixels())
                    .filter(|(a, b)| a != b)
                    .count();
                assert_eq!(bad, 0, "{name} {w}x{h}: {bad} pixels differ");
            }
        }
        assert_eq!(
            resize_pil(&src, 97, 61, Interp::Bicubic),
            src,
            "same size: a copy"
        );
    }

    #[test]
    fn conversions_match_pil() {
        for name in ["palette_64x48", "rgb16_40x30", "gray16_40x30"] {
            let same = png(&format!("{name}.png")) == png(&format!("{name}.pil.png"));
            assert!(
                same,
                "{name}: decoded pixels differ from PIL's convert('RGB')"
            );
        }
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let p = Preprocess::torchvision_v1();
        let black = (0.0 - p.mean[0]) / p.std[0];
        // Empty image: all padding. 1x1 image: upscaled to a flat colour.
        assert!(preprocess(&RgbImage::new(0, 0), &p)
            .iter()
            .take(224 * 224)
            .all(|&v| v == black));
        let one = RgbImage::from_pixel(1, 1, image::Rgb([255, 0, 128]));
        assert_eq!(preprocess(&one, &p)[0], (1.0 - p.mean[0]) / p.std[0]);
        // Invalid parameters: validate rejects them, preprocess still returns.
        let big = Preprocess {
            crop_h: 1 << 14,
            crop_w: 1 << 14,
            ..p
        };
        let zero_std = Preprocess {
            std: [1.0, 0.0, 1.0],
            ..p
        };
        for bad in [
            Preprocess { resize: 0, ..p },
            Preprocess { crop_w: 0, ..p },
            zero_std,
            big,
        ] {
            assert!(matches!(bad.validate(), Err(Error::InputShape(_))));
        }
        let img = RgbImage::new(5, 5);
        assert_eq!(
            preprocess(&img, &Preprocess { resize: 0, ..p }).len(),
            p.output_len()
        );
        assert!(preprocess(&img, &Preprocess { crop_w: 0, ..p }).is_empty());
        // A huge upscale (to 256 x 256000) only computes the cropped window.
        let tall = RgbImage::from_pixel(1, 1000, image::Rgb([10, 20, 30]));
        let want = (10.0 / 255.0 - p.mean[0]) / p.std[0];
        assert!(preprocess(&tall, &p)[..224 * 224]
            .iter()
            .all(|&v| v == want));
    }

    #[test]
    fn load_errors_name_the_file() {
        let missing = fixture("does-not-exist.png");
        assert!(matches!(load_image(&missing), Err(Error::Io { .. })));
        let dir = std::env::temp_dir().join(format!("pre-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.png");
        std::fs::write(&junk, b"\x89PNG\r\n\x1a\nthis is not a png").unwrap();
        match load_image(&junk) {
            Err(Error::Image { path, .. }) => assert_eq!(path, junk),
            other => panic!("expected an image error, got {other:?}"),
        }
        let not_image = fixture("rgb_301x257.v1.npy");
        assert!(matches!(load_image(&not_image), Err(Error::Image { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// JPEG: the `image` crate decodes with zune-jpeg, Pillow with libjpeg-turbo, and the
    /// colour output differs slightly, so this case has a tolerance instead of exactness.
    #[test]
    fn jpeg_decoding_vs_pil() {
        for name in ["photo_200x311", "photo444_96x64"] {
            let (got, want) = (png(&format!("{name}.jpg")), png(&format!("{name}.pil.png")));
            assert_eq!(got.dimensions(), want.dimensions());
            let diff = |(&a, &b): (&u8, &u8)| a.abs_diff(b);
            let max = got
                .as_raw()
                .iter()
                .zip(want.as_raw())
                .map(diff)
                .max()
                .unwrap_or(0);
            let n = got
                .as_raw()
                .iter()
                .zip(want.as_raw())
                .filter(|&(a, b)| a != b)
                .count();
            eprintln!(
                "{name}: max diff {max}, {n} of {} bytes differ",
                got.as_raw().len()
            );
            // Measured with image 0.25.10 / zune-jpeg 0.5.15 against Pillow 13 / libjpeg-turbo:
            // 4:2:0 max 4 (a quarter of the bytes off), 4:4:4 max 2 (about 1%).
            assert!(max <= 8, "{name}: decoder difference grew to {max}");
        }
        // End to end through the V1 transform the resize averages the difference out, mostly.
        let p = Preprocess::torchvision_v1();
        let got = load_and_preprocess(&fixture("photo_200x311.jpg"), &p).unwrap();
        let want = normalize(&png("photo_200x311.pil.v1.png"), &p);
        let d = max_abs_diff(&got, &want);
        let mean = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / got.len() as f32;
        eprintln!("photo_200x311.jpg end to end: max abs diff {d}, mean {mean}");
        assert!(d <= 0.1 && mean <= 0.01, "max {d}, mean {mean}");
    }
}
