//! `resnet`: run, classify and inspect ResNet-family networks on any GPU through WebGPU.

mod bench;
mod classify;
mod info;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use resnet_wgpu::model::{arch, synthetic::synthetic_weights};
use resnet_wgpu::{npy, reference, AdapterChoice, Engine, Error, GpuOptions, Output, WeightsFile};

/// The trained default model (see scripts/train_default.py), compiled in so `resnet classify`
/// works from any directory without a weights file.
pub const DEFAULT_WEIGHTS: &[u8] = include_bytes!("../../../weights/default.safetensors");

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
    /// Convolution kernel: auto, tiled (workgroup memory) or register (no barriers).
    #[arg(long, global = true, value_enum, default_value = "auto")]
    conv_kernel: ConvKernelFlag,
    /// More logging (-v info, -vv debug); RUST_LOG also works.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a network on a float32 NCHW .npy tensor and write the raw logits as .npy.
    Run {
        /// safetensors weights (torchvision, timm or Hugging Face layout); the architecture
        /// is read from the file (and a config.json beside it).
        #[arg(long)]
        weights: PathBuf,
        /// float32 (N, 3, H, W) .npy.
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
    /// Classify images (files or folders) and print the top classes.
    /// Classify images (files or folders) and print the top classes.
    Classify(classify::ClassifyArgs),
    /// Describe the network in a weights file: architecture, parameters, FLOPs, plan.
    Info {
        /// safetensors weights; without it, the embedded default model.
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Input size for the plan statistics, HxW.
        #[arg(long, default_value = "224x224", value_parser = parse_size)]
        size: (usize, usize),
        #[arg(long, default_value_t = 1)]
        batch: usize,
        #[arg(long)]
        json: bool,
    },
    /// Time every dispatch of a network (GPU timestamps) and show where the time goes.
    Profile(bench::ProfileArgs),
    /// Measure latency and throughput per batch size.
    Bench(bench::BenchArgs),
    /// List every adapter wgpu can see.
    Adapters {
        #[arg(long)]
        json: bool,
    },
}

pub fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("`{s}` is not a size like 224x224");
    let (h, w) = s.split_once(['x', 'X']).map_or((s, s), |p| p);
    let h: usize = h.trim().parse().map_err(|_| bad())?;
    let w: usize = w.trim().parse().map_err(|_| bad())?;
    if h == 0 || w == 0 {
        return Err(bad());
    }
    Ok((h, w))
}

/// Which convolution kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ConvKernelFlag {
    /// Register-only on CPU adapters, tiled with workgroup memory on GPUs.
    Auto,
    Tiled,
    Register,
}

fn gpu_options(cli: &Cli) -> GpuOptions {
    GpuOptions {
        adapter: AdapterChoice {
            name: cli.adapter.clone(),
            backend: cli.backend.clone(),
        },
        checked_shaders: cli.checked_shaders,
        register_kernels: match cli.conv_kernel {
            ConvKernelFlag::Auto => None,
            ConvKernelFlag::Tiled => Some(false),
            ConvKernelFlag::Register => Some(true),
        },
    }
}

/// Opens a weights file, or the embedded default model.
pub fn open_weights(path: Option<&Path>) -> anyhow::Result<WeightsFile> {
    Ok(match path {
        Some(p) => WeightsFile::open(p)?,
        None => WeightsFile::from_static("<embedded default model>", DEFAULT_WEIGHTS)?,
    })
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "{}",
                if first.starts_with("error:") {
                    first.to_string()
                } else {
                    format!("error: {first}")
                }
            );
            return ExitCode::from(2);
        }
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
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let user = e
                .chain()
                .find_map(|c| c.downcast_ref::<Error>())
                .map_or(true, Error::is_user_error);
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::from(if user { 2 } else { 1 })
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let options = gpu_options(&cli);
    match cli.command {
        Command::Run {
            weights,
            input,
            output,
            features,
            verify,
        } => run(&weights, &input, &output, features, verify, &options),
        Command::Classify(args) => classify::classify(args, &options),
        Command::Profile(args) => bench::profile(args, &options),
        Command::Bench(args) => bench::bench(args, &options),
        Command::Info {
            weights,
            size,
            batch,
            json,
        } => info::info(weights.as_deref(), size, batch, json),
        Command::Adapters { json } => {
            let list = resnet_wgpu::gpu::context::list_adapters(&options.adapter)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                bail!(Error::NoAdapter(
                    " (on Linux without a GPU, install Mesa's lavapipe: scripts/setup.sh)".into()
                ));
            } else {
                for a in list {
                    println!("{a}");
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
    if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            bail!(Error::Usage(format!(
                "{}: the output folder does not exist",
                output.display()
            )));
        }
    }
    let x = npy::read_f32(input)?;
    let [n, c, h, w] = x.shape[..] else {
        bail!(Error::InputShape(format!(
            "{}: expected a (N, 3, H, W) tensor, got shape {:?}",
            input.display(),
            x.shape
        )));
    };
    if c != 3 {
        bail!(Error::InputShape(format!(
            "{}: expected 3 channels (N, 3, H, W), got shape {:?}",
            input.display(),
            x.shape
        )));
    }
    let file = WeightsFile::open(weights)?;
    let t0 = Instant::now();
    let engine = Engine::load(&file, options)?;
    log::info!(
        "loaded {} on {} in {:.0} ms",
        engine.arch.as_ref().map(|a| a.name()).unwrap_or_default(),
        engine.ctx.info,
        t0.elapsed().as_secs_f64() * 1e3
    );
    let which = if features {
        Output::Features
    } else {
        Output::Logits
    };
    let t1 = Instant::now();
    let y = engine.run(&x.data, n, h, w, which)?;
    log::info!(
        "inference ({n}, 3, {h}, {w}) in {:.1} ms (plan included)",
        t1.elapsed().as_secs_f64() * 1e3
    );
    let cols = y.len() / n;
    npy::write_f32(output, &[n, cols], &y)?;
    if verify {
        let (logits, feats) = reference::run_graph(&engine.graph, &file, &x.data, n, h, w)?;
        let want = if features { feats } else { logits };
        println!(
            "relative error vs CPU reference: {:.3e}",
            reference::relative_error(&y, &want)
        );
    }
    Ok(())
}

/// Synthetic weights for a standard architecture name, for quick runs without a checkpoint.
#[allow(dead_code)]
pub fn synthetic(name: &str) -> anyhow::Result<WeightsFile> {
    let a = arch::standard(name, 1000)
        .with_context(|| {
            format!("unknown architecture `{name}` (e.g. resnet50, resnet50d, resnext50_32x4d, wide_resnet50_2)")
        })?;
    Ok(synthetic_weights(&a, 0)?)
}
