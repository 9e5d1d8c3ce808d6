//! Every WGSL kernel, in every specialisation the engine can create, through naga alone (no
//! GPU): parse, validate, apply the override constants, re-validate and emit SPIR-V. A shader
//! error therefore fails here on any machine, before a device is ever opened.

use crate::common::specialisations::{
    all_conv_tiles, conv_reduce_constants, dense_conv_constants, fold_bn_constants, fold_constants,
    gemm_specialisations, parse, parse_in, specialised_in, spirv, tuning_candidates,
    winograd_specialisations,
};
use naga::back::PipelineConstants;
use naga::{AddressSpace, ShaderStage, StorageAccess};
use resnet_wgpu::gpu::kernels::{Binding, Constants, SHADER_FILES};
use resnet_wgpu::gpu::ops::conv::{conv_constants, ConvTiles};
use resnet_wgpu::gpu::ops::Kernel;
use resnet_wgpu::Precision;

/// Applies `constants` for `kernel`'s entry point in both precisions, re-validates, emits
/// SPIR-V, and returns the workgroup size and the workgroup memory (bytes) of the specialised
/// entry point, which must not depend on the precision (workgroup memory stays f32).
fn specialise(kernel: Kernel, constants: &Constants) -> ([u32; 3], u32) {
    let f32 = specialise_in(kernel, constants, Precision::F32);
    let f16 = specialise_in(kernel, constants, Precision::F16);
    assert_eq!(
        f32, f16,
        "{kernel:?} {constants:?}: f16 changes the workgroup"
    );
    f32
}

fn specialise_in(kernel: Kernel, constants: &Constants, precision: Precision) -> ([u32; 3], u32) {
    let (processed, processed_info) = specialised_in(kernel, constants, precision);
    let what = format!("{kernel:?} {constants:?} ({precision})");
    // naga keeps the overrides, each now holding its resolved value.
    for (_, o) in processed.overrides.iter() {
        assert!(
            o.init.is_some(),
            "{what}: override {:?} left unresolved",
            o.name
        );
    }
    let words = spirv(kernel, &processed, &processed_info)
        .unwrap_or_else(|e| panic!("{what}: SPIR-V: {e:?}"));
    assert_eq!(
        words.first(),
        Some(&0x0723_0203),
        "{what}: SPIR-V magic number"
    );
    let ep = processed
        .entry_points
        .iter()
        .find(|e| e.name == kernel.entry())
        .unwrap_or_else(|| panic!("{what}: entry point gone"));
    assert!(
        ep.workgroup_size_overrides.is_none(),
        "{what}: workgroup size still overridable"
    );
    // The processed module is compacted to this entry point: every workgroup variable left
    // is one it uses, now with a constant size.
    let mut layouter = naga::proc::Layouter::default();
    layouter.update(processed.to_ctx()).expect("layout");
    let shared = processed
        .global_variables
        .iter()
        .filter(|(_, v)| v.space == AddressSpace::WorkGroup)
        .map(|(_, v)| layouter[v.ty].size)
        .sum();
    (ep.workgroup_size, shared)
}

#[test]
fn every_shader_file_parses_and_validates() {
    // Every file in shaders/ is compiled in (none forgotten, none stale).
    let on_disk = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("wgsl".as_ref()))
        .count();
    assert_eq!(SHADER_FILES.len(), on_disk);
    for (file, _) in SHADER_FILES {
        let (module, _) = parse(file);
        assert!(!module.entry_points.is_empty(), "{file}: no entry point");
        for ep in &module.entry_points {
            assert_eq!(
                ep.stage,
                ShaderStage::Compute,
                "{file}: {} is not a compute entry point",
                ep.name
            );
        }
    }
    // Every file is used by some kernel, and every kernel's file exists.
    for (file, _) in SHADER_FILES {
        assert!(
            Kernel::ALL.iter().any(|k| k.file() == file),
            "{file} is used by no kernel"
        );
    }
    for kernel in Kernel::ALL {
        assert!(
            !kernel.source().is_empty(),
            "{kernel:?}: {} not compiled in",
            kernel.file()
        );
    }
}

/// Whether `ty` is, or is an array or vector of, f16.
fn holds_f16(module: &naga::Module, ty: naga::Handle<naga::Type>) -> bool {
    use naga::{Scalar, TypeInner};
    let half = |s: &Scalar| *s == Scalar::F16;
    match &module.types[ty].inner {
        TypeInner::Scalar(s) | TypeInner::Vector { scalar: s, .. } => half(s),
        TypeInner::Array { base, .. } => holds_f16(module, *base),
        TypeInner::Struct { members, .. } => members.iter().any(|m| holds_f16(module, m.ty)),
        _ => false,
    }
}

/// The precision convention, checked on what the engine compiles: every file's f16 module
/// stores some of its storage arrays as f16 (the `Act` ones), while uniforms and workgroup
/// memory stay f32; the f32 module has no f16 at all.
#[test]
fn f16_modules_store_act_arrays_as_f16_and_nothing_else() {
    for (file, _) in SHADER_FILES {
        let (f32_module, _) = parse_in(file, Precision::F32);
        assert!(
            f32_module
                .types
                .iter()
                .all(|(h, _)| !holds_f16(&f32_module, h)),
            "{file}: f16 in the f32 module"
        );
        let (module, _) = parse_in(file, Precision::F16);
        let storage_f16 = module
            .global_variables
            .iter()
            .filter(|(_, v)| matches!(v.space, AddressSpace::Storage { .. }))
            .filter(|(_, v)| holds_f16(&module, v.ty))
            .count();
        assert!(storage_f16 > 0, "{file}: no storage array became f16");
        for (_, v) in module.global_variables.iter() {
            if matches!(v.space, AddressSpace::Uniform | AddressSpace::WorkGroup) {
                assert!(
                    !holds_f16(&module, v.ty),
                    "{file}: {:?} must stay f32",
                    v.name
                );
            }
        }
    }
}

#[test]
fn entry_points_and_bindings_match_the_layouts() {
    for kernel in Kernel::ALL {
        let (module, info) = parse(kernel.file());
        let index = module
            .entry_points
            .iter()
            .position(|e| e.name == kernel.entry() && e.stage == ShaderStage::Compute)
            .unwrap_or_else(|| {
                panic!(
                    "{kernel:?}: no compute entry point `{}` in {}",
                    kernel.entry(),
                    kernel.file()
                )
            });
        let layout = kernel.bindings();
        // Declared resources: group 0, bindings exactly 0..len, each of the declared kind.
        let mut declared: Vec<(u32, Binding)> = Vec::new();
        for (handle, var) in module.global_variables.iter() {
            let Some(rb) = &var.binding else { continue };
            assert_eq!(rb.group, 0, "{kernel:?}: {:?} is not in group 0", var.name);
            let kind = match var.space {
                AddressSpace::Uniform => Binding::Uniform,
                AddressSpace::Storage { access } if access.contains(StorageAccess::STORE) => {
                    Binding::ReadWrite
                }
                AddressSpace::Storage { .. } => Binding::Read,
                other => panic!("{kernel:?}: {:?} in unexpected space {other:?}", var.name),
            };
            declared.push((rb.binding, kind));
            // The entry point may use only resources the layout has.
            let used = !info.get_entry_point(index)[handle].is_empty();
            if used {
                assert!(
                    (rb.binding as usize) < layout.len(),
                    "{kernel:?} uses binding {} outside its layout",
                    rb.binding
                );
            }
        }
        declared.sort_by_key(|d| d.0);
        assert_eq!(
            declared.len(),
            layout.len(),
            "{kernel:?}: {} bindings in {}, layout has {}",
            declared.len(),
            kernel.file(),
            layout.len()
        );
        for (i, (binding, kind)) in declared.iter().enumerate() {
            assert_eq!(
                *binding as usize,
                i,
                "{kernel:?}: bindings are not 0..{}",
                layout.len()
            );
            assert_eq!(
                *kind, layout[i],
                "{kernel:?}: binding {i} is {kind:?} in WGSL, {:?} in the layout",
                layout[i]
            );
        }
    }
}

#[test]
fn conv_tile_configs_fit_webgpu_defaults() {
    let tiles = all_conv_tiles();
    eprintln!("conv tile configurations: {tiles:?}");
    // Tiles are fitted to the GEMM: 16, 32 or 64 along each of M and N.
    let mut sizes: Vec<(u32, u32)> = tiles.iter().map(|t| (t.tile_m, t.tile_n)).collect();
    sizes.sort();
    sizes.dedup();
    assert_eq!(sizes.len(), 9, "tile sizes {tiles:?}");
    for t in &tiles {
        assert!(
            [16, 32, 64].contains(&t.tile_m) && [16, 32, 64].contains(&t.tile_n),
            "{t:?}"
        );
        // The conv kernel's own constraints (4×4 register blocks, A-load pattern, threads).
        assert!(
            t.is_valid(),
            "{t:?}: for_shape returned a configuration the kernel rejects"
        );
        // The default WebGPU limits: 16 KiB of workgroup memory, 256 invocations.
        let bytes = t.workgroup_bytes();
        assert!(
            bytes <= 16 * 1024,
            "{t:?}: {bytes} bytes of workgroup memory"
        );
        assert!(
            (1..=256).contains(&t.threads()),
            "{t:?}: {} threads",
            t.threads()
        );
    }
}

#[test]
fn conv_every_specialisation_compiles() {
    let mut count = 0;
    for tiles in all_conv_tiles() {
        for constants in dense_conv_constants(tiles) {
            let (size, shared) = specialise(Kernel::ConvTiled, &constants);
            assert_eq!(
                size,
                [tiles.tile_n / 4, tiles.tile_m / 4, 1],
                "{tiles:?}: workgroup size"
            );
            assert_eq!(
                size[0] * size[1] * size[2],
                tiles.threads(),
                "{tiles:?}: threads"
            );
            // What the shader really declares is what the plan budgets, within WebGPU's 16 KiB.
            assert_eq!(
                shared,
                tiles.workgroup_bytes(),
                "{tiles:?}: workgroup memory"
            );
            assert!(
                shared <= 16 * 1024,
                "{tiles:?}: {shared} bytes of workgroup memory"
            );
            count += 1;
        }
    }
    // 16 image specialisations, 8 over frames (never pointwise) and 8 pre-activating ones
    // per tile size.
    assert_eq!(count, all_conv_tiles().len() * 32);
}

#[test]
fn conv_constants_name_every_override() {
    // Every constant the engine sets exists in the shader (process_overrides rejects unknown
    // names, but check the full list once by name as well).
    let (module, _) = parse("conv.wgsl");
    let names: Vec<&str> = module
        .overrides
        .iter()
        .filter_map(|(_, o)| o.name.as_deref())
        .collect();
    let constants = conv_constants(ConvTiles::for_shape(1, 1), true, true, true, true);
    for (name, _) in &constants {
        assert!(names.contains(name), "conv.wgsl has no override {name}");
    }
    assert_eq!(
        constants.len(),
        names.len(),
        "overrides {names:?} vs constants {constants:?}"
    );
}

#[test]
fn fold_bn_every_dtype_combination_compiles() {
    // All 3⁵ dtype assignments × HAS_BN: 486 specialisations, a few ms each.
    let mut count = 0;
    for constants in fold_bn_constants() {
        assert_eq!(specialise(Kernel::FoldBn, &constants), ([256, 1, 1], 0));
        count += 1;
    }
    assert_eq!(count, 486);
    // The names the engine passes are the shader's overrides, and nothing else.
    let (module, _) = parse("fold_bn.wgsl");
    let mut names: Vec<&str> = module
        .overrides
        .iter()
        .filter_map(|(_, o)| o.name.as_deref())
        .collect();
    names.sort();
    let mut want: Vec<&str> = fold_constants(0, 0, 0, 0, 0, true)
        .iter()
        .map(|c| c.0)
        .collect();
    want.sort();
    assert_eq!(names, want);
}

#[test]
fn pool_and_linear_compile_in_every_specialisation() {
    // The max pool and the head take no constants; the average pools read the input plain
    // or pre-activated.
    let plain = [Kernel::MaxPool, Kernel::Linear].map(|k| (k, vec![]));
    let pools = [Kernel::AvgPool, Kernel::GlobalAvgPool]
        .into_iter()
        .flat_map(|k| [0.0, 1.0].map(|pre_act| (k, vec![("PRE_ACT", pre_act)])));
    for (kernel, constants) in plain.into_iter().chain(pools) {
        let (size, shared) = specialise(kernel, &constants);
        assert_eq!(size, [256, 1, 1], "{kernel:?} {constants:?}");
        assert!(
            shared <= 16 * 1024,
            "{kernel:?}: {shared} bytes of workgroup memory"
        );
    }
}

#[test]
fn unknown_constants_are_rejected() {
    // Guards the helper itself: a misspelt constant must not silently pass.
    let (module, info) = parse("conv.wgsl");
    let mut map = PipelineConstants::default();
    map.insert("TILE_Q".to_string(), 1.0);
    assert!(naga::back::pipeline_constants::process_overrides(
        &module,
        &info,
        Some((ShaderStage::Compute, "tiled")),
        &map
    )
    .is_err());
}

/// Every GEMM configuration the tuner may try, in every flag combination (residual, ReLU,
/// stride, pre-activation): specialised and emitted, with its workgroup size and memory.
#[test]
fn every_gemm_specialisation_compiles() {
    use resnet_wgpu::gpu::ops::conv::ConvAlgo;
    let all = gemm_specialisations();
    assert!(
        all.len() >= 16 * 20,
        "only {} GEMM specialisations",
        all.len()
    );
    for (c, kernel, constants) in &all {
        let (size, shared) = specialise(*kernel, constants);
        let (threads, budget) = match c.algo {
            ConvAlgo::Gemm => ([8, 8, 1], 0),
            _ => (
                [c.tiles.tile_n / 4, c.tiles.tile_m / 4, 1],
                c.tiles.workgroup_bytes(),
            ),
        };
        assert_eq!((size, shared), (threads, budget), "{c:?} {constants:?}");
    }
}

/// Every configuration `resnet tune` may try (both kernels, every tile size, split-K), on
/// shapes from a stem to a late grouped layer: specialised, validated, emitted as SPIR-V,
/// with the workgroup size and memory the plan budgets. The split-K sum in each epilogue too.
#[test]
fn every_tuning_candidate_compiles() {
    use resnet_wgpu::gpu::ops::conv::ConvAlgo;
    let candidates = tuning_candidates();
    for (c, _, kernel, constants) in &candidates {
        let (size, shared) = specialise(*kernel, constants);
        let threads = match c.algo {
            ConvAlgo::Gemm => [8, 8, 1],
            _ => [c.tiles.tile_n / 4, c.tiles.tile_m / 4, 1],
        };
        assert_eq!(size, threads, "{c:?}");
        let budget = match c.algo {
            ConvAlgo::Tiled | ConvAlgo::GemmTiled => c.tiles.workgroup_bytes(),
            ConvAlgo::Registers | ConvAlgo::Gemm | ConvAlgo::Winograd2 | ConvAlgo::Winograd4 => 0,
        };
        assert_eq!(shared, budget, "{c:?}: workgroup memory");
    }
    assert!(
        candidates.len() > 50,
        "only {} specialisations",
        candidates.len()
    );
    for constants in conv_reduce_constants() {
        let (size, shared) = specialise(Kernel::ConvReduce, &constants);
        assert_eq!((size, shared), ([256, 1, 1], 0));
    }
}

/// Every Winograd specialisation: validated, emitted as SPIR-V, no workgroup memory, and the
/// GEMM's workgroup the size its tiles say (the transforms run 64 threads).
#[test]
fn winograd_every_specialisation_compiles() {
    let all = winograd_specialisations();
    // 2 sides × 7 GEMM tiles (2 heuristic, 5 tuner) × 4 epilogues × 2 pre-activations × 3
    // kernels, and 2 weight transforms.
    assert_eq!(all.len(), 2 * 7 * 4 * 2 * 3 + 2);
    for (kernel, constants) in &all {
        let (size, shared) = specialise(*kernel, constants);
        assert_eq!(shared, 0, "{kernel:?} {constants:?}: workgroup memory");
        let value = |name: &str| {
            constants
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v as u32)
        };
        let want = match (kernel, value("TILE_M"), value("TILE_N")) {
            (Kernel::WinogradGemm, Some(tm), Some(tn)) => [tn / 4, tm / 4, 1],
            (Kernel::WinogradGemm, ..) => panic!("{constants:?}: GEMM without tiles"),
            _ => [64, 1, 1],
        };
        assert_eq!(size, want, "{kernel:?} {constants:?}: workgroup size");
    }
}
