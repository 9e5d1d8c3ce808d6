//! User-named files. Inputs: only regular files are read, so a FIFO cannot block the process
//! forever and a device such as `/dev/zero` cannot be read until memory runs out. Outputs:
//! written whole or not at all.

use std::fs::File;
use std::io::{Error as IoError, ErrorKind, Write};
use std::path::{Path, PathBuf};

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

/// Reads a whole regular file; see [`open_regular`].
pub fn read_regular(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    Ok(bytes)
}

/// Writes `bytes` to a temporary file in the same folder, flushes it to disk and renames it
/// over `path`: a reader never sees half a file, and a failure (or a kill) never leaves a
/// truncated one under the final name. The temporary file is removed on failure.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        // Best effort: the temporary file is ours and useless now.
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// `dir/name` -> `dir/name.<pid>.tmp`: same folder (so `rename` is atomic, never a cross-device
/// copy), and the pid keeps two processes writing the same output from sharing a temp file.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}
