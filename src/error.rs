//! The library's one error type. Every variant names what the user can act on: the file, the
//! tensor, the expected and the found value.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ---- files ----
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid safetensors file: {msg}")]
    Safetensors { path: PathBuf, msg: String },
    #[error("{path}: not a valid .npy file: {msg}")]
    Npy { path: PathBuf, msg: String },
    #[error("{path}: cannot read image: {msg}")]
    Image { path: PathBuf, msg: String },
    #[error("{path}: cannot read video: {msg}")]
    Video { path: PathBuf, msg: String },

    // ---- weights and architecture ----
    #[error("tensor `{name}` is missing (expected shape {expected:?})")]
    MissingTensor { name: String, expected: Vec<usize> },
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?}")]
    TensorShape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("tensor `{name}` has shape {found:?}, expected {expected} dimensions")]
    TensorRank {
        name: String,
        expected: usize,
        found: Vec<usize>,
    },
    #[error("tensor `{name}` has dtype {found}, expected one of F32, F16, BF16")]
    TensorDtype { name: String, found: String },
    #[error(
        "unexpected tensor `{name}` {shape:?}: not part of the detected architecture ({arch})"
    )]
    UnexpectedTensor {
        name: String,
        shape: Vec<usize>,
        arch: String,
    },
    #[error("not a ResNet checkpoint: {0}")]
    NotResnet(String),
    #[error("{path}: {msg}")]
    Config { path: PathBuf, msg: String },
    /// NaN or ±Inf in a weight: the network would only ever answer NaN, so it is refused.
    #[error(
        "{path}: tensor `{name}` holds {count} NaN/Inf value(s) (first at element {first}); \
         the checkpoint is corrupt or overflowed when it was converted"
    )]
    NonFinite {
        path: PathBuf,
        name: String,
        count: usize,
        first: usize,
    },
    /// A negative BatchNorm variance: PyTorch's `sqrt(running_var + eps)` would be NaN.
    #[error(
        "{path}: tensor `{name}` holds {count} negative variance(s) (first {value} at element \
         {first}); a variance is never negative, so the checkpoint is corrupt (PyTorch would \
         answer NaN)"
    )]
    NegativeVariance {
        path: PathBuf,
        name: String,
        count: usize,
        first: usize,
        value: f32,
    },

    // ---- shapes and plans ----
    #[error("invalid input shape: {0}")]
    InputShape(String),
    #[error("{what} needs {needed} bytes, over the adapter limit {limit_name} = {limit}")]
    AdapterLimit {
        what: String,
        needed: u64,
        limit_name: &'static str,
        limit: u64,
    },

    // ---- GPU ----
    #[error("no GPU adapter found{0}")]
    NoAdapter(String),
    /// `--adapter`/`--backend` (or their environment variables) matched nothing: the user's
    /// choice, so a user error, unlike a machine without any adapter.
    #[error("no GPU adapter matches {wanted} (available: {available})")]
    AdapterNotFound { wanted: String, available: String },
    #[error("could not create a device on {adapter}: {msg}")]
    Device { adapter: String, msg: String },
    #[error("{adapter} lacks the `{feature}` feature, which {what} needs")]
    MissingFeature {
        adapter: String,
        feature: String,
        what: String,
    },
    #[error("GPU error: {0}")]
    Gpu(String),
    #[error("shader `{name}` failed validation: {msg}")]
    Shader { name: String, msg: String },

    // ---- usage ----
    #[error("{0}")]
    Usage(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether the error comes from what the user passed (exit code 2) rather than from the
    /// runtime (exit code 1).
    pub fn is_user_error(&self) -> bool {
        !matches!(
            self,
            Error::NoAdapter(_) | Error::Device { .. } | Error::Gpu(_) | Error::Shader { .. }
        )
    }
}
