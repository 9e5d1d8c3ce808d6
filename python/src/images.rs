//! What `Engine.classify` accepts as an image — a path, the bytes of an image file, a
//! `PIL.Image` or an `(H, W, 3)` uint8 array — read under the GIL, decoded without it.

use std::path::{Path, PathBuf};

use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyString, PyTuple};
use resnet::preprocess::{
    decode_image, load_and_preprocess_with, load_image_with, preprocess, ImageOptions, Preprocess,
};

use crate::errors::bad_input;

/// Where an image's pixels come from.
pub enum Source {
    Path(PathBuf),
    /// An image file's bytes (JPEG, PNG, WebP, BMP).
    Encoded(Vec<u8>),
    /// Pixels already decoded (a `PIL.Image`, an array).
    Pixels(image::RgbImage),
}

/// One image to classify and the name its prediction carries.
pub struct Item {
    pub name: String,
    pub source: Source,
}

impl Item {
    /// The image's pixels, decoded as the CLI decodes files (EXIF orientation applied).
    pub fn decode(&self, options: &ImageOptions) -> resnet::Result<image::RgbImage> {
        match &self.source {
            Source::Path(path) => load_image_with(path, options),
            Source::Encoded(bytes) => decode_image(bytes, Path::new(&self.name), options),
            Source::Pixels(img) => Ok(img.clone()),
        }
    }

    /// The network's input for this image: decoded as the CLI decodes files (EXIF orientation
    /// applied), then resized, cropped and normalised by `pre`.
    pub fn preprocess(&self, pre: &Preprocess, options: &ImageOptions) -> resnet::Result<Vec<f32>> {
        match &self.source {
            Source::Path(path) => load_and_preprocess_with(path, pre, options),
            Source::Encoded(bytes) => {
                pre.validate()?;
                let img = decode_image(bytes, Path::new(&self.name), options)?;
                Ok(preprocess(&img, pre))
            }
            Source::Pixels(img) => {
                pre.validate()?;
                Ok(preprocess(img, pre))
            }
        }
    }
}

/// A list (or any iterable) of images, or a single one.
pub fn read_images(images: &Bound<'_, PyAny>) -> PyResult<Vec<Item>> {
    if is_single(images)? {
        return Ok(vec![read_one(images, 0)?]);
    }
    let iter = images.try_iter().map_err(|_| {
        bad_input(format!(
            "images must be a list of paths, bytes, PIL images or (H, W, 3) uint8 arrays, not {}",
            type_name(images)
        ))
    })?;
    iter.enumerate()
        .map(|(i, item)| read_one(&item?, i))
        .collect()
}

/// Whether `obj` is one image rather than a collection of them (a string and an array are
/// iterable too).
fn is_single(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(obj.is_instance_of::<PyString>()
        || obj.is_instance_of::<PyBytes>()
        || obj.is_instance_of::<PyByteArray>()
        || obj.hasattr("__fspath__")?
        || is_pil_image(obj)?
        || (is_ndarray(obj)? && obj.getattr("ndim")?.extract::<usize>()? == 3))
}

fn read_one(obj: &Bound<'_, PyAny>, i: usize) -> PyResult<Item> {
    let unnamed = || format!("<image {i}>");
    if let Ok(bytes) = obj.cast::<PyBytes>() {
        return Ok(Item {
            name: unnamed(),
            source: Source::Encoded(bytes.as_bytes().to_vec()),
        });
    }
    if let Ok(bytes) = obj.cast::<PyByteArray>() {
        return Ok(Item {
            name: unnamed(),
            source: Source::Encoded(bytes.to_vec()),
        });
    }
    if obj.is_instance_of::<PyString>() || obj.hasattr("__fspath__")? {
        let path: PathBuf = obj.extract()?;
        return Ok(Item {
            name: path.display().to_string(),
            source: Source::Path(path),
        });
    }
    if is_pil_image(obj)? {
        // Image.open keeps the file's name; an image made in memory has none.
        let filename: Option<String> = obj.getattr("filename").ok().and_then(|f| f.extract().ok());
        return Ok(Item {
            name: filename.filter(|f| !f.is_empty()).unwrap_or_else(unnamed),
            source: Source::Pixels(pil_pixels(obj)?),
        });
    }
    if is_ndarray(obj)? {
        return Ok(Item {
            name: unnamed(),
            source: Source::Pixels(array_pixels(obj, i)?),
        });
    }
    Err(bad_input(format!(
        "image {i}: expected a path, bytes, a PIL.Image or an (H, W, 3) uint8 array, not {}",
        type_name(obj)
    )))
}

/// `PIL.Image.Image`, without importing PIL (it is optional): its class is named `Image` in
/// a module under `PIL`.
fn is_pil_image(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    let mro = obj.get_type().getattr("__mro__")?;
    for class in mro.cast::<PyTuple>()?.iter() {
        let module: String = class.getattr("__module__")?.extract()?;
        let name: String = class.getattr("__name__")?.extract()?;
        if module.starts_with("PIL.") && name == "Image" {
            return Ok(true);
        }
    }
    Ok(false)
}

fn is_ndarray(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    let ndarray = obj.py().import("numpy")?.getattr("ndarray")?;
    obj.is_instance(&ndarray)
}

/// A PIL image's pixels after `convert("RGB")`, which is what torchvision feeds its models.
fn pil_pixels(img: &Bound<'_, PyAny>) -> PyResult<image::RgbImage> {
    let rgb = img.call_method1("convert", ("RGB",))?;
    let (w, h): (u32, u32) = rgb.getattr("size")?.extract()?;
    let raw = rgb.call_method0("tobytes")?;
    let raw = raw.cast::<PyBytes>()?.as_bytes().to_vec();
    image::RgbImage::from_raw(w, h, raw)
        .ok_or_else(|| bad_input(format!("a {w}x{h} PIL image gave too few bytes")))
}

/// An `(H, W, 3)` uint8 array's pixels, in any memory order.
fn array_pixels(array: &Bound<'_, PyAny>, i: usize) -> PyResult<image::RgbImage> {
    let dtype: String = array.getattr("dtype")?.getattr("name")?.extract()?;
    let shape: Vec<usize> = array.getattr("shape")?.extract()?;
    let (h, w) = match shape[..] {
        [h, w, 3] if dtype == "uint8" && h > 0 && w > 0 => (h, w),
        _ => {
            return Err(bad_input(format!(
                "image {i}: an array of shape {shape:?} and dtype {dtype}; expected (H, W, 3) \
                 uint8 RGB with H, W > 0"
            )))
        }
    };
    let too_big = || bad_input(format!("image {i}: {w}x{h} is too large"));
    let (w, h) = (
        u32::try_from(w).map_err(|_| too_big())?,
        u32::try_from(h).map_err(|_| too_big())?,
    );
    let np = array.py().import("numpy")?;
    let raw = np
        .call_method1("ascontiguousarray", (array,))?
        .call_method0("tobytes")?;
    let raw = raw.cast::<PyBytes>()?.as_bytes().to_vec();
    image::RgbImage::from_raw(w, h, raw).ok_or_else(too_big)
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "an unknown type".into(), |n| n.to_string())
}
