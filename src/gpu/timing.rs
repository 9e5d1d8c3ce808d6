//! GPU timing with timestamp queries, shared by `resnet profile` (per dispatch of a plan)
//! and `resnet tune` (one conv's dispatches, repeated).
//!
//! Three methods, best first: timestamps written inside one compute pass around every
//! dispatch (`TIMESTAMP_QUERY_INSIDE_PASSES`); one compute pass per dispatch with pass
//! timestamps (`TIMESTAMP_QUERY`); else wall clock around a submit-and-wait per dispatch,
//! which includes submission overhead (and the report says so).

use std::time::Instant;

use super::context::GpuContext;
use super::readback::read_u64;
use super::step::Step;
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimingMethod {
    TimestampsInsidePasses,
    TimestampPerPass,
    WallClock,
}

impl TimingMethod {
    pub fn for_device(device: &wgpu::Device) -> Self {
        let f = device.features();
        if f.contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES) {
            TimingMethod::TimestampsInsidePasses
        } else if f.contains(wgpu::Features::TIMESTAMP_QUERY) {
            TimingMethod::TimestampPerPass
        } else {
            TimingMethod::WallClock
        }
    }
}

/// GPU milliseconds of each dispatch of a plan, in plan order.
pub struct DispatchTimes {
    pub method: TimingMethod,
    pub ms: Vec<f64>,
}

/// Runs every dispatch of `steps` once (a plan's, its input slot as it is) and times each.
pub fn time_dispatches(ctx: &GpuContext, steps: &[Step]) -> Result<DispatchTimes> {
    let method = TimingMethod::for_device(&ctx.device);
    if method == TimingMethod::WallClock {
        let mut ms = Vec::with_capacity(steps.len());
        for step in steps {
            let mut encoder = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some(&step.name),
                });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(&step.name),
                    timestamp_writes: None,
                });
                step.encode(&mut pass);
            }
            let t = Instant::now();
            let submission = ctx.scoped(&step.name, || ctx.queue.submit([encoder.finish()]))?;
            ctx.wait_for(Some(submission))?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        return Ok(DispatchTimes { method, ms });
    }
    // Two timestamps per dispatch (before, after), every slot written before it is resolved.
    let stamps = Timestamps::new(ctx, steps.len(), "dispatch timestamps")?;
    let query_set = &stamps.query_set;
    let mut encoder = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("timed inference"),
        });
    if method == TimingMethod::TimestampsInsidePasses {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("network (timed)"),
            timestamp_writes: None,
        });
        for (i, step) in steps.iter().enumerate() {
            pass.write_timestamp(query_set, 2 * i as u32);
            step.encode(&mut pass);
            pass.write_timestamp(query_set, 2 * i as u32 + 1);
        }
    } else {
        for (i, step) in steps.iter().enumerate() {
            let writes = wgpu::ComputePassTimestampWrites {
                query_set,
                beginning_of_pass_write_index: Some(2 * i as u32),
                end_of_pass_write_index: Some(2 * i as u32 + 1),
            };
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&step.name),
                timestamp_writes: Some(writes),
            });
            step.encode(&mut pass);
        }
    }
    let ms = stamps.resolve_ms(ctx, encoder, "timing dispatches")?;
    Ok(DispatchTimes { method, ms })
}

/// The median of `v` (sorted in place); 0 when empty.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Times `steps` (one conv: its dispatch, plus the split-K sum) as a unit: `warmup`
/// untimed runs, then `iters` runs each in its own pass between two timestamps, all in one
/// command buffer so nothing but GPU work is measured. Wall clock per run (submit and wait)
/// where the device has no timestamps. Returns the GPU ms of each timed run.
pub fn time_repeated(
    ctx: &GpuContext,
    steps: &[&Step],
    warmup: usize,
    iters: usize,
) -> Result<(TimingMethod, Vec<f64>)> {
    let method = TimingMethod::for_device(&ctx.device);
    let encode_run = |encoder: &mut wgpu::CommandEncoder, writes| {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("tuning run"),
            timestamp_writes: writes,
        });
        for step in steps {
            step.encode(&mut pass);
        }
    };
    let new_encoder = || {
        ctx.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("tuning"),
            })
    };
    let mut encoder = new_encoder();
    for _ in 0..warmup {
        encode_run(&mut encoder, None);
    }
    if method == TimingMethod::WallClock {
        let submission = ctx.scoped("tuning warm-up", || ctx.queue.submit([encoder.finish()]))?;
        ctx.wait_for(Some(submission))?;
        let mut ms = Vec::with_capacity(iters);
        for _ in 0..iters {
            let mut encoder = new_encoder();
            encode_run(&mut encoder, None);
            let t = Instant::now();
            let submission = ctx.scoped("tuning run", || ctx.queue.submit([encoder.finish()]))?;
            ctx.wait_for(Some(submission))?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        return Ok((method, ms));
    }
    let stamps = Timestamps::new(ctx, iters, "tuning timestamps")?;
    for i in 0..iters as u32 {
        let writes = wgpu::ComputePassTimestampWrites {
            query_set: &stamps.query_set,
            beginning_of_pass_write_index: Some(2 * i),
            end_of_pass_write_index: Some(2 * i + 1),
        };
        encode_run(&mut encoder, Some(writes));
    }
    let ms = stamps.resolve_ms(ctx, encoder, "timing a conv")?;
    Ok((method, ms))
}

/// A query set of `2·intervals` timestamps (each interval's start and end) with the buffers
/// to resolve and read them.
struct Timestamps {
    query_set: wgpu::QuerySet,
    count: u32,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
}

impl Timestamps {
    fn new(ctx: &GpuContext, intervals: usize, label: &str) -> Result<Self> {
        let count = u32::try_from(intervals * 2)
            .map_err(|_| Error::Usage(format!("{label}: too many intervals to time")))?;
        let bytes = count as u64 * 8;
        let buffer = |what: &str, usage| {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&format!("{label} ({what})")),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        };
        Ok(Timestamps {
            query_set: ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some(label),
                ty: wgpu::QueryType::Timestamp,
                count,
            }),
            count,
            resolve: buffer(
                "resolve",
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            ),
            readback: buffer(
                "readback",
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            ),
        })
    }

    /// Resolves every slot (all written by `encoder`'s work), submits, and returns each
    /// interval in ms.
    fn resolve_ms(
        &self,
        ctx: &GpuContext,
        mut encoder: wgpu::CommandEncoder,
        what: &str,
    ) -> Result<Vec<f64>> {
        let bytes = self.count as u64 * 8;
        encoder.resolve_query_set(&self.query_set, 0..self.count, &self.resolve, 0);
        encoder.copy_buffer_to_buffer(&self.resolve, 0, &self.readback, 0, bytes);
        let submission = ctx.scoped(what, || ctx.queue.submit([encoder.finish()]))?;
        let ticks = read_u64(ctx, &self.readback, bytes, Some(submission))?;
        // Timestamps count in ticks of `period` nanoseconds.
        let period_ns = ctx.queue.get_timestamp_period() as f64;
        Ok(ticks
            .chunks_exact(2)
            .map(|t| t[1].saturating_sub(t[0]) as f64 * period_ns / 1e6)
            .collect())
    }
}
