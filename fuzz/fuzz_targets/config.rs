//! `config.json` beside a transformers/timm checkpoint: arbitrary text through the config
//! parser, then architecture detection of a transformers fixture with that config (which
//! checks the config against the tensors). A value or an error, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use resnet_wgpu::model::{detect_with, SourceConfig};
use resnet_wgpu::WeightsFile;

/// A small transformers-layout ResNet-50 (bottleneck, HF names), parsed once.
static HF: &[u8] = include_bytes!("../../tests/fixtures/family/hf_resnet50/model.safetensors");

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = SourceConfig::parse(Path::new("config.json"), text) else {
        return;
    };
    let w = WeightsFile::from_static("hf_resnet50.safetensors", HF).expect("fixture parses");
    let _ = detect_with(&w, Some(&config));
});
