//! CLI usage errors: bad sizes and batches, unknown adapters and backends, output paths that
//! cannot be written. Each is one `error:` line with exit code 2, and no failure leaves a
//! partial or temporary output file.

use crate::common;

use std::path::Path;

use common::{assert_user_error, fixture, resnet, scratch};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn bad_sizes_and_batches() {
    for size in ["0x5", "224x", "x224", "abc", "-3x4", "224x224x3", "1e3"] {
        let o = resnet(&["info", &format!("--size={size}")]);
        assert_user_error(size, &o, &[size]);
    }
    // Parsable but absurd: refused with the reason, not an overflow.
    let o = resnet(&["info", "--size", "18446744073709551615x2"]);
    assert_user_error("huge size", &o, &["too large"]);
    let o = resnet(&["info", "--batch", "18446744073709551615"]);
    assert_user_error("huge batch", &o, &["too large"]);
    // A size is fine down to 1×1 (PyTorch's ResNet takes it too).
    let o = resnet(&["info", "--size", "1x1", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for args in [
        vec!["info", "--batch", "0"],
        vec!["classify", "samples", "--batch", "0"],
        vec!["classify", "samples", "--top-k", "0"],
    ] {
        let o = resnet(&args);
        assert_user_error(&args.join(" "), &o, &["at least 1"]);
    }
    let o = resnet(&["classify", "samples", "--batch", "-1"]);
    assert_user_error("negative batch", &o, &["-1"]);
}

#[test]
fn unknown_adapters_and_backends_are_user_errors() {
    let input = fixture("tiny.input.npy");
    let weights = fixture("tiny.safetensors");
    let dir = scratch("cli-adapters");
    let out = dir.join("out.npy");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--weights",
            s(&weights),
            "--input",
            s(&input),
            "--output",
            s(&out),
        ];
        args.extend_from_slice(extra);
        resnet(&args)
    };
    assert_user_error(
        "--adapter",
        &run(&["--adapter", "no-such-gpu-xyz"]),
        &[
            "no GPU adapter matches name `no-such-gpu-xyz`",
            "available:",
        ],
    );
    assert_user_error(
        "--backend",
        &run(&["--backend", "directx9"]),
        &["unknown backend `directx9`"],
    );
    assert_user_error(
        "adapters --backend",
        &resnet(&["adapters", "--backend", "vulkan,nope"]),
        &["unknown backend `nope`"],
    );
    // The environment variables are input too.
    let o = common::resnet_with(
        std::process::Command::new(env!("CARGO_BIN_EXE_resnet"))
            .args([
                "run",
                "--weights",
                s(&weights),
                "--input",
                s(&input),
                "--output",
                s(&out),
            ])
            .env("WGPU_ADAPTER_NAME", "no-such-gpu-xyz"),
    );
    assert_user_error("WGPU_ADAPTER_NAME", &o, &["no-such-gpu-xyz"]);
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn output_paths_that_cannot_be_written() {
    let dir = scratch("cli-outputs");
    let input = fixture("tiny.input.npy");
    let weights = fixture("tiny.safetensors");
    let run = |out: &Path| {
        resnet(&[
            "run",
            "--weights",
            s(&weights),
            "--input",
            s(&input),
            "--output",
            s(out),
        ])
    };
    let missing = dir.join("no/such/folder/out.npy");
    assert_user_error("missing folder", &run(&missing), &["does not exist"]);
    assert_user_error("a folder", &run(&dir), &["is a folder"]);
    let file = dir.join("plain.txt");
    std::fs::write(&file, b"x").unwrap();
    assert_user_error(
        "under a file",
        &run(&file.join("out.npy")),
        &["does not exist"],
    );
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let o = resnet(&["classify", s(&samples), "--features", s(&missing)]);
    assert_user_error("classify --features", &o, &["does not exist"]);
    assert!(!missing.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Names in `dir` that are temporary files of an interrupted or failed write.
fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[test]
fn outputs_appear_whole_or_not_at_all() {
    if common::gpu(false).is_none() {
        return;
    }
    let dir = scratch("cli-atomic");
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let features = dir.join("features.npy");
    let logits = dir.join("logits.npy");
    // Successful runs leave exactly their output.
    let o = resnet(&["classify", s(&samples), "--features", s(&features)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = resnet(&[
        "run",
        "--weights",
        s(&fixture("tiny.safetensors")),
        "--input",
        s(&fixture("tiny.input.npy")),
        "--output",
        s(&logits),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let before = (
        std::fs::read(&features).unwrap(),
        std::fs::read(&logits).unwrap(),
    );
    assert!(temporaries(&dir).is_empty());
    // Failures late in the work leave the previous outputs as they were: a broken image
    // after good ones, decoded only once two batches have run on the GPU...
    let mixed = dir.join("mixed");
    std::fs::create_dir_all(&mixed).unwrap();
    for name in ["0_0020.png", "1_0080.png"] {
        std::fs::copy(samples.join(name), mixed.join(name)).unwrap();
    }
    std::fs::write(mixed.join("9_broken.png"), b"\x89PNG\r\n\x1a\ntruncated").unwrap();
    let o = resnet(&[
        "classify",
        s(&mixed),
        "--batch",
        "1",
        "--features",
        s(&features),
    ]);
    assert_user_error("broken image", &o, &["9_broken.png"]);
    // ... and an input with a NaN.
    let nan = dir.join("nan.npy");
    let mut x = resnet_wgpu::npy::read_f32(&fixture("tiny.input.npy")).unwrap();
    let last = x.data.len() - 1;
    x.data[last] = f32::NAN;
    resnet_wgpu::npy::write_f32(&nan, &x.shape, &x.data).unwrap();
    let o = resnet(&[
        "run",
        "--weights",
        s(&fixture("tiny.safetensors")),
        "--input",
        s(&nan),
        "--output",
        s(&logits),
    ]);
    assert_user_error("NaN input", &o, &["nan.npy", "NaN"]);
    assert_eq!(std::fs::read(&features).unwrap(), before.0);
    assert_eq!(std::fs::read(&logits).unwrap(), before.1);
    assert!(temporaries(&dir).is_empty(), "{:?}", temporaries(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn labels_and_host_memory_limits() {
    let dir = scratch("cli-labels");
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let fifo = dir.join("labels.txt");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    // Checked before the GPU is opened, so these need no adapter.
    let o = resnet(&["classify", s(&samples), "--labels", s(&fifo)]);
    assert_user_error("labels FIFO", &o, &["labels.txt", "not a regular file"]);
    let three = dir.join("three.txt");
    std::fs::write(&three, "a\nb\nc\n").unwrap();
    let o = resnet(&["classify", s(&samples), "--labels", s(&three)]);
    assert_user_error(
        "3 labels for 10 classes",
        &o,
        &["three.txt", "3 class names", "10 classes"],
    );
    let binary = dir.join("binary.txt");
    std::fs::write(&binary, [0xffu8, 0xfe, 0x00]).unwrap();
    let o = resnet(&["classify", s(&samples), "--labels", s(&binary)]);
    assert_user_error("binary labels", &o, &["binary.txt", "UTF-8"]);
    // A benchmark input larger than memory is refused, not an aborted allocation.
    if common::gpu(false).is_some() {
        let o = resnet(&[
            "bench",
            "--arch",
            "resnet18",
            "--batch",
            "1000000000",
            "--iters",
            "1",
        ]);
        assert_user_error(
            "huge bench batch",
            &o,
            &["does not fit in this machine's memory"],
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
