//! Bad weights files: every kind of damage is an error that names the file or the tensor,
//! never a panic; and through the CLI, one `error:` line with exit code 2. The broken files
//! are made here, from the `tiny` fixture, rather than committed.

use crate::common;

use std::path::Path;

use common::{assert_user_error, fixture, resnet, scratch};
use resnet_wgpu::model::arch::{self, Arch, BlockKind, Stage};
use resnet_wgpu::model::build_graph;
use resnet_wgpu::weights::serialize_f32;
use resnet_wgpu::{Error, WeightsFile};
use safetensors::Dtype;

/// One tensor of a file, as stored.
#[derive(Clone)]
struct T {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

fn tiny_bytes() -> Vec<u8> {
    std::fs::read(fixture("tiny.safetensors")).unwrap()
}

fn tensors_of(bytes: &[u8]) -> Vec<T> {
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let mut out: Vec<T> = st
        .tensors()
        .into_iter()
        .map(|(name, v)| T {
            name,
            dtype: v.dtype(),
            shape: v.shape().to_vec(),
            data: v.data().to_vec(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn build(ts: &[T]) -> Vec<u8> {
    let views: Vec<(String, safetensors::tensor::TensorView)> = ts
        .iter()
        .map(|t| {
            let v = safetensors::tensor::TensorView::new(t.dtype, t.shape.clone(), &t.data)
                .expect("consistent test tensor");
            (t.name.clone(), v)
        })
        .collect();
    safetensors::tensor::serialize(views, None).unwrap()
}

/// The tiny fixture with `edit` applied to its tensors.
fn edited(edit: impl FnOnce(&mut Vec<T>)) -> Vec<u8> {
    let mut ts = tensors_of(&tiny_bytes());
    edit(&mut ts);
    build(&ts)
}

fn find<'a>(ts: &'a mut [T], name: &str) -> &'a mut T {
    ts.iter_mut().find(|t| t.name == name).expect(name)
}

/// A file image from a header JSON text and a data section.
fn with_header(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// Parses and detects: the whole load path before the GPU.
fn load(bytes: Vec<u8>) -> Result<Arch, Error> {
    let w = WeightsFile::from_bytes("test.safetensors", bytes)?;
    let a = resnet_wgpu::model::detect(&w)?;
    w.check_finite()?;
    Ok(a)
}

fn err(bytes: Vec<u8>) -> Error {
    match load(bytes) {
        Ok(a) => panic!("expected an error, got {a:?}"),
        Err(e) => e,
    }
}

fn safetensors_msg(bytes: Vec<u8>) -> String {
    match err(bytes) {
        Error::Safetensors { path, msg } => {
            assert_eq!(path, Path::new("test.safetensors"));
            msg
        }
        other => panic!("expected a safetensors error, got {other:?}"),
    }
}

#[test]
fn the_base_file_loads() {
    let a = load(tiny_bytes()).unwrap();
    assert_eq!(a.num_classes, Some(3));
}

#[test]
fn structurally_broken_files_are_errors() {
    let tiny = tiny_bytes();
    let hlen = u64::from_le_bytes(tiny[..8].try_into().unwrap()) as usize;
    let data = &tiny[8 + hlen..];
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "shorter than the 8-byte header"),
        (
            "7 bytes",
            tiny[..7].to_vec(),
            "shorter than the 8-byte header",
        ),
        (
            "header length beyond the file",
            tiny[..8 + hlen / 2].to_vec(),
            "runs past the end",
        ),
        (
            "header length over the limit",
            [200_000_000u64.to_le_bytes().as_slice(), b"{}"].concat(),
            "100 MB",
        ),
        (
            "header length u64::MAX",
            [u64::MAX.to_le_bytes().as_slice(), b"{}"].concat(),
            "100 MB",
        ),
        (
            "header not UTF-8",
            {
                let mut b = with_header("{\"a\": 1}", &[]);
                b[9] = 0xff;
                b
            },
            "UTF-8",
        ),
        ("invalid JSON", with_header("{\"a\": ", &[]), "JSON"),
        ("JSON array", with_header("[1, 2]", &[]), "JSON"),
        (
            "unknown dtype",
            with_header(
                r#"{"x": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}"#,
                &[0; 16],
            ),
            "JSON",
        ),
        (
            "overlapping offsets",
            with_header(
                r#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                    "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}"#,
                &[0; 12],
            ),
            "offsets",
        ),
        (
            "a gap between tensors",
            with_header(
                r#"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                    "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}"#,
                &[0; 12],
            ),
            "offsets",
        ),
        (
            "offsets beyond the data",
            with_header(
                r#"{"a": {"dtype": "F32", "shape": [256], "data_offsets": [0, 1024]}}"#,
                &[0; 16],
            ),
            "data section length",
        ),
        (
            "offsets that disagree with the shape",
            with_header(
                r#"{"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}"#,
                &[0; 16],
            ),
            "does not match its shape",
        ),
        (
            "a shape whose size overflows",
            with_header(
                r#"{"a": {"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296], "data_offsets": [0, 4]}}"#,
                &[0; 4],
            ),
            "overflow",
        ),
        (
            "truncated data",
            tiny[..tiny.len() - 1].to_vec(),
            "truncated",
        ),
        (
            "trailing bytes",
            [tiny.as_slice(), &[0u8; 4]].concat(),
            "trailing bytes",
        ),
        ("data with no header", data.to_vec(), ""),
    ];
    for (what, bytes, needle) in cases {
        let msg = safetensors_msg(bytes);
        assert!(msg.contains(needle), "{what}: `{needle}` not in `{msg}`");
    }
}

#[test]
fn every_truncation_and_header_corruption_is_handled() {
    // A cheap stand-in for the fuzzer (scripts/fuzz.sh): every prefix through the header and
    // a sample beyond, and every header byte replaced by characters that matter to JSON.
    let tiny = tiny_bytes();
    let hlen = u64::from_le_bytes(tiny[..8].try_into().unwrap()) as usize;
    for cut in (0..8 + hlen + 64).chain((8 + hlen..tiny.len()).step_by(997)) {
        assert!(load(tiny[..cut].to_vec()).is_err(), "prefix of {cut} bytes");
    }
    for i in (0..8 + hlen).step_by(7) {
        for v in [b'"', b'{', b']', b'9', b'-', 0xff] {
            let mut b = tiny.clone();
            b[i] = v;
            let _ = load(b);
        }
    }
}

#[test]
fn unsupported_dtypes_name_the_tensor() {
    // Same bytes, another 4-byte dtype: a valid safetensors file, but not float weights.
    for dtype in [Dtype::I32, Dtype::U32] {
        let bytes = edited(|ts| find(ts, "layer1.0.conv1.weight").dtype = dtype);
        match err(bytes) {
            Error::TensorDtype { name, found } => {
                assert_eq!(name, "layer1.0.conv1.weight");
                assert_eq!(found, format!("{dtype:?}"));
            }
            other => panic!("{dtype:?}: {other:?}"),
        }
    }
    // F64: twice the bytes.
    let bytes = edited(|ts| {
        let t = find(ts, "fc.bias");
        t.dtype = Dtype::F64;
        t.data = t
            .data
            .chunks_exact(4)
            .flat_map(|c| (f32::from_le_bytes(c.try_into().unwrap()) as f64).to_le_bytes())
            .collect();
    });
    assert!(matches!(err(bytes), Error::TensorDtype { name, .. } if name == "fc.bias"));
}

#[test]
fn nan_and_inf_are_refused_naming_the_tensor() {
    let poke = |name: &'static str, index: usize, value: f32| {
        edited(move |ts| {
            let t = find(ts, name);
            t.data[4 * index..4 * index + 4].copy_from_slice(&value.to_le_bytes());
        })
    };
    for (name, index, value) in [
        ("layer1.0.conv1.weight", 5, f32::NAN),
        ("bn1.running_var", 0, f32::INFINITY),
        ("fc.bias", 2, f32::NEG_INFINITY),
    ] {
        match err(poke(name, index, value)) {
            Error::NonFinite {
                path,
                name: n,
                count,
                first,
            } => {
                assert_eq!((n.as_str(), count, first), (name, 1, index));
                assert_eq!(path, Path::new("test.safetensors"));
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    // Extreme but finite values are weights like any other.
    for v in [f32::MAX, -f32::MAX, f32::MIN_POSITIVE / 2.0, -0.0] {
        load(poke("fc.weight", 0, v)).unwrap();
    }
    // F16 and BF16 files: the check reads their own exponent bits.
    for (dtype, inf_bits) in [(Dtype::F16, 0x7c00u16), (Dtype::BF16, 0x7f80u16)] {
        let bytes = edited(|ts| {
            for t in ts.iter_mut().filter(|t| t.dtype == Dtype::F32) {
                t.dtype = dtype;
                t.data = t
                    .data
                    .chunks_exact(4)
                    .flat_map(|c| {
                        let v = f32::from_le_bytes(c.try_into().unwrap());
                        match dtype {
                            Dtype::F16 => half::f16::from_f32(v).to_le_bytes(),
                            _ => half::bf16::from_f32(v).to_le_bytes(),
                        }
                    })
                    .collect();
            }
            let t = find(ts, "layer1.0.bn2.weight");
            t.data[2..4].copy_from_slice(&inf_bits.to_le_bytes());
            t.data[6..8].copy_from_slice(&(inf_bits | 1).to_le_bytes()); // a NaN
        });
        match err(bytes) {
            Error::NonFinite {
                name, count, first, ..
            } => assert_eq!((name.as_str(), count, first), ("layer1.0.bn2.weight", 2, 1)),
            other => panic!("{dtype:?}: {other:?}"),
        }
    }
}

#[test]
fn missing_extra_and_misshaped_tensors_are_named() {
    let missing = edited(|ts| ts.retain(|t| t.name != "layer1.0.bn1.running_var"));
    assert!(
        matches!(err(missing), Error::MissingTensor { name, expected } if name == "layer1.0.bn1.running_var" && expected == vec![4])
    );
    let extra = edited(|ts| {
        ts.push(T {
            name: "layer1.0.attention.weight".into(),
            dtype: Dtype::F32,
            shape: vec![2],
            data: vec![0; 8],
        })
    });
    assert!(
        matches!(err(extra), Error::UnexpectedTensor { name, .. } if name == "layer1.0.attention.weight")
    );
    // Same bytes, another shape.
    let reshaped = edited(|ts| find(ts, "layer1.0.conv2.weight").shape = vec![4, 4, 9, 1]);
    assert!(
        matches!(err(reshaped), Error::TensorShape { name, found, .. } if name == "layer1.0.conv2.weight" && found == vec![4, 4, 9, 1])
    );
    let rank = edited(|ts| find(ts, "conv1.weight").shape = vec![4, 3, 49]);
    // A wrong rank says the rank it needs, not a made-up shape.
    let e = err(rank);
    assert!(
        matches!(&e, Error::TensorRank { name, expected: 4, found } if name == "conv1.weight" && *found == vec![4, 3, 49]),
        "{e}"
    );
    assert!(e.to_string().contains("expected 4 dimensions"), "{e}");
    // The training counter may be missing, and is ignored where present.
    load(edited(|ts| {
        ts.retain(|t| !t.name.ends_with("num_batches_tracked"))
    }))
    .unwrap();
}

#[test]
fn files_that_are_no_resnet() {
    let one = with_header(
        r#"{"embeddings.weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}"#,
        &[0; 8],
    );
    assert!(matches!(err(one), Error::NotResnet(m) if m.contains("embeddings.weight")));
    let no_stages = edited(|ts| ts.retain(|t| !t.name.starts_with("layer")));
    assert!(matches!(err(no_stages), Error::NotResnet(m) if m.contains("layer1")));
    // A network of empty tensors is consistent in every shape, and still no network.
    let zero = arch::with_widths(BlockKind::Basic, &[1, 1], 0, 3);
    let tensors: Vec<_> = zero
        .expected_tensors()
        .into_iter()
        .map(|(n, s)| {
            let len = s.iter().product();
            (n, s, vec![0.5; len])
        })
        .collect();
    let bytes = serialize_f32(&tensors, None).unwrap();
    assert!(matches!(err(bytes), Error::NotResnet(m) if m.contains("zero")));
    let no_classes = edited(|ts| {
        find(ts, "fc.weight").shape = vec![0, 32];
        find(ts, "fc.weight").data.clear();
        find(ts, "fc.bias").shape = vec![0];
        find(ts, "fc.bias").data.clear();
    });
    assert!(matches!(err(no_classes), Error::NotResnet(_)));
}

#[test]
fn a_resnet_with_seventy_stages_loads() {
    // Each stage of width 1 costs a few hundred bytes, so a small file can hold far more
    // stages than torchvision's four; nothing (naming, shapes, plans) may assume four.
    let mut deep = resnet_wgpu::model::arch::with_widths(BlockKind::Basic, &[1], 1, 2);
    let first = deep.stages[0].clone();
    deep.stages = (1..=70)
        .map(|index| Stage {
            index,
            stride: if index == 1 { 1 } else { 2 },
            ..first.clone()
        })
        .collect();
    let tensors: Vec<_> = deep
        .expected_tensors()
        .into_iter()
        .map(|(n, s)| {
            let len = s.iter().product();
            (n, s, vec![0.25; len])
        })
        .collect();
    let a = load(serialize_f32(&tensors, None).unwrap()).unwrap();
    assert_eq!(a, deep);
    assert!(a.name().starts_with("resnet142"), "{}", a.name());
    let shapes = build_graph(&a).infer_shapes(1, 64, 64).unwrap();
    assert_eq!(shapes.last().unwrap().c, 2);
}

#[test]
fn files_on_disk_that_cannot_be_weights() {
    let dir = scratch("weights-disk");
    let open_err = |p: &Path| WeightsFile::open(p).unwrap_err();
    assert!(matches!(open_err(&dir), Error::Io { path, .. } if path == dir));
    let missing = dir.join("missing.safetensors");
    assert!(
        matches!(open_err(&missing), Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    );
    let empty = dir.join("empty.safetensors");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(open_err(&empty), Error::Safetensors { msg, .. } if msg.contains("empty")));
    // A FIFO would block `open` forever: refused from its metadata instead.
    let fifo = dir.join("fifo.safetensors");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    assert!(
        matches!(open_err(&fifo), Error::Io { source, .. } if source.to_string().contains("not a regular file"))
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Whether this process runs as root (who can read a mode-000 file).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[test]
fn cli_names_the_file_and_the_problem() {
    let dir = scratch("weights-cli");
    let write = |name: &str, bytes: Vec<u8>| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    };
    let tiny = tiny_bytes();
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            write("empty.safetensors", vec![]),
            vec!["empty.safetensors", "empty"],
        ),
        (
            write("truncated.safetensors", tiny[..tiny.len() / 2].to_vec()),
            vec!["truncated.safetensors", "truncated"],
        ),
        (
            write(
                "garbage.safetensors",
                (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect(),
            ),
            vec!["garbage.safetensors", "not a valid safetensors file"],
        ),
        (
            write(
                "missing.safetensors",
                edited(|ts| ts.retain(|t| t.name != "fc.bias")),
            ),
            vec!["missing.safetensors", "`fc.bias` is missing"],
        ),
        (
            write(
                "nan.safetensors",
                edited(|ts| {
                    find(ts, "layer1.0.bn1.bias").data[..4].copy_from_slice(&f32::NAN.to_le_bytes())
                }),
            ),
            vec!["nan.safetensors", "layer1.0.bn1.bias", "NaN"],
        ),
        (
            write(
                "int.safetensors",
                edited(|ts| find(ts, "conv1.weight").dtype = Dtype::I32),
            ),
            vec!["int.safetensors", "conv1.weight", "I32"],
        ),
        (
            fixture("tiny.input.npy").to_str().unwrap().to_string(),
            vec!["tiny.input.npy"],
        ),
        (dir.to_str().unwrap().to_string(), vec!["is a directory"]),
        (
            dir.join("nope.safetensors").to_str().unwrap().to_string(),
            vec!["nope.safetensors", "No such file"],
        ),
    ];
    for (path, needles) in &cases {
        let o = resnet(&["info", "--weights", path]);
        assert_user_error(path, &o, needles);
    }
    // `run` checks the weights before it touches the GPU, so this needs no adapter.
    let nan = &cases[4].0;
    let o = resnet(&[
        "run",
        "--weights",
        nan,
        "--input",
        fixture("tiny.input.npy").to_str().unwrap(),
        "--output",
        dir.join("out.npy").to_str().unwrap(),
    ]);
    assert_user_error("run with NaN weights", &o, &["nan.safetensors", "NaN"]);
    assert!(!dir.join("out.npy").exists());

    // Unreadable: mode 000. Root reads anything, so as root the CLI runs as `nobody`.
    let locked = write("locked.safetensors", tiny.clone());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_resnet"));
    cmd.args(["info", "--weights", &locked]);
    if is_root() {
        use std::os::unix::process::CommandExt;
        cmd.uid(65534).gid(65534);
    }
    let o = common::resnet_with(&mut cmd);
    assert_user_error(
        "unreadable",
        &o,
        &["locked.safetensors", "Permission denied"],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The transformers fixture (ResNet-50 layout, HF names) as tensors.
fn hf_tensors() -> Vec<T> {
    let bytes = std::fs::read(fixture("family/hf_resnet50/model.safetensors")).unwrap();
    tensors_of(&bytes)
}

#[test]
fn keys_that_alias_after_parsing_are_unexpected() {
    // Every way of writing an index that parses to the same number, in each numbered
    // component of each layout: the extra key must be refused by name, never read in place
    // of the real one (nor the real one in place of it).
    let hf_real = "resnet.encoder.stages.0.layers.0.layer.0.convolution.weight";
    let hf_aliases = [
        "resnet.encoder.stages.00.layers.0.layer.0.convolution.weight",
        "resnet.encoder.stages.+0.layers.0.layer.0.convolution.weight",
        "resnet.encoder.stages.0.layers.00.layer.0.convolution.weight",
        "resnet.encoder.stages.0.layers.0.layer.00.convolution.weight",
        "resnet.encoder.stages.0.layers.0.layer.+0.convolution.weight",
    ];
    for alias in hf_aliases {
        let mut ts = hf_tensors();
        let mut extra = find(&mut ts, hf_real).clone();
        extra.name = alias.into();
        // A shape the plan never checked: it must not reach the GPU.
        extra.shape = vec![extra.shape.iter().product()];
        ts.push(extra);
        let e = err(build(&ts));
        assert!(
            matches!(&e, Error::UnexpectedTensor { name, .. } if name == alias),
            "{alias}: {e}"
        );
    }
    // Alone (without the real key beside it) the alias is still not the real key.
    let mut ts = hf_tensors();
    find(&mut ts, hf_real).name = hf_aliases[0].into();
    assert!(
        matches!(err(build(&ts)), Error::UnexpectedTensor { name, .. } if name == hf_aliases[0])
    );
    // torchvision/timm names: `layer1.01.` beside `layer1.0.`, and `layer01.`.
    for alias in [
        "layer1.00.conv1.weight",
        "layer1.+0.conv1.weight",
        "conv1.00.weight",
    ] {
        let bytes = edited(|ts| {
            let mut extra = find(ts, "layer1.0.conv1.weight").clone();
            extra.name = alias.into();
            ts.push(extra);
        });
        let e = err(bytes);
        assert!(
            matches!(&e, Error::UnexpectedTensor { name, .. } if name == alias),
            "{alias}: {e}"
        );
    }
    // The untouched files still load.
    load(build(&hf_tensors())).unwrap();
}

#[test]
fn negative_variances_are_refused_naming_the_tensor() {
    // PyTorch divides by sqrt(running_var + eps): a variance below -eps gives NaN logits.
    // Every negative one is refused, naming the tensor, in both layouts and every dtype.
    for value in [-1.0f32, -1e-6] {
        let bytes = edited(|ts| {
            let t = find(ts, "layer1.0.bn2.running_var");
            t.data[4..8].copy_from_slice(&value.to_le_bytes());
        });
        let e = err(bytes);
        assert!(
            matches!(&e, Error::NegativeVariance { name, first: 1, count: 1, .. } if name == "layer1.0.bn2.running_var"),
            "{value}: {e}"
        );
        assert!(e.to_string().contains("negative variance"), "{e}");
    }
    let mut ts = hf_tensors();
    let name = "resnet.embedder.embedder.normalization.running_var";
    let t = find(&mut ts, name);
    let negative: Vec<u8> = match t.dtype {
        Dtype::F32 => (-2.0f32).to_le_bytes().to_vec(),
        Dtype::F16 => half::f16::from_f32(-2.0).to_le_bytes().to_vec(),
        _ => half::bf16::from_f32(-2.0).to_le_bytes().to_vec(),
    };
    t.data[..negative.len()].copy_from_slice(&negative);
    assert!(matches!(err(build(&ts)), Error::NegativeVariance { name: n, .. } if n == name));
    // Zero is a valid variance (a constant channel), and -0.0 is zero.
    load(edited(|ts| {
        let t = find(ts, "layer1.0.bn2.running_var");
        t.data[..4].copy_from_slice(&0.0f32.to_le_bytes());
        t.data[4..8].copy_from_slice(&(-0.0f32).to_le_bytes());
    }))
    .unwrap();
    // Through the CLI: one line naming the file and the tensor, exit code 2.
    let dir = scratch("weights-variance");
    let path = dir.join("negvar.safetensors");
    std::fs::write(
        &path,
        edited(|ts| {
            let t = find(ts, "bn1.running_var");
            t.data[..4].copy_from_slice(&(-3.0f32).to_le_bytes());
        }),
    )
    .unwrap();
    let o = resnet(&["info", "--weights", path.to_str().unwrap()]);
    assert_user_error(
        "negative variance",
        &o,
        &["negvar.safetensors", "bn1.running_var", "negative"],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_file_changed_after_opening_cannot_crash_the_loader() {
    // A memory-mapped file truncated by another process faults (SIGBUS) on the next read of
    // a lost page. Weights are read into memory instead: once `open` returns, what happens to
    // the file on disk cannot change or crash anything.
    let dir = scratch("weights-truncated-later");
    let path = dir.join("tiny.safetensors");
    let bytes = tiny_bytes();
    std::fs::write(&path, &bytes).unwrap();
    let w = WeightsFile::open(&path).unwrap();
    let before: Vec<Vec<f32>> = w.tensors.keys().filter_map(|n| w.to_f32(n)).collect();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(64)
        .unwrap();
    resnet_wgpu::model::detect(&w).unwrap();
    w.check_finite().unwrap();
    let after: Vec<Vec<f32>> = w.tensors.keys().filter_map(|n| w.to_f32(n)).collect();
    assert_eq!(before, after);
    for name in w.tensors.keys() {
        assert!(w.raw(name).is_some());
    }
    // Opened again now, the truncated file is an error naming it.
    let e = WeightsFile::open(&path).unwrap_err();
    assert!(e.to_string().contains("tiny.safetensors"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
