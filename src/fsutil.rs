//! User-named files. Inputs: only regular files are read, so a FIFO cannot block the process
//! forever and a device such as `/dev/zero` cannot be read until memory runs out. Outputs:
//! a regular file (or a new one) is written whole or not at all, through a temporary file
//! renamed into place; a FIFO or character device (`/dev/null`, `/dev/stdout`) is written
//! through, never replaced; a symbolic link is followed. Temporary files in flight are
//! registered so that a signal handler (the CLI's) can remove them on the way out.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Error as IoError, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// Opens `path` for reading after checking that it is a regular file (symbolic links are
/// followed). Every failure is an [`Error::Io`] naming the path.
pub fn open_regular(path: &Path) -> Result<File> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::io(
            path,
            IoError::new(ErrorKind::InvalidInput, "is a directory, not a file"),
        ));
    }
    if !meta.is_file() {
        return Err(Error::io(
            path,
            IoError::new(
                ErrorKind::InvalidInput,
                "not a regular file (a pipe, socket or device cannot be read)",
            ),
        ));
    }
    File::open(path).map_err(|e| Error::io(path, e))
}

/// Reads a whole regular file; see [`open_regular`]. A file whose size changes while it is
/// read (another process truncating or appending) is an error rather than a mix of versions.
pub fn read_regular(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut file = open_regular(path)?;
    // Kernel files (/proc) report 0 and still have content: no size to hold them to.
    let expected = file.metadata().map_err(|e| Error::io(path, e))?.len();
    // Reserved up front, fallibly: a file larger than memory is an error, not an abort.
    let mut bytes = Vec::new();
    if bytes
        .try_reserve_exact(usize::try_from(expected).unwrap_or(usize::MAX))
        .is_err()
    {
        return Err(Error::io(
            path,
            IoError::new(
                ErrorKind::OutOfMemory,
                format!("{expected} bytes do not fit in this machine's memory"),
            ),
        ));
    }
    file.read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    let now = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if expected != 0 && (bytes.len() as u64 != expected || now != expected) {
        return Err(Error::io(
            path,
            IoError::other(format!(
                "the file changed size while it was read ({expected} bytes, then {} read, now \
                 {now}); read it again once it is no longer being written",
                bytes.len()
            )),
        ));
    }
    Ok(bytes)
}

/// Writes `bytes` to `path`. A new or regular file is written to a temporary file in the
/// same folder, flushed to disk and renamed over it: a reader never sees half a file, and a
/// failure (or a kill) never leaves a truncated one under the final name. The temporary file
/// is removed on failure, and by [`remove_temporaries`] on a signal. A FIFO or character
/// device is written through (a rename would replace the device node with a file); a
/// symbolic link is followed, so the file it points to is replaced and the link stays.
/// Block devices, sockets and folders are refused.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let target = resolve_output(path)?;
    match OutputKind::of(&target).map_err(|e| Error::io(path, e))? {
        OutputKind::Stream => write_through(&target, bytes).map_err(|e| Error::io(path, e)),
        OutputKind::File => replace_file(&target, bytes).map_err(|e| Error::io(path, e)),
    }
}

/// What kind of output a path is, once links are followed.
enum OutputKind {
    /// A regular file or nothing yet: replaced atomically.
    File,
    /// A FIFO or character device: written through. Only recognised on Unix.
    #[cfg_attr(not(unix), allow(dead_code))]
    Stream,
}

impl OutputKind {
    fn of(path: &Path) -> std::io::Result<OutputKind> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(OutputKind::File),
            Err(e) => return Err(e),
        };
        if meta.is_file() {
            return Ok(OutputKind::File);
        }
        if meta.is_dir() {
            return Err(IoError::new(
                ErrorKind::InvalidInput,
                "is a folder; give a file name for the output",
            ));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            let kind = meta.file_type();
            if kind.is_fifo() || kind.is_char_device() {
                return Ok(OutputKind::Stream);
            }
        }
        Err(IoError::new(
            ErrorKind::InvalidInput,
            "not a regular file, FIFO or character device (a block device or socket is \
             never written)",
        ))
    }
}

/// The path an output is written at: `path` itself, or for a symbolic link the file it
/// points to (a dangling link is refused rather than guessed at).
fn resolve_output(path: &Path) -> Result<PathBuf> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path).map_err(|e| {
            Error::io(
                path,
                IoError::new(e.kind(), format!("a symbolic link to nothing: {e}")),
            )
        }),
        _ => Ok(path.to_path_buf()),
    }
}

fn write_through(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(bytes)?;
    f.flush()
}

fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(path);
    let result = create_temporary(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        pause_for_tests();
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    });
    if result.is_err() {
        // Best effort: the temporary file is ours and useless now.
        let _ = std::fs::remove_file(&tmp);
    }
    unregister_temporary(&tmp);
    result
}

/// Debug builds only: `RESNET_WGPU_TEST_PAUSE_WRITE_MS` holds every write between its data
/// and its rename, so a test can interrupt the CLI in the middle of one.
fn pause_for_tests() {
    #[cfg(debug_assertions)]
    if let Some(ms) = std::env::var("RESNET_WGPU_TEST_PAUSE_WRITE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// The longest file name the usual file systems take (ext4, XFS, btrfs, APFS: 255 bytes).
const NAME_MAX: usize = 255;

/// `dir/name` -> `dir/name.<pid>.tmp`: same folder (so `rename` is atomic, never a cross-device
/// copy), and the pid keeps two processes writing the same output from sharing a temp file.
/// A name too long for that is shortened first, so the temporary name never exceeds
/// [`NAME_MAX`] where the final name does not.
fn temp_path(path: &Path) -> PathBuf {
    let suffix = format!(".{}.tmp", std::process::id());
    let mut name = truncated(
        path.file_name().unwrap_or_default(),
        NAME_MAX - suffix.len(),
    );
    name.push(suffix);
    path.with_file_name(name)
}

/// At most `max` bytes of `name`, cut at a character boundary when it is UTF-8.
fn truncated(name: &std::ffi::OsStr, max: usize) -> OsString {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let bytes = name.as_bytes();
        let mut end = bytes.len().min(max);
        if let Ok(text) = std::str::from_utf8(bytes) {
            while !text.is_char_boundary(end) {
                end -= 1;
            }
        }
        std::ffi::OsStr::from_bytes(&bytes[..end]).to_os_string()
    }
    #[cfg(not(unix))]
    {
        let text = name.to_string_lossy();
        let mut end = text.len().min(max);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        OsString::from(&text[..end])
    }
}

/// Temporary files being written now, for [`remove_temporaries`]; `exiting` once it ran.
struct Temporaries {
    paths: Vec<PathBuf>,
    exiting: bool,
}

static TEMPORARIES: Mutex<Temporaries> = Mutex::new(Temporaries {
    paths: Vec::new(),
    exiting: false,
});

fn temporaries() -> std::sync::MutexGuard<'static, Temporaries> {
    TEMPORARIES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Creates and registers a temporary file, both under the registry's lock, so that
/// [`remove_temporaries`] sees every temporary file that exists and none is created after
/// it ran. The file is new (`O_EXCL`): nothing already at the name — a FIFO, a link, a
/// leftover of a dead process with the same pid — is ever written through; a leftover is
/// removed first.
fn create_temporary(tmp: &Path) -> std::io::Result<File> {
    let mut registry = temporaries();
    if registry.exiting {
        return Err(IoError::new(
            ErrorKind::Interrupted,
            "the process is exiting",
        ));
    }
    let create = || File::options().write(true).create_new(true).open(tmp);
    let file = match create() {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            std::fs::remove_file(tmp)?;
            create()?
        }
        other => other?,
    };
    registry.paths.push(tmp.to_path_buf());
    Ok(file)
}

fn unregister_temporary(path: &Path) {
    temporaries().paths.retain(|p| p != path);
}

/// Removes every temporary file a write in progress has created, for a signal handler to
/// call before the process exits (SIGINT or SIGTERM in the middle of a large write would
/// otherwise leave `*.tmp` files behind). Later writes of regular files fail: the process is
/// on its way out. Returns the paths removed.
pub fn remove_temporaries() -> Vec<PathBuf> {
    let mut registry = temporaries();
    registry.exiting = true;
    std::mem::take(&mut registry.paths)
        .into_iter()
        .filter(|p| std::fs::remove_file(p).is_ok())
        .collect()
}

/// Whether `a` and `b` name the same file (after links), e.g. an output that is also an
/// input. Paths that do not both exist are different files.
pub fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        ma.dev() == mb.dev() && ma.ino() == mb.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (ma, mb);
        matches!((std::fs::canonicalize(a), std::fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y)
    }
}

/// Runs `f` holding an exclusive lock on `lock_path` (created if missing, left in place), so
/// that processes sharing a file (two `resnet tune` runs on one cache folder) take turns to
/// read, merge and write it. Blocks until the lock is free.
pub fn with_lock<T>(lock_path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path)
        .map_err(|e| Error::io(lock_path, e))?;
    file.lock().map_err(|e| Error::io(lock_path, e))?;
    let result = f();
    // Closing the file releases the lock too; unlocking first says so.
    let _ = file.unlock();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_fit_the_file_system() {
        let long = "é".repeat(127); // 254 bytes, a legal name
        let tmp = temp_path(&Path::new("/tmp").join(&long));
        let name = tmp.file_name().unwrap().to_str().unwrap();
        assert!(name.len() <= NAME_MAX, "{}", name.len());
        assert!(name.ends_with(".tmp") && name.starts_with('é'));
        let short = temp_path(Path::new("dir/out.npy"));
        assert_eq!(
            short,
            Path::new(&format!("dir/out.npy.{}.tmp", std::process::id()))
        );
    }
}
