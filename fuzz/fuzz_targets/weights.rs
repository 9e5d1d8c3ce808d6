//! Weights loader with architecture inference: arbitrary bytes through the safetensors parser,
//! architecture detection, the graph builder, shape inference and the memory plan, plus the
//! metadata the CLI reads. Everything must end in a value or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resnet_wgpu::graph::plan::MemoryPlan;
use resnet_wgpu::model::{arch, build_graph};
use resnet_wgpu::{metadata, WeightsFile};

fuzz_target!(|data: &[u8]| {
    let Ok(w) = WeightsFile::from_bytes("fuzz.safetensors", data.to_vec()) else {
        return;
    };
    let _ = metadata::preprocess_for(&w);
    let _ = metadata::class_names(&w, 10, None);
    for name in w.tensors.keys() {
        let _ = w.to_f32(name);
    }
    let _ = w.check_finite();
    let Ok(a) = arch::detect(&w) else {
        return;
    };
    let _ = (a.name(), a.parameter_count(), a.depth());
    let g = build_graph(&a);
    // A few input sizes, including ones too small for the network.
    for (n, h, w) in [(1, 224, 224), (3, 33, 47), (1, 1, 1), (2, 7, 300)] {
        if let Ok(shapes) = g.infer_shapes(n, h, w) {
            let plan = MemoryPlan::new(&g, &shapes, true);
            assert!(plan.slot_of.iter().all(|&s| s < plan.slot_bytes.len()));
        }
    }
});
