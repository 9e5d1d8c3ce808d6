//! A convolution at concrete shapes: the GEMM the kernels solve for one graph conv node.
//! Pure data, shared by the GPU ops, the tuner and the CPU reference's sampled check.

use super::{Conv, Shape};

/// One convolution as the kernels see it (BatchNorm folded, epilogue fused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConvProblem {
    pub batch: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub in_c: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub out_c: usize,
    pub kernel: usize,
    pub stride: usize,
    pub pad: usize,
    pub groups: usize,
    /// The stem reads the user's NCHW input.
    pub input_nchw: bool,
    pub residual: bool,
    pub relu: bool,
}

impl ConvProblem {
    /// A dense stride-1 "same" conv with a residual and ReLU, on a square map (unit tests of
    /// the configuration rules).
    #[cfg(test)]
    pub(crate) fn same_size(
        batch: usize,
        hw: usize,
        in_c: usize,
        out_c: usize,
        kernel: usize,
    ) -> Self {
        ConvProblem {
            batch,
            in_h: hw,
            in_w: hw,
            in_c,
            out_h: hw,
            out_w: hw,
            out_c,
            kernel,
            stride: 1,
            pad: kernel / 2,
            groups: 1,
            input_nchw: false,
            residual: true,
            relu: true,
        }
    }

    /// The problem a graph conv node solves at input shape `x` and output shape `y`.
    pub fn of(c: &Conv, x: Shape, y: Shape, residual: bool) -> Self {
        ConvProblem {
            batch: y.n,
            in_h: x.h,
            in_w: x.w,
            in_c: x.c,
            out_h: y.h,
            out_w: y.w,
            out_c: y.c,
            kernel: c.kernel,
            stride: c.stride,
            pad: c.pad,
            groups: c.groups,
            input_nchw: c.input_nchw,
            residual,
            relu: c.relu,
        }
    }

    /// The output shape `(N, H_out, W_out, C_out)`.
    pub fn output_shape(&self) -> Shape {
        Shape {
            n: self.batch,
            t: 1,
            h: self.out_h,
            w: self.out_w,
            c: self.out_c,
        }
    }

    /// GEMM rows: output pixels over the batch.
    pub fn m(&self) -> usize {
        self.batch * self.out_h * self.out_w
    }
    pub fn group_in_c(&self) -> usize {
        self.in_c / self.groups
    }
    pub fn group_out_c(&self) -> usize {
        self.out_c / self.groups
    }
    /// GEMM depth of one group: kH·kW·C_in/G.
    pub fn k(&self) -> usize {
        self.kernel * self.kernel * self.group_in_c()
    }
    pub fn grouped(&self) -> bool {
        self.groups > 1
    }
    /// 1×1, stride 1, no padding, channels-last: A is the input matrix itself.
    pub fn pointwise(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.pad == 0 && !self.input_nchw && !self.grouped()
    }
    pub fn flops(&self) -> u64 {
        2 * (self.m() * self.out_c * self.k()) as u64
    }

    /// Key of a tuning result: everything that decides which configuration is fastest. The
    /// epilogue (residual, ReLU) is left out: it costs the same under every configuration.
    pub fn key(&self) -> String {
        format!(
            "n{} {}x{}x{} k{} s{} p{} g{} -> {}{}",
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
