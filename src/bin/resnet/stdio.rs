//! Standard output and error, written fallibly. `println!` panics when a write fails (a
//! closed pipe, a full disk), which would end the process with exit code 101; these return
//! the failure as a [`StreamError`] instead, and `main` turns it into a quiet exit for a
//! closed pipe (as `ls | head` ends) or one `error:` line and exit code 1.

use std::fmt;
use std::io::{ErrorKind, Write};

/// A write to standard output or error that failed.
#[derive(Debug)]
pub struct StreamError {
    stream: &'static str,
    source: std::io::Error,
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "writing to standard {}: {}", self.stream, self.source)
    }
}

impl std::error::Error for StreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl StreamError {
    /// The reader went away (`| head`): nobody is left to tell, so the program ends quietly.
    pub fn is_closed_pipe(&self) -> bool {
        self.source.kind() == ErrorKind::BrokenPipe
    }

    /// A failed final flush of standard output.
    pub fn flush(source: std::io::Error) -> Self {
        StreamError {
            stream: "output",
            source,
        }
    }

    /// Whether standard error itself failed, so no error message can be shown.
    pub fn on_stderr(&self) -> bool {
        self.stream == "error"
    }
}

fn write_line(
    mut stream: impl Write,
    name: &'static str,
    args: fmt::Arguments,
) -> Result<(), StreamError> {
    stream
        .write_fmt(args)
        .and_then(|()| stream.write_all(b"\n"))
        .and_then(|()| stream.flush())
        .map_err(|source| StreamError {
            stream: name,
            source,
        })
}

/// One line on standard output.
pub fn out(args: fmt::Arguments) -> Result<(), StreamError> {
    write_line(std::io::stdout().lock(), "output", args)
}

/// One line on standard error.
pub fn err(args: fmt::Arguments) -> Result<(), StreamError> {
    write_line(std::io::stderr().lock(), "error", args)
}

/// `println!` that returns a write failure (`?` it) instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::stdio::out(format_args!($($arg)*))?
    };
}

/// `eprintln!` that returns a write failure (`?` it) instead of panicking.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::stdio::err(format_args!($($arg)*))?
    };
}
