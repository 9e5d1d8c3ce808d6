//! resnet-wgpu: the ResNet family on any GPU through WebGPU, matching PyTorch.
//!
//! Pipeline: safetensors ([`weights`]) → architecture and graph ([`model`], [`graph`]) →
//! static plan ([`graph::plan`]) → ops, plan and engine on the device ([`gpu`]) running the WGSL
//! kernels in `shaders/`. [`reference`] is the plain CPU implementation every kernel is tested against.

pub mod error;
pub mod fsutil;
pub mod gpu;
pub mod graph;
pub mod imagenet;
pub mod kinetics;
pub mod metadata;
pub mod model;
pub mod npy;
mod platform;
pub mod preprocess;
pub mod reference;
pub mod scores;
pub mod video;
pub mod weights;

pub use error::{Error, Result};
pub use gpu::context::{AdapterChoice, GpuContext, GpuOptions};
pub use gpu::engine::{Engine, Output};
pub use gpu::precision::Precision;
pub use gpu::tuning::{TuneOptions, TuneReport};
pub use model::{Model, Network};
pub use weights::WeightsFile;
