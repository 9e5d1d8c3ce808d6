//! What differs between a native process and a browser page (wasm32 with WebGPU), in one
//! place, so that the rest of the library is written once:
//!
//! - **Waiting.** Natively a future is driven to its end on the calling thread (`pollster`;
//!   the GPU waits inside it are `device.poll`). In a browser nothing may block: a GPU result
//!   arrives only once control has gone back to the event loop, so only the `async` entry
//!   points work there, and a blocking one says so instead of hanging the page.
//! - **Clock.** `std::time::Instant` panics on wasm32; the browser's `performance.now()`
//!   stands in.
//! - **Disk.** A page has no file system: no user cache directory, so no tuning results and
//!   no pipeline cache (both already handle "no directory").

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use crate::error::{Error, Result};

pub use imp::{Instant, NO_ADAPTER_HINT};

/// Drives `future` to its end on this thread: the blocking form of an `async` entry point.
/// In a browser it is an [`crate::Error::Usage`] naming the `async` function to call instead.
pub fn block_on<T>(future: impl Future<Output = Result<T>>, async_name: &str) -> Result<T> {
    imp::block_on(future, async_name)
}

/// The future's value now if it has one without waiting on the browser; natively it is
/// waited for. `Err(future)` gives it back (only in a browser) to be awaited later.
pub fn now_or_later<F: Future + Unpin>(future: F) -> std::result::Result<F::Output, F> {
    imp::now_or_later(future)
}

/// Locks `mutex` for a future that holds it across an `await`. Natively such a future never
/// yields while holding it (its waits block), so this waits like `Mutex::lock`. A page has
/// one thread: a second caller while a first awaits would deadlock (wasm's `Mutex` panics
/// instead), so it is refused with an error naming `what` is still running.
pub fn lock_across_await<'a, T>(mutex: &'a Mutex<T>, what: &str) -> Result<MutexGuard<'a, T>> {
    imp::lock_across_await(mutex).map_err(|busy| match busy {
        Busy::Running => Error::Usage(format!(
            "{what} is still running; await it before starting another"
        )),
        Busy::Poisoned => Error::Gpu(format!("{what} panicked earlier (lock poisoned)")),
    })
}

/// Why [`lock_across_await`] got no guard.
enum Busy {
    /// Only in a page: natively the lock waits instead.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    Running,
    Poisoned,
}

/// The user's cache directory (`~/.cache` and its equivalents), where the platform has one.
pub fn user_cache_dir() -> Option<PathBuf> {
    imp::user_cache_dir()
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::*;

    pub use std::time::Instant;

    /// Follows "no GPU adapter found".
    pub const NO_ADAPTER_HINT: &str =
        " (on Linux without a GPU, install Mesa's lavapipe: scripts/setup.sh)";

    pub fn block_on<T>(future: impl Future<Output = Result<T>>, _: &str) -> Result<T> {
        pollster::block_on(future)
    }

    pub fn now_or_later<F: Future + Unpin>(future: F) -> std::result::Result<F::Output, F> {
        Ok(pollster::block_on(future))
    }

    pub fn lock_across_await<T>(mutex: &Mutex<T>) -> std::result::Result<MutexGuard<'_, T>, Busy> {
        mutex.lock().map_err(|_| Busy::Poisoned)
    }

    pub fn user_cache_dir() -> Option<PathBuf> {
        dirs::cache_dir()
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    pub use web_time::Instant;

    /// Follows "no GPU adapter found".
    pub const NO_ADAPTER_HINT: &str =
        " (this browser offers no WebGPU adapter: WebGPU is unsupported, switched off, or \
         blocked for this GPU)";

    /// Never polled: every blocking entry point waits for the GPU, which a page can only do
    /// by returning to the event loop, and a half-run future would leave work (a buffer being
    /// mapped) behind it.
    pub fn block_on<T>(_: impl Future<Output = Result<T>>, async_name: &str) -> Result<T> {
        Err(Error::Usage(format!(
            "a browser page cannot wait for the GPU; call `{async_name}` and await it"
        )))
    }

    pub fn now_or_later<F: Future + Unpin>(mut future: F) -> std::result::Result<F::Output, F> {
        match Pin::new(&mut future).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(out) => Ok(out),
            Poll::Pending => Err(future),
        }
    }

    pub fn lock_across_await<T>(mutex: &Mutex<T>) -> std::result::Result<MutexGuard<'_, T>, Busy> {
        mutex.try_lock().map_err(|e| match e {
            std::sync::TryLockError::WouldBlock => Busy::Running,
            std::sync::TryLockError::Poisoned(_) => Busy::Poisoned,
        })
    }

    pub fn user_cache_dir() -> Option<PathBuf> {
        None
    }
}
