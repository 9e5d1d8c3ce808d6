//! 1×1 convolutions as plain GEMMs (`ConvAlgo::Gemm`, `ConvAlgo::GemmTiled`; gemm.wgsl):
//! which problems and blockings they take, their constants, `GemmUniform`, and the dispatch.
//! No im2col arithmetic: row m of A is an input pixel (a gathered one under stride 2), and
//! every activation and weight moves as a vec4, so C_in and C_out must be multiples of 4.

use super::steps::{describe_shape, epilogue, ConvBuffers};
use super::{ConvAlgo, ConvConfig, ConvProblem, ConvTiles, DeviceFit, CONV_BINDINGS};
use crate::error::{Error, Result};
use crate::gpu::kernels::{Binding, Constants, KernelSpec, UniformLayout};
use crate::gpu::limits::{flat_dispatch, u32_of};
use crate::gpu::ops::node_op::StepEnv;
use crate::gpu::step::Step;

// conv.wgsl's layout without split-K's partial sums (a GEMM never splits K): params, input,
// weight, bias, residual, output, pre-activation.
const GEMM_BINDINGS: &[Binding] = CONV_BINDINGS.split_at(7).0;

/// Register-blocked GEMM without workgroup memory or barriers (CPU adapters).
pub const GEMM: KernelSpec = KernelSpec {
    name: "ConvGemm",
    file: "gemm.wgsl",
    entry: "gemm",
    bindings: GEMM_BINDINGS,
};

/// GEMM with workgroup-memory tiles and 4×4 register blocks (GPUs).
pub const GEMM_TILED: KernelSpec = KernelSpec {
    name: "ConvGemmTiled",
    file: "gemm.wgsl",
    entry: "gemm_tiled",
    bindings: GEMM_BINDINGS,
};

/// `gemm`'s fixed workgroup, threads along channel quads × along pixels (gemm.wgsl's
/// THREADS_X, THREADS_Y): a configuration's tiles are these times the register block.
const THREADS_X: u32 = 8;
const THREADS_Y: u32 = 8;
/// The register blocks gemm.wgsl can hold: up to 8 pixels × 2 channel quads per thread.
const MAX_BLOCK_M: u32 = 8;
const MAX_BLOCK_N4: u32 = 2;

/// The `Params` uniform of gemm.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GemmUniform {
    pub m: u32,
    pub in_c4: u32,
    pub out_c4: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub stride: u32,
}

pub const GEMM_UNIFORM: UniformLayout = crate::uniform_layout!(
    "gemm.wgsl",
    GemmUniform,
    [m, in_c4, out_c4, in_h, in_w, out_h, out_w, stride]
);

/// `gemm`'s tiles for a register block of `block_m` pixels × `block_n` channels per thread.
pub fn gemm_tiles(block_m: u32, block_n: u32) -> ConvTiles {
    ConvTiles {
        tile_m: block_m * THREADS_Y,
        tile_n: block_n * THREADS_X,
        tile_k: 4,
    }
}

/// Register blocks the tuner tries (pixels × channels per thread).
pub const GEMM_BLOCKS: [(u32, u32); 6] = [(4, 4), (8, 4), (2, 8), (4, 8), (8, 8), (1, 8)];

/// The default blocking of `gemm`: 8 pixels × 4 channels per thread, 64×32 per workgroup
/// (on lavapipe, against 4×4, 4×8 and 8×8 on ResNet-50's eight 1×1 shapes: the fastest on 5
/// at batch 1 and 6 at batch 8, within 8 % on the others but one; see BENCHMARKS.md). Any C_out that is a multiple of 4 fills the block.
pub fn default_gemm() -> ConvConfig {
    ConvConfig {
        algo: ConvAlgo::Gemm,
        tiles: gemm_tiles(8, 4),
        split_k: 1,
    }
}

/// Whether `p` is a GEMM these kernels compute: a dense 2-D 1×1 conv without padding on
/// channels-last input, channels in multiples of 4 (any stride: strided rows are gathers).
pub fn problem_error(p: &ConvProblem) -> Option<String> {
    if p.kernel != 1 || p.pad != 0 || p.input_nchw || p.grouped() || p.temporal() {
        return Some("the GEMM kernels run dense 2-D 1×1 convs without padding only".into());
    }
    if !p.in_c.is_multiple_of(4) || !p.out_c.is_multiple_of(4) {
        return Some(format!(
            "the GEMM kernels need channels in multiples of 4 (vec4 rows), not {} → {}",
            p.in_c, p.out_c
        ));
    }
    None
}

/// The register block `(BLOCK_M, BLOCK_N4)` of a `gemm` configuration, if its tiles are one.
fn block_of(t: ConvTiles) -> Option<(u32, u32)> {
    let (bm, bn) = (t.tile_m / THREADS_Y, t.tile_n / THREADS_X);
    let exact = t.tile_m == bm * THREADS_Y && t.tile_n == bn * THREADS_X && bn % 4 == 0;
    let fits = (1..=MAX_BLOCK_M).contains(&bm) && (1..=MAX_BLOCK_N4).contains(&(bn / 4));
    (exact && fits && t.tile_k == 4).then_some((bm, bn / 4))
}

/// Why `config` (a GEMM algorithm) cannot run `p` on this device, if it cannot.
pub fn gemm_error(config: &ConvConfig, p: &ConvProblem, fit: &DeviceFit) -> Result<(), String> {
    if let Some(why) = problem_error(p) {
        return Err(why);
    }
    if config.split_k != 1 {
        return Err("split-K runs on the tiled conv kernel only".into());
    }
    let t = config.tiles;
    let (x, y) = match config.algo {
        ConvAlgo::Gemm => {
            if block_of(t).is_none() {
                return Err(format!(
                    "gemm tiles {}x{}x{} are not 8×8 threads of a block of ≤ {MAX_BLOCK_M} \
                     pixels × 4 or 8 channels (TILE_K 4)",
                    t.tile_m, t.tile_n, t.tile_k
                ));
            }
            (THREADS_X, THREADS_Y)
        }
        _ => {
            if t.tile_k == 0 || !t.tile_k.is_multiple_of(4) {
                return Err("gemm_tiled's TILE_K must be a positive multiple of 4".into());
            }
            if t.workgroup_bytes() > fit.workgroup_storage {
                return Err(format!("{} bytes of workgroup memory", t.workgroup_bytes()));
            }
            (t.tile_n / 4, t.tile_m / 4)
        }
    };
    if x * y > fit.invocations || x > fit.workgroup_size_x || y > fit.workgroup_size_y {
        return Err(format!("{} threads per workgroup", x * y));
    }
    let bytes = |elements: usize| elements as u64 * 4;
    for (what, b) in [
        ("input", bytes(p.input_numel())),
        ("weight", bytes(p.in_c * p.out_c)),
        ("output", p.output_shape().bytes()),
    ] {
        if b > fit.binding_bytes {
            return Err(format!("{what} of {b} bytes exceeds the binding limit"));
        }
    }
    Ok(())
}

/// Specialisation constants of a GEMM configuration (both entry points read all of them).
pub fn gemm_constants(config: &ConvConfig, p: &ConvProblem) -> Constants {
    let t = config.tiles;
    let (block_m, block_n4) = block_of(t).unwrap_or((4, 2));
    let flag = |b: bool| b as u32 as f64;
    vec![
        ("BLOCK_M", block_m as f64),
        ("BLOCK_N4", block_n4 as f64),
        ("TILE_M", t.tile_m as f64),
        ("TILE_N", t.tile_n as f64),
        ("TILE_K", t.tile_k as f64),
        ("HAS_RESIDUAL", flag(p.residual)),
        ("RELU", flag(p.relu)),
        ("STRIDED", flag(p.stride > 1)),
        ("PRE_ACT", flag(p.pre_act)),
    ]
}

/// The conv's one dispatch on a GEMM kernel. Its buffers are checked against the sizes the
/// uniform promises, since the kernel runs without bounds checks.
pub fn gemm_steps(
    env: StepEnv<'_>,
    name: &str,
    p: &ConvProblem,
    config: &ConvConfig,
    b: &ConvBuffers<'_>,
) -> Result<Vec<Step>> {
    let ctx = env.ctx;
    let element = env.ctx.precision.element_bytes();
    let out_bytes = p.output_shape().bytes_as(element);
    let input_bytes = p.input_numel() as u64 * element;
    let too_small = |what: &str, buffer: &wgpu::Buffer, needed: u64| {
        (buffer.size() < needed).then(|| {
            Error::Gpu(format!(
                "{name}: {what} buffer of {} bytes, the GEMM reads {needed}",
                buffer.size()
            ))
        })
    };
    let mut checks = vec![
        too_small("input", b.input, input_bytes),
        too_small("weight", b.weight, (p.in_c * p.out_c) as u64 * element),
        too_small("bias", b.bias, p.out_c as u64 * 4),
        too_small("output", b.output, out_bytes),
    ];
    let residual = match (p.residual, b.residual) {
        (false, _) => b.unused,
        (true, Some(r)) => r,
        (true, None) => return Err(Error::Gpu(format!("{name}: residual input missing"))),
    };
    if p.residual {
        checks.push(too_small("residual", residual, out_bytes));
    }
    let pre_act = match (p.pre_act, b.pre_act) {
        (false, _) => b.unused,
        (true, Some(buffer)) if buffer.size() == 2 * p.in_c as u64 * 4 => buffer,
        (true, _) => {
            return Err(Error::Gpu(format!(
                "{name}: the pre-activation needs a scale and shift for each of {} channels",
                p.in_c
            )))
        }
    };
    if let Some(e) = checks.into_iter().flatten().next() {
        return Err(e);
    }
    let uniform = env.uniform(name, &gemm_uniform(name, p)?);
    let kernel = config.kernel();
    let bind_group = env.kernels.bind(
        &ctx.device,
        kernel,
        name,
        &[
            &uniform, b.input, b.weight, b.bias, residual, b.output, pre_act,
        ],
    )?;
    let written = out_bytes * if p.residual { 2 } else { 1 };
    Ok(vec![Step {
        name: name.to_string(),
        kernel,
        config: format!("{}{} {}", describe_shape(p), epilogue(p), config.describe()),
        output_shape: p.output_shape(),
        flops: p.flops(),
        bytes: input_bytes + b.weight.size() + b.bias.size() + written,
        pipeline: env
            .kernels
            .pipeline(&ctx.device, kernel, config.constants(p))?,
        bind_group,
        workgroups: gemm_workgroups(env, p, config)?,
        _uniform: uniform,
    }])
}

fn gemm_uniform(name: &str, p: &ConvProblem) -> Result<GemmUniform> {
    Ok(GemmUniform {
        m: u32_of(name, p.m())?,
        in_c4: (p.in_c / 4) as u32,
        out_c4: (p.out_c / 4) as u32,
        in_h: p.in_h as u32,
        in_w: p.in_w as u32,
        out_h: p.out_h as u32,
        out_w: p.out_w as u32,
        stride: p.stride as u32,
    })
}

/// x: channel tiles; pixel tiles fold into y and z (m0 = (wid.y + wid.z·nwg.y)·TILE_M).
fn gemm_workgroups(env: StepEnv<'_>, p: &ConvProblem, config: &ConvConfig) -> Result<[u32; 3]> {
    let pixel_tiles = p.m().div_ceil(config.tiles.tile_m as usize) as u64;
    let [wy, wz, _] = flat_dispatch(pixel_tiles, 1, &env.ctx.limits)?;
    Ok([config.channel_tiles(p) as u32, wy, wz])
}
