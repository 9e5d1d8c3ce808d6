//! CLI usage errors: bad sizes and batches, unknown adapters and backends, output paths that
//! cannot be written. Each is one `error:` line with exit code 2, and no failure leaves a
//! partial or temporary output file.

use crate::common;

use std::path::{Path, PathBuf};

use common::{assert_user_error, fixture, resnet, scratch};
use resnet_wgpu::WeightsFile;

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

// ------------------------------------------------------- standard streams

/// Runs `resnet args` with stdout and stderr as given (a file, a closed pipe...), killing
/// it after two minutes.
fn resnet_into(
    args: &[&str],
    stdout: std::process::Stdio,
    stderr: std::process::Stdio,
) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_resnet"));
    common::isolate_caches(cmd.args(args));
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed().as_secs() < 120, "resnet {args:?} hung");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: vec![],
        stderr: vec![],
    }
}

/// A pipe whose reading end is already closed: every write to it fails with EPIPE.
fn closed_pipe() -> std::process::Stdio {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer.into()
}

fn dev_full() -> std::process::Stdio {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap()
        .into()
}

/// stderr captured to a file, to read what the program said about its stdout.
fn stderr_file(dir: &Path, name: &str) -> (std::process::Stdio, PathBuf) {
    let path = dir.join(name);
    (std::fs::File::create(&path).unwrap().into(), path)
}

#[test]
fn closed_and_full_standard_streams() {
    let dir = scratch("cli-streams");
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let mut commands: Vec<Vec<&str>> = vec![
        vec!["info"],
        vec!["info", "--json"],
        vec!["--help"],
        vec!["--version"],
        vec!["classify", "--help"],
    ];
    if common::gpu(false).is_some() {
        commands.push(vec!["classify", s(&samples)]);
        commands.push(vec!["classify", s(&samples), "--csv"]);
        commands.push(vec!["classify", s(&samples), "--json"]);
        commands.push(vec!["adapters"]);
    }
    for args in &commands {
        // A reader that went away (`| head`): a quiet exit, as `ls | head` ends.
        let (err, err_path) = stderr_file(&dir, "closed.err");
        let o = resnet_into(args, closed_pipe(), err);
        let said = std::fs::read_to_string(&err_path).unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{args:?} into a closed pipe: {said}"
        );
        assert!(said.is_empty(), "{args:?} into a closed pipe: {said}");
        // A full disk: one error line, exit code 1.
        let (err, err_path) = stderr_file(&dir, "full.err");
        let o = resnet_into(args, dev_full(), err);
        let said = std::fs::read_to_string(&err_path).unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?} into /dev/full: {said}");
        assert_eq!(said.lines().count(), 1, "{args:?}: {said}");
        assert!(
            said.starts_with("error: writing to standard output") && said.contains("No space left"),
            "{args:?}: {said}"
        );
        // Standard error closed or full too: nobody to tell, but no panic (exit code 101).
        for stderr in [closed_pipe as fn() -> std::process::Stdio, dev_full] {
            let o = resnet_into(args, dev_full(), stderr());
            assert_eq!(o.status.code(), Some(1), "{args:?} with stderr gone");
        }
    }
    // An error message onto a full or closed stderr: the exit code still tells.
    for stderr in [closed_pipe as fn() -> std::process::Stdio, dev_full] {
        for args in [&["info", "--batch", "0"][..], &["--no-such-flag"], &[]] {
            let o = resnet_into(args, std::process::Stdio::null(), stderr());
            assert_eq!(o.status.code(), Some(2), "{args:?}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

// ------------------------------------------------------- output files

#[test]
fn special_files_as_outputs_are_written_through_never_replaced() {
    use std::os::unix::fs::FileTypeExt;
    let dir = scratch("cli-special-outputs");
    let shape = [1usize, 3];
    let data = [1.0f32, 2.0, 3.0];
    let want = resnet_wgpu::npy::to_bytes(&shape, &data).unwrap();
    // /dev/null stays a character device.
    resnet_wgpu::npy::write_f32(Path::new("/dev/null"), &shape, &data).unwrap();
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    // /dev/full: the device's error, naming it; the node is untouched.
    let e = resnet_wgpu::npy::write_f32(Path::new("/dev/full"), &shape, &data).unwrap_err();
    assert!(e.to_string().contains("/dev/full"), "{e}");
    assert!(std::fs::metadata("/dev/full")
        .unwrap()
        .file_type()
        .is_char_device());
    // A FIFO: a reader gets the bytes, and the FIFO is still a FIFO.
    let fifo = dir.join("out.fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    resnet_wgpu::npy::write_f32(&fifo, &shape, &data).unwrap();
    assert_eq!(reader.join().unwrap(), want);
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    // A symbolic link: the file it points to is replaced, the link stays a link.
    let target = dir.join("target.npy");
    std::fs::write(&target, b"old").unwrap();
    let link = dir.join("link.npy");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    resnet_wgpu::npy::write_f32(&link, &shape, &data).unwrap();
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(&target).unwrap(), want);
    // A dangling link is refused rather than guessed at.
    let dangling = dir.join("dangling.npy");
    std::os::unix::fs::symlink(dir.join("nowhere/x.npy"), &dangling).unwrap();
    let e = resnet_wgpu::npy::write_f32(&dangling, &shape, &data).unwrap_err();
    assert!(e.to_string().contains("dangling.npy"), "{e}");
    assert!(temporaries(&dir).is_empty(), "{:?}", temporaries(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_output_that_is_an_input_is_refused_before_any_work() {
    let dir = scratch("cli-output-is-input");
    let weights = dir.join("tiny.safetensors");
    let input = dir.join("tiny.input.npy");
    std::fs::copy(fixture("tiny.safetensors"), &weights).unwrap();
    std::fs::copy(fixture("tiny.input.npy"), &input).unwrap();
    let link = dir.join("link.safetensors");
    std::os::unix::fs::symlink(&weights, &link).unwrap();
    let before = (
        std::fs::read(&weights).unwrap(),
        std::fs::read(&input).unwrap(),
    );
    for out in [
        &weights,
        &input,
        &link,
        &dir.join(".").join("tiny.input.npy"),
    ] {
        let o = resnet(&[
            "run",
            "--weights",
            s(&weights),
            "--input",
            s(&input),
            "--output",
            s(out),
        ]);
        assert_user_error("output = input", &o, &["the output is the input"]);
    }
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let o = resnet(&[
        "classify",
        s(&samples),
        "--weights",
        s(&weights),
        "--features",
        s(&weights),
    ]);
    assert_user_error(
        "classify --features = --weights",
        &o,
        &["the output is the input"],
    );
    let image = samples.join("7_0027.png");
    let copy = dir.join("7.png");
    std::fs::copy(&image, &copy).unwrap();
    let o = resnet(&["classify", s(&copy), "--features", s(&copy)]);
    assert_user_error(
        "classify --features = an image",
        &o,
        &["the output is the input"],
    );
    assert_eq!(std::fs::read(&weights).unwrap(), before.0);
    assert_eq!(std::fs::read(&input).unwrap(), before.1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn long_legal_output_names_are_written() {
    let dir = scratch("cli-long-names");
    // 254 and 255 bytes: legal names whose temporary name must be shortened to fit.
    for name in [
        "a".repeat(250) + ".npy",
        "b".repeat(251) + ".npy",
        "é".repeat(125) + ".npy",
    ] {
        let path = dir.join(&name);
        resnet_wgpu::npy::write_f32(&path, &[2], &[1.0, 2.0]).unwrap();
        assert_eq!(
            resnet_wgpu::npy::read_f32(&path).unwrap().data,
            vec![1.0, 2.0]
        );
    }
    assert!(temporaries(&dir).is_empty(), "{:?}", temporaries(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_interrupted_write_leaves_no_temporary_file() {
    if common::gpu(false).is_none() {
        return;
    }
    let dir = scratch("cli-interrupted");
    let out = dir.join("logits.npy");
    for signal in ["INT", "TERM"] {
        // Debug builds hold each write between its data and its rename (a test hook), so
        // the signal arrives in the middle of the write, every time.
        let mut child = common::isolate_caches(
            std::process::Command::new(env!("CARGO_BIN_EXE_resnet"))
                .args([
                    "run",
                    // The output is then the only file written (not the pipeline cache).
                    "--no-cache",
                    "--weights",
                    s(&fixture("tiny.safetensors")),
                    "--input",
                    s(&fixture("tiny.input.npy")),
                    "--output",
                    s(&out),
                ])
                .env("RESNET_WGPU_TEST_PAUSE_WRITE_MS", "60000"),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
        let start = std::time::Instant::now();
        while temporaries(&dir).is_empty() {
            assert!(
                child.try_wait().unwrap().is_none(),
                "resnet ended before writing"
            );
            assert!(
                start.elapsed().as_secs() < 120,
                "resnet never reached the write"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let killed = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = child.wait().unwrap();
        assert!(
            start.elapsed().as_secs() < 50,
            "the signal did not end the write"
        );
        let code = if signal == "INT" { 130 } else { 143 };
        assert_eq!(status.code(), Some(code), "SIG{signal}");
        assert!(
            temporaries(&dir).is_empty(),
            "SIG{signal}: {:?}",
            temporaries(&dir)
        );
        assert!(!out.exists());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

// ------------------------------------------------------- folders and caches

#[test]
fn folder_link_loops_are_walked_once_and_reported() {
    let dir = scratch("cli-link-loops");
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let root = dir.join("images");
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    std::fs::copy(samples.join("7_0027.png"), root.join("a/b/7.png")).unwrap();
    // Loops to the root and to a parent, and a second link to one folder: a walk that
    // follows them all lists the image again and again (or forever).
    for (link, to) in [("a/b/loop", ".."), ("a/root", "../.."), ("b2", "a/b")] {
        std::os::unix::fs::symlink(to, root.join(link)).unwrap();
    }
    for _ in 0..5 {
        let name = format!(
            "a/b/l{}",
            std::fs::read_dir(root.join("a/b")).unwrap().count()
        );
        std::os::unix::fs::symlink("..", root.join(name)).unwrap();
    }
    // Labels of the wrong count fail after the walk and before the GPU: the walk's warnings
    // are on stderr, quickly, whatever the adapter.
    let three = dir.join("three.txt");
    std::fs::write(&three, "a\nb\nc\n").unwrap();
    let o = resnet(&["classify", s(&root), "--labels", s(&three)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("skipped") && err.contains("a link loop"),
        "{err}"
    );
    assert!(
        err.lines().last().unwrap().contains("3 class names"),
        "{err}"
    );
    if common::gpu(false).is_some() {
        let o = resnet(&["classify", s(&root), "--json"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn concurrent_tuning_cache_writers_keep_every_result() {
    use resnet_wgpu::gpu::tuning::cache::{TuneCache, TunedConv};
    let dir = scratch("cli-tune-merge");
    let path = TuneCache::path(&dir);
    let base = TuneCache::load(&path).unwrap();
    assert!(base.adapters.is_empty());
    let config = serde_json::from_value(serde_json::json!({
        "algo": "tiled", "tiles": {"tile_m": 32, "tile_n": 64, "tile_k": 16}, "split_k": 1
    }))
    .unwrap();
    // Eight writers at once, each with its own shape (and two adapters): all eight stay.
    std::thread::scope(|scope| {
        for i in 0..8 {
            let path = &path;
            scope.spawn(move || {
                let mut mine = TuneCache::empty();
                mine.adapters
                    .entry(format!("gpu{} | vulkan | d | 1", i % 2))
                    .or_default()
                    .insert(
                        format!("n1 {i}x{i}x64 k3 s1 p1 g1 -> 64"),
                        TunedConv {
                            config,
                            ms: i as f64,
                            default_ms: 9.0,
                        },
                    );
                mine.save_merged(path).unwrap();
            });
        }
    });
    let merged = TuneCache::load(&path).unwrap();
    let shapes: usize = merged.adapters.values().map(|m| m.len()).sum();
    assert_eq!(shapes, 8, "{:?}", merged.adapters);
    // A later result for a shape replaces that shape only.
    let mut again = TuneCache::empty();
    again
        .adapters
        .entry("gpu0 | vulkan | d | 1".into())
        .or_default()
        .insert(
            "n1 0x0x64 k3 s1 p1 g1 -> 64".into(),
            TunedConv {
                config,
                ms: 0.5,
                default_ms: 9.0,
            },
        );
    again.save_merged(&path).unwrap();
    let merged = TuneCache::load(&path).unwrap();
    assert_eq!(merged.adapters.values().map(|m| m.len()).sum::<usize>(), 8);
    assert_eq!(
        merged.adapters["gpu0 | vulkan | d | 1"]["n1 0x0x64 k3 s1 p1 g1 -> 64"].ms,
        0.5
    );
    assert!(temporaries(&dir).is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

// ------------------------------------------------------- messages

#[test]
fn usage_messages_name_what_is_wrong() {
    // Missing arguments are named, on the one error line.
    let o = resnet(&["run"]);
    assert_user_error("run alone", &o, &["--weights", "--input", "--output"]);
    // `resnet` alone: exit code 2 with the usage, not a successful help.
    let o = resnet(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.starts_with("error: ") && err.contains("Usage"), "{err}");
    // Counts below their minimum are refused in the same words by every tool, before any
    // GPU work.
    for (args, flag) in [
        (
            vec!["bench", "--arch", "resnet18", "--iters", "0"],
            "--iters must be at least 1",
        ),
        (
            vec!["profile", "--arch", "resnet18", "--iters", "0"],
            "--iters must be at least 1",
        ),
        (
            vec!["tune", "--arch", "resnet18", "--iters", "0"],
            "--iters must be at least 5",
        ),
        (
            vec!["tune", "--arch", "resnet18", "--warmup", "1"],
            "--warmup must be at least 3",
        ),
        (
            vec!["bench", "--arch", "resnet18", "--batch", "1,0"],
            "--batch must be at least 1",
        ),
        (
            vec!["profile", "--arch", "resnet18", "--batch", "0"],
            "--batch must be at least 1",
        ),
        (
            vec!["tune", "--arch", "resnet18", "--batch", "0"],
            "--batch must be at least 1",
        ),
    ] {
        assert_user_error(&args.join(" "), &resnet(&args), &[flag]);
    }
}

#[test]
fn info_names_the_file_each_value_came_from() {
    let dir = scratch("cli-info-sources");
    // A torchvision file with a config.json holding class names and preprocessing.
    let weights = dir.join("model.safetensors");
    std::fs::copy(fixture("tiny.safetensors"), &weights).unwrap();
    let classes = resnet_wgpu::model::detect(&WeightsFile::open(&weights).unwrap())
        .unwrap()
        .num_classes
        .unwrap();
    let names: Vec<String> = (0..classes).map(|i| format!("thing{i}")).collect();
    let config = dir.join("config.json");
    std::fs::write(
        &config,
        serde_json::json!({
            "label_names": names,
            "pretrained_cfg": {"input_size": [3, 64, 64], "crop_pct": 1.0}
        })
        .to_string(),
    )
    .unwrap();
    let o = resnet(&["info", "--weights", s(&weights), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["labels"], s(&config));
    assert_eq!(v["preprocess"]["from"], s(&config));
    // A broken config.json beside torchvision weights is ignored with one warning, though
    // the file is read more than once on the way.
    std::fs::write(&config, "{ not json").unwrap();
    let o = resnet(&["info", "--weights", s(&weights)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(err.matches("ignoring").count(), 1, "{err}");
    if common::gpu(false).is_some() {
        let out = dir.join("out.npy");
        let o = resnet(&[
            "run",
            "--weights",
            s(&weights),
            "--input",
            s(&fixture("tiny.input.npy")),
            "--output",
            s(&out),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        assert_eq!(err.matches("ignoring").count(), 1, "{err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_cached_configuration_with_a_zero_tile_is_invalid() {
    // Found by the tune_cache fuzz target: a register-kernel entry with TILE_K = 0 passed the
    // validity check, and every plan divides K by TILE_K.
    use resnet_wgpu::gpu::ops::conv::{ConvConfig, ConvProblem, DeviceFit};
    let config: ConvConfig = serde_json::from_value(serde_json::json!({
        "algo": "registers", "tiles": {"tile_m": 32, "tile_n": 32, "tile_k": 0}, "split_k": 1
    }))
    .unwrap();
    let p = ConvProblem {
        batch: 1,
        in_t: 1,
        out_t: 1,
        in_h: 14,
        in_w: 14,
        in_c: 512,
        out_h: 14,
        out_w: 14,
        out_c: 512,
        kernel: 3,
        stride: 1,
        pad: 1,
        kernel_t: 1,
        stride_t: 1,
        pad_t: 0,
        groups: 32,
        input_nchw: false,
        residual: false,
        relu: true,
        pre_act: false,
    };
    let fit = DeviceFit {
        workgroup_storage: 16384,
        invocations: 256,
        workgroup_size_x: 256,
        workgroup_size_y: 256,
        workgroups_per_dimension: 65535,
        binding_bytes: 128 << 20,
    };
    assert!(config.check(&p, &fit).unwrap_err().contains("TILE_K"));
    let good = ConvConfig {
        tiles: resnet_wgpu::gpu::ops::conv::ConvTiles {
            tile_k: 4,
            ..config.tiles
        },
        ..config
    };
    good.check(&p, &fit).unwrap();
    assert!(good.k_per_split(&p) > 0);
}
