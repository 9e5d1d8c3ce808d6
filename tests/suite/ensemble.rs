//! Ensembles from the command line: `resnet run` with several `--weights` blends the
//! members' probabilities or logits (weighted), tied to PyTorch through a member's fixture;
//! members that disagree on the classes, or weights that do not fit, are refused.

use crate::common::{self, fixture};

use std::path::{Path, PathBuf};

use resnet_wgpu::npy::read_f32;
use resnet_wgpu::reference::relative_error;
use resnet_wgpu::scores::{combine, Combine};

fn default_weights() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/default.safetensors")
}

/// `resnet run` with these weights on the resnet18 fixture's input; the output tensor.
fn run(weights: &[&Path], extra: &[&str], out: &Path) -> Vec<f32> {
    let input = fixture("resnet18.input.npy");
    let mut args = vec!["run".to_string()];
    for w in weights {
        args.extend(["--weights".into(), w.display().to_string()]);
    }
    args.extend(["--input".into(), input.display().to_string()]);
    args.extend(["--output".into(), out.display().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = common::resnet(&args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{args:?}: {stderr}");
    read_f32(out).unwrap().data
}

#[test]
fn an_ensemble_blends_its_members_probabilities_or_logits() {
    if common::gpu(false).is_none() {
        return;
    }
    let dir = common::scratch("ensemble");
    // Two 10-class networks of different depth and width: the digits model and the
    // torchvision ResNet-18 fixture, both fed the fixture's (2, 3, 97, 131) input.
    let (digits, resnet18) = (default_weights(), fixture("resnet18.safetensors"));
    let a = run(&[&digits], &[], &dir.join("a.npy"));
    let b = run(&[&resnet18], &[], &dir.join("b.npy"));
    let members = [digits.as_path(), resnet18.as_path()];
    let probs = run(&members, &[], &dir.join("p.npy"));
    let want = combine(&[a.clone(), b.clone()], &[1.0, 1.0], Combine::Probs, 10);
    assert!(
        relative_error(&probs, &want) <= 1e-6,
        "{probs:?} vs {want:?}"
    );
    let weighted = ["--combine", "logits", "--ensemble-weights", "2,1"];
    let logits = run(&members, &weighted, &dir.join("l.npy"));
    let want = combine(&[a, b.clone()], &[2.0, 1.0], Combine::Logits, 10);
    assert!(relative_error(&logits, &want) <= 1e-6);
    // All the weight on ResNet-18: PyTorch's logits for it.
    let only = ["--combine", "logits", "--ensemble-weights", "0,1"];
    let pytorch = read_f32(&fixture("resnet18.logits.npy")).unwrap().data;
    let got = run(&members, &only, &dir.join("o.npy"));
    assert!(relative_error(&got, &pytorch) <= 1e-4);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ensemble_members_must_agree_on_classes_and_weights_must_fit() {
    let dir = common::scratch("ensemble-refusals");
    let (digits, resnet34) = (default_weights(), fixture("resnet34.safetensors"));
    let input = fixture("resnet18.input.npy");
    let out = dir.join("y.npy");
    let base = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--weights",
            digits.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        common::resnet(&args)
    };
    let o = base(&["--weights", resnet34.to_str().unwrap()]);
    common::assert_user_error(
        "mismatched classes",
        &o,
        &["10 classes", "37 classes", "resnet34.safetensors"],
    );
    let resnet18 = fixture("resnet18.safetensors");
    let o = base(&[
        "--weights",
        resnet18.to_str().unwrap(),
        "--ensemble-weights",
        "1",
    ]);
    common::assert_user_error(
        "one weight for two",
        &o,
        &["1 ensemble weights for 2 members"],
    );
    let o = base(&["--weights", resnet18.to_str().unwrap(), "--features"]);
    common::assert_user_error("features", &o, &["--features with several --weights"]);
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `resnet classify IMAGE --json --top-k 10` with these weights (and flags): each class's
/// probability, and its label.
fn classify(weights: &[&Path], extra: &[&str]) -> Vec<(f64, String)> {
    let image = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/7_0027.png");
    let mut args = vec!["classify".to_string(), image.display().to_string()];
    for w in weights {
        args.extend(["--weights".into(), w.display().to_string()]);
    }
    args.extend(["--json", "--top-k", "10"].map(String::from));
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = common::resnet(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut out = vec![(f64::NAN, String::new()); 10];
    for t in v[0]["top"].as_array().unwrap() {
        let c = t["class"].as_u64().unwrap() as usize;
        out[c] = (
            t["prob"].as_f64().unwrap(),
            t["label"].as_str().unwrap().into(),
        );
    }
    out
}

#[test]
fn an_ensemble_classifies_with_each_members_own_preprocessing() {
    if common::gpu(false).is_none() {
        return;
    }
    // The digits model reads 32×32 crops, ResNet-18 (torchvision's preset) 224×224 ones.
    let (digits, resnet18) = (default_weights(), fixture("resnet18.safetensors"));
    let a = classify(&[&digits], &[]);
    let b = classify(&[&resnet18], &[]);
    let both = classify(&[&resnet18, &digits], &[]);
    for c in 0..10 {
        let mean = (a[c].0 + b[c].0) / 2.0;
        assert!(
            (both[c].0 - mean).abs() <= 1e-6,
            "class {c}: {} vs {mean}",
            both[c].0
        );
    }
    // Class names come from the first member that has names: ResNet-18 has none (indices),
    // a copy of it named in its metadata does.
    let dir = common::scratch("ensemble-names");
    let named = dir.join("named.safetensors");
    let w = resnet_wgpu::WeightsFile::open(&resnet18).unwrap();
    let tensors: Vec<_> = w
        .tensors
        .iter()
        // Float tensors only (BatchNorm's integer `num_batches_tracked` is not read).
        .filter_map(|(name, t)| Some((name.clone(), t.shape.clone(), w.to_f32(name)?)))
        .collect();
    let names: Vec<String> = (0..10).map(|c| format!("class-{c}")).collect();
    let meta = std::collections::HashMap::from([(
        "resnet.labels".to_string(),
        serde_json::to_string(&names).unwrap(),
    )]);
    let bytes = resnet_wgpu::weights::serialize_f32(&tensors, Some(meta)).unwrap();
    std::fs::write(&named, bytes).unwrap();
    let labelled = classify(&[&resnet18, &named], &[]);
    assert_eq!(b[7].1, "7");
    assert_eq!(labelled[7].1, "class-7");
    std::fs::remove_dir_all(&dir).unwrap();
    // All the weight on one member: its own probabilities.
    let only = classify(
        &[&resnet18, &digits],
        &["--combine", "logits", "--ensemble-weights", "0,1"],
    );
    for c in 0..10 {
        assert!((only[c].0 - a[c].0).abs() <= 1e-6, "class {c}");
    }
}
