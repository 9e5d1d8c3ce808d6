//! The driver's pipeline cache on disk: written where the device has one and reused by the
//! next engine; a damaged, truncated or foreign file still loads and gives correct results
//! (and is replaced); with disk caches off nothing is written.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{fixture, gpu_with, resnet_with, scratch};
use resnet_wgpu::gpu::disk_cache::{DiskCache, CACHE_DIR_ENV};
use resnet_wgpu::gpu::pipeline_cache::PipelineCacheState;
use resnet_wgpu::npy::read_f32;
use resnet_wgpu::reference::relative_error;
use resnet_wgpu::{Engine, GpuContext, GpuOptions, Output, WeightsFile};

fn device(cache: DiskCache) -> Option<Arc<GpuContext>> {
    gpu_with(&GpuOptions {
        disk_cache: cache,
        ..Default::default()
    })
}

/// Loads the tiny fixture on a fresh device caching in `dir`, checks its logits against
/// PyTorch's and returns them with the engine's cache state.
fn run_tiny(dir: &Path) -> Option<(Vec<f32>, PipelineCacheState)> {
    let ctx = device(DiskCache::Dir(dir.to_path_buf()))?;
    let weights = WeightsFile::open(fixture("tiny.safetensors")).unwrap();
    let input = read_f32(&fixture("tiny.input.npy")).unwrap();
    let want = read_f32(&fixture("tiny.logits.npy")).unwrap();
    let [n, _, h, w] = input.shape[..] else {
        panic!("fixture shape")
    };
    let engine = Engine::load_on(ctx, &weights).unwrap();
    let got = engine.run(&input.data, n, h, w, Output::Logits).unwrap();
    let err = relative_error(&got, &want.data);
    assert!(err <= 1e-4, "relative error {err}");
    Some((got, engine.pipeline_cache().clone()))
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => vec![],
    }
}

/// The cache file of a first run in `dir` (which it checks), or `None` where the device
/// keeps no pipeline cache.
fn first_run(dir: &Path) -> Option<(Vec<f32>, PathBuf)> {
    let (logits, state) = run_tiny(dir)?;
    match state {
        PipelineCacheState::File { path, read } => {
            assert!(!read, "nothing to read in an empty folder");
            assert!(path.starts_with(dir), "{path:?}");
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                name.starts_with("pipelines-") && name.ends_with(".bin"),
                "{name}"
            );
            assert!(path.is_file(), "{path:?} was not written");
            assert_eq!(
                files_in(dir),
                vec![path.clone()],
                "temporary files left behind"
            );
            Some((logits, path))
        }
        PipelineCacheState::Unsupported(why) => {
            eprintln!("this device keeps no pipeline cache: {why}");
            assert!(files_in(dir).is_empty(), "a cache file without a cache");
            None
        }
        PipelineCacheState::Off => panic!("a cache directory was given, yet caching is off"),
    }
}

#[test]
fn pipelines_are_kept_on_disk_and_reused() {
    // The folder does not exist yet: the first save creates it.
    let dir = scratch("pipeline-cache-reuse").join("nested");
    let Some((first, path)) = first_run(&dir) else {
        return;
    };
    let (second, state) = run_tiny(&dir).unwrap();
    assert_eq!(
        state,
        PipelineCacheState::File {
            path: path.clone(),
            read: true
        }
    );
    assert!(path.is_file());
    let same = first
        .iter()
        .map(|v| v.to_bits())
        .eq(second.iter().map(|v| v.to_bits()));
    assert!(same, "results differ with a warm pipeline cache");
    std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
}

#[test]
fn damaged_or_foreign_cache_files_still_load() {
    let dir = scratch("pipeline-cache-damaged");
    let Some((first, path)) = first_run(&dir) else {
        return;
    };
    let good = std::fs::read(&path).unwrap();
    // Our header: 8 bytes of magic, the FNV-1a checksum of the rest; then wgpu's data,
    // whose own header names the device in bytes 17..32.
    let fnv = |b: &[u8]| {
        b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
            (h ^ x as u64).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    let mut foreign = good.clone();
    foreign[16 + 20] ^= 0xff;
    let sum = fnv(&foreign[16..]);
    foreign[8..16].copy_from_slice(&sum.to_le_bytes());
    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 0x55;
    let cases: [(&str, Vec<u8>); 5] = [
        (
            "garbage",
            b"this is not a pipeline cache at all".repeat(100),
        ),
        ("empty", vec![]),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("flipped byte", flipped),
        ("another device's", foreign),
    ];
    for (what, bytes) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let (logits, state) = run_tiny(&dir).unwrap();
        assert_eq!(
            state,
            PipelineCacheState::File {
                path: path.clone(),
                read: false
            },
            "{what} file"
        );
        let same = first
            .iter()
            .map(|v| v.to_bits())
            .eq(logits.iter().map(|v| v.to_bits()));
        assert!(same, "{what} file: results differ");
        // Replaced by a good one: the next engine reads it.
        let (_, state) = run_tiny(&dir).unwrap();
        assert_eq!(
            state,
            PipelineCacheState::File {
                path: path.clone(),
                read: true
            },
            "after a {what} file"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_disk_cache_writes_nothing() {
    let Some(ctx) = device(DiskCache::Off) else {
        return;
    };
    let weights = WeightsFile::open(fixture("tiny.safetensors")).unwrap();
    let engine = Engine::load_on(ctx, &weights).unwrap();
    engine
        .run(&vec![0.5; 3 * 32 * 32], 1, 32, 32, Output::Logits)
        .unwrap();
    assert_eq!(engine.pipeline_cache(), &PipelineCacheState::Off);

    // The CLI: `--no-cache` leaves the user cache directory alone; without it, that is where
    // the cache goes (where the device keeps one).
    let root = scratch("pipeline-cache-off");
    let run = |dir: &Path, extra: &[&str]| {
        let out = root.join("logits.npy");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_resnet"));
        cmd.env(CACHE_DIR_ENV, dir).args(extra).args([
            "run",
            "--weights",
            fixture("tiny.safetensors").to_str().unwrap(),
            "--input",
            fixture("tiny.input.npy").to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ]);
        let o = resnet_with(&mut cmd);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let (off, on) = (root.join("off"), root.join("on"));
    std::fs::create_dir_all(&off).unwrap();
    run(&off, &["--no-cache"]);
    assert!(files_in(&off).is_empty(), "{:?}", files_in(&off));
    run(&on, &[]);
    let written = files_in(&on);
    if let PipelineCacheState::File { .. } = run_tiny(&root.join("probe")).unwrap().1 {
        assert_eq!(written.len(), 1, "{written:?}");
    } else {
        assert!(written.is_empty(), "{written:?}");
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn pipelines_created_together_once_each_with_errors_named() {
    use resnet_wgpu::gpu::kernels::Kernels;
    use resnet_wgpu::gpu::ops::conv::{conv_constants, ConvTiles};
    use resnet_wgpu::gpu::ops::{all_kernels, Kernel};
    use resnet_wgpu::Error;
    let Some(ctx) = common::gpu(false) else {
        return;
    };
    let kernels = Kernels::new(&ctx, &all_kernels()).unwrap();
    let conv = conv_constants(ConvTiles::for_registers(64), true, true, false, false);
    let mut reordered = conv.clone();
    reordered.reverse();
    let requests = vec![
        (Kernel::ConvRegisters, conv.clone()),
        (Kernel::MaxPool, vec![]),
        (Kernel::ConvRegisters, reordered),
        (Kernel::GlobalAvgPool, vec![]),
        (Kernel::MaxPool, vec![]),
    ];
    kernels.create_pipelines(&ctx.device, &requests).unwrap();
    assert_eq!(kernels.compile_stats().pipelines, 3, "duplicates compiled");
    // Made already: neither one at a time nor together compiles again.
    kernels
        .pipeline(&ctx.device, Kernel::ConvRegisters, conv)
        .unwrap();
    kernels.create_pipelines(&ctx.device, &requests).unwrap();
    assert_eq!(kernels.compile_stats().pipelines, 3);

    // Two bad requests among good ones: the error is the first bad one's, whichever thread
    // met it, and it names the pipeline.
    let bad = vec![
        (Kernel::MaxPool, vec![]),
        (Kernel::AvgPool, vec![]),
        (Kernel::Linear, vec![("NO_SUCH_CONSTANT", 1.0)]),
        (Kernel::AvgPool, vec![("ALSO_NO_SUCH_CONSTANT", 1.0)]),
    ];
    for _ in 0..3 {
        match kernels.create_pipelines(&ctx.device, &bad) {
            Err(Error::Shader { name, msg }) => {
                assert!(
                    name.contains("Linear") && name.contains("NO_SUCH_CONSTANT"),
                    "{name}: {msg}"
                )
            }
            other => panic!("expected a shader error, got {other:?}"),
        }
    }
    // Errors were caught by the creating threads' scopes, not raised on the device.
    ctx.check().unwrap();
}
