// Winograd convolution F(m×m, 3×3), m = WINO_M ∈ {2, 4}, for dense stride-1 3×3 convs on
// channels-last activations: out = Aᵀ·[(G·g·Gᵀ) ⊙ (Bᵀ·d·B)]·A per m×m output tile, with the
// element-wise product summed over input channels. With α = m + 2 and E = α² transform
// elements, that sum is E independent GEMMs (one per element e):
//   M[e] (tiles × C_out) = V[e] (tiles × C_in) · U[e] (C_in × C_out)
// Four entry points share one layout and one uniform:
//   weight_transform  U[e][ci][co] = (G·g·Gᵀ)[e] from the folded (9·C_in, C_out) weights;
//                     runs once per node and tile size (cached with the node's weights).
//   input_transform   V[e][tile][ci] = (Bᵀ·d·B)[e], d the α×α input patch (zero padding;
//                     PRE_ACT applies relu(x·scale + shift) to in-bounds values only).
//   gemm              M[e] = V[e]·U[e]: register blocks of 4 tiles × 4 channels, no
//                     workgroup memory and no barriers (CPU adapters pay dearly for them).
//   output_transform  Aᵀ·M·A per tile, then bias, residual and ReLU, channels-last output.
// V and M live in the plan's f32 scratch: V at 0, M at p.m_offset. Every index is guarded
// by the sizes in the uniform, so the module runs without runtime bounds checks.
// The transforms are Lavin & Gray's (2015) matrices, the usual choice for F(4×4, 3×3)
// (interpolation points 0, ±1, ±2, ∞).

alias Act = f32;

override WINO_M: u32 = 2u;  // output tile side: 2 or 4
override TILE_M: u32 = 32u; // gemm: Winograd tiles per workgroup (multiple of 4)
override TILE_N: u32 = 64u; // gemm: output channels per workgroup (multiple of 4)
override HAS_RESIDUAL: bool = false;
override RELU: bool = true;
override PRE_ACT: bool = false;

struct Params {
    batch: u32,
    in_h: u32,
    in_w: u32,
    in_c: u32,
    out_h: u32,
    out_w: u32,
    out_c: u32,
    pad: u32,
    tiles_h: u32,  // ceil(out_h / WINO_M)
    tiles_w: u32,  // ceil(out_w / WINO_M)
    tiles: u32,    // batch·tiles_h·tiles_w
    m_offset: u32, // where M starts in the scratch: E·tiles·in_c
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<Act>;        // (N, H, W, C_in)
@group(0) @binding(2) var<storage, read> weight: array<Act>;       // weight_transform: (9·C_in, C_out); else U (E, C_in, C_out)
@group(0) @binding(3) var<storage, read> bias: array<f32>;         // (C_out)
@group(0) @binding(4) var<storage, read> residual: array<Act>;     // (N, H_out, W_out, C_out), read only if HAS_RESIDUAL
@group(0) @binding(5) var<storage, read_write> output: array<Act>; // (N, H_out, W_out, C_out); weight_transform: U
@group(0) @binding(6) var<storage, read_write> scratch: array<f32>; // V (E, tiles, C_in) ++ M (E, tiles, C_out)
@group(0) @binding(7) var<storage, read> pre_act: array<f32>;      // [scale; C_in] ++ [shift; C_in], read only if PRE_ACT

const GROUP: u32 = 64u; // threads per workgroup of the transforms

fn alpha() -> u32 {
    return WINO_M + 2u;
}

// Flat thread index of a transform dispatch (workgroups folded into x and y).
fn flat_index(lid: vec3<u32>, wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * GROUP + lid.x;
}

// ---- 1-D transforms, each on α values (only the first 4 when WINO_M = 2) ----

// G·g for one column g of the kernel: α values.
fn g_col(a: f32, b: f32, c: f32) -> array<f32, 6> {
    if (WINO_M == 2u) {
        return array<f32, 6>(a, 0.5 * (a + b + c), 0.5 * (a - b + c), c, 0.0, 0.0);
    }
    return array<f32, 6>(
        a / 4.0,
        -(a + b + c) / 6.0,
        -(a - b + c) / 6.0,
        a / 24.0 + b / 12.0 + c / 6.0,
        a / 24.0 - b / 12.0 + c / 6.0,
        c,
    );
}

// Bᵀ·d on four channels at once.
fn b_transpose(d: array<vec4<f32>, 6>) -> array<vec4<f32>, 6> {
    if (WINO_M == 2u) {
        let z = vec4<f32>(0.0);
        return array<vec4<f32>, 6>(d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3], z, z);
    }
    return array<vec4<f32>, 6>(
        4.0 * d[0] - 5.0 * d[2] + d[4],
        -4.0 * (d[1] + d[2]) + d[3] + d[4],
        4.0 * (d[1] - d[2]) - d[3] + d[4],
        2.0 * (d[3] - d[1]) - d[2] + d[4],
        2.0 * (d[1] - d[3]) - d[2] + d[4],
        4.0 * d[1] - 5.0 * d[3] + d[5],
    );
}

// Aᵀ·m on four channels at once: WINO_M values (the rest zero).
fn a_transpose(m: array<vec4<f32>, 6>) -> array<vec4<f32>, 4> {
    let z = vec4<f32>(0.0);
    if (WINO_M == 2u) {
        return array<vec4<f32>, 4>(m[0] + m[1] + m[2], m[1] - m[2] - m[3], z, z);
    }
    let s12 = m[1] + m[2];
    let d12 = m[1] - m[2];
    let s34 = m[3] + m[4];
    let d34 = m[3] - m[4];
    return array<vec4<f32>, 4>(
        m[0] + s12 + s34,
        d12 + 2.0 * d34,
        s12 + 4.0 * s34,
        d12 + 8.0 * d34 + m[5],
    );
}

// ---- weight transform: one thread per (ci, co) ----

@compute @workgroup_size(64, 1, 1)
fn weight_transform(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = flat_index(lid, wid, nwg);
    if (i >= p.in_c * p.out_c) {
        return;
    }
    let ci = i / p.out_c;
    let co = i - ci * p.out_c;
    var g: array<f32, 9>;
    for (var tap = 0u; tap < 9u; tap++) {
        g[tap] = f32(weight[(tap * p.in_c + ci) * p.out_c + co]);
    }
    // G·g: the α×3 matrix, one kernel column (kx) at a time.
    var gg: array<array<f32, 6>, 3>;
    for (var kx = 0u; kx < 3u; kx++) {
        gg[kx] = g_col(g[kx], g[3u + kx], g[6u + kx]);
    }
    let a = alpha();
    let plane = p.in_c * p.out_c;
    for (var r = 0u; r < a; r++) {
        let row = g_col(gg[0][r], gg[1][r], gg[2][r]);
        for (var c = 0u; c < a; c++) {
            output[(r * a + c) * plane + i] = Act(row[c]);
        }
    }
}

// ---- input transform: one thread per (tile, 4 input channels) ----

// Input pixel (n, y, x), channels c..c+3 (zero past C_in, in the padding, and pre-activated
// where inside).
fn load4(n: u32, y: i32, x: i32, c: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (y < 0 || x < 0 || y >= i32(p.in_h) || x >= i32(p.in_w)) {
        return v;
    }
    let at = ((n * p.in_h + u32(y)) * p.in_w + u32(x)) * p.in_c + c;
    let lanes = min(4u, p.in_c - c);
    for (var j = 0u; j < lanes; j++) {
        var x_j = f32(input[at + j]);
        if (PRE_ACT) {
            x_j = max(fma(x_j, pre_act[c + j], pre_act[p.in_c + c + j]), 0.0);
        }
        v[j] = x_j;
    }
    return v;
}

@compute @workgroup_size(64, 1, 1)
fn input_transform(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let quads = (p.in_c + 3u) / 4u;
    let i = flat_index(lid, wid, nwg);
    if (i >= p.tiles * quads) {
        return;
    }
    let tile = i / quads;
    let c = (i - tile * quads) * 4u;
    let per_image = p.tiles_h * p.tiles_w;
    let n = tile / per_image;
    let ty = (tile - n * per_image) / p.tiles_w;
    let tx = tile - n * per_image - ty * p.tiles_w;
    let y0 = i32(ty * WINO_M) - i32(p.pad);
    let x0 = i32(tx * WINO_M) - i32(p.pad);
    let a = alpha();
    // Bᵀ·d along y for each column, then along x for each row.
    var cols: array<array<vec4<f32>, 6>, 6>; // [x][row of Bᵀ·d]
    for (var dx = 0u; dx < a; dx++) {
        var d: array<vec4<f32>, 6>;
        for (var dy = 0u; dy < a; dy++) {
            d[dy] = load4(n, y0 + i32(dy), x0 + i32(dx), c);
        }
        cols[dx] = b_transpose(d);
    }
    let lanes = min(4u, p.in_c - c);
    for (var r = 0u; r < a; r++) {
        var row: array<vec4<f32>, 6>;
        for (var dx = 0u; dx < a; dx++) {
            row[dx] = cols[dx][r];
        }
        let v = b_transpose(row);
        for (var e = 0u; e < a; e++) {
            let at = ((r * a + e) * p.tiles + tile) * p.in_c + c;
            for (var j = 0u; j < lanes; j++) {
                scratch[at + j] = v[e][j];
            }
        }
    }
}

// ---- the E GEMMs: M[e] = V[e]·U[e], 4 tiles × 4 channels per thread ----

@compute @workgroup_size(TILE_N / 4u, TILE_M / 4u, 1)
fn gemm(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let o0 = (wid.x * (TILE_N / 4u) + lid.x) * 4u;
    let t0 = (wid.y * (TILE_M / 4u) + lid.y) * 4u;
    // No barriers below, so threads past the edge may leave at once.
    if (o0 >= p.out_c || t0 >= p.tiles) {
        return;
    }
    let e = wid.z;
    let cols = min(4u, p.out_c - o0);
    // Rows past the last tile compute a copy of it, never stored.
    var v_at: array<u32, 4>;
    for (var r = 0u; r < 4u; r++) {
        v_at[r] = (e * p.tiles + min(t0 + r, p.tiles - 1u)) * p.in_c;
    }
    let u0 = e * p.in_c * p.out_c + o0;
    var acc: array<vec4<f32>, 4>;
    for (var ci = 0u; ci < p.in_c; ci++) {
        let w = u0 + ci * p.out_c;
        var b = vec4<f32>(0.0);
        if (cols == 4u) {
            b = vec4<f32>(f32(weight[w]), f32(weight[w + 1u]), f32(weight[w + 2u]), f32(weight[w + 3u]));
        } else {
            for (var c = 0u; c < cols; c++) {
                b[c] = f32(weight[w + c]);
            }
        }
        for (var r = 0u; r < 4u; r++) {
            acc[r] = fma(vec4<f32>(scratch[v_at[r] + ci]), b, acc[r]);
        }
    }
    let rows = min(4u, p.tiles - t0);
    for (var r = 0u; r < rows; r++) {
        let at = p.m_offset + (e * p.tiles + t0 + r) * p.out_c + o0;
        for (var c = 0u; c < cols; c++) {
            scratch[at + c] = acc[r][c];
        }
    }
}

// ---- output transform and epilogue: one thread per (tile, 4 output channels) ----

@compute @workgroup_size(64, 1, 1)
fn output_transform(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let quads = (p.out_c + 3u) / 4u;
    let i = flat_index(lid, wid, nwg);
    if (i >= p.tiles * quads) {
        return;
    }
    let tile = i / quads;
    let c = (i - tile * quads) * 4u;
    let lanes = min(4u, p.out_c - c);
    let a = alpha();
    // Aᵀ·M along the first axis for each column, then along the second for each row.
    var cols: array<array<vec4<f32>, 4>, 6>; // [column e][output row]
    for (var e = 0u; e < a; e++) {
        var m: array<vec4<f32>, 6>;
        for (var r = 0u; r < a; r++) {
            let at = p.m_offset + ((r * a + e) * p.tiles + tile) * p.out_c + c;
            for (var j = 0u; j < lanes; j++) {
                m[r][j] = scratch[at + j];
            }
        }
        cols[e] = a_transpose(m);
    }
    var b = vec4<f32>(0.0);
    for (var j = 0u; j < lanes; j++) {
        b[j] = bias[c + j];
    }
    let per_image = p.tiles_h * p.tiles_w;
    let n = tile / per_image;
    let ty = (tile - n * per_image) / p.tiles_w;
    let tx = tile - n * per_image - ty * p.tiles_w;
    for (var oy = 0u; oy < WINO_M; oy++) {
        let y = ty * WINO_M + oy;
        if (y >= p.out_h) {
            break;
        }
        var row: array<vec4<f32>, 6>;
        for (var e = 0u; e < a; e++) {
            row[e] = cols[e][oy];
        }
        let out_row = a_transpose(row);
        for (var ox = 0u; ox < WINO_M; ox++) {
            let x = tx * WINO_M + ox;
            if (x >= p.out_w) {
                break;
            }
            let o = ((n * p.out_h + y) * p.out_w + x) * p.out_c + c;
            for (var j = 0u; j < lanes; j++) {
                var v = out_row[ox][j] + b[j];
                if (HAS_RESIDUAL) {
                    v += f32(residual[o + j]);
                }
                if (RELU) {
                    v = max(v, 0.0);
                }
                output[o + j] = Act(v);
            }
        }
    }
}
