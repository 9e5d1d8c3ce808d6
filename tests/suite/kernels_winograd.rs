//! Winograd F(2×2, 3×3) and F(4×4, 3×3) (winograd.wgsl) against the CPU reference on seeded
//! random shapes, in both shader modes; the validity check's refusals; PyTorch fixtures end to
//! end with every eligible conv forced onto Winograd.

use std::sync::{Arc, OnceLock};

use crate::common::{self, Rng};
use crate::end_to_end::check_on;
use resnet_wgpu::gpu::context::WinogradChoice;
use resnet_wgpu::gpu::disk_cache::DiskCache;
use resnet_wgpu::gpu::ops::conv::{ConvAlgo, ConvConfig, ConvProblem, ConvTiles, DeviceFit};
use resnet_wgpu::gpu::ops::Kernel;
use resnet_wgpu::graph::{Conv, InputSize, Window};
use resnet_wgpu::{Engine, GpuContext, GpuOptions};

/// A device that runs every eligible conv with Winograd tiles of `tile` (2 or 4).
fn gpu_winograd(checked: bool, tile: usize) -> Option<Arc<GpuContext>> {
    static CTX: [OnceLock<Option<Arc<GpuContext>>>; 4] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    CTX[checked as usize * 2 + usize::from(tile == 4)]
        .get_or_init(|| {
            common::gpu_with(&GpuOptions {
                checked_shaders: checked,
                winograd: match tile {
                    2 => WinogradChoice::Tile2,
                    _ => WinogradChoice::Tile4,
                },
                disk_cache: DiskCache::Off,
                ..Default::default()
            })
        })
        .clone()
}

/// Seeded random Winograd-eligible conv: odd sizes, channel counts that are not multiples
/// of 4 or of the GEMM tiles, padding 0–2, with or without BatchNorm, ReLU and a
/// pre-activation.
fn random_conv(rng: &mut Rng) -> (Conv, InputSize) {
    let pre_act = rng.range(0, 2) == 0;
    let conv = Conv {
        weight: "conv.weight".into(),
        bn: if rng.range(0, 3) == 0 {
            String::new()
        } else {
            "conv.bn".into()
        },
        in_channels: rng.range(1, 21),
        out_channels: rng.range(1, 70),
        groups: 1,
        kernel: 3,
        stride: 1,
        pad: rng.range(0, 2),
        temporal: Window::POINT,
        relu: rng.range(0, 1) == 1,
        input_nchw: false,
        pre_act: pre_act.then(|| "pre".into()),
    };
    let size = InputSize::image(rng.range(1, 3), rng.range(3, 17), rng.range(3, 17));
    (conv, size)
}

/// `count` random convs on the Winograd device, each checked against the reference, and
/// the plan checked to run Winograd (so the test cannot pass on the direct kernels).
fn convs_match_reference(checked: bool, tile: usize, seed: u64, count: usize) {
    let Some(ctx) = gpu_winograd(checked, tile) else {
        return;
    };
    let mut rng = Rng::new(seed);
    for case in 0..count {
        let (conv, size) = random_conv(&mut rng);
        let residual = conv.pad == 1 && rng.range(0, 1) == 1;
        let what = format!("F({tile}x{tile}) checked {checked} case {case}");
        common::one_conv_matches_reference(
            &ctx,
            &mut rng,
            (conv.clone(), residual),
            size,
            1.5,
            &what,
        );
        let one = common::one_conv(&mut Rng::new(seed), conv, residual);
        let engine = Engine::from_graph(ctx.clone(), one.graph, &one.weights).unwrap();
        let plan = engine.plan(size).unwrap();
        let plan = plan.lock().unwrap();
        assert!(
            plan.steps
                .iter()
                .any(|s| s.kernel == Kernel::WinogradGemm.spec()),
            "{what}: the plan does not run Winograd"
        );
    }
}

#[test]
fn winograd_2x2_matches_the_reference() {
    convs_match_reference(false, 2, 141, 16);
    convs_match_reference(true, 2, 142, 6);
}

#[test]
fn winograd_4x4_matches_the_reference() {
    convs_match_reference(false, 4, 143, 16);
    convs_match_reference(true, 4, 144, 6);
}

fn config(algo: ConvAlgo) -> ConvConfig {
    ConvConfig {
        algo,
        tiles: ConvTiles::for_registers(64),
        split_k: 1,
    }
}

fn problem(in_c: usize, out_c: usize, hw: usize) -> ConvProblem {
    ConvProblem {
        pre_act: true,
        ..ConvProblem::same_size(1, hw, in_c, out_c, 3)
    }
}

/// Strided, 1×1, grouped, temporal and NCHW convs are refused with a reason, as are
/// split-K, broken tiles and transformed tiles larger than a binding.
#[test]
fn check_refuses_ineligible_problems() {
    let fit = DeviceFit::of(&wgpu::Limits::default());
    let ok = problem(64, 64, 56);
    let strided = ConvProblem {
        stride: 2,
        out_h: 28,
        out_w: 28,
        ..ok
    };
    let pointwise = ConvProblem {
        kernel: 1,
        pad: 0,
        ..ok
    };
    let grouped = ConvProblem { groups: 32, ..ok };
    let temporal = ConvProblem {
        in_t: 4,
        out_t: 4,
        kernel_t: 3,
        pad_t: 1,
        ..ok
    };
    let stem = ConvProblem {
        input_nchw: true,
        in_c: 3,
        ..ok
    };
    let huge = ConvProblem { batch: 512, ..ok };
    for algo in [ConvAlgo::Winograd2, ConvAlgo::Winograd4] {
        let c = config(algo);
        assert_eq!(c.check(&ok, &fit), Ok(()), "{algo:?}");
        for bad in [strided, pointwise, grouped, temporal, stem, huge] {
            let why = c.check(&bad, &fit);
            assert!(why.is_err(), "{algo:?} accepted {bad:?}");
        }
        let split = ConvConfig { split_k: 2, ..c };
        assert!(split.check(&ok, &fit).is_err());
        let broken = ConvConfig {
            tiles: ConvTiles {
                tile_m: 6,
                tile_n: 64,
                tile_k: 4,
            },
            ..c
        };
        assert!(broken.check(&ok, &fit).is_err());
        // Scratch and transformed weights are counted: more than 128 MiB is refused.
        assert!(c.scratch_bytes(&huge) > fit.binding_bytes);
    }
}

/// The tune cache spells the algorithms `winograd2x2` and `winograd4x4`.
#[test]
fn algorithms_serialise_by_tile() {
    for (algo, name) in [
        (ConvAlgo::Winograd2, "\"winograd2x2\""),
        (ConvAlgo::Winograd4, "\"winograd4x4\""),
    ] {
        assert_eq!(serde_json::to_string(&algo).unwrap(), name);
        assert_eq!(serde_json::from_str::<ConvAlgo>(name).unwrap(), algo);
    }
}

/// PyTorch fixtures end to end with every stride-1 3×3 conv on Winograd, within 1e-4:
/// basic blocks (resnet18) and bottlenecks (resnet50), both tile sizes, both shader modes.
#[test]
fn fixtures_match_pytorch_on_winograd() {
    for (name, checked, tile) in [
        ("resnet18", false, 2),
        ("resnet18", true, 4),
        ("resnet50", false, 4),
        ("resnet50", true, 2),
    ] {
        let Some(ctx) = gpu_winograd(checked, tile) else {
            return;
        };
        check_on(
            ctx,
            name,
            &format!("Winograd F({tile}x{tile}) checked {checked}"),
        );
    }
}

/// One case of `tests/fixtures/preact/manifest.json` (the fields this test reads).
#[derive(serde::Deserialize)]
struct PreActCase {
    name: String,
    input: String,
    logits: String,
    batch: usize,
    height: usize,
    width: usize,
}

/// The pre-activation fixtures (Wide ResNets and timm's ResNetV2: every 3×3 after the stem
/// reads a BatchNorm + ReLU through the input transform) on both tile sizes, within 1e-4.
#[test]
fn preact_fixtures_match_pytorch_on_winograd() {
    use resnet_wgpu::Network;
    let text = std::fs::read_to_string(common::fixture("preact/manifest.json")).unwrap();
    let cases: Vec<PreActCase> = serde_json::from_str(&text).unwrap();
    for tile in [2, 4] {
        let Some(ctx) = gpu_winograd(false, tile) else {
            return;
        };
        for case in &cases {
            let path = |rel: &str| common::fixture(&format!("preact/{rel}"));
            let w =
                resnet_wgpu::WeightsFile::open(path(&format!("{}/model.safetensors", case.name)))
                    .unwrap();
            let network = Network::detect(&w).unwrap();
            let size = InputSize::image(case.batch, case.height, case.width);
            let what = format!("{} on Winograd F({tile}x{tile})", case.name);
            let files = (path(&case.input), path(&case.logits));
            common::network_matches_pytorch(&ctx, &what, network, &w, (&files.0, &files.1), size);
        }
    }
}
