//! Squeeze-and-excitation ResNets (timm `seresnet*` / `seresnext*`): detection, naming and
//! strict tensor checks, the graph's SE wiring, the SE kernels against the CPU reference on
//! seeded random shapes, and every fixture of scripts/make_se_fixtures.py on the CPU reference
//! and end to end on the GPU (both conv kernels, both shader modes) against PyTorch.

use std::path::PathBuf;

use crate::common::{self, fixture, Mode, Rng, ALL_MODES};
use resnet_wgpu::graph::{Conv, Graph, InputSize, Op, SqueezeExcite, Window};
use resnet_wgpu::model::arch;
use resnet_wgpu::model::synthetic::synthetic_weights;
use resnet_wgpu::reference::{relative_error, run_graph};
use resnet_wgpu::weights::serialize_f32;
use resnet_wgpu::{npy, Engine, Error, Model, Network, Output, WeightsFile};

/// One case of `tests/fixtures/se/manifest.json`.
#[derive(serde::Deserialize)]
struct Case {
    name: String,
    member: String,
    input: String,
    logits: String,
    batch: usize,
    height: usize,
    width: usize,
    classes: usize,
    describe: Vec<String>,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(fixture("se/manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn se_fixture(rel: &str) -> PathBuf {
    fixture(&format!("se/{rel}"))
}

fn open(case: &str) -> WeightsFile {
    WeightsFile::open(se_fixture(&format!("{case}/model.safetensors"))).unwrap()
}

#[test]
fn every_fixture_is_detected_and_described() {
    let all = cases();
    let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["seresnet18", "seresnet50", "seresnext26d_32x4d"]);
    for case in &all {
        let network = Network::detect(&open(&case.name)).unwrap();
        let Model::Image(a) = &network.model else {
            panic!("{}: not an image ResNet", case.name);
        };
        assert!(
            a.stages.iter().all(|s| s.se_reduced.is_some()),
            "{}",
            case.name
        );
        assert_eq!(a.num_classes, Some(case.classes));
        let text = a.describe();
        for want in &case.describe {
            assert!(text.contains(want.as_str()), "{}: {text}", case.name);
        }
        let se = network
            .graph
            .nodes
            .iter()
            .filter(|n| matches!(n.op, Op::SqueezeExcite(_)))
            .count();
        assert_eq!(
            se,
            a.stages.iter().map(|s| s.blocks).sum::<usize>(),
            "{}",
            case.member
        );
    }
}

#[test]
fn every_fixture_matches_pytorch_on_the_cpu_reference() {
    for case in cases() {
        let w = open(&case.name);
        let network = Network::detect(&w).unwrap();
        let x = npy::read_f32(&se_fixture(&case.input)).unwrap();
        let want = npy::read_f32(&se_fixture(&case.logits)).unwrap();
        let (got, _) = run_graph(
            &network.graph,
            &w,
            &x.data,
            case.batch,
            case.height,
            case.width,
        )
        .unwrap();
        let err = relative_error(&got, &want.data);
        eprintln!("{}: CPU reference relative error {err:.2e}", case.name);
        assert!(err <= 1e-5, "{}: relative error {err:.2e}", case.name);
    }
}

/// The tensors of a synthetic `name` as a writable list.
fn tensors_of(name: &str) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let w = synthetic_weights(&arch::standard(name, 10).unwrap(), 1).unwrap();
    w.tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.shape.clone(), w.to_f32(n).unwrap()))
        .collect()
}

fn detect(tensors: &[(String, Vec<usize>, Vec<f32>)]) -> resnet_wgpu::Result<arch::Arch> {
    let w = WeightsFile::from_bytes("se", serialize_f32(tensors, None).unwrap()).unwrap();
    resnet_wgpu::model::detect(&w)
}

#[test]
fn synthetic_se_networks_round_trip_through_detection() {
    for name in ["seresnet18", "seresnet50", "seresnext26d_32x4d"] {
        let a = detect(&tensors_of(name)).unwrap();
        assert_eq!(a.name(), name);
        assert_eq!(a, arch::standard(name, 10).unwrap(), "{name}");
    }
}

#[test]
fn se_tensors_are_checked_both_ways() {
    // An SE tensor on a plain network: the rest of that SE is missing, named.
    let mut tensors = tensors_of("resnet50");
    tensors.push((
        "layer1.0.se.fc1.weight".into(),
        vec![16, 256, 1, 1],
        vec![0.0; 4096],
    ));
    match detect(&tensors) {
        Err(Error::MissingTensor { name, .. }) => assert_eq!(name, "layer1.0.se.fc1.bias"),
        other => panic!("expected MissingTensor, got {other:?}"),
    }
    // One block without its SE.
    let mut tensors = tensors_of("seresnet50");
    tensors.retain(|(n, _, _)| !n.starts_with("layer3.2.se."));
    match detect(&tensors) {
        Err(Error::MissingTensor { name, .. }) => assert!(name.starts_with("layer3.2.se.")),
        other => panic!("expected MissingTensor, got {other:?}"),
    }
    // fc2 that does not map back to the block's width.
    let mut tensors = tensors_of("seresnet50");
    let fc2 = tensors
        .iter_mut()
        .find(|(n, _, _)| n == "layer2.1.se.fc2.weight")
        .unwrap();
    fc2.1 = vec![511, 32, 1, 1];
    fc2.2.truncate(511 * 32);
    match detect(&tensors) {
        Err(Error::TensorShape { name, expected, .. }) => {
            assert_eq!(
                (name.as_str(), expected),
                ("layer2.1.se.fc2.weight", vec![512, 32, 1, 1])
            )
        }
        other => panic!("expected TensorShape, got {other:?}"),
    }
}

#[test]
fn legacy_senet_blocks_are_refused_by_name() {
    let mut tensors = tensors_of("resnet50");
    tensors.push((
        "layer1.0.se_module.fc1.weight".into(),
        vec![16, 256, 1, 1],
        vec![0.0; 4096],
    ));
    match detect(&tensors) {
        Err(Error::NotResnet(msg)) => {
            assert!(msg.contains("layer1.0.se_module.fc1.weight"), "{msg}");
            assert!(msg.contains("squeeze-and-excitation"), "{msg}");
        }
        other => panic!("expected NotResnet, got {other:?}"),
    }
}

// ---- the GPU ---------------------------------------------------------------------------------

/// A bias-free conv `name` reading the NCHW graph input: `c → c`, k×k, "same" padding.
fn input_conv(name: &str, c: usize, kernel: usize) -> Conv {
    Conv {
        weight: format!("{name}.weight"),
        bn: String::new(),
        in_channels: c,
        out_channels: c,
        groups: 1,
        kernel,
        stride: 1,
        pad: kernel / 2,
        temporal: Window::POINT,
        relu: false,
        input_nchw: true,
        pre_act: None,
    }
}

/// `se(conv a(x), conv b(x))` with random weights: `c` channels reduced to `r`.
fn se_graph(rng: &mut Rng, c: usize, r: usize) -> (Graph, WeightsFile) {
    let mut g = Graph::default();
    g.input = g.new_value();
    g.input_channels = c;
    let y = g.push("a", Op::Conv(input_conv("a", c, 1)), vec![g.input]);
    let shortcut = g.push("b", Op::Conv(input_conv("b", c, 3)), vec![g.input]);
    let se = SqueezeExcite {
        fc1_weight: "se.fc1.weight".into(),
        fc1_bias: "se.fc1.bias".into(),
        fc2_weight: "se.fc2.weight".into(),
        fc2_bias: "se.fc2.bias".into(),
        channels: c,
        reduced: r,
    };
    g.output = g.push("se", Op::SqueezeExcite(se), vec![y, shortcut]);
    g.features = g.output;
    let scale = |fan_in: usize| (3.0 / fan_in as f32).sqrt();
    let mut tensor = |name: &str, shape: Vec<usize>, s: f32| {
        let len = shape.iter().product();
        (name.to_string(), shape, rng.vec(len, -s, s))
    };
    let tensors = vec![
        tensor("a.weight", vec![c, c, 1, 1], scale(c)),
        tensor("b.weight", vec![c, c, 3, 3], scale(9 * c)),
        tensor("se.fc1.weight", vec![r, c, 1, 1], 2.0 * scale(c)),
        tensor("se.fc1.bias", vec![r], 0.5),
        tensor("se.fc2.weight", vec![c, r, 1, 1], 2.0 * scale(r)),
        tensor("se.fc2.bias", vec![c], 0.5),
    ];
    let weights = WeightsFile::from_bytes("se", serialize_f32(&tensors, None).unwrap()).unwrap();
    (g, weights)
}

fn kernels_match_reference(mode: Mode, seed: u64, count: usize) {
    let Some(ctx) = common::gpu_mode(mode) else {
        return;
    };
    let mut rng = Rng::new(seed);
    let (mut clipped, mut passed) = (0, 0);
    for case in 0..count {
        // The last case has more channels than a workgroup has threads.
        let c = if case + 1 == count {
            301
        } else {
            rng.range(1, 41)
        };
        let r = rng.range(1, 13);
        let (g, weights) = se_graph(&mut rng, c, r);
        let size = InputSize::image(rng.range(1, 3), rng.range(1, 13), rng.range(1, 13));
        let x = rng.vec(size.n * c * size.h * size.w, -1.5, 1.5);
        let (want, _) = run_graph(&g, &weights, &x, size.n, size.h, size.w).unwrap();
        let engine = Engine::from_graph(ctx.clone(), g, &weights).unwrap();
        let got = engine.run_at(&x, size, Output::Logits).unwrap();
        let err = relative_error(&got, &want);
        let what = format!("case {case} {mode:?}: C {c} → {r} at {size:?}");
        // The plan counts the SE's scratch (scales and hidden layer per image).
        let stats = engine.stats(size).unwrap();
        assert!(
            stats.scratch_bytes >= (size.n * (c + r) * 4) as u64,
            "{what}"
        );
        assert!(
            got.len() == want.len() && err <= 1e-5,
            "{what}: error {err:.2e}"
        );
        clipped += want.iter().filter(|&&v| v == 0.0).count();
        passed += want.iter().filter(|&&v| v > 0.0).count();
    }
    // The ReLU clips some outputs and passes others: the cases see both sides of it.
    assert!(
        clipped > 0 && passed > 0,
        "{clipped} clipped, {passed} passed"
    );
}

#[test]
fn se_kernels_match_the_reference() {
    kernels_match_reference(ALL_MODES[0], 131, 16);
}

#[test]
fn se_kernels_match_the_reference_checked() {
    kernels_match_reference(ALL_MODES[2], 132, 8);
}

pub(crate) fn fixtures_match_pytorch(mode: Mode) {
    let Some(ctx) = common::gpu_mode(mode) else {
        return;
    };
    for case in cases() {
        let w = open(&case.name);
        let network = Network::detect(&w).unwrap();
        let (input, logits) = (se_fixture(&case.input), se_fixture(&case.logits));
        let size = InputSize::image(case.batch, case.height, case.width);
        let what = format!("{} {mode:?}", case.name);
        common::network_matches_pytorch(&ctx, &what, network, &w, (&input, &logits), size);
    }
}

#[test]
fn every_se_fixture_matches_pytorch_production_tiled() {
    fixtures_match_pytorch(ALL_MODES[0]);
}

#[test]
fn every_se_fixture_matches_pytorch_production_registers() {
    fixtures_match_pytorch(ALL_MODES[1]);
}

#[test]
fn every_se_fixture_matches_pytorch_checked_tiled() {
    fixtures_match_pytorch(ALL_MODES[2]);
}

#[test]
fn every_se_fixture_matches_pytorch_checked_registers() {
    fixtures_match_pytorch(ALL_MODES[3]);
}

#[test]
fn se_shapes_are_checked_and_its_layers_counted() {
    let se = Op::SqueezeExcite(SqueezeExcite {
        fc1_weight: "fc1.weight".into(),
        fc1_bias: "fc1.bias".into(),
        fc2_weight: "fc2.weight".into(),
        fc2_bias: "fc2.bias".into(),
        channels: 24,
        reduced: 8,
    });
    let shape = |c| resnet_wgpu::graph::Shape {
        n: 2,
        t: 1,
        h: 5,
        w: 3,
        c,
    };
    assert_eq!(
        se.output_shape("se", &[shape(24), shape(24)]).unwrap(),
        shape(24)
    );
    for bad in [
        vec![shape(24)],
        vec![shape(16), shape(16)],
        vec![shape(24), shape(16)],
    ] {
        assert!(se.output_shape("se", &bad).is_err(), "{bad:?}");
    }
    // Two 1×1 layers of 24·8 multiply-adds per image, two images.
    assert_eq!(se.flops(&shape(24)), 2 * 2 * (2 * 24 * 8));
}
