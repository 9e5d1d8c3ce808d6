//! Pre-activation ResNets (RobustBench Wide ResNets, timm ResNetV2 with BatchNorm): detection
//! and description, strict tensor checks, the graph's pre-activation wiring, and every fixture
//! of scripts/make_preact_fixtures.py on the CPU reference against PyTorch, and the same
//! fixtures end to end on the GPU (both conv kernels, both shader modes).

use std::path::PathBuf;

use crate::common::{self, fixture, Mode, ALL_MODES};
use resnet_wgpu::graph::{Graph, InputSize, Op};
use resnet_wgpu::model::preact::{detect_preact, is_preact, PreActArch};
use resnet_wgpu::reference::{relative_error, run_graph};
use resnet_wgpu::{npy, Error, Model, Network, WeightsFile};

/// One case of `tests/fixtures/preact/manifest.json`.
#[derive(serde::Deserialize)]
struct Case {
    name: String,
    member: String,
    weights: String,
    input: String,
    logits: String,
    batch: usize,
    height: usize,
    width: usize,
    classes: usize,
    describe: Vec<String>,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(fixture("preact/manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn preact_fixture(rel: &str) -> PathBuf {
    fixture(&format!("preact/{rel}"))
}

fn open(case: &str) -> WeightsFile {
    WeightsFile::open(preact_fixture(&format!("{case}/model.safetensors"))).unwrap()
}

fn network(case: &str) -> (Network, PreActArch) {
    let network = Network::detect(&open(case)).unwrap();
    let Model::PreAct(arch) = network.model.clone() else {
        panic!(
            "{case}: not detected as pre-activation: {:?}",
            network.model.name()
        );
    };
    (network, arch)
}

fn node<'a>(g: &'a Graph, name: &str) -> &'a resnet_wgpu::graph::Node {
    g.nodes
        .iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("no node {name}"))
}

// ---- detection and description -------------------------------------------------------------

#[test]
fn every_fixture_is_detected_and_described() {
    let all = cases();
    let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    let want = [
        "wrn_10_1",
        "wrn_16_1",
        "wrn_10_2",
        "resnetv2_18",
        "resnetv2_50",
        "resnetv2_50d",
    ];
    assert_eq!(names, want);
    for case in &all {
        let w = WeightsFile::open(preact_fixture(&case.weights)).unwrap();
        assert!(is_preact(&w), "{}", case.name);
        let (network, arch) = network(&case.name);
        assert!(
            arch.name().starts_with(&case.member),
            "{}: {}",
            case.name,
            arch.name()
        );
        assert_eq!(network.model.num_classes(), Some(case.classes));
        assert_eq!(network.model.outputs(), case.classes);
        let text = network.model.describe();
        for needle in &case.describe {
            assert!(
                text.contains(needle.as_str()),
                "{}: {text:?} lacks {needle:?}",
                case.name
            );
        }
    }
}

#[test]
fn depth_and_widen_factor_come_from_the_shapes() {
    let (_, a) = network("wrn_16_1");
    assert_eq!((a.depths(), a.widths()), (vec![2, 2, 2], vec![16, 32, 64]));
    let (_, a) = network("wrn_10_2");
    assert_eq!(
        (a.name(), a.widths()),
        ("WRN-10-2".into(), vec![32, 64, 128])
    );
    let (_, a) = network("resnetv2_50d");
    assert_eq!(a.depths(), vec![3, 4, 6, 3]);
    assert_eq!(a.features(), 64);
}

// ---- the graph -----------------------------------------------------------------------------

#[test]
fn a_block_that_changes_width_projects_the_activated_input_else_adds_the_raw_one() {
    // WRN-10-1: block1 keeps 16 channels (identity), block2 widens (convShortcut).
    let (net, _) = network("wrn_10_1");
    let g = &net.graph;
    let stem = node(g, "conv1");
    let Op::Conv(c) = &stem.op else { panic!() };
    assert!(c.input_nchw && c.bn.is_empty() && !c.relu && c.pre_act.is_none());
    let conv1 = node(g, "block1.layer.0.conv1");
    let Op::Conv(c) = &conv1.op else { panic!() };
    assert_eq!(c.pre_act.as_deref(), Some("block1.layer.0.bn1"));
    assert_eq!((c.bn.as_str(), c.relu), ("block1.layer.0.bn2", true));
    let conv2 = node(g, "block1.layer.0.conv2");
    let Op::Conv(c) = &conv2.op else { panic!() };
    assert!(c.bn.is_empty() && !c.relu && c.pre_act.is_none());
    assert_eq!(
        conv2.inputs,
        vec![conv1.output, stem.output],
        "identity: the raw input"
    );
    let shortcut = node(g, "block2.layer.0.convShortcut");
    let Op::Conv(c) = &shortcut.op else { panic!() };
    assert_eq!(c.pre_act.as_deref(), Some("block2.layer.0.bn1"));
    assert_eq!((c.kernel, c.stride, c.pad), (1, 2, 0));
    assert_eq!(node(g, "block2.layer.0.conv2").inputs[1], shortcut.output);
    let pool = node(g, "avgpool");
    assert_eq!(pool.op.pre_act(), Some("bn1"));
    assert!(g.nodes.iter().all(|n| !matches!(n.op, Op::MaxPool { .. })));
}

#[test]
fn timm_v2_pools_the_activated_input_and_reads_its_1x1_conv_head() {
    let (net, arch) = network("resnetv2_50d");
    let g = &net.graph;
    // Stage 0's shortcut has stride 1: timm's pool is an identity, the conv reads act(x).
    let d0 = node(g, "stages.0.blocks.0.downsample.conv");
    assert_eq!(d0.op.pre_act(), Some("stages.0.blocks.0.norm1"));
    let pool = node(g, "stages.1.blocks.0.downsample.pool");
    assert!(matches!(
        pool.op,
        Op::AvgPool {
            kernel: 2,
            stride: 2,
            ceil_mode: true,
            ..
        }
    ));
    assert_eq!(pool.op.pre_act(), Some("stages.1.blocks.0.norm1"));
    let d1 = node(g, "stages.1.blocks.0.downsample.conv");
    assert_eq!((d1.inputs[0], d1.op.pre_act()), (pool.output, None));
    let Op::Conv(c2) = &node(g, "stages.1.blocks.0.conv2").op else {
        panic!()
    };
    assert_eq!((c2.stride, c2.bn.as_str()), (2, "stages.1.blocks.0.norm3"));
    let Op::Conv(c3) = &node(g, "stages.1.blocks.0.conv3").op else {
        panic!()
    };
    assert!(c3.bn.is_empty() && !c3.relu);
    // A later block's shortcut is its raw input.
    let block1 = node(g, "stages.1.blocks.1.conv3");
    assert_eq!(block1.inputs[1], node(g, "stages.1.blocks.0.conv3").output);
    let fc = node(g, "fc");
    let Op::Linear {
        weight,
        in_features,
        out_features,
        ..
    } = &fc.op
    else {
        panic!()
    };
    assert_eq!(
        (weight.as_str(), *in_features, *out_features),
        ("head.fc.weight", 64, 5)
    );
    assert_eq!(arch.stem.len(), 3);
    assert!(matches!(
        node(g, "stem.pool").op,
        Op::MaxPool {
            kernel: 3,
            stride: 2,
            pad: 1,
            ..
        }
    ));
}

#[test]
fn the_wrn_head_pool_is_global_only_on_an_8x8_map() {
    let (net, _) = network("wrn_16_1");
    for side in 29..=32 {
        assert!(net.graph.infer_shapes(2, side, 61 - side).is_ok(), "{side}");
    }
    // 33 → 33 → 17 → 9: avg_pool2d(8) would read only the top-left 8×8 of the 9×9 map.
    let err = net.graph.infer_shapes(1, 33, 35).unwrap_err();
    assert!(matches!(err, Error::InputShape(_)) && err.to_string().contains("does not cover"));
    // timm's head is adaptive: any size pools globally.
    let (net, _) = network("resnetv2_18");
    assert!(net.graph.infer_shapes(1, 97, 33).is_ok());
}

// ---- the CPU reference against PyTorch -----------------------------------------------------

#[test]
fn every_fixture_matches_pytorch_on_the_cpu_reference() {
    for case in cases() {
        let (net, arch) = network(&case.name);
        let w = open(&case.name);
        let x = npy::read_f32(&preact_fixture(&case.input)).unwrap();
        let want = npy::read_f32(&preact_fixture(&case.logits)).unwrap();
        assert_eq!(x.shape, vec![case.batch, 3, case.height, case.width]);
        let (got, features) =
            run_graph(&net.graph, &w, &x.data, case.batch, case.height, case.width).unwrap();
        assert_eq!(features.len(), case.batch * arch.features());
        let err = relative_error(&got, &want.data);
        eprintln!("{}: relative error {err:.2e}", case.name);
        assert!(err <= 1e-4, "{}: relative error {err:.2e}", case.name);
    }
}

// ---- strict tensors and refused variants ---------------------------------------------------

/// The fixture's tensors, edited by `edit`, as a new file.
fn edited(case: &str, edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>)) -> WeightsFile {
    let w = open(case);
    let mut tensors: Vec<_> = w
        .tensors
        .iter()
        .filter_map(|(n, t)| Some((n.clone(), t.shape.clone(), w.to_f32(n)?)))
        .collect();
    edit(&mut tensors);
    let bytes = resnet_wgpu::weights::serialize_f32(&tensors, None).unwrap();
    WeightsFile::from_bytes(format!("{case}-edited"), bytes).unwrap()
}

fn reshaped(t: &mut [(String, Vec<usize>, Vec<f32>)], name: &str, shape: Vec<usize>) {
    let entry = t.iter_mut().find(|(n, ..)| n == name).unwrap();
    entry.2.resize(shape.iter().product(), 0.5);
    entry.1 = shape;
}

#[test]
fn missing_unexpected_and_misshapen_tensors_are_errors_naming_the_key() {
    let missing = edited("wrn_10_2", |t| {
        t.retain(|(n, ..)| n != "block2.layer.0.bn2.running_var")
    });
    let err = detect_preact(&missing).unwrap_err();
    assert!(
        matches!(err, Error::MissingTensor { ref name, .. } if name == "block2.layer.0.bn2.running_var"),
        "{err}"
    );
    let no_shortcut = edited("wrn_10_2", |t| {
        t.retain(|(n, ..)| n != "block1.layer.0.convShortcut.weight")
    });
    let err = detect_preact(&no_shortcut).unwrap_err();
    assert!(
        matches!(err, Error::MissingTensor { ref name, .. } if name == "block1.layer.0.convShortcut.weight"),
        "{err}"
    );
    let extra = edited("resnetv2_50", |t| {
        t.push((
            "stages.1.blocks.2.norm4.weight".into(),
            vec![8],
            vec![1.0; 8],
        ))
    });
    let err = detect_preact(&extra).unwrap_err();
    assert!(
        matches!(err, Error::UnexpectedTensor { ref name, .. } if name == "stages.1.blocks.2.norm4.weight"),
        "{err}"
    );
    let bad_norm = edited("resnetv2_18", |t| {
        reshaped(t, "stages.2.blocks.1.norm1.bias", vec![5])
    });
    let err = detect_preact(&bad_norm).unwrap_err();
    assert!(
        matches!(err, Error::TensorShape { ref name, .. } if name == "stages.2.blocks.1.norm1.bias"),
        "{err}"
    );
    let bad_kernel = edited("resnetv2_50d", |t| {
        reshaped(t, "stages.0.blocks.1.conv2.weight", vec![4, 4, 5, 5])
    });
    let err = detect_preact(&bad_kernel).unwrap_err();
    assert!(
        matches!(err, Error::TensorShape { ref name, ref expected, .. }
            if name == "stages.0.blocks.1.conv2.weight" && expected == &[4, 4, 3, 3]),
        "{err}"
    );
    let bad_chain = edited("wrn_10_1", |t| {
        reshaped(t, "block3.layer.0.conv2.weight", vec![64, 48, 3, 3])
    });
    let err = detect_preact(&bad_chain).unwrap_err();
    assert!(
        matches!(err, Error::TensorShape { ref name, .. } if name == "block3.layer.0.conv2.weight"),
        "{err}"
    );
    let flat_head = edited("resnetv2_18", |t| {
        reshaped(t, "head.fc.weight", vec![7, 32])
    });
    let err = detect_preact(&flat_head).unwrap_err();
    assert!(
        matches!(err, Error::TensorRank { ref name, .. } if name == "head.fc.weight"),
        "{err}"
    );
}

#[test]
fn group_norm_bit_and_non_preact_variants_are_refused_by_name() {
    // BiT / GroupNorm: norms with an affine but no running statistics.
    let group_norm = edited("resnetv2_50", |t| {
        t.retain(|(n, ..)| !n.ends_with(".running_mean") && !n.ends_with(".running_var"))
    });
    let err = Network::detect(&group_norm).unwrap_err().to_string();
    assert!(err.contains("GroupNorm") && err.contains("BiT"), "{err}");
    assert!(err.contains("stages.0.blocks.0.norm1"), "{err}");
    // preact=False (timm's ViT hybrid backbones): a norm after the stem conv.
    let v1 = edited("resnetv2_50", |t| {
        t.push(("stem.norm.weight".into(), vec![8], vec![1.0; 8]))
    });
    let err = Network::detect(&v1).unwrap_err().to_string();
    assert!(err.contains("without pre-activation"), "{err}");
}

#[test]
fn a_headless_timm_v2_outputs_its_activated_pooled_features() {
    let w = edited("resnetv2_18", |t| {
        t.retain(|(n, ..)| !n.starts_with("head."))
    });
    let net = Network::detect(&w).unwrap();
    assert_eq!(net.model.num_classes(), None);
    assert!(net.model.describe().contains("no head"));
    assert_eq!(net.graph.output, net.graph.features);
    assert_eq!(node(&net.graph, "avgpool").op.pre_act(), Some("norm"));
}

#[test]
fn info_plans_a_wide_resnet_at_32_and_says_why_it_cannot_run_at_224() {
    let path = preact_fixture("wrn_16_1/model.safetensors");
    let path = path.to_str().unwrap();
    let out = common::resnet(&["info", "--weights", path, "--size", "31x29"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("WRN-16-1 (RobustBench WideResNet, pre-activation"),
        "{text}"
    );
    assert!(text.contains("applied as read by 9 ops"), "{text}");
    assert!(text.contains("plan @ 1x3x31x29: 17 dispatches"), "{text}");
    // Without --size a Wide ResNet is planned at CIFAR's 32×32, where its head pool covers
    // the map; at 224 the pool would not, and the plan says why.
    let out = common::resnet(&["info", "--weights", path, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["architecture"], "WRN-16-1");
    assert_eq!(json["plan"]["height"], 32, "{json}");
    let args = ["info", "--weights", path, "--json", "--size", "224x224"];
    let out = common::resnet(&args);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["plan"]["error"]
        .as_str()
        .unwrap()
        .contains("does not cover"));
}

// ---- the GPU, end to end -------------------------------------------------------------------

/// Every fixture through the engine at its PyTorch input, in `mode`: logits and the pooled
/// features against the CPU reference's.
pub(crate) fn fixtures_match_pytorch(mode: Mode) {
    fixtures_match_pytorch_within(mode, &|_, ctx| common::end_to_end_tolerance(ctx));
}

/// [`fixtures_match_pytorch`] with each case's bound on the logits from `tol` (case name,
/// device).
pub(crate) fn fixtures_match_pytorch_within(
    mode: Mode,
    tol: &dyn Fn(&str, &resnet_wgpu::GpuContext) -> f64,
) {
    let Some(ctx) = common::gpu_mode(mode) else {
        return;
    };
    for case in cases() {
        let w = open(&case.name);
        let network = Network::detect(&w).unwrap();
        let (input, logits) = (preact_fixture(&case.input), preact_fixture(&case.logits));
        let size = InputSize::image(case.batch, case.height, case.width);
        let what = format!("{} {mode:?}", case.name);
        let files = (input.as_path(), logits.as_path());
        let bound = tol(&case.name, &ctx);
        common::network_matches_pytorch_within(&ctx, &what, (network, &w), files, size, bound);
    }
}

#[test]
fn every_preact_fixture_matches_pytorch_production_tiled() {
    fixtures_match_pytorch(ALL_MODES[0]);
}

#[test]
fn every_preact_fixture_matches_pytorch_production_registers() {
    fixtures_match_pytorch(ALL_MODES[1]);
}

#[test]
fn every_preact_fixture_matches_pytorch_checked_tiled() {
    fixtures_match_pytorch(ALL_MODES[2]);
}

#[test]
fn every_preact_fixture_matches_pytorch_checked_registers() {
    fixtures_match_pytorch(ALL_MODES[3]);
}
