//! Everything that touches wgpu: the device, the kernels, one file per op family, the plan
//! and the engine that runs it, tuning and profiling.
//!
//! Imports run one way: `context` ← `kernels` ← `ops` ← `plan` ← `engine` ← `tuning::search`,
//! `profile`; `limits`, `readback`, `step` and `timing` are leaves those share.

pub mod context;
pub mod disk_cache;
pub mod engine;
pub mod ensemble;
pub mod kernels;
pub mod limits;
pub mod ops;
pub mod pipeline_cache;
pub mod plan;
pub mod precision;
pub mod profile;
pub mod readback;
pub mod step;
pub mod timing;
pub mod tuning;
