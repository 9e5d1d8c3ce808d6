//! The ResNet family end to end against PyTorch (fixtures from
//! scripts/make_family_fixtures.py), in both shader modes: ResNeXt, Wide ResNet, timm's deep
//! stems and avg-pool shortcuts, transformers layouts with and without config.json; F32, F16
//! and BF16 files. Also: full-width synthetic Wide ResNet-101-2 (≈ 500 MB of f32), what
//! `resnet info` reports, and the errors for unsupported files.

use crate::common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{gpu, MODES};
use resnet_wgpu::metadata::{class_names_with, default_preprocess, LabelSource};
use resnet_wgpu::model::{arch, synthetic::synthetic_weights, SourceConfig};
use resnet_wgpu::npy::read_f32;
use resnet_wgpu::preprocess::{CropRounding, Interp};
use resnet_wgpu::reference::{relative_error, run_graph};
use resnet_wgpu::weights::serialize_f32;
use resnet_wgpu::{Engine, GpuContext, Output, WeightsFile};

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    weights: String,
    input: String,
    expected: String,
    output: String,
    outputs: usize,
    batch: usize,
    height: usize,
    width: usize,
    labels: Option<Vec<String>>,
    describe: Vec<String>,
    config: bool,
}

fn family(path: &str) -> PathBuf {
    common::fixture("family").join(path)
}

fn case(name: &str) -> Case {
    let text = std::fs::read_to_string(family("manifest.json")).expect("manifest");
    let cases: Vec<Case> = serde_json::from_str(&text).expect("manifest JSON");
    cases
        .into_iter()
        .find(|c| c.name == name)
        .expect("case in manifest")
}

/// Detection and description (no GPU), then our output vs PyTorch's float64 one.
fn check(name: &str) {
    let case = case(name);
    let weights = WeightsFile::open(family(&case.weights)).unwrap();
    let config = SourceConfig::for_weights(&weights).unwrap();
    assert_eq!(config.is_some(), case.config, "{name}: config.json beside");
    let a = resnet_wgpu::model::detect(&weights).unwrap();
    let described = a.describe();
    for s in &case.describe {
        assert!(
            described.contains(s.as_str()),
            "{name}: `{described}` lacks `{s}`"
        );
    }
    assert_eq!(a.outputs(), case.outputs, "{name}: output width");
    assert_eq!(a.num_classes.is_none(), case.output == "features");
    // transformers files without config.json say what they assumed.
    let hf = described.contains("Hugging Face");
    assert_eq!(
        !a.assumptions.is_empty(),
        hf && !case.config,
        "{name}: {:?}",
        a.assumptions
    );
    if let (Some(want), Some(classes)) = (&case.labels, a.num_classes) {
        let (names, _) = class_names_with(&weights, classes, None, config.as_ref()).unwrap();
        assert_eq!(&names, want, "{name}: class names");
    }
    for checked in MODES {
        let Some(ctx) = gpu(checked) else { return };
        check_on(ctx, name, &format!("checked shaders: {checked}"));
    }
}

/// Runs case `name` on `ctx` (described as `label` in the log), checks it against PyTorch's
/// output and returns ours.
pub fn check_on(ctx: Arc<GpuContext>, name: &str, label: &str) -> Vec<f32> {
    let case = case(name);
    let weights = WeightsFile::open(family(&case.weights)).unwrap();
    let input = read_f32(&family(&case.input)).unwrap();
    let want = read_f32(&family(&case.expected)).unwrap();
    assert_eq!(input.shape, vec![case.batch, 3, case.height, case.width]);
    let which = match case.output.as_str() {
        "features" => Output::Features,
        _ => Output::Logits,
    };
    let engine = Engine::load_on(ctx, &weights).unwrap();
    let (n, h, w) = (case.batch, case.height, case.width);
    let got = engine.run(&input.data, n, h, w, which).unwrap();
    assert_eq!(got.len(), n * case.outputs);
    let err = relative_error(&got, &want.data);
    let tol = common::end_to_end_tolerance(&engine.ctx);
    eprintln!("{name} ({label}): relative error {err:.3e}");
    assert!(err <= tol, "{name}: relative error {err:.3e} > {tol:e}");
    if which == Output::Logits {
        let argmax = |v: &[f32]| {
            v.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i)
        };
        for s in 0..n {
            let row = s * case.outputs..(s + 1) * case.outputs;
            assert_eq!(
                argmax(&got[row.clone()]),
                argmax(&want.data[row]),
                "{name}: top-1 differs for sample {s}"
            );
        }
    }
    got
}

macro_rules! fixture_tests {
    ($($test:ident),* $(,)?) => {$(
        #[test]
        fn $test() {
            check(stringify!($test));
        }
    )*};
}

fixture_tests! {
    tv_resnext50,
    tv_resnext101,
    tv_wide_resnet50,
    timm_resnet18d,
    timm_resnet26d,
    timm_resnet50c,
    timm_resnet50s,
    timm_resnet26t,
    timm_resnext26d,
    timm_resnet200d,
    timm_resnet34,
    timm_resnet10t_headless,
    hf_resnet50,
    hf_resnet26_dib,
    hf_resnet18_first,
    hf_resnetmodel_bare,
    hf_resnet50_noconfig,
}

#[test]
fn every_manifest_case_has_a_test() {
    let text = std::fs::read_to_string(family("manifest.json")).unwrap();
    let cases: Vec<Case> = serde_json::from_str(&text).unwrap();
    let source = include_str!("family.rs");
    for c in &cases {
        assert!(source.contains(&format!("    {},\n", c.name)), "{}", c.name);
    }
    assert_eq!(cases.len(), 17);
}

#[test]
fn transformers_stride_placement_needs_its_config() {
    // Without config.json the stride goes on the 3×3 (transformers' default): for a model
    // built with downsample_in_bottleneck=True the logits then differ from PyTorch's. The
    // shapes are identical, so only the config can tell; the assumption is reported.
    let case = case("hf_resnet26_dib");
    let path = family(&case.weights);
    let bytes = std::fs::read(&path).unwrap();
    let weights = WeightsFile::from_bytes("in memory, no config.json", bytes).unwrap();
    let a = resnet_wgpu::model::detect(&weights).unwrap();
    assert!(a.stages.iter().all(|s| !s.stride_on_1x1));
    assert!(
        a.assumptions[0].contains("downsample_in_bottleneck"),
        "{:?}",
        a.assumptions
    );
    let with = resnet_wgpu::model::detect(&WeightsFile::open(&path).unwrap()).unwrap();
    assert!(with.stages.iter().all(|s| s.stride_on_1x1) && with.assumptions.is_empty());
    let Some(ctx) = gpu(false) else { return };
    let input = read_f32(&family(&case.input)).unwrap();
    let want = read_f32(&family(&case.expected)).unwrap();
    let engine = Engine::load_on(ctx, &weights).unwrap();
    let (n, h, w) = (case.batch, case.height, case.width);
    let got = engine.run(&input.data, n, h, w, Output::Logits).unwrap();
    let err = relative_error(&got, &want.data);
    assert!(
        err > 1e-2,
        "wrong stride placement went unnoticed: {err:.3e}"
    );
}

#[test]
fn config_labels_and_preprocessing() {
    // id2label from config.json when the safetensors metadata has none.
    let case = case("hf_resnet50");
    let dir = family("hf_resnet50");
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let config = SourceConfig::parse(&dir.join("config.json"), &text).unwrap();
    let original = WeightsFile::open(family(&case.weights)).unwrap();
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = original
        .tensors
        .iter()
        .filter(|(_, t)| t.dtype.is_some())
        .map(|(n, t)| (n.clone(), t.shape.clone(), original.to_f32(n).unwrap()))
        .collect();
    let bare = WeightsFile::from_bytes("bare", serialize_f32(&tensors, None).unwrap()).unwrap();
    let a = resnet_wgpu::model::detect_with(&bare, Some(&config)).unwrap();
    let (names, from) = class_names_with(&bare, 7, None, Some(&config)).unwrap();
    assert_eq!((Some(names), from), (case.labels, LabelSource::Config));
    // Default preprocessing follows the layout: transformers → bicubic, floor offsets.
    let (p, why) = default_preprocess(&bare, Some(&a), Some(&config)).unwrap();
    assert_eq!(
        (p.interp, p.crop_rounding),
        (Interp::Bicubic, CropRounding::Floor)
    );
    assert!(why.contains("hf"), "{why}");
    // The exporter's metadata wins over the layout's preset.
    let (p, why) = default_preprocess(&original, Some(&a), None).unwrap();
    assert_eq!((p.resize, p.crop_rounding), (256, CropRounding::Floor));
    assert!(why.contains("metadata"), "{why}");
    // A config that contradicts the tensors is an error naming the field.
    let wrong = text.replace(
        "\"layer_type\": \"bottleneck\"",
        "\"layer_type\": \"basic\"",
    );
    assert_ne!(wrong, text);
    let wrong = SourceConfig::parse(&dir.join("config.json"), &wrong).unwrap();
    let err = resnet_wgpu::model::detect_with(&bare, Some(&wrong)).unwrap_err();
    assert!(err.to_string().contains("layer_type"), "{err}");
}

/// Full-width Wide ResNet-101-2 with synthetic weights: ≈ 508 MB of f32 in one buffer per
/// tensor (the largest, layer4's 3×3, is 37.7 MB) must load within the adapter's limits and
/// match the CPU reference at a small input.
#[test]
fn wide_resnet101_2_full_width_loads_and_runs() {
    let Some(ctx) = gpu(false) else { return };
    let a = arch::standard("wide_resnet101_2", 1000).unwrap();
    assert_eq!(a.parameter_count(), 126_886_696);
    let weights = synthetic_weights(&a, 3).unwrap();
    assert!(
        weights.float_bytes() > 500_000_000,
        "{}",
        weights.float_bytes()
    );
    let engine = Engine::load_on(ctx.clone(), &weights).unwrap();
    let (n, h, w) = (1, 40, 48);
    let mut rng = common::Rng::new(5);
    let input = rng.vec(n * 3 * h * w, -2.0, 2.0);
    let got = engine.run(&input, n, h, w, Output::Logits).unwrap();
    let (want, _) = run_graph(&engine.graph, &weights, &input, n, h, w).unwrap();
    let err = relative_error(&got, &want);
    eprintln!(
        "wide_resnet101_2 on {}: {:.0} MB stored, limits binding {} MB / buffer {} MB, \
         relative error {err:.3e}",
        ctx.info.name,
        weights.float_bytes() as f64 / 1e6,
        ctx.limits.max_storage_buffer_binding_size / 1_000_000,
        ctx.limits.max_buffer_size / 1_000_000
    );
    assert!(err <= 1e-4, "relative error {err:.3e}");
}

/// `resnet info` on synthetic full-width files of named variants: the name, layout and
/// variant traits, widths and groups.
#[test]
fn info_names_layout_and_variant() {
    let dir = std::env::temp_dir().join(format!("resnet-family-info-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, want) in [
        (
            "resnet50d",
            "resnet50d (timm layout, deep stem 32-32-64, avg-pool shortcut)",
        ),
        (
            "resnet26t",
            "resnet26t (timm layout, deep tiered stem 24-32-64, avg-pool shortcut)",
        ),
        ("resnet50s", "resnet50s (timm layout, deep stem 64-64-128)"),
        (
            "resnext101_64x4d",
            "resnext101_64x4d (torchvision/timm layout, 64 groups)",
        ),
        (
            "wide_resnet50_2",
            "wide_resnet50_2 (torchvision/timm layout)",
        ),
    ] {
        let a = arch::standard(name, 1000).unwrap();
        let path = dir.join(format!("{name}.safetensors"));
        let w = synthetic_weights(&a, 0).unwrap();
        let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = w
            .tensors
            .iter()
            .map(|(n, t)| (n.clone(), t.shape.clone(), w.to_f32(n).unwrap()))
            .collect();
        std::fs::write(&path, serialize_f32(&tensors, None).unwrap()).unwrap();
        let o = common::isolate_caches(&mut std::process::Command::new(env!(
            "CARGO_BIN_EXE_resnet"
        )))
        .args(["info", "--json", "--weights", path.to_str().unwrap()])
        .output()
        .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{name}: {stderr}");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["description"], want, "{name}");
        assert_eq!(v["architecture"], name);
        assert_eq!(v["parameters"], a.parameter_count());
        let groups: Vec<usize> = a.stages.iter().map(|s| s.groups).collect();
        assert_eq!(v["groups"], serde_json::json!(groups), "{name}");
        std::fs::remove_file(&path).unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The presets against transformers' and timm's own eval transforms (crops saved by
/// scripts/make_family_fixtures.py), on an image whose crop offsets are x.5: HF floors,
/// timm (torchvision underneath) rounds half to even, so the wrong rounding is caught.
#[test]
fn presets_match_transformers_and_timm() {
    use resnet_wgpu::preprocess::{load_and_preprocess, load_image, presets};
    let src = common::fixture("preprocess/rgb_301x257.png");
    for (preset, png) in [
        (presets::hugging_face(), "preprocess_hf_rgb_301x257.png"),
        (
            presets::parse("timm,crop_pct=0.95", presets::torchvision_v1()).unwrap(),
            "preprocess_timm095_rgb_301x257.png",
        ),
    ] {
        let crop = load_image(&family(png)).unwrap();
        let want: Vec<f32> = (0..3)
            .flat_map(|c| {
                crop.pixels()
                    .map(move |px| (px.0[c] as f32 / 255.0 - preset.mean[c]) / preset.std[c])
            })
            .collect();
        let got = load_and_preprocess(&src, &preset).unwrap();
        assert!(got == want, "{png}: differs from the library's transform");
        // The other rounding moves the crop by one pixel and fails.
        let other = resnet_wgpu::preprocess::Preprocess {
            crop_rounding: match preset.crop_rounding {
                CropRounding::Floor => CropRounding::HalfToEven,
                CropRounding::HalfToEven => CropRounding::Floor,
            },
            ..preset
        };
        assert!(load_and_preprocess(&src, &other).unwrap() != want, "{png}");
    }
}

fn resnet(args: &[&str]) -> std::process::Output {
    common::isolate_caches(&mut std::process::Command::new(env!(
        "CARGO_BIN_EXE_resnet"
    )))
    .args(args)
    .output()
    .unwrap()
}

#[test]
fn cli_info_reports_assumptions_and_config() {
    let noconfig = family("hf_resnet50_noconfig/model.safetensors");
    let o = resnet(&["info", "--weights", noconfig.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.contains("Hugging Face ResNetForImageClassification layout"),
        "{out}"
    );
    assert!(
        out.contains("assumed:") && out.contains("downsample_in_bottleneck"),
        "{out}"
    );
    assert!(out.contains("bicubic, floor offsets"), "{out}");
    let hf = family("hf_resnet50/model.safetensors");
    let o = resnet(&["info", "--json", "--weights", hf.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["config"].as_str().unwrap().ends_with("config.json"));
    assert_eq!(v["assumptions"], serde_json::json!([]));
    assert_eq!(v["labels"], "metadata `resnet.labels`");
    let bare = family("hf_resnetmodel_bare/model.safetensors");
    let o = resnet(&["info", "--json", "--weights", bare.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["classes"], serde_json::Value::Null);
    assert_eq!(v["layout"], "Hugging Face ResNetModel");
}

#[test]
fn cli_classify_with_presets_labels_and_headless_models() {
    if gpu(false).is_none() {
        return;
    }
    let sample = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples/0_0020.png");
    let sample = sample.to_str().unwrap();
    // 1000 classes and no names in the file: ImageNet's.
    let timm34 = family("timm_resnet34/model.safetensors");
    let o = resnet(&[
        "classify",
        sample,
        "--json",
        "--top-k",
        "1",
        "--weights",
        timm34.to_str().unwrap(),
        "--preprocess",
        "torchvision-v2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let label = v[0]["top"][0]["label"].as_str().unwrap().to_string();
    let class = v[0]["top"][0]["class"].as_u64().unwrap() as usize;
    assert_eq!(label, resnet_wgpu::imagenet::imagenet_classes()[class]);
    // transformers id2label (here also in the metadata).
    let hf = family("hf_resnet50/model.safetensors");
    let o = resnet(&[
        "classify",
        sample,
        "--json",
        "--weights",
        hf.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names = case("hf_resnet50").labels.unwrap();
    assert!(names.contains(&v[0]["top"][0]["label"].as_str().unwrap().to_string()));
    // Errors: a bad preset, and classes from a model without a head.
    let bare = family("hf_resnetmodel_bare/model.safetensors");
    for args in [
        vec![
            "classify",
            sample,
            "--weights",
            hf.to_str().unwrap(),
            "--preprocess",
            "caffe",
        ],
        vec!["classify", sample, "--weights", bare.to_str().unwrap()],
    ] {
        let o = resnet(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.trim_end().lines().count() == 1,
            "{err}"
        );
    }
    // A headless model gives embeddings.
    let out = std::env::temp_dir().join(format!("family-emb-{}.npy", std::process::id()));
    let o = resnet(&[
        "classify",
        sample,
        "--weights",
        bare.to_str().unwrap(),
        "--features",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(read_f32(&out).unwrap().shape, vec![1, 128]);
    std::fs::remove_file(&out).unwrap();
}
