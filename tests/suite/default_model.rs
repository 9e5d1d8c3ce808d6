//! The embedded default model (weights/default.safetensors, trained by
//! scripts/train_default.py) against PyTorch on its held-out split, and its samples.

use crate::common;

use common::{fixture, gpu, MODES};
use resnet_wgpu::metadata::{class_names, preprocess_for};
use resnet_wgpu::npy::read_f32;
use resnet_wgpu::preprocess::load_and_preprocess;
use resnet_wgpu::reference::relative_error;
use resnet_wgpu::{Engine, Output, WeightsFile};

fn default_weights() -> WeightsFile {
    WeightsFile::open(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/default.safetensors"),
    )
    .unwrap()
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

#[test]
fn heldout_predictions_equal_pytorch() {
    for checked in MODES {
        let Some(ctx) = gpu(checked) else { return };
        let engine = Engine::load_on(ctx, &default_weights()).unwrap();
        let x = read_f32(&fixture("default_heldout.input.npy")).unwrap();
        let want = read_f32(&fixture("default_heldout.logits.npy")).unwrap();
        let labels = read_f32(&fixture("default_heldout.labels.npy")).unwrap();
        let n = x.shape[0];
        let got = engine.run(&x.data, n, 32, 32, Output::Logits).unwrap();
        assert!(relative_error(&got, &want.data) <= 1e-4);
        let mut correct = 0;
        for i in 0..n {
            let ours = argmax(&got[i * 10..(i + 1) * 10]);
            assert_eq!(
                ours,
                argmax(&want.data[i * 10..(i + 1) * 10]),
                "held-out image {i}: prediction differs from PyTorch"
            );
            correct += (ours == labels.data[i] as usize) as usize;
        }
        // The training script measured 63/64 on these first held-out images.
        assert!(correct >= 63, "{correct}/{n}");
    }
}

#[derive(serde::Deserialize)]
struct Sample {
    file: String,
    label: usize,
    predicted: usize,
    probability: f64,
}

#[test]
fn samples_classified_like_pytorch() {
    let Some(ctx) = gpu(false) else { return };
    let weights = default_weights();
    let engine = Engine::load_on(ctx, &weights).unwrap();
    let pre = preprocess_for(&weights).unwrap();
    let (names, _) = class_names(&weights, 10, None).unwrap();
    assert_eq!(names, (0..10).map(|i| i.to_string()).collect::<Vec<_>>());
    let samples: Vec<Sample> =
        serde_json::from_str(&std::fs::read_to_string(fixture("default_samples.json")).unwrap())
            .unwrap();
    assert_eq!(samples.len(), 16);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let mut batch = Vec::new();
    for s in &samples {
        assert!(
            s.file.starts_with(&format!("{}_", s.label)),
            "sample names start with their label"
        );
        batch.extend(load_and_preprocess(&dir.join(&s.file), &pre).unwrap());
    }
    let logits = engine
        .run(&batch, samples.len(), 32, 32, Output::Logits)
        .unwrap();
    let mut correct = 0;
    for (i, s) in samples.iter().enumerate() {
        let row = &logits[i * 10..(i + 1) * 10];
        let p = argmax(row);
        assert_eq!(
            p, s.predicted,
            "{}: PyTorch predicted {}",
            s.file, s.predicted
        );
        let max = row[p];
        let prob = 1.0 / row.iter().map(|&v| ((v - max) as f64).exp()).sum::<f64>();
        assert!(
            (prob - s.probability).abs() < 1e-4,
            "{}: prob {prob} vs PyTorch {}",
            s.file,
            s.probability
        );
        correct += (p == s.label) as usize;
    }
    assert!(
        correct * 10 >= samples.len() * 9,
        "{correct}/16 samples correct"
    );
}
