//! `resnet profile`: per-dispatch GPU time of a whole plan (see `timing` for the methods),
//! with FLOP and byte rates per layer, and the end-to-end wall time of a normal inference.

use std::time::Instant;

use super::engine::{Engine, Output};
use super::timing::time_dispatches;
pub use super::timing::{median, TimingMethod};
use crate::error::{Error, Result};
use crate::graph::{InputSize, Shape};

/// One row of a profile.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerProfile {
    pub name: String,
    pub kernel: String,
    pub config: String,
    /// `[n, h, w, c]`, or `[n, t, h, w, c]` for layers over clips.
    pub output_shape: Vec<usize>,
    pub gflop: f64,
    pub bytes: u64,
    pub gpu_ms: f64,
    pub gflops: f64,
    pub gbps: f64,
}

/// A whole-network profile: per-dispatch medians over `iters` timed runs, plus the median
/// end-to-end wall time of a normal inference.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Profile {
    pub adapter: String,
    pub method: TimingMethod,
    pub batch: usize,
    /// Frames per clip (1 for images).
    pub frames: usize,
    pub height: usize,
    pub width: usize,
    pub layers: Vec<LayerProfile>,
    pub total_gpu_ms: f64,
    pub wall_ms: f64,
}

impl Engine {
    /// Profiles the plan for `size` on `input`: `warmup` untimed runs, then `iters` timed.
    pub fn profile(
        &self,
        input: &[f32],
        size: InputSize,
        warmup: usize,
        iters: usize,
    ) -> Result<Profile> {
        for _ in 0..warmup.max(1) {
            self.run_at(input, size, Output::Logits)?;
        }
        let mut wall = Vec::new();
        let mut per_step: Vec<Vec<f64>> = Vec::new();
        let mut method = TimingMethod::WallClock;
        let plan = self.plan(size)?;
        for _ in 0..iters.max(1) {
            let t = Instant::now();
            self.run_at(input, size, Output::Logits)?;
            wall.push(t.elapsed().as_secs_f64() * 1e3);
            let guard = plan
                .lock()
                .map_err(|_| Error::Gpu("plan lock poisoned".into()))?;
            let times = time_dispatches(&self.ctx, &guard.steps)?;
            method = times.method;
            per_step.resize(times.ms.len(), Vec::new());
            for (acc, t) in per_step.iter_mut().zip(times.ms) {
                acc.push(t);
            }
        }
        let guard = plan
            .lock()
            .map_err(|_| Error::Gpu("plan lock poisoned".into()))?;
        let layers: Vec<LayerProfile> = guard
            .steps
            .iter()
            .zip(per_step.iter_mut())
            .map(|(s, times)| {
                let ms = median(times);
                let secs = (ms / 1e3).max(1e-12);
                LayerProfile {
                    name: s.name.clone(),
                    kernel: s.kernel.name.to_string(),
                    config: s.config.clone(),
                    output_shape: dims(s.output_shape),
                    gflop: s.flops as f64 / 1e9,
                    bytes: s.bytes,
                    gpu_ms: ms,
                    gflops: s.flops as f64 / 1e9 / secs,
                    gbps: s.bytes as f64 / 1e9 / secs,
                }
            })
            .collect();
        Ok(Profile {
            adapter: self.ctx.info.to_string(),
            method,
            batch: size.n,
            frames: size.t,
            height: size.h,
            width: size.w,
            total_gpu_ms: layers.iter().map(|l| l.gpu_ms).sum(),
            layers,
            wall_ms: median(&mut wall),
        })
    }
}

/// A layer's output dims as reported: frames only where there are several.
fn dims(s: Shape) -> Vec<usize> {
    match s.t {
        1 => vec![s.n, s.h, s.w, s.c],
        t => vec![s.n, t, s.h, s.w, s.c],
    }
}
