//! `resnet run --weights A --weights B …`: an ensemble on one device, every member fed the
//! same tensor, the outputs blended (see `resnet_wgpu::gpu::ensemble`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use resnet_wgpu::gpu::ensemble::{check_classes, Ensemble};
use resnet_wgpu::scores::{combine, Combine};
use resnet_wgpu::{npy, reference, Engine, Error, GpuContext, GpuOptions, WeightsFile};

use crate::inputs::{check_output_path, check_weights};

#[derive(clap::Args)]
pub struct EnsembleArgs {
    /// With several --weights: blend the members' softmax probabilities (`probs`: the
    /// output is then probabilities) or their logits (`logits`).
    #[arg(long, value_enum, default_value_t = CombineArg::Probs)]
    combine: CombineArg,
    /// With several --weights: one weight per member in their order, e.g. `2,1,1` (default:
    /// equal); the blend is the weighted mean.
    #[arg(long, value_delimiter = ',', value_name = "W1,W2,…")]
    ensemble_weights: Option<Vec<f64>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum CombineArg {
    Probs,
    Logits,
}

impl EnsembleArgs {
    pub fn weights(&self) -> Option<Vec<f64>> {
        self.ensemble_weights.clone()
    }

    pub fn combine(&self) -> Combine {
        match self.combine {
            CombineArg::Probs => Combine::Probs,
            CombineArg::Logits => Combine::Logits,
        }
    }
}

/// Runs the ensemble of `members` on the `.npy` at `input`, writes the blended `(N, classes)`
/// to `output`; with `verify`, also blends the CPU reference's logits and prints the error.
pub fn run(
    members: &[PathBuf],
    args: &EnsembleArgs,
    (input, output): (&Path, &Path),
    verify: bool,
    options: &GpuOptions,
) -> anyhow::Result<()> {
    let mut read: Vec<&Path> = members.iter().map(PathBuf::as_path).collect();
    read.push(input);
    check_output_path(output, &read)?;
    let x = npy::read_f32(input)?;
    let size = crate::input_size(input, &x, false)?;
    let names: Vec<String> = members.iter().map(|p| p.display().to_string()).collect();
    let mut files = Vec::new();
    let mut networks = Vec::new();
    for path in members {
        let file = WeightsFile::open(path)?;
        let network = check_weights(&file)?;
        if network.model.is_video() {
            bail!(Error::Usage(format!(
                "{}: video weights; ensembles take image networks",
                path.display()
            )));
        }
        network
            .graph
            .shapes_for(size)
            .with_context(|| format!("{} on {}", path.display(), input.display()))?;
        files.push(file);
        networks.push(network);
    }
    let classes: Vec<Option<usize>> = networks.iter().map(|n| n.model.num_classes()).collect();
    check_classes(&classes, &names)?;
    let ctx = Arc::new(GpuContext::new(options)?);
    let engines = networks
        .into_iter()
        .zip(&files)
        .map(|(network, file)| Engine::from_network(ctx.clone(), network, file))
        .collect::<resnet_wgpu::Result<Vec<_>>>()?;
    let ensemble = Ensemble::new(engines, &names, args.weights(), args.combine())?;
    let inputs = vec![(&x.data[..], size); members.len()];
    let y = ensemble.run(&inputs)?;
    npy::write_f32(output, &[size.n, ensemble.classes()], &y)?;
    if verify {
        let mut logits = Vec::new();
        for (member, file) in ensemble.members.iter().zip(&files) {
            let (l, _) =
                reference::run_graph(&member.graph, file, &x.data, size.n, size.h, size.w)?;
            logits.push(l);
        }
        let want = combine(
            &logits,
            &ensemble.weights,
            ensemble.combine,
            ensemble.classes(),
        );
        outln!(
            "relative error vs CPU reference: {:.3e}",
            reference::relative_error(&y, &want)
        );
    }
    Ok(())
}
