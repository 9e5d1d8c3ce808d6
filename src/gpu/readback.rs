//! Reading results back: map a buffer once its submission has finished, within the
//! context's timeout, and copy it out. Shared by the engine, the tuner and the timers.

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;

/// Maps `buffer` (MAP_READ) once `submission` (or all work) has finished and copies out its
/// first `bytes` as f32.
pub(crate) fn read_buffer(
    ctx: &GpuContext,
    buffer: &wgpu::Buffer,
    bytes: u64,
    submission: Option<wgpu::SubmissionIndex>,
) -> Result<Vec<f32>> {
    read_pod(ctx, buffer, bytes, submission)
}

/// Maps `buffer` (MAP_READ) and copies out its first `bytes` as u64 (timestamps).
pub(crate) fn read_u64(
    ctx: &GpuContext,
    buffer: &wgpu::Buffer,
    bytes: u64,
    submission: Option<wgpu::SubmissionIndex>,
) -> Result<Vec<u64>> {
    read_pod(ctx, buffer, bytes, submission)
}

fn read_pod<T: bytemuck::Pod>(
    ctx: &GpuContext,
    buffer: &wgpu::Buffer,
    bytes: u64,
    submission: Option<wgpu::SubmissionIndex>,
) -> Result<Vec<T>> {
    let slice = buffer.slice(..bytes);
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    ctx.wait_for(submission)?;
    // The wait has run the callback; the timeout only guards against wgpu never calling it.
    rx.recv_timeout(ctx.timeout())
        .map_err(|_| Error::Gpu("the GPU did not finish in time".into()))?
        .map_err(|e| Error::Gpu(format!("reading results back: {e}")))?;
    let view = slice
        .get_mapped_range()
        .map_err(|e| Error::Gpu(format!("reading results back: {e}")))?;
    let out = bytemuck::pod_collect_to_vec::<u8, T>(&view);
    drop(view);
    buffer.unmap();
    Ok(out)
}

/// Copies a whole storage buffer (COPY_SRC) back to the host.
pub fn copy_out(ctx: &GpuContext, src: &wgpu::Buffer) -> Result<Vec<f32>> {
    let (staging, submission) = ctx.scoped("copying a buffer back", || {
        let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("staging"),
            size: src.size(),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("copy out"),
            });
        encoder.copy_buffer_to_buffer(src, 0, &staging, 0, src.size());
        let submission = ctx.queue.submit([encoder.finish()]);
        (staging, submission)
    })?;
    read_buffer(ctx, &staging, src.size(), Some(submission))
}
