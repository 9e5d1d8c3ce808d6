//! Per-dispatch timing of a plan, for benchmarks and tuning: each step runs `reps` times in
//! one compute pass of its own command buffer, so the time per run is the kernel's, with the
//! submission overhead amortised. Inference itself never goes through here.

use std::time::Instant;

use super::executor::Engine;
use crate::error::{Error, Result};

/// One step's measured time.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepTiming {
    pub name: String,
    pub config: String,
    pub flops: u64,
    /// Wall-clock seconds per dispatch.
    pub seconds: f64,
}

impl StepTiming {
    pub fn gflops_per_second(&self) -> f64 {
        self.flops as f64 / self.seconds / 1e9
    }
}

impl Engine {
    /// Times every dispatch of the plan for `(n, h, w)` (built on first use) after one
    /// warm-up run of the whole plan. The activations hold whatever the last run left, which
    /// does not change the work a kernel does.
    pub fn profile(&self, n: usize, h: usize, w: usize, reps: u32) -> Result<Vec<StepTiming>> {
        let plan = self.plan(n, h, w)?;
        let plan = plan
            .lock()
            .map_err(|_| Error::Gpu("plan lock poisoned by an earlier panic".into()))?;
        let ctx = &self.ctx;
        let time = |steps: &[&super::executor::Step], reps: u32| -> Result<f64> {
            let mut encoder = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("profile"),
                });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("profile"),
                    timestamp_writes: None,
                });
                for _ in 0..reps {
                    for step in steps {
                        pass.set_pipeline(&step.pipeline);
                        pass.set_bind_group(0, &step.bind_group, &[]);
                        let [x, y, z] = step.workgroups;
                        pass.dispatch_workgroups(x, y, z);
                    }
                }
            }
            let t = Instant::now();
            ctx.queue.submit([encoder.finish()]);
            ctx.wait_idle()?;
            Ok(t.elapsed().as_secs_f64())
        };
        let all: Vec<_> = plan.steps.iter().collect();
        time(&all, 1)?;
        plan.steps
            .iter()
            .map(|step| {
                Ok(StepTiming {
                    name: step.name.clone(),
                    config: step.config.clone(),
                    flops: step.flops,
                    seconds: time(&[step], reps.max(1))? / reps.max(1) as f64,
                })
            })
            .collect()
    }
}
