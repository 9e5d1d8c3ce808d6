alias Act = f32;

// The elementwise passes an unfused squeeze-and-excitation runs and the library has no op
// for (fusion_bench's `se` mode only; the library fuses them into se.wgsl). One thread per
// element; every index is guarded by the sizes in `p`.

struct Params {
    total: u32,    // elements of `x` (and of `out`)
    channels: u32, // C: `x` is (N, H·W, C), `scales` (N, C)
    pixels: u32,   // H·W
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<Act>;
@group(0) @binding(2) var<storage, read> other: array<Act>; // scales (N, C) or the residual
@group(0) @binding(3) var<storage, read_write> out: array<Act>;
@group(0) @binding(4) var<storage, read> residual: array<Act>; // scale_add_relu only

fn index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * 256u;
}

// out = relu(x): fc1's activation.
@compute @workgroup_size(256)
fn relu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = index(gid, groups);
    if i >= p.total { return; }
    out[i] = Act(max(f32(x[i]), 0.0));
}

// out = sigmoid(x): fc2's activation, the channel scales.
@compute @workgroup_size(256)
fn sigmoid(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = index(gid, groups);
    if i >= p.total { return; }
    out[i] = Act(1.0 / (1.0 + exp(-f32(x[i]))));
}

// out = x · scales[image, channel].
@compute @workgroup_size(256)
fn channel_scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = index(gid, groups);
    if i >= p.total { return; }
    let image = i / (p.pixels * p.channels);
    let s = image * p.channels + i % p.channels;
    if s >= arrayLength(&other) { return; }
    out[i] = Act(f32(x[i]) * f32(other[s]));
}

// out = relu(x · scales[image, channel] + residual): se_apply's arithmetic with the scales in
// a read-only binding (a reference for the library's apply, not part of the unfused chain).
@compute @workgroup_size(256)
fn scale_add_relu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = index(gid, groups);
    if i >= p.total || i >= arrayLength(&residual) { return; }
    let image = i / (p.pixels * p.channels);
    let s = image * p.channels + i % p.channels;
    if s >= arrayLength(&other) { return; }
    out[i] = Act(max(fma(f32(x[i]), f32(other[s]), f32(residual[i])), 0.0));
}

// out = relu(x + residual).
@compute @workgroup_size(256)
fn add_relu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = index(gid, groups);
    if i >= p.total || i >= arrayLength(&other) { return; }
    out[i] = Act(max(f32(x[i]) + f32(other[i]), 0.0));
}
