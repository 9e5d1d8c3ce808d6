//! The network as pure data: an ops enum with shape inference. No wgpu types here, so the
//! graph and the plan built from it are unit-tested on the CPU.
//!
//! Activations are channels-last, `(N, T, H, W, C)`: images are clips of one frame (T = 1)
//! and a 2-D op is the 3-D op whose temporal window is [`Window::POINT`]. Only the graph
//! input is channels-first (NCHW, or NCTHW for clips), as users hand it over, and the stem
//! convolution reads it in that layout directly.

pub mod plan;
pub mod problem;

use crate::error::{Error, Result};

pub type ValueId = usize;

/// Shape of one activation, always reported as `(n, t, h, w, c)`; `t` is 1 for images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    pub n: usize,
    /// Frames (time); 1 for images.
    pub t: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

/// Most elements one activation may hold (2^36 f32 = 256 GiB, beyond any device's binding
/// limit). Refusing larger shapes keeps every size, byte count and FLOP count in range. On a
/// 32-bit target (wasm32) 2^28 (1 GiB of f32), so byte counts stay in its `usize` too.
pub const MAX_ELEMENTS: usize = if usize::BITS >= 64 {
    (1u64 << 36) as usize
} else {
    1 << 28
};

impl Shape {
    /// `n·t·h·w·c`, or `None` when it overflows.
    pub fn checked_numel(&self) -> Option<usize> {
        self.n
            .checked_mul(self.t)?
            .checked_mul(self.h)?
            .checked_mul(self.w)?
            .checked_mul(self.c)
    }
    pub fn numel(&self) -> usize {
        self.n * self.t * self.h * self.w * self.c
    }
    /// Bytes of this shape stored with `element_bytes` per value.
    pub fn bytes_as(&self, element_bytes: u64) -> u64 {
        self.numel() as u64 * element_bytes
    }

    pub fn bytes(&self) -> u64 {
        self.numel() as u64 * 4
    }
}

/// The size of a graph input: `n` images `(n, C, h, w)`, or `n` clips of `t` frames
/// `(n, C, t, h, w)`. Plans are made per input size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InputSize {
    pub n: usize,
    pub t: usize,
    pub h: usize,
    pub w: usize,
}

impl InputSize {
    /// `n` images of `h×w`.
    pub fn image(n: usize, h: usize, w: usize) -> Self {
        InputSize { n, t: 1, h, w }
    }

    /// `n` clips of `t` frames of `h×w`.
    pub fn clip(n: usize, t: usize, h: usize, w: usize) -> Self {
        InputSize { n, t, h, w }
    }

    /// The same frames, `n` of them.
    pub fn with_batch(self, n: usize) -> Self {
        InputSize { n, ..self }
    }

    /// `2x3x224x224` (clips: `2x3x16x112x112`) for logs and errors.
    pub fn describe(&self, channels: usize) -> String {
        match self.t {
            1 => format!("{}x{channels}x{}x{}", self.n, self.h, self.w),
            t => format!("{}x{channels}x{t}x{}x{}", self.n, self.h, self.w),
        }
    }
}

/// How a head's average pool meets the final map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HeadWindow {
    /// The whole map (an adaptive average pool to 1).
    Whole,
    /// A fixed `[T, H, W]` window that must be the whole map: a pool whose output is then
    /// flattened (RobustBench's WRN: `F.avg_pool2d(x, 8)`), so any other map is refused rather
    /// than pooled differently from the source.
    Exactly([usize; 3]),
    /// A fixed `[T, H, W]` window at stride 1, then the mean of all the window averages
    /// (pytorchvideo's head: `AvgPool3d`, the linear `proj` per position, `AdaptiveAvgPool3d(1)`;
    /// the linear layer commutes with the mean). A weighted mean over the map, the plain one
    /// when the window covers it; refused when the window is larger than the map.
    MeanOfWindows([usize; 3]),
}

impl HeadWindow {
    /// The `[T, H, W]` window pooled on a `[t, h, w]` map, or why this map cannot be pooled.
    pub fn on(&self, map: [usize; 3]) -> std::result::Result<[usize; 3], String> {
        let [t, h, w] = map;
        match *self {
            HeadWindow::Whole => Ok(map),
            HeadWindow::Exactly(k) if k == map => Ok(k),
            HeadWindow::Exactly(k) => Err(format!(
                "the head's {}×{}×{} average pool does not cover the final {t}×{h}×{w} map \
                 (T×H×W); give an input whose final map it covers",
                k[0], k[1], k[2]
            )),
            HeadWindow::MeanOfWindows(k) if k.iter().zip(map).all(|(&k, m)| k >= 1 && k <= m) => {
                Ok(k)
            }
            HeadWindow::MeanOfWindows(k) => Err(format!(
                "the head's {}×{}×{} average pool is larger than the final {t}×{h}×{w} map \
                 (T×H×W); give larger clips",
                k[0], k[1], k[2]
            )),
        }
    }
}

/// A window along the temporal axis: kernel, stride and padding in frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    pub kernel: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Window {
    /// One frame in, one frame out: the temporal window of every 2-D op.
    pub const POINT: Window = Window {
        kernel: 1,
        stride: 1,
        pad: 0,
    };

    pub fn is_point(&self) -> bool {
        *self == Self::POINT
    }
}

/// A convolution with its BatchNorm folded in, and the fused epilogue.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    /// Tensor name of the weight, `[C_out, C_in/groups, kH, kW]` (`[…, kT, kH, kW]` when the
    /// temporal window is not a point).
    pub weight: String,
    /// Prefix of the BatchNorm that follows (`layer1.0.bn1`), folded at load time. Empty
    /// when none follows (a pre-activation block's last conv): the weight as stored, no bias.
    pub bn: String,
    pub in_channels: usize,
    pub out_channels: usize,
    /// Groups (ResNeXt's cardinality): output channel `o` reads input channels
    /// `[g·C_in/G, (g+1)·C_in/G)` with `g = o / (C_out/G)`. 1 for a dense conv.
    pub groups: usize,
    /// Spatial kernel, stride and padding (the same along H and W).
    pub kernel: usize,
    pub stride: usize,
    pub pad: usize,
    /// Kernel, stride and padding along T; [`Window::POINT`] for a 2-D conv.
    pub temporal: Window,
    /// `relu(conv + bias [+ residual])`.
    pub relu: bool,
    /// The graph input arrives channels-first (NCHW, NCTHW for clips); only the stem conv
    /// reads it.
    pub input_nchw: bool,
    /// Pre-activation (ResNet v2, Wide ResNets): the BatchNorm (prefix) that, with a ReLU,
    /// applies to the input as the conv reads it. It cannot fold into the weights (the ReLU
    /// is in between, and the padding is zero *after* activation), so the kernel applies it
    /// to in-bounds values only.
    pub pre_act: Option<String>,
}

impl Conv {
    /// Input channels each output channel reads: `C_in / groups`, the weight's dim 1.
    pub fn group_in_channels(&self) -> usize {
        self.in_channels / self.groups.max(1)
    }

    /// Multiply-accumulates per output element: `kT·kH·kW·C_in/groups`.
    pub fn taps(&self) -> usize {
        self.temporal.kernel * self.kernel * self.kernel * self.group_in_channels()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// inputs: `[x]` or `[x, residual]` (residual shaped like the output).
    Conv(Conv),
    /// Max pool, implicit −∞ padding; spatial window (same along H and W), then temporal.
    MaxPool {
        kernel: usize,
        stride: usize,
        pad: usize,
        temporal: Window,
    },
    /// Average pool without padding cells in the divisor (`count_include_pad=False`): each
    /// window is clipped to the input and divided by the number of pixels left. With
    /// `ceil_mode` the last window may hang over the edge (timm's ResNet-D shortcut:
    /// `AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)`).
    AvgPool {
        kernel: usize,
        stride: usize,
        pad: usize,
        ceil_mode: bool,
        /// BatchNorm + ReLU applied to the input as read (see [`Conv::pre_act`]).
        pre_act: Option<String>,
    },
    /// Mean over T×H×W → `(N, 1, 1, 1, C)`, as `window` says (a head's pooling).
    GlobalAvgPool {
        window: HeadWindow,
        /// BatchNorm + ReLU applied to the input as read: a pre-activation network's final
        /// norm (see [`Conv::pre_act`]).
        pre_act: Option<String>,
    },
    /// Squeeze-and-excitation closing a block (timm `attn_layer='se'`), inputs `[y, residual]`:
    /// `relu(residual + y·sigmoid(fc2(relu(fc1(mean_hw(y))))))` per image and frame. `y` is the
    /// block's last conv with its BatchNorm folded and neither residual nor ReLU, which this op
    /// applies once the scale is known. fc1 is `(reduced, channels, 1, 1)` with a bias, fc2
    /// `(channels, reduced, 1, 1)` with a bias.
    SqueezeExcite(SqueezeExcite),
    /// `y = x·Wᵀ + b` on `(N, 1, 1, 1, C_in)` → `(N, 1, 1, 1, C_out)`.
    Linear {
        weight: String,
        bias: String,
        in_features: usize,
        out_features: usize,
    },
}

/// The tensors and widths of a squeeze-and-excitation ([`Op::SqueezeExcite`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SqueezeExcite {
    pub fc1_weight: String,
    pub fc1_bias: String,
    pub fc2_weight: String,
    pub fc2_bias: String,
    pub channels: usize,
    pub reduced: usize,
}

impl SqueezeExcite {
    /// Multiply-adds of both 1×1 layers per image: `C·C_r + C_r·C`.
    pub fn macs_per_image(&self) -> usize {
        2 * self.channels * self.reduced
    }
}

#[derive(Clone, Debug)]
pub struct Node {
    /// Torchvision module path, e.g. `layer3.1.conv2`; labels every GPU object.
    pub name: String,
    pub op: Op,
    pub inputs: Vec<ValueId>,
    pub output: ValueId,
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub num_values: usize,
    pub input: ValueId,
    pub output: ValueId,
    /// Value the head reads (pooled features, `(N, 1, 1, 1, C)`), for embeddings.
    pub features: ValueId,
    /// Channels of the graph input (3 for images and clips).
    pub input_channels: usize,
}

fn out_size(input: usize, kernel: usize, stride: usize, pad: usize) -> Option<usize> {
    (input + 2 * pad)
        .checked_sub(kernel)
        .map(|span| span / stride + 1)
}

/// PyTorch's `pooling_output_shape` (Pool.h): in ceil mode a window may start past the last
/// full one, but never in the right padding (`(out − 1)·stride ≥ in + pad` drops it).
pub fn pool_out_size(
    input: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    ceil_mode: bool,
) -> Option<usize> {
    let extra = if ceil_mode { stride - 1 } else { 0 };
    let span = (input + 2 * pad + extra).checked_sub(kernel)?;
    let mut out = span / stride + 1;
    if ceil_mode && (out - 1) * stride >= input + pad {
        out -= 1;
    }
    Some(out)
}

/// A conv's output shape: its channels and groups checked, the residual (second input) equal
/// to the output.
fn conv_output_shape(
    c: &Conv,
    name: &str,
    inputs: &[Shape],
    too_small: impl Fn() -> Error,
) -> Result<Shape> {
    let x = inputs[0];
    if x.c != c.in_channels {
        return Err(Error::InputShape(format!(
            "{name}: expects {} channels, got {}",
            c.in_channels, x.c
        )));
    }
    if c.groups == 0
        || !c.in_channels.is_multiple_of(c.groups)
        || !c.out_channels.is_multiple_of(c.groups)
    {
        return Err(Error::InputShape(format!(
            "{name}: {} groups do not divide {} → {} channels",
            c.groups, c.in_channels, c.out_channels
        )));
    }
    let tw = c.temporal;
    let t = out_size(x.t, tw.kernel, tw.stride, tw.pad).ok_or_else(&too_small)?;
    let h = out_size(x.h, c.kernel, c.stride, c.pad).ok_or_else(&too_small)?;
    let w = out_size(x.w, c.kernel, c.stride, c.pad).ok_or_else(&too_small)?;
    let out = Shape {
        n: x.n,
        t,
        h,
        w,
        c: c.out_channels,
    };
    if let Some(r) = inputs.get(1) {
        if *r != out {
            return Err(Error::InputShape(format!(
                "{name}: residual {r:?} does not match output {out:?}"
            )));
        }
    }
    Ok(out)
}

impl Op {
    /// Output shape from input shapes, or an error that says which layer cannot run.
    pub fn output_shape(&self, name: &str, inputs: &[Shape]) -> Result<Shape> {
        let x = inputs[0];
        let too_small = || {
            let frames = if x.t > 1 {
                format!("{}×", x.t)
            } else {
                String::new()
            };
            Error::InputShape(format!(
                "{name}: input {frames}{}×{} is too small for this network",
                x.h, x.w
            ))
        };
        match self {
            Op::Conv(c) => conv_output_shape(c, name, inputs, too_small),
            Op::MaxPool {
                kernel,
                stride,
                pad,
                temporal: tw,
            } => {
                let t = out_size(x.t, tw.kernel, tw.stride, tw.pad).ok_or_else(too_small)?;
                let h = out_size(x.h, *kernel, *stride, *pad).ok_or_else(too_small)?;
                let w = out_size(x.w, *kernel, *stride, *pad).ok_or_else(too_small)?;
                Ok(Shape { t, h, w, ..x })
            }
            Op::AvgPool {
                kernel,
                stride,
                pad,
                ceil_mode,
                ..
            } => {
                // PyTorch refuses padding over half the window (a window of only padding).
                if *stride == 0 || 2 * pad > *kernel {
                    return Err(Error::InputShape(format!(
                        "{name}: pad {pad} must be at most half the window {kernel}, stride ≥ 1"
                    )));
                }
                let size = |i| pool_out_size(i, *kernel, *stride, *pad, *ceil_mode);
                let h = size(x.h).ok_or_else(too_small)?;
                let w = size(x.w).ok_or_else(too_small)?;
                Ok(Shape { h, w, ..x })
            }
            Op::GlobalAvgPool { window, .. } => {
                window
                    .on([x.t, x.h, x.w])
                    .map_err(|why| Error::InputShape(format!("{name}: {why}")))?;
                Ok(Shape {
                    t: 1,
                    h: 1,
                    w: 1,
                    ..x
                })
            }
            Op::SqueezeExcite(se) => {
                if x.c != se.channels || inputs.get(1) != Some(&x) {
                    return Err(Error::InputShape(format!(
                        "{name}: expects {} channels and a residual shaped like them, got {:?}",
                        se.channels, inputs
                    )));
                }
                Ok(x)
            }
            Op::Linear {
                in_features,
                out_features,
                ..
            } => {
                let features = x.t * x.h * x.w * x.c;
                if features != *in_features {
                    return Err(Error::InputShape(format!(
                        "{name}: expects {in_features} features, got {features}"
                    )));
                }
                Ok(Shape {
                    n: x.n,
                    t: 1,
                    h: 1,
                    w: 1,
                    c: *out_features,
                })
            }
        }
    }

    /// The BatchNorm this op applies (with ReLU) to its input as it reads it, if any.
    pub fn pre_act(&self) -> Option<&str> {
        match self {
            Op::Conv(c) => c.pre_act.as_deref(),
            Op::AvgPool { pre_act, .. } | Op::GlobalAvgPool { pre_act, .. } => pre_act.as_deref(),
            _ => None,
        }
    }

    /// Multiply-adds ×2 for this op at the given output shape.
    pub fn flops(&self, out: &Shape) -> u64 {
        match self {
            Op::Conv(c) => 2 * (out.numel() * c.taps()) as u64,
            Op::Linear { in_features, .. } => 2 * (out.numel() * in_features) as u64,
            // The two 1×1 layers, once per image and frame (the pooling and scaling are
            // memory-bound and not counted, as the pools are not).
            Op::SqueezeExcite(se) => 2 * (out.n * out.t * se.macs_per_image()) as u64,
            _ => 0,
        }
    }
}

impl Graph {
    pub fn new_value(&mut self) -> ValueId {
        self.num_values += 1;
        self.num_values - 1
    }

    pub fn push(&mut self, name: impl Into<String>, op: Op, inputs: Vec<ValueId>) -> ValueId {
        let output = self.new_value();
        self.nodes.push(Node {
            name: name.into(),
            op,
            inputs,
            output,
        });
        output
    }

    /// Shapes of every value for an NCHW input `(n, 3, h, w)`.
    pub fn infer_shapes(&self, n: usize, h: usize, w: usize) -> Result<Vec<Shape>> {
        self.infer_clip_shapes(n, 1, h, w)
    }

    /// Shapes of every value for an input of this size.
    pub fn shapes_for(&self, size: InputSize) -> Result<Vec<Shape>> {
        self.infer_clip_shapes(size.n, size.t, size.h, size.w)
    }

    /// Shapes of every value for an NCTHW input `(n, 3, t, h, w)`.
    pub fn infer_clip_shapes(&self, n: usize, t: usize, h: usize, w: usize) -> Result<Vec<Shape>> {
        let c = self.input_channels;
        let input_dims = if t == 1 {
            format!("({n}, {c}, {h}, {w})")
        } else {
            format!("({n}, {c}, {t}, {h}, {w})")
        };
        if n == 0 || t == 0 || h == 0 || w == 0 {
            return Err(Error::InputShape(format!(
                "input {input_dims} has an empty dimension"
            )));
        }
        let empty = Shape {
            n: 0,
            t: 0,
            h: 0,
            w: 0,
            c: 0,
        };
        let mut shapes = vec![empty; self.num_values];
        shapes[self.input] = Shape { n, t, h, w, c };
        let too_large = |what: &str, s: &Shape| {
            let fits = s.checked_numel().is_some_and(|e| e <= MAX_ELEMENTS);
            (!fits).then(|| {
                Error::InputShape(format!(
                    "input {input_dims} is too large: {what} would hold more than 2^36 values"
                ))
            })
        };
        if let Some(e) = too_large("the input", &shapes[self.input]) {
            return Err(e);
        }
        for node in &self.nodes {
            let ins: Vec<Shape> = node.inputs.iter().map(|&v| shapes[v]).collect();
            let out = node.op.output_shape(&node.name, &ins)?;
            if let Some(e) = too_large(&format!("the output of {}", node.name), &out) {
                return Err(e);
            }
            shapes[node.output] = out;
        }
        Ok(shapes)
    }

    /// The first node that works across frames (a temporal window that is not a point), if
    /// any: a graph without one runs each frame as an image.
    pub fn first_temporal_node(&self) -> Option<&Node> {
        self.nodes.iter().find(|n| match &n.op {
            Op::Conv(c) => !c.temporal.is_point(),
            Op::MaxPool { temporal, .. } => !temporal.is_point(),
            _ => false,
        })
    }

    /// Bytes of the prepared f32 weights and biases (what the GPU holds after folding).
    pub fn folded_weight_bytes(&self) -> u64 {
        self.folded_weight_bytes_as(4)
    }

    /// [`Graph::folded_weight_bytes`] with weights stored at `element_bytes` per value (2 in
    /// f16); biases stay f32.
    pub fn folded_weight_bytes_as(&self, element_bytes: u64) -> u64 {
        self.nodes
            .iter()
            .map(|n| {
                let (weights, biases) = match &n.op {
                    Op::Conv(c) => (c.taps() * c.out_channels, c.out_channels),
                    Op::Linear {
                        in_features,
                        out_features,
                        ..
                    } => (in_features * out_features, *out_features),
                    Op::SqueezeExcite(se) => (se.macs_per_image(), se.reduced + se.channels),
                    _ => (0, 0),
                };
                weights as u64 * element_bytes + biases as u64 * 4
            })
            .sum()
    }

    pub fn conv_count(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| matches!(n.op, Op::Conv(_)))
            .count()
    }
}
