//! Frames from a video file, through the system `ffmpeg` binary (spawned; raw `rgb24` frames
//! over a pipe, size from `ffprobe`), or from a folder of images (sorted by file name).
//!
//! The whole video is decoded into memory: clip sampling needs the frame count, which only
//! decoding gives exactly (container frame counts are estimates for many formats).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::transform::Frames;
use crate::error::{Error, Result};
use crate::preprocess::load_image;

/// File extensions `resnet classify` treats as video.
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "webm", "mkv", "avi", "mov", "gif", "m4v", "mpg", "mpeg",
];

/// Whether `path` names a video by its extension (animated GIFs count as video).
pub fn is_video_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Image files a folder of frames may hold (the formats the image decoder reads).
const FRAME_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "bmp"];

fn is_frame_file(path: &Path) -> bool {
    path.is_file()
        && path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| FRAME_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

const INSTALL_HINT: &str = "install FFmpeg (Debian/Ubuntu: `apt-get install ffmpeg`, macOS: \
     `brew install ffmpeg`, Windows: `winget install ffmpeg`) so that `ffmpeg` and `ffprobe` \
     are on PATH";

/// Runs `tool args…` and returns its stdout; a missing binary says how to install it.
fn run_tool(tool: &str, args: &[&OsStr], path: &Path) -> Result<Vec<u8>> {
    let output = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Usage(format!(
                "{}: decoding video needs `{tool}`, which is not installed: {INSTALL_HINT}",
                path.display()
            )),
            _ => Error::io(tool, e),
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(video_error(
            path,
            format!("{tool} failed: {}", stderr.trim()),
        ));
    }
    Ok(output.stdout)
}

fn video_error(path: &Path, msg: String) -> Error {
    Error::Video {
        path: path.to_path_buf(),
        msg,
    }
}

/// Width and height of the first video stream.
fn probe_size(path: &Path) -> Result<(usize, usize)> {
    let args = [
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=width,height",
        "-of",
        "csv=p=0:s=x",
    ];
    let argv: Vec<&OsStr> = args
        .iter()
        .map(OsStr::new)
        .chain([path.as_os_str()])
        .collect();
    let out = run_tool("ffprobe", &argv, path)?;
    let text = String::from_utf8_lossy(&out);
    let line = text.lines().next().unwrap_or("").trim();
    let parsed = line
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<usize>().ok()?, h.parse::<usize>().ok()?)));
    match parsed {
        Some((w, h)) if w > 0 && h > 0 => Ok((w, h)),
        _ => Err(video_error(
            path,
            format!("no video stream (ffprobe said {line:?})"),
        )),
    }
}

/// Decodes every frame of the first video stream as RGB.
pub fn decode_video(path: &Path) -> Result<Frames> {
    // A regular file that exists, or the usual error; ffmpeg reads it.
    crate::fsutil::open_regular(path)?;
    let (width, height) = probe_size(path)?;
    // `-autorotate 0` keeps the stored orientation, so frames match ffprobe's size.
    let head = ["-v", "error", "-nostdin", "-autorotate", "0", "-i"];
    let tail = ["-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"];
    let argv: Vec<&OsStr> = head
        .iter()
        .map(OsStr::new)
        .chain([path.as_os_str()])
        .chain(tail.iter().map(OsStr::new))
        .collect();
    let raw = run_tool("ffmpeg", &argv, path)?;
    let frame_len = width * height * 3;
    if raw.is_empty() || raw.len() % frame_len != 0 {
        return Err(video_error(
            path,
            format!(
                "ffmpeg gave {} bytes, not whole {width}×{height} RGB frames",
                raw.len()
            ),
        ));
    }
    Ok(Frames {
        height,
        width,
        frames: raw.chunks_exact(frame_len).map(<[u8]>::to_vec).collect(),
    })
}

/// The image files of a folder, sorted by name, decoded as RGB; all must share one size.
pub fn decode_frame_folder(dir: &Path) -> Result<Frames> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| is_frame_file(p))
        .collect();
    files.sort();
    let first = files
        .first()
        .ok_or_else(|| video_error(dir, "the folder holds no image frames".into()))?;
    let image = load_image(first)?;
    let (width, height) = (image.width() as usize, image.height() as usize);
    let mut frames = vec![image.into_raw()];
    for f in &files[1..] {
        let img = load_image(f)?;
        if (img.width() as usize, img.height() as usize) != (width, height) {
            return Err(video_error(
                f,
                format!(
                    "frame is {}×{}, the folder's first frame {width}×{height}",
                    img.width(),
                    img.height()
                ),
            ));
        }
        frames.push(img.into_raw());
    }
    Ok(Frames {
        height,
        width,
        frames,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_decoder_says_how_to_install_it() {
        let err = run_tool("ffmpeg-not-installed-here", &[], Path::new("clip.mp4")).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Usage(_)), "{text}");
        assert!(
            text.contains("clip.mp4") && text.contains("apt-get install ffmpeg"),
            "{text}"
        );
    }

    #[test]
    fn video_files_are_known_by_extension() {
        for name in ["a.mp4", "b.WEBM", "c.mkv", "d.avi", "e.mov", "f.gif"] {
            assert!(is_video_file(Path::new(name)), "{name}");
        }
        for name in ["a.png", "b.jpg", "c", "d.npy"] {
            assert!(!is_video_file(Path::new(name)), "{name}");
        }
    }
}
