//! Pipelines of a load and of a plan: what compiling them cost, logged for `-v`.

use std::time::Instant;

use crate::gpu::kernels::{CompileStats, Kernels};

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
