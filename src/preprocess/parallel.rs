//! Preprocessing many images at once, on every core.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Result};

/// Decodes and preprocesses `items` (paths, bytes, pixels) on all cores, one worker per core rather than one
/// thread per image, so a batch of large images never holds more than a core's worth of
/// decoded pixels at once. Results keep the order of `items`.
pub fn decode_all<T: Sync>(
    items: &[T],
    decode: &(dyn Fn(&T) -> Result<Vec<f32>> + Sync),
) -> Vec<Result<Vec<f32>>> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, Result<Vec<f32>>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break done };
                        done.push((i, decode(item)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join().unwrap_or_else(|_| {
                    vec![(0, Err(Error::Usage("an image decoder panicked".into())))]
                })
            })
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}
