//! Video groundwork on the CPU: clip sampling at the edges, decoding (FFmpeg and frame
//! folders), the presets' resize bit for bit against torchvision, architecture detection and
//! the CPU reference end to end against the PyTorch fixtures of scripts/make_video_fixtures.py.

use crate::common;

use std::path::{Path, PathBuf};

use common::{fixture, scratch, Rng};
use resnet_wgpu::graph::Shape;
use resnet_wgpu::model::video::{detect_video, is_video, VideoFamily};
use resnet_wgpu::reference::video::{conv3d, max_pool3d, run_video_arch, Conv3dParams, Shape3};
use resnet_wgpu::reference::{conv2d_grouped, relative_error, ConvParams};
use resnet_wgpu::video::transform::{crop_offset, resize_u8, short_side_size};
use resnet_wgpu::video::{decode_frame_folder, decode_video, ClipSampling, Frames, VideoPreset};
use resnet_wgpu::{npy, Error, WeightsFile};

// ---- clip sampling -------------------------------------------------------------------------

fn clips(total: usize, frames: usize, clips: usize, stride: usize) -> Vec<Vec<usize>> {
    ClipSampling::new(frames, clips, stride)
        .unwrap()
        .clip_indices(total)
        .unwrap()
}

#[test]
fn one_clip_is_the_centre_clip() {
    // (F − T)//2 = (10 − 4)//2 = 3; with an odd slack the floor: (9 − 4)//2 = 2.
    assert_eq!(clips(10, 4, 1, 1), vec![vec![3, 4, 5, 6]]);
    assert_eq!(clips(9, 4, 1, 1), vec![vec![2, 3, 4, 5]]);
}

#[test]
fn clips_spread_from_first_to_last_frame() {
    // starts round(i·6/2) = 0, 3, 6 for F = 10, T = 4, K = 3.
    let c = clips(10, 4, 3, 1);
    assert_eq!(c.iter().map(|c| c[0]).collect::<Vec<_>>(), vec![0, 3, 6]);
    assert_eq!(
        c[2],
        vec![6, 7, 8, 9],
        "the last clip ends on the last frame"
    );
    // starts round(i·5/2): 0, round(2.5) = 2 (half to even), 5.
    let c = clips(9, 4, 3, 1);
    assert_eq!(c.iter().map(|c| c[0]).collect::<Vec<_>>(), vec![0, 2, 5]);
}

#[test]
fn a_video_of_exactly_t_frames_gives_every_clip_all_frames() {
    assert_eq!(clips(5, 5, 1, 1), vec![vec![0, 1, 2, 3, 4]]);
    assert_eq!(clips(5, 5, 3, 1), vec![vec![0, 1, 2, 3, 4]; 3]);
}

#[test]
fn a_short_video_repeats_frames_by_linspace() {
    // floor(linspace(0, 4, 8)) = floor([0, .571, 1.14, 1.71, 2.29, 2.86, 3.43, 4]).
    assert_eq!(clips(5, 8, 1, 1), vec![vec![0, 0, 1, 1, 2, 2, 3, 4]]);
    assert_eq!(clips(1, 3, 2, 1), vec![vec![0, 0, 0]; 2]);
    // floor(linspace(0, 2, 5)) = [0, 0, 1, 1, 2].
    assert_eq!(clips(3, 5, 1, 1), vec![vec![0, 0, 1, 1, 2]]);
}

#[test]
fn more_clips_than_frames_repeat_starts() {
    // F = 4, T = 2, K = 6: starts round(i·2/5) = 0, 0, 1, 1, 2, 2 (0.4, 0.8, 1.2, 1.6, 2).
    let starts: Vec<usize> = clips(4, 2, 6, 1).iter().map(|c| c[0]).collect();
    assert_eq!(starts, vec![0, 0, 1, 1, 2, 2]);
}

#[test]
fn the_frame_stride_applies_before_the_clip() {
    // Stride 3 over 10 frames keeps 0, 3, 6, 9 (⌈10/3⌉ = 4); centre clip of 2: kept 1..3.
    assert_eq!(clips(10, 2, 1, 3), vec![vec![3, 6]]);
    // Kept frames fewer than T: linspace over the kept ones, in original numbering.
    // floor(linspace(0, 3, 6)) = floor([0, .6, 1.2, 1.8, 2.4, 3]) = [0, 0, 1, 1, 2, 3].
    assert_eq!(clips(10, 6, 1, 3), vec![vec![0, 0, 3, 3, 6, 9]]);
}

#[test]
fn zero_frames_clips_or_stride_are_refused() {
    for (t, k, s) in [(0, 1, 1), (1, 0, 1), (1, 1, 0)] {
        assert!(matches!(ClipSampling::new(t, k, s), Err(Error::Usage(_))));
    }
    let s = ClipSampling::new(4, 1, 1).unwrap();
    assert!(matches!(s.clip_indices(0), Err(Error::InputShape(_))));
}

// ---- transforms ------------------------------------------------------------------------------

/// A uint8 `.npy` (`|u1`, C order): shape and bytes. The library's reader refuses integer
/// arrays on purpose (they are not network inputs), so the test reads these itself.
fn read_u8_npy(path: &Path) -> (Vec<usize>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(
        header.contains("'|u1'") && header.contains("'fortran_order': False"),
        "{header}"
    );
    let dims = header
        .split_once("'shape': (")
        .unwrap()
        .1
        .split_once(')')
        .unwrap()
        .0;
    let shape: Vec<usize> = dims
        .split(',')
        .filter_map(|d| d.trim().parse().ok())
        .collect();
    let data = bytes[10 + header_len..].to_vec();
    assert_eq!(data.len(), shape.iter().product::<usize>());
    (shape, data)
}

#[test]
fn resize_matches_torchvision_bit_for_bit() {
    for name in ["resize_37x45", "resize_150x211"] {
        let (shape, input) = read_u8_npy(&fixture(&format!("video/{name}.input.npy")));
        let (out_shape, want) = read_u8_npy(&fixture(&format!("video/{name}.expected.npy")));
        let (t, h, w) = (shape[0], shape[1], shape[2]);
        assert_eq!(out_shape, vec![t, 128, 171, 3]);
        let frame = h * w * 3;
        let got: Vec<u8> = (0..t)
            .flat_map(|i| resize_u8(&input[i * frame..][..frame], (h, w), 3, (128, 171)))
            .collect();
        let differ = got.iter().zip(&want).filter(|(a, b)| a != b).count();
        assert_eq!(
            differ,
            0,
            "{name}: {differ} of {} values differ",
            want.len()
        );
    }
}

#[test]
fn centre_crop_offsets_round_half_to_even() {
    assert_eq!(crop_offset(128, 112), 8);
    assert_eq!(crop_offset(171, 112), 30, "29.5 rounds to 30");
    assert_eq!(crop_offset(113, 112), 0, "0.5 rounds to 0");
    assert_eq!(crop_offset(115, 112), 2, "1.5 rounds to 2");
    assert_eq!(short_side_size(480, 640, 256), (256, 341));
    assert_eq!(short_side_size(640, 360, 256), (455, 256));
}

#[test]
fn torchvision_preset_normalises_a_flat_clip() {
    let frames = Frames {
        height: 40,
        width: 50,
        frames: vec![[200u8, 100, 50].repeat(40 * 50); 3],
    };
    let clip = frames.to_clip(VideoPreset::Torchvision).unwrap();
    assert_eq!((clip.frames, clip.height, clip.width), (3, 112, 112));
    let plane = 3 * 112 * 112;
    for (ch, v) in [200f32, 100.0, 50.0].iter().enumerate() {
        let want =
            (v / 255.0 - [0.43216, 0.394666, 0.37645][ch]) / [0.22803, 0.22145, 0.216989][ch];
        assert!(
            clip.data[ch * plane..][..plane].iter().all(|&x| x == want),
            "channel {ch}"
        );
    }
    let pv = frames.to_clip(VideoPreset::PyTorchVideo).unwrap();
    assert_eq!((pv.frames, pv.height, pv.width), (3, 256, 256));
}

// ---- decoding --------------------------------------------------------------------------------

/// Frame `i` of the test video: a gradient that differs per frame, so order shows.
fn test_frame(i: usize, w: usize, h: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            f.extend([
                (x * 13 + i * 40) as u8,
                (y * 17 + i * 7) as u8,
                (255 - i * 30) as u8,
            ]);
        }
    }
    f
}

pub(crate) fn ffmpeg_available() -> bool {
    let ok = std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok();
    if !ok && std::env::var_os("CI").is_some() {
        panic!("ffmpeg is missing (scripts/setup.sh installs it)");
    }
    ok
}

#[test]
fn ffmpeg_decodes_every_frame_in_order_with_exact_rgb() {
    if !ffmpeg_available() {
        eprintln!("skipped: no ffmpeg on PATH");
        return;
    }
    let dir = scratch("video-decode");
    let (w, h, count) = (20, 14, 7);
    let raw: Vec<u8> = (0..count).flat_map(|i| test_frame(i, w, h)).collect();
    let raw_path = dir.join("frames.rgb");
    std::fs::write(&raw_path, &raw).unwrap();
    for (file, codec, pix) in [
        ("clip.mkv", "ffv1", "bgr0"),
        ("clip.avi", "rawvideo", "bgr24"),
    ] {
        let video = dir.join(file);
        let status = std::process::Command::new("ffmpeg")
            .args([
                "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s",
            ])
            .arg(format!("{w}x{h}"))
            .args(["-r", "10", "-i"])
            .arg(&raw_path)
            .args(["-c:v", codec, "-pix_fmt", pix])
            .arg(&video)
            .status()
            .unwrap();
        assert!(status.success(), "encoding {file}");
        let frames = decode_video(&video).unwrap();
        assert_eq!(
            (frames.width, frames.height, frames.frames.len()),
            (w, h, count),
            "{file}"
        );
        for (i, f) in frames.frames.iter().enumerate() {
            assert_eq!(f, &test_frame(i, w, h), "{file}: frame {i}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_file_that_is_not_a_video_is_a_video_error() {
    if !ffmpeg_available() {
        return;
    }
    let dir = scratch("video-bad");
    let path = dir.join("noise.mp4");
    std::fs::write(&path, b"not a video at all").unwrap();
    let err = decode_video(&path).unwrap_err();
    assert!(matches!(err, Error::Video { .. }), "{err}");
    assert!(matches!(
        decode_video(&dir.join("absent.mp4")),
        Err(Error::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_folder_of_frames_is_read_in_name_order() {
    let dir = scratch("video-folder");
    let (w, h) = (9, 6);
    for i in 0..4 {
        let img = image::RgbImage::from_raw(w as u32, h as u32, test_frame(i, w, h)).unwrap();
        img.save(dir.join(format!("frame_{i:03}.png"))).unwrap();
    }
    std::fs::write(dir.join("notes.txt"), b"ignored").unwrap();
    let frames = decode_frame_folder(&dir).unwrap();
    assert_eq!(frames.frames.len(), 4);
    for (i, f) in frames.frames.iter().enumerate() {
        assert_eq!(f, &test_frame(i, w, h), "frame {i}");
    }
    let odd = image::RgbImage::new(5, 5);
    odd.save(dir.join("frame_999.png")).unwrap();
    assert!(matches!(
        decode_frame_folder(&dir),
        Err(Error::Video { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- detection and the CPU reference ---------------------------------------------------------

/// One case of `tests/fixtures/video/manifest.json` (scripts/make_video_fixtures.py).
#[derive(serde::Deserialize)]
pub(crate) struct Case {
    pub name: String,
    pub weights: String,
    pub input: String,
    pub logits: String,
    pub batch: usize,
    pub frames: usize,
    pub height: usize,
    pub width: usize,
    pub classes: usize,
    pub head_pool: Option<[usize; 3]>,
    pub describe: Vec<String>,
}

pub(crate) fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(fixture("video/manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub(crate) fn video_fixture(rel: &str) -> PathBuf {
    fixture(&format!("video/{rel}"))
}

#[test]
fn every_fixture_is_detected_and_described() {
    let families = [
        ("tv_r3d", VideoFamily::R3d),
        ("tv_mc3", VideoFamily::Mc3),
        ("tv_r2plus1d", VideoFamily::R2Plus1d),
        ("pv_slow", VideoFamily::Slow),
        ("pv_c2d", VideoFamily::C2d),
        ("pv_i3d", VideoFamily::I3d),
        ("pv_slow_window", VideoFamily::Slow),
    ];
    let all = cases();
    assert_eq!(all.len(), families.len());
    for (case, (name, family)) in all.iter().zip(families) {
        assert_eq!(case.name, name);
        let w = WeightsFile::open(video_fixture(&case.weights)).unwrap();
        assert!(is_video(&w));
        let arch = detect_video(&w).unwrap();
        assert_eq!(arch.family, family, "{name}");
        assert_eq!(arch.outputs(), case.classes);
        let text = arch.describe();
        for needle in &case.describe {
            assert!(
                text.contains(needle.as_str()),
                "{name}: {text:?} lacks {needle:?}"
            );
        }
    }
}

#[test]
fn every_fixture_matches_pytorch_on_the_cpu_reference() {
    for case in cases() {
        let w = WeightsFile::open(video_fixture(&case.weights)).unwrap();
        let mut arch = detect_video(&w).unwrap();
        arch.head_pool = case.head_pool;
        let x = npy::read_f32(&video_fixture(&case.input)).unwrap();
        let want = npy::read_f32(&video_fixture(&case.logits)).unwrap();
        assert_eq!(
            x.shape,
            vec![case.batch, 3, case.frames, case.height, case.width]
        );
        let dims = [case.batch, case.frames, case.height, case.width];
        let (got, features) = run_video_arch(&arch, &w, &x.data, dims).unwrap();
        assert_eq!(features.len(), case.batch * arch.features());
        let err = relative_error(&got, &want.data);
        eprintln!("{}: relative error {err:.2e}", case.name);
        assert!(err <= 1e-4, "{}: relative error {err:.2e}", case.name);
    }
}

#[test]
fn a_head_pool_larger_than_the_map_is_refused() {
    let case = cases().into_iter().find(|c| c.name == "pv_slow").unwrap();
    let w = WeightsFile::open(video_fixture(&case.weights)).unwrap();
    let arch = detect_video(&w).unwrap();
    assert_eq!(
        arch.head_pool,
        Some([8, 7, 7]),
        "slow_r50's released kernel"
    );
    let x = npy::read_f32(&video_fixture(&case.input)).unwrap();
    let dims = [case.batch, case.frames, case.height, case.width];
    let err = run_video_arch(&arch, &w, &x.data, dims).unwrap_err();
    assert!(err.to_string().contains("larger than the final"), "{err}");
}

/// The fixture's tensors, edited by `edit`, as a new file.
fn edited(case: &str, edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>)) -> WeightsFile {
    let w = WeightsFile::open(video_fixture(&format!("{case}/model.safetensors"))).unwrap();
    let mut tensors: Vec<_> = w
        .tensors
        .iter()
        .filter_map(|(n, t)| Some((n.clone(), t.shape.clone(), w.to_f32(n)?)))
        .collect();
    edit(&mut tensors);
    let bytes = resnet_wgpu::weights::serialize_f32(&tensors, None).unwrap();
    WeightsFile::from_bytes(format!("{case}-edited"), bytes).unwrap()
}

#[test]
fn missing_unexpected_and_misshapen_tensors_are_errors() {
    let missing = edited("tv_r2plus1d", |t| {
        t.retain(|(n, ..)| n != "layer3.0.conv2.0.3.weight")
    });
    let err = detect_video(&missing).unwrap_err();
    assert!(
        matches!(err, Error::MissingTensor { ref name, .. } if name == "layer3.0.conv2.0.3.weight"),
        "{err}"
    );

    let extra = edited("pv_c2d", |t| {
        t.push(("blocks.1.res_blocks.0.extra".into(), vec![2], vec![0.0; 2]))
    });
    let err = detect_video(&extra).unwrap_err();
    assert!(
        matches!(err, Error::UnexpectedTensor { ref name, .. } if name == "blocks.1.res_blocks.0.extra"),
        "{err}"
    );

    let bad_bn = edited("tv_mc3", |t| {
        let bn = t
            .iter_mut()
            .find(|(n, ..)| n == "layer2.0.conv1.1.running_var")
            .unwrap();
        bn.1 = vec![3];
        bn.2.truncate(3);
    });
    assert!(matches!(
        detect_video(&bad_bn),
        Err(Error::TensorShape { .. })
    ));

    let bad_chain = edited("pv_i3d", |t| {
        let c = t
            .iter_mut()
            .find(|(n, ..)| n == "blocks.3.res_blocks.1.branch2.conv_a.weight")
            .unwrap();
        let (o, i) = (c.1[0], c.1[1]);
        c.1 = vec![o, i + 1, c.1[2], 1, 1];
        c.2 = vec![0.0; c.1.iter().product()];
    });
    assert!(matches!(
        detect_video(&bad_chain),
        Err(Error::TensorShape { .. })
    ));
}

#[test]
fn image_weights_are_not_video() {
    let w = WeightsFile::open(fixture("resnet101.safetensors")).unwrap();
    assert!(!is_video(&w));
    assert!(matches!(detect_video(&w), Err(Error::NotResnet(_))));
}

// ---- the 3-D reference against the 2-D one --------------------------------------------------

#[test]
fn conv3d_with_one_frame_equals_the_2d_reference() {
    let mut rng = Rng::new(7201);
    for _ in 0..12 {
        let groups = [1, 2, 4][rng.range(0, 2)];
        let (cin, cout) = (groups * rng.range(1, 4), groups * rng.range(1, 4));
        let k = [1, 3, 5, 7][rng.range(0, 3)];
        let (stride, pad) = (rng.range(1, 3), rng.range(0, k / 2));
        let (n, h, w) = (rng.range(1, 3), rng.range(k, 13), rng.range(k, 13));
        let x = rng.vec(n * h * w * cin, -1.0, 1.0);
        let weight = rng.vec(cout * (cin / groups) * k * k, -0.5, 0.5);
        let bias = rng.vec(cout, -0.2, 0.2);
        let relu = rng.range(0, 1) == 1;
        let p2 = ConvParams {
            out_channels: cout,
            kernel: k,
            stride,
            pad,
            relu,
            input_nchw: false,
        };
        let (want, ws) = conv2d_grouped(
            &x,
            Shape {
                n,
                t: 1,
                h,
                w,
                c: cin,
            },
            &weight,
            &bias,
            None,
            p2,
            groups,
        );
        let p3 = Conv3dParams {
            out_channels: cout,
            kernel: [1, k, k],
            stride: [1, stride, stride],
            pad: [0, pad, pad],
            groups,
            relu,
        };
        let (got, gs) = conv3d(
            &x,
            Shape3 {
                n,
                t: 1,
                h,
                w,
                c: cin,
            },
            &weight,
            &bias,
            None,
            p3,
        )
        .unwrap();
        assert_eq!((gs.n, gs.t, gs.h, gs.w, gs.c), (ws.n, 1, ws.h, ws.w, ws.c));
        // The 2-D reference rounds the sum to f32 before the bias; the 3-D one adds it in f64.
        assert!(
            relative_error(&got, &want) < 1e-6,
            "k {k} s {stride} p {pad} g {groups}"
        );
    }
}

#[test]
fn max_pool3d_takes_the_window_maximum_over_time() {
    // (1, 4, 1, 1, 1) values 1, 5, 2, 7; kernel (2,1,1) stride (2,1,1) → 5, 7.
    let xs = Shape3 {
        n: 1,
        t: 4,
        h: 1,
        w: 1,
        c: 1,
    };
    let pool = resnet_wgpu::model::video::Pool3d {
        kernel: [2, 1, 1],
        stride: [2, 1, 1],
        pad: [0, 0, 0],
    };
    let (out, os) = max_pool3d(&[1.0, 5.0, 2.0, 7.0], xs, pool).unwrap();
    assert_eq!((os.t, out), (2, vec![5.0, 7.0]));
}

// ---- the default video model -----------------------------------------------------------------

#[test]
fn the_default_video_model_matches_its_training_script() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("weights/default_video.safetensors");
    let w = WeightsFile::open(&path).unwrap();
    let arch = detect_video(&w).unwrap();
    assert_eq!(arch.family, VideoFamily::R3d);
    assert_eq!(arch.outputs(), 8);
    // One channel of the three equal ones is stored: (8, 1, T, H, W).
    let grey = npy::read_f32(&video_fixture("default_heldout.input.npy")).unwrap();
    let [n, one, t, h, wd] = grey.shape[..] else {
        panic!("shape {:?}", grey.shape)
    };
    assert_eq!(one, 1);
    let plane = t * h * wd;
    let x: Vec<f32> = grey
        .data
        .chunks(plane)
        .flat_map(|clip| {
            clip.iter()
                .chain(clip)
                .chain(clip)
                .copied()
                .collect::<Vec<_>>()
        })
        .collect();
    let want = npy::read_f32(&video_fixture("default_heldout.logits.npy")).unwrap();
    let labels = npy::read_f32(&video_fixture("default_heldout.labels.npy")).unwrap();
    let (got, _) = run_video_arch(&arch, &w, &x, [n, t, h, wd]).unwrap();
    let err = relative_error(&got, &want.data);
    assert!(err <= 1e-4, "relative error {err:.2e}");
    for (i, row) in got.chunks(8).enumerate() {
        let best = (0..8).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
        assert_eq!(best as f32, labels.data[i], "clip {i}");
    }
}

#[test]
fn the_sample_gifs_decode_and_classify_as_their_names_say() {
    if !ffmpeg_available() {
        eprintln!("skipped: no ffmpeg on PATH");
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let w = WeightsFile::open(root.join("weights/default_video.safetensors")).unwrap();
    let arch = detect_video(&w).unwrap();
    let labels: Vec<String> = serde_json::from_str(&w.metadata["resnet.labels"]).unwrap();
    let mut gifs: Vec<PathBuf> = std::fs::read_dir(root.join("samples_video"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    gifs.sort();
    assert_eq!(gifs.len(), 8);
    for gif in gifs {
        let frames = decode_video(&gif).unwrap();
        assert_eq!(
            (frames.frames.len(), frames.height, frames.width),
            (8, 32, 32)
        );
        // The model's preset: (v/255 − 0.5)/0.5 on the grey frames, (1, 3, T, H, W).
        let plane = 32 * 32;
        let mut x = vec![0f32; 3 * 8 * plane];
        for (t, f) in frames.frames.iter().enumerate() {
            for (p, rgb) in f.chunks(3).enumerate() {
                for ch in 0..3 {
                    x[(ch * 8 + t) * plane + p] = (rgb[ch] as f32 / 255.0 - 0.5) / 0.5;
                }
            }
        }
        let (logits, _) = run_video_arch(&arch, &w, &x, [1, 8, 32, 32]).unwrap();
        let best = (0..logits.len())
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
            .unwrap();
        let name = gif.file_stem().unwrap().to_str().unwrap();
        assert_eq!(
            name.split('_').next().unwrap(),
            labels[best],
            "{}",
            gif.display()
        );
    }
}
