// Pooling on channels-last activations: the stem max pool and the global average pool.
// One thread per output element; consecutive threads take consecutive channels, so every
// load is coalesced.

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
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;        // (N, H, W, C)
@group(0) @binding(2) var<storage, read_write> output: array<f32>; // (N, H_out, W_out, C)

fn flat_index(lid: vec3<u32>, wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid.x;
}

// Padding is implicit −∞: it never wins, and every window holds at least one real pixel
// because pad < kernel (checked by the plan).
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
    let c = idx % p.channels;
    let pix = idx / p.channels;
    let ox = pix % p.out_w;
    let rest = pix / p.out_w;
    let oy = rest % p.out_h;
    let n = rest / p.out_h;
    var m = -3.402823466e38;
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
            m = max(m, input[((n * p.in_h + u32(iy)) * p.in_w + u32(ix)) * p.channels + c]);
        }
    }
    output[idx] = m;
}

// Mean over H×W → (N, 1, 1, C); total = N·C.
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
    let hw = p.in_h * p.in_w;
    var sum = 0.0;
    for (var i = 0u; i < hw; i++) {
        sum += input[(n * hw + i) * p.channels + c];
    }
    output[idx] = sum / f32(hw);
}
