//! Pre-activation (ResNet v2, Wide ResNets) on the GPU: convs and average pools that read
//! their input through a BatchNorm + ReLU, and convs with no BatchNorm after them, against
//! the CPU reference on seeded random shapes, with both conv kernels and both shader modes.

use crate::common::{self, bn_tensors, Mode, Rng, ALL_MODES};
use resnet_wgpu::graph::{Conv, Graph, HeadWindow, InputSize, Op, Window};
use resnet_wgpu::reference::{relative_error, run_graph};
use resnet_wgpu::weights::serialize_f32;
use resnet_wgpu::{Engine, Output, WeightsFile};

/// Seeded random pre-activating conv: odd sizes and channel counts, strides, padding,
/// 1×1 (the plain-GEMM path), sometimes no BatchNorm after it (a v2 block's last conv).
fn random_conv(rng: &mut Rng) -> (Conv, InputSize) {
    let k = [1, 3, 5][rng.range(0, 2)];
    let stride = rng.range(1, 2);
    let conv = Conv {
        weight: "conv.weight".into(),
        bn: if rng.range(0, 2) == 0 {
            String::new()
        } else {
            "conv.bn".into()
        },
        in_channels: rng.range(1, 19),
        out_channels: rng.range(1, 23),
        groups: 1,
        kernel: k,
        stride,
        pad: rng.range(0, k / 2),
        temporal: Window::POINT,
        relu: rng.range(0, 1) == 1,
        input_nchw: false,
        pre_act: Some("pre".into()),
    };
    let size = InputSize::image(rng.range(1, 3), rng.range(k, 15), rng.range(k, 15));
    (conv, size)
}

fn conv_matches_reference(mode: Mode, seed: u64, count: usize) {
    let Some(ctx) = common::gpu_mode(mode) else {
        return;
    };
    let mut rng = Rng::new(seed);
    for case in 0..count {
        let (conv, size) = random_conv(&mut rng);
        // A residual needs "same" padding; the shortcut then reads the activated input too.
        let residual = 2 * conv.pad + 1 == conv.kernel && rng.range(0, 1) == 1;
        // Inputs around the BatchNorm's mean, so the ReLU clips about half of them.
        let what = format!("case {case} {mode:?}");
        common::one_conv_matches_reference(&ctx, &mut rng, (conv, residual), size, 1.5, &what);
    }
}

#[test]
fn pre_activated_convs_match_the_reference_tiled() {
    conv_matches_reference(ALL_MODES[0], 51, 24);
}

#[test]
fn pre_activated_convs_match_the_reference_registers() {
    conv_matches_reference(ALL_MODES[1], 52, 24);
}

#[test]
fn pre_activated_convs_match_the_reference_checked() {
    conv_matches_reference(ALL_MODES[2], 53, 10);
    conv_matches_reference(ALL_MODES[3], 54, 10);
}

/// ResNet-v2-D's shortcut pool (2×2 average, ceil mode) and a v2 network's final norm
/// before the global average, both reading the activated input.
#[test]
fn pre_activated_pools_match_the_reference() {
    let Some(ctx) = common::gpu(false) else {
        return;
    };
    let mut rng = Rng::new(55);
    for case in 0..12 {
        let c = rng.range(1, 13);
        let mut g = Graph::default();
        g.input = g.new_value();
        g.input_channels = c;
        let pool = Op::AvgPool {
            kernel: 2,
            stride: 2,
            pad: 0,
            ceil_mode: true,
            pre_act: Some("a".into()),
        };
        let pooled = g.push("pool", pool, vec![g.input]);
        let global = Op::GlobalAvgPool {
            window: HeadWindow::Whole,
            pre_act: Some("b".into()),
        };
        g.output = g.push("avg", global, vec![pooled]);
        g.features = pooled;
        let mut tensors = bn_tensors(&mut rng, "a", c);
        tensors.extend(bn_tensors(&mut rng, "b", c));
        let weights =
            WeightsFile::from_bytes("pools", serialize_f32(&tensors, None).unwrap()).unwrap();
        let (n, h, w) = (rng.range(1, 3), rng.range(2, 11), rng.range(2, 11));
        let x = rng.vec(n * c * h * w, -1.5, 1.5);
        let (want, want_pooled) = run_graph(&g, &weights, &x, n, h, w).unwrap();
        let engine = Engine::from_graph(ctx.clone(), g, &weights).unwrap();
        let got = engine.run(&x, n, h, w, Output::Logits).unwrap();
        let got_pooled = engine.run(&x, n, h, w, Output::Features).unwrap();
        let what = format!("case {case}: {c} channels at {n}x{h}x{w}");
        assert!(relative_error(&got_pooled, &want_pooled) <= 1e-6, "{what}");
        assert!(relative_error(&got, &want) <= 1e-6, "{what}");
    }
}
