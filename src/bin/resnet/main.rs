//! `resnet`: run, classify and inspect ResNet-family networks on any GPU through WebGPU.

// First, so its `outln!`/`errln!` macros are in scope in the modules below.
#[macro_use]
mod stdio;

mod bench;
mod classify;
mod classify_ensemble;
mod classify_video;
mod ensemble;
mod ensemble_tools;
mod info;
mod info_video;
mod inputs;
mod tune;

use ensemble::EnsembleArgs;
use inputs::{check_output_path, check_weights, parse_size};

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use resnet_wgpu::gpu::disk_cache::DiskCache;
use resnet_wgpu::graph::InputSize;
use resnet_wgpu::{
    fsutil, npy, reference, AdapterChoice, Engine, Error, GpuOptions, Output, Precision,
    WeightsFile,
};

#[derive(Parser)]
#[command(
    name = "resnet",
    version,
    about = "ResNet-family inference on any GPU through WebGPU"
)]
struct Cli {
    /// Use the adapter whose name contains this (case-insensitive); else WGPU_ADAPTER_NAME.
    #[arg(long, global = true)]
    adapter: Option<String>,
    /// vulkan, metal, dx12 or gl; else WGPU_BACKEND.
    #[arg(long, global = true)]
    backend: Option<String>,
    /// Create shaders with wgpu's runtime bounds checks (slower; a safety net).
    #[arg(long, global = true)]
    checked_shaders: bool,
    /// Storage of activations and weights on the GPU: f32, or f16 (half the memory traffic,
    /// f32 arithmetic, about 1e-2 from PyTorch; needs the adapter's SHADER_F16). Tuned
    /// kernels are kept per precision.
    #[arg(long, global = true, value_enum, default_value = "f32")]
    precision: PrecisionFlag,
    /// Convolution kernel: auto, tiled (workgroup memory) or registers (no barriers).
    #[arg(long, global = true, value_enum, default_value = "auto")]
    conv_kernel: ConvKernelFlag,
    /// Directory for tuning results and compiled pipelines (default: $RESNET_WGPU_CACHE_DIR,
    /// else the user cache directory, e.g. ~/.cache/resnet-wgpu).
    #[arg(long, global = true)]
    cache_dir: Option<PathBuf>,
    /// Neither read nor write caches on disk: heuristic kernels, pipelines compiled afresh.
    #[arg(long, global = true)]
    no_cache: bool,
    /// More logging (-v info, -vv debug); RUST_LOG also works.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a network on a float32 NCHW .npy tensor (NCTHW clips for video weights) and write
    /// the raw logits as .npy.
    Run {
        /// safetensors weights (torchvision, timm or Hugging Face layout); the architecture
        /// is read from the file (and a config.json beside it). Given several times: an
        /// ensemble, every member fed the same tensor, its outputs blended (--combine).
        #[arg(long, required = true)]
        weights: Vec<PathBuf>,
        #[command(flatten)]
        ensemble: EnsembleArgs,
        /// float32 (N, 3, H, W) .npy; for video weights (N, 3, T, H, W) clips.
        #[arg(long)]
        input: PathBuf,
        /// Where to write float32 (N, classes) logits (or (N, C) features with --features, or
        /// for a checkpoint without a head).
        #[arg(long)]
        output: PathBuf,
        /// Write the pooled penultimate features instead of the logits.
        #[arg(long)]
        features: bool,
        /// Also run the CPU reference and print the relative error.
        #[arg(long)]
        verify: bool,
    },
    /// Classify images and videos (files or folders) and print the top classes.
    Classify(classify::ClassifyArgs),
    /// Describe the network in a weights file: architecture, parameters, FLOPs, plan.
    Info {
        /// safetensors weights; without it, the embedded default model. Given several
        /// times: an ensemble, its members (each at its preset's crop unless --size) and blend.
        #[arg(long)]
        weights: Vec<PathBuf>,
        #[command(flatten)]
        ensemble: EnsembleArgs,
        /// Input size for the plan statistics, HxW (default 224x224; for video weights,
        /// the crop of their preset).
        #[arg(long, value_parser = parse_size)]
        size: Option<(usize, usize)>,
        /// Frames per clip for the plan statistics (video weights; default: the weights'
        /// own, else 16 for torchvision and 8 for pytorchvideo).
        #[arg(long)]
        frames: Option<usize>,
        #[arg(long, default_value_t = 1)]
        batch: usize,
        #[arg(long)]
        json: bool,
    },
    /// Time every dispatch of a network (GPU timestamps) and show where the time goes.
    Profile(bench::ProfileArgs),
    /// Measure latency and throughput per batch size.
    Bench(bench::BenchArgs),
    /// Time each conv shape's kernel configurations on this adapter and cache the fastest.
    Tune(tune::TuneArgs),
    /// List every adapter wgpu can see.
    Adapters {
        #[arg(long)]
        json: bool,
    },
}

/// Which convolution kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ConvKernelFlag {
    /// On CPU adapters: Winograd F(4×4) for stride-1 3×3 convs, `gemm` for 1×1 convs,
    /// `registers` for the rest; on GPUs: `tiled` (workgroup memory), split-K where few tiles.
    Auto,
    Tiled,
    /// Register-only direct kernel, no barriers, Winograd off (1×1 convs still take the
    /// register-only `gemm`; `register` is accepted too).
    #[value(alias = "register")]
    Registers,
}

/// How activations and weights are stored (`resnet_wgpu::Precision`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum PrecisionFlag {
    F32,
    F16,
}

impl From<PrecisionFlag> for Precision {
    fn from(flag: PrecisionFlag) -> Self {
        match flag {
            PrecisionFlag::F32 => Precision::F32,
            PrecisionFlag::F16 => Precision::F16,
        }
    }
}

fn gpu_options(cli: &Cli) -> GpuOptions {
    GpuOptions {
        adapter: AdapterChoice {
            name: cli.adapter.clone(),
            backend: cli.backend.clone(),
        },
        checked_shaders: cli.checked_shaders,
        prefer_registers: match cli.conv_kernel {
            ConvKernelFlag::Auto => None,
            ConvKernelFlag::Tiled => Some(false),
            ConvKernelFlag::Registers => Some(true),
        },
        winograd: Default::default(),
        disk_cache: match &cli.cache_dir {
            _ if cli.no_cache => DiskCache::Off,
            Some(dir) => DiskCache::Dir(dir.clone()),
            None => DiskCache::User,
        },
        precision: cli.precision.into(),
    }
}

/// On SIGINT or SIGTERM, removes the temporary file of a write in progress before exiting
/// (with 128 + the signal, as a shell reports a process the signal ended), so no `*.tmp`
/// is left behind.
fn remove_temporaries_on_signals() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        log::debug!("no signal handler: an interrupted write may leave a *.tmp file");
        return;
    };
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            for path in fsutil::remove_temporaries() {
                log::info!("removed {}", path.display());
            }
            std::process::exit(128 + signal);
        }
    });
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return usage_error(&e),
    };
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or(format!("resnet_wgpu={level},resnet={level}")),
    )
    .format_timestamp(None)
    .init();
    remove_temporaries_on_signals();
    let result = dispatch(cli).and_then(|()| {
        // Whatever is still buffered must reach the reader too, or fail here, not silently
        // at exit.
        std::io::Write::flush(&mut std::io::stdout())
            .map_err(|e| stdio::StreamError::flush(e).into())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

/// Help and version on standard output (exit code 0); usage errors as one `error:` line
/// naming what is wrong, with exit code 2 — `resnet` alone too, with the usage.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        return match e.print() {
            Ok(()) => ExitCode::SUCCESS,
            Err(io) => report(&stdio::StreamError::flush(io).into()),
        };
    }
    let text = e.render().to_string();
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ = stdio::err(format_args!(
            "error: a command is required\n\n{}",
            text.trim_end()
        ));
        return ExitCode::from(2);
    }
    // The message is the text before the usage; its lines (clap puts the missing arguments
    // one per line) joined into one.
    let message = text.split("\n\n").next().unwrap_or("invalid arguments");
    let line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let line = if line.starts_with("error:") {
        line
    } else {
        format!("error: {line}")
    };
    let _ = stdio::err(format_args!("{line}"));
    ExitCode::from(2)
}

/// The exit for an error: a closed standard stream quietly (its reader is gone), else one
/// `error:` line, exit code 2 for the user's mistakes and 1 for the rest.
fn report(e: &anyhow::Error) -> ExitCode {
    if let Some(stream) = e
        .chain()
        .find_map(|c| c.downcast_ref::<stdio::StreamError>())
    {
        if stream.is_closed_pipe() {
            return ExitCode::SUCCESS;
        }
        if !stream.on_stderr() {
            let _ = stdio::err(format_args!("error: {}", one_line(e)));
        }
        return ExitCode::from(1);
    }
    let user = e
        .chain()
        .find_map(|c| c.downcast_ref::<Error>())
        .is_none_or(Error::is_user_error);
    // Standard error itself may be closed or full: then there is no one to tell.
    let _ = stdio::err(format_args!("error: {}", one_line(e)));
    ExitCode::from(if user { 2 } else { 1 })
}

/// The error and its causes on one line, `outer: inner`, leaving out a cause its parent
/// already spells out (an `Error::Io` shows its `io::Error` and also has it as its source).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let options = gpu_options(&cli);
    match cli.command {
        Command::Run {
            weights,
            ensemble,
            input,
            output,
            features,
            verify,
        } => match &weights[..] {
            [one] => run(one, &input, &output, features, verify, &options),
            members => {
                if features {
                    bail!(Error::Usage(
                        "--features with several --weights: each member has its own embedding; \
                         run them one at a time"
                            .into()
                    ));
                }
                ensemble::run(members, &ensemble, (&input, &output), verify, &options)
            }
        },
        Command::Classify(args) => classify::classify(args, &options),
        Command::Profile(args) => bench::profile(args, &options),
        Command::Bench(args) => bench::bench(args, &options),
        Command::Tune(args) => tune::tune(args, &options),
        Command::Info {
            weights,
            ensemble,
            size,
            frames,
            batch,
            json,
        } => match &weights[..] {
            [] | [_] => info::info(
                weights.first().map(PathBuf::as_path),
                size,
                frames,
                batch,
                json,
                cli.precision.into(),
            ),
            members => {
                if frames.is_some() {
                    bail!(Error::Usage(
                        "--frames takes one --weights, not an ensemble".into()
                    ));
                }
                ensemble_tools::info(members, &ensemble, size, json)
            }
        },
        Command::Adapters { json } => {
            let list = resnet_wgpu::gpu::context::list_adapters(&options.adapter)?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                bail!(Error::NoAdapter(
                    " (on Linux without a GPU, install Mesa's lavapipe: scripts/setup.sh)".into()
                ));
            } else {
                for a in list {
                    outln!("{a}");
                }
            }
            Ok(())
        }
    }
}

fn run(
    weights: &Path,
    input: &Path,
    output: &Path,
    features: bool,
    verify: bool,
    options: &GpuOptions,
) -> anyhow::Result<()> {
    check_output_path(output, &[weights, input])?;
    let x = npy::read_f32(input)?;
    let file = WeightsFile::open(weights)?;
    let network = check_weights(&file)?;
    let video = network.model.is_video();
    let size = input_size(input, &x, video)?;
    // Shapes on the CPU first, so an input the network cannot take fails before the GPU.
    network
        .graph
        .shapes_for(size)
        .with_context(|| input.display().to_string())?;
    let t0 = Instant::now();
    let engine = Engine::load_network(network, &file, options)?;
    log::info!(
        "loaded {} on {} in {:.0} ms",
        engine.model.as_ref().map(|a| a.name()).unwrap_or_default(),
        engine.ctx.info,
        t0.elapsed().as_secs_f64() * 1e3
    );
    let which = if features {
        Output::Features
    } else {
        Output::Logits
    };
    let t1 = Instant::now();
    let y = engine.run_at(&x.data, size, which)?;
    log::info!(
        "inference ({:?}) in {:.1} ms (plan included)",
        x.shape,
        t1.elapsed().as_secs_f64() * 1e3
    );
    let n = size.n;
    npy::write_f32(output, &[n, y.len() / n], &y)?;
    if verify {
        let (logits, feats) = if !video {
            reference::run_graph(&engine.graph, &file, &x.data, n, size.h, size.w)?
        } else {
            let dims = [n, size.t, size.h, size.w];
            reference::run_clip_graph(&engine.graph, &file, &x.data, dims)?
        };
        let want = if features { feats } else { logits };
        outln!(
            "relative error vs CPU reference: {:.3e}",
            reference::relative_error(&y, &want)
        );
    }
    Ok(())
}

/// The input size of a `resnet run` tensor: `(N, 3, H, W)` images for image weights,
/// `(N, 3, T, H, W)` clips for video weights; anything else, an empty dimension or a
/// non-finite value is refused, naming the file.
pub(crate) fn input_size(path: &Path, x: &npy::NpyArray, video: bool) -> anyhow::Result<InputSize> {
    let refuse = |msg: String| Error::InputShape(format!("{}: {msg}", path.display()));
    let size = match (&x.shape[..], video) {
        (&[n, _, h, w], false) => InputSize::image(n, h, w),
        (&[n, _, t, h, w], true) => InputSize::clip(n, t, h, w),
        (&[_, _, _, _, _], false) => bail!(refuse(format!(
            "a 5-D (N, 3, T, H, W) clip tensor, shape {:?}, but the weights are an image \
             network, which takes (N, 3, H, W)",
            x.shape
        ))),
        (&[_, _, _, _], true) => bail!(refuse(format!(
            "a 4-D (N, 3, H, W) image tensor, shape {:?}, but the weights are a video \
             network, which takes (N, 3, T, H, W) clips",
            x.shape
        ))),
        (_, false) => bail!(refuse(format!(
            "expected a (N, 3, H, W) tensor, got shape {:?}",
            x.shape
        ))),
        (_, true) => bail!(refuse(format!(
            "expected a (N, 3, T, H, W) tensor, got shape {:?}",
            x.shape
        ))),
    };
    let layout = if video {
        "(N, 3, T, H, W)"
    } else {
        "(N, 3, H, W)"
    };
    if x.shape[1] != 3 {
        bail!(refuse(format!(
            "expected 3 channels {layout}, got shape {:?}",
            x.shape
        )));
    }
    if x.shape.contains(&0) {
        bail!(refuse(format!(
            "shape {:?} has an empty dimension",
            x.shape
        )));
    }
    // PyTorch would propagate a NaN into every logit of its item; say where it is instead.
    if let Some(i) = x.data.iter().position(|v| !v.is_finite()) {
        let count = x.data.iter().filter(|v| !v.is_finite()).count();
        let what = if video { "clip" } else { "image" };
        bail!(refuse(format!(
            "{count} NaN/Inf value(s), the first at element {i} ({what} {})",
            i / (x.data.len() / size.n)
        )));
    }
    Ok(size)
}
