//! From weights to a graph: architecture detection and the one graph builder for the whole
//! family (torchvision, timm and transformers layouts; plain and deep stems; conv and
//! avg-pool shortcuts; dense and grouped 3×3 convs).

pub mod arch;
pub mod config;
mod detect;
pub mod layout;
pub mod synthetic;
pub mod video;

use crate::graph::{Conv, Graph, Op, ValueId};
pub use arch::{Arch, BlockKind, Shortcut, Stage, Stem};
pub use config::SourceConfig;
pub use layout::Layout;

/// Builds the inference graph. Nodes are named by canonical (torchvision/timm) module path;
/// each conv carries the file's names of its weight and of the BatchNorm folded into it;
/// each block's last conv adds the shortcut and applies ReLU in its epilogue.
pub fn build_graph(arch: &Arch) -> Graph {
    let mut g = Graph::default();
    g.input = g.new_value();
    g.input_channels = 3;
    let file = |canonical: &str| arch.layout.file_name(canonical);
    let conv = |name: &str, bn: &str, cin, cout, kernel, stride, relu| Conv {
        weight: file(&format!("{name}.weight")),
        bn: file(bn),
        in_channels: cin,
        out_channels: cout,
        groups: 1,
        kernel,
        stride,
        pad: kernel / 2,
        relu,
        input_nchw: false,
    };
    let mut x = match arch.stem {
        Stem::Plain { width } => {
            let stem = Conv {
                input_nchw: true,
                ..conv("conv1", "bn1", 3, width, 7, 2, true)
            };
            g.push("conv1", Op::Conv(stem), vec![g.input])
        }
        Stem::Deep { widths: [a, b, c] } => {
            let first = Conv {
                input_nchw: true,
                ..conv("conv1.0", "conv1.1", 3, a, 3, 2, true)
            };
            let y = g.push("conv1.0", Op::Conv(first), vec![g.input]);
            let y = g.push(
                "conv1.3",
                Op::Conv(conv("conv1.3", "conv1.4", a, b, 3, 1, true)),
                vec![y],
            );
            g.push(
                "conv1.6",
                Op::Conv(conv("conv1.6", "bn1", b, c, 3, 1, true)),
                vec![y],
            )
        }
    };
    x = g.push(
        "maxpool",
        Op::MaxPool {
            kernel: 3,
            stride: 2,
            pad: 1,
        },
        vec![x],
    );
    let mut cin = arch.stem.out_channels();
    for st in &arch.stages {
        for b in 0..st.blocks {
            let p = format!("layer{}.{b}", st.index);
            let stride = if b == 0 { st.stride } else { 1 };
            let (w, o) = (st.inner_width, st.out_channels);
            let shortcut: ValueId = if arch.has_projection(st, b, cin) {
                let d = format!("{p}.downsample");
                match arch.shortcut {
                    Shortcut::Conv => {
                        let c = conv(
                            &format!("{d}.0"),
                            &format!("{d}.1"),
                            cin,
                            o,
                            1,
                            stride,
                            false,
                        );
                        g.push(&d, Op::Conv(c), vec![x])
                    }
                    Shortcut::AvgPool => {
                        // timm's pool is an identity at stride 1.
                        let pooled = if stride == 1 {
                            x
                        } else {
                            let pool = Op::AvgPool {
                                kernel: 2,
                                stride,
                                pad: 0,
                                ceil_mode: true,
                            };
                            g.push(format!("{d}.0"), pool, vec![x])
                        };
                        let c = conv(&format!("{d}.1"), &format!("{d}.2"), cin, o, 1, 1, false);
                        g.push(&d, Op::Conv(c), vec![pooled])
                    }
                }
            } else {
                x
            };
            let n = |i: usize| (format!("{p}.conv{i}"), format!("{p}.bn{i}"));
            x = match arch.block {
                BlockKind::Basic => {
                    let (c1, b1) = n(1);
                    let (c2, b2) = n(2);
                    let y = g.push(
                        &c1,
                        Op::Conv(conv(&c1, &b1, cin, o, 3, stride, true)),
                        vec![x],
                    );
                    g.push(
                        &c2,
                        Op::Conv(conv(&c2, &b2, o, o, 3, 1, true)),
                        vec![y, shortcut],
                    )
                }
                BlockKind::Bottleneck => {
                    let (c1, b1) = n(1);
                    let (c2, b2) = n(2);
                    let (c3, b3) = n(3);
                    // transformers' downsample_in_bottleneck strides the first 1×1 instead.
                    let (s1, s2) = if st.stride_on_1x1 {
                        (stride, 1)
                    } else {
                        (1, stride)
                    };
                    let y = g.push(&c1, Op::Conv(conv(&c1, &b1, cin, w, 1, s1, true)), vec![x]);
                    let grouped = Conv {
                        groups: st.groups,
                        ..conv(&c2, &b2, w, w, 3, s2, true)
                    };
                    let y = g.push(&c2, Op::Conv(grouped), vec![y]);
                    g.push(
                        &c3,
                        Op::Conv(conv(&c3, &b3, w, o, 1, 1, true)),
                        vec![y, shortcut],
                    )
                }
            };
            cin = o;
        }
    }
    let pooled = g.push("avgpool", Op::GlobalAvgPool, vec![x]);
    g.features = pooled;
    g.output = match arch.num_classes {
        Some(classes) => g.push(
            "fc",
            Op::Linear {
                weight: file("fc.weight"),
                bias: file("fc.bias"),
                in_features: cin,
                out_features: classes,
            },
            vec![pooled],
        ),
        // Headless checkpoints output their pooled features.
        None => pooled,
    };
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resnet50_shapes_at_224() {
        let a = arch::standard("resnet50", 1000).unwrap();
        let g = build_graph(&a);
        assert_eq!(g.conv_count(), 53);
        let s = g.infer_shapes(2, 224, 224).unwrap();
        assert_eq!((s[g.output].n, s[g.output].c), (2, 1000));
        assert_eq!((s[g.features].c, s[g.features].h), (2048, 1));
        let flops: u64 = g.nodes.iter().map(|n| n.op.flops(&s[n.output])).sum();
        // ResNet-50 is about 4.1 GMAC per image at 224.
        assert!((8.1e9..8.3e9).contains(&(flops as f64 / 2.0)), "{flops}");
    }

    #[test]
    fn odd_sizes_follow_pytorch_rounding() {
        let g = build_graph(&arch::standard("resnet18", 10).unwrap());
        let s = g.infer_shapes(1, 225, 97).unwrap();
        assert!(g.nodes.iter().all(|n| !matches!(n.op, Op::AvgPool { .. })));
        // 225 → 113 → 57 → 57 → 29 → 15 → 8; 97 → 49 → 25 → 25 → 13 → 7 → 4.
        assert_eq!((s[g.features].h, s[g.features].w), (1, 1));
        let last_conv = g
            .nodes
            .iter()
            .rev()
            .find(|n| matches!(n.op, Op::Conv(_)))
            .unwrap();
        assert_eq!((s[last_conv.output].h, s[last_conv.output].w), (8, 4));
        assert!(g.infer_shapes(1, 0, 5).is_err());
    }

    #[test]
    fn family_graphs_shapes_and_flops() {
        // Multiply-adds per image at 224, counted by forward hooks on torchvision's and
        // timm's own models (conv + linear), to 0.1%.
        for (name, gmac, convs) in [
            ("resnext50_32x4d", 4.2305, 53),
            ("wide_resnet50_2", 11.3980, 53),
            ("resnet50d", 4.3288, 55),
            ("resnet26t", 2.5503, 31),
        ] {
            let a = arch::standard(name, 1000).unwrap();
            let g = build_graph(&a);
            assert_eq!(g.conv_count(), convs, "{name}");
            let s = g.infer_shapes(1, 224, 224).unwrap();
            let macs: u64 = g
                .nodes
                .iter()
                .map(|n| n.op.flops(&s[n.output]))
                .sum::<u64>()
                / 2;
            let got = macs as f64 / 1e9;
            assert!(
                (got / gmac - 1.0).abs() < 1e-3,
                "{name}: {got:.4} GMAC, want {gmac}"
            );
        }
        // Odd sizes: main path and avg-pool shortcut agree at every stage (ceil(in/2)).
        let g = build_graph(&arch::standard("resnet18d", 5).unwrap());
        for (h, w) in [(33, 47), (1, 1), (2, 3), (65, 31)] {
            assert!(g.infer_shapes(2, h, w).is_ok(), "{h}x{w}");
        }
        let pools = g
            .nodes
            .iter()
            .filter(|n| matches!(n.op, Op::AvgPool { .. }))
            .count();
        assert_eq!(pools, 3, "stages 2–4 pool; stage 1 has no projection");
    }

    #[test]
    fn stride_placement_follows_the_arch() {
        let mut a = arch::standard("resnet50", 10).unwrap();
        a.stages[1].stride_on_1x1 = true;
        let g = build_graph(&a);
        let stride = |name: &str| match &g.nodes.iter().find(|n| n.name == name).unwrap().op {
            Op::Conv(c) => c.stride,
            _ => 0,
        };
        assert_eq!((stride("layer2.0.conv1"), stride("layer2.0.conv2")), (2, 1));
        assert_eq!((stride("layer3.0.conv1"), stride("layer3.0.conv2")), (1, 2));
        assert_eq!(stride("layer2.1.conv1"), 1, "only the first block strides");
    }
}
