//! Winograd convolution F(2×2, 3×3) and F(4×4, 3×3) for dense stride-1 3×3 convs
//! (winograd.wgsl): which problems it accepts, its uniform, its scratch, the lazily
//! transformed weights and its four dispatches (weight transform once, then per inference the
//! input transform, the E = (m+2)² GEMMs and the output transform with the epilogue).
//!
//! The weight transform runs lazily, the first time a plan (or the tuner) chooses Winograd
//! for a node, and is cached with the node's `LayerWeights`: F(4×4) needs 4× the memory of
//! the 3×3 weights (36 vs 9 values per channel pair) and F(2×2) 1.8×, so transforming at
//! load would double ResNet-50's weight memory for layers that may never run it (GPUs keep
//! the direct kernels by default).

use std::sync::{Arc, Mutex};

use super::steps::ConvBuffers;
use super::{ConvAlgo, ConvConfig, ConvProblem, DeviceFit};
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::{Binding, Constants, KernelSpec, Kernels, UniformLayout};
use crate::gpu::limits::{flat_dispatch, u32_of};
use crate::gpu::ops::node_op::StepEnv;
use crate::gpu::step::Step;

// params, input, weight (U, or the folded weights for the weight transform), bias, residual,
// output (U for the weight transform), scratch (V ++ M), pre-activation
const WINOGRAD_BINDINGS: &[Binding] = &[
    Binding::Uniform,
    Binding::Read,
    Binding::Read,
    Binding::Read,
    Binding::Read,
    Binding::ReadWrite,
    Binding::ReadWrite,
    Binding::Read,
];

const fn spec(name: &'static str, entry: &'static str) -> KernelSpec {
    KernelSpec {
        name,
        file: "winograd.wgsl",
        entry,
        bindings: WINOGRAD_BINDINGS,
    }
}

/// U = G·g·Gᵀ from the folded weights, once per node and tile size.
pub const WEIGHT_TRANSFORM: KernelSpec = spec("WinogradWeights", "weight_transform");
/// V = Bᵀ·d·B per tile and input channel (with the pre-activation).
pub const INPUT_TRANSFORM: KernelSpec = spec("WinogradInput", "input_transform");
/// M[e] = V[e]·U[e] for every transform element e.
pub const GEMM: KernelSpec = spec("WinogradGemm", "gemm");
/// Aᵀ·M·A per tile, then bias, residual and ReLU.
pub const OUTPUT_TRANSFORM: KernelSpec = spec("WinogradOutput", "output_transform");

/// GEMM tiles (Winograd tiles × output channels) the tuner tries besides the heuristic's.
pub const TUNING_TILES: [(u32, u32); 5] = [(16, 16), (32, 32), (16, 64), (64, 32), (64, 64)];

/// Threads per workgroup of the transforms (`GROUP` in winograd.wgsl).
const GROUP: u64 = 64;

/// The `Params` uniform of winograd.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct WinogradUniform {
    pub batch: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub in_c: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub out_c: u32,
    pub pad: u32,
    pub tiles_h: u32,
    pub tiles_w: u32,
    pub tiles: u32,
    /// Where M starts in the scratch (elements): E·tiles·C_in.
    pub m_offset: u32,
}

pub const WINOGRAD_UNIFORM: UniformLayout = crate::uniform_layout!(
    "winograd.wgsl",
    WinogradUniform,
    [batch, in_h, in_w, in_c, out_h, out_w, out_c, pad, tiles_h, tiles_w, tiles, m_offset]
);

/// Output tile side m of a Winograd algorithm (2 or 4), `None` for the direct kernels.
pub fn tile_side(algo: ConvAlgo) -> Option<usize> {
    match algo {
        ConvAlgo::Winograd2 => Some(2),
        ConvAlgo::Winograd4 => Some(4),
        ConvAlgo::Tiled | ConvAlgo::Registers | ConvAlgo::Gemm | ConvAlgo::GemmTiled => None,
    }
}

/// Transform elements E = (m + 2)².
fn elements(m: usize) -> usize {
    (m + 2) * (m + 2)
}

/// Winograd tiles of `p`: (tiles along H, along W, all of them over the batch).
fn tiles(p: &ConvProblem, m: usize) -> (usize, usize, usize) {
    let (th, tw) = (p.out_h.div_ceil(m), p.out_w.div_ceil(m));
    (th, tw, p.batch * th * tw)
}

/// Why Winograd cannot compute `p` at all, if it cannot: it is a dense, 2-D, stride-1 3×3
/// conv on channels-last input (the pre-activation is applied in the input transform).
pub fn problem_error(p: &ConvProblem) -> Option<String> {
    let why = if p.kernel != 3 || p.stride != 1 {
        "Winograd runs stride-1 3×3 convs only"
    } else if p.grouped() {
        "Winograd runs dense convs only (not grouped)"
    } else if p.temporal() || p.input_nchw {
        "Winograd runs 2-D convs on channels-last input only"
    } else if p.out_h + 2 != p.in_h + 2 * p.pad || p.out_w + 2 != p.in_w + 2 * p.pad {
        "Winograd needs the output size of a stride-1 3×3 conv"
    } else {
        return None;
    };
    Some(why.into())
}

/// The Winograd algorithms the heuristic tries for `p`, best first (the first that passes
/// the check runs). `cpu`: a CPU adapter. Measured on lavapipe (BENCHMARKS.md, ResNet's four
/// 3×3 shapes at batch 1): F(4×4) 4.0–7.6× and F(2×2) 2.1–2.8× faster than `registers`,
/// relative error ≤ 7.5e-6 per conv and ≤ 1.4e-6 end to end on the fixtures, so CPU
/// adapters take F(4×4), else F(2×2) where F(4×4)'s scratch does not fit. GPUs keep the
/// direct kernels: Winograd is not measured there yet.
pub fn preferred(p: &ConvProblem, cpu: bool) -> Vec<ConvAlgo> {
    match cpu && problem_error(p).is_none() {
        true => vec![ConvAlgo::Winograd4, ConvAlgo::Winograd2],
        false => vec![],
    }
}

/// Bytes of the scratch V ++ M: E·tiles·(C_in + C_out) f32.
pub fn scratch_bytes(p: &ConvProblem, m: usize) -> u64 {
    let (_, _, t) = tiles(p, m);
    (elements(m) * t * (p.in_c + p.out_c)) as u64 * 4
}

/// Bytes of the transformed weights U: E·C_in·C_out elements of `element` bytes (stored as
/// the weights are: `Act`). The check counts f32's 4, the most any precision stores.
fn transformed_bytes(p: &ConvProblem, m: usize, element: u64) -> u64 {
    (elements(m) * p.in_c * p.out_c) as u64 * element
}

/// The Winograd part of [`ConvConfig::check`]: the problem, the GEMM's tiles, and every
/// buffer and grid against the device.
pub fn config_error(c: &ConvConfig, p: &ConvProblem, fit: &DeviceFit) -> Result<(), String> {
    let m = tile_side(c.algo).ok_or("not a Winograd configuration")?;
    if let Some(why) = problem_error(p) {
        return Err(why);
    }
    if c.split_k != 1 {
        return Err("split-K runs on the tiled kernel only".into());
    }
    let scratch = scratch_bytes(p, m);
    if scratch > fit.binding_bytes {
        return Err(format!("{scratch} bytes of transformed tiles"));
    }
    if transformed_bytes(p, m, 4) > fit.binding_bytes {
        return Err(format!(
            "{} bytes of transformed weights",
            transformed_bytes(p, m, 4)
        ));
    }
    // Indices are u32 (the scratch's, the tiles' and the transforms' thread counts).
    if scratch / 4 >= u32::MAX as u64 / 2 {
        return Err(format!("{scratch} bytes of scratch overflow u32 indexing"));
    }
    let (_, _, t) = tiles(p, m);
    let tile_groups = t.div_ceil(c.tiles.tile_m as usize) as u64;
    if tile_groups > fit.workgroups_per_dimension as u64 {
        return Err(format!("{tile_groups} workgroups along y"));
    }
    Ok(())
}

/// The GEMM's specialisation; the transforms read only WINO_M and the epilogue flags.
pub fn constants(c: &ConvConfig, p: &ConvProblem) -> Constants {
    let m = tile_side(c.algo).unwrap_or(2);
    vec![
        ("WINO_M", m as f64),
        ("TILE_M", c.tiles.tile_m as f64),
        ("TILE_N", c.tiles.tile_n as f64),
        ("HAS_RESIDUAL", p.residual as u32 as f64),
        ("RELU", p.relu as u32 as f64),
        ("PRE_ACT", p.pre_act as u32 as f64),
    ]
}

/// The three per-inference pipelines (one specialisation shared by all three).
pub fn pipelines(c: &ConvConfig, p: &ConvProblem) -> Vec<(KernelSpec, Constants)> {
    [INPUT_TRANSFORM, GEMM, OUTPUT_TRANSFORM]
        .map(|k| (k, constants(c, p)))
        .into()
}

/// The weight transform's specialisation for tile side `m`.
pub fn weight_constants(m: usize) -> Constants {
    vec![("WINO_M", m as f64)]
}

/// A node's transformed weights, made the first time a plan or the tuner runs the node with
/// Winograd, then kept with its folded weights: `[F(2×2), F(4×4)]`.
#[derive(Default)]
pub struct TransformedWeights(Mutex<[Option<Arc<wgpu::Buffer>>; 2]>);

impl TransformedWeights {
    /// U for tile side `m`, transformed on the GPU from `weight` (`(9·C_in, C_out)`) on first
    /// use. The transform is submitted at once; later submissions on the queue see it done.
    pub fn get(
        &self,
        env: StepEnv<'_>,
        name: &str,
        p: &ConvProblem,
        m: usize,
        weight: &wgpu::Buffer,
    ) -> Result<Arc<wgpu::Buffer>> {
        let slot = usize::from(m == 4);
        let mut cache = self
            .0
            .lock()
            .map_err(|_| Error::Gpu(format!("{name}: Winograd weights poisoned")))?;
        let precision = env.ctx.precision;
        if let Some(u) = &cache[slot] {
            if u.size() == transformed_bytes(p, m, precision.element_bytes()) {
                return Ok(u.clone());
            }
        }
        if weight.size() != precision.bytes(9 * (p.in_c * p.out_c) as u64) {
            return Err(Error::Gpu(format!(
                "{name}: the weights are not (9·{}, {})",
                p.in_c, p.out_c
            )));
        }
        let u = Arc::new(transform_weights(env.ctx, env.kernels, name, p, m, weight)?);
        cache[slot] = Some(u.clone());
        Ok(u)
    }
}

/// Runs the weight transform into a new buffer.
fn transform_weights(
    ctx: &GpuContext,
    kernels: &Kernels,
    name: &str,
    p: &ConvProblem,
    m: usize,
    weight: &wgpu::Buffer,
) -> Result<wgpu::Buffer> {
    let storage = |label: String, size: u64| {
        ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(&label),
            size,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        })
    };
    let u = storage(
        format!("{name} Winograd F({m}x{m}) weights (E, C_in, C_out)"),
        transformed_bytes(p, m, ctx.precision.element_bytes()),
    );
    // The layout's slots this entry never reads or writes: one small read-only buffer, and
    // a separate writable one (a buffer may not be both in one dispatch).
    let unused = storage(format!("{name} unused"), 16);
    let unused_rw = storage(format!("{name} unused scratch"), 16);
    let uniform = StepEnv { ctx, kernels }.uniform(name, &uniform(name, p, m)?);
    let bind = kernels.bind(
        &ctx.device,
        WEIGHT_TRANSFORM,
        name,
        &[
            &uniform, &unused, weight, &unused, &unused, &u, &unused_rw, &unused,
        ],
    )?;
    let pipeline = kernels.pipeline(&ctx.device, WEIGHT_TRANSFORM, weight_constants(m))?;
    let [x, y, z] = flat_dispatch((p.in_c * p.out_c) as u64, GROUP, &ctx.limits)?;
    let mut encoder = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("Winograd weight transform"),
        });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(name),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(x, y, z);
    }
    ctx.queue.submit([encoder.finish()]);
    Ok(u)
}

fn uniform(name: &str, p: &ConvProblem, m: usize) -> Result<WinogradUniform> {
    let (th, tw, t) = tiles(p, m);
    Ok(WinogradUniform {
        batch: u32_of(name, p.batch)?,
        in_h: u32_of(name, p.in_h)?,
        in_w: u32_of(name, p.in_w)?,
        in_c: u32_of(name, p.in_c)?,
        out_h: u32_of(name, p.out_h)?,
        out_w: u32_of(name, p.out_w)?,
        out_c: u32_of(name, p.out_c)?,
        pad: u32_of(name, p.pad)?,
        tiles_h: u32_of(name, th)?,
        tiles_w: u32_of(name, tw)?,
        tiles: u32_of(name, t)?,
        m_offset: u32_of(name, elements(m) * t * p.in_c)?,
    })
}

/// The three dispatches of one inference; `config` has passed [`ConvConfig::check`].
pub fn steps(
    env: StepEnv<'_>,
    name: &str,
    p: &ConvProblem,
    config: &ConvConfig,
    b: &ConvBuffers<'_>,
    pre_act: &wgpu::Buffer,
    describe: &str,
) -> Result<Vec<Step>> {
    let ctx = env.ctx;
    let m = tile_side(config.algo).ok_or_else(|| Error::Gpu(format!("{name}: not Winograd")))?;
    let transformed = b.winograd.ok_or_else(|| {
        Error::Gpu(format!(
            "{name}: no place for the Winograd weights was given"
        ))
    })?;
    let scratch = b
        .scratch
        .filter(|s| s.size() >= scratch_bytes(p, m))
        .ok_or_else(|| {
            Error::Gpu(format!(
                "{name}: Winograd needs a scratch buffer of {} bytes",
                scratch_bytes(p, m)
            ))
        })?;
    let u = transformed.get(env, name, p, m, b.weight)?;
    let uniform = env.uniform(name, &uniform(name, p, m)?);
    let bind = |kernel| {
        env.kernels.bind(
            &ctx.device,
            kernel,
            name,
            &[
                &uniform,
                b.input,
                &u,
                b.bias,
                b.residual.unwrap_or(b.unused),
                b.output,
                scratch,
                pre_act,
            ],
        )
    };
    let parts = dispatches(env.ctx, p, config, m, u.size(), b.bias.size())?;
    parts
        .into_iter()
        .map(|(kernel, what, bytes, workgroups, flops)| {
            Ok(Step {
                name: match kernel == GEMM {
                    true => name.to_string(),
                    false => format!("{name} ({what})"),
                },
                kernel,
                config: match kernel == GEMM {
                    true => describe.to_string(),
                    false => format!("{describe} ({what})"),
                },
                output_shape: p.output_shape(),
                // The GEMM step carries the direct conv's FLOPs, so GFLOP/s compare across
                // algorithms; the transforms report their own arithmetic.
                flops: match kernel == GEMM {
                    true => p.flops(),
                    false => flops,
                },
                bytes,
                pipeline: env
                    .kernels
                    .pipeline(&ctx.device, kernel, constants(config, p))?,
                bind_group: bind(kernel)?,
                workgroups,
                _uniform: uniform.clone(),
            })
        })
        .collect()
}

/// One of Winograd's dispatches: kernel, what it does, bytes moved, workgroups and its own
/// arithmetic (for profiles).
type Dispatch = (KernelSpec, &'static str, u64, [u32; 3], u64);

/// Winograd's three dispatches.
fn dispatches(
    ctx: &GpuContext,
    p: &ConvProblem,
    config: &ConvConfig,
    m: usize,
    u_bytes: u64,
    bias_bytes: u64,
) -> Result<[Dispatch; 3]> {
    let (_, _, t) = tiles(p, m);
    let e = elements(m) as u64;
    let (t, in_c, out_c) = (t as u64, p.in_c as u64, p.out_c as u64);
    let v_bytes = e * t * in_c * 4;
    let m_bytes = e * t * out_c * 4;
    let element = ctx.precision.element_bytes();
    let out_bytes = p.output_shape().bytes_as(element);
    let tn = config.tiles.tile_n as u64;
    let tm = config.tiles.tile_m as u64;
    Ok([
        (
            INPUT_TRANSFORM,
            "input transform",
            p.input_numel() as u64 * element + v_bytes,
            flat_dispatch(t * in_c.div_ceil(4), GROUP, &ctx.limits)?,
            // Bᵀ·d·B: 2α³ adds per tile and channel, roughly.
            2 * e * (m as u64 + 2) * t * in_c,
        ),
        (
            GEMM,
            "GEMMs",
            v_bytes + u_bytes + m_bytes,
            [out_c.div_ceil(tn) as u32, t.div_ceil(tm) as u32, e as u32],
            2 * e * t * in_c * out_c,
        ),
        (
            OUTPUT_TRANSFORM,
            "output transform",
            m_bytes + out_bytes * if p.residual { 2 } else { 1 } + bias_bytes,
            flat_dispatch(t * out_c.div_ceil(4), GROUP, &ctx.limits)?,
            2 * e * m as u64 * t * out_c,
        ),
    ])
}
