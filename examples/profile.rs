//! Per-dispatch profile of a whole network with synthetic weights, summed by kernel:
//!
//!     cargo run --release --example profile -- resnet50d [size] [batch] [reps]
//!
//! Used to decide whether the ResNet-D shortcut's avg pool is worth fusing into its 1×1 conv
//! (it is not: see ARCHITECTURE.md). Timing: `Engine::profile`.

use std::collections::BTreeMap;

use resnet_wgpu::model::{arch, synthetic::synthetic_weights};
use resnet_wgpu::{Engine, GpuOptions};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args.first().map_or("resnet50d", String::as_str);
    let num =
        |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (size, batch, reps) = (num(1, 224), num(2, 1), num(3, 1) as u32);
    let a = arch::standard(name, 1000).unwrap_or_else(|| panic!("unknown architecture {name}"));
    let weights = synthetic_weights(&a, 0).unwrap();
    let engine = Engine::load(&weights, &GpuOptions::default()).unwrap();
    let steps = engine.profile(batch, size, size, reps).unwrap();
    let total: f64 = steps.iter().map(|s| s.seconds).sum();
    println!(
        "{} on {}, batch {batch} at {size}×{size}: {:.1} ms in {} dispatches",
        a.describe(),
        engine.ctx.info.name,
        total * 1e3,
        steps.len()
    );
    let mut by_kind: BTreeMap<String, (usize, f64, u64)> = BTreeMap::new();
    for s in &steps {
        // Group by kernel and shape class: "conv 3x3", "avg pool", …
        let kind = s.config.split(" tile").next().unwrap_or(&s.config);
        let kind = kind.replace(" +res", "").replace(" relu", "");
        let e = by_kind.entry(kind).or_default();
        e.0 += 1;
        e.1 += s.seconds;
        e.2 += s.flops;
    }
    for (kind, (count, seconds, flops)) in by_kind {
        println!(
            "{kind:<36} {count:>3}× {:>9.2} ms {:>6.2}% {:>8.2} GFLOP/s",
            seconds * 1e3,
            100.0 * seconds / total,
            flops as f64 / seconds / 1e9
        );
    }
    for s in steps.iter().filter(|s| s.name.contains("downsample")) {
        println!("  {:<28} {:>9.3} ms  {}", s.name, s.seconds * 1e3, s.config);
    }
}
