//! Every kernel against the plain CPU reference on seeded random shapes, in both shader modes.
//! Each case builds a one- or two-node graph by hand, so a failure names the op and the shape.

use crate::common;

use std::sync::Arc;

use common::{
    conv_tensors, encode_tensors, gpu, gpu_mode, Mode, Rng, Tensors, ALL_MODES, BN_NAMES,
    BN_RANGES, MODES,
};
use resnet_wgpu::graph::InputSize;
use resnet_wgpu::graph::{Conv, Graph, HeadWindow, Op, Shape, Window};
use resnet_wgpu::reference::{self, relative_error, ConvParams};
use resnet_wgpu::weights::serialize_f32;
use resnet_wgpu::{Engine, GpuContext, Output, WeightsFile};
use safetensors::Dtype;

// All ops run in f32 on the GPU and in f64 on the CPU. With |values| ≤ 2 and at most a few
// thousand terms per dot product, f32 rounding stays orders of magnitude below 1e-5 of the
// largest output, while any indexing, layout or epilogue error is O(1).
const TOL: f64 = 1e-5;
// BN folding is one division, one square root and two products in f32 on identical (stored)
// inputs: a few f32 roundings, ~3e-7, against the f64 reference.
const FOLD_TOL: f64 = 1e-6;
const MAX_POOL: Op = Op::MaxPool {
    kernel: 3,
    stride: 2,
    pad: 1,
    temporal: Window::POINT,
};

fn assert_close(got: &[f32], want: &[f32], tol: f64, what: &str) -> f64 {
    let err = relative_error(got, want);
    assert!(err <= tol, "{what}: relative error {err:.3e} > {tol:e}");
    err
}

fn get<'a>(tensors: &'a Tensors, name: &str) -> &'a [f32] {
    &tensors.iter().find(|t| t.0 == name).expect(name).2
}

/// Builds an engine for `graph` over F32 `tensors` and runs it on `x` at `(n, h, w)`.
fn run(ctx: &Arc<GpuContext>, g: Graph, t: &Tensors, x: &[f32], (n, h, w): Dims) -> Vec<f32> {
    let weights = WeightsFile::from_bytes("test", serialize_f32(t, None).unwrap()).unwrap();
    let engine = Engine::from_graph(ctx.clone(), g, &weights).unwrap();
    engine.run(x, n, h, w, Output::Logits).unwrap()
}

type Dims = (usize, usize, usize);

/// A graph whose input is `c` channels wide, with `build` adding the nodes from the input
/// value and returning the output value.
fn graph(c: usize, build: impl FnOnce(&mut Graph, usize) -> usize) -> Graph {
    let mut g = Graph {
        input_channels: c,
        ..Graph::default()
    };
    let x = g.new_value();
    g.input = x;
    g.output = build(&mut g, x);
    g.features = g.output;
    g
}

fn linear_op(name: &str, cin: usize, cout: usize) -> Op {
    let (weight, bias) = (format!("{name}.weight"), format!("{name}.bias"));
    Op::Linear {
        weight,
        bias,
        in_features: cin,
        out_features: cout,
    }
}

/// One conv case: `[n, h, w, c_in, c_out, kernel, stride, pad, relu, nchw, residual]` with
/// flags 0/1; `residual` adds a second conv of `x` (relu off, node `a`) as the residual.
type Row = [usize; 11];

fn conv_op(r: &Row, name: &str, relu: bool) -> Op {
    let [_, _, _, in_channels, out_channels, kernel, stride, pad, _, nchw, _] = *r;
    let (weight, bn, input_nchw) = (format!("{name}.weight"), format!("{name}.bn"), nchw != 0);
    let conv = Conv {
        weight,
        bn,
        in_channels,
        out_channels,
        kernel,
        stride,
        pad,
        temporal: Window::POINT,
        relu,
        input_nchw,
        groups: 1,
        pre_act: None,
    };
    Op::Conv(conv)
}

/// The reference conv of node `name` (BN folded in f64) on `x`.
fn conv_reference(
    r: &Row,
    t: &Tensors,
    name: &str,
    x: &[f32],
    res: Option<&[f32]>,
    relu: bool,
) -> Vec<f32> {
    let [n, h, w, c, out_channels, kernel, stride, pad, _, nchw, _] = *r;
    let p = |s: &str| get(t, &format!("{name}.{s}"));
    let [g, b, m, v] = BN_NAMES.map(|s| p(&format!("bn.{s}")));
    let (wf, bias) = reference::fold_bn(p("weight"), g, b, m, v);
    let input_nchw = nchw != 0;
    let p = ConvParams {
        out_channels,
        kernel,
        stride,
        pad,
        relu,
        input_nchw,
    };
    reference::conv2d(x, Shape { n, t: 1, h, w, c }, &wf, &bias, res, p).0
}

/// Multiply-adds of a case, to keep lavapipe fast.
fn macs(r: &Row) -> usize {
    let [n, h, w, cin, cout, k, s, pad, _, _, res] = *r;
    let out = |i: usize| (i + 2 * pad - k) / s + 1;
    n * out(h) * out(w) * k * k * cin * cout * (1 + res)
}

/// Runs one conv case on the GPU and on the CPU; returns the relative error.
fn conv_error(ctx: &Arc<GpuContext>, r: &Row, seed: u64) -> f64 {
    let [n, h, w, cin, cout, k, _, _, relu, _, residual] = *r;
    let (relu, residual) = (relu != 0, residual != 0);
    let mut rng = Rng::new(seed);
    let mut t = conv_tensors(&mut rng, "b", cout, cin, k);
    if residual {
        t.extend(conv_tensors(&mut rng, "a", cout, cin, k));
    }
    let g = graph(cin, |g, x| {
        let mut inputs = vec![x];
        if residual {
            inputs.push(g.push("a", conv_op(r, "a", false), vec![x]));
        }
        g.push("b", conv_op(r, "b", relu), inputs)
    });
    let x = rng.vec(n * h * w * cin, -1.0, 1.0);
    let got = run(ctx, g, &t, &x, (n, h, w));
    let res = residual.then(|| conv_reference(r, &t, "a", &x, None, false));
    let want = conv_reference(r, &t, "b", &x, res.as_deref(), relu);
    assert_eq!(got.len(), want.len(), "{r:?}: output length");
    relative_error(&got, &want)
}

/// Which rows of a case list run in which of the four configurations.
#[derive(Clone, Copy)]
enum Coverage {
    /// Every row in every configuration: the hand-written lists, each of which pairs
    /// specific flags with specific shapes.
    Full,
    /// Each row in two configurations, one checked and one not, one per conv kernel
    /// (unchecked tiled + checked register-only for even rows, the other pair for odd
    /// rows): every row still runs both kernels and both shader modes. For the random list,
    /// whose flags are drawn independently of the row's parity.
    Paired,
}

impl Coverage {
    fn runs(self, row: usize, mode: Mode) -> bool {
        match self {
            Coverage::Full => true,
            Coverage::Paired => (mode.checked == mode.registers) == row.is_multiple_of(2),
        }
    }
}

fn check_convs(rows: &[Row], seed: u64, coverage: Coverage) {
    // Both conv kernels (tiled and register-only), checks on and off.
    for mode in ALL_MODES {
        let Some(ctx) = gpu_mode(mode) else { return };
        let (mut worst, mut n) = (0f64, 0);
        for (i, r) in rows.iter().enumerate() {
            if !coverage.runs(i, mode) {
                continue;
            }
            let err = conv_error(&ctx, r, seed + i as u64);
            assert!(
                err <= TOL,
                "conv {r:?} ({mode:?}): relative error {err:.3e}"
            );
            worst = worst.max(err);
            n += 1;
        }
        eprintln!("{n} conv cases ({mode:?}): worst relative error {worst:.2e}");
    }
}

/// Random shapes for one kernel/stride/pad, resampled until within a work budget so that
/// lavapipe stays fast: odd H (and mostly odd W) up to 19, C_in 1..=70, batch 1..=3.
fn random_conv(rng: &mut Rng, k: usize, s: usize, pad: usize, cout: usize) -> Row {
    let min = k.saturating_sub(2 * pad).max(1);
    let odd = |rng: &mut Rng| (2 * rng.range(0, 9) + 1).max(min | 1);
    loop {
        let (n, h, cin) = (rng.range(1, 3), odd(rng), rng.range(1, 70));
        let w = if rng.range(0, 3) == 0 {
            rng.range(min, 12)
        } else {
            odd(rng)
        };
        let one_in_3 = |rng: &mut Rng| (rng.range(0, 2) == 0) as usize;
        let (relu, nchw, res) = (rng.range(0, 1), one_in_3(rng), one_in_3(rng));
        let r = [n, h, w, cin, cout, k, s, pad, relu, nchw, res];
        if macs(&r) <= 12_000_000 {
            return r;
        }
    }
}

#[test]
fn conv_random_shapes() {
    let mut rng = Rng::new(0xC0417);
    // Output channels below, between and above the 16/32/64 tile widths, then random.
    let couts = [3, 17, 65, 130, 1, 150, 33, 7, 97, 50];
    let mut cases = Vec::new();
    for i in 0..30 {
        let (k, s) = ([1, 3, 7][i % 3], 1 + (i / 3) % 2);
        let pad = if (i / 6) % 2 == 0 { k / 2 } else { 0 };
        let cout = couts.get(i).copied().unwrap_or_else(|| rng.range(1, 150));
        cases.push(random_conv(&mut rng, k, s, pad, cout));
    }
    // The sampler must actually produce the awkward cases it is meant to, in the even and in
    // the odd rows: each half runs in two of the four configurations (`Coverage::Paired`).
    for parity in 0..2 {
        let half: Vec<&Row> = cases.iter().skip(parity).step_by(2).collect();
        let any = |f: fn(&Row) -> bool| half.iter().any(|r| f(r));
        assert!(
            any(|r| r[3] % 4 != 0)
                && any(|r| r[10] == 1)
                && any(|r| r[9] == 1)
                && any(|r| r[0] > 1)
        );
        assert!(any(|r| r[8] == 1) && any(|r| r[8] == 0) && any(|r| r[5] == 7 && r[7] == 0));
    }
    let start = std::time::Instant::now();
    check_convs(&cases, 1000, Coverage::Paired);
    eprintln!("random conv cases: {:.1?} for all modes", start.elapsed());
}

// Rows: [n, h, w, c_in, c_out, kernel, stride, pad, relu, nchw, residual].

#[test]
fn conv_pointwise() {
    // 1×1, stride 1, pad 0 on NHWC takes the POINTWISE path: A is the input matrix itself.
    check_convs(
        &[
            [1, 1, 7, 1, 3, 1, 1, 0, 1, 0, 0],
            [2, 3, 6, 5, 17, 1, 1, 0, 0, 0, 1],
            [3, 5, 5, 13, 65, 1, 1, 0, 1, 0, 0],
            [1, 7, 4, 70, 130, 1, 1, 0, 0, 0, 0],
            [2, 9, 3, 64, 64, 1, 1, 0, 1, 0, 1],
            [3, 11, 2, 33, 150, 1, 1, 0, 0, 0, 0],
        ],
        2000,
        Coverage::Full,
    );
}

#[test]
fn conv_1x1_stride_2() {
    // The ResNet downsample shortcut: 1×1/s2 is not pointwise (it skips pixels).
    check_convs(
        &[
            [1, 1, 1, 3, 5, 1, 2, 0, 0, 0, 0],
            [2, 2, 2, 7, 17, 1, 2, 0, 1, 0, 0],
            [1, 9, 7, 30, 65, 1, 2, 0, 0, 0, 0],
            [2, 15, 16, 19, 130, 1, 2, 0, 1, 0, 0],
            [1, 5, 19, 64, 33, 1, 2, 0, 0, 0, 1],
        ],
        3000,
        Coverage::Full,
    );
}

#[test]
fn conv_residual() {
    // output = relu?(convB(x) + bias + convA(x)), for every kernel, stride and relu setting.
    check_convs(
        &[
            [1, 9, 7, 5, 17, 3, 1, 1, 1, 0, 1],
            [2, 11, 7, 16, 65, 3, 2, 1, 1, 0, 1],
            [3, 13, 7, 9, 130, 1, 1, 0, 0, 0, 1],
            [1, 15, 7, 11, 3, 1, 2, 0, 1, 0, 1],
            [2, 17, 7, 3, 20, 7, 2, 3, 1, 0, 1],
            [1, 5, 5, 6, 6, 3, 1, 0, 0, 0, 1],
        ],
        4000,
        Coverage::Full,
    );
}

#[test]
fn conv_nchw_input() {
    // The stem reads the user's NCHW input directly (7×7/s2/p3 in ResNets).
    check_convs(
        &[
            [1, 17, 19, 3, 64, 7, 2, 3, 1, 1, 0],
            [2, 11, 9, 3, 17, 7, 2, 3, 0, 1, 0],
            [3, 5, 7, 1, 5, 3, 1, 1, 1, 1, 0],
            [1, 6, 5, 13, 65, 1, 1, 0, 0, 1, 0],
            [2, 9, 9, 4, 33, 3, 2, 1, 1, 1, 1],
            [1, 8, 13, 3, 16, 7, 1, 0, 1, 1, 0],
        ],
        5000,
        Coverage::Full,
    );
}

#[test]
fn conv_tile_edges() {
    // Output channels on each side of the 16/32/64 tile widths and pixel counts on each side
    // of the 64-row M tile (M = n·oh·ow: 63 = 7·9, 64 = 8·8, 65 = 5·13, 129 = 3·43).
    let pixels = [(1, 7, 9), (1, 8, 8), (1, 5, 13), (3, 1, 43)];
    let couts = [15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129];
    let rows: Vec<Row> = (0..couts.len())
        .map(|i| {
            let (n, h, w) = pixels[i % pixels.len()];
            [n, h, w, 1 + (i * 7) % 20, couts[i], 3, 1, 1, 1, 0, 0]
        })
        .collect();
    check_convs(&rows, 6000, Coverage::Full);
}

#[test]
fn conv_identity_shortcut_from_graph_input() {
    // A residual that is the graph input itself (NHWC, shaped like the output).
    for checked in ALL_MODES {
        let Some(ctx) = gpu_mode(checked) else { return };
        let mut rng = Rng::new(7000);
        let r = [2, 9, 7, 24, 24, 3, 1, 1, 1, 0, 0];
        let t = conv_tensors(&mut rng, "b", 24, 24, 3);
        let g = graph(24, |g, x| g.push("b", conv_op(&r, "b", true), vec![x, x]));
        let x = rng.vec(2 * 9 * 7 * 24, -1.0, 1.0);
        let got = run(&ctx, g, &t, &x, (2, 9, 7));
        let want = conv_reference(&r, &t, "b", &x, Some(&x), true);
        assert_close(
            &got,
            &want,
            TOL,
            &format!("identity shortcut ({checked:?})"),
        );
    }
}

/// Random NHWC shapes `(n, h, w, c)` after the given fixed ones.
fn shapes(rng: &mut Rng, fixed: &[(usize, usize, usize, usize)], max: [usize; 4]) -> Vec<Shape> {
    let mut out: Vec<Shape> = fixed
        .iter()
        .map(|&(n, h, w, c)| Shape { n, t: 1, h, w, c })
        .collect();
    for _ in 0..12 {
        let [n, h, w, c] = max.map(|m| rng.range(1, m));
        out.push(Shape { n, t: 1, h, w, c });
    }
    out
}

#[test]
fn max_pool_random_shapes() {
    let mut rng = Rng::new(0x9001);
    let fixed = [
        (1, 1, 1, 1),
        (2, 1, 1, 5),
        (1, 2, 2, 3),
        (3, 2, 1, 7),
        (1, 1, 2, 64),
    ];
    for (i, xs) in shapes(&mut rng, &fixed, [3, 25, 25, 70])
        .into_iter()
        .enumerate()
    {
        // Every third case is all negative: the implicit −∞ padding must never win.
        let (lo, hi) = if i % 3 == 0 {
            (-9.0, -0.5)
        } else {
            (-1.0, 1.0)
        };
        let x = rng.vec(xs.numel(), lo, hi);
        let (want, _) = reference::max_pool(&x, xs, 3, 2, 1);
        for checked in MODES {
            let Some(ctx) = gpu(checked) else { return };
            let g = graph(xs.c, |g, x| g.push("pool", MAX_POOL, vec![x]));
            let got = run(&ctx, g, &vec![], &x, (xs.n, xs.h, xs.w));
            // A max picks one of its inputs: the result must be bit-exact.
            assert_eq!(got, want, "max pool {xs:?} (checked shaders: {checked})");
        }
    }
}

#[test]
fn global_avg_pool_random_shapes() {
    let mut rng = Rng::new(0xA76);
    let fixed = [(1, 1, 1, 1), (2, 1, 1, 300), (1, 7, 7, 512), (3, 19, 18, 5)];
    for xs in shapes(&mut rng, &fixed, [3, 19, 19, 600]) {
        let x = rng.vec(xs.numel(), -1.0, 2.0);
        let (want, _) = reference::global_avg_pool(&x, xs);
        for checked in MODES {
            let Some(ctx) = gpu(checked) else { return };
            let g = graph(xs.c, |g, x| {
                g.push(
                    "avg",
                    Op::GlobalAvgPool {
                        window: HeadWindow::Whole,
                        pre_act: None,
                    },
                    vec![x],
                )
            });
            let got = run(&ctx, g, &vec![], &x, (xs.n, xs.h, xs.w));
            // A mean of ≤ 361 values in [-1, 2) summed in f32: ~1e-7 relative.
            assert_close(
                &got,
                &want,
                TOL,
                &format!("avg pool {xs:?} (checked {checked})"),
            );
        }
    }
}

#[test]
fn linear_random_shapes() {
    let mut rng = Rng::new(0x11AE);
    // (batch, in, out): one feature, multiples of the 256-wide workgroup, one past, random.
    let mut sizes = vec![
        (1, 1, 1),
        (2, 256, 256),
        (3, 257, 1000),
        (1, 600, 1100),
        (2, 512, 10),
    ];
    for _ in 0..6 {
        sizes.push((rng.range(1, 4), rng.range(1, 600), rng.range(1, 1100)));
    }
    for (n, cin, cout) in sizes {
        let w = rng.vec(cout * cin, -1.0, 1.0);
        let t: Tensors = vec![
            ("fc.weight".into(), vec![cout, cin], w),
            ("fc.bias".into(), vec![cout], rng.vec(cout, -1.0, 1.0)),
        ];
        let x = rng.vec(n * cin, -1.0, 1.0);
        let want = reference::linear(&x, n, &t[0].2, &t[1].2);
        for checked in MODES {
            let Some(ctx) = gpu(checked) else { return };
            let g = graph(cin, |g, x| {
                g.push("fc", linear_op("fc", cin, cout), vec![x])
            });
            let got = run(&ctx, g, &t, &x, (n, 1, 1));
            // Dot products of ≤ 600 terms in [-1, 1) accumulated with fma in f32.
            let what = format!("linear n={n} {cin}→{cout} (checked {checked})");
            assert_close(&got, &want, TOL, &what);
        }
    }
}

/// `(OIHW weight) → (K, C_out)` with `k = (ky·kW + kx)·C_in + ci`, the conv kernel's layout.
fn to_k_cout(w: &[f32], cout: usize, cin: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0f32; w.len()];
    for (i, &v) in w.iter().enumerate() {
        let (o, ci, ky, kx) = (i / (cin * k * k), i / (k * k) % cin, i / k % k, i % k);
        out[((ky * k + kx) * cin + ci) * cout + o] = v;
    }
    out
}

/// Folds `c.weight` (OIHW, k×k) and its BN, given as values and storage dtypes, on the GPU and
/// checks weight and bias against `reference::fold_bn` (f64) on the stored values.
fn check_fold(ctx: &Arc<GpuContext>, dims: [usize; 3], values: [Vec<f32>; 5], dtypes: [Dtype; 5]) {
    let [cout, cin, k] = dims;
    let names = [
        "weight",
        "bn.weight",
        "bn.bias",
        "bn.running_mean",
        "bn.running_var",
    ];
    let tensors: Vec<_> = (0..5)
        .map(|i| {
            let shape = if i == 0 {
                vec![cout, cin, k, k]
            } else {
                vec![cout]
            };
            (
                format!("c.{}", names[i]),
                shape,
                values[i].clone(),
                dtypes[i],
            )
        })
        .collect();
    let weights = WeightsFile::from_bytes("fold", encode_tensors(&tensors)).unwrap();
    // The exact stored (dtype-rounded) values, as the GPU decodes them.
    let t = names.map(|n| weights.to_f32(&format!("c.{n}")).unwrap());
    let r = [1, k, k, cin, cout, k, 1, 0, 1, 0, 0];
    let g = graph(cin, |g, x| g.push("c", conv_op(&r, "c", true), vec![x]));
    let engine = Engine::from_graph(ctx.clone(), g, &weights).unwrap();
    let (got_w, got_b) = engine.layer_weights("c").unwrap();
    let (want_w, want_b) = reference::fold_bn(&t[0], &t[1], &t[2], &t[3], &t[4]);
    let what = format!("fold {dtypes:?} {dims:?} (checked {})", ctx.checked_shaders);
    let want_w = to_k_cout(&want_w, cout, cin, k);
    assert_close(&got_w, &want_w, FOLD_TOL, &format!("{what}: weight"));
    assert_close(&got_b, &want_b, FOLD_TOL, &format!("{what}: bias"));
}

#[test]
fn fold_bn_every_dtype() {
    use Dtype::{BF16, F16, F32};
    let mut rng = Rng::new(0xF01D);
    // Every weight dtype × every shared BN dtype, then mixed per-tensor dtypes.
    let mut combos: Vec<[Dtype; 5]> = [F32, F16, BF16]
        .iter()
        .flat_map(|&w| [F32, F16, BF16].map(|b| [w, b, b, b, b]))
        .collect();
    combos.extend([[F16, BF16, F32, F16, BF16], [BF16, F32, F16, BF16, F16]]);
    for (i, &dtypes) in combos.iter().enumerate() {
        // Odd channel counts exercise the half-used last word of 16-bit tensors.
        let [cout, cin, k] = [[3, 5, 3], [17, 1, 7], [65, 7, 1], [130, 3, 3]][i % 4];
        let w = rng.vec(cout * cin * k * k, -1.0, 1.0);
        let [g, b, m, v] = BN_RANGES.map(|(lo, hi)| rng.vec(cout, lo, hi));
        let values = [w, g, b, m, v];
        for checked in MODES {
            let Some(ctx) = gpu(checked) else { return };
            check_fold(&ctx, [cout, cin, k], values.clone(), dtypes);
        }
    }
}

#[test]
fn fold_f16_subnormal_weights() {
    // F16 weights below 6.1e-5 are subnormal; they must be widened exactly, not flushed.
    let (cout, cin) = (4, 8);
    let w: Vec<f32> = (0..cout * cin).map(|i| (i as f32 - 13.5) * 2e-6).collect();
    let values = [
        w,
        vec![1.0; cout],
        vec![0.0; cout],
        vec![0.0; cout],
        vec![1.0; cout],
    ];
    for checked in MODES {
        let Some(ctx) = gpu(checked) else { return };
        let dtypes = [Dtype::F16, Dtype::F32, Dtype::F32, Dtype::F32, Dtype::F32];
        check_fold(&ctx, [cout, cin, 1], values.clone(), dtypes);
    }
}

#[test]
fn linear_weights_are_transposed_exactly() {
    // Without BN the fold shader only converts and re-lays the head: (out, in) → (in, out).
    let mut rng = Rng::new(0x7EAD);
    let (cin, cout) = (37, 11);
    for dtype in [Dtype::F32, Dtype::F16, Dtype::BF16] {
        let w = rng.vec(cout * cin, -1.0, 1.0);
        let tensors = vec![
            ("fc.weight".to_string(), vec![cout, cin], w, dtype),
            (
                "fc.bias".to_string(),
                vec![cout],
                rng.vec(cout, -1.0, 1.0),
                dtype,
            ),
        ];
        let weights = WeightsFile::from_bytes("fc", encode_tensors(&tensors)).unwrap();
        let want_w = to_k_cout(&weights.to_f32("fc.weight").unwrap(), cout, cin, 1);
        for checked in MODES {
            let Some(ctx) = gpu(checked) else { return };
            let g = graph(cin, |g, x| {
                g.push("fc", linear_op("fc", cin, cout), vec![x])
            });
            let engine = Engine::from_graph(ctx.clone(), g, &weights).unwrap();
            let (got_w, got_b) = engine.layer_weights("fc").unwrap();
            // Widening F16/BF16 to f32 and transposing are exact.
            assert_eq!(got_w, want_w, "{dtype:?} (checked {checked})");
            assert_eq!(
                got_b,
                weights.to_f32("fc.bias").unwrap(),
                "{dtype:?} (checked {checked})"
            );
        }
    }
}

#[test]
fn plans_are_cached_per_size() {
    // stem conv (NCHW) → max pool → residual block with a 1×1 shortcut → global avg pool →
    // linear, checked with `reference::run_graph` at two sizes, alternating so the second
    // visit of each size reuses its cached plan, on fresh inputs each time.
    let mut rng = Rng::new(0x91A2);
    let stem = [1, 1, 1, 3, 8, 7, 2, 3, 1, 1, 0];
    let block = [1, 1, 1, 8, 12, 3, 1, 1, 1, 0, 0];
    let short = [1, 1, 1, 8, 12, 1, 1, 0, 0, 0, 0];
    let mut t = conv_tensors(&mut rng, "stem", 8, 3, 7);
    t.extend(conv_tensors(&mut rng, "down", 12, 8, 1));
    t.extend(conv_tensors(&mut rng, "conv", 12, 8, 3));
    t.push(("fc.weight".into(), vec![5, 12], rng.vec(60, -1.0, 1.0)));
    t.push(("fc.bias".into(), vec![5], rng.vec(5, -1.0, 1.0)));
    let mut features = 0;
    let g = graph(3, |g, x| {
        let v = g.push("stem", conv_op(&stem, "stem", true), vec![x]);
        let v = g.push("pool", MAX_POOL, vec![v]);
        let d = g.push("down", conv_op(&short, "down", false), vec![v]);
        let v = g.push("conv", conv_op(&block, "conv", true), vec![v, d]);
        features = g.push(
            "avg",
            Op::GlobalAvgPool {
                window: HeadWindow::Whole,
                pre_act: None,
            },
            vec![v],
        );
        g.push("fc", linear_op("fc", 12, 5), vec![features])
    });
    let g = Graph { features, ..g };
    let weights = WeightsFile::from_bytes("net", serialize_f32(&t, None).unwrap()).unwrap();
    for checked in MODES {
        let Some(ctx) = gpu(checked) else { return };
        let engine = Engine::from_graph(ctx.clone(), g.clone(), &weights).unwrap();
        for (n, h, w) in [(2, 23, 17), (1, 32, 32), (2, 23, 17), (1, 32, 32)] {
            let x = rng.vec(n * 3 * h * w, -1.0, 1.0);
            let (logits, feats) = reference::run_graph(&g, &weights, &x, n, h, w).unwrap();
            let what = format!("{n}x{h}x{w} (checked {checked})");
            let got = engine.run(&x, n, h, w, Output::Logits).unwrap();
            assert_close(&got, &logits, TOL, &format!("{what}: logits"));
            let got = engine.run(&x, n, h, w, Output::Features).unwrap();
            assert_close(&got, &feats, TOL, &format!("{what}: features"));
        }
        // The plan is cached per size, and an input of the wrong length is an error.
        let (a, b) = (
            engine.plan(InputSize::image(2, 23, 17)).unwrap(),
            engine.plan(InputSize::image(2, 23, 17)).unwrap(),
        );
        assert!(Arc::ptr_eq(&a, &b));
        assert!(engine.run(&[0.0; 5], 1, 32, 32, Output::Logits).is_err());
    }
}
