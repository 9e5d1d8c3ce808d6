//! Bad and unusual inputs: `.npy` tensors through `resnet run`, and image files through the
//! decoder and `resnet classify`. Broken files are made here at run time.

use crate::common;

use std::path::{Path, PathBuf};

use common::{assert_user_error, fixture, resnet, scratch};
use image::{ImageEncoder, Rgb, RgbImage};
use resnet_wgpu::npy::{self, read_f32};
use resnet_wgpu::preprocess::{load_image_with, ImageOptions};
use resnet_wgpu::Error;

// ---------------------------------------------------------------- .npy through the CLI

/// A `.npy` file image with any header and payload (to make dtypes our writer never writes).
fn forge_npy(descr: &str, fortran: bool, shape: &[usize], payload: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let fortran = if fortran { "True" } else { "False" };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(payload);
    out
}

/// `resnet run` on the tiny fixture network.
fn run(input: &Path, output: &Path) -> std::process::Output {
    let weights = fixture("tiny.safetensors");
    resnet(&[
        "run",
        "--weights",
        weights.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ])
}

#[test]
fn bad_tensors_are_refused_before_the_gpu() {
    let dir = scratch("inputs-npy");
    let tiny = read_f32(&fixture("tiny.input.npy")).unwrap();
    let (h, w) = (tiny.shape[2], tiny.shape[3]);
    let f32_bytes = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let mut nan = tiny.data.clone();
    nan[3 * h * w + 7] = f32::NAN; // image 0, channel 1
    let good = npy::to_bytes(&tiny.shape, &tiny.data).unwrap();
    let nan_at = format!("element {}", 3 * h * w + 7);
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "int32.npy",
            forge_npy("<i4", false, &[1, 3, 8, 8], &[0; 4 * 192]),
            vec!["int32.npy", "\"<i4\" is not supported"],
        ),
        (
            "uint8.npy",
            forge_npy("|u1", false, &[1, 3, 8, 8], &[0; 192]),
            vec!["uint8.npy", "not supported"],
        ),
        (
            "bigendian.npy",
            forge_npy(">f4", false, &[1, 3, 2, 2], &[0; 48]),
            vec!["bigendian.npy", "big-endian"],
        ),
        (
            "rank3.npy",
            npy::to_bytes(&[3, 8, 8], &[0.0; 192]).unwrap(),
            vec!["rank3.npy", "(N, 3, H, W)", "[3, 8, 8]"],
        ),
        (
            "four_channels.npy",
            npy::to_bytes(&[1, 4, 8, 8], &[0.0; 256]).unwrap(),
            vec!["four_channels.npy", "3 channels"],
        ),
        (
            "empty_batch.npy",
            npy::to_bytes(&[0, 3, 32, 32], &[]).unwrap(),
            vec!["empty_batch.npy", "empty dimension"],
        ),
        (
            "truncated.npy",
            good[..good.len() - 5].to_vec(),
            vec!["truncated.npy", "truncated"],
        ),
        (
            "fortran.npy",
            forge_npy("<f4", true, &tiny.shape, &f32_bytes(&tiny.data)),
            vec!["fortran.npy", "Fortran order"],
        ),
        (
            "image.npy",
            std::fs::read(fixture("preprocess/gray_180x240.png")).unwrap(),
            vec!["image.npy", "not a valid .npy file"],
        ),
        (
            "nan.npy",
            npy::to_bytes(&tiny.shape, &nan).unwrap(),
            vec!["nan.npy", "NaN/Inf", &nan_at],
        ),
        (
            "huge_f64.npy",
            forge_npy(
                "<f8",
                false,
                &[1, 3, 1, 1],
                &[1.0f64, 1e300, 0.0]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect::<Vec<u8>>(),
            ),
            vec!["huge_f64.npy", "float32 range"],
        ),
    ];
    let out = dir.join("out.npy");
    std::fs::write(&out, b"previous contents").unwrap();
    for (name, bytes, needles) in &cases {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        assert_user_error(name, &run(&p, &out), needles);
    }
    // Neither may be read: a FIFO would block forever, /dev/zero never ends.
    let fifo = dir.join("fifo.npy");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for path in [fifo.as_path(), Path::new("/dev/zero")] {
        assert_user_error("not a file", &run(path, &out), &["not a regular file"]);
    }
    assert_output_untouched(&dir, &out);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// No failure touched the existing output `out` or left a temporary file in `dir`.
fn assert_output_untouched(dir: &Path, out: &Path) {
    assert_eq!(std::fs::read(out).unwrap(), b"previous contents");
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn float64_and_float16_inputs_give_the_float32_result() {
    if common::gpu(false).is_none() {
        return;
    }
    let dir = scratch("inputs-dtypes");
    let tiny = read_f32(&fixture("tiny.input.npy")).unwrap();
    // f16 is exact in f32, so feed the f32 run the f16-rounded values.
    let halves: Vec<half::f16> = tiny.data.iter().map(|&v| half::f16::from_f32(v)).collect();
    let rounded: Vec<f32> = halves.iter().map(|v| v.to_f32()).collect();
    let f64_bytes: Vec<u8> = tiny
        .data
        .iter()
        .flat_map(|&v| (v as f64).to_le_bytes())
        .collect();
    let f16_bytes: Vec<u8> = halves.iter().flat_map(|v| v.to_le_bytes()).collect();
    let files = [
        ("f32.npy", npy::to_bytes(&tiny.shape, &tiny.data).unwrap()),
        ("f64.npy", forge_npy("<f8", false, &tiny.shape, &f64_bytes)),
        ("f16.npy", forge_npy("<f2", false, &tiny.shape, &f16_bytes)),
        (
            "f16_as_f32.npy",
            npy::to_bytes(&tiny.shape, &rounded).unwrap(),
        ),
    ];
    let mut outputs = Vec::new();
    for (name, bytes) in files {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        let out = dir.join(format!("{name}.out.npy"));
        let o = run(&p, &out);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        outputs.push(read_f32(&out).unwrap());
    }
    let bits = |a: &npy::NpyArray| a.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&outputs[0]),
        bits(&outputs[1]),
        "f64 input = its f32 values"
    );
    assert_eq!(
        bits(&outputs[2]),
        bits(&outputs[3]),
        "f16 input = its f32 values"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------- images

fn rgb_test_image(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            (x * 37 % 256) as u8,
            (y * 59 % 256) as u8,
            ((x + y) * 11 % 256) as u8,
        ])
    })
}

fn png_bytes(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

fn image_err(path: &Path, options: &ImageOptions) -> String {
    match load_image_with(path, options) {
        Ok(img) => panic!(
            "{}: expected an error, got {:?}",
            path.display(),
            img.dimensions()
        ),
        Err(Error::Image { path: p, msg }) => {
            assert_eq!(p, path);
            msg
        }
        Err(other) => panic!("{}: expected an image error, got {other:?}", path.display()),
    }
}

/// CRC-32 (IEEE) as PNG chunks use it, bit by bit: enough for a test.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A real PNG whose header claims `w`×`h` (the IHDR is rewritten, its CRC fixed).
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut png = png_bytes(&rgb_test_image(8, 8));
    // Signature (8), length (4), "IHDR" (4), then width and height; CRC after 13 data bytes.
    png[16..20].copy_from_slice(&w.to_be_bytes());
    png[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

#[test]
fn broken_and_unsupported_images_are_errors_naming_the_file() {
    let dir = scratch("inputs-images");
    let png = png_bytes(&rgb_test_image(40, 30));
    let mut jpeg = Vec::new();
    rgb_test_image(64, 48)
        .write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    let mut corrupt = png.clone();
    for b in &mut corrupt[60..] {
        *b = b.wrapping_mul(31).wrapping_add(7);
    }
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.png", vec![], "empty"),
        ("corrupt.png", corrupt, ""),
        ("truncated.png", png[..png.len() / 2].to_vec(), "truncated"),
        (
            "truncated.jpg",
            jpeg[..jpeg.len() / 2].to_vec(),
            "truncated",
        ),
        ("header_only.jpg", jpeg[..200].to_vec(), "truncated"),
        (
            "anim.gif",
            b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec(),
            "supported: JPEG, PNG",
        ),
        (
            "scan.tif",
            b"II*\x00\x08\x00\x00\x00\x00\x00".to_vec(),
            "supported: JPEG, PNG",
        ),
        (
            "notes.txt.png",
            b"just some text, not pixels".to_vec(),
            "supported: JPEG, PNG",
        ),
        ("zero_size.png", png_claiming(0, 10), ""),
    ];
    for (name, bytes, needle) in cases {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        let msg = image_err(&p, &ImageOptions::default());
        assert!(msg.contains(needle), "{name}: `{needle}` not in `{msg}`");
    }
    // Not files at all.
    assert!(matches!(
        load_image_with(&dir, &ImageOptions::default()),
        Err(Error::Io { .. })
    ));
    assert!(matches!(
        load_image_with(&dir.join("absent.png"), &ImageOptions::default()),
        Err(Error::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn decompression_bombs_are_refused_from_the_header() {
    let dir = scratch("inputs-bombs");
    // 100000 × 100000 claimed by a 100-byte file: refused before a byte is decoded (a decode
    // would fail too, but only after trying to allocate 30 GB).
    let bomb = dir.join("bomb.png");
    std::fs::write(&bomb, png_claiming(100_000, 100_000)).unwrap();
    let msg = image_err(&bomb, &ImageOptions::default());
    assert!(
        msg.contains("10000000000 pixels") && msg.contains("over the limit"),
        "{msg}"
    );
    // The cap is an option: a real 64×64 image over a 1000-pixel cap.
    let small = dir.join("small.png");
    rgb_test_image(64, 64).save(&small).unwrap();
    let tight = ImageOptions {
        max_pixels: 1000,
        ..ImageOptions::default()
    };
    assert!(image_err(&small, &tight).contains("4096 pixels"));
    assert_eq!(
        load_image_with(&small, &ImageOptions::default())
            .unwrap()
            .dimensions(),
        (64, 64)
    );
    // Through the CLI: one line, exit 2, before the GPU is touched.
    let o = resnet(&["classify", bomb.to_str().unwrap()]);
    assert_user_error("bomb", &o, &["bomb.png", "over the limit"]);
    let o = resnet(&["classify", small.to_str().unwrap(), "--max-pixels", "100"]);
    assert_user_error("--max-pixels", &o, &["small.png", "over the limit of 100"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sixteen_bit_grey_alpha_and_cmyk_decode_like_pil() {
    let dir = scratch("inputs-modes");
    // Grey + alpha, 8 and 16 bits: grey replicated, alpha dropped (not blended), the high
    // byte of 16-bit samples kept, as Pillow does.
    let la8 = image::GrayAlphaImage::from_fn(5, 4, |x, y| {
        image::LumaA([(x * 50 + y) as u8, (y * 60) as u8])
    });
    let la16 = image::ImageBuffer::<image::LumaA<u16>, Vec<u16>>::from_fn(5, 4, |x, y| {
        image::LumaA([(x * 13000 + y * 7) as u16, 1234])
    });
    let rgba16 = image::ImageBuffer::<image::Rgba<u16>, Vec<u16>>::from_fn(3, 2, |x, y| {
        image::Rgba([(x * 20000 + 255) as u16, (y * 30000) as u16, 65535, 0])
    });
    la8.save(dir.join("la8.png")).unwrap();
    la16.save(dir.join("la16.png")).unwrap();
    rgba16.save(dir.join("rgba16.png")).unwrap();
    let load = |name: &str| load_image_with(&dir.join(name), &ImageOptions::torchvision()).unwrap();
    let got = load("la8.png");
    for (x, y, p) in la8.enumerate_pixels() {
        assert_eq!(got.get_pixel(x, y).0, [p.0[0]; 3]);
    }
    let got = load("la16.png");
    for (x, y, p) in la16.enumerate_pixels() {
        assert_eq!(got.get_pixel(x, y).0, [(p.0[0] >> 8) as u8; 3]);
    }
    let got = load("rgba16.png");
    for (x, y, p) in rgba16.enumerate_pixels() {
        let hi = |v: u16| (v >> 8) as u8;
        assert_eq!(got.get_pixel(x, y).0, [hi(p.0[0]), hi(p.0[1]), hi(p.0[2])]);
    }
    // CMYK JPEG (Adobe-inverted, as Pillow and Photoshop write it) against PIL's convert.
    let got = load_image_with(
        &fixture("preprocess/cmyk_32x24.jpg"),
        &ImageOptions::torchvision(),
    )
    .unwrap();
    let want = load_image_with(
        &fixture("preprocess/cmyk_32x24.pil.png"),
        &ImageOptions::torchvision(),
    )
    .unwrap();
    assert_eq!(got.dimensions(), want.dimensions());
    let max = got
        .as_raw()
        .iter()
        .zip(want.as_raw())
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    eprintln!("CMYK JPEG vs PIL: max difference {max}");
    // JPEG decoders differ by a few levels (see preprocess.rs); a wrong CMYK conversion (no
    // inversion, or K ignored) is off by a hundred or more.
    assert!(max <= 8, "CMYK JPEG decodes {max} levels away from PIL");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A big-endian EXIF block (TIFF header and one IFD) with only the orientation tag.
fn exif_orientation(value: u16) -> Vec<u8> {
    let mut e = b"MM\x00\x2a".to_vec();
    e.extend_from_slice(&8u32.to_be_bytes()); // IFD at offset 8
    e.extend_from_slice(&1u16.to_be_bytes()); // one entry
    e.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    e.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    e.extend_from_slice(&1u32.to_be_bytes()); // count
    e.extend_from_slice(&value.to_be_bytes());
    e.extend_from_slice(&[0, 0]); // value padding
    e.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    e
}

fn write_with_exif(path: &Path, img: &RgbImage, orientation: u16) {
    let mut bytes = Vec::new();
    let (w, h) = img.dimensions();
    if path.extension().is_some_and(|e| e == "png") {
        let mut enc = image::codecs::png::PngEncoder::new(&mut bytes);
        enc.set_exif_metadata(exif_orientation(orientation))
            .unwrap();
        enc.write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
    } else {
        let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95);
        enc.set_exif_metadata(exif_orientation(orientation))
            .unwrap();
        enc.write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn exif_orientation_is_applied_unless_asked_to_match_pil() {
    let dir = scratch("inputs-exif");
    // 4×2 with one red pixel top-left. EXIF 6 means "rotate 90° clockwise to view": the
    // upright image is 2×4 with the red pixel top-right.
    let mut img = RgbImage::from_pixel(4, 2, Rgb([0, 0, 255]));
    img.put_pixel(0, 0, Rgb([255, 0, 0]));
    let png = dir.join("rotated.png");
    write_with_exif(&png, &img, 6);
    let upright = load_image_with(&png, &ImageOptions::default()).unwrap();
    assert_eq!(upright.dimensions(), (2, 4));
    assert_eq!(upright.get_pixel(1, 0).0, [255, 0, 0]);
    assert_eq!(upright.get_pixel(0, 0).0, [0, 0, 255]);
    let as_pil = load_image_with(&png, &ImageOptions::torchvision()).unwrap();
    assert_eq!(
        as_pil, img,
        "torchvision mode ignores the tag, as PIL.Image.open does"
    );
    // Every orientation, in a JPEG too: the upright image is the stored one transformed.
    let photo = rgb_test_image(48, 32);
    for orientation in 1..=8u16 {
        let jpg = dir.join(format!("o{orientation}.jpg"));
        write_with_exif(&jpg, &photo, orientation);
        let stored = load_image_with(&jpg, &ImageOptions::torchvision()).unwrap();
        let mut want = image::DynamicImage::ImageRgb8(stored.clone());
        want.apply_orientation(image::metadata::Orientation::from_exif(orientation as u8).unwrap());
        let got = load_image_with(&jpg, &ImageOptions::default()).unwrap();
        assert_eq!(got, want.to_rgb8(), "orientation {orientation}");
        let swapped = orientation >= 5;
        assert_eq!(got.dimensions(), if swapped { (32, 48) } else { (48, 32) });
    }
    // A malformed EXIF block is ignored, not an error.
    let mut bad = exif_orientation(6);
    bad.truncate(10);
    let mut bytes = Vec::new();
    let mut enc = image::codecs::png::PngEncoder::new(&mut bytes);
    enc.set_exif_metadata(bad).unwrap();
    enc.write_image(img.as_raw(), 4, 2, image::ExtendedColorType::Rgb8)
        .unwrap();
    let odd = dir.join("bad_exif.png");
    std::fs::write(&odd, bytes).unwrap();
    assert_eq!(
        load_image_with(&odd, &ImageOptions::default()).unwrap(),
        img
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn classify_reports_a_broken_image_and_honours_exif() {
    let dir = scratch("inputs-classify");
    let samples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples");
    // A folder with one broken image among good ones: the broken one is named, exit 2.
    let folder = dir.join("mixed");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(samples.join("7_0027.png"), folder.join("a.png")).unwrap();
    std::fs::write(folder.join("b.png"), b"\x89PNG\r\n\x1a\n broken").unwrap();
    if common::gpu(false).is_none() {
        return;
    }
    let o = resnet(&["classify", folder.to_str().unwrap()]);
    assert_user_error("broken image", &o, &["b.png"]);
    assert!(o.stdout.is_empty(), "no partial table");

    // A digit stored sideways with EXIF 8 ("rotate 270° clockwise to view"): by default it is
    // classified upright, exactly as the upright file; --ignore-exif sees it sideways.
    let digit = image::open(samples.join("7_0027.png")).unwrap().to_rgb8();
    let sideways = image::imageops::rotate90(&digit);
    let tagged = dir.join("sideways.png");
    write_with_exif(&tagged, &sideways, 8);
    let upright = dir.join("upright.png");
    digit.save(&upright).unwrap();
    let features = |img: &Path, extra: &[&str]| {
        let out = dir.join("f.npy");
        let mut args = vec![
            "classify",
            img.to_str().unwrap(),
            "--features",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = resnet(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        read_f32(&out).unwrap().data
    };
    let want = features(&upright, &[]);
    assert_eq!(features(&tagged, &[]), want, "EXIF applied");
    assert_ne!(features(&tagged, &["--ignore-exif"]), want, "EXIF ignored");
    std::fs::remove_dir_all(&dir).unwrap();
}

// ------------------------------------------------------------ preprocessing settings

/// The error of a preprocessing setting, from whichever place it was given in.
fn setting_error(result: Result<impl std::fmt::Debug, impl std::fmt::Display>) -> String {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn preprocessing_that_would_give_absurd_tensors_is_refused_naming_the_setting() {
    use resnet_wgpu::model::SourceConfig;
    use resnet_wgpu::preprocess::{presets, Preprocess};
    let base = Preprocess::torchvision_v1();
    // --preprocess: a std of about 0 (±Inf or 1e30-sized inputs), a crop_pct of 0.
    for (spec, needles) in [
        ("std=1e-30:0.2:0.2", vec!["std"]),
        ("std=0:1:1", vec!["std"]),
        ("std=1e-7:1:1", vec!["std", "1e6"]),
        ("mean=inf:0:0", vec!["mean"]),
        ("crop_pct=0", vec!["crop_pct"]),
        ("crop_pct=1e-300", vec!["resize"]),
        ("crop=0", vec!["crop"]),
        ("crop=4294967520", vec!["crop"]),
    ] {
        let e = setting_error(presets::parse(spec, base));
        for n in needles {
            assert!(e.contains(n), "{spec}: `{n}` not in {e}");
        }
    }
    // A small but sane std is fine.
    presets::parse("std=0.01:0.01:0.01", base).unwrap();
    // timm's pretrained_cfg in config.json: crop_pct 0, a size of 2^32 + 224 (which must not
    // wrap to 224), a size of 0, a std of 0.
    let config = |cfg: &str| {
        SourceConfig::parse(
            Path::new("config.json"),
            &format!(r#"{{"pretrained_cfg": {cfg}}}"#),
        )
    };
    for (cfg, needle) in [
        (
            r#"{"input_size": [3, 224, 224], "crop_pct": 0}"#,
            "crop_pct",
        ),
        (
            r#"{"input_size": [3, 224, 224], "crop_pct": "x"}"#,
            "crop_pct",
        ),
        (r#"{"input_size": [3, 4294967520, 224]}"#, "input_size"),
        (r#"{"input_size": [3, 0, 224]}"#, "input_size"),
        (r#"{"input_size": [3, 224, 224], "std": [0, 1, 1]}"#, "std"),
        (
            r#"{"input_size": [3, 224, 224], "std": [1e-30, 1, 1]}"#,
            "std",
        ),
    ] {
        let e = setting_error(config(cfg));
        assert!(
            e.contains("config.json") && e.contains(needle),
            "{cfg}: {e}"
        );
    }
    let ok = config(r#"{"input_size": [3, 288, 288], "crop_pct": 0.95}"#).unwrap();
    assert_eq!(ok.preprocess.unwrap().crop_h, 288);
    // transformers' preprocessor_config.json: crop_pct 0, shortest_edge 0, std 0.
    let pre =
        |text: &str| SourceConfig::parse_preprocessor(Path::new("preprocessor_config.json"), text);
    for (text, needle) in [
        (
            r#"{"size": {"shortest_edge": 224}, "crop_pct": 0}"#,
            "crop_pct",
        ),
        (r#"{"size": {"shortest_edge": 0}}"#, "shortest_edge"),
        (r#"{"size": 224, "image_std": [0, 0.5, 0.5]}"#, "std"),
    ] {
        let e = setting_error(pre(text));
        assert!(
            e.contains("preprocessor_config.json") && e.contains(needle),
            "{text}: {e}"
        );
    }
    assert!(pre(r#"{"size": {"shortest_edge": 224}}"#)
        .unwrap()
        .is_some());
}

#[test]
fn preprocessing_in_the_weights_metadata_is_checked_too() {
    use resnet_wgpu::metadata::stored_preprocess;
    use resnet_wgpu::weights::serialize_f32;
    use resnet_wgpu::WeightsFile;
    let with = |json: &str| {
        let meta = [("resnet.preprocess".to_string(), json.to_string())].into();
        let bytes = serialize_f32(&[("x".into(), vec![1], vec![0.0])], Some(meta)).unwrap();
        stored_preprocess(&WeightsFile::from_bytes("meta.safetensors", bytes).unwrap())
    };
    // A size that is present but invalid was silently replaced by the default before.
    for (json, needle) in [
        (r#"{"crop": 0}"#, "crop"),
        (r#"{"resize": 4294967552}"#, "resize"),
        (r#"{"std": [1e-30, 1, 1]}"#, "std"),
    ] {
        let e = setting_error(with(json));
        assert!(
            e.contains("meta.safetensors") && e.contains(needle),
            "{json}: {e}"
        );
    }
    assert_eq!(with(r#"{"crop": 160}"#).unwrap().unwrap().crop_h, 160);
}

#[test]
fn an_empty_image_is_empty() {
    let dir = scratch("inputs-empty-image");
    for (w, h) in [(0, 0), (0, 5), (5, 0)] {
        let path = dir.join(format!("{w}x{h}.png"));
        std::fs::write(&path, png_claiming(w, h)).unwrap();
        let e = image_err(&path, &ImageOptions::default());
        assert!(
            e.contains("empty") && !e.contains("too large"),
            "{w}x{h}: {e}"
        );
    }
    // A BMP header claiming 0x0 (14-byte file header, 40-byte info header, 24 bits).
    let mut bmp = vec![0u8; 54];
    bmp[..2].copy_from_slice(b"BM");
    bmp[2..6].copy_from_slice(&54u32.to_le_bytes());
    bmp[10..14].copy_from_slice(&54u32.to_le_bytes());
    bmp[14..18].copy_from_slice(&40u32.to_le_bytes());
    bmp[26..28].copy_from_slice(&1u16.to_le_bytes());
    bmp[28..30].copy_from_slice(&24u16.to_le_bytes());
    let path = dir.join("0x0.bmp");
    std::fs::write(&path, &bmp).unwrap();
    let e = image_err(&path, &ImageOptions::default());
    assert!(
        e.contains("empty") && !e.contains("too large"),
        "bmp 0x0: {e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
