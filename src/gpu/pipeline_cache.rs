//! wgpu's pipeline cache on disk, where the device has `Features::PIPELINE_CACHE` (wgpu
//! offers it on Vulkan): what the driver compiled, kept between runs in
//! `<cache dir>/pipelines-<key>.bin`, `<key>` naming the adapter model
//! (`wgpu::util::pipeline_cache_key`). The file is a header of ours (magic and a checksum of
//! the rest) followed by the bytes `PipelineCache::get_data` returned.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Whether compiled pipelines are kept on disk, and if not, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PipelineCacheState {
    /// Kept in `path`: read at load, written after new pipelines were created. `read`: the
    /// file held a cache this device accepted, so the driver started from it.
    File { path: PathBuf, read: bool },
    /// Disk caches are off (`DiskCache::Off`, or no user cache directory to name).
    Off,
    /// The device cannot keep a pipeline cache; the reason.
    Unsupported(String),
}

/// Marks our files; the version digit changes if the layout after it does.
const MAGIC: &[u8; 8] = b"RNWPCv01";
const HEADER: usize = MAGIC.len() + 8;

/// A pipeline cache backed by a file.
pub(crate) struct DiskPipelineCache {
    pub(crate) cache: wgpu::PipelineCache,
    path: PathBuf,
    /// Checksum of the data the file holds, when known: saving the same bytes again is
    /// skipped (a warm start recompiles nothing new, so the driver's data is unchanged).
    on_disk: Mutex<Option<u64>>,
    /// A pipeline was created through this cache since the last save.
    dirty: AtomicBool,
    /// A save failed: not retried, so a read-only or full disk costs one warning, not one
    /// per plan.
    failed: AtomicBool,
}

impl DiskPipelineCache {
    /// The cache for `device` in `dir`, filled from its file when that holds valid data.
    /// Never fails: an unreadable, corrupt or foreign file gives an empty cache (logged),
    /// replaced on the next save.
    pub(crate) fn open(
        device: &wgpu::Device,
        info: &wgpu::AdapterInfo,
        dir: Option<PathBuf>,
    ) -> (Option<Self>, PipelineCacheState) {
        let Some(dir) = dir else {
            return (None, PipelineCacheState::Off);
        };
        if !device.features().contains(wgpu::Features::PIPELINE_CACHE) {
            return unsupported(format!(
                "the {:?} adapter has no PIPELINE_CACHE feature",
                info.backend
            ));
        }
        let Some(key) = wgpu::util::pipeline_cache_key(info) else {
            return unsupported(format!(
                "wgpu keeps no pipeline cache on the {:?} backend",
                info.backend
            ));
        };
        let start = Instant::now();
        let path = dir.join(format!("pipelines-{key}.bin"));
        let data = read(&path);
        let on_disk = data.as_ref().map(checksum);
        let had_data = data.is_some();
        let (cache, read) = match create(device, data) {
            Ok(cache) => (cache, had_data),
            Err(e) => {
                // wgpu refuses data for another device even with `fallback` (the only
                // refusal `fallback` does not cover): start empty instead.
                // wgpu's message nests its causes over several lines; the last is the reason.
                let e = e.to_string();
                let why = e.lines().map(str::trim).rfind(|l| !l.is_empty());
                log::warn!(
                    "{}: pipeline cache not used ({}); starting empty",
                    path.display(),
                    why.unwrap_or("refused")
                );
                match create(device, None) {
                    Ok(cache) => (cache, false),
                    Err(e) => return unsupported(format!("creating a pipeline cache: {e}")),
                }
            }
        };
        log::info!(
            "pipeline cache {} opened in {:.1} ms",
            path.display(),
            start.elapsed().as_secs_f64() * 1e3
        );
        let disk = DiskPipelineCache {
            cache,
            path: path.clone(),
            on_disk: Mutex::new(on_disk),
            dirty: AtomicBool::new(false),
            failed: AtomicBool::new(false),
        };
        (Some(disk), PipelineCacheState::File { path, read })
    }

    /// Records that a pipeline was created through the cache.
    pub(crate) fn touched(&self) {
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Writes the cache's data to its file if pipelines were created since the last save and
    /// the data changed. A cache is an optimisation: failures are logged, never returned.
    pub(crate) fn save(&self) {
        if !self.dirty.swap(false, Ordering::Relaxed) || self.failed.load(Ordering::Relaxed) {
            return;
        }
        let start = Instant::now();
        let Some(data) = self.cache.get_data() else {
            return;
        };
        let sum = checksum(&data);
        let Ok(mut on_disk) = self.on_disk.lock() else {
            return;
        };
        if *on_disk == Some(sum) {
            return;
        }
        let mut bytes = Vec::with_capacity(HEADER + data.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&sum.to_le_bytes());
        bytes.extend_from_slice(&data);
        let written = match self.path.parent() {
            Some(dir) => std::fs::create_dir_all(dir).map_err(|e| crate::error::Error::io(dir, e)),
            None => Ok(()),
        }
        .and_then(|()| crate::fsutil::write_atomic(&self.path, &bytes));
        match written {
            Ok(()) => {
                *on_disk = Some(sum);
                log::info!(
                    "pipeline cache saved ({} bytes) in {:.1} ms",
                    bytes.len(),
                    start.elapsed().as_secs_f64() * 1e3
                );
            }
            Err(e) => {
                self.failed.store(true, Ordering::Relaxed);
                log::warn!("could not save the pipeline cache: {e}");
            }
        }
    }
}

fn unsupported(why: String) -> (Option<DiskPipelineCache>, PipelineCacheState) {
    log::info!("no pipeline cache on disk: {why}");
    (None, PipelineCacheState::Unsupported(why))
}

/// The driver data in the file at `path`, if it is there and intact.
fn read(path: &std::path::Path) -> Option<Vec<u8>> {
    let bytes = match crate::fsutil::read_regular(path) {
        Ok(b) => b,
        Err(crate::error::Error::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return None
        }
        Err(e) => {
            log::warn!("pipeline cache not read: {e}");
            return None;
        }
    };
    let intact = bytes.len() >= HEADER
        && bytes[..MAGIC.len()] == MAGIC[..]
        && bytes[MAGIC.len()..HEADER] == checksum(&bytes[HEADER..]).to_le_bytes();
    if !intact {
        log::warn!(
            "{}: not an intact pipeline cache, ignored (it is replaced on the next save)",
            path.display()
        );
        return None;
    }
    Some(bytes[HEADER..].to_vec())
}

/// Creates the cache inside an error scope, so a refusal is returned rather than raised.
fn create(
    device: &wgpu::Device,
    data: Option<Vec<u8>>,
) -> std::result::Result<wgpu::PipelineCache, wgpu::Error> {
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    // SAFETY: `data` is byte for byte what `PipelineCache::get_data` returned on a device
    // with this cache key: we wrote it with its checksum, atomically, and `read` checked
    // both. wgpu then checks its own header (version, backend, device, driver's validation
    // key, length) and, with `fallback`, starts empty on any mismatch it can detect.
    let cache = unsafe {
        device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
            label: Some("resnet-wgpu pipelines"),
            data: data.as_deref(),
            fallback: true,
        })
    };
    // Known at once natively; a browser has no cache directory, so never gets here.
    match crate::platform::now_or_later(Box::pin(scope.pop())) {
        Ok(Some(e)) => Err(e),
        Ok(None) | Err(_) => Ok(cache),
    }
}

/// FNV-1a, 64 bits: catches a torn or damaged file before the driver reads it.
fn checksum(bytes: impl AsRef<[u8]>) -> u64 {
    bytes.as_ref().iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_files_are_not_read() {
        let dir = std::env::temp_dir().join(format!("resnet-pcache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pipelines-x.bin");
        let data = b"driver data".to_vec();
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&checksum(&data).to_le_bytes());
        file.extend_from_slice(&data);
        std::fs::write(&path, &file).unwrap();
        assert_eq!(read(&path), Some(data));
        let mut flipped = file.clone();
        *flipped.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert_eq!(read(&path), None);
        std::fs::write(&path, &file[..file.len() - 1]).unwrap();
        assert_eq!(read(&path), None);
        std::fs::write(&path, b"garbage").unwrap();
        assert_eq!(read(&path), None);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(read(&path), None);
    }
}
