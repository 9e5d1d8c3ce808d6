// 1×1 convolutions as plain GEMMs on channels-last activations, with the conv's fused
// epilogue `relu?(A·W + bias + residual?)` and its optional pre-activation prologue.
//
//   C[M, C_out] = A[M, C_in] · W[C_in, C_out]
//   M = batch·H_out·W_out. Row m of A is one input pixel's channels: pixel m itself at stride 1,
//   pixel (n, oy·s, ox·s) under STRIDED (the downsample shortcuts) — a gather of whole rows,
//   decoded once per row, never per K step. W is the BN-folded weight as laid out at load,
//   (C_in, C_out).
//
// Every activation and weight is read and written as vec4 through typed bindings: the plan
// only picks these kernels when C_in and C_out are multiples of 4 (`ConvConfig::check`), so a
// row of A and of W is a whole number of vec4s. Indices count vec4s (in_c4 = C_in/4, out_c4 =
// C_out/4). Every load and store is guarded by the sizes in the uniform, so the module runs
// without runtime bounds checks.
//
// `gemm`: no workgroup memory, no barriers (CPU adapters: lavapipe's barriers cost more than
// staging saves). Each of the workgroup's 8×8 threads computes a BLOCK_M × (4·BLOCK_N4) block
// of C from global memory, walking K four channels at a time.
// `gemm_tiled`: workgroup-memory tiles TILE_M × TILE_N × TILE_K and 4×4 register blocks, for
// GPUs, where staging A and W pays for its barriers.

alias Act = f32;

override BLOCK_M: u32 = 4u;  // gemm: output pixels per thread, 1..=MAX_BLOCK_M
override BLOCK_N4: u32 = 2u; // gemm: output channel quads per thread, 1..=MAX_BLOCK_N4
override TILE_M: u32 = 64u;  // gemm_tiled: output pixels per workgroup, multiple of 4
override TILE_N: u32 = 64u;  // gemm_tiled: output channels per workgroup, multiple of 4
override TILE_K: u32 = 16u;  // gemm_tiled: input channels staged per step, multiple of 4
override HAS_RESIDUAL: bool = false;
override RELU: bool = true;
override STRIDED: bool = false; // stride > 1: row m of A is a gathered input pixel
override PRE_ACT: bool = false; // relu(a·scale + shift) per input channel on every A load

// Function-scope arrays need constant sizes: the register block's largest extent.
const MAX_BLOCK_M: u32 = 8u;
const MAX_BLOCK_N4: u32 = 2u;
// gemm's workgroup: threads along channel quads (x) × along pixels (y).
const THREADS_X: u32 = 8u;
const THREADS_Y: u32 = 8u;

struct Params {
    m: u32,      // batch·out_h·out_w
    in_c4: u32,  // C_in / 4
    out_c4: u32, // C_out / 4
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    stride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<vec4<Act>>;        // (N, H, W, C_in)
@group(0) @binding(2) var<storage, read> weight: array<vec4<Act>>;       // (C_in, C_out)
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;         // (C_out)
@group(0) @binding(4) var<storage, read> residual: array<vec4<Act>>;     // (M, C_out), read only if HAS_RESIDUAL
@group(0) @binding(5) var<storage, read_write> output: array<vec4<Act>>; // (M, C_out)
@group(0) @binding(6) var<storage, read> pre_act: array<vec4<f32>>;      // [scale; C_in] ++ [shift; C_in], read only if PRE_ACT

// The input pixel (row of the input matrix) that output pixel m reads.
fn input_row(m: u32) -> u32 {
    if (!STRIDED) {
        return m;
    }
    let hw = p.out_h * p.out_w;
    let n = m / hw;
    let pix = m - n * hw;
    let oy = pix / p.out_w;
    let ox = pix - oy * p.out_w;
    return (n * p.in_h + oy * p.stride) * p.in_w + ox * p.stride;
}

// Four input channels (quad k4) of one pixel, pre-activated when the conv has one (a 1×1 conv
// has no padding, so every A element is a real input value).
fn load_a(at: u32, k4: u32) -> vec4<f32> {
    let a = vec4<f32>(input[at + k4]);
    if (!PRE_ACT) {
        return a;
    }
    return max(fma(a, pre_act[k4], pre_act[p.in_c4 + k4]), vec4<f32>(0.0));
}

// Bias, residual and ReLU on one output quad, stored.
fn store(m: u32, c4: u32, acc: vec4<f32>) {
    var v = acc + bias[c4];
    if (HAS_RESIDUAL) {
        v += vec4<f32>(residual[m * p.out_c4 + c4]);
    }
    if (RELU) {
        v = max(v, vec4<f32>(0.0));
    }
    output[m * p.out_c4 + c4] = vec4<Act>(v);
}

@compute @workgroup_size(THREADS_X, THREADS_Y, 1)
fn gemm(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let c0 = (wid.x * THREADS_X + lid.x) * BLOCK_N4;
    let m0 = ((wid.y + wid.z * nwg.y) * THREADS_Y + lid.y) * BLOCK_M;
    // No barriers below, so threads past the edge may leave at once.
    if (c0 >= p.out_c4 || m0 >= p.m) {
        return;
    }
    // Rows past M and quads past C_out compute copies of the last ones, never stored: the
    // K loop stays free of tests.
    var row: array<u32, MAX_BLOCK_M>;
    for (var r = 0u; r < BLOCK_M; r++) {
        row[r] = input_row(min(m0 + r, p.m - 1u)) * p.in_c4;
    }
    var col: array<u32, MAX_BLOCK_N4>;
    for (var j = 0u; j < BLOCK_N4; j++) {
        col[j] = min(c0 + j, p.out_c4 - 1u);
    }
    var acc: array<vec4<f32>, MAX_BLOCK_M * MAX_BLOCK_N4>; // [r · MAX_BLOCK_N4 + j]
    for (var k4 = 0u; k4 < p.in_c4; k4++) {
        // W rows 4·k4 … 4·k4 + 3 at this thread's quads.
        var w: array<vec4<f32>, 4u * MAX_BLOCK_N4>; // [j · 4 + i]
        let w_row = 4u * k4 * p.out_c4;
        for (var j = 0u; j < BLOCK_N4; j++) {
            for (var i = 0u; i < 4u; i++) {
                w[j * 4u + i] = vec4<f32>(weight[w_row + i * p.out_c4 + col[j]]);
            }
        }
        for (var r = 0u; r < BLOCK_M; r++) {
            let a = load_a(row[r], k4);
            for (var j = 0u; j < BLOCK_N4; j++) {
                var s = acc[r * MAX_BLOCK_N4 + j];
                s = fma(vec4<f32>(a.x), w[j * 4u], s);
                s = fma(vec4<f32>(a.y), w[j * 4u + 1u], s);
                s = fma(vec4<f32>(a.z), w[j * 4u + 2u], s);
                s = fma(vec4<f32>(a.w), w[j * 4u + 3u], s);
                acc[r * MAX_BLOCK_N4 + j] = s;
            }
        }
    }
    for (var r = 0u; r < BLOCK_M; r++) {
        let m = m0 + r;
        if (m >= p.m) {
            break;
        }
        for (var j = 0u; j < BLOCK_N4; j++) {
            if (c0 + j < p.out_c4) {
                store(m, c0 + j, acc[r * MAX_BLOCK_N4 + j]);
            }
        }
    }
}

// Stored so each thread reads its 4 rows (a) and 4 columns (b) of one K step in one load.
var<workgroup> a_tile: array<vec4<f32>, TILE_K * TILE_M / 4u>; // [kk][mm / 4][mm % 4]
var<workgroup> b_tile: array<vec4<f32>, TILE_K * TILE_N / 4u>; // [kk][nn / 4]

@compute @workgroup_size(TILE_N / 4u, TILE_M / 4u, 1)
fn gemm_tiled(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let threads_x = TILE_N / 4u;
    let threads = threads_x * (TILE_M / 4u);
    let t = lid.y * threads_x + lid.x;
    let n0 = wid.x * (TILE_N / 4u); // first channel quad of the tile
    let m0 = (wid.y + wid.z * nwg.y) * TILE_M;
    let k_quads = TILE_K / 4u;
    var acc: array<vec4<f32>, 4>; // [row] → 4 output channels
    for (var k0 = 0u; k0 < p.in_c4; k0 += k_quads) {
        // A tile: TILE_M rows × TILE_K channels, one vec4 of one row per load, consecutive
        // threads on consecutive quads of a row; transposed into a_tile.
        for (var i = t; i < TILE_M * k_quads; i += threads) {
            let mm = i / k_quads;
            let kq = i - mm * k_quads;
            let m = m0 + mm;
            var v = vec4<f32>(0.0);
            if (m < p.m && k0 + kq < p.in_c4) {
                v = load_a(input_row(m) * p.in_c4, k0 + kq);
            }
            for (var c = 0u; c < 4u; c++) {
                a_tile[((4u * kq + c) * TILE_M + mm) / 4u][mm % 4u] = v[c];
            }
        }
        // W tile: TILE_K rows × TILE_N channels, consecutive threads on consecutive quads.
        for (var i = t; i < TILE_K * (TILE_N / 4u); i += threads) {
            let kk = i / (TILE_N / 4u);
            let nq = i - kk * (TILE_N / 4u);
            let k = 4u * k0 + kk;
            var v = vec4<f32>(0.0);
            if (k < 4u * p.in_c4 && n0 + nq < p.out_c4) {
                v = vec4<f32>(weight[k * p.out_c4 + n0 + nq]);
            }
            b_tile[i] = v;
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
    let c4 = n0 + lid.x;
    if (c4 >= p.out_c4) {
        return;
    }
    for (var r = 0u; r < 4u; r++) {
        let m = m0 + lid.y * 4u + r;
        if (m < p.m) {
            store(m, c4, acc[r]);
        }
    }
}
