//! `resnet tune`: per distinct conv shape of a network, the fastest configuration that
//! matches the CPU reference, and the cache that keeps it per adapter.
//!
//! `space`: the configurations a conv can run under (candidates, one-step neighbours,
//! split-K variants). `search`: the timed local search (or `--exhaustive` sweep) over them.
//! `cache`: `tune.json`, read by the engine at load.

use serde::Serialize;

use super::ops::conv::ConvConfig;
use super::timing::TimingMethod;

pub mod cache;
pub mod search;
pub mod space;

#[derive(Clone, Copy, Debug)]
pub struct TuneOptions {
    /// Untimed runs before the timed ones (at least 3).
    pub warmup: usize,
    /// Timed runs whose median counts (at least 5).
    pub iters: usize,
    /// Time every tile configuration (and split-K of the best tiled ones) instead of the
    /// local search from the heuristic choices.
    pub exhaustive: bool,
}

impl Default for TuneOptions {
    fn default() -> Self {
        TuneOptions {
            warmup: 3,
            iters: 5,
            exhaustive: false,
        }
    }
}

/// The outcome for one distinct conv shape.
#[derive(Clone, Debug, Serialize)]
pub struct ShapeTuning {
    /// [`crate::graph::problem::ConvProblem::key`]
    pub key: String,
    /// The network's convs of this shape.
    pub nodes: Vec<String>,
    pub gflop: f64,
    pub default: ConvConfig,
    pub default_ms: f64,
    pub best: ConvConfig,
    pub best_ms: f64,
    /// Configurations timed (screened or measured).
    pub tried: usize,
    /// The winner's error against the CPU reference on sampled pixels.
    pub verify_error: f64,
    /// Fast configurations whose output did not match the reference (kernel bugs).
    pub rejected: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TuneReport {
    pub adapter: String,
    pub method: TimingMethod,
    pub batch: usize,
    /// Frames per clip (1 for images).
    pub frames: usize,
    pub height: usize,
    pub width: usize,
    pub shapes: Vec<ShapeTuning>,
}

impl TuneReport {
    /// GPU ms of all convs under the defaults and under the tuned choices (each shape
    /// counted once per conv of that shape).
    pub fn totals(&self) -> (f64, f64) {
        self.shapes.iter().fold((0.0, 0.0), |(d, b), s| {
            let n = s.nodes.len() as f64;
            (d + n * s.default_ms, b + n * s.best_ms)
        })
    }
}
