//! wgpu's GL backend (Mesa's llvmpipe through EGL here): the PyTorch fixtures of each block
//! type and a grouped family member match PyTorch as on Vulkan, with the Vulkan logits too,
//! and the CLI classifies the samples the same on both. Under CI a missing GL adapter fails.

use crate::common;

use std::sync::Arc;

use common::{gpu_backend, resnet};
use resnet_wgpu::reference::relative_error;
use resnet_wgpu::GpuContext;

/// Fixture `name` (run by `check_on`) on GL and on Vulkan: both within 1e-4 of PyTorch, and
/// of each other far closer: the same WGSL on the same CPU, only the shader compilers differ.
fn gl_matches_vulkan(name: &str, check_on: fn(Arc<GpuContext>, &str, &str) -> Vec<f32>) {
    let (Some(gl), Some(vulkan)) = (gpu_backend("gl"), gpu_backend("vulkan")) else {
        return;
    };
    let t = std::time::Instant::now();
    let on_gl = check_on(gl.clone(), name, &gl.info.to_string());
    let gl_s = t.elapsed().as_secs_f64();
    let on_vulkan = check_on(vulkan.clone(), name, &vulkan.info.to_string());
    let err = relative_error(&on_gl, &on_vulkan);
    eprintln!("{name}: GL vs Vulkan relative difference {err:.3e} (GL run {gl_s:.1} s)");
    assert!(err <= 1e-6, "{name}: GL and Vulkan differ by {err:.3e}");
}

#[test]
fn torchvision_fixtures_match_on_gl() {
    // Basic blocks at two depths, and bottlenecks.
    for name in ["resnet18", "resnet34", "resnet50"] {
        gl_matches_vulkan(name, crate::end_to_end::check_on);
    }
}

#[test]
fn grouped_family_fixture_matches_on_gl() {
    // ResNeXt: grouped convs, F16 storage.
    gl_matches_vulkan("tv_resnext50", crate::family::check_on);
}

#[test]
fn cli_classifies_the_samples_alike_on_gl_and_vulkan() {
    let samples = concat!(env!("CARGO_MANIFEST_DIR"), "/samples");
    let classify = |backend: &str, json: bool| {
        let mut args = vec!["--backend", backend, "classify", samples];
        if json {
            args.push("--json");
        }
        let o = resnet(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        if !o.status.success() && std::env::var_os("CI").is_none() && err.contains("adapter") {
            eprintln!("skipping: {err}");
            return None;
        }
        assert!(o.status.success(), "{backend}: {err}");
        Some(String::from_utf8(o.stdout).expect("UTF-8 output"))
    };
    let (Some(gl), Some(vulkan)) = (classify("gl", false), classify("vulkan", false)) else {
        return;
    };
    assert_eq!(gl.lines().count(), 17, "a header and 16 samples: {gl}");
    assert_eq!(gl, vulkan, "the tables differ");
    // The table rounds; the probabilities themselves agree to float precision.
    let probs = |text: String| -> Vec<f64> {
        let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        v.as_array()
            .expect("an array")
            .iter()
            .flat_map(|image| image["top"].as_array().expect("top").clone())
            .map(|t| t["prob"].as_f64().expect("prob"))
            .collect()
    };
    let gl = probs(classify("gl", true).expect("GL ran above"));
    let vulkan = probs(classify("vulkan", true).expect("Vulkan ran above"));
    assert_eq!(gl.len(), 16 * 5);
    assert_eq!(gl.len(), vulkan.len());
    for (a, b) in gl.iter().zip(&vulkan) {
        assert!((a - b).abs() <= 1e-6, "GL {a} vs Vulkan {b}");
    }
}
