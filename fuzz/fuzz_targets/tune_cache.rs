//! `tune.json`, the tuning cache: arbitrary bytes through its parser, then every cached
//! configuration through the validity check against the conv shapes of a ResNet (dense,
//! grouped, pointwise, the NCHW stem). A configuration the check accepts must survive every
//! piece of arithmetic a plan does with it (tile counts, split sizes, scratch bytes,
//! specialisation constants) without a panic, and the cache must survive a save/load round
//! trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resnet_wgpu::gpu::ops::conv::{ConvProblem, DeviceFit};
use resnet_wgpu::gpu::tuning::cache::TuneCache;

/// wgpu's default limits (what every adapter offers at least), as the plan sees them.
const FIT: DeviceFit = DeviceFit {
    workgroup_storage: 16384,
    invocations: 256,
    workgroup_size_x: 256,
    workgroup_size_y: 256,
    workgroups_per_dimension: 65535,
    binding_bytes: 128 << 20,
};

fn conv(
    in_hw: usize,
    in_c: usize,
    out_c: usize,
    kernel: usize,
    stride: usize,
    groups: usize,
) -> ConvProblem {
    let pad = kernel / 2;
    let out_hw = (in_hw + 2 * pad - kernel) / stride + 1;
    ConvProblem {
        batch: 1,
        in_h: in_hw,
        in_w: in_hw,
        in_c,
        out_h: out_hw,
        out_w: out_hw,
        out_c,
        kernel,
        stride,
        pad,
        groups,
        input_nchw: false,
        residual: false,
        relu: true,
    }
}

fn problems() -> Vec<ConvProblem> {
    let mut stem = conv(224, 3, 64, 7, 2, 1);
    stem.input_nchw = true;
    let mut residual = conv(56, 64, 256, 1, 1, 1);
    residual.residual = true;
    vec![
        stem,
        residual,
        conv(56, 64, 64, 3, 1, 1),
        conv(28, 256, 512, 1, 2, 1),
        conv(14, 512, 512, 3, 1, 32),
        conv(7, 512, 512, 3, 1, 1),
        conv(1, 8, 4, 1, 1, 1),
    ]
}

fuzz_target!(|data: &[u8]| {
    let Ok(cache) = serde_json::from_slice::<TuneCache>(data) else {
        return;
    };
    let problems = problems();
    for adapter in cache.adapters.keys() {
        for (key, config) in cache.configs_for(adapter) {
            let _ = (key.len(), config.describe());
            for p in &problems {
                if config.check(p, &FIT).is_err() {
                    continue;
                }
                let _ = config.output_tiles(p);
                let _ = config.k_per_split(p);
                let _ = config.scratch_bytes(p);
                let _ = config.pipelines(p);
            }
        }
    }
    // What `save` writes, `load` reads back unchanged.
    let text = serde_json::to_string_pretty(&cache).expect("a parsed cache serialises");
    let back: TuneCache = serde_json::from_str(&text).expect("our own output parses");
    // (Timings are compared loosely: serde_json's default float parsing is best-effort.)
    assert_eq!(back.version, cache.version);
    for (adapter, convs) in &cache.adapters {
        assert_eq!(back.configs_for(adapter), cache.configs_for(adapter));
        for (key, tuned) in convs {
            let again = &back.adapters[adapter][key];
            let close = |a: f64, b: f64| a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs());
            assert!(close(again.ms, tuned.ms) && close(again.default_ms, tuned.default_ms));
        }
    }
    assert_eq!(back.adapters.len(), cache.adapters.len());
});
