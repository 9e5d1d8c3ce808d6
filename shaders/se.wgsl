// Squeeze-and-excitation closing a residual block (timm's SEModule, then the shortcut and
// ReLU): out = relu(residual + y·sigmoid(fc2(relu(fc1(mean_hw(y)))))) on channels-last
// (N·T, H, W, C), each frame an image. Two dispatches:
//   squeeze_excite: one workgroup per image: the channel means, fc1 + ReLU, fc2 + sigmoid,
//                   into the image's row of `se` (scales (C), then the hidden (C_r) it used);
//   se_apply:       one thread per element, the scaled sum and ReLU.
// The means are staged in the scale row itself (read by fc1, then overwritten by fc2 after a
// barrier), so neither width is bounded by workgroup memory.
// Activations and fc weights are stored as `Act` (see src/gpu/precision.rs); the means, the
// hidden layer and the scales in `se` stay f32.
alias Act = f32;

const WG: u32 = 256u;

struct Params {
    images: u32,   // N·T
    pixels: u32,   // H·W
    channels: u32, // C
    reduced: u32,  // C_r
    total: u32,    // elements of y (images·pixels·channels)
}

// One layout for both entry points; each binds a small unused buffer to the read-only slots it
// does not read (squeeze_excite binds the node's output, untouched, to `output`).
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> y: array<Act>;           // (N·T, H, W, C)
@group(0) @binding(2) var<storage, read> residual: array<Act>;    // like y (se_apply)
@group(0) @binding(3) var<storage, read> fc1_weight: array<Act>;  // (C, C_r), re-laid at load
@group(0) @binding(4) var<storage, read> fc1_bias: array<f32>;    // (C_r)
@group(0) @binding(5) var<storage, read> fc2_weight: array<Act>;  // (C_r, C), re-laid at load
@group(0) @binding(6) var<storage, read> fc2_bias: array<f32>;    // (C)
@group(0) @binding(7) var<storage, read_write> se: array<f32>;    // (N·T, C + C_r)
@group(0) @binding(8) var<storage, read_write> output: array<Act>; // like y (se_apply)

@compute @workgroup_size(256, 1, 1)
fn squeeze_excite(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    // Uniform per workgroup, so every thread reaches the barriers below or none does.
    let image = wid.y * nwg.x + wid.x;
    if (image >= p.images) {
        return;
    }
    let row = image * (p.channels + p.reduced);
    let hidden = row + p.channels;
    // Consecutive threads read consecutive channels of each pixel: coalesced.
    for (var c = lid.x; c < p.channels; c += WG) {
        var sum = 0.0;
        for (var i = 0u; i < p.pixels; i++) {
            sum += f32(y[(image * p.pixels + i) * p.channels + c]);
        }
        se[row + c] = sum / f32(p.pixels);
    }
    storageBarrier();
    workgroupBarrier();
    for (var j = lid.x; j < p.reduced; j += WG) {
        var acc = fc1_bias[j];
        for (var c = 0u; c < p.channels; c++) {
            acc = fma(se[row + c], f32(fc1_weight[c * p.reduced + j]), acc);
        }
        se[hidden + j] = max(acc, 0.0);
    }
    storageBarrier();
    workgroupBarrier();
    for (var c = lid.x; c < p.channels; c += WG) {
        var acc = fc2_bias[c];
        for (var j = 0u; j < p.reduced; j++) {
            acc = fma(se[hidden + j], f32(fc2_weight[j * p.channels + c]), acc);
        }
        se[row + c] = 1.0 / (1.0 + exp(-acc));
    }
}

@compute @workgroup_size(256, 1, 1)
fn se_apply(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = (wid.y * nwg.x + wid.x) * WG + lid.x;
    if (i >= p.total) {
        return;
    }
    let c = i % p.channels;
    let image = i / (p.pixels * p.channels);
    let scale = se[image * (p.channels + p.reduced) + c];
    output[i] = Act(max(fma(f32(y[i]), scale, f32(residual[i])), 0.0));
}
