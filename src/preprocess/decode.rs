//! Image files to 8-bit RGB, as PIL decodes them, with the defences a user-facing decoder
//! needs: only regular files, a pixel cap checked from the header before decoding
//! (decompression bombs), truncated JPEGs refused, and EXIF orientation applied unless asked
//! to match PIL exactly.

use std::path::Path;

use image::{DynamicImage, ImageDecoder, RgbImage};

use crate::error::{Error, Result};

/// Pillow refuses images over twice its `MAX_IMAGE_PIXELS` (89,478,485) as decompression
/// bombs; the same cap means every image PIL opens opens here too.
pub const MAX_IMAGE_PIXELS: u64 = 2 * 89_478_485;

/// How image files are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageOptions {
    /// Turn the image upright as its EXIF orientation says, as photo viewers do. PIL's
    /// `Image.open` (and so torchvision) ignores the tag; `false` matches them bit for bit.
    pub exif_orientation: bool,
    /// Images with more pixels are refused from their header, before anything is decoded.
    pub max_pixels: u64,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions {
            exif_orientation: true,
            max_pixels: MAX_IMAGE_PIXELS,
        }
    }
}

impl ImageOptions {
    /// Exactly what `PIL.Image.open(path).convert("RGB")` gives: EXIF orientation ignored.
    pub fn torchvision() -> Self {
        ImageOptions {
            exif_orientation: false,
            ..Self::default()
        }
    }
}

/// Decodes an image file to 8-bit RGB with [`ImageOptions::default`]; see [`load_image_with`].
pub fn load_image(path: &Path) -> Result<RgbImage> {
    load_image_with(path, &ImageOptions::default())
}

/// Decodes an image file to 8-bit RGB the way `PIL.Image.open(path).convert("RGB")` does:
/// alpha dropped (not blended), grey replicated, palettes expanded, CMYK converted by the
/// JPEG decoder. 16-bit files follow Pillow too: RGB(A) and grey+alpha keep the high byte;
/// plain 16-bit grey opens as mode `I;16`, whose RGB conversion clamps each value to 255 (so
/// most pixels turn white, exactly as in the PyTorch reference). Then, if
/// `options.exif_orientation`, the EXIF orientation is applied.
///
/// The pixel count is checked against `options.max_pixels` from the header, before the
/// pixels are decoded, so a small file claiming a huge image costs nothing.
pub fn load_image_with(path: &Path, options: &ImageOptions) -> Result<RgbImage> {
    let bytes = crate::fsutil::read_regular(path)?;
    decode_image_with(&bytes, path, options)
}

/// [`load_image_with`] on an image file's bytes already in memory (an upload, a Python
/// `bytes`); `path` names them in errors.
pub fn decode_image_with(bytes: &[u8], path: &Path, options: &ImageOptions) -> Result<RgbImage> {
    let img_err = |msg: String| Error::Image {
        path: path.to_path_buf(),
        msg,
    };
    // Decoders refuse a header with a zero width or height before `dimensions()` can show
    // it, some in words that suggest the opposite ("dimensions (0x0) are too large").
    let invalid_size = || {
        img_err(
            "image size is invalid: empty (a zero width or height), or more than its decoder \
             supports"
                .into(),
        )
    };
    let decode_err = |e: image::ImageError| match e {
        // Decoders read the file through `io`, so its early end means truncated data.
        image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            img_err("truncated: the image data ends early".into())
        }
        image::ImageError::IoError(io) => Error::io(path, io),
        image::ImageError::Limits(l)
            if l.kind() == image::error::LimitErrorKind::DimensionError =>
        {
            invalid_size()
        }
        other if other.to_string().to_lowercase().contains("dimension") => invalid_size(),
        image::ImageError::Unsupported(u) => {
            img_err(format!("{u} (supported: JPEG, PNG, WebP, BMP)"))
        }
        other => img_err(other.to_string()),
    };
    if bytes.is_empty() {
        return Err(img_err("the file is empty".into()));
    }
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    // zune-jpeg decodes a truncated JPEG without complaint, filling in the missing rows;
    // Pillow refuses it ("image file is truncated"), and so does this.
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_has_end(bytes) {
        return Err(img_err(
            "truncated: the JPEG data ends before its end-of-image marker".into(),
        ));
    }
    // The decoder's own allocation cap, above what `max_pixels` allows at 8 bytes a pixel
    // (16-bit RGBA), so the pixel check below is the one that speaks.
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(options.max_pixels.saturating_mul(8).saturating_add(1 << 26));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(decode_err)?;
    let (w, h) = decoder.dimensions();
    let pixels = w as u64 * h as u64;
    if pixels > options.max_pixels {
        return Err(img_err(format!(
            "{w}x{h} is {pixels} pixels, over the limit of {} (a decompression bomb?)",
            options.max_pixels
        )));
    }
    if pixels == 0 {
        return Err(img_err(format!("image is empty ({w}x{h})")));
    }
    let orientation = if options.exif_orientation {
        // A malformed EXIF block is no reason to refuse the pixels: treat it as upright.
        decoder
            .orientation()
            .unwrap_or(image::metadata::Orientation::NoTransforms)
    } else {
        image::metadata::Orientation::NoTransforms
    };
    let mut dynimg = DynamicImage::from_decoder(decoder).map_err(decode_err)?;
    dynimg.apply_orientation(orientation);
    Ok(to_rgb8_like_pil(dynimg))
}

/// Whether a JPEG has an end-of-image marker (FF D9) after its first start-of-scan (FF DA).
/// Inside entropy-coded data a 0xFF byte is always followed by 0x00 or a restart marker, so
/// FF D9 there can only be the real end; a complete file always has it.
fn jpeg_has_end(bytes: &[u8]) -> bool {
    let marker = |m: u8| move |w: &[u8]| w == [0xFF, m];
    bytes
        .windows(2)
        .position(marker(0xDA))
        .is_some_and(|sos| bytes[sos..].windows(2).any(marker(0xD9)))
}

fn to_rgb8_like_pil(img: DynamicImage) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let map = |f: &dyn Fn(u32, u32) -> [u8; 3]| RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)));
    let hi = |v: u16| (v >> 8) as u8;
    match img {
        // image's own conversion rescales 16-bit values with rounding; Pillow truncates.
        DynamicImage::ImageRgb16(im) => map(&|x, y| im.get_pixel(x, y).0.map(hi)),
        DynamicImage::ImageRgba16(im) => map(&|x, y| {
            let p = im.get_pixel(x, y).0;
            [hi(p[0]), hi(p[1]), hi(p[2])]
        }),
        DynamicImage::ImageLumaA16(im) => map(&|x, y| [hi(im.get_pixel(x, y).0[0]); 3]),
        DynamicImage::ImageLuma16(im) => map(&|x, y| [im.get_pixel(x, y).0[0].min(255) as u8; 3]),
        // 8-bit: image's conversion drops alpha and replicates grey, as Pillow does.
        other => other.into_rgb8(),
    }
}
