//! `resnet_wgpu.Engine`: one network on one GPU, shared by every Python thread that holds it.

use std::path::PathBuf;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyList, PyString, PyTuple};
use resnet::metadata::{class_names_with, default_preprocess};
use resnet::model::SourceConfig;
use resnet::preprocess::{decode_all, ImageOptions, Preprocess};
use resnet::scores::{scored, softmax, Prediction};
use resnet::video::video_class_names;
use resnet::{AdapterChoice, GpuOptions, Network, Output, WeightsFile};

use crate::arrays::{matrix, read_batch};
use crate::ensemble::{load_members, Blend, Members};
use crate::errors::{bad_input, naming_file, to_py};
use crate::images::{read_images, Item};
use crate::video::{Clips, VideoFeed};

/// A ResNet loaded on a GPU through WebGPU (Vulkan, Metal, DX12 or GL).
///
/// weights: a path to a .safetensors checkpoint (torchvision, timm or Hugging Face), its
///     bytes, or None for the embedded default model (handwritten digits; with video=True,
///     the embedded default video model). A list of them is an ensemble: one device, one
///     submission per batch, the members' probabilities (combine="probs", the default) or
///     logits (combine="logits") averaged, weighted by ensemble_weights (one per member).
/// adapter: part of the GPU's name to pick (case-insensitive); default: the best one.
/// backend: "vulkan", "metal", "dx12" or "gl"; default: any.
/// checked_shaders: compile every shader with runtime bounds checks (slower).
///
/// Every method releases the GIL while the GPU works; one Engine may be used from several
/// threads at once. Bad input raises ValueError, a GPU failure RuntimeError.
#[pyclass(frozen, module = "resnet_wgpu", name = "Engine")]
pub struct PyEngine {
    body: Body,
    /// One per class; empty for a network without a classification head.
    labels: Vec<String>,
    /// `info` as JSON, made once.
    info: String,
}

/// One network, or an ensemble of them.
enum Body {
    One {
        engine: Box<resnet::Engine>,
        pre: Preprocess,
        /// How a video network's clips are cut and transformed; `None` for images.
        video: Option<VideoFeed>,
    },
    Many(Members),
}

/// What the weights argument named, read while the GIL is held.
pub(crate) enum WeightsArg {
    Default,
    DefaultVideo,
    Path(PathBuf),
    Bytes(Vec<u8>),
    /// An ensemble's members.
    Many(Vec<WeightsArg>),
}

fn weights_arg(weights: Option<&Bound<'_, PyAny>>, video: bool) -> PyResult<WeightsArg> {
    let Some(w) = weights else {
        return Ok(match video {
            true => WeightsArg::DefaultVideo,
            false => WeightsArg::Default,
        });
    };
    if video {
        return Err(bad_input(
            "video=True picks the embedded default video model; give it with weights=None",
        ));
    }
    if w.is_instance_of::<PyList>() || w.is_instance_of::<PyTuple>() {
        let members = w
            .try_iter()?
            .map(|m| match member_arg(&m?)? {
                WeightsArg::Many(_) => Err(bad_input("an ensemble's members are not lists")),
                one => Ok(one),
            })
            .collect::<PyResult<Vec<_>>>()?;
        if members.is_empty() {
            return Err(bad_input(
                "an empty list of weights: an ensemble needs members",
            ));
        }
        return Ok(WeightsArg::Many(members));
    }
    member_arg(w)
}

/// One checkpoint: a path or its bytes.
fn member_arg(w: &Bound<'_, PyAny>) -> PyResult<WeightsArg> {
    if let Ok(bytes) = w.cast::<PyBytes>() {
        return Ok(WeightsArg::Bytes(bytes.as_bytes().to_vec()));
    }
    if let Ok(bytes) = w.cast::<PyByteArray>() {
        return Ok(WeightsArg::Bytes(bytes.to_vec()));
    }
    if w.is_instance_of::<PyString>() || w.hasattr("__fspath__")? {
        return Ok(WeightsArg::Path(w.extract()?));
    }
    if w.is_instance_of::<PyList>() || w.is_instance_of::<PyTuple>() {
        return Ok(WeightsArg::Many(vec![]));
    }
    Err(bad_input(format!(
        "weights must be a path, bytes, a list of them (an ensemble) or None, not {}",
        w.get_type().name()?
    )))
}

impl WeightsArg {
    pub(crate) fn open(self) -> resnet::Result<WeightsFile> {
        match self {
            WeightsArg::Default => WeightsFile::default_model(),
            WeightsArg::DefaultVideo => WeightsFile::default_video_model(),
            WeightsArg::Path(path) => WeightsFile::open(path),
            WeightsArg::Bytes(bytes) => WeightsFile::from_bytes("<weights bytes>", bytes),
            WeightsArg::Many(_) => Err(resnet::Error::Usage(
                "an ensemble's members are opened one by one".into(),
            )),
        }
    }
}

/// Opens the weights and the device, and settles preprocessing and class names as
/// `resnet classify` does.
fn load(arg: WeightsArg, options: &GpuOptions, blend: Blend) -> PyResult<PyEngine> {
    if let WeightsArg::Many(members) = arg {
        let (members, labels, info) = load_members(members, options, blend)?;
        return Ok(PyEngine {
            body: Body::Many(members),
            labels,
            info,
        });
    }
    if blend.weights.is_some() || blend.combine.is_some() {
        return Err(bad_input(
            "combine and ensemble_weights apply to an ensemble (a list of weights)",
        ));
    }
    let weights = arg.open().map_err(to_py)?;
    let named = |e| naming_file(&weights, e);
    let config = SourceConfig::for_weights(&weights).map_err(named)?;
    let network = Network::detect_with(&weights, config.as_ref()).map_err(named)?;
    let model = &network.model;
    // Images are preprocessed as the CLI does (`classify` takes images only).
    let (pre, _) = default_preprocess(&weights, model.image(), config.as_ref()).map_err(named)?;
    let labels = match (model.num_classes(), model.is_video()) {
        (Some(classes), false) => {
            class_names_with(&weights, classes, None, config.as_ref())
                .map_err(named)?
                .0
        }
        (Some(classes), true) => video_class_names(&weights, classes, None).map_err(named)?.0,
        (None, _) => vec![],
    };
    let video = match model.video() {
        Some(arch) => Some(VideoFeed::for_weights(&weights, arch).map_err(named)?),
        None => None,
    };
    let engine = resnet::Engine::load_network(network, &weights, options).map_err(to_py)?;
    let info = info_json(&engine, &weights, &pre, &labels).to_string();
    Ok(PyEngine {
        body: Body::One {
            engine: Box::new(engine),
            pre,
            video,
        },
        labels,
        info,
    })
}

pub(crate) fn info_json(
    engine: &resnet::Engine,
    weights: &WeightsFile,
    pre: &Preprocess,
    labels: &[String],
) -> serde_json::Value {
    let interp = format!("{:?}", pre.interp).to_lowercase();
    let rounding = match pre.crop_rounding {
        resnet::preprocess::CropRounding::HalfToEven => "even",
        resnet::preprocess::CropRounding::Floor => "floor",
    };
    serde_json::json!({
        "architecture": engine.model.as_ref().map(|a| a.name()),
        "weights": weights.path.display().to_string(),
        "classes": labels.len(),
        "labels": labels,
        "features": engine.model.as_ref().map(|a| a.features()),
        "preprocess": {
            "resize": pre.resize,
            "crop": [pre.crop_h, pre.crop_w],
            "interp": interp,
            "mean": pre.mean,
            "std": pre.std,
            "rounding": rounding,
            "description": resnet::preprocess::presets::describe(pre),
        },
        "adapter": engine.ctx.info,
    })
}

/// Parses JSON made here with Python's own `json`, so that floats come out exactly as a
/// reader of `resnet classify --json` gets them (an f32 printed shortest, read as a double).
fn from_json<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (text,))
}

impl PyEngine {
    fn infer(&self, py: Python<'_>, x: &Bound<'_, PyAny>, which: Output) -> PyResult<Py<PyAny>> {
        let engine = match &self.body {
            Body::One { engine, .. } => engine,
            Body::Many(members) => {
                if matches!(which, Output::Features) {
                    return Err(bad_input(ENSEMBLE_FEATURES));
                }
                let channels = members.ensemble.members[0].graph.input_channels;
                let batch = read_batch(x, channels, false)?;
                let y = py.detach(|| members.run(&batch.data, batch.size))?;
                return Ok(matrix(py, y, batch.size.n)?.unbind());
            }
        };
        let video = engine.model.as_ref().is_some_and(|m| m.is_video());
        let batch = read_batch(x, engine.graph.input_channels, video)?;
        let y = py
            .detach(|| engine.run_at(&batch.data, batch.size, which))
            .map_err(to_py)?;
        Ok(matrix(py, y, batch.size.n)?.unbind())
    }

    /// Decodes, runs and ranks `items`, `batch_size` at a time (decoding on all cores).
    fn predict(
        &self,
        items: &[Item],
        top_k: usize,
        batch_size: usize,
        clips: Clips,
    ) -> resnet::Result<Vec<Prediction>> {
        let (engine, pre) = match &self.body {
            Body::One {
                video: Some(feed), ..
            } => {
                return feed.predict(
                    self.engine(),
                    items,
                    &self.labels,
                    (top_k, batch_size),
                    clips,
                )
            }
            Body::One { engine, pre, .. } => (engine, pre),
            Body::Many(members) => {
                clips.only_for_videos()?;
                return members.predict(items, &self.labels, top_k, batch_size);
            }
        };
        clips.only_for_videos()?;
        let options = ImageOptions::default();
        let (h, w) = (pre.crop_h as usize, pre.crop_w as usize);
        let mut predictions = Vec::with_capacity(items.len());
        for chunk in items.chunks(batch_size) {
            let mut x = Vec::with_capacity(chunk.len() * pre.output_len());
            for tensor in decode_all(chunk, &|item: &Item| item.preprocess(pre, &options)) {
                x.extend(tensor?);
            }
            let logits = engine.run(&x, chunk.len(), h, w, Output::Logits)?;
            let rows = logits.chunks(self.labels.len());
            predictions.extend(chunk.iter().zip(rows).map(|(item, row)| Prediction {
                image: item.name.clone(),
                top: scored(&softmax(row), &self.labels, top_k),
            }));
        }
        Ok(predictions)
    }

    /// The single network (an ensemble's first member).
    fn engine(&self) -> &resnet::Engine {
        match &self.body {
            Body::One { engine, .. } => engine,
            Body::Many(members) => &members.ensemble.members[0],
        }
    }
}

const ENSEMBLE_FEATURES: &str = "features() of an ensemble: each member has its own embedding; \
                                 make one Engine per member for features";

#[pymethods]
impl PyEngine {
    #[new]
    #[pyo3(signature = (
        weights=None, *, adapter=None, backend=None, checked_shaders=false, video=false,
        combine=None, ensemble_weights=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        weights: Option<&Bound<'_, PyAny>>,
        adapter: Option<String>,
        backend: Option<String>,
        checked_shaders: bool,
        video: bool,
        combine: Option<String>,
        ensemble_weights: Option<Vec<f64>>,
    ) -> PyResult<Self> {
        let arg = weights_arg(weights, video)?;
        let blend = Blend::new(combine.as_deref(), ensemble_weights)?;
        let options = GpuOptions {
            adapter: AdapterChoice {
                name: adapter,
                backend,
            },
            checked_shaders,
            ..GpuOptions::default()
        };
        py.detach(|| load(arg, &options, blend))
    }

    /// Logits, float32 of shape (N, classes), for a batch x of shape (N, 3, H, W) — for a
    /// video network, clips (N, 3, T, H, W): a float32, float64 or float16 array in any memory
    /// order, already preprocessed (normalised). A network without a head gives its pooled
    /// features, as `features` does.
    fn run(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.infer(py, x, Output::Logits)
    }

    /// Pooled penultimate features (embeddings), float32 of shape (N, C), for a batch x as
    /// `run` takes it. An ensemble has no one embedding: ValueError.
    fn features(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.infer(py, x, Output::Features)
    }

    /// The top_k classes of each image, as `resnet classify --json` prints them:
    /// [{"image": name, "top": [{"class": int, "label": str, "prob": float}, ...]}, ...].
    /// images: a list of paths, bytes of image files (JPEG, PNG, WebP, BMP), PIL images or
    /// (H, W, 3) uint8 RGB arrays, or one of them. Files are decoded and preprocessed as the
    /// CLI does (the checkpoint's preprocessing, EXIF orientation applied). A path's name is
    /// the path as given, a PIL image's its filename; others are named "<image i>".
    /// An ensemble preprocesses each image with each member's own preset and ranks the blend,
    /// as `resnet classify` with several --weights.
    /// A video network takes paths of videos (or folders of frames): each video's clips
    /// (frames per clip: the weights' own unless `frames`; `clips` spread over the video;
    /// every `frame_stride`-th frame), its scores the probabilities averaged over its clips,
    /// as `resnet classify --frames --clips --frame-stride`; batch_size counts clips.
    #[pyo3(signature = (images, top_k=5, batch_size=16, *, frames=None, clips=1, frame_stride=1))]
    #[allow(clippy::too_many_arguments)]
    fn classify(
        &self,
        py: Python<'_>,
        images: &Bound<'_, PyAny>,
        top_k: usize,
        batch_size: usize,
        frames: Option<usize>,
        clips: usize,
        frame_stride: usize,
    ) -> PyResult<Py<PyAny>> {
        if self.labels.is_empty() {
            return Err(bad_input(NO_HEAD));
        }
        if top_k < 1 || batch_size < 1 {
            return Err(bad_input(format!(
                "top_k and batch_size must be at least 1 (got {top_k} and {batch_size})"
            )));
        }
        let items = read_images(images)?;
        let predictions = py
            .detach(|| {
                self.predict(
                    &items,
                    top_k,
                    batch_size,
                    Clips {
                        frames,
                        clips,
                        frame_stride,
                    },
                )
            })
            .map_err(to_py)?;
        let text = serde_json::to_string(&predictions)
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        Ok(from_json(py, &text)?.unbind())
    }

    /// A dict: architecture, weights, classes, labels, features, preprocess (resize, crop,
    /// interp, mean, std, rounding, description) and adapter (name, backend, device_type,
    /// driver, driver_info). An ensemble's: architecture "ensemble", classes, labels,
    /// combine, ensemble_weights, adapter and members (each member's dict as above).
    #[getter]
    fn info(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(from_json(py, &self.info)?.unbind())
    }

    fn __repr__(&self) -> String {
        if let Body::Many(m) = &self.body {
            return format!(
                "Engine(ensemble of {}, {} classes, on {} ({}))",
                m.ensemble.members.len(),
                self.labels.len(),
                self.engine().ctx.info.name,
                self.engine().ctx.info.backend
            );
        }
        let arch = self
            .engine()
            .model
            .as_ref()
            .map_or("a graph".into(), |a| a.name());
        format!(
            "Engine({arch}, {} classes, on {} ({}))",
            self.labels.len(),
            self.engine().ctx.info.name,
            self.engine().ctx.info.backend
        )
    }
}

const NO_HEAD: &str = "these weights have no classification head (a bare ResNetModel or a timm \
                       model without fc); use features() for embeddings";
