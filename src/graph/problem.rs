//! A convolution at concrete shapes: the GEMM the kernels solve for one graph conv node.
//! Pure data, shared by the GPU ops, the tuner and the CPU reference's sampled check.

use super::{Conv, Shape, Window};

/// One convolution as the kernels see it (BatchNorm folded, epilogue fused).
///
/// A conv whose temporal window is a point works frame by frame: it is the 2-D conv of
/// `batch = N·T` images, so video networks reuse the image kernels for it. Only a conv that
/// mixes frames (or the stem, which reads NCTHW clips) keeps `in_t`/`out_t` and its temporal
/// window, and runs the kernels' temporal specialisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConvProblem {
    pub batch: usize,
    /// Frames in and out (1 for images and for frame-by-frame convs).
    pub in_t: usize,
    pub out_t: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub in_c: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub out_c: usize,
    pub kernel: usize,
    pub stride: usize,
    pub pad: usize,
    /// Kernel, stride and padding along T ([`Window::POINT`] for 2-D).
    pub kernel_t: usize,
    pub stride_t: usize,
    pub pad_t: usize,
    pub groups: usize,
    /// The stem reads the user's NCHW input.
    pub input_nchw: bool,
    pub residual: bool,
    pub relu: bool,
    /// A BatchNorm + ReLU applied to the input as read (pre-activation).
    pub pre_act: bool,
}

impl ConvProblem {
    /// A dense stride-1 "same" conv with a residual and ReLU, on a square map (unit tests of
    /// the configuration rules, kernel tests).
    pub fn same_size(batch: usize, hw: usize, in_c: usize, out_c: usize, kernel: usize) -> Self {
        ConvProblem {
            batch,
            in_t: 1,
            out_t: 1,
            in_h: hw,
            in_w: hw,
            in_c,
            out_h: hw,
            out_w: hw,
            out_c,
            kernel,
            stride: 1,
            pad: kernel / 2,
            kernel_t: 1,
            stride_t: 1,
            pad_t: 0,
            groups: 1,
            input_nchw: false,
            residual: true,
            relu: true,
            pre_act: false,
        }
    }

    /// The problem a graph conv node solves at input shape `x` and output shape `y`.
    pub fn of(c: &Conv, x: Shape, y: Shape, residual: bool) -> Self {
        // Frame by frame unless the window spans frames or the layout keeps T inside a
        // channel plane (the NCTHW stem input).
        let frames_apart = c.temporal.is_point() && !(c.input_nchw && x.t > 1);
        let (batch, in_t, out_t) = match frames_apart {
            true => (y.n * y.t, 1, 1),
            false => (y.n, x.t, y.t),
        };
        let temporal = match frames_apart {
            true => Window::POINT,
            false => c.temporal,
        };
        ConvProblem {
            batch,
            in_t,
            out_t,
            in_h: x.h,
            in_w: x.w,
            in_c: x.c,
            out_h: y.h,
            out_w: y.w,
            out_c: y.c,
            kernel: c.kernel,
            stride: c.stride,
            pad: c.pad,
            kernel_t: temporal.kernel,
            stride_t: temporal.stride,
            pad_t: temporal.pad,
            groups: c.groups,
            input_nchw: c.input_nchw,
            residual,
            relu: c.relu,
            pre_act: c.pre_act.is_some(),
        }
    }

    /// The output shape `(N, T_out, H_out, W_out, C_out)` (frame-by-frame convs count
    /// frames as images).
    pub fn output_shape(&self) -> Shape {
        Shape {
            n: self.batch,
            t: self.out_t,
            h: self.out_h,
            w: self.out_w,
            c: self.out_c,
        }
    }

    /// Whether the kernels need their temporal specialisation: frames in a window, or the
    /// NCTHW stem input of a clip.
    pub fn temporal(&self) -> bool {
        self.in_t > 1 || self.out_t > 1 || self.kernel_t > 1 || self.pad_t > 0
    }

    /// Input elements `N·T·H·W·C`.
    pub fn input_numel(&self) -> usize {
        self.batch * self.in_t * self.in_h * self.in_w * self.in_c
    }

    /// GEMM rows: output pixels over the batch (and frames).
    pub fn m(&self) -> usize {
        self.batch * self.out_t * self.out_h * self.out_w
    }
    pub fn group_in_c(&self) -> usize {
        self.in_c / self.groups
    }
    pub fn group_out_c(&self) -> usize {
        self.out_c / self.groups
    }
    /// GEMM depth of one group: kT·kH·kW·C_in/G.
    pub fn k(&self) -> usize {
        self.kernel_t * self.kernel * self.kernel * self.group_in_c()
    }
    pub fn grouped(&self) -> bool {
        self.groups > 1
    }
    /// 1×1, stride 1, no padding, channels-last: A is the input matrix itself.
    pub fn pointwise(&self) -> bool {
        self.kernel == 1
            && self.stride == 1
            && self.pad == 0
            && !self.input_nchw
            && !self.grouped()
            && !self.temporal()
    }
    pub fn flops(&self) -> u64 {
        2 * (self.m() * self.out_c * self.k()) as u64
    }

    /// Key of a tuning result: everything that decides which configuration is fastest. The
    /// epilogue (residual, ReLU) and the pre-activation are left out: they cost the same
    /// under every configuration.
    /// Image convs keep the keys they always had; temporal ones add their frames and window.
    pub fn key(&self) -> String {
        let frames = match self.temporal() {
            true => format!(
                " t{} kt{} st{} pt{}",
                self.in_t, self.kernel_t, self.stride_t, self.pad_t
            ),
            false => String::new(),
        };
        format!(
            "n{} {}x{}x{} k{} s{} p{} g{} -> {}{}{frames}",
            self.batch,
            self.in_h,
            self.in_w,
            self.in_c,
            self.kernel,
            self.stride,
            self.pad,
            self.groups,
            self.out_c,
            if self.input_nchw { " nchw" } else { "" }
        )
    }
}
