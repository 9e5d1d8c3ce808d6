//! The pipelines a plan needs, known before its steps are built so that they are created
//! together, in parallel; and what creating them cost, logged for `-v`.

use std::time::Instant;

use super::{Engine, GpuPlan};
use crate::error::Result;
use crate::gpu::conv_config::{ConvConfig, ConvProblem, DeviceFit};
use crate::gpu::kernels::{CompileStats, Kernel, Kernels};
use crate::graph::Op;

impl Engine {
    /// [`Engine::build_plan`], then what compiling its pipelines cost in the log (`-v`) and
    /// the pipeline cache on disk if anything new was compiled.
    pub(super) fn build_plan_and_cache(&self, n: usize, h: usize, w: usize) -> Result<GpuPlan> {
        let (start, before) = (Instant::now(), self.kernels.compile_stats());
        let plan = self.build_plan(n, h, w)?;
        let what = format!("plan {n}x{h}x{w} built");
        log_compiles(&what, start, &self.kernels, before);
        self.kernels.save_pipeline_cache();
        Ok(plan)
    }

    /// Creates every pipeline a plan will use (its convs' choices in `convs`, per node), together (see
    /// `Kernels::create_pipelines`), instead of one by one as its steps are built.
    pub(super) fn create_pipelines(
        &self,
        convs: &[Option<(ConvProblem, ConvConfig)>],
    ) -> Result<()> {
        let ctx = &self.ctx;
        ctx.check()?;
        let fit = DeviceFit::of(&ctx.limits);
        let mut requests = Vec::new();
        for (node, conv) in self.graph.nodes.iter().zip(convs) {
            match (&node.op, conv) {
                (Op::Conv(_), Some((p, config))) => {
                    // A configuration that cannot run is left to `conv_steps`, which says why.
                    if config.check(p, &fit).is_ok() {
                        requests.extend(config.pipelines(p));
                    }
                }
                (Op::Conv(_), None) => {}
                (Op::MaxPool { .. }, _) => requests.push((Kernel::MaxPool, vec![])),
                (Op::AvgPool { .. }, _) => requests.push((Kernel::AvgPool, vec![])),
                (Op::GlobalAvgPool, _) => requests.push((Kernel::GlobalAvgPool, vec![])),
                (Op::Linear { .. }, _) => requests.push((Kernel::Linear, vec![])),
            }
        }
        self.kernels.create_pipelines(&ctx.device, &requests)
    }
}

/// Logs how long a load step took and what of it went into compiling pipelines: the part
/// of a cold start that caches and parallel compilation address.
pub(super) fn log_compiles(what: &str, start: Instant, kernels: &Kernels, before: CompileStats) {
    let now = kernels.compile_stats();
    log::info!(
        "{what} in {:.1} ms; {} pipelines compiled, {:.1} ms in creation calls",
        start.elapsed().as_secs_f64() * 1e3,
        now.pipelines - before.pipelines,
        (now.time - before.time).as_secs_f64() * 1e3
    );
}
