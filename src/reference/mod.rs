//! Plain CPU implementation of every op, the oracle for kernel tests and for `--verify`.
//! Written for clarity, not speed: f64 accumulation, channels-last like the GPU path.

use crate::error::{Error, Result};
use crate::graph::{pool_out_size, Conv, Graph, HeadWindow, Op, Shape, SqueezeExcite, Window};
use crate::model::video::Pool3d;
use crate::weights::WeightsFile;

mod sampled;
pub mod video;
pub use sampled::{conv_rows, sample_rows};

pub const BN_EPS: f64 = 1e-5;

/// Folds BatchNorm into conv weights in f64, exactly as `torch.nn.utils.fusion` does:
/// `W' = W·γ/√(var+ε)`, `b' = β − mean·γ/√(var+ε)`. `w` is OIHW; returns (OIHW, bias).
pub fn fold_bn(
    w: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let cout = gamma.len();
    let per_out = w.len() / cout;
    let mut wf = vec![0f32; w.len()];
    let mut bias = vec![0f32; cout];
    for o in 0..cout {
        let s = gamma[o] as f64 / (var[o] as f64 + BN_EPS).sqrt();
        for i in 0..per_out {
            wf[o * per_out + i] = (w[o * per_out + i] as f64 * s) as f32;
        }
        bias[o] = (beta[o] as f64 - mean[o] as f64 * s) as f32;
    }
    (wf, bias)
}

/// `relu(BN(x))` per channel of a channels-last tensor with `c` channels, in f64: the
/// pre-activation a v2 block applies to its input before the conv reads (and pads) it.
pub fn pre_activate(
    x: &[f32],
    c: usize,
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
) -> Vec<f32> {
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = i % c;
            let normed = (v as f64 - mean[ch] as f64) / (var[ch] as f64 + BN_EPS).sqrt();
            (normed * gamma[ch] as f64 + beta[ch] as f64).max(0.0) as f32
        })
        .collect()
}

/// `max(x·scale + shift, 0)` per channel of a channels-last tensor, from a pre-activation
/// prepared for the GPU (`[scale; C] ++ [shift; C]`), in f64.
pub fn scale_shift_relu(x: &[f32], c: usize, scale_shift: &[f32]) -> Vec<f32> {
    let (scale, shift) = scale_shift.split_at(c);
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = i % c;
            (v as f64 * scale[ch] as f64 + shift[ch] as f64).max(0.0) as f32
        })
        .collect()
}

/// Parameters of one convolution for the reference.
#[derive(Clone, Copy, Debug)]
pub struct ConvParams {
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub pad: usize,
    pub relu: bool,
    /// Input stored NCHW instead of NHWC (the graph input).
    pub input_nchw: bool,
}

/// `relu?(conv(x, w) + bias + residual?)`. `x` is NHWC (or NCHW if `p.input_nchw`), `w` is
/// OIHW, the result NHWC.
pub fn conv2d(
    x: &[f32],
    xs: Shape,
    w: &[f32],
    bias: &[f32],
    residual: Option<&[f32]>,
    p: ConvParams,
) -> (Vec<f32>, Shape) {
    conv2d_grouped(x, xs, w, bias, residual, p, 1)
}

/// [`conv2d`] with `groups`: `w` is `(C_out, C_in/groups, k, k)` and output channel `o`
/// reads input channels `[g·C_in/G, (g+1)·C_in/G)`, `g = o / (C_out/G)` (PyTorch's rule).
pub fn conv2d_grouped(
    x: &[f32],
    xs: Shape,
    w: &[f32],
    bias: &[f32],
    residual: Option<&[f32]>,
    p: ConvParams,
    groups: usize,
) -> (Vec<f32>, Shape) {
    let (k, s, pad) = (p.kernel, p.stride, p.pad);
    let oh = (xs.h + 2 * pad - k) / s + 1;
    let ow = (xs.w + 2 * pad - k) / s + 1;
    let os = Shape {
        n: xs.n,
        t: 1,
        h: oh,
        w: ow,
        c: p.out_channels,
    };
    let cin = xs.c;
    let cin_g = cin / groups;
    let cout_g = p.out_channels / groups;
    // Weights as [o][ky][kx][ci] so the innermost loop walks contiguous channels.
    let mut wr = vec![0f32; w.len()];
    for o in 0..p.out_channels {
        for ci in 0..cin_g {
            for ky in 0..k {
                for kx in 0..k {
                    wr[((o * k + ky) * k + kx) * cin_g + ci] =
                        w[((o * cin_g + ci) * k + ky) * k + kx];
                }
            }
        }
    }
    // Input as NHWC.
    let xin: Vec<f32> = if p.input_nchw {
        nchw_to_nhwc(x, xs)
    } else {
        x.to_vec()
    };
    let mut out = vec![0f32; os.numel()];
    let rows = xs.n * oh;
    let row_len = ow * p.out_channels;
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(rows.max(1));
    let chunk_rows = rows.div_ceil(workers);
    std::thread::scope(|scope| {
        for (chunk_index, chunk) in out.chunks_mut(chunk_rows * row_len).enumerate() {
            let (xin, wr) = (&xin, &wr);
            scope.spawn(move || {
                for (r, row) in chunk.chunks_mut(row_len).enumerate() {
                    let row_index = chunk_index * chunk_rows + r;
                    let (n, oy) = (row_index / oh, row_index % oh);
                    for ox in 0..ow {
                        for o in 0..p.out_channels {
                            let c0 = (o / cout_g) * cin_g;
                            let mut acc = 0f64;
                            for ky in 0..k {
                                let iy = (oy * s + ky) as isize - pad as isize;
                                if iy < 0 || iy >= xs.h as isize {
                                    continue;
                                }
                                for kx in 0..k {
                                    let ix = (ox * s + kx) as isize - pad as isize;
                                    if ix < 0 || ix >= xs.w as isize {
                                        continue;
                                    }
                                    let xb =
                                        ((n * xs.h + iy as usize) * xs.w + ix as usize) * cin + c0;
                                    let wb = ((o * k + ky) * k + kx) * cin_g;
                                    for ci in 0..cin_g {
                                        acc += xin[xb + ci] as f64 * wr[wb + ci] as f64;
                                    }
                                }
                            }
                            row[ox * p.out_channels + o] = acc as f32;
                        }
                    }
                }
            });
        }
    });
    for (i, v) in out.iter_mut().enumerate() {
        let mut y = *v as f64 + bias[i % p.out_channels] as f64;
        if let Some(r) = residual {
            y += r[i] as f64;
        }
        *v = if p.relu { y.max(0.0) as f32 } else { y as f32 };
    }
    (out, os)
}

pub fn nchw_to_nhwc(x: &[f32], s: Shape) -> Vec<f32> {
    let mut out = vec![0f32; s.numel()];
    for n in 0..s.n {
        for c in 0..s.c {
            for y in 0..s.h {
                for xx in 0..s.w {
                    out[((n * s.h + y) * s.w + xx) * s.c + c] =
                        x[((n * s.c + c) * s.h + y) * s.w + xx];
                }
            }
        }
    }
    out
}

/// Max pool on NHWC with implicit −∞ padding (padding never wins).
pub fn max_pool(
    x: &[f32],
    xs: Shape,
    kernel: usize,
    stride: usize,
    pad: usize,
) -> (Vec<f32>, Shape) {
    let oh = (xs.h + 2 * pad - kernel) / stride + 1;
    let ow = (xs.w + 2 * pad - kernel) / stride + 1;
    let os = Shape { h: oh, w: ow, ..xs };
    let mut out = vec![f32::NEG_INFINITY; os.numel()];
    for n in 0..xs.n {
        for oy in 0..oh {
            for ox in 0..ow {
                for c in 0..xs.c {
                    let mut m = f32::NEG_INFINITY;
                    for ky in 0..kernel {
                        for kx in 0..kernel {
                            let iy = (oy * stride + ky) as isize - pad as isize;
                            let ix = (ox * stride + kx) as isize - pad as isize;
                            if iy >= 0 && ix >= 0 && (iy as usize) < xs.h && (ix as usize) < xs.w {
                                m = m.max(
                                    x[((n * xs.h + iy as usize) * xs.w + ix as usize) * xs.c + c],
                                );
                            }
                        }
                    }
                    out[((n * oh + oy) * ow + ox) * xs.c + c] = m;
                }
            }
        }
    }
    (out, os)
}

/// Average pool on NHWC, PyTorch's `AvgPool2d(kernel, stride, pad, ceil_mode,
/// count_include_pad=False)`: each window starts at `o·stride − pad`, is clipped to the
/// input, and is divided by the number of input pixels it still covers (AvgPoolKernel.cpp).
pub fn avg_pool(
    x: &[f32],
    xs: Shape,
    kernel: usize,
    stride: usize,
    pad: usize,
    ceil_mode: bool,
) -> (Vec<f32>, Shape) {
    let size = |i| pool_out_size(i, kernel, stride, pad, ceil_mode).unwrap_or(0);
    let (oh, ow) = (size(xs.h), size(xs.w));
    let os = Shape { h: oh, w: ow, ..xs };
    let window = |o: usize, len: usize| {
        let start = (o * stride) as isize - pad as isize;
        let lo = start.max(0) as usize;
        let hi = ((start + kernel as isize).max(0) as usize).min(len);
        lo..hi.max(lo)
    };
    let mut out = vec![0f32; os.numel()];
    for n in 0..xs.n {
        for oy in 0..oh {
            for ox in 0..ow {
                let (rows, cols) = (window(oy, xs.h), window(ox, xs.w));
                let count = (rows.len() * cols.len()) as f64;
                for c in 0..xs.c {
                    let mut sum = 0f64;
                    for iy in rows.clone() {
                        for ix in cols.clone() {
                            sum += x[((n * xs.h + iy) * xs.w + ix) * xs.c + c] as f64;
                        }
                    }
                    out[((n * oh + oy) * ow + ox) * xs.c + c] = (sum / count) as f32;
                }
            }
        }
    }
    (out, os)
}

/// Mean over H×W, NHWC → `(N, 1, 1, C)`.
pub fn global_avg_pool(x: &[f32], xs: Shape) -> (Vec<f32>, Shape) {
    let os = Shape { h: 1, w: 1, ..xs };
    let hw = xs.h * xs.w;
    let mut out = vec![0f32; os.numel()];
    for n in 0..xs.n {
        for c in 0..xs.c {
            let sum: f64 = (0..hw).map(|p| x[(n * hw + p) * xs.c + c] as f64).sum();
            out[n * xs.c + c] = (sum / hw as f64) as f32;
        }
    }
    (out, os)
}

/// The weights of one squeeze-and-excitation: `fc1` `(C_r, C)` and `fc2` `(C, C_r)` with
/// their biases (the 1×1 conv weights, flattened).
pub struct SeWeights<'a> {
    pub fc1: &'a [f32],
    pub fc1_bias: &'a [f32],
    pub fc2: &'a [f32],
    pub fc2_bias: &'a [f32],
}

/// `relu(residual + y·sigmoid(fc2(relu(fc1(mean_hw(y))))))` on channels-last `y`, the scale
/// computed per image (and frame: `(N, T)` are the images), in f64.
pub fn squeeze_excite(y: &[f32], ys: Shape, residual: &[f32], se: &SeWeights) -> Vec<f32> {
    let (c, hw) = (ys.c, ys.h * ys.w);
    let reduced = se.fc1_bias.len();
    let mut out = vec![0f32; y.len()];
    for (image, (y, r)) in y.chunks(hw * c).zip(residual.chunks(hw * c)).enumerate() {
        let mean: Vec<f64> = (0..c)
            .map(|ch| (0..hw).map(|p| y[p * c + ch] as f64).sum::<f64>() / hw as f64)
            .collect();
        let hidden: Vec<f64> = (0..reduced)
            .map(|j| {
                let dot: f64 = (0..c).map(|ch| se.fc1[j * c + ch] as f64 * mean[ch]).sum();
                (dot + se.fc1_bias[j] as f64).max(0.0)
            })
            .collect();
        let scale: Vec<f64> = (0..c)
            .map(|ch| {
                let dot: f64 = (0..reduced)
                    .map(|j| se.fc2[ch * reduced + j] as f64 * hidden[j])
                    .sum();
                1.0 / (1.0 + (-(dot + se.fc2_bias[ch] as f64)).exp())
            })
            .collect();
        let base = image * hw * c;
        for i in 0..hw * c {
            let v = r[i] as f64 + y[i] as f64 * scale[i % c];
            out[base + i] = v.max(0.0) as f32;
        }
    }
    out
}

/// `y = x·Wᵀ + b`, `W` is `[out, in]`.
pub fn linear(x: &[f32], n: usize, w: &[f32], b: &[f32]) -> Vec<f32> {
    let out_f = b.len();
    let in_f = w.len() / out_f;
    let mut y = vec![0f32; n * out_f];
    for i in 0..n {
        for o in 0..out_f {
            let dot: f64 = (0..in_f)
                .map(|k| x[i * in_f + k] as f64 * w[o * in_f + k] as f64)
                .sum();
            y[i * out_f + o] = (dot + b[o] as f64) as f32;
        }
    }
    y
}

fn tensor(w: &WeightsFile, name: &str) -> Result<Vec<f32>> {
    w.to_f32(name).ok_or_else(|| Error::MissingTensor {
        name: name.into(),
        expected: vec![],
    })
}

/// [`squeeze_excite`] with the tensors of `op` from `weights`; `(N, T)` are the images.
fn squeeze_excite_with(
    weights: &WeightsFile,
    op: &SqueezeExcite,
    y: &[f32],
    ys: Shape,
    residual: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let residual = residual.ok_or_else(|| Error::InputShape("SE without a residual".into()))?;
    let (fc1, fc1_bias) = (
        tensor(weights, &op.fc1_weight)?,
        tensor(weights, &op.fc1_bias)?,
    );
    let (fc2, fc2_bias) = (
        tensor(weights, &op.fc2_weight)?,
        tensor(weights, &op.fc2_bias)?,
    );
    let se = SeWeights {
        fc1: &fc1,
        fc1_bias: &fc1_bias,
        fc2: &fc2,
        fc2_bias: &fc2_bias,
    };
    Ok(squeeze_excite(y, ys, residual, &se))
}

/// Runs the whole graph on the CPU. `input` is NCHW `(n, 3, h, w)`; returns the graph
/// output `(n, classes)` and the pooled features `(n, C)`.
pub fn run_graph(
    graph: &Graph,
    weights: &WeightsFile,
    input: &[f32],
    n: usize,
    h: usize,
    w: usize,
) -> Result<(Vec<f32>, Vec<f32>)> {
    run_clip_graph(graph, weights, input, [n, 1, h, w])
}

/// [`run_graph`] on an NCTHW clip batch `(n, 3, t, h, w)`: a node with a temporal window,
/// or any node once there are several frames, runs the 3-D reference ([`video`]).
pub fn run_clip_graph(
    graph: &Graph,
    weights: &WeightsFile,
    input: &[f32],
    [n, t, h, w]: [usize; 4],
) -> Result<(Vec<f32>, Vec<f32>)> {
    let shapes = graph.infer_clip_shapes(n, t, h, w)?;
    let mut values: Vec<Option<Vec<f32>>> = vec![None; graph.num_values];
    values[graph.input] = Some(input.to_vec());
    let images = t == 1 && graph.first_temporal_node().is_none();
    for node in &graph.nodes {
        let value = |v: usize| values[v].as_deref().expect("topological order");
        let xs = shapes[node.inputs[0]];
        let activated;
        let x = match node.op.pre_act() {
            Some(bn) => {
                activated = pre_activate_with(weights, bn, value(node.inputs[0]), xs.c)?;
                &activated
            }
            None => value(node.inputs[0]),
        };
        let residual = node.inputs.get(1).map(|&r| value(r));
        let out = if images {
            run_node_2d(&node.op, weights, x, xs, residual)?
        } else {
            run_node_3d(&node.op, weights, x, xs, residual)?
        };
        values[node.output] = Some(out);
    }
    let take = |v: usize| values[v].clone().unwrap_or_default();
    Ok((take(graph.output), take(graph.features)))
}

/// [`pre_activate`] with the BatchNorm `bn` of `weights`.
fn pre_activate_with(weights: &WeightsFile, bn: &str, x: &[f32], c: usize) -> Result<Vec<f32>> {
    let p = |name: &str| tensor(weights, &format!("{bn}.{name}"));
    let (gamma, beta) = (p("weight")?, p("bias")?);
    let (mean, var) = (p("running_mean")?, p("running_var")?);
    Ok(pre_activate(x, c, &gamma, &beta, &mean, &var))
}

/// A conv's weight with its BatchNorm folded in, and the bias; with no BatchNorm (an empty
/// `bn`) the weight as stored and a zero bias.
fn folded(weights: &WeightsFile, c: &Conv) -> Result<(Vec<f32>, Vec<f32>)> {
    if c.bn.is_empty() {
        return Ok((tensor(weights, &c.weight)?, vec![0.0; c.out_channels]));
    }
    let bn = |p: &str| tensor(weights, &format!("{}.{p}", c.bn));
    Ok(fold_bn(
        &tensor(weights, &c.weight)?,
        &bn("weight")?,
        &bn("bias")?,
        &bn("running_mean")?,
        &bn("running_var")?,
    ))
}

/// One node of an image graph.
fn run_node_2d(
    op: &Op,
    weights: &WeightsFile,
    x: &[f32],
    xs: Shape,
    residual: Option<&[f32]>,
) -> Result<Vec<f32>> {
    Ok(match op {
        Op::Conv(c) => {
            let (wf, bias) = folded(weights, c)?;
            let p = ConvParams {
                out_channels: c.out_channels,
                kernel: c.kernel,
                stride: c.stride,
                pad: c.pad,
                relu: c.relu,
                input_nchw: c.input_nchw,
            };
            conv2d_grouped(x, xs, &wf, &bias, residual, p, c.groups).0
        }
        Op::AvgPool {
            kernel,
            stride,
            pad,
            ceil_mode,
            ..
        } => avg_pool(x, xs, *kernel, *stride, *pad, *ceil_mode).0,
        Op::MaxPool {
            kernel,
            stride,
            pad,
            ..
        } => max_pool(x, xs, *kernel, *stride, *pad).0,
        Op::GlobalAvgPool {
            window: HeadWindow::MeanOfWindows(k),
            ..
        } => video::mean_of_windows(x, video::Shape3::of(xs), *k),
        Op::GlobalAvgPool { .. } => global_avg_pool(x, xs).0,
        Op::SqueezeExcite(se) => squeeze_excite_with(weights, se, x, xs, residual)?,
        Op::Linear { weight, bias, .. } => {
            linear(x, xs.n, &tensor(weights, weight)?, &tensor(weights, bias)?)
        }
    })
}

/// One node of a video graph, on `(N, T, H, W, C)`.
fn run_node_3d(
    op: &Op,
    weights: &WeightsFile,
    x: &[f32],
    xs: Shape,
    residual: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let s3 = video::Shape3::of(xs);
    let axes = |t: Window, k: usize| [t.kernel, k, k];
    Ok(match op {
        Op::Conv(c) => {
            let (wf, bias) = folded(weights, c)?;
            let p = video::Conv3dParams {
                out_channels: c.out_channels,
                kernel: axes(c.temporal, c.kernel),
                stride: [c.temporal.stride, c.stride, c.stride],
                pad: [c.temporal.pad, c.pad, c.pad],
                groups: c.groups,
                relu: c.relu,
            };
            let channels_last;
            let x = if c.input_nchw {
                channels_last = video::ncthw_to_nthwc(x, s3);
                &channels_last
            } else {
                x
            };
            video::conv3d(x, s3, &wf, &bias, residual, p)?.0
        }
        Op::MaxPool {
            kernel,
            stride,
            pad,
            temporal,
        } => {
            let pool = Pool3d {
                kernel: axes(*temporal, *kernel),
                stride: [temporal.stride, *stride, *stride],
                pad: [temporal.pad, *pad, *pad],
            };
            video::max_pool3d(x, s3, pool)?.0
        }
        Op::GlobalAvgPool {
            window: HeadWindow::MeanOfWindows(k),
            ..
        } => video::mean_of_windows(x, s3, *k),
        Op::GlobalAvgPool { .. } => video::global_avg_pool3d(x, s3),
        // An image network's SE on clips: each frame is an image.
        Op::SqueezeExcite(se) => squeeze_excite_with(weights, se, x, xs, residual)?,
        Op::Linear { weight, bias, .. } => {
            linear(x, xs.n, &tensor(weights, weight)?, &tensor(weights, bias)?)
        }
        Op::AvgPool { .. } => {
            return Err(Error::InputShape(
                "the CPU reference has no average pool over clips".into(),
            ))
        }
    })
}

/// `max|got − want| / max|want|`; NaN anywhere gives infinity, so it never passes.
pub fn relative_error(got: &[f32], want: &[f32]) -> f64 {
    if got.len() != want.len() {
        return f64::INFINITY;
    }
    let mut max_diff = 0f64;
    let mut max_want = 0f64;
    for (&g, &w) in got.iter().zip(want) {
        if !g.is_finite() || !w.is_finite() {
            return f64::INFINITY;
        }
        max_diff = max_diff.max((g as f64 - w as f64).abs());
        max_want = max_want.max((w as f64).abs());
    }
    if max_want == 0.0 {
        if max_diff == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        max_diff / max_want
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_matches_hand_computed_values() {
        // 1×3×3×1 input, 3×3 all-ones kernel, pad 1: each output sums its neighbourhood.
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let xs = Shape {
            n: 1,
            t: 1,
            h: 3,
            w: 3,
            c: 1,
        };
        let p = ConvParams {
            out_channels: 1,
            kernel: 3,
            stride: 1,
            pad: 1,
            relu: false,
            input_nchw: false,
        };
        let (y, ys) = conv2d(&x, xs, &[1.0; 9], &[0.5], None, p);
        assert_eq!((ys.h, ys.w), (3, 3));
        assert_eq!(y[0], 1.0 + 2.0 + 4.0 + 5.0 + 0.5);
        assert_eq!(y[4], 45.0 + 0.5);
    }

    #[test]
    fn grouped_conv_reads_only_its_group() {
        // 2 groups, 1×1: output 0 sees channels 0–1, output 1 sees channels 2–3.
        let x = vec![1.0, 2.0, 30.0, 40.0];
        let xs = Shape {
            n: 1,
            t: 1,
            h: 1,
            w: 1,
            c: 4,
        };
        let p = ConvParams {
            out_channels: 2,
            kernel: 1,
            stride: 1,
            pad: 0,
            relu: false,
            input_nchw: false,
        };
        let (y, _) = conv2d_grouped(&x, xs, &[1.0, 1.0, 1.0, -1.0], &[0.0; 2], None, p, 2);
        assert_eq!(y, vec![3.0, -10.0]);
    }

    #[test]
    fn avg_pool_ceil_mode_divides_by_the_pixels_inside() {
        // 3×3 input, 2×2/s2 ceil mode: windows of 4, 2, 2 and 1 pixels.
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let xs = Shape {
            n: 1,
            t: 1,
            h: 3,
            w: 3,
            c: 1,
        };
        let (y, ys) = avg_pool(&x, xs, 2, 2, 0, true);
        assert_eq!((ys.h, ys.w), (2, 2));
        assert_eq!(y, vec![3.0, 4.5, 7.5, 9.0]);
        // Floor mode drops the overhanging windows.
        let (y, ys) = avg_pool(&x, xs, 2, 2, 0, false);
        assert_eq!((ys.h, ys.w, y[0]), (1, 1, 3.0));
    }

    #[test]
    fn max_pool_padding_never_wins() {
        let x = vec![-5.0f32; 4];
        let (y, _) = max_pool(
            &x,
            Shape {
                n: 1,
                t: 1,
                h: 2,
                w: 2,
                c: 1,
            },
            3,
            2,
            1,
        );
        assert_eq!(y, vec![-5.0]);
    }

    #[test]
    fn squeeze_excite_scales_each_image_by_its_own_mean() {
        // C = 2, C_r = 1, 1×2 maps; fc1 sums the means, fc2 maps the hidden h to (h, −h).
        let ys = Shape {
            n: 2,
            t: 1,
            h: 1,
            w: 2,
            c: 2,
        };
        let y = [1.0, 3.0, 1.0, -1.0, 2.0, 0.0, -2.0, 0.0];
        let residual = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5];
        let se = SeWeights {
            fc1: &[1.0, 1.0],
            fc1_bias: &[0.0],
            fc2: &[1.0, -1.0],
            fc2_bias: &[0.0, 0.0],
        };
        let out = squeeze_excite(&y, ys, &residual, &se);
        let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
        // Image 0: means (1, 1) → h = 2 → scales σ(2), σ(−2). Image 1: means (0, 0) → h = 0
        // → scales ½; the last element is relu(0.5 + 0·½).
        let s = [sigmoid(2.0), sigmoid(-2.0)];
        let want = [s[0], 3.0 * s[1], s[0], 0.0, 1.0, 0.0, 0.0, 0.5];
        for (got, want) in out.iter().zip(want) {
            assert!((*got as f64 - want).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn relative_error_rejects_nan() {
        assert!(relative_error(&[f32::NAN], &[1.0]) > 1.0);
        assert_eq!(relative_error(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
    }
}
