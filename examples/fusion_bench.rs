//! What the library's fusions save over unfused passes: a pre-activation (BatchNorm + ReLU
//! applied as the conv reads its input, the conv kernel's `PRE_ACT` prologue) against a
//! standalone pass (modes `wrn`, `resnetv2`), and squeeze-and-excitation's two dispatches
//! against the unfused pool / fc1 / ReLU / fc2 / sigmoid / scale / add + ReLU chain (mode `se`,
//! SE-ResNet-50's SE shapes; see `fusion_bench/se.rs`).
//!
//!     cargo run --release --example fusion_bench -- wrn      [batch] [reps] [rounds]
//!     cargo run --release --example fusion_bench -- resnetv2 [batch] [reps] [rounds]
//!     cargo run --release --example fusion_bench -- se       [batch] [reps] [rounds]
//!
//! Pre-activation modes: per distinct pre-activated conv shape of WRN-28-10 at 32×32 (every conv: each reads an
//! activated input) or of timm's ResNetV2-50 at 224×224 (each block's conv1 and downsample
//! read `norm1`'s output; `norm2`/`norm3` follow a conv and fold into it), two one-layer
//! networks:
//! - fused: the conv with `pre_act` (scale/shift/ReLU in its prologue, in-bounds values only);
//! - unfused: a standalone pass applying scale/shift/ReLU to the whole activation — the
//!   library's 1×1 average pool with `pre_act`, i.e. an identity window that reads, activates
//!   and writes every value once — then the same conv without `pre_act`.
//!
//! From the unfused network's per-dispatch GPU times: (b) the plain conv and (c) the
//! standalone pass; from the fused one (a). The fusion's cost is a − b, what it saves
//! (b + c) − a. The two networks alternate `rounds` times (robust against other load on the
//! machine); each dispatch's best median over the rounds is kept.

#[path = "fusion_bench/se.rs"]
mod se;

use std::sync::Arc;

use resnet_wgpu::gpu::profile::LayerProfile;
use resnet_wgpu::graph::{Conv, Graph, InputSize, Op, Window};
use resnet_wgpu::weights::serialize_f32;
use resnet_wgpu::{Engine, GpuContext, GpuOptions, WeightsFile};

/// A conv shape of WRN-28-10: input channels, output channels, kernel, stride, input side,
/// and how many convs of the network have it.
struct Shape {
    cin: usize,
    cout: usize,
    kernel: usize,
    stride: usize,
    side: usize,
    count: usize,
}

/// WRN-28-10: 4 blocks per stage, widths 160/320/640; a stage's first block changes width
/// (its conv1 strides, its 1×1 `convShortcut` reads the activated input too).
fn wrn_28_10() -> Vec<Shape> {
    let s = |cin, cout, kernel, stride, side, count| Shape {
        cin,
        cout,
        kernel,
        stride,
        side,
        count,
    };
    vec![
        s(16, 160, 3, 1, 32, 1),
        s(16, 160, 1, 1, 32, 1),
        s(160, 160, 3, 1, 32, 7),
        s(160, 320, 3, 2, 32, 1),
        s(160, 320, 1, 2, 32, 1),
        s(320, 320, 3, 1, 16, 7),
        s(320, 640, 3, 2, 16, 1),
        s(320, 640, 1, 2, 16, 1),
        s(640, 640, 3, 1, 8, 7),
    ]
}

/// timm's ResNetV2-50 (pre-activation bottlenecks, stride on the 3×3): per stage, block 0's
/// conv1 and 1×1 downsample (strided from stage 2 on) read the stage input, blocks 1.. their
/// conv1 the block input.
fn resnetv2_50() -> Vec<Shape> {
    let mut shapes = Vec::new();
    let (mut cin, mut side) = (64, 56);
    for (width, blocks, stride) in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)] {
        let out = 4 * width;
        let s = |cin, cout, stride, side, count| Shape {
            cin,
            cout,
            kernel: 1,
            stride,
            side,
            count,
        };
        shapes.push(s(cin, width, 1, side, 1));
        shapes.push(s(cin, out, stride, side, 1));
        side /= stride;
        shapes.push(s(out, width, 1, side, blocks - 1));
        cin = out;
    }
    shapes
}

fn conv(s: &Shape, pre_act: bool) -> Conv {
    Conv {
        weight: "c.weight".into(),
        bn: "c.bn".into(),
        in_channels: s.cin,
        out_channels: s.cout,
        groups: 1,
        kernel: s.kernel,
        stride: s.stride,
        pad: s.kernel / 2,
        temporal: Window::POINT,
        relu: false,
        input_nchw: false,
        pre_act: pre_act.then(|| "p".to_string()),
    }
}

/// Random positive values (a xorshift), deterministic.
fn values(n: usize, seed: &mut u64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            (*seed >> 40) as f32 / (1u64 << 24) as f32 + 0.5
        })
        .collect()
}

/// The conv's weights and BatchNorm, and the pre-activation's BatchNorm `p`.
fn weights(s: &Shape) -> WeightsFile {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let dims = vec![s.cout, s.cin, s.kernel, s.kernel];
    let numel = dims.iter().product();
    let mut t = vec![("c.weight".to_string(), dims, values(numel, &mut seed))];
    for p in ["weight", "bias", "running_mean", "running_var"] {
        t.push((format!("c.bn.{p}"), vec![s.cout], values(s.cout, &mut seed)));
        t.push((format!("p.{p}"), vec![s.cin], values(s.cin, &mut seed)));
    }
    WeightsFile::from_bytes("bench", serialize_f32(&t, None).unwrap()).unwrap()
}

/// fused: conv(pre_act); unfused: avgpool 1×1 (pre_act) → conv.
fn engines(ctx: &Arc<GpuContext>, s: &Shape) -> (Engine, Engine) {
    let w = weights(s);
    let mut fused = Graph {
        input_channels: s.cin,
        ..Graph::default()
    };
    fused.input = fused.new_value();
    fused.output = fused.push("conv", Op::Conv(conv(s, true)), vec![fused.input]);
    fused.features = fused.output;
    let mut unfused = Graph {
        input_channels: s.cin,
        ..Graph::default()
    };
    unfused.input = unfused.new_value();
    let pass = Op::AvgPool {
        kernel: 1,
        stride: 1,
        pad: 0,
        ceil_mode: false,
        pre_act: Some("p".into()),
    };
    let activated = unfused.push("bn_relu", pass, vec![unfused.input]);
    unfused.output = unfused.push("conv", Op::Conv(conv(s, false)), vec![activated]);
    unfused.features = unfused.output;
    (
        Engine::from_graph(ctx.clone(), fused, &w).unwrap(),
        Engine::from_graph(ctx.clone(), unfused, &w).unwrap(),
    )
}

/// Every dispatch of one profiled run (median of `reps`).
fn profiled(e: &Engine, size: InputSize, reps: usize) -> Vec<LayerProfile> {
    let x = vec![0.5f32; size.n * size.h * size.w * e.graph.input_channels];
    e.profile(&x, size, 1, reps).unwrap().layers
}

/// Per-dispatch GPU ms of one profiled run (median of `reps`).
fn dispatch_ms(e: &Engine, size: InputSize, reps: usize) -> Vec<f64> {
    profiled(e, size, reps).iter().map(|l| l.gpu_ms).collect()
}

/// GPU ms of one profiled run (median of `reps`): the standalone pass's dispatches (none in
/// the fused network) and the conv's, all of them (Winograd runs three: input transform,
/// GEMM, output transform).
fn pass_and_conv_ms(e: &Engine, size: InputSize, reps: usize) -> (f64, f64) {
    let layers = profiled(e, size, reps);
    let pass = |l: &&LayerProfile| l.name.starts_with("bn_relu");
    let sum = |v: Vec<&LayerProfile>| v.iter().map(|l| l.gpu_ms).sum::<f64>();
    let (pass, conv) = layers.iter().partition(pass);
    (sum(pass), sum(conv))
}

fn main() {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .map_or(default, |a| a.parse().expect("a count"))
    };
    let (batch, reps, rounds) = (arg(2, 2), arg(3, 3), arg(4, 3));
    let ctx = Arc::new(GpuContext::new(&GpuOptions::default()).unwrap());
    let (name, shapes) = match std::env::args().nth(1).as_deref() {
        Some("resnetv2") => ("ResNetV2-50 at 224x224", resnetv2_50()),
        Some("wrn") | None => ("WRN-28-10 at 32x32", wrn_28_10()),
        Some("se") => return se::run(&ctx, batch, reps, rounds),
        Some(other) => panic!("unknown mode {other}: wrn, resnetv2 or se"),
    };
    println!(
        "{name}, batch {batch}, on {} (best of {rounds} rounds of medians of {reps})",
        ctx.info
    );
    println!(
        "{:<28} {:>5} {:>11} {:>11} {:>11} {:>10} {:>10}",
        "conv shape", "convs", "a fused ms", "b plain ms", "c pass ms", "a-b", "saved"
    );
    let mut totals = [0.0f64; 3];
    let convs: usize = shapes.iter().map(|s| s.count).sum();
    for s in shapes {
        let (fused, unfused) = engines(&ctx, &s);
        let size = InputSize::image(batch, s.side, s.side);
        let (mut a, mut b, mut c) = (f64::INFINITY, f64::INFINITY, f64::INFINITY);
        for _ in 0..rounds {
            a = a.min(pass_and_conv_ms(&fused, size, reps).1);
            let (pass, conv) = pass_and_conv_ms(&unfused, size, reps);
            c = c.min(pass);
            b = b.min(conv);
        }
        let label = format!(
            "{}→{} {}x{}/s{} @{}²",
            s.cin, s.cout, s.kernel, s.kernel, s.stride, s.side
        );
        println!(
            "{label:<28} {:>5} {a:>11.3} {b:>11.3} {c:>11.3} {:>10.3} {:>10.3}",
            s.count,
            a - b,
            b + c - a
        );
        let n = s.count as f64;
        totals[0] += n * a;
        totals[1] += n * b;
        totals[2] += n * c;
    }
    let [a, b, c] = totals;
    println!(
        "{name}, all {convs} pre-activated convs: fused {a:.1} ms, plain {b:.1} ms, passes {c:.1} \
         ms; fusion costs {:.1} ms ({:+.1}% of the plain convs), unfused would add {c:.1} ms; \
         saved {:.1} ms ({:.1}% of unfused)",
        a - b,
        100.0 * (a - b) / b,
        b + c - a,
        100.0 * (b + c - a) / (b + c)
    );
}
