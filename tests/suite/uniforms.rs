//! Every uniform struct the engine writes, checked against the WGSL `Params` struct it is
//! bound as, by naga reflection (CPU only): the same members in the same order at the same
//! byte offsets, and the Rust size the WGSL size rounded up to 16 bytes. A field added on one
//! side only, or reordered, fails here rather than as wrong numbers on a GPU.

use naga::{AddressSpace, Module, TypeInner};
use resnet_wgpu::gpu::kernels::{UniformLayout, SHADER_FILES};
use resnet_wgpu::gpu::ops::UNIFORMS;

fn module(file: &str) -> Module {
    let source = SHADER_FILES
        .iter()
        .find(|(f, _)| *f == file)
        .unwrap_or_else(|| panic!("{file} not in SHADER_FILES"))
        .1;
    naga::front::wgsl::parse_str(source).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// `(member, offset)` of the struct `file` binds as its uniform, and the struct's size.
fn wgsl_uniform(file: &str) -> (Vec<(String, u32)>, u32) {
    let module = module(file);
    let uniforms: Vec<_> = module
        .global_variables
        .iter()
        .filter(|(_, v)| v.space == AddressSpace::Uniform)
        .collect();
    assert_eq!(uniforms.len(), 1, "{file}: one uniform binding expected");
    let ty = &module.types[uniforms[0].1.ty];
    let TypeInner::Struct { members, span } = &ty.inner else {
        panic!("{file}: the uniform is not a struct");
    };
    let fields = members
        .iter()
        .map(|m| (m.name.clone().unwrap_or_default(), m.offset))
        .collect();
    (fields, *span)
}

fn rust_fields(u: &UniformLayout) -> Vec<(String, u32)> {
    u.fields
        .iter()
        .map(|&(name, offset)| (name.to_string(), offset as u32))
        .collect()
}

#[test]
fn uniform_structs_match_their_wgsl_params() {
    for u in UNIFORMS {
        let (wgsl, span) = wgsl_uniform(u.file);
        assert_eq!(
            rust_fields(&u),
            wgsl,
            "{}: (field, offset) differ from the uniform struct of {}",
            u.name,
            u.file
        );
        assert_eq!(
            u.size,
            span.next_multiple_of(16) as usize,
            "{}: {} bytes, {}'s struct is {span}",
            u.name,
            u.size,
            u.file
        );
    }
}

#[test]
fn every_shader_uniform_has_a_rust_struct() {
    for (file, _) in SHADER_FILES {
        let has_uniform = module(file)
            .global_variables
            .iter()
            .any(|(_, v)| v.space == AddressSpace::Uniform);
        let listed = UNIFORMS.iter().filter(|u| u.file == file).count();
        assert_eq!(
            listed,
            usize::from(has_uniform),
            "{file}: {listed} Rust uniform structs listed for it"
        );
    }
}

/// Guards the test itself: a layout with a field at the wrong offset must not pass.
#[test]
fn a_wrong_offset_is_caught() {
    let u = UNIFORMS[0];
    let (wgsl, _) = wgsl_uniform(u.file);
    let mut fields = rust_fields(&u);
    fields.swap(0, 1);
    assert_ne!(fields, wgsl);
}
