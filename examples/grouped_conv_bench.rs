//! Grouped (ResNeXt) conv vs the dense 3×3 conv on the same FLOPs, in GFLOP/s.
//!
//! For each 3×3 conv of ResNeXt-50 32x4d at 224×224 (C → C in 32 groups), the dense
//! comparison is a 3×3 conv with the same GEMM sizes: M = N·H·W output pixels, N = C output
//! channels and K = 9·C/32 — i.e. C/32 input channels — so both do exactly the same
//! multiply-adds. ResNet-50's own (dense, C/2 → C/2) 3×3 is listed for context.
//!
//!     cargo run --release --example grouped_conv_bench -- [batch] [reps] [rounds]
//!
//! Timing: `Engine::profile` (GPU timestamps per dispatch, median of `reps` runs),
//! the three kernels of a layer interleaved for `rounds` rounds, best time of each.

use std::sync::Arc;

use resnet_wgpu::gpu::profile::LayerProfile;
use resnet_wgpu::graph::{Conv, Graph, Op, Window};
use resnet_wgpu::weights::serialize_f32;
use resnet_wgpu::{Engine, GpuContext, GpuOptions, WeightsFile};

/// A one-conv engine over `cin` channels with random weights.
fn conv_engine(ctx: &Arc<GpuContext>, cin: usize, cout: usize, groups: usize) -> Engine {
    let mut g = Graph {
        input_channels: cin,
        ..Graph::default()
    };
    g.input = g.new_value();
    let op = Op::Conv(Conv {
        weight: "c.weight".into(),
        bn: "c.bn".into(),
        in_channels: cin,
        out_channels: cout,
        groups,
        kernel: 3,
        stride: 1,
        pad: 1,
        temporal: Window::POINT,
        relu: true,
        input_nchw: false,
    });
    g.output = g.push("conv", op, vec![g.input]);
    g.features = g.output;
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut rand = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 40) as f32 / (1u64 << 24) as f32 + 0.5
            })
            .collect()
    };
    let mut t = vec![(
        "c.weight".to_string(),
        vec![cout, cin / groups, 3, 3],
        rand(cout * cin / groups * 9),
    )];
    for p in ["weight", "bias", "running_mean", "running_var"] {
        t.push((format!("c.bn.{p}"), vec![cout], rand(cout)));
    }
    let w = WeightsFile::from_bytes("bench", serialize_f32(&t, None).unwrap()).unwrap();
    Engine::from_graph(ctx.clone(), g, &w).unwrap()
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let batch = args.first().copied().unwrap_or(1);
    let reps = args.get(1).copied().unwrap_or(5) as u32;
    let rounds = args.get(2).copied().unwrap_or(3);
    let ctx = Arc::new(GpuContext::new(&GpuOptions::default()).expect("adapter"));
    println!(
        "adapter: {}; batch {batch}, {reps} reps per kernel, best of {rounds} rounds",
        ctx.info
    );
    println!(
        "{:<34} {:>9} {:>10} {:>11} {:>8}",
        "layer (input HxW, C_in → C_out)", "MFLOP", "ms", "GFLOP/s", "config"
    );
    let mut ratios = Vec::new();
    for (hw, c) in [(56, 128), (28, 256), (14, 512), (7, 1024)] {
        let engines = [
            (
                format!("grouped {hw}², {c} → {c} /32"),
                conv_engine(&ctx, c, c, 32),
            ),
            (
                format!("dense   {hw}², {} → {c}", c / 32),
                conv_engine(&ctx, c / 32, c, 1),
            ),
            (
                format!("dense   {hw}², {} → {} (ResNet-50)", c / 2, c / 2),
                conv_engine(&ctx, c / 2, c / 2, 1),
            ),
        ];
        // Interleaved rounds, best of each: robust against other load on the machine.
        let mut best: Vec<Option<LayerProfile>> = vec![None; engines.len()];
        for _ in 0..rounds {
            for (i, (_, e)) in engines.iter().enumerate() {
                let cin = e.graph.input_channels;
                let x = vec![0.5f32; batch * hw * hw * cin];
                let t = e
                    .profile(&x, batch, hw, hw, 1, reps as usize)
                    .unwrap()
                    .layers
                    .remove(0);
                if best[i].as_ref().is_none_or(|b| t.gpu_ms < b.gpu_ms) {
                    best[i] = Some(t);
                }
            }
        }
        for ((label, _), t) in engines.iter().zip(best.iter().flatten()) {
            println!(
                "{label:<34} {:>9.1} {:>10.3} {:>11.2}   {}",
                t.gflop * 1e3,
                t.gpu_ms,
                t.gflops,
                t.config
            );
        }
        let rate = |i: usize| best[i].as_ref().map_or(0.0, |t| t.gflops);
        ratios.push(rate(1) / rate(0));
    }
    println!(
        "dense/grouped GFLOP/s on the same FLOPs: {}",
        ratios
            .iter()
            .map(|r| format!("{r:.2}×"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
