//! The planner under WebGPU's default limits (`wgpu::Limits::default()`: 128 MiB storage
//! bindings, 16 KiB of workgroup memory, 256 invocations), what a browser that grants no
//! more gives: imposed on the local adapter, batches split at the 128 MiB binding, every conv
//! configuration fits 16 KiB (tuned ones that need more are refused), and the results still
//! match PyTorch and the CPU reference.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::gpu_with_limits;
use resnet_wgpu::gpu::disk_cache::DiskCache;
use resnet_wgpu::gpu::ops::conv::{ConvConfig, DeviceFit};
use resnet_wgpu::graph::InputSize;
use resnet_wgpu::model::{arch, synthetic::synthetic_weights};
use resnet_wgpu::reference::{relative_error, run_graph};
use resnet_wgpu::{Engine, GpuContext, GpuOptions, Output};

const BINDING: u64 = 128 << 20;
const WORKGROUP_BYTES: u32 = 16 << 10;

/// The default adapter with WebGPU's defaults imposed; `register`: which conv kernel (`None`:
/// the adapter's default, and tuned configurations are used).
fn webgpu_device(register: Option<bool>) -> Option<Arc<GpuContext>> {
    let options = GpuOptions {
        prefer_registers: register,
        disk_cache: DiskCache::Off,
        ..Default::default()
    };
    let ctx = gpu_with_limits(&options, wgpu::Limits::default())?;
    assert_eq!(ctx.limits.max_storage_buffer_binding_size, BINDING);
    assert_eq!(
        ctx.limits.max_compute_workgroup_storage_size,
        WORKGROUP_BYTES
    );
    assert_eq!(ctx.limits.max_compute_invocations_per_workgroup, 256);
    Some(ctx)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn a_batch_over_128_mib_splits_with_the_same_results() {
    let Some(ctx) = webgpu_device(None) else {
        return;
    };
    // A 4-channel stem and two one-block stages: the largest buffer is the 224×224 input
    // (3 floats a pixel), and each image costs only ~8 MMAC, so 200+ images stay quick.
    let a = arch::with_widths(arch::BlockKind::Basic, &[1, 1], 4, 10);
    let weights = synthetic_weights(&a, 17).unwrap();
    let engine = Engine::load_on(ctx.clone(), &weights).unwrap();
    let (h, w) = (224, 224);
    let per = 3 * h * w;
    let fit = engine.max_batch(InputSize::image(100_000, h, w)).unwrap();
    assert_eq!(fit as u64, BINDING / (per as u64 * 4), "images per 128 MiB");
    let n = fit + 1;
    let sizes = engine.sub_batches(InputSize::image(n, h, w)).unwrap();
    assert_eq!(sizes, vec![n - n / 2, n / 2]);

    let input = common::Rng::new(5).vec(n * per, -2.0, 2.0);
    let t = std::time::Instant::now();
    let got = engine.run(&input, n, h, w, Output::Logits).unwrap();
    eprintln!(
        "{n}x3x{h}x{w} under WebGPU limits on {}: {fit} fit, ran as {sizes:?} in {:.1} s",
        ctx.info.name,
        t.elapsed().as_secs_f64()
    );
    // Images at the ends of both sub-batches, run alone, give the same bits.
    for i in [0, sizes[0] - 1, sizes[0], n - 1] {
        let alone = engine
            .run(&input[i * per..(i + 1) * per], 1, h, w, Output::Logits)
            .unwrap();
        assert!(
            bits(&alone) == bits(&got[i * 10..(i + 1) * 10]),
            "image {i}"
        );
    }
    let (want, _) = run_graph(&engine.graph, &weights, &input[(n - 1) * per..], 1, h, w).unwrap();
    let err = relative_error(&got[(n - 1) * 10..], &want);
    assert!(
        err <= 1e-4,
        "relative error {err:.3e} against the CPU reference"
    );
}

#[test]
fn conv_configs_fit_16_kib_and_larger_tuned_ones_are_refused() {
    let Some(ctx) = webgpu_device(None) else {
        return;
    };
    let own = DeviceFit::of(&ctx.adapter.limits());
    let web = DeviceFit::of(&ctx.limits);
    // The cap is imposed: the adapter itself offers more workgroup memory.
    assert!(own.workgroup_storage > WORKGROUP_BYTES, "{}", ctx.info);
    for a in [
        arch::standard("resnet50", 10).unwrap(),
        arch::standard("resnext50_32x4d", 10).unwrap(),
    ] {
        let weights = synthetic_weights(&a, 3).unwrap();
        let engine = Engine::load_on(ctx.clone(), &weights).unwrap();
        // A tuning table made on the adapter's own limits, with the largest tiles it allows.
        let mut tuned = BTreeMap::new();
        let mut refused = 0;
        for (_, p) in engine.conv_problems(InputSize::image(8, 224, 224)).unwrap() {
            let largest = ConvConfig::candidates(&p, &own)
                .into_iter()
                .max_by_key(|c| c.tiles.workgroup_bytes())
                .expect("a candidate");
            if largest.tiles.workgroup_bytes() > WORKGROUP_BYTES {
                refused += 1;
            }
            tuned.insert(p.key(), largest);
        }
        assert!(refused > 0, "{}: no candidate over 16 KiB", a.name());
        engine.set_conv_configs(tuned).unwrap();
        // What the engine runs on each conv of batch 8 at 224×224: never the refused tiles.
        for (name, p) in engine.conv_problems(InputSize::image(8, 224, 224)).unwrap() {
            let c = engine.conv_config(&p);
            assert!(c.check(&p, &web).is_ok(), "{name}: {c:?}");
            assert!(
                c.tiles.workgroup_bytes() <= WORKGROUP_BYTES,
                "{name}: {c:?}"
            );
            assert!(c.tiles.threads() <= 256, "{name}: {c:?}");
        }
        // Every configuration the tuner would try here fits too.
        for (_, p) in engine.conv_problems(InputSize::image(8, 224, 224)).unwrap() {
            for c in ConvConfig::candidates(&p, &web) {
                assert!(c.tiles.workgroup_bytes() <= WORKGROUP_BYTES, "{c:?}");
            }
        }
    }
}

#[test]
fn fixtures_match_under_webgpu_limits() {
    // The tiled kernel, whose workgroup tiles the 16 KiB cap bounds.
    let Some(ctx) = webgpu_device(Some(false)) else {
        return;
    };
    let label = format!("WebGPU default limits on {}", ctx.info.name);
    crate::end_to_end::check_on(ctx.clone(), "resnet50", &label);
    crate::family::check_on(ctx, "tv_resnext50", &label);
}

/// Guards the device set-up: limits beyond the adapter's are an error, not silently lowered.
#[test]
fn limits_beyond_the_adapter_are_refused() {
    let Some(ctx) = webgpu_device(None) else {
        return;
    };
    let mut too_much = ctx.adapter.limits();
    too_much.max_storage_buffer_binding_size = u64::MAX;
    let options = GpuOptions {
        disk_cache: DiskCache::Off,
        ..Default::default()
    };
    assert!(GpuContext::with_limits(&options, too_much).is_err());
}
