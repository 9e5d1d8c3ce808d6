//! Video ResNets on the GPU: every PyTorch fixture end to end (both conv kernels, both
//! shader modes), the 3-D conv and pool kernels against the CPU reference on seeded random
//! clips, and batches of clips split like batches of images.

use crate::common::{self, Mode, Rng, ALL_MODES};
use crate::video::{cases, video_fixture};
use resnet_wgpu::graph::{Conv, Graph, HeadWindow, InputSize, Op, Window};
use resnet_wgpu::model::video::detect_video;
use resnet_wgpu::reference::{relative_error, run_clip_graph};
use resnet_wgpu::weights::serialize_f32;
use resnet_wgpu::{Engine, Network, Output, WeightsFile};

/// Every fixture through the engine at its PyTorch input, in `mode`: logits and features.
pub(crate) fn fixtures_match_pytorch(mode: Mode) {
    let Some(ctx) = common::gpu_mode(mode) else {
        return;
    };
    let all = cases();
    assert_eq!(all.len(), 7);
    for case in all {
        let w = WeightsFile::open(video_fixture(&case.weights)).unwrap();
        let mut arch = detect_video(&w).unwrap();
        arch.head_pool = case.head_pool;
        let network = Network::from_video(arch, &w).unwrap();
        let (input, logits) = (video_fixture(&case.input), video_fixture(&case.logits));
        let size = InputSize::clip(case.batch, case.frames, case.height, case.width);
        let what = format!("{} {mode:?}", case.name);
        common::network_matches_pytorch(&ctx, &what, network, &w, (&input, &logits), size);
    }
}

#[test]
fn every_video_fixture_matches_pytorch_production_tiled() {
    fixtures_match_pytorch(ALL_MODES[0]);
}

#[test]
fn every_video_fixture_matches_pytorch_production_registers() {
    fixtures_match_pytorch(ALL_MODES[1]);
}

#[test]
fn every_video_fixture_matches_pytorch_checked_tiled() {
    fixtures_match_pytorch(ALL_MODES[2]);
}

#[test]
fn every_video_fixture_matches_pytorch_checked_registers() {
    fixtures_match_pytorch(ALL_MODES[3]);
}

// ---- kernels against the CPU reference ---------------------------------------------------

/// Seeded random 3-D conv shapes: odd frame counts and sizes, temporal and spatial
/// strides and padding, channel counts that are not multiples of 4, the NCTHW stem input.
fn random_conv(rng: &mut Rng) -> (Conv, InputSize) {
    let tk = [1, 2, 3, 5][rng.range(0, 3)];
    let k = [1, 3, 7][rng.range(0, 2)];
    let input_nchw = rng.range(0, 3) == 0;
    let temporal = Window {
        kernel: tk,
        stride: rng.range(1, 2),
        pad: rng.range(0, tk / 2 + usize::from(tk == 2)),
    };
    let conv = Conv {
        weight: "conv.weight".into(),
        bn: "conv.bn".into(),
        in_channels: if input_nchw { 3 } else { rng.range(1, 13) },
        out_channels: rng.range(1, 21),
        groups: 1,
        kernel: k,
        stride: rng.range(1, 2),
        pad: rng.range(0, k / 2),
        temporal,
        relu: rng.range(0, 1) == 1,
        input_nchw,
        pre_act: None,
    };
    let t = rng.range(tk.max(1), 7);
    let size = InputSize::clip(rng.range(1, 3), t, rng.range(k, 13), rng.range(k, 13));
    (conv, size)
}

fn conv_matches_reference(mode: Mode, seed: u64, count: usize) {
    let Some(ctx) = common::gpu_mode(mode) else {
        return;
    };
    let mut rng = Rng::new(seed);
    for case in 0..count {
        let (conv, size) = random_conv(&mut rng);
        // A residual needs "same" padding, so the 1×1×1 shortcut matches the output.
        let same = |k: usize, pad: usize| 2 * pad + 1 == k;
        let residual = !conv.input_nchw
            && same(conv.kernel, conv.pad)
            && same(conv.temporal.kernel, conv.temporal.pad)
            && rng.range(0, 1) == 1;
        let what = format!("case {case} {mode:?}");
        common::one_conv_matches_reference(&ctx, &mut rng, (conv, residual), size, 1.0, &what);
    }
}

#[test]
fn conv3d_matches_the_reference_on_random_shapes_tiled() {
    conv_matches_reference(ALL_MODES[0], 31, 24);
}

#[test]
fn conv3d_matches_the_reference_on_random_shapes_registers() {
    conv_matches_reference(ALL_MODES[1], 32, 24);
}

#[test]
fn conv3d_matches_the_reference_on_random_shapes_checked() {
    conv_matches_reference(ALL_MODES[2], 33, 12);
    conv_matches_reference(ALL_MODES[3], 34, 12);
}

#[test]
fn max_pool3d_and_the_global_average_match_the_reference() {
    let Some(ctx) = common::gpu(false) else {
        return;
    };
    let mut rng = Rng::new(41);
    for case in 0..16 {
        let (k, tk) = (rng.range(1, 3), rng.range(1, 3));
        let pool = Op::MaxPool {
            kernel: k,
            stride: rng.range(1, 2),
            pad: rng.range(0, k - 1),
            temporal: Window {
                kernel: tk,
                stride: rng.range(1, 2),
                pad: rng.range(0, tk - 1),
            },
        };
        let c = rng.range(1, 11);
        let mut g = Graph::default();
        g.input = g.new_value();
        g.input_channels = c;
        let pooled = g.push("pool", pool.clone(), vec![g.input]);
        g.output = g.push(
            "avg",
            Op::GlobalAvgPool {
                window: HeadWindow::Whole,
                pre_act: None,
            },
            vec![pooled],
        );
        g.features = pooled;
        let size = InputSize::clip(
            rng.range(1, 3),
            rng.range(tk, 6),
            rng.range(k, 9),
            rng.range(k, 9),
        );
        let x = rng.vec(size.n * c * size.t * size.h * size.w, -1.0, 1.0);
        let weights = WeightsFile::from_bytes("none", serialize_f32(&[], None).unwrap()).unwrap();
        let dims = [size.n, size.t, size.h, size.w];
        let (want, want_pooled) = run_clip_graph(&g, &weights, &x, dims).unwrap();
        let engine = Engine::from_graph(ctx.clone(), g, &weights).unwrap();
        let got = engine.run_at(&x, size, Output::Logits).unwrap();
        let got_pooled = engine.run_at(&x, size, Output::Features).unwrap();
        let what = format!("case {case} {pool:?} at {size:?}");
        // The max is exact; the mean only reorders a sum.
        assert_eq!(got_pooled, want_pooled, "{what}");
        assert!(relative_error(&got, &want) <= 1e-6, "{what}");
    }
}

/// pytorchvideo's head pool on a map larger than its window: the mean of every stride-1
/// window's average, against the CPU reference that averages window by window.
#[test]
fn the_mean_of_head_windows_matches_the_reference() {
    let Some(ctx) = common::gpu(false) else {
        return;
    };
    let mut rng = Rng::new(43);
    for case in 0..12 {
        let c = rng.range(1, 9);
        let size = InputSize::clip(
            rng.range(1, 3),
            rng.range(1, 6),
            rng.range(1, 8),
            rng.range(1, 8),
        );
        let k = [size.t, size.h, size.w].map(|d| rng.range(1, d));
        let mut g = Graph::default();
        g.input = g.new_value();
        g.input_channels = c;
        let op = Op::GlobalAvgPool {
            window: HeadWindow::MeanOfWindows(k),
            pre_act: None,
        };
        g.output = g.push("avg", op, vec![g.input]);
        g.features = g.output;
        let x = rng.vec(size.n * c * size.t * size.h * size.w, -1.0, 1.0);
        let weights = WeightsFile::from_bytes("none", serialize_f32(&[], None).unwrap()).unwrap();
        let dims = [size.n, size.t, size.h, size.w];
        let (want, _) = run_clip_graph(&g, &weights, &x, dims).unwrap();
        let engine = Engine::from_graph(ctx.clone(), g, &weights).unwrap();
        let got = engine.run_at(&x, size, Output::Logits).unwrap();
        let err = relative_error(&got, &want);
        assert!(
            err <= 1e-6,
            "case {case}: window {k:?} on {size:?}: error {err:.2e}"
        );
    }
}
