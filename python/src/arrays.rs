//! NumPy arrays in and out: any float dtype and any strides in, C-contiguous float32 out.

use numpy::{PyArray1, PyArrayDyn, PyArrayMethods};
use pyo3::prelude::*;

use resnet::graph::InputSize;

use crate::errors::bad_input;

/// An NCHW (images) or NCTHW (clips) batch as the engine takes it.
pub struct Batch {
    pub data: Vec<f32>,
    pub size: InputSize,
}

/// Reads `x` — anything `numpy.asarray` accepts, of dtype float16, float32 or float64, in any
/// memory order — as an `(N, channels, H, W)` batch in float32, or for a video network
/// (`video`) an `(N, channels, T, H, W)` batch of clips.
pub fn read_batch(x: &Bound<'_, PyAny>, channels: usize, video: bool) -> PyResult<Batch> {
    let np = x.py().import("numpy")?;
    let array = np.call_method1("asarray", (x,))?;
    let dtype = array.getattr("dtype")?;
    let kind: String = dtype.getattr("kind")?.extract()?;
    if kind != "f" || dtype.getattr("itemsize")?.extract::<usize>()? > 8 {
        let name: String = dtype.getattr("name")?.extract()?;
        return Err(bad_input(format!(
            "input dtype is {name}; expected float32, float64 or float16"
        )));
    }
    let shape: Vec<usize> = array.getattr("shape")?.extract()?;
    let layout = match video {
        true => format!("(N, {channels}, T, H, W) clips, as the network is a video network"),
        false => format!("(N, {channels}, H, W) images"),
    };
    let size = match (&shape[..], video) {
        (&[n, c, h, w], false) if c == channels => InputSize::image(n, h, w),
        (&[n, c, t, h, w], true) if c == channels => InputSize::clip(n, t, h, w),
        (&[_, c, ..], _) if c != channels && shape.len() == 4 + usize::from(video) => {
            return Err(bad_input(format!(
                "input has {c} channels, the network takes {channels}: expected {layout}"
            )))
        }
        _ => {
            return Err(bad_input(format!(
                "input has shape {shape:?}; expected {layout}"
            )))
        }
    };
    // One copy: to float32 and C order together (none when it is both already).
    let contiguous = np.call_method1("ascontiguousarray", (array, "float32"))?;
    let typed = contiguous.cast_into::<PyArrayDyn<f32>>()?;
    let data = typed.to_vec().map_err(|e| bad_input(e.to_string()))?;
    Ok(Batch { data, size })
}

/// `rows × (values.len() / rows)` float32 array owning `values`.
pub fn matrix<'py>(py: Python<'py>, values: Vec<f32>, rows: usize) -> PyResult<Bound<'py, PyAny>> {
    let cols = values.len().checked_div(rows).unwrap_or(0);
    Ok(PyArray1::from_vec(py, values)
        .reshape([rows, cols])?
        .into_any())
}
