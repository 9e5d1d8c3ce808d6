//! fusion_bench's `se` mode: the library's two squeeze-and-excitation dispatches against the
//! unfused passes a framework runs, on SE-ResNet-50's SE shapes at 224×224.
//!
//! - fused: a one-node network, [`Op::SqueezeExcite`] (`squeeze_excite`: mean, fc1, ReLU,
//!   fc2, sigmoid, one workgroup per image; then `se_apply`: y·scale + residual, ReLU), the
//!   network input bound as both `y` and the residual;
//! - unfused: the library's GlobalAvgPool → Linear (fc1) → Linear (fc2) as a network, then
//!   four elementwise passes the library has no op for, written in `unfused_se.wgsl` and
//!   dispatched here on the engine's device: ReLU on fc1's output, sigmoid on fc2's, the
//!   channel scale y·s, and the residual add + ReLU. They run on buffers of their own
//!   (zero-filled: their cost does not depend on the values).
//!
//! A last column times `scale_add_relu`, se_apply's arithmetic as one raw pass with
//! read-only scales: a reference for the library's apply, outside the unfused sum.
//!
//! Everything is timed by GPU timestamps around each dispatch (the library's profiler for the
//! two networks, the same queries written here for the raw passes). Per shape the fused and
//! unfused variants alternate `rounds` times; each dispatch keeps its best median of `reps`.

use std::sync::Arc;

use resnet_wgpu::graph::{Graph, HeadWindow, InputSize, Op, SqueezeExcite};
use resnet_wgpu::model::arch::timm_se_reduced;
use resnet_wgpu::weights::serialize_f32;
use resnet_wgpu::{Engine, GpuContext, WeightsFile};

use super::{dispatch_ms, values};

/// One stage of SE-ResNet-50: the SE width (the bottleneck's output), the map side at
/// 224×224 and the number of blocks (each closes with one SE).
struct Stage {
    channels: usize,
    side: usize,
    blocks: usize,
}

fn seresnet50() -> Vec<Stage> {
    [(256, 56, 3), (512, 28, 4), (1024, 14, 6), (2048, 7, 3)]
        .into_iter()
        .map(|(channels, side, blocks)| Stage {
            channels,
            side,
            blocks,
        })
        .collect()
}

/// fc1 `(C_r, C)` and fc2 `(C, C_r)` with biases, once as timm's 1×1 convs (`se.*`, for
/// the fused op) and once as linear layers (`fc*`, for the unfused network).
fn weights(c: usize, r: usize) -> WeightsFile {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut t = Vec::new();
    for (fc, out, inp) in [("fc1", r, c), ("fc2", c, r)] {
        let w = values(out * inp, &mut seed);
        let b = values(out, &mut seed);
        t.push((format!("se.{fc}.weight"), vec![out, inp, 1, 1], w.clone()));
        t.push((format!("se.{fc}.bias"), vec![out], b.clone()));
        t.push((format!("{fc}.weight"), vec![out, inp], w));
        t.push((format!("{fc}.bias"), vec![out], b));
    }
    WeightsFile::from_bytes("se bench", serialize_f32(&t, None).unwrap()).unwrap()
}

fn graph(c: usize) -> Graph {
    let mut g = Graph {
        input_channels: c,
        ..Graph::default()
    };
    g.input = g.new_value();
    g
}

/// fused: SqueezeExcite(y, residual) with the input as both; unfused: pool → fc1 → fc2.
fn engines(ctx: &Arc<GpuContext>, c: usize, r: usize) -> (Engine, Engine) {
    let w = weights(c, r);
    let mut fused = graph(c);
    let se = SqueezeExcite {
        fc1_weight: "se.fc1.weight".into(),
        fc1_bias: "se.fc1.bias".into(),
        fc2_weight: "se.fc2.weight".into(),
        fc2_bias: "se.fc2.bias".into(),
        channels: c,
        reduced: r,
    };
    fused.output = fused.push("se", Op::SqueezeExcite(se), vec![fused.input, fused.input]);
    fused.features = fused.output;
    let mut unfused = graph(c);
    let pool = Op::GlobalAvgPool {
        window: HeadWindow::Whole,
        pre_act: None,
    };
    let pooled = unfused.push("pool", pool, vec![unfused.input]);
    let linear = |fc: &str, in_features, out_features| Op::Linear {
        weight: format!("{fc}.weight"),
        bias: format!("{fc}.bias"),
        in_features,
        out_features,
    };
    let hidden = unfused.push("fc1", linear("fc1", c, r), vec![pooled]);
    unfused.output = unfused.push("fc2", linear("fc2", r, c), vec![hidden]);
    unfused.features = unfused.output;
    (
        Engine::from_graph(ctx.clone(), fused, &w).unwrap(),
        Engine::from_graph(ctx.clone(), unfused, &w).unwrap(),
    )
}

/// The unfused chain's four passes, then `scale_add_relu`: se_apply's arithmetic in one raw
/// pass with read-only scales, a reference for the library's apply (not in the unfused sum).
const PASSES: [&str; 5] = [
    "relu",
    "sigmoid",
    "channel_scale",
    "add_relu",
    "scale_add_relu",
];

/// The `Params` of unfused_se.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PassUniform {
    total: u32,
    channels: u32,
    pixels: u32,
    _pad: u32,
}

/// One raw elementwise dispatch: its pipeline, bindings and workgroup counts.
struct Pass {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 2],
}

/// The elementwise passes of an unfused SE (and the one-pass reference) on `n` images of `pixels`×`c`, reduced `r`,
/// on buffers of their own.
fn passes(ctx: &GpuContext, n: usize, pixels: usize, c: usize, r: usize) -> Vec<Pass> {
    let device = &ctx.device;
    let desc = wgpu::ShaderModuleDescriptor {
        label: Some("unfused_se.wgsl"),
        source: wgpu::ShaderSource::Wgsl(include_str!("unfused_se.wgsl").into()),
    };
    let module = if ctx.checked_shaders {
        device.create_shader_module(desc)
    } else {
        // SAFETY: every access is guarded by `total` (each buffer below holds `total`
        // values of its pass) or by `arrayLength`, as the library's kernels are; unchecked
        // like them so the comparison is fair.
        unsafe { device.create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked()) }
    };
    let entry = |binding, ty| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    };
    let storage = |read_only| wgpu::BufferBindingType::Storage { read_only };
    let bgl = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("unfused se"),
        entries: &[
            entry(0, wgpu::BufferBindingType::Uniform),
            entry(1, storage(true)),
            entry(2, storage(true)),
            entry(3, storage(false)),
            entry(4, storage(true)),
        ],
    });
    let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some("unfused se"),
        bind_group_layouts: &[Some(&bgl)],
        immediate_size: 0,
    });
    let buffer = |values: usize, usage| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("unfused se"),
            size: (values * 4) as u64,
            usage: usage | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    };
    let numel = n * pixels * c;
    let storage_buffer = |values| buffer(values, wgpu::BufferUsages::STORAGE);
    let [fc1_out, hidden, fc2_out, scales] = [n * r, n * r, n * c, n * c].map(storage_buffer);
    let [y, residual, scaled, out, out1] = [numel; 5].map(storage_buffer);
    // (entry, x, other, out, total): `other` is unread by the activations, `residual`
    // (bound to every pass) by all but scale_add_relu.
    let plan = [
        (PASSES[0], &fc1_out, &residual, &hidden, n * r),
        (PASSES[1], &fc2_out, &residual, &scales, n * c),
        (PASSES[2], &y, &scales, &scaled, numel),
        (PASSES[3], &scaled, &residual, &out, numel),
        (PASSES[4], &y, &scales, &out1, numel),
    ];
    plan.into_iter()
        .map(|(name, x, other, out, total)| {
            let uniform = PassUniform {
                total: total as u32,
                channels: c as u32,
                pixels: pixels as u32,
                _pad: 0,
            };
            let ubuf = buffer(4, wgpu::BufferUsages::UNIFORM);
            ctx.queue
                .write_buffer(&ubuf, 0, bytemuck::bytes_of(&uniform));
            let groups = total.div_ceil(256);
            let x_groups = groups.min(65535);
            Pass {
                pipeline: device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(name),
                    layout: Some(&layout),
                    module: &module,
                    entry_point: Some(name),
                    compilation_options: Default::default(),
                    cache: None,
                }),
                bind_group: device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(name),
                    layout: &bgl,
                    entries: &[
                        bind(0, &ubuf),
                        bind(1, x),
                        bind(2, other),
                        bind(3, out),
                        bind(4, &residual),
                    ],
                }),
                workgroups: [x_groups as u32, groups.div_ceil(x_groups) as u32],
            }
        })
        .collect()
}

fn bind(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buffer.as_entire_binding(),
    }
}

/// GPU ms of each pass (median of `reps` runs of all four in order): a timestamp before and
/// after each dispatch, inside one compute pass as the library's profiler writes them.
fn pass_ms(ctx: &GpuContext, passes: &[Pass], reps: usize) -> Vec<f64> {
    assert!(
        ctx.device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES),
        "the se mode times its raw passes with timestamps inside passes"
    );
    let device = &ctx.device;
    let count = (2 * passes.len() * reps) as u32;
    let query_set = device.create_query_set(&wgpu::QuerySetDescriptor {
        label: Some("unfused se"),
        ty: wgpu::QueryType::Timestamp,
        count,
    });
    let buffer = |usage| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("unfused se timestamps"),
            size: count as u64 * 8,
            usage,
            mapped_at_creation: false,
        })
    };
    let resolve = buffer(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC);
    let readback = buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
    let mut encoder = device.create_command_encoder(&Default::default());
    {
        let mut cpass = encoder.begin_compute_pass(&Default::default());
        let mut q = 0;
        // One untimed run first, as the profiler warms up.
        for timed in std::iter::once(false).chain(std::iter::repeat_n(true, reps)) {
            for p in passes {
                if timed {
                    cpass.write_timestamp(&query_set, q);
                }
                cpass.set_pipeline(&p.pipeline);
                cpass.set_bind_group(0, &p.bind_group, &[]);
                cpass.dispatch_workgroups(p.workgroups[0], p.workgroups[1], 1);
                if timed {
                    cpass.write_timestamp(&query_set, q + 1);
                    q += 2;
                }
            }
        }
    }
    encoder.resolve_query_set(&query_set, 0..count, &resolve, 0);
    encoder.copy_buffer_to_buffer(&resolve, 0, &readback, 0, count as u64 * 8);
    let submission = ctx.queue.submit([encoder.finish()]);
    readback
        .slice(..)
        .map_async(wgpu::MapMode::Read, |r| r.unwrap());
    device
        .poll(wgpu::PollType::Wait {
            submission_index: Some(submission),
            timeout: None,
        })
        .unwrap();
    let ticks: Vec<u64> =
        bytemuck::cast_slice(&readback.slice(..).get_mapped_range().unwrap()).to_vec();
    readback.unmap();
    let period_ns = ctx.queue.get_timestamp_period() as f64;
    (0..passes.len())
        .map(|i| {
            let mut ms: Vec<f64> = (0..reps)
                .map(|rep| {
                    let t = 2 * (rep * passes.len() + i);
                    ticks[t + 1].saturating_sub(ticks[t]) as f64 * period_ns / 1e6
                })
                .collect();
            ms.sort_by(f64::total_cmp);
            ms[ms.len() / 2]
        })
        .collect()
}

/// Runs the mode: per stage, fused [squeeze, apply] against unfused [pool, fc1, fc2, relu,
/// sigmoid, scale, add+relu], then the totals over SE-ResNet-50's 16 blocks.
pub fn run(ctx: &Arc<GpuContext>, batch: usize, reps: usize, rounds: usize) {
    println!(
        "SE-ResNet-50 at 224x224, batch {batch}, on {} (best of {rounds} rounds of medians of \
         {reps}; GPU timestamps inside passes)",
        ctx.info
    );
    println!(
        "{:<22} {:>6} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} | {:>8} | {:>8}",
        "SE shape", "blocks", "squeeze", "apply", "fused", "pool", "fc1", "fc2", "relu",
        "sigmoid", "scale", "add+relu", "unfused", "saved", "raw s+a+r"
    );
    let (mut fused_total, mut unfused_total) = (0.0, 0.0);
    for s in seresnet50() {
        let r = timm_se_reduced(s.channels);
        let (fused, unfused) = engines(ctx, s.channels, r);
        let raw = passes(ctx, batch, s.side * s.side, s.channels, r);
        let size = InputSize::image(batch, s.side, s.side);
        let mut best = [f64::INFINITY; 10];
        for _ in 0..rounds {
            let times = [
                dispatch_ms(&fused, size, reps),
                dispatch_ms(&unfused, size, reps),
                pass_ms(ctx, &raw, reps),
            ];
            for (b, t) in best.iter_mut().zip(times.concat()) {
                *b = b.min(t);
            }
        }
        let fused_ms = best[0] + best[1];
        let unfused_ms: f64 = best[2..9].iter().sum();
        let label = format!("{}→{}→{} @{}²", s.channels, r, s.channels, s.side);
        let cols = |ts: &[f64]| -> String { ts.iter().map(|t| format!(" {t:>8.3}")).collect() };
        let (fused_cols, unfused_cols) = (cols(&best[..2]), cols(&best[2..9]));
        println!(
            "{label:<22} {:>6} |{fused_cols} {fused_ms:>8.3} |{unfused_cols} {unfused_ms:>8.3} | {:>8.3} | {:>8.3}",
            s.blocks,
            unfused_ms - fused_ms,
            best[9]
        );
        fused_total += s.blocks as f64 * fused_ms;
        unfused_total += s.blocks as f64 * unfused_ms;
    }
    println!(
        "SE-ResNet-50, batch {batch}, all 16 SE blocks: fused {fused_total:.2} ms, unfused \
         {unfused_total:.2} ms; saved {:.2} ms ({:.1}% of unfused)",
        unfused_total - fused_total,
        100.0 * (unfused_total - fused_total) / unfused_total
    );
}
