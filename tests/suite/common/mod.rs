//! Shared test set-up: one device per shader mode for the whole test binary, and the
//! golden fixtures.
#![allow(dead_code)]

pub mod specialisations;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use resnet_wgpu::gpu::disk_cache::DiskCache;
use resnet_wgpu::{AdapterChoice, GpuContext, GpuOptions};

/// Both shader modes the suite runs in: runtime bounds checks off (production) and on.
pub const MODES: [bool; 2] = [false, true];

/// A test configuration: shader bounds checks, and which conv kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    pub checked: bool,
    /// The register-only conv kernel (what CPU adapters get) instead of the tiled one.
    pub registers: bool,
    /// Activations and weights stored as f16 (`--precision f16`).
    pub f16: bool,
}

/// Every configuration, so both conv kernels are tested on any adapter, checked and not.
pub const ALL_MODES: [Mode; 4] = [
    Mode {
        checked: false,
        registers: false,
        f16: false,
    },
    Mode {
        checked: false,
        registers: true,
        f16: false,
    },
    Mode {
        checked: true,
        registers: false,
        f16: false,
    },
    Mode {
        checked: true,
        registers: true,
        f16: false,
    },
];

/// The f16 configurations: each conv kernel once, one with checked shaders and one without.
pub const F16_MODES: [Mode; 2] = [
    Mode {
        checked: false,
        registers: true,
        f16: true,
    },
    Mode {
        checked: true,
        registers: false,
        f16: true,
    },
];

/// The device for one [`Mode`] (see [`gpu`] for what happens without an adapter).
pub fn gpu_mode(mode: Mode) -> Option<Arc<GpuContext>> {
    static CTX: [OnceLock<Option<Arc<GpuContext>>>; 8] = [const { OnceLock::new() }; 8];
    CTX[mode.f16 as usize * 4 + mode.checked as usize * 2 + mode.registers as usize]
        .get_or_init(|| {
            let options = GpuOptions {
                checked_shaders: mode.checked,
                prefer_registers: Some(mode.registers),
                precision: match mode.f16 {
                    true => resnet_wgpu::Precision::F16,
                    false => resnet_wgpu::Precision::F32,
                },
                // Tests run the configurations they name, whatever a user has tuned.
                disk_cache: DiskCache::Off,
                ..Default::default()
            };
            open(&options)
        })
        .clone()
}

/// The register-kernel device of `backend` (`"vulkan"` or `"gl"`), opened once; like
/// [`gpu`], it fails under CI when the backend has no adapter.
pub fn gpu_backend(backend: &'static str) -> Option<Arc<GpuContext>> {
    static CTX: [OnceLock<Option<Arc<GpuContext>>>; 2] = [OnceLock::new(), OnceLock::new()];
    let slot = match backend {
        "vulkan" => 0,
        "gl" => 1,
        other => panic!("no test device for backend {other}"),
    };
    CTX[slot]
        .get_or_init(|| {
            let ctx = open(&GpuOptions {
                adapter: AdapterChoice {
                    name: None,
                    backend: Some(backend.into()),
                },
                // What CPU adapters (lavapipe, llvmpipe) run by default, on both backends.
                prefer_registers: Some(true),
                disk_cache: DiskCache::Off,
                ..Default::default()
            })?;
            assert_eq!(ctx.info.backend, backend, "{}", ctx.info);
            Some(ctx)
        })
        .clone()
}

/// A fresh device with `options` (a test that needs its own disk cache); like [`gpu`], it
/// fails under CI when there is no adapter.
pub fn gpu_with(options: &GpuOptions) -> Option<Arc<GpuContext>> {
    open(options)
}

/// A fresh device with `options` and `limits` imposed instead of the adapter's; like [`gpu`],
/// it fails under CI when there is no adapter.
pub fn gpu_with_limits(options: &GpuOptions, limits: wgpu::Limits) -> Option<Arc<GpuContext>> {
    open_with(options, Some(limits))
}

fn open(options: &GpuOptions) -> Option<Arc<GpuContext>> {
    open_with(options, None)
}

fn open_with(options: &GpuOptions, limits: Option<wgpu::Limits>) -> Option<Arc<GpuContext>> {
    let opened = match limits {
        Some(limits) => GpuContext::with_limits(options, limits),
        None => GpuContext::new(options),
    };
    match opened {
        Ok(c) => {
            eprintln!("GPU tests on {} ({options:?})", c.info);
            Some(Arc::new(c))
        }
        Err(e) => {
            if std::env::var_os("CI").is_some() {
                panic!("no GPU adapter under CI: {e}");
            }
            eprintln!("skipping GPU test: {e}");
            None
        }
    }
}

/// The device for `checked` shaders. Without an adapter the test is skipped on a developer
/// machine but FAILS under CI (`CI` set), so CI can never pass by skipping.
pub fn gpu(checked: bool) -> Option<Arc<GpuContext>> {
    static CTX: [OnceLock<Option<Arc<GpuContext>>>; 2] = [OnceLock::new(), OnceLock::new()];
    CTX[checked as usize]
        .get_or_init(|| {
            open(&GpuOptions {
                disk_cache: DiskCache::Off,
                ..GpuOptions::with_checks(checked)
            })
        })
        .clone()
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Deterministic pseudo-random numbers (xorshift), so tests need no extra crate.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
    }
    pub fn range(&mut self, lo: usize, hi_inclusive: usize) -> usize {
        lo + (self.next_u64() % (hi_inclusive - lo + 1) as u64) as usize
    }
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

/// Safetensors bytes for `(name, shape, values, dtype)` with F32, F16 or BF16 storage; values
/// are rounded to the dtype (read them back with `WeightsFile::to_f32` for the exact stored
/// values).
pub fn encode_tensors(tensors: &[(String, Vec<usize>, Vec<f32>, safetensors::Dtype)]) -> Vec<u8> {
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(name, _, v, dtype)| match dtype {
            Dtype::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Dtype::F16 => v
                .iter()
                .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                .collect(),
            Dtype::BF16 => v
                .iter()
                .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
                .collect(),
            other => panic!("{name}: unsupported test dtype {other:?}"),
        })
        .collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _, dtype), b)| {
            (
                name.clone(),
                TensorView::new(*dtype, shape.clone(), b).expect("tensor view"),
            )
        })
        .collect();
    safetensors::tensor::serialize(views, None).expect("serialize")
}

/// Runs the `resnet` binary with `args`; a run that takes over two minutes is killed and
/// fails the test, so a hang (e.g. on a FIFO) is a failure rather than a stuck suite.
pub fn resnet(args: &[&str]) -> std::process::Output {
    resnet_with(std::process::Command::new(env!("CARGO_BIN_EXE_resnet")).args(args))
}

/// Points the CLI's default cache directory (the user's, where it would keep tuning results
/// and compiled pipelines) at a folder of this test process, unless the test chose one.
pub fn isolate_caches(cmd: &mut std::process::Command) -> &mut std::process::Command {
    let env = resnet_wgpu::gpu::disk_cache::CACHE_DIR_ENV;
    if !cmd.get_envs().any(|(k, _)| k == env) {
        cmd.env(
            env,
            std::env::temp_dir().join(format!("resnet-test-cache-{}", std::process::id())),
        );
    }
    cmd
}

/// Like [`resnet`] with a prepared command (environment, user id...).
pub fn resnet_with(cmd: &mut std::process::Command) -> std::process::Output {
    use std::io::Read;
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut child = isolate_caches(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start resnet");
    // Drain the pipes on threads so a chatty child cannot block on a full pipe.
    let mut out_pipe = child.stdout.take().expect("stdout");
    let mut err_pipe = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out_pipe.read_to_end(&mut b);
        b
    });
    let err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err_pipe.read_to_end(&mut b);
        b
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for resnet") {
            break s;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("resnet {cmd:?} hung for two minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Asserts the documented failure shape: exit code 2, one `error: …` line on stderr that
/// contains every one of `needles`, and no panic.
pub fn assert_user_error(what: &str, o: &std::process::Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{what}: exit code; stderr: {err}");
    assert!(err.starts_with("error: "), "{what}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    for n in needles {
        assert!(err.contains(n), "{what}: `{n}` not in: {err}");
    }
}

/// A fresh folder for one test's files (removed by the test when it passes).
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("resnet-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// Named tensors in f32, as `serialize_f32` takes them.
pub type Tensors = Vec<(String, Vec<usize>, Vec<f32>)>;

pub const BN_NAMES: [&str; 4] = ["weight", "bias", "running_mean", "running_var"];
/// γ, β, mean and variance drawn from these ranges (variance well away from 0).
pub const BN_RANGES: [(f32, f32); 4] = [(0.5, 1.5), (-0.5, 0.5), (-0.5, 0.5), (0.1, 2.0)];

/// Conv weight `(C_out, C_in, k, k)` and BatchNorm tensors for node `name`.
pub fn conv_tensors(rng: &mut Rng, name: &str, cout: usize, cin: usize, k: usize) -> Tensors {
    conv_tensors_shaped(rng, name, vec![cout, cin, k, k])
}

/// [`conv_tensors`] for a 3-D conv: the weight is `[C_out, C_in/G, kT, kH, kW]`.
pub fn conv3d_tensors(rng: &mut Rng, name: &str, dims: [usize; 5]) -> Tensors {
    conv_tensors_shaped(rng, name, dims.to_vec())
}

fn conv_tensors_shaped(rng: &mut Rng, name: &str, dims: Vec<usize>) -> Tensors {
    let cout = dims[0];
    let w = rng.vec(dims.iter().product(), -1.0, 1.0);
    let mut t = vec![(format!("{name}.weight"), dims, w)];
    t.extend(bn_tensors(rng, &format!("{name}.bn"), cout));
    t
}

/// A one-conv graph with seeded weights and non-trivial BatchNorms: `conv` over the input
/// (2-D or over frames), its `bn` folded unless empty, its `pre_act` BatchNorm made when it
/// has one; with `residual`, a 1×1 (×1) conv of the same input (and pre-activation) is added
/// in the epilogue (`conv` must pad "same" for the shapes to agree).
pub struct OneConv {
    pub graph: resnet_wgpu::graph::Graph,
    pub weights: resnet_wgpu::WeightsFile,
}

pub fn one_conv(rng: &mut Rng, conv: resnet_wgpu::graph::Conv, residual: bool) -> OneConv {
    use resnet_wgpu::graph::{Conv, Graph, Op, Window};
    let mut g = Graph::default();
    g.input = g.new_value();
    g.input_channels = conv.in_channels;
    let mut inputs = vec![g.input];
    let (cout, cin, k, kt) = (
        conv.out_channels,
        conv.group_in_channels(),
        conv.kernel,
        conv.temporal.kernel,
    );
    let mut tensors = match conv.temporal.is_point() {
        true => conv_tensors(rng, "conv", cout, cin, k),
        false => conv3d_tensors(rng, "conv", [cout, cin, kt, k, k]),
    };
    if conv.bn.is_empty() {
        tensors.retain(|(name, _, _)| !name.starts_with("conv.bn."));
    }
    if let Some(bn) = &conv.pre_act {
        tensors.extend(bn_tensors(rng, bn, conv.in_channels));
    }
    if residual {
        let shortcut = Conv {
            weight: "short.weight".into(),
            bn: "short.bn".into(),
            kernel: 1,
            pad: 0,
            groups: 1,
            temporal: Window {
                kernel: 1,
                stride: conv.temporal.stride,
                pad: 0,
            },
            relu: false,
            ..conv.clone()
        };
        inputs.push(g.push("short", Op::Conv(shortcut), vec![g.input]));
        tensors.extend(match conv.temporal.is_point() {
            true => conv_tensors(rng, "short", cout, conv.in_channels, 1),
            false => conv3d_tensors(rng, "short", [cout, conv.in_channels, 1, 1, 1]),
        });
    }
    g.output = g.push("conv", Op::Conv(conv), inputs);
    g.features = g.output;
    let bytes = resnet_wgpu::weights::serialize_f32(&tensors, None).unwrap();
    OneConv {
        graph: g,
        weights: resnet_wgpu::WeightsFile::from_bytes("one conv", bytes).unwrap(),
    }
}

/// BatchNorm tensors `{bn}.weight/bias/running_mean/running_var` for `c` channels.
pub fn bn_tensors(rng: &mut Rng, bn: &str, c: usize) -> Tensors {
    BN_NAMES
        .iter()
        .zip(BN_RANGES)
        .map(|(p, (lo, hi))| (format!("{bn}.{p}"), vec![c], rng.vec(c, lo, hi)))
        .collect()
}

/// How far a network may be from PyTorch's f32 output on `ctx`: 1e-4 relative in f32; 1e-2
/// in f16, where every activation and weight is rounded to 11 significant bits (relative
/// rounding ≤ 2⁻¹¹ ≈ 4.9e-4 per value), once per layer: over the 20–150 layers of the
/// fixtures these random-signed errors grow like the square root of the depth, measured at
/// 0.7e-3–4e-3, and an indexing or layout bug is O(1).
pub fn end_to_end_tolerance(ctx: &GpuContext) -> f64 {
    match ctx.precision {
        resnet_wgpu::Precision::F32 => 1e-4,
        resnet_wgpu::Precision::F16 => 1e-2,
    }
}

/// Index of the largest value of each of the `rows` rows of `v`.
pub fn top1(v: &[f32], rows: usize) -> Vec<usize> {
    v.chunks(v.len() / rows.max(1))
        .map(|row| {
            row.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(i, _)| i)
        })
        .collect()
}

/// One PyTorch fixture end to end on `ctx`: the engine's logits for the stored input against
/// PyTorch's (`logits`, ≤ [`end_to_end_tolerance`] relative, never NaN; in f16 also the same
/// top-1 class) and its pooled features against the CPU reference's. `what` names the case
/// (and mode) in messages.
pub fn network_matches_pytorch(
    ctx: &Arc<GpuContext>,
    what: &str,
    network: resnet_wgpu::Network,
    weights: &resnet_wgpu::WeightsFile,
    files: (&std::path::Path, &std::path::Path),
    size: resnet_wgpu::graph::InputSize,
) {
    let tol = end_to_end_tolerance(ctx);
    network_matches_pytorch_within(ctx, what, (network, weights), files, size, tol);
}

/// [`network_matches_pytorch`] with the logits' bound `tol`. In f16 the pooled features
/// (compared with the CPU reference) may be twice as far: they are the last stage's f16
/// activations averaged, without the head's sum over 2048 features that averages the
/// rounding out of the logits (measured: up to 1.15e-2, seresnet50, whose logits are 7e-3).
pub fn network_matches_pytorch_within(
    ctx: &Arc<GpuContext>,
    what: &str,
    (network, weights): (resnet_wgpu::Network, &resnet_wgpu::WeightsFile),
    (input, logits): (&std::path::Path, &std::path::Path),
    size: resnet_wgpu::graph::InputSize,
    tol: f64,
) {
    use resnet_wgpu::reference::{relative_error, run_clip_graph};
    use resnet_wgpu::{npy, Engine, Output};
    let graph = network.graph.clone();
    let engine = Engine::from_network(ctx.clone(), network, weights).unwrap();
    let x = npy::read_f32(input).unwrap();
    let want = npy::read_f32(logits).unwrap();
    let got = engine.run_at(&x.data, size, Output::Logits).unwrap();
    assert!(got.iter().all(|v| v.is_finite()), "{what}: NaN");
    let err = relative_error(&got, &want.data);
    eprintln!("{what}: relative error {err:.2e}");
    assert!(err <= tol, "{what}: relative error {err:.2e}");
    if ctx.precision == resnet_wgpu::Precision::F16 {
        let top1 = |v: &[f32]| top1(v, size.n);
        assert_eq!(top1(&got), top1(&want.data), "{what}: top-1 differs");
    }
    let dims = [size.n, size.t, size.h, size.w];
    let (_, want_features) = run_clip_graph(&graph, weights, &x.data, dims).unwrap();
    let features = engine.run_at(&x.data, size, Output::Features).unwrap();
    let err = relative_error(&features, &want_features);
    let features_tol = match ctx.precision {
        resnet_wgpu::Precision::F32 => tol,
        resnet_wgpu::Precision::F16 => 2.0 * tol,
    };
    eprintln!("{what} features: relative error {err:.2e}");
    assert!(
        err <= features_tol,
        "{what} features: relative error {err:.2e}"
    );
}

/// `conv` (and with `residual`, the 1×1 shortcut [`one_conv`] adds) on a seeded input of
/// `size`, values in `[-range, range]`: the GPU against the CPU reference, ≤ 1e-5 relative.
pub fn one_conv_matches_reference(
    ctx: &Arc<GpuContext>,
    rng: &mut Rng,
    (conv, residual): (resnet_wgpu::graph::Conv, bool),
    size: resnet_wgpu::graph::InputSize,
    range: f32,
    what: &str,
) {
    use resnet_wgpu::reference::{relative_error, run_clip_graph};
    use resnet_wgpu::{Engine, Output};
    let one = one_conv(rng, conv.clone(), residual);
    let c = one.graph.input_channels;
    let x = rng.vec(size.n * c * size.t * size.h * size.w, -range, range);
    let dims = [size.n, size.t, size.h, size.w];
    let (want, _) = run_clip_graph(&one.graph, &one.weights, &x, dims).unwrap();
    let engine = Engine::from_graph(ctx.clone(), one.graph, &one.weights).unwrap();
    let got = engine.run_at(&x, size, Output::Logits).unwrap();
    let err = relative_error(&got, &want);
    let what = format!("{what}: {conv:?} residual {residual} at {size:?}");
    assert!(
        got.len() == want.len() && err <= 1e-5,
        "{what}: error {err:.2e}"
    );
}
