// Convolution as a tiled implicit GEMM on channels-last activations, with the fused epilogue
// `relu?(conv + bias + residual?)` in the same dispatch.
//
// GEMM view:  C[M, N] = A[M, K] · B[K, N]
//   M = batch·H_out·W_out (output pixels),  N = C_out,  K = kH·kW·C_in
//   A[m, k] is gathered from the input on the fly (zero outside the padded image),
//   B is the BN-folded weight, re-laid at load time as (K, C_out) with
//   k = (ky·kW + kx)·C_in + ci, so a K-slice reads contiguous input channels.
//
// Video (TEMPORAL): activations are (N, T, H, W, C) and the window spans frames too:
//   M = batch·T_out·H_out·W_out,  K = kT·kH·kW·C_in,  k = ((kt·kH + ky)·kW + kx)·C_in + ci,
// with zero padding along T as along H and W. Everything else (tiles, groups, split-K, the
// epilogue) is shared. A conv that works frame by frame is planned as the 2-D conv of N·T
// images, so TEMPORAL is off for it and the 2-D specialisations stay exactly as they were.
// Each workgroup computes a TILE_M × TILE_N tile of C, staging TILE_K-deep slices of A and B
// in workgroup memory; each thread accumulates a THREAD_M × THREAD_N register block.
// Every load and store is guarded by the GEMM bounds, so the plan can create this module
// without runtime bounds checks.
//
// Grouped convolution (ResNeXt, GROUPED): each group g is its own GEMM with
// N = C_out/G and K = kH·kW·C_in/G, reading input channels [g·C_in/G, (g+1)·C_in/G). The
// group is a grid dimension: workgroup x = g·group_tiles + channel tile. The weight keeps the
// dense layout (K, C_out) with k = (ky·kW + kx)·(C_in/G) + ci, so a group's B tile is a
// column block of it. A dense conv is the case G = 1.
//
// Split-K (SPLIT_K, dense only): when a layer has too few output tiles to fill the GPU
// (7×7 and 14×14 layers at batch 1), K is cut into slices of p.k_split: workgroup
// x = slice·group_tiles + channel tile, and each slice writes its raw partial sums to
// `output`, bound to a scratch buffer (slices, M, C_out). `split_k_reduce` then adds the
// slices in order and applies bias, residual and ReLU. The partial sums stay f32 in any
// precision, in their own binding `partials`.
//
// Precision: activations and weights are stored as `Act` (f32, or f16 in the f16 module;
// see src/gpu/precision.rs); every load converts to f32 and all arithmetic is f32.
alias Act = f32;

override TILE_M: u32 = 64u;     // output pixels per workgroup, multiple of THREAD_M
override TILE_N: u32 = 64u;     // output channels per workgroup, multiple of THREAD_N
override TILE_K: u32 = 16u;     // reduction depth staged per step
override HAS_RESIDUAL: bool = false;
override RELU: bool = true;
override INPUT_NCHW: bool = false; // the stem reads the user's NCHW input directly
override POINTWISE: bool = false;  // 1×1, stride 1, pad 0: A is the input matrix itself
override GROUPED: bool = false;    // groups as a grid dimension (see above)
override SPLIT_K: bool = false;    // write partial sums of one K slice (see above)
override TEMPORAL: bool = false;   // windows over frames, NCTHW stem input (see above)
override PRE_ACT: bool = false;    // relu(x·scale + shift) on every in-bounds input (see below)

// Register blocking is fixed (WGSL function-scope arrays need constant sizes).
const THREAD_M: u32 = 4u;
const THREAD_N: u32 = 4u;

struct Params {
    batch: u32,
    in_h: u32,
    in_w: u32,
    in_c: u32,
    out_h: u32,
    out_w: u32,
    out_c: u32,
    kernel: u32,  // kH = kW
    stride: u32,
    pad: u32,
    m: u32,       // batch·out_h·out_w
    k: u32,       // kernel²·group_in_c
    group_in_c: u32,  // in_c / groups (= in_c for a dense conv)
    group_out_c: u32, // out_c / groups
    group_tiles: u32, // channel tiles per group: ceil(group_out_c / TILE_N)
    k_split: u32,     // K elements per split-K slice, a multiple of TILE_K (= k unsplit)
    in_t: u32,        // frames (1 unless TEMPORAL)
    out_t: u32,
    kernel_t: u32,
    stride_t: u32,
    pad_t: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<Act>;        // (N, [T,] H, W, C_in), or (N, C_in, [T,] H, W) if INPUT_NCHW
@group(0) @binding(2) var<storage, read> weight: array<Act>;       // (kH·kW·C_in/G, C_out)
@group(0) @binding(3) var<storage, read> bias: array<f32>;         // (C_out)
@group(0) @binding(4) var<storage, read> residual: array<Act>;     // (N, H_out, W_out, C_out), read only if HAS_RESIDUAL
@group(0) @binding(5) var<storage, read_write> output: array<Act>; // (N, H_out, W_out, C_out); unused under SPLIT_K
@group(0) @binding(6) var<storage, read> pre_act: array<f32>;      // [scale; C_in] ++ [shift; C_in], read only if PRE_ACT
@group(0) @binding(7) var<storage, read_write> partials: array<f32>; // SPLIT_K and split_k_reduce: (slices, M, C_out)

// Stored as vec4 so each thread reads its THREAD_M rows and THREAD_N columns in one load.
var<workgroup> a_tile: array<vec4<f32>, TILE_K * TILE_M / 4u>; // [kk][mm / 4][mm % 4]
var<workgroup> b_tile: array<vec4<f32>, TILE_K * TILE_N / 4u>; // [kk][nn / 4][nn % 4]

// Per-thread A loads per K step: TILE_K·TILE_M / threads (at most A_LOADS_MAX). Each thread
// always loads the same column kk = t % TILE_K of the A tile (the plan keeps threads a
// multiple of TILE_K), so its output pixels are decoded once, before the K loop, and its k
// once per K step: no divisions in the inner loads.
const A_LOADS_MAX: u32 = 32u;

// Pre-activation (ResNet v2, Wide ResNets: BatchNorm + ReLU before the conv): applied to the
// input values as they are read, never to the padding, which PyTorch adds to the activated
// tensor. Input channel ci.
fn activate(v: f32, ci: u32) -> f32 {
    if (!PRE_ACT) {
        return v;
    }
    return max(fma(v, pre_act[ci], pre_act[p.in_c + ci]), 0.0);
}

// Input element (n, it, iy, ix, ci), or 0 in the zero padding (`it` is 0 unless TEMPORAL).
fn load_input(n: u32, it: i32, iy: i32, ix: i32, ci: u32) -> f32 {
    if (iy < 0 || ix < 0 || iy >= i32(p.in_h) || ix >= i32(p.in_w)) {
        return 0.0;
    }
    if (TEMPORAL && (it < 0 || it >= i32(p.in_t))) {
        return 0.0;
    }
    // Row index of the (image or frame) plane: n, or n·T + t in a clip.
    var plane = n;
    if (INPUT_NCHW) {
        plane = n * p.in_c + ci;
    }
    if (TEMPORAL) {
        plane = plane * p.in_t + u32(it);
    }
    if (INPUT_NCHW) {
        return activate(f32(input[(plane * p.in_h + u32(iy)) * p.in_w + u32(ix)]), ci);
    }
    return activate(f32(input[((plane * p.in_h + u32(iy)) * p.in_w + u32(ix)) * p.in_c + ci]), ci);
}

// Output pixel m as (n, frame, y, x) of (N, T_out, H_out, W_out); frame is 0 unless TEMPORAL.
fn output_pixel(m: u32) -> vec4<u32> {
    let hw = p.out_h * p.out_w;
    var n = m / hw;
    var pix = m - n * hw;
    var ot = 0u;
    if (TEMPORAL) {
        ot = n % p.out_t;
        n = n / p.out_t;
    }
    let oy = pix / p.out_w;
    return vec4<u32>(n, ot, oy, pix - oy * p.out_w);
}

// Tap k of the GEMM depth as (kt, ky, kx, ci within the group); kt is 0 unless TEMPORAL.
fn decode_tap(k: u32) -> vec4<u32> {
    let plane = p.kernel * p.kernel * p.group_in_c;
    var kt = 0u;
    var rest = k;
    if (TEMPORAL) {
        kt = k / plane;
        rest = k - kt * plane;
    }
    let row = p.kernel * p.group_in_c;
    let ky = rest / row;
    rest = rest - ky * row;
    let kx = rest / p.group_in_c;
    return vec4<u32>(kt, ky, kx, rest - kx * p.group_in_c);
}

@compute @workgroup_size(TILE_N / THREAD_N, TILE_M / THREAD_M, 1)
fn tiled(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let threads_x = TILE_N / THREAD_N;
    let threads = threads_x * (TILE_M / THREAD_M);
    let t = lid.y * threads_x + lid.x;
    // Output channels [n0, min(n0 + TILE_N, n_end)) of input channels from ci0.
    var n0 = wid.x * TILE_N;
    var n_end = p.out_c;
    var ci0 = 0u;
    // This workgroup's K range (one slice under SPLIT_K).
    var k_begin = 0u;
    var k_end = p.k;
    var slice = 0u;
    if (SPLIT_K) {
        slice = wid.x / p.group_tiles;
        n0 = (wid.x - slice * p.group_tiles) * TILE_N;
        k_begin = slice * p.k_split;
        k_end = min(p.k, k_begin + p.k_split);
    }
    if (GROUPED) {
        let g = wid.x / p.group_tiles;
        n0 = g * p.group_out_c + (wid.x - g * p.group_tiles) * TILE_N;
        n_end = (g + 1u) * p.group_out_c;
        ci0 = g * p.group_in_c;
    }
    // M tiles may spill into z when they exceed the 65535 per-dimension dispatch limit.
    let m0 = (wid.y + wid.z * nwg.y) * TILE_M;

    let a_loads = TILE_K * TILE_M / threads;
    let kk_a = t % TILE_K;
    let mm_a = t / TILE_K;
    let mm_step = threads / TILE_K;
    // Decoded output pixels of this thread's A loads: image, first input frame, top-left
    // input row and column.
    var img: array<u32, A_LOADS_MAX>;
    var it0: array<i32, A_LOADS_MAX>;
    var iy0: array<i32, A_LOADS_MAX>;
    var ix0: array<i32, A_LOADS_MAX>;
    for (var j = 0u; j < a_loads; j++) {
        let m = m0 + mm_a + j * mm_step;
        let o = output_pixel(m);
        img[j] = o.x;
        it0[j] = i32(o.y * p.stride_t) - i32(p.pad_t);
        iy0[j] = i32(o.z * p.stride) - i32(p.pad);
        // Rows past the end of M read as padding: an input row that can never be in range.
        iy0[j] = select(-i32(p.in_h) - i32(p.kernel), iy0[j], m < p.m);
        ix0[j] = i32(o.w * p.stride) - i32(p.pad);
    }

    var acc: array<vec4<f32>, THREAD_M>; // [row] → THREAD_N = 4 output channels
    for (var k0 = k_begin; k0 < k_end; k0 += TILE_K) {
        // Consecutive threads take consecutive k: contiguous channels of one input pixel.
        let k = k0 + kk_a;
        let tap = decode_tap(k);
        let ci = ci0 + tap.w;
        for (var j = 0u; j < a_loads; j++) {
            let mm = mm_a + j * mm_step;
            var v = 0.0;
            if (k < k_end) {
                if (POINTWISE) {
                    let m = m0 + mm;
                    if (m < p.m) {
                        v = activate(f32(input[m * p.in_c + k]), k);
                    }
                } else {
                    let it = it0[j] + i32(tap.x);
                    v = load_input(img[j], it, iy0[j] + i32(tap.y), ix0[j] + i32(tap.z), ci);
                }
            }
            a_tile[(kk_a * TILE_M + mm) / 4u][mm % 4u] = v;
        }
        // Consecutive threads take consecutive output channels: contiguous weight rows.
        for (var i = t; i < TILE_K * TILE_N; i += threads) {
            let nn = i % TILE_N;
            let kk = i / TILE_N;
            let k = k0 + kk;
            let o = n0 + nn;
            var v = 0.0;
            if (k < k_end && o < n_end) {
                v = f32(weight[k * p.out_c + o]);
            }
            b_tile[(kk * TILE_N + nn) / 4u][nn % 4u] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk++) {
            let b = b_tile[kk * (TILE_N / 4u) + lid.x];
            let a = a_tile[kk * (TILE_M / 4u) + lid.y];
            acc[0] = fma(vec4<f32>(a.x), b, acc[0]);
            acc[1] = fma(vec4<f32>(a.y), b, acc[1]);
            acc[2] = fma(vec4<f32>(a.z), b, acc[2]);
            acc[3] = fma(vec4<f32>(a.w), b, acc[3]);
        }
        workgroupBarrier();
    }

    for (var r = 0u; r < THREAD_M; r++) {
        let m = m0 + lid.y * THREAD_M + r;
        if (m >= p.m) {
            continue;
        }
        for (var c = 0u; c < THREAD_N; c++) {
            let o = n0 + lid.x * THREAD_N + c;
            if (SPLIT_K && o < n_end) {
                partials[(slice * p.m + m) * p.out_c + o] = acc[r][c];
            } else if (o < n_end) {
                var v = acc[r][c] + bias[o];
                if (HAS_RESIDUAL) {
                    v += f32(residual[m * p.out_c + o]);
                }
                if (RELU) {
                    v = max(v, 0.0);
                }
                output[m * p.out_c + o] = Act(v);
            }
        }
    }
}

// Register-only variant: no workgroup memory and no barriers. Each invocation computes one
// THREAD_M × THREAD_N block straight from global memory, walking K tap by tap so each pixel's
// bounds test is hoisted out of the channel loop and no index is divided in the K loop.
// Used where staging does not pay: on CPU adapters (lavapipe, WARP), whose barriers cost
// more than the reuse saves (3–4× faster there), and for grouped convs whose groups have a
// multiple of 4 channels (every ResNeXt: each A element is reused only group_out_c times).
// Consecutive threads take consecutive 4-channel slices of C_out, so weight loads are
// contiguous; a slice never straddles two groups (the plan checks group_out_c % 4 == 0 when
// grouped). Grid as for `tiled`: x covers C_out in TILE_N-channel tiles, y (spilling into z)
// covers M in TILE_M-pixel tiles; TILE_K is unused.
@compute @workgroup_size(TILE_N / THREAD_N, TILE_M / THREAD_M, 1)
fn registers(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let o0 = (wid.x * (TILE_N / THREAD_N) + lid.x) * THREAD_N;
    let m0 = ((wid.y + wid.z * nwg.y) * (TILE_M / THREAD_M) + lid.y) * THREAD_M;
    // No barriers below, so threads past the edge may leave at once.
    if (o0 >= p.out_c || m0 >= p.m) {
        return;
    }
    // First input channel of this slice's group (0 for a dense conv: group_out_c = out_c).
    let ci0 = (o0 / p.group_out_c) * p.group_in_c;
    let cols = min(THREAD_N, p.out_c - o0);
    // Distance between consecutive input channels of one pixel.
    var ci_stride = select(1u, p.in_h * p.in_w, INPUT_NCHW);
    if (TEMPORAL && INPUT_NCHW) {
        ci_stride *= p.in_t;
    }
    var img: array<u32, THREAD_M>;
    var it0: array<i32, THREAD_M>;
    var iy0: array<i32, THREAD_M>;
    var ix0: array<i32, THREAD_M>;
    for (var r = 0u; r < THREAD_M; r++) {
        let m = min(m0 + r, p.m - 1u); // rows past M compute a copy of the last, not stored
        let o = output_pixel(m);
        img[r] = o.x;
        it0[r] = i32(o.y * p.stride_t) - i32(p.pad_t);
        iy0[r] = i32(o.z * p.stride) - i32(p.pad);
        ix0[r] = i32(o.w * p.stride) - i32(p.pad);
    }
    var acc: array<vec4<f32>, THREAD_M>;
    let kernel_t = select(1u, p.kernel_t, TEMPORAL);
    for (var kt = 0u; kt < kernel_t; kt++) {
        for (var ky = 0u; ky < p.kernel; ky++) {
            for (var kx = 0u; kx < p.kernel; kx++) {
                // Input offset of each pixel's first channel of the group at this tap, or -1 in
                // the zero padding.
                var off: array<i32, THREAD_M>;
                for (var r = 0u; r < THREAD_M; r++) {
                    let it = it0[r] + i32(kt);
                    let iy = iy0[r] + i32(ky);
                    let ix = ix0[r] + i32(kx);
                    var inside = iy >= 0 && ix >= 0 && iy < i32(p.in_h) && ix < i32(p.in_w);
                    if (TEMPORAL) {
                        inside = inside && it >= 0 && it < i32(p.in_t);
                    }
                    // Plane of (image, frame): n, or n·T + t in a clip (n·C·T + t for NCTHW).
                    var plane = img[r];
                    if (INPUT_NCHW) {
                        plane = img[r] * p.in_c + ci0;
                    }
                    if (TEMPORAL) {
                        plane = plane * p.in_t + u32(max(it, 0));
                    }
                    let y = u32(max(iy, 0));
                    let x = u32(max(ix, 0));
                    var at = ((plane * p.in_h + y) * p.in_w + x) * p.in_c + ci0;
                    if (INPUT_NCHW) {
                        at = (plane * p.in_h + y) * p.in_w + x;
                    }
                    off[r] = select(-1, i32(at), inside);
                }
                let k0 = ((kt * p.kernel + ky) * p.kernel + kx) * p.group_in_c;
                for (var ci = 0u; ci < p.group_in_c; ci++) {
                    let w = (k0 + ci) * p.out_c + o0;
                    var scale = 1.0;
                    var shift = 0.0;
                    if (PRE_ACT) {
                        scale = pre_act[ci0 + ci];
                        shift = pre_act[p.in_c + ci0 + ci];
                    }
                    var b = vec4<f32>(0.0);
                    if (cols == THREAD_N) {
                        b = vec4<f32>(
                            f32(weight[w]), f32(weight[w + 1u]), f32(weight[w + 2u]), f32(weight[w + 3u])
                        );
                    } else {
                        for (var c = 0u; c < cols; c++) {
                            b[c] = f32(weight[w + c]);
                        }
                    }
                    for (var r = 0u; r < THREAD_M; r++) {
                        var a = 0.0;
                        if (off[r] >= 0) {
                            a = f32(input[u32(off[r]) + ci * ci_stride]);
                            if (PRE_ACT) {
                                a = max(fma(a, scale, shift), 0.0);
                            }
                        }
                        acc[r] = fma(vec4<f32>(a), b, acc[r]);
                    }
                }
            }
        }
    }
    for (var r = 0u; r < THREAD_M; r++) {
        let m = m0 + r;
        if (m >= p.m) {
            continue;
        }
        for (var c = 0u; c < cols; c++) {
            let o = o0 + c;
            var v = acc[r][c] + bias[o];
            if (HAS_RESIDUAL) {
                v += f32(residual[m * p.out_c + o]);
            }
            if (RELU) {
                v = max(v, 0.0);
            }
            output[m * p.out_c + o] = Act(v);
        }
    }
}

// Split-K reduction: output[m, o] = relu?(Σ_slice partial[slice, m, o] + bias[o] + residual?),
// the slices added in order, so the result does not depend on scheduling. One invocation per
// output element; the flat index folds into y as for every flat dispatch.
@compute @workgroup_size(256, 1, 1)
fn split_k_reduce(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    let total = p.m * p.out_c;
    if (i >= total) {
        return;
    }
    let slices = (p.k + p.k_split - 1u) / p.k_split;
    var v = 0.0;
    for (var s = 0u; s < slices; s++) {
        v += partials[s * total + i];
    }
    v += bias[i % p.out_c];
    if (HAS_RESIDUAL) {
        v += f32(residual[i]);
    }
    if (RELU) {
        v = max(v, 0.0);
    }
    output[i] = Act(v);
}
