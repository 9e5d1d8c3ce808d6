//! Full-width torchvision ResNets at 224×224 with synthetic weights, against the CPU
//! reference (committed PyTorch fixtures are narrow to stay small).

use crate::common;

use std::time::Instant;

use common::gpu;
use resnet_wgpu::model::{arch, synthetic::synthetic_weights};
use resnet_wgpu::reference::{relative_error, run_graph};
use resnet_wgpu::{Engine, Output};

fn check(name: &str, n: usize, h: usize, w: usize) {
    let Some(ctx) = gpu(false) else { return };
    let a = arch::standard(name, 1000).unwrap();
    let weights = synthetic_weights(&a, 7).unwrap();
    let engine = Engine::load_on(ctx, &weights).unwrap();
    let mut rng = common::Rng::new(11);
    let input = rng.vec(n * 3 * h * w, -2.0, 2.0);
    let _ = engine.run(&input, n, h, w, Output::Logits).unwrap(); // plan + pipelines
    let t = Instant::now();
    let got = engine.run(&input, n, h, w, Output::Logits).unwrap();
    let gpu_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let (want, _) = run_graph(&engine.graph, &weights, &input, n, h, w).unwrap();
    let cpu_ms = t.elapsed().as_secs_f64() * 1e3;
    let err = relative_error(&got, &want);
    eprintln!("{name} {n}x3x{h}x{w}: GPU {gpu_ms:.0} ms (warm), CPU reference {cpu_ms:.0} ms, relative error {err:.3e}");
    // f32 GPU vs f64-accumulating CPU reference over 50 layers.
    assert!(err <= 1e-4, "{name}: relative error {err:.3e}");
}

#[test]
fn resnet50_full_width_224() {
    check("resnet50", 1, 224, 224);
}

#[test]
fn resnet18_full_width_odd_size_batch2() {
    check("resnet18", 2, 97, 131);
}
