//! End to end against PyTorch golden fixtures (made by scripts/make_fixtures.py), with both
//! conv kernels, shader bounds checks on and off (see `fixture_tests!` for which fixture runs
//! in which configurations).

use crate::common;

use std::sync::Arc;

use common::{fixture, gpu_mode, Mode, ALL_MODES};
use resnet_wgpu::npy::read_f32;
use resnet_wgpu::reference::relative_error;
use resnet_wgpu::{Engine, GpuContext, Output, WeightsFile};

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    file: String,
    input: String,
    logits: String,
    classes: usize,
    batch: usize,
    height: usize,
    width: usize,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(fixture("manifest.json")).expect("manifest");
    serde_json::from_str(&text).expect("manifest JSON")
}

/// Worst relative error of our logits against PyTorch's float64 logits, per fixture.
fn check(name: &str, mode: Mode) {
    let Some(ctx) = gpu_mode(mode) else { return };
    check_on(ctx, name, &format!("{mode:?}"));
}

/// Runs fixture `name` on `ctx` (described as `label` in the log), checks it against
/// PyTorch's logits and returns ours.
pub fn check_on(ctx: Arc<GpuContext>, name: &str, label: &str) -> Vec<f32> {
    let case = cases()
        .into_iter()
        .find(|c| c.name == name)
        .expect("case in manifest");
    let weights = WeightsFile::open(fixture(&case.file)).unwrap();
    let engine = Engine::load_on(ctx, &weights).unwrap();
    let input = read_f32(&fixture(&case.input)).unwrap();
    let want = read_f32(&fixture(&case.logits)).unwrap();
    assert_eq!(input.shape, vec![case.batch, 3, case.height, case.width]);
    let got = engine
        .run(
            &input.data,
            case.batch,
            case.height,
            case.width,
            Output::Logits,
        )
        .unwrap();
    assert_eq!(got.len(), case.batch * case.classes);
    let err = relative_error(&got, &want.data);
    eprintln!("{name} ({label}): relative error {err:.3e}");
    // The bar: f32 end to end within 1e-4 of PyTorch (computed in f64); f16 1e-2.
    let tol = common::end_to_end_tolerance(&engine.ctx);
    assert!(err <= tol, "{name}: relative error {err:.3e} > {tol:e}");
    // Same top-1 for every sample.
    for n in 0..case.batch {
        let argmax = |v: &[f32]| {
            v.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i)
        };
        let row = n * case.classes..(n + 1) * case.classes;
        assert_eq!(
            argmax(&got[row.clone()]),
            argmax(&want.data[row]),
            "{name}: top-1 differs for sample {n}"
        );
    }
    got
}

/// Which configurations a fixture runs in.
#[derive(Clone, Copy)]
enum Modes {
    /// Every (checked × conv kernel) configuration.
    All,
    /// Unchecked tiled and checked register-only: each shader mode and each conv kernel once.
    Diagonal,
    /// Unchecked register-only and checked tiled: the other two configurations.
    AntiDiagonal,
}

impl Modes {
    fn modes(self) -> Vec<Mode> {
        let pick = |keep: fn(&Mode) -> bool| ALL_MODES.into_iter().filter(keep).collect();
        match self {
            Modes::All => ALL_MODES.to_vec(),
            Modes::Diagonal => pick(|m| m.checked == m.registers),
            Modes::AntiDiagonal => pick(|m| m.checked != m.registers),
        }
    }
}

macro_rules! fixture_tests {
    ($($test:ident => $name:literal in $modes:ident),* $(,)?) => {$(
        #[test]
        fn $test() {
            for mode in Modes::$modes.modes() {
                check($name, mode);
            }
        }
    )*};
}

// The small networks of each block type (tiny and resnet18: basic blocks; resnet50:
// bottlenecks) run in all four configurations. The others add depth, storage dtypes and a
// 224×224 input to the same layer kinds, so two configurations that between them cover both
// shader modes and both conv kernels suffice; alternating the pair per fixture runs each of
// the four configurations on deep networks too. The `kernels` module checks every conv path
// (pointwise, strided 1×1, NCHW stem, residual, tile edges) in all four configurations
// against the CPU reference.
fixture_tests! {
    tiny => "tiny" in All,
    resnet18 => "resnet18" in All,
    resnet50 => "resnet50" in All,
    resnet34 => "resnet34" in Diagonal,
    resnet101 => "resnet101" in AntiDiagonal,
    resnet152 => "resnet152" in Diagonal,
    resnet18_f16 => "resnet18_f16" in AntiDiagonal,
    resnet50_bf16 => "resnet50_bf16" in Diagonal,
    resnet18_224 => "resnet18_224" in AntiDiagonal,
}
