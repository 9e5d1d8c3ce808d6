//! The architecture of a ResNet-family network as data: block type, stem, shortcut kind,
//! stages with their widths, groups and stride placement, and the head. Detection from a
//! file is `model::detect` (detect.rs); tensor names are canonical (torchvision/timm) and
//! mapped to the file's layout by [`Layout`].

pub use super::layout::Layout;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3×3 convs (expansion 1): ResNet-18/34.
    Basic,
    /// 1×1 → 3×3 (stride here, "V1.5") → 1×1 ×4 (expansion 4): ResNet-50/101/152.
    Bottleneck,
}

/// The stem before the max pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stem {
    /// One 7×7 stride-2 conv (`conv1`, BN `bn1`).
    Plain { width: usize },
    /// timm's deep stem: three 3×3 convs (`conv1.0` s2, `conv1.3`, `conv1.6`) with BNs
    /// `conv1.1`, `conv1.4` and `bn1`. Widths: c/d (32, 32, 64), s/e (64, 64, 128),
    /// t (24, 32, 64) — always read from the shapes.
    Deep { widths: [usize; 3] },
}

impl Stem {
    pub fn out_channels(&self) -> usize {
        match self {
            Stem::Plain { width } => *width,
            Stem::Deep { widths } => widths[2],
        }
    }
}

/// The projection shortcut of a stage's first block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shortcut {
    /// 1×1 conv with the stage stride (`downsample.0`) + BN (`downsample.1`).
    Conv,
    /// timm `avg_down`: `AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)` (an
    /// identity at stride 1) → 1×1 conv (`downsample.1`) → BN (`downsample.2`).
    AvgPool,
}

/// One residual stage (`layer{index}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    /// 1-based, as in `layer1`.
    pub index: usize,
    pub blocks: usize,
    /// Stride of the first block (1 for stage 1, else 2; transformers'
    /// `downsample_in_first_stage` makes stage 1's 2).
    pub stride: usize,
    /// Width of the inner convs (bottleneck `conv1`/`conv2`; basic: equal to `out_channels`).
    pub inner_width: usize,
    /// Channels the stage outputs.
    pub out_channels: usize,
    /// Groups of the 3×3 conv (ResNeXt > 1).
    pub groups: usize,
    /// The first block strides in its first 1×1 rather than the 3×3 (transformers'
    /// `downsample_in_bottleneck`, the original ResNet "V1").
    pub stride_on_1x1: bool,
    /// Squeeze-and-excitation (timm `seresnet*`, `attn_layer='se'`) in every block of the
    /// stage: the reduced width of its `se.fc1` (`C → reduced → C`), `None` without SE.
    pub se_reduced: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arch {
    pub layout: Layout,
    pub block: BlockKind,
    pub stem: Stem,
    pub shortcut: Shortcut,
    pub stages: Vec<Stage>,
    /// `None` for a headless checkpoint (transformers `ResNetModel`, timm `num_classes=0`):
    /// the network's output is then the pooled features.
    pub num_classes: Option<usize>,
    /// What detection could not read from the file and assumed (shown by `resnet info`).
    pub assumptions: Vec<String>,
}

/// Layers per stage by name depth (torchvision and timm model functions).
pub fn depths_for(depth: usize) -> Option<(BlockKind, [usize; 4])> {
    use BlockKind::*;
    Some(match depth {
        10 => (Basic, [1, 1, 1, 1]),
        14 => (Bottleneck, [1, 1, 1, 1]),
        18 => (Basic, [2, 2, 2, 2]),
        26 => (Bottleneck, [2, 2, 2, 2]),
        34 => (Basic, [3, 4, 6, 3]),
        50 => (Bottleneck, [3, 4, 6, 3]),
        101 => (Bottleneck, [3, 4, 23, 3]),
        152 => (Bottleneck, [3, 8, 36, 3]),
        200 => (Bottleneck, [3, 24, 36, 3]),
        _ => return None,
    })
}

/// timm's variant letter for a stem and shortcut, if it has one.
fn variant_suffix(stem: Stem, shortcut: Shortcut) -> Option<&'static str> {
    use Shortcut::*;
    Some(match (stem, shortcut) {
        (Stem::Plain { width: 64 }, Conv) => "",
        (
            Stem::Deep {
                widths: [32, 32, 64],
            },
            Conv,
        ) => "c",
        (
            Stem::Deep {
                widths: [32, 32, 64],
            },
            AvgPool,
        ) => "d",
        (
            Stem::Deep {
                widths: [64, 64, 128],
            },
            Conv,
        ) => "s",
        (
            Stem::Deep {
                widths: [64, 64, 128],
            },
            AvgPool,
        ) => "e",
        (
            Stem::Deep {
                widths: [24, 32, 64],
            },
            AvgPool,
        ) => "t",
        _ => return None,
    })
}

impl Arch {
    pub fn expansion(&self) -> usize {
        match self.block {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }

    pub fn features(&self) -> usize {
        self.stages
            .last()
            .map_or(self.stem.out_channels(), |s| s.out_channels)
    }

    /// The output width: classes, or the pooled features without a head.
    pub fn outputs(&self) -> usize {
        self.num_classes.unwrap_or_else(|| self.features())
    }

    pub fn depths(&self) -> Vec<usize> {
        self.stages.iter().map(|s| s.blocks).collect()
    }

    pub fn groups(&self) -> Vec<usize> {
        self.stages.iter().map(|s| s.groups).collect()
    }

    /// Total conv + fc layers, the "depth" in the name (ResNet-50 has 50; a deep stem counts
    /// as one, as timm names it).
    pub fn depth(&self) -> usize {
        let per_block = match self.block {
            BlockKind::Basic => 2,
            BlockKind::Bottleneck => 3,
        };
        2 + per_block * self.stages.iter().map(|s| s.blocks).sum::<usize>()
    }

    /// The family name when every width is standard: `resnet50`, `resnet50d`,
    /// `resnext101_32x8d`, `wide_resnet50_2`, `resnext50d_32x4d`…
    pub fn standard_name(&self) -> Option<String> {
        let suffix = variant_suffix(self.stem, self.shortcut)?;
        let se = self.se_prefix()?;
        let (block, depths) = depths_for(self.depth())?;
        if block != self.block || self.depths() != depths || self.stages.len() != 4 {
            return None;
        }
        let first = &self.stages[0];
        let (groups, width) = (first.groups, first.inner_width / first.groups.max(1));
        let regular = self.stages.iter().enumerate().all(|(i, s)| {
            let planes = 64 << i;
            s.stride == if i == 0 { 1 } else { 2 }
                && !s.stride_on_1x1
                && s.out_channels == planes * self.expansion()
                && s.groups == groups
                && s.inner_width == planes * width / 64 * groups
        });
        if !regular || (self.block == BlockKind::Basic && (groups, width) != (1, 64)) {
            return None;
        }
        let d = self.depth();
        Some(match (groups, width) {
            (1, 64) => format!("{se}resnet{d}{suffix}"),
            (1, w) if w % 64 == 0 => format!("{se}wide_resnet{d}{suffix}_{}", w / 64),
            (g, w) if g > 1 => format!("{se}resnext{d}{suffix}_{g}x{w}d"),
            _ => return None,
        })
    }

    /// `"se"` when every stage has timm's squeeze-and-excitation at its standard reduced
    /// width, `""` when none has SE; `None` otherwise (no standard name).
    fn se_prefix(&self) -> Option<&'static str> {
        if self.stages.iter().all(|s| s.se_reduced.is_none()) {
            return Some("");
        }
        let standard = |s: &Stage| s.se_reduced == Some(timm_se_reduced(s.out_channels));
        self.stages.iter().all(standard).then_some("se")
    }

    pub fn has_se(&self) -> bool {
        self.stages.iter().any(|s| s.se_reduced.is_some())
    }

    /// The family name, or `resnet50`-style with the widths when they are not standard.
    pub fn name(&self) -> String {
        if let Some(n) = self.standard_name() {
            return n;
        }
        // Non-standard widths: the letter of the closest timm variant by structure.
        let suffix =
            variant_suffix(self.stem, self.shortcut).unwrap_or(match (self.stem, self.shortcut) {
                (Stem::Deep { widths }, Shortcut::AvgPool) if widths[0] < widths[1] => "t",
                (Stem::Deep { .. }, Shortcut::AvgPool) => "d",
                (Stem::Deep { .. }, Shortcut::Conv) => "c",
                (Stem::Plain { .. }, _) => "",
            });
        let stem = match self.stem {
            Stem::Plain { width } => width.to_string(),
            Stem::Deep { widths } => format!("{widths:?}"),
        };
        let groups = if self.stages.iter().any(|s| s.groups > 1) {
            format!(", groups {:?}", self.groups())
        } else {
            String::new()
        };
        let outputs: Vec<usize> = self.stages.iter().map(|s| s.out_channels).collect();
        // Bottleneck inner widths show what makes a network wide (2× out/4) or ResNeXt.
        let inner = match self.block {
            BlockKind::Basic => String::new(),
            BlockKind::Bottleneck => format!(
                "inner {:?}, ",
                self.stages
                    .iter()
                    .map(|s| s.inner_width)
                    .collect::<Vec<_>>()
            ),
        };
        let se = if self.has_se() { "se" } else { "" };
        format!(
            "{se}resnet{}{suffix} (custom widths: stem {stem}, {inner}outputs {outputs:?}{groups})",
            self.depth(),
        )
    }

    /// One line for `resnet info`: name, layout and what is special about it, e.g.
    /// `resnet50d (timm layout, deep stem, avg-pool shortcut)`.
    pub fn describe(&self) -> String {
        let mut traits: Vec<String> = Vec::new();
        let timm_only =
            matches!(self.stem, Stem::Deep { .. }) || self.shortcut == Shortcut::AvgPool;
        traits.push(if timm_only && self.layout == Layout::Torchvision {
            "timm layout".to_string()
        } else {
            format!(
                "{} layout",
                self.layout.describe(self.num_classes.is_some())
            )
        });
        if let Stem::Deep { widths } = self.stem {
            let kind = if widths[0] < widths[1] {
                "deep tiered stem"
            } else {
                "deep stem"
            };
            traits.push(format!("{kind} {}-{}-{}", widths[0], widths[1], widths[2]));
        }
        if self.shortcut == Shortcut::AvgPool {
            traits.push("avg-pool shortcut".into());
        }
        let groups = self.stages.iter().map(|s| s.groups).max().unwrap_or(1);
        if groups > 1 {
            traits.push(format!("{groups} groups"));
        }
        if self.has_se() {
            let reduced: Vec<usize> = self.stages.iter().filter_map(|s| s.se_reduced).collect();
            traits.push(format!(
                "squeeze-and-excitation, reduced widths {reduced:?}"
            ));
        }
        if self.stages.iter().any(|s| s.stride_on_1x1) {
            traits.push("stride on the first 1×1".into());
        }
        if self.stages.first().is_some_and(|s| s.stride == 2) {
            traits.push("stride 2 in stage 1".into());
        }
        if self.num_classes.is_none() {
            traits.push("no head: outputs pooled features".into());
        }
        format!("{} ({})", self.name(), traits.join(", "))
    }

    /// Whether block `b` of `stage` has a projection shortcut (PyTorch's rule in all three
    /// libraries: a stride or a change of width).
    pub fn has_projection(&self, stage: &Stage, b: usize, cin: usize) -> bool {
        b == 0 && (stage.stride != 1 || cin != stage.out_channels)
    }

    /// Every tensor the architecture needs, with its shape, in canonical naming (map with
    /// `self.layout.file_name`). The loader checks the file against this list both ways.
    pub fn expected_tensors(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let bn = |out: &mut Vec<(String, Vec<usize>)>, prefix: &str, c: usize| {
            for p in ["weight", "bias", "running_mean", "running_var"] {
                out.push((format!("{prefix}.{p}"), vec![c]));
            }
        };
        match self.stem {
            Stem::Plain { width } => out.push(("conv1.weight".into(), vec![width, 3, 7, 7])),
            Stem::Deep { widths: [a, b, c] } => {
                out.push(("conv1.0.weight".into(), vec![a, 3, 3, 3]));
                bn(&mut out, "conv1.1", a);
                out.push(("conv1.3.weight".into(), vec![b, a, 3, 3]));
                bn(&mut out, "conv1.4", b);
                out.push(("conv1.6.weight".into(), vec![c, b, 3, 3]));
            }
        }
        bn(&mut out, "bn1", self.stem.out_channels());
        let mut cin = self.stem.out_channels();
        for st in &self.stages {
            for b in 0..st.blocks {
                let p = format!("layer{}.{b}", st.index);
                let (w, o, g) = (st.inner_width, st.out_channels, st.groups);
                match self.block {
                    BlockKind::Basic => {
                        out.push((format!("{p}.conv1.weight"), vec![o, cin, 3, 3]));
                        bn(&mut out, &format!("{p}.bn1"), o);
                        out.push((format!("{p}.conv2.weight"), vec![o, o, 3, 3]));
                        bn(&mut out, &format!("{p}.bn2"), o);
                    }
                    BlockKind::Bottleneck => {
                        out.push((format!("{p}.conv1.weight"), vec![w, cin, 1, 1]));
                        bn(&mut out, &format!("{p}.bn1"), w);
                        out.push((format!("{p}.conv2.weight"), vec![w, w / g, 3, 3]));
                        bn(&mut out, &format!("{p}.bn2"), w);
                        out.push((format!("{p}.conv3.weight"), vec![o, w, 1, 1]));
                        bn(&mut out, &format!("{p}.bn3"), o);
                    }
                }
                if let Some(r) = st.se_reduced {
                    out.push((format!("{p}.se.fc1.weight"), vec![r, o, 1, 1]));
                    out.push((format!("{p}.se.fc1.bias"), vec![r]));
                    out.push((format!("{p}.se.fc2.weight"), vec![o, r, 1, 1]));
                    out.push((format!("{p}.se.fc2.bias"), vec![o]));
                }
                if self.has_projection(st, b, cin) {
                    let (conv, norm) = match self.shortcut {
                        Shortcut::Conv => ("downsample.0", "downsample.1"),
                        Shortcut::AvgPool => ("downsample.1", "downsample.2"),
                    };
                    out.push((format!("{p}.{conv}.weight"), vec![o, cin, 1, 1]));
                    bn(&mut out, &format!("{p}.{norm}"), o);
                }
                cin = o;
            }
        }
        if let Some(classes) = self.num_classes {
            out.push(("fc.weight".into(), vec![classes, cin]));
            out.push(("fc.bias".into(), vec![classes]));
        }
        out
    }

    /// Parameter count (BatchNorm affine parameters included, running statistics not), the
    /// way torchvision's `num_params` counts.
    pub fn parameter_count(&self) -> usize {
        self.expected_tensors()
            .iter()
            .filter(|(n, _)| !n.ends_with("running_mean") && !n.ends_with("running_var"))
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }
}

/// The standard torchvision and timm architectures by name, for synthetic weights:
/// `resnet{10,14,18,26,34,50,101,152,200}` with timm's `b/c/d/s/e/t` suffixes,
/// `resnext{depth}[suffix]_{G}x{W}d` and `wide_resnet{depth}[suffix]_{k}`, each also with timm's
/// `se` prefix (squeeze-and-excitation in every block: `seresnet50`, `seresnext26d_32x4d`).
pub fn standard(name: &str, num_classes: usize) -> Option<Arch> {
    // timm's `seresnet50`, `seresnext26d_32x4d`…: the same network with SE in every block.
    if let Some(plain) = name.strip_prefix("se") {
        let mut arch = standard(plain, num_classes)?;
        for s in &mut arch.stages {
            s.se_reduced = Some(timm_se_reduced(s.out_channels));
        }
        return Some(arch);
    }
    let (family, rest) = ["resnext", "wide_resnet", "resnet"]
        .iter()
        .find_map(|f| name.strip_prefix(f).map(|r| (*f, r)))?;
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    let depth: usize = rest[..digits].parse().ok()?;
    let rest = &rest[digits..];
    let (suffix, tail) = rest.split_once('_').unwrap_or((rest, ""));
    let (groups, width) = match family {
        "resnet" if tail.is_empty() => (1, 64),
        "wide_resnet" => (1, 64 * tail.parse::<usize>().ok()?),
        "resnext" => {
            let (g, w) = tail.strip_suffix('d')?.split_once('x')?;
            (g.parse().ok()?, w.parse().ok()?)
        }
        _ => return None,
    };
    let (stem, shortcut) = timm_variant(suffix)?;
    let (block, depths) = depths_for(depth)?;
    if block == BlockKind::Basic && (groups, width) != (1, 64) || groups == 0 {
        return None;
    }
    let exp = if block == BlockKind::Basic { 1 } else { 4 };
    Some(Arch {
        layout: Layout::Torchvision,
        block,
        stem,
        shortcut,
        stages: depths
            .iter()
            .enumerate()
            .map(|(i, &blocks)| Stage {
                index: i + 1,
                blocks,
                stride: if i == 0 { 1 } else { 2 },
                inner_width: match block {
                    BlockKind::Basic => 64 << i,
                    BlockKind::Bottleneck => (64 << i) * width / 64 * groups,
                },
                out_channels: (64 << i) * exp,
                groups: if block == BlockKind::Basic { 1 } else { groups },
                stride_on_1x1: false,
                se_reduced: None,
            })
            .collect(),
        num_classes: Some(num_classes),
        assumptions: vec![],
    })
}

/// timm's SE reduced width for `channels`: `make_divisible(C/16, 8, round_limit=0)`, i.e.
/// `max(8, ⌊C/16 + 4⌋ rounded down to a multiple of 8)`.
pub fn timm_se_reduced(channels: usize) -> usize {
    ((channels / 16 + 4) / 8 * 8).max(8)
}

/// The stem and shortcut of timm's variant letter (`""` and `b`: torchvision's).
fn timm_variant(suffix: &str) -> Option<(Stem, Shortcut)> {
    let deep = |widths| Stem::Deep { widths };
    Some(match suffix {
        "" | "b" => (Stem::Plain { width: 64 }, Shortcut::Conv),
        "c" => (deep([32, 32, 64]), Shortcut::Conv),
        "d" => (deep([32, 32, 64]), Shortcut::AvgPool),
        "s" => (deep([64, 64, 128]), Shortcut::Conv),
        "e" => (deep([64, 64, 128]), Shortcut::AvgPool),
        "t" => (deep([24, 32, 64]), Shortcut::AvgPool),
        _ => return None,
    })
}

/// A torchvision-style architecture with stem width `base` and stage planes `base·2^i`.
pub fn with_widths(block: BlockKind, depths: &[usize], base: usize, num_classes: usize) -> Arch {
    let exp = if block == BlockKind::Basic { 1 } else { 4 };
    Arch {
        layout: Layout::Torchvision,
        block,
        stem: Stem::Plain { width: base },
        shortcut: Shortcut::Conv,
        stages: depths
            .iter()
            .enumerate()
            .map(|(i, &blocks)| Stage {
                index: i + 1,
                blocks,
                stride: if i == 0 { 1 } else { 2 },
                inner_width: base << i,
                out_channels: (base << i) * exp,
                groups: 1,
                stride_on_1x1: false,
                se_reduced: None,
            })
            .collect(),
        num_classes: Some(num_classes),
        assumptions: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_counts_match_the_published_ones() {
        // torchvision's num_params, and timm's counts (derived in the family fact sheet).
        for (name, params) in [
            ("resnet18", 11_689_512),
            ("resnet34", 21_797_672),
            ("resnet50", 25_557_032),
            ("resnet101", 44_549_160),
            ("resnet152", 60_192_808),
            ("resnext50_32x4d", 25_028_904),
            ("resnext101_32x8d", 88_791_336),
            ("resnext101_64x4d", 83_455_272),
            ("wide_resnet50_2", 68_883_240),
            ("wide_resnet101_2", 126_886_696),
            ("resnet50d", 25_576_264),
            ("resnet50c", 25_576_264),
            ("resnet50s", 25_680_808),
            ("resnet26d", 16_014_408),
            ("resnet18d", 11_708_744),
        ] {
            let a = standard(name, 1000).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(a.parameter_count(), params, "{name}");
            assert_eq!(a.name(), name, "names round-trip");
        }
    }

    #[test]
    fn state_dict_tensor_counts_match() {
        // state_dict sizes minus one num_batches_tracked per BatchNorm.
        let bns = |a: &Arch| {
            a.expected_tensors()
                .iter()
                .filter(|(n, _)| n.ends_with("running_var"))
                .count()
        };
        for (name, total) in [
            ("resnet18", 122),
            ("resnet50", 320),
            ("resnet152", 932),
            ("resnext101_32x8d", 626),
            ("resnet50d", 332),
            ("resnet26d", 188),
            ("resnet18d", 134),
        ] {
            let a = standard(name, 1000).unwrap();
            assert_eq!(a.expected_tensors().len() + bns(&a), total, "{name}");
        }
    }

    #[test]
    fn squeeze_excitation_variants_match_timm() {
        // Parameters and state_dict tensors (less num_batches_tracked) of timm 1.0.31's
        // `create_model(name)`, counted in Python.
        for (name, params, tensors) in [
            ("seresnet18", 11_779_624, 134),
            ("seresnet50", 28_088_024, 331),
            ("seresnext26d_32x4d", 16_809_512, 189),
            ("seresnext50_32x4d", 27_559_896, 331),
            ("seresnet152d", 66_841_080, 987),
        ] {
            let a = standard(name, 1000).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(a.parameter_count(), params, "{name}");
            assert_eq!(a.expected_tensors().len(), tensors, "{name}");
            assert_eq!(a.name(), name, "names round-trip");
        }
        // The reduced width of C = 64/256/512/1024/2048 (timm's make_divisible(C/16, 8)).
        let reduced: Vec<usize> = [64, 256, 512, 1024, 2048, 40, 96]
            .map(timm_se_reduced)
            .to_vec();
        assert_eq!(reduced, [8, 16, 32, 64, 128, 8, 8]);
        let mut odd = standard("seresnet50", 10).unwrap();
        odd.stages[2].se_reduced = Some(20);
        assert!(odd.name().starts_with("seresnet50 (custom widths"));
        assert!(odd.describe().contains("reduced widths [16, 32, 20, 128]"));
        assert!(standard("seresnet51", 10).is_none());
    }

    #[test]
    fn names_and_descriptions() {
        for name in [
            "resnet200d",
            "resnet26t",
            "resnet10t",
            "resnext50d_32x4d",
            "resnet101e",
        ] {
            assert_eq!(standard(name, 10).unwrap().name(), name);
        }
        assert!(standard("resnet18_32x4d", 10).is_none());
        assert!(
            standard("resnext18_32x4d", 10).is_none(),
            "basic blocks have no groups"
        );
        assert!(standard("resnet51", 10).is_none());
        assert_eq!(
            standard("resnet50d", 1000).unwrap().describe(),
            "resnet50d (timm layout, deep stem 32-32-64, avg-pool shortcut)"
        );
        assert_eq!(
            standard("resnext50_32x4d", 1000).unwrap().describe(),
            "resnext50_32x4d (torchvision/timm layout, 32 groups)"
        );
        assert!(standard("resnet26t", 1000)
            .unwrap()
            .describe()
            .contains("deep tiered stem 24-32-64"));
        let mut narrow = with_widths(BlockKind::Bottleneck, &[3, 4, 6, 3], 8, 10);
        assert!(narrow.name().starts_with("resnet50 (custom widths"));
        narrow.num_classes = None;
        assert!(narrow.describe().contains("no head"));
    }
}
