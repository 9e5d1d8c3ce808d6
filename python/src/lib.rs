//! `resnet_wgpu` for Python: the ResNet family on any GPU through WebGPU, matching PyTorch.
//! NumPy arrays and images in, NumPy arrays and the CLI's JSON out.

mod arrays;
mod engine;
mod ensemble;
mod errors;
mod images;
mod video;

use pyo3::prelude::*;

/// ResNet inference on any GPU through WebGPU (wgpu), matching PyTorch.
///
/// >>> import resnet_wgpu
/// >>> engine = resnet_wgpu.Engine()                 # the embedded default model
/// >>> engine.classify(["digit.png"], top_k=3)       # as `resnet classify --json`
/// >>> engine.run(x)                                 # (N, 3, H, W) -> (N, classes) logits
#[pymodule]
fn resnet_wgpu(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<engine::PyEngine>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
