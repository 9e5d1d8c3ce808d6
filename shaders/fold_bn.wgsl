// Load-time weight preparation, run once per conv: decodes the tensors as stored (F32, F16 or
// BF16 words), folds the BatchNorm that follows the conv into it and re-lays the weight for
// the implicit-GEMM conv kernel:
//   s[o]   = γ[o] / √(var[o] + ε)
//   W'[k, o] = W[o, ci, kt, ky, kx] · s[o]  with k = ((kt·kH + ky)·kW + kx)·C_in + ci (kt = 0 in 2-D)
//   b'[o]  = β[o] − mean[o] · s[o]
// With HAS_BN off it only converts and re-lays (the fully connected head: W is (C_out, C_in),
// the `beta` binding holds its bias).
// The fold is computed in f32 and the folded weight stored as `Act`, the precision the
// kernels read (see src/gpu/precision.rs); the bias stays f32.
alias Act = f32;

override W_DTYPE: u32 = 0u;     // 0 = F32, 1 = F16, 2 = BF16
override GAMMA_DTYPE: u32 = 0u;
override BETA_DTYPE: u32 = 0u;
override MEAN_DTYPE: u32 = 0u;
override VAR_DTYPE: u32 = 0u;
override HAS_BN: bool = true;

struct Params {
    out_c: u32,
    in_c: u32,       // input channels per group
    area: u32,       // kT·kH·kW (kT = 1 for 2-D)
    total: u32,      // out_c·in_c·area
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w_raw: array<u32>;       // (C_out, C_in, kH, kW) as stored
@group(0) @binding(2) var<storage, read> gamma: array<u32>;       // (C_out) as stored
@group(0) @binding(3) var<storage, read> beta: array<u32>;        // (C_out) as stored; the fc bias without BN
@group(0) @binding(4) var<storage, read> mean: array<u32>;        // (C_out) as stored
@group(0) @binding(5) var<storage, read> variance: array<u32>;    // (C_out) as stored
@group(0) @binding(6) var<storage, read_write> w_out: array<Act>; // (kH·kW·C_in, C_out)
@group(0) @binding(7) var<storage, read_write> b_out: array<f32>; // (C_out)

// Word holding element i: 32-bit types one per word, 16-bit types two per word.
fn word_index(i: u32, dtype: u32) -> u32 {
    return select(i / 2u, i, dtype == 0u);
}

// Element i from its little-endian word; F16/BF16 are widened exactly.
fn decode(word: u32, i: u32, dtype: u32) -> f32 {
    if (dtype == 0u) {
        return bitcast<f32>(word);
    }
    let bits = (word >> ((i & 1u) * 16u)) & 0xffffu;
    if (dtype == 1u) {
        return unpack2x16float(bits).x;
    }
    return bitcast<f32>(bits << 16u);
}

fn scale(o: u32) -> f32 {
    if (!HAS_BN) {
        return 1.0;
    }
    let g = decode(gamma[word_index(o, GAMMA_DTYPE)], o, GAMMA_DTYPE);
    let v = decode(variance[word_index(o, VAR_DTYPE)], o, VAR_DTYPE);
    return g / sqrt(v + p.eps);
}

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let idx = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (idx >= p.total) {
        return;
    }
    // idx walks the output layout (K, C_out).
    let o = idx % p.out_c;
    let k = idx / p.out_c;
    let tap = k / p.in_c;
    let ci = k - tap * p.in_c;
    let src = (o * p.in_c + ci) * p.area + tap;
    let s = scale(o);
    w_out[idx] = Act(decode(w_raw[word_index(src, W_DTYPE)], src, W_DTYPE) * s);
    if (idx < p.out_c) {
        let b = decode(beta[word_index(o, BETA_DTYPE)], o, BETA_DTYPE);
        if (HAS_BN) {
            let m = decode(mean[word_index(o, MEAN_DTYPE)], o, MEAN_DTYPE);
            b_out[o] = b - m * s;
        } else {
            b_out[o] = b;
        }
    }
}
