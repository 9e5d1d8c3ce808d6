//! Named preprocessing presets, one per source of weights, and the `--preprocess` syntax:
//! `NAME`, `key=value,…`, or `NAME,key=value,…` (a preset with changes).
//!
//! | name | resize (shorter side) | crop | interpolation | crop offset |
//! |---|---|---|---|---|
//! | `torchvision` (`tv1`) | 256 | 224 | bilinear | round half to even |
//! | `torchvision-v2` (`tv2`) | 232 | 224 | bilinear | round half to even |
//! | `timm` | ⌊224 / 0.875⌋ = 256 | 224 | bicubic | round half to even |
//! | `hf` (`transformers`) | ⌊224 / 0.875⌋ = 256 | 224 | bicubic | floor |
//!
//! All normalise with the ImageNet mean and std. Keys: `resize=N`, `crop=N` or `crop=HxW`,
//! `crop_pct=F` (resize = ⌊min(crop) / F⌋, timm's rule), `interp=bilinear|bicubic`,
//! `mean=R:G:B`, `std=R:G:B`, `rounding=even|floor`.

use super::{CropRounding, Interp, Preprocess};

pub const NAMES: [&str; 4] = ["torchvision", "torchvision-v2", "timm", "hf"];

/// torchvision `IMAGENET1K_V1`: Resize(256), CenterCrop(224), bilinear.
pub fn torchvision_v1() -> Preprocess {
    Preprocess::torchvision_v1()
}

/// torchvision `IMAGENET1K_V2` (and resnext101_64x4d's V1): Resize(232), CenterCrop(224).
pub fn torchvision_v2() -> Preprocess {
    Preprocess {
        resize: 232,
        ..Preprocess::torchvision_v1()
    }
}

/// timm's eval transform at 224 with `crop_pct` and bicubic resampling (torchvision's
/// Resize and CenterCrop underneath, so offsets round half to even).
pub fn timm(crop_pct: f64) -> Result<Preprocess, String> {
    if !(crop_pct > 0.0 && crop_pct <= 4.0) {
        return Err(format!("crop_pct {crop_pct} must be in (0, 4]"));
    }
    Ok(Preprocess {
        resize: (224.0 / crop_pct).floor() as u32,
        interp: Interp::Bicubic,
        ..Preprocess::torchvision_v1()
    })
}

/// transformers' ResNet image processor: shorter side `int(224 / 0.875)` = 256, bicubic,
/// centre crop 224 with floor offsets.
pub fn hugging_face() -> Preprocess {
    Preprocess {
        interp: Interp::Bicubic,
        crop_rounding: CropRounding::Floor,
        ..Preprocess::torchvision_v1()
    }
}

/// A preset by name (the aliases in the module docs).
pub fn by_name(name: &str) -> Option<Preprocess> {
    match name.to_ascii_lowercase().as_str() {
        "torchvision" | "torchvision-v1" | "tv1" | "v1" => Some(torchvision_v1()),
        "torchvision-v2" | "tv2" | "v2" => Some(torchvision_v2()),
        "timm" => timm(0.875).ok(),
        "hf" | "huggingface" | "hugging-face" | "transformers" => Some(hugging_face()),
        _ => None,
    }
}

fn triple(value: &str) -> Result<[f32; 3], String> {
    let parts: Vec<f32> = value
        .split([':', '/'])
        .map(|x| x.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("`{value}` is not three numbers like 0.5:0.5:0.5"))?;
    match parts[..] {
        [r, g, b] => Ok([r, g, b]),
        _ => Err(format!("`{value}` is not three numbers like 0.5:0.5:0.5")),
    }
}

/// Parses a `--preprocess` value on top of `base` (the checkpoint's own default), and
/// validates the result.
pub fn parse(spec: &str, base: Preprocess) -> Result<Preprocess, String> {
    let mut p = base;
    let mut crop_pct = None;
    let mut resize_given = false;
    for (i, item) in spec.split(',').map(str::trim).enumerate() {
        let Some((key, value)) = item.split_once('=') else {
            if i == 0 {
                p = by_name(item).ok_or_else(|| {
                    format!("unknown preset `{item}` (known: {})", NAMES.join(", "))
                })?;
                continue;
            }
            return Err(format!(
                "`{item}` is not key=value (a preset name goes first)"
            ));
        };
        let (key, value) = (key.trim(), value.trim());
        let size = |v: &str| {
            v.parse::<u32>()
                .ok()
                .filter(|&x| x > 0 && x <= 1 << 14)
                .ok_or_else(|| format!("`{key}={v}`: expected a size between 1 and 16384"))
        };
        match key {
            "resize" => {
                p.resize = size(value)?;
                resize_given = true;
            }
            "crop" => {
                let (h, w) = value.split_once(['x', 'X']).unwrap_or((value, value));
                p.crop_h = size(h)?;
                p.crop_w = size(w)?;
            }
            "crop_pct" => {
                let f: f64 = value
                    .parse()
                    .map_err(|_| format!("`crop_pct={value}` is not a number"))?;
                timm(f)?;
                crop_pct = Some(f);
            }
            "interp" | "interpolation" => {
                p.interp = match value {
                    "bilinear" => Interp::Bilinear,
                    "bicubic" => Interp::Bicubic,
                    _ => return Err(format!("interp `{value}`: use bilinear or bicubic")),
                }
            }
            "mean" => p.mean = triple(value)?,
            "std" => p.std = triple(value)?,
            "rounding" => {
                p.crop_rounding = match value {
                    "even" | "half-even" | "torchvision" => CropRounding::HalfToEven,
                    "floor" | "hf" => CropRounding::Floor,
                    _ => return Err(format!("rounding `{value}`: use even or floor")),
                }
            }
            _ => {
                return Err(format!(
                    "unknown key `{key}` (resize, crop, crop_pct, interp, mean, std, rounding)"
                ))
            }
        }
    }
    if let Some(f) = crop_pct {
        if resize_given {
            return Err("give either resize or crop_pct, not both".into());
        }
        p.resize = (p.crop_h.min(p.crop_w) as f64 / f).floor() as u32;
    }
    p.validate().map_err(|e| e.to_string())?;
    Ok(p)
}

/// One line describing `p`, for logs and `resnet info`.
pub fn describe(p: &Preprocess) -> String {
    format!(
        "resize {} → crop {}x{}, {}, {} offsets, mean {:?}, std {:?}",
        p.resize,
        p.crop_h,
        p.crop_w,
        match p.interp {
            Interp::Bilinear => "bilinear",
            Interp::Bicubic => "bicubic",
        },
        match p.crop_rounding {
            CropRounding::HalfToEven => "half-to-even",
            CropRounding::Floor => "floor",
        },
        p.mean,
        p.std
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_by_name() {
        assert_eq!(by_name("tv2").unwrap().resize, 232);
        let t = by_name("timm").unwrap();
        assert_eq!((t.resize, t.interp), (256, Interp::Bicubic));
        let hf = by_name("hf").unwrap();
        assert_eq!((hf.resize, hf.crop_rounding), (256, CropRounding::Floor));
        assert_eq!(timm(0.95).unwrap().resize, 235);
        assert_eq!(timm(0.965).unwrap().resize, 232);
        assert!(by_name("caffe").is_none());
    }

    #[test]
    fn spec_strings() {
        let base = torchvision_v1();
        let p = parse("timm,crop_pct=0.95", base).unwrap();
        assert_eq!((p.resize, p.interp), (235, Interp::Bicubic));
        let p = parse(
            "resize=300,crop=288x256,interp=bicubic,rounding=floor",
            base,
        )
        .unwrap();
        assert_eq!((p.resize, p.crop_h, p.crop_w), (300, 288, 256));
        assert_eq!(p.crop_rounding, CropRounding::Floor);
        let p = parse("hf,mean=0.5:0.5:0.5,std=0.5/0.5/0.5", base).unwrap();
        assert_eq!((p.mean, p.std), ([0.5; 3], [0.5; 3]));
        let p = parse("crop=288,crop_pct=1.0", base).unwrap();
        assert_eq!(p.resize, 288);
        for bad in [
            "caffe",
            "resize=0",
            "crop=12x",
            "resize=256,crop_pct=0.9",
            "interp=nearest",
            "std=1:0:1",
            "mean=1:2",
            "colour=red",
            "resize=256,timm",
        ] {
            assert!(parse(bad, base).is_err(), "{bad}");
        }
    }
}
