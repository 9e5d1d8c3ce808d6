//! One dispatch of a plan, as the ops build it and the engine, the tuner and the profiler
//! record it.

use std::sync::Arc;

use super::kernels::KernelSpec;
use crate::graph::Shape;

/// One dispatch: a pipeline, its bind group and its workgroup counts, with what profiles
/// report about it.
pub struct Step {
    pub name: String,
    pub kernel: KernelSpec,
    /// Human description of the specialisation (`conv 3x3/s2 tiled 64x64x16`).
    pub config: String,
    pub output_shape: Shape,
    pub flops: u64,
    /// Bytes the dispatch reads and writes (activations, weights, residual), for GB/s.
    pub bytes: u64,
    pub(crate) pipeline: Arc<wgpu::ComputePipeline>,
    pub(crate) bind_group: wgpu::BindGroup,
    pub(crate) workgroups: [u32; 3],
    // The step's uniform, alive as long as its bind group.
    pub(crate) _uniform: wgpu::Buffer,
}

impl Step {
    /// Records this dispatch into `pass`.
    pub(crate) fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }
}
