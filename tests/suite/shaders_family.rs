//! naga validation (CPU only, no device) of the specialisations the family adds: the grouped
//! conv in every tile configuration the planner can pick, with and without residual and
//! ReLU, and the average pool entry point. Each is parsed, specialised through its override
//! constants, re-validated and written as SPIR-V.

use crate::common::specialisations::{
    grouped_tiles, register_tiles, specialised, spirv, EPILOGUES,
};
use resnet_wgpu::gpu::kernels::Constants;
use resnet_wgpu::gpu::ops::conv::{conv_constants, grouped_conv_constants, ConvTiles};
use resnet_wgpu::gpu::ops::Kernel;

/// Specialises `kernel` with `constants`, writes it as SPIR-V and returns its workgroup size.
fn specialise(kernel: Kernel, constants: &Constants) -> [u32; 3] {
    let (processed, processed_info) = specialised(kernel, constants);
    let what = format!("{kernel:?} {constants:?}");
    let words = spirv(kernel, &processed, &processed_info)
        .unwrap_or_else(|e| panic!("{what}: SPIR-V: {e:?}"));
    assert_eq!(words.first(), Some(&0x0723_0203), "{what}: SPIR-V magic");
    processed
        .entry_points
        .iter()
        .find(|e| e.name == kernel.entry())
        .unwrap_or_else(|| panic!("{what}: no entry point"))
        .workgroup_size
}

#[test]
fn grouped_conv_every_specialisation_compiles() {
    let tiles = grouped_tiles();
    assert_eq!(tiles.len(), 5, "{tiles:?}");
    for t in tiles {
        assert!(t.is_valid(), "{t:?}");
        // WebGPU's default limits: 16 KiB of workgroup memory, 256 invocations.
        assert!(t.workgroup_bytes() <= 16 * 1024, "{t:?}");
        // Enough threads per workgroup to keep a GPU's SIMD lanes busy.
        assert!((64..=256).contains(&t.threads()), "{t:?}");
        for (residual, relu) in EPILOGUES {
            let size = specialise(
                Kernel::ConvTiled,
                &grouped_conv_constants(t, residual, relu),
            );
            assert_eq!(size, [t.tile_n / 4, t.tile_m / 4, 1], "{t:?}");
        }
    }
}

#[test]
fn register_grouped_conv_compiles() {
    assert_eq!(Kernel::ConvRegisters.file(), "conv.wgsl");
    assert_eq!(Kernel::ConvRegisters.entry(), "registers");
    for t in register_tiles() {
        assert!(t.is_valid() && t.threads() <= 256, "{t:?}");
        for (residual, relu) in EPILOGUES {
            let size = specialise(
                Kernel::ConvRegisters,
                &grouped_conv_constants(t, residual, relu),
            );
            assert_eq!(size, [t.tile_n / 4, t.tile_m / 4, 1], "{t:?}");
        }
    }
}

#[test]
fn grouped_constants_differ_from_dense_only_in_grouped() {
    let t = ConvTiles::for_grouped(8);
    let dense = conv_constants(t, true, true, false, false);
    let grouped = grouped_conv_constants(t, true, true);
    let differ: Vec<_> = dense
        .iter()
        .zip(&grouped)
        .filter(|(a, b)| a != b)
        .map(|(a, _)| a.0)
        .collect();
    assert_eq!(differ, vec!["GROUPED"]);
    // The constants name every override of conv.wgsl, so none is left at a default.
    let module = naga::front::wgsl::parse_str(Kernel::ConvTiled.source()).unwrap();
    let mut names: Vec<&str> = module
        .overrides
        .iter()
        .filter_map(|(_, o)| o.name.as_deref())
        .collect();
    names.sort();
    let mut given: Vec<&str> = grouped.iter().map(|c| c.0).collect();
    given.sort();
    assert_eq!(names, given);
}

#[test]
fn avg_pool_compiles_with_its_layout() {
    assert!(Kernel::ALL.contains(&Kernel::AvgPool));
    assert_eq!(Kernel::AvgPool.entry(), "avg_pool");
    // params, input, output, pre-activation
    assert_eq!(Kernel::AvgPool.bindings().len(), 4);
    for pre_act in [0.0, 1.0] {
        let constants = vec![("PRE_ACT", pre_act)];
        assert_eq!(specialise(Kernel::AvgPool, &constants), [256, 1, 1]);
    }
}
