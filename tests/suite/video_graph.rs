//! Video ResNets as graphs: 3-D shape inference and FLOPs, the builder from a detected
//! [`VideoArch`], and every fixture's graph on the CPU reference against PyTorch's logits.

use crate::video::{cases, video_fixture};
use resnet_wgpu::graph::{Conv, Graph, HeadWindow, Op, Shape, Window};
use resnet_wgpu::model::video::detect_video;
use resnet_wgpu::model::video_graph::build_video_graph;
use resnet_wgpu::reference::video::run_video_arch;
use resnet_wgpu::reference::{relative_error, run_clip_graph};
use resnet_wgpu::{npy, Error, WeightsFile};

// ---- shapes and FLOPs ------------------------------------------------------------------------

fn conv3d(cin: usize, cout: usize, kernel: usize, stride: usize, temporal: Window) -> Op {
    Op::Conv(Conv {
        weight: "w".into(),
        bn: "bn".into(),
        in_channels: cin,
        out_channels: cout,
        groups: 1,
        kernel,
        stride,
        pad: kernel / 2,
        temporal,
        relu: true,
        input_nchw: false,
        pre_act: None,
    })
}

fn one_op(op: Op) -> Graph {
    let mut g = Graph {
        input_channels: 5,
        ..Graph::default()
    };
    g.input = g.new_value();
    g.output = g.push("op", op, vec![g.input]);
    g.features = g.output;
    g
}

#[test]
fn a_3d_conv_strides_and_pads_time_and_counts_every_tap() {
    // T: (7 + 2·1 − 3)/2 + 1 = 4; H, W: (9 + 2 − 3)/1 + 1 = 9, (6 + 2 − 3)/1 + 1 = 6.
    let temporal = Window {
        kernel: 3,
        stride: 2,
        pad: 1,
    };
    let g = one_op(conv3d(5, 6, 3, 1, temporal));
    let shapes = g.infer_clip_shapes(2, 7, 9, 6).unwrap();
    let out = shapes[g.output];
    let want = Shape {
        n: 2,
        t: 4,
        h: 9,
        w: 6,
        c: 6,
    };
    assert_eq!(out, want);
    // 2 · outputs · kT·kH·kW·C_in.
    assert_eq!(g.nodes[0].op.flops(&out), 2 * (2 * 4 * 9 * 6 * 6) * 27 * 5);
    // The prepared weights hold kT·kH·kW·C_in values per output channel, plus its bias.
    assert_eq!(g.folded_weight_bytes(), ((27 * 5 + 1) * 6 * 4) as u64);
    assert_eq!(g.first_temporal_node().map(|n| n.name.as_str()), Some("op"));
}

#[test]
fn a_2d_conv_keeps_every_frame_and_its_image_flops() {
    let g = one_op(conv3d(5, 6, 3, 2, Window::POINT));
    let shapes = g.infer_clip_shapes(1, 5, 9, 9).unwrap();
    let out = shapes[g.output];
    assert_eq!((out.t, out.h, out.w), (5, 5, 5));
    assert_eq!(g.nodes[0].op.flops(&out), 2 * (5 * 5 * 5 * 6) * 9 * 5);
    assert!(g.first_temporal_node().is_none());
    // An image is the clip of one frame.
    assert_eq!(
        g.infer_shapes(1, 9, 9).unwrap(),
        g.infer_clip_shapes(1, 1, 9, 9).unwrap()
    );
}

#[test]
fn a_temporal_window_longer_than_the_clip_is_refused() {
    let temporal = Window {
        kernel: 5,
        stride: 1,
        pad: 0,
    };
    let g = one_op(conv3d(5, 6, 1, 1, temporal));
    let err = g.infer_clip_shapes(1, 4, 8, 8).unwrap_err();
    assert!(matches!(err, Error::InputShape(_)), "{err}");
    assert!(err.to_string().contains("4×8×8 is too small"), "{err}");
    assert!(g.infer_clip_shapes(1, 5, 8, 8).is_ok());
}

#[test]
fn max_pool_over_time_and_the_global_average_shapes() {
    let temporal = Window {
        kernel: 2,
        stride: 2,
        pad: 0,
    };
    let pool = Op::MaxPool {
        kernel: 3,
        stride: 2,
        pad: 1,
        temporal,
    };
    let g = one_op(pool);
    let out = g.infer_clip_shapes(3, 9, 7, 8).unwrap()[g.output];
    assert_eq!((out.n, out.t, out.h, out.w, out.c), (3, 4, 4, 4, 5));
    let avg = one_op(Op::GlobalAvgPool {
        window: HeadWindow::Exactly([3, 4, 5]),
        pre_act: None,
    });
    let out = avg.infer_clip_shapes(2, 3, 4, 5).unwrap()[avg.output];
    assert_eq!((out.n, out.t, out.h, out.w, out.c), (2, 1, 1, 1, 5));
    let err = avg.infer_clip_shapes(2, 4, 4, 5).unwrap_err();
    assert!(err.to_string().contains("does not cover"), "{err}");
    // pytorchvideo's head: any map at least as large as the window.
    let windows = one_op(Op::GlobalAvgPool {
        window: HeadWindow::MeanOfWindows([3, 4, 5]),
        pre_act: None,
    });
    let out = windows.infer_clip_shapes(2, 4, 6, 5).unwrap()[windows.output];
    assert_eq!((out.t, out.h, out.w, out.c), (1, 1, 1, 5));
    let err = windows.infer_clip_shapes(2, 2, 6, 5).unwrap_err();
    assert!(err.to_string().contains("larger than the final"), "{err}");
}

// ---- the fixtures ----------------------------------------------------------------------------

#[test]
fn every_fixture_graph_matches_pytorch_on_the_cpu_reference() {
    let all = cases();
    assert_eq!(all.len(), 7);
    for case in all {
        let w = WeightsFile::open(video_fixture(&case.weights)).unwrap();
        let mut arch = detect_video(&w).unwrap();
        arch.head_pool = case.head_pool;
        let graph = build_video_graph(&arch).unwrap();
        let x = npy::read_f32(&video_fixture(&case.input)).unwrap();
        let want = npy::read_f32(&video_fixture(&case.logits)).unwrap();
        let dims = [case.batch, case.frames, case.height, case.width];
        let (got, features) = run_clip_graph(&graph, &w, &x.data, dims).unwrap();
        let err = relative_error(&got, &want.data);
        eprintln!("{}: graph relative error {err:.2e}", case.name);
        assert!(err <= 1e-4, "{}: relative error {err:.2e}", case.name);
        // The graph computes exactly what the architecture's own reference does: same
        // ops, same order, so the same f32 values.
        let (arch_out, arch_features) = run_video_arch(&arch, &w, &x.data, dims).unwrap();
        assert_eq!(got, arch_out, "{}", case.name);
        assert_eq!(features, arch_features, "{}", case.name);
        let convs = arch.convs().count();
        assert_eq!(graph.conv_count(), convs, "{}", case.name);
    }
}

#[test]
fn the_graph_counts_every_3d_multiply_add() {
    let case = cases().into_iter().find(|c| c.name == "tv_r3d").unwrap();
    let w = WeightsFile::open(video_fixture(&case.weights)).unwrap();
    let arch = detect_video(&w).unwrap();
    let graph = build_video_graph(&arch).unwrap();
    let shapes = graph
        .infer_clip_shapes(case.batch, case.frames, case.height, case.width)
        .unwrap();
    // Every conv's FLOPs: 2 · its outputs · the taps its 5-D weight holds per output.
    for node in &graph.nodes {
        let Op::Conv(c) = &node.op else { continue };
        let shape = &w.get(&c.weight).unwrap().shape;
        let taps: usize = shape[1..].iter().product();
        let out = shapes[node.output];
        assert_eq!(out.c, shape[0], "{}", node.name);
        assert_eq!(node.op.flops(&out), 2 * (out.numel() * taps) as u64);
    }
    let features = shapes[graph.features];
    assert_eq!((features.t, features.h, features.w), (1, 1, 1));
    assert_eq!(features.c, arch.features());
}

#[test]
fn a_head_pool_larger_than_the_map_is_refused_by_the_graph() {
    let case = cases().into_iter().find(|c| c.name == "pv_slow").unwrap();
    let w = WeightsFile::open(video_fixture(&case.weights)).unwrap();
    let graph = build_video_graph(&detect_video(&w).unwrap()).unwrap();
    let err = graph
        .infer_clip_shapes(case.batch, case.frames, case.height, case.width)
        .unwrap_err();
    assert!(err.to_string().contains("larger than the final"), "{err}");
}

#[test]
fn a_spatial_window_that_differs_between_h_and_w_is_refused() {
    let case = cases().into_iter().find(|c| c.name == "tv_r3d").unwrap();
    let w = WeightsFile::open(video_fixture(&case.weights)).unwrap();
    let mut arch = detect_video(&w).unwrap();
    arch.stem[0].kernel = [3, 7, 5];
    let err = build_video_graph(&arch).unwrap_err();
    assert!(matches!(err, Error::NotResnet(_)), "{err}");
    assert!(err.to_string().contains("stem.0"), "{err}");
}

#[test]
fn released_pytorchvideo_heads_take_their_own_256_crop() {
    use resnet_wgpu::model::video_standard::standard_video;
    for name in ["slow_r50", "c2d_r50", "i3d_r50"] {
        let arch = standard_video(name, 400).unwrap();
        let graph = build_video_graph(&arch).unwrap();
        // The model zoo's clip (the pool covers the map) and the eval transform's 256 crop
        // (an 8×8 map under a 7×7 pool: the mean of the windows).
        for (t, side) in [(8, 224), (8, 256)] {
            let shapes = graph.infer_clip_shapes(1, t, side, side).unwrap();
            assert_eq!(shapes[graph.output].c, 400, "{name} at {t}x{side}x{side}");
        }
        // Fewer frames than the pool spans are refused.
        let err = graph.infer_clip_shapes(1, 2, 256, 256).unwrap_err();
        assert!(
            err.to_string().contains("larger than the final"),
            "{name}: {err}"
        );
    }
}
