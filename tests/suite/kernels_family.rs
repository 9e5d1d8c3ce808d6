//! The family's new kernels against the CPU reference, in both shader modes: the grouped
//! convs (ResNeXt) — register-blocked for groups of 4k channels, workgroup-staged otherwise —
//! and the average pool of timm's ResNet-D shortcut, on seeded random shapes with odd sizes;
//! grouped weights stored as F32, F16 and BF16 (the fold shader's grouped re-layout).

use crate::common;

use std::sync::Arc;

use common::{encode_tensors, gpu, Rng, MODES};
use resnet_wgpu::graph::{Conv, Graph, Op, Shape, Window};
use resnet_wgpu::reference::{self, relative_error, ConvParams};
use resnet_wgpu::{Engine, GpuContext, Output, WeightsFile};
use safetensors::Dtype;

// f32 on the GPU against f64 on the CPU, dot products of at most a few thousand terms of
// |x| ≤ 2: rounding stays far below 1e-5 of the largest output, while a wrong group,
// channel offset or divisor is an O(1) error.
const TOL: f64 = 1e-5;

/// A graph over a `c`-channel input with one node built by `op`.
fn one_node(c: usize, name: &str, op: Op) -> Graph {
    let mut g = Graph {
        input_channels: c,
        ..Graph::default()
    };
    g.input = g.new_value();
    g.output = g.push(name, op, vec![g.input]);
    g.features = g.output;
    g
}

fn run(ctx: &Arc<GpuContext>, g: Graph, bytes: Vec<u8>, x: &[f32], xs: Shape) -> Vec<f32> {
    let weights = WeightsFile::from_bytes("test", bytes).unwrap();
    let engine = Engine::from_graph(ctx.clone(), g, &weights).unwrap();
    engine.run(x, xs.n, xs.h, xs.w, Output::Logits).unwrap()
}

/// One grouped conv case: input NHWC `xs`, `cout` outputs in `groups` groups.
struct Case {
    xs: Shape,
    cout: usize,
    groups: usize,
    kernel: usize,
    stride: usize,
    relu: bool,
    dtype: Dtype,
}

fn grouped_conv_error(ctx: &Arc<GpuContext>, c: &Case, rng: &mut Rng) -> f64 {
    let cin_g = c.xs.c / c.groups;
    let k = c.kernel;
    let mut tensors = vec![(
        "g.weight".to_string(),
        vec![c.cout, cin_g, k, k],
        rng.vec(c.cout * cin_g * k * k, -1.0, 1.0),
        c.dtype,
    )];
    for (p, lo, hi) in [
        ("weight", 0.5, 1.5),
        ("bias", -0.5, 0.5),
        ("running_mean", -0.5, 0.5),
        ("running_var", 0.1, 2.0),
    ] {
        tensors.push((
            format!("g.bn.{p}"),
            vec![c.cout],
            rng.vec(c.cout, lo, hi),
            c.dtype,
        ));
    }
    let bytes = encode_tensors(&tensors);
    let weights = WeightsFile::from_bytes("ref", bytes.clone()).unwrap();
    let t = |n: &str| weights.to_f32(n).unwrap();
    let (wf, bias) = reference::fold_bn(
        &t("g.weight"),
        &t("g.bn.weight"),
        &t("g.bn.bias"),
        &t("g.bn.running_mean"),
        &t("g.bn.running_var"),
    );
    let x = rng.vec(c.xs.numel(), -2.0, 2.0);
    let p = ConvParams {
        out_channels: c.cout,
        kernel: k,
        stride: c.stride,
        pad: k / 2,
        relu: c.relu,
        input_nchw: false,
    };
    let (want, _) = reference::conv2d_grouped(&x, c.xs, &wf, &bias, None, p, c.groups);
    let op = Op::Conv(Conv {
        weight: "g.weight".into(),
        bn: "g.bn".into(),
        in_channels: c.xs.c,
        out_channels: c.cout,
        groups: c.groups,
        kernel: k,
        stride: c.stride,
        pad: k / 2,
        temporal: Window::POINT,
        relu: c.relu,
        input_nchw: false,
        pre_act: None,
    });
    let got = run(ctx, one_node(c.xs.c, "g", op), bytes, &x, c.xs);
    relative_error(&got, &want)
}

#[test]
fn grouped_conv_random_shapes() {
    let mut rng = Rng::new(0x6A0);
    let s = |n, h, w, c| Shape { n, t: 1, h, w, c };
    // ResNeXt-like group widths (4, 8, 16, 32, 64 per group: the register-blocked kernel),
    // widths that are not a multiple of 4 (3, 15: the staged kernel, with partial channel
    // tiles), 20 and 80 (registers, not a power of 2), one group of everything, 1×1 grouped,
    // fewer than 64 output channels (narrow register tiles), and random widths of both kinds.
    let mut cases = vec![
        (s(2, 9, 7, 128), 128, 32, 3, 1),   // resnext50 stage 1: 4 per group
        (s(1, 11, 13, 256), 256, 32, 3, 2), // 8 per group, stride 2, odd size
        (s(2, 5, 6, 256), 256, 64, 3, 1),   // resnext101_64x4d: 4 per group
        (s(1, 7, 7, 512), 512, 32, 3, 2),   // 16 per group
        (s(1, 4, 5, 1024), 1024, 32, 3, 1), // 32 per group
        (s(1, 3, 3, 512), 512, 8, 3, 1),    // 64 per group
        (s(3, 6, 5, 24), 24, 8, 3, 1),      // 3 per group
        (s(1, 8, 9, 48), 60, 4, 3, 2),      // 12 in, 15 out per group
        (s(1, 5, 5, 80), 80, 4, 3, 1),      // 20 per group
        (s(2, 4, 3, 80), 160, 2, 3, 1),     // 40 in, 80 out per group
        (s(1, 6, 6, 16), 16, 1, 3, 2),      // G = 1 through the dense path
        (s(2, 5, 7, 64), 96, 16, 1, 1),     // 1×1 grouped
    ];
    for _ in 0..6 {
        let groups = [2, 4, 8, 16, 32][rng.range(0, 4)];
        let (gin, gout) = (rng.range(1, 20), rng.range(1, 20));
        let xs = s(
            rng.range(1, 3),
            rng.range(1, 13),
            rng.range(1, 13),
            groups * gin,
        );
        cases.push((xs, groups * gout, groups, 3, rng.range(1, 2)));
    }
    let dtypes = [Dtype::F32, Dtype::F16, Dtype::BF16];
    for (i, (xs, cout, groups, kernel, stride)) in cases.into_iter().enumerate() {
        let case = Case {
            xs,
            cout,
            groups,
            kernel,
            stride,
            relu: i % 2 == 0,
            dtype: dtypes[i % 3],
        };
        for checked in MODES {
            let Some(ctx) = gpu(checked) else { return };
            let err = grouped_conv_error(&ctx, &case, &mut rng);
            assert!(
                err <= TOL,
                "grouped conv {xs:?} → {cout} in {groups} groups, {kernel}x{kernel}/s{stride} \
                 {:?} (checked {checked}): relative error {err:.3e}",
                case.dtype
            );
        }
    }
}

#[test]
fn avg_pool_odd_sizes() {
    let mut rng = Rng::new(0xA7E);
    let mut shapes: Vec<Shape> = [
        (1, 1, 1, 1),
        (1, 3, 3, 1),
        (2, 5, 7, 3),
        (1, 7, 4, 64),
        (1, 2, 9, 5),
        (3, 57, 57, 8),
    ]
    .iter()
    .map(|&(n, h, w, c)| Shape { n, t: 1, h, w, c })
    .collect();
    for _ in 0..8 {
        let [n, h, w, c] = [3, 23, 23, 70].map(|m| rng.range(1, m));
        shapes.push(Shape { n, t: 1, h, w, c });
    }
    // (kernel, stride, pad, ceil): timm's shortcut first, then the other PyTorch rules.
    let configs = [
        (2, 2, 0, true),
        (2, 2, 0, false),
        (3, 2, 1, true),
        (3, 2, 1, false),
        (3, 3, 0, true),
        (2, 1, 1, true),
    ];
    for xs in shapes {
        let x = rng.vec(xs.numel(), -1.0, 2.0);
        for (kernel, stride, pad, ceil_mode) in configs {
            let op = Op::AvgPool {
                kernel,
                stride,
                pad,
                ceil_mode,
                pre_act: None,
            };
            let g = one_node(xs.c, "pool", op.clone());
            let Ok(shapes) = g.infer_shapes(xs.n, xs.h, xs.w) else {
                // Too small for this window: the reference cannot run it either.
                assert!(!ceil_mode || kernel > xs.h.min(xs.w) + 2 * pad);
                continue;
            };
            let (want, ws) = reference::avg_pool(&x, xs, kernel, stride, pad, ceil_mode);
            assert_eq!(ws, shapes[g.output], "{op:?} on {xs:?}: shape");
            for checked in MODES {
                let Some(ctx) = gpu(checked) else { return };
                let bytes = encode_tensors(&[]);
                let got = run(&ctx, g.clone(), bytes, &x, xs);
                let err = relative_error(&got, &want);
                assert!(
                    err <= TOL,
                    "{op:?} on {xs:?} (checked {checked}): {err:.3e}"
                );
            }
        }
    }
}

#[test]
fn avg_pool_ceil_mode_matches_pytorch_values() {
    // torch.nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False) on arange(15)
    // reshaped (1, 1, 3, 5), computed by PyTorch: the last column and row divide by 2, the
    // corner by 1.
    let want = [3.0, 5.0, 6.5, 10.5, 12.5, 14.0];
    let xs = Shape {
        n: 1,
        t: 1,
        h: 3,
        w: 5,
        c: 1,
    };
    let x: Vec<f32> = (0..15).map(|v| v as f32).collect();
    let (got, ys) = reference::avg_pool(&x, xs, 2, 2, 0, true);
    assert_eq!((ys.h, ys.w), (2, 3));
    assert_eq!(got, want);
    for checked in MODES {
        let Some(ctx) = gpu(checked) else { return };
        let op = Op::AvgPool {
            kernel: 2,
            stride: 2,
            pad: 0,
            ceil_mode: true,
            pre_act: None,
        };
        let got = run(&ctx, one_node(1, "pool", op), encode_tensors(&[]), &x, xs);
        assert_eq!(got, want, "checked {checked}");
    }
}
