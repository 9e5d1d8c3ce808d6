//! The tuner's search space and cache: every configuration `resnet tune` may pick (tile
//! sizes, both conv kernels, split-K) against the CPU reference, in both shader modes; a
//! tuning run's choices going through the cache into a later engine.

use crate::common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use common::{conv3d_tensors, conv_tensors, gpu, Rng};
use resnet_wgpu::gpu::disk_cache::DiskCache;
use resnet_wgpu::gpu::ops::conv::{ConvAlgo, ConvConfig, DeviceFit};
use resnet_wgpu::gpu::tuning::cache::TuneCache;
use resnet_wgpu::graph::InputSize;
use resnet_wgpu::graph::{Conv, Graph, Op, Window};
use resnet_wgpu::model::{arch, synthetic::synthetic_weights};
use resnet_wgpu::reference::{conv_rows, relative_error};
use resnet_wgpu::weights::serialize_f32;
use resnet_wgpu::{Engine, GpuContext, GpuOptions, Output, Precision, TuneOptions, WeightsFile};

/// One conv layer the tuner is checked on (`t`, `temporal`: clips; 1 and a point for images).
#[derive(Clone, Copy, Debug)]
struct Row {
    n: usize,
    t: usize,
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    groups: usize,
    nchw: bool,
    residual: bool,
    temporal: Window,
}

/// `(n, h, w, c_in, c_out, kernel, stride, pad, groups, nchw, residual)` of an image layer.
#[allow(clippy::too_many_arguments)]
const fn row(
    (n, h, w): (usize, usize, usize),
    cin: usize,
    cout: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    groups: usize,
    nchw: bool,
    residual: bool,
) -> Row {
    Row {
        n,
        t: 1,
        h,
        w,
        cin,
        cout,
        kernel,
        stride,
        pad,
        groups,
        nchw,
        residual,
        temporal: Window::POINT,
    }
}

impl Row {
    /// The layer over clips of `t` frames with this temporal window.
    const fn over_frames(self, t: usize, temporal: Window) -> Row {
        Row {
            t,
            temporal,
            ..self
        }
    }

    fn size(&self) -> InputSize {
        InputSize::clip(self.n, self.t, self.h, self.w)
    }
}

const ROWS: [Row; 8] = [
    // A late layer at batch 1 (few output tiles: split-K territory), odd channels. K = 1179
    // gives every tile depth its splits; 33 outputs still allow every tile width (up to twice
    // the next power of two) at a quarter of the work of 130.
    row((1, 7, 7), 131, 33, 3, 1, 1, 1, false, true),
    // 1×1 as a plain GEMM, M and N off every tile size.
    row((2, 9, 11), 20, 33, 1, 1, 0, 1, false, false),
    // The stem: NCHW input, 7×7 stride 2, three channels.
    row((1, 13, 13), 3, 17, 7, 2, 3, 1, true, false),
    // 1×1 stride 2 projection with a residual.
    row((3, 5, 6), 64, 50, 1, 2, 0, 1, false, true),
    // 1×1 stride 2 with channels in multiples of 4 (not of 8 or of any tile): the GEMM
    // kernels' blockings join the space (the row gather of a downsample shortcut).
    row((2, 7, 9), 20, 36, 1, 2, 0, 1, false, true),
    // Grouped, 4 channels per group (register kernel allowed).
    row((1, 8, 8), 32, 32, 3, 1, 1, 8, false, true),
    // Grouped, 6 channels per group (tiled kernel only).
    row((1, 9, 9), 24, 36, 3, 2, 1, 6, false, false),
    // Video: a 3×3×3 conv over 3 frames with a residual, K = 27·21 = 567 (split-K too); 12
    // outputs keep the tile widths (and the compiles on a fresh machine) few.
    row((1, 5, 6), 21, 12, 3, 1, 1, 1, false, true).over_frames(
        3,
        Window {
            kernel: 3,
            stride: 1,
            pad: 1,
        },
    ),
];

fn conv(r: &Row, name: &str, relu: bool) -> Op {
    Op::Conv(Conv {
        weight: format!("{name}.weight"),
        bn: format!("{name}.bn"),
        in_channels: r.cin,
        out_channels: r.cout,
        groups: r.groups,
        kernel: r.kernel,
        stride: r.stride,
        pad: r.pad,
        temporal: r.temporal,
        relu,
        input_nchw: r.nchw,
        pre_act: None,
    })
}

/// Conv `b` of the input, with conv `a` of the input (no ReLU) as its residual when the row
/// asks for one; BatchNorm with non-trivial statistics on both.
fn engine(ctx: &Arc<GpuContext>, r: &Row, rng: &mut Rng) -> Engine {
    let mut tensors = Vec::new();
    for name in ["a", "b"] {
        let (cout, cin, k) = (r.cout, r.cin / r.groups, r.kernel);
        tensors.extend(match r.temporal.kernel {
            1 => conv_tensors(rng, name, cout, cin, k),
            kt => conv3d_tensors(rng, name, [cout, cin, kt, k, k]),
        });
    }
    let mut g = Graph {
        input_channels: r.cin,
        ..Graph::default()
    };
    let x = g.new_value();
    g.input = x;
    let mut inputs = vec![x];
    if r.residual {
        inputs.push(g.push("a", conv(r, "a", false), vec![x]));
    }
    g.output = g.push("b", conv(r, "b", true), inputs);
    g.features = g.output;
    let weights =
        WeightsFile::from_bytes("tuning test", serialize_f32(&tensors, None).unwrap()).unwrap();
    Engine::from_graph(ctx.clone(), g, &weights).unwrap()
}

/// Every configuration the tuner may time for conv `b` (the whole tile space of both
/// kernels) and every split-K of each tiled one.
fn search_space(engine: &Engine, r: &Row) -> Vec<ConvConfig> {
    let problems = engine.conv_problems(r.size()).unwrap();
    let p = problems.iter().find(|(name, _)| name == "b").unwrap().1;
    let fit = DeviceFit::of(&engine.ctx.limits);
    let mut space = ConvConfig::candidates(&p, &fit);
    let splits: Vec<ConvConfig> = space.iter().flat_map(|c| c.splits_of(&p, &fit)).collect();
    space.extend(splits);
    space
}

/// The bound of [`check_row`]: f32 1e-5 (see `kernels`). In f16 the reference reads the very
/// values the kernel reads (the input rounded to f16 as the upload rounds it, the weights read
/// back as stored, the residual conv's output rounded as the GPU stores it), so what remains
/// is the f16 rounding of the output (≤ 2⁻¹¹ ≈ 4.9e-4 of a value) plus, where the GPU's f32
/// sum of the residual lands on the other side of a rounding boundary, one f16 step of the
/// residual (≤ 9.8e-4): 2e-3. An indexing, layout or epilogue error is O(1).
fn row_tolerance(ctx: &GpuContext) -> f64 {
    match ctx.precision {
        Precision::F32 => 1e-5,
        Precision::F16 => 2e-3,
    }
}

/// Runs conv `b` of row `r` under a wide sample of its search space (every algorithm, 16
/// configurations spread over the tiles, 6 split-K ones; each compiles anew on a fresh
/// machine's lavapipe, so the whole space would take many minutes) and checks each against the
/// CPU reference; returns how many ran and the worst relative error. Every configuration of
/// the space is compiled through naga (`shaders::every_tuning_candidate_compiles`), and the
/// tuner checks its winner against the reference before keeping it.
fn check_row(
    ctx: &Arc<GpuContext>,
    r: &Row,
    row: usize,
    seen: &mut HashSet<ConvConfig>,
) -> (usize, f64) {
    check_row_of(ctx, r, row, seen, &|space| sample_of(space, 16, 6))
}

/// [`check_row`] under the configurations `pick` keeps of the search space.
fn check_row_of(
    ctx: &Arc<GpuContext>,
    r: &Row,
    row: usize,
    seen: &mut HashSet<ConvConfig>,
    pick: &dyn Fn(Vec<ConvConfig>) -> Vec<ConvConfig>,
) -> (usize, f64) {
    let seed = 77 + row as u64;
    let mut rng = Rng::new(seed);
    let engine = engine(ctx, r, &mut rng);
    let size = r.size();
    let x = rng.vec(size.n * r.cin * size.t * size.h * size.w, -1.0, 1.0);
    // What the kernels read in this precision (the identity in f32).
    let x = ctx.precision.round(&x);
    let problems: BTreeMap<String, _> = engine.conv_problems(size).unwrap().into_iter().collect();
    let reference = |name: &str, residual: Option<&[f32]>| {
        let p = problems[name];
        let (wk, bias) = engine.layer_weights(name).unwrap();
        let rows: Vec<usize> = (0..p.m()).collect();
        conv_rows(&p, &x, &wk, &bias, residual, &rows)
    };
    let a = r
        .residual
        .then(|| ctx.precision.round(&reference("a", None)));
    let want = reference("b", a.as_deref());
    let tol = row_tolerance(ctx);
    let key = problems["b"].key();
    let (mut count, mut worst) = (0, 0f64);
    let space = search_space(&engine, r);
    // The late layer and the clip layer are the split-K cases: they must get splits.
    let splits = space.iter().filter(|c| c.split_k > 1).count();
    assert!((row != 0 && r.t == 1) || splits >= 3, "{r:?}: {space:?}");
    // A 1×1 conv with channels in multiples of 4 gets both GEMM kernels' blockings.
    let gemm = space.iter().filter(|c| c.algo == ConvAlgo::Gemm).count();
    let gemm_tiled = space
        .iter()
        .filter(|c| c.algo == ConvAlgo::GemmTiled)
        .count();
    let eligible = r.kernel == 1 && r.cin.is_multiple_of(4) && r.cout.is_multiple_of(4);
    assert_eq!(eligible, gemm >= 5 && gemm_tiled >= 10, "{r:?}: {space:?}");
    let space = pick(space);
    for config in space {
        if !seen.insert(config) && ctx.checked_shaders {
            continue;
        }
        engine
            .set_conv_configs(BTreeMap::from([(key.clone(), config)]))
            .unwrap();
        let got = engine.run_at(&x, size, Output::Logits).unwrap();
        let err = relative_error(&got, &want);
        assert!(
            err <= tol,
            "{r:?} under {} (checked shaders: {}, {}): relative error {err:.3e}",
            config.describe(),
            ctx.checked_shaders,
            ctx.precision
        );
        worst = worst.max(err);
        count += 1;
    }
    (count, worst)
}

/// Rows `rows` under [`check_row`]'s sample of their search spaces, production shaders.
fn check_rows(rows: std::ops::Range<usize>) {
    let start = std::time::Instant::now();
    let Some(ctx) = gpu(false) else { return };
    let (mut count, mut worst) = (0, 0f64);
    let mut seen = HashSet::new();
    for i in rows {
        let (c, e) = check_row(&ctx, &ROWS[i], i, &mut seen);
        count += c;
        worst = worst.max(e);
    }
    eprintln!(
        "{count} runs of {} configurations, worst relative error \
         {worst:.2e}, {:.1?}",
        seen.len(),
        start.elapsed()
    );
}

// Production shaders: a wide sample of every row's space, a test per row so the two test threads
// share the work (each row compiles its own specialisations: the suite's longest tests).
#[test]
fn tuning_candidates_match_the_reference_late_layer_split_k() {
    check_rows(0..1);
}

#[test]
fn tuning_candidates_match_the_reference_pointwise() {
    check_rows(1..2);
}

#[test]
fn tuning_candidates_match_the_reference_stem() {
    check_rows(2..3);
}

#[test]
fn tuning_candidates_match_the_reference_projection_with_residual() {
    check_rows(3..4);
}

#[test]
fn tuning_candidates_match_the_reference_gemm() {
    check_rows(4..5);
}

#[test]
fn tuning_candidates_match_the_reference_grouped() {
    check_rows(5..7);
}

#[test]
fn tuning_candidates_match_the_reference_over_frames() {
    check_rows(7..8);
}

/// `spread` configurations of a search space spread over it, the first of each algorithm (the
/// direct kernels, the GEMMs, Winograd's tile sides, whichever the row has) and the first
/// `splits` split-K ones, so every row checks every algorithm and, where it has them,
/// split-K's f32 partial sums.
fn sample_of(space: Vec<ConvConfig>, spread: usize, splits: usize) -> Vec<ConvConfig> {
    let (split, whole): (Vec<_>, Vec<_>) = space.into_iter().partition(|c| c.split_k > 1);
    let step = whole.len().div_ceil(spread).max(1);
    let mut picked: Vec<ConvConfig> = whole.iter().copied().step_by(step).collect();
    for c in whole {
        if !picked.iter().any(|p| p.algo == c.algo) {
            picked.push(c);
        }
    }
    let split_step = split.len().div_ceil(splits).max(1);
    picked.extend(split.into_iter().step_by(split_step));
    picked
}

/// The few configurations the f16 and checked-shader tests run per row.
fn few(space: Vec<ConvConfig>) -> Vec<ConvConfig> {
    sample_of(space, 4, 2)
}

/// f16 (activations and weights stored as f16, f32 arithmetic): every row under a sample of
/// its search space, in both f16 configurations (each conv kernel default, checked shaders on
/// one of them), against the CPU reference on the same f16 values.
#[test]
fn tuning_candidates_match_the_reference_in_f16() {
    let start = std::time::Instant::now();
    let (mut count, mut worst, mut splits) = (0, 0f64, 0);
    for mode in common::F16_MODES {
        let Some(ctx) = common::gpu_mode(mode) else {
            return;
        };
        assert_eq!(ctx.precision, Precision::F16);
        for (i, r) in ROWS.iter().enumerate() {
            let mut seen = HashSet::new();
            let (c, e) = check_row_of(&ctx, r, i, &mut seen, &few);
            splits += seen.iter().filter(|c| c.split_k > 1).count();
            count += c;
            worst = worst.max(e);
        }
    }
    // The f16 path really ran: exact f32 would leave ~1e-7.
    assert!(
        worst > 1e-5,
        "worst relative error {worst:.2e}: was this f16?"
    );
    assert!(splits >= 4, "split-K configurations checked: {splits}");
    eprintln!(
        "f16: {count} runs, {splits} split-K, worst relative error {worst:.2e}, {:.1?}",
        start.elapsed()
    );
}

/// Checked shaders: every row under a sample of its search space ([`sample_of`]: every
/// algorithm, spread tiles, split-K). Every configuration runs above with production shaders,
/// and checked shaders only add wgpu's own guards to the same code: a sample shows the
/// kernels stay in bounds under them, at a fraction of the compiles (on a fresh machine each
/// configuration compiles anew on lavapipe: every one of them would add minutes).
#[test]
fn tuning_configurations_match_the_reference_with_checked_shaders() {
    let start = std::time::Instant::now();
    let Some(ctx) = gpu(true) else { return };
    let (mut count, mut worst) = (0, 0f64);
    for (i, r) in ROWS.iter().enumerate() {
        let mut seen = HashSet::new();
        let (c, e) = check_row_of(&ctx, r, i, &mut seen, &few);
        count += c;
        worst = worst.max(e);
    }
    eprintln!(
        "checked: {count} runs, worst relative error {worst:.2e}, {:.1?}",
        start.elapsed()
    );
}

#[test]
fn tune_picks_verified_winners_and_the_cache_carries_them() {
    let Some(ctx) = gpu(false) else { return };
    let a = arch::with_widths(arch::BlockKind::Basic, &[1, 1], 8, 10);
    let weights = synthetic_weights(&a, 3).unwrap();
    let engine = Engine::load_on(ctx.clone(), &weights).unwrap();
    let (n, h, w) = (1, 24, 24);
    let report = engine
        .tune(
            InputSize::image(n, h, w),
            TuneOptions::default(),
            &mut |_, _, _| {},
        )
        .unwrap();
    let distinct: std::collections::BTreeSet<String> = engine
        .conv_problems(InputSize::image(n, h, w))
        .unwrap()
        .iter()
        .map(|(_, p)| p.key())
        .collect();
    assert_eq!(report.shapes.len(), distinct.len());
    for s in &report.shapes {
        assert!(s.best_ms <= s.default_ms, "{s:?}");
        assert!(s.best_ms > 0.0 && s.best_ms.is_finite(), "{s:?}");
        assert!(s.verify_error <= 1e-4, "{s:?}");
        assert!(s.tried >= 2 && s.rejected.is_empty(), "{s:?}");
    }
    let (default_ms, best_ms) = report.totals();
    assert!(best_ms <= default_ms);

    // Into a cache directory, and out again in a new engine on this adapter.
    let dir = common::scratch("tuning-cache");
    let mut cache = TuneCache::empty();
    cache.record(&ctx.info, ctx.precision, &report);
    cache.save(&TuneCache::path(&dir)).unwrap();
    let options = GpuOptions {
        disk_cache: DiskCache::Dir(dir.clone()),
        ..GpuOptions::with_checks(false)
    };
    let tuned = Engine::load(&weights, &options).unwrap();
    for (_, p) in tuned.conv_problems(InputSize::image(n, h, w)).unwrap() {
        let s = report.shapes.iter().find(|s| s.key == p.key()).unwrap();
        assert_eq!(tuned.conv_config(&p), s.best, "{}", p.key());
    }
    // A forced kernel overrides the cache.
    let forced = Engine::load(
        &weights,
        &GpuOptions {
            prefer_registers: Some(false),
            ..options
        },
    )
    .unwrap();
    for (_, p) in forced.conv_problems(InputSize::image(n, h, w)).unwrap() {
        assert_ne!(
            forced.conv_config(&p).algo,
            ConvAlgo::Registers,
            "{}",
            p.key()
        );
    }
    // Tuned and default networks agree.
    let x = Rng::new(5).vec(3 * h * w, -1.0, 1.0);
    let got = tuned.run(&x, n, h, w, Output::Logits).unwrap();
    let want = engine.run(&x, n, h, w, Output::Logits).unwrap();
    assert!(relative_error(&got, &want) <= 1e-5);
    std::fs::remove_dir_all(&dir).unwrap();
}
