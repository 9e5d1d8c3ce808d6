//! Selected output pixels of a convolution, straight from the weight layout the GPU keeps,
//! so `resnet tune` can check each winner on convs too large to compute whole on the CPU.

use crate::graph::problem::ConvProblem;

/// Output rows `rows` (flat pixel indices `m = ((n·T_out + ot)·H_out + oy)·W_out + ox`) of
/// `relu?(conv(x) + bias + residual?)`, each row `C_out` values, in f64. `x` is NTHWC
/// (NCTHW when `p.input_nchw`; T = 1 for images); `w_kc` is `(kT·kH·kW·C_in/G, C_out)` with
/// `k = ((kt·kH + ky)·kW + kx)·C_in/G + ci`; `residual` is `(M, C_out)`.
pub fn conv_rows(
    p: &ConvProblem,
    x: &[f32],
    w_kc: &[f32],
    bias: &[f32],
    residual: Option<&[f32]>,
    rows: &[usize],
) -> Vec<f32> {
    let (gin, gout) = (p.group_in_c(), p.group_out_c());
    let mut out = Vec::with_capacity(rows.len() * p.out_c);
    let inside = |i: isize, len: usize| i >= 0 && i < len as isize;
    for &m in rows {
        let (plane, pix) = (m / (p.out_h * p.out_w), m % (p.out_h * p.out_w));
        let (n, ot) = (plane / p.out_t, plane % p.out_t);
        let (oy, ox) = (pix / p.out_w, pix % p.out_w);
        for o in 0..p.out_c {
            let c0 = (o / gout) * gin;
            let mut acc = bias[o] as f64;
            for (kt, ky, kx) in taps(p) {
                let it = (ot * p.stride_t + kt) as isize - p.pad_t as isize;
                let iy = (oy * p.stride + ky) as isize - p.pad as isize;
                let ix = (ox * p.stride + kx) as isize - p.pad as isize;
                if !(inside(it, p.in_t) && inside(iy, p.in_h) && inside(ix, p.in_w)) {
                    continue;
                }
                let (it, iy, ix) = (it as usize, iy as usize, ix as usize);
                for ci in 0..gin {
                    let c = c0 + ci;
                    let xi = if p.input_nchw {
                        (((n * p.in_c + c) * p.in_t + it) * p.in_h + iy) * p.in_w + ix
                    } else {
                        (((n * p.in_t + it) * p.in_h + iy) * p.in_w + ix) * p.in_c + c
                    };
                    let k = ((kt * p.kernel + ky) * p.kernel + kx) * gin + ci;
                    acc += x[xi] as f64 * w_kc[k * p.out_c + o] as f64;
                }
            }
            if let Some(r) = residual {
                acc += r[m * p.out_c + o] as f64;
            }
            if p.relu {
                acc = acc.max(0.0);
            }
            out.push(acc as f32);
        }
    }
    out
}

/// Every tap `(kt, ky, kx)` of the window, in the weight's order.
fn taps(p: &ConvProblem) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    (0..p.kernel_t).flat_map(move |kt| {
        (0..p.kernel).flat_map(move |ky| (0..p.kernel).map(move |kx| (kt, ky, kx)))
    })
}

/// Up to `count` pixel rows spread evenly over `0..m`, always with the first and the last
/// (tile edges are where indexing goes wrong).
pub fn sample_rows(m: usize, count: usize) -> Vec<usize> {
    if m <= count {
        return (0..m).collect();
    }
    let mut rows: Vec<usize> = (0..count).map(|i| i * (m - 1) / (count - 1)).collect();
    rows.dedup();
    rows
}
