//! Load-time weight preparation on the GPU: tensors go up as stored (F32/F16/BF16 bytes,
//! straight from the memory map), and the fold shader turns each conv + BatchNorm into an
//! f32 weight `(K, C_out)` and bias `(C_out)` ready for the conv kernel (`K = k²·C_in/G` for
//! a grouped conv).

use std::collections::BTreeMap;

use wgpu::util::DeviceExt;

use super::context::GpuContext;
use super::flat_dispatch;
use super::kernels::{Constants, Kernel, Kernels};
use crate::error::{Error, Result};
use crate::graph::{Graph, Op};
use crate::reference::BN_EPS;
use crate::weights::{StoredDtype, WeightsFile};

/// Weight and bias of one conv or linear node, ready for its kernel.
pub struct LayerWeights {
    /// `(kH·kW·C_in, C_out)` f32.
    pub weight: wgpu::Buffer,
    /// `(C_out)` f32.
    pub bias: wgpu::Buffer,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct FoldParams {
    out_c: u32,
    in_c: u32,
    area: u32,
    total: u32,
    eps: f32,
    _pad: [u32; 3],
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

/// Checks one buffer against the adapter's binding and buffer limits.
pub fn check_size(ctx: &GpuContext, what: &str, bytes: u64) -> Result<()> {
    let binding = ctx.limits.max_storage_buffer_binding_size;
    if bytes > binding {
        return Err(Error::AdapterLimit {
            what: what.into(),
            needed: bytes,
            limit_name: "max_storage_buffer_binding_size",
            limit: binding,
        });
    }
    if bytes > ctx.limits.max_buffer_size {
        return Err(Error::AdapterLimit {
            what: what.into(),
            needed: bytes,
            limit_name: "max_buffer_size",
            limit: ctx.limits.max_buffer_size,
        });
    }
    Ok(())
}

/// Uploads and prepares the weights of every conv and linear node of `graph`, in one
/// command buffer.
pub fn prepare(
    ctx: &GpuContext,
    kernels: &Kernels,
    graph: &Graph,
    weights: &WeightsFile,
) -> Result<BTreeMap<String, LayerWeights>> {
    // The fold specialisations are known from the stored dtypes alone: create them together.
    kernels.create_pipelines(&ctx.device, &fold_requests(graph, weights))?;
    let mut prepared = BTreeMap::new();
    let mut encoder = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("fold weights"),
        });
    // Raw uploads must outlive the submission.
    let mut keep_alive = Vec::new();
    ctx.scoped("preparing weights", || -> Result<()> {
        for node in &graph.nodes {
            let (w_name, bias_or_bn, has_bn, out_c, in_c, area) = match &node.op {
                // A grouped weight is (C_out, C_in/G, k, k); re-laid as (k²·C_in/G, C_out),
                // each group's GEMM reads its column block (see conv.wgsl).
                Op::Conv(c) => (
                    c.weight.clone(),
                    c.bn.clone(),
                    true,
                    c.out_channels,
                    c.group_in_channels(),
                    c.kernel * c.kernel,
                ),
                Op::Linear {
                    weight,
                    bias,
                    in_features,
                    out_features,
                } => (
                    weight.clone(),
                    bias.clone(),
                    false,
                    *out_features,
                    *in_features,
                    1,
                ),
                _ => continue,
            };
            let total = out_c * in_c * area;
            check_size(ctx, &w_name, total as u64 * 4)?;
            let (w_raw, w_dtype) = raw_buffer(ctx, weights, &w_name)?;
            let params_raw: Vec<(wgpu::Buffer, StoredDtype)> = if has_bn {
                ["weight", "bias", "running_mean", "running_var"]
                    .iter()
                    .map(|p| raw_buffer(ctx, weights, &format!("{bias_or_bn}.{p}")))
                    .collect::<Result<_>>()?
            } else {
                // Without BN only the `beta` slot (the bias) is read; the others are bound
                // to the same buffer to satisfy the layout.
                let b = raw_buffer(ctx, weights, &bias_or_bn)?;
                vec![
                    (b.0.clone(), b.1),
                    (b.0.clone(), b.1),
                    (b.0.clone(), b.1),
                    b,
                ]
            };
            let w_out = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&format!("{} weight (K, C_out)", node.name)),
                size: (total * 4) as u64,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let b_out = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&format!("{} bias (C_out)", node.name)),
                size: (out_c * 4) as u64,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let params = FoldParams {
                out_c: out_c as u32,
                in_c: in_c as u32,
                area: area as u32,
                total: total as u32,
                eps: BN_EPS as f32,
                _pad: [0; 3],
            };
            let uniform = ctx
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("fold params"),
                    contents: bytemuck::bytes_of(&params),
                    usage: wgpu::BufferUsages::UNIFORM,
                });
            let dtypes = [0, 1, 2, 3].map(|i| params_raw[i].1);
            let pipeline = kernels.pipeline(
                &ctx.device,
                Kernel::FoldBn,
                fold_constants(w_dtype, dtypes, has_bn),
            )?;
            let buffers = [
                &uniform,
                &w_raw,
                &params_raw[0].0,
                &params_raw[1].0,
                &params_raw[2].0,
                &params_raw[3].0,
                &w_out,
                &b_out,
            ];
            let bind_group = bind(ctx, kernels, Kernel::FoldBn, &node.name, &buffers);
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&node.name),
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            let [x, y, z] = flat_dispatch(total as u64, 256, &ctx.limits)?;
            pass.dispatch_workgroups(x, y, z);
            drop(pass);
            keep_alive.push((uniform, w_raw, params_raw));
            prepared.insert(
                node.name.clone(),
                LayerWeights {
                    weight: w_out,
                    bias: b_out,
                },
            );
        }
        Ok(())
    })??;
    let submission = ctx.scoped("uploading weights", || ctx.queue.submit([encoder.finish()]))?;
    ctx.wait_for(Some(submission))?;
    drop(keep_alive);
    Ok(prepared)
}

/// Specialisation of the fold kernel: the stored dtype of the weight and of γ, β, mean and
/// var (a linear layer binds its bias in all four slots), and whether there is a BatchNorm.
fn fold_constants(weight: StoredDtype, params: [StoredDtype; 4], has_bn: bool) -> Constants {
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
fn fold_requests(graph: &Graph, weights: &WeightsFile) -> Vec<(Kernel, Constants)> {
    let dtype = |name: &str| weights.get(name).and_then(|t| t.dtype);
    graph
        .nodes
        .iter()
        .filter_map(|node| {
            let (weight, params, has_bn) = match &node.op {
                Op::Conv(c) => (
                    &c.weight,
                    ["weight", "bias", "running_mean", "running_var"]
                        .map(|p| dtype(&format!("{}.{p}", c.bn))),
                    true,
                ),
                Op::Linear { weight, bias, .. } => (weight, [dtype(bias); 4], false),
                _ => return None,
            };
            let [g, b, m, v] = params;
            let params = [g?, b?, m?, v?];
            Some((
                Kernel::FoldBn,
                fold_constants(dtype(weight)?, params, has_bn),
            ))
        })
        .collect()
}

/// A bind group with the buffers of `kernel`'s layout, in binding order.
pub fn bind(
    ctx: &GpuContext,
    kernels: &Kernels,
    kernel: Kernel,
    label: &str,
    buffers: &[&wgpu::Buffer],
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry> = buffers
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupEntry {
            binding: i as u32,
            resource: b.as_entire_binding(),
        })
        .collect();
    ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout: kernels.bind_group_layout(kernel),
        entries: &entries,
    })
}
