//! Conv kernel throughput against the dense 2-D conv on the same FLOPs, in GFLOP/s.
//!
//!     cargo run --release --example conv_bench -- grouped [batch] [reps] [rounds]
//!     cargo run --release --example conv_bench -- video   [frames] [reps] [rounds]
//!     cargo run --release --example conv_bench -- winograd [batch] [reps] [rounds]
//!
//! `grouped`: each 3×3 conv of ResNeXt-50 32x4d at 224×224 (C → C in 32 groups) against a
//! dense 3×3 conv with the same GEMM sizes: M = N·H·W output pixels, N = C output channels and
//! K = 9·C/32 — i.e. C/32 input channels — so both do exactly the same multiply-adds.
//! ResNet-50's own (dense, C/2 → C/2) 3×3 is listed for context.
//!
//! `video`: each 3×3×3 conv of r3d_18 (C → C over `frames` frames, padding 1 in time and
//! space) against the 2-D 3×3 conv of the same GEMM: the frames as a batch of images
//! (M = T·H·W), N = C and K = 27·C — i.e. 3·C input channels.
//!
//!     cargo run --release --example conv_bench -- gemm    [batch] [reps] [rounds]
//!
//! `gemm`: each 1×1 conv shape of ResNet-50 (stride 1) on the register-only conv kernel
//! (`registers`, the CPU adapters' default before the GEMM kernels) against `gemm` with each
//! register block, and the same GEMM sizes without the epilogue (no BatchNorm bias, no ReLU:
//! a plain SGEMM, the ceiling of the kernel).
//!
//! `winograd`: ResNet's stride-1 3×3 convs (56²×64, 28²×128, 14²×256, 7²×512, C → C: the
//! same in ResNet-18/34 and in ResNet-50's bottlenecks) on the direct default (Winograd off),
//! F(2×2, 3×3) and F(4×4, 3×3): the whole conv's GPU time (all its dispatches), alternating
//! the three each round, medians; and each one's relative error against the CPU f64
//! reference, with He-initialised weights, a folded BatchNorm and post-ReLU inputs.
//!
//! Timing: `Engine::profile` (GPU timestamps per dispatch, median of `reps` runs), the kernels
//! of a layer interleaved for `rounds` rounds, the median round of each (and the best).

use std::sync::Arc;

use resnet_wgpu::gpu::context::WinogradChoice;
use resnet_wgpu::gpu::ops::conv::gemm::gemm_tiles;
use resnet_wgpu::gpu::ops::conv::{ConvAlgo, ConvConfig, ConvTiles};
use resnet_wgpu::gpu::profile::LayerProfile;
use resnet_wgpu::graph::{Conv, Graph, InputSize, Op, Window};
use resnet_wgpu::reference::{relative_error, run_graph};
use resnet_wgpu::weights::serialize_f32;
use resnet_wgpu::{Engine, GpuContext, GpuOptions, Output, WeightsFile};

/// A one-conv engine running `conv` (3×3, "same" padding) with random weights.
fn conv_engine(ctx: &Arc<GpuContext>, conv: Conv) -> Engine {
    let (g, w) = conv_network(conv, false);
    Engine::from_graph(ctx.clone(), g, &w).unwrap()
}

/// The one-conv graph of `conv` and its weights: uniform in [0.5, 1.5), or with `realistic`,
/// He-initialised weights (uniform, variance 2/fan-in) and a BatchNorm of typical ranges.
fn conv_network(conv: Conv, realistic: bool) -> (Graph, WeightsFile) {
    let mut g = Graph {
        input_channels: conv.in_channels,
        ..Graph::default()
    };
    g.input = g.new_value();
    let (cout, cin, kt) = (
        conv.out_channels,
        conv.group_in_channels(),
        conv.temporal.kernel,
    );
    let k = conv.kernel;
    let dims = match conv.temporal.is_point() {
        true => vec![cout, cin, k, k],
        false => vec![cout, cin, kt, k, k],
    };
    let bn = conv.bn.clone();
    g.output = g.push("conv", Op::Conv(conv), vec![g.input]);
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
    let numel: usize = dims.iter().product();
    let fan_in = (numel / cout) as f32;
    let he = (6.0 / fan_in).sqrt();
    let mut t = vec![("c.weight".to_string(), dims, rand(numel))];
    // (scale, offset) of each BatchNorm tensor from [0.5, 1.5).
    let bn_ranges = [(1.0, 0.0), (0.4, -0.4), (0.2, -0.2), (1.0, 0.0)];
    if realistic {
        t[0].2.iter_mut().for_each(|v| *v = (*v - 1.0) * 2.0 * he);
    }
    let params = ["weight", "bias", "running_mean", "running_var"];
    for (p, (scale, offset)) in params.into_iter().zip(bn_ranges) {
        if bn.is_empty() {
            break;
        }
        let mut v = rand(cout);
        if realistic {
            v.iter_mut().for_each(|v| *v = *v * scale + offset);
        }
        t.push((format!("c.bn.{p}"), vec![cout], v));
    }
    let w = WeightsFile::from_bytes("bench", serialize_f32(&t, None).unwrap()).unwrap();
    (g, w)
}

/// A 3×3 conv, stride 1, padding 1, with `temporal` over frames.
fn conv3x3(cin: usize, cout: usize, groups: usize, temporal: Window) -> Conv {
    Conv {
        weight: "c.weight".into(),
        bn: "c.bn".into(),
        in_channels: cin,
        out_channels: cout,
        groups,
        kernel: 3,
        stride: 1,
        pad: 1,
        temporal,
        relu: true,
        input_nchw: false,
        pre_act: None,
    }
}

/// A 1×1 conv, stride 1, with BatchNorm and ReLU, or (`plain`) neither: a bare GEMM.
fn conv1x1(cin: usize, cout: usize, plain: bool) -> Conv {
    Conv {
        kernel: 1,
        pad: 0,
        relu: !plain,
        bn: if plain { String::new() } else { "c.bn".into() },
        ..conv3x3(cin, cout, 1, Window::POINT)
    }
}

/// `engine` with every conv on `config` (through the tuning table, as a tuned plan would).
fn forced(engine: Engine, size: InputSize, config: ConvConfig) -> Engine {
    let table = engine
        .conv_problems(size)
        .unwrap()
        .into_iter()
        .map(|(_, p)| (p.key(), config))
        .collect();
    engine.set_conv_configs(table).unwrap();
    engine
}

/// ResNet-50's 1×1 shapes: `registers` against `gemm`'s register blocks and the bare GEMM;
/// returns best gemm / registers.
fn gemm(ctx: &Arc<GpuContext>, batch: usize, reps: usize, rounds: usize) -> Vec<f64> {
    let registers = |cout| ConvConfig {
        algo: ConvAlgo::Registers,
        tiles: ConvTiles::for_registers(cout),
        split_k: 1,
    };
    let block = |bm, bn| ConvConfig {
        algo: ConvAlgo::Gemm,
        tiles: gemm_tiles(bm, bn),
        split_k: 1,
    };
    // Every block at batch 1; at larger batches (8× the time) the two fastest at batch 1.
    let blocks = match batch {
        1 => vec![(8, 4), (4, 4), (4, 8), (8, 8)],
        _ => vec![(8, 4), (4, 4)],
    };
    let mut ratios = Vec::new();
    for (hw, cin, cout) in [
        (56, 64, 256),
        (56, 256, 64),
        (28, 512, 128),
        (28, 128, 512),
        (14, 1024, 256),
        (14, 256, 1024),
        (7, 2048, 512),
        (7, 512, 2048),
    ] {
        let size = InputSize::image(batch, hw, hw);
        let engine =
            |plain, config| forced(conv_engine(ctx, conv1x1(cin, cout, plain)), size, config);
        let mut candidates = vec![(
            format!("registers {hw}², {cin} → {cout}"),
            engine(false, registers(cout)),
            size,
        )];
        for &(bm, bn) in &blocks {
            candidates.push((
                format!("gemm {bm}x{bn} {hw}², {cin} → {cout}"),
                engine(false, block(bm, bn)),
                size,
            ));
        }
        candidates.push((
            format!("bare GEMM 8x4 {hw}², {cin} → {cout}"),
            engine(true, block(8, 4)),
            size,
        ));
        let rates = race(&candidates, reps, rounds);
        let best = rates[1..=blocks.len()].iter().copied().fold(0.0, f64::max);
        ratios.push(best / rates[0]);
    }
    ratios
}

/// One row of a comparison: its label, engine and input size.
type Candidate = (String, Engine, InputSize);

/// Profiles each candidate `rounds` times, interleaved (robust against other load on the
/// machine), prints the median round of each (and the best) and returns their median GFLOP/s.
fn race(candidates: &[Candidate], reps: usize, rounds: usize) -> Vec<f64> {
    let mut all: Vec<Vec<LayerProfile>> = vec![Vec::new(); candidates.len()];
    for _ in 0..rounds {
        for (i, (_, e, size)) in candidates.iter().enumerate() {
            let cin = e.graph.input_channels;
            let x = vec![0.5f32; size.n * size.t * size.h * size.w * cin];
            all[i].push(e.profile(&x, *size, 1, reps).unwrap().layers.remove(0));
        }
    }
    let mut medians = Vec::new();
    for ((label, _, _), runs) in candidates.iter().zip(all.iter_mut()) {
        runs.sort_by(|a, b| a.gpu_ms.total_cmp(&b.gpu_ms));
        let (t, best) = (&runs[runs.len() / 2], &runs[0]);
        println!(
            "{label:<40} {:>9.1} {:>10.3} {:>11.2} {:>9.2}   {}",
            t.gflop * 1e3,
            t.gpu_ms,
            t.gflops,
            best.gflops,
            t.config
        );
        medians.push(t.gflops);
    }
    medians
}

/// ResNeXt-50's grouped 3×3 convs against dense ones of equal FLOPs; returns dense/grouped.
fn grouped(ctx: &Arc<GpuContext>, batch: usize, reps: usize, rounds: usize) -> Vec<f64> {
    let point = Window::POINT;
    let mut ratios = Vec::new();
    for (hw, c) in [(56, 128), (28, 256), (14, 512), (7, 1024)] {
        let size = InputSize::image(batch, hw, hw);
        let candidates = [
            (
                format!("grouped {hw}², {c} → {c} /32"),
                conv3x3(c, c, 32, point),
            ),
            (
                format!("dense   {hw}², {} → {c}", c / 32),
                conv3x3(c / 32, c, 1, point),
            ),
            (
                format!("dense   {hw}², {} → {} (ResNet-50)", c / 2, c / 2),
                conv3x3(c / 2, c / 2, 1, point),
            ),
        ]
        .map(|(label, conv)| (label, conv_engine(ctx, conv), size));
        let rates = race(&candidates, reps, rounds);
        ratios.push(rates[1] / rates[0]);
    }
    ratios
}

/// r3d_18's 3×3×3 convs against the 2-D convs of the same GEMM; returns 3-D/2-D.
fn video(ctx: &Arc<GpuContext>, frames: usize, reps: usize, rounds: usize) -> Vec<f64> {
    let time = Window {
        kernel: 3,
        stride: 1,
        pad: 1,
    };
    let mut ratios = Vec::new();
    for (hw, c) in [(56, 64), (28, 128), (14, 256), (7, 512)] {
        let candidates = [
            (
                format!("3-D {frames}×{hw}², {c} → {c}, 3×3×3"),
                conv_engine(ctx, conv3x3(c, c, 1, time)),
                InputSize::clip(1, frames, hw, hw),
            ),
            (
                format!("2-D {frames} × {hw}², {} → {c}, 3×3", 3 * c),
                conv_engine(ctx, conv3x3(3 * c, c, 1, Window::POINT)),
                InputSize::image(frames, hw, hw),
            ),
        ];
        let rates = race(&candidates, reps, rounds);
        ratios.push(rates[0] / rates[1]);
    }
    ratios
}

/// The three ways to run ResNet's 3×3 convs: direct, F(2×2), F(4×4). Prints time and error.
fn winograd(batch: usize, reps: usize, rounds: usize) {
    let choices = [
        ("direct", WinogradChoice::Off),
        ("F(2x2)", WinogradChoice::Tile2),
        ("F(4x4)", WinogradChoice::Tile4),
    ];
    let ctxs = choices.map(|(_, winograd)| {
        Arc::new(
            GpuContext::new(&GpuOptions {
                winograd,
                ..GpuOptions::default()
            })
            .expect("adapter"),
        )
    });
    for (hw, c) in [(56, 64), (28, 128), (14, 256), (7, 512)] {
        let size = InputSize::image(batch, hw, hw);
        let (graph, weights) = conv_network(conv3x3(c, c, 1, Window::POINT), true);
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        // Post-ReLU activations: non-negative, mean about 0.5.
        let x: Vec<f32> = (0..batch * hw * hw * c)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect();
        let (want, _) = run_graph(&graph, &weights, &x, batch, hw, hw).unwrap();
        let engines: Vec<Engine> = ctxs
            .iter()
            .map(|ctx| Engine::from_graph(ctx.clone(), graph.clone(), &weights).unwrap())
            .collect();
        let mut ms = vec![Vec::new(); engines.len()];
        for _ in 0..rounds {
            for (i, e) in engines.iter().enumerate() {
                let p = e.profile(&x, size, 1, reps).unwrap();
                ms[i].push(p.layers.iter().map(|l| l.gpu_ms).sum::<f64>());
            }
        }
        let direct = median(&mut ms[0]);
        for (i, e) in engines.iter().enumerate() {
            let got = e.run_at(&x, size, Output::Logits).unwrap();
            let t = median(&mut ms[i]);
            let config = e.profile(&x, size, 0, 1).unwrap().layers.remove(0).config;
            println!(
                "{hw:>3}²×{c:<4} n{batch} {:<7} {t:>9.3} ms  {:>5.2}×  error {:.2e}   {config}",
                choices[i].0,
                direct / t,
                relative_error(&got, &want),
            );
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "grouped".into());
    let numbers: Vec<usize> = args.filter_map(|a| a.parse().ok()).collect();
    let first = numbers.first().copied();
    let reps = numbers.get(1).copied().unwrap_or(5);
    let rounds = numbers.get(2).copied().unwrap_or(3);
    if which == "winograd" {
        return winograd(first.unwrap_or(1), reps, rounds);
    }
    let ctx = Arc::new(GpuContext::new(&GpuOptions::default()).expect("adapter"));
    println!(
        "adapter: {}; {which}, {reps} reps per kernel, median of {rounds} rounds",
        ctx.info
    );
    println!(
        "{:<40} {:>9} {:>10} {:>11} {:>9}   config",
        "layer", "MFLOP", "median ms", "GFLOP/s", "best"
    );
    let (ratios, what) = match which.as_str() {
        "grouped" => (
            grouped(&ctx, first.unwrap_or(1), reps, rounds),
            "dense/grouped",
        ),
        "video" => (video(&ctx, first.unwrap_or(4), reps, rounds), "3-D/2-D"),
        "gemm" => (
            gemm(&ctx, first.unwrap_or(1), reps, rounds),
            "best gemm/registers",
        ),
        other => panic!("unknown comparison `{other}`: grouped, video, gemm or winograd"),
    };
    let ratios: Vec<String> = ratios.iter().map(|r| format!("{r:.2}×")).collect();
    println!("{what} GFLOP/s on the same FLOPs: {}", ratios.join(", "));
}
