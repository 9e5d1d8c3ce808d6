//! The library's errors as Python exceptions: what the caller passed (shapes, dtypes, files,
//! weights) is a `ValueError`, what the GPU did a `RuntimeError`; both in the library's words,
//! which are the CLI's.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::PyErr;
use resnet::{Error, WeightsFile};

/// `ValueError` for the caller's mistakes, `RuntimeError` for the device's.
pub fn to_py(e: Error) -> PyErr {
    if e.is_user_error() {
        PyValueError::new_err(e.to_string())
    } else {
        PyRuntimeError::new_err(e.to_string())
    }
}

/// [`to_py`] with the weights file named in front of the errors that name only a tensor, as
/// the CLI does.
pub fn naming_file(file: &WeightsFile, e: Error) -> PyErr {
    match e {
        Error::MissingTensor { .. }
        | Error::TensorShape { .. }
        | Error::TensorRank { .. }
        | Error::TensorDtype { .. }
        | Error::UnexpectedTensor { .. } => {
            PyValueError::new_err(format!("{}: {e}", file.path.display()))
        }
        other => to_py(other),
    }
}

/// A `ValueError` with this message.
pub fn bad_input(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}
