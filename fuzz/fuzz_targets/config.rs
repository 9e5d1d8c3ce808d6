//! The config files beside a checkpoint: arbitrary text through the `config.json` parser,
//! then architecture detection of a transformers fixture with that config (which checks the
//! config against the tensors), the preprocessing and class names it gives; and the same
//! text as a transformers `preprocessor_config.json`. A value or an error, never a panic, and
//! whatever preprocessing is accepted is one `Preprocess::validate` accepts (finite, sane
//! sizes), so no config can lead to an infinite or absurd input tensor.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use resnet_wgpu::metadata::{class_names_with, default_preprocess};
use resnet_wgpu::model::{detect_with, SourceConfig};
use resnet_wgpu::WeightsFile;

/// A small transformers-layout ResNet-50 (bottleneck, HF names), parsed once.
static HF: &[u8] = include_bytes!("../../tests/fixtures/family/hf_resnet50/model.safetensors");

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(Some(p)) =
        SourceConfig::parse_preprocessor(Path::new("preprocessor_config.json"), text)
    {
        p.validate()
            .expect("an accepted preprocessor_config gives valid preprocessing");
    }
    let Ok(config) = SourceConfig::parse(Path::new("config.json"), text) else {
        return;
    };
    if let Some(p) = &config.preprocess {
        p.validate()
            .expect("an accepted pretrained_cfg gives valid preprocessing");
    }
    let w = WeightsFile::from_static("hf_resnet50.safetensors", HF).expect("fixture parses");
    let Ok(a) = detect_with(&w, Some(&config)) else {
        return;
    };
    if let Ok((p, _)) = default_preprocess(&w, Some(&a), Some(&config)) {
        p.validate().expect("the default preprocessing is valid");
    }
    if let Some(classes) = a.num_classes {
        if let Ok((names, _)) = class_names_with(&w, classes, None, Some(&config)) {
            assert_eq!(names.len(), classes);
        }
    }
});
