//! The `resnet` binary end to end: run, classify (table, JSON, CSV, features, folders), info,
//! and one-line errors with the documented exit codes.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use common::fixture;
use resnet_wgpu::npy::read_f32;
use resnet_wgpu::reference::relative_error;

fn resnet(args: &[&str]) -> Output {
    common::isolate_caches(&mut Command::new(env!("CARGO_BIN_EXE_resnet")))
        .args(args)
        .output()
        .expect("run resnet")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// GPU commands need an adapter; skip locally without one, fail under CI.
fn have_gpu() -> bool {
    common::gpu(false).is_some()
}

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("resnet-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn run_writes_pytorch_logits() {
    if !have_gpu() {
        return;
    }
    let out = tmp("tiny_logits.npy");
    let o = resnet(&[
        "run",
        "--weights",
        fixture("tiny.safetensors").to_str().unwrap(),
        "--input",
        fixture("tiny.input.npy").to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = read_f32(&out).unwrap();
    let want = read_f32(&fixture("tiny.logits.npy")).unwrap();
    assert_eq!(got.shape, want.shape);
    assert!(relative_error(&got.data, &want.data) <= 1e-4);
}

#[test]
fn classify_samples_with_the_embedded_model() {
    if !have_gpu() {
        return;
    }
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let o = resnet(&[
        "classify",
        samples.to_str().unwrap(),
        "--json",
        "--top-k",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let items = v.as_array().unwrap();
    assert_eq!(items.len(), 16);
    let mut correct = 0;
    for item in items {
        let image = item["image"].as_str().unwrap();
        let truth = Path::new(image)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .split('_')
            .next()
            .unwrap()
            .to_string();
        let top = item["top"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        let p: Vec<f64> = top.iter().map(|t| t["prob"].as_f64().unwrap()).collect();
        assert!(p.windows(2).all(|w| w[0] >= w[1]) && p[0] <= 1.0 && p[2] >= 0.0);
        if top[0]["label"].as_str().unwrap() == truth {
            correct += 1;
        }
    }
    // The README says 15 of 16; the floor is 90 %.
    assert!(correct >= 15, "{correct}/16 correct");

    // The human table and CSV carry the same predictions.
    let table = resnet(&["classify", samples.join("7_0027.png").to_str().unwrap()]);
    assert!(table.status.success(), "{}", stderr(&table));
    let text = stdout(&table);
    assert!(text.lines().next().unwrap().starts_with("IMAGE"));
    assert!(
        text.lines().nth(1).unwrap().contains("7_0027.png  7 "),
        "{text}"
    );
    let csv = resnet(&[
        "classify",
        samples.join("7_0027.png").to_str().unwrap(),
        "--csv",
        "--top-k",
        "2",
    ]);
    let lines: Vec<String> = stdout(&csv).lines().map(String::from).collect();
    assert_eq!(lines[0], "image,rank,class,label,prob");
    assert_eq!(lines.len(), 3);
    assert!(lines[1].contains(",1,7,7,"), "{}", lines[1]);
}

#[test]
fn classify_features_match_pytorch_heldout_shape() {
    if !have_gpu() {
        return;
    }
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let out = tmp("features.npy");
    let o = resnet(&[
        "classify",
        samples.to_str().unwrap(),
        "--batch",
        "5",
        "--features",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let f = read_f32(&out).unwrap();
    // 16 images, 128 = 8 × 16 pooled channels of the default model.
    assert_eq!(f.shape, vec![16, 128]);
    assert!(
        f.data.iter().all(|v| v.is_finite() && *v >= 0.0),
        "pooled ReLU features are ≥ 0"
    );
    assert_eq!(stdout(&o).lines().count(), 16);
}

#[test]
fn info_describes_the_default_model() {
    let o = resnet(&["info", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["classes"], 10);
    assert_eq!(v["depths"], serde_json::json!([1, 1, 1, 1]));
    assert_eq!(v["block"], "basic");
    let o = resnet(&[
        "info",
        "--weights",
        fixture("resnet50.safetensors").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("resnet50"), "{}", stdout(&o));
}

#[test]
fn errors_are_one_line_with_exit_code_2() {
    let missing = resnet(&[
        "run",
        "--weights",
        "/nonexistent.safetensors",
        "--input",
        "x.npy",
        "--output",
        "y.npy",
    ]);
    let not_weights = resnet(&[
        "info",
        "--weights",
        fixture("tiny.input.npy").to_str().unwrap(),
    ]);
    let bad_size = resnet(&["info", "--size", "0x5"]);
    let no_folder = resnet(&[
        "run",
        "--weights",
        fixture("tiny.safetensors").to_str().unwrap(),
        "--input",
        fixture("tiny.input.npy").to_str().unwrap(),
        "--output",
        "/nonexistent-dir/out.npy",
    ]);
    let bad_flag = resnet(&["classify", "--no-such-flag"]);
    for (what, o) in [
        ("missing", missing),
        ("not weights", not_weights),
        ("bad size", bad_size),
        ("no folder", no_folder),
        ("bad flag", bad_flag),
    ] {
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{what}: {err}");
        assert!(err.starts_with("error: "), "{what}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{what}: {err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
    }
}

#[test]
fn classify_walks_nested_folders_in_sorted_order() {
    if !have_gpu() {
        return;
    }
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let root = tmp("nested");
    std::fs::create_dir_all(root.join("b/deeper")).unwrap();
    std::fs::copy(samples.join("3_0045.png"), root.join("b/deeper/3_0045.png")).unwrap();
    std::fs::copy(samples.join("8_0038.png"), root.join("a_8.png")).unwrap();
    std::fs::write(root.join("notes.txt"), "not an image").unwrap();
    let o = resnet(&[
        "classify",
        root.to_str().unwrap(),
        "--json",
        "--top-k",
        "1",
        "--batch",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let got: Vec<(String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["image"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string(),
                i["top"][0]["label"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("a_8.png".to_string(), "8".to_string()),
            ("3_0045.png".to_string(), "3".to_string())
        ]
    );
}

/// Every class's probability from `resnet classify IMAGE --json --top-k 10 [extra]`.
fn probabilities(image: &Path, extra: &[&str]) -> Vec<f64> {
    let mut args = vec![
        "classify",
        image.to_str().unwrap(),
        "--json",
        "--top-k",
        "10",
    ];
    args.extend(extra);
    let o = resnet(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let mut probs = vec![f64::NAN; 10];
    for t in v[0]["top"].as_array().unwrap() {
        probs[t["class"].as_u64().unwrap() as usize] = t["prob"].as_f64().unwrap();
    }
    probs
}

#[test]
fn tta_flip_averages_an_image_with_its_mirror() {
    if !have_gpu() {
        return;
    }
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/3_0045.png");
    // The digits model's preset is the identity resize and crop at 32×32, so mirroring the
    // file mirrors the tensor.
    let mirror = tmp("mirrored.png");
    image::open(&sample).unwrap().fliph().save(&mirror).unwrap();
    let plain = probabilities(&sample, &[]);
    let flipped = probabilities(&mirror, &[]);
    let tta = probabilities(&sample, &["--tta", "flip"]);
    assert!(
        plain
            .iter()
            .zip(&flipped)
            .any(|(a, b)| (a - b).abs() > 1e-3),
        "a digit and its mirror should score differently: {plain:?}"
    );
    for c in 0..10 {
        let mean = (plain[c] + flipped[c]) / 2.0;
        assert!(
            (tta[c] - mean).abs() <= 1e-6,
            "class {c}: {} vs {mean}",
            tta[c]
        );
    }
    // Videos average over clips instead.
    let gif = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples_video/up_0081.gif");
    let o = resnet(&["classify", gif.to_str().unwrap(), "--tta", "flip"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--tta applies to images"),
        "{}",
        stderr(&o)
    );
}
