//! `resnet info | bench | profile` with several `--weights`: each member and the whole. The
//! members are the embedded digits model (32×32 preset) and the torchvision ResNet-18 fixture
//! (224×224 preset), both 10-class; their numbers are checked against the same commands run
//! on each member alone.

use crate::common::{self, fixture};

use std::path::{Path, PathBuf};

use serde_json::Value;

fn members() -> [PathBuf; 2] {
    let digits = Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/default.safetensors");
    [digits, fixture("resnet18.safetensors")]
}

/// `resnet COMMAND --weights A [--weights B …] EXTRA`: its output, which must be a success.
fn resnet(command: &str, weights: &[PathBuf], extra: &[&str]) -> String {
    let mut args = vec![command.to_string()];
    for w in weights {
        args.extend(["--weights".into(), w.display().to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = common::resnet(&args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{args:?}: {stderr}");
    String::from_utf8(o.stdout).unwrap()
}

fn json(command: &str, weights: &[PathBuf], extra: &[&str]) -> Value {
    let mut extra = extra.to_vec();
    extra.push("--json");
    serde_json::from_str(&resnet(command, weights, &extra)).unwrap()
}

#[test]
fn info_lists_each_member_and_the_blend() {
    let ws = members();
    let v = json(
        "info",
        &ws,
        &["--combine", "logits", "--ensemble-weights", "2,1"],
    );
    assert_eq!(v["classes"], 10);
    assert_eq!(v["combine"], "logits");
    assert_eq!(v["weights"], serde_json::json!([2.0, 1.0]));
    let m = v["members"].as_array().unwrap();
    assert_eq!(m.len(), 2);
    for (row, w) in m.iter().zip(&ws) {
        assert_eq!(row["file"], w.display().to_string());
        assert_eq!(row["classes"], 10);
    }
    // Each member at its own preset's crop, as `classify` feeds it; --size overrides both.
    assert_eq!(m[0]["input"], serde_json::json!([32, 32]));
    assert_eq!(m[1]["input"], serde_json::json!([224, 224]));
    assert!(m[0]["architecture"]
        .as_str()
        .unwrap()
        .starts_with("resnet10"));
    assert!(m[1]["architecture"]
        .as_str()
        .unwrap()
        .starts_with("resnet18"));
    assert!(m[1]["preprocess"]
        .as_str()
        .unwrap()
        .contains("crop 224x224"));
    let sized = json("info", &ws, &["--size", "40x48"]);
    for row in sized["members"].as_array().unwrap() {
        assert_eq!(row["input"], serde_json::json!([40, 48]));
    }
    let text = resnet("info", &ws, &[]);
    assert!(
        text.contains("2 members, 10 classes, combine probs"),
        "{text}"
    );
    for w in &ws {
        assert!(text.contains(&w.display().to_string()), "{text}");
    }
    // Members that disagree on the classes: both files and counts named.
    let resnet34 = fixture("resnet34.safetensors");
    let bad = [ws[0].clone(), resnet34.clone()];
    let args = ["info", "--weights", bad[0].to_str().unwrap(), "--weights"];
    let o = common::resnet(&[&args[..], &[resnet34.to_str().unwrap()]].concat());
    let names = [
        bad[0].to_str().unwrap(),
        resnet34.to_str().unwrap(),
        "10 classes",
        "37 classes",
    ];
    common::assert_user_error("info mismatch", &o, &names);
}

fn peak(bench: &Value) -> u64 {
    bench["results"][0]["peak_gpu_bytes"].as_u64().unwrap()
}

#[test]
fn bench_and_profile_show_each_member_and_the_whole() {
    if common::gpu(false).is_none() {
        return;
    }
    let ws = members();
    let size = ["--size", "40x40"];
    let flags = [&size[..], &["--batch", "1,2", "--iters", "2"]].concat();
    let v = json("bench", &ws, &flags);
    let rows = v["results"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let alone: Vec<u64> = ws
        .iter()
        .map(|w| {
            peak(&json(
                "bench",
                std::slice::from_ref(w),
                &[&size[..], &["--iters", "1"]].concat(),
            ))
        })
        .collect();
    for (row, n) in rows.iter().zip([1.0, 2.0]) {
        assert_eq!(row["batch"], n as u64);
        let m = row["members"].as_array().unwrap();
        assert_eq!(m.len(), 2);
        let mut sum_ms = 0.0;
        for (t, w) in m.iter().zip(&ws) {
            assert_eq!(t["name"], w.display().to_string());
            let ms = t["ms"].as_f64().unwrap();
            assert!(ms > 0.0);
            let rate = t["images_per_second"].as_f64().unwrap();
            assert!((rate - n * 1e3 / ms).abs() <= 1e-6 * rate);
            sum_ms += ms;
        }
        assert!((row["members_sum_ms"].as_f64().unwrap() - sum_ms).abs() <= 1e-9);
        let whole = &row["ensemble"];
        assert_eq!(whole["name"], "ensemble");
        assert!(whole["ms"].as_f64().unwrap() > 0.0);
        if n == 1.0 {
            // At batch 1 each member holds what it holds alone; the whole holds both.
            assert_eq!(m[0]["peak_gpu_bytes"], alone[0]);
            assert_eq!(m[1]["peak_gpu_bytes"], alone[1]);
            assert_eq!(whole["peak_gpu_bytes"], alone[0] + alone[1]);
        }
    }
    let p = json("profile", &ws, &[&size[..], &["--iters", "1"]].concat());
    let mut total = 0.0;
    for (i, (m, w)) in p["members"].as_array().unwrap().iter().zip(&ws).enumerate() {
        assert_eq!(m["file"], w.display().to_string());
        let layers = m["profile"]["layers"].as_array().unwrap();
        let single = json(
            "profile",
            std::slice::from_ref(w),
            &[&size[..], &["--iters", "1"]].concat(),
        );
        let names = |ls: &[Value], prefix: &str| -> Vec<String> {
            ls.iter()
                .map(|l| format!("{prefix}{}", l["name"].as_str().unwrap()))
                .collect()
        };
        let single = names(single["layers"].as_array().unwrap(), &format!("m{i}."));
        assert_eq!(names(layers, ""), single);
        assert_eq!(m["profile"]["height"], 40);
        total += m["profile"]["total_gpu_ms"].as_f64().unwrap();
    }
    assert!((p["total_gpu_ms"].as_f64().unwrap() - total).abs() <= 1e-9);
    assert!(p["ensemble_wall_ms"].as_f64().unwrap() > 0.0);
    let text = resnet("profile", &ws, &[&size[..], &["--iters", "1"]].concat());
    assert!(
        text.contains("member 1: ") && text.contains("m1.conv1"),
        "{text}"
    );
    assert!(text.contains("ensemble of 2:"), "{text}");
}
