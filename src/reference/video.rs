//! CPU reference for video ResNets: 3-D convolution, 3-D max pool and the global average
//! over T×H×W on channels-last `(N, T, H, W, C)` activations, f64 accumulation, and
//! [`run_video_arch`], which runs a detected [`VideoArch`] with BatchNorm folded — the oracle
//! the 3-D kernels will be tested against, and an end-to-end check of the fixtures now.

use super::{fold_bn, linear};
use crate::error::{Error, Result};
use crate::graph::{HeadWindow, Shape};
use crate::model::video::{Conv3d, Pool3d, VideoArch};
use crate::weights::WeightsFile;

/// Shape of a channels-last video activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape3 {
    pub n: usize,
    pub t: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl Shape3 {
    /// The graph's `(N, T, H, W, C)` shape.
    pub fn of(s: Shape) -> Self {
        Shape3 {
            n: s.n,
            t: s.t,
            h: s.h,
            w: s.w,
            c: s.c,
        }
    }

    pub fn numel(&self) -> usize {
        self.n * self.t * self.h * self.w * self.c
    }

    /// Index of `(n, t, y, x, c)`.
    fn at(&self, n: usize, t: usize, y: usize, x: usize, c: usize) -> usize {
        (((n * self.t + t) * self.h + y) * self.w + x) * self.c + c
    }
}

/// `(N, C, T, H, W)` (PyTorch's video layout) to `(N, T, H, W, C)`.
pub fn ncthw_to_nthwc(x: &[f32], s: Shape3) -> Vec<f32> {
    let mut out = vec![0f32; s.numel()];
    let plane = s.t * s.h * s.w;
    for n in 0..s.n {
        for c in 0..s.c {
            for p in 0..plane {
                out[(n * plane + p) * s.c + c] = x[(n * s.c + c) * plane + p];
            }
        }
    }
    out
}

/// One 3-D convolution: kernel, stride and padding per axis (T, H, W), groups, ReLU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv3dParams {
    pub out_channels: usize,
    pub kernel: [usize; 3],
    pub stride: [usize; 3],
    pub pad: [usize; 3],
    pub groups: usize,
    pub relu: bool,
}

/// Output length of a conv or pool window along one axis, `None` when the window does not fit.
fn out_len(len: usize, k: usize, s: usize, pad: usize) -> Option<usize> {
    (len + 2 * pad).checked_sub(k).map(|r| r / s + 1)
}

fn out_shape(
    xs: Shape3,
    k: [usize; 3],
    s: [usize; 3],
    pad: [usize; 3],
    c: usize,
) -> Result<Shape3> {
    let dim = |i: usize, len: usize| {
        out_len(len, k[i], s[i], pad[i]).ok_or_else(|| {
            Error::InputShape(format!(
                "a {}×{}×{} window does not fit a {}×{}×{} map (T×H×W)",
                k[0], k[1], k[2], xs.t, xs.h, xs.w
            ))
        })
    };
    Ok(Shape3 {
        n: xs.n,
        t: dim(0, xs.t)?,
        h: dim(1, xs.h)?,
        w: dim(2, xs.w)?,
        c,
    })
}

/// `relu?(conv3d(x, w) + bias + residual?)` on `(N, T, H, W, C)`. `w` is PyTorch's
/// `(C_out, C_in/G, kT, kH, kW)`; output channel `o` reads the input channels of group
/// `o / (C_out/G)`.
pub fn conv3d(
    x: &[f32],
    xs: Shape3,
    w: &[f32],
    bias: &[f32],
    residual: Option<&[f32]>,
    p: Conv3dParams,
) -> Result<(Vec<f32>, Shape3)> {
    let os = out_shape(xs, p.kernel, p.stride, p.pad, p.out_channels)?;
    let cin_g = xs.c / p.groups;
    let cout_g = p.out_channels / p.groups;
    // Weights as [o][kt][ky][kx][ci]: the innermost loop walks contiguous channels.
    let taps: usize = p.kernel.iter().product();
    let mut wr = vec![0f32; w.len()];
    for o in 0..p.out_channels {
        for ci in 0..cin_g {
            for tap in 0..taps {
                wr[(o * taps + tap) * cin_g + ci] = w[(o * cin_g + ci) * taps + tap];
            }
        }
    }
    let row_len = os.w * os.c;
    let rows = os.n * os.t * os.h;
    let mut out = vec![0f32; os.numel()];
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(rows.max(1));
    let chunk_rows = rows.div_ceil(workers);
    std::thread::scope(|scope| {
        for (chunk_index, chunk) in out.chunks_mut(chunk_rows * row_len).enumerate() {
            let wr = &wr;
            scope.spawn(move || {
                for (r, row) in chunk.chunks_mut(row_len).enumerate() {
                    let index = chunk_index * chunk_rows + r;
                    let (n, ot, oy) = (index / (os.t * os.h), index / os.h % os.t, index % os.h);
                    for ox in 0..os.w {
                        for o in 0..os.c {
                            let c0 = (o / cout_g) * cin_g;
                            let w_o = &wr[o * taps * cin_g..][..taps * cin_g];
                            let mut acc = bias[o] as f64
                                + window_sum(x, xs, w_o, &p, (n, [ot, oy, ox]), c0..c0 + cin_g);
                            let at = ox * os.c + o;
                            if let Some(res) = residual {
                                acc += res[index * row_len + at] as f64;
                            }
                            row[at] = (if p.relu { acc.max(0.0) } else { acc }) as f32;
                        }
                    }
                }
            });
        }
    });
    Ok((out, os))
}

/// `Σ x·w` over one output position's window (taps outside the input are zero padding) and
/// the input channels `channels`; `w_o` is one output channel's weights, `[tap][channel]`.
fn window_sum(
    x: &[f32],
    xs: Shape3,
    w_o: &[f32],
    p: &Conv3dParams,
    (n, out): (usize, [usize; 3]),
    channels: std::ops::Range<usize>,
) -> f64 {
    let [kt, kh, kw] = p.kernel;
    let dims = [xs.t, xs.h, xs.w];
    let mut acc = 0f64;
    for (tap, d) in (0..kt)
        .flat_map(|dt| (0..kh).flat_map(move |dy| (0..kw).map(move |dx| [dt, dy, dx])))
        .enumerate()
    {
        let pos: [isize; 3] =
            std::array::from_fn(|a| (out[a] * p.stride[a] + d[a]) as isize - p.pad[a] as isize);
        if (0..3).any(|a| pos[a] < 0 || pos[a] as usize >= dims[a]) {
            continue;
        }
        let xb = xs.at(
            n,
            pos[0] as usize,
            pos[1] as usize,
            pos[2] as usize,
            channels.start,
        );
        let wb = tap * channels.len();
        for ci in 0..channels.len() {
            acc += x[xb + ci] as f64 * w_o[wb + ci] as f64;
        }
    }
    acc
}

/// Max pool over (T, H, W) with implicit −∞ padding (padding never wins).
pub fn max_pool3d(x: &[f32], xs: Shape3, pool: Pool3d) -> Result<(Vec<f32>, Shape3)> {
    let os = out_shape(xs, pool.kernel, pool.stride, pool.pad, xs.c)?;
    let mut out = vec![f32::NEG_INFINITY; os.numel()];
    let window = |o: usize, axis: usize, len: usize| {
        let start = (o * pool.stride[axis]) as isize - pool.pad[axis] as isize;
        let lo = start.max(0) as usize;
        let hi = ((start + pool.kernel[axis] as isize).max(0) as usize).min(len);
        lo..hi.max(lo)
    };
    for n in 0..os.n {
        for ot in 0..os.t {
            for oy in 0..os.h {
                for ox in 0..os.w {
                    for c in 0..os.c {
                        let mut m = f32::NEG_INFINITY;
                        for it in window(ot, 0, xs.t) {
                            for iy in window(oy, 1, xs.h) {
                                for ix in window(ox, 2, xs.w) {
                                    m = m.max(x[xs.at(n, it, iy, ix, c)]);
                                }
                            }
                        }
                        out[os.at(n, ot, oy, ox, c)] = m;
                    }
                }
            }
        }
    }
    Ok((out, os))
}

/// Mean over T×H×W: `(N, T, H, W, C)` → `(N, C)`.
pub fn global_avg_pool3d(x: &[f32], xs: Shape3) -> Vec<f32> {
    let voxels = xs.t * xs.h * xs.w;
    let mut out = vec![0f32; xs.n * xs.c];
    for n in 0..xs.n {
        for c in 0..xs.c {
            let sum: f64 = (0..voxels)
                .map(|v| x[(n * voxels + v) * xs.c + c] as f64)
                .sum();
            out[n * xs.c + c] = (sum / voxels as f64) as f32;
        }
    }
    out
}

/// The mean of every stride-1 `[kT, kH, kW]` window's average over `(N, T, H, W, C)` →
/// `(N, C)`: pytorchvideo's head pool (`AvgPool3d` then `AdaptiveAvgPool3d(1)`), window by
/// window as PyTorch computes it. A window that covers the map is the plain mean.
pub fn mean_of_windows(x: &[f32], xs: Shape3, [kt, kh, kw]: [usize; 3]) -> Vec<f32> {
    let (nt, nh, nw) = (xs.t + 1 - kt, xs.h + 1 - kh, xs.w + 1 - kw);
    let mut out = vec![0f32; xs.n * xs.c];
    for n in 0..xs.n {
        for c in 0..xs.c {
            let at = |t: usize, y: usize, x_: usize| {
                x[(((n * xs.t + t) * xs.h + y) * xs.w + x_) * xs.c + c] as f64
            };
            let mut windows = 0.0;
            for (t0, y0, x0) in
                (0..nt).flat_map(|t| (0..nh).flat_map(move |y| (0..nw).map(move |x| (t, y, x))))
            {
                let mut sum = 0.0;
                for (t, y, x_) in
                    (0..kt).flat_map(|t| (0..kh).flat_map(move |y| (0..kw).map(move |x| (t, y, x))))
                {
                    sum += at(t0 + t, y0 + y, x0 + x_);
                }
                windows += sum / (kt * kh * kw) as f64;
            }
            out[n * xs.c + c] = (windows / (nt * nh * nw) as f64) as f32;
        }
    }
    out
}

fn tensor(w: &WeightsFile, name: &str) -> Result<Vec<f32>> {
    w.to_f32(name).ok_or_else(|| Error::MissingTensor {
        name: name.into(),
        expected: vec![],
    })
}

/// One conv of the architecture with its BatchNorm folded.
fn run_conv(
    weights: &WeightsFile,
    c: &Conv3d,
    x: &[f32],
    xs: Shape3,
    residual: Option<&[f32]>,
    relu: bool,
) -> Result<(Vec<f32>, Shape3)> {
    let bn = |p: &str| tensor(weights, &format!("{}.{p}", c.bn));
    let (wf, bias) = fold_bn(
        &tensor(weights, &c.weight)?,
        &bn("weight")?,
        &bn("bias")?,
        &bn("running_mean")?,
        &bn("running_var")?,
    );
    let p = Conv3dParams {
        out_channels: c.out_channels,
        kernel: c.kernel,
        stride: c.stride,
        pad: c.pad,
        groups: 1,
        relu,
    };
    if let Some(r) = residual {
        let os = out_shape(xs, c.kernel, c.stride, c.pad, c.out_channels)?;
        if r.len() != os.numel() {
            return Err(Error::InputShape(format!(
                "{}: the shortcut gives {} values, the branch {os:?}",
                c.weight,
                r.len()
            )));
        }
    }
    conv3d(x, xs, &wf, &bias, residual, p)
}

/// Runs `arch` on the CPU. `input` is PyTorch's `(N, 3, T, H, W)`; returns the output
/// `(N, classes)` (the features for a headless model) and the pooled features `(N, C)`.
pub fn run_video_arch(
    arch: &VideoArch,
    weights: &WeightsFile,
    input: &[f32],
    [n, t, h, w]: [usize; 4],
) -> Result<(Vec<f32>, Vec<f32>)> {
    let mut xs = Shape3 { n, t, h, w, c: 3 };
    if input.len() != xs.numel() {
        return Err(Error::InputShape(format!(
            "{} values for a ({n}, 3, {t}, {h}, {w}) clip batch",
            input.len()
        )));
    }
    let mut x = ncthw_to_nthwc(input, xs);
    for c in &arch.stem {
        (x, xs) = run_conv(weights, c, &x, xs, None, true)?;
    }
    if let Some(pool) = arch.stem_pool {
        (x, xs) = max_pool3d(&x, xs, pool)?;
    }
    for stage in &arch.stages {
        for block in &stage.blocks {
            let shortcut = match &block.shortcut {
                Some(c) => run_conv(weights, c, &x, xs, None, false)?.0,
                None => x.clone(),
            };
            let last = block.branch.len() - 1;
            for (i, c) in block.branch.iter().enumerate() {
                let residual = (i == last).then_some(shortcut.as_slice());
                (x, xs) = run_conv(weights, c, &x, xs, residual, true)?;
            }
        }
        if let Some(pool) = stage.pool_after {
            (x, xs) = max_pool3d(&x, xs, pool)?;
        }
    }
    let features = match arch.head_pool {
        Some(k) => {
            HeadWindow::MeanOfWindows(k)
                .on([xs.t, xs.h, xs.w])
                .map_err(Error::InputShape)?;
            mean_of_windows(&x, xs, k)
        }
        None => global_avg_pool3d(&x, xs),
    };
    let output = match &arch.head {
        Some(head) => linear(
            &features,
            n,
            &tensor(weights, &head.weight)?,
            &tensor(weights, &head.bias)?,
        ),
        None => features.clone(),
    };
    Ok((output, features))
}
