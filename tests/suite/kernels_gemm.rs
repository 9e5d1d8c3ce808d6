//! 1×1 convs on the GEMM kernels (gemm.wgsl: `gemm`'s register blocks, `gemm_tiled`'s
//! tiles) against the CPU reference on seeded random shapes, in both shader modes: M not a
//! multiple of any block, channels multiples of 4 but not of the tiles, stride 1 and 2,
//! residual, ReLU and pre-activation on and off, batches > 1. Each case forces its
//! configuration through the engine's tuning table and checks the profile ran it.

use crate::common::{self, one_conv, Rng, MODES};
use resnet_wgpu::gpu::ops::conv::gemm::{gemm_tiles, GEMM_BLOCKS};
use resnet_wgpu::gpu::ops::conv::{ConvAlgo, ConvConfig, ConvProblem, ConvTiles, DeviceFit};
use resnet_wgpu::graph::{Conv, InputSize, Window};
use resnet_wgpu::reference::{relative_error, run_clip_graph};
use resnet_wgpu::{Engine, Output};

/// Every `gemm` register block and a spread of `gemm_tiled` tiles (square, wide, tall,
/// TILE_K from 4 to 32).
fn gemm_configs() -> Vec<ConvConfig> {
    let config = |algo, tiles| ConvConfig {
        algo,
        tiles,
        split_k: 1,
    };
    let mut all: Vec<ConvConfig> = GEMM_BLOCKS
        .iter()
        .map(|&(bm, bn)| config(ConvAlgo::Gemm, gemm_tiles(bm, bn)))
        .collect();
    for (tile_m, tile_n, tile_k) in [(16, 16, 4), (64, 32, 16), (32, 64, 32), (64, 64, 8)] {
        let tiles = ConvTiles {
            tile_m,
            tile_n,
            tile_k,
        };
        all.push(config(ConvAlgo::GemmTiled, tiles));
    }
    all
}

/// A seeded 1×1 conv: channels multiples of 4 (not of 8 or the tiles, often), odd sizes.
fn random_pointwise(rng: &mut Rng) -> (Conv, bool, InputSize) {
    let quad = |rng: &mut Rng| 4 * rng.range(1, 35);
    let pre_act = rng.range(0, 2) == 0;
    let conv = Conv {
        weight: "conv.weight".into(),
        bn: "conv.bn".into(),
        in_channels: quad(rng),
        out_channels: quad(rng),
        groups: 1,
        kernel: 1,
        stride: rng.range(1, 2),
        pad: 0,
        temporal: Window::POINT,
        relu: rng.range(0, 1) == 1,
        input_nchw: false,
        pre_act: pre_act.then(|| "pre".into()),
    };
    let residual = rng.range(0, 1) == 1;
    let odd = |rng: &mut Rng| 2 * rng.range(0, 6) + 1;
    let size = InputSize::image(rng.range(1, 3), odd(rng), odd(rng));
    (conv, residual, size)
}

/// Runs the conv (and its 1×1 shortcut, when `residual`) with every conv on `config`; returns
/// the relative error against the CPU reference.
fn gemm_error(
    ctx: &std::sync::Arc<resnet_wgpu::GpuContext>,
    rng: &mut Rng,
    (conv, residual, size): (Conv, bool, InputSize),
    config: ConvConfig,
) -> f64 {
    let one = one_conv(rng, conv.clone(), residual);
    let x = rng.vec(size.n * conv.in_channels * size.h * size.w, -1.5, 1.5);
    let dims = [size.n, size.t, size.h, size.w];
    let (want, _) = run_clip_graph(&one.graph, &one.weights, &x, dims).unwrap();
    let engine = Engine::from_graph(ctx.clone(), one.graph, &one.weights).unwrap();
    let fit = DeviceFit::of(&ctx.limits);
    let problems = engine.conv_problems(size).unwrap();
    for (_, p) in &problems {
        assert_eq!(config.check(p, &fit), Ok(()), "{config:?} refused {p:?}");
    }
    let table = problems.iter().map(|(_, p)| (p.key(), config)).collect();
    engine.set_conv_configs(table).unwrap();
    let got = engine.run_at(&x, size, Output::Logits).unwrap();
    let profile = engine.profile(&x, size, 0, 1).unwrap();
    let ran = profile.layers.iter().filter(|l| l.config.contains("gemm"));
    assert_eq!(
        ran.count(),
        problems.len(),
        "{config:?}: not every conv ran it"
    );
    assert_eq!(got.len(), want.len());
    relative_error(&got, &want)
}

fn check_configs(seed: u64, shapes_per_config: usize) {
    for checked in MODES {
        let Some(ctx) = common::gpu(checked) else {
            return;
        };
        let mut rng = Rng::new(seed);
        let mut worst = 0f64;
        for config in gemm_configs() {
            for case in 0..shapes_per_config {
                let case_shape = random_pointwise(&mut rng);
                let what = format!(
                    "{} case {case} checked {checked}: {case_shape:?}",
                    config.describe()
                );
                let err = gemm_error(&ctx, &mut rng, case_shape, config);
                assert!(err <= 1e-5, "{what}: relative error {err:.2e}");
                worst = worst.max(err);
            }
        }
        eprintln!("gemm kernels (checked {checked}): worst relative error {worst:.2e}");
    }
}

/// Random shapes per configuration and shader mode (each compiles its own specialisation).
const SHAPES_PER_CONFIG: usize = 2;

#[test]
fn gemm_kernels_match_the_reference() {
    check_configs(0x6E33, SHAPES_PER_CONFIG);
}

/// The random shapes above must include the awkward cases they are meant to.
#[test]
fn gemm_random_shapes_cover_the_edges() {
    let mut rng = Rng::new(0x6E33);
    let shapes: Vec<_> = (0..SHAPES_PER_CONFIG * gemm_configs().len())
        .map(|_| random_pointwise(&mut rng))
        .collect();
    let any = |f: &dyn Fn(&(Conv, bool, InputSize)) -> bool| shapes.iter().any(f);
    assert!(any(&|(c, _, _)| c.stride == 2) && any(&|(c, _, _)| c.stride == 1));
    assert!(any(&|(c, _, _)| c.pre_act.is_some()) && any(&|(c, _, _)| c.pre_act.is_none()));
    assert!(any(&|(_, r, _)| *r) && any(&|(_, r, _)| !*r));
    assert!(any(&|(c, _, _)| c.relu) && any(&|(c, _, _)| !c.relu));
    assert!(any(&|(_, _, s)| s.n > 1));
    assert!(any(
        &|(c, _, _)| c.out_channels % 8 == 4 && c.in_channels % 8 == 4
    ));
}

/// A 1×1 conv of 2 images of 7×7 pixels.
fn pointwise(in_c: usize, out_c: usize) -> ConvProblem {
    ConvProblem::same_size(2, 7, in_c, out_c, 1)
}

/// The one check refuses what the GEMM kernels cannot compute, and GEMM tiles that are no
/// register block; the heuristic never picks them there.
#[test]
fn gemm_check_refuses_ineligible_problems() {
    let fit = DeviceFit::of(&wgpu::Limits::default());
    let ok = pointwise(64, 256);
    let mut bad = Vec::new();
    for (in_c, out_c) in [(63, 64), (64, 30), (3, 5)] {
        bad.push(pointwise(in_c, out_c));
    }
    bad.push(ConvProblem {
        kernel: 3,
        pad: 1,
        ..ok
    });
    bad.push(ConvProblem {
        input_nchw: true,
        ..ok
    });
    bad.push(ConvProblem { groups: 4, ..ok });
    bad.push(ConvProblem { pad: 1, ..ok });
    bad.push(ConvProblem {
        in_t: 4,
        out_t: 4,
        ..ok
    });
    for config in gemm_configs() {
        assert_eq!(config.check(&ok, &fit), Ok(()), "{config:?}");
        for p in &bad {
            assert!(config.check(p, &fit).is_err(), "{config:?} accepted {p:?}");
            let h = ConvConfig::heuristic(p, true, false, &fit);
            assert!(
                !matches!(h.algo, ConvAlgo::Gemm | ConvAlgo::GemmTiled),
                "{p:?}"
            );
        }
        assert!(ConvConfig {
            split_k: 2,
            ..config
        }
        .check(&ok, &fit)
        .is_err());
    }
    let tiles = |tile_m, tile_n, tile_k| ConvTiles {
        tile_m,
        tile_n,
        tile_k,
    };
    for (algo, t) in [
        (ConvAlgo::Gemm, tiles(72, 64, 4)),  // a 9-pixel block
        (ConvAlgo::Gemm, tiles(32, 48, 4)),  // 6 channels per thread
        (ConvAlgo::Gemm, tiles(32, 128, 4)), // 16 channels per thread
        (ConvAlgo::Gemm, tiles(32, 64, 8)),  // TILE_K means nothing here: only 4
        (ConvAlgo::Gemm, tiles(0, 64, 4)),
        (ConvAlgo::GemmTiled, tiles(64, 64, 6)),
        (ConvAlgo::GemmTiled, tiles(64, 64, 0)),
        (ConvAlgo::GemmTiled, tiles(1024, 1024, 16)),
        (ConvAlgo::GemmTiled, tiles(0, 64, 16)),
    ] {
        let c = ConvConfig {
            algo,
            tiles: t,
            split_k: 1,
        };
        assert!(c.check(&ok, &fit).is_err(), "{c:?} accepted");
    }
}

/// The ResNet-50 fixture (bottlenecks: 1×1 convs at stride 1 and the stride-2 downsample
/// shortcuts) with every eligible conv on a GEMM kernel — `gemm` unchecked, `gemm_tiled`
/// checked — against PyTorch's logits, within 1e-4.
#[test]
fn resnet50_fixture_through_the_gemm_kernels() {
    use resnet_wgpu::gpu::ops::conv::gemm::{default_gemm, problem_error};
    use resnet_wgpu::npy::read_f32;
    use resnet_wgpu::WeightsFile;
    let weights = WeightsFile::open(common::fixture("resnet50.safetensors")).unwrap();
    let x = read_f32(&common::fixture("resnet50.input.npy")).unwrap();
    let want = read_f32(&common::fixture("resnet50.logits.npy")).unwrap();
    let [n, _, h, w] = x.shape[..] else {
        panic!("NCHW input expected")
    };
    let size = InputSize::image(n, h, w);
    for checked in MODES {
        let Some(ctx) = common::gpu(checked) else {
            return;
        };
        let config = match checked {
            false => default_gemm(),
            true => ConvConfig {
                algo: ConvAlgo::GemmTiled,
                tiles: ConvTiles {
                    tile_m: 32,
                    tile_n: 32,
                    tile_k: 16,
                },
                split_k: 1,
            },
        };
        let engine = Engine::load_on(ctx, &weights).unwrap();
        let eligible: Vec<ConvProblem> = engine
            .conv_problems(size)
            .unwrap()
            .into_iter()
            .map(|(_, p)| p)
            .filter(|p| problem_error(p).is_none())
            .collect();
        assert!(eligible.iter().any(|p| p.stride == 2) && eligible.len() >= 30);
        let table = eligible.iter().map(|p| (p.key(), config)).collect();
        engine.set_conv_configs(table).unwrap();
        for p in &eligible {
            assert_eq!(engine.conv_config(p), config, "{p:?}");
        }
        let got = engine.run(&x.data, n, h, w, Output::Logits).unwrap();
        let err = relative_error(&got, &want.data);
        eprintln!(
            "resnet50 on {} (checked {checked}): {err:.2e}",
            config.describe()
        );
        assert!(err <= 1e-4, "relative error {err:.2e}");
    }
}
