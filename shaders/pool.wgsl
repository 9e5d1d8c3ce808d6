// Pooling on channels-last activations: the stem max pool (3-D in video networks: a window
// over frames too), the average pool of timm's ResNet-D shortcut and the global average pool
// (over T×H×W for clips). Activations are (N, T, H, W, C); ops that work frame by frame are
// planned with the frames counted as images (in_t = out_t = 1).
// One thread per output element; consecutive threads take consecutive channels, so every
// load is coalesced. Activations are stored as `Act` (see src/gpu/precision.rs); sums and
// maxima are taken in f32.
alias Act = f32;

override PRE_ACT: bool = false; // relu(x·scale + shift) on every input read (average pools)

struct Params {
    batch: u32,
    in_h: u32,
    in_w: u32,
    channels: u32,
    out_h: u32,
    out_w: u32,
    kernel: u32,
    stride: u32,
    pad: u32,
    total: u32,   // output elements
    in_t: u32,    // frames, and the max pool's temporal window
    out_t: u32,
    kernel_t: u32,
    stride_t: u32,
    pad_t: u32,
    kernel_w: u32, // the global pool's window width (its height is `kernel`)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<Act>;        // (N, T, H, W, C)
@group(0) @binding(2) var<storage, read_write> output: array<Act>; // (N, T_out, H_out, W_out, C)
@group(0) @binding(3) var<storage, read> pre_act: array<f32>;      // [scale; C] ++ [shift; C], read only if PRE_ACT

// Input element i of channel c, pre-activated (BatchNorm + ReLU) when the pool reads the
// activated tensor: a pre-activation network's final norm, or ResNet-v2-D's shortcut pool.
fn load(i: u32, c: u32) -> f32 {
    let v = f32(input[i]);
    if (!PRE_ACT) {
        return v;
    }
    return max(fma(v, pre_act[c], pre_act[p.channels + c]), 0.0);
}

fn flat_index(lid: vec3<u32>, wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid.x;
}

// (channel, x, y, plane) of output element idx of (N, T_out, H_out, W_out, C), where
// plane = n·T_out + t.
fn output_position(idx: u32) -> vec4<u32> {
    let pix = idx / p.channels;
    let rest = pix / p.out_w;
    return vec4<u32>(idx % p.channels, pix % p.out_w, rest % p.out_h, rest / p.out_h);
}

// Padding is implicit −∞: it never wins, and every window holds at least one real pixel
// because pad < kernel along every axis (checked by the plan).
@compute @workgroup_size(256, 1, 1)
fn max_pool(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let idx = flat_index(lid, wid, nwg);
    if (idx >= p.total) {
        return;
    }
    let o = output_position(idx);
    let c = o.x;
    let ox = o.y;
    let oy = o.z;
    let n = o.w / p.out_t;
    let ot = o.w - n * p.out_t;
    var m = -3.402823466e38;
    for (var kt = 0u; kt < p.kernel_t; kt++) {
        let it = i32(ot * p.stride_t + kt) - i32(p.pad_t);
        if (it < 0 || it >= i32(p.in_t)) {
            continue;
        }
        let plane = n * p.in_t + u32(it);
        for (var ky = 0u; ky < p.kernel; ky++) {
            let iy = i32(oy * p.stride + ky) - i32(p.pad);
            if (iy < 0 || iy >= i32(p.in_h)) {
                continue;
            }
            for (var kx = 0u; kx < p.kernel; kx++) {
                let ix = i32(ox * p.stride + kx) - i32(p.pad);
                if (ix < 0 || ix >= i32(p.in_w)) {
                    continue;
                }
                let at = ((plane * p.in_h + u32(iy)) * p.in_w + u32(ix)) * p.channels + c;
                m = max(m, f32(input[at]));
            }
        }
    }
    output[idx] = Act(m);
}

// Average pool with count_include_pad = false: the window [o·stride − pad, +kernel) is clipped
// to the input and divided by the pixels left. In ceil mode (timm's AvgPool2d(2, 2,
// ceil_mode=True)) the last window of an odd-sized input overhangs the edge and divides by 2
// (or 1 in the corner). The plan sizes the output by PyTorch's rule, under which every window
// starts inside the input or its left padding and pad ≤ kernel/2, so no window is empty.
@compute @workgroup_size(256, 1, 1)
fn avg_pool(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let idx = flat_index(lid, wid, nwg);
    if (idx >= p.total) {
        return;
    }
    let o = output_position(idx);
    let c = o.x;
    let ox = o.y;
    let oy = o.z;
    let n = o.w;
    let y0 = i32(oy * p.stride) - i32(p.pad);
    let x0 = i32(ox * p.stride) - i32(p.pad);
    let y_lo = u32(max(y0, 0));
    let y_hi = u32(clamp(y0 + i32(p.kernel), 0, i32(p.in_h)));
    let x_lo = u32(max(x0, 0));
    let x_hi = u32(clamp(x0 + i32(p.kernel), 0, i32(p.in_w)));
    var sum = 0.0;
    for (var iy = y_lo; iy < y_hi; iy++) {
        for (var ix = x_lo; ix < x_hi; ix++) {
            sum += load(((n * p.in_h + iy) * p.in_w + ix) * p.channels + c, c);
        }
    }
    let count = max((y_hi - min(y_lo, y_hi)) * (x_hi - min(x_lo, x_hi)), 1u);
    output[idx] = Act(sum / f32(count));
}

// Windows of a head pool covering position i of an axis of `len` with a window `k` at
// stride 1: the window starts s in [max(0, i − k + 1), min(i, len − k)].
fn windows_over(i: u32, len: u32, k: u32) -> u32 {
    return min(i, len - k) + 1u - (max(i + 1u, k) - k);
}

// Mean over T×H×W → (N, 1, 1, 1, C); total = N·C. With a head window smaller than the map
// (pytorchvideo: stride-1 window averages, then their mean), each position counts as often
// as windows cover it; a window covering the map weighs every position once.
@compute @workgroup_size(256, 1, 1)
fn global_avg_pool(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let idx = flat_index(lid, wid, nwg);
    if (idx >= p.total) {
        return;
    }
    let c = idx % p.channels;
    let n = idx / p.channels;
    var i = n * p.in_t * p.in_h * p.in_w;
    var sum = 0.0;
    for (var t = 0u; t < p.in_t; t++) {
        let wt = windows_over(t, p.in_t, p.kernel_t);
        for (var y = 0u; y < p.in_h; y++) {
            let wty = wt * windows_over(y, p.in_h, p.kernel);
            for (var x = 0u; x < p.in_w; x++) {
                let weight = wty * windows_over(x, p.in_w, p.kernel_w);
                sum += load(i * p.channels + c, c) * f32(weight);
                i++;
            }
        }
    }
    let windows = (p.in_t + 1u - p.kernel_t) * (p.in_h + 1u - p.kernel) * (p.in_w + 1u - p.kernel_w);
    output[idx] = Act(sum / f32(windows * p.kernel_t * p.kernel * p.kernel_w));
}
