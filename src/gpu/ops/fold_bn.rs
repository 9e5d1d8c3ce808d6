//! Load-time weight preparation (fold_bn.wgsl): tensors go up as stored (F32/F16/BF16 bytes,
//! straight from the memory map), and the fold kernel turns each conv + BatchNorm into an
//! f32 weight `(K, C_out)` and bias `(C_out)` ready for the conv kernels (`K = k²·C_in/G`
//! for a grouped conv); a linear layer's weight is only converted and re-laid.

use std::collections::BTreeMap;

use wgpu::util::DeviceExt;

use super::conv::winograd::TransformedWeights;
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::{Binding, Constants, KernelSpec, Kernels, UniformLayout};
use crate::gpu::limits::{check_size, flat_dispatch};
use crate::graph::Graph;
use crate::reference::BN_EPS;
use crate::weights::{StoredDtype, WeightsFile};

pub const FOLD_BN: KernelSpec = KernelSpec {
    name: "FoldBn",
    file: "fold_bn.wgsl",
    entry: "main",
    // params, w_raw, gamma, beta, mean, var, w_out, b_out
    bindings: &[
        Binding::Uniform,
        Binding::Read,
        Binding::Read,
        Binding::Read,
        Binding::Read,
        Binding::Read,
        Binding::ReadWrite,
        Binding::ReadWrite,
    ],
};

/// The `Params` uniform of fold_bn.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct FoldUniform {
    pub out_c: u32,
    pub in_c: u32,
    pub area: u32,
    pub total: u32,
    pub eps: f32,
    pub _pad: [u32; 3],
}

pub const FOLD_UNIFORM: UniformLayout =
    crate::uniform_layout!("fold_bn.wgsl", FoldUniform, [out_c, in_c, area, total, eps]);

/// Weight and bias of one conv or linear node, ready for its kernel.
pub struct LayerWeights {
    /// `(kT·kH·kW·C_in/G, C_out)` in the context's precision (kT = 1 for images).
    pub weight: wgpu::Buffer,
    /// Values in `weight` (its size may be rounded up to 4 bytes).
    pub len: usize,
    /// `(C_out)` f32.
    pub bias: wgpu::Buffer,
    /// The Winograd-transformed weights, made when a plan first runs the node with Winograd.
    pub winograd: TransformedWeights,
}

impl LayerWeights {
    pub fn bytes(&self) -> u64 {
        self.weight.size() + self.bias.size()
    }
}

/// The stored tensors one node's weights are folded from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoldSource {
    /// The weight, `(C_out, C_in/G, kH, kW)` or `(C_out, C_in)`.
    pub weight: String,
    /// The BatchNorm's prefix (`layer1.0.bn1`) when `has_bn`, else the bias tensor; empty
    /// for a conv with neither (a pre-activation block's last conv): its bias is zero.
    pub bias_or_bn: String,
    pub has_bn: bool,
    pub out_c: usize,
    /// Input channels per group.
    pub in_c: usize,
    /// Taps per channel: kT·kH·kW (kH·kW in 2-D; 1 for a linear layer).
    pub area: usize,
}

impl FoldSource {
    /// γ, β, mean, var; a linear layer binds its bias in all four slots (only β is read).
    fn param_names(&self) -> [String; 4] {
        if self.has_bn {
            ["weight", "bias", "running_mean", "running_var"]
                .map(|p| format!("{}.{p}", self.bias_or_bn))
        } else {
            std::array::from_fn(|_| self.bias_or_bn.clone())
        }
    }

    fn total(&self) -> usize {
        self.out_c * self.in_c * self.area
    }
}

/// Uploads and prepares the weights of every `(node, source)` in `folds`, in one command
/// buffer.
pub fn prepare(
    ctx: &GpuContext,
    kernels: &Kernels,
    folds: &[(String, FoldSource)],
    weights: &WeightsFile,
) -> Result<BTreeMap<String, LayerWeights>> {
    // The fold specialisations are known from the stored dtypes alone: create them together.
    kernels.create_pipelines(&ctx.device, &fold_requests(folds, weights))?;
    let mut prepared = BTreeMap::new();
    let mut encoder = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("fold weights"),
        });
    // Raw uploads must outlive the submission.
    let mut keep_alive = Vec::new();
    ctx.scoped("preparing weights", || -> Result<()> {
        for (node, source) in folds {
            let (layer, raw) = encode_fold(ctx, kernels, &mut encoder, node, source, weights)?;
            keep_alive.push(raw);
            prepared.insert(node.clone(), layer);
        }
        Ok(())
    })??;
    let submission = ctx.scoped("uploading weights", || ctx.queue.submit([encoder.finish()]))?;
    ctx.wait_for(Some(submission))?;
    drop(keep_alive);
    Ok(prepared)
}

/// The pre-activations of `graph` (a BatchNorm + ReLU applied to a node's input as read):
/// per node, a buffer `[scale; C] ++ [shift; C]` with `scale = γ/√(var+ε)` and
/// `shift = β − mean·scale`, computed in f64 as [`crate::reference::fold_bn`] folds. Per
/// channel only, so it is done on the CPU at load (the fold kernel re-lays weights).
pub fn prepare_pre_acts(
    ctx: &GpuContext,
    graph: &Graph,
    weights: &WeightsFile,
) -> Result<BTreeMap<String, wgpu::Buffer>> {
    let mut prepared = BTreeMap::new();
    for node in &graph.nodes {
        let Some(bn) = node.op.pre_act() else {
            continue;
        };
        let values = pre_act_values(weights, bn)?;
        let buffer = ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(&format!("{} pre-activation {bn}", node.name)),
                contents: bytemuck::cast_slice(&values),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            });
        prepared.insert(node.name.clone(), buffer);
    }
    Ok(prepared)
}

/// `[scale; C] ++ [shift; C]` of BatchNorm `bn`.
fn pre_act_values(weights: &WeightsFile, bn: &str) -> Result<Vec<f32>> {
    let [gamma, beta, mean, var] = ["weight", "bias", "running_mean", "running_var"].map(|p| {
        let name = format!("{bn}.{p}");
        weights.to_f32(&name).ok_or(Error::MissingTensor {
            name,
            expected: vec![],
        })
    });
    let (gamma, beta, mean, var) = (gamma?, beta?, mean?, var?);
    let c = gamma.len();
    if [beta.len(), mean.len(), var.len()] != [c; 3] {
        return Err(Error::NotResnet(format!(
            "{bn}: γ, β, mean and variance differ in length"
        )));
    }
    let scale: Vec<f64> = (0..c)
        .map(|i| gamma[i] as f64 / (var[i] as f64 + BN_EPS).sqrt())
        .collect();
    let shift = (0..c).map(|i| (beta[i] as f64 - mean[i] as f64 * scale[i]) as f32);
    Ok(scale.iter().map(|&s| s as f32).chain(shift).collect())
}

/// Uploads one node's tensors and records its fold dispatch; returns the prepared weights
/// and the buffers the dispatch reads (to keep until it has run).
fn encode_fold(
    ctx: &GpuContext,
    kernels: &Kernels,
    encoder: &mut wgpu::CommandEncoder,
    node: &str,
    source: &FoldSource,
    weights: &WeightsFile,
) -> Result<(LayerWeights, Vec<wgpu::Buffer>)> {
    let total = source.total();
    let weight_bytes = ctx.precision.bytes(total as u64);
    check_size(ctx, &source.weight, weight_bytes)?;
    let (w_raw, w_dtype) = raw_buffer(ctx, weights, &source.weight)?;
    let [g, b, m, v] = source.param_names().map(|name| match name.is_empty() {
        true => Ok(zero_bias(ctx, source.out_c)),
        false => raw_buffer(ctx, weights, &name),
    });
    let params = [g?, b?, m?, v?];
    let output = |label: String, bytes: usize| {
        ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(&label),
            size: bytes as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    };
    let layer = LayerWeights {
        weight: output(format!("{node} weight (K, C_out)"), weight_bytes as usize),
        len: total,
        bias: output(format!("{node} bias (C_out)"), source.out_c * 4),
        winograd: TransformedWeights::default(),
    };
    let uniform = ctx
        .device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("fold params"),
            contents: bytemuck::bytes_of(&FoldUniform {
                out_c: source.out_c as u32,
                in_c: source.in_c as u32,
                area: source.area as u32,
                total: total as u32,
                eps: BN_EPS as f32,
                _pad: [0; 3],
            }),
            usage: wgpu::BufferUsages::UNIFORM,
        });
    let constants = fold_constants(w_dtype, params.each_ref().map(|p| p.1), source.has_bn);
    let pipeline = kernels.pipeline(&ctx.device, FOLD_BN, constants)?;
    let [p0, p1, p2, p3] = params.each_ref().map(|p| &p.0);
    let buffers = [&uniform, &w_raw, p0, p1, p2, p3, &layer.weight, &layer.bias];
    let bind_group = kernels.bind(&ctx.device, FOLD_BN, node, &buffers)?;
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(node),
        timestamp_writes: None,
    });
    pass.set_pipeline(&pipeline);
    pass.set_bind_group(0, &bind_group, &[]);
    let [x, y, z] = flat_dispatch(total as u64, 256, &ctx.limits)?;
    pass.dispatch_workgroups(x, y, z);
    drop(pass);
    let mut raw = vec![uniform, w_raw];
    raw.extend(params.map(|p| p.0));
    Ok((layer, raw))
}

/// A zero f32 bias for a conv with no BatchNorm and no bias, in all four parameter slots.
fn zero_bias(ctx: &GpuContext, out_c: usize) -> (wgpu::Buffer, StoredDtype) {
    let buffer = ctx
        .device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("zero bias"),
            contents: bytemuck::cast_slice(&vec![0f32; out_c.max(1)]),
            usage: wgpu::BufferUsages::STORAGE,
        });
    (buffer, StoredDtype::F32)
}

fn raw_buffer(
    ctx: &GpuContext,
    weights: &WeightsFile,
    name: &str,
) -> Result<(wgpu::Buffer, StoredDtype)> {
    let entry = weights.get(name).ok_or_else(|| Error::MissingTensor {
        name: name.into(),
        expected: vec![],
    })?;
    let dtype = entry.dtype.ok_or_else(|| Error::TensorDtype {
        name: name.into(),
        found: entry.dtype_name.clone(),
    })?;
    let raw = weights.raw(name).unwrap_or(&[]);
    check_size(ctx, name, raw.len() as u64)?;
    // Storage bindings must be a multiple of 4 bytes: pad odd-length F16/BF16 tensors.
    let mut bytes = raw.to_vec();
    bytes.resize(raw.len().div_ceil(4).max(1) * 4, 0);
    let buffer = ctx
        .device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(name),
            contents: &bytes,
            usage: wgpu::BufferUsages::STORAGE,
        });
    Ok((buffer, dtype))
}

/// Specialisation of the fold kernel: the stored dtype of the weight and of γ, β, mean and
/// var (a linear layer binds its bias in all four slots), and whether there is a BatchNorm.
pub fn fold_constants(weight: StoredDtype, params: [StoredDtype; 4], has_bn: bool) -> Constants {
    let dtype = |d: StoredDtype| d as u32 as f64;
    vec![
        ("W_DTYPE", dtype(weight)),
        ("GAMMA_DTYPE", dtype(params[0])),
        ("BETA_DTYPE", dtype(params[1])),
        ("MEAN_DTYPE", dtype(params[2])),
        ("VAR_DTYPE", dtype(params[3])),
        ("HAS_BN", has_bn as u32 as f64),
    ]
}

/// The fold pipelines [`prepare`] will use. A tensor that is missing or of a dtype we do not
/// read is left out here: `prepare` reports it, with its name.
fn fold_requests(
    folds: &[(String, FoldSource)],
    weights: &WeightsFile,
) -> Vec<(KernelSpec, Constants)> {
    let dtype = |name: &str| match name.is_empty() {
        true => Some(StoredDtype::F32),
        false => weights.get(name).and_then(|t| t.dtype),
    };
    folds
        .iter()
        .filter_map(|(_, source)| {
            let [g, b, m, v] = source.param_names().map(|n| dtype(&n));
            let params = [g?, b?, m?, v?];
            Some((
                FOLD_BN,
                fold_constants(dtype(&source.weight)?, params, source.has_bn),
            ))
        })
        .collect()
}
