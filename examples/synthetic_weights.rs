//! Writes synthetic weights for a standard architecture to a safetensors file, so that any
//! build — an older commit's `resnet bench --weights FILE` included — can run exactly the same
//! network (BENCHMARKS.md compares builds this way).
//!
//!     cargo run --release --example synthetic_weights -- resnext50_32x4d out.safetensors [classes]
//!
//! Names: [`resnet_wgpu::model::arch::standard`] (`resnet50`, `resnext50_32x4d`,
//! `wide_resnet50_2`, `seresnet50`, timm suffixes …), torchvision layout, seed 0.

use resnet_wgpu::model::arch::standard;
use resnet_wgpu::model::synthetic::synthetic_weights;
use resnet_wgpu::weights::serialize_f32;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [name, out, rest @ ..] = args.as_slice() else {
        return Err("usage: synthetic_weights NAME OUT.safetensors [CLASSES]".into());
    };
    let classes = rest.first().map_or(Ok(1000), |c| c.parse())?;
    let arch = standard(name, classes).ok_or_else(|| format!("unknown architecture {name}"))?;
    let file = synthetic_weights(&arch, 0)?;
    let tensors: Vec<_> = file
        .tensors
        .iter()
        .map(|(n, t)| {
            let values = file.to_f32(n).expect("synthetic tensors are f32");
            (n.clone(), t.shape.clone(), values)
        })
        .collect();
    std::fs::write(out, serialize_f32(&tensors, None)?)?;
    println!("{out}: {name}, {} tensors", tensors.len());
    Ok(())
}
