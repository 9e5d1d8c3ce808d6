//! Reading results back: map a buffer once its submission has finished and copy it out.
//! Shared by the engine, the tuner and the timers. There is one path, a future: natively the
//! wait inside it blocks (`device.poll`, within the context's timeout), so the map has
//! finished by the time it is awaited and the blocking callers drive it with
//! `platform::block_on`; in a browser the map finishes once the page's event loop has turned.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::platform;

/// Maps `buffer` (MAP_READ) and copies out its first `bytes` as u64 (timestamps).
pub(crate) fn read_u64(
    ctx: &GpuContext,
    buffer: &wgpu::Buffer,
    bytes: u64,
    submission: Option<wgpu::SubmissionIndex>,
) -> Result<Vec<u64>> {
    platform::block_on(
        read_pod(ctx, buffer, bytes, submission),
        "Engine::run_async",
    )
}

/// Maps `buffer` (MAP_READ) once `submission` (or all work) has finished, copies out its
/// first `bytes` as `T` and settles the context (errors caught since, in a browser).
pub(crate) async fn read_pod<T: bytemuck::Pod>(
    ctx: &GpuContext,
    buffer: &wgpu::Buffer,
    bytes: u64,
    submission: Option<wgpu::SubmissionIndex>,
) -> Result<Vec<T>> {
    let slice = buffer.slice(..bytes);
    let mapped = Mapped::default();
    let callback = mapped.callback();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        callback.record(r.map_err(|e| e.to_string()))
    });
    // Natively this blocks until the work is done, which runs the callback; in a browser it
    // returns at once and the map finishes while the page waits below.
    ctx.wait_for(submission)?;
    mapped
        .await
        .map_err(|e| Error::Gpu(format!("reading results back: {e}")))?;
    ctx.settle().await?;
    let view = slice
        .get_mapped_range()
        .map_err(|e| Error::Gpu(format!("reading results back: {e}")))?;
    let out = bytemuck::pod_collect_to_vec::<u8, T>(&view);
    drop(view);
    buffer.unmap();
    Ok(out)
}

/// Reads back `len` values stored in the context's precision in the first `bytes` of `buffer`
/// (MAP_READ), as f32, once `submission` has finished.
pub(crate) async fn read_stored(
    ctx: &GpuContext,
    buffer: &wgpu::Buffer,
    (bytes, len): (u64, usize),
    submission: Option<wgpu::SubmissionIndex>,
) -> Result<Vec<f32>> {
    let words: Vec<u32> = read_pod(ctx, buffer, bytes, submission).await?;
    Ok(ctx.precision.decode(bytemuck::cast_slice(&words), len))
}

/// The outcome of a `map_async`, as a future.
#[derive(Default)]
struct Mapped(Arc<Mutex<MapState>>);

/// The callback's end of a [`Mapped`]. Dropped uncalled (wgpu dropping the request: the
/// buffer destroyed, the device lost), it resolves the future with an error rather than
/// leaving it pending for ever.
struct MapCallback(Arc<Mutex<MapState>>);

#[derive(Default)]
struct MapState {
    outcome: Option<std::result::Result<(), String>>,
    waker: Option<Waker>,
}

impl Mapped {
    fn callback(&self) -> MapCallback {
        MapCallback(self.0.clone())
    }
}

impl MapCallback {
    /// Records the first outcome and wakes the future.
    fn record(&self, outcome: std::result::Result<(), String>) {
        if let Ok(mut state) = self.0.lock() {
            state.outcome.get_or_insert(outcome);
            if let Some(waker) = state.waker.take() {
                waker.wake();
            }
        }
    }
}

impl Drop for MapCallback {
    fn drop(&mut self) {
        self.record(Err("the GPU dropped the read request".into()));
    }
}

impl Future for Mapped {
    type Output = std::result::Result<(), String>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Ok(mut state) = self.0.lock() else {
            return Poll::Ready(Err("the read request's state is poisoned".into()));
        };
        match state.outcome.clone() {
            Some(outcome) => Poll::Ready(outcome),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Copies a storage buffer (COPY_SRC) of activations or weights stored in the context's
/// precision back to the host: its first `len` values, as f32.
pub fn copy_out_stored(ctx: &GpuContext, src: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
    let words: Vec<u32> = copy_out_pod(ctx, src)?;
    Ok(ctx.precision.decode(bytemuck::cast_slice(&words), len))
}

/// Copies a whole f32 storage buffer (COPY_SRC) back to the host.
pub fn copy_out(ctx: &GpuContext, src: &wgpu::Buffer) -> Result<Vec<f32>> {
    copy_out_pod(ctx, src)
}

/// Copies a whole storage buffer (COPY_SRC) back to the host as `T`.
fn copy_out_pod<T: bytemuck::Pod>(ctx: &GpuContext, src: &wgpu::Buffer) -> Result<Vec<T>> {
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
    platform::block_on(
        read_pod(ctx, &staging, src.size(), Some(submission)),
        "Engine::run_async",
    )
}
