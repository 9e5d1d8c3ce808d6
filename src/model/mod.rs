//! From weights to a graph: architecture detection and the one graph builder for the whole
//! family (torchvision, timm and transformers layouts; plain and deep stems; conv and
//! avg-pool shortcuts; dense and grouped 3×3 convs).

pub mod arch;
pub mod config;
mod detect;
pub mod layout;
pub mod preact;
pub mod synthetic;
pub mod video;
pub mod video_graph;
pub mod video_standard;

use crate::error::Result;
use crate::graph::{Conv, Graph, HeadWindow, Op, SqueezeExcite, ValueId, Window};
use crate::weights::WeightsFile;
pub use arch::{Arch, BlockKind, Shortcut, Stage, Stem};
pub use config::SourceConfig;
pub use detect::{detect, detect_with};
pub use layout::Layout;
use preact::PreActArch;
use video::VideoArch;

/// What detection found: an image ResNet, a pre-activation one (Wide ResNet, timm ResNetV2)
/// or a video (3-D) one.
#[derive(Clone, Debug, PartialEq)]
pub enum Model {
    Image(Arch),
    PreAct(PreActArch),
    Video(VideoArch),
}

impl Model {
    /// `resnet50`, `r2plus1d_18`, … (as [`Arch::name`] and [`VideoArch::name`]).
    pub fn name(&self) -> String {
        match self {
            Model::Image(a) => a.name(),
            Model::PreAct(p) => p.name(),
            Model::Video(v) => v.name(),
        }
    }

    /// One line for `resnet info`.
    pub fn describe(&self) -> String {
        match self {
            Model::Image(a) => a.describe(),
            Model::PreAct(p) => p.describe(),
            Model::Video(v) => v.describe(),
        }
    }

    /// Classes, `None` for a headless checkpoint.
    pub fn num_classes(&self) -> Option<usize> {
        match self {
            Model::Image(a) => a.num_classes,
            Model::PreAct(p) => p.head.as_ref().map(|h| h.classes),
            Model::Video(v) => v.head.as_ref().map(|h| h.classes),
        }
    }

    /// Width of the pooled embedding.
    pub fn features(&self) -> usize {
        match self {
            Model::Image(a) => a.features(),
            Model::PreAct(p) => p.features(),
            Model::Video(v) => v.features(),
        }
    }

    /// The output width: classes, or the pooled features without a head.
    pub fn outputs(&self) -> usize {
        self.num_classes().unwrap_or_else(|| self.features())
    }

    pub fn image(&self) -> Option<&Arch> {
        match self {
            Model::Image(a) => Some(a),
            _ => None,
        }
    }

    pub fn video(&self) -> Option<&VideoArch> {
        match self {
            Model::Video(v) => Some(v),
            _ => None,
        }
    }

    pub fn preact(&self) -> Option<&PreActArch> {
        match self {
            Model::PreAct(p) => Some(p),
            _ => None,
        }
    }

    pub fn is_video(&self) -> bool {
        matches!(self, Model::Video(_))
    }
}

/// A network read from a weights file: its architecture and graph, with every tensor checked
/// (names, shapes, dtypes, finite values). Built once per command: the engine takes it as is.
#[derive(Clone, Debug)]
pub struct Network {
    pub model: Model,
    pub graph: Graph,
}

impl Network {
    /// Detects the architecture of `weights` (reading the `config.json` beside it; a 5-D
    /// stem means a video ResNet, `block1.layer.0` / `stages.0.blocks.0` a pre-activation
    /// one), checks every value is finite and builds the graph.
    pub fn detect(weights: &WeightsFile) -> Result<Self> {
        if video::is_video(weights) {
            Self::from_video(video::detect_video(weights)?, weights)
        } else if preact::is_preact(weights) {
            Self::from_preact(preact::detect_preact(weights)?, weights)
        } else {
            Self::from_arch(detect(weights)?, weights)
        }
    }

    /// [`Network::detect`] with an explicit (or no) `config.json` (torchvision-family image
    /// networks; video and pre-activation ones have no config to read).
    pub fn detect_with(weights: &WeightsFile, config: Option<&SourceConfig>) -> Result<Self> {
        if video::is_video(weights) {
            Self::from_video(video::detect_video(weights)?, weights)
        } else if preact::is_preact(weights) {
            Self::from_preact(preact::detect_preact(weights)?, weights)
        } else {
            Self::from_arch(detect_with(weights, config)?, weights)
        }
    }

    /// The network of an architecture already detected from `weights`: checks every value is
    /// finite (NaN/Inf are refused before the GPU sees them) and builds the graph.
    pub fn from_arch(arch: Arch, weights: &WeightsFile) -> Result<Self> {
        weights.check_finite()?;
        let graph = build_graph(&arch);
        Ok(Network {
            model: Model::Image(arch),
            graph,
        })
    }

    /// [`Network::from_arch`] for a pre-activation ResNet.
    pub fn from_preact(arch: PreActArch, weights: &WeightsFile) -> Result<Self> {
        weights.check_finite()?;
        let graph = preact::build_preact_graph(&arch);
        Ok(Network {
            model: Model::PreAct(arch),
            graph,
        })
    }

    /// [`Network::from_arch`] for a video ResNet.
    pub fn from_video(arch: VideoArch, weights: &WeightsFile) -> Result<Self> {
        weights.check_finite()?;
        let graph = video_graph::build_video_graph(&arch)?;
        Ok(Network {
            model: Model::Video(arch),
            graph,
        })
    }
}

/// Builds the inference graph. Nodes are named by canonical (torchvision/timm) module path;
/// each conv carries the file's names of its weight and of the BatchNorm folded into it;
/// each block's last conv adds the shortcut and applies ReLU in its epilogue.
pub fn build_graph(arch: &Arch) -> Graph {
    let mut b = Builder {
        g: Graph::default(),
        layout: arch.layout,
    };
    b.g.input = b.g.new_value();
    b.g.input_channels = 3;
    let mut x = b.stem(arch.stem);
    let pool = Op::MaxPool {
        kernel: 3,
        stride: 2,
        pad: 1,
        temporal: Window::POINT,
    };
    x = b.g.push("maxpool", pool, vec![x]);
    let mut cin = arch.stem.out_channels();
    for st in &arch.stages {
        for i in 0..st.blocks {
            x = b.block(arch, st, i, cin, x);
            cin = st.out_channels;
        }
    }
    b.head(arch.num_classes, cin, x)
}

/// The graph under construction, and the layout that maps canonical names to the file's.
struct Builder {
    g: Graph,
    layout: Layout,
}

impl Builder {
    /// A conv `name` with its BatchNorm `bn` folded in: `channels` is `[in, out]`, "same"
    /// padding, dense, NHWC input.
    fn conv(
        &self,
        name: &str,
        bn: &str,
        channels: [usize; 2],
        kernel: usize,
        stride: usize,
        relu: bool,
    ) -> Conv {
        Conv {
            weight: self.layout.file_name(&format!("{name}.weight")),
            bn: self.layout.file_name(bn),
            in_channels: channels[0],
            out_channels: channels[1],
            groups: 1,
            kernel,
            stride,
            pad: kernel / 2,
            temporal: Window::POINT,
            relu,
            input_nchw: false,
            pre_act: None,
        }
    }

    fn push_conv(&mut self, name: &str, conv: Conv, inputs: Vec<ValueId>) -> ValueId {
        self.g.push(name, Op::Conv(conv), inputs)
    }

    /// The stem before the max pool; its first conv reads the user's NCHW input.
    fn stem(&mut self, stem: Stem) -> ValueId {
        let input = self.g.input;
        match stem {
            Stem::Plain { width } => {
                let stem = Conv {
                    input_nchw: true,
                    ..self.conv("conv1", "bn1", [3, width], 7, 2, true)
                };
                self.push_conv("conv1", stem, vec![input])
            }
            Stem::Deep { widths: [a, b, c] } => {
                let first = Conv {
                    input_nchw: true,
                    ..self.conv("conv1.0", "conv1.1", [3, a], 3, 2, true)
                };
                let y = self.push_conv("conv1.0", first, vec![input]);
                let second = self.conv("conv1.3", "conv1.4", [a, b], 3, 1, true);
                let y = self.push_conv("conv1.3", second, vec![y]);
                let third = self.conv("conv1.6", "bn1", [b, c], 3, 1, true);
                self.push_conv("conv1.6", third, vec![y])
            }
        }
    }

    /// Block `i` of stage `st` on `x` (`cin` channels): its shortcut first, then its convs,
    /// the last of which adds the shortcut.
    fn block(&mut self, arch: &Arch, st: &Stage, i: usize, cin: usize, x: ValueId) -> ValueId {
        let p = format!("layer{}.{i}", st.index);
        let stride = if i == 0 { st.stride } else { 1 };
        let (w, o) = (st.inner_width, st.out_channels);
        let shortcut = if arch.has_projection(st, i, cin) {
            self.projection(
                arch.shortcut,
                &format!("{p}.downsample"),
                [cin, o],
                stride,
                x,
            )
        } else {
            x
        };
        let n = |i: usize| (format!("{p}.conv{i}"), format!("{p}.bn{i}"));
        match arch.block {
            BlockKind::Basic => {
                let (c1, b1) = n(1);
                let (c2, b2) = n(2);
                let conv1 = self.conv(&c1, &b1, [cin, o], 3, stride, true);
                let y = self.push_conv(&c1, conv1, vec![x]);
                let conv2 = self.conv(&c2, &b2, [o, o], 3, 1, true);
                self.close_block(&p, st, &c2, conv2, y, shortcut)
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
                let conv1 = self.conv(&c1, &b1, [cin, w], 1, s1, true);
                let y = self.push_conv(&c1, conv1, vec![x]);
                let grouped = Conv {
                    groups: st.groups,
                    ..self.conv(&c2, &b2, [w, w], 3, s2, true)
                };
                let y = self.push_conv(&c2, grouped, vec![y]);
                let conv3 = self.conv(&c3, &b3, [w, o], 1, 1, true);
                self.close_block(&p, st, &c3, conv3, y, shortcut)
            }
        }
    }

    /// The block's last conv `name` on `y`, then the shortcut and ReLU: in the conv's epilogue,
    /// or, with squeeze-and-excitation, in the SE node that scales the conv's output first.
    fn close_block(
        &mut self,
        p: &str,
        st: &Stage,
        name: &str,
        last: Conv,
        y: ValueId,
        shortcut: ValueId,
    ) -> ValueId {
        let Some(reduced) = st.se_reduced else {
            return self.push_conv(name, last, vec![y, shortcut]);
        };
        let channels = last.out_channels;
        let y = self.push_conv(
            name,
            Conv {
                relu: false,
                ..last
            },
            vec![y],
        );
        let file = |t: &str| self.layout.file_name(&format!("{p}.se.{t}"));
        let se = SqueezeExcite {
            fc1_weight: file("fc1.weight"),
            fc1_bias: file("fc1.bias"),
            fc2_weight: file("fc2.weight"),
            fc2_bias: file("fc2.bias"),
            channels,
            reduced,
        };
        self.g
            .push(format!("{p}.se"), Op::SqueezeExcite(se), vec![y, shortcut])
    }

    /// The projection shortcut `d` (`…downsample`) of a stage's first block.
    fn projection(
        &mut self,
        kind: Shortcut,
        d: &str,
        channels: [usize; 2],
        stride: usize,
        x: ValueId,
    ) -> ValueId {
        match kind {
            Shortcut::Conv => {
                let c = self.conv(
                    &format!("{d}.0"),
                    &format!("{d}.1"),
                    channels,
                    1,
                    stride,
                    false,
                );
                self.push_conv(d, c, vec![x])
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
                        pre_act: None,
                    };
                    self.g.push(format!("{d}.0"), pool, vec![x])
                };
                let c = self.conv(&format!("{d}.1"), &format!("{d}.2"), channels, 1, 1, false);
                self.push_conv(d, c, vec![pooled])
            }
        }
    }

    /// Global average pool (the features), then the classifier when there is one.
    fn head(mut self, classes: Option<usize>, cin: usize, x: ValueId) -> Graph {
        let pooled = self.g.push(
            "avgpool",
            Op::GlobalAvgPool {
                window: HeadWindow::Whole,
                pre_act: None,
            },
            vec![x],
        );
        self.g.features = pooled;
        self.g.output = match classes {
            Some(classes) => {
                let fc = Op::Linear {
                    weight: self.layout.file_name("fc.weight"),
                    bias: self.layout.file_name("fc.bias"),
                    in_features: cin,
                    out_features: classes,
                };
                self.g.push("fc", fc, vec![pooled])
            }
            // Headless checkpoints output their pooled features.
            None => pooled,
        };
        self.g
    }
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
    fn squeeze_excitation_closes_each_block() {
        // Multiply-adds per image at 224 counted by forward hooks on timm 1.0.31's
        // `seresnet50` (convs, linear and the SE's 1×1 convs): 4.0917 GMAC.
        let a = arch::standard("seresnet50", 1000).unwrap();
        let g = build_graph(&a);
        assert_eq!(g.conv_count(), 53);
        let se: Vec<&crate::graph::Node> = g
            .nodes
            .iter()
            .filter(|n| matches!(n.op, Op::SqueezeExcite(_)))
            .collect();
        assert_eq!(se.len(), 16, "one per block");
        let conv3 = g.nodes.iter().find(|n| n.name == "layer1.0.conv3").unwrap();
        match &conv3.op {
            Op::Conv(c) => assert!(!c.relu && conv3.inputs.len() == 1, "SE adds and activates"),
            op => panic!("{op:?}"),
        }
        assert_eq!(se[0].name, "layer1.0.se");
        assert_eq!(se[0].inputs[0], conv3.output);
        let s = g.infer_shapes(1, 224, 224).unwrap();
        assert_eq!(s[se[0].output], s[conv3.output]);
        let macs: u64 = g
            .nodes
            .iter()
            .map(|n| n.op.flops(&s[n.output]))
            .sum::<u64>()
            / 2;
        let got = macs as f64 / 1e9;
        assert!((got / 4.0917 - 1.0).abs() < 1e-4, "{got:.4} GMAC");
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
