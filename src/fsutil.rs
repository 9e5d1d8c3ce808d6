//! Opening user-named input files safely: only regular files are read, so a FIFO cannot
//! block the process forever and a device such as `/dev/zero` cannot be read until memory
//! runs out.

use std::fs::File;
use std::io::{Error as IoError, ErrorKind};
use std::path::Path;

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
