//! The backends we cannot run here, on the CPU alone: every shader specialisation the planner
//! can produce (`common::specialisations`) written by naga for each native back end wgpu has —
//! MSL (Metal), HLSL (DX12), SPIR-V (Vulkan) and GLSL (GL) — at the oldest language version
//! wgpu targets, so a construct one back end cannot express fails here rather than on a
//! user's Mac or Windows machine.

use crate::common::specialisations::{every_specialisation, specialised, spirv};
use naga::back::{glsl, hlsl, msl};
use naga::valid::ModuleInfo;
use naga::{Module, ShaderStage};
use resnet_wgpu::gpu::ops::Kernel;

/// Metal Shading Language 2.0 (macOS 10.13), the oldest wgpu's Metal back end needs for
/// compute.
fn to_msl(kernel: Kernel, module: &Module, info: &ModuleInfo) -> Result<String, String> {
    let options = msl::Options {
        lang_version: (2, 0),
        ..Default::default()
    };
    let pipeline = msl::PipelineOptions {
        entry_point: Some((ShaderStage::Compute, kernel.entry().to_string())),
        ..Default::default()
    };
    msl::write_string(module, info, &options, &pipeline)
        .map(|(text, _)| text)
        .map_err(|e| format!("{e:?}"))
}

/// HLSL shader model 5.1, the lowest wgpu's DX12 back end compiles for (FXC).
fn to_hlsl(kernel: Kernel, module: &Module, info: &ModuleInfo) -> Result<String, String> {
    let options = hlsl::Options {
        shader_model: hlsl::ShaderModel::V5_1,
        ..Default::default()
    };
    let pipeline = hlsl::PipelineOptions {
        entry_point: Some((ShaderStage::Compute, kernel.entry().to_string())),
    };
    let mut text = String::new();
    hlsl::Writer::new(&mut text, &options, &pipeline)
        .write(module, info, None)
        .map_err(|e| format!("{e:?}"))?;
    Ok(text)
}

/// GLSL at `version`: wgpu's GL back end writes `310 es` on OpenGL ES 3.1 and the context's
/// own version (`430` is the first with compute shaders) on desktop OpenGL.
fn to_glsl(
    kernel: Kernel,
    module: &Module,
    info: &ModuleInfo,
    version: glsl::Version,
) -> Result<String, String> {
    let options = glsl::Options {
        version,
        ..Default::default()
    };
    let pipeline = glsl::PipelineOptions {
        shader_stage: ShaderStage::Compute,
        entry_point: kernel.entry().to_string(),
        multiview: None,
    };
    let mut text = String::new();
    glsl::Writer::new(
        &mut text,
        module,
        info,
        &options,
        &pipeline,
        naga::proc::BoundsCheckPolicies::default(),
    )
    .and_then(|mut w| w.write())
    .map_err(|e| format!("{e:?}"))?;
    Ok(text)
}

const GLSL_VERSIONS: [glsl::Version; 2] = [
    glsl::Version::Embedded {
        version: 310,
        is_webgl: false,
    },
    glsl::Version::Desktop(430),
];

/// Each back end's text for one specialisation, or the first error, named.
fn translate(kernel: Kernel, module: &Module, info: &ModuleInfo) -> Result<Vec<String>, String> {
    let mut out = vec![
        to_msl(kernel, module, info).map_err(|e| format!("MSL: {e}"))?,
        to_hlsl(kernel, module, info).map_err(|e| format!("HLSL: {e}"))?,
    ];
    for version in GLSL_VERSIONS {
        out.push(
            to_glsl(kernel, module, info, version).map_err(|e| format!("GLSL {version:?}: {e}"))?,
        );
    }
    let words = spirv(kernel, module, info).map_err(|e| format!("SPIR-V: {e:?}"))?;
    if words.first() != Some(&0x0723_0203) {
        return Err("SPIR-V: no magic number".into());
    }
    Ok(out)
}

#[test]
fn every_specialisation_translates_for_every_backend() {
    let all = every_specialisation();
    let mut failures = Vec::new();
    let mut per_kernel = std::collections::BTreeMap::new();
    for (kernel, constants) in &all {
        let (module, info) = specialised(*kernel, constants);
        match translate(*kernel, &module, &info) {
            Ok(texts) => {
                // Each text defines the entry point wgpu will ask its compiler for (MSL and
                // HLSL keep the name; GLSL's entry point is always `main`).
                assert!(texts[0].contains(kernel.entry()), "{kernel:?}: MSL");
                assert!(texts[1].contains(kernel.entry()), "{kernel:?}: HLSL");
                assert!(
                    texts[2..].iter().all(|t| t.contains("void main(")),
                    "{kernel:?}: GLSL"
                );
            }
            Err(e) => failures.push(format!("{kernel:?} {constants:?}: {e}")),
        }
        *per_kernel.entry(*kernel).or_insert(0) += 1;
    }
    eprintln!(
        "{} specialisations translated to MSL, HLSL, GLSL ×2 and SPIR-V: {per_kernel:?}",
        all.len()
    );
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Every kernel is among them, and the conv kernels in many configurations.
    for kernel in Kernel::ALL {
        assert!(
            per_kernel.contains_key(&kernel),
            "{kernel:?} never translated"
        );
    }
    assert!(per_kernel[&Kernel::ConvTiled] > 100, "{per_kernel:?}");
    assert_eq!(per_kernel[&Kernel::FoldBn], 486, "{per_kernel:?}");
}

/// Guards the test itself: a construct a back end rejects must fail the translation (GLSL
/// ES 3.00 has no compute shaders).
#[test]
fn an_unsupported_target_is_an_error() {
    let (module, info) = specialised(Kernel::MaxPool, &vec![]);
    let es300 = glsl::Version::Embedded {
        version: 300,
        is_webgl: false,
    };
    assert!(to_glsl(Kernel::MaxPool, &module, &info, es300).is_err());
    assert!(translate(Kernel::MaxPool, &module, &info).is_ok());
}
