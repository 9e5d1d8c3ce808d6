//! The page's side of the library: open the browser's WebGPU device, load the embedded
//! default model (or a `.safetensors` of any supported network), and classify images through
//! the same decoding, preprocessing and softmax as `resnet classify`.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use js_sys::{Array, Object, Promise, Reflect};
use resnet_wgpu::metadata::{class_names_with, default_preprocess};
use resnet_wgpu::model::detect_with;
use resnet_wgpu::preprocess::{decode_and_preprocess, ImageOptions, Preprocess};
use resnet_wgpu::graph::InputSize;
use resnet_wgpu::scores::{softmax, top_k};
use resnet_wgpu::{Engine, Error, GpuContext, GpuOptions, Network, Output, WeightsFile};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

/// A loaded network and how to feed it and name its classes.
struct Model {
    engine: Engine,
    pre: Preprocess,
    labels: Vec<String>,
    /// One line for the page: `resnet18 (torchvision layout), 10 classes`.
    summary: String,
}

/// The device and the current model. Loading other weights swaps the model; an image being
/// classified meanwhile finishes on the one it started with.
#[wasm_bindgen]
pub struct Classifier {
    gpu: Arc<GpuContext>,
    model: Rc<RefCell<Rc<Model>>>,
}

/// Opens the browser's WebGPU adapter and loads the embedded default model.
#[wasm_bindgen]
pub async fn open() -> Result<Classifier, JsError> {
    console_error_panic_hook::set_once();
    let gpu = Arc::new(
        GpuContext::new_async(&GpuOptions::default())
            .await
            .map_err(js_error)?,
    );
    let weights = WeightsFile::default_model().map_err(js_error)?;
    let model = load(gpu.clone(), weights).await.map_err(js_error)?;
    Ok(Classifier {
        gpu,
        model: Rc::new(RefCell::new(Rc::new(model))),
    })
}

#[wasm_bindgen]
impl Classifier {
    /// The adapter, as `resnet adapters` prints it.
    pub fn adapter(&self) -> String {
        self.gpu.info.to_string()
    }

    /// The current model in one line.
    pub fn model(&self) -> String {
        self.model.borrow().summary.clone()
    }

    /// Classifies an image file's bytes: a Promise of `[{class, label, prob}]`, the `k` most
    /// probable classes, most probable first.
    pub fn classify(&self, image: Vec<u8>, k: usize) -> Promise {
        let model = self.model.borrow().clone();
        future_to_promise(async move {
            let top = classify(&model, &image, k).await.map_err(js_error)?;
            Ok(top.into())
        })
    }

    /// Replaces the model with the network in a `.safetensors` file's bytes (`name` labels
    /// it in errors): a Promise of the new model's one-line summary. On failure the current
    /// model stays.
    pub fn load_weights(&self, bytes: Vec<u8>, name: String) -> Promise {
        let (gpu, slot) = (self.gpu.clone(), self.model.clone());
        future_to_promise(async move {
            let weights = WeightsFile::from_bytes(name, bytes).map_err(js_error)?;
            let model = load(gpu, weights).await.map_err(js_error)?;
            let summary = model.summary.clone();
            *slot.borrow_mut() = Rc::new(model);
            Ok(summary.into())
        })
    }
}

/// What `resnet classify` settles before the GPU, for weights in memory: architecture,
/// preprocessing and class names from the file itself (a page has no `config.json` beside
/// it), then the engine on `gpu`.
async fn load(gpu: Arc<GpuContext>, weights: WeightsFile) -> resnet_wgpu::Result<Model> {
    let arch = detect_with(&weights, None)?;
    let (pre, _) = default_preprocess(&weights, Some(&arch), None)?;
    let Some(classes) = arch.num_classes else {
        return Err(Error::Usage(
            "these weights have no classification head (a bare ResNetModel or a timm model \
             without fc): nothing to classify with"
                .into(),
        ));
    };
    let (labels, _) = class_names_with(&weights, classes, None, None)?;
    let summary = format!("{}, {classes} classes", arch.describe());
    let network = Network::from_arch(arch, &weights)?;
    let engine = Engine::from_network_async(gpu, network, &weights).await?;
    Ok(Model {
        engine,
        pre,
        labels,
        summary,
    })
}

/// Decode, preprocess, run, softmax, top-k: `resnet classify` for one image.
async fn classify(model: &Model, image: &[u8], k: usize) -> resnet_wgpu::Result<Array> {
    let pre = &model.pre;
    let input = decode_and_preprocess(image, Path::new("image"), pre, &ImageOptions::default())?;
    let (h, w) = (pre.crop_h as usize, pre.crop_w as usize);
    let logits = model
        .engine
        .run_async(&input, InputSize::image(1, h, w), Output::Logits)
        .await?;
    let probs = softmax(&logits);
    let out = Array::new();
    for class in top_k(&probs, k) {
        let row = Object::new();
        set(&row, "class", &JsValue::from(class as u32));
        set(&row, "label", &JsValue::from(model.labels[class].as_str()));
        set(&row, "prob", &JsValue::from(probs[class]));
        out.push(&row);
    }
    Ok(out)
}

fn set(object: &Object, key: &str, value: &JsValue) {
    // Setting a property on a plain new object cannot fail.
    let _ = Reflect::set(object, &JsValue::from(key), value);
}

/// A library error as a JavaScript `Error` with its message.
fn js_error(e: Error) -> JsError {
    JsError::new(&e.to_string())
}
