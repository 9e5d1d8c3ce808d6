// The fully connected head: y = x·Wᵀ + b. One thread per (sample, class); the workgroup
// stages the sample's features in workgroup memory 256 at a time, and consecutive threads
// read consecutive classes of the re-laid weight (C_in, C_out), so loads are coalesced.
// Features, weights and logits are stored as `Act` (see src/gpu/precision.rs); the dot
// products are f32.
alias Act = f32;

const WG: u32 = 256u;

struct Params {
    batch: u32,
    in_features: u32,
    out_features: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<Act>;            // (N, C_in)
@group(0) @binding(2) var<storage, read> weight: array<Act>;       // (C_in, C_out)
@group(0) @binding(3) var<storage, read> bias: array<f32>;         // (C_out)
@group(0) @binding(4) var<storage, read_write> y: array<Act>;      // (N, C_out)

var<workgroup> x_tile: array<f32, WG>;

// Grid: x covers classes in blocks of WG, y is the sample.
@compute @workgroup_size(256, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let n = wid.y;
    let o = wid.x * WG + lid.x;
    var acc = 0.0;
    for (var c0 = 0u; c0 < p.in_features; c0 += WG) {
        let c = c0 + lid.x;
        var v = 0.0;
        if (c < p.in_features) {
            v = f32(x[n * p.in_features + c]);
        }
        x_tile[lid.x] = v;
        workgroupBarrier();
        let count = min(WG, p.in_features - c0);
        if (o < p.out_features) {
            for (var i = 0u; i < count; i++) {
                acc = fma(x_tile[i], f32(weight[(c0 + i) * p.out_features + o]), acc);
            }
        }
        workgroupBarrier();
    }
    if (o < p.out_features) {
        y[n * p.out_features + o] = Act(acc + bias[o]);
    }
}
