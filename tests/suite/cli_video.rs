//! Video from the command line: `resnet run` on (N, 3, T, H, W) clips, `resnet classify` on
//! video files and folders of frames (the sample GIFs, a real H.264 file against torchvision's
//! probabilities, clip sampling at its edges, the default model per input kind), and `info`,
//! `bench`, `profile`, `tune` on video models.

use std::path::{Path, PathBuf};
use std::process::Output;

use resnet_wgpu::npy;
use resnet_wgpu::reference::relative_error;
use serde_json::Value;

use crate::common::{self, assert_user_error, resnet, scratch};
use crate::video::{ffmpeg_available, video_fixture};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn path_arg(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn stdout_json(o: &Output, what: &str) -> Value {
    assert!(
        o.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{what}: not JSON: {e}"))
}

/// The GPU and ffmpeg every classify test needs (both fail under CI when missing).
fn ready() -> bool {
    common::gpu(false).is_some() && ffmpeg_available()
}

/// `classify … --json` on the default video model's samples, with extra flags.
fn classify_samples(extra: &[&str]) -> Value {
    let samples = root().join("samples_video");
    let mut args = vec!["classify", path_arg(&samples), "--json"];
    args.extend(extra);
    stdout_json(&resnet(&args), &format!("classify {extra:?}"))
}

/// Each prediction's (path, [(label, prob)]).
fn tops(v: &Value) -> Vec<(String, Vec<(String, f64)>)> {
    v.as_array()
        .expect("a JSON array")
        .iter()
        .map(|p| {
            let top = p["top"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        s["label"].as_str().unwrap().to_string(),
                        s["prob"].as_f64().unwrap(),
                    )
                })
                .collect();
            (p["image"].as_str().unwrap().to_string(), top)
        })
        .collect()
}

fn direction_of(path: &str) -> &str {
    let name = Path::new(path).file_name().unwrap().to_str().unwrap();
    name.split('_').next().unwrap()
}

// ---- resnet run -----------------------------------------------------------------------------

#[test]
fn run_takes_clips_for_video_weights_and_matches_pytorch() {
    if common::gpu(false).is_none() {
        return;
    }
    let dir = scratch("cli-video-run");
    let (weights, input) = (
        video_fixture("tv_r3d/model.safetensors"),
        video_fixture("tv_r3d/input.npy"),
    );
    let out = dir.join("logits.npy");
    let o = resnet(&[
        "run",
        "--weights",
        path_arg(&weights),
        "--input",
        path_arg(&input),
        "--output",
        path_arg(&out),
        "--verify",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let verify = String::from_utf8_lossy(&o.stdout);
    let err: f64 = verify
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no relative error in {verify}"));
    assert!(err <= 1e-4, "GPU vs CPU reference: {err:e}");
    let got = npy::read_f32(&out).unwrap();
    let want = npy::read_f32(&video_fixture("tv_r3d/logits.npy")).unwrap();
    assert_eq!(got.shape, want.shape);
    let e = relative_error(&got.data, &want.data);
    assert!(e <= 1e-4, "vs PyTorch: {e:e}");
    let feats = dir.join("features.npy");
    let o = resnet(&[
        "run",
        "--weights",
        path_arg(&weights),
        "--input",
        path_arg(&input),
        "--output",
        path_arg(&feats),
        "--features",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // tv_r3d: 2 clips, stage widths 4·[1, 2, 4, 8].
    assert_eq!(npy::read_f32(&feats).unwrap().shape, vec![2, 32]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_refuses_a_tensor_of_the_other_kind() {
    let dir = scratch("cli-video-run-rank");
    let images = dir.join("images.npy");
    npy::write_f32(&images, &[1, 3, 16, 16], &vec![0.5; 3 * 256]).unwrap();
    let clips = dir.join("clips.npy");
    npy::write_f32(&clips, &[1, 3, 2, 16, 16], &vec![0.5; 6 * 256]).unwrap();
    let out = dir.join("out.npy");
    let video = video_fixture("tv_r3d/model.safetensors");
    let image = root().join("weights/default.safetensors");
    let run = |w: &Path, x: &Path| {
        resnet(&[
            "run",
            "--weights",
            path_arg(w),
            "--input",
            path_arg(x),
            "--output",
            path_arg(&out),
        ])
    };
    assert_user_error(
        "4-D for video weights",
        &run(&video, &images),
        &["images.npy", "4-D", "video network", "(N, 3, T, H, W)"],
    );
    assert_user_error(
        "5-D for image weights",
        &run(&image, &clips),
        &["clips.npy", "5-D", "image network", "(N, 3, H, W)"],
    );
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- resnet classify on videos --------------------------------------------------------------

#[test]
fn each_sample_gif_classifies_as_its_direction_in_json_and_csv() {
    if !ready() {
        return;
    }
    let v = classify_samples(&["--top-k", "3"]);
    let tops = tops(&v);
    assert_eq!(tops.len(), 8);
    for (path, top) in &tops {
        assert_eq!(top.len(), 3, "{path}");
        assert_eq!(top[0].0, direction_of(path), "{path}: {top:?}");
        assert!(top.windows(2).all(|w| w[0].1 >= w[1].1), "{path}: {top:?}");
    }
    let samples = root().join("samples_video");
    let o = resnet(&["classify", path_arg(&samples), "--csv", "--top-k", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "image,rank,class,label,prob");
    assert_eq!(lines.len(), 1 + 8 * 2);
    for line in &lines[1..] {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), 5, "{line}");
        let prob: f64 = cells[4].parse().unwrap();
        assert!((0.0..=1.0).contains(&prob), "{line}");
        if cells[1] == "1" {
            assert_eq!(cells[3], direction_of(cells[0]), "{line}");
        }
    }
}

#[test]
fn clip_sampling_edges_from_the_command_line() {
    if !ready() {
        return;
    }
    // The samples have F = 8 frames. F = T with K = 3: every clip is the whole video, so the
    // average over clips is the one clip's probabilities.
    let one = tops(&classify_samples(&["--frames", "8"]));
    let three = tops(&classify_samples(&["--frames", "8", "--clips", "3"]));
    for ((path, a), (_, b)) in one.iter().zip(&three) {
        for ((la, pa), (lb, pb)) in a.iter().zip(b) {
            assert_eq!(la, lb, "{path}");
            assert!((pa - pb).abs() <= 1e-6, "{path}: {pa} vs {pb}");
        }
    }
    // F < T (frames repeated by linspace), K > F, and a stride leaving 3 of 8 frames: all
    // run and give a distribution per video.
    let mut runs = Vec::new();
    for flags in [
        &["--frames", "16"][..],
        &["--frames", "4", "--clips", "12"],
        &["--frame-stride", "3"],
    ] {
        let t = tops(&classify_samples(flags));
        assert_eq!(t.len(), 8, "{flags:?}");
        for (path, top) in &t {
            let sum: f64 = top.iter().map(|(_, p)| p).sum();
            assert!(sum > 0.0 && sum <= 1.0 + 1e-5, "{flags:?} {path}: {top:?}");
        }
        runs.push(t);
    }
    // Twelve clips of 4 of the 8 frames are not all the centre clip: their average differs.
    let centre = tops(&classify_samples(&["--frames", "4"]));
    assert!(centre
        .iter()
        .zip(&runs[1])
        .any(|((_, a), (_, b))| (a[0].1 - b[0].1).abs() > 1e-6));
    let samples = root().join("samples_video");
    for (flag, value) in [("--clips", "0"), ("--frames", "0"), ("--frame-stride", "0")] {
        let o = resnet(&["classify", path_arg(&samples), flag, value]);
        assert_user_error(flag, &o, &[flag, "at least 1"]);
    }
}

#[test]
fn video_features_are_the_clip_embeddings_averaged() {
    if !ready() {
        return;
    }
    let dir = scratch("cli-video-features");
    let samples = root().join("samples_video");
    let feats = |name: &str, extra: &[&str]| {
        let path = dir.join(name);
        let mut args = vec![
            "classify",
            path_arg(&samples),
            "--features",
            path_arg(&path),
        ];
        args.extend(extra);
        let o = resnet(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 8);
        npy::read_f32(&path).unwrap()
    };
    let one = feats("one.npy", &[]);
    // The default video model: 64-wide embeddings, one row per video.
    assert_eq!(one.shape, vec![8, 64]);
    // F = T: three identical clips average to the one clip's embedding.
    let three = feats("three.npy", &["--clips", "3"]);
    assert!(relative_error(&three.data, &one.data) <= 1e-6);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_folder_of_frames_is_one_video_for_video_weights() {
    if !ready() {
        return;
    }
    let dir = scratch("cli-video-frames");
    let gif = root().join("samples_video/up-left_0010.gif");
    let frames = resnet_wgpu::video::decode_video(&gif).unwrap();
    let folder = dir.join("up-left");
    std::fs::create_dir(&folder).unwrap();
    for (i, f) in frames.frames.iter().enumerate() {
        let (w, h) = (frames.width as u32, frames.height as u32);
        let img = image::RgbImage::from_raw(w, h, f.clone()).unwrap();
        img.save(folder.join(format!("frame_{i:03}.png"))).unwrap();
    }
    let weights = root().join("weights/default_video.safetensors");
    let run = |input: &Path| {
        tops(&stdout_json(
            &resnet(&[
                "classify",
                path_arg(input),
                "--weights",
                path_arg(&weights),
                "--json",
            ]),
            "classify",
        ))
    };
    let (from_folder, from_gif) = (run(&folder), run(&gif));
    assert_eq!(from_folder.len(), 1);
    assert_eq!(from_folder[0].0, folder.display().to_string());
    // The same frames, decoded from PNG instead of GIF: the same probabilities.
    assert_eq!(from_folder[0].1, from_gif[0].1);
    assert_eq!(from_folder[0].1[0].0, "up-left");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn without_weights_each_kind_uses_its_default_model() {
    if !ready() {
        return;
    }
    let dir = scratch("cli-video-mixed");
    let png = root().join("samples/7_0027.png");
    let gif = root().join("samples_video/down_0011.gif");
    std::fs::copy(&png, dir.join("a_digit.png")).unwrap();
    std::fs::copy(&gif, dir.join("b_motion.gif")).unwrap();
    let mixed = tops(&stdout_json(
        &resnet(&["classify", path_arg(&dir), "--json"]),
        "mixed",
    ));
    let alone = |p: &Path| {
        tops(&stdout_json(
            &resnet(&["classify", path_arg(p), "--json"]),
            "one",
        ))
    };
    assert_eq!(mixed.len(), 2);
    // In the folder's order, each as its own kind's default model classifies it alone.
    assert!(mixed[0].0.ends_with("a_digit.png") && mixed[1].0.ends_with("b_motion.gif"));
    assert_eq!(mixed[0].1, alone(&png)[0].1);
    assert_eq!(mixed[1].1, alone(&gif)[0].1);
    assert_eq!(mixed[0].1[0].0, "7");
    assert_eq!(mixed[1].1[0].0, "down");
    let video_weights = root().join("weights/default_video.safetensors");
    let image_weights = root().join("weights/default.safetensors");
    let with =
        |w: &Path, input: &Path| resnet(&["classify", path_arg(input), "--weights", path_arg(w)]);
    assert_user_error(
        "an image for video weights",
        &with(&video_weights, &png),
        &["7_0027.png", "an image", "video model"],
    );
    assert_user_error(
        "a video for image weights",
        &with(&image_weights, &gif),
        &["down_0011.gif", "a video", "image network"],
    );
    let feats = dir.join("f.npy");
    let o = resnet(&["classify", path_arg(&dir), "--features", path_arg(&feats)]);
    assert_user_error(
        "features of both kinds",
        &o,
        &["--features", "images and videos"],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A real H.264 file (scripts/make_video_fixtures.py, `real/`): our decoding (the ffmpeg CLI),
/// sampling, torchvision preset and network against PyAV + torchvision's transforms + the
/// same model in float64.
#[test]
fn a_real_video_classifies_with_torchvision_probabilities() {
    if !ready() {
        return;
    }
    let case: Value =
        serde_json::from_str(&std::fs::read_to_string(video_fixture("real/case.json")).unwrap())
            .unwrap();
    let want = npy::read_f32(&video_fixture("real/probs.npy"))
        .unwrap()
        .data;
    let video = video_fixture("real/moving_shapes.mp4");
    let weights = video_fixture("real/model.safetensors");
    let (frames, clips) = (case["frames"].to_string(), case["clips"].to_string());
    let v = stdout_json(
        &resnet(&[
            "classify",
            path_arg(&video),
            "--weights",
            path_arg(&weights),
            "--json",
            "--top-k",
            "5",
            "--frames",
            &frames,
            "--clips",
            &clips,
        ]),
        "classify the real video",
    );
    let top = v[0]["top"].as_array().unwrap();
    assert_eq!(top.len(), 5);
    let best = (0..want.len())
        .max_by(|&a, &b| want[a].total_cmp(&want[b]))
        .unwrap();
    assert_eq!(top[0]["class"].as_u64(), Some(best as u64), "{v}");
    for s in top {
        let class = s["class"].as_u64().unwrap() as usize;
        let (got, expected) = (s["prob"].as_f64().unwrap(), want[class] as f64);
        assert!(
            (got - expected).abs() <= 1e-3,
            "class {class}: {got} vs {expected}"
        );
    }
    // 400 classes: Kinetics-400's names.
    let names = resnet_wgpu::kinetics::kinetics400_classes();
    assert_eq!(top[0]["label"].as_str(), Some(names[best]));
}

// ---- info, bench, profile, tune -------------------------------------------------------------

#[test]
fn info_describes_a_video_model_and_its_clip_plan() {
    let weights = root().join("weights/default_video.safetensors");
    let o = resnet(&["info", "--weights", path_arg(&weights)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "r3d_10 (custom widths [8, 16, 32, 64]) (torchvision video",
        "8 per clip (from metadata `resnet.frames`)",
        "crop 32x32",
        "plan @ 1x3x8x32x32",
    ] {
        assert!(text.contains(needle), "`{needle}` not in:\n{text}");
    }
    let v = stdout_json(
        &resnet(&[
            "info",
            "--weights",
            path_arg(&weights),
            "--json",
            "--frames",
            "4",
            "--size",
            "16x24",
            "--batch",
            "2",
        ]),
        "info --json",
    );
    assert_eq!(v["video"], Value::Bool(true));
    assert_eq!(v["frames"]["default"].as_u64(), Some(8));
    assert_eq!(v["classes"].as_u64(), Some(8));
    let plan = &v["plan"];
    let size: Vec<u64> = ["batch", "frames", "height", "width"]
        .iter()
        .map(|k| plan[k].as_u64().unwrap())
        .collect();
    assert_eq!(size, vec![2, 4, 16, 24]);
    // Half the frames and fewer pixels than the default clip, two of them.
    let (per_default, planned) = (
        v["gflops_default_clip"].as_f64().unwrap(),
        plan["gflops"].as_f64().unwrap(),
    );
    assert!(planned > 0.0 && planned < 2.0 * per_default, "{v}");
    // The Kinetics head of the real-video fixture is named as such.
    let real = stdout_json(
        &resnet(&[
            "info",
            "--weights",
            path_arg(&video_fixture("real/model.safetensors")),
            "--json",
        ]),
        "info real",
    );
    assert_eq!(
        real["labels"].as_str(),
        Some("Kinetics-400 (400-class head)")
    );
    assert_eq!(real["frames"]["default"].as_u64(), Some(16));
    let image = root().join("weights/default.safetensors");
    let o = resnet(&["info", "--weights", path_arg(&image), "--frames", "4"]);
    assert_user_error("--frames on image weights", &o, &["--frames", "video"]);
}

/// A standard video model with synthetic weights at a tiny clip.
const TINY: [&str; 6] = ["--arch", "r3d_18", "--frames", "2", "--size", "16x16"];

#[test]
fn bench_runs_a_named_video_arch_and_reports_clips() {
    if common::gpu(false).is_none() {
        return;
    }
    let mut args = vec![
        "bench",
        "--no-cache",
        "--batch",
        "1,2",
        "--iters",
        "1",
        "--json",
    ];
    args.extend(TINY);
    let b = stdout_json(&resnet(&args), "bench");
    assert_eq!(b["arch"].as_str(), Some("r3d_18"));
    assert_eq!(b["frames"].as_u64(), Some(2));
    let rows = b["results"].as_array().unwrap();
    for (row, n) in rows.iter().zip([1u64, 2]) {
        assert_eq!(row["batch"].as_u64(), Some(n));
        assert_eq!(row["sub_batches"], serde_json::json!([n]));
        // r3d_18's 33.4 M parameters are resident (folded, float32).
        assert!(
            row["peak_gpu_bytes"].as_u64().unwrap() > 33_000_000 * 4,
            "{row}"
        );
    }
    let o = resnet(&["bench", "--arch", "r3d_34"]);
    assert_user_error("unknown video arch", &o, &["r3d_34", "r3d_18", "i3d_r50"]);
    let o = resnet(&["bench", "--arch", "resnet18", "--frames", "4"]);
    assert_user_error("--frames for an image arch", &o, &["--frames", "video"]);
}

#[test]
fn profile_and_tune_take_video_archs() {
    if common::gpu(false).is_none() {
        return;
    }
    let mut args = vec!["profile", "--no-cache", "--iters", "1", "--json"];
    args.extend(TINY);
    let p = stdout_json(&resnet(&args), "profile");
    assert_eq!(p["frames"].as_u64(), Some(2));
    let layers = p["layers"].as_array().unwrap();
    // The stem's output: N, T, H, W, C.
    assert_eq!(
        layers[0]["output_shape"],
        serde_json::json!([1, 2, 8, 8, 64])
    );
    let mut args = vec!["tune", "--no-cache", "--json"];
    args.extend(["--arch", "mc3_18", "--frames", "1", "--size", "8x8"]);
    let t = stdout_json(&resnet(&args), "tune");
    assert!(!t["shapes"].as_array().unwrap().is_empty(), "{t}");
    assert!(t["network_error"].as_f64().unwrap() <= 1e-4, "{t}");
}
