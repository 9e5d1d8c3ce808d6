//! Weights loader with architecture inference: arbitrary bytes through the safetensors parser,
//! architecture detection, the graph builder, shape inference and the memory plan, plus the
//! metadata the CLI reads. Everything must end in a value or an error, never a panic.
//!
//! An input that starts with `{` is taken as a header alone, and a data section of the length
//! its offsets ask for is made up (finite values): mutations of small headers then reach
//! architecture detection instead of dying on the byte count of a large file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resnet_wgpu::graph::plan::MemoryPlan;
use resnet_wgpu::model::{build_graph, detect};
use resnet_wgpu::{metadata, WeightsFile};

/// `header` as a whole file: length prefix, header, and `0x3c` bytes (finite in F32, F16 and
/// BF16) up to the largest end offset it names, at most 16 MiB.
fn with_data(header: &[u8]) -> Option<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(header).ok()?;
    let end = v
        .as_object()?
        .values()
        .filter_map(|t| t.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    if end > 1 << 24 {
        return None;
    }
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header);
    file.resize(file.len() + end as usize, 0x3c);
    Some(file)
}

fuzz_target!(|data: &[u8]| {
    let bytes = if data.first() == Some(&b'{') {
        match with_data(data) {
            Some(file) => file,
            None => return,
        }
    } else {
        data.to_vec()
    };
    let Ok(w) = WeightsFile::from_bytes("fuzz.safetensors", bytes) else {
        return;
    };
    let _ = metadata::preprocess_for(&w);
    let _ = metadata::class_names(&w, 10, None);
    for name in w.tensors.keys() {
        let _ = w.to_f32(name);
    }
    let _ = w.check_finite();
    let Ok(a) = detect(&w) else {
        return;
    };
    let _ = (a.name(), a.parameter_count(), a.depth());
    let _ = metadata::default_preprocess(&w, Some(&a), None);
    let g = build_graph(&a);
    // A few input sizes, including ones too small for the network.
    for (n, h, w) in [(1, 224, 224), (3, 33, 47), (1, 1, 1), (2, 7, 300)] {
        if let Ok(shapes) = g.infer_shapes(n, h, w) {
            let plan = MemoryPlan::new(&g, &shapes, true);
            assert!(plan.slot_of.iter().all(|&s| s < plan.slot_bytes.len()));
        }
    }
});
