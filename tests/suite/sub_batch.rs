//! Batches too large for the adapter's buffer limits run as sub-batches with the same
//! results; one image too large is an error that names the limit.

use crate::common;

use std::time::Instant;

use common::gpu;
use resnet_wgpu::graph::InputSize;
use resnet_wgpu::model::{arch, synthetic::synthetic_weights};
use resnet_wgpu::reference::{relative_error, run_graph};
use resnet_wgpu::{Engine, Error, Output};

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn a_batch_over_the_binding_limit_splits_with_identical_results() {
    let Some(ctx) = gpu(false) else { return };
    // ResNet-18's stem and first two stages (one block each): the same largest activation
    // (the stem's output), hence the same limit and split, at 0.53 GMAC per image instead
    // of 1.82.
    let a = arch::with_widths(arch::BlockKind::Basic, &[1, 1], 64, 1000);
    let weights = synthetic_weights(&a, 5).unwrap();
    let engine = Engine::load_on(ctx.clone(), &weights).unwrap();
    let (h, w) = (224, 224);
    // The largest activation is the stem's output, 64×112×112 floats per image; no buffer
    // may exceed the smaller of the two limits.
    let limit = ctx
        .limits
        .max_storage_buffer_binding_size
        .min(ctx.limits.max_buffer_size);
    let per_image = 64 * 112 * 112 * 4u64;
    let fit = engine.max_batch(InputSize::image(100_000, h, w)).unwrap();
    assert_eq!(fit as u64, limit / per_image, "limit {limit}");
    // On lavapipe (128 MiB bindings) 41 images fit: the batch of 48 must split.
    let n = 48.max(fit + 1);
    let sizes = engine.sub_batches(InputSize::image(n, h, w)).unwrap();
    // The fewest sub-batches that fit, of near-equal sizes: [24, 24] on lavapipe.
    let chunks = n.div_ceil(fit);
    assert_eq!(sizes.len(), chunks);
    assert!(sizes.iter().all(|&s| s <= fit && s + 1 >= n / chunks));
    assert_eq!(sizes.iter().sum::<usize>(), n);
    let mut rng = common::Rng::new(21);
    let per = 3 * h * w;
    let input = rng.vec(n * per, -2.0, 2.0);

    let t = Instant::now();
    let got = engine.run(&input, n, h, w, Output::Logits).unwrap();
    eprintln!(
        "{} {n}x3x{h}x{w} on {} (binding limit {limit} B): {fit} images fit, ran as \
         {sizes:?} in {:.1} s",
        a.name(),
        ctx.info.name,
        t.elapsed().as_secs_f64()
    );
    assert_eq!(got.len(), n * 1000);

    // Each image's logits do not depend on its batch: images at the start, the sub-batch
    // boundaries and the end, run alone, give the same bits as in the split run, so the
    // split is the one batch's result, in order. (Every conv GEMM here has at least 784 rows
    // per image, so even the tiled kernel picks the same tiles for any batch.)
    let mut probes = vec![0, sizes[0] - 1, sizes[0], n - 1];
    probes.dedup();
    for &i in &probes {
        let alone = engine
            .run(&input[i * per..(i + 1) * per], 1, h, w, Output::Logits)
            .unwrap();
        assert!(
            bits(&alone) == bits(&got[i * 1000..(i + 1) * 1000]),
            "image {i} alone differs from image {i} in the batch of {n}"
        );
    }
    // And the last image against the CPU reference.
    let last = &input[(n - 1) * per..];
    let (want, _) = run_graph(&engine.graph, &weights, last, 1, h, w).unwrap();
    let err = relative_error(&got[(n - 1) * 1000..], &want);
    assert!(err <= 1e-4, "relative error {err:.3e}");
}

#[test]
fn one_image_over_the_limit_is_an_error_naming_it() {
    let Some(ctx) = gpu(false) else { return };
    let a = arch::standard("resnet18", 10).unwrap();
    let weights = synthetic_weights(&a, 6).unwrap();
    let engine = Engine::load_on(ctx.clone(), &weights).unwrap();
    let limit = ctx.limits.max_storage_buffer_binding_size;
    // Smallest even side whose stem output, (side/2)² × 64 floats, exceeds the binding limit.
    let half = ((limit / 256) as f64).sqrt() as usize + 1;
    let side = 2 * half;
    let e = engine
        .max_batch(InputSize::image(1, side, side))
        .unwrap_err();
    match &e {
        Error::AdapterLimit {
            limit_name,
            limit: l,
            ..
        } => {
            assert!(
                limit_name.contains("max_storage_buffer_binding_size")
                    || limit_name.contains("max_buffer_size")
            );
            assert!(*l <= limit);
        }
        other => panic!("expected an adapter limit error, got {other:?}"),
    }
    assert!(e.is_user_error());
    // `run` says the same, before allocating anything on the GPU.
    if side <= 2048 {
        let input = vec![0.0f32; 3 * side * side];
        let e = engine
            .run(&input, 1, side, side, Output::Logits)
            .unwrap_err();
        assert!(matches!(e, Error::AdapterLimit { .. }), "{e}");
        eprintln!("{side}x{side}: {e}");
    }
    // A size just under it still runs on its own.
    assert_eq!(
        engine
            .max_batch(InputSize::image(4, side - 64, side - 64))
            .unwrap(),
        1
    );
}

#[test]
fn an_empty_batch_is_a_shape_error() {
    let Some(ctx) = gpu(false) else { return };
    let weights = resnet_wgpu::WeightsFile::open(common::fixture("tiny.safetensors")).unwrap();
    let engine = Engine::load_on(ctx, &weights).unwrap();
    let e = engine.run(&[], 0, 32, 32, Output::Logits).unwrap_err();
    assert!(matches!(e, Error::InputShape(_)), "{e}");
    // A length that does not match the shape, and one whose size overflows.
    let e = engine
        .run(&[0.0; 10], 1, 32, 32, Output::Logits)
        .unwrap_err();
    assert!(matches!(e, Error::InputShape(_)), "{e}");
    let e = engine
        .run(&[0.0; 3], 1, usize::MAX, 2, Output::Logits)
        .unwrap_err();
    assert!(matches!(e, Error::InputShape(_)), "{e}");
}
