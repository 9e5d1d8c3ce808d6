//! From weights to a graph: architecture detection and the one graph builder for all depths.

pub mod arch;
pub mod synthetic;

use crate::graph::{Conv, Graph, Op, ValueId};
pub use arch::{Arch, BlockKind, Stage};

/// Builds the inference graph of a torchvision-style ResNet. Every conv carries the name of
/// the BatchNorm folded into it; each block's last conv adds the shortcut and applies ReLU in
/// its epilogue.
pub fn build_graph(arch: &Arch) -> Graph {
    let mut g = Graph::default();
    g.input = g.new_value();
    g.input_channels = 3;
    let conv = |name: &str, bn: &str, cin, cout, kernel, stride, relu| Conv {
        weight: format!("{name}.weight"),
        bn: bn.to_string(),
        in_channels: cin,
        out_channels: cout,
        kernel,
        stride,
        pad: kernel / 2,
        relu,
        input_nchw: false,
    };
    let stem = Conv {
        input_nchw: true,
        ..conv("conv1", "bn1", 3, arch.stem_width, 7, 2, true)
    };
    let mut x = g.push("conv1", Op::Conv(stem), vec![g.input]);
    x = g.push(
        "maxpool",
        Op::MaxPool {
            kernel: 3,
            stride: 2,
            pad: 1,
        },
        vec![x],
    );
    let mut cin = arch.stem_width;
    for st in &arch.stages {
        for b in 0..st.blocks {
            let p = format!("layer{}.{b}", st.index);
            let stride = if b == 0 { st.stride } else { 1 };
            let (w, o) = (st.inner_width, st.out_channels);
            let shortcut: ValueId = if b == 0 && (stride != 1 || cin != o) {
                let c = conv(
                    &format!("{p}.downsample.0"),
                    &format!("{p}.downsample.1"),
                    cin,
                    o,
                    1,
                    stride,
                    false,
                );
                g.push(format!("{p}.downsample"), Op::Conv(c), vec![x])
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
                    let y = g.push(&c1, Op::Conv(conv(&c1, &b1, cin, w, 1, 1, true)), vec![x]);
                    let y = g.push(
                        &c2,
                        Op::Conv(conv(&c2, &b2, w, w, 3, stride, true)),
                        vec![y],
                    );
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
    g.output = g.push(
        "fc",
        Op::Linear {
            weight: "fc.weight".into(),
            bias: "fc.bias".into(),
            in_features: cin,
            out_features: arch.num_classes,
        },
        vec![pooled],
    );
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
}
