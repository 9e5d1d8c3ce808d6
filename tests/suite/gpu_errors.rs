//! GPU failures are errors, never panics or hangs: validation errors inside and outside
//! error scopes, a lost device, and a wait that times out. Each test opens its own device,
//! since these break it on purpose.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{fixture, gpu};
use resnet_wgpu::gpu::disk_cache::DiskCache;
use resnet_wgpu::model::{arch, synthetic::synthetic_weights};
use resnet_wgpu::{Engine, Error, GpuContext, GpuOptions, Output, WeightsFile};

/// A device of its own, or `None` where the suite skips GPU tests (never under CI).
fn own_device() -> Option<Arc<GpuContext>> {
    gpu(false)?;
    let options = GpuOptions {
        disk_cache: DiskCache::Off,
        ..Default::default()
    };
    Some(Arc::new(GpuContext::new(&options).unwrap()))
}

fn oversized(ctx: &GpuContext) -> wgpu::Buffer {
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("too big"),
        size: ctx.limits.max_buffer_size.saturating_add(4),
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    })
}

#[test]
fn validation_errors_are_errors_not_panics() {
    let Some(ctx) = own_device() else { return };
    // Inside a scope: an error naming what was being done.
    let e = ctx
        .scoped("making a test buffer", || oversized(&ctx))
        .unwrap_err();
    assert!(
        matches!(&e, Error::Gpu(m) if m.contains("making a test buffer")),
        "{e}"
    );
    assert!(!e.is_user_error());
    // Outside any scope wgpu would panic by default; the context records the error and the
    // next check reports it, once.
    let _ = oversized(&ctx);
    assert!(matches!(ctx.check(), Err(Error::Gpu(_))));
    ctx.check().unwrap();
    // The device is still usable afterwards.
    let weights = WeightsFile::open(fixture("tiny.safetensors")).unwrap();
    let engine = Engine::load_on(ctx, &weights).unwrap();
    engine
        .run(&vec![0.5; 3 * 32 * 32], 1, 32, 32, Output::Logits)
        .unwrap();
}

#[test]
fn a_lost_device_fails_every_later_call() {
    let Some(ctx) = own_device() else { return };
    let weights = WeightsFile::open(fixture("tiny.safetensors")).unwrap();
    let engine = Engine::load_on(ctx.clone(), &weights).unwrap();
    let x = vec![0.25; 2 * 3 * 32 * 32];
    engine.run(&x, 2, 32, 32, Output::Logits).unwrap();
    ctx.device.destroy();
    for attempt in 0..2 {
        // Both a cached plan and a new size fail.
        for n in [2, 1] {
            let e = engine
                .run(&x[..n * 3 * 32 * 32], n, 32, 32, Output::Logits)
                .unwrap_err();
            assert!(
                matches!(&e, Error::Gpu(m) if m.contains("lost")),
                "attempt {attempt}, batch {n}: {e}"
            );
        }
    }
    assert!(matches!(Engine::load_on(ctx, &weights), Err(Error::Gpu(_))));
}

#[test]
fn a_wait_past_the_timeout_is_an_error_and_retires_the_device() {
    let Some(ctx) = own_device() else { return };
    let a = arch::standard("resnet18", 10).unwrap();
    let weights = synthetic_weights(&a, 1).unwrap();
    let engine = Engine::load_on(ctx.clone(), &weights).unwrap();
    let x = vec![0.1; 2 * 3 * 224 * 224];
    // Work of milliseconds on a GPU, seconds on a CPU adapter, against no time at all.
    ctx.set_timeout(Duration::ZERO);
    let e = engine.run(&x, 2, 224, 224, Output::Logits).unwrap_err();
    assert!(
        matches!(&e, Error::Gpu(m) if m.contains("did not finish")),
        "{e}"
    );
    // Whatever the GPU does next, this device is not trusted again.
    ctx.set_timeout(Duration::from_secs(600));
    let e = engine.run(&x, 2, 224, 224, Output::Logits).unwrap_err();
    assert!(
        matches!(&e, Error::Gpu(m) if m.contains("did not finish")),
        "{e}"
    );
}
