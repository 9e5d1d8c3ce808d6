//! The integration tests as one binary: each file is a module (`cargo test --test suite
//! kernels::` runs one of them). One binary links the library and wgpu once instead of once
//! per file, opens each shared device once (see `common`), and lets the harness keep both
//! test threads busy across files.

mod cli;
mod cli_tools;
mod cli_video;
mod common;
mod default_model;
mod end_to_end;
mod ensemble;
mod ensemble_tools;
mod family;
mod full_width;
mod gl_backend;
mod gpu_errors;
mod kernels;
mod kernels_family;
mod kernels_gemm;
mod kernels_preact;
mod kernels_winograd;
mod pipeline_cache;
mod preact;
mod precision;
mod robust_cli;
mod robust_inputs;
mod robust_weights;
mod se;
mod shaders;
mod shaders_family;
mod sub_batch;
mod threads;
mod translations;
mod tuning;
mod uniforms;
mod video;
mod video_gpu;
mod video_graph;
mod webgpu_limits;
