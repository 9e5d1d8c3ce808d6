//! What every command reads and checks before any GPU work: sizes, weights (the embedded
//! default or a file, with errors that name it), counts and output paths.

use std::path::Path;

use anyhow::bail;
use resnet_wgpu::{fsutil, Error, Network, WeightsFile};

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

/// Opens a weights file, or the embedded default model.
pub fn open_weights(path: Option<&Path>) -> anyhow::Result<WeightsFile> {
    Ok(match path {
        Some(p) => WeightsFile::open(p)?,
        None => WeightsFile::default_model()?,
    })
}

/// Detects the architecture, checks every value is finite and builds the graph, before any
/// GPU work, with errors that name the file (the tensor errors of the library name only the
/// tensor). The engine takes the result as is: nothing is detected or scanned twice.
pub fn check_weights(file: &WeightsFile) -> anyhow::Result<Network> {
    Network::detect(file).map_err(|e| naming_file(file, e))
}

/// A library error about one tensor of `file`, with the file's name in front (the other
/// errors name it already).
pub fn naming_file(file: &WeightsFile, e: Error) -> anyhow::Error {
    match e {
        Error::MissingTensor { .. }
        | Error::TensorShape { .. }
        | Error::TensorRank { .. }
        | Error::TensorDtype { .. }
        | Error::UnexpectedTensor { .. } => {
            anyhow::Error::new(e).context(file.path.display().to_string())
        }
        other => other.into(),
    }
}

/// Refuses a count flag below its minimum, in the same words for every command.
pub fn at_least(flag: &str, value: usize, min: usize) -> anyhow::Result<()> {
    if value < min {
        bail!(Error::Usage(format!(
            "{flag} must be at least {min} (got {value})"
        )));
    }
    Ok(())
}

/// Refuses an output path that cannot be written, before any work is done: its folder must
/// exist, the path must not be a folder, and it must not be one of the command's `inputs`
/// (writing the logits over the weights would destroy them). A FIFO or character device
/// (`/dev/null`) is fine: it is written through (see `fsutil::write_atomic`).
pub fn check_output_path(path: &Path, inputs: &[&Path]) -> anyhow::Result<()> {
    if path.is_dir() {
        bail!(Error::Usage(format!(
            "{}: is a folder; give a file name for the output",
            path.display()
        )));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            bail!(Error::Usage(format!(
                "{}: the output folder {} does not exist",
                path.display(),
                parent.display()
            )));
        }
    }
    if let Some(input) = inputs.iter().find(|i| fsutil::same_file(path, i)) {
        bail!(Error::Usage(format!(
            "{}: the output is the input {}; writing it would destroy the input",
            path.display(),
            input.display()
        )));
    }
    Ok(())
}
